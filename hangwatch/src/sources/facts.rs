//! Gathers the [`Facts`] from /proc, /sys and netlink (through the readers of this
//! directory): only what the blocked threads point at is read; a process that vanishes
//! meanwhile is skipped, never an error.

use std::{
    collections::{HashMap, HashSet},
    fs,
};

pub use crate::model::facts::*;
use crate::{
    model::Process,
    procfs,
    sources::{cgroup, quiet::QuietCache},
    syscalls::{ChildWait, TaskView, WaitOn},
};

/// `7f..-7f.. rw-s 00000000 00:05 1234   /dev/shm/sem.x (deleted)`
pub fn parse_maps_line(l: &str) -> Option<Mapping> {
    crate::sources::maps::parse_line(l).map(crate::sources::maps::MapsLine::to_mapping)
}

/// The futex key of `addr` in a process with these mappings: shared when the address is in a
/// shared mapping of an object (a file, /dev/shm, a memfd, shared anonymous memory), else
/// private. A futex op without FUTEX_PRIVATE_FLAG on private memory is private too.
pub fn futex_key(pid: i32, addr: u64, maps: &[Mapping]) -> FutexKey {
    match maps.iter().find(|m| m.start <= addr && addr < m.end) {
        Some(m) if m.shared && m.inode != 0 => FutexKey::Shared {
            dev: m.dev.clone(),
            inode: m.inode,
            // Wrapping, as in the kernel's own u64 arithmetic: a maps line with an absurd
            // offset must not panic, and two addresses keep two distinct keys.
            offset: m.offset.wrapping_add(addr - m.start),
        },
        _ => FutexKey::Private { pid, addr },
    }
}

/// The futex key of `addr` in `pid`, from a bounded walk of its maps ([`crate::sources::maps`]), with
/// the mapping it lies in. Unreadable maps, or an address past the bounds: private.
fn futex_key_of(pid: i32, addr: u64, truncated: &mut u64) -> (FutexKey, Option<Mapping>) {
    match crate::sources::maps::find(pid, addr) {
        Ok((found, walk)) => {
            if found.is_none() && walk.truncated {
                *truncated += 1;
                log::debug!("pid {pid}: maps cut at the read bounds before {addr:#x}");
            }
            let maps: Vec<Mapping> = found.into_iter().collect();
            let key = futex_key(pid, addr, &maps);
            (key, maps.into_iter().next())
        }
        Err(_) => (FutexKey::Private { pid, addr }, None),
    }
}

/// "pipe:[123]" → (123, Pipe); "socket:[9]" → (9, Socket).
pub fn parse_target(t: &str) -> Option<(u64, Kind)> {
    let (kind, rest) = if let Some(r) = t.strip_prefix("pipe:[") {
        (Kind::Pipe, r)
    } else if let Some(r) = t.strip_prefix("socket:[") {
        (Kind::Socket, r)
    } else {
        return None;
    };
    Some((rest.strip_suffix(']')?.parse().ok()?, kind))
}

/// `flags:` of /proc/PID/fdinfo/N (octal) → access mode.
pub fn parse_fdinfo_mode(fdinfo: &str) -> Mode {
    let flags = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(2);
    match flags & 3 {
        0 => Mode::Read,
        1 => Mode::Write,
        _ => Mode::ReadWrite,
    }
}

/// `tfd: 5 events: 19 data: ...` lines of an epoll fd's fdinfo.
pub fn parse_epoll_fdinfo(fdinfo: &str) -> Vec<(i32, u32)> {
    parse_epoll_fdinfo_bounded(fdinfo, usize::MAX).0
}

/// Most fds of one epoll set read. A process can put hundreds of thousands of fds in a set;
/// each one read costs a readlink per scan. The analysis treats the fds past the bound as a
/// way out it cannot see (never a deadlock on a partial set).
pub const MAX_EPOLL_FDS: usize = 1024;
/// Most bytes of an epoll fd's fdinfo read: the header and [`MAX_EPOLL_FDS`] `tfd:` lines of
/// at most ~100 bytes each.
pub const MAX_EPOLL_FDINFO_BYTES: usize = 128 * 1024;

/// The first `max` `tfd:` entries, and whether there were more. A last line cut by a byte
/// bound (no newline) is not parsed: its numbers may be cut too.
pub fn parse_epoll_fdinfo_bounded(fdinfo: &str, max: usize) -> (Vec<(i32, u32)>, bool) {
    let mut out = Vec::new();
    let complete = match fdinfo.rfind('\n') {
        Some(i) if i + 1 < fdinfo.len() => &fdinfo[..=i],
        Some(_) => fdinfo,
        None => "",
    };
    for l in complete.lines() {
        let Some(l) = l.trim_start().strip_prefix("tfd:") else { continue };
        if out.len() >= max {
            return (out, true);
        }
        let mut it = l.split_ascii_whitespace();
        let (Some(fd), _, Some(ev)) = (it.next(), it.next(), it.next()) else { continue };
        if let (Ok(fd), Ok(ev)) = (fd.parse(), u32::from_str_radix(ev, 16)) {
            out.push((fd, ev));
        }
    }
    (out, false)
}

/// The epoll set of `epfd` in `pid`, bounded: at most [`MAX_EPOLL_FDINFO_BYTES`] read and
/// [`MAX_EPOLL_FDS`] entries kept; `true` when the set holds more.
pub fn read_epoll_set(pid: i32, epfd: i32) -> (Vec<(i32, u32)>, bool) {
    let path = format!("/proc/{pid}/fdinfo/{epfd}");
    let Some((bytes, more)) =
        procfs::read_bounded(std::path::Path::new(&path), MAX_EPOLL_FDINFO_BYTES)
    else {
        return (Vec::new(), false);
    };
    let (set, over) = parse_epoll_fdinfo_bounded(&String::from_utf8_lossy(&bytes), MAX_EPOLL_FDS);
    (set, over || more)
}

/// Listening socket inodes from /proc/net/tcp{,6} (state 0A) and /proc/net/unix
/// (flag __SO_ACCEPTCON 0x10000).
pub fn parse_listening_tcp(s: &str) -> Vec<u64> {
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            (f.get(3) == Some(&"0A")).then(|| f.get(9)?.parse().ok()).flatten()
        })
        .collect()
}

pub fn parse_listening_unix(s: &str) -> Vec<u64> {
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (flags & 0x10000 != 0).then(|| f.get(6)?.parse().ok()).flatten()
        })
        .collect()
}

/// Gathers the facts for the blocked threads of `procs` (all processes scanned, so that the
/// other ends of pipes can be found in any of them).
pub fn gather(
    procs: &[Process],
    view_for: &dyn Fn(i32) -> Box<dyn TaskView>,
    oom_kills: Vec<OomFact>,
) -> Facts {
    gather_with(procs, view_for, oom_kills, &mut QuietCache::default())
}

/// [`gather`], answering from `quiet` what cannot have changed since its last pass (live
/// mode keeps one across passes).
#[allow(
    clippy::too_many_lines,
    reason = "one pass per fact source, in order: later passes look up what earlier ones found"
)]
pub fn gather_with(
    procs: &[Process],
    view_for: &dyn Fn(i32) -> Box<dyn TaskView>,
    oom_kills: Vec<OomFact>,
    quiet: &mut QuietCache,
) -> Facts {
    let mut f = Facts { oom_kills, ..Default::default() };
    quiet.begin(procs, procfs::monotonic_ns());
    let mut wanted: HashSet<u64> = HashSet::new();
    let mut lock_waiters: Vec<(i32, i32)> = Vec::new();
    let mut fifos = crate::sources::fifo::Fifos::default();
    let scanned: HashSet<i32> = procs.iter().map(|p| p.pid).collect();
    for p in procs {
        gather_verdict_facts(p, &scanned, &mut f, quiet);
        let mut view: Option<Box<dyn TaskView>> = None;
        // addr → key, so that many waiters on one futex walk the maps once.
        let mut own_keys: HashMap<u64, FutexKey> = HashMap::new();
        for (t, w) in p.blocked_threads() {
            let v = view.get_or_insert_with(|| view_for(p.pid));
            if crate::sources::locks::is_lock_wait(w)
                && let Some(fd) = w.decoded.fds.first()
            {
                lock_waiters.push((p.pid, *fd));
            }
            let mut fds = w.decoded.fds.clone();
            if let Some(epfd) = w.decoded.wait_on.epfd() {
                // Threads of one process often share one epoll set: read it once.
                if !f.epoll_sets.contains_key(&(p.pid, epfd)) {
                    let (set, truncated) = read_epoll_set(p.pid, epfd);
                    if truncated {
                        f.epoll_truncated.insert((p.pid, epfd));
                    }
                    fds.extend(set.iter().map(|(fd, _)| *fd));
                    f.epoll_sets.insert((p.pid, epfd), set);
                }
            }
            for fd in fds {
                let target = v.fd_target(fd);
                if let Some((ino, kind)) = target.as_deref().and_then(parse_target) {
                    f.fd_inode.insert((p.pid, fd), (ino, kind));
                    wanted.insert(ino);
                } else if let Some(path) = target
                    && let Some(key) = fifos.register(p.pid, fd, &path)
                {
                    f.fd_inode.insert((p.pid, fd), (key, Kind::Pipe));
                    f.fifo_names.insert(key, path);
                    wanted.insert(key);
                }
            }
            if let WaitOn::Futex(futex) = &w.decoded.wait_on {
                let (addr, private) = (futex.uaddr, futex.private);
                let key = if private {
                    FutexKey::Private { pid: p.pid, addr }
                } else if let Some(k) = own_keys.get(&addr) {
                    k.clone()
                } else {
                    let (key, m) = futex_key_of(p.pid, addr, &mut f.maps_truncated);
                    if let (FutexKey::Shared { dev, inode, .. }, Some(m)) = (&key, m) {
                        f.object_paths.insert((dev.clone(), *inode), m.path);
                    }
                    own_keys.insert(addr, key.clone());
                    key
                };
                f.futex_key.insert((p.pid, t.tid), key);
                let word =
                    v.read_mem(addr, 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
                // The address is the process's to choose: no overflow past the top.
                let owner = addr
                    .checked_add(8)
                    .and_then(|a| v.read_mem(a, 4))
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes);
                if let Some(word) = word {
                    f.futex_words.insert(t.tid, (word, owner));
                }
                if let (Some(2), Some(o)) = (word, owner.map(|o| o as i32)) {
                    lost_owner_facts(p, o, &mut f);
                }
            }
        }
        if p.threads.iter().filter(|t| t.state == 'R').count() > 0
            && let Some(cg) = cgroup::cpu_cgroup(p.pid)
        {
            if !f.cpu_quota.contains_key(&cg)
                && let Some(q) = cgroup::cpu_quota(&cg)
            {
                f.cpu_quota.insert(cg.clone(), q);
            }
            f.cpu_cgroup_of.insert(p.pid, cg);
        }
    }
    // Who maps the shared objects that futex waits point into.
    if !f.object_paths.is_empty() {
        let inodes: HashSet<u64> = f.object_paths.keys().map(|(_, ino)| *ino).collect();
        for pid in procfs::list_pids() {
            let mut hits: Vec<(String, u64)> = Vec::new();
            let walk = crate::sources::maps::shared_objects(pid, |dev, inode| {
                if inodes.contains(&inode)
                    && f.object_paths.contains_key(&(dev.to_string(), inode))
                    && !hits.iter().any(|(d, i)| *i == inode && d == dev)
                {
                    hits.push((dev.to_string(), inode));
                }
            });
            if walk.is_ok_and(|w| w.truncated) {
                f.maps_truncated += 1;
                log::debug!(
                    "pid {pid}: maps cut at the read bounds; its shared objects may be missed"
                );
            }
            for obj in hits {
                f.object_mappers.entry(obj).or_default().insert(pid);
            }
        }
    }
    crate::sources::locks::gather(&lock_waiters, &mut f);
    crate::sources::fuse::gather(procs, &mut f);
    if wanted.is_empty() {
        crate::sources::runnable::gather(procs, &mut f, quiet);
        return f;
    }
    // The other ends of the Unix sockets they wait on (sock_diag; a failure leaves them
    // unknown, which the analysis treats as "a releaser hangwatch cannot see").
    if f.fd_inode.values().any(|(_, kind)| *kind == Kind::Socket) {
        match crate::sources::unix_diag::peers() {
            Ok(all) => {
                let ours: Vec<u64> = wanted.iter().copied().collect();
                for ino in ours {
                    if let Some(&peer) = all.get(&ino) {
                        f.unix_peer.insert(ino, peer);
                        wanted.insert(peer);
                    }
                }
            }
            Err(e) => log::debug!("unix socket peers unknown: sock_diag: {e}"),
        }
        // The others may be TCP/UDP sockets whose peer is on this node.
        let rest: HashSet<u64> = f
            .fd_inode
            .values()
            .filter(|(ino, kind)| *kind == Kind::Socket && !f.unix_peer.contains_key(ino))
            .map(|(ino, _)| *ino)
            .collect();
        if !rest.is_empty() {
            let (peers, _cut) = crate::sources::inet::local_peers(&rest);
            for (ino, peer) in peers {
                wanted.insert(peer.inode);
                f.inet_peer.insert(ino, peer);
            }
        }
    }
    // Who holds the pipes and sockets the blocked threads wait on: every process's fd table,
    // served from `quiet` for the processes that have not run since it was read.
    for pid in procfs::list_pids() {
        let table = quiet.fd_table(pid);
        if table.cut {
            f.fd_tables_cut.insert(pid);
        }
        for (fd, link) in &table.links {
            let fd = *fd;
            let ino = match parse_target(link) {
                Some((ino, _)) => ino,
                None if !fifos.is_empty() => {
                    let Some(key) = fifos.holds(pid, fd, link) else { continue };
                    key
                }
                None => continue,
            };
            if !wanted.contains(&ino) {
                continue;
            }
            let mode = quiet.fd_mode(pid, fd);
            f.holders.entry(ino).or_default().push(Holder { pid, fd, mode });
        }
    }
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        f.listening.extend(parse_listening_tcp(&fs::read_to_string(path).unwrap_or_default()));
    }
    f.listening
        .extend(parse_listening_unix(&fs::read_to_string("/proc/net/unix").unwrap_or_default()));
    crate::sources::runnable::gather(procs, &mut f, quiet);
    log::debug!(
        "facts: {} reads answered from {} quiet processes ({} new, {} ran since, {} expired), \
         {} read from /proc",
        quiet.hits,
        quiet.len(),
        quiet.opened,
        quiet.changed,
        quiet.expired,
        quiet.misses
    );
    f
}

/// Whether tid `o` is a thread of `p` per /proc/PID/task (bounded: `o` is read from a futex
/// word, which the process controls); if not, which process it belongs to, if any.
fn lost_owner_facts(p: &Process, o: i32, f: &mut Facts) {
    if o <= 0 || p.threads.iter().any(|t| t.tid == o) || f.absent_tasks.contains(&(p.pid, o)) {
        return;
    }
    if std::path::Path::new(&format!("/proc/{}/task/{o}", p.pid)).exists() {
        return;
    }
    f.absent_tasks.insert((p.pid, o));
    if let Some(tgid) = fs::read_to_string(format!("/proc/{o}/status"))
        .ok()
        .and_then(|s| status_field(&s, "Tgid:").and_then(|v| v.parse::<i32>().ok()))
    {
        f.tid_tgid.insert(o, tgid);
    }
}

/// One field of /proc/PID/status, trimmed.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// `SigCgt:` of /proc/PID/status, a hex mask (bit n-1 for signal n).
pub fn parse_sig_caught(status: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, "SigCgt:")?, 16).ok()
}

/// What the verdict rules need beyond the wait-for edges: the signals a process whose main
/// thread waits forever catches, and whether a child it waits for is gone.
fn gather_verdict_facts(
    p: &Process,
    scanned: &HashSet<i32>,
    f: &mut Facts,
    quiet: &mut QuietCache,
) {
    let main_waits = p
        .threads
        .iter()
        .find(|t| t.tid == p.pid)
        .and_then(|t| t.blocked.as_ref())
        .is_some_and(|w| w.decoded.infinite);
    if main_waits && let Some(mask) = quiet.sig_caught(p.pid) {
        f.sig_caught.insert(p.pid, mask);
    }
    for (_, w) in p.blocked_threads() {
        if let WaitOn::Child(ChildWait::Pid(c)) = w.decoded.wait_on
            && c > 0
            && !scanned.contains(&c)
            && !std::path::Path::new(&format!("/proc/{c}")).exists()
        {
            f.absent_tasks.insert((c, c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_caught() {
        let s = "Name:\tpython3\nSigIgn:\t0000000001001000\nSigCgt:\t0000000100004002\n";
        assert_eq!(parse_sig_caught(s), Some(0x1_0000_4002));
        assert_eq!(parse_sig_caught("Name:\tx\n"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("pipe:[123]"), Some((123, Kind::Pipe)));
        assert_eq!(parse_target("socket:[9]"), Some((9, Kind::Socket)));
        assert_eq!(parse_target("/dev/null"), None);
        assert_eq!(parse_target("pipe:[x]"), None);
    }

    #[test]
    fn maps_and_futex_keys() {
        let maps: Vec<Mapping> = [
            "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]",
            "7f1000000000-7f1000001000 rw-s 00000000 00:1a 4242                       /dev/shm/sem.Ab12Cd (deleted)",
            "7f2000000000-7f2000400000 rw-s 00200000 08:01 77 /var/lib/db/shared mem",
            "7f3000000000-7f3000001000 rw-p 00000000 00:00 0",
            "garbage",
        ]
        .iter()
        .filter_map(|l| parse_maps_line(l))
        .collect();
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].path, "/dev/shm/sem.Ab12Cd (deleted)");
        assert_eq!(maps[2].path, "/var/lib/db/shared mem");
        assert!(maps[1].shared && !maps[0].shared);
        // In a shared object: keyed by the object and the offset in it (page offset included).
        assert_eq!(
            futex_key(9, 0x7f1000000010, &maps),
            FutexKey::Shared { dev: "00:1a".into(), inode: 4242, offset: 0x10 }
        );
        assert_eq!(
            futex_key(9, 0x7f2000000100, &maps),
            FutexKey::Shared { dev: "08:01".into(), inode: 77, offset: 0x200100 }
        );
        // Private memory, or no mapping at all: private.
        assert_eq!(
            futex_key(9, 0x55d0c0000100, &maps),
            FutexKey::Private { pid: 9, addr: 0x55d0c0000100 }
        );
        assert_eq!(futex_key(9, 0x10, &maps), FutexKey::Private { pid: 9, addr: 0x10 });
    }

    #[test]
    fn fdinfo() {
        assert_eq!(parse_fdinfo_mode("pos:\t0\nflags:\t00\nmnt_id:\t15\n"), Mode::Read);
        assert_eq!(parse_fdinfo_mode("pos:\t0\nflags:\t02000001\n"), Mode::Write);
        assert_eq!(parse_fdinfo_mode("flags:\t02004002\n"), Mode::ReadWrite);
        let ep = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\ntfd:        5 events:       19 data:                5  pos:0 ino:7d2 sdev:c\ntfd:        7 events:        4 data: 7 pos:0 ino:7d3 sdev:c\n";
        assert_eq!(parse_epoll_fdinfo(ep), vec![(5, 0x19), (7, 4)]);
        assert_eq!(parse_epoll_fdinfo_bounded(ep, 1), (vec![(5, 0x19)], true));
        assert_eq!(parse_epoll_fdinfo_bounded(ep, 2), (vec![(5, 0x19), (7, 4)], false));
        // Cut by a byte bound in the middle of a line: that line is dropped, not misread.
        let cut = &ep[..ep.len() - 30];
        assert_eq!(parse_epoll_fdinfo_bounded(cut, 10), (vec![(5, 0x19)], false));
        assert_eq!(parse_epoll_fdinfo_bounded("tfd: x events: zz\ntfd:\n", 10), (vec![], false));
    }

    #[test]
    fn listening() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1205 1 0000 100 0 0 10 0\n   1: 0100007F:A000 0100007F:07E8 01 00000000:00000000 00:00000000 00000000     0        0 1300 1 0000\n";
        assert_eq!(parse_listening_tcp(tcp), vec![1205]);
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n0000: 00000002 00000000 00010000 0001 01 4242 /run/x.sock\n0000: 00000003 00000000 00000000 0001 03  1201\n";
        assert_eq!(parse_listening_unix(unix), vec![4242]);
    }
}
