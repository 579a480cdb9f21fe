//! The kernel log (/dev/kmsg): the OOM kills it still holds, also those from before hangwatch
//! started, with what only the log says (the constraint, the cgroups, the limit that was hit).
//!
//! The parsers are pure functions over the text (unit-tested with records copied from real
//! kernels); the reader never blocks and never fails the caller: an unreadable log gives an
//! empty result with a debug log line.

use std::{
    fs::OpenOptions,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
};

use crate::model::oom::{OomKill, SAME_KILL_US};

/// The `memory: usage` line of a report belongs to a kill at most this much later (µs).
const REPORT_TO_KILL_US: u64 = 10_000_000;

/// One /dev/kmsg record: `PRIO,SEQ,TS_USEC,FLAGS[,...];MESSAGE` then continuation lines
/// (starting with a space) with `KEY=VALUE` pairs, which are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Facility × 8 + level.
    pub prio: u32,
    pub seq: u64,
    pub ts_us: u64,
    /// The message with the kernel's `\xNN` escapes undone (lossy UTF-8).
    pub message: String,
}

pub fn parse_kmsg_record(rec: &str) -> Option<KmsgRecord> {
    let first = rec.split('\n').next()?;
    let (head, msg) = first.split_once(';')?;
    let mut f = head.split(',');
    let prio = f.next()?.trim().parse().ok()?;
    let seq = f.next()?.trim().parse().ok()?;
    let ts_us = f.next()?.trim().parse().ok()?;
    Some(KmsgRecord { prio, seq, ts_us, message: unescape(msg) })
}

/// Undoes the `\xNN` escapes /dev/kmsg uses for non-printable bytes and backslashes.
///
/// The result is the victim's name as the process set it, hostile bytes included, the same
/// text /proc gave while it lived: JSON carries it escaped by serde, and the human report and
/// the TUI show it only through [`crate::escape`] (tested in `output::human` and `tui`). It is
/// never written to a terminal as decoded here.
fn unescape(s: &str) -> String {
    if !s.contains("\\x") {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `1234kB` → bytes.
fn kb_bytes(v: &str) -> Option<u64> {
    v.trim()
        .trim_end_matches(',')
        .strip_suffix("kB")?
        .parse::<u64>()
        .ok()
        .map(|k| k.saturating_mul(1024))
}

/// `memory: usage 204800kB, limit 204800kB, failcnt 123` → (usage, limit) in bytes. Only the
/// `memory:` line (not `memory+swap:`, `swap:` or `kmem:`). A limit of "no limit" (the page
/// counter's maximum, ≥ 2^62) is `None`.
pub fn parse_memcg_usage_line(msg: &str) -> Option<(u64, Option<u64>)> {
    let rest = msg.strip_prefix("memory: usage ")?;
    let (usage, rest) = rest.split_once(", limit ")?;
    let limit = rest.split(',').next()?;
    let limit = kb_bytes(limit)?;
    Some((kb_bytes(usage)?, (limit < 1 << 62).then_some(limit)))
}

/// The fields of an `oom-kill:constraint=...` line (kernel 4.19 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKillLine {
    pub constraint: String,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub task: String,
    pub pid: i32,
    pub uid: Option<u32>,
}

fn constraint_name(c: &str) -> &'static str {
    match c {
        "CONSTRAINT_MEMCG" => "memcg",
        "CONSTRAINT_NONE" => "global",
        "CONSTRAINT_CPUSET" => "cpuset",
        "CONSTRAINT_MEMORY_POLICY" => "memory_policy",
        _ => "unknown",
    }
}

/// Parses `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,
/// oom_memcg=/x,task_memcg=/x,task=python3,pid=1234,uid=0` (global OOMs have `global_oom`
/// instead of `oom_memcg=`).
///
/// The fields are in a fixed order, but cgroup paths and the task name may contain commas,
/// so `pid` and `uid` are taken from the end and the paths between the known keys.
pub fn parse_oom_kill_line(msg: &str) -> Option<OomKillLine> {
    let rest = msg.strip_prefix("oom-kill:")?;
    let (rest, uid) = match rest.rsplit_once(",uid=") {
        Some((r, u)) => (r, u.trim().parse().ok()),
        None => (rest, None),
    };
    let (rest, pid) = rest.rsplit_once(",pid=")?;
    let pid = pid.trim().parse().ok()?;
    let constraint = rest.strip_prefix("constraint=")?.split(',').next()?;
    let (before_task, task) = rest.rsplit_once(",task=")?;
    let (before_memcg, task_memcg) = match before_task.split_once(",task_memcg=") {
        Some((b, t)) => (b, Some(t.to_string())),
        None => (before_task, None),
    };
    let oom_memcg = before_memcg.split_once(",oom_memcg=").map(|(_, m)| m.to_string());
    Some(OomKillLine {
        constraint: constraint_name(constraint).to_string(),
        oom_memcg,
        task_memcg,
        task: task.to_string(),
        pid,
        uid,
    })
}

/// Parses `Memory cgroup out of memory: Killed process 1234 (python3) total-vm:123456kB,
/// anon-rss:98765kB, file-rss:1234kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0`
/// and the global `Out of memory: Killed process ...` (older kernels end after shmem-rss or
/// file-rss). The constraint is "memcg" for the first form and "unknown" for the second
/// (global, cpuset and mempolicy OOMs all print "Out of memory").
pub fn parse_killed_line(msg: &str, ts_us: u64) -> Option<OomKill> {
    let at = msg.find("Killed process ")?;
    let prefix = &msg[..at];
    let rest = &msg[at + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(" (")?;
    let pid: i32 = pid.trim().parse().ok()?;
    // The comm may contain ") ": it ends at the last ')' before the first key.
    let keys_at = rest.find(") total-vm:").map(|i| i + 1).unwrap_or(rest.len());
    let comm_end = rest[..keys_at].rfind(')')?;
    let mut k = OomKill::new(ts_us, pid, "kmsg");
    k.comm = rest[..comm_end].to_string();
    if prefix.contains("Memory cgroup out of memory") {
        k.constraint = "memcg".into();
    }
    for word in rest[keys_at..].split([' ', ',']).filter(|w| !w.is_empty()) {
        let Some((key, v)) = word.split_once(':') else { continue };
        match key {
            "total-vm" => k.total_vm_bytes = kb_bytes(v),
            "anon-rss" => k.anon_rss_bytes = kb_bytes(v),
            "file-rss" => k.file_rss_bytes = kb_bytes(v),
            "shmem-rss" => k.shmem_rss_bytes = kb_bytes(v),
            "UID" => k.uid = v.parse().ok(),
            "oom_score_adj" => k.oom_score_adj = v.parse().ok(),
            _ => {}
        }
    }
    Some(k)
}

/// `Task in /a killed as a result of limit of /b` (kernels before 4.19) → (task, oom) memcg.
fn parse_task_in_line(msg: &str) -> Option<(String, String)> {
    let rest = msg.strip_prefix("Task in ")?;
    let (task, oom) = rest.split_once(" killed as a result of limit of ")?;
    Some((task.to_string(), oom.trim_end().to_string()))
}

/// The OOM report being read: what came before its `oom-kill:` / `Killed process` lines.
#[derive(Debug, Default)]
struct Report {
    ts_us: u64,
    usage: Option<u64>,
    limit: Option<u64>,
    memcgs: Option<(String, String)>,
}

/// Merges `k` into the kill of the same pid at most [`SAME_KILL_US`] away, or appends it.
fn merge_or_push(kills: &mut Vec<OomKill>, k: OomKill) {
    let same = kills.iter_mut().rev().take(8).find(|o| {
        o.host_pid == k.host_pid && o.time_boot_us.abs_diff(k.time_boot_us) <= SAME_KILL_US
    });
    match same {
        Some(o) => o.fill_from(&k),
        None => kills.push(k),
    }
}

/// The OOM kills in a sequence of /dev/kmsg records (oldest first). Lines of one kill are
/// merged: the `memory: usage ..., limit ...` line of a memcg OOM report gives the limit of
/// the kill that follows it, the `oom-kill:` line the constraint and cgroups, the
/// `Killed process` line the victim's memory. Records that are not about OOM are skipped.
pub fn parse_kmsg_records(records: &[&str]) -> Vec<OomKill> {
    let mut kills: Vec<OomKill> = Vec::new();
    let mut report: Option<Report> = None;
    for rec in records {
        let Some(r) = parse_kmsg_record(rec) else { continue };
        let msg = r.message.as_str();
        if msg.contains(" invoked oom-killer: ") {
            report = Some(Report { ts_us: r.ts_us, ..Report::default() });
            continue;
        }
        if let Some((usage, limit)) = parse_memcg_usage_line(msg) {
            let rep = report.get_or_insert_with(|| Report { ts_us: r.ts_us, ..Report::default() });
            rep.usage = Some(usage);
            rep.limit = limit;
            continue;
        }
        if let Some(m) = parse_task_in_line(msg) {
            report.get_or_insert_with(|| Report { ts_us: r.ts_us, ..Report::default() }).memcgs =
                Some(m);
            continue;
        }
        let mut kill = if let Some(l) = parse_oom_kill_line(msg) {
            let mut k = OomKill::new(r.ts_us, l.pid, "kmsg");
            k.comm = l.task;
            k.constraint = l.constraint;
            k.cgroup = l.task_memcg;
            k.oom_memcg = l.oom_memcg;
            k.uid = l.uid;
            k
        } else if let Some(k) = parse_killed_line(msg, r.ts_us) {
            k
        } else {
            continue;
        };
        // The report's lines belong to the first kill after it (one report, one kill).
        if let Some(rep) = report.take()
            && r.ts_us.saturating_sub(rep.ts_us) <= REPORT_TO_KILL_US
        {
            kill.memory_usage_bytes = rep.usage;
            kill.memory_limit_bytes = rep.limit;
            if let Some((task, oom)) = rep.memcgs {
                kill.cgroup.get_or_insert(task);
                kill.oom_memcg.get_or_insert(oom);
            }
        }
        merge_or_push(&mut kills, kill);
    }
    kills
}

/// Reads every record /dev/kmsg still holds, without blocking. Records overwritten while
/// reading (EPIPE) are skipped.
pub fn read_kmsg_raw() -> io::Result<Vec<String>> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/kmsg")?;
    // One read() returns one record; records are at most ~8 KiB with their dictionary.
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN) => break,
                // The reader fell behind the ring buffer: the next read resumes at the oldest
                // record still there.
                Some(libc::EPIPE) | Some(libc::EINTR) => continue,
                _ if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            },
        }
    }
    Ok(out)
}

/// The OOM kills still in the kernel log (also those from before hangwatch started).
pub fn try_read_kmsg_history() -> io::Result<Vec<OomKill>> {
    let raw = read_kmsg_raw()?;
    let recs: Vec<&str> = raw.iter().map(String::as_str).collect();
    Ok(parse_kmsg_records(&recs))
}

/// [`try_read_kmsg_history`], empty (with a debug log line) if /dev/kmsg cannot be read
/// (not root, `kernel.dmesg_restrict`, a container without /dev/kmsg).
pub fn read_kmsg_history() -> Vec<OomKill> {
    try_read_kmsg_history().unwrap_or_else(|e| {
        log::debug!("cannot read /dev/kmsg: {e}; OOM kills from before the start are not shown");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::oom::{OomVictimEvent, merge_kills};

    /// A memcg OOM as Linux 6.18 logs it (cgroup v1), abridged (stack, stats).
    const MEMCG_OOM: &[&str] = &[
        "6,338,1276409,-;EXT4-fs (vda): mounted filesystem r/w without journal.",
        "4,339,1174806524,-;hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "4,340,1174806541,-;CPU: 0 UID: 0 PID: 22436 Comm: hog Not tainted 6.18.44 #1 PREEMPT(none) ",
        "4,346,1174806612,-; out_of_memory+0x214/0x500",
        "6,367,1174806770,-;memory: usage 65536kB, limit 65536kB, failcnt 23",
        "6,368,1174806779,-;memory+swap: usage 65536kB, limit 9007199254740988kB, failcnt 0",
        "6,369,1174806788,-;kmem: usage 188kB, limit 9007199254740988kB, failcnt 0",
        "6,370,1174806790,-;Memory cgroup stats for /hwscratch-21836:",
        "6,372,1174806813,-;rss 66916352",
        "6,414,1174806867,-;[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
        "6,415,1174806874,-;[  22436]     0 22436    17067    16553    16320      233         0   176128        0             0 hog",
        "6,416,1174806879,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/hwscratch-21836,task_memcg=/hwscratch-21836,task=hog,pid=22436,uid=0",
        "3,417,1174806894,-;Memory cgroup out of memory: Killed process 22436 (hog) total-vm:68268kB, anon-rss:65280kB, file-rss:932kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:0",
        "6,418,1174810000,-;oom_reaper: reaped process 22436 (hog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
    ];

    #[test]
    fn memcg_kill_merged_with_its_limit() {
        let kills = parse_kmsg_records(MEMCG_OOM);
        assert_eq!(kills.len(), 1, "{kills:#?}");
        let k = &kills[0];
        assert_eq!(k.time_boot_us, 1174806879);
        assert_eq!((k.pid, k.comm.as_str()), (22436, "hog"));
        assert_eq!(k.constraint, "memcg");
        assert_eq!(k.cgroup.as_deref(), Some("/hwscratch-21836"));
        assert_eq!(k.oom_memcg.as_deref(), Some("/hwscratch-21836"));
        assert_eq!(k.memory_limit_bytes, Some(64 << 20));
        assert_eq!(k.memory_usage_bytes, Some(64 << 20));
        assert_eq!(k.anon_rss_bytes, Some(65280 * 1024));
        assert_eq!(k.file_rss_bytes, Some(932 * 1024));
        assert_eq!(k.shmem_rss_bytes, Some(0));
        assert_eq!(k.total_vm_bytes, Some(68268 * 1024));
        assert_eq!((k.uid, k.oom_score_adj), (Some(0), Some(0)));
        assert_eq!(k.source, "kmsg");
    }

    #[test]
    fn global_oom_and_cgroup_v2_paths() {
        let recs = [
            "4,1,5000000,-;stress invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
            "6,2,5000100,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice/user-1000.slice/session-2.scope,task=stress,pid=4321,uid=1000",
            "3,3,5000200,-;Out of memory: Killed process 4321 (stress) total-vm:8388608kB, anon-rss:8000000kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:16000kB oom_score_adj:-100",
        ];
        let kills = parse_kmsg_records(&recs);
        assert_eq!(kills.len(), 1, "{kills:#?}");
        let k = &kills[0];
        assert_eq!(k.constraint, "global");
        assert_eq!(k.oom_memcg, None);
        assert_eq!(k.cgroup.as_deref(), Some("/user.slice/user-1000.slice/session-2.scope"));
        assert_eq!((k.memory_limit_bytes, k.memory_usage_bytes), (None, None));
        assert_eq!(k.oom_score_adj, Some(-100));
        assert_eq!(k.uid, Some(1000));
        assert_eq!(k.anon_rss_bytes, Some(8_000_000 * 1024));
    }

    #[test]
    fn v2_memcg_kill_with_unlimited_parent_lines() {
        let recs = [
            "4,10,100,-;python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "6,11,110,-;memory: usage 204800kB, limit 204800kB, failcnt 123",
            "6,12,111,-;swap: usage 0kB, limit 9007199254740988kB, failcnt 0",
            "6,13,120,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x/y,task=python3,pid=1234,uid=0",
            "3,14,130,-;Memory cgroup out of memory: Killed process 1234 (python3) total-vm:123456kB, anon-rss:98765kB, file-rss:1234kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0",
            // A second, later kill in the same cgroup: its own report, its own limit.
            "4,20,9000000,-;python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "6,21,9000010,-;memory: usage 102400kB, limit 102400kB, failcnt 7",
            "6,22,9000020,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=python3,pid=1240,uid=0",
            "3,23,9000030,-;Memory cgroup out of memory: Killed process 1240 (python3) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:4kB oom_score_adj:500",
        ];
        let kills = parse_kmsg_records(&recs);
        assert_eq!(kills.len(), 2, "{kills:#?}");
        assert_eq!(kills[0].memory_limit_bytes, Some(200 << 20));
        assert_eq!(kills[0].oom_memcg.as_deref(), Some("/x"));
        assert_eq!(kills[0].cgroup.as_deref(), Some("/x/y"));
        assert_eq!(kills[0].anon_rss_bytes, Some(98765 * 1024));
        assert_eq!(kills[1].pid, 1240);
        assert_eq!(kills[1].memory_limit_bytes, Some(100 << 20));
        assert_eq!(kills[1].oom_score_adj, Some(500));
        assert_eq!(kills[1].shmem_rss_bytes, Some(4096));
    }

    #[test]
    fn old_kernels_and_lost_lines() {
        // 4.14: no oom-kill: line, "Task in ... killed as a result of limit of ...".
        let recs = [
            "4,1,1000,-;java invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=0",
            "6,2,1001,-;Task in /docker/abc killed as a result of limit of /docker",
            "6,3,1002,-;memory: usage 524288kB, limit 524288kB, failcnt 10",
            "3,4,1003,-;Memory cgroup out of memory: Kill process 77 (java) score 999 or sacrifice child",
            "3,5,1004,-;Killed process 77 (java) total-vm:3000000kB, anon-rss:500000kB, file-rss:20000kB, shmem-rss:0kB",
        ];
        let kills = parse_kmsg_records(&recs);
        assert_eq!(kills.len(), 1, "{kills:#?}");
        let k = &kills[0];
        assert_eq!((k.pid, k.comm.as_str()), (77, "java"));
        assert_eq!(k.cgroup.as_deref(), Some("/docker/abc"));
        assert_eq!(k.oom_memcg.as_deref(), Some("/docker"));
        assert_eq!(k.memory_limit_bytes, Some(512 << 20));
        assert_eq!(k.constraint, "unknown");
        assert_eq!((k.uid, k.oom_score_adj), (None, None));

        // Only the Killed line survived (the report was overwritten): still a kill.
        let kills = parse_kmsg_records(&[MEMCG_OOM[12]]);
        assert_eq!(kills.len(), 1);
        assert_eq!((kills[0].pid, kills[0].constraint.as_str()), (22436, "memcg"));
        assert_eq!(kills[0].memory_limit_bytes, None);
        // A stale report (no kill followed within 10 s) is not attached to a later kill.
        let kills = parse_kmsg_records(&[
            MEMCG_OOM[4],
            "3,9,1190000000,-;Out of memory: Killed process 5 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB",
        ]);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].memory_limit_bytes, None);
        // Garbage and empty records.
        assert!(
            parse_kmsg_records(&["", "garbage", "x,y,z;oom-kill:", "6,1,2,-;oom-kill:pid=zz"])
                .is_empty()
        );
    }

    #[test]
    fn odd_names_and_paths() {
        // A comm with ") " and a comma, a cgroup path with a comma, non-printable bytes.
        let l = parse_oom_kill_line("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,b,task_memcg=/a,b/c,task=x,y,pid=9,uid=5").unwrap();
        assert_eq!(l.oom_memcg.as_deref(), Some("/a,b"));
        assert_eq!(l.task_memcg.as_deref(), Some("/a,b/c"));
        assert_eq!((l.task.as_str(), l.pid, l.uid), ("x,y", 9, Some(5)));
        let k = parse_killed_line("Out of memory: Killed process 12 (a) b (c)) total-vm:4kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:1000", 1).unwrap();
        assert_eq!(k.comm, "a) b (c)");
        assert_eq!(k.anon_rss_bytes, Some(8192));
        assert_eq!(k.oom_score_adj, Some(1000));
        let r = parse_kmsg_record(
            "3,1,2,-;Out of memory: Killed process 3 (t\\x09ab\\xff) total-vm:0kB\n SUBSYSTEM=x\n",
        )
        .unwrap();
        assert_eq!((r.prio, r.seq, r.ts_us), (3, 1, 2));
        assert_eq!(r.message, "Out of memory: Killed process 3 (t\tab\u{fffd}) total-vm:0kB");
        assert_eq!(parse_killed_line(&r.message, 2).unwrap().comm, "t\tab\u{fffd}");
        // Extra header fields (newer kernels add caller ids) are fine.
        assert_eq!(parse_kmsg_record("6,5,7,-,caller=T1;hi").unwrap().message, "hi");
    }

    #[test]
    fn usage_line() {
        assert_eq!(
            parse_memcg_usage_line("memory: usage 204800kB, limit 204800kB, failcnt 123"),
            Some((200 << 20, Some(200 << 20)))
        );
        assert_eq!(
            parse_memcg_usage_line("memory: usage 1024kB, limit 9007199254740988kB, failcnt 0"),
            Some((1 << 20, None))
        );
        assert_eq!(parse_memcg_usage_line("memory+swap: usage 1kB, limit 1kB, failcnt 0"), None);
        assert_eq!(parse_memcg_usage_line("swap: usage 1kB, limit 1kB, failcnt 0"), None);
    }

    #[test]
    fn tracepoint_kill_gains_kmsg_fields() {
        let ev = OomVictimEvent {
            ts_ns: 1_174_806_900_000,
            pid: 22436,
            host_pid: 22436,
            comm: Some("hog".into()),
            total_vm_kb: Some(68268),
            anon_rss_kb: Some(65280),
            file_rss_kb: Some(932),
            shmem_rss_kb: Some(0),
            uid: Some(0),
            oom_score_adj: Some(0),
            memcg_id: None,
            context: None,
        };
        let live = OomKill::from_tracepoint(&ev);
        assert_eq!(live.time_boot_us, 1_174_806_900);
        assert_eq!(live.anon_rss_bytes, Some(65280 * 1024));
        assert_eq!(live.constraint, "unknown");
        let mut older = parse_kmsg_records(&[MEMCG_OOM[12]]);
        older[0].pid = 1;
        older[0].host_pid = 1;
        older[0].time_boot_us = 5;
        let log = [parse_kmsg_records(MEMCG_OOM), older].concat();
        let all = merge_kills(vec![live], log);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].pid, 1);
        let k = &all[1];
        assert_eq!((k.source, k.constraint.as_str()), ("tracepoint", "memcg"));
        assert_eq!(k.memory_limit_bytes, Some(64 << 20));
        assert_eq!(k.cgroup.as_deref(), Some("/hwscratch-21836"));
        // In a child pid namespace the probe's kill carries the namespace pid; the kernel log
        // names the host pid. They are the same kill, and the namespace pid is kept.
        let in_ns = OomKill::from_tracepoint(&OomVictimEvent { pid: 7, ..ev.clone() });
        let merged = merge_kills(vec![in_ns], parse_kmsg_records(MEMCG_OOM));
        assert_eq!(merged.len(), 1, "{merged:#?}");
        assert_eq!((merged[0].pid, merged[0].host_pid), (7, 22436));
        assert_eq!(merged[0].memory_limit_bytes, Some(64 << 20));
        // The old layout: pid only.
        let bare =
            OomKill::from_tracepoint(&OomVictimEvent { pid: 3, host_pid: 3, ..Default::default() });
        assert_eq!((bare.comm.as_str(), bare.anon_rss_bytes), ("", None));
    }

    #[test]
    fn reads_real_kmsg_without_blocking() {
        // Needs root (or dmesg_restrict = 0); otherwise it must fail cleanly, not hang.
        let t = std::time::Instant::now();
        let _ = read_kmsg_history();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
