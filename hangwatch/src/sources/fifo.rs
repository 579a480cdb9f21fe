//! Named FIFOs: /proc/PID/fd/N of a FIFO opened by path shows the path, not `pipe:[inode]`.
//! A FIFO is a pipe keyed by the device and inode of its file; hangwatch gives each one it
//! meets a key of its own, above any pipefs inode, so that the pipe rules apply unchanged.
//!
//! Other holders are found by the path their fd shows (then checked by device and inode): a
//! FIFO opened under another path (a bind mount, a chroot, another mount namespace) is missed.

use std::collections::HashMap;

use super::fdfile::{Mounts, file_id, is_fifo};

/// Keys of FIFOs start here (pipefs inodes are far below).
const FIFO_KEY_BASE: u64 = 1 << 62;

#[derive(Debug, Default)]
pub struct Fifos {
    /// (device major, minor, inode) → key.
    by_file: HashMap<(u32, u32, u64), u64>,
    /// The paths the waiters' fds show (" (deleted)" kept) → the FIFO's file.
    by_path: HashMap<String, (u32, u32, u64)>,
    mounts: Mounts,
}

impl Fifos {
    /// The key of the FIFO that fd `fd` of `pid` (showing `target`) is, if it is one.
    pub fn register(&mut self, pid: i32, fd: i32, target: &str) -> Option<u64> {
        if !target.starts_with('/') {
            return None;
        }
        let file = is_fifo(pid, fd, &mut self.mounts)?;
        let next = FIFO_KEY_BASE + self.by_file.len() as u64;
        let key = *self.by_file.entry(file).or_insert(next);
        self.by_path.insert(target.to_string(), file);
        Some(key)
    }

    /// The key of a waited-on FIFO that fd `fd` of `pid` (showing `target`) also holds.
    pub fn holds(&mut self, pid: i32, fd: i32, target: &str) -> Option<u64> {
        let want = *self.by_path.get(target)?;
        let (file, _) = file_id(pid, fd, &mut self.mounts)?;
        (file == want).then(|| self.by_file.get(&want).copied()).flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    #[test]
    fn a_real_fifo_gets_one_key_and_a_file_none() {
        let dir = std::env::temp_dir().join(format!("hangwatch-fifo-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("f");
        let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("no NUL");
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // O_RDWR on a FIFO does not block on Linux.
        let f = fs::OpenOptions::new().read(true).write(true).open(&path).expect("open fifo");
        let plain = fs::File::create(dir.join("plain")).expect("file");
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let target = path.to_string_lossy().into_owned();
        let mut fifos = Fifos::default();
        let key = fifos.register(me, f.as_raw_fd(), &target).expect("a fifo");
        assert!(key >= FIFO_KEY_BASE);
        assert_eq!(fifos.register(me, f.as_raw_fd(), &target), Some(key));
        let plain_target = dir.join("plain").to_string_lossy().into_owned();
        assert_eq!(fifos.register(me, plain.as_raw_fd(), &plain_target), None);
        assert_eq!(fifos.register(me, 0, "pipe:[1]"), None);
        assert_eq!(fifos.holds(me, f.as_raw_fd(), &target), Some(key));
        assert_eq!(fifos.holds(me, f.as_raw_fd(), "/elsewhere"), None);
        assert_eq!(fifos.holds(me, plain.as_raw_fd(), &target), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
