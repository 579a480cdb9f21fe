//! The live aggregator: the only owner of live state. Collectors send it owned events
//! ([`Input`]); it updates its state and returns the output events ([`Output`]) that the JSON
//! stream prints. The TUI reads a [`View`] built from the state. No I/O here.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::{
    analysis::{self, Finding},
    memory::{MemHistory, MemSample, MemStatus, Thresholds},
    memory_layout::{self, Layout, RetainCfg},
    model::{
        self, Filter, Process, Wait,
        facts::{Facts, OomFact},
        oom::OomVictimEvent,
    },
    probes::{KernelStats, ProbeStatus, events::WaitEndEvent},
    procfs::ProcessSample,
    snapshot::{self, BuildCtx},
    syscalls::TaskView,
};

/// What the aggregator may ask of the outside world: reading a blocked process's memory and
/// fd table to decode its wait, and the /proc facts the analysis needs. Injected, so tests
/// run on plain values.
pub trait Env {
    fn task_view(&self, pid: i32) -> Box<dyn TaskView>;
    fn facts(&self, procs: &[Process], oom_kills: Vec<OomFact>) -> Facts;
}

/// How many memory samples a live process keeps (one per scan).
pub const MEM_HISTORY: usize = 120;
/// Findings are recomputed every this many scans (on a small node; see [`analysis_every`]).
pub const ANALYSIS_EVERY: u64 = 5;

/// Scans between two analyses with `tracked` processes: [`ANALYSIS_EVERY`] up to 7,000, then 5
/// more per 5,000 (15 at 12,000, at most 30). The analysis looks at every process (a clone of
/// the model, the facts, the wait-for graph): on a busy node of idle processes it was the
/// largest cost left, while what it finds moves at the pace of `--hung-after` (30 s).
pub fn analysis_every(tracked: usize) -> u64 {
    let extra = tracked.saturating_sub(2_000) as u64 / 5_000;
    (ANALYSIS_EVERY + 5 * extra).min(30)
}

/// What collectors send to the aggregator.
#[derive(Debug)]
pub enum Input {
    /// A full /proc scan, taken at `now_mono_ns`, with a memory sample of each process.
    Scan {
        now_mono_ns: u64,
        samples: HashMap<i32, ProcessSample>,
        /// Processes the scanner served whole (nothing of them ran since their last full read,
        /// `procfs::ThreadCache::served_whole`): not in `samples`, their last sample stands.
        /// On a busy node of idle processes this is almost all of them.
        unchanged: Vec<i32>,
        mem: HashMap<i32, MemSample>,
        clock_offsets: Vec<i64>,
        uptime_secs: f64,
    },
    WaitEnd(WaitEndEvent),
    OomVictim(OomVictimEvent),
    /// Where the memory is (/proc/PID/smaps) of the processes that hold enough of it, read
    /// with the memory samples of the next `Scan` (a process absent here has none).
    MemLayouts(HashMap<i32, Layout>),
    /// The kernel's per-process memory call counts (`--exact-memory`), all of them, read
    /// from the map once a second.
    KernelMemory(HashMap<i32, hangwatch_common::MemCounters>),
    /// The stacks of the long waits of the next `Scan`, by tid (docs/stacks.md).
    Stacks(HashMap<i32, std::sync::Arc<crate::stacks::Stack>>),
    /// The probes' counters and hangwatch's own resource use.
    Health {
        kernel: KernelStats,
        own_cpu_percent: f64,
        own_rss_bytes: u64,
        now_mono_ns: u64,
    },
}

/// What the aggregator announces (printed by the JSON stream, listed in the TUI's events pane).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A thread's wait crossed `min_blocked` (or was already past it when hangwatch started).
    Blocked {
        process: ProcessInfo,
        tid: i32,
        thread_comm: String,
        wait: Wait,
        stack: Option<std::sync::Arc<crate::stacks::Stack>>,
    },
    /// A reported wait ended. `exact` when the kernel probe timed it.
    Unblocked {
        process: ProcessInfo,
        tid: i32,
        thread_comm: String,
        wait: Wait,
        duration_ns: u64,
        exact: bool,
        woken_by: Option<(i32, String)>,
    },
    /// An OOM kill.
    OomKill {
        ts_mono_ns: u64,
        victim: OomVictimEvent,
        process: Option<ProcessInfo>,
        /// The victim's memory as hangwatch had sampled it, if it had been watching it.
        history: Option<VictimMemory>,
    },
    ProcessExit {
        process: ProcessInfo,
        ts_mono_ns: u64,
        lifetime_cpu_secs: f64,
    },
    /// A process's memory changed materially, or a verdict changed.
    Memory {
        ts_mono_ns: u64,
        process: ProcessInfo,
        /// Boxed: with its layout it is the largest variant by far.
        status: Box<MemStatus>,
    },
    /// A finding opened.
    Finding {
        ts_mono_ns: u64,
        finding: Finding,
    },
    /// A finding that was open is no longer true.
    FindingResolved {
        ts_mono_ns: u64,
        finding: Finding,
    },
    Stats {
        ts_mono_ns: u64,
        health: Health,
    },
}

/// The identity of a process, carried by events.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub comm: String,
    pub cgroup: String,
    pub cmdline: String,
}

impl ProcessInfo {
    fn of(p: &Process) -> Self {
        ProcessInfo {
            pid: p.pid,
            comm: p.comm.clone(),
            cgroup: p.cgroup.clone(),
            cmdline: p.cmdline.clone(),
        }
    }
}

/// hangwatch's own health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub kernel: KernelStats,
    pub events_per_sec: f64,
    pub own_cpu_percent: f64,
    pub own_rss_bytes: u64,
    pub probes: Vec<ProbeStatus>,
    pub scans: u64,
}

/// One line of the events pane.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    pub ts_mono_ns: u64,
    pub kind: EventKind,
    pub pid: i32,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    OomKill,
    WaitEnded,
    ProcessExit,
    WentQuiet,
}

/// Whether a memory status is worth announcing again: a verdict flipped, or RSS moved by at
/// least 10% and 16 MiB since the last announcement.
pub fn memory_changed(last: Option<&MemStatus>, now: &MemStatus) -> bool {
    let Some(l) = last else { return now.not_returned || now.growing || now.rss >= 64 << 20 };
    let moved = now.rss.abs_diff(l.rss);
    l.not_returned != now.not_returned
        || l.growing != now.growing
        || (moved >= 16 << 20 && moved * 10 >= l.rss)
}

/// How long an announced wait lasted: exactly, from the kernel's record of its end when that
/// record is for this wait (same start), else bounded by the scan that saw it gone.
fn ended_wait(
    ended: Option<WaitEndEvent>,
    w: &Wait,
    now: u64,
) -> (u64, bool, Option<(i32, String)>) {
    match ended {
        Some(e) if e.start_ns.abs_diff(w.since_mono_ns) < 50_000_000 => {
            (e.end_ns.saturating_sub(e.start_ns), true, Some((e.waker_pid, e.waker_comm)))
        }
        _ => (now.saturating_sub(w.since_mono_ns), false, None),
    }
}

/// One scan's inputs (see [`Input::Scan`]).
struct ScanInput {
    samples: HashMap<i32, ProcessSample>,
    unchanged: Vec<i32>,
    mem: HashMap<i32, MemSample>,
    clock_offsets: Vec<i64>,
    uptime_secs: f64,
}

/// Live state of one process.
#[derive(Debug, Clone)]
struct ProcState {
    process: Process,
    last_sample: ProcessSample,
    /// Waits already announced, by tid: the raw `se.exec_start` identifies the wait.
    announced: HashMap<i32, u64>,
    /// When it was last seen with every thread blocked while it had been using CPU.
    quiet_announced: bool,
    exited_at_ns: Option<u64>,
    oom_killed: bool,
    /// Number of the last scan that saw it.
    seen_scan: u64,
    mem: MemHistory,
    /// The memory status last announced.
    mem_announced: Option<MemStatus>,
    /// Its layout as last read with a memory sample (`None` if not read then).
    layout: Option<Layout>,
}

/// Everything the TUI draws, owned.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub now_mono_ns: u64,
    /// Ranked, most suspicious first; includes exited processes still in their grace period.
    pub processes: Vec<ProcessRow>,
    pub events: Vec<EventLine>,
    pub oom_kills: Vec<OomFact>,
    pub health: Health,
    pub blocked_threads: usize,
    pub blocked_processes: usize,
    /// Open findings, most severe first.
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub process: Process,
    pub exited: bool,
    pub oom_killed: bool,
    pub children: Vec<i32>,
}

/// What hangwatch had seen of an OOM victim's memory before the kill.
#[derive(Debug, Clone, PartialEq)]
pub struct VictimMemory {
    /// From its first to its last memory sample.
    pub watched_ns: u64,
    pub samples: usize,
    pub first_rss_bytes: u64,
    pub last_rss_bytes: u64,
    /// The largest RSS seen, or the kernel's high-water mark if larger.
    pub peak_rss_bytes: u64,
    pub heap_bytes: u64,
    /// Set when its memory was growing steadily (the `growing` verdict).
    pub growth_bytes_per_min: Option<f64>,
    /// The newest samples (at most [`VICTIM_SAMPLES`]), oldest first: (CLOCK_MONOTONIC ns, RSS).
    pub rss_samples: Vec<(u64, u64)>,
}

/// Brings the model of a process whose sample did not change since the last scan up to `now`
/// in place: its age, its CPU (none: its ticks did not move) and the durations of its waits.
/// `false` (nothing changed) when only a full rebuild gives the right answer: a sleeping thread
/// not yet reported blocked may cross `--min-blocked` now, and a process that was working may
/// "go quiet" now.
fn refresh_unchanged(p: &mut Process, sample: &ProcessSample, ctx: &BuildCtx) -> bool {
    if p.cpu_percent >= 0.05
        || p.threads.len() != sample.threads.len()
        || p.threads.iter().any(|t| t.blocked.is_none() && matches!(t.state, 'S' | 'D'))
    {
        return false;
    }
    let tps = ctx.ticks_per_sec.max(1) as f64;
    p.cpu_percent = 0.0;
    p.age_secs = (ctx.uptime_secs - sample.stat.starttime as f64 / tps).max(0.0);
    for t in &mut p.threads {
        t.cpu_ticks_window = 0;
        if let Some(w) = &mut t.blocked {
            w.duration_ns = ctx.now_mono_ns.saturating_sub(w.since_mono_ns);
        }
    }
    true
}

/// Samples of a victim's RSS carried in its `oom_kill` record.
pub const VICTIM_SAMPLES: usize = 10;

impl VictimMemory {
    fn of(h: &MemHistory, status: Option<&MemStatus>) -> Option<Self> {
        let first = h.samples().next()?;
        let last = h.latest()?;
        let skip = h.len().saturating_sub(VICTIM_SAMPLES);
        Some(VictimMemory {
            watched_ns: last.t_mono_ns.saturating_sub(first.t_mono_ns),
            samples: h.len(),
            first_rss_bytes: first.rss,
            last_rss_bytes: last.rss,
            peak_rss_bytes: h.rss_peak.max(last.hwm),
            heap_bytes: last.heap,
            growth_bytes_per_min: status.and_then(|m| m.growth_bytes_per_min),
            rss_samples: h.samples().skip(skip).map(|s| (s.t_mono_ns, s.rss)).collect(),
        })
    }
}

pub struct Config {
    pub filter: Filter,
    /// How long an exited process stays inspectable.
    pub exit_grace_ns: u64,
    pub max_events: usize,
    pub max_oom: usize,
    pub ticks_per_sec: u64,
}

pub struct Aggregator {
    cfg: Config,
    procs: BTreeMap<i32, ProcState>,
    /// Waits that ended (kernel probe), kept until the next scan matches them, by tid.
    ended: HashMap<i32, WaitEndEvent>,
    events: VecDeque<EventLine>,
    ooms: VecDeque<OomFact>,
    /// The kernel's memory call counts by pid (`--exact-memory`), as last read.
    kernel_mem: HashMap<i32, hangwatch_common::MemCounters>,
    health: Health,
    last_scan_ns: Option<u64>,
    events_in: u64,
    last_health_ns: Option<(u64, u64)>,
    now_ns: u64,
    findings: Vec<Finding>,
    /// The scan the findings were last computed at (0: never).
    analyzed_at_scan: u64,
    mem_cfg: Thresholds,
    /// The `not_returned` verdict's thresholds, and the span its "held steady" looks at: a
    /// few seconds, like a snapshot's window, so both reach the same verdict.
    retain_cfg: RetainCfg,
    steady_cfg: Thresholds,
    /// Layouts read with the memory samples of the next scan.
    layouts: HashMap<i32, Layout>,
    /// Stacks read with the next scan, by tid.
    stacks: HashMap<i32, std::sync::Arc<crate::stacks::Stack>>,
    hung_after_ns: u64,
}

impl Aggregator {
    pub fn new(cfg: Config, probes: Vec<ProbeStatus>) -> Self {
        Aggregator {
            cfg,
            procs: BTreeMap::new(),
            ended: HashMap::new(),
            events: VecDeque::new(),
            ooms: VecDeque::new(),
            kernel_mem: HashMap::new(),
            health: Health { probes, ..Default::default() },
            last_scan_ns: None,
            events_in: 0,
            last_health_ns: None,
            now_ns: 0,
            findings: Vec::new(),
            analyzed_at_scan: 0,
            // Live verdicts look at two minutes and want half a minute of samples: a process
            // warming up for a few seconds is not "growing".
            mem_cfg: Thresholds {
                window: std::time::Duration::from_secs(120),
                min_span: std::time::Duration::from_secs(30),
                ..Thresholds::default()
            },
            retain_cfg: RetainCfg::default(),
            steady_cfg: Thresholds::for_window(std::time::Duration::from_secs(5)),
            layouts: HashMap::new(),
            stacks: HashMap::new(),
            hung_after_ns: 30_000_000_000,
        }
    }

    /// Sets the `hung` threshold of the analysis (default 30 s).
    pub fn set_hung_after(&mut self, ns: u64) {
        self.hung_after_ns = ns;
    }

    fn push_event(&mut self, e: EventLine) {
        if self.events.len() >= self.cfg.max_events {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Feeds one input; returns what to announce.
    pub fn handle(&mut self, input: Input, env: &dyn Env) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Scan { now_mono_ns, samples, unchanged, mem, clock_offsets, uptime_secs } => {
                self.now_ns = now_mono_ns;
                let scan = ScanInput { samples, unchanged, mem, clock_offsets, uptime_secs };
                self.scan(now_mono_ns, scan, env, &mut out);
                let every = analysis_every(self.procs.len());
                if self.health.scans.saturating_sub(self.analyzed_at_scan) >= every
                    || self.analyzed_at_scan == 0
                {
                    self.analyzed_at_scan = self.health.scans;
                    self.analyze(now_mono_ns, env, &mut out);
                }
            }
            Input::Stacks(s) => self.stacks = s,
            Input::WaitEnd(w) => {
                self.events_in += 1;
                if self.cfg.filter.admits_pid(w.pid) {
                    self.ended.insert(w.tid, w);
                    // Bounded: a burst of ended waits for threads we never scanned.
                    if self.ended.len() > 100_000 {
                        self.ended.clear();
                    }
                }
            }
            Input::OomVictim(v) => {
                self.events_in += 1;
                let mut ppid = None;
                let history = self
                    .procs
                    .get(&v.pid)
                    .and_then(|s| VictimMemory::of(&s.mem, s.process.memory.as_ref()));
                let process = self.procs.get_mut(&v.pid).map(|s| {
                    s.oom_killed = true;
                    ppid = Some(s.process.ppid);
                    ProcessInfo::of(&s.process)
                });
                let ts = v.ts_ns;
                let comm = v
                    .comm
                    .clone()
                    .or_else(|| process.as_ref().map(|p| p.comm.clone()))
                    .unwrap_or_default();
                // The memory cgroup it was killed in (the kernel log's), else its last known.
                let cgroup = v
                    .context
                    .as_ref()
                    .and_then(|k| k.cgroup.clone())
                    .or_else(|| process.as_ref().map(|p| p.cgroup.clone()));
                if self.ooms.len() >= self.cfg.max_oom {
                    self.ooms.pop_front();
                }
                self.ooms.push_back(OomFact {
                    time_mono_ns: ts,
                    pid: v.pid,
                    comm: comm.clone(),
                    cgroup: cgroup.clone(),
                    ppid,
                    anon_rss_bytes: v.anon_rss_kb.map(|k| k * 1024),
                    memory_limit_bytes: v.context.as_ref().and_then(|k| k.memory_limit_bytes),
                });
                self.push_event(EventLine {
                    ts_mono_ns: ts,
                    kind: EventKind::OomKill,
                    pid: v.pid,
                    text: format!(
                        "OOM kill: {} {}{}{}",
                        v.pid,
                        comm,
                        cgroup.map(|c| format!(" in {c}")).unwrap_or_default(),
                        v.anon_rss_kb
                            .map(|k| format!(", anon RSS {}", crate::fmt::fmt_bytes(k * 1024)))
                            .unwrap_or_default()
                    ),
                });
                out.push(Output::OomKill { ts_mono_ns: ts, victim: v, process, history });
            }
            Input::MemLayouts(layouts) => self.layouts = layouts,
            Input::KernelMemory(counts) => {
                // Replaced whole: the kernel map is bounded and drops exited processes.
                self.kernel_mem = counts;
            }
            Input::Health { kernel, own_cpu_percent, own_rss_bytes, now_mono_ns } => {
                let rate = match self.last_health_ns {
                    Some((t, n)) if now_mono_ns > t => {
                        (self.events_in.saturating_sub(n)) as f64 / ((now_mono_ns - t) as f64 / 1e9)
                    }
                    _ => 0.0,
                };
                self.last_health_ns = Some((now_mono_ns, self.events_in));
                self.health.kernel = kernel;
                self.health.events_per_sec = rate;
                self.health.own_cpu_percent = own_cpu_percent;
                self.health.own_rss_bytes = own_rss_bytes;
                out.push(Output::Stats { ts_mono_ns: now_mono_ns, health: self.health.clone() });
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(
        clippy::too_many_lines,
        reason = "one /proc pass updating every table in step; issue 10 splits it"
    )]
    fn scan(&mut self, now: u64, input: ScanInput, env: &dyn Env, out: &mut Vec<Output>) {
        let ScanInput { mut samples, unchanged, mut mem, clock_offsets, uptime_secs } = input;
        self.health.scans += 1;
        let scan_no = self.health.scans;
        let window_secs = self.last_scan_ns.map_or(1.0, |t| (now.saturating_sub(t)) as f64 / 1e9);
        self.last_scan_ns = Some(now);
        let ctx = BuildCtx {
            now_mono_ns: now,
            clock_offsets,
            min_blocked_ns: self.cfg.filter.min_blocked_ns,
            window_secs,
            ticks_per_sec: self.cfg.ticks_per_sec,
            uptime_secs,
        };
        // Served whole by the scanner: only the clocks move, as for an unchanged sample below;
        // what needs a full rebuild (a wait crossing `--min-blocked` now) gets its last sample.
        for pid in unchanged {
            let Some(state) = self.procs.get_mut(&pid) else { continue };
            if state.exited_at_ns.is_none()
                && !mem.contains_key(&pid)
                && refresh_unchanged(&mut state.process, &state.last_sample, &ctx)
            {
                state.seen_scan = scan_no;
            } else {
                samples.insert(pid, state.last_sample.clone());
            }
        }
        for (pid, sample) in samples {
            if sample.is_kernel_thread()
                || !self.cfg.filter.matches(pid, &sample.stat.comm, &sample.cgroup)
            {
                continue;
            }
            // pid reuse: a different start time is a different process.
            if let Some(old) = self.procs.get(&pid)
                && old.last_sample.stat.starttime != sample.stat.starttime
            {
                let old = self.procs.remove(&pid);
                if let Some(old) = old {
                    self.exit(old, now, out);
                }
            }
            // Unchanged since the last scan (an idle process, served whole by the scanner):
            // only the clocks move.
            if let Some(state) = self.procs.get_mut(&pid)
                && state.exited_at_ns.is_none()
                && !mem.contains_key(&pid)
                && state.last_sample == sample
                && refresh_unchanged(&mut state.process, &sample, &ctx)
            {
                state.seen_scan = scan_no;
                continue;
            }
            let before = self.procs.get(&pid).map(|s| &s.last_sample);
            let view = env.task_view(pid);
            let prev = self.procs.get(&pid).map(|s| &s.process);
            let mut process = snapshot::build_process(before, &sample, &ctx, view.as_ref(), prev);
            for t in process.threads.iter_mut().filter(|t| crate::stacks::wants_stack(t)) {
                t.stack = self.stacks.get(&t.tid).cloned();
            }
            // A zombie has lost its cmdline and cgroup: keep what the live process had.
            if let (Some(old), true) = (self.procs.get(&pid), sample.stat.state == 'Z') {
                process.cmdline = old.process.cmdline.clone();
                process.cmdline_truncated = old.process.cmdline_truncated;
                process.cgroup = old.process.cgroup.clone();
            }
            let state = self.procs.entry(pid).or_insert_with(|| ProcState {
                process: process.clone(),
                last_sample: sample.clone(),
                announced: HashMap::new(),
                quiet_announced: false,
                exited_at_ns: None,
                oom_killed: false,
                seen_scan: 0,
                mem: MemHistory::new(MEM_HISTORY),
                mem_announced: None,
                layout: None,
            });
            if let Some(m) = mem.remove(&pid) {
                state.mem.push(m);
                state.layout = self.layouts.remove(&pid);
            }
            process.memory = state.mem.status(&self.mem_cfg);
            // The same verdict as a snapshot's, from the same inputs.
            let act = memory_layout::activity_of(&process, (window_secs * 1e9) as u64);
            if let Some(m) = process.memory.as_mut()
                && state.layout.is_some()
            {
                m.judge_retained(
                    state.layout,
                    state.mem.steady(&self.steady_cfg),
                    &act,
                    &self.retain_cfg,
                );
            }
            if let (Some(m), Some(k)) = (process.memory.as_mut(), self.kernel_mem.get(&pid)) {
                m.apply_kernel_counters(k);
            }
            if let Some(now_mem) = process.memory
                && memory_changed(state.mem_announced.as_ref(), &now_mem)
            {
                state.mem_announced = Some(now_mem);
                out.push(Output::Memory {
                    ts_mono_ns: now,
                    process: ProcessInfo::of(&process),
                    status: Box::new(now_mem),
                });
            }
            // Events about waits that began earlier carry what the process looked like then.
            let info = ProcessInfo::of(&state.process);
            // Waits that ended since the last scan (looked up by tid: a process may have
            // 10,000 threads).
            let sleeping_since: HashMap<i32, u64> = sample
                .threads
                .iter()
                .filter(|t| t.is_sleeping())
                .filter_map(|t| Some((t.tid, t.exec_start_ns?)))
                .collect();
            let mut gone = Vec::new();
            for (&tid, &es) in &state.announced {
                if sleeping_since.get(&tid) != Some(&es) {
                    gone.push(tid);
                }
            }
            let prev_threads: HashMap<i32, &crate::model::Thread> = if gone.is_empty() {
                HashMap::new()
            } else {
                state.process.threads.iter().map(|t| (t.tid, t)).collect()
            };
            for tid in gone {
                state.announced.remove(&tid);
                if let Some(prev) = prev_threads.get(&tid)
                    && let Some(w) = &prev.blocked
                {
                    let (duration_ns, exact, woken_by) =
                        ended_wait(self.ended.remove(&tid), w, now);
                    self.events.push_back(EventLine {
                        ts_mono_ns: now,
                        kind: EventKind::WaitEnded,
                        pid,
                        text: format!(
                            "{} {} ({}): {} ended after {}",
                            pid,
                            tid,
                            prev.comm,
                            w.decoded.syscall,
                            crate::fmt::fmt_duration_ns(duration_ns)
                        ),
                    });
                    out.push(Output::Unblocked {
                        process: info.clone(),
                        tid,
                        thread_comm: prev.comm.clone(),
                        wait: w.clone(),
                        duration_ns,
                        exact,
                        woken_by,
                    });
                }
            }
            // New long waits.
            for (t, sample_t) in process.threads.iter().zip(sample.threads.iter()) {
                if let (Some(w), Some(es)) = (&t.blocked, sample_t.exec_start_ns)
                    && state.announced.get(&t.tid) != Some(&es)
                {
                    state.announced.insert(t.tid, es);
                    out.push(Output::Blocked {
                        process: info.clone(),
                        tid: t.tid,
                        thread_comm: t.comm.clone(),
                        wait: w.clone(),
                        stack: t.stack.clone(),
                    });
                }
            }
            // A process that was working and now has every thread blocked "went quiet".
            let quiet = process.all_blocked() && process.cpu_percent < 0.05;
            if quiet && !state.quiet_announced && state.process.cpu_percent >= 1.0 {
                state.quiet_announced = true;
                let text = match process.longest_wait() {
                    Some((_, w)) => {
                        format!("{} {} went quiet: {}", pid, process.comm, w.decoded.human)
                    }
                    None => format!("{} {} went quiet", pid, process.comm),
                };
                let e = EventLine { ts_mono_ns: now, kind: EventKind::WentQuiet, pid, text };
                if self.events.len() >= self.cfg.max_events {
                    self.events.pop_front();
                }
                self.events.push_back(e);
            } else if !quiet {
                state.quiet_announced = false;
            }
            state.process = process;
            state.last_sample = sample;
            state.exited_at_ns = None;
            state.seen_scan = scan_no;
        }
        // Exited processes: announce once, keep for the grace period, then evict.
        let seen_now: Vec<i32> = self
            .procs
            .iter()
            .filter(|(_, s)| s.exited_at_ns.is_none() && s.seen_scan != scan_no)
            .map(|(p, _)| *p)
            .collect();
        for pid in seen_now {
            if let Some(s) = self.procs.get_mut(&pid) {
                s.exited_at_ns = Some(now);
                let info = ProcessInfo::of(&s.process);
                let cpu = s.process.cpu_total_secs;
                // Its announced waits ended with it (a fatal signal wakes every thread). Every
                // wait is dropped, announced or not, and so is the last sample's per-thread
                // detail: an exited process is kept for its grace period as a row, and a
                // 10,000-thread one would otherwise hold megabytes of decoded waits for it.
                s.last_sample.threads = Vec::new();
                for t in &mut s.process.threads {
                    t.stack = None;
                    if let (Some(w), true) = (t.blocked.take(), s.announced.contains_key(&t.tid)) {
                        let (duration_ns, exact, woken_by) =
                            ended_wait(self.ended.remove(&t.tid), &w, now);
                        out.push(Output::Unblocked {
                            process: info.clone(),
                            tid: t.tid,
                            thread_comm: t.comm.clone(),
                            wait: w,
                            duration_ns,
                            exact,
                            woken_by,
                        });
                    }
                }
                s.announced.clear();
                self.push_event(EventLine {
                    ts_mono_ns: now,
                    kind: EventKind::ProcessExit,
                    pid,
                    text: format!("{} {} exited", pid, info.comm),
                });
                out.push(Output::ProcessExit {
                    process: info,
                    ts_mono_ns: now,
                    lifetime_cpu_secs: cpu,
                });
            }
        }
        let grace = self.cfg.exit_grace_ns;
        self.procs.retain(|_, s| s.exited_at_ns.is_none_or(|t| now.saturating_sub(t) < grace));
        // Ended waits of threads we no longer track are dropped.
        self.ended.retain(|_, e| now.saturating_sub(e.end_ns) < 10_000_000_000);
        crate::procfs::shrink_spare(&mut self.ended);
        while self.events.len() > self.cfg.max_events {
            self.events.pop_front();
        }
    }

    /// Recomputes the findings over the live processes; announces those that opened and
    /// those that resolved.
    fn analyze(&mut self, now: u64, env: &dyn Env, out: &mut Vec<Output>) {
        let me = std::process::id() as i32;
        let procs: Vec<Process> = self
            .procs
            .values()
            .filter(|s| s.exited_at_ns.is_none() && s.process.pid != me)
            .map(|s| s.process.clone())
            .collect();
        let facts = env.facts(&procs, self.ooms.iter().cloned().collect());
        let cfg = analysis::Config {
            now_mono_ns: now,
            hung_after_ns: self.hung_after_ns,
            oom_recent_ns: 3600 * 1_000_000_000,
        };
        let mut new = analysis::analyze(&procs, &facts, &cfg);
        // The frames each chain step waits in, where stacks were read (docs/stacks.md).
        crate::analysis::annotate_findings(&mut new, &procs);
        for f in &new {
            if !self.findings.iter().any(|o| o.key == f.key) {
                out.push(Output::Finding { ts_mono_ns: now, finding: f.clone() });
            }
        }
        for f in &self.findings {
            if !new.iter().any(|n| n.key == f.key) {
                out.push(Output::FindingResolved { ts_mono_ns: now, finding: f.clone() });
            }
        }
        self.findings = new;
    }

    fn exit(&mut self, old: ProcState, now: u64, out: &mut Vec<Output>) {
        out.push(Output::ProcessExit {
            process: ProcessInfo::of(&old.process),
            ts_mono_ns: now,
            lifetime_cpu_secs: old.process.cpu_total_secs,
        });
    }

    /// An owned picture of the state for drawing.
    pub fn view(&self) -> View {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for s in self.procs.values() {
            children.entry(s.process.ppid).or_default().push(s.process.pid);
        }
        let mut procs: Vec<Process> = self.procs.values().map(|s| s.process.clone()).collect();
        model::rank(&mut procs);
        let rows = procs
            .into_iter()
            .map(|p| {
                let s = &self.procs[&p.pid];
                ProcessRow {
                    exited: s.exited_at_ns.is_some(),
                    oom_killed: s.oom_killed,
                    children: children.get(&p.pid).cloned().unwrap_or_default(),
                    process: p,
                }
            })
            .collect::<Vec<_>>();
        View {
            now_mono_ns: self.now_ns,
            blocked_threads: rows.iter().map(|r| r.process.blocked_count()).sum(),
            blocked_processes: rows.iter().filter(|r| r.process.blocked_count() > 0).count(),
            processes: rows,
            events: self.events.iter().cloned().collect(),
            oom_kills: self.ooms.iter().cloned().collect(),
            health: self.health.clone(),
            findings: self.findings.clone(),
        }
    }

    /// Number of processes tracked (live and in their exit grace period).
    pub fn tracked(&self) -> usize {
        self.procs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{Stat, StatusMem, SyscallState, ThreadSample};

    /// A process whose memory and fds cannot be read.
    pub(super) struct NoMem;
    impl TaskView for NoMem {
        fn read_mem(&self, _: u64, _: usize) -> Option<Vec<u8>> {
            None
        }
        fn fd_target(&self, _: i32) -> Option<String> {
            None
        }
    }
    /// /proc with nothing to follow: no facts beyond the OOM kills given.
    pub(super) struct TestEnv;
    impl Env for TestEnv {
        fn task_view(&self, _: i32) -> Box<dyn TaskView> {
            Box::new(NoMem)
        }
        fn facts(&self, _: &[Process], oom_kills: Vec<OomFact>) -> Facts {
            Facts { oom_kills, ..Default::default() }
        }
    }
    #[allow(non_upper_case_globals)]
    const nomem: TestEnv = TestEnv;

    const S: u64 = 1_000_000_000;

    fn sample(pid: i32, start: u64, exec_start: Option<u64>, state: char) -> ProcessSample {
        let futex = SyscallState::In { nr: 202, args: [0x1000, 128, 0, 0, 0, 0] };
        ProcessSample {
            pid,
            stat: Stat {
                pid,
                comm: format!("p{pid}"),
                state,
                starttime: start,
                ..Default::default()
            },
            cmdline: format!("prog {pid}"),
            cmdline_truncated: false,
            cgroup: "/job".into(),
            mem: StatusMem::default(),
            threads: vec![ThreadSample {
                tid: pid,
                stat: Stat { pid, comm: "main".into(), state, ..Default::default() },
                syscall: exec_start.map(|_| futex),
                wchan: None,
                exec_start_ns: exec_start,
            }],
        }
    }

    fn scan(now: u64, samples: Vec<ProcessSample>) -> Input {
        Input::Scan {
            now_mono_ns: now,
            samples: samples.into_iter().map(|s| (s.pid, s)).collect(),
            unchanged: Vec::new(),
            mem: HashMap::new(),
            clock_offsets: vec![0],
            uptime_secs: now as f64 / 1e9,
        }
    }

    fn agg() -> Aggregator {
        Aggregator::new(
            Config {
                filter: Filter { pids: vec![], comm: None, cgroup: None, min_blocked_ns: S },
                exit_grace_ns: 60 * S,
                max_events: 50,
                max_oom: 10,
                ticks_per_sec: 100,
            },
            vec![],
        )
    }

    fn kinds(out: &[Output]) -> Vec<&'static str> {
        out.iter()
            .map(|o| match o {
                Output::Blocked { .. } => "blocked",
                Output::Unblocked { .. } => "unblocked",
                Output::OomKill { .. } => "oom_kill",
                Output::ProcessExit { .. } => "process_exit",
                Output::Stats { .. } => "stats",
                Output::Memory { .. } => "memory",
                Output::Finding { .. } => "finding",
                Output::FindingResolved { .. } => "finding_resolved",
            })
            .collect()
    }

    #[test]
    fn not_returned_from_the_layout_then_resolved_when_given_back() {
        use crate::memory::{MIB, MemSample};
        use crate::memory_layout::{Layout, Quiet, Region};
        let mut a = agg();
        let heap = Region {
            count: 1,
            size: 512 * MIB,
            rss: 512 * MIB,
            anon: 512 * MIB,
            referenced: 512 * MIB,
        };
        let layout = Layout { heap, mappings: 20, ..Default::default() };
        // Asleep in a futex since t=0; memory sampled every scan.
        let mem_scan = |a: &mut Aggregator, now: u64, anon: u64, with_layout: bool| {
            let layouts = if with_layout { HashMap::from([(10, layout)]) } else { HashMap::new() };
            a.handle(Input::MemLayouts(layouts), &nomem);
            let mut input = scan(now, vec![sample(10, 1, Some(0), 'S')]);
            if let Input::Scan { mem, .. } = &mut input {
                let m = MemSample {
                    t_mono_ns: now,
                    rss: anon,
                    rss_anon: anon,
                    heap: anon,
                    ..Default::default()
                };
                mem.insert(10, m);
            }
            a.handle(input, &nomem)
        };
        let mut out = Vec::new();
        for i in 1..=10 {
            out.extend(mem_scan(&mut a, i * S, 512 * MIB, true));
        }
        let m = a.view().processes[0].process.memory.expect("memory status");
        assert!(m.not_returned, "{m:#?}");
        assert!(
            matches!(m.retained.map(|r| r.quiet), Some(Quiet::Asleep { for_ns }) if for_ns >= 9 * S)
        );
        assert!(kinds(&out).contains(&"finding"), "{:?}", kinds(&out));
        // malloc_trim: anon RSS falls, no layout is read any more; the verdict goes away.
        let mut out = Vec::new();
        for i in 11..=20 {
            out.extend(mem_scan(&mut a, i * S, 2 * MIB, false));
        }
        let m = a.view().processes[0].process.memory.expect("memory status");
        assert!(!m.not_returned && m.layout.is_none(), "{m:#?}");
        assert!(kinds(&out).contains(&"finding_resolved"), "{:?}", kinds(&out));
    }

    #[test]
    fn kernel_memory_counts_replace_the_sampled_ones() {
        use crate::memory::MemSample;
        let mut a = agg();
        let mem_scan = |now: u64| {
            let mut input = scan(now, vec![sample(10, 1, None, 'R')]);
            if let Input::Scan { mem, .. } = &mut input {
                let m = MemSample {
                    t_mono_ns: now,
                    rss: 200 << 20,
                    heap: 100 << 20,
                    ..Default::default()
                };
                mem.insert(10, m);
            }
            input
        };
        a.handle(mem_scan(S), &nomem);
        let sampled = a.view().processes[0].process.memory.expect("memory status");
        assert!(sampled.kernel.is_none());
        let counts = hangwatch_common::MemCounters {
            brk_grows: 7,
            brk_shrink_bytes: 1 << 20,
            munmap_bytes: 8 << 20,
            madvise_bytes: 4 << 20,
            ..Default::default()
        };
        a.handle(Input::KernelMemory(HashMap::from([(10, counts), (99, counts)])), &nomem);
        a.handle(mem_scan(2 * S), &nomem);
        let m = a.view().processes[0].process.memory.expect("memory status");
        assert_eq!(m.kernel, Some(counts));
        assert_eq!(m.brk_grows, 7);
        assert_eq!(m.munmap_bytes, Some(8 << 20));
        assert_eq!(m.returned_bytes, 13 << 20);
        // The kernel map drops exited processes: so does the aggregator's copy.
        a.handle(Input::KernelMemory(HashMap::new()), &nomem);
        a.handle(mem_scan(3 * S), &nomem);
        assert!(a.view().processes[0].process.memory.as_ref().is_some_and(|m| m.kernel.is_none()));
    }

    #[test]
    fn an_unchanged_process_is_brought_up_to_date_like_a_full_rebuild() {
        let idle = || sample(10, 1, Some(5 * S), 'S');
        // Fast path: the same sample scan after scan.
        let mut a = agg();
        for t in [100, 101, 102] {
            a.handle(scan(t * S, vec![idle()]), &nomem);
        }
        // Full rebuild: a fresh aggregator that sees it first at 101 s and then at 102 s.
        let mut b = agg();
        b.handle(scan(101 * S, vec![idle()]), &nomem);
        let out = b.handle(scan(102 * S, vec![idle()]), &nomem);
        assert!(out.is_empty(), "{out:?}");
        let pa = a.view().processes[0].process.clone();
        let pb = b.view().processes[0].process.clone();
        assert_eq!(pa, pb);
        let w = pa.threads[0].blocked.as_ref().expect("blocked");
        assert_eq!(w.duration_ns, 97 * S, "the duration moves on with the clock");
        assert!((pa.age_secs - 101.99).abs() < 1e-6, "{}", pa.age_secs);
        // A sleeping thread not yet past --min-blocked is rebuilt: it crosses it now.
        let mut c = agg();
        let young = || sample(10, 1, Some(100 * S + S / 2), 'S');
        let out = c.handle(scan(100 * S + S / 2 + 1, vec![young()]), &nomem);
        assert!(out.is_empty(), "not blocked yet: {out:?}");
        let out = c.handle(scan(102 * S, vec![young()]), &nomem);
        assert_eq!(kinds(&out), vec!["blocked"]);
        // The same, sent by pid only (served whole by the scanner): the same model.
        let by_pid = |t: u64| {
            let mut i = scan(t * S, vec![]);
            if let Input::Scan { unchanged, .. } = &mut i {
                unchanged.push(10);
            }
            i
        };
        let mut d = agg();
        d.handle(scan(100 * S, vec![idle()]), &nomem);
        for t in [101, 102] {
            assert!(d.handle(by_pid(t), &nomem).is_empty());
        }
        assert_eq!(d.view().processes[0].process, pa, "served whole = the same sample again");
        assert_eq!(d.tracked(), 1, "still seen: not taken for exited");
        let mut e = agg();
        e.handle(scan(100 * S + S / 2 + 1, vec![young()]), &nomem);
        let out = e.handle(by_pid(102), &nomem);
        assert_eq!(kinds(&out), vec!["blocked"], "crossing --min-blocked while served whole");
    }

    #[test]
    fn a_busy_node_is_analyzed_less_often() {
        assert_eq!(analysis_every(0), ANALYSIS_EVERY);
        assert_eq!(analysis_every(6_999), ANALYSIS_EVERY);
        assert_eq!(analysis_every(7_000), 10);
        assert_eq!(analysis_every(12_000), 15);
        assert_eq!(analysis_every(1_000_000), 30);
    }

    #[test]
    fn wait_announced_once_then_ended_exactly() {
        let mut a = agg();
        // Blocked since t=5 s; first scan at t=100 s announces it (already blocked at start).
        let out = a.handle(scan(100 * S, vec![sample(10, 1, Some(5 * S), 'S')]), &nomem);
        // A lone thread in a futex wait for 95 s that began 4 s after the start is also `hung`
        // (docs/findings.md); this test is about the wait events.
        assert_eq!(kinds(&out), vec!["blocked", "finding"]);
        let Output::Blocked { wait, .. } = &out[0] else { unreachable!() };
        assert_eq!(wait.duration_ns, 95 * S);
        // Same wait: nothing new.
        let out = a.handle(scan(101 * S, vec![sample(10, 1, Some(5 * S), 'S')]), &nomem);
        assert!(out.is_empty(), "{out:?}");
        // The kernel saw it end at 101.5 s, woken by pid 77.
        a.handle(
            Input::WaitEnd(WaitEndEvent {
                pid: 10,
                tid: 10,
                comm: "main".into(),
                start_ns: 5 * S,
                end_ns: 101 * S + S / 2,
                syscall_nr: 202,
                waker_pid: 77,
                waker_tid: 77,
                waker_comm: "waker".into(),
            }),
            &nomem,
        );
        let out = a.handle(scan(102 * S, vec![sample(10, 1, None, 'R')]), &nomem);
        assert_eq!(kinds(&out), vec!["unblocked"]);
        let Output::Unblocked { duration_ns, exact, woken_by, .. } = &out[0] else {
            unreachable!()
        };
        assert_eq!(*duration_ns, 96 * S + S / 2);
        assert!(exact);
        assert_eq!(woken_by.as_ref().map(|w| w.0), Some(77));
        assert_eq!(a.view().events.last().map(|e| e.kind), Some(EventKind::WaitEnded));
    }

    #[test]
    fn wait_that_crosses_threshold_later_is_announced_then() {
        let mut a = agg();
        let out = a.handle(scan(10 * S, vec![sample(10, 1, Some(10 * S - S / 2), 'S')]), &nomem);
        assert!(out.is_empty(), "0.5 s wait is below min_blocked");
        let out = a.handle(scan(11 * S, vec![sample(10, 1, Some(10 * S - S / 2), 'S')]), &nomem);
        assert_eq!(kinds(&out), vec!["blocked"]);
        // Without a kernel record, the end is bounded by the scan.
        let out = a.handle(scan(12 * S, vec![sample(10, 1, Some(12 * S - 1000), 'S')]), &nomem);
        assert_eq!(kinds(&out), vec!["unblocked"]);
        let Output::Unblocked { exact, duration_ns, .. } = &out[0] else { unreachable!() };
        assert!(!exact);
        assert_eq!(*duration_ns, 2 * S + S / 2);
    }

    #[test]
    fn exit_grace_and_eviction() {
        let mut a = agg();
        a.handle(scan(S, vec![sample(10, 1, Some(0), 'S')]), &nomem);
        let out = a.handle(scan(2 * S, vec![]), &nomem);
        assert_eq!(
            kinds(&out),
            vec!["unblocked", "process_exit"],
            "its announced wait ended with it"
        );
        assert_eq!(a.tracked(), 1, "kept for inspection during the grace period");
        assert!(a.view().processes[0].exited);
        let out = a.handle(scan(3 * S, vec![]), &nomem);
        assert!(out.is_empty(), "exit announced once: {out:?}");
        a.handle(scan(70 * S, vec![]), &nomem);
        assert_eq!(a.tracked(), 0);
    }

    #[test]
    fn pid_reuse_is_a_new_process() {
        let mut a = agg();
        a.handle(scan(10 * S, vec![sample(10, 1, Some(0), 'S')]), &nomem);
        let out = a.handle(scan(11 * S, vec![sample(10, 999, Some(10 * S + S / 2), 'S')]), &nomem);
        assert_eq!(
            kinds(&out),
            vec!["process_exit"],
            "old one exits; the new wait is only 0.5 s old"
        );
        let out = a.handle(scan(12 * S, vec![sample(10, 999, Some(10 * S + S / 2), 'S')]), &nomem);
        assert_eq!(kinds(&out), vec!["blocked"]);
    }

    #[test]
    fn oom_marks_process_and_is_bounded() {
        let mut a = agg();
        a.handle(scan(S, vec![sample(10, 1, None, 'R')]), &nomem);
        for i in 0..30 {
            let out = a.handle(
                Input::OomVictim(OomVictimEvent {
                    ts_ns: S + i,
                    pid: 10,
                    host_pid: 10,
                    anon_rss_kb: Some(1024),
                    ..Default::default()
                }),
                &nomem,
            );
            assert_eq!(kinds(&out), vec!["oom_kill"]);
        }
        let v = a.view();
        assert_eq!(v.oom_kills.len(), 10);
        assert!(v.processes[0].oom_killed);
        assert!(v.events.iter().any(|e| e.kind == EventKind::OomKill && e.text.contains("p10")));
    }

    #[test]
    fn churn_leaves_state_bounded() {
        let mut a = agg();
        // 20,000 short-lived processes seen once each over 2,000 scans.
        for round in 0..2000u64 {
            let now = (round + 1) * S;
            let samples = (0..10)
                .map(|i| sample(100_000 + (round * 10 + i) as i32, round, Some(now), 'S'))
                .collect();
            a.handle(scan(now, samples), &nomem);
        }
        // Only those within the 60 s grace period remain.
        assert!(a.tracked() <= 610, "tracked {}", a.tracked());
        assert!(a.view().events.len() <= 50);
    }

    #[test]
    fn filters_by_cgroup_and_comm() {
        let mut a = agg();
        a.cfg.filter.cgroup = Some("other".into());
        a.handle(scan(100 * S, vec![sample(10, 1, Some(0), 'S')]), &nomem);
        assert_eq!(a.tracked(), 0);
        a.cfg.filter.cgroup = Some("job".into());
        a.cfg.filter.comm = Some("p10".into());
        a.handle(scan(101 * S, vec![sample(10, 1, Some(0), 'S')]), &nomem);
        assert_eq!(a.tracked(), 1);
    }
}

#[cfg(test)]
mod live_analysis_tests {
    use super::*;
    use crate::{
        memory::MemSample,
        procfs::{Stat, StatusMem, SyscallState, ThreadSample},
    };

    use super::tests::TestEnv;

    const S: u64 = 1_000_000_000;

    /// A process that used 1 s of CPU and then sits in poll(-1) since `since`.
    fn hung(pid: i32, since: u64, t: u64) -> (ProcessSample, MemSample) {
        let poll = SyscallState::In { nr: 7, args: [0, 1, 0xffff_ffff, 0, 0, 0] };
        let p = ProcessSample {
            pid,
            stat: Stat {
                pid,
                comm: "job".into(),
                state: 'S',
                utime: 100,
                starttime: 1,
                ..Default::default()
            },
            cmdline: "job".into(),
            cmdline_truncated: false,
            cgroup: "/x".into(),
            mem: StatusMem::default(),
            threads: vec![ThreadSample {
                tid: pid,
                stat: Stat {
                    pid,
                    comm: "job".into(),
                    state: 'S',
                    utime: 100,
                    ..Default::default()
                },
                syscall: Some(poll),
                wchan: None,
                exec_start_ns: Some(since),
            }],
        };
        let m = MemSample { t_mono_ns: t, rss: 10 << 20, rss_anon: 8 << 20, ..Default::default() };
        (p, m)
    }

    fn scan(now: u64, v: Vec<(ProcessSample, MemSample)>) -> Input {
        Input::Scan {
            now_mono_ns: now,
            samples: v.iter().map(|(p, _)| (p.pid, p.clone())).collect(),
            unchanged: Vec::new(),
            mem: v.into_iter().map(|(p, m)| (p.pid, m)).collect(),
            clock_offsets: vec![0],
            uptime_secs: now as f64 / 1e9,
        }
    }

    #[test]
    fn finding_opens_and_resolves() {
        let mut a = Aggregator::new(
            Config {
                filter: Filter { pids: vec![], comm: None, cgroup: None, min_blocked_ns: S },
                exit_grace_ns: 60 * S,
                max_events: 50,
                max_oom: 10,
                ticks_per_sec: 100,
            },
            vec![],
        );
        a.set_hung_after(10 * S);
        let mut opened = 0;
        let mut resolved = 0;
        // Blocked since t=50 s; analysis runs on scans 1, 6, 11, ...
        for i in 0..11u64 {
            let now = 100 * S + i * S;
            let v = if i < 6 { vec![hung(10, 50 * S, now)] } else { vec![] };
            for o in a.handle(scan(now, v), &TestEnv) {
                match o {
                    Output::Finding { finding, .. } => {
                        assert_eq!(finding.kind, analysis::FindingKind::Hung);
                        assert_eq!(finding.pids, vec![10]);
                        opened += 1;
                    }
                    Output::FindingResolved { finding, .. } => {
                        assert_eq!(finding.kind, analysis::FindingKind::Hung);
                        resolved += 1;
                    }
                    _ => {}
                }
            }
            if i == 3 {
                assert_eq!(a.view().findings.len(), 1);
                let m = a.view().processes[0].process.memory.expect("memory sampled");
                assert_eq!(m.rss, 10 << 20);
            }
        }
        assert_eq!((opened, resolved), (1, 1), "announced once, resolved once");
    }

    #[test]
    fn memory_announced_on_material_change_only() {
        let base = MemStatus { rss: 100 << 20, ..Default::default() };
        assert!(memory_changed(None, &base));
        let small = MemStatus { rss: 105 << 20, ..base };
        assert!(!memory_changed(Some(&base), &small));
        let big = MemStatus { rss: 130 << 20, ..base };
        assert!(memory_changed(Some(&base), &big));
        let verdict = MemStatus { not_returned: true, ..base };
        assert!(memory_changed(Some(&base), &verdict));
        assert!(!memory_changed(None, &MemStatus { rss: 1 << 20, ..Default::default() }));
    }
}
