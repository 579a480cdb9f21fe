//! OOM kills as plain data, and the pure rules that merge what two sources say about one.
//!
//! Three types, one per stage, each with one job:
//! * [`OomVictimEvent`]: the `oom:mark_victim` probe's record as decoded from the ring buffer
//!   (`probes::events::decode_oom`): the kernel's fields and units (kB), pids both as the host
//!   and as hangwatch sees them. Live mode's aggregator consumes it.
//! * [`OomKill`]: one kill as hangwatch reports it, from the kernel log (`sources::kmsg`), from
//!   the probe ([`OomKill::from_tracepoint`]) or both merged ([`merge_kills`]), with the
//!   cgroup and limit read by `sources::cgroup`. The snapshot's `oom_kills` and the context
//!   of a live `oom_kill` record.
//! * [`OomFact`]: the few fields the analysis's OOM rules and live mode's list of kills need
//!   (when, which pid and parent, which cgroup and limit, the victim's anonymous RSS), made
//!   from an [`OomKill`] by [`OomKill::fact`], or by the aggregator from an [`OomVictimEvent`].
//!
//! Nothing here reads the machine: `sources::kmsg` and `sources::cgroup` do, `probes` decodes.

use crate::model::facts::OomFact;

/// An OOM victim, decoded from the raw `oom:mark_victim` record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OomVictimEvent {
    pub ts_ns: u64,
    /// The victim's pid as hangwatch sees it (in its pid namespace, when it runs in one and
    /// could translate; else the same as `host_pid`).
    pub pid: i32,
    /// The victim's pid in the initial pid namespace (the kernel log's and the record's).
    pub host_pid: i32,
    pub comm: Option<String>,
    /// The layout of older kernels carries only the pid: these are then `None`.
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i64>,
    /// The kernfs id of the victim's memory cgroup when it was chosen (the `oom_victim_memcg`
    /// probe; `None` when it is not attached or did not record this one), resolved to a path
    /// by `sources::cgroup::memory_cgroup_path`.
    pub memcg_id: Option<u64>,
    /// What the kernel log and the cgroup files said about the kill when it was read (the
    /// constraint, the victim's memory cgroup, the limit that was hit); added by live mode's
    /// collector.
    pub context: Option<Box<OomKill>>,
}

/// One OOM kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    /// When, µs on the kernel log clock (`local_clock()`, see [`boot_us_to_mono_ns`]). For a
    /// tracepoint kill this is the probe's `bpf_ktime_get_ns()` / 1000.
    pub time_boot_us: u64,
    /// The victim's pid as hangwatch sees it: in hangwatch's pid namespace when the live probe
    /// could translate it, else the host pid (kernel log kills always carry host pids).
    pub pid: i32,
    /// The victim's pid in the initial pid namespace: what the kernel log and the tracepoint
    /// record say; kills from the two sources are matched on it.
    pub host_pid: i32,
    pub comm: String,
    /// The victim's memory cgroup (`task_memcg`): the v1 memory hierarchy path on v1, the
    /// unified path on v2.
    pub cgroup: Option<String>,
    /// The cgroup whose limit was hit (`oom_memcg`); `None` for a global OOM.
    pub oom_memcg: Option<String>,
    /// "memcg", "global", "cpuset", "memory_policy", or "unknown" (no `oom-kill:` line: the
    /// kernel is older than 4.19 or the line was overwritten; tracepoint only).
    pub constraint: String,
    /// Limit and usage of the OOM *domain* (the cgroup in `oom_memcg`), from the
    /// `memory: usage ..., limit ...` line of a memcg OOM report. Not the victim's usage:
    /// that is `anon_rss_bytes` + `file_rss_bytes` + `shmem_rss_bytes`.
    pub memory_limit_bytes: Option<u64>,
    pub memory_usage_bytes: Option<u64>,
    /// The victim's memory when it was killed.
    pub anon_rss_bytes: Option<u64>,
    pub file_rss_bytes: Option<u64>,
    pub shmem_rss_bytes: Option<u64>,
    pub total_vm_bytes: Option<u64>,
    pub oom_score_adj: Option<i64>,
    pub uid: Option<u32>,
    /// "kmsg" or "tracepoint".
    pub source: &'static str,
}

impl OomKill {
    pub fn new(time_boot_us: u64, pid: i32, source: &'static str) -> Self {
        OomKill {
            time_boot_us,
            pid,
            host_pid: pid,
            comm: String::new(),
            cgroup: None,
            oom_memcg: None,
            constraint: "unknown".into(),
            memory_limit_bytes: None,
            memory_usage_bytes: None,
            anon_rss_bytes: None,
            file_rss_bytes: None,
            shmem_rss_bytes: None,
            total_vm_bytes: None,
            oom_score_adj: None,
            uid: None,
            source,
        }
    }

    /// A kill seen live by the `oom:mark_victim` probe. Older kernels' tracepoint carries
    /// only the pid: the other fields are then `None`; the constraint, cgroups and limit are
    /// never in the tracepoint (see [`merge_kills`] to add them from the kernel log).
    pub fn from_tracepoint(ev: &OomVictimEvent) -> Self {
        let kb = |v: Option<u64>| v.map(|v| v.saturating_mul(1024));
        OomKill {
            comm: ev.comm.clone().unwrap_or_default(),
            anon_rss_bytes: kb(ev.anon_rss_kb),
            file_rss_bytes: kb(ev.file_rss_kb),
            shmem_rss_bytes: kb(ev.shmem_rss_kb),
            total_vm_bytes: kb(ev.total_vm_kb),
            oom_score_adj: ev.oom_score_adj,
            uid: ev.uid,
            pid: ev.pid,
            ..OomKill::new(ev.ts_ns / 1000, ev.host_pid, "tracepoint")
        }
    }

    /// What the analysis needs of this kill. The parent is not known here (`None`).
    pub fn fact(&self) -> OomFact {
        OomFact {
            time_mono_ns: boot_us_to_mono_ns(self.time_boot_us),
            pid: self.pid,
            comm: self.comm.clone(),
            cgroup: self.cgroup.clone(),
            ppid: None,
            memory_limit_bytes: self.memory_limit_bytes,
            anon_rss_bytes: self.anon_rss_bytes,
        }
    }

    /// Fills the fields this kill lacks from `other` (the same kill from another line or
    /// source).
    pub fn fill_from(&mut self, other: &OomKill) {
        fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        if self.comm.is_empty() {
            self.comm.clone_from(&other.comm);
        }
        if self.constraint == "unknown" {
            self.constraint.clone_from(&other.constraint);
        }
        fill(&mut self.cgroup, &other.cgroup);
        fill(&mut self.oom_memcg, &other.oom_memcg);
        fill(&mut self.memory_limit_bytes, &other.memory_limit_bytes);
        fill(&mut self.memory_usage_bytes, &other.memory_usage_bytes);
        fill(&mut self.anon_rss_bytes, &other.anon_rss_bytes);
        fill(&mut self.file_rss_bytes, &other.file_rss_bytes);
        fill(&mut self.shmem_rss_bytes, &other.shmem_rss_bytes);
        fill(&mut self.total_vm_bytes, &other.total_vm_bytes);
        fill(&mut self.oom_score_adj, &other.oom_score_adj);
        fill(&mut self.uid, &other.uid);
    }
}

/// Kernel log timestamps (µs) to CLOCK_MONOTONIC ns.
///
/// /dev/kmsg stamps records with `local_clock()`, the scheduler clock (`sched_clock`), in µs
/// since boot. On x86_64 with a stable TSC this runs with CLOCK_MONOTONIC: both stop during
/// suspend, and on the reference VM they agreed within 0.4 ms (a record written to /dev/kmsg
/// read back; docs/memory.md). `bpf_ktime_get_ns()` is CLOCK_MONOTONIC. The conversion is
/// therefore the identity; it may be off by the sched_clock/monotonic drift on machines with
/// an unstable clock source and by the time spent in suspend on machines that suspend
/// (`CLOCK_BOOTTIME` counts it, neither of these does).
pub fn boot_us_to_mono_ns(us: u64) -> u64 {
    us.saturating_mul(1000)
}

/// Two lines (or sources) of one kill are at most this far apart (µs).
pub const SAME_KILL_US: u64 = 2_000_000;

/// Adds the kernel log's view of each kill to the kills seen live, and the kills only the
/// log has. A log kill is the same as a live one if it has the same pid and is at most 2 s
/// away; the live kill keeps its fields and source and gains the constraint, cgroups and
/// limit. The result is sorted by time.
pub fn merge_kills(live: Vec<OomKill>, log: Vec<OomKill>) -> Vec<OomKill> {
    let mut out = live;
    let n_live = out.len();
    for k in log {
        match out[..n_live].iter_mut().find(|o| {
            o.host_pid == k.host_pid && o.time_boot_us.abs_diff(k.time_boot_us) <= SAME_KILL_US
        }) {
            Some(o) => o.fill_from(&k),
            None => out.push(k),
        }
    }
    out.sort_by_key(|k| (k.time_boot_us, k.pid));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock() {
        assert_eq!(boot_us_to_mono_ns(1_174_806_879), 1_174_806_879_000);
        assert_eq!(boot_us_to_mono_ns(u64::MAX), u64::MAX);
    }
}
