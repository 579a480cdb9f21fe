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
//! [`BOUNDS`] by more than its one-sided 95% margin (so a short, noisy run does not fail on
//! noise; a steady leak is a straight line and fails). Losses are a counter: any loss in the
//! last half fails.
//!
//! Ctrl-C / SIGTERM stop the run early: every churner's process group is killed, the cgroup
//! removed and hangwatch stopped, as on a normal end or a failure (all of it is in `Drop`s).

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Read},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value as Json;

use super::{
    Ctx,
    bench::{clock_ticks, compile_workloads, proc_rss, stat_cpu_ticks, wait_timeout},
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

/// A growth bound: the fitted growth over the last half of the run may be at most
/// `max(floor, per_min × minutes in the last half)`.
pub(super) struct Bound {
    metric: &'static str,
    unit: &'static str,
    floor: f64,
    per_min: f64,
}

impl Bound {
    fn allowed(&self, window_min: f64) -> f64 {
        self.floor.max(self.per_min * window_min)
    }
}

/// The bounds, and why (docs/benchmarks.md, "Soak", says the same):
/// - RSS: 4 MiB, or 0.25 MiB/min on longer runs. Under this churn hangwatch's RSS moves by a
///   few MiB with each 10,000-thread wave (its per-thread state, then the allocator keeping
///   freed pages), so a smaller floor would fail on noise; a per-task leak of even 100 bytes
///   under ~1,000 exits/s would be ~6 MiB/min, far above. 0.25 MiB/min is 15 MiB an hour: a
///   leak that would take hangwatch past the 64 MiB busy-node budget within hours fails.
/// - fds: 2. Every fd hangwatch holds is fixed after start (BPF links, maps, the ring buffer,
///   a netlink socket); one or two are open transiently while it reads /proc at the sampling
///   instant. Any steady growth is a leak.
/// - CPU: 10 points of one core, or 0.5 point/min. hangwatch's CPU follows the churn's phases
///   (10 s samples do not line up with them), so samples vary by several points; a cost that
///   grows with what it has seen (a list never pruned) shows as a steady rise well past this.
/// - tracked processes: 2,000, or 100/min. Exited processes stay in the aggregator for a grace
///   period, so the count swings with the fork/exec bursts (~1,000 exits each); a process
///   never pruned adds ~1,000 per burst (12,000/min).
pub(super) const BOUNDS: &[Bound] = &[
    Bound { metric: "rss", unit: "MiB", floor: 4.0, per_min: 0.25 },
    Bound { metric: "fds", unit: "fds", floor: 2.0, per_min: 0.0 },
    Bound { metric: "cpu", unit: "% of a core", floor: 10.0, per_min: 0.5 },
    Bound { metric: "tracked", unit: "processes", floor: 2_000.0, per_min: 100.0 },
];

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

/// One figure per sample, in the unit of its bound. CPU is per interval (between a sample and
/// the one before), so it has one value fewer.
fn series(samples: &[Sample], metric: &str) -> Vec<(f64, f64)> {
    match metric {
        "rss" => samples.iter().map(|s| (s.secs, s.rss_bytes as f64 / MIB)).collect(),
        "fds" => samples.iter().map(|s| (s.secs, s.fds as f64)).collect(),
        "tracked" => samples.iter().map(|s| (s.secs, s.tracked as f64)).collect(),
        "cpu" => samples
            .windows(2)
            .map(|w| {
                let secs = (w[1].secs - w[0].secs).max(1e-3);
                let cpu = w[1].cpu_ticks.saturating_sub(w[0].cpu_ticks) as f64 / clock_ticks();
                (w[1].secs, 100.0 * cpu / secs)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A least-squares line: its slope and the slope's standard error (infinite with two points).
#[derive(Clone, Copy, Debug)]
pub(super) struct Fit {
    slope: f64,
    stderr: f64,
}

/// Least-squares fit of `points` (y per x); `None` with fewer than two distinct x.
pub(super) fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let stderr = if points.len() > 2 {
        let sse: f64 = points.iter().map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2)).sum();
        (sse / (n - 2.0) / sxx).sqrt()
    } else {
        f64::INFINITY
    };
    Some(Fit { slope, stderr })
}

/// Student's t, one-sided 95%, for `dof` degrees of freedom: the growth must exceed its bound
/// by this many standard errors to fail, so a short, noisy run does not fail on noise while a
/// steady leak (a straight line, small residuals) does.
fn t95(dof: usize) -> f64 {
    const T: [f64; 10] = [6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812];
    match dof {
        0 => f64::INFINITY,
        1..=10 => T[dof - 1],
        11..=20 => 1.75,
        21..=40 => 1.70,
        _ => 1.645,
    }
}

/// The points in the last half of the run (by time).
fn last_half(points: &[(f64, f64)], end_secs: f64) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| p.0 >= end_secs / 2.0).collect()
}

#[derive(Debug)]
pub(super) struct Verdict {
    metric: &'static str,
    unit: &'static str,
    first_half_mean: f64,
    last_half_mean: f64,
    /// Fitted growth over the last half (slope × its length).
    growth: f64,
    /// One-sided 95% margin of `growth` (t × standard error × length).
    margin: f64,
    allowed: f64,
    pass: bool,
}

pub(super) fn judge(samples: &[Sample]) -> Vec<Verdict> {
    let end = samples.last().map_or(0.0, |s| s.secs);
    let mean = |p: &[(f64, f64)]| {
        if p.is_empty() { f64::NAN } else { p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64 }
    };
    let mut out: Vec<Verdict> = BOUNDS
        .iter()
        .map(|b| {
            let all = series(samples, b.metric);
            let late = last_half(&all, end);
            let early: Vec<(f64, f64)> = all.iter().copied().filter(|p| p.0 < end / 2.0).collect();
            let window = late.last().map_or(0.0, |l| l.0) - late.first().map_or(0.0, |f| f.0);
            let f = fit(&late);
            let growth = f.map_or(f64::NAN, |f| f.slope * window);
            let margin =
                f.map_or(f64::NAN, |f| t95(late.len().saturating_sub(2)) * f.stderr * window);
            let allowed = b.allowed(window / 60.0);
            Verdict {
                metric: b.metric,
                unit: b.unit,
                first_half_mean: mean(&early),
                last_half_mean: mean(&late),
                growth,
                margin,
                allowed,
                // Too few samples to fit is a failure, not a pass (NaN compares false).
                pass: late.len() >= 3 && growth - margin <= allowed,
            }
        })
        .collect();
    // Losses: a counter; what it gained over the last half, exactly.
    let late: Vec<&Sample> = samples.iter().filter(|s| s.secs >= end / 2.0).collect();
    let lost_late = match (late.first(), late.last()) {
        (Some(a), Some(b)) => b.lost.saturating_sub(a.lost),
        _ => 0,
    };
    let lost_early = late.first().map_or(0, |s| s.lost);
    out.push(Verdict {
        metric: "lost",
        unit: "events",
        first_half_mean: lost_early as f64,
        last_half_mean: late.last().map_or(0, |s| s.lost) as f64,
        growth: lost_late as f64,
        margin: 0.0,
        allowed: 0.0,
        pass: late.len() >= 3 && lost_late == 0,
    });
    out
}

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

// ------------------------------------------------------------------------------- hangwatch

/// What hangwatch's output said, read as it is written (no file grows during a long soak).
#[derive(Default)]
struct Seen {
    types: BTreeMap<String, u64>,
    oom_kills: u64,
    lost: u64,
    tracked: u64,
    /// Lines that were not a JSON object with a `type`: hangwatch's output must always be valid.
    bad_lines: u64,
}

struct Live {
    child: Child,
    pid: u32,
    seen: Arc<Mutex<Seen>>,
    reader: Option<thread::JoinHandle<()>>,
    stderr: PathBuf,
}

impl Live {
    fn start(ctx: &Ctx, bin: &Path, dir: &Path) -> Result<Self> {
        let stderr = dir.join("hangwatch.stderr");
        let err_file =
            fs::File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let mut child = ctx
            .cmd(bin)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} --json", bin.display()))?;
        let pid = child.id();
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe"))?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let seen = Arc::clone(&seen);
            thread::spawn(move || read_output(out, &seen, tx))
        };
        let mut live = Live { child, pid, seen, reader: Some(reader), stderr };
        // Ready at its first record (or when it exits, which is an error).
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => Ok(live),
            Err(_) => {
                let status = live.child.try_wait().ok().flatten();
                bail!(
                    "hangwatch --json wrote nothing within 60 s ({}): {}",
                    status.map_or("still running".into(), |s| s.to_string()),
                    fs::read_to_string(&live.stderr).unwrap_or_default().trim()
                )
            }
        }
    }

    fn sample(&self, secs: f64) -> Result<Sample> {
        let pid = self.pid;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("hangwatch (pid {pid}) is gone"))?;
        let cpu_ticks =
            stat_cpu_ticks(&stat).ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
        let fds = fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count() as u64;
        let (lost, tracked) = match self.seen.lock() {
            Ok(s) => (s.lost, s.tracked),
            Err(_) => bail!("the output reader panicked"),
        };
        Ok(Sample { secs, rss_bytes: proc_rss(pid).0, cpu_ticks, fds, lost, tracked })
    }

    /// SIGINT, a second SIGINT after 5 s, SIGTERM after 10 s, SIGKILL after 15 s; fails unless
    /// hangwatch exited 0 and wrote only valid records. A first SIGINT that is not acted on is
    /// only a warning: it is issue 9's lost-SIGINT bug, which this soak is not about.
    fn stop(mut self) -> Result<Seen> {
        let mut status = None;
        for (i, sig) in [libc::SIGINT, libc::SIGINT, libc::SIGTERM].into_iter().enumerate() {
            signal(self.pid as i32, sig);
            status = wait_timeout(&mut self.child, Duration::from_secs(5))?;
            if status.is_some() {
                if i > 0 {
                    eprintln!(
                        "soak: warning: hangwatch did not act on SIGINT within 5 s; it exited \
                         after signal {} of 3 (SIGINT, SIGINT, SIGTERM)",
                        i + 1
                    );
                }
                break;
            }
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let seen = match self.seen.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(_) => bail!("the output reader panicked"),
        };
        let err = fs::read_to_string(&self.stderr).unwrap_or_default();
        match status {
            None => bail!("hangwatch did not exit within 15 s of SIGINT, SIGINT, SIGTERM (killed)"),
            Some(s) if !s.success() => bail!("hangwatch exited with {s}: {}", err.trim()),
            Some(_) => {}
        }
        ensure!(
            seen.bad_lines == 0,
            "hangwatch wrote {} lines that are not records",
            seen.bad_lines
        );
        Ok(seen)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads hangwatch's JSON Lines until EOF, keeping counts and the latest stats.
fn read_output(out: impl Read, seen: &Mutex<Seen>, ready: std::sync::mpsc::Sender<()>) {
    let mut out = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        match out.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if first {
            first = false;
            let _ = ready.send(());
        }
        let rec: Option<Json> = serde_json::from_slice(&line).ok();
        let Ok(mut s) = seen.lock() else { return };
        let Some(ty) = rec.as_ref().and_then(|r| r.get("type")).and_then(Json::as_str) else {
            s.bad_lines += 1;
            continue;
        };
        *s.types.entry(ty.to_owned()).or_default() += 1;
        let num = |key: &str| rec.as_ref().and_then(|r| r.get(key)).and_then(Json::as_u64);
        match ty {
            "stats" => {
                s.lost = num("lost_events").unwrap_or(0) + num("dropped_records").unwrap_or(0);
                s.tracked = num("processes_tracked").unwrap_or(0);
            }
            "oom_kill"
                if rec.as_ref().and_then(|r| r.get("comm")).and_then(Json::as_str)
                    == Some(OOM_COMM) =>
            {
                s.oom_kills += 1;
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------- churn

/// The churners: one thread each, running its program again and again until `stop`.
struct Churn {
    stop: Arc<AtomicBool>,
    /// Set by a churner whose program failed; the soak then fails (it would not be testing
    /// what it says).
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
    /// The long-running OOM loop.
    oom: Option<Child>,
}

impl Churn {
    fn start(
        ctx: &Ctx,
        bin_dir: &Path,
        cgroup: &OomCgroup,
        stop: &Arc<AtomicBool>,
    ) -> Result<Self> {
        let mut churn = Churn {
            stop: Arc::clone(stop),
            failed: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
            oom: None,
        };
        let bin = |name: &str| bin_dir.join(name);
        let plans: [(&str, Command, Duration); 3] = [
            ("fork/exec storm", with_args(ctx, &bin("task_churn"), &["fork_exec", "2"]), secs(3)),
            ("thread storm", with_args(ctx, &bin("task_churn"), &["thread", "2"]), secs(3)),
            (
                "blocked threads",
                with_args(
                    ctx,
                    &bin("blocked_threads"),
                    &["cycle", &BLOCKED_THREADS.to_string(), "2"],
                ),
                secs(1),
            ),
        ];
        for (name, cmd, pause) in plans {
            let stop = Arc::clone(&churn.stop);
            let failed = Arc::clone(&churn.failed);
            churn.threads.push(thread::spawn(move || repeat(name, cmd, pause, &stop, &failed)));
        }
        let procs = cgroup.dir.join("cgroup.procs");
        let oom = ctx
            .cmd(bin("oom_loop"))
            .arg(&procs)
            .arg(OOM_PAUSE_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting oom_loop")?;
        churn.oom = Some(oom);
        Ok(churn)
    }

    /// Fails as soon as a churner failed or the OOM loop ended.
    fn check(&self) -> Result<()> {
        if let Ok(f) = self.failed.lock()
            && let Some(first) = f.first()
        {
            bail!("churn failed: {first}");
        }
        if let Some(oom) = &self.oom
            && oom.id() != 0
            && fs::metadata(format!("/proc/{}", oom.id())).is_err()
        {
            bail!("oom_loop ended early");
        }
        Ok(())
    }

    /// Stops everything (also done on drop); reports a churner's failure.
    fn stop(mut self) -> Result<()> {
        self.shutdown();
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        ensure!(failed.is_empty(), "churn failed: {}", failed.join("; "));
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut oom) = self.oom.take() {
            // Its group: the loop and a victim it may have forked.
            signal(-(oom.id() as i32), libc::SIGKILL);
            let _ = oom.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn with_args(ctx: &Ctx, program: &Path, args: &[&str]) -> Command {
    let mut cmd = ctx.cmd(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.process_group(0);
    cmd
}

/// Runs `cmd` to its end, pauses, again, until `stop`; on `stop` kills its process group.
fn repeat(
    name: &str,
    mut cmd: Command,
    pause: Duration,
    stop: &AtomicBool,
    failed: &Mutex<Vec<String>>,
) {
    let fail = |why: String| {
        if let Ok(mut f) = failed.lock() {
            f.push(format!("{name}: {why}"));
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return fail(format!("cannot start: {e}")),
        };
        let status = loop {
            if stop.load(Ordering::SeqCst) {
                signal(-(child.id() as i32), libc::SIGKILL);
                let _ = child.wait();
                return;
            }
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(e) => return fail(format!("wait: {e}")),
            }
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return fail(format!("exited with {status}: {}", err.trim()));
        }
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ------------------------------------------------------------------------------- cgroup

/// The soak's memory-limited cgroup: v1 `/sys/fs/cgroup/memory/<name>` or v2
/// `/sys/fs/cgroup/<name>` (with no swap, so the victim is killed rather than swapped out).
/// Dropping it kills what is left inside and removes it.
struct OomCgroup {
    dir: PathBuf,
}

impl OomCgroup {
    fn create(limit: u64) -> Result<Self> {
        let name = format!("hangwatch-soak-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let limit = limit.to_string();
        let (dir, settings): (PathBuf, Vec<(&str, &str)>) =
            if v1.join("memory.limit_in_bytes").exists() {
                (v1.join(&name), vec![("memory.limit_in_bytes", &limit)])
            } else {
                let has = |file: &str| {
                    fs::read_to_string(v2.join(file))
                        .unwrap_or_default()
                        .split_whitespace()
                        .any(|c| c == "memory")
                };
                ensure!(
                    has("cgroup.controllers"),
                    "no cgroup v1 memory hierarchy and no cgroup v2 memory controller: the soak \
                     needs one for its OOM kills"
                );
                if !has("cgroup.subtree_control") {
                    fs::write(v2.join("cgroup.subtree_control"), "+memory")
                        .context("enabling the v2 memory controller for children")?;
                }
                (v2.join(&name), vec![("memory.max", &limit), ("memory.swap.max", "0")])
            };
        fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let cgroup = OomCgroup { dir };
        for (file, value) in settings {
            let f = cgroup.dir.join(file);
            // memory.swap.max is absent without swap accounting: nothing to turn off then.
            if file == "memory.swap.max" && !f.exists() {
                continue;
            }
            fs::write(&f, value).with_context(|| format!("writing {value} to {}", f.display()))?;
        }
        Ok(cgroup)
    }
}

impl Drop for OomCgroup {
    fn drop(&mut self) {
        for _ in 0..250 {
            for pid in fs::read_to_string(self.dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                // Only the soak's own victims can be in its own cgroup.
                signal(pid, libc::SIGKILL);
            }
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("soak: warning: could not remove {}", self.dir.display());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(f: impl Fn(f64) -> (u64, u64, u64, u64)) -> Vec<Sample> {
        (0..=18)
            .map(|i| {
                let secs = i as f64 * 10.0;
                let (rss, fds, lost, tracked) = f(secs);
                // A steady 5% of a core at 100 ticks/s.
                let cpu_ticks = (secs * clock_ticks() * 0.05) as u64;
                Sample { secs, rss_bytes: rss, cpu_ticks, fds, lost, tracked }
            })
            .collect()
    }

    fn verdict<'a>(v: &'a [Verdict], metric: &str) -> &'a Verdict {
        v.iter().find(|v| v.metric == metric).expect("metric judged")
    }

    #[test]
    fn fit_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        let f = fit(&pts).expect("fits");
        assert!((f.slope - 2.0).abs() < 1e-9);
        assert!(f.stderr < 1e-9);
        assert!(fit(&[(1.0, 1.0)]).is_none());
        assert!(fit(&[(1.0, 1.0), (1.0, 5.0)]).is_none());
    }

    #[test]
    fn flat_after_warm_up_passes() {
        // Grows by 20 MiB in the first half (warm-up), flat with noise after.
        let v = judge(&samples(|t| {
            let mib = if t < 90.0 { 10.0 + t / 4.5 } else { 30.0 + (t as u64 % 20) as f64 / 10.0 };
            ((mib * MIB) as u64, 12, 3, 500)
        }));
        for x in &v {
            assert!(x.pass, "{x:?}");
        }
    }

    #[test]
    fn steady_growth_fails() {
        // 10 MiB over the last 90 s; an fd per sample; losses going on; tracked climbing.
        let v = judge(&samples(|t| {
            (((20.0 + t / 9.0) * MIB) as u64, 10 + (t / 10.0) as u64, t as u64, 100 + 50 * t as u64)
        }));
        for m in ["rss", "fds", "lost", "tracked"] {
            assert!(!verdict(&v, m).pass, "{:?}", verdict(&v, m));
        }
        assert!(verdict(&v, "cpu").pass, "{:?}", verdict(&v, "cpu"));
    }

    #[test]
    fn too_few_samples_fail() {
        let s: Vec<Sample> = samples(|_| (1, 1, 0, 1)).into_iter().take(3).collect();
        assert!(judge(&s).iter().all(|v| !v.pass));
    }

    #[test]
    fn bound_takes_the_larger_of_floor_and_rate() {
        let b = Bound { metric: "x", unit: "u", floor: 4.0, per_min: 0.25 };
        assert_eq!(b.allowed(1.0), 4.0);
        assert_eq!(b.allowed(60.0), 15.0);
    }

    #[test]
    fn noise_in_a_short_run_passes_a_leak_does_not() {
        let short = |rss: &[f64]| -> Vec<Sample> {
            rss.iter()
                .enumerate()
                .map(|(i, mib)| Sample {
                    secs: i as f64 * 10.0,
                    rss_bytes: (mib * MIB) as u64,
                    cpu_ticks: i as u64 * 10,
                    fds: 20,
                    lost: 0,
                    tracked: 100,
                })
                .collect()
        };
        // Seen in a 90 s run under load: warm-up noise, no trend to speak of.
        let noisy = judge(&short(&[15.0, 46.0, 42.0, 76.0, 80.0, 73.0, 96.0, 101.0, 82.0, 100.0]));
        assert!(verdict(&noisy, "rss").pass, "{:?}", verdict(&noisy, "rss"));
        // 2 MiB every 10 s, in a straight line.
        let leak: Vec<f64> = (0..10).map(|i| 40.0 + 2.0 * i as f64).collect();
        let leak = judge(&short(&leak));
        assert!(!verdict(&leak, "rss").pass, "{:?}", verdict(&leak, "rss"));
    }
}
