//! The tool under test (hangwatch, or the bpftrace peer): started and settled before a
//! workload, sampled at its start and end, stopped after it.

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use super::{
    Bench,
    measure::{ProgDelta, ToolSample, proc_cpu, proc_rss},
    outputs::JsonSummary,
    plan::Mode,
    results::{Counters, ToolRun},
    run::wait_timeout,
};
use crate::{Ctx, display_cmd};

/// The peer a user would pick instead of hangwatch (docs/design.md, "The cost problem").
pub(super) const BPFTRACE_PROGRAM: &str = "tracepoint:syscalls:sys_enter_futex { @start[tid] = nsecs; } \
     tracepoint:syscalls:sys_exit_futex /@start[tid]/ { @lat = hist(nsecs - @start[tid]); \
     delete(@start[tid]); }";

/// Time a tool gets after its first line of output before the workload starts.
const SETTLE: Duration = Duration::from_millis(300);

/// Indices in hangwatch's per-CPU `STATS` map (`hangwatch_common::stat`).
const STAT_EVENTS: usize = 0;
const STAT_LOST: usize = 1;
const STAT_LONG_WAITS: usize = 3;

impl Bench<'_> {
    pub(super) fn start_hangwatch(&self, exact_memory: bool) -> Result<Tool> {
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

    pub(super) fn start_bpftrace(&self) -> Result<Tool> {
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

    pub(super) fn sample_tool(&self, t: &Tool) -> ToolSample {
        ToolSample {
            cpu: proc_cpu(t.pid),
            progs: self.prog_stats(t.pid),
            counters: if t.mode == Mode::Hangwatch { self.hangwatch_counters(t.pid) } else { None },
        }
    }

    /// Stops the tool with SIGINT and turns two samples into the run's figures.
    pub(super) fn finish_tool(
        &self,
        mut t: Tool,
        before: &ToolSample,
        after: &ToolSample,
    ) -> Result<ToolRun> {
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
}

/// A running hangwatch or bpftrace. Killed on drop if it was not stopped.
pub(super) struct Tool {
    mode: Mode,
    pub(super) child: Child,
    pid: u32,
    pub(super) out: PathBuf,
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
