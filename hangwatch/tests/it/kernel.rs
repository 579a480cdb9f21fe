//! What hangwatch gets from the kernel it runs on: every probe loads and attaches, and a wait
//! that ends while hangwatch watches is reported by the kernel probe (exact), with its syscall
//! and the task that woke it. These run on this machine and in every kernel of the matrix
//! (`cargo xtask vmtest`, docs/kernels.md).

use crate::common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

/// Kernel release as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = read_proc("/proc/sys/kernel/osrelease");
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

#[test]
fn every_probe_attaches_or_its_gap_is_named() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let snap = snapshot_json(&lock, &["--exact-memory", "--window", "200ms"]);
    let probes = array_field(&snap, "probes");
    let names: Vec<&str> = probes.iter().map(|p| str_field(p, "name")).collect();
    for want in ["tp_btf/sched_waking", "tracepoint/oom:mark_victim", "tracepoint/syscalls"] {
        assert!(
            names.iter().any(|n| n.starts_with(want)),
            "no probe {want}* in the status: {names:?}"
        );
    }
    // Before 5.15 there is no bpf_task_pt_regs: the registers come from the task's stack, and
    // the probe's name says so. From 5.15 the helper is used.
    let waking = names.iter().find(|n| n.starts_with("tp_btf/sched_waking")).expect("listed");
    assert_eq!(
        waking.contains("registers from the task's stack"),
        kernel_version() < (5, 15),
        "kernel {:?}: {waking}",
        kernel_version()
    );
    for p in probes {
        assert!(
            bool_field(p, "attached"),
            "probe not attached on kernel {:?}: {}",
            kernel_version(),
            excerpt(p)
        );
        assert!(field(p, "reason").is_null(), "{}", excerpt(p));
        assert!(!str_field(p, "impact").is_empty(), "{}", excerpt(p));
    }
}

/// A child blocked in read(2) on a pipe, woken 1.5 s later by its parent's write: the kernel
/// probe reports the end of the wait with the syscall and the parent as the waker.
#[test]
fn ended_wait_is_reported_exactly_with_its_waker() {
    if !require_root() {
        return;
    }
    let _lock = serial();
    let mut live = Live::start(&["--min-blocked", "500ms"]);
    assert!(
        live.wait_for(Duration::from_secs(60), |v| v["type"] == "stats").is_some(),
        "hangwatch --json started"
    );
    let script = "import os, sys, time\n\
                  r, w = os.pipe()\n\
                  pid = os.fork()\n\
                  if pid == 0:\n    os.read(r, 1)\n    os._exit(0)\n\
                  print(pid, flush=True)\n\
                  time.sleep(1.5)\n\
                  os.write(w, b'x')\n\
                  os.waitpid(pid, 0)\n";
    let mut parent = Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(parent.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the child's pid");
    let child: i64 = line.trim().parse().unwrap_or_else(|e| panic!("pid {line:?}: {e}"));
    let rec = live.wait_for(Duration::from_secs(60), |v| {
        v["type"] == "unblocked" && v["pid"].as_i64() == Some(child)
    });
    let _ = parent.kill();
    let _ = parent.wait();
    let rec = rec.unwrap_or_else(|| {
        panic!("no unblocked record for the child {child}:\n{}", live.seen.join("\n"))
    });
    assert_eq!(rec["exact"], true, "seen by the kernel probe, not a /proc scan: {}", excerpt(&rec));
    assert_eq!(str_field(&rec, "syscall"), "read", "{}", excerpt(&rec));
    assert!(u64_field(&rec, "duration_ms") >= 1000, "{}", excerpt(&rec));
    assert_eq!(
        rec["woken_by_pid"].as_i64(),
        Some(i64::from(parent.id())),
        "the parent's write woke it: {}",
        excerpt(&rec)
    );
}
