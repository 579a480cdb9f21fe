//! Syscall names and argument decoding for blocked threads.
//!
//! - [`syscall_name`] / [`display_name`]: number → name (x86_64 table in
//!   `table.rs`, generated from the kernel UAPI header; other arches use the
//!   `syscalls` crate's table for the target, else `syscall_<nr>`).
//! - [`TaskView`]: how the decoder reads the blocked task (its memory and
//!   its fd table). [`ProcTask`] is the real one; tests use plain values.
//! - [`decode`]: number + six raw args → [`Decoded`] (JSON args, a one-line
//!   human rendering, "waits forever" verdict, fds and pid waited on).
//!
//! Nothing here panics on bad input: unreadable memory and closed fds turn
//! into `null` targets and `*_unreadable` flags.

mod decode;
#[cfg(target_arch = "x86_64")]
mod table;

pub use decode::{Decoded, decode};

/// Name of syscall `nr` on this architecture, e.g. `syscall_name(202) ==
/// Some("futex")` on x86_64; from the `syscalls` crate's table on other architectures.
#[must_use]
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        table::name(nr)
    }
    // Other architectures (aarch64): the `syscalls` crate's table for the target. Arguments
    // are not decoded there (the decoder's numbers and layouts are x86_64's).
    #[cfg(not(target_arch = "x86_64"))]
    {
        usize::try_from(nr).ok().and_then(syscalls::Sysno::new).map(|s| s.name())
    }
}

/// [`syscall_name`], or `syscall_<nr>` when the number is unknown.
#[must_use]
pub fn display_name(nr: i64) -> String {
    match syscall_name(nr) {
        Some(name) => name.to_owned(),
        None => format!("syscall_{nr}"),
    }
}

/// Read access to the task whose syscall is being decoded.
pub trait TaskView {
    /// Read `len` bytes of the task's memory at `addr` (process_vm_readv in production). None if unreadable.
    fn read_mem(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
    /// What fd N points to, as readlink(/proc/PID/fd/N) shows it: "pipe:[123]", "socket:[456]", "/var/log/x", "anon_inode:[eventpoll]". None if closed/unreadable.
    fn fd_target(&self, fd: i32) -> Option<String>;
}

/// Largest single read [`ProcTask::read_mem`] performs; longer requests are
/// cut to this many bytes.
pub const MAX_READ: usize = 64 * 1024;

/// A live process (or thread: any TID works for `pid`) read through
/// `process_vm_readv(2)` and `/proc/PID/fd`.
///
/// Reading another process's memory needs ptrace access to it
/// (CAP_SYS_PTRACE, or same user and a permissive Yama scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTask {
    pub pid: i32,
}

impl TaskView for ProcTask {
    /// Returns exactly `min(len, MAX_READ)` bytes, or `None` if any of them
    /// could not be read (a partial read counts as unreadable).
    fn read_mem(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if addr == 0 {
            return None;
        }
        let len = len.min(MAX_READ);
        if len == 0 {
            return Some(Vec::new());
        }
        let remote_addr = usize::try_from(addr).ok()?;
        let mut buf = vec![0u8; len];
        let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
        let remote = libc::iovec { iov_base: remote_addr as *mut libc::c_void, iov_len: len };
        // SAFETY: `local` describes `len` writable bytes owned by `buf`, which
        // outlives the call; `remote` is an address in the other process that
        // the kernel checks and copies from, it is never dereferenced here.
        let n = unsafe {
            libc::process_vm_readv(self.pid, &raw const local, 1, &raw const remote, 1, 0)
        };
        if usize::try_from(n).ok()? != len {
            return None;
        }
        Some(buf)
    }

    fn fd_target(&self, fd: i32) -> Option<String> {
        if fd < 0 {
            return None;
        }
        let path = format!("/proc/{}/fd/{fd}", self.pid);
        let target = std::fs::read_link(path).ok()?;
        Some(target.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn names() {
        assert_eq!(syscall_name(202), Some("futex"));
        assert_eq!(syscall_name(7), Some("poll"));
        assert_eq!(syscall_name(232), Some("epoll_wait"));
        assert_eq!(syscall_name(61), Some("wait4"));
        assert_eq!(syscall_name(435), Some("clone3"));
        assert_eq!(syscall_name(0), Some("read"));
        assert_eq!(syscall_name(449), Some("futex_waitv"));
        assert_eq!(syscall_name(455), Some("futex_wait"));
        assert_eq!(syscall_name(335), None);
        assert_eq!(syscall_name(-1), None);
        assert_eq!(syscall_name(100_000), None);
        assert_eq!(display_name(202), "futex");
        assert_eq!(display_name(9999), "syscall_9999");
        assert_eq!(display_name(-1), "syscall_-1");
    }

    /// The committed table still agrees with the installed UAPI header.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn table_matches_installed_header() {
        let path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let Ok(header) = std::fs::read_to_string(path) else {
            eprintln!("skipped: {path} not installed (linux-libc-dev)");
            return;
        };
        let mut checked = 0;
        for line in header.lines() {
            let mut words = line.split_whitespace();
            let (Some("#define"), Some(name), Some(nr)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let (Some(name), Ok(nr)) = (name.strip_prefix("__NR_"), nr.parse::<i64>()) else {
                continue;
            };
            assert_eq!(syscall_name(nr), Some(name), "nr {nr}");
            checked += 1;
        }
        assert!(checked > 300, "only {checked} entries in {path}");
    }

    #[test]
    fn proc_task_reads_own_memory() {
        let value: [u8; 8] = *b"hangwtch";
        // SAFETY: getpid has no preconditions.
        let me = ProcTask { pid: unsafe { libc::getpid() } };
        let got = me.read_mem(value.as_ptr() as u64, value.len());
        assert_eq!(got.as_deref(), Some(&value[..]));
        assert_eq!(me.read_mem(0, 8), None);
        assert_eq!(me.read_mem(8, 8), None, "page 0 is never mapped");
        assert_eq!(me.read_mem(value.as_ptr() as u64, 0), Some(Vec::new()));
    }

    #[test]
    fn proc_task_caps_reads() {
        let big = vec![7u8; MAX_READ + 100];
        // SAFETY: getpid has no preconditions.
        let me = ProcTask { pid: unsafe { libc::getpid() } };
        let got = me.read_mem(big.as_ptr() as u64, big.len()).unwrap();
        assert_eq!(got.len(), MAX_READ);
    }

    #[test]
    fn proc_task_fd_target() {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: getpid has no preconditions.
        let me = ProcTask { pid: unsafe { libc::getpid() } };
        let target = me.fd_target(fds[0]).unwrap();
        assert!(target.starts_with("pipe:["), "{target}");
        // SAFETY: both fds came from pipe() above and are closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(me.fd_target(-1), None);
        assert_eq!(me.fd_target(1 << 30), None);
    }
}
