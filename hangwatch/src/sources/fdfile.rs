//! Which file an fd is, without touching the file: `stat` of /proc/PID/fd/N asks the file's
//! filesystem, and a FUSE filesystem whose server has stopped answering would hang hangwatch
//! too. /proc/PID/fdinfo/N gives the inode and the mount id; /proc/PID/mountinfo gives the
//! mount's device and filesystem type. Only files on other filesystems than FUSE are `stat`ed
//! (to tell a FIFO).

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt},
};

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub major: u32,
    pub minor: u32,
    pub mount_point: String,
    pub fstype: String,
}

impl Mount {
    pub fn is_fuse(&self) -> bool {
        self.fstype == "fuse" || self.fstype.starts_with("fuse.") || self.fstype == "fuseblk"
    }
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub fn parse_mountinfo_line(l: &str) -> Option<Mount> {
    let (left, right) = l.split_once(" - ")?;
    let mut f = left.split(' ');
    let id = f.next()?.parse().ok()?;
    let _parent = f.next()?;
    let (major, minor) = f.next()?.split_once(':')?;
    let _root = f.next()?;
    let mount_point = f.next()?.to_string();
    let fstype = right.split(' ').next()?.to_string();
    Some(Mount { id, major: major.parse().ok()?, minor: minor.parse().ok()?, mount_point, fstype })
}

/// `mnt_id:` and `ino:` of /proc/PID/fdinfo/N.
pub fn parse_fdinfo_file(s: &str) -> Option<(u64, u64)> {
    let mut mnt = None;
    let mut ino = None;
    for l in s.lines() {
        if let Some(v) = l.strip_prefix("mnt_id:") {
            mnt = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("ino:") {
            ino = v.trim().parse().ok();
        }
    }
    Some((mnt?, ino?))
}

/// The mounts of each mount namespace met, read once per namespace.
#[derive(Debug, Default)]
pub struct Mounts {
    by_ns: HashMap<String, HashMap<u64, Mount>>,
}

impl Mounts {
    /// The mount `mnt_id` as process `pid` sees it.
    pub fn get(&mut self, pid: i32, mnt_id: u64) -> Option<&Mount> {
        let ns = fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("pid {pid}"));
        let table = self.by_ns.entry(ns).or_insert_with(|| {
            fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .map(|s| s.lines().filter_map(parse_mountinfo_line).map(|m| (m.id, m)).collect())
                .unwrap_or_default()
        });
        table.get(&mnt_id)
    }
}

/// The file fd `fd` of `pid` is, (device major, minor, inode), and its mount; never touches
/// the file itself.
pub fn file_id(pid: i32, fd: i32, mounts: &mut Mounts) -> Option<((u32, u32, u64), Mount)> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let (mnt, ino) = parse_fdinfo_file(&info)?;
    let m = mounts.get(pid, mnt)?.clone();
    Some(((m.major, m.minor, ino), m))
}

/// Whether fd `fd` of `pid` is a FIFO; never asks a FUSE filesystem.
pub fn is_fifo(pid: i32, fd: i32, mounts: &mut Mounts) -> Option<(u32, u32, u64)> {
    let (file, mount) = file_id(pid, fd, mounts)?;
    if mount.is_fuse() {
        return None;
    }
    let m = fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?;
    (m.file_type().is_fifo() && m.ino() == file.2).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_fdinfo() {
        let m = parse_mountinfo_line(
            "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .expect("parses");
        assert_eq!((m.id, m.major, m.minor, m.fstype.as_str()), (36, 98, 0, "ext3"));
        assert_eq!(m.mount_point, "/mnt/parent");
        assert!(!m.is_fuse());
        let f = parse_mountinfo_line("90 1 0:52 / /tmp/m rw - fuse.hangwatch hw rw,user_id=0")
            .expect("parses");
        assert!(f.is_fuse() && f.minor == 52);
        assert_eq!(parse_mountinfo_line("garbage"), None);
        assert_eq!(
            parse_fdinfo_file("pos:\t0\nflags:\t0100002\nmnt_id:\t31\nino:\t10019715\n"),
            Some((31, 10019715))
        );
        assert_eq!(parse_fdinfo_file("pos:\t0\nflags:\t02\n"), None);
    }
}
