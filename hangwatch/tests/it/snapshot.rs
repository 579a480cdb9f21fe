//! `hangwatch snapshot --json` against real processes that really block.
//!
//! Every test holds `common::serial()` for its whole length: snapshots attach
//! BPF programs, and the timing checks must not share the CPUs with another
//! test's busy loop. Needs root; without it each test says SKIPPED and
//! returns.

use crate::common;

use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How far `since` and `duration_ms` may be from what the test measured.
const TOLERANCE_MS: f64 = 500.0;

/// For the "blocked for a while" tests: how long to wait after the ready line
/// before snapshotting with `--min-blocked 500ms`.
const SETTLE: Duration = Duration::from_millis(700);

/// Snapshot of one program with `--pid` and `--min-blocked 500ms`, after it
/// has been in position for [`SETTLE`].
fn settled_snapshot(serial: &Serial, child: &Child) -> Snapshot {
    child.wait_since_ready(SETTLE);
    snapshot(serial, &["--pid", &child.pid_arg(), "--min-blocked", "500ms"])
}

/// The listed process of `child`, checked for shape and identity.
fn program_process<'a>(snap: &'a Value, child: &Child) -> &'a Value {
    let p = find_process(snap, child.pid);
    assert_process_shape(p);
    assert_is_program(p, child);
    p
}

/// The main thread's `blocked`, which must be non-null, plus common checks:
/// syscall name, thread state S, and wchan equal to what /proc says now.
fn blocked_main<'a>(snap: &'a Value, child: &Child, syscall: &str) -> &'a Value {
    let p = program_process(snap, child);
    let t = find_thread(p, child.pid.into());
    let b = expect_blocked(t);
    assert_eq!(
        str_field(b, "syscall"),
        syscall,
        "syscall of {} (pid {}):\n{}",
        child.name,
        child.pid,
        excerpt(t)
    );
    assert_eq!(
        str_field(t, "state"),
        "S",
        "state of {} (pid {}):\n{}",
        child.name,
        child.pid,
        excerpt(t)
    );
    let wchan = expected_wchan(&child.wchan(child.pid.into()));
    assert_eq!(
        b["wchan"],
        wchan,
        "wchan should match /proc/{}/task/{}/wchan:\n{}",
        child.pid,
        child.pid,
        excerpt(t)
    );
    b
}

/// `timeout_ms: null` and `infinite: true`.
fn assert_infinite(args: &Value) {
    assert!(bool_field(args, "infinite"), "`infinite` should be true:\n{}", excerpt(args));
    assert!(
        field(args, "timeout_ms").is_null(),
        "`timeout_ms` should be null for an infinite wait:\n{}",
        excerpt(args)
    );
}

fn assert_not_blocked(p: &Value, child: &Child) {
    for t in threads(p) {
        assert!(
            field(t, "blocked").is_null(),
            "{} (pid {}) never blocks for long, yet a thread is reported blocked:\n{}",
            child.name,
            child.pid,
            excerpt(p)
        );
    }
}

#[test]
fn futex_wait_started_before_hangwatch() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("futex_wait");
    let worker = child.fact_i64("tid");
    assert_eq!(
        child.tids(),
        vec![i64::from(child.pid), worker],
        "futex_wait should have exactly two threads"
    );

    // Both threads block before hangwatch exists: only what the kernel kept
    // (or /proc) can tell when they started.
    child.wait_since_ready(Duration::from_millis(3500));
    let snap = snapshot(&serial, &["--pid", &child.pid_arg(), "--min-blocked", "500ms"]);
    let json = &snap.json;
    let p = program_process(json, &child);
    assert_eq!(threads(p).len(), 2, "futex_wait has two threads:\n{}", excerpt(p));

    // `time` is when the snapshot was taken, the instant `duration_ms` is
    // measured at. It must lie within the run.
    let taken = snap.time();
    let slack = 1000.0;
    assert!(
        ms_between(taken, snap.run.started) >= -slack
            && ms_between(snap.run.finished, taken) >= -slack,
        "`time` {} is outside the run ({:?} .. {:?})",
        str_field(json, "time"),
        snap.run.started,
        snap.run.finished
    );
    let truth_ms = ms_between(taken, child.ready_wall);

    // The two threads wait on different CPUs when there are two (see
    // futex_wait.c): start times must be right for both.
    for (tid, uaddr_key, cpu_key) in
        [(i64::from(child.pid), "main_uaddr", "main_cpu"), (worker, "worker_uaddr", "worker_cpu")]
    {
        let cpu = child.fact(cpu_key);
        let t = find_thread(p, tid);
        let b = expect_blocked(t);
        assert_eq!(str_field(b, "syscall"), "futex", "tid {tid}:\n{}", excerpt(t));
        assert_eq!(str_field(t, "state"), "S", "tid {tid}:\n{}", excerpt(t));
        assert_eq!(
            b["wchan"],
            expected_wchan(&child.wchan(tid)),
            "tid {tid}: wchan should match /proc:\n{}",
            excerpt(t)
        );

        let args = args_of(b);
        let op = str_field(args, "op");
        assert_eq!(
            op,
            "WAIT",
            "FUTEX_WAIT_PRIVATE is op WAIT (private flag separate), tid {tid}:\n{}",
            excerpt(t)
        );
        assert!(
            bool_field(args, "private"),
            "FUTEX_WAIT_PRIVATE should give private: true, tid {tid}:\n{}",
            excerpt(t)
        );
        assert_infinite(args);
        let uaddr = str_field(args, "uaddr");
        assert_eq!(
            parse_hex(uaddr),
            Some(child.fact_hex(uaddr_key)),
            "tid {tid}: uaddr {uaddr:?} should be the futex word's address {}:\n{}",
            child.fact(uaddr_key),
            excerpt(t)
        );

        let since = rfc3339(str_field(b, "since"));
        let since_err = ms_between(since, child.ready_wall);
        let duration = f64_field(b, "duration_ms");
        eprintln!(
            "tid {tid} (CPU {cpu}): since {since_err:+.1} ms from ready; duration_ms {duration:.1} vs {truth_ms:.1} measured ({:+.1})",
            duration - truth_ms
        );
        assert!(
            since_err.abs() <= TOLERANCE_MS,
            "tid {tid} (slept on CPU {cpu}): `since` is {since_err:+.0} ms from when the wait began (ready line):\n{}",
            excerpt(t)
        );
        assert!(
            duration >= 3000.0,
            "tid {tid}: blocked since well over 3 s, duration_ms = {duration}:\n{}",
            excerpt(t)
        );
        assert!(
            (duration - truth_ms).abs() <= TOLERANCE_MS,
            "tid {tid} (slept on CPU {cpu}): duration_ms {duration} but the wait began {truth_ms:.0} ms before `time`:\n{}",
            excerpt(t)
        );
    }
}

#[test]
fn poll_on_socket() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("poll_socket");
    let fd = child.fact_i64("fd");
    let target = format!("socket:[{}]", child.fact("ino"));
    assert_eq!(child.fd_target(fd), target, "the program's fd {fd}");

    let snap = settled_snapshot(&serial, &child);
    let b = blocked_main(&snap.json, &child, child.fact("syscall"));
    let args = args_of(b);
    assert_infinite(args);
    assert_eq!(i64_field(args, "nfds"), 1, "nfds:\n{}", excerpt(b));
    let fds = array_field(args, "fds");
    assert_eq!(fds.len(), 1, "one pollfd:\n{}", excerpt(b));
    assert_eq!(i64_field(&fds[0], "fd"), fd, "fds[0].fd:\n{}", excerpt(b));
    assert_eq!(str_field(&fds[0], "target"), target, "fds[0].target:\n{}", excerpt(b));
    let events = field(&fds[0], "events");
    let has_pollin = match events {
        Value::Number(n) => n.as_u64().is_some_and(|e| e & libc::POLLIN as u64 != 0),
        Value::String(s) => s.to_uppercase().contains("IN"),
        Value::Array(a) => {
            a.iter().any(|e| e.as_str().is_some_and(|s| s.to_uppercase().contains("IN")))
        }
        _ => false,
    };
    assert!(has_pollin, "fds[0].events should say POLLIN:\n{}", excerpt(b));
}

#[test]
fn epoll_wait_on_pipe() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("epoll_wait");
    let epfd = child.fact_i64("epfd");

    let snap = settled_snapshot(&serial, &child);
    // The program calls the raw syscall it names on its ready line
    // (epoll_wait on x86_64), so the name must match exactly.
    let b = blocked_main(&snap.json, &child, child.fact("syscall"));
    let args = args_of(b);
    assert_infinite(args);
    assert_eq!(i64_field(args, "epfd"), epfd, "epfd:\n{}", excerpt(b));
    assert_eq!(i64_field(args, "maxevents"), 8, "maxevents:\n{}", excerpt(b));
    let target = str_field(args, "target");
    assert_eq!(
        target,
        child.fd_target(epfd),
        "target should be what /proc/<pid>/fd/<epfd> says:\n{}",
        excerpt(b)
    );
    assert!(target.contains("eventpoll"), "epfd target {target:?}");
}

#[test]
fn wait4_on_child() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("wait4_child");
    let grandchild = child.fact_i64("child");

    let snap = settled_snapshot(&serial, &child);
    let b = blocked_main(&snap.json, &child, child.fact("syscall"));
    let args = args_of(b);
    assert_eq!(
        i64_field(args, "pid"),
        grandchild,
        "args.pid should be the child waited for:\n{}",
        excerpt(b)
    );
    field(args, "options");
}

#[test]
fn write_to_full_pipe() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("pipe_full_write");
    let fd = child.fact_i64("fd");
    let target = format!("pipe:[{}]", child.fact("ino"));
    assert_eq!(child.fd_target(fd), target, "the program's write fd {fd}");

    let snap = settled_snapshot(&serial, &child);
    let b = blocked_main(&snap.json, &child, "write");
    let args = args_of(b);
    assert_eq!(i64_field(args, "fd"), fd, "fd:\n{}", excerpt(b));
    assert_eq!(str_field(args, "target"), target, "target:\n{}", excerpt(b));
    assert_eq!(u64_field(args, "count"), 4096, "count:\n{}", excerpt(b));
}

#[test]
fn futex_storm_is_not_blocked() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let mut child = Child::spawn("futex_storm");
    child.wait_since_ready(Duration::from_millis(1500));
    // Default --min-blocked (1s): hundreds of thousands of short waits a
    // second must not add up to, or be mistaken for, one long wait.
    let json = snapshot_json(&serial, &["--pid", &child.pid_arg()]);
    child.assert_alive();
    let p = program_process(&json, &child);
    assert_eq!(threads(p).len(), 2, "futex_storm has two threads:\n{}", excerpt(p));
    assert_not_blocked(p, &child);
    u64_field(field(&json, "stats"), "lost_events");
}

#[test]
fn cpu_burn_is_not_blocked() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let mut child = Child::spawn("cpu_burn");
    child.wait_since_ready(Duration::from_millis(1500));
    let json = snapshot_json(&serial, &["--pid", &child.pid_arg()]);
    child.assert_alive();
    let p = program_process(&json, &child);
    assert_eq!(threads(p).len(), 1, "cpu_burn has one thread:\n{}", excerpt(p));
    assert_not_blocked(p, &child);
    let t = find_thread(p, child.pid.into());
    assert_eq!(str_field(t, "state"), "R", "a busy loop is always runnable:\n{}", excerpt(t));
    // One busy thread is ~100% of one CPU on an idle machine, but it gets far less on a loaded
    // one (other test binaries, CI neighbours), so only "it visibly used CPU in the window" is
    // asserted: a figure of time never decides pass or fail.
    let cpu = f64_field(p, "cpu_percent");
    assert!(cpu >= 1.0, "a busy loop should show CPU use, cpu_percent = {cpu}:\n{}", excerpt(p));
}

#[test]
fn min_blocked_filters_short_waits() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("futex_wait");
    let worker = child.fact_i64("tid");
    child.wait_since_ready(Duration::from_millis(1200));

    // With --pid the process is listed, but waits shorter than
    // --min-blocked are not reported: `blocked` is null.
    let json = snapshot_json(&serial, &["--pid", &child.pid_arg(), "--min-blocked", "1h"]);
    let p = program_process(&json, &child);
    for tid in [i64::from(child.pid), worker] {
        let t = find_thread(p, tid);
        assert!(
            field(t, "blocked").is_null(),
            "tid {tid} waited far less than 1h:\n{}",
            excerpt(t)
        );
    }

    // Control: the same waits are reported with a lower threshold.
    let json = snapshot_json(&serial, &["--pid", &child.pid_arg(), "--min-blocked", "500ms"]);
    let p = program_process(&json, &child);
    for tid in [i64::from(child.pid), worker] {
        let b = expect_blocked(find_thread(p, tid));
        assert_eq!(str_field(b, "syscall"), "futex", "tid {tid}:\n{}", excerpt(b));
    }
}

#[test]
fn default_lists_blocked_processes_only() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let waiter = Child::spawn("futex_wait");
    let burner = Child::spawn("cpu_burn");
    thread::sleep(Duration::from_millis(1500));

    let json = snapshot_json(&serial, &["--min-blocked", "500ms"]);
    let p = program_process(&json, &waiter);
    let b = expect_blocked(find_thread(p, waiter.pid.into()));
    assert_eq!(str_field(b, "syscall"), "futex", "{}", excerpt(p));
    assert!(
        !listed_pids(&json).contains(&burner.pid.into()),
        "cpu_burn (pid {}) has no blocked thread and should not be listed without --all/--pid:\n{}",
        burner.pid,
        excerpt(&json)
    );
    for p in processes(&json) {
        assert!(
            threads(p).iter().any(|t| !field(t, "blocked").is_null()),
            "without --all/--pid only processes with a blocked thread are listed:\n{}",
            excerpt(p)
        );
    }

    let json = snapshot_json(&serial, &["--all", "--min-blocked", "500ms"]);
    let p = program_process(&json, &burner);
    assert_not_blocked(p, &burner);
    program_process(&json, &waiter);
    let me = i32::try_from(std::process::id()).expect("pid fits in i32");
    find_process(&json, me);
}

#[test]
fn comm_filter() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let waiter = Child::spawn("futex_wait");
    let other = Child::spawn("poll_socket");
    thread::sleep(Duration::from_millis(1200));

    let json = snapshot_json(&serial, &["--comm", "futex_wait", "--min-blocked", "500ms"]);
    program_process(&json, &waiter);
    for p in processes(&json) {
        assert!(
            str_field(p, "comm").contains("futex_wait"),
            "--comm futex_wait listed another process:\n{}",
            excerpt(p)
        );
    }
    assert!(
        !listed_pids(&json).contains(&other.pid.into()),
        "poll_socket listed despite --comm futex_wait"
    );
}

#[test]
fn several_pids_are_each_listed() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let poller = Child::spawn("poll_socket");
    let burner = Child::spawn("cpu_burn");
    poller.wait_since_ready(SETTLE);

    let json = snapshot_json(
        &serial,
        &["--pid", &poller.pid_arg(), "--pid", &burner.pid_arg(), "--min-blocked", "500ms"],
    );
    let mut pids = listed_pids(&json);
    pids.sort_unstable();
    let mut want = vec![i64::from(poller.pid), i64::from(burner.pid)];
    want.sort_unstable();
    assert_eq!(pids, want, "--pid selects exactly those processes:\n{}", excerpt(&json));
    blocked_main(&json, &poller, poller.fact("syscall"));
    assert_not_blocked(program_process(&json, &burner), &burner);
}

#[test]
fn top_level_fields() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("futex_wait");
    let before = user_pids();
    let snap = snapshot(&serial, &["--all", "--window", "500ms"]);
    let after = user_pids();
    let json = &snap.json;

    assert!(!str_field(json, "version").is_empty(), "empty version:\n{}", excerpt(json));
    assert_eq!(str_field(json, "hostname"), hostname(), "hostname");
    assert_eq!(u64_field(json, "window_ms"), 500, "window_ms with --window 500ms");
    assert!(
        snap.run.elapsed >= Duration::from_millis(500),
        "a 500ms window took only {:?}",
        snap.run.elapsed
    );
    let taken = snap.time();
    assert!(
        ms_between(taken, snap.run.started) >= -1000.0
            && ms_between(snap.run.finished, taken) >= -1000.0,
        "`time` {} is outside the run",
        str_field(json, "time")
    );
    let stats = field(json, "stats");
    assert!(stats.is_object(), "stats:\n{}", excerpt(json));
    u64_field(stats, "lost_events");

    // --all: every user process that lived through the whole run (however few
    // the machine has), each well-formed (zombies and odd comms included);
    // kernel threads are left out (docs/snapshot.md).
    let listed: std::collections::HashSet<i64> = listed_pids(json).into_iter().collect();
    let missing: Vec<i64> =
        before.intersection(&after).filter(|pid| !listed.contains(pid)).copied().collect();
    assert!(missing.is_empty(), "--all left out live processes {missing:?}:\n{}", excerpt(json));
    let kthreads: Vec<i64> = listed.iter().filter(|&&pid| is_kernel_thread(pid)).copied().collect();
    assert!(kthreads.is_empty(), "--all listed kernel threads {kthreads:?}");
    for p in processes(json) {
        assert_process_shape(p);
    }
    program_process(json, &child);
    find_process(json, 1);
}

/// Pids of the user processes in /proc now (kernel threads have `PF_KTHREAD` in stat's flags).
fn user_pids() -> std::collections::HashSet<i64> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|&pid| !is_kernel_thread(pid) && std::fs::metadata(format!("/proc/{pid}")).is_ok())
        .collect()
}

/// Whether `pid` is a kernel thread; false if it has gone.
fn is_kernel_thread(pid: i64) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the comm (which may hold spaces and parentheses): state is field 3, flags 9.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return false;
    };
    rest.split(' ').nth(6).and_then(|f| f.parse::<u64>().ok()).is_some_and(|f| f & PF_KTHREAD != 0)
}
