//! FUSE: a thread waiting on a FUSE filesystem (wait channel `request_wait_answer` or
//! `fuse_*`) waits for the process that serves the mount through /dev/fuse.
//!
//! The mount is the one of the fd the thread waits on (fdinfo `mnt_id`), else the FUSE mounts
//! of its mount namespace (path arguments are not resolved: that could touch the very mount
//! that hangs). The server is the process holding a /dev/fuse fd whose fdinfo says
//! `fuse_connection: N` with N the mount's device minor (recent kernels); on kernels without
//! that line, every holder of /dev/fuse is a possible server.

pub use crate::model::facts::FuseWait;
use std::{collections::HashMap, fs};

use crate::model::facts::Facts;
use crate::{
    model::Process,
    procfs,
    sources::fdfile::{Mounts, file_id, parse_mountinfo_line},
};

/// Whether a wait channel is a wait inside FUSE.
pub fn is_fuse_wchan(wchan: &str) -> bool {
    wchan == "request_wait_answer" || wchan.starts_with("fuse_")
}

/// `fuse_connection:` of a /dev/fuse fd's fdinfo.
pub fn parse_connection(fdinfo: &str) -> Option<u32> {
    fdinfo.lines().find_map(|l| l.strip_prefix("fuse_connection:")?.trim().parse().ok())
}

fn fuse_mounts(pid: i32) -> FuseWait {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|s| {
            s.lines()
                .filter_map(parse_mountinfo_line)
                .filter(|m| m.is_fuse() && m.major == 0)
                .map(|m| (m.minor, m.mount_point))
                .collect()
        })
        .unwrap_or_default()
}

/// Fills `facts.fuse_waits` and `facts.fuse_servers`.
pub fn gather(procs: &[Process], f: &mut Facts) {
    let mut mounts = Mounts::default();
    // The FUSE mounts each process sees, read once per process.
    let mut of_ns: HashMap<i32, FuseWait> = HashMap::new();
    for p in procs {
        for (t, w) in p.blocked_threads() {
            if !w.wchan.as_deref().is_some_and(is_fuse_wchan) {
                continue;
            }
            let by_fd: FuseWait = w
                .decoded
                .fds
                .iter()
                .filter_map(|fd| file_id(p.pid, *fd, &mut mounts))
                .filter(|(_, m)| m.is_fuse())
                .map(|(_, m)| (m.minor, m.mount_point))
                .collect();
            let on = if by_fd.is_empty() {
                of_ns.entry(p.pid).or_insert_with(|| fuse_mounts(p.pid)).clone()
            } else {
                by_fd
            };
            f.fuse_waits.insert((p.pid, t.tid), on);
        }
    }
    if f.fuse_waits.is_empty() {
        return;
    }
    for pid in procfs::list_pids() {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for e in rd.flatten() {
            if fs::read_link(e.path()).ok().as_deref() != Some(std::path::Path::new("/dev/fuse")) {
                continue;
            }
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let conn = parse_connection(
                &fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default(),
            );
            f.fuse_servers.entry(conn).or_default().insert(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wchans_and_connections() {
        assert!(is_fuse_wchan("request_wait_answer") && is_fuse_wchan("fuse_lock_inode"));
        assert!(!is_fuse_wchan("do_epoll_wait"));
        let info = "pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t89\nfuse_connection:\t40\n";
        assert_eq!(parse_connection(info), Some(40));
        assert_eq!(parse_connection("pos:\t0\n"), None);
    }
}
