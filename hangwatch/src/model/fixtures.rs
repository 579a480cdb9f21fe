//! Builders of model values for unit tests: the one copy every module's tests use (the model,
//! the analysis, the sources, the report, the TUI). Each sets what its arguments say and a
//! plain default for the rest; a test changes the field it is about.

use std::sync::Arc;

use super::{Process, Thread, Wait};

/// A wait in `syscall` that has lasted `secs` when observed (it began at 0 on the monotonic
/// clock: set `since_mono_ns` when a test's clock matters), decoded as a bare call
/// ([`crate::syscalls::testing::bare`]), sleeping in `poll_schedule_timeout`.
pub fn wait(syscall: &str, secs: f64, infinite: bool) -> Wait {
    Wait {
        nr: 7,
        decoded: Arc::new(crate::syscalls::testing::bare(syscall, infinite)),
        since_mono_ns: 0,
        duration_ns: (secs * 1e9) as u64,
        wchan: Some("poll_schedule_timeout".into()),
    }
}

/// A thread: sleeping (`S`) in `blocked`, or running (`R`) without one.
pub fn thread(tid: i32, comm: &str, blocked: Option<Wait>) -> Thread {
    Thread {
        tid,
        comm: comm.into(),
        state: if blocked.is_some() { 'S' } else { 'R' },
        cpu_ticks_window: 0,
        blocked,
        stack: None,
    }
}

/// Process `pid` (named `p{pid}`, child of 1, in cgroup `/`) that used `cpu_total` seconds of
/// CPU in its life of `age` seconds, with one thread per entry of `waits` (tids `pid`,
/// `pid + 1` ..., named `t`).
pub fn process(pid: i32, cpu_total: f64, age: f64, waits: Vec<Option<Wait>>) -> Process {
    let threads =
        waits.into_iter().enumerate().map(|(i, w)| thread(pid + i as i32, "t", w)).collect();
    Process {
        cpu_total_secs: cpu_total,
        age_secs: age,
        ..bare_process(pid, &format!("p{pid}"), threads)
    }
}

/// A system service `comm` as the TUI shows one: `/usr/bin/{comm} --serve` in
/// `/system.slice/{comm}.service`, two hours old, 10 MiB resident, with these threads.
pub fn service(pid: i32, comm: &str, threads: Vec<Thread>) -> Process {
    Process {
        cmdline: format!("/usr/bin/{comm} --serve"),
        cgroup: format!("/system.slice/{comm}.service"),
        age_secs: 7_200.0,
        rss_bytes: 10 << 20,
        ..bare_process(pid, comm, threads)
    }
}

fn bare_process(pid: i32, comm: &str, threads: Vec<Thread>) -> Process {
    Process {
        pid,
        ppid: 1,
        comm: comm.into(),
        cmdline: String::new(),
        cmdline_truncated: false,
        cgroup: "/".into(),
        cpu_percent: 0.0,
        cpu_total_secs: 0.0,
        age_secs: 0.0,
        rss_bytes: 0,
        threads,
        memory: None,
    }
}
