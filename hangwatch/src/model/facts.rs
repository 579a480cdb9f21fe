//! Facts about the node that the wait-for analysis needs beyond the process model: who holds
//! which pipe and socket, which sockets listen, what an epoll set watches, what a futex word
//! says, and each cgroup's CPU quota. Plain data; `sources::facts::gather` reads them from
//! /proc.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

/// Which end of a pipe (or which way a socket is used) an fd is open for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
    ReadWrite,
}

impl Mode {
    pub fn can_read(self) -> bool {
        matches!(self, Mode::Read | Mode::ReadWrite)
    }
    pub fn can_write(self) -> bool {
        matches!(self, Mode::Write | Mode::ReadWrite)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub fd: i32,
    pub mode: Mode,
}

/// The CPU limit of a cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuQuota {
    /// Cores' worth of CPU time allowed per period (quota / period).
    pub cores: f64,
    pub nr_throttled: u64,
    pub throttled_ns: u64,
}

/// An OOM kill as the analysis's OOM rules and live mode's view know it (from the kernel log
/// or the live probe): when, who, where, and the limit that was hit. The snapshot makes it from
/// an `OomKill` ([`crate::model::oom::OomKill::fact`]); live mode's aggregator from the probe's
/// record and what it knew of the victim. See `model/oom.rs` for the other OOM types.
#[derive(Debug, Clone, PartialEq)]
pub struct OomFact {
    pub time_mono_ns: u64,
    pub pid: i32,
    pub comm: String,
    pub cgroup: Option<String>,
    pub ppid: Option<i32>,
    /// The limit of the cgroup that hit it, when known.
    pub memory_limit_bytes: Option<u64>,
    /// The victim's anonymous RSS when it was killed, when known (shown, not analysed).
    pub anon_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// inode → every (pid, fd) that holds it, for the pipes and sockets blocked threads use.
    pub holders: HashMap<u64, Vec<Holder>>,
    /// Socket inodes in the listening state (TCP LISTEN, Unix SO_ACCEPTCON).
    pub listening: HashSet<u64>,
    /// Unix socket inode → its peer's inode.
    pub unix_peer: HashMap<u64, u64>,
    /// (pid, epoll fd) → the fds in that epoll set with their event masks (at most
    /// [`MAX_EPOLL_FDS`]).
    pub epoll_sets: HashMap<(i32, i32), Vec<(i32, u32)>>,
    /// The epoll sets that held more than was read (see [`read_epoll_set`]).
    pub epoll_truncated: HashSet<(i32, i32)>,
    /// (pid, fd) → inode (pipe or socket) for the fds blocked threads wait on.
    pub fd_inode: HashMap<(i32, i32), (u64, Kind)>,
    /// tid → (futex word, word at +8: glibc's mutex owner field).
    pub futex_words: HashMap<i32, (u32, Option<u32>)>,
    /// (pid, tid) → which futex it waits on, for the futex waits.
    pub futex_key: HashMap<(i32, i32), FutexKey>,
    /// Shared memory object (device, inode) → every process that maps it (the only ones that
    /// can wake a process-shared futex in it), for the objects futex waits point into.
    pub object_mappers: HashMap<(String, u64), BTreeSet<i32>>,
    /// Shared memory object → its path as /proc/PID/maps shows it.
    pub object_paths: HashMap<(String, u64), String>,
    /// Walks of /proc/PID/maps cut at [`crate::sources::maps::MAX_MAPS_LINES`] /
    /// [`crate::sources::maps::MAX_MAPS_BYTES`] before they were done (the futex keys or mappers they
    /// would have given are unknown).
    pub maps_truncated: u64,
    pub cpu_quota: HashMap<String, CpuQuota>,
    /// pid → its cgroup in the cpu controller's hierarchy (for processes with runnable threads).
    pub cpu_cgroup_of: HashMap<i32, String>,
    pub oom_kills: Vec<OomFact>,
    /// (pid, fd) of a lock wait → the locks that block it and who holds them (/proc/locks).
    pub lock_blockers: HashMap<(i32, i32), Vec<Blocker>>,
    /// (pid, fd) of a lock wait → the file it locks.
    pub lock_files: HashMap<(i32, i32), FileId>,
    /// Processes whose fd table was longer than hangwatch reads
    /// (`sources::quiet::MAX_FDS`): a pipe or socket with no visible holder may be held there.
    pub fd_tables_cut: BTreeSet<i32>,
    /// /proc/locks was larger than hangwatch reads: some holders may be missing.
    pub locks_truncated: bool,
    /// FIFO key (in `holders` and `fd_inode`, as a pipe) → the path of the named FIFO.
    pub fifo_names: HashMap<u64, String>,
    /// (pid, tid) of a wait inside FUSE → the FUSE mounts it may be on (device minor → path).
    pub fuse_waits: HashMap<(i32, i32), FuseWait>,
    /// FUSE connection (None: the kernel does not say) → the processes holding /dev/fuse for it.
    pub fuse_servers: HashMap<Option<u32>, BTreeSet<i32>>,
    /// TCP/UDP socket inode → its peer on this node (/proc/net/{tcp,udp}{,6}).
    pub inet_peer: HashMap<u64, Peer>,
    /// pid → why it cannot run (stopped, traced, frozen, in `D`), for the processes blocked
    /// threads wait on.
    pub cannot_run: HashMap<i32, String>,
    /// pid → the signals it catches (`SigCgt` of /proc/PID/status), for the processes whose
    /// main thread waits forever: a handler may be what ends the wait.
    pub sig_caught: HashMap<i32, u64>,
    /// (pid, tid) found absent from /proc/PID/task at gathering time: a mutex owner that is not
    /// a thread of the waiter's process, or a waited-for child (pid, pid) that is gone.
    pub absent_tasks: HashSet<(i32, i32)>,
    /// tid → the process it is a thread of, for mutex owners that are not threads of the
    /// waiter (a lock copied at fork() names a thread of the parent).
    pub tid_tgid: HashMap<i32, i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    Socket,
}

/// The futex a thread waits on, as the kernel identifies it: a process-private one by its
/// process and address; one in shared memory by the object mapped there and the offset in
/// it, which is the same in every process that maps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FutexKey {
    Private { pid: i32, addr: u64 },
    Shared { dev: String, inode: u64, offset: u64 },
}

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub shared: bool,
    /// Offset of `start` in the mapped object.
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    pub path: String,
}

/// A file: device major, minor and inode.
pub type FileId = (u32, u32, u64);

/// One line of /proc/locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockLine {
    pub id: u64,
    /// How deep under its blocker (0: a lock that is held; 1: `->`, a request it blocks ...).
    pub depth: usize,
    /// `FLOCK`, `POSIX`, `OFDLCK`, `LEASE`, `DELEG` ...
    pub class: String,
    /// `READ`, `WRITE` (or `UNLCK`, `BREAKING` ... for leases).
    pub access: String,
    /// -1 for OFD locks.
    pub pid: i32,
    pub file: FileId,
    pub start: u64,
    /// None: to the end of the file.
    pub end: Option<u64>,
}

impl LockLine {
    /// "POSIX WRITE 5-14", "FLOCK WRITE", "OFDLCK READ 0-EOF".
    pub fn describe(&self) -> String {
        if self.class == "FLOCK" {
            return format!("{} {}", self.class, self.access);
        }
        let end = self.end.map_or_else(|| "EOF".to_string(), |e| e.to_string());
        format!("{} {} {}-{}", self.class, self.access, self.start, end)
    }
}

/// What blocks one lock wait: the lock line and the processes that hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub lock: LockLine,
    pub holders: Vec<i32>,
}

/// A FUSE wait: the mounts it may be on (device minor → mount point).
pub type FuseWait = BTreeMap<u32, String>;

/// A socket's peer on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub inode: u64,
    /// e.g. "tcp 127.0.0.1:41000 -> 127.0.0.1:6379".
    pub connection: String,
}
