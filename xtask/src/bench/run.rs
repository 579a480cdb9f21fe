//! Running it: one workload's interleaved triples and bpf_stats runs, one run (tool started,
//! workload run under `runstat`, tool stopped), and the child processes that takes.

use std::{
    ffi::OsString,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use super::{
    Bench,
    measure::{RunStat, SysCpu, clock_ticks, machine_tasks},
    outputs::{count_stats_lines, last_number, stress_ng_rate},
    plan::{Kind, Mode, Spec, Workload, foreign_limit},
    results::{Run, WorkloadResult, disturbed},
};
use crate::{Ctx, capture, display_cmd};

impl Bench<'_> {
    pub(super) fn workload(&mut self, w: &'static Workload) -> Result<WorkloadResult> {
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

    /// Starts `blocked_threads park N` and waits until its N threads are blocked.
    pub(super) fn park(&self, n: usize) -> Result<Parked> {
        self.park_program("blocked_threads", n)
    }

    /// Starts `PROGRAM park N` and waits for its `ready` line (N threads or processes parked).
    pub(super) fn park_program(&self, program: &str, n: usize) -> Result<Parked> {
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
}

/// `blocked_threads park N`: its threads are released when stdin closes.
pub(super) struct Parked {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Parked {
    pub(super) fn release(mut self) -> Result<()> {
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

pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
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

pub(super) struct Output {
    stdout: String,
    pub(super) stderr: String,
}

/// Runs `cmd` in its own process group with its output in files (stdout on /dev/null if
/// `discard_stdout`); kills the whole group if it is still running after `timeout`.
pub(super) fn run_workload(
    mut cmd: Command,
    timeout: Duration,
    discard_stdout: bool,
) -> Result<Output> {
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
pub(crate) fn compile_workloads(ctx: &Ctx, src: &Path, bin_dir: &Path) -> Result<()> {
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
