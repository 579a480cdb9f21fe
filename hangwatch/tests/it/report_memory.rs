//! What `hangwatch snapshot --json` and `hangwatch --json` report about real processes that
//! keep, give back and grow memory, and that get OOM-killed in a memory-limited cgroup.

use crate::common;

use std::{
    thread,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn memory_of(snap: &Value, pid: i32) -> &Value {
    let p = processes(snap)
        .iter()
        .find(|p| p["pid"].as_i64() == Some(pid as i64))
        .unwrap_or_else(|| panic!("pid {pid} not listed:\n{}", excerpt(snap)));
    let m = field(p, "memory");
    assert!(m.is_object(), "no memory object for pid {pid}:\n{}", excerpt(p));
    m
}

/// Runs a snapshot in a thread, calls `during` after `after`, and returns the snapshot.
fn snapshot_while(lock: &Serial, args: &[&str], after: Duration, during: impl FnOnce()) -> Value {
    thread::scope(|s| {
        let h = s.spawn(|| snapshot_json(lock, args));
        thread::sleep(after);
        during();
        h.join().expect("snapshot thread")
    })
}

#[test]
fn brk_heap_kept_after_free_is_not_returned() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn("mem_brk_retain");
    let grown = child.fact_i64("heap") as u64;
    let snap = snapshot_json(&lock, &["--pid", &child.pid_arg(), "--window", "2s"]);
    let m = memory_of(&snap, child.pid);
    assert!(u64_field(m, "heap_bytes") >= grown.min(GIB) * 95 / 100, "{}", excerpt(m));
    assert!(u64_field(m, "heap_bytes") >= GIB, "heap ≥ 1 GiB: {}", excerpt(m));
    assert_eq!(u64_field(m, "brk_shrinks"), 0, "{}", excerpt(m));
    assert!(bool_field(m, "not_returned"), "flagged: {}", excerpt(m));
    assert!(!bool_field(m, "growing"), "{}", excerpt(m));
    let f = array_field(&snap, "findings");
    assert!(
        f.iter().any(|f| f["kind"] == "memory_not_returned"
            && f["pids"][0].as_i64() == Some(child.pid as i64)),
        "a memory_not_returned finding: {}",
        excerpt(&snap)
    );
}

#[test]
fn mmap_then_munmap_1gib_is_counted_and_not_flagged() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn("mem_mmap_unmap");
    let args = ["--pid", &child.pid_arg(), "--window", "3s"];
    let snap =
        snapshot_while(&lock, &args, Duration::from_millis(1200), || signal(&child, libc::SIGUSR1));
    let m = memory_of(&snap, child.pid);
    assert!(m["munmap_bytes"].as_u64().is_some_and(|b| b >= GIB), "munmap ≥ 1 GiB: {}", excerpt(m));
    assert!(u64_field(m, "returned_bytes") >= GIB * 9 / 10, "{}", excerpt(m));
    assert!(!bool_field(m, "not_returned"), "{}", excerpt(m));
    assert!(u64_field(m, "rss_bytes") < 256 * MIB, "{}", excerpt(m));
}

#[test]
fn malloc_trim_shows_returned_bytes_rising() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn("mem_trim");
    let pid = child.pid_arg();
    let before = snapshot_json(&lock, &["--pid", &pid, "--window", "1s"]);
    let m0 = memory_of(&before, child.pid);
    assert_eq!(u64_field(m0, "returned_bytes"), 0, "{}", excerpt(m0));
    let snap = snapshot_while(
        &lock,
        &["--pid", &pid, "--window", "3s"],
        Duration::from_millis(1200),
        || signal(&child, libc::SIGUSR1),
    );
    let m = memory_of(&snap, child.pid);
    assert!(u64_field(m, "returned_bytes") >= GIB / 2, "returned rises: {}", excerpt(m));
    assert!(!bool_field(m, "not_returned"), "{}", excerpt(m));
}

#[test]
fn growing_process_rate_within_20_percent() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn("mem_grow");
    let per_min = child.fact_i64("rate") as f64 * 60.0;
    let snap = snapshot_json(&lock, &["--pid", &child.pid_arg(), "--window", "6s"]);
    let m = memory_of(&snap, child.pid);
    assert!(bool_field(m, "growing"), "{}", excerpt(m));
    let rate = f64_field(m, "growth_bytes_per_min");
    assert!(
        (rate - per_min).abs() <= 0.2 * per_min,
        "rate {rate} vs truth {per_min}: {}",
        excerpt(m)
    );
}

#[test]
fn oom_kill_in_memory_limited_cgroup_reported_live_and_later_from_kernel_log() {
    if !require_root() {
        return;
    }
    let lock = serial();
    const LIMIT: u64 = 64 * MIB;
    let Some(cg) = MemCgroup::create(LIMIT) else { return };
    let mut live = Live::start(&[]);
    assert!(
        live.wait_for(Duration::from_secs(20), |v| v["type"] == "stats").is_some(),
        "hangwatch --json started"
    );
    let child = Child::spawn("mem_hog");
    cg.add(child.pid);
    // Let hangwatch sample the victim's memory (every 2 s) before it grows and dies.
    thread::sleep(Duration::from_millis(4500));
    signal(&child, libc::SIGUSR1);
    let rec = live
        .wait_for(Duration::from_secs(30), |v| {
            v["type"] == "oom_kill" && v["pid"].as_i64() == Some(child.pid as i64)
        })
        .unwrap_or_else(|| panic!("no live oom_kill record for pid {}", child.pid));
    // What hangwatch had seen of it: small and idle before the signal.
    let history = field(&rec, "victim_memory");
    assert!(history.is_object(), "victim_memory: {}", excerpt(&rec));
    assert!(u64_field(history, "samples") >= 1, "{}", excerpt(&rec));
    assert!(u64_field(history, "first_rss_bytes") < 16 * MIB, "{}", excerpt(&rec));
    assert!(!array_field(history, "rss_samples").is_empty(), "{}", excerpt(&rec));
    assert_eq!(str_field(&rec, "comm"), "mem_hog", "{}", excerpt(&rec));
    assert_eq!(str_field(&rec, "cgroup"), cg.path, "{}", excerpt(&rec));
    assert_eq!(u64_field(&rec, "memory_limit_bytes"), LIMIT, "{}", excerpt(&rec));
    assert_eq!(str_field(&rec, "constraint"), "memcg", "{}", excerpt(&rec));
    assert!(u64_field(&rec, "anon_rss_bytes") > LIMIT / 2, "victim's own usage: {}", excerpt(&rec));
    drop(live);

    let snap = snapshot_json(&lock, &["--window", "200ms"]);
    let kills = array_field(&snap, "oom_kills");
    let k =
        kills.iter().find(|k| k["pid"].as_i64() == Some(child.pid as i64)).unwrap_or_else(|| {
            panic!("snapshot lists no OOM kill of {}:\n{}", child.pid, excerpt(&snap))
        });
    assert_eq!(str_field(k, "cgroup"), cg.path);
    assert_eq!(u64_field(k, "memory_limit_bytes"), LIMIT);
    assert_eq!(str_field(k, "constraint"), "memcg");
    for f in ["time", "comm", "anon_rss_bytes", "file_rss_bytes", "shmem_rss_bytes"] {
        assert!(k.get(f).is_some(), "{f} in {}", excerpt(k));
    }
    let counters = array_field(&snap, "cgroup_oom_kills");
    assert!(
        counters
            .iter()
            .any(|c| c["cgroup"] == cg.path.as_str() && c["oom_kills"].as_u64() == Some(1)),
        "{}",
        excerpt(&snap)
    );
}

#[test]
fn worker_oom_killed_while_parent_waits_is_an_orphaned_wait() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let Some(cg) = MemCgroup::create(64 * MIB) else { return };
    let procs = cg.dir.join("cgroup.procs");
    let parent = Child::spawn_args("oom_pool", &[procs.to_str().expect("utf-8 path")]);
    let worker = parent.fact_i64("worker") as i32;
    let t0 = Instant::now();
    while state(worker).is_some_and(|s| s != 'Z') {
        assert!(t0.elapsed() < Duration::from_secs(30), "worker {worker} not OOM-killed");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(1200));
    let snap = snapshot_json(&lock, &["--pid", &parent.pid_arg()]);
    let f = array_field(&snap, "findings");
    let o = f
        .iter()
        .find(|f| f["kind"] == "orphaned_wait")
        .unwrap_or_else(|| panic!("no orphaned_wait finding:\n{}", excerpt(&snap)));
    let pids: Vec<i64> = array_field(o, "pids").iter().filter_map(|p| p.as_i64()).collect();
    assert!(
        pids.contains(&(parent.pid as i64)) && pids.contains(&(worker as i64)),
        "{}",
        excerpt(o)
    );
    let summary = str_field(o, "summary");
    assert!(summary.contains("OOM-killed") && summary.contains(&cg.path), "{summary}");
}

/// hangwatch in a container without the host's pid namespace: the pids it reports (waits that
/// end, seen by the kernel probe; an OOM victim) are the container's, not the host's.
#[test]
fn in_a_child_pid_namespace_the_kernel_pids_are_translated() {
    if !require_root() {
        return;
    }
    let _lock = serial();
    const LIMIT: u64 = 64 * MIB;
    let Some(cg) = MemCgroup::create(LIMIT) else { return };
    let dir = work_dir().join(format!("pidns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.display();
    // Inside a new pid namespace (its init is this shell): a sleep whose wait ends while
    // hangwatch watches, and a hog moved into the memory-limited cgroup and started once
    // hangwatch runs. `--kill-child`: everything in the namespace dies with the test's handle.
    let script = format!(
        r#"{hog} >/dev/null & echo $! > {d}/hog.pid
{hw} --json --min-blocked 1s &
while [ ! -e {d}/go ]; do sleep 0.05; done
sleep 3 & echo $! > {d}/sleep.pid
sleep 0.5
echo $(cat {d}/hog.pid) > {cg}/cgroup.procs
kill -USR1 $(cat {d}/hog.pid)
wait
"#,
        hog = program("mem_hog").display(),
        hw = hangwatch_bin().display(),
        cg = cg.dir.display(),
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &script]);
    let mut live = Live::start_command(cmd);
    assert!(
        live.wait_for(Duration::from_secs(20), |v| v["type"] == "stats").is_some(),
        "hangwatch --json started in the namespace"
    );
    std::fs::write(dir.join("go"), "").expect("go");
    let read_pid = |f: &str| -> i64 {
        for _ in 0..100 {
            if let Some(p) =
                std::fs::read_to_string(dir.join(f)).ok().and_then(|s| s.trim().parse().ok())
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{f} not written by the namespace's script")
    };
    let (hog, sleeper) = (read_pid("hog.pid"), read_pid("sleep.pid"));
    // Small pids: the namespace's own (its init is 1).
    assert!(hog < 100 && sleeper < 100, "namespace pids {hog}, {sleeper}");

    // The hog is killed 0.5 s after `go`; the sleep wakes 3 s after it.
    let rec = live
        .wait_for(Duration::from_secs(30), |v| v["type"] == "oom_kill")
        .unwrap_or_else(|| panic!("no oom_kill record:\n{}", live.seen.join("\n")));
    assert_eq!(i64_field(&rec, "pid"), hog, "the victim by its namespace pid: {}", excerpt(&rec));
    assert_eq!(str_field(&rec, "comm"), "mem_hog", "{}", excerpt(&rec));
    assert_eq!(u64_field(&rec, "memory_limit_bytes"), LIMIT, "{}", excerpt(&rec));
    // Under emulation (the kernel matrix) the hog can take longer to die than the sleep to
    // wake: its record may already have gone by.
    let sleep_ended =
        |v: &Value| v["type"] == "unblocked" && v["comm"] == "sleep" && v["exact"] == true;
    let rec = seen_or_wait(&mut live, Duration::from_secs(10), sleep_ended)
        .unwrap_or_else(|| panic!("no unblocked record for the sleep:\n{}", live.seen.join("\n")));
    assert_eq!(i64_field(&rec, "pid"), sleeper, "{}", excerpt(&rec));
    assert_eq!(i64_field(&rec, "tid"), sleeper, "{}", excerpt(&rec));

    // The oom_kill finding names the cgroup the victim was killed in (the kernel log's), not
    // the one it was in when hangwatch last scanned it, and the limit that was hit.
    let f = seen_or_wait(&mut live, Duration::from_secs(15), |v| {
        v["type"] == "finding" && v["kind"] == "oom_kill"
    })
    .unwrap_or_else(|| panic!("no oom_kill finding:\n{}", live.seen.join("\n")));
    let summary = str_field(&f, "summary");
    assert!(summary.contains(&format!("in {}", cg.path)), "{summary}");
    assert!(summary.contains("limit 64.0 MiB"), "{summary}");
    assert_eq!(array_field(&f, "pids")[0].as_i64(), Some(hog), "{}", excerpt(&f));

    drop(live);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--exact-memory`: every memory call of a known sequence, counted in the kernel.
#[test]
fn exact_memory_counts_each_call_in_the_kernel() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn("mem_calls");
    let pid = child.pid_arg();
    // The calls start 1.5 s into a 3 s window: well after the probes attach (~0.5 s).
    let snap = snapshot_while(
        &lock,
        &["--pid", &pid, "--window", "3s", "--exact-memory"],
        Duration::from_millis(1500),
        || signal(&child, libc::SIGUSR1),
    );
    let probes = array_field(&snap, "probes");
    assert!(
        probes.iter().all(|p| p["attached"] == true),
        "every probe attached: {}",
        excerpt(&Value::Array(probes.clone()))
    );
    let m = memory_of(&snap, child.pid);
    assert_eq!(str_field(m, "counted_by"), "kernel", "{}", excerpt(m));
    let calls = field(m, "calls");
    let want = [
        ("brk_grows", 10),
        ("brk_shrinks", 3),
        ("mmap", 6),
        ("mmap_bytes", 5 * 8 * MIB + MIB),
        ("munmap", 5),
        ("munmap_bytes", 5 * 8 * MIB),
        ("mremap", 1),
        ("mremap_grow_bytes", 2 * MIB),
        ("mremap_shrink_bytes", 0),
        ("madvise_free", 5),
        ("madvise_free_bytes", 5 * 4 * MIB),
    ];
    for (name, value) in want {
        assert_eq!(u64_field(calls, name), value, "{name}: {}", excerpt(m));
    }
    assert_eq!(u64_field(m, "brk_grows"), 10, "{}", excerpt(m));
    assert_eq!(u64_field(m, "brk_grow_bytes"), 10 * MIB, "{}", excerpt(m));
    assert_eq!(u64_field(m, "brk_shrink_bytes"), 3 * MIB, "{}", excerpt(m));
    assert_eq!(u64_field(m, "munmap_bytes"), 5 * 8 * MIB, "{}", excerpt(m));
    assert_eq!(u64_field(m, "returned_bytes"), (3 + 40 + 20) * MIB, "{}", excerpt(m));

    // Without the flag the same figures come from samples.
    let snap = snapshot_json(&lock, &["--pid", &pid, "--window", "200ms"]);
    let m = memory_of(&snap, child.pid);
    assert_eq!(str_field(m, "counted_by"), "samples", "{}", excerpt(m));
    assert!(m["calls"].is_null(), "{}", excerpt(m));
}
