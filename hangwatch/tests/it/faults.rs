//! Faults: signals, stdout that is closed, full, broken or stalled, scarce fds, no tracefs,
//! SIGKILL, two instances, and reduced privileges. Each checks the exit code and the one line
//! documented in docs/snapshot.md ("Exit codes") and docs/security.md.

use crate::common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::faults::*;
use common::*;
use serde_json::Value;

/// The exit status of live mode stopped by SIGINT/SIGTERM (docs/json.md).
const STOPPED: i32 = 0;

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
    unsafe { libc::kill(pid, sig) };
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

#[test]
fn sigint_at_random_moments_always_stops_live_json() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let mut rng = Rng::from_clock();
    eprintln!("seed {}", rng.0);
    for i in 0..20 {
        // From just after exec (while the probes load) to well into the stream.
        let delay = Duration::from_millis(rng.range(30, 2500));
        let mut child = Command::new(hangwatch_bin())
            .args(["--json", "--interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hangwatch");
        thread::sleep(delay);
        let sent = Instant::now();
        kill(child.id() as i32, libc::SIGINT);
        let status = wait_exit(&mut child, Duration::from_secs(5));
        let err = stderr_of(&mut child);
        let status = status.unwrap_or_else(|| {
            panic!("run {i}: SIGINT {delay:?} after start was lost (no exit within 5 s): {err}")
        });
        assert_eq!(status.code(), Some(STOPPED), "run {i}, SIGINT after {delay:?}: {status} {err}");
        assert!(sent.elapsed() < Duration::from_secs(3), "run {i}: took {:?}", sent.elapsed());
    }
}

/// A pipe whose reader never reads: hangwatch's writes block once it is full.
fn stalled_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both fds were just created and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The smallest pipe (one page) fills within the first records.
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    (r, w)
}

/// Whether some thread of `pid` is blocked writing to a pipe.
fn writing_to_pipe(pid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    rd.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("pipe_write"))
    })
}

#[test]
fn sigterm_and_sigint_are_acted_on_while_stdout_is_stalled() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (_reader, writer) = stalled_pipe();
        let mut child = Command::new(hangwatch_bin())
            .args(["--json", "--min-blocked", "0s", "--interval", "200ms"])
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hangwatch");
        let pid = child.id() as i32;
        let t0 = Instant::now();
        while !writing_to_pipe(pid) {
            assert!(t0.elapsed() < Duration::from_secs(30), "stdout never filled up");
            assert!(child.try_wait().expect("wait").is_none(), "hangwatch exited early");
            thread::sleep(Duration::from_millis(50));
        }
        let sent = Instant::now();
        kill(pid, sig);
        let status = wait_exit(&mut child, Duration::from_secs(5));
        let err = stderr_of(&mut child);
        let status =
            status.unwrap_or_else(|| panic!("signal {sig} ignored while stdout is stalled: {err}"));
        assert_eq!(status.code(), Some(STOPPED), "signal {sig}: {status} {err}");
        assert!(sent.elapsed() < Duration::from_secs(3), "took {:?}", sent.elapsed());
    }
}

#[test]
fn closed_stdout_exits_0_quietly() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    for args in
        [&["snapshot", "--json", "--window", "100ms"][..], &["snapshot", "--window", "100ms"]]
    {
        let mut cmd = Command::new(hangwatch_bin());
        cmd.args(args);
        // SAFETY: close(2) is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::close(1);
                Ok(())
            });
        }
        let run = run_command_keep_stdout(cmd);
        assert_eq!(run.0, Some(0), "{args:?}: {}", run.1);
        assert!(run.1.trim().is_empty(), "{args:?}: nothing on stderr: {}", run.1);
    }
}

/// Runs `cmd` with stderr captured and stdout left as `cmd` set it up.
fn run_command_keep_stdout(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start");
    let status = wait_exit(&mut child, RUN_TIMEOUT);
    let err = stderr_of(&mut child);
    let status = status.unwrap_or_else(|| panic!("did not finish: {err}"));
    (status.code(), err)
}

#[test]
fn pipe_broken_inside_the_json_serializer_exits_0_quietly() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    for _ in 0..3 {
        let (reader, writer) = stalled_pipe();
        // The reader is gone before the first byte: the first write fails with EPIPE, and with
        // --all the report is larger than the writer's buffer, so it fails inside serde_json.
        drop(reader);
        let mut cmd = Command::new(hangwatch_bin());
        cmd.args(["snapshot", "--json", "--all", "--window", "100ms"]).stdout(Stdio::from(writer));
        let (code, err) = run_command_keep_stdout(cmd);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.trim().is_empty(), "nothing on stderr: {err}");
    }
    // And a reader that takes one byte and leaves (`| head -c1`), on a larger pipe.
    let mut child = Command::new(hangwatch_bin())
        .args(["snapshot", "--json", "--all", "--window", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut out = child.stdout.take().expect("piped");
    let mut one = [0u8; 1];
    out.read_exact(&mut one).expect("one byte");
    drop(out);
    let status = wait_exit(&mut child, RUN_TIMEOUT).expect("exits");
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.trim().is_empty(), "{err}");
}

/// `hangwatch snapshot [--json] --all | head -c1`, several times over: the reader takes one byte
/// and leaves while hangwatch is still writing a report several times larger than the (one
/// page) pipe, so a write fails with EPIPE part-way through, inside serde_json for `--json`.
/// Exit 0 and nothing on stderr, every time, in both formats.
#[test]
fn reader_leaving_after_one_byte_ends_quietly_every_time() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    // A report several pages long on any machine, however few processes it runs (CI's fresh
    // VM ran so few that its human report fit in 3 pages): 60 processes paused, each a block
    // of the report (identical threads of one process would fold into a line).
    let sleepers: Vec<Child> = (0..60).map(|_| Child::spawn_args("argv_sleep", &["x"])).collect();
    sleepers.last().expect("60").wait_since_ready(Duration::from_millis(1200));
    for args in [
        &["snapshot", "--json", "--all", "--window", "100ms"][..],
        &["snapshot", "--all", "--window", "100ms"],
    ] {
        // A report that fits in the pipe would be written whole before the reader leaves.
        let full = Command::new(hangwatch_bin())
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("start");
        assert!(full.stdout.len() > 3 * 4096, "{args:?}: a report of {} bytes", full.stdout.len());
        for round in 0..5 {
            let (reader, writer) = stalled_pipe();
            let mut cmd = Command::new(hangwatch_bin());
            cmd.args(args).stdin(Stdio::null()).stdout(Stdio::from(writer)).stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("start");
            // Our copy of the write end: once closed, hangwatch holds the only one.
            drop(cmd);
            let mut reader = std::fs::File::from(reader);
            let mut one = [0u8; 1];
            reader.read_exact(&mut one).expect("one byte");
            drop(reader);
            let status = wait_exit(&mut child, RUN_TIMEOUT);
            let err = stderr_of(&mut child);
            let status =
                status.unwrap_or_else(|| panic!("{args:?} round {round}: did not finish: {err}"));
            assert_eq!(status.code(), Some(0), "{args:?} round {round}: {err}");
            assert!(err.trim().is_empty(), "{args:?} round {round}: nothing on stderr: {err}");
        }
    }
}

#[test]
fn full_disk_exits_1_with_one_line() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    for json in [true, false] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let mut cmd = Command::new(hangwatch_bin());
        cmd.args(["snapshot", "--window", "100ms"]).stdout(Stdio::from(full));
        if json {
            cmd.arg("--json");
        }
        let (code, err) = run_command_keep_stdout(cmd);
        assert_eq!(code, Some(1), "{err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(
            lines[0].starts_with("hangwatch: ")
                && lines[0].contains("stdout")
                && lines[0].contains("No space left on device"),
            "{err}"
        );
    }
}

#[test]
fn json_before_snapshot_prints_json() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let run = run_hangwatch(&["--json", "snapshot", "--window", "100ms"]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("`--json snapshot` prints JSON: {e}: {}", run.describe()));
    assert!(v.get("processes").is_some(), "{}", run.describe());
}

#[test]
fn live_filters_before_snapshot_are_refused() {
    let _serial = serial();
    for flag in [&["--pid", "1"][..], &["--comm", "x"], &["--cgroup", "y"]] {
        let mut args = flag.to_vec();
        args.push("snapshot");
        let run = run_hangwatch(&args);
        assert_eq!(run.code(), Some(2), "{}", run.describe());
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
        assert!(run.stderr.contains(flag[0]) && run.stderr.contains("after"), "{}", run.describe());
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
}

#[test]
fn pid_of_a_thread_shows_its_process() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("futex_wait");
    let tid = child.fact("tid").to_string();
    assert_ne!(tid, child.pid_arg());
    let snap = snapshot(&serial, &["--pid", &tid, "--window", "200ms"]);
    assert_eq!(listed_pids(&snap.json), vec![child.pid as i64], "the process, not nothing");
    assert!(
        snap.run.stderr.contains(&tid) && snap.run.stderr.contains(&child.pid_arg()),
        "a note names the thread and its process: {}",
        snap.run.describe()
    );
}

fn set_nofile(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec and
    // only lowers limits.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn open_file_limit_of_16_gives_one_clear_line() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    for args in [&["snapshot", "--json"][..], &["--json"]] {
        let mut cmd = Command::new(hangwatch_bin());
        cmd.args(args);
        set_nofile(&mut cmd, 16, 16);
        let run = run_command(cmd);
        assert_eq!(run.code(), Some(1), "{}", run.describe());
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
        let err = run.stderr.to_lowercase();
        assert!(
            err.contains("rlimit_nofile")
                && err.contains("16")
                && err.contains("too many open files"),
            "{}",
            run.describe()
        );
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
}

#[test]
fn low_soft_open_file_limit_is_raised_to_the_hard_one() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let mut cmd = Command::new(hangwatch_bin());
    cmd.args(["snapshot", "--json", "--window", "100ms"]);
    set_nofile(&mut cmd, 16, 4096);
    let run = run_command(cmd);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let failed: Vec<&Value> =
        array_field(&v, "probes").iter().filter(|p| !bool_field(p, "attached")).collect();
    assert!(
        failed.iter().all(|p| !str_field(p, "reason").to_lowercase().contains("open files")),
        "no probe lost to the fd limit: {failed:?}"
    );
}

#[test]
fn without_tracefs_the_probe_is_named_and_the_snapshot_still_works() {
    if !require_root() {
        return;
    }
    let Some(unshare) = find_in_path("unshare") else {
        eprintln!("SKIPPED: unshare (util-linux) is not installed");
        return;
    };
    let _serial = serial();
    let child = Child::spawn("futex_wait");
    child.wait_since_ready(Duration::from_millis(1200));
    // A private mount namespace where tracefs (and debugfs, whose tracing/ mounts it) is
    // unmounted, and hangwatch runs without CAP_SYS_ADMIN, so it cannot mount it again: as in
    // a container given only CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE.
    let script = r#"umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null;
        test -e /sys/kernel/tracing/events && { echo 'tracefs still mounted' >&2; exit 99; }
        exec setpriv --inh-caps=-all,+bpf,+perfmon,+sys_ptrace,+dac_read_search,+syslog \
          --ambient-caps=-all,+bpf,+perfmon,+sys_ptrace,+dac_read_search,+syslog \
          --bounding-set=-all,+bpf,+perfmon,+sys_ptrace,+dac_read_search,+syslog "$0" "$@""#;
    for json in [true, false] {
        let mut cmd = Command::new(&unshare);
        cmd.args(["-m", "--propagation", "private", "sh", "-c", script])
            .arg(hangwatch_bin())
            .args(["snapshot", "--pid", &child.pid_arg(), "--window", "200ms"]);
        if json {
            cmd.arg("--json");
        }
        let run = run_command(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        if json {
            let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
            let oom = array_field(&v, "probes")
                .iter()
                .find(|p| str_field(p, "name") == "tracepoint/oom:mark_victim")
                .unwrap_or_else(|| panic!("probe listed: {}", run.describe()));
            assert!(!bool_field(oom, "attached"), "{}", run.describe());
            let reason = str_field(oom, "reason");
            assert!(
                reason.contains("tracefs") && reason.contains("CAP_SYS_ADMIN"),
                "the reason names tracefs and what is missing: {reason}"
            );
            // The rest still works: the blocked program is there.
            let p = find_process(&v, child.pid);
            assert!(i64_field(p, "blocked_threads") >= 2, "{}", run.describe());
        } else {
            assert!(
                run.stdout.contains("warning: probe tracepoint/oom:mark_victim not attached")
                    && run.stdout.contains("tracefs"),
                "the report names the probe: {}",
                run.describe()
            );
        }
    }
}

#[test]
fn sigkill_leaves_no_program_or_link_attached() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let mut live = Live::start(&["--interval", "200ms"]);
    let pid = live.pid();
    assert!(live.wait_for(Duration::from_secs(30), |_| true).is_some(), "no record");
    let (progs, links) = bpf_ids_of(pid);
    assert!(
        !progs.is_empty() && !links.is_empty(),
        "holds programs and links: {progs:?} {links:?}"
    );
    for &id in &progs {
        assert!(bpftool_has("prog", id), "bpftool sees program {id} while hangwatch runs");
    }
    for &id in &links {
        assert!(bpftool_has("link", id), "bpftool sees link {id} while hangwatch runs");
    }
    kill(pid, libc::SIGKILL);
    let _ = live.child.wait();
    // The kernel frees them when the last fd closes; give its deferred work a moment.
    let t0 = Instant::now();
    loop {
        let left: Vec<String> = progs
            .iter()
            .filter(|&&id| bpftool_has("prog", id))
            .map(|id| format!("prog {id}"))
            .chain(
                links.iter().filter(|&&id| bpftool_has("link", id)).map(|id| format!("link {id}")),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still attached after SIGKILL: {left:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_instances_side_by_side_both_see_the_blocked_program() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let child = Child::spawn("futex_wait");
    child.wait_since_ready(Duration::from_millis(1200));
    let start = || {
        Command::new(hangwatch_bin())
            .args(["snapshot", "--json", "--pid", &child.pid_arg(), "--window", "1s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start")
    };
    let (a, b) = (start(), start());
    let mut attached = Vec::new();
    for c in [a, b] {
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let p = find_process(&v, child.pid);
        assert_eq!(i64_field(p, "blocked_threads"), 2, "both threads, in each instance");
        let worker = find_thread(p, child.fact_i64("tid"));
        assert_eq!(str_field(expect_blocked(worker), "syscall"), "futex");
        let probes: Vec<(String, bool)> = array_field(&v, "probes")
            .iter()
            .map(|p| (str_field(p, "name").to_string(), bool_field(p, "attached")))
            .collect();
        attached.push(probes);
    }
    assert_eq!(attached[0], attached[1], "the same probes attach in both instances");
}

#[test]
fn refusal_names_the_capability_and_how_to_grant_it() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let bin = WorldExecutable::new("refusal");
    // Not root, no capabilities.
    let Some(mut cmd) = setpriv(
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ],
        &bin,
    ) else {
        return;
    };
    cmd.args(["snapshot", "--json"]);
    let run = run_command(cmd);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    let err = &run.stderr;
    assert!(err.starts_with("hangwatch: ") && !err.starts_with("hangwatch: hangwatch"), "{err}");
    for part in
        ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "sudo", "--cap-add=BPF", "securityContext"]
    {
        assert!(err.contains(part), "{part} in: {err}");
    }
    // Root without CAP_PERFMON (a container that dropped it): sudo would not help.
    let Some(mut cmd) = setpriv(
        &[
            "--inh-caps=-all,+bpf,+sys_ptrace",
            "--ambient-caps=-all,+bpf,+sys_ptrace",
            "--bounding-set=-all,+bpf,+sys_ptrace",
        ],
        &bin,
    ) else {
        return;
    };
    cmd.args(["snapshot", "--json"]);
    let run = run_command(cmd);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    let err = &run.stderr;
    assert!(err.contains("running as root") && err.contains("CAP_PERFMON"), "{err}");
    assert!(err.contains("--cap-add=PERFMON") && !err.contains("sudo"), "{err}");
}

const REDUCED: &str = "+bpf,+perfmon,+sys_ptrace";

#[test]
fn non_root_with_bpf_perfmon_ptrace_names_what_it_cannot_read() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let child = Child::spawn("futex_wait"); // runs as root: another user's process
    child.wait_since_ready(Duration::from_millis(1200));
    let bin = WorldExecutable::new("reduced");
    for json in [true, false] {
        let Some(mut cmd) = setpriv(
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &format!("--inh-caps={REDUCED}"),
                &format!("--ambient-caps={REDUCED}"),
            ],
            &bin,
        ) else {
            return;
        };
        cmd.args(["snapshot", "--window", "200ms"]);
        if json {
            cmd.arg("--json");
        }
        let run = run_command(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        if json {
            let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
            let w = array_field(&v, "warnings")
                .iter()
                .find(|w| str_field(w, "what").contains("/syscall"))
                .unwrap_or_else(|| {
                    panic!("a warning about /proc/PID/task/TID/syscall: {}", run.describe())
                });
            assert!(str_field(w, "missing").contains("CAP_DAC_READ_SEARCH"), "{w}");
            // At least the test program's two threads could not be read.
            assert!(u64_field(w, "count") >= 2, "{w}");
            assert!(str_field(w, "consequence").contains("not counted as blocked"), "{w}");
        } else {
            let header: Vec<&str> = run.stdout.lines().take_while(|l| !l.is_empty()).collect();
            assert!(
                header
                    .iter()
                    .any(|l| l.starts_with("warning: cannot read /proc/PID/task/TID/syscall")
                        && l.contains("CAP_DAC_READ_SEARCH")),
                "the header names the missing permission: {}",
                run.describe()
            );
        }
    }
}

#[test]
fn root_without_cap_syslog_says_the_kernel_log_is_unreadable() {
    if !require_root() {
        return;
    }
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|s| s.trim() == "1");
    if !restricted {
        eprintln!("SKIPPED: kernel.dmesg_restrict is 0: /dev/kmsg needs no CAP_SYSLOG here");
        return;
    }
    let _serial = serial();
    let bin = WorldExecutable::new("nosyslog");
    let caps = format!("-all,{REDUCED}");
    let Some(mut cmd) = setpriv(
        &[
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
            &format!("--bounding-set={caps}"),
        ],
        &bin,
    ) else {
        return;
    };
    cmd.args(["snapshot", "--json", "--window", "100ms"]);
    let run = run_command(cmd);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let w = array_field(&v, "warnings")
        .iter()
        .find(|w| str_field(w, "what").contains("/dev/kmsg"))
        .unwrap_or_else(|| panic!("a warning about the kernel log: {}", run.describe()));
    assert!(str_field(w, "missing").contains("CAP_SYSLOG"), "{w}");
    assert!(str_field(w, "consequence").contains("OOM"), "{w}");
}

#[test]
fn live_mode_with_reduced_privileges_says_what_it_cannot_read() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let child = Child::spawn("futex_wait"); // runs as root: another user's process
    let bin = WorldExecutable::new("reduced-live");
    let Some(mut cmd) = setpriv(
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &format!("--inh-caps={REDUCED}"),
            &format!("--ambient-caps={REDUCED}"),
        ],
        &bin,
    ) else {
        return;
    };
    cmd.args(["--json", "--interval", "200ms"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut live = cmd.spawn().expect("start");
    let mut err = live.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 || tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let t0 = Instant::now();
    while !text.contains("CAP_DAC_READ_SEARCH") && t0.elapsed() < Duration::from_secs(20) {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
            text.push_str(&s);
        }
    }
    kill(live.id() as i32, libc::SIGTERM);
    let status = wait_exit(&mut live, Duration::from_secs(5));
    drop(child);
    assert!(
        text.lines().any(|l| l.contains("cannot read /proc/PID/task/TID/syscall")
            && l.contains("CAP_DAC_READ_SEARCH")),
        "stderr names the missing permission: {text}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(STOPPED), "{text}");
}
