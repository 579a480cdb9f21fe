//! `hangwatch snapshot`: attach, observe for a window, merge with /proc, report.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use log::debug;

use crate::{
    analysis::{self, Finding},
    error::Error,
    memory::{self, MemHistory, Thresholds},
    memory_layout,
    model::{
        self, Filter, Process, Thread, Wait, facts,
        oom::{self, OomKill},
    },
    probes::{KernelStats, LoadOptions, MemCounters, ProbeStatus, Probes, events::KernelEvent},
    procfs::{self, Detail, ProcessSample, SyscallState},
    sources::{cgroup, kmsg},
    syscalls::{self, ProcTask, TaskView},
};

#[derive(Debug, Clone)]
pub struct Options {
    pub window: Duration,
    /// Which processes and waits are reported (selectors combine with AND: `model::filter`).
    pub filter: Filter,
    pub all: bool,
    pub hung_after: Duration,
    /// Attach the memory syscall probes (exact counts).
    pub exact_memory: bool,
    /// Which stacks to read (docs/stacks.md).
    pub stacks: crate::stacks::StackMode,
}

/// A wait that ended during the window (reported by the kernel probe).
#[derive(Debug, Clone, PartialEq)]
pub struct EndedWait {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub duration_ns: u64,
    pub end_mono_ns: u64,
    pub waker_pid: i32,
    pub waker_comm: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    #[serde(flatten)]
    pub kernel: KernelStats,
    /// Processes seen in /proc.
    pub processes_scanned: usize,
    pub threads_scanned: usize,
    /// Processes that vanished while being read (normal, not an error).
    pub vanished: usize,
    /// Time spent reading /proc at the end of the window, ms.
    pub scan_ms: u64,
    /// What reading stacks cost and lost.
    #[serde(flatten)]
    pub stacks: crate::stacks::StackStats,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub time: SystemTime,
    pub mono_ns: u64,
    pub hostname: String,
    pub kernel: String,
    pub window: Duration,
    pub min_blocked: Duration,
    /// Ranked, most suspicious first, after filtering.
    pub processes: Vec<Process>,
    /// Processes left out by the filters (not blocked, not matching).
    pub hidden: usize,
    /// Diagnoses, most severe first.
    pub findings: Vec<Finding>,
    pub ended_waits: Vec<EndedWait>,
    /// OOM kills from the kernel log and the live probe, oldest first.
    pub oom_kills: Vec<OomKill>,
    /// `oom_kill` counters of the cgroups of the listed processes and of the OOM kills.
    pub cgroup_oom_counters: Vec<(String, u64)>,
    pub probes: Vec<ProbeStatus>,
    pub stats: Stats,
    /// What could not be read for lack of permission, and what the report lacks for it.
    pub limitations: Vec<crate::access::Limitation>,
    /// Which stacks were read, and how much of them the human report shows.
    pub stack_mode: crate::stacks::StackMode,
}

impl Report {
    /// Wall-clock time of a CLOCK_MONOTONIC instant.
    pub fn wall(&self, mono_ns: u64) -> SystemTime {
        self.time - Duration::from_nanos(self.mono_ns.saturating_sub(mono_ns))
    }
}

/// How often memory is sampled during a snapshot window.
pub const MEM_SAMPLE: Duration = Duration::from_millis(200);

/// What the builder needs besides the samples.
pub struct BuildCtx {
    pub now_mono_ns: u64,
    /// CLOCK_MONOTONIC - task clock, per CPU (index = CPU).
    pub clock_offsets: Vec<i64>,
    pub min_blocked_ns: u64,
    pub window_secs: f64,
    pub ticks_per_sec: u64,
    pub uptime_secs: f64,
}

/// Turns the /proc samples of one process (at the start and end of the window) into the
/// model. `view` reads the process's memory and fds to decode arguments.
///
/// `prev` is the model of the same process from the previous scan (live mode): a wait that has
/// the same start and syscall is the same wait, and its decoded arguments are reused instead of
/// reading the process's memory and fds again.
pub fn build_process(
    before: Option<&ProcessSample>,
    after: &ProcessSample,
    ctx: &BuildCtx,
    view: &dyn TaskView,
    prev: Option<&Process>,
) -> Process {
    let tps = ctx.ticks_per_sec.max(1) as f64;
    let before_threads: HashMap<i32, u64> = before
        .map(|b| b.threads.iter().map(|t| (t.tid, t.stat.utime + t.stat.stime)).collect())
        .unwrap_or_default();
    let cpu_delta = before.map_or(0, |b| after.cpu_ticks().saturating_sub(b.cpu_ticks()));
    // By tid: a process may have 10,000 threads, looked up once each.
    let prev_waits: HashMap<i32, &Wait> = prev
        .map(|p| p.threads.iter().filter_map(|t| Some((t.tid, t.blocked.as_ref()?))).collect())
        .unwrap_or_default();
    let threads = after
        .threads
        .iter()
        .map(|t| {
            let ticks = t.stat.utime + t.stat.stime;
            let blocked = match (&t.syscall, t.exec_start_ns, t.is_sleeping()) {
                (Some(SyscallState::In { nr, args }), Some(es), true) => {
                    let off = ctx
                        .clock_offsets
                        .get(t.stat.processor as usize)
                        .or(ctx.clock_offsets.first())
                        .copied()
                        .unwrap_or(0);
                    let since = (es as i64).saturating_add(off).max(0) as u64;
                    let known = prev_waits.get(&t.tid).filter(|w| {
                        w.nr == *nr && w.since_mono_ns.abs_diff(since) < same_wait_ns(w)
                    });
                    // The same wait keeps its start: a new clock calibration must not move it
                    // (nor its fingerprint, `sources::quiet`).
                    let since = known.map_or(since, |w| w.since_mono_ns);
                    let known = known.map(|w| Arc::clone(&w.decoded));
                    let dur = ctx.now_mono_ns.saturating_sub(since);
                    (dur >= ctx.min_blocked_ns).then(|| Wait {
                        nr: *nr,
                        decoded: known
                            .unwrap_or_else(|| Arc::new(syscalls::decode(*nr, *args, view))),
                        since_mono_ns: since,
                        duration_ns: dur,
                        wchan: t.wchan.clone(),
                    })
                }
                _ => None,
            };
            Thread {
                tid: t.tid,
                comm: t.stat.comm.clone(),
                state: t.stat.state,
                cpu_ticks_window: before_threads
                    .get(&t.tid)
                    .map_or(0, |b| ticks.saturating_sub(*b)),
                blocked,
                stack: None,
            }
        })
        .collect();
    Process {
        pid: after.pid,
        ppid: after.stat.ppid,
        comm: after.stat.comm.clone(),
        cmdline: after.cmdline.clone(),
        cmdline_truncated: after.cmdline_truncated,
        cgroup: after.cgroup.clone(),
        cpu_percent: cpu_delta as f64 / tps / ctx.window_secs.max(1e-3) * 100.0,
        cpu_total_secs: after.cpu_ticks() as f64 / tps,
        age_secs: (ctx.uptime_secs - after.stat.starttime as f64 / tps).max(0.0),
        rss_bytes: after.mem.vm_rss,
        threads,
        memory: None,
    }
}

/// How far a wait's start, as computed now, may be from `prev`'s for the two to be the same
/// wait. The start is the thread's last run (`exec_start`, per-CPU clock) moved by that CPU's
/// clock offset, which each calibration re-measures: under load two calibrations were seen
/// 46 ms apart. A thread that ran since `prev` was observed has a raw start later by at least
/// `prev`'s duration then, so half of that duration (up to 100 ms, at least 1 ms) cannot join
/// two different waits while calibrations agree to within it.
fn same_wait_ns(prev: &Wait) -> u64 {
    (prev.duration_ns / 2).clamp(1_000_000, 100_000_000)
}

/// Puts the processes a finding names first, most severe finding first; the rest keep their
/// order. (An OOM kill names its victim, which is gone, and what it left waiting.)
pub fn rank_by_findings(procs: &mut [Process], findings: &[Finding]) {
    let worst =
        |pid: i32| findings.iter().filter(|f| f.pids.contains(&pid)).map(|f| f.severity).max();
    // Stable: equal keys keep the suspicion order.
    procs.sort_by_key(|p| std::cmp::Reverse(worst(p.pid)));
}

/// Whether a process is listed: it passes the filter (pid AND name AND cgroup, as in live
/// mode) and, unless `--all` or `--pid`, has a blocked thread. `--pid` no longer overrides
/// `--comm`/`--cgroup` (docs/snapshot.md, "Filters").
pub fn selected(p: &Process, opts: &Options) -> bool {
    opts.filter.matches_process(p)
        && (opts.all || !opts.filter.pids.is_empty() || p.blocked_count() > 0)
}

/// Reads every process (or only `only`), counting those that vanished while read.
pub fn scan(detail: Detail, only: &[i32]) -> (HashMap<i32, ProcessSample>, usize) {
    scan_with(only, |pid| procfs::read_process(pid, detail))
}

/// [`scan`] with a reader of one process.
pub fn scan_with(
    only: &[i32],
    mut read: impl FnMut(i32) -> Option<ProcessSample>,
) -> (HashMap<i32, ProcessSample>, usize) {
    let pids = if only.is_empty() { procfs::list_pids() } else { only.to_vec() };
    // Not sized for every pid: live mode's reader answers most of a busy node by pid only.
    let mut out = HashMap::new();
    let mut vanished = 0;
    for pid in pids {
        match read(pid) {
            Some(p) => {
                out.insert(pid, p);
            }
            None => vanished += 1,
        }
    }
    (out, vanished)
}

/// The snapshot, in its steps: attach the probes, read every process, observe the window
/// (memory samples), read every process again in full, build the model, judge memory, gather
/// the facts, read stacks and analyze, then choose and rank what the report lists.
pub fn run(opts: &Options) -> Result<Report, Error> {
    for &pid in &opts.filter.pids {
        if !procfs::process_exists(pid) {
            return Err(Error::NoSuchPid(pid));
        }
    }
    let mut probes = Probes::load(&LoadOptions {
        wait_threshold_ns: opts.filter.min_blocked_ns.max(10_000_000),
        filter_tgid: opts.filter.single_pid().map_or(0, |p| p as u32),
        exact_memory: opts.exact_memory,
    })?;
    // Every process is read, even with --pid: the analysis follows waits into other processes.
    let (before, _) = scan(Detail::Stat, &[]);
    let observed = observe(&before, opts);
    let _ = probes.recalibrate();
    let kernel_mem = probes.memory_counters();

    let scan_start = Instant::now();
    let (after, vanished) = scan(Detail::Full, &[]);
    let now_mono_ns = procfs::monotonic_ns();
    let time = SystemTime::now();
    let scan_ms = scan_start.elapsed().as_millis() as u64;
    for &pid in &opts.filter.pids {
        if !after.contains_key(&pid) {
            debug!("pid {pid} exited during the window");
        }
    }
    let ctx = BuildCtx {
        now_mono_ns,
        clock_offsets: probes.clock_offsets().to_vec(),
        min_blocked_ns: opts.filter.min_blocked_ns,
        window_secs: observed.window.as_secs_f64(),
        ticks_per_sec: procfs::clock_ticks(),
        uptime_secs: procfs::uptime_secs(),
    };
    let (mut all, threads_scanned) = build_all(&before, &after, &ctx, &opts.filter);
    judge_memory(&mut all, &observed, kernel_mem.as_ref(), opts.window);

    let mut events = Vec::new();
    probes.drain(&mut events);
    let oom_kills = oom_kills(&events);
    let (findings, stack_stats) = diagnose(&mut all, &oom_kills, now_mono_ns, opts);
    let total = all.len();
    let mut processes: Vec<Process> = all.into_iter().filter(|p| selected(p, opts)).collect();
    let hidden = total - processes.len();
    model::rank(&mut processes);
    rank_by_findings(&mut processes, &findings);

    Ok(Report {
        time,
        mono_ns: now_mono_ns,
        hostname: procfs::hostname(),
        kernel: procfs::kernel_release(),
        window: opts.window,
        min_blocked: Duration::from_nanos(opts.filter.min_blocked_ns),
        cgroup_oom_counters: cgroup_oom_counters(&processes, &oom_kills),
        processes,
        hidden,
        findings,
        ended_waits: ended_waits(events, &opts.filter),
        oom_kills,
        stats: Stats {
            kernel: probes.stats(),
            processes_scanned: after.len(),
            threads_scanned,
            vanished,
            scan_ms,
            stacks: stack_stats,
        },
        probes: probes.status.clone(),
        limitations: crate::access::check(&after),
        stack_mode: opts.stacks,
    })
}

/// What the window showed besides the two scans.
struct Observed {
    /// How long the window lasted.
    window: Duration,
    /// Memory samples every [`MEM_SAMPLE`], by pid.
    mem: HashMap<i32, MemHistory>,
    /// Where the memory is, for the few processes holding enough of it.
    layouts: HashMap<i32, memory_layout::Layout>,
}

/// Lets the window pass, sampling the memory of every process of `before` every
/// [`MEM_SAMPLE`] (docs/memory.md), and reads the memory layouts meanwhile.
fn observe(before: &HashMap<i32, ProcessSample>, opts: &Options) -> Observed {
    let t0 = Instant::now();
    let mut mem: HashMap<i32, MemHistory> = HashMap::new();
    let sample_all = |mem: &mut HashMap<i32, MemHistory>| {
        let now = procfs::monotonic_ns();
        for (&pid, p) in before {
            if p.is_kernel_thread() {
                continue;
            }
            if let Some(s) = memory::sample(pid, now) {
                mem.entry(pid).or_default().push(s);
            }
        }
    };
    sample_all(&mut mem);
    // Where the memory is, for the few processes holding enough of it: read now, while the
    // window passes anyway (a read walks the page tables: ~100 ms for 512 MiB resident).
    // A memory finding names only its own process: with --pid, only those are read.
    let retain_cfg = memory_layout::RetainCfg::default();
    let layouts = mem
        .iter()
        .filter(|(pid, _)| opts.filter.admits_pid(**pid))
        .filter(|(_, h)| {
            h.latest().is_some_and(|s| memory_layout::worth_reading(s.rss_anon, &retain_cfg))
        })
        .filter_map(|(&pid, _)| memory_layout::read_layout(pid).map(|l| (pid, l)))
        .collect();
    loop {
        let left = opts.window.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(MEM_SAMPLE));
        sample_all(&mut mem);
    }
    Observed { window: t0.elapsed(), mem, layouts }
}

/// The model of every process read at the end of the window (kernel threads only when named
/// with `--pid`), and how many threads that is.
fn build_all(
    before: &HashMap<i32, ProcessSample>,
    after: &HashMap<i32, ProcessSample>,
    ctx: &BuildCtx,
    filter: &Filter,
) -> (Vec<Process>, usize) {
    let mut threads_scanned = 0;
    let mut all = Vec::new();
    for s in after.values() {
        if s.is_kernel_thread() && !filter.names(s.pid) {
            continue;
        }
        threads_scanned += s.threads.len();
        all.push(build_process(before.get(&s.pid), s, ctx, &ProcTask { pid: s.pid }, None));
    }
    (all, threads_scanned)
}

/// Memory figures and verdicts of each process from the window's samples, its layout and the
/// kernel's exact counts (`--exact-memory`).
fn judge_memory(
    all: &mut [Process],
    observed: &Observed,
    kernel_mem: Option<&HashMap<i32, MemCounters>>,
    window: Duration,
) {
    let mem_cfg = Thresholds::for_window(window);
    let retain_cfg = memory_layout::RetainCfg::default();
    for p in all {
        let h = observed.mem.get(&p.pid);
        p.memory = h.and_then(|h| h.status(&mem_cfg));
        // Where the memory is and whether it is held idle: decided from what the kernel shows
        // now (docs/memory.md), read only for the few processes holding enough of it.
        let act = memory_layout::activity_of(p, observed.window.as_nanos() as u64);
        if let (Some(m), Some(h)) = (p.memory.as_mut(), h)
            && memory_layout::worth_reading(m.rss_anon, &retain_cfg)
        {
            m.judge_retained(
                observed.layouts.get(&p.pid).copied(),
                h.steady(&mem_cfg),
                &act,
                &retain_cfg,
            );
        }
        if let (Some(m), Some(k)) = (p.memory.as_mut(), kernel_mem.and_then(|k| k.get(&p.pid))) {
            m.apply_kernel_counters(k);
        }
    }
}

/// OOM kills: the kernel log, plus what the live probe saw during the window.
fn oom_kills(events: &[KernelEvent]) -> Vec<OomKill> {
    let live_ooms: Vec<OomKill> = events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::OomVictim(v) => {
                let mut k = OomKill::from_tracepoint(v);
                cgroup::apply_victim_memcg(&mut k, v.memcg_id);
                Some(k)
            }
            KernelEvent::WaitEnd(_) => None,
        })
        .collect();
    oom::merge_kills(live_ooms, kmsg::read_kmsg_history())
}

/// Gathers the facts, reads the stacks the verdicts rest on and analyzes; returns the findings
/// that concern the processes the filter selects, with the frames they wait in named.
fn diagnose(
    all: &mut [Process],
    oom_kills: &[OomKill],
    now_mono_ns: u64,
    opts: &Options,
) -> (Vec<Finding>, crate::stacks::StackStats) {
    let oom_facts: Vec<facts::OomFact> = oom_kills.iter().map(OomKill::fact).collect();
    // The analysis follows chains through every process, not only the ones listed.
    let facts = crate::sources::facts::gather(all, &|pid| Box::new(ProcTask { pid }), oom_facts);
    // Stacks of the listed processes first: the verdicts use them (a cycle of lock acquires).
    let mut stacks = StackGathering::new(opts);
    stacks.gather(all, |p| selected(p, opts));
    // ... and of what their waits lead to, when a filter left those out: a client's verdict
    // rests on its server session's stack (a PostgreSQL session behind a lock).
    if stacks.on() && !all.iter().all(|p| selected(p, opts) || p.blocked_count() == 0) {
        let seeds: std::collections::HashSet<i32> =
            all.iter().filter(|p| selected(p, opts)).map(|p| p.pid).collect();
        let peers = analysis::reached_from(all, &facts, &seeds, PEERS_FOLLOWED);
        stacks.gather(all, |p| peers.contains(&p.pid));
    }
    let mut findings: Vec<Finding> = analysis::analyze(
        all,
        &facts,
        &analysis::Config {
            now_mono_ns,
            hung_after_ns: opts.hung_after.as_nanos() as u64,
            oom_recent_ns: 3600 * 1_000_000_000,
        },
    )
    .into_iter()
    .filter(|f| {
        !opts.filter.is_narrowed()
            || f.pids
                .iter()
                .any(|pid| all.iter().any(|p| p.pid == *pid && opts.filter.matches_process(p)))
    })
    .collect();
    // ... then of the processes the findings name beyond them, to name the frames they wait in.
    let named: std::collections::HashSet<i32> =
        findings.iter().flat_map(|f| f.pids.iter().copied()).collect();
    stacks.gather(all, |p| named.contains(&p.pid));
    let stack_stats = stacks.finish(&mut findings, all);
    (findings, stack_stats)
}

/// The `oom_kill` counters of the cgroups of the listed processes and of the OOM kills.
fn cgroup_oom_counters(processes: &[Process], oom_kills: &[OomKill]) -> Vec<(String, u64)> {
    let mut cgroups: Vec<String> = processes.iter().map(|p| p.cgroup.clone()).collect();
    cgroups.extend(oom_kills.iter().filter_map(|k| k.cgroup.clone()));
    cgroups.sort();
    cgroups.dedup();
    cgroups
        .into_iter()
        .filter(|c| c != "/")
        .filter_map(|c| cgroup::oom_kill_counter(&c).map(|n| (c, n)))
        .collect()
}

/// The waits the probe saw end during the window (not hangwatch's own), of the `--pid`s.
fn ended_waits(events: Vec<KernelEvent>, filter: &Filter) -> Vec<EndedWait> {
    events
        .into_iter()
        .filter_map(|e| match e {
            KernelEvent::WaitEnd(w) => Some(EndedWait {
                pid: w.pid,
                tid: w.tid,
                comm: w.comm,
                syscall: syscalls::display_name(w.syscall_nr),
                duration_ns: w.end_ns.saturating_sub(w.start_ns),
                end_mono_ns: w.end_ns,
                waker_pid: w.waker_pid,
                waker_comm: w.waker_comm,
            }),
            KernelEvent::OomVictim(_) => None,
        })
        .filter(|w| w.pid != std::process::id() as i32)
        .filter(|w| filter.admits_pid(w.pid))
        .collect()
}

/// Most processes beyond the listed ones whose stacks are read because the listed ones' waits
/// lead to them.
const PEERS_FOLLOWED: usize = 64;

/// Reads the stacks of the blocked (and `D`) threads of chosen processes, in passes that share
/// one time budget and one cache (a thread's wait is unwound once), then names in each finding
/// the frame it waits in. Nothing is read with `--no-stacks`.
struct StackGathering {
    gatherer: Option<crate::stacks::Gatherer>,
    deadline: std::time::Instant,
}

impl StackGathering {
    fn new(opts: &Options) -> Self {
        let on = opts.stacks != crate::stacks::StackMode::Off;
        StackGathering {
            gatherer: on.then(crate::stacks::Gatherer::default),
            deadline: std::time::Instant::now() + crate::stacks::SNAPSHOT_BUDGET,
        }
    }

    fn on(&self) -> bool {
        self.gatherer.is_some()
    }

    fn gather(&mut self, all: &mut [Process], which: impl Fn(&Process) -> bool) {
        if let Some(g) = self.gatherer.as_mut() {
            let left = self.deadline.saturating_duration_since(std::time::Instant::now());
            g.gather(all.iter_mut().filter(|p| which(p) && !has_stacks(p)), left);
        }
    }

    fn finish(self, findings: &mut [Finding], all: &[Process]) -> crate::stacks::StackStats {
        match self.gatherer {
            Some(g) => {
                crate::analysis::annotate_findings(findings, all);
                g.stats
            }
            None => crate::stacks::StackStats::default(),
        }
    }
}

/// Whether every thread that wants a stack already has one (read in an earlier pass).
fn has_stacks(p: &Process) -> bool {
    p.threads.iter().all(|t| t.stack.is_some() || !crate::stacks::wants_stack(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{Stat, StatusMem, ThreadSample};

    struct NoMem;
    impl TaskView for NoMem {
        fn read_mem(&self, _addr: u64, _len: usize) -> Option<Vec<u8>> {
            None
        }
        fn fd_target(&self, fd: i32) -> Option<String> {
            (fd == 7).then(|| "socket:[123]".to_string())
        }
    }

    fn thread(
        tid: i32,
        state: char,
        ticks: u64,
        sys: Option<SyscallState>,
        es: Option<u64>,
    ) -> ThreadSample {
        ThreadSample {
            tid,
            stat: Stat { pid: tid, comm: "w".into(), state, utime: ticks, ..Default::default() },
            syscall: sys,
            wchan: Some("poll_schedule_timeout".into()),
            exec_start_ns: es,
        }
    }

    fn sample(threads: Vec<ThreadSample>, ticks: u64) -> ProcessSample {
        ProcessSample {
            pid: 10,
            stat: Stat {
                pid: 10,
                comm: "job".into(),
                state: 'S',
                utime: ticks,
                starttime: 100,
                ..Default::default()
            },
            cmdline: "python3 job.py".into(),
            cmdline_truncated: false,
            cgroup: "/x".into(),
            mem: StatusMem { vm_rss: 4096, ..Default::default() },
            threads,
        }
    }

    #[test]
    fn builds_blocked_threads_with_true_start() {
        let poll = SyscallState::In { nr: 7, args: [0x1000, 1, 0xffff_ffff, 0, 0, 0] };
        let after = sample(
            vec![
                thread(10, 'S', 500, Some(poll.clone()), Some(90_000_000_000)),
                thread(11, 'S', 5, Some(poll), Some(99_800_000_000)), // 0.2 s: too short
                thread(12, 'R', 40, None, None),
            ],
            545,
        );
        let before = sample(vec![thread(12, 'R', 20, None, None)], 525);
        let ctx = BuildCtx {
            now_mono_ns: 100_500_000_000,
            clock_offsets: vec![500_000_000],
            min_blocked_ns: 1_000_000_000,
            window_secs: 1.0,
            ticks_per_sec: 100,
            uptime_secs: 200.0,
        };
        let p = build_process(Some(&before), &after, &ctx, &NoMem, None);
        assert_eq!(p.blocked_count(), 1);
        let w = p.threads[0].blocked.as_ref().unwrap();
        assert_eq!(w.since_mono_ns, 90_500_000_000);
        assert_eq!(w.duration_ns, 10_000_000_000);
        assert_eq!(w.decoded.syscall, "poll");
        assert!(p.threads[1].blocked.is_none());
        assert_eq!(p.threads[2].cpu_ticks_window, 20);
        assert!((p.cpu_percent - 20.0).abs() < 1e-9);
        assert!((p.cpu_total_secs - 5.45).abs() < 1e-9);
        assert!((p.age_secs - 199.0).abs() < 1e-9);
    }

    #[test]
    fn processes_named_by_findings_come_first() {
        use crate::analysis::{FindingKind, Severity};
        let mk = |pid| crate::model::fixtures::process(pid, 1.0, 10.0, vec![None]);
        let mut v = vec![mk(1), mk(2), mk(3), mk(4)];
        let f = |pid, severity| Finding {
            kind: FindingKind::Hung,
            severity,
            pids: vec![pid],
            tids: vec![],
            summary: String::new(),
            since_mono_ns: None,
            chain: vec![],
            key: String::new(),
        };
        rank_by_findings(&mut v, &[f(3, Severity::High), f(4, Severity::Critical)]);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![4, 3, 1, 2]);
    }

    #[test]
    fn kernel_threads_are_built_only_when_named() {
        let ctx = BuildCtx {
            now_mono_ns: 100_000_000_000,
            clock_offsets: vec![0],
            min_blocked_ns: 1_000_000_000,
            window_secs: 1.0,
            ticks_per_sec: 100,
            uptime_secs: 200.0,
        };
        let job = sample(vec![thread(10, 'R', 5, None, None), thread(11, 'R', 5, None, None)], 10);
        let mut kthread = sample(vec![thread(2, 'S', 0, None, None)], 0);
        kthread.pid = 2;
        kthread.stat.flags = crate::procfs::PF_KTHREAD;
        let after: HashMap<i32, ProcessSample> = [(10, job), (2, kthread)].into();
        let before = HashMap::new();
        let (all, threads) = build_all(&before, &after, &ctx, &Filter::default());
        assert_eq!((all.iter().map(|p| p.pid).collect::<Vec<_>>(), threads), (vec![10], 2));
        let named = Filter { pids: vec![2], ..Filter::default() };
        let (mut all, threads) = build_all(&before, &after, &ctx, &named);
        all.sort_by_key(|p| p.pid);
        assert_eq!((all.iter().map(|p| p.pid).collect::<Vec<_>>(), threads), (vec![2, 10], 3));
    }

    #[test]
    fn ended_waits_are_those_of_the_named_pids_but_never_hangwatch_s_own() {
        let me = std::process::id() as i32;
        let ended = |pid| {
            KernelEvent::WaitEnd(crate::probes::events::WaitEndEvent {
                pid,
                tid: pid,
                comm: "w".into(),
                start_ns: 1_000_000_000,
                end_ns: 3_500_000_000,
                syscall_nr: 7,
                waker_pid: 1,
                waker_tid: 1,
                waker_comm: "init".into(),
            })
        };
        let events = || vec![ended(5), ended(6), ended(me)];
        let pids = |w: Vec<EndedWait>| w.iter().map(|w| w.pid).collect::<Vec<_>>();
        let all = ended_waits(events(), &Filter::default());
        assert_eq!(pids(all.clone()), vec![5, 6]);
        assert_eq!((all[0].duration_ns, all[0].syscall.as_str()), (2_500_000_000, "poll"));
        let named = Filter { pids: vec![6, me], ..Filter::default() };
        assert_eq!(pids(ended_waits(events(), &named)), vec![6]);
    }

    #[test]
    fn filters() {
        let mut opts = Options {
            window: Duration::from_secs(1),
            filter: Filter { min_blocked_ns: 1_000_000_000, ..Filter::default() },
            all: false,
            hung_after: Duration::from_secs(30),
            exact_memory: false,
            stacks: crate::stacks::StackMode::Brief,
        };
        let idle = crate::model::fixtures::process(5, 1.0, 10.0, vec![None]);
        let stuck = crate::model::fixtures::process(
            6,
            1.0,
            10.0,
            vec![Some(crate::model::fixtures::wait("poll", 5.0, true))],
        );
        assert!(!selected(&idle, &opts));
        assert!(selected(&stuck, &opts));
        opts.filter.pids = vec![5];
        assert!(selected(&idle, &opts));
        assert!(!selected(&stuck, &opts));
        // --pid and --comm both narrow (AND, as in live mode): pid 5 is not named p6.
        opts.filter.comm = Some("p6".into());
        assert!(!selected(&idle, &opts));
        opts.filter.comm = Some("p5".into());
        assert!(selected(&idle, &opts));
        opts.filter.cgroup = Some("/other".into());
        assert!(!selected(&idle, &opts));
        opts.filter.cgroup = None;
        opts.filter.pids = vec![];
        opts.filter.comm = Some("p6".into());
        assert!(selected(&stuck, &opts));
        assert!(!selected(&idle, &opts));
        opts.all = true;
        opts.filter.comm = None;
        assert!(selected(&idle, &opts));
    }
}
