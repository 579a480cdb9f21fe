//! `hangwatch snapshot` latency with N blocked threads (full bench, or
//! `HANGWATCH_BENCH_ONLY=snapshot` / `snapshot-stacks`).

use std::{thread, time::Duration};

use anyhow::{Result, ensure};

use super::{Bench, measure::RunStat, results::SnapshotResult, run::run_workload};

impl Bench<'_> {
    pub(super) fn snapshots(&mut self) -> Result<Vec<SnapshotResult>> {
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
}
