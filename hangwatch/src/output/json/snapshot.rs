//! The `hangwatch snapshot --json` document: one [`SnapshotJson`] per run.

use serde::{Deserialize, Serialize};

use super::{FindingJson, MemoryJson, StackJson, finding_json, memory_json, stack_json};
use crate::fmt::rfc3339;
use crate::{
    model::{self, oom::OomKill},
    snapshot::Report,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotJson {
    pub version: String,
    pub time: String,
    /// CLOCK_MONOTONIC ns of `time`.
    pub ts_ns: u64,
    pub hostname: String,
    pub kernel: String,
    pub window_ms: u64,
    pub min_blocked_ms: u64,
    pub processes: Vec<ProcessJson>,
    /// Diagnoses, most severe first (docs/findings.md).
    pub findings: Vec<FindingJson>,
    /// Processes not listed (no blocked thread, or filtered out).
    pub hidden_processes: usize,
    pub ended_waits: Vec<EndedWaitJson>,
    /// OOM kills known from the kernel log (and the live probe during the window).
    pub oom_kills: Vec<OomKillJson>,
    /// `oom_kill` counters of the cgroups involved (memory.events / memory.oom_control).
    pub cgroup_oom_kills: Vec<CgroupOomJson>,
    pub probes: Vec<ProbeJson>,
    pub stats: StatsJson,
    /// What could not be read for lack of permission (docs/security.md). Empty when nothing was
    /// denied; never left out, so that "nothing found" and "not allowed to look" differ.
    pub warnings: Vec<WarningJson>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WarningJson {
    /// The permission that would allow the read.
    pub missing: String,
    /// What could not be read.
    pub what: String,
    /// What the report lacks because of it.
    pub consequence: String,
    /// How many threads could not be read, when countable.
    pub count: Option<u64>,
    /// The same as one line.
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CgroupOomJson {
    pub cgroup: String,
    pub oom_kills: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OomKillJson {
    pub time: String,
    pub ts_ns: u64,
    pub pid: i32,
    pub comm: String,
    pub cgroup: Option<String>,
    pub oom_memcg: Option<String>,
    pub constraint: String,
    pub memory_limit_bytes: Option<u64>,
    pub memory_usage_bytes: Option<u64>,
    pub anon_rss_bytes: Option<u64>,
    pub file_rss_bytes: Option<u64>,
    pub shmem_rss_bytes: Option<u64>,
    pub total_vm_bytes: Option<u64>,
    pub oom_score_adj: Option<i64>,
    pub uid: Option<u32>,
    pub source: String,
}

pub fn oom_kill_json(k: &OomKill, wall: impl Fn(u64) -> String) -> OomKillJson {
    let ts = crate::model::oom::boot_us_to_mono_ns(k.time_boot_us);
    OomKillJson {
        time: wall(ts),
        ts_ns: ts,
        pid: k.pid,
        comm: k.comm.clone(),
        cgroup: k.cgroup.clone(),
        oom_memcg: k.oom_memcg.clone(),
        constraint: k.constraint.clone(),
        memory_limit_bytes: k.memory_limit_bytes,
        memory_usage_bytes: k.memory_usage_bytes,
        anon_rss_bytes: k.anon_rss_bytes,
        file_rss_bytes: k.file_rss_bytes,
        shmem_rss_bytes: k.shmem_rss_bytes,
        total_vm_bytes: k.total_vm_bytes,
        oom_score_adj: k.oom_score_adj,
        uid: k.uid,
        source: k.source.to_string(),
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessJson {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    pub cmdline: String,
    /// The command line was longer than the read bound and `cmdline` is its beginning.
    pub cmdline_truncated: bool,
    pub cgroup: String,
    pub cpu_percent: f64,
    pub cpu_total_secs: f64,
    pub age_secs: f64,
    pub rss_bytes: u64,
    pub blocked_threads: usize,
    pub all_blocked: bool,
    pub suspicion: f64,
    pub memory: Option<MemoryJson>,
    pub threads: Vec<ThreadJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadJson {
    pub tid: i32,
    pub comm: String,
    pub state: String,
    pub blocked: Option<BlockedJson>,
    /// Only on threads whose stack was read (docs/stacks.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedJson {
    pub syscall: String,
    pub syscall_nr: i64,
    pub since: String,
    pub since_ns: u64,
    pub duration_ms: u64,
    pub wchan: Option<String>,
    pub infinite: bool,
    pub summary: String,
    pub args: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndedWaitJson {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub duration_ms: u64,
    pub ended: String,
    pub woken_by_pid: i32,
    pub woken_by_comm: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeJson {
    pub name: String,
    pub attached: bool,
    pub reason: Option<String>,
    pub impact: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsJson {
    pub lost_events: u64,
    pub events: u64,
    pub map_full: u64,
    pub read_errors: u64,
    pub probes_failed: usize,
    pub processes_scanned: usize,
    pub threads_scanned: usize,
    pub vanished_processes: usize,
    pub scan_ms: u64,
    /// Stack reading (docs/stacks.md): threads read, served from the cache, left out by the
    /// time budget, with an error; ELF files parsed; time spent.
    #[serde(default)]
    pub stacks_read: u64,
    #[serde(default)]
    pub stacks_cached: u64,
    #[serde(default)]
    pub stacks_over_budget: u64,
    #[serde(default)]
    pub stacks_with_error: u64,
    #[serde(default)]
    pub modules_parsed: u64,
    #[serde(default)]
    pub stacks_ms: u64,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn blocked_json(r: &Report, w: &model::Wait) -> BlockedJson {
    BlockedJson {
        syscall: w.decoded.syscall.clone(),
        syscall_nr: w.nr,
        since: rfc3339(r.wall(w.since_mono_ns)),
        since_ns: w.since_mono_ns,
        duration_ms: w.duration_ns / 1_000_000,
        wchan: w.wchan.clone(),
        infinite: w.decoded.infinite,
        summary: w.decoded.human.clone(),
        args: w.decoded.args.clone(),
    }
}

pub fn process_json(r: &Report, p: &model::Process) -> ProcessJson {
    ProcessJson {
        pid: p.pid,
        ppid: p.ppid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        cmdline_truncated: p.cmdline_truncated,
        cgroup: p.cgroup.clone(),
        cpu_percent: round2(p.cpu_percent),
        cpu_total_secs: round2(p.cpu_total_secs),
        age_secs: round2(p.age_secs),
        rss_bytes: p.rss_bytes,
        blocked_threads: p.blocked_count(),
        all_blocked: p.all_blocked(),
        suspicion: round2(p.suspicion()),
        memory: p.memory.as_ref().map(memory_json),
        threads: p
            .threads
            .iter()
            .map(|t| ThreadJson {
                tid: t.tid,
                comm: t.comm.clone(),
                state: t.state.to_string(),
                blocked: t.blocked.as_ref().map(|w| blocked_json(r, w)),
                stack: t.stack.as_deref().map(stack_json),
            })
            .collect(),
    }
}

pub fn snapshot_json(r: &Report) -> SnapshotJson {
    SnapshotJson {
        version: env!("CARGO_PKG_VERSION").to_string(),
        time: rfc3339(r.time),
        ts_ns: r.mono_ns,
        hostname: r.hostname.clone(),
        kernel: r.kernel.clone(),
        window_ms: r.window.as_millis() as u64,
        min_blocked_ms: r.min_blocked.as_millis() as u64,
        processes: r.processes.iter().map(|p| process_json(r, p)).collect(),
        findings: r.findings.iter().map(|f| finding_json(f, |ns| rfc3339(r.wall(ns)))).collect(),
        hidden_processes: r.hidden,
        ended_waits: r
            .ended_waits
            .iter()
            .map(|e| EndedWaitJson {
                pid: e.pid,
                tid: e.tid,
                comm: e.comm.clone(),
                syscall: e.syscall.clone(),
                duration_ms: e.duration_ns / 1_000_000,
                ended: rfc3339(r.wall(e.end_mono_ns)),
                woken_by_pid: e.waker_pid,
                woken_by_comm: e.waker_comm.clone(),
            })
            .collect(),
        oom_kills: r.oom_kills.iter().map(|k| oom_kill_json(k, |ns| rfc3339(r.wall(ns)))).collect(),
        cgroup_oom_kills: r
            .cgroup_oom_counters
            .iter()
            .map(|(c, n)| CgroupOomJson { cgroup: c.clone(), oom_kills: *n })
            .collect(),
        probes: r
            .probes
            .iter()
            .map(|p| ProbeJson {
                name: p.name.to_string(),
                attached: p.attached,
                reason: p.reason.clone(),
                impact: p.impact.to_string(),
            })
            .collect(),
        stats: StatsJson {
            lost_events: r.stats.kernel.lost_events,
            events: r.stats.kernel.events,
            map_full: r.stats.kernel.map_full,
            read_errors: r.stats.kernel.read_errors,
            probes_failed: r.probes.iter().filter(|p| !p.attached).count(),
            processes_scanned: r.stats.processes_scanned,
            threads_scanned: r.stats.threads_scanned,
            vanished_processes: r.stats.vanished,
            scan_ms: r.stats.scan_ms,
            stacks_read: r.stats.stacks.stacks_read,
            stacks_cached: r.stats.stacks.stacks_cached,
            stacks_over_budget: r.stats.stacks.stacks_over_budget,
            stacks_with_error: r.stats.stacks.stacks_with_error,
            modules_parsed: r.stats.stacks.modules_parsed,
            stacks_ms: r.stats.stacks.stacks_ms,
        },
        warnings: r
            .limitations
            .iter()
            .map(|l| WarningJson {
                missing: l.missing.clone(),
                what: l.what.clone(),
                consequence: l.consequence.clone(),
                count: l.count,
                message: l.message(),
            })
            .collect(),
    }
}
