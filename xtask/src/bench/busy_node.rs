//! Live mode on a busy node: hangwatch's CPU and RSS with thousands of idle processes.

use std::{thread, time::Duration};

use anyhow::Result;

use super::{Bench, report::Target, run::Parked};

/// Idle processes on the busy node (issue 9): live mode must not pay for what did not change.
const BUSY_PROCS: usize = 12_000;
/// Time hangwatch gets before it is measured: its caches fill, and every wait passes the
/// `sched_waking` probe's threshold (after which the kernel reports its end).
const BUSY_SETTLE: Duration = Duration::from_secs(15);
/// How long hangwatch's CPU is measured.
const BUSY_SECS: f64 = 30.0;
const MAX_BUSY_CPU_PCT: f64 = 5.0;
const MAX_BUSY_RSS_MIB: f64 = 64.0;

pub(super) struct BusyResult {
    procs: usize,
    cpu_pct: f64,
    /// VmRSS at the end.
    rss_mib: f64,
    /// VmHWM: peak since start (the first full scan of every process included).
    hwm_mib: f64,
    problem: Option<String>,
}

impl BusyResult {
    /// Its CPU and RSS targets.
    pub(super) fn targets(&self, out: &mut Vec<Target>) {
        out.push(Target {
            what: format!(
                "{} idle processes: hangwatch CPU ≤ {MAX_BUSY_CPU_PCT}% of one core",
                self.procs
            ),
            measured: format!("{:.2}%", self.cpu_pct),
            pass: Some(self.cpu_pct <= MAX_BUSY_CPU_PCT),
            caveat: self.problem.clone(),
        });
        out.push(Target {
            what: format!("{} idle processes: hangwatch RSS ≤ {MAX_BUSY_RSS_MIB} MiB", self.procs),
            measured: format!("{:.1} MiB ({:.1} MiB peak)", self.rss_mib, self.hwm_mib),
            pass: Some(self.rss_mib <= MAX_BUSY_RSS_MIB),
            caveat: None,
        });
    }
}

impl Bench<'_> {
    /// `busy-node` (full bench, or `HANGWATCH_BENCH_ONLY=busy-node`): `hangwatch --json` with
    /// [`BUSY_PROCS`] idle processes on the machine, measured over [`BUSY_SECS`] after
    /// [`BUSY_SETTLE`].
    pub(super) fn busy_node(&self) -> Result<Option<BusyResult>> {
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
