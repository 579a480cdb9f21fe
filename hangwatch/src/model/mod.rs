//! The model of what is stuck: processes, threads and their waits, and the derived figures
//! (how suspicious a process is). Pure data and pure functions; no I/O.

pub mod facts;
pub mod filter;
#[cfg(test)]
pub mod fixtures;
pub mod oom;

pub use filter::Filter;

use std::sync::Arc;

use crate::{memory::MemStatus, syscalls::Decoded};

/// A thread that sleeps in a system call.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub nr: i64,
    /// Shared: the same wait seen on many scans (and in many events) is decoded once.
    pub decoded: Arc<Decoded>,
    /// When the wait began, CLOCK_MONOTONIC ns.
    pub since_mono_ns: u64,
    /// How long it had lasted when observed, ns.
    pub duration_ns: u64,
    /// Kernel function the thread sleeps in (/proc wchan).
    pub wchan: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub tid: i32,
    pub comm: String,
    /// Kernel state letter (R, S, D, T, t, Z, ...).
    pub state: char,
    /// CPU used over the observation window, in clock ticks.
    pub cpu_ticks_window: u64,
    pub blocked: Option<Wait>,
    /// Kernel, native and Python stacks (docs/stacks.md), for blocked and `D` threads.
    pub stack: Option<Arc<crate::stacks::Stack>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    pub cmdline: String,
    /// `cmdline` was cut at `procfs::MAX_CMDLINE_BYTES`.
    pub cmdline_truncated: bool,
    pub cgroup: String,
    /// CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// CPU over the process's whole life, seconds.
    pub cpu_total_secs: f64,
    /// Seconds since the process started.
    pub age_secs: f64,
    pub rss_bytes: u64,
    pub threads: Vec<Thread>,
    /// Memory figures and verdicts, when sampled (docs/memory.md).
    pub memory: Option<MemStatus>,
}

impl Process {
    pub fn blocked_threads(&self) -> impl Iterator<Item = (&Thread, &Wait)> {
        self.threads.iter().filter_map(|t| t.blocked.as_ref().map(|w| (t, w)))
    }

    pub fn blocked_count(&self) -> usize {
        self.blocked_threads().count()
    }

    /// Every live thread sleeps in a reported wait.
    pub fn all_blocked(&self) -> bool {
        let live = self.threads.iter().filter(|t| t.state != 'Z' && t.state != 'X').count();
        live > 0 && self.blocked_count() == live
    }

    /// The longest wait, preferring infinite ones of equal length.
    pub fn longest_wait(&self) -> Option<(&Thread, &Wait)> {
        self.blocked_threads().max_by_key(|(_, w)| (w.duration_ns, w.decoded.infinite))
    }

    /// How likely this process is stuck rather than idle, higher is worse (0 ..= ~10).
    ///
    /// * up to 3 for the share of its threads that are blocked;
    /// * 1 if it used no CPU during the window;
    /// * 1 if its longest wait has no timeout;
    /// * up to 3 for CPU it used in its life (`2·log10(1 + 10·cpu_secs)`: 0.02 s → 0.16,
    ///   0.5 s → 1.6, 3 s and more → 3; a process that did real work and stopped is more
    ///   suspicious than a daemon that has waited for work since boot);
    /// * up to 1 for how long the longest wait has lasted (saturating at one minute);
    /// * minus 1 when the process has waited since it started (within 2 s): that is a
    ///   service waiting for its first request, not something that got stuck.
    pub fn suspicion(&self) -> f64 {
        let live = self.threads.iter().filter(|t| t.state != 'Z').count().max(1);
        let blocked = self.blocked_count();
        if blocked == 0 {
            return 0.0;
        }
        let mut s = 3.0 * blocked as f64 / live as f64;
        if self.cpu_percent < 0.05 {
            s += 1.0;
        }
        let longest = self.longest_wait();
        if longest.is_some_and(|(_, w)| w.decoded.infinite) {
            s += 1.0;
        }
        s += (2.0 * (1.0 + 10.0 * self.cpu_total_secs).log10()).min(3.0);
        if let Some((_, w)) = longest {
            let secs = w.duration_ns as f64 / 1e9;
            s += (secs / 60.0).min(1.0);
            if self.age_secs - secs < 2.0 {
                s -= 1.0;
            }
        }
        s
    }
}

/// Sorts most suspicious first; ties by longest wait, then pid (stable between runs).
pub fn rank(procs: &mut [Process]) {
    procs.sort_by(|a, b| {
        b.suspicion()
            .total_cmp(&a.suspicion())
            .then_with(|| {
                let la = a.longest_wait().map_or(0, |(_, w)| w.duration_ns);
                let lb = b.longest_wait().map_or(0, |(_, w)| w.duration_ns);
                lb.cmp(&la)
            })
            .then_with(|| a.pid.cmp(&b.pid))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{process, wait};

    #[test]
    fn hung_job_outranks_idle_daemon() {
        // A job that computed for 12 s and then hung in poll(-1) for 5 minutes.
        let hung = process(100, 12.0, 320.0, vec![Some(wait("poll", 300.0, true))]);
        // A daemon that has waited in epoll_wait since boot with almost no CPU.
        let daemon = process(50, 0.02, 86_400.0, vec![Some(wait("epoll_wait", 86_000.0, true))]);
        // Even one that used only half a second of CPU before hanging.
        let small = process(200, 0.5, 40.0, vec![Some(wait("poll", 30.0, true))]);
        let mut v = vec![daemon.clone(), small.clone(), hung.clone()];
        rank(&mut v);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![100, 200, 50]);
        assert!(hung.suspicion() > daemon.suspicion());
    }

    #[test]
    fn partly_blocked_and_busy_rank_lower() {
        let all = process(1, 5.0, 100.0, vec![Some(wait("futex", 60.0, true)); 2]);
        let half = process(2, 5.0, 100.0, vec![Some(wait("futex", 60.0, true)), None]);
        let mut busy = all.clone();
        busy.pid = 3;
        busy.cpu_percent = 50.0;
        assert!(all.suspicion() > half.suspicion());
        assert!(all.suspicion() > busy.suspicion());
        assert!(all.all_blocked());
        assert!(!half.all_blocked());
        assert_eq!(process(4, 1.0, 1.0, vec![None]).suspicion(), 0.0);
    }

    #[test]
    fn waiting_since_start_is_idle_not_stuck() {
        let since_start = process(1, 0.3, 100.0, vec![Some(wait("accept", 99.5, true))]);
        let later = process(2, 0.3, 100.0, vec![Some(wait("accept", 50.0, true))]);
        assert!(later.suspicion() > since_start.suspicion());
    }

    #[test]
    fn rank_is_stable_for_equal_scores() {
        let a = process(7, 1.0, 100.0, vec![Some(wait("poll", 10.0, true))]);
        let mut b = a.clone();
        b.pid = 3;
        let mut v = vec![a, b];
        rank(&mut v);
        assert_eq!(v[0].pid, 3);
        rank(&mut v);
        assert_eq!(v[0].pid, 3);
    }
}
