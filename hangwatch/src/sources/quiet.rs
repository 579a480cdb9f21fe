//! What /proc shows of a process that cannot have changed because none of its threads ran:
//! its fd table (links and access modes) and the signals it catches. A busy node's thousands of
//! idle processes would otherwise cost a `readlink` per fd, a status read and a cgroup read
//! each on every analysis pass (docs/benchmarks.md, "Busy node").
//!
//! A process is *quiet* when every live thread sleeps in a reported wait of at least
//! [`MIN_QUIET_NS`]. Its fingerprint is
//! each thread's tid, state and wait start; the wait start comes from the time the thread last
//! ran (`exec_start` in /proc/PID/task/TID/sched, ns), so a thread that ran even once, however
//! briefly, has a new fingerprint and its entries are read again. A process with a running or
//! unreported thread has no fingerprint and is read every time.
//!
//! What can change without the process running is not cached past [`CGROUP_TTL_NS`]: its
//! cgroup (another process can move it) is re-read at least that often, and whether that
//! cgroup is frozen is read on every pass (by the caller, once per cgroup). The rest is dropped
//! after [`TTL_NS`] all the same, so that a mistake in this reasoning costs minutes, not days.

use std::{
    collections::{HashMap, HashSet},
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use crate::model::{Process, facts::Mode};

/// An entry is dropped after this long (plus up to 15 s spread by pid, so that the entries of
/// processes started together do not all expire on the same pass) even if its process stayed
/// quiet.
pub const TTL_NS: u64 = 600_000_000_000;

/// A process's cgroup is read again after this long.
pub const CGROUP_TTL_NS: u64 = 60_000_000_000;

/// The links of /proc/PID/fd read per process, at most. A process with more (a poll set of a
/// million fds) costs bounded time; its table is marked cut, and the analysis does not take a
/// pipe or socket without a visible holder for one nobody holds.
pub const MAX_FDS: usize = 65_536;

/// One process's fd table: `(fd, link target)`, and whether it was cut at [`MAX_FDS`].
#[derive(Debug, Default)]
pub struct FdTable {
    pub links: Vec<(i32, Box<str>)>,
    pub cut: bool,
}

#[derive(Debug, Default)]
struct Entry {
    print: u64,
    expires_ns: u64,
    fds: Option<Arc<FdTable>>,
    modes: HashMap<i32, Mode>,
    sig_caught: Option<Option<u64>>,
    /// /proc/PID/cgroup and when it was read.
    cgroups: Option<(Arc<str>, u64)>,
}

/// The cache, kept by live mode across analysis passes (a snapshot uses a fresh one).
#[derive(Debug, Default)]
pub struct QuietCache {
    entries: HashMap<i32, Entry>,
    now_ns: u64,
    /// Reads this pass that the cache answered, and that went to /proc (tests, `-v`).
    pub hits: u64,
    pub misses: u64,
    /// Entries this pass: opened for a process first seen quiet, read again because the
    /// process ran since, or because they expired.
    pub opened: u64,
    pub changed: u64,
    pub expired: u64,
}

/// How long every wait of a quiet process must have lasted. The model keeps a wait's start
/// across scans when the thread is seen in the same call with a start within 1 ms
/// (`snapshot::build_process`: a clock calibration moves it slightly); a thread that ran since
/// and sleeps again has a start at least this much later, so it cannot be taken for the same
/// wait.
pub const MIN_QUIET_NS: u64 = 1_000_000_000;

/// The fingerprint of a quiet process; `None` when a live thread is not in a reported wait.
pub fn fingerprint(p: &Process) -> Option<u64> {
    let mut h = DefaultHasher::new();
    p.pid.hash(&mut h);
    for t in &p.threads {
        t.tid.hash(&mut h);
        t.state.hash(&mut h);
        if matches!(t.state, 'Z' | 'X') {
            continue;
        }
        let w = t.blocked.as_ref().filter(|w| w.duration_ns >= MIN_QUIET_NS)?;
        (w.nr, w.since_mono_ns).hash(&mut h);
    }
    Some(h.finish())
}

impl QuietCache {
    /// Starts a pass over `procs` at `now_ns`: keeps the entries of processes still quiet with
    /// the same fingerprint and not expired, and opens empty ones for the other quiet processes.
    pub fn begin(&mut self, procs: &[Process], now_ns: u64) {
        self.hits = 0;
        self.misses = 0;
        self.opened = 0;
        self.changed = 0;
        self.expired = 0;
        self.now_ns = now_ns;
        let mut live: HashSet<i32> = HashSet::with_capacity(procs.len());
        for p in procs {
            let Some(print) = fingerprint(p) else { continue };
            live.insert(p.pid);
            let fresh =
                self.entries.get(&p.pid).is_some_and(|e| e.print == print && e.expires_ns > now_ns);
            if !fresh {
                match self.entries.get(&p.pid) {
                    Some(e) if e.print != print => self.changed += 1,
                    Some(_) => self.expired += 1,
                    None => self.opened += 1,
                }
                let spread = (p.pid.unsigned_abs() as u64 % 16) * 1_000_000_000;
                let expires_ns = now_ns.saturating_add(TTL_NS + spread);
                self.entries.insert(p.pid, Entry { print, expires_ns, ..Entry::default() });
            }
        }
        self.entries.retain(|pid, _| live.contains(pid));
        // A node whose processes all went away must not keep the room of its peak.
        if self.entries.capacity() > 64 && self.entries.capacity() > 4 * self.entries.len() {
            self.entries.shrink_to_fit();
        }
    }

    /// The number of processes with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fd table of `pid` (empty when it cannot be read: gone, or not ours to read).
    pub fn fd_table(&mut self, pid: i32) -> Arc<FdTable> {
        if let Some(t) = self.entries.get(&pid).and_then(|e| e.fds.clone()) {
            self.hits += 1;
            return t;
        }
        self.misses += 1;
        let t = Arc::new(read_fd_table(pid));
        if let Some(e) = self.entries.get_mut(&pid) {
            e.fds = Some(Arc::clone(&t));
        }
        t
    }

    /// The access mode of `pid`'s `fd` (`flags:` of /proc/PID/fdinfo/FD).
    pub fn fd_mode(&mut self, pid: i32, fd: i32) -> Mode {
        if let Some(&m) = self.entries.get(&pid).and_then(|e| e.modes.get(&fd)) {
            self.hits += 1;
            return m;
        }
        self.misses += 1;
        let m = crate::sources::facts::parse_fdinfo_mode(
            &fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default(),
        );
        if let Some(e) = self.entries.get_mut(&pid) {
            e.modes.insert(fd, m);
        }
        m
    }

    /// `SigCgt:` of /proc/PID/status.
    pub fn sig_caught(&mut self, pid: i32) -> Option<u64> {
        if let Some(s) = self.entries.get(&pid).and_then(|e| e.sig_caught) {
            self.hits += 1;
            return s;
        }
        self.misses += 1;
        let s = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| crate::sources::facts::parse_sig_caught(&s));
        if let Some(e) = self.entries.get_mut(&pid) {
            e.sig_caught = Some(s);
        }
        s
    }

    /// /proc/PID/cgroup, as the kernel wrote it (bounded), `None` when it cannot be read.
    pub fn cgroups(&mut self, pid: i32) -> Option<Arc<str>> {
        let now = self.now_ns;
        if let Some((c, _)) = self
            .entries
            .get(&pid)
            .and_then(|e| e.cgroups.as_ref())
            .filter(|(_, at)| now.saturating_sub(*at) < CGROUP_TTL_NS)
        {
            self.hits += 1;
            return Some(Arc::clone(c));
        }
        self.misses += 1;
        let c: Arc<str> =
            crate::procfs::read_string(std::path::Path::new(&format!("/proc/{pid}/cgroup")))?
                .into();
        if let Some(e) = self.entries.get_mut(&pid) {
            e.cgroups = Some((Arc::clone(&c), now));
        }
        Some(c)
    }
}

/// Reads /proc/PID/fd: at most [`MAX_FDS`] links, each bounded by the kernel (`PATH_MAX`).
fn read_fd_table(pid: i32) -> FdTable {
    let mut t = FdTable::default();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { return t };
    for e in rd.flatten() {
        if t.links.len() >= MAX_FDS {
            t.cut = true;
            break;
        }
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(link) = fs::read_link(e.path()) else { continue };
        t.links.push((fd, crate::procfs::os_lossy(link.as_os_str()).into()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{process, wait};

    #[test]
    fn fingerprint_needs_every_live_thread_in_a_reported_wait() {
        let quiet = process(10, 1.0, 100.0, vec![Some(wait("read", 5.0, true))]);
        assert!(fingerprint(&quiet).is_some());
        let running = process(10, 1.0, 100.0, vec![Some(wait("read", 5.0, true)), None]);
        assert_eq!(fingerprint(&running), None, "a thread outside a reported wait");
        let young = process(10, 1.0, 100.0, vec![Some(wait("read", 0.5, true))]);
        assert_eq!(fingerprint(&young), None, "a wait younger than MIN_QUIET_NS");
        let mut ran = quiet.clone();
        ran.threads[0].blocked.as_mut().unwrap().since_mono_ns += 1;
        assert_ne!(fingerprint(&ran), fingerprint(&quiet), "it ran: a new wait start");
        let mut zombie = running.clone();
        zombie.threads[1].state = 'Z';
        assert!(fingerprint(&zombie).is_some(), "a zombie thread does not run");
    }

    #[test]
    fn entries_kept_while_quiet_dropped_when_it_ran_expired_or_gone() {
        let me = std::process::id() as i32;
        let mut p = process(me, 1.0, 100.0, vec![Some(wait("read", 5.0, true))]);
        let mut c = QuietCache::default();
        c.begin(std::slice::from_ref(&p), 0);
        let first = c.fd_table(me);
        assert!(!first.links.is_empty(), "the test's own fds");
        assert_eq!((c.hits, c.misses), (0, 1));
        c.begin(std::slice::from_ref(&p), 1_000);
        assert!(Arc::ptr_eq(&c.fd_table(me), &first), "served from the cache");
        assert_eq!((c.hits, c.misses), (1, 0));
        p.threads[0].blocked.as_mut().unwrap().since_mono_ns += 1;
        c.begin(std::slice::from_ref(&p), 2_000);
        assert!(!Arc::ptr_eq(&c.fd_table(me), &first), "it ran: read again");
        let second = c.fd_table(me);
        c.begin(std::slice::from_ref(&p), TTL_NS + 16_000_000_000 + 2_000);
        assert!(!Arc::ptr_eq(&c.fd_table(me), &second), "expired: read again");
        c.begin(&[], 0);
        assert!(c.is_empty(), "a process gone leaves nothing");
        c.begin(std::slice::from_ref(&p), 0);
        let cg = c.cgroups(me).unwrap();
        c.begin(std::slice::from_ref(&p), CGROUP_TTL_NS - 1);
        assert!(Arc::ptr_eq(&c.cgroups(me).unwrap(), &cg), "cached");
        c.begin(std::slice::from_ref(&p), CGROUP_TTL_NS);
        assert!(!Arc::ptr_eq(&c.cgroups(me).unwrap(), &cg), "a cgroup is read every minute");
    }

    #[test]
    fn a_process_without_fingerprint_is_read_every_time_and_not_kept() {
        let me = std::process::id() as i32;
        let p = process(me, 1.0, 100.0, vec![None]);
        let mut c = QuietCache::default();
        c.begin(std::slice::from_ref(&p), 0);
        let a = c.fd_table(me);
        let b = c.fd_table(me);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(c.len(), 0);
        assert!(c.sig_caught(me).is_some());
        assert!(c.cgroups(me).is_some());
    }
}
