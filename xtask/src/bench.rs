//! `cargo xtask bench [--quick]`: what hangwatch costs the node it watches, measured side by
//! side in one run with the tool a user would pick instead (a bpftrace futex-latency one-liner).
//!
//! Method (docs/benchmarks.md explains it and holds the latest table):
//!
//! * every workload is a small C program from `xtask/bench/` (compiled here with
//!   `cc -O2 -pthread`) that runs for a fixed time and prints its rate, ops/s, as one number;
//!   it runs under `runstat`, which reports its CPU time from `wait4`;
//! * per workload the runs are interleaved in triples — nothing attached, hangwatch
//!   (`hangwatch --json`, the way it runs as an agent), bpftrace — so slow drifts of the machine
//!   hit all three alike; each triple gives one ratio per tool, and the report shows the median
//!   ratio and the range over triples;
//! * a tool is started before the workload and stopped (SIGINT) after it, once it is attached
//!   (its first line of output) and has settled; its CPU is read from its threads'
//!   `/proc/PID/task/TID/schedstat` (nanoseconds) at the start and the end of the workload, so
//!   it covers exactly the workload's interval, and its RSS from `/proc/PID/status`;
//! * ring-buffer events and losses come from hangwatch's own per-CPU `STATS` map (read with
//!   bpftool), as deltas over the workload's interval; what hangwatch itself reports as lost
//!   (ring buffer or its own queues) comes from its `lost` and `stats` JSON records;
//! * the machine is shared: other processes' CPU over every run is measured from `/proc/stat`
//!   minus what the workload and the tool used; a triple in which it exceeds
//!   [`foreign_limit`] is marked disturbed and, in the full run, replaced by another (up to
//!   [`Plan::extra`] times);
//! * per-probe cost (`run_time_ns / run_cnt` with `kernel.bpf_stats_enabled=1`) is measured in
//!   separate runs after the triples: the statistics themselves cost two clock reads per
//!   program run, which would inflate the ratios (measured: ~10% on futex ping-pong).
//!
//! Timing never fails: the bench exits 0 unless it could not run, and the report says PASS or
//! FAIL against each target.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitCode, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value as Json;

use super::{Ctx, capture, display_cmd};

/// The peer a user would pick instead of hangwatch (docs/design.md, "The cost problem").
const BPFTRACE_PROGRAM: &str = "tracepoint:syscalls:sys_enter_futex { @start[tid] = nsecs; } \
     tracepoint:syscalls:sys_exit_futex /@start[tid]/ { @lat = hist(nsecs - @start[tid]); \
     delete(@start[tid]); }";

/// Debian packages the bench uses when it can get them (bpftrace itself is required and is
/// installed by main.rs's `BENCH_PACKAGES`).
const OPTIONAL_PACKAGES: &[&str] = &["bpftool"];

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// A triple is disturbed when other processes used more than this share of one core while one
/// of its runs was measured. Starting and reaping 10,000 threads makes the kernel itself work
/// outside the workload's accounting (RCU callbacks, kworkers: ~0.2 core measured), hence the
/// higher limit there.
fn foreign_limit(kind: Kind) -> f64 {
    match kind {
        Kind::Blocked => 0.35,
        Kind::Rate | Kind::Idle => 0.15,
    }
}

/// More threads than this on the machine when a run starts get a note in the report.
const BUSY_TASKS: u64 = 2_000;

/// Time a tool gets after its first line of output before the workload starts.
const SETTLE: Duration = Duration::from_millis(300);

/// Indices in hangwatch's per-CPU `STATS` map (`hangwatch_common::stat`).
const STAT_EVENTS: usize = 0;
const STAT_LOST: usize = 1;
const STAT_LONG_WAITS: usize = 3;

/// Targets (issue "cargo xtask bench").
const MAX_SLOWDOWN_PCT: f64 = 5.0;
const MAX_IDLE_CPU_PCT: f64 = 1.0;
const MAX_RSS_MIB_10K: f64 = 50.0;
const MAX_SNAPSHOT_SECS_10K: f64 = 2.0;
/// Linear cost: the marginal cost per thread from 5k to 10k threads is at most this many
/// times that from 0 to 5k (1.0 is perfectly linear, 3.0 quadratic).
const MAX_SNAPSHOT_SUPERLINEARITY: f64 = 1.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Off,
    Hangwatch,
    Bpftrace,
    /// `hangwatch --json --exact-memory`: the opt-in memory syscall probes (no target; the
    /// report shows what they cost).
    ExactMemory,
}

/// Workloads also run with `--exact-memory` (full bench only).
const EXACT_MEMORY_WORKLOADS: &[&str] = &["futex", "poll0", "mmap", "brk", "madvise"];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Hangwatch => "hangwatch",
            Mode::Bpftrace => "bpftrace",
            Mode::ExactMemory => "exact-mem",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A loop with a rate: the slowdown is what counts.
    Rate,
    /// Nothing runs: hangwatch's own CPU is what counts.
    Idle,
    /// 10,000 threads blocked at once: hangwatch's CPU and RSS in live mode, and the burst of
    /// ring-buffer records when they are all woken.
    Blocked,
}

#[derive(Clone, Copy, Debug)]
enum Spec {
    /// A program from xtask/bench with these leading arguments; the duration is appended.
    Bin(&'static str, &'static [&'static str]),
    /// `stress-ng --futex 1` (its rate comes from its YAML report).
    StressNgFutex,
    /// `sleep`.
    Sleep,
    /// `blocked_threads cycle N HOLD`.
    Blocked(usize),
}

struct Workload {
    key: &'static str,
    title: &'static str,
    kind: Kind,
    in_quick: bool,
    spec: Spec,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        key: "futex",
        title: "futex wait/wake ping-pong, 2 threads on CPU 0",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("futex_pingpong", &[]),
    },
    Workload {
        key: "stress-ng-futex",
        title: "stress-ng --futex 1",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::StressNgFutex,
    },
    Workload {
        key: "poll0",
        title: "poll(pipe, 1, 0) loop",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("poll_loop", &["poll0"]),
    },
    Workload {
        key: "poll1ms",
        title: "poll(pipe, 1, 1 ms) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["poll1ms"]),
    },
    Workload {
        key: "epoll0",
        title: "epoll_wait(.., 0) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["epoll0"]),
    },
    Workload {
        key: "epoll1ms",
        title: "epoll_wait(.., 1 ms) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["epoll1ms"]),
    },
    Workload {
        key: "mmap",
        title: "mmap/munmap 64 KiB churn",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("mem_churn", &["mmap"]),
    },
    Workload {
        key: "brk",
        title: "brk grow/shrink 64 KiB churn",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("mem_churn", &["brk"]),
    },
    Workload {
        key: "madvise",
        title: "madvise(DONTNEED) 64 KiB churn",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("mem_churn", &["madvise"]),
    },
    Workload {
        key: "fork-exec",
        title: "fork + exec /bin/true + wait",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("task_churn", &["fork_exec"]),
    },
    Workload {
        key: "threads",
        title: "pthread create + exit + join",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("task_churn", &["thread"]),
    },
    Workload {
        key: "idle",
        title: "idle node (sleep)",
        kind: Kind::Idle,
        in_quick: true,
        spec: Spec::Sleep,
    },
    Workload {
        key: "blocked-10k",
        title: "10,000 threads blocked, then woken at once",
        kind: Kind::Blocked,
        in_quick: false,
        spec: Spec::Blocked(10_000),
    },
];

/// How long and how often.
struct Plan {
    quick: bool,
    /// Triples wanted per workload.
    reps: usize,
    /// Extra triples allowed per workload to replace disturbed ones.
    extra: usize,
    /// Length of one run of a rate workload.
    secs: f64,
    /// Length of one idle run.
    idle_secs: f64,
    /// How long the 10,000 threads stay blocked in one run.
    hold_secs: f64,
    /// Length of the bpf_stats runs.
    probe_secs: f64,
    /// Which workloads get bpf_stats runs.
    probe_workloads: &'static [&'static str],
    /// Blocked thread counts for the snapshot timing.
    snapshot_counts: &'static [usize],
    snapshot_reps: usize,
    /// `HANGWATCH_BENCH_ONLY=key,key`: only these workloads (`snapshot` for the snapshot
    /// timing).
    only: Option<Vec<String>>,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let only = std::env::var("HANGWATCH_BENCH_ONLY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect());
        let mut plan = Self::standard(quick);
        plan.only = only;
        plan
    }

    fn standard(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                reps: 3,
                extra: 0,
                secs: 1.5,
                idle_secs: 1.5,
                hold_secs: 0.0,
                probe_secs: 1.0,
                probe_workloads: &["futex"],
                snapshot_counts: &[],
                snapshot_reps: 0,
                only: None,
            }
        } else {
            Plan {
                quick,
                reps: 5,
                extra: 2,
                secs: 2.0,
                idle_secs: 4.0,
                hold_secs: 3.0,
                probe_secs: 1.0,
                probe_workloads: &[
                    "futex",
                    "stress-ng-futex",
                    "poll0",
                    "mmap",
                    "fork-exec",
                    "threads",
                    "idle",
                    "blocked-10k",
                ],
                snapshot_counts: &[0, 1_000, 5_000, 10_000],
                snapshot_reps: 3,
                only: None,
            }
        }
    }

    fn workloads(&self) -> impl Iterator<Item = &'static Workload> + '_ {
        WORKLOADS.iter().filter(|w| !self.quick || w.in_quick).filter(|w| self.selected(w.key))
    }

    fn selected(&self, key: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|k| k == key))
    }

    fn duration(&self, w: &Workload) -> f64 {
        match w.kind {
            Kind::Rate => self.secs,
            Kind::Idle => self.idle_secs,
            Kind::Blocked => self.hold_secs,
        }
    }
}

// ------------------------------------------------------------------------ entry point

/// Runs the benchmark (set-up and build are done by the caller) and writes the report.
pub(super) fn run(ctx: &Ctx, quick: bool) -> Result<ExitCode> {
    let started = Instant::now();
    for pkg in OPTIONAL_PACKAGES {
        if let Err(err) = ctx.ensure_apt(&[pkg]) {
            eprintln!("warning: {err:#}; the bench goes on without {pkg}");
        }
    }
    let mut bench = Bench::new(ctx, Plan::new(quick))?;
    let header = bench.header();
    let mut results = Vec::new();
    let workloads: Vec<&Workload> = bench.plan.workloads().collect();
    for (i, w) in workloads.iter().enumerate() {
        if matches!(w.spec, Spec::StressNgFutex) && !bench.have_stress_ng {
            bench.note(format!("{}: skipped, stress-ng is not installed", w.key));
            continue;
        }
        eprintln!("bench: [{}/{}] {}", i + 1, workloads.len(), w.title);
        results.push(bench.workload(w)?);
    }
    let tasks: Vec<u64> =
        results.iter().flat_map(|r| r.triples.iter().flatten()).map(|r| r.machine_tasks).collect();
    let most = tasks.iter().copied().max().unwrap_or(0);
    if most > BUSY_TASKS {
        let busy = tasks.iter().filter(|&&t| t > BUSY_TASKS).count();
        bench.note(format!(
            "other processes had many threads during {busy} of {} runs (up to {most} threads \
             on the machine): hangwatch's live mode rescans every thread each second (see the \
             10,000-thread section), so its CPU and the slowdowns of those runs include that",
            tasks.len()
        ));
    }
    let (dirty, all) = results.iter().fold((0, 0), |(d, a), r: &WorkloadResult| {
        (d + r.triples.iter().filter(|t| disturbed(t)).count(), a + r.triples.len())
    });
    if dirty > 0 {
        bench.note(format!(
            "the machine was not quiet: in {dirty} of {all} triples other processes used more \
             than the limit of CPU during a run (see the triples column); ratios from such \
             triples are noisier"
        ));
    }
    let snapshots = bench.snapshots()?;
    bench.busy = bench.busy_node()?;
    bench.stats.restore();
    let elapsed = started.elapsed();
    let report = bench.report(&header, &results, &snapshots, elapsed);
    print!("{report}");
    let latest = bench.dir.join("latest.md");
    fs::write(&latest, &report).with_context(|| format!("writing {}", latest.display()))?;
    eprintln!("bench: done in {}, report written to {}", fmt_duration(elapsed), latest.display());
    Ok(ExitCode::SUCCESS)
}

struct Bench<'a> {
    ctx: &'a Ctx,
    plan: Plan,
    /// target/bench
    dir: PathBuf,
    /// target/bench/run: per-run scratch files (the last run's are kept for inspection).
    run_dir: PathBuf,
    /// target/bench/bin: the compiled workloads.
    bin_dir: PathBuf,
    hangwatch: PathBuf,
    have_bpftrace: bool,
    have_stress_ng: bool,
    have_bpftool: bool,
    stats: BpfStats,
    notes: Vec<String>,
    /// The busy-node measurement, when it ran.
    busy: Option<BusyResult>,
}

impl<'a> Bench<'a> {
    fn new(ctx: &'a Ctx, plan: Plan) -> Result<Self> {
        let dir = ctx.target_dir.join("bench");
        let run_dir = dir.join("run");
        let bin_dir = dir.join("bin");
        for d in [&run_dir, &bin_dir] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let built = ctx.hangwatch_bin();
        ensure!(built.is_file(), "{} was not built", built.display());
        // A private copy: a `cargo build` running beside the bench must not swap the binary
        // between two runs.
        // Copied beside and renamed over, so a copy still running elsewhere does not matter.
        let hangwatch = bin_dir.join("hangwatch");
        let tmp = bin_dir.join("hangwatch.new");
        fs::copy(&built, &tmp)
            .with_context(|| format!("copying {} to {}", built.display(), tmp.display()))?;
        fs::rename(&tmp, &hangwatch)
            .with_context(|| format!("renaming {} to {}", tmp.display(), hangwatch.display()))?;
        compile_workloads(ctx, &ctx.root.join("xtask").join("bench"), &bin_dir)?;
        let works = |program: &str, arg: &str| {
            ctx.cmd(program)
                .arg(arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let have_bpftrace = works("bpftrace", "--version");
        let have_stress_ng = works("stress-ng", "--version");
        let have_bpftool = works("bpftool", "version");
        let stats = BpfStats::new(dir.join("bpf_stats_enabled.saved"))?;
        let mut bench = Bench {
            ctx,
            plan,
            dir,
            run_dir,
            bin_dir,
            hangwatch,
            have_bpftrace,
            have_stress_ng,
            have_bpftool,
            stats,
            notes: Vec::new(),
            busy: None,
        };
        if !have_bpftrace {
            bench.note("bpftrace does not run here: the bpftrace columns are empty".into());
        }
        if !have_bpftool {
            bench.note(
                "bpftool is not installed: ring-buffer events come only from hangwatch's \
                 10-second stats lines, probe costs from /proc/PID/fdinfo"
                    .into(),
            );
        }
        if bench.stats.original == "1" {
            bench.note(
                "kernel.bpf_stats_enabled was already 1 (left as found): every run, \
                 including the ratio runs, paid for BPF run-time statistics"
                    .into(),
            );
        }
        Ok(bench)
    }

    fn note(&mut self, note: String) {
        eprintln!("bench: note: {note}");
        self.notes.push(note);
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn modes(&self, w: &Workload) -> Vec<Mode> {
        let mut modes = Vec::new();
        if w.kind != Kind::Idle {
            modes.push(Mode::Off);
        }
        modes.push(Mode::Hangwatch);
        if self.have_bpftrace {
            modes.push(Mode::Bpftrace);
        }
        if !self.plan.quick && EXACT_MEMORY_WORKLOADS.contains(&w.key) {
            modes.push(Mode::ExactMemory);
        }
        modes
    }

    // -------------------------------------------------------------------- one workload

    fn workload(&mut self, w: &'static Workload) -> Result<WorkloadResult> {
        let secs = self.plan.duration(w);
        let modes = self.modes(w);
        // One short untimed run: page cache, binaries, allocator warm.
        if w.kind == Kind::Rate {
            self.run_once(w, Mode::Off, 0.3_f64.max(secs / 5.0), false).context("warm-up run")?;
        }
        let mut triples: Vec<Vec<Run>> = Vec::new();
        let attempts = self.plan.reps + self.plan.extra;
        for attempt in 0..attempts {
            if triples.iter().filter(|t| !disturbed(t)).count() >= self.plan.reps {
                break;
            }
            let mut triple = Vec::new();
            for &mode in &modes {
                let run = self.run_once(w, mode, secs, false)?;
                eprintln!("bench:   {:>2} {:<9} {}", attempt + 1, mode.label(), run.progress());
                triple.push(run);
            }
            triples.push(triple);
        }
        let mut probe_runs = Vec::new();
        if self.plan.probe_workloads.contains(&w.key) {
            let secs = if w.kind == Kind::Blocked { 1.5 } else { self.plan.probe_secs };
            for &mode in modes.iter().filter(|m| **m != Mode::Off) {
                // A disturbed probe run is retried (full run only), like a disturbed triple.
                for attempt in 0..=self.plan.extra {
                    self.stats.set(true)?;
                    let run = self.run_once(w, mode, secs, true);
                    self.stats.set(false)?;
                    let run = run?;
                    eprintln!("bench:    {:<9} {} (bpf_stats on)", mode.label(), run.progress());
                    if !run.disturbed || attempt == self.plan.extra {
                        probe_runs.push(run);
                        break;
                    }
                }
            }
        }
        for run in triples.iter().flatten().chain(&probe_runs) {
            if let Some(t) = &run.tool
                && let Some(problem) = &t.problem
            {
                self.note(format!("{} / {}: {problem}", w.key, run.mode.label()));
            }
        }
        Ok(WorkloadResult { w, triples, probe_runs })
    }

    /// The workload command (under runstat) for `secs`, and where stress-ng writes its rate.
    fn workload_cmd(&self, w: &Workload, secs: f64) -> (Command, Option<PathBuf>) {
        let result = self.run_dir.join("runstat.txt");
        let mut argv: Vec<OsString> = Vec::new();
        let mut yaml = None;
        let secs_arg = format!("{secs}");
        match w.spec {
            Spec::Bin(name, args) => {
                argv.push(self.bin(name).into());
                argv.extend(args.iter().map(OsString::from));
                argv.push(secs_arg.into());
            }
            Spec::StressNgFutex => {
                // --timeout takes whole seconds ("1500ms" reads as 1500 minutes!).
                let path = self.run_dir.join("stress-ng.yaml");
                argv.extend(
                    ["stress-ng", "--futex", "1", "--metrics-brief", "--timeout"]
                        .map(OsString::from),
                );
                argv.push(format!("{}", secs.ceil().max(1.0) as u64).into());
                argv.push("--yaml".into());
                argv.push(path.clone().into());
                yaml = Some(path);
            }
            Spec::Sleep => {
                argv.push("sleep".into());
                argv.push(secs_arg.into());
            }
            Spec::Blocked(n) => {
                argv.push(self.bin("blocked_threads").into());
                argv.push("cycle".into());
                argv.push(n.to_string().into());
                argv.push(secs_arg.into());
            }
        }
        let mut cmd = self.ctx.cmd(self.bin("runstat"));
        cmd.arg(&result).args(argv);
        (cmd, yaml)
    }

    /// One run: start the tool (if any), run the workload, stop the tool.
    fn run_once(&self, w: &Workload, mode: Mode, secs: f64, bpf_stats: bool) -> Result<Run> {
        let machine_tasks = machine_tasks();
        let mut tool = match mode {
            Mode::Off => None,
            Mode::Hangwatch => Some(self.start_hangwatch(false)?),
            Mode::ExactMemory => Some(self.start_hangwatch(true)?),
            Mode::Bpftrace => Some(self.start_bpftrace()?),
        };
        let before = tool.as_ref().map(|t| self.sample_tool(t));
        let sys0 = SysCpu::read()?;
        let t0 = Instant::now();
        let (cmd, yaml) = self.workload_cmd(w, secs);
        let out = run_workload(cmd, Duration::from_secs_f64(secs + 60.0), false)?;
        let wall = t0.elapsed().as_secs_f64();
        let sys1 = SysCpu::read()?;
        let after = tool.as_ref().map(|t| self.sample_tool(t));
        let rs = RunStat::read(&self.run_dir.join("runstat.txt"))?;
        ensure!(
            rs.status == 0,
            "workload {} failed (wait status {}): {}",
            w.key,
            rs.status,
            out.stderr.trim()
        );
        let ops = match (w.kind, &yaml) {
            (Kind::Idle, _) => None,
            (_, Some(path)) => Some(stress_ng_rate(
                &fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            )?),
            (_, None) => Some(last_number(&out.stdout).with_context(|| {
                format!("workload {} printed no rate: {:?}", w.key, out.stdout)
            })?),
        };
        // hangwatch writes its stats line every 10 s: for the blocked-thread burst, wait for
        // the first one after it, so user-space drops are counted too.
        if let Some(t) = &mut tool
            && mode == Mode::Hangwatch
            && w.kind == Kind::Blocked
            && !bpf_stats
        {
            let seen = count_stats_lines(&t.out);
            let deadline = Instant::now() + Duration::from_secs(15);
            while count_stats_lines(&t.out) <= seen && Instant::now() < deadline {
                if t.child.try_wait()?.is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        let tool_run = match (tool, before, after) {
            (Some(t), Some(b), Some(a)) => Some(self.finish_tool(t, &b, &a)?),
            _ => None,
        };
        let busy = sys1.busy.saturating_sub(sys0.busy) as f64 / clock_ticks();
        let tool_cpu = tool_run.as_ref().map_or(0.0, |t| t.cpu_secs);
        let foreign = (busy - rs.cpu_secs() - tool_cpu).max(0.0) / wall;
        let steal = sys1.steal.saturating_sub(sys0.steal) as f64 / clock_ticks() / wall;
        Ok(Run {
            mode,
            ops,
            wall,
            foreign_cores: foreign,
            disturbed: foreign > foreign_limit(w.kind),
            steal_cores: steal,
            machine_tasks,
            tool: tool_run,
        })
    }

    // -------------------------------------------------------------------- tools

    fn start_hangwatch(&self, exact_memory: bool) -> Result<Tool> {
        let out = self.run_dir.join("hangwatch.jsonl");
        let err = self.run_dir.join("hangwatch.stderr");
        let mut cmd = self.ctx.cmd(&self.hangwatch);
        cmd.arg("--json");
        let mode = if exact_memory {
            cmd.arg("--exact-memory");
            Mode::ExactMemory
        } else {
            Mode::Hangwatch
        };
        self.start_tool(mode, cmd, out, err, |text| !text.is_empty())
    }

    fn start_bpftrace(&self) -> Result<Tool> {
        let out = self.run_dir.join("bpftrace.out");
        let err = self.run_dir.join("bpftrace.stderr");
        let mut cmd = self.ctx.cmd("bpftrace");
        cmd.args(["-e", BPFTRACE_PROGRAM]);
        self.start_tool(Mode::Bpftrace, cmd, out, err, |text| text.contains("Attaching"))
    }

    /// Starts `cmd` with stdout in `out` and waits until `ready(stdout so far)`, then settles.
    fn start_tool(
        &self,
        mode: Mode,
        mut cmd: Command,
        out: PathBuf,
        err: PathBuf,
        ready: impl Fn(&str) -> bool,
    ) -> Result<Tool> {
        let shown = display_cmd(&cmd);
        let stdout =
            fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        let stderr =
            fs::File::create(&err).with_context(|| format!("creating {}", err.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        let pid = child.id();
        let mut tool = Tool { mode, child, pid, out, err };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = tool.child.try_wait()? {
                bail!(
                    "`{shown}` exited ({status}) before it was attached: {}",
                    fs::read_to_string(&tool.err).unwrap_or_default().trim()
                );
            }
            if ready(&fs::read_to_string(&tool.out).unwrap_or_default()) {
                break;
            }
            ensure!(Instant::now() < deadline, "`{shown}` printed nothing within 30 s");
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(SETTLE);
        Ok(tool)
    }

    fn sample_tool(&self, t: &Tool) -> ToolSample {
        ToolSample {
            cpu: proc_cpu(t.pid),
            progs: self.prog_stats(t.pid),
            counters: if t.mode == Mode::Hangwatch { self.hangwatch_counters(t.pid) } else { None },
        }
    }

    /// Stops the tool with SIGINT and turns two samples into the run's figures.
    fn finish_tool(&self, mut t: Tool, before: &ToolSample, after: &ToolSample) -> Result<ToolRun> {
        let (rss, hwm) = proc_rss(t.pid);
        let interval = after.cpu.at.duration_since(before.cpu.at).as_secs_f64();
        let cpu_secs = after.cpu.secs_since(&before.cpu);
        let status = t.stop(self.ctx)?;
        let mut problem = match status {
            Some(s) if s.success() => None,
            Some(s) => Some(format!(
                "exited with {s} after SIGINT: {}",
                fs::read_to_string(&t.err).unwrap_or_default().trim()
            )),
            None => Some("did not exit within 10 s of two SIGINTs; killed".to_owned()),
        };
        let json = if matches!(t.mode, Mode::Hangwatch | Mode::ExactMemory) {
            let summary = JsonSummary::read(&t.out);
            if let Some(s) = &summary
                && !s.probes_failed.is_empty()
            {
                problem = Some(format!("probes not attached: {}", s.probes_failed.join(", ")));
            }
            summary
        } else {
            None
        };
        let counters = match (&before.counters, &after.counters) {
            (Some(b), Some(a)) => Some(Counters {
                events: a[STAT_EVENTS].saturating_sub(b[STAT_EVENTS]),
                lost: a[STAT_LOST].saturating_sub(b[STAT_LOST]),
                long_waits: a[STAT_LONG_WAITS].saturating_sub(b[STAT_LONG_WAITS]),
            }),
            _ => None,
        };
        let progs = after
            .progs
            .iter()
            .map(|a| {
                let b = before.progs.iter().find(|b| b.id == a.id);
                ProgDelta {
                    name: a.name.clone(),
                    run_time_ns: a.run_time_ns.saturating_sub(b.map_or(0, |b| b.run_time_ns)),
                    run_cnt: a.run_cnt.saturating_sub(b.map_or(0, |b| b.run_cnt)),
                    secs: interval,
                }
            })
            .collect();
        Ok(ToolRun {
            cpu_secs,
            cpu_core: if interval > 0.0 { cpu_secs / interval } else { 0.0 },
            rss_bytes: rss,
            hwm_bytes: hwm,
            counters,
            json,
            progs,
            problem,
        })
    }

    /// Run-time statistics of the BPF programs `pid` holds. Ids, run_time_ns and run_cnt come
    /// from /proc/PID/fdinfo (the kernel's own counters, what bpftool also reads); names from
    /// `bpftool prog show --json` when bpftool is here, else from the attach link.
    fn prog_stats(&self, pid: u32) -> Vec<ProgSample> {
        let fds = bpf_fds(pid);
        let mut link_names: BTreeMap<u64, String> = BTreeMap::new();
        for info in fds.iter().filter(|f| f.kind == "bpf_link") {
            if let (Some(id), Some(tp)) = (info.num("prog_id"), info.fields.get("tp_name")) {
                link_names.insert(id, tp.clone());
            }
        }
        let mut progs: Vec<ProgSample> = fds
            .iter()
            .filter(|f| f.kind == "bpf-prog")
            .filter_map(|f| {
                let id = f.num("prog_id")?;
                Some(ProgSample {
                    id,
                    name: link_names.get(&id).cloned().unwrap_or_else(|| {
                        format!("prog {id} (type {})", f.num("prog_type").unwrap_or(0))
                    }),
                    run_time_ns: f.num("run_time_ns").unwrap_or(0),
                    run_cnt: f.num("run_cnt").unwrap_or(0),
                })
            })
            .collect();
        progs.sort_by_key(|p| p.id);
        progs.dedup_by_key(|p| p.id);
        if self.have_bpftool
            && let Ok(text) = capture(self.ctx.cmd("bpftool").args(["prog", "show", "--json"]))
            && let Ok(Json::Array(all)) = serde_json::from_str::<Json>(&text)
        {
            for p in &mut progs {
                let found = all.iter().find(|j| j.get("id").and_then(Json::as_u64) == Some(p.id));
                if let Some(name) = found.and_then(|j| j.get("name")).and_then(Json::as_str) {
                    p.name = name.to_owned();
                }
            }
        }
        progs
    }

    /// hangwatch's `STATS` counters, summed over CPUs (needs bpftool to read the map).
    fn hangwatch_counters(&self, pid: u32) -> Option<Vec<u64>> {
        if !self.have_bpftool {
            return None;
        }
        let ids: BTreeSet<u64> = bpf_fds(pid)
            .iter()
            .filter(|f| f.kind == "bpf-map")
            .filter_map(|f| f.num("map_id"))
            .collect();
        let maps = serde_json::from_str::<Json>(
            &capture(self.ctx.cmd("bpftool").args(["map", "show", "--json"])).ok()?,
        )
        .ok()?;
        let id = maps.as_array()?.iter().find_map(|m| {
            let id = m.get("id")?.as_u64()?;
            (ids.contains(&id) && m.get("name")?.as_str()? == "STATS").then_some(id)
        })?;
        let dump =
            capture(self.ctx.cmd("bpftool").args(["map", "dump", "id", &id.to_string(), "--json"]))
                .ok()?;
        percpu_sums(&serde_json::from_str::<Json>(&dump).ok()?)
    }

    // -------------------------------------------------------------------- snapshot

    fn snapshots(&mut self) -> Result<Vec<SnapshotResult>> {
        let mut results = Vec::new();
        if self.plan.snapshot_counts.is_empty() {
            return Ok(results);
        }
        if self.plan.selected("snapshot-stacks") {
            results.push(self.snapshot_stacks()?);
        }
        if !self.plan.selected("snapshot") {
            return Ok(results);
        }
        eprintln!("bench: snapshot latency with N blocked threads");
        for &n in self.plan.snapshot_counts {
            let park = if n > 0 { Some(self.park(n)?) } else { None };
            // Let every wait pass --min-blocked (1 s), so each thread is reported in full.
            thread::sleep(Duration::from_millis(1200));
            let mut runs = Vec::new();
            for _ in 0..self.plan.snapshot_reps {
                let result = self.run_dir.join("snapshot-runstat.txt");
                let mut cmd = self.ctx.cmd(self.bin("runstat"));
                cmd.arg(&result)
                    .arg(&self.hangwatch)
                    .args(["snapshot", "--json", "--window", "100ms"]);
                let out = run_workload(cmd, Duration::from_secs(120), true)?;
                let rs = RunStat::read(&result)?;
                ensure!(
                    rs.status == 0,
                    "hangwatch snapshot failed with {n} blocked threads (wait status {}): {}",
                    rs.status,
                    out.stderr.trim()
                );
                eprintln!(
                    "bench:   {n:>6} threads: {:.3} s, CPU {:.3} s, peak RSS {:.1} MiB",
                    rs.wall_secs,
                    rs.cpu_secs(),
                    rs.maxrss_kib as f64 / 1024.0
                );
                runs.push(rs);
            }
            if let Some(p) = park {
                p.release()?;
            }
            results.push(SnapshotResult { threads: n, runs, stacks: false });
        }
        Ok(results)
    }

    /// `snapshot --stacks` with 10,000 blocked threads whose stacks are identical (one
    /// program, one function): every thread's kernel and native stack is read, unwound and
    /// symbolized (docs/stacks.md).
    fn snapshot_stacks(&mut self) -> Result<SnapshotResult> {
        const N: usize = 10_000;
        eprintln!("bench: snapshot --stacks with {N} blocked threads, identical stacks");
        let park = self.park(N)?;
        thread::sleep(Duration::from_millis(1200));
        let mut runs = Vec::new();
        for _ in 0..self.plan.snapshot_reps {
            let result = self.run_dir.join("snapshot-stacks-runstat.txt");
            let mut cmd = self.ctx.cmd(self.bin("runstat"));
            cmd.arg(&result)
                .arg(&self.hangwatch)
                .args(["snapshot", "--json", "--stacks", "--window", "100ms"]);
            let out = run_workload(cmd, Duration::from_secs(120), true)?;
            let rs = RunStat::read(&result)?;
            ensure!(
                rs.status == 0,
                "hangwatch snapshot --stacks failed with {N} blocked threads (wait status {}): {}",
                rs.status,
                out.stderr.trim()
            );
            eprintln!("bench:   {N:>6} threads with stacks: {:.3} s", rs.wall_secs);
            runs.push(rs);
        }
        park.release()?;
        Ok(SnapshotResult { threads: N, runs, stacks: true })
    }

    /// Starts `blocked_threads park N` and waits until its N threads are blocked.
    fn park(&self, n: usize) -> Result<Parked> {
        self.park_program("blocked_threads", n)
    }

    /// Starts `PROGRAM park N` and waits for its `ready` line (N threads or processes parked).
    fn park_program(&self, program: &str, n: usize) -> Result<Parked> {
        let mut cmd = self.ctx.cmd(self.bin(program));
        cmd.args(["park", &n.to_string()]);
        let shown = display_cmd(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .with_context(|| format!("reading from `{shown}`"))?;
        let parked = Parked { child, stdin };
        ensure!(line.trim() == "ready", "`{shown}` did not get ready: {line:?}");
        Ok(parked)
    }

    // -------------------------------------------------------------------- report

    fn header(&self) -> Header {
        let text =
            |cmd: &mut Command| capture(cmd).map(|s| s.trim().to_owned()).unwrap_or_default();
        let commit = text(self.ctx.cmd("git").args(["rev-parse", "--short", "HEAD"]));
        let dirty = !text(self.ctx.cmd("git").args(["status", "--porcelain"])).is_empty();
        Header {
            command: if self.plan.quick {
                "cargo xtask bench --quick".into()
            } else {
                "cargo xtask bench".into()
            },
            kernel: text(Command::new("uname").arg("-r")),
            nproc: text(&mut Command::new("nproc")),
            date: text(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
            commit: if dirty { format!("{commit} (with uncommitted changes)") } else { commit },
            tasks: machine_tasks(),
            loadavg: fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            bpftrace: text(Command::new("bpftrace").arg("--version")),
            stress_ng: text(Command::new("stress-ng").arg("--version")),
        }
    }

    #[allow(clippy::too_many_lines, reason = "long data: the report's sections in order")]
    fn report(
        &self,
        h: &Header,
        results: &[WorkloadResult],
        snapshots: &[SnapshotResult],
        elapsed: Duration,
    ) -> String {
        let p = &self.plan;
        let mut s = String::new();
        let _ = writeln!(s, "# hangwatch overhead: `{}`\n", h.command);
        let _ = writeln!(
            s,
            "- machine: Linux {}, {} CPUs; load average at start {}, {} threads",
            h.kernel, h.nproc, h.loadavg, h.tasks
        );
        let _ = writeln!(
            s,
            "- date: {}; commit {}; bench took {}",
            h.date,
            h.commit,
            fmt_duration(elapsed)
        );
        let _ = writeln!(
            s,
            "- hangwatch: `target/release/hangwatch --json` (a copy in target/bench/bin; stdout to a file, read afterwards); \
             peer: `bpftrace -e '{BPFTRACE_PROGRAM}'` ({}); {}",
            h.bpftrace, h.stress_ng
        );
        let _ = writeln!(
            s,
            "- per workload: {} interleaved triples (off, hangwatch, bpftrace) of {} s runs \
             (idle {} s{}); a triple in which other processes used more than {:.0}% of a core \
             ({:.0}% for 10,000 threads) during a run is disturbed{}",
            p.reps,
            p.secs,
            p.idle_secs,
            if p.quick { String::new() } else { format!(", 10k threads held {} s", p.hold_secs) },
            foreign_limit(Kind::Rate) * 100.0,
            foreign_limit(Kind::Blocked) * 100.0,
            if p.extra > 0 {
                format!(" and replaced (up to {} extra)", p.extra)
            } else {
                String::new()
            },
        );
        let _ = writeln!(
            s,
            "- slowdown: median over triples of 1 − ops(tool)/ops(off) of the same triple, \
             [min … max]; CPU: % of one core over the workload's interval; RSS: at the workload's end / peak since start (VmRSS / VmHWM, max over runs); \
             events/lost: hangwatch's ring-buffer records written/lost (STATS map, over the \
             workload), reported: records hangwatch reported lost anywhere (its `lost` and \
             `stats` records, over its whole run)\n"
        );

        // ---- main table
        s.push_str("| workload | off ops/s (spread) | hangwatch ops/s | slowdown | bpftrace ops/s | slowdown | hangwatch CPU | hangwatch RSS | events/s | lost / reported | triples |\n");
        s.push_str(
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        );
        for r in results {
            let used = r.used_triples();
            let off: Vec<f64> = r.ops(Mode::Off, &used);
            let hw: Vec<f64> = r.ops(Mode::Hangwatch, &used);
            let bt: Vec<f64> = r.ops(Mode::Bpftrace, &used);
            let off_cell = match median(&off) {
                Some(m) => format!("{} (±{:.1}%)", fmt_ops(m), spread(&off) * 50.0),
                None => "–".into(),
            };
            let hs = r.tool_stats(Mode::Hangwatch, &used);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
                r.w.title,
                off_cell,
                median(&hw).map_or("–".into(), fmt_ops),
                r.slowdown(Mode::Hangwatch, &used).map_or("–".into(), |s| s.cell()),
                median(&bt).map_or("–".into(), fmt_ops),
                r.slowdown(Mode::Bpftrace, &used).map_or("–".into(), |s| s.cell()),
                hs.cpu_pct.map_or("–".into(), |c| format!("{c:.2}%")),
                match (hs.rss_mib, hs.hwm_mib) {
                    (Some(r), Some(h)) => format!("{r:.1} / {h:.1} MiB"),
                    _ => "–".into(),
                },
                hs.events_per_sec.map_or("n/a".into(), |e| format!("{e:.1}")),
                hs.lost.map_or("n/a".into(), |l| l.to_string()),
                hs.reported.map_or("n/a".into(), |d| d.to_string()),
                r.triples_cell(&used),
            );
        }

        // ---- the opt-in memory probes
        let exact: Vec<&WorkloadResult> = results
            .iter()
            .filter(|r| r.triples.iter().flatten().any(|run| run.mode == Mode::ExactMemory))
            .collect();
        if !exact.is_empty() {
            let _ = writeln!(
                s,
                "\n## Opt-in: `hangwatch --json --exact-memory` (memory syscall probes)\n\n\
                 Not the default and not held to a target: the syscall tracepoints put every \
                 system call of the machine on the traced path (docs/memory.md).\n"
            );
            s.push_str("| workload | off ops/s | default slowdown | --exact-memory ops/s | --exact-memory slowdown |\n");
            s.push_str("| --- | ---: | ---: | ---: | ---: |\n");
            for r in exact {
                let used = r.used_triples();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    r.w.title,
                    median(&r.ops(Mode::Off, &used)).map_or("–".into(), fmt_ops),
                    r.slowdown(Mode::Hangwatch, &used).map_or("–".into(), |s| s.cell()),
                    median(&r.ops(Mode::ExactMemory, &used)).map_or("–".into(), fmt_ops),
                    r.slowdown(Mode::ExactMemory, &used).map_or("–".into(), |s| s.cell()),
                );
            }
        }

        // ---- blocked threads: live mode details
        if let Some(r) = results.iter().find(|r| r.w.kind == Kind::Blocked) {
            let used = r.used_triples();
            let hs = r.tool_stats(Mode::Hangwatch, &used);
            let bs = r.tool_stats(Mode::Bpftrace, &used);
            let _ = writeln!(s, "\n## 10,000 blocked threads, live mode\n");
            let _ = writeln!(
                s,
                "Per hangwatch run: 10,000 threads start and block in FUTEX_WAIT, stay blocked {} s \
                 (hangwatch rescans /proc every second and reports each as blocked), then one \
                 FUTEX_WAKE wakes them all: 10,000 waits longer than 1 s end within milliseconds, \
                 each one a ring-buffer record. ops/s above = threads per second through start + \
                 wake + exit.\n",
                p.hold_secs
            );
            s.push_str("| | median | max |\n| --- | ---: | ---: |\n");
            let cpu: Vec<f64> =
                r.tool_runs(Mode::Hangwatch, &used).map(|t| t.cpu_core * 100.0).collect();
            let rss: Vec<f64> =
                r.tool_runs(Mode::Hangwatch, &used).map(|t| t.hwm_bytes as f64 / MIB).collect();
            let ev: Vec<f64> = r
                .tool_runs(Mode::Hangwatch, &used)
                .filter_map(|t| t.counters.as_ref().map(|c| c.events as f64))
                .collect();
            let lw: Vec<f64> = r
                .tool_runs(Mode::Hangwatch, &used)
                .filter_map(|t| t.counters.as_ref().map(|c| c.long_waits as f64))
                .collect();
            let unb: Vec<f64> = r
                .tool_runs(Mode::Hangwatch, &used)
                .filter_map(|t| t.json.as_ref().map(|j| j.count("unblocked") as f64))
                .collect();
            let blk: Vec<f64> = r
                .tool_runs(Mode::Hangwatch, &used)
                .filter_map(|t| t.json.as_ref().map(|j| j.count("blocked") as f64))
                .collect();
            let row = |s: &mut String, name: &str, v: &[f64], f: &dyn Fn(f64) -> String| {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} |",
                    median(v).map_or("n/a".into(), f),
                    max(v).map_or("n/a".into(), f)
                );
            };
            row(&mut s, "hangwatch CPU, % of one core", &cpu, &|x| format!("{x:.1}%"));
            let now: Vec<f64> =
                r.tool_runs(Mode::Hangwatch, &used).map(|t| t.rss_bytes as f64 / MIB).collect();
            row(&mut s, "hangwatch RSS at the end of the workload", &now, &|x| {
                format!("{x:.1} MiB")
            });
            row(&mut s, "hangwatch peak RSS (VmHWM)", &rss, &|x| format!("{x:.1} MiB"));
            row(&mut s, "long waits ended (probe)", &lw, &|x| format!("{x:.0}"));
            row(&mut s, "ring-buffer records written", &ev, &|x| format!("{x:.0}"));
            row(&mut s, "`blocked` JSON records", &blk, &|x| format!("{x:.0}"));
            row(&mut s, "`unblocked` JSON records", &unb, &|x| format!("{x:.0}"));
            let _ = writeln!(
                s,
                "| ring-buffer records lost (all runs) | {} | |\n| records hangwatch reported lost (all runs) | {} | |",
                hs.lost.map_or("n/a".into(), |l| l.to_string()),
                hs.reported.map_or("n/a".into(), |d| d.to_string()),
            );
            if let Some(c) = bs.cpu_pct {
                let _ = writeln!(s, "| bpftrace CPU, % of one core | {c:.1}% | |");
            }
        }

        // ---- snapshot
        if !snapshots.is_empty() {
            let _ = writeln!(
                s,
                "\n## `hangwatch snapshot --json --window 100ms > /dev/null` with N blocked threads\n"
            );
            let _ = writeln!(
                s,
                "N threads of one process blocked in FUTEX_WAIT for more than 1 s, besides the \
                 machine's own; median of {} runs each.\n",
                p.snapshot_reps
            );
            s.push_str("| blocked threads | wall time | CPU (user+sys) | peak RSS | marginal cost per 1,000 threads |\n");
            s.push_str("| ---: | ---: | ---: | ---: | ---: |\n");
            let base = snapshots.iter().find(|r| r.threads == 0).and_then(SnapshotResult::wall);
            for r in snapshots {
                let label = if r.stacks {
                    format!("{} (`--stacks`, identical stacks)", fmt_ops(r.threads as f64))
                } else {
                    fmt_ops(r.threads as f64)
                };
                let wall = r.wall();
                let marginal = match (wall, base) {
                    (Some(w), Some(b)) if r.threads > 0 => {
                        format!("{:.0} ms", (w - b) / r.threads as f64 * 1000.0 * 1000.0)
                    }
                    _ => "–".into(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    label,
                    wall.map_or("–".into(), |w| format!("{w:.3} s")),
                    r.cpu().map_or("–".into(), |c| format!("{c:.3} s")),
                    r.maxrss_mib().map_or("–".into(), |m| format!("{m:.1} MiB")),
                    marginal
                );
            }
        }

        // ---- targets
        let _ = writeln!(s, "\n## Targets\n");
        s.push_str("| target | measured | verdict |\n| --- | --- | --- |\n");
        let targets = self.targets(results, snapshots);
        for t in &targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                t.what,
                t.measured,
                match (t.pass, &t.caveat) {
                    (Some(true), None) => "PASS".to_owned(),
                    (Some(false), None) => "**FAIL**".to_owned(),
                    (Some(true), Some(c)) => format!("PASS? ({c})"),
                    (Some(false), Some(c)) => format!("**FAIL?** ({c})"),
                    (None, _) => "not measured".to_owned(),
                }
            );
        }
        if targets.iter().any(|t| t.caveat.is_some()) {
            s.push_str(
                "\nPASS? / FAIL?: fewer than 3 undisturbed triples, so the verdict rests on runs \
                 during which other processes used the CPU; run the workload again \
                 (`HANGWATCH_BENCH_ONLY=key`) on a quieter machine.\n",
            );
        }

        // ---- probe costs
        let probe: Vec<&WorkloadResult> =
            results.iter().filter(|r| !r.probe_runs.is_empty()).collect();
        if !probe.is_empty() {
            let _ = writeln!(
                s,
                "\n## Per-probe cost (`kernel.bpf_stats_enabled=1`, separate {} s runs)\n",
                p.probe_secs
            );
            s.push_str(
                "run_time_ns / run_cnt of each BPF program the tool loaded, over the workload's \
                 interval. It counts the program body only: the cost of the syscall slow path \
                 that a `syscalls:*` tracepoint imposes on every thread is not in it (it shows \
                 in the slowdown). ops/s here include the statistics' own cost.\n\n",
            );
            s.push_str("| workload | tool | ops/s (bpf_stats on) | program | runs/s | ns/run | CPU, % of one core |\n");
            s.push_str("| --- | --- | ---: | --- | ---: | ---: | ---: |\n");
            for r in probe {
                for run in &r.probe_runs {
                    let Some(t) = &run.tool else { continue };
                    for (i, pd) in t.progs.iter().enumerate() {
                        let (tool, ops) = if i == 0 {
                            (run.mode.label().to_owned(), run.ops.map_or("–".into(), fmt_ops))
                        } else {
                            (String::new(), String::new())
                        };
                        let _ = writeln!(
                            s,
                            "| {} | {tool} | {ops} | {} | {} | {} | {:.3}% |",
                            if i == 0 { r.w.key } else { "" },
                            pd.name,
                            fmt_ops(pd.runs_per_sec()),
                            pd.ns_per_run().map_or("–".into(), |n| format!("{n:.0}")),
                            pd.core_pct()
                        );
                    }
                }
            }
        }

        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one target per workload kind and figure, in report order"
    )]
    fn targets(&self, results: &[WorkloadResult], snapshots: &[SnapshotResult]) -> Vec<Target> {
        let mut out = Vec::new();
        for r in results {
            let used = r.used_triples();
            match r.w.kind {
                Kind::Rate => {
                    let sd = r.slowdown(Mode::Hangwatch, &used);
                    out.push(Target {
                        what: format!("{}: slowdown ≤ {MAX_SLOWDOWN_PCT}%", r.w.title),
                        measured: sd.as_ref().map_or("–".into(), |s| s.cell()),
                        pass: sd.map(|s| s.median <= MAX_SLOWDOWN_PCT),
                        caveat: r.caveat(&used),
                    });
                }
                Kind::Idle | Kind::Blocked => {}
            }
            if r.w.kind == Kind::Idle {
                let hs = r.tool_stats(Mode::Hangwatch, &used);
                out.push(Target {
                    what: format!("idle node: hangwatch CPU ≤ {MAX_IDLE_CPU_PCT}% of one core"),
                    measured: hs.cpu_pct.map_or("–".into(), |c| format!("{c:.2}%")),
                    pass: hs.cpu_pct.map(|c| c <= MAX_IDLE_CPU_PCT),
                    caveat: None,
                });
            }
            if r.w.kind == Kind::Blocked {
                let hs = r.tool_stats(Mode::Hangwatch, &used);
                out.push(Target {
                    what: format!("10,000 blocked threads: hangwatch RSS ≤ {MAX_RSS_MIB_10K} MiB"),
                    measured: hs
                        .hwm_mib
                        .map_or("–".into(), |m| format!("{m:.1} MiB peak (VmHWM)")),
                    pass: hs.hwm_mib.map(|m| m <= MAX_RSS_MIB_10K),
                    caveat: None,
                });
            }
        }
        if !snapshots.is_empty() {
            if let Some(s) = snapshots.iter().find(|r| r.stacks) {
                let w = s.wall();
                out.push(Target {
                    what: format!(
                        "10,000 blocked threads with identical stacks: snapshot time (--stacks) ≤ {MAX_SNAPSHOT_SECS_10K} s"
                    ),
                    measured: w.map_or("–".into(), |w| format!("{w:.3} s")),
                    pass: w.map(|w| w <= MAX_SNAPSHOT_SECS_10K),
                    caveat: None,
                });
            }
            let wall = |n: usize| {
                snapshots
                    .iter()
                    .find(|r| r.threads == n && !r.stacks)
                    .and_then(SnapshotResult::wall)
            };
            let w10 = wall(10_000);
            out.push(Target {
                what: format!("snapshot with 10,000 blocked threads ≤ {MAX_SNAPSHOT_SECS_10K} s"),
                measured: w10.map_or("–".into(), |w| format!("{w:.3} s")),
                pass: w10.map(|w| w <= MAX_SNAPSHOT_SECS_10K),
                caveat: None,
            });
            let lin = match (wall(0), wall(5_000), w10) {
                (Some(a), Some(b), Some(c)) if b > a => Some((c - b) / (b - a)),
                _ => None,
            };
            out.push(Target {
                what: format!(
                    "snapshot cost linear in threads: cost of 5k→10k ≤ {MAX_SNAPSHOT_SUPERLINEARITY}× cost of 0→5k"
                ),
                measured: lin.map_or("–".into(), |l| format!("{l:.2}×")),
                pass: lin.map(|l| l <= MAX_SNAPSHOT_SUPERLINEARITY),
                caveat: None,
            });
        }
        if let Some(b) = &self.busy {
            out.push(Target {
                what: format!(
                    "{} idle processes: hangwatch CPU ≤ {MAX_BUSY_CPU_PCT}% of one core",
                    b.procs
                ),
                measured: format!("{:.2}%", b.cpu_pct),
                pass: Some(b.cpu_pct <= MAX_BUSY_CPU_PCT),
                caveat: b.problem.clone(),
            });
            out.push(Target {
                what: format!("{} idle processes: hangwatch RSS ≤ {MAX_BUSY_RSS_MIB} MiB", b.procs),
                measured: format!("{:.1} MiB ({:.1} MiB peak)", b.rss_mib, b.hwm_mib),
                pass: Some(b.rss_mib <= MAX_BUSY_RSS_MIB),
                caveat: None,
            });
        }
        // Losses, per workload where there were any.
        let mut lost_total = Some(0u64);
        let mut lost_where = Vec::new();
        let mut reported_total: Option<u64> = None;
        let mut reported_where = Vec::new();
        for r in results {
            let before = reported_total.unwrap_or(0);
            let mut lost = Some(0u64);
            for run in r.triples.iter().flatten().filter(|r| r.mode == Mode::Hangwatch) {
                let Some(t) = &run.tool else { continue };
                lost = lost.zip(t.counters.as_ref()).map(|(a, c)| a + c.lost);
                if let Some(j) = &t.json {
                    reported_total = Some(reported_total.unwrap_or(0) + j.reported_lost());
                }
            }
            if let Some(l) = lost.filter(|l| *l > 0) {
                lost_where.push(format!("{}: {l}", r.w.key));
            }
            let d = reported_total.unwrap_or(0) - before;
            if d > 0 {
                reported_where.push(format!("{}: {d}", r.w.key));
            }
            lost_total = lost_total.zip(lost).map(|(a, b)| a + b);
        }
        out.push(Target {
            what: "zero ring-buffer records lost (all hangwatch runs)".into(),
            measured: match lost_total {
                None => "n/a (no bpftool)".into(),
                Some(0) => "0".into(),
                Some(l) => format!("{l} ({})", lost_where.join(", ")),
            },
            pass: lost_total.map(|l| l == 0),
            caveat: None,
        });
        out.push(Target {
            what: "zero records reported lost by hangwatch (`lost` records: ring buffer or its \
                   own queues; all hangwatch runs)"
                .into(),
            measured: match reported_total {
                None => "n/a (no JSON output)".into(),
                Some(0) => "0".into(),
                Some(d) => format!("{d} ({})", reported_where.join(", ")),
            },
            pass: reported_total.map(|d| d == 0),
            caveat: None,
        });
        out
    }
}

// ------------------------------------------------------------------------ results

struct Run {
    mode: Mode,
    ops: Option<f64>,
    wall: f64,
    /// Cores' worth of CPU used by other processes during the run.
    foreign_cores: f64,
    /// `foreign_cores` is over the workload's limit.
    disturbed: bool,
    steal_cores: f64,
    /// Threads on the machine (all processes) when the run started.
    machine_tasks: u64,
    tool: Option<ToolRun>,
}

impl Run {
    fn progress(&self) -> String {
        let mut s = match self.ops {
            Some(o) => format!("{:>12} ops/s", fmt_ops(o)),
            None => format!("{:>12}", format!("{:.1} s", self.wall)),
        };
        if let Some(t) = &self.tool {
            let _ = write!(
                s,
                "  CPU {:.2}%  RSS {:.1} MiB",
                t.cpu_core * 100.0,
                t.hwm_bytes as f64 / MIB
            );
            if let Some(c) = &t.counters {
                let _ = write!(s, "  events {} lost {}", c.events, c.lost);
            }
        }
        if self.disturbed {
            let _ = write!(
                s,
                "  [disturbed: others used {:.0}% of a core]",
                self.foreign_cores * 100.0
            );
        }
        if self.machine_tasks > BUSY_TASKS {
            let _ = write!(s, "  [{} threads on the machine]", self.machine_tasks);
        }
        if self.steal_cores > 0.05 {
            let _ = write!(s, "  [steal {:.0}%]", self.steal_cores * 100.0);
        }
        s
    }
}

fn disturbed(triple: &[Run]) -> bool {
    triple.iter().any(|r| r.disturbed)
}

struct ToolRun {
    cpu_secs: f64,
    cpu_core: f64,
    /// VmRSS at the end of the workload.
    rss_bytes: u64,
    /// VmHWM: peak RSS since the tool started (start-up included).
    hwm_bytes: u64,
    counters: Option<Counters>,
    json: Option<JsonSummary>,
    progs: Vec<ProgDelta>,
    problem: Option<String>,
}

struct Counters {
    events: u64,
    lost: u64,
    long_waits: u64,
}

struct WorkloadResult {
    w: &'static Workload,
    triples: Vec<Vec<Run>>,
    probe_runs: Vec<Run>,
}

struct Slowdown {
    median: f64,
    min: f64,
    max: f64,
}

impl Slowdown {
    fn cell(&self) -> String {
        format!("{:.1}% [{:.1} … {:.1}]", self.median, self.min, self.max)
    }
}

#[derive(Default)]
struct ToolStats {
    cpu_pct: Option<f64>,
    hwm_mib: Option<f64>,
    rss_mib: Option<f64>,
    events_per_sec: Option<f64>,
    lost: Option<u64>,
    /// Records hangwatch reported lost (`lost` records), summed over runs.
    reported: Option<u64>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl WorkloadResult {
    /// The clean triples when there are enough of them, else all.
    fn used_triples(&self) -> Vec<usize> {
        let clean: Vec<usize> =
            (0..self.triples.len()).filter(|&i| !disturbed(&self.triples[i])).collect();
        if clean.len() >= 3 || clean.len() == self.triples.len() {
            clean
        } else {
            (0..self.triples.len()).collect()
        }
    }

    /// "noisy: 6 of 7 triples disturbed" when disturbed triples had to be used.
    fn caveat(&self, used: &[usize]) -> Option<String> {
        let dirty = used.iter().filter(|&&i| disturbed(&self.triples[i])).count();
        (dirty > 0).then(|| format!("noisy: {dirty} of {} triples disturbed", used.len()))
    }

    fn triples_cell(&self, used: &[usize]) -> String {
        let dirty = self.triples.iter().filter(|t| disturbed(t)).count();
        let mut s = format!("{}", used.len());
        if dirty > 0 {
            let _ = write!(s, " ({dirty} of {} disturbed", self.triples.len());
            if used.iter().any(|&i| disturbed(&self.triples[i])) {
                s.push_str(", used");
            } else {
                s.push_str(", dropped");
            }
            s.push(')');
        }
        s
    }

    fn run(&self, i: usize, mode: Mode) -> Option<&Run> {
        self.triples.get(i)?.iter().find(|r| r.mode == mode)
    }

    fn ops(&self, mode: Mode, used: &[usize]) -> Vec<f64> {
        used.iter().filter_map(|&i| self.run(i, mode)?.ops).collect()
    }

    fn tool_runs<'s>(
        &'s self,
        mode: Mode,
        used: &'s [usize],
    ) -> impl Iterator<Item = &'s ToolRun> + 's {
        used.iter().filter_map(move |&i| self.run(i, mode)?.tool.as_ref())
    }

    fn slowdown(&self, mode: Mode, used: &[usize]) -> Option<Slowdown> {
        let pct: Vec<f64> = used
            .iter()
            .filter_map(|&i| {
                let off = self.run(i, Mode::Off)?.ops?;
                let on = self.run(i, mode)?.ops?;
                (off > 0.0).then(|| (1.0 - on / off) * 100.0)
            })
            .collect();
        Some(Slowdown { median: median(&pct)?, min: min(&pct)?, max: max(&pct)? })
    }

    fn tool_stats(&self, mode: Mode, used: &[usize]) -> ToolStats {
        let runs: Vec<(&Run, &ToolRun)> = used
            .iter()
            .filter_map(|&i| {
                let r = self.run(i, mode)?;
                Some((r, r.tool.as_ref()?))
            })
            .collect();
        if runs.is_empty() {
            return ToolStats::default();
        }
        let cpu: Vec<f64> = runs.iter().map(|(_, t)| t.cpu_core * 100.0).collect();
        let hwm: Vec<f64> = runs.iter().map(|(_, t)| t.hwm_bytes as f64 / MIB).collect();
        let rss: Vec<f64> = runs.iter().map(|(_, t)| t.rss_bytes as f64 / MIB).collect();
        let ev: Vec<f64> = runs
            .iter()
            .filter_map(|(r, t)| Some(t.counters.as_ref()?.events as f64 / r.wall))
            .collect();
        let lost =
            runs.iter().map(|(_, t)| t.counters.as_ref().map(|c| c.lost)).sum::<Option<u64>>();
        let reported: Vec<u64> = runs
            .iter()
            .filter_map(|(_, t)| t.json.as_ref().map(JsonSummary::reported_lost))
            .collect();
        ToolStats {
            cpu_pct: median(&cpu),
            hwm_mib: max(&hwm),
            rss_mib: max(&rss),
            events_per_sec: if mode == Mode::Hangwatch { median(&ev) } else { None },
            lost: if mode == Mode::Hangwatch { lost } else { None },
            reported: (!reported.is_empty()).then(|| reported.iter().sum()),
        }
    }
}

struct SnapshotResult {
    threads: usize,
    runs: Vec<RunStat>,
    /// Run with `--stacks` (the identical-stacks row).
    stacks: bool,
}

impl SnapshotResult {
    fn wall(&self) -> Option<f64> {
        median(&self.runs.iter().map(|r| r.wall_secs).collect::<Vec<_>>())
    }
    fn cpu(&self) -> Option<f64> {
        median(&self.runs.iter().map(RunStat::cpu_secs).collect::<Vec<_>>())
    }
    fn maxrss_mib(&self) -> Option<f64> {
        max(&self.runs.iter().map(|r| r.maxrss_kib as f64 / 1024.0).collect::<Vec<_>>())
    }
}

struct Target {
    what: String,
    measured: String,
    pass: Option<bool>,
    /// Why the verdict is weak (disturbed triples among those used).
    caveat: Option<String>,
}

struct Header {
    command: String,
    kernel: String,
    nproc: String,
    date: String,
    commit: String,
    loadavg: String,
    tasks: u64,
    bpftrace: String,
    stress_ng: String,
}

// ------------------------------------------------------------------------ processes

/// A running hangwatch or bpftrace. Killed on drop if it was not stopped.
struct Tool {
    mode: Mode,
    child: Child,
    pid: u32,
    out: PathBuf,
    err: PathBuf,
}

impl Tool {
    /// SIGINT, a second SIGINT after 3 s, SIGKILL after 10 s (then `None`).
    fn stop(&mut self, ctx: &Ctx) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.child.try_wait()? {
            return Ok(Some(s));
        }
        // bpftrace 0.17 now and then sleeps through its first SIGINT (seen here: it stayed in
        // epoll_wait with its handler installed); a second one gets it out.
        for wait in [3, 7] {
            let _ =
                ctx.cmd("kill").args(["-INT", &self.pid.to_string()]).stdin(Stdio::null()).status();
            if let Some(s) = wait_timeout(&mut self.child, Duration::from_secs(wait))? {
                return Ok(Some(s));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(None)
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `blocked_threads park N`: its threads are released when stdin closes.
struct Parked {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Parked {
    fn release(mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        match wait_timeout(&mut self.child, Duration::from_secs(60))? {
            Some(s) => ensure!(s.success(), "blocked_threads park exited with {s}"),
            None => bail!("blocked_threads park did not exit within 60 s of stdin closing"),
        }
        Ok(())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.stdin.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(super) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

struct Output {
    stdout: String,
    stderr: String,
}

/// Runs `cmd` in its own process group with its output in files (stdout on /dev/null if
/// `discard_stdout`); kills the whole group if it is still running after `timeout`.
fn run_workload(mut cmd: Command, timeout: Duration, discard_stdout: bool) -> Result<Output> {
    let shown = display_cmd(&cmd);
    let out_path = std::env::temp_dir().join(format!("hangwatch-bench-{}.out", std::process::id()));
    let err_path = std::env::temp_dir().join(format!("hangwatch-bench-{}.err", std::process::id()));
    let stdout =
        fs::File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let stderr =
        fs::File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(if discard_stdout { Stdio::null() } else { stdout.into() })
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let status = wait_timeout(&mut child, timeout)?;
    if status.is_none() {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
    }
    let out = Output {
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    match status {
        None => bail!("`{shown}` did not finish within {timeout:?}; killed"),
        Some(s) if !s.success() => bail!("`{shown}` failed ({s}): {}", out.stderr.trim()),
        Some(_) => Ok(out),
    }
}

/// Compiles every `*.c` of `src` into `bin_dir` with `cc -O2 -pthread`.
pub(super) fn compile_workloads(ctx: &Ctx, src: &Path, bin_dir: &Path) -> Result<()> {
    let mut sources: Vec<PathBuf> = fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    ensure!(!sources.is_empty(), "no workload sources in {}", src.display());
    for source in &sources {
        let stem =
            source.file_stem().ok_or_else(|| anyhow!("{} has no file name", source.display()))?;
        let out = bin_dir.join(stem);
        let mut cmd = ctx.cmd("cc");
        cmd.args(["-O2", "-pthread", "-Wall", "-Wextra", "-o"]).arg(&out).arg(source);
        capture(&mut cmd).with_context(|| format!("compiling {}", source.display()))?;
    }
    eprintln!("bench: compiled {} workloads into {}", sources.len(), bin_dir.display());
    Ok(())
}

/// `kernel.bpf_stats_enabled`: switched on only for the per-probe cost runs, restored after
/// each, and at the end (also on drop). The value found is saved in a file first, so a bench
/// that was interrupted (Ctrl-C) restores it the next time it starts.
struct BpfStats {
    original: String,
    saved: PathBuf,
}

impl BpfStats {
    fn new(saved: PathBuf) -> Result<Self> {
        if let Ok(prev) = fs::read_to_string(&saved) {
            eprintln!(
                "bench: restoring kernel.bpf_stats_enabled={} left by an interrupted bench",
                prev.trim()
            );
            fs::write(BPF_STATS, prev.trim()).with_context(|| format!("writing {BPF_STATS}"))?;
            let _ = fs::remove_file(&saved);
        }
        let original = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        Ok(BpfStats { original, saved })
    }

    fn set(&self, on: bool) -> Result<()> {
        if on {
            fs::write(&self.saved, &self.original)
                .with_context(|| format!("writing {}", self.saved.display()))?;
            fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))
        } else {
            self.restore();
            Ok(())
        }
    }

    fn restore(&self) {
        if fs::read_to_string(BPF_STATS).is_ok_and(|v| v.trim() != self.original)
            && let Err(e) = fs::write(BPF_STATS, &self.original)
        {
            eprintln!("warning: could not restore {BPF_STATS} to {}: {e}", self.original);
            return;
        }
        let _ = fs::remove_file(&self.saved);
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        self.restore();
    }
}

// ------------------------------------------------------------------------ /proc readers

/// Threads on the machine: the denominator of the 4th field of /proc/loadavg.
fn machine_tasks() -> u64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub(super) fn clock_ticks() -> f64 {
    use std::sync::OnceLock;
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Machine-wide CPU time from /proc/stat, in clock ticks.
struct SysCpu {
    busy: u64,
    steal: u64,
}

impl SysCpu {
    fn read() -> Result<Self> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Self::parse(&text).ok_or_else(|| anyhow!("no `cpu` line in /proc/stat"))
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice` (guest time is
    /// already inside user).
    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 8 {
            return None;
        }
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        Some(SysCpu { busy, steal: v[7] })
    }
}

/// A process's CPU time at one instant: the sum of its threads' `schedstat` run time (ns), with
/// `utime + stime` (ticks, includes threads that already exited) as a cross-check.
struct ProcCpu {
    at: Instant,
    sched_ns: Option<u64>,
    ticks: Option<u64>,
}

impl ProcCpu {
    fn secs_since(&self, before: &ProcCpu) -> f64 {
        let sched = match (self.sched_ns, before.sched_ns) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / 1e9),
            _ => None,
        };
        let ticks = match (self.ticks, before.ticks) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / clock_ticks()),
            _ => None,
        };
        match (sched, ticks) {
            // A thread that exited in between took its schedstat with it: trust the ticks
            // when they are clearly larger.
            (Some(s), Some(t)) if t > s + 2.0 / clock_ticks() => t,
            (Some(s), _) => s,
            (None, Some(t)) => t,
            (None, None) => 0.0,
        }
    }
}

fn proc_cpu(pid: u32) -> ProcCpu {
    let at = Instant::now();
    let mut sched_ns = None;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        let mut sum = 0u64;
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("schedstat"))
                && let Some(ns) = s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok())
            {
                sum += ns;
            }
        }
        sched_ns = Some(sum);
    }
    let ticks =
        fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_cpu_ticks(&s));
    ProcCpu { at, sched_ns, ticks }
}

/// utime + stime from /proc/PID/stat (fields 14 and 15; the comm in field 2 may hold spaces).
pub(super) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (VmRSS, VmHWM) in bytes.
pub(super) fn proc_rss(pid: u32) -> (u64, u64) {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status_kib(&text, "VmRSS:") * 1024, status_kib(&text, "VmHWM:") * 1024)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One BPF object fd of a process: `anon_inode:bpf-prog`, `bpf-map` or `bpf_link`, and its
/// fdinfo fields.
struct BpfFd {
    kind: String,
    fields: BTreeMap<String, String>,
}

impl BpfFd {
    fn num(&self, key: &str) -> Option<u64> {
        self.fields.get(key)?.parse().ok()
    }
}

fn bpf_fds(pid: u32) -> Vec<BpfFd> {
    let mut out = Vec::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let Some(kind) = target.to_str().and_then(|t| t.strip_prefix("anon_inode:")) else {
            continue;
        };
        if !matches!(kind, "bpf-prog" | "bpf-map" | "bpf_link") {
            continue;
        }
        let info =
            fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
        out.push(BpfFd { kind: kind.to_owned(), fields: parse_fdinfo(&info) });
    }
    out
}

fn parse_fdinfo(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

struct ProgSample {
    id: u64,
    name: String,
    run_time_ns: u64,
    run_cnt: u64,
}

struct ProgDelta {
    name: String,
    run_time_ns: u64,
    run_cnt: u64,
    secs: f64,
}

impl ProgDelta {
    fn ns_per_run(&self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }
    fn runs_per_sec(&self) -> f64 {
        if self.secs > 0.0 { self.run_cnt as f64 / self.secs } else { 0.0 }
    }
    fn core_pct(&self) -> f64 {
        if self.secs > 0.0 { self.run_time_ns as f64 / 1e9 / self.secs * 100.0 } else { 0.0 }
    }
}

struct ToolSample {
    cpu: ProcCpu,
    progs: Vec<ProgSample>,
    counters: Option<Vec<u64>>,
}

/// What `runstat` wrote: the workload's wall time, CPU and peak RSS (from wait4).
struct RunStat {
    wall_secs: f64,
    utime_us: u64,
    stime_us: u64,
    maxrss_kib: u64,
    status: i64,
}

impl RunStat {
    fn read(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).ok_or_else(|| anyhow!("cannot read runstat's result {text:?}"))
    }

    fn parse(text: &str) -> Option<Self> {
        let f: Vec<&str> = text.split_whitespace().collect();
        Some(RunStat {
            wall_secs: f.first()?.parse::<u64>().ok()? as f64 / 1e9,
            utime_us: f.get(1)?.parse().ok()?,
            stime_us: f.get(2)?.parse().ok()?,
            maxrss_kib: f.get(3)?.parse().ok()?,
            status: f.get(4)?.parse().ok()?,
        })
    }

    fn cpu_secs(&self) -> f64 {
        (self.utime_us + self.stime_us) as f64 / 1e6
    }
}

// ------------------------------------------------------------------------ output parsing

/// The last number a workload printed (its ops/s).
fn last_number(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// `bogo-ops-per-second-real-time: X` from `stress-ng --yaml`.
fn stress_ng_rate(yaml: &str) -> Result<f64> {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("bogo-ops-per-second-real-time:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no bogo-ops-per-second-real-time in stress-ng's YAML report"))
}

fn count_stats_lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"stats\""))
        .count()
}

/// What hangwatch's JSON Lines output said over a run.
struct JsonSummary {
    types: BTreeMap<String, usize>,
    stats_lines: usize,
    lost_events: u64,
    /// From the last stats line: cumulative.
    dropped_records: u64,
    /// Sum of the `count` of `lost` records (ring-buffer losses and records dropped between
    /// hangwatch's own stages).
    lost_records: u64,
    probes_failed: Vec<String>,
}

impl JsonSummary {
    fn read(path: &Path) -> Option<Self> {
        Self::parse(&fs::read_to_string(path).ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut s = JsonSummary {
            types: BTreeMap::new(),
            stats_lines: 0,
            lost_events: 0,
            dropped_records: 0,
            lost_records: 0,
            probes_failed: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(j) = serde_json::from_str::<Json>(line) else { continue };
            let Some(ty) = j.get("type").and_then(Json::as_str) else {
                continue;
            };
            *s.types.entry(ty.to_owned()).or_default() += 1;
            if ty == "lost" {
                s.lost_records += j.get("count").and_then(Json::as_u64).unwrap_or(0);
            }
            if ty == "stats" {
                s.stats_lines += 1;
                s.lost_events = j.get("lost_events").and_then(Json::as_u64).unwrap_or(0);
                s.dropped_records = j.get("dropped_records").and_then(Json::as_u64).unwrap_or(0);
                s.probes_failed = j
                    .get("probes_failed")
                    .and_then(Json::as_array)
                    .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
            }
        }
        (s.stats_lines > 0).then_some(s)
    }

    /// Records hangwatch said it lost, in the kernel or in its own queues: its `lost` records,
    /// or its last stats line's totals when those are larger (a `lost` record can be late).
    fn reported_lost(&self) -> u64 {
        self.lost_records.max(self.lost_events + self.dropped_records)
    }

    fn count(&self, ty: &str) -> usize {
        self.types.get(ty).copied().unwrap_or(0)
    }
}

/// Per-key sums over CPUs of a `bpftool map dump --json` of a per-CPU array of u64, indexed by
/// key. bpftool prints raw hex bytes for maps without BTF and numbers for maps with it.
fn percpu_sums(dump: &Json) -> Option<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for entry in dump.as_array()? {
        let entry = entry.get("formatted").unwrap_or(entry);
        let key = bytes_or_num(entry.get("key")?)? as usize;
        let sum: u64 = entry
            .get("values")?
            .as_array()?
            .iter()
            .filter_map(|v| bytes_or_num(v.get("value")?))
            .sum();
        if out.len() <= key {
            out.resize(key + 1, 0);
        }
        out[key] = sum;
    }
    Some(out)
}

/// A little-endian integer from `["0x05","0x00",..]`, or a plain number.
fn bytes_or_num(j: &Json) -> Option<u64> {
    match j {
        Json::Number(_) => j.as_u64(),
        Json::Array(bytes) => {
            let mut v = 0u64;
            for (i, b) in bytes.iter().enumerate().take(8) {
                let b = u64::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok()?;
                v |= b << (8 * i);
            }
            Some(v)
        }
        _ => None,
    }
}

// ------------------------------------------------------------------------ numbers

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

fn median(v: &[f64]) -> Option<f64> {
    let s = sorted(v);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn min(v: &[f64]) -> Option<f64> {
    sorted(v).first().copied()
}

fn max(v: &[f64]) -> Option<f64> {
    sorted(v).last().copied()
}

/// (max − min) / median.
fn spread(v: &[f64]) -> f64 {
    match (min(v), max(v), median(v)) {
        (Some(lo), Some(hi), Some(m)) if m > 0.0 => (hi - lo) / m,
        _ => 0.0,
    }
}

/// 1234567.8 -> "1,234,568".
fn fmt_ops(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

// ------------------------------------------------------------------------ busy node

/// Idle processes on the busy node (issue 9): live mode must not pay for what did not change.
const BUSY_PROCS: usize = 12_000;
/// Time hangwatch gets before it is measured: its caches fill, and every wait passes the
/// `sched_waking` probe's threshold (after which the kernel reports its end).
const BUSY_SETTLE: Duration = Duration::from_secs(15);
/// How long hangwatch's CPU is measured.
const BUSY_SECS: f64 = 30.0;
const MAX_BUSY_CPU_PCT: f64 = 5.0;
const MAX_BUSY_RSS_MIB: f64 = 64.0;

struct BusyResult {
    procs: usize,
    cpu_pct: f64,
    /// VmRSS at the end.
    rss_mib: f64,
    /// VmHWM: peak since start (the first full scan of every process included).
    hwm_mib: f64,
    problem: Option<String>,
}

impl Bench<'_> {
    /// `busy-node` (full bench, or `HANGWATCH_BENCH_ONLY=busy-node`): `hangwatch --json` with
    /// [`BUSY_PROCS`] idle processes on the machine, measured over [`BUSY_SECS`] after
    /// [`BUSY_SETTLE`].
    fn busy_node(&self) -> Result<Option<BusyResult>> {
        if (self.plan.quick && self.plan.only.is_none()) || !self.plan.selected("busy-node") {
            return Ok(None);
        }
        eprintln!("bench: hangwatch live mode with {BUSY_PROCS} idle processes");
        let parked = self.park_idle(BUSY_PROCS)?;
        let tool = self.start_hangwatch(false)?;
        thread::sleep(BUSY_SETTLE);
        let before = self.sample_tool(&tool);
        thread::sleep(Duration::from_secs_f64(BUSY_SECS));
        let after = self.sample_tool(&tool);
        let run = self.finish_tool(tool, &before, &after)?;
        parked.release()?;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let r = BusyResult {
            procs: BUSY_PROCS,
            cpu_pct: run.cpu_core * 100.0,
            rss_mib: mib(run.rss_bytes),
            hwm_mib: mib(run.hwm_bytes),
            problem: run.problem,
        };
        eprintln!(
            "bench:   CPU {:.2}% of one core, RSS {:.1} MiB (peak {:.1} MiB)",
            r.cpu_pct, r.rss_mib, r.hwm_mib
        );
        Ok(Some(r))
    }

    /// Starts `idle_procs park N` and waits until its N children exist.
    fn park_idle(&self, n: usize) -> Result<Parked> {
        self.park_program("idle_procs", n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert!((spread(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-9);
        assert_eq!(fmt_ops(1_234_567.8), "1,234,568");
        assert_eq!(fmt_ops(999.0), "999");
        assert_eq!(fmt_ops(-1000.0), "-1,000");
    }

    #[test]
    fn bpftool_percpu_dump() {
        let dump = r#"[{"key":["0x00","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x05","0x01","0x00","0x00","0x00","0x00","0x00","0x00"]},{"cpu":1,"value":["0x02","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]},{"key":["0x01","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]}]"#;
        let sums = percpu_sums(&serde_json::from_str::<Json>(dump).expect("parses")).expect("sums");
        assert_eq!(sums, vec![0x105 + 2, 0]);
        let formatted = r#"[{"key":0,"values":[{"cpu":0,"value":7},{"cpu":1,"value":1}]}]"#;
        assert_eq!(
            percpu_sums(&serde_json::from_str::<Json>(formatted).expect("parses")),
            Some(vec![8])
        );
    }

    #[test]
    fn proc_parsers() {
        let stat = "123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15";
        // utime = field 14 = 11, stime = 12.
        assert_eq!(stat_cpu_ticks(stat), Some(23));
        let sys = SysCpu::parse("cpu  10 1 5 100 2 3 4 7 0 0\ncpu0 1 2 3\n").expect("parses");
        assert_eq!((sys.busy, sys.steal), (10 + 1 + 5 + 3 + 4, 7));
        assert_eq!(status_kib("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n", "VmHWM:"), 2048);
        let fdinfo = parse_fdinfo("pos:\t0\nprog_id:\t674\nrun_time_ns:\t100\nrun_cnt:\t4\n");
        assert_eq!(fdinfo.get("prog_id").map(String::as_str), Some("674"));
        let rs = RunStat::parse("1500000000 200000 300000 9572 0\n").expect("parses");
        assert!((rs.wall_secs - 1.5).abs() < 1e-9 && (rs.cpu_secs() - 0.5).abs() < 1e-9);
        assert_eq!(rs.maxrss_kib, 9572);
    }

    #[test]
    fn workload_outputs() {
        assert_eq!(last_number("186624.2\n"), Some(186_624.2));
        assert_eq!(last_number("noise\n12.5\n\n"), Some(12.5));
        assert_eq!(last_number("nothing"), None);
        let yaml =
            "metrics:\n    - stressor: futex\n      bogo-ops-per-second-real-time: 159472.869522\n";
        assert!((stress_ng_rate(yaml).expect("rate") - 159_472.869_522).abs() < 1e-6);
        assert!(stress_ng_rate("metrics:\n").is_err());
    }

    #[test]
    fn hangwatch_json_summary() {
        let out = concat!(
            r#"{"type":"stats","events":0,"lost_events":0,"dropped_records":0,"probes_failed":[]}"#,
            "\n",
            r#"{"type":"blocked","pid":1}"#,
            "\n",
            r#"{"type":"lost","count":7}"#,
            "\n",
            r#"{"type":"stats","events":9,"lost_events":2,"dropped_records":5,"probes_failed":["oom"]}"#,
            "\n"
        );
        let s = JsonSummary::parse(out).expect("has stats");
        assert_eq!((s.stats_lines, s.lost_events, s.dropped_records), (2, 2, 5));
        assert_eq!((s.lost_records, s.reported_lost()), (7, 7));
        assert_eq!(s.count("blocked"), 1);
        assert_eq!(s.probes_failed, vec!["oom".to_owned()]);
        assert!(JsonSummary::parse("").is_none());
    }
}
