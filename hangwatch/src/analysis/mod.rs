//! Explaining hangs: who waits for whom (wait-for edges across threads and processes), chains
//! and cycles, and the findings stated from them. `analyze` is pure over the model and the
//! [`facts::Facts`]; gathering the facts is in [`facts`].

mod file_edges;
#[cfg(test)]
mod orphaned_tests;
mod rules;
pub use rules::LOCK_HELD_MIN_NS;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::model::facts::{Facts, FutexKey, Kind as FdKind, OomFact};
use crate::{
    fmt::{fmt_bytes, fmt_duration_ns},
    model::{Process, Wait},
    syscalls::{ChildWait, Syscall, WaitOn},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Deadlock,
    OrphanedWait,
    Hung,
    MemoryNotReturned,
    MemoryGrowth,
    CpuThrottled,
    OomKill,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Deadlock => "deadlock",
            FindingKind::OrphanedWait => "orphaned_wait",
            FindingKind::Hung => "hung",
            FindingKind::MemoryNotReturned => "memory_not_returned",
            FindingKind::MemoryGrowth => "memory_growth",
            FindingKind::CpuThrottled => "cpu_throttled",
            FindingKind::OomKill => "oom_kill",
        }
    }
}

/// One link of a chain: this thread waits on `waits_on`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub waits_on: String,
    /// The innermost user-code frame the thread waits in, when its stack was read
    /// ([`annotate_findings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub pids: Vec<i32>,
    pub tids: Vec<i32>,
    pub summary: String,
    /// When the situation began (CLOCK_MONOTONIC ns), if known.
    pub since_mono_ns: Option<u64>,
    pub chain: Vec<Step>,
    /// Stable identity, to tell in live mode when the same finding is still open.
    pub key: String,
}

pub struct Config {
    pub now_mono_ns: u64,
    /// A process is `hung` when all its waits are at least this old.
    pub hung_after_ns: u64,
    /// OOM kills older than this are not reported as findings.
    pub oom_recent_ns: u64,
}

/// What a blocked thread waits on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Thread(i32, i32),
    Process(i32),
    /// Something hangwatch cannot follow could release the wait: a timeout, a TCP socket, a
    /// listening socket, an eventfd ... A thread with such an edge is never part of a deadlock.
    Outside,
}

#[derive(Debug, Clone)]
struct Edge {
    target: Target,
    why: String,
}

type Tkey = (i32, i32);

struct Graph<'a> {
    procs: HashMap<i32, &'a Process>,
    /// Edges from each blocked thread.
    edges: BTreeMap<Tkey, Vec<Edge>>,
    /// Explanations for waits whose releaser is gone.
    gone: BTreeMap<Tkey, String>,
    /// Of those, the ones where "gone" is an inference a healthy program also fits (a lone
    /// thread parked on a private futex on purpose): reported at low severity.
    gone_maybe: BTreeSet<Tkey>,
    /// How many threads wait on each futex.
    futex_waiters: HashMap<FutexKey, usize>,
    /// Processes whose every live thread waits on one and the same futex.
    all_on_one_futex: HashMap<i32, FutexKey>,
    /// Releasers that cannot run, and why (chains end at them).
    cannot_run: HashMap<i32, String>,
}

fn wait_of(p: &Process, tid: i32) -> Option<&Wait> {
    p.threads.iter().find(|t| t.tid == tid).and_then(|t| t.blocked.as_ref())
}

fn comm_of(p: &Process, tid: i32) -> String {
    p.threads.iter().find(|t| t.tid == tid).map_or_else(|| p.comm.clone(), |t| t.comm.clone())
}

/// Whether a thread reads (or waits to read) rather than writes, by syscall and poll events.
fn direction_reads(w: &Wait, fd: i32, facts: &Facts, pid: i32) -> (bool, bool) {
    let call = w.decoded.call;
    if let Some(dir) = call.data_direction() {
        return dir;
    }
    let in_set = match &w.decoded.wait_on {
        WaitOn::FdSet { fds, .. } => fds.iter().find(|f| f.fd.fd == fd).map(|f| (f.read, f.write)),
        _ => None,
    };
    match call {
        // An fd the decoder did not list: read (poll's usual POLLIN); for select, in no set.
        Syscall::Poll | Syscall::Ppoll => in_set.unwrap_or((true, false)),
        Syscall::Select | Syscall::Pselect6 => in_set.unwrap_or((false, false)),
        c if c.is_epoll() => {
            let epfd = w.decoded.wait_on.epfd().unwrap_or(-1);
            let ev = facts
                .epoll_sets
                .get(&(pid, epfd))
                .and_then(|set| set.iter().find(|(f, _)| *f == fd))
                .map_or(1, |(_, e)| *e);
            (ev & 0x3 != 0, ev & 0x4 != 0)
        }
        _ => (true, false),
    }
}

/// The edges of a wait on socket `ino`: to the processes holding its Unix peer (pushed to
/// `edges`), or an `Outside` edge returned when its other end is out of sight (TCP, listening,
/// a peer no process holds, a peer in another network namespace).
fn socket_edge(pid: i32, ino: u64, facts: &Facts, edges: &mut Vec<Edge>) -> Option<Edge> {
    if facts.listening.contains(&ino) {
        let why = format!("listening socket:[{ino}] (new connections)");
        return Some(Edge { target: Target::Outside, why });
    }
    let (peer, what) = match (facts.unix_peer.get(&ino), facts.inet_peer.get(&ino)) {
        (Some(&peer), _) => (peer, "unix socket".to_string()),
        (None, Some(p)) => (p.inode, format!("{} socket", p.connection)),
        (None, None) => {
            let why = format!("socket:[{ino}] (its other end is not visible to hangwatch)");
            return Some(Edge { target: Target::Outside, why });
        }
    };
    let holders: BTreeSet<i32> =
        facts.holders.get(&peer).into_iter().flatten().map(|h| h.pid).collect();
    if holders.is_empty() {
        let why = if facts.fd_tables_cut.is_empty() {
            format!("{what}:[{ino}] whose peer socket:[{peer}] no process holds")
        } else {
            format!(
                "{what}:[{ino}] whose peer socket:[{peer}] no process holds in the fds hangwatch \
                 read ({} fd tables were cut)",
                facts.fd_tables_cut.len()
            )
        };
        return Some(Edge { target: Target::Outside, why });
    }
    for &o in &holders {
        let why = if o == pid {
            format!("{what}:[{ino}] whose peer socket:[{peer}] it holds itself")
        } else if holders.len() == 1 {
            format!("{what}:[{ino}] whose peer socket:[{peer}] only pid {o} holds")
        } else {
            format!("{what}:[{ino}], peer socket:[{peer}] held by pid {o}")
        };
        edges.push(Edge { target: Target::Process(o), why });
    }
    None
}

/// When the wait is on more fds than were read (a poll/select set past the decoder's bound, an
/// epoll set past `facts::MAX_EPOLL_FDS`): any of those may release it.
fn unread_fds(w: &Wait, facts: &Facts, pid: i32) -> Option<String> {
    let epoll_cut =
        w.decoded.wait_on.epfd().is_some_and(|epfd| facts.epoll_truncated.contains(&(pid, epfd)));
    let set_cut = w.decoded.wait_on.fds_truncated();
    (epoll_cut || set_cut).then(|| "more fds than hangwatch reads (not followed)".to_string())
}

fn all_fds(w: &Wait, facts: &Facts, pid: i32) -> Vec<i32> {
    let mut fds = w.decoded.fds.clone();
    if let Some(set) = w.decoded.wait_on.epfd().and_then(|epfd| facts.epoll_sets.get(&(pid, epfd)))
    {
        fds = set.iter().map(|(fd, _)| *fd).collect();
    }
    fds
}

impl<'a> Graph<'a> {
    fn build(procs: &'a [Process], facts: &Facts) -> Self {
        let by_pid: HashMap<i32, &Process> = procs.iter().map(|p| (p.pid, p)).collect();
        let mut futex_waiters: HashMap<FutexKey, usize> = HashMap::new();
        for k in facts.futex_key.values() {
            *futex_waiters.entry(k.clone()).or_default() += 1;
        }
        let mut all_on_one_futex = HashMap::new();
        for p in procs {
            let mut keys = p
                .threads
                .iter()
                .filter(|t| t.state != 'Z')
                .map(|t| t.blocked.as_ref().and_then(|_| facts.futex_key.get(&(p.pid, t.tid))));
            if let Some(Some(first)) = keys.next()
                && keys.all(|k| k == Some(first))
            {
                all_on_one_futex.insert(p.pid, first.clone());
            }
        }
        let mut g = Graph {
            procs: by_pid,
            edges: BTreeMap::new(),
            gone: BTreeMap::new(),
            gone_maybe: BTreeSet::new(),
            futex_waiters,
            all_on_one_futex,
            cannot_run: facts.cannot_run.clone(),
        };
        for p in procs {
            for (t, w) in p.blocked_threads() {
                let key = (p.pid, t.tid);
                let mut edges = Vec::new();
                g.wait_edges(p, t.tid, w, facts, &mut edges);
                g.edges.insert(key, edges);
            }
        }
        g
    }

    fn wait_edges(
        &mut self,
        p: &Process,
        tid: i32,
        w: &Wait,
        facts: &Facts,
        edges: &mut Vec<Edge>,
    ) {
        self.releasers(p, tid, w, facts, edges);
        // A FUSE request has no timeout, whatever the syscall's own arguments say.
        if !w.decoded.infinite && !facts.fuse_waits.contains_key(&(p.pid, tid)) {
            edges.push(Edge { target: Target::Outside, why: "its own timeout".into() });
        }
    }

    /// The edges to whoever could release the wait (before any timeout).
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per wait kind; issue 10's typed WaitOn splits it per kind"
    )]
    fn releasers(&mut self, p: &Process, tid: i32, w: &Wait, facts: &Facts, edges: &mut Vec<Edge>) {
        if file_edges::fuse_edges(p.pid, tid, facts, edges) {
            return;
        }
        if let WaitOn::Child(child) = &w.decoded.wait_on {
            match child_releasers(w.decoded.call, child) {
                ChildReleasers::One(c) => {
                    if self.procs.contains_key(&c) {
                        edges.push(Edge { target: Target::Process(c), why: format!("child {c}") });
                    } else if facts.absent_tasks.contains(&(c, c)) {
                        self.gone.insert((p.pid, tid), format!("child {c}, which is not running"));
                    }
                }
                ChildReleasers::All => {
                    let kids: Vec<i32> =
                        self.procs.values().filter(|c| c.ppid == p.pid).map(|c| c.pid).collect();
                    for c in kids {
                        edges.push(Edge { target: Target::Process(c), why: format!("child {c}") });
                    }
                }
                ChildReleasers::NotFollowed => {}
            }
            return;
        }
        if let WaitOn::Futex(futex) = &w.decoded.wait_on {
            let live = |t: i32| p.threads.iter().any(|x| x.tid == t && x.state != 'Z');
            let owner_pi = futex.owner_tid.and_then(|o| i32::try_from(o).ok());
            if let Some(o) = owner_pi.filter(|o| *o > 0) {
                if live(o) {
                    edges.push(Edge {
                        target: Target::Thread(p.pid, o),
                        why: format!("PI lock owned by thread {o}"),
                    });
                } else {
                    self.gone.insert(
                        (p.pid, tid),
                        format!("a PI lock whose owner thread {o} has exited"),
                    );
                }
                return;
            }
            if let Some(&(word, owner)) = facts.futex_words.get(&tid) {
                let word_tid = (word & 0x3fff_ffff) as i32;
                if word_tid > 0 && word_tid != tid && live(word_tid) && futex.val == word {
                    edges.push(Edge {
                        target: Target::Thread(p.pid, word_tid),
                        why: format!("joins thread {word_tid}"),
                    });
                } else if let Some(o) =
                    owner.map(|o| o as i32).filter(|o| *o > 0 && (word == 1 || word == 2))
                {
                    if o == tid {
                        edges.push(Edge {
                            target: Target::Thread(p.pid, tid),
                            why: "a mutex it already holds itself".into(),
                        });
                    } else if live(o) {
                        edges.push(Edge {
                            target: Target::Thread(p.pid, o),
                            why: format!("mutex owned by thread {o}"),
                        });
                    } else if word == 2
                        && futex.val == 2
                        && facts.absent_tasks.contains(&(p.pid, o))
                        // Only a process-private lock: a process-shared mutex (an accept
                        // mutex in shared memory) is legitimately owned by another process's
                        // thread, and its waiters are followed by `futex_releasers`.
                        && matches!(
                            facts.futex_key.get(&(p.pid, tid)),
                            Some(FutexKey::Private { .. })
                        )
                    {
                        // Looked up in the waiter's own process: a tid of another process
                        // (the parent's thread that held it when this process forked) cannot
                        // unlock this copy.
                        let why = match facts.tid_tgid.get(&o) {
                            Some(&g) if g != p.pid => format!(
                                "a mutex locked by thread {o} of pid {g}, not a thread of this process: a lock copied at fork() that nobody here will unlock"
                            ),
                            _ => format!("a mutex whose owner thread {o} has exited"),
                        };
                        self.gone.insert((p.pid, tid), why);
                    }
                }
            }
            if edges.is_empty() && !self.gone.contains_key(&(p.pid, tid)) {
                self.futex_releasers(p, tid, facts, edges);
            }
            if edges.is_empty()
                && w.decoded.infinite
                && !self.gone.contains_key(&(p.pid, tid))
                && let Some(FutexKey::Private { addr, .. }) = facts.futex_key.get(&(p.pid, tid))
                && p.threads.iter().filter(|t| t.state != 'Z').count() == 1
                && !rules::signal_may_wake(facts, p.pid)
            {
                // A fork child (its parent runs the same command line: fork() without exec)
                // holds copies of its parent's locks, and one its parent's other thread held at
                // the fork is never unlocked here. A process that exec'd has only locks of its
                // own making, and a lone thread parked on one (`threading.Event().wait()` as a
                // keep-alive, a sleep-forever) is as likely on purpose as a thread that exited
                // without posting: said, at low severity.
                let forked = self.procs.get(&p.ppid).is_some_and(|pp| {
                    pp.pid != p.pid && pp.cmdline == p.cmdline && pp.comm == p.comm
                });
                let why = if forked {
                    format!(
                        "a process-private futex {addr:#x} in a single-threaded fork child of pid {} (same command line: forked without exec) that catches no signal that could end it: no thread is left to wake it (a lock or condition copied at fork()?)",
                        p.ppid
                    )
                } else {
                    self.gone_maybe.insert((p.pid, tid));
                    format!(
                        "a process-private futex {addr:#x} in a single-threaded process that catches no signal that could end it: only a kill ends this wait. On purpose if it parks to stay alive (`threading.Event().wait()`, a sleep-forever); a bug if a thread exited without waking it"
                    )
                };
                self.gone.insert((p.pid, tid), why);
            }
            return;
        }
        if file_edges::lock_edges(p.pid, w, facts, edges) {
            return;
        }
        let mut outside = Vec::new();
        if let Some(why) = unread_fds(w, facts, p.pid) {
            outside.push(Edge { target: Target::Outside, why });
        }
        for fd in all_fds(w, facts, p.pid) {
            let Some(&(ino, kind)) = facts.fd_inode.get(&(p.pid, fd)) else {
                let why = format!("fd {fd} (not a pipe or socket hangwatch can follow)");
                outside.push(Edge { target: Target::Outside, why });
                continue;
            };
            if kind == FdKind::Socket {
                outside.extend(socket_edge(p.pid, ino, facts, edges));
                continue;
            }
            let (reads, writes) = direction_reads(w, fd, facts, p.pid);
            let holders = facts.holders.get(&ino).map(|v| v.as_slice()).unwrap_or(&[]);
            let mut other_ends: BTreeSet<i32> = BTreeSet::new();
            for h in holders {
                if ((reads && h.mode.can_write()) || (writes && h.mode.can_read()))
                    && !(h.pid == p.pid && h.fd == fd)
                {
                    other_ends.insert(h.pid);
                }
            }
            let what = if reads { "writer" } else { "reader" };
            let pipe = facts
                .fifo_names
                .get(&ino)
                .map_or_else(|| format!("pipe:[{ino}]"), |path| format!("fifo {path}"));
            if other_ends.is_empty() && !facts.fd_tables_cut.is_empty() {
                let why = format!(
                    "{pipe} (its {what} may be among the fds hangwatch did not read: {} fd \
                     tables were cut)",
                    facts.fd_tables_cut.len()
                );
                outside.push(Edge { target: Target::Outside, why });
            }
            for o in &other_ends {
                let why = if *o == p.pid {
                    format!("{pipe} whose other end it holds itself")
                } else if other_ends.len() == 1 {
                    format!("{pipe} whose only {what} is pid {o}")
                } else {
                    format!("{pipe}, {what} pid {o}")
                };
                edges.push(Edge { target: Target::Process(*o), why });
            }
        }
        // Known releasers first: chains follow the first edge.
        edges.extend(outside);
    }

    /// A futex wait whose word names no owner (a condition variable, a semaphore, a
    /// barrier ...): a private futex can be woken by any other thread of its process; a
    /// process-shared one by any thread of any process that maps the same object, except
    /// processes whose every thread waits on that very futex. If no such process is left, the
    /// wait is orphaned: whoever would have posted it is gone.
    fn futex_releasers(&mut self, p: &Process, tid: i32, facts: &Facts, edges: &mut Vec<Edge>) {
        let Some(key) = facts.futex_key.get(&(p.pid, tid)) else { return };
        let also = match self.futex_waiters.get(key).copied().unwrap_or(0) {
            0 | 1 => String::new(),
            2 => ", 1 other thread waits on it".to_string(),
            n => format!(", {} other threads wait on it", n - 1),
        };
        match key {
            FutexKey::Private { addr, .. } => {
                if p.threads.len() > 1 {
                    edges.push(Edge {
                        target: Target::Process(p.pid),
                        why: format!(
                            "futex {addr:#x} (private) that another thread of pid {} could wake{also}",
                            p.pid
                        ),
                    });
                }
            }
            FutexKey::Shared { dev, inode, offset } => {
                let obj = (dev.clone(), *inode);
                let path = facts.object_paths.get(&obj).map_or("?", String::as_str);
                let all_waiting = |q: i32| self.all_on_one_futex.get(&q) == Some(key);
                let mappers = facts.object_mappers.get(&obj).cloned().unwrap_or_default();
                let releasers: Vec<i32> =
                    mappers.into_iter().filter(|q| !all_waiting(*q)).collect();
                if releasers.is_empty() {
                    self.gone.insert(
                        (p.pid, tid),
                        format!(
                            "a process-shared futex at {path}+{offset:#x} that no other live process maps: whoever would wake it is gone{also}"
                        ),
                    );
                }
                for q in releasers {
                    let why = if q == p.pid {
                        format!(
                            "shared futex at {path}+{offset:#x} that another of its threads could wake{also}"
                        )
                    } else {
                        format!("shared futex at {path}+{offset:#x} that pid {q} also maps{also}")
                    };
                    edges.push(Edge { target: Target::Process(q), why });
                }
            }
        }
    }

    /// The blocked threads an edge leads to. A process with a running thread is making
    /// progress: no edge through it.
    ///
    /// At most `limit` of those that pass `keep`: a process target may have 10,000 blocked
    /// threads, and a walk needs only a few.
    fn next(&self, from: Tkey, e: &Edge, keep: impl Fn(&Tkey) -> bool, limit: usize) -> Vec<Tkey> {
        match e.target {
            Target::Thread(pid, tid) => {
                let blocked = self.procs.get(&pid).and_then(|p| wait_of(p, tid)).is_some();
                if blocked && keep(&(pid, tid)) { vec![(pid, tid)] } else { vec![] }
            }
            Target::Outside => vec![],
            Target::Process(pid) => {
                let Some(p) = self.procs.get(&pid) else { return vec![] };
                if p.threads.iter().any(|t| t.state == 'R') {
                    return vec![];
                }
                p.blocked_threads()
                    .map(|(t, _)| (pid, t.tid))
                    .filter(|k| (*k != from || p.threads.len() == 1) && keep(k))
                    .take(limit)
                    .collect()
            }
        }
    }

    /// The last step of a chain whose edge leads to a process that cannot run: that process,
    /// and why.
    fn cannot_run_step(&self, from: Tkey, e: &Edge) -> Option<Step> {
        let pid = match e.target {
            Target::Thread(pid, _) | Target::Process(pid) if pid != from.0 => pid,
            _ => return None,
        };
        let why = self.cannot_run.get(&pid)?;
        let p = self.procs.get(&pid)?;
        Some(Step {
            pid,
            tid: pid,
            comm: p.comm.clone(),
            syscall: wait_of(p, pid).map(|w| w.decoded.syscall.clone()).unwrap_or_default(),
            waits_on: why.clone(),
            frame: None,
        })
    }

    fn step(&self, k: Tkey, why: &str) -> Step {
        let p = self.procs[&k.0];
        Step {
            pid: k.0,
            tid: k.1,
            comm: comm_of(p, k.1),
            syscall: wait_of(p, k.1).map(|w| w.decoded.syscall.clone()).unwrap_or_default(),
            waits_on: why.to_string(),
            frame: None,
        }
    }

    /// Threads that cannot make progress: blocked, and every alternative that could release
    /// them (any writer of a pipe, any child for `wait4(-1)`, any thread of a process) is
    /// itself stuck. A wait with no known releaser (a socket whose peer is unknown) or with a
    /// running one is not stuck. This is the OR model of wait-for graphs: a cycle alone is not
    /// a deadlock when some member can still be released from outside it.
    ///
    /// A process target is free when any of its live threads is not stuck: running, sleeping
    /// for less than `--min-blocked` (active), or in a wait that can end otherwise. Counted
    /// per process once per round, so 10,000 threads waiting on one another cost 10,000 steps
    /// a round, not 10,000².
    fn stuck(&self) -> BTreeSet<Tkey> {
        self.stuck_given(&BTreeSet::new())
    }

    /// [`Self::stuck`], with the `seeds` held stuck whatever they wait on: the threads that
    /// cannot make progress if the seeds never do (the waiters of a root cause).
    pub(crate) fn stuck_given(&self, seeds: &BTreeSet<Tkey>) -> BTreeSet<Tkey> {
        let mut stuck: BTreeSet<Tkey> =
            self.edges.iter().filter(|(_, e)| !e.is_empty()).map(|(k, _)| *k).collect();
        stuck.extend(seeds.iter().copied());
        loop {
            // Per process: live threads that are not stuck.
            let mut not_stuck: HashMap<i32, usize> = HashMap::with_capacity(self.procs.len());
            for (&pid, p) in &self.procs {
                let n = p
                    .threads
                    .iter()
                    .filter(|t| t.state != 'Z' && !stuck.contains(&(pid, t.tid)))
                    .count();
                not_stuck.insert(pid, n);
            }
            let live = |pid: i32| {
                self.procs.get(&pid).is_some_and(|p| p.threads.iter().any(|t| t.state != 'Z'))
            };
            let mut freed = Vec::new();
            for &k in &stuck {
                if seeds.contains(&k) {
                    continue;
                }
                let Some(edges) = self.edges.get(&k) else {
                    freed.push(k);
                    continue;
                };
                let free = edges.iter().any(|e| match e.target {
                    Target::Outside => true,
                    Target::Thread(pid, tid) => !stuck.contains(&(pid, tid)),
                    // Gone (or only zombies left): not a releaser we can wait on; the wait
                    // ends or is orphaned, either way not a cycle.
                    Target::Process(pid) => !live(pid) || not_stuck[&pid] > 0,
                });
                if free {
                    freed.push(k);
                }
            }
            if freed.is_empty() {
                return stuck;
            }
            for k in freed {
                stuck.remove(&k);
            }
        }
    }

    /// One cycle per group of stuck threads, found by DFS inside the stuck set.
    fn cycles(&self) -> Vec<Vec<(Tkey, String)>> {
        let stuck = self.stuck();
        let mut found: Vec<Vec<(Tkey, String)>> = Vec::new();
        let mut covered: BTreeSet<Tkey> = BTreeSet::new();
        // Bounds the search on very large graphs (10,000s of blocked threads).
        let mut budget: usize = 200_000;
        for &start in &stuck {
            if covered.contains(&start) {
                continue;
            }
            let mut path: Vec<(Tkey, String)> = Vec::new();
            let mut stack: Vec<(Tkey, String, usize)> = vec![(start, String::new(), 0)];
            let mut visited: BTreeSet<Tkey> = BTreeSet::new();
            'search: while let Some((node, why, depth)) = stack.pop() {
                if budget == 0 {
                    return found;
                }
                budget -= 1;
                path.truncate(depth);
                path.push((node, why));
                if !visited.insert(node) || depth > 64 {
                    continue;
                }
                for e in self.edges.get(&node).map(|v| v.as_slice()).unwrap_or(&[]) {
                    // A few stuck threads of a target are enough to find a way round.
                    for nxt in self.next(node, e, |n| stuck.contains(n), 16) {
                        if let Some(pos) = path.iter().position(|(k, _)| *k == nxt) {
                            // Close the cycle; each step states what *it* waits on.
                            let mut cyc: Vec<(Tkey, String)> = path[pos..].to_vec();
                            let mut whys: Vec<String> =
                                cyc.iter().skip(1).map(|(_, w)| w.clone()).collect();
                            whys.push(e.why.clone());
                            for (c, w) in cyc.iter_mut().zip(whys) {
                                c.1 = w;
                            }
                            // The rest of the stuck threads of these processes belong to
                            // the same deadlock.
                            let pids: BTreeSet<i32> = cyc.iter().map(|(k, _)| k.0).collect();
                            covered.extend(stuck.iter().filter(|k| pids.contains(&k.0)));
                            found.push(cyc);
                            break 'search;
                        }
                        stack.push((nxt, e.why.clone(), depth + 1));
                    }
                }
            }
            // Stuck threads that only wait on this cycle are part of the same deadlock.
            covered.insert(start);
        }
        found
    }

    /// The chain from a thread following the first edge each time, until it ends or loops.
    fn chain_from(&self, start: Tkey) -> Vec<Step> {
        let mut out = Vec::new();
        let mut cur = start;
        let mut seen = BTreeSet::new();
        while seen.insert(cur) && out.len() < 16 {
            let edges = self.edges.get(&cur).map(|v| v.as_slice()).unwrap_or(&[]);
            // Of several ways out, the parent last: a supervisor's pipe that only tells its
            // children it died (PostgreSQL's postmaster) is watched beside the real wait.
            let parent = self.procs.get(&cur.0).map(|p| p.ppid);
            let Some(e) = edges
                .iter()
                .find(|e| !matches!(e.target, Target::Thread(q, _) | Target::Process(q) if Some(q) == parent))
                .or(edges.first())
            else {
                let why = self.gone.get(&cur).cloned().unwrap_or_else(|| {
                    let p = self.procs[&cur.0];
                    wait_of(p, cur.1).map_or_else(String::new, |w| {
                        format!("{} (no releaser hangwatch can see)", w.decoded.human)
                    })
                });
                out.push(self.step(cur, &why));
                break;
            };
            out.push(self.step(cur, &e.why));
            if let Some(step) = self.cannot_run_step(cur, e) {
                out.push(step);
                break;
            }
            match self.next(cur, e, |_| true, 1).first() {
                Some(n) => cur = *n,
                None => break,
            }
        }
        out
    }
}

fn step_sentence(s: &Step) -> String {
    format!("pid {} ({}) tid {} waits in {} on {}", s.pid, s.comm, s.tid, s.syscall, s.waits_on)
}

/// Most victims named by a grouped `oom_kill` finding.
const OOM_NAMED: usize = 8;

/// How long a wait whose releaser is gone must have lasted to be an orphaned wait.
pub const ORPHAN_MIN_NS: u64 = 5_000_000_000;

/// CPU a process must have used in its life before it can be called hung (an interpreter
/// starting up uses about 0.05 s).
pub const HUNG_MIN_CPU_SECS: f64 = 0.2;

/// Which children can end a `wait4` / `waitid`.
enum ChildReleasers {
    One(i32),
    All,
    NotFollowed,
}

/// The children that can end a wait for `child` in `call`: one child by pid; any child for
/// `wait4(-1)`, `waitid(P_ALL)`, and also for `waitid` on a process group, a pidfd or an
/// unknown id type (whose child hangwatch does not resolve); none followed for `wait4` on a
/// process group (nor a pid that is not positive, which the kernel rejects).
fn child_releasers(call: Syscall, child: &ChildWait) -> ChildReleasers {
    match child {
        ChildWait::Pid(c) if *c > 0 => ChildReleasers::One(*c),
        ChildWait::Pid(_) => ChildReleasers::NotFollowed,
        ChildWait::Group(_) if call == Syscall::Wait4 => ChildReleasers::NotFollowed,
        ChildWait::Any | ChildWait::Group(_) | ChildWait::Pidfd(_) | ChildWait::Unknown => {
            ChildReleasers::All
        }
    }
}

/// Whether the chain from a process ends in a read of a terminal or of standard input: an
/// interactive program (or a shell feeding one) waiting for its user, not stuck.
fn waits_for_input(g: &Graph, p: &Process) -> bool {
    let Some((t, _)) = p.longest_wait() else { return false };
    let chain = g.chain_from((p.pid, t.tid));
    chain.last().is_some_and(|s| {
        let Some(w) = g.procs.get(&s.pid).and_then(|q| wait_of(q, s.tid)) else { return false };
        let target = w.decoded.wait_on.fd_target().unwrap_or("");
        let fd0 = w.decoded.fds.first() == Some(&0);
        w.decoded.call.reads_or_polls()
            && (fd0 || target.starts_with("/dev/pts/") || target.starts_with("/dev/tty"))
    })
}

/// Whether a process waits on a listening socket (a server waiting for connections).
fn serves(p: &Process, facts: &Facts) -> bool {
    p.blocked_threads().any(|(_, w)| {
        all_fds(w, facts, p.pid).iter().any(|fd| {
            facts.fd_inode.get(&(p.pid, *fd)).is_some_and(|(ino, _)| facts.listening.contains(ino))
        })
    })
}

/// Names the frames findings wait in, where stacks were read: each chain step's, and the
/// first thread's at the end of the summary.
pub fn annotate_findings(findings: &mut [Finding], procs: &[Process]) {
    for f in findings {
        for s in &mut f.chain {
            s.frame = frame_of_tid(procs, s.tid);
        }
        let tid = f.chain.first().map(|s| s.tid).or(f.tids.first().copied());
        if let Some(frame) = tid.and_then(|t| frame_of_tid(procs, t)) {
            f.summary = format!("{} (tid {} waits {frame})", f.summary, tid.unwrap_or(0));
        }
    }
}

/// The frame a thread waits in, for a chain step.
fn frame_of_tid(procs: &[Process], tid: i32) -> Option<String> {
    procs
        .iter()
        .flat_map(|p| p.threads.iter())
        .find(|t| t.tid == tid)
        .and_then(|t| t.stack.as_ref()?.user_frame())
}

/// The processes that the blocked threads of `seeds` wait on, directly or through others, at
/// most `max` of them (not the seeds): whose stacks the verdicts on the seeds may need.
pub fn reached_from(
    procs: &[Process],
    facts: &Facts,
    seeds: &HashSet<i32>,
    max: usize,
) -> HashSet<i32> {
    let g = Graph::build(procs, facts);
    let mut out = HashSet::new();
    let mut todo: Vec<Tkey> = procs
        .iter()
        .filter(|p| seeds.contains(&p.pid))
        .flat_map(|p| p.blocked_threads().take(64).map(move |(t, _)| (p.pid, t.tid)))
        .collect();
    while let Some(k) = todo.pop() {
        for e in g.edges.get(&k).map(|v| v.as_slice()).unwrap_or(&[]) {
            let q = match e.target {
                Target::Thread(q, _) | Target::Process(q) => q,
                Target::Outside => continue,
            };
            if seeds.contains(&q) || out.len() >= max || !out.insert(q) {
                continue;
            }
            if let Some(p) = g.procs.get(&q) {
                todo.extend(p.blocked_threads().take(16).map(|(t, _)| (q, t.tid)));
            }
        }
    }
    out
}

#[allow(
    clippy::too_many_lines,
    reason = "six rules in sequence; issue 10 moves each to its own file"
)]
pub fn analyze(procs: &[Process], facts: &Facts, cfg: &Config) -> Vec<Finding> {
    let g = Graph::build(procs, facts);
    let mut out = Vec::new();
    let mut explained: BTreeSet<i32> = BTreeSet::new();

    // Orphaned waits: a releaser that is gone, for a few seconds at least (a lock whose owner
    // is exiting, a child being reaped, are gone for an instant in a healthy program).
    let orphan_min_ns = cfg.hung_after_ns.min(ORPHAN_MIN_NS);
    for (&(pid, tid), why) in &g.gone {
        let p = g.procs[&pid];
        let Some(w) = wait_of(p, tid) else { continue };
        if w.duration_ns < orphan_min_ns {
            continue;
        }
        explained.insert(pid);
        out.push(Finding {
            kind: FindingKind::OrphanedWait,
            severity: if g.gone_maybe.contains(&(pid, tid)) {
                Severity::Low
            } else {
                Severity::High
            },
            pids: vec![pid],
            tids: vec![tid],
            summary: format!(
                "pid {pid} ({}) has waited {} in {} for {why}",
                p.comm,
                fmt_duration_ns(w.duration_ns),
                w.decoded.syscall
            ),
            since_mono_ns: Some(w.since_mono_ns),
            chain: vec![g.step((pid, tid), why)],
            key: format!("orphaned_wait:{pid}:{tid}"),
        });
    }
    // ... and waits that began before a related process was OOM-killed and never ended.
    // Related through the process tree (docs/findings.md): the victim's parent, else the top
    // of its memory cgroup's tree; never a sibling worker.
    let mut oom_waiters: Vec<(usize, i32)> = Vec::new();
    for k in &facts.oom_kills {
        for pp in rules::oom_parents(procs, k) {
            let Some(p) = g.procs.get(&pp).copied() else { continue };
            // A shell or init that waits on its one live child waits on that child, not on
            // the victim: the child is the one to check (a container's `sh -c app` entrypoint).
            let p = rules::through_waiting_parents(&g.procs, p, k.pid);
            if explained.contains(&p.pid) || p.pid == k.pid || serves(p, facts) {
                continue;
            }
            let Some((t, w)) = p
                .blocked_threads()
                .filter(|(_, w)| w.decoded.infinite && w.since_mono_ns <= k.time_mono_ns)
                .max_by_key(|(t, w)| (t.tid == p.pid, w.duration_ns))
            else {
                continue;
            };
            if waits_for_input(&g, p) {
                continue;
            }
            explained.insert(p.pid);
            oom_waiters.push((out.len(), p.pid));
            let limit = k
                .memory_limit_bytes
                .map(|l| format!(", limit {}", fmt_bytes(l)))
                .unwrap_or_default();
            let memcg = k
                .cgroup
                .as_deref()
                .map(|c| format!("memcg {c}"))
                .unwrap_or_else(|| "memcg unknown".into());
            let waits_on = format!(
                "pid {} ({}), OOM-killed {} ago ({memcg}{limit})",
                k.pid,
                k.comm,
                fmt_duration_ns(cfg.now_mono_ns.saturating_sub(k.time_mono_ns))
            );
            out.push(Finding {
                kind: FindingKind::OrphanedWait,
                severity: Severity::High,
                pids: vec![p.pid, k.pid],
                tids: vec![t.tid],
                summary: format!(
                    "pid {} ({}) has waited {} in {} since its worker pid {} ({}) was OOM-killed ({memcg}{limit})",
                    p.pid,
                    p.comm,
                    fmt_duration_ns(cfg.now_mono_ns.saturating_sub(k.time_mono_ns)),
                    w.decoded.human,
                    k.pid,
                    k.comm
                ),
                since_mono_ns: Some(k.time_mono_ns),
                chain: vec![g.step((p.pid, t.tid), &waits_on)],
                key: format!("orphaned_wait:{}:{}", p.pid, k.pid),
            });
        }
    }

    // Deadlocks: wait-for cycles.
    for cyc in g.cycles() {
        let steps: Vec<Step> = cyc.iter().map(|(k, why)| g.step(*k, why)).collect();
        let mut pids: Vec<i32> = steps.iter().map(|s| s.pid).collect();
        pids.dedup();
        let mut uniq = pids.clone();
        uniq.sort();
        uniq.dedup();
        if uniq.iter().all(|p| explained.contains(p)) {
            continue;
        }
        // The stacks may say what the futex words cannot: every thread acquires a lock (or
        // joins a thread of the cycle), each wait older than an instant of contention.
        let lock_sites = rules::lock_cycle_sites(&g, &cyc, cfg.hung_after_ns.min(ORPHAN_MIN_NS));
        let severity =
            if lock_sites.is_some() { Severity::Critical } else { rules::cycle_severity(&g, &cyc) };
        // Only futex waits with no owner, in processes a signal handler may wake: idle.
        if severity == Severity::Low && uniq.iter().all(|p| rules::signal_may_wake(facts, *p)) {
            continue;
        }
        // A cycle among the processes an OOM kill left waiting (the waiter and what it
        // forked) exists because a task was lost with the victim: it folds into that one
        // orphaned wait, which takes its rank.
        if let Some(&(i, w)) = oom_waiters
            .iter()
            .find(|(_, w)| uniq.iter().any(|p| rules::descends_from(&g.procs, *p, *w)))
        {
            let f: &mut Finding = &mut out[i];
            f.severity = f.severity.max(severity);
            // Named: the waiter's own processes in the cycle (not an unrelated reader of
            // their output).
            let ours: Vec<i32> =
                uniq.iter().copied().filter(|p| rules::descends_from(&g.procs, *p, w)).collect();
            if !f.summary.contains("wait-for cycle") {
                f.summary.push_str(&format!(
                    "; it explains the wait-for cycle among pid {}",
                    ours.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            let extra: Vec<i32> = ours.into_iter().filter(|p| !f.pids.contains(p)).collect();
            f.pids.extend(extra);
            explained.extend(uniq.iter().copied());
            continue;
        }
        explained.extend(uniq.iter().copied());
        let since = cyc
            .iter()
            .filter_map(|(k, _)| wait_of(g.procs[&k.0], k.1).map(|w| w.since_mono_ns))
            .max();
        let sentences: Vec<String> = steps.iter().map(step_sentence).collect();
        let mut tids: Vec<i32> = steps.iter().map(|s| s.tid).collect();
        tids.sort();
        let lead = match (&lock_sites, severity) {
            (Some(at), _) => format!(
                "deadlock (by their stacks, every thread acquires a lock another holds or joins one that does: {})",
                at.join(", ")
            ),
            (None, Severity::Low) => "every thread waits, nothing visible can wake them (futex waits with no owner: no evidence of who holds what)".to_string(),
            (None, _) => "deadlock".to_string(),
        };
        out.push(Finding {
            kind: FindingKind::Deadlock,
            severity,
            summary: format!("{lead}: {}", sentences.join("; ")),
            key: format!(
                "deadlock:{}",
                tids.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
            ),
            pids: uniq,
            tids,
            since_mono_ns: since,
            chain: steps,
        });
    }

    // Hung: the main thread waits forever for a reply nothing visible will send, after the
    // process did something; its other threads at most tick on timers; next to no CPU.
    for p in procs {
        if explained.contains(&p.pid) || p.cpu_percent >= rules::HUNG_MAX_CPU_PERCENT {
            continue;
        }
        let Some(main) = p.threads.iter().find(|t| t.tid == p.pid).and_then(|t| t.blocked.as_ref())
        else {
            continue;
        };
        if !main.decoded.infinite || main.duration_ns < cfg.hung_after_ns {
            continue;
        }
        // Its wait leads to a process waiting for a lock (a PostgreSQL session behind a table
        // lock): hung, even when it had no time to do anything first (a client that connected
        // and sent one query).
        let behind_lock = rules::waits_on_lock_holder(&g, facts, p);
        if behind_lock.is_none() && !rules::did_work_first(p, cfg.now_mono_ns) {
            continue;
        }
        if rules::idle_reason(&g, facts, p).is_some() {
            continue;
        }
        let quiet_since = p.blocked_threads().map(|(_, w)| w.since_mono_ns).max();
        let others = p.threads.iter().filter(|t| t.tid != p.pid && t.state != 'Z').count();
        let ticking = p
            .threads
            .iter()
            .filter(|t| t.tid != p.pid && t.state != 'Z')
            .filter(|t| t.blocked.as_ref().is_none_or(|w| !w.decoded.infinite))
            .map(|t| t.tid.to_string())
            .collect::<Vec<_>>();
        let who = match (others, ticking.len()) {
            (0, _) => "its only thread".to_string(),
            (n, 0) => format!("main thread (all {} threads blocked)", n + 1),
            (n, t) => format!(
                "main thread ({t} of its {n} other threads only wake on timers: tid {})",
                ticking.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        let mut pids = vec![p.pid];
        let mut behind = String::new();
        let mut chain = g.chain_from((p.pid, p.pid));
        if let Some(b) = &behind_lock {
            pids.push(b.pid);
            for &h in &b.holders {
                if !pids.contains(&h) {
                    pids.push(h);
                }
            }
            behind = format!("; it waits on {}", b.sentence(&g));
            // The chain ends at the lock, then goes on from the one session that may hold it
            // (what that session waits for: usually its own client).
            if let Some(i) = chain.iter().position(|s| s.pid == b.pid) {
                chain.truncate(i);
            }
            chain.push(g.step((b.pid, b.tid), &format!("{}{}", b.what, b.hint())));
            if let [h] = b.holders[..] {
                chain.extend(g.chain_from((h, h)).into_iter().take(4));
            }
        }
        out.push(Finding {
            kind: FindingKind::Hung,
            severity: Severity::High,
            pids,
            tids: p.blocked_threads().filter(|(_, w)| w.decoded.infinite).map(|(t, _)| t.tid).collect(),
            summary: format!(
                "pid {} ({}) is hung: {who} in {} for {}, {:.1}% CPU over the window (it had used {:.1}s){behind}",
                p.pid,
                p.comm,
                main.decoded.human,
                fmt_duration_ns(main.duration_ns),
                p.cpu_percent,
                p.cpu_total_secs
            ),
            since_mono_ns: quiet_since,
            chain,
            key: format!("hung:{}", p.pid),
        });
        // The known libzmq shutdown hang, by the main thread's stack.
        if let Some(at) = p
            .threads
            .iter()
            .find(|t| t.tid == p.pid)
            .and_then(|t| t.stack.as_deref())
            .and_then(crate::stacks::evidence::zmq_term)
            && let Some(f) = out.last_mut()
        {
            f.summary.push_str(&format!(
                "; it is terminating a libzmq context ({at}), which returns only when every socket of the context is closed: a socket left open, or one with unsent messages and LINGER -1, holds it forever"
            ));
        }
    }

    // Consequences under their root cause.
    rules::group_consequences(&g, &mut out);

    // Stuck in the kernel: a thread in uninterruptible sleep (`D`) for --hung-after or longer,
    // in any thread (a reader of a dead NFS mount, a FUSE request nobody answers). No signal
    // ends it and no healthy program sleeps in `D` that long; what it waits on is the kernel's
    // (storage, a network filesystem, a FUSE server). Not for a frozen cgroup (its tasks sleep
    // in the freezer, on purpose) nor for a process a finding already names.
    for p in procs {
        if out.iter().any(|f| f.pids.contains(&p.pid)) {
            continue;
        }
        let Some((t, w)) = p
            .blocked_threads()
            .filter(|(t, w)| {
                t.state == 'D'
                    && w.duration_ns >= cfg.hung_after_ns
                    && !w.wchan.as_deref().is_some_and(rules::freezer_wchan)
            })
            .max_by_key(|(_, w)| w.duration_ns)
        else {
            continue;
        };
        let wchan = w.wchan.as_deref().filter(|c| !c.is_empty() && *c != "0").unwrap_or("?");
        let what = if w.decoded.call.creates_a_process()
            || matches!(wchan, "wait_for_vfork_done" | "kernel_clone")
        {
            "it waits for its vfork() child to exec or exit, and only SIGKILL ends that"
        } else {
            "the kernel waits on storage, a network filesystem or a FUSE server, and no signal but SIGKILL (if that) ends it"
        };
        out.push(Finding {
            kind: FindingKind::Hung,
            severity: Severity::High,
            pids: vec![p.pid],
            tids: vec![t.tid],
            summary: format!(
                "pid {} ({}) tid {} has been in uninterruptible sleep (state D) for {} in {} (kernel: {wchan}): {what}",
                p.pid,
                p.comm,
                t.tid,
                fmt_duration_ns(w.duration_ns),
                w.decoded.human
            ),
            since_mono_ns: Some(w.since_mono_ns),
            chain: g.chain_from((p.pid, t.tid)),
            key: format!("hung:{}:D:{}", p.pid, t.tid),
        });
    }

    // OOM kills, with what they left waiting. Kills that left nobody waiting are one finding
    // per memory cgroup when there are several: a crash-looping container or a storm is one
    // thing to look at, not a screenful.
    let recent: Vec<&OomFact> = facts
        .oom_kills
        .iter()
        .filter(|k| cfg.now_mono_ns.saturating_sub(k.time_mono_ns) <= cfg.oom_recent_ns)
        .collect();
    let waiting_on = |k: &OomFact| -> Vec<i32> {
        out.iter()
            .filter(|f| f.kind == FindingKind::OrphanedWait && f.pids.contains(&k.pid))
            .map(|f| f.pids[0])
            .collect()
    };
    let mut kills: Vec<(&OomFact, Vec<i32>)> = recent.iter().map(|k| (*k, waiting_on(k))).collect();
    let mut alone: BTreeMap<Option<&str>, Vec<&OomFact>> = BTreeMap::new();
    for (k, w) in &kills {
        if w.is_empty() {
            alone.entry(k.cgroup.as_deref()).or_default().push(k);
        }
    }
    alone.retain(|_, v| v.len() > 1);
    kills.retain(|(k, w)| !w.is_empty() || !alone.contains_key(&k.cgroup.as_deref()));
    let ago = |t: u64| fmt_duration_ns(cfg.now_mono_ns.saturating_sub(t));
    let limit_of = |k: &OomFact| {
        k.memory_limit_bytes.map(|l| format!(", limit {}", fmt_bytes(l))).unwrap_or_default()
    };
    for (k, waiting) in kills {
        let mut pids = vec![k.pid];
        pids.extend(&waiting);
        out.push(Finding {
            kind: FindingKind::OomKill,
            severity: if waiting.is_empty() { Severity::Medium } else { Severity::High },
            summary: format!(
                "pid {} ({}) was OOM-killed {} ago in {}{}{}",
                k.pid,
                k.comm,
                ago(k.time_mono_ns),
                k.cgroup.as_deref().unwrap_or("an unknown cgroup"),
                limit_of(k),
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; it left pid {} waiting",
                        waiting.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
            pids,
            tids: vec![],
            since_mono_ns: Some(k.time_mono_ns),
            chain: vec![],
            key: format!("oom_kill:{}:{}", k.pid, k.time_mono_ns / 1_000_000_000),
        });
    }
    for (cgroup, mut ks) in alone {
        // Latest first.
        ks.sort_by_key(|k| std::cmp::Reverse(k.time_mono_ns));
        let first = ks.iter().map(|k| k.time_mono_ns).min().unwrap_or(0);
        let named: Vec<String> =
            ks.iter().take(OOM_NAMED).map(|k| format!("pid {} ({})", k.pid, k.comm)).collect();
        let more = ks.len().saturating_sub(OOM_NAMED);
        out.push(Finding {
            kind: FindingKind::OomKill,
            severity: Severity::Medium,
            summary: format!(
                "{} processes OOM-killed in {}{} over the last {}, none left anyone waiting: {}{}",
                ks.len(),
                cgroup.unwrap_or("an unknown cgroup"),
                limit_of(ks[0]),
                ago(first),
                named.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
            pids: ks.iter().take(OOM_NAMED).map(|k| k.pid).collect(),
            tids: vec![],
            since_mono_ns: Some(first),
            chain: vec![],
            key: format!("oom_kill:{}", cgroup.unwrap_or("?")),
        });
    }

    // Memory held and not given back, and memory that keeps growing.
    for p in procs {
        let Some(m) = &p.memory else { continue };
        if let Some(r) = &m.retained {
            // Low, never more: from outside, memory freed but kept by the allocator and a
            // live dataset that sits idle look the same (docs/memory.md).
            out.push(Finding {
                kind: FindingKind::MemoryNotReturned,
                severity: Severity::Low,
                pids: vec![p.pid],
                tids: vec![],
                summary: format!("pid {} ({}) {}", p.pid, p.comm, r.describe(m.peak_rss)),
                since_mono_ns: None,
                chain: vec![],
                key: format!("memory_not_returned:{}", p.pid),
            });
        }
        if let Some(rate) = m.growth_bytes_per_min {
            out.push(Finding {
                kind: FindingKind::MemoryGrowth,
                severity: Severity::Low,
                pids: vec![p.pid],
                tids: vec![],
                summary: format!(
                    "pid {} ({}) grows {}/min (RSS now {})",
                    p.pid,
                    p.comm,
                    fmt_bytes(rate.max(0.0) as u64),
                    fmt_bytes(m.rss)
                ),
                since_mono_ns: None,
                chain: vec![],
                key: format!("memory_growth:{}", p.pid),
            });
        }
    }

    // CPU quota smaller than the threads that want to run.
    for (cg, q) in &facts.cpu_quota {
        let runnable: usize = procs
            .iter()
            .filter(|p| facts.cpu_cgroup_of.get(&p.pid) == Some(cg))
            .map(|p| p.threads.iter().filter(|t| t.state == 'R').count())
            .sum();
        if (runnable as f64) > q.cores && q.nr_throttled > 0 {
            let pids: Vec<i32> = procs
                .iter()
                .filter(|p| facts.cpu_cgroup_of.get(&p.pid) == Some(cg))
                .map(|p| p.pid)
                .collect();
            out.push(Finding {
                kind: FindingKind::CpuThrottled,
                severity: Severity::Medium,
                summary: format!(
                    "cgroup {cg} has a CPU quota of {:.2} cores but {runnable} runnable threads; throttled {} times ({} in total)",
                    q.cores,
                    q.nr_throttled,
                    fmt_duration_ns(q.throttled_ns)
                ),
                pids,
                tids: vec![],
                since_mono_ns: None,
                chain: vec![],
                key: format!("cpu_throttled:{cg}"),
            });
        }
    }

    rules::rank(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::facts::{Holder, Mode};
    use crate::{
        model::fixtures::{process, wait},
        syscalls::testing,
    };

    /// A single-threaded process blocked in `syscall` on `fd` (an infinite wait unless
    /// `infinite` is false).
    fn on_fd(pid: i32, syscall: &str, fd: i32, infinite: bool) -> Process {
        let mut w = wait(syscall, 600.0, infinite);
        let d = Arc::make_mut(&mut w.decoded);
        testing::on_fd(d, fd, None);
        d.human = format!("{syscall}(fd {fd})");
        process(pid, 5.0, 900.0, vec![Some(w)])
    }

    fn cfg() -> Config {
        Config { now_mono_ns: 1_000_000_000_000, hung_after_ns: 30_000_000_000, oom_recent_ns: 0 }
    }

    fn hold(f: &mut Facts, ino: u64, pid: i32, fd: i32, mode: Mode) {
        f.holders.entry(ino).or_default().push(Holder { pid, fd, mode });
    }

    /// pid 10 reads pipe A whose only writer is 20; 20 writes pipe B whose only reader is 10.
    fn pipe_cycle() -> (Vec<Process>, Facts) {
        let procs = vec![on_fd(10, "read", 3, true), on_fd(20, "write", 4, true)];
        let mut f = Facts::default();
        f.fd_inode.insert((10, 3), (100, FdKind::Pipe));
        f.fd_inode.insert((20, 4), (200, FdKind::Pipe));
        hold(&mut f, 100, 10, 3, Mode::Read);
        hold(&mut f, 100, 20, 5, Mode::Write);
        hold(&mut f, 200, 20, 4, Mode::Write);
        hold(&mut f, 200, 10, 6, Mode::Read);
        (procs, f)
    }

    fn kinds(found: &[Finding]) -> Vec<&'static str> {
        found.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn pipe_cycle_is_a_deadlock_with_both_pipes_in_the_chain() {
        let (procs, f) = pipe_cycle();
        let found = analyze(&procs, &f, &cfg());
        let d: Vec<&Finding> = found.iter().filter(|f| f.kind == FindingKind::Deadlock).collect();
        assert_eq!(d.len(), 1, "{found:#?}");
        assert_eq!(d[0].pids.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from([10, 20]));
        let why: Vec<&str> = d[0].chain.iter().map(|s| s.waits_on.as_str()).collect();
        assert!(why.contains(&"pipe:[100] whose only writer is pid 20"), "{why:?}");
        assert!(why.contains(&"pipe:[200] whose only reader is pid 10"), "{why:?}");
    }

    #[test]
    fn a_poll_set_longer_than_was_read_breaks_the_cycle() {
        // 10 polls pipe A among more fds than the decoder read: any of those may wake it.
        let (mut procs, f) = pipe_cycle();
        procs[0] = on_fd(10, "poll", 3, true);
        assert!(kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"), "all fds read");
        let mut p = on_fd(10, "poll", 3, true);
        if let Some(w) = p.threads[0].blocked.as_mut()
            && let WaitOn::FdSet { truncated, .. } = &mut Arc::make_mut(&mut w.decoded).wait_on
        {
            *truncated = true;
        }
        procs[0] = p;
        let found = analyze(&procs, &f, &cfg());
        assert!(!kinds(&found).contains(&"deadlock"), "{found:#?}");
    }

    #[test]
    fn a_timeout_or_an_outside_fd_breaks_the_cycle() {
        // The same cycle, but 20's write has a timeout: it will return by itself.
        let (mut procs, f) = pipe_cycle();
        procs[1] = on_fd(20, "write", 4, false);
        assert!(!kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));

        // Or 10 polls its pipe and a TCP socket: the socket can wake it.
        let (mut procs, mut f) = pipe_cycle();
        let mut w = wait("poll", 600.0, true);
        Arc::make_mut(&mut w.decoded).fds = vec![3, 7];
        procs[0] = process(10, 5.0, 900.0, vec![Some(w)]);
        f.fd_inode.insert((10, 7), (300, FdKind::Socket));
        assert!(!kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));

        // Or an eventfd (not a pipe or socket at all).
        let (mut procs, f) = pipe_cycle();
        let mut w = wait("poll", 600.0, true);
        Arc::make_mut(&mut w.decoded).fds = vec![3, 9];
        procs[0] = process(10, 5.0, 900.0, vec![Some(w)]);
        assert!(!kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));
    }

    /// Two processes each reading their end of a connected Unix socket pair: each waits for
    /// the other to write.
    fn unix_pair(reader_b: Process) -> (Vec<Process>, Facts) {
        let procs = vec![on_fd(30, "recvfrom", 3, true), reader_b];
        let mut f = Facts::default();
        f.fd_inode.insert((30, 3), (500, FdKind::Socket));
        f.fd_inode.insert((40, 4), (501, FdKind::Socket));
        f.unix_peer.insert(500, 501);
        f.unix_peer.insert(501, 500);
        hold(&mut f, 500, 30, 3, Mode::ReadWrite);
        hold(&mut f, 501, 40, 4, Mode::ReadWrite);
        (procs, f)
    }

    #[test]
    fn unix_socket_peers_are_followed() {
        let (procs, f) = unix_pair(on_fd(40, "read", 4, true));
        let found = analyze(&procs, &f, &cfg());
        let d: Vec<&Finding> = found.iter().filter(|f| f.kind == FindingKind::Deadlock).collect();
        assert_eq!(d.len(), 1, "{found:#?}");
        let why: Vec<&str> = d[0].chain.iter().map(|s| s.waits_on.as_str()).collect();
        assert!(
            why.contains(&"unix socket:[500] whose peer socket:[501] only pid 40 holds"),
            "{why:?}"
        );
        assert!(
            why.contains(&"unix socket:[501] whose peer socket:[500] only pid 30 holds"),
            "{why:?}"
        );
    }

    /// A process whose threads all wait on futexes whose words name no owner.
    fn futex_waiters(pid: i32, n: usize, running: bool) -> Process {
        let mut waits: Vec<Option<Wait>> =
            (0..n).map(|_| Some(wait("futex", 600.0, true))).collect();
        if running {
            waits.push(None);
        }
        process(pid, 5.0, 900.0, waits)
    }

    #[test]
    fn private_futex_waits_with_no_thread_left_to_wake_them() {
        // Two threads each wait on a condition variable; no third thread: lost wake-up.
        let procs = vec![futex_waiters(50, 2, false)];
        let mut f = Facts::default();
        f.futex_key.insert((50, 50), FutexKey::Private { pid: 50, addr: 0x1000 });
        f.futex_key.insert((50, 51), FutexKey::Private { pid: 50, addr: 0x2000 });
        let found = analyze(&procs, &f, &cfg());
        assert_eq!(kinds(&found), vec!["deadlock"], "{found:#?}");
        assert!(found[0].summary.contains("futex 0x1000 (private) that another thread of pid 50"));
        // A third thread that runs can wake them.
        let procs = vec![futex_waiters(50, 2, true)];
        assert!(!kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));
    }

    #[test]
    fn shared_futex_needs_a_live_mapper_that_is_not_waiting_on_it() {
        let key = FutexKey::Shared { dev: "00:1a".into(), inode: 9, offset: 0 };
        let obj = ("00:1a".to_string(), 9);
        let mut f = Facts::default();
        f.futex_key.insert((60, 60), key.clone());
        f.object_paths.insert(obj.clone(), "/dev/shm/sem.x (deleted)".into());
        // Only the waiter maps it.
        f.object_mappers.insert(obj.clone(), BTreeSet::from([60]));
        let procs = vec![futex_waiters(60, 1, false)];
        let found = analyze(&procs, &f, &cfg());
        assert_eq!(kinds(&found), vec!["orphaned_wait"], "{found:#?}");
        assert!(
            found[0]
                .summary
                .contains("/dev/shm/sem.x (deleted)+0x0 that no other live process maps")
        );
        // Another process maps it and is idle in pause(): it could post; nothing to report.
        let mut procs = procs;
        procs.push(process(61, 0.0, 900.0, vec![Some(wait("pause", 600.0, true))]));
        f.object_mappers.insert(obj.clone(), BTreeSet::from([60, 61]));
        let found = analyze(&procs, &f, &cfg());
        assert!(!kinds(&found).contains(&"orphaned_wait") && !kinds(&found).contains(&"deadlock"));
        // ... unless that process waits on the same semaphore too: both orphaned.
        procs[1] = futex_waiters(61, 1, false);
        f.futex_key.insert((61, 61), key);
        let found = analyze(&procs, &f, &cfg());
        assert_eq!(kinds(&found), vec!["orphaned_wait", "orphaned_wait"], "{found:#?}");
        assert!(found[0].summary.contains("1 other thread waits on it"), "{}", found[0].summary);
    }

    #[test]
    fn unknown_peer_or_listening_socket_is_not_a_deadlock() {
        // Peer unknown (TCP, or another network namespace).
        let (procs, mut f) = unix_pair(on_fd(40, "read", 4, true));
        f.unix_peer.clear();
        assert!(!kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));
        // 40 also watches a listening socket in its epoll set: a new client can wake it.
        let (mut procs, mut f) = unix_pair(on_fd(40, "epoll_wait", 9, true));
        f.epoll_sets.insert((40, 9), vec![(4, 1), (5, 1)]);
        f.fd_inode.insert((40, 5), (777, FdKind::Socket));
        f.listening.insert(777);
        let found = analyze(&procs, &f, &cfg());
        assert!(!kinds(&found).contains(&"deadlock"), "{found:#?}");
        // Without the listening socket the epoll set is the pair only: a deadlock.
        f.epoll_sets.insert((40, 9), vec![(4, 1)]);
        procs.truncate(2);
        assert!(kinds(&analyze(&procs, &f, &cfg())).contains(&"deadlock"));
        // ... unless the set held more fds than were read: those may wake it.
        f.epoll_truncated.insert((40, 9));
        let found = analyze(&procs, &f, &cfg());
        assert!(!kinds(&found).contains(&"deadlock"), "{found:#?}");
    }
}
