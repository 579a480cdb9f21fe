//! The typed contract between the decoder and the analysis: which syscall a thread is blocked
//! in ([`Syscall`]) and what it waits on ([`WaitOn`]). The decoder fills both from the same
//! values it renders into the JSON `args`; the analysis reads only these, never the JSON, so a
//! renamed JSON key cannot silently switch a rule off.

use super::syscall_name;

/// The syscalls the analysis reasons about, resolved once from the number through this
/// architecture's table ([`syscall_name`]); every other one is [`Syscall::Other`] (its number
/// stays in `model::Wait::nr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syscall {
    Read,
    Readv,
    Pread64,
    Recvfrom,
    Recvmsg,
    Recvmmsg,
    Write,
    Writev,
    Pwrite64,
    Sendto,
    Sendmsg,
    Sendmmsg,
    Splice,
    Tee,
    Poll,
    Ppoll,
    Select,
    Pselect6,
    EpollWait,
    EpollPwait,
    EpollPwait2,
    Wait4,
    Waitid,
    Futex,
    Flock,
    Fcntl,
    Pause,
    RtSigsuspend,
    RtSigtimedwait,
    /// Not on x86_64 or aarch64; some 32-bit architectures have it.
    Sigsuspend,
    Vfork,
    Clone,
    Clone3,
    Other,
}

impl Syscall {
    /// Syscall `nr` of this architecture.
    #[must_use]
    pub fn of(nr: i64) -> Self {
        syscall_name(nr).map_or(Self::Other, Self::from_name)
    }

    /// The syscall the table names `name` (the one place a name becomes an identity).
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        match name {
            "read" => Self::Read,
            "readv" => Self::Readv,
            "pread64" => Self::Pread64,
            "recvfrom" => Self::Recvfrom,
            "recvmsg" => Self::Recvmsg,
            "recvmmsg" => Self::Recvmmsg,
            "write" => Self::Write,
            "writev" => Self::Writev,
            "pwrite64" => Self::Pwrite64,
            "sendto" => Self::Sendto,
            "sendmsg" => Self::Sendmsg,
            "sendmmsg" => Self::Sendmmsg,
            "splice" => Self::Splice,
            "tee" => Self::Tee,
            "poll" => Self::Poll,
            "ppoll" => Self::Ppoll,
            "select" => Self::Select,
            "pselect6" => Self::Pselect6,
            "epoll_wait" => Self::EpollWait,
            "epoll_pwait" => Self::EpollPwait,
            "epoll_pwait2" => Self::EpollPwait2,
            "wait4" => Self::Wait4,
            "waitid" => Self::Waitid,
            "futex" => Self::Futex,
            "flock" => Self::Flock,
            "fcntl" => Self::Fcntl,
            "pause" => Self::Pause,
            "rt_sigsuspend" => Self::RtSigsuspend,
            "rt_sigtimedwait" => Self::RtSigtimedwait,
            "sigsuspend" => Self::Sigsuspend,
            "vfork" => Self::Vfork,
            "clone" => Self::Clone,
            "clone3" => Self::Clone3,
            _ => Self::Other,
        }
    }

    /// `epoll_wait`, `epoll_pwait`, `epoll_pwait2`.
    #[must_use]
    pub fn is_epoll(self) -> bool {
        matches!(self, Self::EpollWait | Self::EpollPwait | Self::EpollPwait2)
    }

    /// `wait4`, `waitid`: a wait for a child.
    #[must_use]
    pub fn is_child_wait(self) -> bool {
        matches!(self, Self::Wait4 | Self::Waitid)
    }

    /// Waits for a signal and nothing else.
    #[must_use]
    pub fn is_signal_wait(self) -> bool {
        matches!(self, Self::Pause | Self::RtSigsuspend | Self::RtSigtimedwait | Self::Sigsuspend)
    }

    /// `vfork`, `clone`, `clone3`: a parent that sleeps in one waits for its vfork child.
    #[must_use]
    pub fn creates_a_process(self) -> bool {
        matches!(self, Self::Vfork | Self::Clone | Self::Clone3)
    }

    /// Which way the call moves data on its fds, `(reads, writes)`, when the syscall alone says
    /// it (a read, a send, a splice); None for the calls that wait on a set of fds or on
    /// anything else.
    #[must_use]
    pub fn data_direction(self) -> Option<(bool, bool)> {
        match self {
            Self::Write
            | Self::Writev
            | Self::Pwrite64
            | Self::Sendto
            | Self::Sendmsg
            | Self::Sendmmsg
            | Self::Splice
            | Self::Tee => Some((false, true)),
            Self::Read
            | Self::Readv
            | Self::Pread64
            | Self::Recvfrom
            | Self::Recvmsg
            | Self::Recvmmsg => Some((true, false)),
            _ => None,
        }
    }

    /// A call that reads (or waits to read): `read`, `readv`, `pread64` and the poll and
    /// select families.
    #[must_use]
    pub fn reads_or_polls(self) -> bool {
        matches!(
            self,
            Self::Read
                | Self::Readv
                | Self::Pread64
                | Self::Poll
                | Self::Ppoll
                | Self::Select
                | Self::Pselect6
        )
    }
}

/// A file descriptor and what it points to (readlink of /proc/PID/fd/N: "pipe:[12]",
/// "/dev/pts/1", "anon_inode:[timerfd]"; None when closed or unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FdRef {
    pub fd: i32,
    pub target: Option<String>,
}

/// One fd of a poll or select set and what the caller waits for on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdWait {
    pub fd: FdRef,
    /// poll: `POLLIN` or `POLLPRI` asked; select: in the read set.
    pub read: bool,
    /// poll: `POLLOUT` asked; select: in the write set.
    pub write: bool,
}

/// Which children a `wait4` / `waitid` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildWait {
    /// `wait4(pid)`, `waitid(P_PID, pid)`.
    Pid(i32),
    /// `wait4(-1)`, `waitid(P_ALL)`.
    Any,
    /// `wait4(0 | -pgid)` (0: its own group) or `waitid(P_PGID, pgid)`.
    Group(i32),
    /// `waitid(P_PIDFD, fd)`.
    Pidfd(FdRef),
    /// `waitid` with an id type the decoder does not know.
    Unknown,
}

/// A `futex(2)` call (any op).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FutexWait {
    pub uaddr: u64,
    /// The op without `FUTEX_PRIVATE_FLAG` / `FUTEX_CLOCK_REALTIME` (0 WAIT, 6 LOCK_PI ...).
    pub cmd: u32,
    /// `FUTEX_PRIVATE_FLAG`: the futex is keyed by process and address.
    pub private: bool,
    /// The value the caller expects in the word (arg 2).
    pub val: u32,
    /// `LOCK_PI` / `LOCK_PI2`: the owner TID read from the futex word, when readable and
    /// non-zero.
    pub owner_tid: Option<u32>,
}

/// What a blocked syscall waits on, as the decoder read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WaitOn {
    /// `wait4` / `waitid`.
    Child(ChildWait),
    /// `futex(2)`.
    Futex(FutexWait),
    /// `poll`, `ppoll`, `select`, `pselect6`: the fds read (negative poll fds, which the kernel
    /// ignores, left out); `truncated` when the set held more than the decoder reads.
    FdSet { fds: Vec<FdWait>, truncated: bool },
    /// `epoll_wait` family (the set itself is read by the analysis's facts).
    Epoll { epfd: FdRef },
    /// A blocking `flock` (no `LOCK_NB`) or `fcntl(F_SETLKW | F_OFD_SETLKW)`.
    FileLock { fd: FdRef },
    /// A call on one fd: read, write, send, receive, accept, connect, ioctl, fsync, a message
    /// queue, io_uring_enter, or a non-blocking lock call.
    Fd(FdRef),
    /// `splice`, `tee`, `sendfile`: data moving from one fd to another.
    Transfer { from: FdRef, to: FdRef },
    /// Anything else (sleeps, signal waits, SysV IPC, open, unknown syscalls).
    #[default]
    Other,
}

impl WaitOn {
    /// The target of the one fd the call waits on (an fd call, a lock, an epoll fd).
    #[must_use]
    pub fn fd_target(&self) -> Option<&str> {
        match self {
            Self::Fd(fd) | Self::FileLock { fd } | Self::Epoll { epfd: fd } => fd.target.as_deref(),
            _ => None,
        }
    }

    /// Every fd target the decoder read for this wait.
    #[must_use]
    pub fn targets(&self) -> Vec<&str> {
        let refs: Vec<&FdRef> = match self {
            Self::Fd(fd) | Self::FileLock { fd } | Self::Epoll { epfd: fd } => vec![fd],
            Self::Child(ChildWait::Pidfd(fd)) => vec![fd],
            Self::Transfer { from, to } => vec![from, to],
            Self::FdSet { fds, .. } => fds.iter().map(|f| &f.fd).collect(),
            Self::Child(_) | Self::Futex(_) | Self::Other => vec![],
        };
        refs.into_iter().filter_map(|f| f.target.as_deref()).collect()
    }

    /// A poll or select set longer than the decoder reads.
    #[must_use]
    pub fn fds_truncated(&self) -> bool {
        matches!(self, Self::FdSet { truncated: true, .. })
    }

    /// The epoll fd of an `epoll_wait` (None for a negative one, which the kernel rejects).
    #[must_use]
    pub fn epfd(&self) -> Option<i32> {
        match self {
            Self::Epoll { epfd } if epfd.fd >= 0 => Some(epfd.fd),
            _ => None,
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! Decoded waits built from plain values, for the analysis's tests.

    use super::*;
    use crate::syscalls::Decoded;

    /// A wait in syscall `name` with nothing decoded beyond what its kind needs: a futex with
    /// word value 0 and no owner, a child wait for any child, an empty fd set, an epoll or
    /// file-lock wait on fd -1 (a `flock` is a lock wait only when `infinite`).
    #[must_use]
    pub fn bare(name: &str, infinite: bool) -> Decoded {
        let call = Syscall::from_name(name);
        let wait_on = match call {
            Syscall::Futex => WaitOn::Futex(FutexWait {
                uaddr: 0,
                cmd: 0,
                private: true,
                val: 0,
                owner_tid: None,
            }),
            Syscall::Wait4 | Syscall::Waitid => WaitOn::Child(ChildWait::Any),
            Syscall::Poll | Syscall::Ppoll | Syscall::Select | Syscall::Pselect6 => {
                WaitOn::FdSet { fds: vec![], truncated: false }
            }
            c if c.is_epoll() => WaitOn::Epoll { epfd: FdRef { fd: -1, target: None } },
            Syscall::Flock if infinite => WaitOn::FileLock { fd: FdRef { fd: -1, target: None } },
            _ => WaitOn::Other,
        };
        Decoded {
            syscall: name.to_string(),
            call,
            wait_on,
            args: serde_json::Map::new(),
            human: format!("{name}(...)"),
            infinite,
            fds: vec![],
        }
    }

    /// `d` waiting on fd `fd` (with `target`), the way the decoder shows it for its syscall:
    /// the epoll fd, the locked fd, one more fd of a poll/select set (read), or the one fd.
    pub fn on_fd(d: &mut Decoded, fd: i32, target: Option<&str>) {
        let r = FdRef { fd, target: target.map(str::to_string) };
        match &mut d.wait_on {
            WaitOn::Epoll { epfd } => *epfd = r,
            WaitOn::FileLock { fd } => *fd = r,
            WaitOn::FdSet { fds, .. } => fds.push(FdWait { fd: r, read: true, write: false }),
            other => *other = WaitOn::Fd(r),
        }
        if !d.fds.contains(&fd) {
            d.fds.push(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn numbers_resolve_once() {
        assert_eq!(Syscall::of(202), Syscall::Futex);
        assert_eq!(Syscall::of(61), Syscall::Wait4);
        assert_eq!(Syscall::of(247), Syscall::Waitid);
        assert_eq!(Syscall::of(232), Syscall::EpollWait);
        assert_eq!(Syscall::of(441), Syscall::EpollPwait2);
        assert_eq!(Syscall::of(0), Syscall::Read);
        assert_eq!(Syscall::of(275), Syscall::Splice);
        assert_eq!(Syscall::of(34), Syscall::Pause);
        assert_eq!(Syscall::of(58), Syscall::Vfork);
        assert_eq!(Syscall::of(435), Syscall::Clone3);
        // futex2's futex_wait is not futex(2); unknown numbers are Other.
        assert_eq!(Syscall::of(455), Syscall::Other);
        assert_eq!(Syscall::of(335), Syscall::Other);
        assert_eq!(Syscall::of(-1), Syscall::Other);
    }

    #[test]
    fn classes() {
        assert!(Syscall::EpollPwait.is_epoll() && !Syscall::Poll.is_epoll());
        assert!(Syscall::Waitid.is_child_wait() && !Syscall::Wait4.is_signal_wait());
        assert!(Syscall::RtSigtimedwait.is_signal_wait());
        assert!(Syscall::Clone3.creates_a_process() && !Syscall::Waitid.creates_a_process());
        assert_eq!(Syscall::Tee.data_direction(), Some((false, true)));
        assert_eq!(Syscall::Recvmmsg.data_direction(), Some((true, false)));
        assert_eq!(Syscall::Poll.data_direction(), None);
        assert!(Syscall::Pselect6.reads_or_polls() && !Syscall::Write.reads_or_polls());
    }

    #[test]
    fn targets_of_each_kind() {
        let r = |fd, t: &str| FdRef { fd, target: Some(t.to_string()) };
        let set = WaitOn::FdSet {
            fds: vec![
                FdWait { fd: r(3, "pipe:[1]"), read: true, write: false },
                FdWait { fd: FdRef { fd: 4, target: None }, read: true, write: false },
            ],
            truncated: true,
        };
        assert_eq!(set.targets(), vec!["pipe:[1]"]);
        assert!(set.fds_truncated());
        assert_eq!(set.fd_target(), None);
        let t = WaitOn::Transfer { from: r(3, "pipe:[1]"), to: r(4, "socket:[2]") };
        assert_eq!(t.targets(), vec!["pipe:[1]", "socket:[2]"]);
        let e = WaitOn::Epoll { epfd: r(5, "anon_inode:[eventpoll]") };
        assert_eq!((e.epfd(), e.fd_target()), (Some(5), Some("anon_inode:[eventpoll]")));
        assert_eq!(WaitOn::Epoll { epfd: FdRef { fd: -1, target: None } }.epfd(), None);
        assert_eq!(WaitOn::Other.targets(), Vec::<&str>::new());
        assert!(!WaitOn::Other.fds_truncated());
    }
}
