//! File locks: who holds the lock a `flock` / `fcntl(F_SETLKW | F_OFD_SETLKW)` waits for.
//!
//! The kernel lists every file lock of the node in /proc/locks, and under each lock the
//! requests it blocks, on lines marked `->` with the same number:
//!
//! ```text
//! 1: POSIX  ADVISORY  WRITE 1140 fe:00:10019715 5 14
//! 1: -> POSIX  ADVISORY  WRITE 1183 fe:00:10019715 5 14
//! ```
//!
//! A waiter is matched to its line by the file (device and inode of the fd it waits on) and
//! its pid; the holder is the lock line it sits under. OFD locks show pid -1 (they belong to an
//! open file, not a process): their holders are the processes that have the file open. A
//! `FLOCK` line names the process that took the lock, which may have exited while a child that
//! inherited the fd still holds it: then too the holders are found by the open file.

pub use crate::model::facts::{Blocker, FileId, LockLine};
use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Read,
};

use crate::model::facts::Facts;
use crate::{
    model::Wait,
    procfs,
    sources::fdfile::{Mounts, file_id},
    syscalls::WaitOn,
};

/// Bytes of /proc/locks read at most (a node can have very many locks; about 60 bytes each).
pub const MAX_LOCKS_BYTES: u64 = 4 << 20;

/// Distinct blocking locks kept per waiter (a request is blocked by one lock at a time; a
/// few more cover the lines of several threads or OFD waiters of one file).
const MAX_BLOCKERS: usize = 16;

/// `fe:00:10019715` (hex major, hex minor, decimal inode).
fn parse_file_id(s: &str) -> Option<FileId> {
    let mut it = s.splitn(3, ':');
    let major = u32::from_str_radix(it.next()?, 16).ok()?;
    let minor = u32::from_str_radix(it.next()?, 16).ok()?;
    Some((major, minor, it.next()?.parse().ok()?))
}

/// One line of /proc/locks; None for anything malformed.
pub fn parse_line(l: &str) -> Option<LockLine> {
    let (id, rest) = l.split_once(':')?;
    let id = id.trim().parse().ok()?;
    let mut words = rest.split_ascii_whitespace().peekable();
    let mut depth = 0;
    while words.peek() == Some(&"->") {
        depth += 1;
        words.next();
    }
    let class = words.next()?.to_string();
    // ADVISORY / MANDATORY (or ACTIVE / BREAKING for leases): not needed.
    words.next()?;
    let access = words.next()?.to_string();
    let pid = words.next()?.parse().ok()?;
    let file = parse_file_id(words.next()?)?;
    let start = words.next()?.parse().ok()?;
    let end = match words.next()? {
        "EOF" => None,
        e => Some(e.parse().ok()?),
    };
    Some(LockLine { id, depth, class, access, pid, file, start, end })
}

/// Every waiter line of /proc/locks with the lock that blocks it (the nearest line above it of
/// the same number, one level up).
pub fn waits(text: &str) -> Vec<(LockLine, LockLine)> {
    let mut out = Vec::new();
    // The current line at each depth of the current lock number.
    let mut stack: Vec<LockLine> = Vec::new();
    for l in text.lines().filter_map(parse_line) {
        if stack.first().is_some_and(|top| top.id != l.id) || l.depth == 0 {
            stack.clear();
        }
        if l.depth > 0
            && let Some(blocker) = stack.get(l.depth - 1)
        {
            out.push((l.clone(), blocker.clone()));
        }
        stack.truncate(l.depth);
        if stack.len() == l.depth {
            stack.push(l);
        }
    }
    out
}

/// /proc/locks, at most `MAX_LOCKS_BYTES` (cut at the last full line); whether it was cut.
fn read_locks() -> (String, bool) {
    let mut s = String::new();
    let Ok(f) = fs::File::open("/proc/locks") else { return (s, false) };
    if f.take(MAX_LOCKS_BYTES).read_to_string(&mut s).is_err() {
        return (String::new(), false);
    }
    let cut = s.len() as u64 >= MAX_LOCKS_BYTES;
    if cut && let Some(nl) = s.rfind('\n') {
        s.truncate(nl + 1);
    }
    (s, cut)
}

/// Whether a wait is a lock wait: `flock` without `LOCK_NB`, `fcntl` `F_SETLKW`/`F_OFD_SETLKW`.
pub fn is_lock_wait(w: &Wait) -> bool {
    matches!(w.decoded.wait_on, WaitOn::FileLock { .. })
}

/// Fills `facts.lock_blockers` for the lock waits `(pid, fd)`.
pub fn gather(waiters: &[(i32, i32)], f: &mut Facts) {
    if waiters.is_empty() {
        return;
    }
    let (text, cut) = read_locks();
    if cut {
        log::warn!(
            "/proc/locks is larger than {MAX_LOCKS_BYTES} bytes: only its start was read, some lock holders may be missed"
        );
        f.locks_truncated = true;
    }
    let all = waits(&text);
    // (file, waiter pid) → the distinct locks blocking it: each waiter is then one lookup, so
    // 10,000 waiters on one file cost 10,000 steps, not 10,000².
    let mut index: HashMap<(FileId, i32), Vec<&LockLine>> = HashMap::new();
    for (waiter, lock) in &all {
        let v = index.entry((waiter.file, waiter.pid)).or_default();
        if !v.contains(&lock) && v.len() < MAX_BLOCKERS {
            v.push(lock);
        }
    }
    // Files whose holders must be found by who has them open.
    let mut by_open_file: HashSet<FileId> = HashSet::new();
    let mut mounts = Mounts::default();
    let mut alive: HashMap<i32, bool> = HashMap::new();
    let mut seen: HashSet<(i32, i32)> = HashSet::new();
    for &(pid, fd) in waiters {
        if !seen.insert((pid, fd)) {
            continue; // another thread of the same process on the same fd
        }
        let Some((file, _)) = file_id(pid, fd, &mut mounts) else { continue };
        f.lock_files.insert((pid, fd), file);
        let mut found: Vec<Blocker> = Vec::new();
        let own = index.get(&(file, pid)).into_iter().flatten();
        for lock in own.chain(index.get(&(file, -1)).into_iter().flatten()) {
            let named = lock.pid > 0
                && *alive
                    .entry(lock.pid)
                    .or_insert_with(|| fs::metadata(format!("/proc/{}", lock.pid)).is_ok());
            if !named {
                by_open_file.insert(file);
            }
            let holders = if named { vec![lock.pid] } else { vec![] };
            if !found.iter().any(|b| b.lock == **lock) {
                found.push(Blocker { lock: (*lock).clone(), holders });
            }
        }
        f.lock_blockers.insert((pid, fd), found);
    }
    if by_open_file.is_empty() {
        return;
    }
    // OFD locks, and flocks whose taker has exited: whoever has the file open.
    let mut open: HashMap<FileId, Vec<(i32, i32)>> = HashMap::new();
    for pid in procfs::list_pids() {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for e in rd.flatten() {
            let Ok(link) = fs::read_link(e.path()) else { continue };
            if !link.is_absolute() {
                continue; // pipe:[..], socket:[..], anon_inode:..
            }
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Some((file, _)) = file_id(pid, fd, &mut mounts) else { continue };
            if by_open_file.contains(&file) {
                open.entry(file).or_default().push((pid, fd));
            }
        }
    }
    for (&(pid, fd), blockers) in f.lock_blockers.iter_mut() {
        for b in blockers.iter_mut().filter(|b| b.holders.is_empty()) {
            let mut h: Vec<i32> = open
                .get(&b.lock.file)
                .into_iter()
                .flatten()
                .filter(|&&(p, d)| (p, d) != (pid, fd))
                .map(|&(p, _)| p)
                .collect();
            h.sort_unstable();
            h.dedup();
            b.holders = h;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        analysis::{Config, FindingKind, analyze},
        model::fixtures::{process, wait},
    };

    fn flock_wait(pid: i32) -> crate::model::Process {
        let mut w = wait("flock", 600.0, true);
        crate::syscalls::testing::on_fd(Arc::make_mut(&mut w.decoded), 3, Some("/var/lock/job"));
        process(pid, 5.0, 900.0, vec![Some(w)])
    }

    fn blocked_by(f: &mut Facts, waiter: i32, holder: i32) {
        let lock = parse_line(&format!("1: FLOCK  ADVISORY  WRITE {holder} fe:00:9 0 EOF"));
        let lock = lock.expect("parses");
        f.lock_blockers.insert((waiter, 3), vec![Blocker { lock, holders: vec![holder] }]);
    }

    fn cfg() -> Config {
        Config { now_mono_ns: 1_000_000_000_000, hung_after_ns: 30_000_000_000, oom_recent_ns: 0 }
    }

    #[test]
    fn two_processes_waiting_for_each_others_locks_are_a_deadlock() {
        let procs = vec![flock_wait(10), flock_wait(20)];
        let mut f = Facts::default();
        blocked_by(&mut f, 10, 20);
        blocked_by(&mut f, 20, 10);
        let found = analyze(&procs, &f, &cfg());
        assert_eq!(found[0].kind, FindingKind::Deadlock, "{found:#?}");
        let why: Vec<&str> = found[0].chain.iter().map(|s| s.waits_on.as_str()).collect();
        assert!(
            why.contains(&"file lock on /var/lock/job (FLOCK WRITE) held by pid 20"),
            "{why:?}"
        );
        // No line in /proc/locks for the wait (it raced): a way out, not a deadlock.
        f.lock_blockers.remove(&(20, 3));
        let found = analyze(&procs, &f, &cfg());
        assert!(found.iter().all(|x| x.kind != FindingKind::Deadlock), "{found:#?}");
    }

    #[test]
    fn a_holder_that_cannot_run_ends_the_chain_and_says_why() {
        let mut holder = process(20, 1.0, 900.0, vec![None]);
        holder.threads[0].state = 'T';
        let procs = vec![flock_wait(10), holder];
        let mut f = Facts::default();
        blocked_by(&mut f, 10, 20);
        f.cannot_run.insert(20, "cannot run: stopped (state T)".into());
        let found = analyze(&procs, &f, &cfg());
        let hung: Vec<_> = found.iter().filter(|x| x.kind == FindingKind::Hung).collect();
        assert_eq!(hung.len(), 1, "{found:#?}");
        let chain = &hung[0].chain;
        assert_eq!(chain.len(), 2, "{chain:#?}");
        assert_eq!(
            (chain[1].pid, chain[1].waits_on.as_str()),
            (20, "cannot run: stopped (state T)")
        );
    }

    const LOCKS: &str = "1: POSIX  ADVISORY  WRITE 1140 fe:00:10019715 5 14
1: -> POSIX  ADVISORY  WRITE 1183 fe:00:10019715 5 14
1: -> POSIX  ADVISORY  READ 1184 fe:00:10019715 0 EOF
1: -> -> POSIX  ADVISORY  WRITE 1190 fe:00:10019715 8 9
2: FLOCK  ADVISORY  WRITE 1140 fe:00:10019714 0 EOF
2: -> FLOCK  ADVISORY  WRITE 1182 fe:00:10019714 0 EOF
3: OFDLCK ADVISORY  READ -1 00:1a:77 0 EOF
3: -> OFDLCK ADVISORY  WRITE -1 00:1a:77 0 EOF
4: FLOCK  ADVISORY  READ 825 fe:00:10133506 0 EOF
garbage
5: POSIX ADVISORY WRITE x fe:00:1 0 EOF
";

    #[test]
    fn lines() {
        assert_eq!(
            parse_line("1: -> POSIX  ADVISORY  WRITE 1183 fe:00:10019715 5 14"),
            Some(LockLine {
                id: 1,
                depth: 1,
                class: "POSIX".into(),
                access: "WRITE".into(),
                pid: 1183,
                file: (0xfe, 0, 10019715),
                start: 5,
                end: Some(14),
            })
        );
        let ofd = parse_line("3: OFDLCK ADVISORY  READ -1 00:1a:77 0 EOF").expect("parses");
        assert_eq!((ofd.pid, ofd.file, ofd.end), (-1, (0, 0x1a, 77), None));
        assert_eq!(ofd.describe(), "OFDLCK READ 0-EOF");
        for bad in ["", "garbage", "x: FLOCK ADVISORY WRITE 1 fe:00:1 0 EOF", "1: FLOCK ADVISORY"] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn waiters_under_their_blockers() {
        let w = waits(LOCKS);
        let pairs: Vec<(i32, i32)> = w.iter().map(|(a, b)| (a.pid, b.pid)).collect();
        assert_eq!(pairs, vec![(1183, 1140), (1184, 1140), (1190, 1184), (1182, 1140), (-1, -1)]);
        assert_eq!(w[0].1.describe(), "POSIX WRITE 5-14");
        assert_eq!(w[3].1.describe(), "FLOCK WRITE");
        // A waiter line with no lock above it is ignored.
        assert!(waits("7: -> FLOCK ADVISORY WRITE 9 fe:00:1 0 EOF\n").is_empty());
    }
}
