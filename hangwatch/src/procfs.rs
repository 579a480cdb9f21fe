//! Reading processes and threads from /proc.
//!
//! Parsers are pure functions over the file contents (unit-tested with plain strings); the
//! scanner functions do the I/O and treat a vanished process or thread as normal: they return
//! `None` (or skip it), never an error.

use std::{collections::HashMap, ffi::OsStr, fs, io, os::unix::ffi::OsStrExt, path::Path};

/// The fields of /proc/PID/stat (or /proc/PID/task/TID/stat) hangwatch uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub flags: u32,
    /// User and system CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub num_threads: i64,
    /// Start time after boot in clock ticks.
    pub starttime: u64,
    pub rss_pages: i64,
    /// CPU the task last ran on (field 39).
    pub processor: u32,
}

/// `PF_KTHREAD` in `Stat::flags`.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Lossy UTF-8 that never fails: task names and paths are bytes.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a stat line. The comm is between the first '(' and the *last* ')': it may itself
/// contain spaces and parentheses.
pub fn parse_stat(b: &[u8]) -> Option<Stat> {
    let open = b.iter().position(|&c| c == b'(')?;
    let close = b.iter().rposition(|&c| c == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&b[..open]).ok()?.trim().parse().ok()?;
    let comm = lossy(&b[open + 1..close]);
    let rest = std::str::from_utf8(b.get(close + 1..)?).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    let field = |n: usize| f.get(n - 3).copied();
    Some(Stat {
        pid,
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
        processor: field(39).and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

/// What /proc/PID/task/TID/syscall says.
#[derive(Debug, Clone, PartialEq)]
pub enum SyscallState {
    /// The thread is running on a CPU.
    Running,
    /// Blocked, but not in a system call (e.g. a page fault).
    NotInSyscall,
    /// In system call `nr` with these arguments.
    In { nr: i64, args: [u64; 6] },
}

pub fn parse_syscall(s: &str) -> Option<SyscallState> {
    let s = s.trim();
    if s == "running" {
        return Some(SyscallState::Running);
    }
    let mut it = s.split_ascii_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    if nr < 0 {
        return Some(SyscallState::NotInSyscall);
    }
    let mut args = [0u64; 6];
    for a in &mut args {
        let v = it.next()?;
        *a = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()?;
    }
    Some(SyscallState::In { nr, args })
}

/// The user stack and instruction pointers that /proc/PID/task/TID/syscall ends with (for a
/// thread in a system call, and for a blocked thread outside one): `(sp, pc)`.
pub fn parse_syscall_regs(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    if s == "running" {
        return None;
    }
    let words: Vec<&str> = s.split_ascii_whitespace().collect();
    let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
    match words.as_slice() {
        [.., sp, pc] if words.len() == 3 || words.len() == 9 => Some((hex(sp)?, hex(pc)?)),
        _ => None,
    }
}

/// `se.exec_start` from /proc/PID/task/TID/sched, in ns on the scheduler's task clock. For a
/// sleeping thread this is when it stopped running, i.e. when its current sleep began.
pub fn parse_exec_start_ns(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.trim_start().starts_with("se.exec_start"))?;
    let v = line.split(':').nth(1)?.trim();
    let (ms, frac) = v.split_once('.').unwrap_or((v, "0"));
    let ms: u64 = ms.parse().ok()?;
    // The fraction is printed with 6 digits (ns); pad or cut to be safe.
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    let ns: u64 = digits.parse().ok()?;
    // A value past u64 ns (584 years of uptime) is garbage, not a time.
    ms.checked_mul(1_000_000)?.checked_add(ns)
}

/// Picks the cgroup path that names a process's container: the v1 memory controller's path
/// when a v1 memory hierarchy is mounted (hybrid hosts: memory limits and OOM kills live
/// there), else the cgroup v2 (unified) path, else the first v1 hierarchy's.
pub fn parse_cgroup(s: &str) -> String {
    let mut unified = None;
    let mut memory = None;
    let mut first = None;
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if ctrls.is_empty() {
            unified = Some(path);
        } else if ctrls.split(',').any(|c| c == "memory") {
            memory = Some(path);
        } else if first.is_none() && !ctrls.starts_with("name=") {
            first = Some(path);
        }
    }
    let pick = match (memory, unified) {
        (Some(m), _) => Some(m),
        (None, Some(u)) => Some(u),
        (None, None) => first,
    };
    pick.unwrap_or("/").to_string()
}

/// Memory figures from /proc/PID/status, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatusMem {
    pub vm_size: u64,
    pub vm_rss: u64,
    pub vm_hwm: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
}

pub fn parse_status_mem(s: &str) -> StatusMem {
    let mut m = StatusMem::default();
    for line in s.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let kb = || -> u64 {
            v.split_ascii_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                .saturating_mul(1024)
        };
        match k {
            "VmSize" => m.vm_size = kb(),
            "VmRSS" => m.vm_rss = kb(),
            "VmHWM" => m.vm_hwm = kb(),
            "RssAnon" => m.rss_anon = kb(),
            "RssFile" => m.rss_file = kb(),
            "RssShmem" => m.rss_shmem = kb(),
            _ => {}
        }
    }
    m
}

/// Most bytes of /proc/PID/cmdline read. A process writes its own argv (up to 2 MiB with the
/// default stack limit, more with a bigger one): past this the command line is cut and
/// flagged `cmdline_truncated`, so 100 processes with 2 MB command lines cost 400 KiB, not
/// 200 MB. Reading stops at the bound: the kernel copies only the pages asked for.
pub const MAX_CMDLINE_BYTES: usize = 4096;

/// The first `max` bytes of a file, and whether there was more (at most `max + 1` bytes are
/// read, however long the file is).
pub fn read_bounded(path: &Path, max: usize) -> Option<(Vec<u8>, bool)> {
    let f = fs::File::open(path).ok()?;
    read_bounded_from(f, max).ok()
}

/// [`read_bounded`] over any reader.
pub fn read_bounded_from<R: io::Read>(r: R, max: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(max.min(64 * 1024) + 1);
    io::Read::read_to_end(&mut r.take(max as u64 + 1), &mut buf)?;
    let more = buf.len() > max;
    buf.truncate(max);
    Ok((buf, more))
}

/// /proc/PID/cmdline read with [`MAX_CMDLINE_BYTES`]: the joined command line and whether it
/// was cut.
pub fn read_cmdline(pid: i32) -> Option<(String, bool)> {
    let (b, more) = read_bounded(Path::new(&format!("/proc/{pid}/cmdline")), MAX_CMDLINE_BYTES)?;
    Some((parse_cmdline(&b), more))
}

/// /proc/PID/cmdline: NUL-separated, joined with spaces; empty for kernel threads and zombies.
pub fn parse_cmdline(b: &[u8]) -> String {
    let parts: Vec<String> = b.split(|&c| c == 0).filter(|p| !p.is_empty()).map(lossy).collect();
    parts.join(" ")
}

/// Reads a small /proc file; `None` if the process or thread is gone (or the file unreadable).
fn read(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

pub fn read_string(path: &Path) -> Option<String> {
    read(path).map(|b| lossy(&b))
}

/// All numeric entries of a /proc-like directory.
pub fn list_ids(dir: &Path) -> Vec<i32> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| std::str::from_utf8(e.file_name().as_bytes()).ok()?.parse().ok())
        .collect()
}

pub fn list_pids() -> Vec<i32> {
    list_ids(Path::new("/proc"))
}

/// The last pid the kernel handed out in /proc's pid namespace (the 5th field of
/// /proc/loadavg); every fork and thread creation moves it.
pub fn parse_last_pid(loadavg: &str) -> Option<i32> {
    loadavg.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// Lists /proc again only when a task was created since the last listing, for a scanner that
/// learns of exits on its own (a process that exited fails its next read). /proc's listing
/// costs the kernel a lookup per entry: 18% of live mode's time on a node of 12,000 idle
/// processes, for a list that had not changed. Used only when /proc shows hangwatch's own pid
/// namespace (`/proc/self` is hangwatch), where /proc/loadavg speaks of the same tasks.
#[derive(Debug, Default)]
pub struct PidList {
    pids: Vec<i32>,
    last_pid: Option<i32>,
    own_namespace: Option<bool>,
    /// Listings saved (tests, `-v`).
    pub reused: u64,
}

impl PidList {
    /// The pids to read this scan.
    pub fn current(&mut self) -> Vec<i32> {
        let own = *self.own_namespace.get_or_insert_with(|| {
            fs::read_link("/proc/self")
                .ok()
                .and_then(|l| l.to_str()?.parse::<u32>().ok())
                .is_some_and(|p| p == std::process::id())
        });
        let last = if own {
            read_string(Path::new("/proc/loadavg")).and_then(|s| parse_last_pid(&s))
        } else {
            None
        };
        if last.is_some() && last == self.last_pid {
            self.reused += 1;
        } else {
            self.pids = list_pids();
            self.last_pid = last;
        }
        self.pids.clone()
    }

    /// `pid` was not found: it leaves the list.
    pub fn gone(&mut self, pids: &std::collections::HashSet<i32>) {
        if !pids.is_empty() {
            self.pids.retain(|p| !pids.contains(p));
        }
    }
}

/// One thread as read from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSample {
    pub tid: i32,
    pub stat: Stat,
    /// Only read for sleeping threads (S or D).
    pub syscall: Option<SyscallState>,
    pub wchan: Option<String>,
    pub exec_start_ns: Option<u64>,
}

impl ThreadSample {
    pub fn is_sleeping(&self) -> bool {
        matches!(self.stat.state, 'S' | 'D')
    }

    /// When a sleeping thread's current wait began (CLOCK_MONOTONIC ns), from the time it last
    /// ran (`exec_start`, per-CPU clock) and that CPU's clock offset: `None` unless it sleeps
    /// in a system call.
    pub fn wait_since_ns(&self, clock_offsets: &[i64]) -> Option<u64> {
        match (&self.syscall, self.exec_start_ns, self.is_sleeping()) {
            (Some(SyscallState::In { .. }), Some(es), true) => {
                let off = clock_offsets
                    .get(self.stat.processor as usize)
                    .or(clock_offsets.first())
                    .copied()
                    .unwrap_or(0);
                Some((es as i64).saturating_add(off).max(0) as u64)
            }
            _ => None,
        }
    }
}

/// One process as read from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub pid: i32,
    pub stat: Stat,
    pub cmdline: String,
    /// The command line was longer than [`MAX_CMDLINE_BYTES`] and was cut.
    pub cmdline_truncated: bool,
    pub cgroup: String,
    pub mem: StatusMem,
    pub threads: Vec<ThreadSample>,
}

impl ProcessSample {
    pub fn is_kernel_thread(&self) -> bool {
        self.stat.flags & PF_KTHREAD != 0
    }
    pub fn cpu_ticks(&self) -> u64 {
        self.stat.utime + self.stat.stime
    }
}

/// How much to read per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// stat only (for CPU accounting).
    Stat,
    /// stat, plus syscall/wchan/sched for sleeping threads.
    Full,
}

pub fn read_thread(pid: i32, tid: i32, detail: Detail) -> Option<ThreadSample> {
    let base = format!("/proc/{pid}/task/{tid}");
    let stat = parse_stat(&read(Path::new(&format!("{base}/stat")))?)?;
    let mut t = ThreadSample { tid, stat, syscall: None, wchan: None, exec_start_ns: None };
    if detail == Detail::Full && t.is_sleeping() {
        t.syscall =
            read_string(Path::new(&format!("{base}/syscall"))).and_then(|s| parse_syscall(&s));
        t.wchan = read_string(Path::new(&format!("{base}/wchan")))
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty() && w != "0");
        t.exec_start_ns =
            read_string(Path::new(&format!("{base}/sched"))).and_then(|s| parse_exec_start_ns(&s));
    }
    Some(t)
}

/// `/proc/PID/task/TID/schedstat`: time on CPU (ns), time waiting to run (ns), and the number
/// of times the thread was scheduled in.
pub fn parse_schedstat(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split_ascii_whitespace();
    let run = it.next()?.parse().ok()?;
    let _wait: u64 = it.next()?.parse().ok()?;
    let slices = it.next()?.parse().ok()?;
    Some((run, slices))
}

/// Remembers each sleeping thread as last read, so that a rescan reads one small file
/// (`schedstat`) per thread that has not run since, instead of four (`stat`, `syscall`,
/// `wchan`, `sched`). A thread that has not been scheduled in since it was seen asleep is still
/// in the same wait: nothing it could change has changed.
///
/// With the kernel's help it reads nothing at all: once a thread has been seen asleep in the
/// same wait for longer than the `sched_waking` probe's threshold, its wake-up is certain to be
/// reported (a `WaitEnd` record), so until [`ThreadCache::woken`] names it the entry is served
/// as is. [`ThreadCache::distrust_all`] (records were lost) falls back to `schedstat`.
#[derive(Debug, Default)]
pub struct ThreadCache {
    map: HashMap<i32, CacheEntry>,
    generation: u64,
    /// Threads served from the cache in the last scan (for tests and stats).
    pub hits: u64,
    /// Of those, served without reading anything (trusted to the kernel's wake-up records).
    pub trusted_hits: u64,
    /// Waits at least this long are reported by the kernel when they end; `None`: no probe.
    trust_after_ns: Option<u64>,
    /// CLOCK_MONOTONIC at the start of the current scan.
    scan_ns: u64,
    /// Per-process data of the last full read (see [`ProcEntry`]).
    procs: HashMap<i32, ProcEntry>,
    /// Processes served without reading anything in the last scan.
    pub idle_process_hits: u64,
}

/// What a process looked like when last read in full: its stat, command line, cgroup and
/// memory lines, and its thread ids. While every thread of it is known asleep in the same wait
/// (trusted to the kernel's wake-up records: nothing of it ran), none of that can have changed
/// through the process itself, and the scan reads nothing; a full read is forced every
/// [`PROC_REFRESH_SCANS`] scans anyway, for what others change (a move to another cgroup,
/// pages reclaimed).
#[derive(Debug)]
struct ProcEntry {
    sample: ProcessSample,
    tids: Vec<i32>,
    /// Scans served from this entry since the last full read.
    served: u32,
    generation: u64,
}

/// A process served from [`ProcEntry`] is read in full again after this many scans. What it
/// catches is only what others change (its cgroup, its resident pages): a wake-up the probe
/// could not report already forces a read (a lost record or a failed probe read distrusts every
/// entry). A full read costs 5 files or more: every 10 scans, a busy node's 12,000 idle
/// processes took 6,000 reads a second, a third of live mode's cost there (docs/benchmarks.md,
/// "Busy node"). Others' changes are seen up to a minute late.
pub const PROC_REFRESH_SCANS: u32 = 60;

/// [`PROC_REFRESH_SCANS`], plus up to 15 scans by pid: processes started together (a pool of
/// workers) are not all read again in the same scan.
pub fn refresh_after(pid: i32) -> u32 {
    PROC_REFRESH_SCANS + pid.unsigned_abs() % 16
}

#[derive(Debug)]
struct CacheEntry {
    run_ns: u64,
    slices: u64,
    generation: u64,
    /// CLOCK_MONOTONIC when this wait was first seen (it began no later).
    first_seen_ns: u64,
    sample: ThreadSample,
}

/// Gives back a map's spare room once it holds far fewer entries than it has room for: a map
/// keeps the capacity of its busiest moment (10,000 threads that came and went), and under
/// churn those moments ratchet it up one rare peak at a time.
pub fn shrink_spare<K: Eq + std::hash::Hash, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > 4 * m.len().max(1024) {
        m.shrink_to(2 * m.len());
    }
}

/// Margin on the probe's threshold before an entry is trusted (clock calibration error).
const TRUST_MARGIN_NS: u64 = 100_000_000;

impl ThreadCache {
    /// A cache that trusts the kernel's wake-up records for waits of at least `threshold_ns`
    /// (the `sched_waking` probe's threshold; `None` when the probe is not attached).
    pub fn with_kernel_wakeups(threshold_ns: Option<u64>) -> Self {
        ThreadCache { trust_after_ns: threshold_ns, ..Default::default() }
    }

    /// Starts a scan; entries not used during the previous scan are dropped (exited threads).
    pub fn begin_scan(&mut self) {
        let g = self.generation;
        self.map.retain(|_, e| e.generation == g);
        self.procs.retain(|_, e| e.generation == g);
        shrink_spare(&mut self.map);
        shrink_spare(&mut self.procs);
        self.generation += 1;
        self.hits = 0;
        self.trusted_hits = 0;
        self.idle_process_hits = 0;
        self.scan_ns = monotonic_ns();
    }

    /// These threads woke (the kernel said so): read them again.
    pub fn woken(&mut self, tids: impl IntoIterator<Item = i32>) {
        for tid in tids {
            self.map.remove(&tid);
        }
    }

    /// Wake-up records may have been lost: check every entry with `schedstat` again.
    pub fn distrust_all(&mut self) {
        for e in self.map.values_mut() {
            e.first_seen_ns = u64::MAX;
        }
    }

    fn trusted(&self, e: &CacheEntry, now: u64) -> bool {
        self.trust_after_ns.is_some_and(|t| {
            e.first_seen_ns != u64::MAX
                && now.saturating_sub(e.first_seen_ns) >= t.saturating_add(TRUST_MARGIN_NS)
        })
    }

    /// Whether `pid` was served whole from its last read in the current scan (nothing of it
    /// ran since: its memory figures cannot have changed through it either).
    pub fn served_whole(&self, pid: i32) -> bool {
        self.procs.get(&pid).is_some_and(|e| e.served > 0 && e.generation == self.generation)
    }

    /// Whether `tid` is cached and trusted asleep in the same wait now.
    fn is_trusted(&self, tid: i32) -> bool {
        self.map.get(&tid).is_some_and(|e| self.trusted(e, self.scan_ns))
    }

    /// The process as last read, when nothing of it can have run since (every thread trusted
    /// asleep) and it was read in full at most [`refresh_after`] scans ago.
    fn idle_process(&mut self, pid: i32) -> Option<ProcessSample> {
        if !self.serve_unchanged(pid) {
            return None;
        }
        let e = self.procs.get(&pid)?;
        let mut p = e.sample.clone();
        p.threads = e.tids.iter().filter_map(|t| Some(self.map.get(t)?.sample.clone())).collect();
        Some(p)
    }

    /// Serves `pid` whole without building its sample: `true` when nothing of it can have run
    /// since its last full read (as [`read_process_cached`] would serve it), and it is counted
    /// as served; the caller's last sample of it stands. Live mode's scanner, which sends the
    /// aggregator only the pids of such processes, then spends no allocation on them.
    pub fn serve_unchanged(&mut self, pid: i32) -> bool {
        let Some(e) = self.procs.get(&pid) else { return false };
        if e.served >= refresh_after(pid)
            || e.tids.is_empty()
            || !e.tids.iter().all(|t| self.is_trusted(*t))
        {
            return false;
        }
        let generation = self.generation;
        let n = e.tids.len() as u64;
        for tid in &e.tids {
            if let Some(t) = self.map.get_mut(tid) {
                t.generation = generation;
            }
        }
        self.hits += n;
        self.trusted_hits += n;
        let Some(e) = self.procs.get_mut(&pid) else { return false };
        e.served += 1;
        e.generation = generation;
        self.idle_process_hits += 1;
        true
    }

    /// Remembers a process read in full.
    fn remember_process(&mut self, p: &ProcessSample) {
        let sample = ProcessSample {
            pid: p.pid,
            stat: p.stat.clone(),
            cmdline: p.cmdline.clone(),
            cmdline_truncated: p.cmdline_truncated,
            cgroup: p.cgroup.clone(),
            mem: p.mem,
            threads: Vec::new(),
        };
        let tids = p.threads.iter().map(|t| t.tid).collect();
        self.procs
            .insert(p.pid, ProcEntry { sample, tids, served: 0, generation: self.generation });
    }

    fn get(&mut self, pid: i32, tid: i32) -> Option<ThreadSample> {
        let now = self.scan_ns;
        let trusted = self.map.get(&tid).is_some_and(|e| self.trusted(e, now));
        if trusted && let Some(e) = self.map.get_mut(&tid) {
            e.generation = self.generation;
            self.hits += 1;
            self.trusted_hits += 1;
            return Some(e.sample.clone());
        }
        let ss = read_string(Path::new(&format!("/proc/{pid}/task/{tid}/schedstat")))
            .and_then(|s| parse_schedstat(&s));
        if let (Some((run, slices)), Some(e)) = (ss, self.map.get_mut(&tid))
            && e.run_ns == run
            && e.slices == slices
            && e.sample.is_sleeping()
        {
            e.generation = self.generation;
            if e.first_seen_ns == u64::MAX {
                // Verified again after a loss: trusted from now on, after the threshold.
                e.first_seen_ns = now;
            }
            self.hits += 1;
            return Some(e.sample.clone());
        }
        let t = read_thread(pid, tid, Detail::Full)?;
        match ss {
            Some((run_ns, slices)) if t.is_sleeping() => {
                let entry = CacheEntry {
                    run_ns,
                    slices,
                    generation: self.generation,
                    first_seen_ns: now,
                    sample: t.clone(),
                };
                self.map.insert(tid, entry);
            }
            _ => {
                self.map.remove(&tid);
            }
        }
        Some(t)
    }
}

/// Reads a process and its threads. `None` if it vanished while being read (normal).
pub fn read_process(pid: i32, detail: Detail) -> Option<ProcessSample> {
    read_process_with(pid, detail, None)
}

/// Like [`read_process`], serving unchanged sleeping threads from `cache` (live mode), and a
/// whole process from it when none of its threads can have run since it was read (see
/// [`ThreadCache`]'s process entries): an idle process then costs no read at all.
pub fn read_process_cached(pid: i32, cache: &mut ThreadCache) -> Option<ProcessSample> {
    if let Some(p) = cache.idle_process(pid) {
        return Some(p);
    }
    let p = read_process_with(pid, Detail::Full, Some(cache))?;
    if !p.is_kernel_thread() {
        cache.remember_process(&p);
    }
    Some(p)
}

fn read_process_with(
    pid: i32,
    detail: Detail,
    mut cache: Option<&mut ThreadCache>,
) -> Option<ProcessSample> {
    let base = format!("/proc/{pid}");
    let stat = parse_stat(&read(Path::new(&format!("{base}/stat")))?)?;
    let kthread = stat.flags & PF_KTHREAD != 0;
    let ((cmdline, cmdline_truncated), cgroup, mem) = if kthread {
        ((String::new(), false), "/".to_string(), StatusMem::default())
    } else {
        (
            read_cmdline(pid).unwrap_or_default(),
            read_string(Path::new(&format!("{base}/cgroup")))
                .map(|s| parse_cgroup(&s))
                .unwrap_or_else(|| "/".to_string()),
            read_string(Path::new(&format!("{base}/status")))
                .map(|s| parse_status_mem(&s))
                .unwrap_or_default(),
        )
    };
    let threads = if kthread {
        Vec::new()
    } else {
        list_ids(Path::new(&format!("{base}/task")))
            .into_iter()
            .filter_map(|tid| match cache.as_deref_mut() {
                Some(c) => c.get(pid, tid),
                None => read_thread(pid, tid, detail),
            })
            .collect()
    };
    Some(ProcessSample { pid, stat, cmdline, cmdline_truncated, cgroup, mem, threads })
}

pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `CLOCK_MONOTONIC` now, in ns.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Ticks per second for utime/stime/starttime.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Hostname, lossy.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Kernel release, e.g. "6.18.44".
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Seconds since boot (CLOCK_BOOTTIME-ish, from /proc/uptime).
pub fn uptime_secs() -> f64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_ascii_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The path of an OsStr, lossy (helper for readlink results).
pub fn os_lossy(s: &OsStr) -> String {
    lossy(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parens_and_spaces_in_comm() {
        let line = b"1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 5000 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, "my (weird) proc");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.flags, 4194560);
        assert_eq!((s.utime, s.stime), (250, 75));
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.starttime, 5000);
        assert_eq!(s.rss_pages, 900);
    }

    #[test]
    fn stat_non_utf8_comm_and_garbage() {
        let mut line = b"7 (a\xffb) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 9 0 3".to_vec();
        line.extend_from_slice(b" 0 0");
        let s = parse_stat(&line).unwrap();
        assert_eq!(s.comm, "a\u{fffd}b");
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"12 (x").is_none());
        assert!(parse_stat(b"12 (x) S").is_none());
    }

    #[test]
    fn syscall_file_forms() {
        assert_eq!(parse_syscall("running\n"), Some(SyscallState::Running));
        assert_eq!(parse_syscall("-1 0x7ffd 0x4011\n"), Some(SyscallState::NotInSyscall));
        assert_eq!(
            parse_syscall("7 0x7ffd1000 0x1 0xffffffff 0x0 0x0 0x0 0x7ffd0ff8 0x7f00aa\n"),
            Some(SyscallState::In { nr: 7, args: [0x7ffd1000, 1, 0xffffffff, 0, 0, 0] })
        );
        assert_eq!(parse_syscall("7 0x1"), None);
        assert_eq!(parse_syscall(""), None);
    }

    #[test]
    fn exec_start_parse() {
        let s = "sleep (2917, #threads: 1)\n---\nse.exec_start                                :        142486.456274\nse.vruntime : 1.0\n";
        assert_eq!(parse_exec_start_ns(s), Some(142_486_456_274));
        assert_eq!(parse_exec_start_ns("se.exec_start : 12\n"), Some(12_000_000));
        assert_eq!(parse_exec_start_ns("nothing"), None);
    }

    #[test]
    fn cgroup_choice() {
        let v1 = "12:memory:/x/y\n11:cpu,cpuacct:/x\n1:name=systemd:/user.slice\n0::/\n";
        assert_eq!(parse_cgroup(v1), "/x/y");
        let v2 = "0::/kubepods.slice/pod1/cri-abc.scope\n";
        assert_eq!(parse_cgroup(v2), "/kubepods.slice/pod1/cri-abc.scope");
        let hybrid = "4:memory:/job/x\n0::/system.slice/ssh.service\n";
        assert_eq!(parse_cgroup(hybrid), "/job/x");
        assert_eq!(parse_cgroup(""), "/");
        assert_eq!(parse_cgroup("3:pids:/p\n"), "/p");
    }

    #[test]
    fn status_mem() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t 512 kB\nRssFile:\t 256 kB\nRssShmem:\t 0 kB\n";
        let m = parse_status_mem(s);
        assert_eq!(m.vm_rss, 1024 * 1024);
        assert_eq!(m.vm_hwm, 2048 * 1024);
        assert_eq!(m.rss_anon, 512 * 1024);
        assert_eq!(m.rss_file, 256 * 1024);
    }

    #[test]
    fn cmdline_join() {
        assert_eq!(parse_cmdline(b"python3\0-c\0print(1)\0"), "python3 -c print(1)");
        assert_eq!(parse_cmdline(b""), "");
    }

    #[test]
    fn bounded_reads_cut_and_flag() {
        let data = vec![b'a'; 10_000];
        let (b, more) = read_bounded_from(&data[..], MAX_CMDLINE_BYTES).unwrap();
        assert_eq!((b.len(), more), (MAX_CMDLINE_BYTES, true));
        let (b, more) = read_bounded_from(&data[..MAX_CMDLINE_BYTES], MAX_CMDLINE_BYTES).unwrap();
        assert_eq!((b.len(), more), (MAX_CMDLINE_BYTES, false));
        let (b, more) = read_bounded_from(&b"x\0y\0"[..], MAX_CMDLINE_BYTES).unwrap();
        assert_eq!((parse_cmdline(&b).as_str(), more), ("x y", false));
        // A cut in the middle of a multi-byte character stays valid (lossy) text.
        let mut cut = vec![b'a'; 3];
        cut.extend_from_slice("é".as_bytes());
        let (b, more) = read_bounded_from(&cut[..], 4).unwrap();
        assert!(more);
        assert_eq!(parse_cmdline(&b), "aaa\u{fffd}");
    }

    #[test]
    fn reads_self_and_vanished() {
        let me = std::process::id() as i32;
        let p = read_process(me, Detail::Full).expect("own process readable");
        assert_eq!(p.pid, me);
        assert!(!p.threads.is_empty());
        assert!(read_process(i32::MAX, Detail::Full).is_none());
        assert!(read_thread(me, i32::MAX, Detail::Full).is_none());
    }

    #[test]
    fn schedstat_parse() {
        assert_eq!(parse_schedstat("6769 1234 5\n"), Some((6769, 5)));
        assert_eq!(parse_schedstat("1 2"), None);
    }

    #[test]
    fn cache_serves_a_sleeping_thread_that_has_not_run() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut cache = ThreadCache::default();
        cache.begin_scan();
        let a = read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.hits, 0);
        cache.begin_scan();
        let b = read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.hits, 1, "second read of the sleeping thread comes from the cache");
        assert_eq!(a.threads, b.threads);
        assert!(b.threads[0].exec_start_ns.is_some());
        child.kill().unwrap();
        child.wait().unwrap();
        cache.begin_scan();
        assert!(read_process_cached(pid, &mut cache).is_none());
        cache.begin_scan();
        assert!(cache.map.is_empty(), "exited threads are evicted");
    }

    #[test]
    fn trusted_entries_are_served_until_the_kernel_says_woken() {
        use std::io::Write;
        // A child blocked reading its stdin: it wakes when we write a line.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x; exec sleep 30"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Threshold 0: trusted once seen asleep for the margin (100 ms).
        let mut cache = ThreadCache::with_kernel_wakeups(Some(0));
        cache.begin_scan();
        let first = read_process_cached(pid, &mut cache).unwrap();
        let read_wait = first.threads[0].syscall.clone();
        std::thread::sleep(std::time::Duration::from_millis(150));
        cache.begin_scan();
        read_process_cached(pid, &mut cache).unwrap();
        assert_eq!((cache.hits, cache.trusted_hits), (1, 1), "served without reading");
        // It wakes (and moves on to sleep in nanosleep), but nobody told the cache yet.
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        cache.begin_scan();
        let stale = read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(stale.threads[0].syscall, read_wait, "trusted: the old wait, by design");
        // The kernel's record arrives: read again.
        cache.woken([pid]);
        cache.begin_scan();
        let fresh = read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.trusted_hits, 0);
        assert_ne!(fresh.threads[0].syscall, read_wait, "now in nanosleep: {fresh:?}");
        // After a loss every entry is checked against schedstat again (a hit, not trusted).
        std::thread::sleep(std::time::Duration::from_millis(150));
        cache.distrust_all();
        cache.begin_scan();
        read_process_cached(pid, &mut cache).unwrap();
        assert_eq!((cache.hits, cache.trusted_hits), (1, 0));
        // Without the probe nothing is trusted.
        let mut plain = ThreadCache::with_kernel_wakeups(None);
        for _ in 0..2 {
            plain.begin_scan();
            read_process_cached(pid, &mut plain).unwrap();
        }
        assert_eq!((plain.hits, plain.trusted_hits), (1, 0));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn idle_processes_are_served_without_reads_until_woken_or_refreshed() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut cache = ThreadCache::with_kernel_wakeups(Some(0));
        cache.begin_scan();
        let first = read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.idle_process_hits, 0, "first read is a full one");
        std::thread::sleep(std::time::Duration::from_millis(150));
        let mut served = 0;
        for _ in 0..refresh_after(pid) {
            cache.begin_scan();
            let p = read_process_cached(pid, &mut cache).unwrap();
            assert_eq!(p, first);
            assert!(cache.served_whole(pid));
            served += cache.idle_process_hits;
        }
        assert_eq!(served, u64::from(refresh_after(pid)), "served whole while asleep");
        // After refresh_after(pid) scans: read in full again (then served again).
        cache.begin_scan();
        read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.idle_process_hits, 0, "refreshed");
        assert!(!cache.served_whole(pid));
        cache.begin_scan();
        read_process_cached(pid, &mut cache).unwrap();
        assert_eq!(cache.idle_process_hits, 1);
        // Served by pid only (live mode's scanner): the same answer, and its entries stay.
        cache.begin_scan();
        assert!(cache.serve_unchanged(pid));
        assert!(cache.served_whole(pid));
        cache.begin_scan();
        assert_eq!(read_process_cached(pid, &mut cache).unwrap(), first, "kept across the scan");
        assert_eq!(cache.idle_process_hits, 1);
        // The kernel says it woke (here: killed): read again, and gone.
        child.kill().unwrap();
        child.wait().unwrap();
        cache.woken([pid]);
        cache.begin_scan();
        assert!(read_process_cached(pid, &mut cache).is_none());
        assert_eq!(cache.idle_process_hits, 0);
        cache.begin_scan();
        assert!(cache.procs.is_empty(), "exited processes are evicted");
        // Without the kernel's wake-up records nothing is served whole.
        let mut plain = ThreadCache::with_kernel_wakeups(None);
        let me = std::process::id() as i32;
        for _ in 0..3 {
            plain.begin_scan();
            read_process_cached(me, &mut plain).unwrap();
            assert_eq!(plain.idle_process_hits, 0);
        }
    }

    #[test]
    fn the_pid_list_is_listed_again_only_after_a_task_was_created() {
        assert_eq!(parse_last_pid("0.52 0.58 0.59 2/1316 123456\n"), Some(123456));
        assert_eq!(parse_last_pid("0.52 0.58"), None);
        let me = std::process::id() as i32;
        let mut l = PidList::default();
        let first = l.current();
        assert!(first.contains(&me));
        // Nothing created between two calls (not every time on a busy machine): reused.
        let mut reused = false;
        for _ in 0..1000 {
            l.current();
            if l.reused > 0 {
                reused = true;
                break;
            }
        }
        assert!(reused, "the same last pid twice in 1000 tries");
        // A new process moves the last pid: listed again, and the child is in it.
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let listed = l.current();
        assert!(listed.contains(&(child.id() as i32)));
        let _ = child.kill();
        let _ = child.wait();
        l.gone(&[child.id() as i32].into_iter().collect());
        assert!(!l.pids.contains(&(child.id() as i32)));
    }
}
