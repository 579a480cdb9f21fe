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
//!   [`plan::foreign_limit`] is marked disturbed and, in the full run, replaced by another (up
//!   to [`Plan::extra`] times);
//! * per-probe cost (`run_time_ns / run_cnt` with `kernel.bpf_stats_enabled=1`) is measured in
//!   separate runs after the triples: the statistics themselves cost two clock reads per
//!   program run, which would inflate the ratios (measured: ~10% on futex ping-pong).
//!
//! Timing never fails: the bench exits 0 unless it could not run, and the report says PASS or
//! FAIL against each target.

mod busy_node;
mod measure;
mod numbers;
mod outputs;
mod plan;
mod report;
mod results;
mod run;
mod snapshot;
mod tools;

use std::{
    fs,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, ensure};

use self::{
    busy_node::BusyResult,
    measure::BpfStats,
    numbers::fmt_duration,
    plan::{EXACT_MEMORY_WORKLOADS, Kind, Mode, Plan, Spec, Workload},
    results::{WorkloadResult, disturbed},
};
use super::Ctx;

pub(super) use self::{
    measure::{clock_ticks, proc_rss, stat_cpu_ticks},
    run::{compile_workloads, wait_timeout},
};

/// Debian packages the bench uses when it can get them (bpftrace itself is required and is
/// installed by main.rs's `BENCH_PACKAGES`).
const OPTIONAL_PACKAGES: &[&str] = &["bpftool"];

/// More threads than this on the machine when a run starts get a note in the report.
const BUSY_TASKS: u64 = 2_000;

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
}
