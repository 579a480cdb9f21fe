//! Helpers for the `not_returned` verdict tests: Python programs as test children, and the
//! same default snapshot run several times in a row.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Child, Serial, array_field, excerpt, find_process, snapshot_json, str_field};

/// Runs `python3 -c script` as a test child; the script prints its own ready line.
pub fn spawn_python(name: &str, script: &str) -> Child {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    Child::spawn_command(name, cmd)
}

/// What one snapshot said about one process's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MemVerdict {
    pub not_returned: bool,
    /// `memory_not_returned` finding of this pid: (severity, summary).
    pub finding: Option<(String, String)>,
    /// `memory.retained.evidence`.
    pub evidence: Option<String>,
    pub memory: Value,
}

pub fn mem_verdict(snap: &Value, pid: i32) -> MemVerdict {
    let p = find_process(snap, pid);
    let memory = p["memory"].clone();
    assert!(memory.is_object(), "no memory object for pid {pid}: {}", excerpt(p));
    let finding = array_field(snap, "findings")
        .iter()
        .find(|f| f["kind"] == "memory_not_returned" && f["pids"][0].as_i64() == Some(pid as i64))
        .map(|f| (str_field(f, "severity").to_string(), str_field(f, "summary").to_string()));
    MemVerdict {
        not_returned: memory["not_returned"].as_bool().unwrap_or(false),
        evidence: memory["retained"]["evidence"].as_str().map(str::to_string),
        finding,
        memory,
    }
}

/// Waits until `child` has been idle since its ready line for `idle`, then runs the default
/// snapshot (`--window 1s`) `n` times in a row for its pid.
pub fn default_snapshots(
    lock: &Serial,
    child: &Child,
    idle: Duration,
    n: usize,
) -> Vec<MemVerdict> {
    child.wait_since_ready(idle);
    (0..n)
        .map(|_| mem_verdict(&snapshot_json(lock, &["--pid", &child.pid_arg()]), child.pid))
        .collect()
}
