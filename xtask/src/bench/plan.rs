//! What to run: the workloads, the tool modes each runs under, and how long and how often.

/// A triple is disturbed when other processes used more than this share of one core while one
/// of its runs was measured. Starting and reaping 10,000 threads makes the kernel itself work
/// outside the workload's accounting (RCU callbacks, kworkers: ~0.2 core measured), hence the
/// higher limit there.
pub(super) fn foreign_limit(kind: Kind) -> f64 {
    match kind {
        Kind::Blocked => 0.35,
        Kind::Rate | Kind::Idle => 0.15,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Mode {
    Off,
    Hangwatch,
    Bpftrace,
    /// `hangwatch --json --exact-memory`: the opt-in memory syscall probes (no target; the
    /// report shows what they cost).
    ExactMemory,
}

/// Workloads also run with `--exact-memory` (full bench only).
pub(super) const EXACT_MEMORY_WORKLOADS: &[&str] = &["futex", "poll0", "mmap", "brk", "madvise"];

impl Mode {
    pub(super) fn label(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Hangwatch => "hangwatch",
            Mode::Bpftrace => "bpftrace",
            Mode::ExactMemory => "exact-mem",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A loop with a rate: the slowdown is what counts.
    Rate,
    /// Nothing runs: hangwatch's own CPU is what counts.
    Idle,
    /// 10,000 threads blocked at once: hangwatch's CPU and RSS in live mode, and the burst of
    /// ring-buffer records when they are all woken.
    Blocked,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Spec {
    /// A program from xtask/bench with these leading arguments; the duration is appended.
    Bin(&'static str, &'static [&'static str]),
    /// `stress-ng --futex 1` (its rate comes from its YAML report).
    StressNgFutex,
    /// `sleep`.
    Sleep,
    /// `blocked_threads cycle N HOLD`.
    Blocked(usize),
}

pub(super) struct Workload {
    pub(super) key: &'static str,
    pub(super) title: &'static str,
    pub(super) kind: Kind,
    in_quick: bool,
    pub(super) spec: Spec,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        key: "futex",
        title: "futex wait/wake ping-pong, 2 threads on CPU 0",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("futex_pingpong", &[]),
    },
    Workload {
        key: "stress-ng-futex",
        title: "stress-ng --futex 1",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::StressNgFutex,
    },
    Workload {
        key: "poll0",
        title: "poll(pipe, 1, 0) loop",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("poll_loop", &["poll0"]),
    },
    Workload {
        key: "poll1ms",
        title: "poll(pipe, 1, 1 ms) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["poll1ms"]),
    },
    Workload {
        key: "epoll0",
        title: "epoll_wait(.., 0) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["epoll0"]),
    },
    Workload {
        key: "epoll1ms",
        title: "epoll_wait(.., 1 ms) loop",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("poll_loop", &["epoll1ms"]),
    },
    Workload {
        key: "mmap",
        title: "mmap/munmap 64 KiB churn",
        kind: Kind::Rate,
        in_quick: true,
        spec: Spec::Bin("mem_churn", &["mmap"]),
    },
    Workload {
        key: "brk",
        title: "brk grow/shrink 64 KiB churn",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("mem_churn", &["brk"]),
    },
    Workload {
        key: "madvise",
        title: "madvise(DONTNEED) 64 KiB churn",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("mem_churn", &["madvise"]),
    },
    Workload {
        key: "fork-exec",
        title: "fork + exec /bin/true + wait",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("task_churn", &["fork_exec"]),
    },
    Workload {
        key: "threads",
        title: "pthread create + exit + join",
        kind: Kind::Rate,
        in_quick: false,
        spec: Spec::Bin("task_churn", &["thread"]),
    },
    Workload {
        key: "idle",
        title: "idle node (sleep)",
        kind: Kind::Idle,
        in_quick: true,
        spec: Spec::Sleep,
    },
    Workload {
        key: "blocked-10k",
        title: "10,000 threads blocked, then woken at once",
        kind: Kind::Blocked,
        in_quick: false,
        spec: Spec::Blocked(10_000),
    },
];

/// How long and how often.
pub(super) struct Plan {
    pub(super) quick: bool,
    /// Triples wanted per workload.
    pub(super) reps: usize,
    /// Extra triples allowed per workload to replace disturbed ones.
    pub(super) extra: usize,
    /// Length of one run of a rate workload.
    pub(super) secs: f64,
    /// Length of one idle run.
    pub(super) idle_secs: f64,
    /// How long the 10,000 threads stay blocked in one run.
    pub(super) hold_secs: f64,
    /// Length of the bpf_stats runs.
    pub(super) probe_secs: f64,
    /// Which workloads get bpf_stats runs.
    pub(super) probe_workloads: &'static [&'static str],
    /// Blocked thread counts for the snapshot timing.
    pub(super) snapshot_counts: &'static [usize],
    pub(super) snapshot_reps: usize,
    /// `HANGWATCH_BENCH_ONLY=key,key`: only these workloads (`snapshot` for the snapshot
    /// timing).
    pub(super) only: Option<Vec<String>>,
}

impl Plan {
    pub(super) fn new(quick: bool) -> Self {
        let only = std::env::var("HANGWATCH_BENCH_ONLY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect());
        let mut plan = Self::standard(quick);
        plan.only = only;
        plan
    }

    fn standard(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                reps: 3,
                extra: 0,
                secs: 1.5,
                idle_secs: 1.5,
                hold_secs: 0.0,
                probe_secs: 1.0,
                probe_workloads: &["futex"],
                snapshot_counts: &[],
                snapshot_reps: 0,
                only: None,
            }
        } else {
            Plan {
                quick,
                reps: 5,
                extra: 2,
                secs: 2.0,
                idle_secs: 4.0,
                hold_secs: 3.0,
                probe_secs: 1.0,
                probe_workloads: &[
                    "futex",
                    "stress-ng-futex",
                    "poll0",
                    "mmap",
                    "fork-exec",
                    "threads",
                    "idle",
                    "blocked-10k",
                ],
                snapshot_counts: &[0, 1_000, 5_000, 10_000],
                snapshot_reps: 3,
                only: None,
            }
        }
    }

    pub(super) fn workloads(&self) -> impl Iterator<Item = &'static Workload> + '_ {
        WORKLOADS.iter().filter(|w| !self.quick || w.in_quick).filter(|w| self.selected(w.key))
    }

    pub(super) fn selected(&self, key: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|k| k == key))
    }

    pub(super) fn duration(&self, w: &Workload) -> f64 {
        match w.kind {
            Kind::Rate => self.secs,
            Kind::Idle => self.idle_secs,
            Kind::Blocked => self.hold_secs,
        }
    }
}
