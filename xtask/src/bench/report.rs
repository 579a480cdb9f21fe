//! Reporting: the Markdown report (docs/benchmarks.md holds the latest) and the verdict on each
//! target.

use std::{fmt::Write as _, fs, process::Command, time::Duration};

use super::{
    Bench,
    measure::machine_tasks,
    numbers::{fmt_duration, fmt_ops, max, median, spread},
    plan::{Kind, Mode, Plan, foreign_limit},
    results::{MIB, SnapshotResult, WorkloadResult},
    tools::BPFTRACE_PROGRAM,
};
use crate::capture;

/// Targets (issue "cargo xtask bench").
const MAX_SLOWDOWN_PCT: f64 = 5.0;
const MAX_IDLE_CPU_PCT: f64 = 1.0;
const MAX_RSS_MIB_10K: f64 = 50.0;
const MAX_SNAPSHOT_SECS_10K: f64 = 2.0;
/// Linear cost: the marginal cost per thread from 5k to 10k threads is at most this many
/// times that from 0 to 5k (1.0 is perfectly linear, 3.0 quadratic).
const MAX_SNAPSHOT_SUPERLINEARITY: f64 = 1.5;

impl Bench<'_> {
    pub(super) fn header(&self) -> Header {
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

    pub(super) fn report(
        &self,
        h: &Header,
        results: &[WorkloadResult],
        snapshots: &[SnapshotResult],
        elapsed: Duration,
    ) -> String {
        let p = &self.plan;
        let mut s = String::new();
        preamble(&mut s, p, h, elapsed);
        main_table(&mut s, results);
        exact_memory_table(&mut s, results);
        blocked_section(&mut s, p, results);
        snapshot_table(&mut s, p, snapshots);
        targets_table(&mut s, &self.targets(results, snapshots));
        probe_cost_table(&mut s, p, results);
        notes(&mut s, &self.notes);
        s
    }

    fn targets(&self, results: &[WorkloadResult], snapshots: &[SnapshotResult]) -> Vec<Target> {
        let mut out = Vec::new();
        workload_targets(&mut out, results);
        if !snapshots.is_empty() {
            snapshot_targets(&mut out, snapshots);
        }
        if let Some(b) = &self.busy {
            b.targets(&mut out);
        }
        loss_targets(&mut out, results);
        out
    }
}

/// Per workload kind: the slowdown, idle CPU, or 10,000-thread RSS.
fn workload_targets(out: &mut Vec<Target>, results: &[WorkloadResult]) {
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
                measured: hs.hwm_mib.map_or("–".into(), |m| format!("{m:.1} MiB peak (VmHWM)")),
                pass: hs.hwm_mib.map(|m| m <= MAX_RSS_MIB_10K),
                caveat: None,
            });
        }
    }
}

/// Snapshot time with 10,000 blocked threads (with and without stacks), and its linearity.
fn snapshot_targets(out: &mut Vec<Target>, snapshots: &[SnapshotResult]) {
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
        snapshots.iter().find(|r| r.threads == n && !r.stacks).and_then(SnapshotResult::wall)
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

/// Losses, per workload where there were any.
fn loss_targets(out: &mut Vec<Target>, results: &[WorkloadResult]) {
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
}

/// The title, the machine, and how the figures were measured.
fn preamble(s: &mut String, p: &Plan, h: &Header, elapsed: Duration) {
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
}

/// One row per workload: ops/s off and with each tool, the slowdowns, hangwatch's CPU, RSS
/// and losses.
fn main_table(s: &mut String, results: &[WorkloadResult]) {
    s.push_str("| workload | off ops/s (spread) | hangwatch ops/s | slowdown | bpftrace ops/s | slowdown | hangwatch CPU | hangwatch RSS | events/s | lost / reported | triples |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
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
}

/// The opt-in memory probes (`--exact-memory`), for the workloads they ran with.
fn exact_memory_table(s: &mut String, results: &[WorkloadResult]) {
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
}

/// 10,000 blocked threads: live mode details.
fn blocked_section(s: &mut String, p: &Plan, results: &[WorkloadResult]) {
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
        row(s, "hangwatch CPU, % of one core", &cpu, &|x| format!("{x:.1}%"));
        let now: Vec<f64> =
            r.tool_runs(Mode::Hangwatch, &used).map(|t| t.rss_bytes as f64 / MIB).collect();
        row(s, "hangwatch RSS at the end of the workload", &now, &|x| format!("{x:.1} MiB"));
        row(s, "hangwatch peak RSS (VmHWM)", &rss, &|x| format!("{x:.1} MiB"));
        row(s, "long waits ended (probe)", &lw, &|x| format!("{x:.0}"));
        row(s, "ring-buffer records written", &ev, &|x| format!("{x:.0}"));
        row(s, "`blocked` JSON records", &blk, &|x| format!("{x:.0}"));
        row(s, "`unblocked` JSON records", &unb, &|x| format!("{x:.0}"));
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
}

/// Snapshot latency by number of blocked threads.
fn snapshot_table(s: &mut String, p: &Plan, snapshots: &[SnapshotResult]) {
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
}

/// Each target and its verdict.
fn targets_table(s: &mut String, targets: &[Target]) {
    let _ = writeln!(s, "\n## Targets\n");
    s.push_str("| target | measured | verdict |\n| --- | --- | --- |\n");
    for t in targets {
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
}

/// Per-probe cost, from the bpf_stats runs.
fn probe_cost_table(s: &mut String, p: &Plan, results: &[WorkloadResult]) {
    let probe: Vec<&WorkloadResult> = results.iter().filter(|r| !r.probe_runs.is_empty()).collect();
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
}

/// What the report should be read with.
fn notes(s: &mut String, notes: &[String]) {
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
}

pub(super) struct Target {
    pub(super) what: String,
    pub(super) measured: String,
    pub(super) pass: Option<bool>,
    /// Why the verdict is weak (disturbed triples among those used).
    pub(super) caveat: Option<String>,
}

pub(super) struct Header {
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
