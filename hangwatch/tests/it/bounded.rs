//! Bounded reads of what a process controls: a target with an absurd command line, maps file
//! or epoll set costs hangwatch bounded memory and output (never timing: the machine is
//! shared). Each test checks hangwatch's peak RSS (`wait4` rusage) against a stated bound,
//! the size of its output, and that the truncation is shown. Needs root.

use crate::common;

use common::bounded::{Measured, run_measured};
use common::*;
use serde_json::Value;

/// A snapshot of a few processes normally peaks at about 40 MB; before the bounds the targets
/// below pushed it past 500 MB.
const MAX_SNAPSHOT_RSS_KIB: u64 = 120 * 1024;

fn snapshot_measured(pids: &[i32]) -> (Measured, Value) {
    let mut args = vec!["snapshot".to_string(), "--json".to_string()];
    for p in pids {
        args.push("--pid".into());
        args.push(p.to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = run_measured(&argv);
    assert_eq!(m.code, Some(0), "{}", m.describe());
    let json: Value = serde_json::from_slice(&m.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", m.describe()));
    (m, json)
}

/// 40 processes with 1.9 MB command lines (the kernel's limit is 2 MB with the default stack
/// rlimit; one argument is at most 128 KiB): each is read to 4 KiB and flagged.
#[test]
fn huge_command_lines_cost_bounded_memory_and_output() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let arg = "a".repeat(127 * 1024);
    let args: Vec<&str> = std::iter::repeat_n(arg.as_str(), 15).collect();
    let kids: Vec<Child> = (0..40).map(|_| Child::spawn_args("argv_sleep", &args)).collect();
    let argv_bytes = kids[0].fact_i64("argv_bytes");
    assert!(argv_bytes > 1_900_000, "argv of {argv_bytes} bytes");
    let pids: Vec<i32> = kids.iter().map(|k| k.pid).collect();
    let (m, json) = snapshot_measured(&pids);
    assert!(
        m.max_rss_kib < MAX_SNAPSHOT_RSS_KIB,
        "peak RSS {} KiB with 40 × 1.9 MB command lines (bound {MAX_SNAPSHOT_RSS_KIB} KiB)",
        m.max_rss_kib
    );
    // 40 × (4 KiB of command line + the rest of a process record): well under 1 MB.
    assert!(m.stdout.len() < 1024 * 1024, "{} bytes of JSON", m.stdout.len());
    for k in &kids {
        let p = find_process(&json, k.pid);
        let cmd = str_field(p, "cmdline");
        assert!(cmd.len() <= 4096, "pid {}: cmdline of {} bytes", k.pid, cmd.len());
        assert!(cmd.contains("argv_sleep"), "pid {}: {}", k.pid, truncate(cmd, 200));
        assert!(bool_field(p, "cmdline_truncated"), "pid {}: not flagged", k.pid);
    }
    // A short command line is whole and not flagged.
    let short = Child::spawn_args("argv_sleep", &["x", "y"]);
    let (_, json) = snapshot_measured(&[short.pid]);
    let p = find_process(&json, short.pid);
    assert!(str_field(p, "cmdline").ends_with("argv_sleep x y"), "{}", excerpt(p));
    assert!(!bool_field(p, "cmdline_truncated"));
}

/// A process with 60,000 shared mappings of one file whose path is ~3,900 bytes long (its
/// maps file is ~240 MB) waiting on a process-shared futex in one of them: maps is walked
/// line by line within bounds, and the futex is still keyed to the file.
#[test]
fn huge_maps_file_costs_bounded_memory() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let base = work_dir().join(format!("maps-{}", std::process::id()));
    let mut dir = base.clone();
    for i in 0..15 {
        dir.push(format!("{i:02}{}", "d".repeat(250)));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let file = dir.join("shared-futex-page");
    let path = file.to_str().expect("utf-8 path").to_owned();
    assert!(path.len() > 3800, "path of {} bytes", path.len());
    let kid = Child::spawn_args("many_maps", &[&path, "60000"]);
    kid.wait_since_ready(std::time::Duration::from_millis(300));
    let (m, json) = snapshot_measured(&[kid.pid]);
    drop(kid);
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        m.max_rss_kib < MAX_SNAPSHOT_RSS_KIB,
        "peak RSS {} KiB with 60,000 long-named mappings (bound {MAX_SNAPSHOT_RSS_KIB} KiB)",
        m.max_rss_kib
    );
    assert!(m.stdout.len() < 1024 * 1024, "{} bytes of JSON", m.stdout.len());
    let b = main_blocked(&json, m_pid(&json));
    assert_eq!(str_field(b, "syscall"), "futex", "{}", excerpt(b));
}

/// The one listed pid of a `--pid` snapshot.
fn m_pid(json: &Value) -> i32 {
    let pids = listed_pids(json);
    assert_eq!(pids.len(), 1, "{pids:?}");
    i32::try_from(pids[0]).expect("pid")
}

/// Ten epoll sets of 1,900 eventfds each (the rlimit here is 20,000 fds), waited on forever
/// by ten threads: each set is read once and to at most 1,024 fds, within the memory bound
/// (before: 200 MB), and every wait is still decoded. That a cut set is never called a
/// deadlock is proven by `unknown_peer_or_listening_socket_is_not_a_deadlock` (unit test).
#[test]
fn huge_epoll_sets_cost_bounded_memory_and_are_not_deadlocks() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let kid = Child::spawn_args("epoll_many", &["10", "1900"]);
    kid.wait_since_ready(std::time::Duration::from_millis(300));
    let (m, json) = snapshot_measured(&[kid.pid]);
    assert!(
        m.max_rss_kib < MAX_SNAPSHOT_RSS_KIB,
        "peak RSS {} KiB with 10 epoll sets of 1,900 fds (bound {MAX_SNAPSHOT_RSS_KIB} KiB)",
        m.max_rss_kib
    );
    let p = find_process(&json, kid.pid);
    let waiting = threads(p)
        .iter()
        .filter(|t| {
            t.get("blocked")
                .and_then(|b| b.get("syscall"))
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with("epoll_"))
        })
        .count();
    assert_eq!(waiting, 10, "{}", excerpt(p));
    let findings = json.get("findings").and_then(Value::as_array).cloned().unwrap_or_default();
    let bad: Vec<&Value> = findings
        .iter()
        .filter(|f| f.get("kind").and_then(Value::as_str) == Some("deadlock"))
        .filter(|f| f.to_string().contains(&format!("\"pid\":{}", kid.pid)))
        .collect();
    assert!(bad.is_empty(), "a partly read epoll set called a deadlock: {bad:#?}");
}
