//! JSON Lines records of `hangwatch --json` (documented in docs/json.md). One record per
//! line, each with `type`, `time` (RFC3339) and `ts_ns` (CLOCK_MONOTONIC). These structs are
//! the contract; they deserialize with unknown fields denied so tests catch drift. They
//! render what live mode hands out ([`StreamItem`]); `main` writes them.

use serde::{Deserialize, Serialize};

use super::{LayoutJson, MemCallsJson, RetainedJson, StackJson, StepJson, finding_json};
use crate::live::{
    Extra, StreamItem,
    aggregator::{Health, Output, ProcessInfo},
};

/// `oom_kill.victim_memory`: the victim's memory as hangwatch sampled it before the kill.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VictimMemoryJson {
    pub watched_secs: f64,
    pub samples: usize,
    pub first_rss_bytes: u64,
    pub last_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub heap_bytes: u64,
    pub growth_bytes_per_min: Option<f64>,
    /// `[ts_ns, rss_bytes]`, oldest first, the newest 10.
    pub rss_samples: Vec<[u64; 2]>,
}
use crate::{fmt::rfc3339, model::Wait};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    Blocked {
        time: String,
        ts_ns: u64,
        pid: i32,
        tid: i32,
        comm: String,
        process_comm: String,
        cgroup: String,
        syscall: String,
        since: String,
        since_ns: u64,
        duration_ms: u64,
        wchan: Option<String>,
        infinite: bool,
        summary: String,
        args: serde_json::Map<String, serde_json::Value>,
        /// docs/stacks.md; only when read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stack: Option<StackJson>,
    },
    Unblocked {
        time: String,
        ts_ns: u64,
        pid: i32,
        tid: i32,
        comm: String,
        process_comm: String,
        cgroup: String,
        syscall: String,
        since: String,
        since_ns: u64,
        /// Total length of the wait.
        duration_ms: u64,
        /// Timed by the kernel probe (true) or bounded by two /proc scans (false).
        exact: bool,
        woken_by_pid: Option<i32>,
        woken_by_comm: Option<String>,
        args: serde_json::Map<String, serde_json::Value>,
    },
    OomKill {
        time: String,
        ts_ns: u64,
        pid: i32,
        comm: String,
        cgroup: Option<String>,
        constraint: Option<String>,
        memory_limit_bytes: Option<u64>,
        anon_rss_bytes: Option<u64>,
        file_rss_bytes: Option<u64>,
        shmem_rss_bytes: Option<u64>,
        total_vm_bytes: Option<u64>,
        oom_score_adj: Option<i64>,
        source: String,
        victim_memory: Option<VictimMemoryJson>,
    },
    ProcessExit {
        time: String,
        ts_ns: u64,
        pid: i32,
        comm: String,
        cgroup: String,
        cpu_total_secs: f64,
    },
    Stats {
        time: String,
        ts_ns: u64,
        events: u64,
        events_per_sec: f64,
        lost_events: u64,
        /// Records this process dropped between its own stages (exact).
        dropped_records: u64,
        map_full: u64,
        read_errors: u64,
        probes_failed: Vec<String>,
        own_cpu_percent: f64,
        own_rss_bytes: u64,
        processes_tracked: usize,
    },
    Memory {
        time: String,
        ts_ns: u64,
        pid: i32,
        comm: String,
        cgroup: String,
        rss_bytes: u64,
        anon_rss_bytes: u64,
        peak_rss_bytes: u64,
        heap_bytes: u64,
        heap_peak_bytes: u64,
        brk_grows: u64,
        brk_shrinks: u64,
        mmap_bytes: Option<u64>,
        munmap_bytes: Option<u64>,
        returned_bytes: u64,
        not_returned: bool,
        growing: bool,
        growth_bytes_per_min: Option<f64>,
        counted_by: String,
        calls: Option<MemCallsJson>,
        layout: Option<Box<LayoutJson>>,
        retained: Option<Box<RetainedJson>>,
    },
    Finding {
        time: String,
        ts_ns: u64,
        kind: String,
        severity: String,
        pids: Vec<i32>,
        tids: Vec<i32>,
        summary: String,
        since: Option<String>,
        since_ns: Option<u64>,
        chain: Vec<StepJson>,
    },
    FindingResolved {
        time: String,
        ts_ns: u64,
        kind: String,
        severity: String,
        pids: Vec<i32>,
        tids: Vec<i32>,
        summary: String,
        since: Option<String>,
        since_ns: Option<u64>,
        chain: Vec<StepJson>,
    },
    /// Emitted when records were dropped because the consumer was too slow.
    Lost { time: String, ts_ns: u64, count: u64 },
}

/// Converts CLOCK_MONOTONIC ns to RFC3339, given one (mono, wall) reference pair.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub mono_ns: u64,
    pub wall: std::time::SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        Clock { mono_ns: crate::procfs::monotonic_ns(), wall: std::time::SystemTime::now() }
    }
    pub fn rfc3339(&self, mono_ns: u64) -> String {
        let wall = if mono_ns >= self.mono_ns {
            self.wall + std::time::Duration::from_nanos(mono_ns - self.mono_ns)
        } else {
            self.wall - std::time::Duration::from_nanos(self.mono_ns - mono_ns)
        };
        rfc3339(wall)
    }
}

/// The JSON line of one item of the live stream.
pub fn record(item: &StreamItem<'_>, clock: &Clock) -> Record {
    match *item {
        StreamItem::Output(out, extra) => output_record(out, clock, extra),
        StreamItem::Lost { ts_mono_ns, count } => {
            Record::Lost { time: clock.rfc3339(ts_mono_ns), ts_ns: ts_mono_ns, count }
        }
    }
}

fn wait_fields(w: &Wait) -> (String, u64, serde_json::Map<String, serde_json::Value>) {
    (w.decoded.syscall.clone(), w.since_mono_ns, w.decoded.args.clone())
}

#[allow(
    clippy::too_many_lines,
    reason = "long data: one struct literal per record type, field by field"
)]
fn output_record(out: &Output, clock: &Clock, extra: &Extra) -> Record {
    match out {
        Output::Blocked { process, tid, thread_comm, wait, stack } => {
            let (syscall, since_ns, args) = wait_fields(wait);
            let ts = since_ns + wait.duration_ns;
            Record::Blocked {
                time: clock.rfc3339(ts),
                ts_ns: ts,
                pid: process.pid,
                tid: *tid,
                comm: thread_comm.clone(),
                process_comm: process.comm.clone(),
                cgroup: process.cgroup.clone(),
                syscall,
                since: clock.rfc3339(since_ns),
                since_ns,
                duration_ms: wait.duration_ns / 1_000_000,
                wchan: wait.wchan.clone(),
                infinite: wait.decoded.infinite,
                summary: wait.decoded.human.clone(),
                args,
                stack: stack.as_deref().map(super::stack_json),
            }
        }
        Output::Unblocked { process, tid, thread_comm, wait, duration_ns, exact, woken_by } => {
            let (syscall, since_ns, args) = wait_fields(wait);
            let ts = since_ns + duration_ns;
            Record::Unblocked {
                time: clock.rfc3339(ts),
                ts_ns: ts,
                pid: process.pid,
                tid: *tid,
                comm: thread_comm.clone(),
                process_comm: process.comm.clone(),
                cgroup: process.cgroup.clone(),
                syscall,
                since: clock.rfc3339(since_ns),
                since_ns,
                duration_ms: duration_ns / 1_000_000,
                exact: *exact,
                woken_by_pid: woken_by.as_ref().map(|w| w.0),
                woken_by_comm: woken_by.as_ref().map(|w| w.1.clone()),
                args,
            }
        }
        Output::OomKill { ts_mono_ns, victim, process, history } => Record::OomKill {
            time: clock.rfc3339(*ts_mono_ns),
            ts_ns: *ts_mono_ns,
            pid: victim.pid,
            comm: victim
                .comm
                .clone()
                .or_else(|| process.as_ref().map(|p| p.comm.clone()))
                .unwrap_or_default(),
            cgroup: extra
                .oom_cgroup
                .clone()
                .or_else(|| process.as_ref().map(|p: &ProcessInfo| p.cgroup.clone())),
            constraint: extra.oom_constraint.clone(),
            memory_limit_bytes: extra.memory_limit_bytes,
            anon_rss_bytes: victim.anon_rss_kb.map(|k| k * 1024),
            file_rss_bytes: victim.file_rss_kb.map(|k| k * 1024),
            shmem_rss_bytes: victim.shmem_rss_kb.map(|k| k * 1024),
            total_vm_bytes: victim.total_vm_kb.map(|k| k * 1024),
            oom_score_adj: victim.oom_score_adj,
            source: "tracepoint".into(),
            victim_memory: history.as_ref().map(|h| VictimMemoryJson {
                watched_secs: (h.watched_ns as f64 / 1e7).round() / 100.0,
                samples: h.samples,
                first_rss_bytes: h.first_rss_bytes,
                last_rss_bytes: h.last_rss_bytes,
                peak_rss_bytes: h.peak_rss_bytes,
                heap_bytes: h.heap_bytes,
                growth_bytes_per_min: h.growth_bytes_per_min.map(|r| r.round()),
                rss_samples: h.rss_samples.iter().map(|&(t, rss)| [t, rss]).collect(),
            }),
        },
        Output::ProcessExit { process, ts_mono_ns, lifetime_cpu_secs } => Record::ProcessExit {
            time: clock.rfc3339(*ts_mono_ns),
            ts_ns: *ts_mono_ns,
            pid: process.pid,
            comm: process.comm.clone(),
            cgroup: process.cgroup.clone(),
            cpu_total_secs: (*lifetime_cpu_secs * 100.0).round() / 100.0,
        },
        Output::Stats { ts_mono_ns, health } => stats(health, *ts_mono_ns, clock, extra),
        Output::Memory { ts_mono_ns, process, status: m } => {
            let mem = super::memory_json(m);
            Record::Memory {
                time: clock.rfc3339(*ts_mono_ns),
                ts_ns: *ts_mono_ns,
                pid: process.pid,
                comm: process.comm.clone(),
                cgroup: process.cgroup.clone(),
                rss_bytes: m.rss,
                anon_rss_bytes: m.rss_anon,
                peak_rss_bytes: m.peak_rss,
                heap_bytes: m.heap,
                heap_peak_bytes: m.heap_peak,
                brk_grows: m.brk_grows,
                brk_shrinks: m.brk_shrinks,
                mmap_bytes: m.mmap_bytes,
                munmap_bytes: m.munmap_bytes,
                returned_bytes: m.returned_bytes,
                not_returned: m.not_returned,
                growing: m.growing,
                growth_bytes_per_min: m.growth_bytes_per_min.map(|r| r.round()),
                counted_by: mem.counted_by,
                calls: mem.calls,
                layout: mem.layout.map(Box::new),
                retained: mem.retained.map(Box::new),
            }
        }
        Output::Finding { ts_mono_ns, finding } => {
            finding_record(false, *ts_mono_ns, finding, clock)
        }
        Output::FindingResolved { ts_mono_ns, finding } => {
            finding_record(true, *ts_mono_ns, finding, clock)
        }
    }
}

fn stats(h: &Health, ts: u64, clock: &Clock, extra: &Extra) -> Record {
    Record::Stats {
        time: clock.rfc3339(ts),
        ts_ns: ts,
        events: h.kernel.events,
        events_per_sec: (h.events_per_sec * 10.0).round() / 10.0,
        lost_events: h.kernel.lost_events,
        dropped_records: extra.dropped_records,
        map_full: h.kernel.map_full,
        read_errors: h.kernel.read_errors,
        probes_failed: h
            .probes
            .iter()
            .filter(|p| !p.attached)
            .map(|p| p.name.to_string())
            .collect(),
        own_cpu_percent: (h.own_cpu_percent * 100.0).round() / 100.0,
        own_rss_bytes: h.own_rss_bytes,
        processes_tracked: extra.processes_tracked,
    }
}

/// A `finding` or `finding_resolved` record (the same fields).
fn finding_record(
    resolved: bool,
    ts: u64,
    finding: &crate::analysis::Finding,
    clock: &Clock,
) -> Record {
    let f = finding_json(finding, |ns| clock.rfc3339(ns));
    let time = clock.rfc3339(ts);
    macro_rules! build {
        ($v:ident) => {
            Record::$v {
                time,
                ts_ns: ts,
                kind: f.kind,
                severity: f.severity,
                pids: f.pids,
                tids: f.tids,
                summary: f.summary,
                since: f.since,
                since_ns: f.since_ns,
                chain: f.chain,
            }
        };
    }
    if resolved { build!(FindingResolved) } else { build!(Finding) }
}
