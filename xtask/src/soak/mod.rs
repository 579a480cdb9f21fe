//! `cargo xtask soak [--minutes N]`: live mode (`hangwatch --json`) under process and thread
//! churn, watched for growth.
//!
//! While hangwatch runs, four churners run side by side, each in its own process group:
//! - a fork/exec storm (`task_churn fork_exec`, 2 s bursts every 5 s);
//! - a thread create/exit storm (`task_churn thread`, 2 s bursts every 5 s);
//! - 10,000 blocked threads appearing and vanishing (`blocked_threads cycle 10000 2`, back to
//!   back with a 1 s pause);
//! - OOM kills in a loop in a memory-limited cgroup of the soak's own (cgroup v1 `memory`
//!   hierarchy on hybrid systems, else cgroup v2 `memory.max`), one kill about every second.
//!
//! Every 10 s it samples hangwatch's CPU time, open fds, its peak RSS over those 10 s (read
//! every second), and from its `stats` records the lost events and tracked processes. At the
//! end it fits a least-squares line to each figure over the last half of the run (the first
//! half is warm-up: caches fill, the allocator finds its size) and fails when the fitted growth over that half exceeds the bound stated in
//! [`growth::BOUNDS`] by more than its one-sided 95% margin (so a short, noisy run does not fail on
//! noise; a steady leak is a straight line and fails). Losses are a counter: any loss in the
//! last half fails.
//!
//! Ctrl-C / SIGTERM stop the run early: every churner's process group is killed, the cgroup
//! removed and hangwatch stopped, as on a normal end or a failure (all of it is in `Drop`s).

mod churn;
mod growth;
mod live;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use self::{
    churn::{Churn, OomCgroup},
    growth::{Verdict, judge},
    live::{Live, Seen},
};
use super::{
    Ctx,
    bench::{clock_ticks, compile_workloads, proc_rss},
};

/// How often a sample is taken (hangwatch writes a `stats` record every 10 s too).
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How often hangwatch's RSS is read; a sample keeps the peak of its window.
const RSS_EVERY: Duration = Duration::from_secs(1);
/// Blocked threads that appear and vanish together.
const BLOCKED_THREADS: u32 = 10_000;
/// Memory limit of the OOM cgroup: small, so a victim is killed within a few ms of touching it.
const OOM_LIMIT_BYTES: u64 = 32 * 1024 * 1024;
/// Pause between two OOM kills.
const OOM_PAUSE_MS: u32 = 1_000;
/// The victims' comm (set by oom_loop), to count hangwatch's `oom_kill` records for them.
const OOM_COMM: &str = "soak_oom";

pub(super) fn run(ctx: &Ctx, minutes: f64) -> Result<ExitCode> {
    ensure!(
        (1.0..=24.0 * 60.0).contains(&minutes),
        "--minutes {minutes} is out of range (1 to 1440): the growth fit needs at least three \
         samples in the last half"
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C / SIGTERM handler")?;
    }
    let dir = ctx.target_dir.join("soak");
    let bin_dir = dir.join("bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let hangwatch = private_copy(&ctx.hangwatch_bin(), &bin_dir)?;
    compile_workloads(ctx, &ctx.root.join("xtask").join("bench"), &bin_dir)?;
    compile_workloads(ctx, &ctx.root.join("xtask").join("soak"), &bin_dir)?;

    let cgroup = OomCgroup::create(OOM_LIMIT_BYTES)?;
    let live = Live::start(ctx, &hangwatch, &dir)?;
    println!(
        "soak: hangwatch --json (pid {}) for {minutes} min, churn: fork/exec, threads, \
         {BLOCKED_THREADS} blocked threads, OOM kills in {}",
        live.pid,
        cgroup.dir.display()
    );
    let churn = Churn::start(ctx, &bin_dir, &cgroup, &stop)?;

    let total = Duration::from_secs_f64(minutes * 60.0);
    let samples = sample_loop(&live, &churn, &stop, total)?;
    let interrupted = stop.load(Ordering::SeqCst);
    let churn_report = churn.stop();
    let seen = live.stop()?;
    drop(cgroup);
    write_csv(&dir.join("samples.csv"), &samples)?;
    if interrupted {
        bail!("interrupted after {} samples (everything started was stopped)", samples.len());
    }
    churn_report?;
    ensure!(
        seen.oom_kills > 0,
        "hangwatch reported none of the soak's OOM kills ({} oom_kill records in all)",
        seen.types.get("oom_kill").copied().unwrap_or(0)
    );
    let verdicts = judge(&samples);
    print_report(&samples, &verdicts, &seen, minutes);
    let failed: Vec<&str> = verdicts.iter().filter(|v| !v.pass).map(|v| v.metric).collect();
    ensure!(failed.is_empty(), "soak: growth past the bound in {}", failed.join(", "));
    println!("soak: passed");
    Ok(ExitCode::SUCCESS)
}

/// A copy of the built binary, so a `cargo build` during a long soak does not touch it.
fn private_copy(built: &Path, bin_dir: &Path) -> Result<PathBuf> {
    ensure!(built.is_file(), "{} was not built", built.display());
    let to = bin_dir.join("hangwatch");
    let tmp = bin_dir.join("hangwatch.new");
    fs::copy(built, &tmp).with_context(|| format!("copying {}", built.display()))?;
    fs::rename(&tmp, &to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(to)
}

// ------------------------------------------------------------------------------- samples

#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// Seconds since the churn started.
    secs: f64,
    rss_bytes: u64,
    cpu_ticks: u64,
    fds: u64,
    /// `lost_events + dropped_records` from the latest stats record.
    lost: u64,
    tracked: u64,
}

fn sample_loop(
    live: &Live,
    churn: &Churn,
    stop: &AtomicBool,
    total: Duration,
) -> Result<Vec<Sample>> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next = start;
    // RSS is read every second and a sample keeps the peak of its window: hangwatch's RSS
    // swings by tens of MiB with each 10,000-thread wave, so a single reading every 10 s lands
    // at a random phase of the wave and the fit sees that as noise (or, by chance, as growth).
    // The peak of each window is the same phase every time; a leak raises it all the same.
    let mut peak_rss = 0u64;
    let mut next_rss = start;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_rss {
            peak_rss = peak_rss.max(proc_rss(live.pid).0);
            next_rss += RSS_EVERY;
        }
        if Instant::now() >= next {
            let mut s = live.sample(start.elapsed().as_secs_f64())?;
            s.rss_bytes = s.rss_bytes.max(peak_rss);
            peak_rss = 0;
            println!(
                "soak: {:>6.0} s  rss {:>6.1} MiB  cpu {:>7.1} s  fds {:>3}  lost {}  tracked {}",
                s.secs,
                s.rss_bytes as f64 / MIB,
                s.cpu_ticks as f64 / clock_ticks(),
                s.fds,
                s.lost,
                s.tracked
            );
            samples.push(s);
            if start.elapsed() >= total {
                break;
            }
            next += SAMPLE_EVERY;
        }
        churn.check()?;
        thread::sleep(Duration::from_millis(100));
    }
    Ok(samples)
}

const MIB: f64 = 1024.0 * 1024.0;

fn print_report(samples: &[Sample], verdicts: &[Verdict], seen: &Seen, minutes: f64) {
    println!();
    println!(
        "soak: {minutes} min, {} samples; hangwatch wrote {} records ({} oom_kill for the \
         soak's victims, {} process_exit, {} stats)",
        samples.len(),
        seen.types.values().sum::<u64>(),
        seen.oom_kills,
        seen.types.get("process_exit").copied().unwrap_or(0),
        seen.types.get("stats").copied().unwrap_or(0),
    );
    println!(
        "| figure | first half (mean) | last half (mean) | growth over last half (± 95%) | bound | verdict |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for v in verdicts {
        let (first, last) =
            if v.metric == "lost" { ("(total at half-time)", "(total at end)") } else { ("", "") };
        println!(
            "| {} ({}) | {:.1} {first} | {:.1} {last} | {:+.2} ± {:.2} | ≤ {:.2} | {} |",
            v.metric,
            v.unit,
            v.first_half_mean,
            v.last_half_mean,
            v.growth,
            v.margin,
            v.allowed,
            if v.pass { "ok" } else { "GROWTH" }
        );
    }
}

fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut text = String::from("secs,rss_bytes,cpu_ticks,fds,lost,tracked\n");
    for s in samples {
        text.push_str(&format!(
            "{:.1},{},{},{},{},{}\n",
            s.secs, s.rss_bytes, s.cpu_ticks, s.fds, s.lost, s.tracked
        ));
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("soak: samples in {}", path.display());
    Ok(())
}

// ------------------------------------------------------------------------------- helpers

/// kill(2) of a process (pid > 0) or a process group (pid < 0) the soak started.
fn signal(pid: i32, sig: i32) {
    if pid == 0 || pid == -1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; 0 and -1 (our group, every process)
    // are refused above.
    unsafe {
        libc::kill(pid, sig);
    }
}
