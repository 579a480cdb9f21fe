//! Terminal safety of the human report (issue 9): a real process whose name, thread names,
//! command line and the path of the FIFO it waits on carry escape sequences, a newline that
//! forges a report line, a bidi override and invalid UTF-8. The report's bytes must hold none
//! of it raw, and show it escaped; `--json` must carry the names as the process set them, in
//! bytes that are as safe on a terminal.
//!
//! Needs root; without it each test says SKIPPED.

use crate::common;

use std::process::{Command, Stdio};

use common::hostile::{FORGED_ARG, Hostile, MAIN_COMM, assert_terminal_safe};
use common::*;

/// Runs `hangwatch snapshot <args>` and returns its raw stdout (no lossy decoding: invalid
/// UTF-8 in it must be seen).
fn snapshot_bytes(args: &[&str]) -> Vec<u8> {
    let out = Command::new(hangwatch_bin())
        .arg("snapshot")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run hangwatch: {e}"));
    assert!(
        out.status.success(),
        "hangwatch snapshot {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn hostile_names_reach_the_human_report_escaped() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let h = Hostile::spawn("human");
    h.child.wait_since_ready(std::time::Duration::from_millis(700));
    let out = snapshot_bytes(&["--pid", &h.child.pid_arg(), "--min-blocked", "500ms"]);
    assert_terminal_safe(&out, "human snapshot");
    let text = String::from_utf8(out).expect("checked above");
    eprintln!("{text}");
    let pid = h.child.pid;
    // Shown, escaped, where they belong.
    assert!(
        text.contains(&format!("● {pid} \\x1b]0;pwned\\x07 — all 4 threads blocked")),
        "{text}"
    );
    // (The command line is cut at 100 columns, and the test's directory, whose name holds a
    // pid of up to 7 digits, makes it long: only its start is certain to be shown.)
    assert!(text.contains(" x\\n✖ dead"), "cmd line:\n{text}");
    assert!(text.contains("\\x1b[2J\\x1b[31…"), "thread 2 (cut to 15 columns):\n{text}");
    assert!(text.contains("\\u{202e}gpj.exe"), "thread 3:\n{text}");
    assert!(text.contains("a\u{fffd}\u{fffd}\u{fffd}b"), "thread 4 (invalid UTF-8):\n{text}");
    assert!(text.contains("/\\x1b]2;evil\\x07\\n✖ forged)"), "the FIFO's path:\n{text}");
}

#[test]
fn hostile_names_stay_exact_in_json() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let h = Hostile::spawn("json");
    h.child.wait_since_ready(std::time::Duration::from_millis(700));
    let _serial = serial;
    let out = snapshot_bytes(&["--json", "--pid", &h.child.pid_arg(), "--min-blocked", "500ms"]);
    // Printed on a terminal, the JSON cannot drive it either: C1, bidi and DEL are `\uXXXX`.
    assert_terminal_safe(&out, "snapshot --json");
    let snap: serde_json::Value = serde_json::from_slice(&out).expect("one JSON value");
    let p = find_process(&snap, h.child.pid);
    assert_eq!(str_field(p, "comm"), MAIN_COMM);
    assert!(str_field(p, "cmdline").ends_with(FORGED_ARG), "{}", excerpt(p));
    let names: Vec<&str> = threads(p).iter().map(|t| str_field(t, "comm")).collect();
    for want in ["\x1b[2J\x1b[31m\r", "\u{202e}gpj.exe", "a\u{fffd}\u{fffd}\u{fffd}b"] {
        assert!(names.contains(&want), "{want:?} not in {names:?}");
    }
}
