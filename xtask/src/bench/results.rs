//! The results of the runs, and the figures the report takes from them.

use std::fmt::Write as _;

use super::{
    BUSY_TASKS,
    measure::{ProgDelta, RunStat},
    numbers::{fmt_ops, max, median, min},
    outputs::JsonSummary,
    plan::{Mode, Workload},
};

pub(super) struct Run {
    pub(super) mode: Mode,
    pub(super) ops: Option<f64>,
    pub(super) wall: f64,
    /// Cores' worth of CPU used by other processes during the run.
    pub(super) foreign_cores: f64,
    /// `foreign_cores` is over the workload's limit.
    pub(super) disturbed: bool,
    pub(super) steal_cores: f64,
    /// Threads on the machine (all processes) when the run started.
    pub(super) machine_tasks: u64,
    pub(super) tool: Option<ToolRun>,
}

impl Run {
    pub(super) fn progress(&self) -> String {
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

pub(super) fn disturbed(triple: &[Run]) -> bool {
    triple.iter().any(|r| r.disturbed)
}

pub(super) struct ToolRun {
    pub(super) cpu_secs: f64,
    pub(super) cpu_core: f64,
    /// VmRSS at the end of the workload.
    pub(super) rss_bytes: u64,
    /// VmHWM: peak RSS since the tool started (start-up included).
    pub(super) hwm_bytes: u64,
    pub(super) counters: Option<Counters>,
    pub(super) json: Option<JsonSummary>,
    pub(super) progs: Vec<ProgDelta>,
    pub(super) problem: Option<String>,
}

pub(super) struct Counters {
    pub(super) events: u64,
    pub(super) lost: u64,
    pub(super) long_waits: u64,
}

pub(super) struct WorkloadResult {
    pub(super) w: &'static Workload,
    pub(super) triples: Vec<Vec<Run>>,
    pub(super) probe_runs: Vec<Run>,
}

pub(super) struct Slowdown {
    pub(super) median: f64,
    min: f64,
    max: f64,
}

impl Slowdown {
    pub(super) fn cell(&self) -> String {
        format!("{:.1}% [{:.1} … {:.1}]", self.median, self.min, self.max)
    }
}

#[derive(Default)]
pub(super) struct ToolStats {
    pub(super) cpu_pct: Option<f64>,
    pub(super) hwm_mib: Option<f64>,
    pub(super) rss_mib: Option<f64>,
    pub(super) events_per_sec: Option<f64>,
    pub(super) lost: Option<u64>,
    /// Records hangwatch reported lost (`lost` records), summed over runs.
    pub(super) reported: Option<u64>,
}

pub(super) const MIB: f64 = 1024.0 * 1024.0;

impl WorkloadResult {
    /// The clean triples when there are enough of them, else all.
    pub(super) fn used_triples(&self) -> Vec<usize> {
        let clean: Vec<usize> =
            (0..self.triples.len()).filter(|&i| !disturbed(&self.triples[i])).collect();
        if clean.len() >= 3 || clean.len() == self.triples.len() {
            clean
        } else {
            (0..self.triples.len()).collect()
        }
    }

    /// "noisy: 6 of 7 triples disturbed" when disturbed triples had to be used.
    pub(super) fn caveat(&self, used: &[usize]) -> Option<String> {
        let dirty = used.iter().filter(|&&i| disturbed(&self.triples[i])).count();
        (dirty > 0).then(|| format!("noisy: {dirty} of {} triples disturbed", used.len()))
    }

    pub(super) fn triples_cell(&self, used: &[usize]) -> String {
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

    pub(super) fn ops(&self, mode: Mode, used: &[usize]) -> Vec<f64> {
        used.iter().filter_map(|&i| self.run(i, mode)?.ops).collect()
    }

    pub(super) fn tool_runs<'s>(
        &'s self,
        mode: Mode,
        used: &'s [usize],
    ) -> impl Iterator<Item = &'s ToolRun> + 's {
        used.iter().filter_map(move |&i| self.run(i, mode)?.tool.as_ref())
    }

    pub(super) fn slowdown(&self, mode: Mode, used: &[usize]) -> Option<Slowdown> {
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

    pub(super) fn tool_stats(&self, mode: Mode, used: &[usize]) -> ToolStats {
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

pub(super) struct SnapshotResult {
    pub(super) threads: usize,
    pub(super) runs: Vec<RunStat>,
    /// Run with `--stacks` (the identical-stacks row).
    pub(super) stacks: bool,
}

impl SnapshotResult {
    pub(super) fn wall(&self) -> Option<f64> {
        median(&self.runs.iter().map(|r| r.wall_secs).collect::<Vec<_>>())
    }
    pub(super) fn cpu(&self) -> Option<f64> {
        median(&self.runs.iter().map(RunStat::cpu_secs).collect::<Vec<_>>())
    }
    pub(super) fn maxrss_mib(&self) -> Option<f64> {
        max(&self.runs.iter().map(|r| r.maxrss_kib as f64 / 1024.0).collect::<Vec<_>>())
    }
}
