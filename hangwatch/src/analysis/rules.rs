//! The verdict rules that decide between "idle" and "stuck" (docs/findings.md): when a process
//! is `hung`, when a cycle of futex waits is a real deadlock, which processes an OOM kill left
//! waiting, and which findings are consequences of another. Pure over the graph and the facts.

use std::collections::{BTreeSet, HashMap};

use super::{
    Finding, FindingKind, Graph, Severity, Target, Tkey, serves, wait_of, waits_for_input,
};
use crate::model::facts::{Facts, OomFact};
use crate::{
    model::{Process, Wait},
    syscalls::WaitOn,
};

/// A wait must have begun at least this long after the process started to count as "after it
/// did something" (unless it had used [`super::HUNG_MIN_CPU_SECS`] of CPU): a process that has
/// waited since it started is waiting for its first work.
pub const HUNG_SETTLE_NS: u64 = 1_000_000_000;

/// Above this CPU (percent of one core over the window) a process is working, not hung.
/// Helper threads that wake on short timers use less: libzmq's I/O thread reconnecting every
/// 100 ms measured 0.5-1% on a loaded 2-core VM.
pub const HUNG_MAX_CPU_PERCENT: f64 = 5.0;

const fn sig(n: u32) -> u64 {
    1 << (n - 1)
}

/// Signals whose handlers are routine and say nothing about a wait ending: SIGINT (every
/// Python process catches it), SIGPIPE, SIGCHLD, SIGWINCH, and glibc's internal SIGCANCEL (32)
/// and SIGSETXID (33) that every threaded process catches.
const ROUTINE_SIGNALS: u64 = sig(2) | sig(13) | sig(17) | sig(28) | sig(32) | sig(33);

/// Whether a signal handler is a plausible way out of a wait: the process catches a signal
/// beyond the routine ones (SIGTERM, SIGHUP, SIGUSR1 ...).
pub fn signal_may_wake(facts: &Facts, pid: i32) -> bool {
    facts.sig_caught.get(&pid).is_some_and(|m| m & !ROUTINE_SIGNALS != 0)
}

/// Whether a wait has evidence of who holds what it waits for: any wait that is not a futex
/// (a pipe, a socket, a child), or a futex whose word names an owner (a mutex owner, a joined
/// thread, a PI lock owner). A futex wait on a condition variable, a semaphore or an event has
/// none: any thread could post it.
pub fn owner_evidence(g: &Graph, k: Tkey) -> bool {
    let Some(w) = g.procs.get(&k.0).and_then(|p| wait_of(p, k.1)) else { return true };
    if !matches!(w.decoded.wait_on, WaitOn::Futex(_)) {
        return true;
    }
    g.edges.get(&k).is_some_and(|es| es.iter().any(|e| matches!(e.target, Target::Thread(..))))
}

/// A cycle made only of futex waits with no owner evidence: every thread waits, nothing
/// visible can wake them, but nothing says who holds what either.
pub fn weak_cycle(g: &Graph, cyc: &[(Tkey, String)]) -> bool {
    cyc.iter().all(|(k, _)| !owner_evidence(g, *k))
}

/// Another process that can answer a wait on it: a thread that runs or sleeps only briefly,
/// a thread in a timed wait (it wakes by itself), or a server waiting for clients.
fn responsive(g: &Graph, facts: &Facts, q: i32) -> bool {
    let mut seen = BTreeSet::new();
    responsive_from(g, facts, q, &mut seen)
}

/// [`responsive`], following waits on further processes: a parent in `wait4` for a child that
/// is busy running (a build tool waiting on the test binary it started) can answer too. At
/// most 64 processes are visited; a loop back to one already seen is no way out.
fn responsive_from(g: &Graph, facts: &Facts, q: i32, seen: &mut BTreeSet<i32>) -> bool {
    if !seen.insert(q) || seen.len() > 64 {
        return false;
    }
    let Some(p) = g.procs.get(&q) else { return false };
    // Stopped, traced, frozen or stuck in `D` (facts::cannot_run): it cannot answer, whatever
    // its threads' states look like.
    if facts.cannot_run.contains_key(&q) {
        return false;
    }
    // Waiting for a lock another holds (a PostgreSQL session behind a table lock): it answers
    // only when the lock is released, however much its wait looks like an event loop's.
    if held_by_lock(p, facts).is_some() {
        return false;
    }
    // A process waiting on a peer hangwatch cannot see (ssh reading its remote end, for the
    // `grep` it writes to) answers when that peer does: assumed live, as for the process itself
    // in [`idle_reason`].
    if p.threads.iter().any(|t| t.blocked.is_none() && matches!(t.state, 'R' | 'S' | 'D'))
        || p.blocked_threads().any(|(_, w)| !w.decoded.infinite)
        || serves(p, facts)
        || p.blocked_threads().any(|(t, w)| unseen_source(g, facts, p, t.tid, w).is_some())
    {
        return true;
    }
    let next: BTreeSet<i32> = p
        .blocked_threads()
        .take(64)
        .filter_map(|(t, _)| g.edges.get(&(q, t.tid)))
        .flatten()
        .filter_map(|e| match e.target {
            Target::Thread(r, _) | Target::Process(r) if r != q => Some(r),
            _ => None,
        })
        .collect();
    next.into_iter().any(|r| responsive_from(g, facts, r, seen))
}

/// How long a thread must have waited for a lock, by its stack, before the process holding it
/// is taken for unable to answer: longer than contention in a busy healthy program (a
/// PostgreSQL session waits for a row a few milliseconds to seconds).
pub const LOCK_HELD_MIN_NS: u64 = 5_000_000_000;

/// What a process waits for when every live thread of it is blocked and one of them has waited
/// at least [`LOCK_HELD_MIN_NS`], forever, for a lock another holds, by its stack
/// ([`crate::stacks::evidence::lock_wait`]): the thread and what it waits for. Not a process
/// that serves a listening socket: one of its threads answers, and which thread serves a
/// given connection is not known (a worker of a threaded server may wait on a lock for long
/// while the others answer).
pub fn held_by_lock(p: &Process, facts: &Facts) -> Option<(i32, String)> {
    if !p.all_blocked() || serves(p, facts) {
        return None;
    }
    p.blocked_threads()
        .filter(|(_, w)| w.decoded.infinite && w.duration_ns >= LOCK_HELD_MIN_NS)
        .find_map(|(t, w)| {
            let what = crate::stacks::evidence::lock_wait(t.stack.as_deref()?)?;
            Some((t.tid, format!("{what} for {}", crate::fmt::fmt_duration_ns(w.duration_ns))))
        })
}

/// A process held by a lock that another process waits on ([`waits_on_lock_holder`]).
pub struct BehindLock {
    pub pid: i32,
    pub tid: i32,
    /// What it waits for and how long: `a PostgreSQL lock (in ProcSleep ← ...) for 5m`.
    pub what: String,
    /// Who may hold it, when something tells (PostgreSQL sessions idle in a transaction).
    pub holders: Vec<i32>,
}

impl BehindLock {
    /// `pid Q (comm) tid T waits for ...; sessions idle in a transaction, which may hold it: ...`
    pub fn sentence(&self, g: &Graph) -> String {
        let comm = g.procs.get(&self.pid).map(|p| p.comm.as_str()).unwrap_or("?");
        format!("pid {} ({comm}) tid {} waits for {}{}", self.pid, self.tid, self.what, self.hint())
    }

    /// `; sessions idle in a transaction, which may hold it: pid 1, pid 2`, or nothing.
    pub fn hint(&self) -> String {
        if self.holders.is_empty() {
            return String::new();
        }
        let pids: Vec<String> = self.holders.iter().map(|h| format!("pid {h}")).collect();
        format!("; sessions idle in a transaction, which may hold it: {}", pids.join(", "))
    }
}

/// The process a main thread's wait leads to (through at most 16 processes) that is held by a
/// lock ([`held_by_lock`]): a client whose server session waits for a lock another session
/// holds.
pub fn waits_on_lock_holder(g: &Graph, facts: &Facts, p: &Process) -> Option<BehindLock> {
    let mut seen: BTreeSet<i32> = BTreeSet::from([p.pid]);
    let mut todo: Vec<Tkey> = vec![(p.pid, p.pid)];
    while let Some(k) = todo.pop() {
        for e in g.edges.get(&k).map(|v| v.as_slice()).unwrap_or(&[]) {
            let q = match e.target {
                Target::Thread(q, _) | Target::Process(q) => q,
                Target::Outside => continue,
            };
            if !seen.insert(q) || seen.len() > 16 {
                continue;
            }
            let Some(qp) = g.procs.get(&q) else { continue };
            if let Some((tid, what)) = held_by_lock(qp, facts) {
                return Some(BehindLock { pid: q, tid, what, holders: idle_in_transaction(g, qp) });
            }
            todo.extend(qp.blocked_threads().take(16).map(|(t, _)| (q, t.tid)));
        }
    }
    None
}

/// PostgreSQL sessions of the same server as `session` that sit idle inside a transaction (by
/// the process title PostgreSQL sets, `postgres: USER DB HOST idle in transaction`): the
/// usual holders of a lock that others wait for. hangwatch cannot see PostgreSQL's lock table;
/// `pg_locks` can.
fn idle_in_transaction(g: &Graph, session: &Process) -> Vec<i32> {
    let mut out: Vec<i32> = g
        .procs
        .values()
        .filter(|p| p.pid != session.pid && p.ppid == session.ppid)
        .filter(|p| {
            p.cmdline.starts_with("postgres: ") && p.cmdline.contains("idle in transaction")
        })
        .map(|p| p.pid)
        .collect();
    out.sort_unstable();
    out.truncate(8);
    out
}

/// Why a process whose main thread waits forever is idle rather than stuck, or `None` when
/// the wait is for a reply that nothing visible will send. Follows the main thread's wait
/// inside its own process (a join, a mutex, a condition another thread would signal) to the
/// threads that could end it:
/// * a server (a listening socket in a wait) or a read of a terminal: waiting for work;
/// * a wait for a signal (`pause`, `sigsuspend`, `sigwait`), a signalfd, inotify or a timerfd;
/// * a wait that leads to *another* process that can answer (running, ticking on a timer,
///   serving): a consumer of a live server, a worker of a live pool;
/// * a socket whose other end hangwatch cannot see (TCP to another host): assumed live;
/// * an epoll event loop watching sources hangwatch cannot follow;
/// * a futex with no owner evidence (an event, a queue) in a process that catches signals
///   beyond the routine ones: a handler may set it.
///
/// Threads of the *same* process that only tick on timers are not a way out: a helper that
/// reconnects every 100 ms does not make the main thread's infinite wait end.
pub fn idle_reason(g: &Graph, facts: &Facts, p: &Process) -> Option<String> {
    if serves(p, facts) {
        return Some("a thread serves a listening socket".into());
    }
    if waits_for_input(g, p) {
        return Some("it waits for its user".into());
    }
    // Its main thread's stack says it is a pool worker waiting for its next task.
    if let Some(at) = p
        .threads
        .iter()
        .find(|t| t.tid == p.pid)
        .and_then(|t| t.stack.as_deref())
        .and_then(crate::stacks::evidence::pool_worker)
    {
        return Some(format!("its stack shows a pool worker waiting for its next task ({at})"));
    }
    let mut seen: BTreeSet<Tkey> = BTreeSet::new();
    let mut todo: Vec<Tkey> = vec![(p.pid, p.pid)];
    while let Some(k) = todo.pop() {
        if !seen.insert(k) || seen.len() > 64 {
            continue;
        }
        let Some(w) = wait_of(p, k.1) else { continue };
        // Another thread of the process that only ticks on a timer is no way out of the main
        // thread's wait, whatever it watches between ticks (libzmq's I/O thread retrying).
        if k.1 != p.pid && !w.decoded.infinite {
            continue;
        }
        if w.decoded.call.is_signal_wait() {
            return Some(format!("thread {} waits for a signal in {}", k.1, w.decoded.syscall));
        }
        for t in w.decoded.wait_on.targets() {
            for (pat, what) in [
                ("signalfd", "a signal"),
                ("inotify", "a file change"),
                ("timerfd", "a timer"),
                ("fanotify", "a file event"),
            ] {
                // The kernel's own objects (`anon_inode:[signalfd]`, `anon_inode:inotify`):
                // a regular file whose name has the word in it is no such wait.
                if t.starts_with("anon_inode:") && t.contains(pat) {
                    return Some(format!("thread {} waits for {what} ({t})", k.1));
                }
            }
        }
        let edges = g.edges.get(&k).map(|v| v.as_slice()).unwrap_or(&[]);
        match unseen_source(g, facts, p, k.1, w) {
            Some(Unseen::Socket) => {
                return Some(format!(
                    "thread {} waits on a socket whose other end hangwatch cannot see",
                    k.1
                ));
            }
            Some(Unseen::EventLoop) => {
                return Some(format!(
                    "thread {} is an event loop waiting on sources hangwatch cannot follow",
                    k.1
                ));
            }
            None => {}
        }
        if matches!(w.decoded.wait_on, WaitOn::Futex(_))
            && !owner_evidence(g, k)
            && signal_may_wake(facts, p.pid)
        {
            return Some(format!(
                "thread {} waits on a futex with no owner and the process catches signals a handler of which may end it",
                k.1
            ));
        }
        for e in edges {
            match e.target {
                Target::Thread(q, _) | Target::Process(q) if q != p.pid => {
                    if responsive(g, facts, q) {
                        return Some(format!("it waits on pid {q}, which is alive and can answer"));
                    }
                }
                Target::Thread(_, t) => todo.push((p.pid, t)),
                Target::Process(_) => {
                    todo.extend(p.blocked_threads().take(64).map(|(t, _)| (p.pid, t.tid)))
                }
                Target::Outside => {}
            }
        }
    }
    None
}

/// What a wait leads to that hangwatch cannot see past, and so assumes alive.
enum Unseen {
    /// A socket whose other end is not on this machine's visible tables (TCP to another host).
    Socket,
    /// An epoll loop watching sources hangwatch cannot follow.
    EventLoop,
}

/// Whether thread `tid` of `p` waits only on things hangwatch cannot see past (every edge of
/// its wait leads outside): a socket to another host, or an event loop's unknown sources.
fn unseen_source(g: &Graph, facts: &Facts, p: &Process, tid: i32, w: &Wait) -> Option<Unseen> {
    let edges = g.edges.get(&(p.pid, tid)).map(|v| v.as_slice()).unwrap_or(&[]);
    if edges.is_empty() || edges.iter().any(|e| !matches!(e.target, Target::Outside)) {
        return None;
    }
    let socket = super::all_fds(w, facts, p.pid).iter().any(|fd| {
        facts.fd_inode.get(&(p.pid, *fd)).is_some_and(|(_, kind)| *kind == super::FdKind::Socket)
    });
    if socket {
        Some(Unseen::Socket)
    } else if w.decoded.call.is_epoll() {
        Some(Unseen::EventLoop)
    } else {
        None
    }
}

/// The latest start among the infinite waits of a process's threads.
fn last_wait_start(p: &Process) -> Option<u64> {
    p.blocked_threads().filter(|(_, w)| w.decoded.infinite).map(|(_, w)| w.since_mono_ns).max()
}

/// Whether the process did something before its current waits: they began well after it
/// started, or it had used real CPU.
pub fn did_work_first(p: &Process, now_mono_ns: u64) -> bool {
    let start = now_mono_ns.saturating_sub((p.age_secs * 1e9) as u64);
    p.cpu_total_secs >= super::HUNG_MIN_CPU_SECS
        || last_wait_start(p).is_some_and(|s| s.saturating_sub(start) >= HUNG_SETTLE_NS)
}

/// The process an OOM victim most likely worked for: its parent when known (the live probe, or
/// the victim still a zombie), else the top of the victim's memory cgroup's process tree — the
/// processes of that cgroup whose parent is not in it, or, when those are all children of one
/// process outside it (a pool whose workers alone were limited), that parent. Never a sibling
/// worker: those have their parent in the cgroup.
pub fn oom_parents(procs: &[Process], k: &OomFact) -> Vec<i32> {
    let zombie_parent = procs
        .iter()
        .find(|p| p.pid == k.pid && p.threads.iter().all(|t| t.state == 'Z'))
        .map(|p| p.ppid);
    if let Some(pp) = k.ppid.or(zombie_parent) {
        return vec![pp];
    }
    let Some(cg) = k.cgroup.as_deref().filter(|c| *c != "/") else { return vec![] };
    let members: HashMap<i32, &Process> =
        procs.iter().filter(|p| p.cgroup == cg && p.pid != k.pid).map(|p| (p.pid, p)).collect();
    let roots: Vec<&Process> =
        members.values().filter(|p| !members.contains_key(&p.ppid)).copied().collect();
    let parents: BTreeSet<i32> = roots.iter().map(|p| p.ppid).collect();
    if parents.len() == 1
        && members.len() == roots.len()
        && let Some(&pp) = parents.iter().next()
        && pp > 1
    {
        return vec![pp];
    }
    let mut out: Vec<i32> = roots.iter().map(|p| p.pid).collect();
    out.sort();
    out
}

/// From a process waiting in wait4/waitid, down to its one live child (not `victim`), while
/// that child waits the same way: the process whose wait is not on a live child of its own. A
/// process with several live children stays where it is (which one it waits on is unknown).
pub fn through_waiting_parents<'a>(
    procs: &HashMap<i32, &'a Process>,
    mut p: &'a Process,
    victim: i32,
) -> &'a Process {
    for _ in 0..16 {
        let waits_on_children =
            p.blocked_threads().any(|(t, w)| t.tid == p.pid && w.decoded.call.is_child_wait());
        if !waits_on_children {
            break;
        }
        let mut kids = procs.values().filter(|c| {
            c.ppid == p.pid
                && c.pid != victim
                && c.pid != p.pid
                && c.threads.iter().any(|t| t.state != 'Z')
        });
        match (kids.next(), kids.next()) {
            (Some(&only), None) => p = only,
            _ => break,
        }
    }
    p
}

/// Whether a kernel wait channel is the cgroup freezer's (a frozen task sleeps there, in `D`
/// under cgroup v1, on purpose).
pub fn freezer_wchan(wchan: &str) -> bool {
    matches!(wchan, "__refrigerator" | "do_freezer_trap" | "refrigerator")
}

/// Whether `pid` is `anc` or a descendant of it (bounded walk up the parents).
pub fn descends_from(by_pid: &HashMap<i32, &Process>, mut pid: i32, anc: i32) -> bool {
    for _ in 0..64 {
        if pid == anc {
            return true;
        }
        match by_pid.get(&pid) {
            Some(p) if p.ppid != pid && p.ppid > 0 => pid = p.ppid,
            _ => return false,
        }
    }
    false
}

/// Groups consequences under their root cause: a process whose main thread's chain of waits
/// reaches a process named by a deadlock, an orphaned wait or a hung process (through waits
/// that name who they wait for) is one of its waiters, not a separate finding. Its pid is added to the root finding (after the culprits), the summary
/// says how many wait on it, and a `hung` finding of its own is dropped.
#[allow(
    clippy::too_many_lines,
    reason = "roots, the pids they name, then each waiter's chain: steps sharing two maps"
)]
pub fn group_consequences(g: &Graph, out: &mut Vec<Finding>) {
    let roots: Vec<usize> = (0..out.len())
        .filter(|&i| {
            matches!(
                out[i].kind,
                FindingKind::Deadlock | FindingKind::OrphanedWait | FindingKind::Hung
            )
        })
        .collect();
    if roots.is_empty() {
        return;
    }
    let named: HashMap<i32, usize> = {
        let mut m = HashMap::new();
        // Deadlocks and orphaned waits first: a hung process that waits on a deadlock is one
        // of its waiters.
        for &i in roots.iter().filter(|&&i| out[i].kind != FindingKind::Hung) {
            for &p in &out[i].pids {
                m.entry(p).or_insert(i);
            }
        }
        for &i in roots.iter().filter(|&&i| out[i].kind == FindingKind::Hung) {
            for &p in &out[i].pids {
                m.entry(p).or_insert(i);
            }
        }
        m
    };
    // A waiter is a consequence only if it cannot make progress while the roots do not: its
    // main thread is stuck once every thread of the named processes is held stuck. A chain
    // that passes through a process with a free thread (a test harness, a supervisor whose
    // other thread still works) is not evidence enough.
    let threads_of = |pids: &mut dyn Iterator<Item = i32>| -> BTreeSet<(i32, i32)> {
        pids.filter_map(|pid| g.procs.get(&pid))
            .flat_map(|p| p.threads.iter().filter(|t| t.state != 'Z').map(|t| (p.pid, t.tid)))
            .collect()
    };
    let held = g.stuck_given(&threads_of(&mut named.keys().copied()));
    // A waiter named by a hung finding of its own is checked without its own threads held
    // (else it would hold itself); a few such fixed points at most.
    let mut hung_checks = 0;
    let mut waiters: HashMap<usize, Vec<i32>> = HashMap::new();
    let mut drop_hung: BTreeSet<usize> = BTreeSet::new();
    // A hung finding folded into the root its own chain reaches: where its waiters go too.
    let mut folded_into: HashMap<usize, usize> = HashMap::new();
    for (&pid, p) in &g.procs {
        let own = named.get(&pid).copied();
        // A process already named by a root: only a hung finding of it can fold (into the
        // deadlock or orphaned wait its chain reaches).
        if let Some(i) = own
            && out[i].kind != FindingKind::Hung
        {
            continue;
        }
        // Its main thread must be the one waiting: a helper thread that reads a stuck
        // process's output (a supervisor's log reader) does not make its process a victim.
        if !wait_of(p, pid).is_some_and(|w| w.decoded.infinite) || !held.contains(&(pid, pid)) {
            continue;
        }
        if own.is_some() {
            hung_checks += 1;
            let others = threads_of(&mut named.keys().copied().filter(|&q| q != pid));
            if hung_checks > 32 || !g.stuck_given(&others).contains(&(pid, pid)) {
                continue;
            }
        }
        // Followed only through waits that name who they wait for: a futex with no owner
        // (any thread could post it) is where the evidence ends.
        let chain = g.chain_from((pid, pid));
        let mut root = None;
        for s in &chain {
            if s.pid != pid
                && let Some(&r) = named.get(&s.pid)
            {
                root = Some(r).filter(|&r| Some(r) != own);
                break;
            }
            if !owner_evidence(g, (s.pid, s.tid)) {
                break;
            }
        }
        let Some(root) = root else { continue };
        // A hung process does not absorb another hung process's waiters twice.
        if let Some(i) = own {
            drop_hung.insert(i);
            folded_into.insert(i, root);
        }
        waiters.entry(root).or_default().push(pid);
    }
    // C waits on B, which is hung on A's deadlock: B folds into the deadlock, and C with it.
    // Followed through folded hung findings (a chain C → B → A …), at most a few steps; a
    // ring of hung findings folded into each other has no root left and keeps its waiters out.
    let mut regrouped: HashMap<usize, Vec<i32>> = HashMap::new();
    for (i, w) in waiters {
        let mut at = i;
        for _ in 0..=folded_into.len() {
            match folded_into.get(&at) {
                Some(&next) if drop_hung.contains(&at) => at = next,
                _ => break,
            }
        }
        if !drop_hung.contains(&at) {
            regrouped.entry(at).or_default().extend(w);
        }
    }
    for (i, mut w) in regrouped {
        w.sort();
        w.dedup();
        w.retain(|p| !out[i].pids.contains(p));
        if w.is_empty() {
            continue;
        }
        let list: Vec<String> = w.iter().take(10).map(|p| p.to_string()).collect();
        let more = if w.len() > 10 { format!(" and {} more", w.len() - 10) } else { String::new() };
        out[i].summary.push_str(&format!(
            "; {} other process{} wait{} on it: pid {}{more}",
            w.len(),
            if w.len() == 1 { "" } else { "es" },
            if w.len() == 1 { "s" } else { "" },
            list.join(", ")
        ));
        out[i].pids.extend(w);
    }
    let mut idx = 0;
    out.retain(|_| {
        let keep = !drop_hung.contains(&idx);
        idx += 1;
        keep
    });
}

/// Ranks findings: most severe first; at equal severity a root cause with evidence of who
/// holds what (a deadlock, then an orphaned wait) before a process that is merely hung.
pub fn rank(out: &mut [Finding]) {
    out.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)).then(a.key.cmp(&b.key))
    });
}

/// Where the threads of a cycle acquire locks, when their stacks show a lock cycle
/// ([`crate::stacks::evidence::lock_cycle`]) and every wait in it is at least `min_ns` old.
/// A cycle of futex waits with no owner is one of several the same stuck threads form (the
/// main thread joining one of two threads in an ABBA): the evidence is read over every thread
/// of the cycle's processes that waits on a futex, not only the two the cycle happens to name.
pub fn lock_cycle_sites(g: &Graph, cyc: &[(Tkey, String)], min_ns: u64) -> Option<Vec<String>> {
    let pids: BTreeSet<i32> = cyc.iter().map(|((pid, _), _)| *pid).collect();
    let threads: Vec<&crate::model::Thread> = pids
        .iter()
        .filter_map(|pid| g.procs.get(pid))
        .flat_map(|p| p.threads.iter())
        .filter(|t| {
            t.blocked.as_ref().is_some_and(|w| w.decoded.call == crate::syscalls::Syscall::Futex)
        })
        .collect();
    let in_cycle = |t: &crate::model::Thread| cyc.iter().any(|((_, tid), _)| *tid == t.tid);
    if threads.iter().filter(|t| in_cycle(t)).count() != cyc.len()
        || threads.iter().any(|t| t.blocked.as_ref().is_none_or(|w| w.duration_ns < min_ns))
    {
        return None;
    }
    crate::stacks::evidence::lock_cycle(threads.iter().map(|t| t.stack.as_deref()))
}

/// The severity of a deadlock cycle: critical with owner evidence, low when it is only futex
/// waits that nothing visible can wake.
pub fn cycle_severity(g: &Graph, cyc: &[(Tkey, String)]) -> Severity {
    if weak_cycle(g, cyc) { Severity::Low } else { Severity::Critical }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Config, analyze};
    use super::*;
    use crate::model::facts::{FutexKey, Holder, Kind as FdKind, Mode};
    use crate::{
        model::fixtures::{process, wait},
        syscalls::{ChildWait, testing},
    };

    const NOW: u64 = 1_000_000_000_000;

    fn cfg() -> Config {
        Config { now_mono_ns: NOW, hung_after_ns: 30_000_000_000, oom_recent_ns: u64::MAX }
    }

    /// A wait of `secs` that began `secs` ago.
    fn w(syscall: &str, secs: f64, infinite: bool) -> Wait {
        let mut x = wait(syscall, secs, infinite);
        x.since_mono_ns = NOW - x.duration_ns;
        x
    }

    fn on_fd(syscall: &str, secs: f64, fd: i32) -> Wait {
        let mut x = w(syscall, secs, true);
        let d = Arc::make_mut(&mut x.decoded);
        testing::on_fd(d, fd, None);
        d.human = format!("{syscall}(fd {fd}, timeout=infinite)");
        x
    }

    /// A `futex` wait whose expected word value is 0 (a condition variable, an event).
    fn futex(secs: f64) -> Wait {
        w("futex", secs, true)
    }

    /// `futex` with expected word value `val` (2: a contended mutex).
    fn futex_val(secs: f64, val: u32) -> Wait {
        let mut x = futex(secs);
        if let WaitOn::Futex(f) = &mut Arc::make_mut(&mut x.decoded).wait_on {
            f.val = val;
        }
        x
    }

    fn private_keys(f: &mut Facts, p: &Process) {
        for (i, t) in p.threads.iter().enumerate() {
            f.futex_key
                .insert((p.pid, t.tid), FutexKey::Private { pid: p.pid, addr: 0x1000 + i as u64 });
        }
    }

    fn found(procs: &[Process], f: &Facts) -> Vec<(&'static str, Severity, Vec<i32>)> {
        analyze(procs, f, &cfg())
            .into_iter()
            .map(|x| (x.kind.as_str(), x.severity, x.pids))
            .collect()
    }

    /// Main thread in queue.get() (a futex nobody owns) for 60 s, a heartbeat thread that
    /// wakes every 100 ms (a timed wait), 5 s of CPU, 900 s old.
    fn heartbeat_process() -> Process {
        process(100, 5.0, 900.0, vec![Some(futex(60.0)), Some(w("clock_nanosleep", 0.05, false))])
    }

    #[test]
    fn main_thread_waiting_forever_beside_a_ticking_helper_is_hung() {
        let p = heartbeat_process();
        let mut f = Facts::default();
        private_keys(&mut f, &p);
        f.sig_caught.insert(100, sig(2) | sig(32) | sig(33)); // SIGINT and glibc's own
        let out = analyze(std::slice::from_ref(&p), &f, &cfg());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].kind, FindingKind::Hung);
        assert!(out[0].summary.contains("only wake on timers: tid 101"), "{}", out[0].summary);

        // Low CPU over its life is no excuse when the wait began long after the start.
        let mut q = heartbeat_process();
        q.cpu_total_secs = 0.01;
        assert_eq!(found(&[q], &f)[0].0, "hung");
        // ... but a process that has waited since it started is waiting for its first work.
        let mut q = heartbeat_process();
        q.cpu_total_secs = 0.01;
        q.age_secs = 60.3;
        assert!(found(&[q], &f).is_empty());
        // Working (10% CPU): not hung.
        let mut q = heartbeat_process();
        q.cpu_percent = 10.0;
        assert!(found(&[q], &f).is_empty());
        // A handler for SIGTERM may set what it waits for.
        f.sig_caught.insert(100, sig(2) | sig(15));
        assert!(found(std::slice::from_ref(&p), &f).is_empty());
    }

    /// `pid` in `wait4(child)` for 60 s, 5 s of CPU, 900 s old.
    fn waiting_on_child(pid: i32, ppid: i32, child: i32) -> Process {
        let mut x = w("wait4", 60.0, true);
        Arc::make_mut(&mut x.decoded).wait_on = WaitOn::Child(ChildWait::Pid(child));
        let mut p = process(pid, 5.0, 900.0, vec![Some(x)]);
        p.ppid = ppid;
        p
    }

    #[test]
    fn a_parent_waiting_on_a_child_whose_own_child_works_is_not_hung() {
        // xtask waits on cargo, which waits on the test binary, which is running: nobody hung.
        let mut worker = process(300, 1.0, 10.0, vec![None]);
        worker.ppid = 200;
        let procs = vec![waiting_on_child(100, 1, 200), waiting_on_child(200, 100, 300), worker];
        assert!(
            found(&procs, &Facts::default()).is_empty(),
            "{:?}",
            found(&procs, &Facts::default())
        );
        // The same chain ending in a grandchild that waits forever on nothing it can see: the
        // grandchild is the hung one, and its waiters are grouped under it.
        let mut f = Facts::default();
        let stuck = process(300, 1.0, 900.0, vec![Some(futex(60.0))]);
        private_keys(&mut f, &stuck);
        let mut stuck = stuck;
        stuck.ppid = 200;
        let procs = vec![waiting_on_child(100, 1, 200), waiting_on_child(200, 100, 300), stuck];
        let out = found(&procs, &f);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].2[0], 300, "the grandchild is the root: {out:?}");
    }

    #[test]
    fn waits_for_signals_and_event_loops_are_idle() {
        for s in ["pause", "rt_sigsuspend", "rt_sigtimedwait"] {
            let p = process(100, 5.0, 900.0, vec![Some(w(s, 60.0, true))]);
            assert!(found(&[p], &Facts::default()).is_empty(), "{s}");
        }
        // A read of a signalfd or a timerfd.
        let mut x = w("read", 60.0, true);
        testing::on_fd(Arc::make_mut(&mut x.decoded), 4, Some("anon_inode:[timerfd]"));
        let p = process(100, 5.0, 900.0, vec![Some(x)]);
        assert!(found(&[p], &Facts::default()).is_empty());
        // A regular file that only has the word in its name is no timer: a read of a FIFO
        // named so, nothing else in sight, is what it is (not "waits for a timer").
        let mut x = w("read", 60.0, true);
        testing::on_fd(Arc::make_mut(&mut x.decoded), 4, Some("/run/app/timerfd.fifo"));
        let p = process(100, 5.0, 900.0, vec![Some(x)]);
        let idle = idle_reason(
            &Graph::build(std::slice::from_ref(&p), &Facts::default()),
            &Facts::default(),
            &p,
        );
        assert!(idle.as_deref().is_none_or(|r| !r.contains("a timer")), "{idle:?}");
        // An epoll event loop on sources hangwatch cannot follow.
        let p = process(100, 5.0, 900.0, vec![Some(on_fd("epoll_wait", 60.0, 5))]);
        let mut f = Facts::default();
        f.epoll_sets.insert((100, 5), vec![(6, 1), (7, 1)]);
        assert!(found(&[p], &f).is_empty());
        // The same poll on an eventfd, nothing else in sight: hung (the libzmq hang).
        let mut x = w("poll", 60.0, true);
        testing::on_fd(Arc::make_mut(&mut x.decoded), 3, Some("anon_inode:[eventfd]"));
        let p = process(100, 5.0, 900.0, vec![Some(x), Some(w("epoll_wait", 0.05, false))]);
        assert_eq!(found(std::slice::from_ref(&p), &Facts::default())[0].0, "hung");
        // Even when the main thread's wait leads to that ticking thread (a futex it would
        // post) and the ticking thread watches a socket out of sight between ticks.
        let mut tick = on_fd("epoll_wait", 0.05, 9);
        Arc::make_mut(&mut tick.decoded).infinite = false;
        let p = process(100, 5.0, 900.0, vec![Some(futex(60.0)), Some(tick)]);
        let mut f = Facts::default();
        private_keys(&mut f, &p);
        f.epoll_sets.insert((100, 9), vec![(10, 1)]);
        f.fd_inode.insert((100, 10), (700, FdKind::Socket));
        assert_eq!(found(&[p], &f)[0].0, "hung");
    }

    /// pid 10 reads a Unix socket whose peer only pid 20 holds; 20 waits in `peer_wait`.
    fn consumer(peer_wait: Wait, peer_listens: bool) -> (Vec<Process>, Facts) {
        let procs = vec![
            process(10, 5.0, 900.0, vec![Some(on_fd("recvfrom", 60.0, 3))]),
            process(20, 5.0, 900.0, vec![Some(peer_wait)]),
        ];
        let mut f = Facts::default();
        f.fd_inode.insert((10, 3), (500, FdKind::Socket));
        f.unix_peer.insert(500, 501);
        f.holders.entry(501).or_default().push(Holder { pid: 20, fd: 4, mode: Mode::ReadWrite });
        if peer_listens {
            f.fd_inode.insert((20, 5), (900, FdKind::Socket));
            f.listening.insert(900);
            f.epoll_sets.insert((20, 5), vec![(5, 1), (4, 1)]);
            f.fd_inode.insert((20, 4), (501, FdKind::Socket));
        }
        (procs, f)
    }

    #[test]
    fn a_consumer_of_a_live_server_is_idle_of_a_silent_peer_hung() {
        let (procs, f) = consumer(on_fd("epoll_wait", 60.0, 5), true);
        assert!(found(&procs, &f).is_empty(), "{:?}", found(&procs, &f));
        // A peer that ticks on a timer is alive too.
        let (procs, f) = consumer(w("epoll_wait", 0.5, false), false);
        assert!(found(&procs, &f).is_empty());
        // A peer in pause(): nothing will ever answer.
        let (procs, f) = consumer(w("pause", 60.0, true), false);
        assert_eq!(found(&procs, &f), vec![("hung", Severity::High, vec![10])]);
        // A socket whose other end is out of sight (TCP to another host): assumed live.
        let (procs, mut f) = consumer(w("pause", 60.0, true), false);
        f.unix_peer.clear();
        assert!(found(&procs, &f).is_empty());
    }

    /// A PostgreSQL session's stack while it waits for a table lock.
    fn pg_lock_stack() -> Arc<crate::stacks::Stack> {
        let native =
            ["epoll_wait", "WaitEventSetWait", "WaitLatch", "ProcSleep", "LockAcquireExtended"]
                .iter()
                .map(|s| crate::stacks::NativeFrame {
                    symbol: Some((*s).into()),
                    ..Default::default()
                })
                .collect();
        Arc::new(crate::stacks::Stack { native, ..Default::default() })
    }

    #[test]
    fn a_client_of_a_session_waiting_for_a_lock_is_hung_and_names_the_idle_transaction() {
        // psql (10) sent one query right after it started (no CPU, no work before) and waits
        // on its connection; its session (20, child of the postmaster 2) waits in epoll_wait
        // on sources hangwatch cannot follow, which alone would be an event loop, able to
        // answer. Session 30 of the same postmaster is idle in a transaction.
        let build = |lock_secs: f64, stack: bool, listens: bool| {
            let (mut procs, mut f) = consumer(on_fd("epoll_wait", lock_secs, 5), listens);
            procs[0] = process(10, 0.0, 60.5, vec![Some(on_fd("poll", 60.0, 3))]);
            procs[1].ppid = 2;
            if stack {
                procs[1].threads[0].stack = Some(pg_lock_stack());
            }
            let mut idle = process(30, 0.1, 900.0, vec![Some(on_fd("epoll_wait", 900.0, 5))]);
            idle.ppid = 2;
            idle.cmdline = "postgres: app appdb [local] idle in transaction".into();
            procs.push(idle);
            // The session's epoll set watches a socket hangwatch cannot follow.
            f.fd_inode.insert((20, 6), (777, FdKind::Socket));
            f.epoll_sets.entry((20, 5)).or_default().push((6, 1));
            (procs, f)
        };
        let (procs, f) = build(60.0, true, false);
        let found = analyze(&procs, &f, &cfg());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, FindingKind::Hung);
        assert_eq!(found[0].pids, vec![10, 20, 30]);
        assert!(found[0].summary.contains("PostgreSQL lock (in ProcSleep"), "{}", found[0].summary);
        assert!(found[0].summary.contains("which may hold it: pid 30"), "{}", found[0].summary);
        assert_eq!(found[0].chain.iter().map(|s| s.pid).collect::<Vec<_>>()[..3], [10, 20, 30]);
        // Without the stack, or a lock wait of an instant, or a session that also serves a
        // listening socket (a threaded server: another thread answers): an event loop, idle.
        for (secs, stack, listens) in [(60.0, false, false), (2.0, true, false), (60.0, true, true)]
        {
            let (procs, f) = build(secs, stack, listens);
            assert!(analyze(&procs, &f, &cfg()).is_empty(), "{secs} {stack} {listens}");
        }
    }

    #[test]
    fn a_pipeline_fed_by_a_remote_peer_is_idle() {
        // `ssh host tail -f | grep x`: grep (10) reads a pipe whose only writer is ssh (20);
        // ssh polls its TCP socket to another host (no peer in sight) and its pipe.
        let procs = vec![
            process(10, 0.5, 900.0, vec![Some(on_fd("read", 600.0, 0))]),
            process(20, 0.5, 900.0, vec![Some(on_fd("poll", 600.0, 3))]),
        ];
        let mut f = Facts::default();
        f.fd_inode.insert((10, 0), (100, FdKind::Pipe));
        f.holders.entry(100).or_default().push(Holder { pid: 10, fd: 0, mode: Mode::Read });
        f.holders.entry(100).or_default().push(Holder { pid: 20, fd: 1, mode: Mode::Write });
        f.fd_inode.insert((20, 3), (700, FdKind::Socket));
        assert!(found(&procs, &f).is_empty(), "{:?}", found(&procs, &f));
        // The same writer in pause(): nothing will ever write; grep is hung.
        let mut stuck = procs.clone();
        stuck[1].threads[0].blocked = Some(w("pause", 600.0, true));
        assert!(found(&stuck, &f).iter().any(|x| x.0 == "hung" && x.2 == vec![10]));
    }

    #[test]
    fn a_thread_long_in_d_is_hung_whatever_thread_it_is() {
        // A worker thread reads a dead NFS mount (D, 60 s); the main thread ticks on a timer.
        let mut p = process(70, 5.0, 900.0, vec![Some(w("epoll_wait", 0.1, false)), None]);
        let mut nfs = w("read", 60.0, true);
        nfs.wchan = Some("rpc_wait_bit_killable".into());
        p.threads[1].blocked = Some(nfs.clone());
        p.threads[1].state = 'D';
        let out = analyze(std::slice::from_ref(&p), &Facts::default(), &cfg());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!((out[0].kind, out[0].severity), (FindingKind::Hung, Severity::High));
        assert!(out[0].summary.contains("state D") && out[0].summary.contains("rpc_wait_bit"));
        // A moment in D (a busy disk): nothing.
        let mut brief = p.clone();
        brief.threads[1].blocked = Some(w("write", 0.3, true));
        assert!(found(&[brief], &Facts::default()).is_empty());
        // Frozen by the cgroup freezer: on purpose.
        let mut frozen = p;
        nfs.wchan = Some("__refrigerator".into());
        frozen.threads[1].blocked = Some(nfs);
        assert!(found(&[frozen], &Facts::default()).is_empty());
    }

    #[test]
    fn a_pool_worker_waiting_for_its_next_task_is_idle_by_its_stack() {
        // A worker reads the task pipe whose writer (the parent, 20) is itself stuck in
        // pause(): without its stack, the worker is hung ...
        let mut procs = vec![
            process(10, 0.5, 900.0, vec![Some(on_fd("read", 600.0, 3))]),
            process(20, 0.5, 900.0, vec![Some(w("pause", 600.0, true))]),
        ];
        let mut f = Facts::default();
        f.fd_inode.insert((10, 3), (100, FdKind::Pipe));
        f.holders.entry(100).or_default().push(Holder { pid: 10, fd: 3, mode: Mode::Read });
        f.holders.entry(100).or_default().push(Holder { pid: 20, fd: 4, mode: Mode::Write });
        assert!(found(&procs, &f).iter().any(|x| x.0 == "hung" && x.2 == vec![10]));
        // ... with it, a multiprocessing.Pool worker waiting for its next task: idle.
        procs[0].threads[0].stack = Some(Arc::new(crate::stacks::Stack {
            python: vec![crate::stacks::PyFrame {
                function: "worker".into(),
                file: "/usr/lib/python3.11/multiprocessing/pool.py".into(),
                line: 114,
            }],
            ..Default::default()
        }));
        assert!(found(&procs, &f).iter().all(|x| x.2 != vec![10]), "{:?}", found(&procs, &f));
    }

    #[test]
    fn futex_cycles_without_owner_are_low_and_silent_with_a_handler() {
        let p = process(50, 5.0, 900.0, vec![Some(futex(60.0)), Some(futex(60.0))]);
        let mut f = Facts::default();
        private_keys(&mut f, &p);
        let out = analyze(std::slice::from_ref(&p), &f, &cfg());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!((out[0].kind, out[0].severity), (FindingKind::Deadlock, Severity::Low));
        assert!(out[0].summary.starts_with("every thread waits, nothing visible can wake them"));
        f.sig_caught.insert(50, sig(15));
        assert!(found(&[p], &f).is_empty());
    }

    #[test]
    fn a_mutex_owned_by_a_thread_of_the_parent_is_a_lock_copied_at_fork() {
        let child = process(60, 1.0, 900.0, vec![Some(futex_val(60.0, 2))]);
        let mut f = Facts::default();
        f.futex_words.insert(60, (2, Some(57)));
        f.absent_tasks.insert((60, 57));
        f.tid_tgid.insert(57, 55);
        // The copied lock is in the child's private memory.
        let mut private = f.clone();
        private_keys(&mut private, &child);
        let out = analyze(std::slice::from_ref(&child), &private, &cfg());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].kind, FindingKind::OrphanedWait);
        assert!(out[0].summary.contains("thread 57 of pid 55"), "{}", out[0].summary);
        assert!(out[0].summary.contains("a lock copied at fork()"));
        // Present in its own process: not orphaned (and no edge to pid 57 of another process).
        let mut f2 = f.clone();
        f2.absent_tasks.clear();
        assert!(found(std::slice::from_ref(&child), &f2).iter().all(|x| x.0 != "orphaned_wait"));
        // A process-shared mutex (an accept mutex in shared memory) held by another process's
        // thread is a normal contended wait, not a lock copied at fork().
        let mut shared = f.clone();
        shared
            .futex_key
            .insert((60, 60), FutexKey::Shared { dev: "00:1a".into(), inode: 2, offset: 0 });
        // (With nobody else mapping the object it is still the shared-futex orphan rule.)
        let out = analyze(std::slice::from_ref(&child), &shared, &cfg());
        assert!(out.iter().all(|x| !x.summary.contains("copied at fork()")), "{out:#?}");
        // A single-threaded wait on a private futex with no owner: nobody left to wake it ...
        let lone = process(61, 1.0, 900.0, vec![Some(futex(60.0))]);
        let mut f = Facts::default();
        private_keys(&mut f, &lone);
        assert_eq!(found(std::slice::from_ref(&lone), &f)[0].0, "orphaned_wait");
        // ... unless it catches a signal a handler of which could end it.
        f.sig_caught.insert(61, sig(10));
        assert!(found(&[lone], &f).is_empty());
    }

    #[test]
    fn a_lone_thread_parked_on_a_futex_is_low_unless_a_fork_child() {
        // An exec'd program whose one thread waits forever on a private futex: a keep-alive
        // (`threading.Event().wait()`) fits as well as a thread that exited without posting.
        let mut lone = process(61, 1.0, 900.0, vec![Some(futex(60.0))]);
        lone.ppid = 60;
        lone.cmdline = "python3 app.py".into();
        let mut shell = process(60, 1.0, 900.0, vec![Some(w("wait4", 60.0, true))]);
        shell.cmdline = "bash".into();
        let mut f = Facts::default();
        private_keys(&mut f, &lone);
        let out = found(&[shell.clone(), lone.clone()], &f);
        let orphan = out.iter().find(|x| x.0 == "orphaned_wait").expect("still said");
        assert_eq!(orphan.1, Severity::Low, "{out:?}");
        // A fork child (same command line as its live parent): a lock copied at fork().
        let mut parent = process(60, 1.0, 900.0, vec![Some(w("wait4", 60.0, true)), None]);
        parent.cmdline = lone.cmdline.clone();
        parent.comm = lone.comm.clone();
        let out = analyze(&[parent, lone.clone()], &f, &cfg());
        let orphan = out.iter().find(|x| x.kind == FindingKind::OrphanedWait).expect("{out:#?}");
        assert_eq!(orphan.severity, Severity::High);
        assert!(orphan.summary.contains("fork child of pid 60"), "{}", orphan.summary);
        // Gone for an instant only (2 s): nothing yet.
        let mut young = lone;
        young.threads[0].blocked = Some(futex(2.0));
        assert!(found(&[shell, young], &f).iter().all(|x| x.0 != "orphaned_wait"));
    }

    #[test]
    fn an_entrypoint_waiting_on_its_live_child_is_not_the_oom_waiter() {
        // sh -c (10, top of the cgroup) waits for app (11), which runs; app's worker 13 was
        // OOM-killed and app is fine (a timed wait): nobody waits on the victim.
        let mut sh = process(10, 0.1, 900.0, vec![Some(w("wait4", 200.0, true))]);
        sh.cgroup = "/x".into();
        let mut app = process(11, 5.0, 900.0, vec![Some(w("epoll_wait", 0.1, false))]);
        app.ppid = 10;
        app.cgroup = "/x".into();
        let f = Facts { oom_kills: vec![oom(13, "/x")], ..Default::default() };
        let out = analyze(&[sh.clone(), app.clone()], &f, &cfg());
        assert!(out.iter().all(|x| x.kind != FindingKind::OrphanedWait), "{out:#?}");
        // app itself waits forever since before the kill: app is the one named.
        app.threads[0].blocked = Some(on_fd("read", 200.0, 3));
        let out = analyze(&[sh, app], &f, &cfg());
        let orphans: Vec<&Finding> =
            out.iter().filter(|x| x.kind == FindingKind::OrphanedWait).collect();
        assert_eq!(orphans.len(), 1, "{out:#?}");
        // (The shell that waits on app is grouped under it as a waiter.)
        assert_eq!(orphans[0].pids[..2], [11, 13]);
    }

    fn oom(pid: i32, cgroup: &str) -> OomFact {
        OomFact {
            time_mono_ns: NOW - 100_000_000_000,
            pid,
            comm: "python3".into(),
            cgroup: Some(cgroup.into()),
            ppid: None,
            memory_limit_bytes: Some(64 << 20),
            anon_rss_bytes: None,
        }
    }

    #[test]
    fn oom_kills_that_left_nobody_waiting_are_one_finding_per_cgroup() {
        let mut f = Facts::default();
        for (i, pid) in [101, 102, 103].into_iter().enumerate() {
            let mut k = oom(pid, "/crashloop");
            k.time_mono_ns += i as u64 * 1_000_000_000;
            f.oom_kills.push(k);
        }
        f.oom_kills.push(oom(201, "/batch"));
        let found = analyze(&[], &f, &cfg());
        let kills: Vec<&Finding> =
            found.iter().filter(|x| x.kind == FindingKind::OomKill).collect();
        assert_eq!(kills.len(), 2, "{kills:?}");
        let storm = kills.iter().find(|x| x.key == "oom_kill:/crashloop").expect("grouped");
        assert_eq!(storm.pids, vec![103, 102, 101], "latest first");
        assert_eq!(storm.severity, Severity::Medium);
        assert!(
            storm.summary.starts_with(
                "3 processes OOM-killed in /crashloop, limit 64.0 MiB over the last 1m40s"
            ),
            "{}",
            storm.summary
        );
        let single = kills.iter().find(|x| x.pids == vec![201]).expect("single");
        assert!(
            single.summary.starts_with("pid 201 (python3) was OOM-killed"),
            "{}",
            single.summary
        );
    }

    fn member(pid: i32, ppid: i32, cgroup: &str) -> Process {
        let mut p = process(pid, 1.0, 900.0, vec![Some(on_fd("read", 200.0, 3))]);
        p.ppid = ppid;
        p.cgroup = cgroup.into();
        p
    }

    #[test]
    fn oom_waiters_are_found_through_the_process_tree_never_a_sibling() {
        // Parent and its workers in the cgroup: the parent.
        let procs = vec![member(10, 1, "/x"), member(11, 10, "/x"), member(12, 10, "/x")];
        assert_eq!(oom_parents(&procs, &oom(13, "/x")), vec![10]);
        // Only the workers in the cgroup: their common parent.
        let procs = vec![member(10, 1, "/"), member(11, 10, "/x"), member(12, 10, "/x")];
        assert_eq!(oom_parents(&procs, &oom(13, "/x")), vec![10]);
        // The parent known (live probe, or the victim still a zombie).
        let mut k = oom(13, "/x");
        k.ppid = Some(12);
        assert_eq!(oom_parents(&procs, &k), vec![12]);
        let mut zombie = process(13, 1.0, 900.0, vec![None]);
        zombie.ppid = 11;
        zombie.threads[0].state = 'Z';
        let mut with_zombie = procs.clone();
        with_zombie.push(zombie);
        assert_eq!(oom_parents(&with_zombie, &oom(13, "/x")), vec![11]);

        // Analysis: the parent's wait that began before the kill is orphaned; the sibling
        // workers waiting for work are not named as waiters.
        let procs = vec![member(10, 1, "/x"), member(11, 10, "/x"), member(12, 10, "/x")];
        let f = Facts { oom_kills: vec![oom(13, "/x")], ..Default::default() };
        let out = analyze(&procs, &f, &cfg());
        let orphans: Vec<&Finding> =
            out.iter().filter(|x| x.kind == FindingKind::OrphanedWait).collect();
        assert_eq!(orphans.len(), 1, "{out:#?}");
        assert_eq!(orphans[0].pids, vec![10, 13]);
        assert_eq!(out[0].kind, FindingKind::OrphanedWait, "ranked first: {out:#?}");
    }

    #[test]
    fn a_cycle_of_the_oom_waiters_processes_folds_into_the_orphaned_wait() {
        // Parent 10 reads pipe A whose only writer is worker 11; 11 writes pipe B whose only
        // reader is 10: a cycle that exists because worker 13's task was lost.
        let mut procs = vec![member(10, 1, "/x"), member(11, 10, "/x")];
        procs[1].threads[0].blocked = Some(on_fd("write", 200.0, 4));
        let mut f = Facts { oom_kills: vec![oom(13, "/x")], ..Default::default() };
        f.fd_inode.insert((10, 3), (100, FdKind::Pipe));
        f.fd_inode.insert((11, 4), (200, FdKind::Pipe));
        for (ino, pid, fd, mode) in
            [(100, 10, 3, Mode::Read), (100, 11, 5, Mode::Write), (200, 11, 4, Mode::Write)]
        {
            f.holders.entry(ino).or_default().push(Holder { pid, fd, mode });
        }
        f.holders.entry(200).or_default().push(Holder { pid: 10, fd: 6, mode: Mode::Read });
        let out = analyze(&procs, &f, &cfg());
        assert!(out.iter().all(|x| x.kind != FindingKind::Deadlock), "{out:#?}");
        assert_eq!(out[0].kind, FindingKind::OrphanedWait);
        assert_eq!(out[0].severity, Severity::Critical, "takes the rank of what it explains");
        assert!(out[0].summary.contains("explains the wait-for cycle among pid 10, 11"));
    }

    #[test]
    fn waiters_of_a_deadlock_are_grouped_under_it() {
        // 10 and 20 deadlock on two pipes; 30 and 40 read pipes whose only writer is 10.
        let mut procs = vec![
            process(10, 5.0, 900.0, vec![Some(on_fd("read", 200.0, 3))]),
            process(20, 5.0, 900.0, vec![Some(on_fd("write", 200.0, 4))]),
        ];
        let mut f = Facts::default();
        let mut hold = |ino: u64, pid: i32, fd: i32, mode: Mode| {
            f.holders.entry(ino).or_default().push(Holder { pid, fd, mode })
        };
        hold(100, 10, 3, Mode::Read);
        hold(100, 20, 5, Mode::Write);
        hold(200, 20, 4, Mode::Write);
        hold(200, 10, 6, Mode::Read);
        for (pid, ino) in [(30, 300), (40, 400)] {
            procs.push(process(pid, 5.0, 900.0, vec![Some(on_fd("read", 100.0, 3))]));
            hold(ino, pid, 3, Mode::Read);
            hold(ino, 10, 7, Mode::Write);
            f.fd_inode.insert((pid, 3), (ino, FdKind::Pipe));
        }
        f.fd_inode.insert((10, 3), (100, FdKind::Pipe));
        f.fd_inode.insert((20, 4), (200, FdKind::Pipe));
        let out = analyze(&procs, &f, &cfg());
        assert_eq!(out.len(), 1, "one root cause, no separate hung waiters: {out:#?}");
        assert_eq!(out[0].kind, FindingKind::Deadlock);
        assert_eq!(out[0].severity, Severity::Critical);
        assert_eq!(out[0].pids, vec![10, 20, 30, 40]);
        assert!(out[0].summary.ends_with("2 other processes wait on it: pid 30, 40"));

        // 50 reads a pipe whose only writer is 30 (a waiter of the deadlock, hung itself):
        // it waits on the deadlock too, through 30, and is grouped under it, not dropped.
        procs.push(process(50, 5.0, 900.0, vec![Some(on_fd("read", 100.0, 3))]));
        f.holders.entry(500).or_default().push(Holder { pid: 50, fd: 3, mode: Mode::Read });
        f.holders.entry(500).or_default().push(Holder { pid: 30, fd: 8, mode: Mode::Write });
        f.fd_inode.insert((50, 3), (500, FdKind::Pipe));
        let out = analyze(&procs, &f, &cfg());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].kind, FindingKind::Deadlock);
        assert_eq!(out[0].pids, vec![10, 20, 30, 40, 50]);
    }
}
