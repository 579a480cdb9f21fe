//! The verdict rules that decide between "idle" and "stuck" (docs/findings.md): when a process
//! is `hung`, when a cycle of futex waits is a real deadlock, which processes an OOM kill left
//! waiting, and which findings are consequences of another. Pure over the graph and the facts.

use std::collections::{BTreeSet, HashMap};

use super::facts::{Facts, OomFact};
use super::{
    Finding, FindingKind, Graph, Severity, Target, Tkey, serves, wait_of, waits_for_input,
};
use crate::model::{Process, Wait};

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

/// Syscalls that wait for a signal and nothing else.
const SIGNAL_WAITS: &[&str] = &["pause", "rt_sigsuspend", "rt_sigtimedwait", "sigsuspend"];

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
    if w.decoded.syscall != "futex" {
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
    let Some(p) = g.procs.get(&q) else { return false };
    p.threads.iter().any(|t| t.blocked.is_none() && matches!(t.state, 'R' | 'S' | 'D'))
        || p.blocked_threads().any(|(_, w)| !w.decoded.infinite)
        || serves(p, facts)
}

/// The kind of a non-pipe, non-socket fd target, as the decoder shows it.
fn anon_kind(w: &Wait) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |t: &str| out.push(t.to_string());
    if let Some(t) = w.decoded.args.get("target").and_then(|v| v.as_str()) {
        add(t);
    }
    if let Some(a) = w.decoded.args.get("fds").and_then(|v| v.as_array()) {
        for e in a {
            if let Some(t) = e.get("target").and_then(|v| v.as_str()) {
                add(t);
            }
        }
    }
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
    let mut seen: BTreeSet<Tkey> = BTreeSet::new();
    let mut todo: Vec<Tkey> = vec![(p.pid, p.pid)];
    while let Some(k) = todo.pop() {
        if !seen.insert(k) || seen.len() > 64 {
            continue;
        }
        let Some(w) = wait_of(p, k.1) else { continue };
        let s = w.decoded.syscall.as_str();
        if SIGNAL_WAITS.contains(&s) {
            return Some(format!("thread {} waits for a signal in {s}", k.1));
        }
        let targets = anon_kind(w);
        for t in &targets {
            for (pat, what) in [
                ("signalfd", "a signal"),
                ("inotify", "a file change"),
                ("timerfd", "a timer"),
                ("fanotify", "a file event"),
            ] {
                if t.contains(pat) {
                    return Some(format!("thread {} waits for {what} ({t})", k.1));
                }
            }
        }
        let edges = g.edges.get(&k).map(|v| v.as_slice()).unwrap_or(&[]);
        let known = edges.iter().any(|e| !matches!(e.target, Target::Outside));
        if !known && !edges.is_empty() {
            let fds = super::all_fds(w, facts, p.pid);
            let socket = fds.iter().any(|fd| {
                facts
                    .fd_inode
                    .get(&(p.pid, *fd))
                    .is_some_and(|(_, kind)| *kind == super::FdKind::Socket)
            });
            if socket {
                return Some(format!(
                    "thread {} waits on a socket whose other end hangwatch cannot see",
                    k.1
                ));
            }
            if s.starts_with("epoll_") {
                return Some(format!(
                    "thread {} is an event loop waiting on sources hangwatch cannot follow",
                    k.1
                ));
            }
        }
        if s == "futex" && !owner_evidence(g, k) && signal_may_wake(facts, p.pid) {
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
    let mut waiters: HashMap<usize, Vec<i32>> = HashMap::new();
    let mut drop_hung: BTreeSet<usize> = BTreeSet::new();
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
        if !wait_of(p, pid).is_some_and(|w| w.decoded.infinite) {
            continue;
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
        }
        waiters.entry(root).or_default().push(pid);
    }
    for (i, mut w) in waiters {
        if drop_hung.contains(&i) {
            continue;
        }
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

/// The severity of a deadlock cycle: critical with owner evidence, low when it is only futex
/// waits that nothing visible can wake.
pub fn cycle_severity(g: &Graph, cyc: &[(Tkey, String)]) -> Severity {
    if weak_cycle(g, cyc) { Severity::Low } else { Severity::Critical }
}
