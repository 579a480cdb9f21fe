//! The `not_returned` verdict on real processes, with the default snapshot (`--window 1s`)
//! run 5 times in a row: every run must give the same verdict (issue 11, item 1). Memory
//! freed but kept (brk heap, thread arena, CPython's pymalloc arenas) is flagged, at `low`,
//! naming where it is; trimmed memory and a cache in use are not; an idle live table is at
//! most `low` with wording that says hangwatch cannot tell. Live mode reaches the same
//! verdict and resolves it when the process gives its memory back.

use crate::common;

use std::time::Duration;

use common::redis::Redis;
use common::retain::*;
use common::*;

const RUNS: usize = 5;
/// Idle long enough for the "every thread asleep" evidence (5 s) to hold from the first run.
const IDLE: Duration = Duration::from_secs(6);

fn assert_flagged(v: &[MemVerdict], where_: &str) {
    for (i, r) in v.iter().enumerate() {
        assert!(r.not_returned, "run {i}: not flagged: {}", excerpt(&r.memory));
        let (sev, summary) = r.finding.clone().unwrap_or_else(|| panic!("run {i}: no finding"));
        assert_eq!(sev, "low", "run {i}: {summary}");
        assert!(summary.contains(where_), "run {i}: names {where_:?}: {summary}");
        assert!(summary.contains("cannot tell"), "run {i}: honest wording: {summary}");
        assert_eq!(r.evidence.as_deref(), Some("asleep"), "run {i}: {}", excerpt(&r.memory));
    }
}

fn assert_not_flagged(v: &[MemVerdict]) {
    for (i, r) in v.iter().enumerate() {
        assert!(!r.not_returned, "run {i}: flagged: {}", excerpt(&r.memory));
        assert_eq!(r.finding, None, "run {i}");
    }
}

#[test]
fn freed_brk_heap_pinned_by_a_live_top_chunk_is_flagged_every_time() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn_args("mem_retain", &["free-top"]);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_flagged(&v, "in its brk heap");
    let heap = &v[0].memory["layout"]["brk_heap"];
    assert!(u64_field(heap, "anon_bytes") >= 500 << 20, "{}", excerpt(heap));
    // The human report says where too, and the finding's severity.
    let run = run_hangwatch(&["snapshot", "--pid", &child.pid_arg()]);
    assert!(run.status.success(), "{}", run.describe());
    assert!(run.stdout.contains("memory_not_returned [low]"), "{}", run.stdout);
    assert!(run.stdout.contains("· where: "), "{}", run.stdout);
    assert!(run.stdout.contains("in its brk heap"), "{}", run.stdout);
}

#[test]
fn trimmed_brk_heap_is_never_flagged() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn_args("mem_retain", &["trim"]);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_not_flagged(&v);
    assert!(u64_field(&v[0].memory, "anon_rss_bytes") < 64 << 20, "{}", excerpt(&v[0].memory));
}

#[test]
fn freed_thread_arena_is_flagged_naming_the_arena() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn_args("mem_retain", &["arena"]);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_flagged(&v, "glibc thread-arena heaps");
    let arenas = &v[0].memory["layout"]["thread_arenas"];
    assert!(u64_field(arenas, "anon_bytes") >= 400 << 20, "{}", excerpt(arenas));
    assert!(u64_field(arenas, "count") >= 7, "{}", excerpt(arenas));
}

/// CPython 3 returns a pymalloc arena (an anonymous mmap) only when every object in it is
/// freed: with one small string in a hundred kept, almost every arena stays, resident.
const PYTHON_FRAGMENTED: &str = r#"
import signal
rows = [str(i) * 3 for i in range(4_000_000)]
keep = rows[::100]
del rows
print("ready kept=%d" % len(keep), flush=True)
while True:
    signal.pause()
"#;

/// All objects freed: CPython gives every arena back.
const PYTHON_ALL_FREED: &str = r#"
import signal
rows = [str(i) * 3 for i in range(4_000_000)]
del rows
print("ready", flush=True)
while True:
    signal.pause()
"#;

#[test]
fn python_objects_deleted_but_arenas_pinned_are_flagged() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = spawn_python("python_fragmented", PYTHON_FRAGMENTED);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_flagged(&v, "anonymous mmaps");
    drop(child);
    let child = spawn_python("python_all_freed", PYTHON_ALL_FREED);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_not_flagged(&v);
}

#[test]
fn cache_reading_its_data_is_never_flagged() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn_args("mem_retain", &["cache"]);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    assert_not_flagged(&v);
    // It does hold the memory, and hangwatch says where.
    let heap = &v[0].memory["layout"]["brk_heap"];
    assert!(u64_field(heap, "anon_bytes") >= 500 << 20, "{}", excerpt(heap));
}

#[test]
fn idle_live_table_is_at_most_low_and_says_it_cannot_tell() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let child = Child::spawn_args("mem_retain", &["table"]);
    let v = default_snapshots(&lock, &child, IDLE, RUNS);
    // From outside it looks exactly like freed memory kept by the allocator: flagged, but
    // low, and the summary says so.
    assert_flagged(&v, "in its brk heap");
    for (i, r) in v.iter().enumerate() {
        let (_, summary) = r.finding.clone().unwrap_or_default();
        assert!(summary.contains("live dataset that sits idle"), "run {i}: {summary}");
    }
}

#[test]
fn live_mode_reaches_the_same_verdict_and_resolves_it_after_a_trim() {
    if !require_root() {
        return;
    }
    let _lock = serial();
    let child = Child::spawn_args("mem_retain", &["free-top"]);
    child.wait_since_ready(IDLE);
    let mut live = Live::start(&["--pid", &child.pid_arg()]);
    let is_ours = |v: &serde_json::Value, ty: &str| {
        v["type"] == ty
            && v["kind"] == "memory_not_returned"
            && v["pids"][0].as_i64() == Some(child.pid as i64)
    };
    let f = live
        .wait_for(Duration::from_secs(30), |v| is_ours(v, "finding"))
        .unwrap_or_else(|| panic!("no memory_not_returned finding:\n{}", live.seen.join("\n")));
    assert_eq!(str_field(&f, "severity"), "low", "{}", excerpt(&f));
    assert!(str_field(&f, "summary").contains("in its brk heap"), "{}", excerpt(&f));
    signal(&child, libc::SIGUSR1);
    let r = live
        .wait_for(Duration::from_secs(30), |v| is_ours(v, "finding_resolved"))
        .unwrap_or_else(|| panic!("not resolved after the trim:\n{}", live.seen.join("\n")));
    assert_eq!(str_field(&r, "kind"), "memory_not_returned");
}

#[test]
fn an_idle_redis_holding_its_dataset_is_not_flagged() {
    if !require_root() {
        return;
    }
    let lock = serial();
    // 300,000 values of 1,000 bytes: ~330 MiB of live data in jemalloc's mappings. Redis
    // idles between requests; its memory is its dataset, not memory freed and kept.
    let Some(redis) = Redis::start(&["--enable-debug-command", "yes"]) else { return };
    assert_eq!(redis.cli(&["DEBUG", "POPULATE", "300000", "key", "1000"]), "OK");
    std::thread::sleep(IDLE);
    let pid = redis.pid().to_string();
    for i in 0..3 {
        let snap = snapshot_json(&lock, &["--pid", &pid]);
        let v = mem_verdict(&snap, redis.pid());
        assert_eq!(v.memory["layout"]["allocator"], "jemalloc", "{}", excerpt(&v.memory));
        let anon = v.memory["anon_rss_bytes"].as_u64().unwrap_or(0);
        assert!(
            anon >= 256 << 20,
            "run {i}: the dataset is resident (else this proves nothing): {}",
            excerpt(&v.memory)
        );
        assert!(!v.not_returned, "run {i}: flagged: {}", excerpt(&v.memory));
        assert_eq!(v.finding, None, "run {i}");
    }
}
