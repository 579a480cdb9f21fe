//! Memory sampling and OOM kills against real processes that really leak, give memory back
//! and get OOM-killed, through the library (`hangwatch::memory`, `hangwatch::sources::{cgroup, kmsg}`). What the
//! binary reports about the same programs is tested in `report_memory.rs`.
//!
//! Every test holds `common::serial()`: the rate checks must not share the two CPUs with
//! another test's 2000 forks. The /proc sampling tests run as any user; the OOM test needs
//! root (cgroups, /dev/kmsg) and says SKIPPED without it.

use crate::common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hangwatch::memory::{self, MIB, MemHistory, MemSample, Thresholds};
use hangwatch::model::oom::boot_us_to_mono_ns;
use hangwatch::procfs;
use hangwatch::sources::{cgroup, kmsg};

const GIB: u64 = 1024 * MIB;

/// One sample of a test program, which must be alive.
fn sample(child: &Child) -> MemSample {
    memory::sample(child.pid, procfs::monotonic_ns()).unwrap_or_else(|| {
        panic!("{} (pid {}) could not be sampled: has it died?", child.name, child.pid)
    })
}

/// `n` samples `every` apart into `h`.
fn sample_n(child: &Child, h: &mut MemHistory, n: usize, every: Duration) {
    for i in 0..n {
        if i > 0 {
            thread::sleep(every);
        }
        h.push(sample(child));
    }
}

/// Samples every 100 ms until `done(sample)` (at most `timeout`); panics with the history.
fn sample_until(
    child: &Child,
    h: &mut MemHistory,
    timeout: Duration,
    what: &str,
    done: impl Fn(&MemSample) -> bool,
) {
    let t0 = Instant::now();
    loop {
        let s = sample(child);
        h.push(s);
        if done(&s) {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "{} (pid {}): {what} did not happen within {timeout:?}; samples: {:#?}",
            child.name,
            child.pid,
            h.samples().collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Verdict thresholds for a test that watches for ~1-2 s instead of minutes.
fn short_cfg() -> Thresholds {
    Thresholds {
        min_span: Duration::from_millis(800),
        ..Thresholds::for_window(Duration::from_secs(2))
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

#[test]
fn brk_heap_kept_after_free_is_not_returned() {
    let _serial = serial();
    let child = Child::spawn("mem_brk_retain");
    let grown = child.fact_i64("heap") as u64;
    let mut h = MemHistory::default();
    sample_n(&child, &mut h, 8, Duration::from_millis(200));
    let s = *h.latest().expect("samples");

    // The [heap] mapping (end - start_brk) is what sbrk(0) moved, up to page rounding and
    // whatever the C runtime used before main.
    assert!(s.heap.abs_diff(grown) < MIB, "heap {} vs sbrk growth {grown}: {s:?}", s.heap);
    assert!(s.heap >= GIB, "heap {} MiB: {s:?}", mib(s.heap));
    assert!(s.rss_anon >= GIB * 95 / 100, "freed pages should stay resident: {s:?}");
    assert!(s.rss >= s.rss_anon && s.hwm >= s.rss && s.vm_size >= s.rss, "{s:?}");
    assert_eq!(h.heap_peak, s.heap);

    // It reached its size before the first sample: no brk change was observed.
    assert_eq!((h.brk_grows, h.brk_shrinks), (0, 0), "{h:#?}");
    assert!(h.returned_bytes < 4 * MIB, "{h:#?}");
    // An idle process maps and unmaps nothing.
    assert_eq!((h.mmap_bytes, h.munmap_bytes), (Some(0), Some(0)), "{h:#?}");

    let cfg = short_cfg();
    assert!(!h.is_growing(&cfg), "{h:#?}");
    assert!(
        h.not_returned(&cfg, 0.0),
        "a 1 GiB brk heap kept after free() must be flagged: {h:#?}"
    );
    // With the default thresholds (5 s of samples needed) there is no verdict yet.
    assert!(!h.not_returned(&Thresholds::default(), 0.0));
}

#[test]
fn mmap_then_munmap_is_returned_not_flagged() {
    let _serial = serial();
    let mut child = Child::spawn("mem_mmap_unmap");
    let mapped = child.fact_i64("mapped") as u64;
    let mut h = MemHistory::default();
    sample_n(&child, &mut h, 4, Duration::from_millis(100));
    let held = *h.latest().expect("samples");
    assert!(held.rss_anon >= mapped, "touched pages should be resident: {held:?}");
    assert!(held.heap < 16 * MIB, "mmap'd memory is not the brk heap: {held:?}");

    signal(&child, libc::SIGUSR1);
    sample_until(&child, &mut h, Duration::from_secs(10), "munmap", |s| s.rss_anon < 64 * MIB);
    sample_n(&child, &mut h, 10, Duration::from_millis(100));
    child.assert_alive();

    assert!(h.anon_peak >= mapped, "{h:#?}");
    assert!(
        h.returned_bytes >= mapped * 98 / 100,
        "returned {} MiB: {h:#?}",
        mib(h.returned_bytes)
    );
    assert_eq!((h.brk_grows, h.brk_shrinks), (0, 0), "munmap is not brk: {h:#?}");
    let cfg = short_cfg();
    assert!(!h.not_returned(&cfg, 0.0), "memory given back must not be flagged: {h:#?}");
    assert!(!h.is_growing(&cfg));
}

#[test]
fn malloc_trim_returns_heap_pages_but_keeps_heap_size() {
    let _serial = serial();
    let mut child = Child::spawn("mem_trim");
    let mut h = MemHistory::default();
    sample_n(&child, &mut h, 8, Duration::from_millis(200));
    let before = *h.latest().expect("samples");
    assert!(before.rss_anon >= GIB * 95 / 100 && before.heap >= GIB, "{before:?}");
    let cfg = short_cfg();
    assert!(h.not_returned(&cfg, 0.0), "before the trim it holds 1 GiB: {h:#?}");
    let returned_before = h.returned_bytes;

    signal(&child, libc::SIGUSR1);
    sample_until(&child, &mut h, Duration::from_secs(10), "malloc_trim", |s| s.rss_anon < 64 * MIB);
    sample_n(&child, &mut h, 10, Duration::from_millis(100));
    child.assert_alive();
    let after = *h.latest().expect("samples");

    assert!(
        h.returned_bytes - returned_before >= GIB * 95 / 100,
        "returned {} MiB: {h:#?}",
        mib(h.returned_bytes - returned_before)
    );
    // madvise(MADV_DONTNEED) leaves brk alone (malloc_trim may also trim a few pages at
    // the top): the heap is as big as before, its pages are gone.
    assert!(after.heap >= before.heap - MIB, "heap {} -> {}", before.heap, after.heap);
    assert!(h.brk_shrink_bytes < MIB, "{h:#?}");
    assert!(!h.not_returned(&cfg, 0.0), "a trimmed heap holds no memory: {h:#?}");
}

#[test]
fn growing_process_rate() {
    let _serial = serial();
    let child = Child::spawn("mem_grow");
    let rate = child.fact_i64("rate") as f64; // bytes per second
    let mut h = MemHistory::default();
    // 200 ms apart for 3 s.
    let t0 = Instant::now();
    for i in 0..16u32 {
        let due = Duration::from_millis(200) * i;
        if let Some(rest) = due.checked_sub(t0.elapsed()) {
            thread::sleep(rest);
        }
        h.push(sample(&child));
    }
    let want = rate * 60.0;
    let got = h.growth_rate_bytes_per_min(Duration::from_secs(10)).expect("a rate");
    assert!(
        (got - want).abs() / want < 0.2,
        "rate {:.1} MiB/min, want {:.1} ± 20%: {:#?}",
        got / MIB as f64,
        want / MIB as f64,
        h.samples().collect::<Vec<_>>()
    );
    let cfg = Thresholds::for_window(Duration::from_secs(3));
    let g = h.growth(&cfg).unwrap_or_else(|| panic!("should be growing: {h:#?}"));
    assert!((g - want).abs() / want < 0.2);
    assert!(!h.not_returned(&cfg, 0.0));
    // 64 KiB mallocs come from brk: the heap end moves between samples.
    assert!(h.brk_grows >= 10, "{h:#?}");
    assert!(h.brk_grow_bytes >= 6 * MIB, "{h:#?}");
}

#[test]
fn exited_zombie_and_kernel_thread_sample_to_none() {
    let _serial = serial();
    // Sample a short-lived process as fast as possible while it starts and exits: every
    // result is a sample or None, and once it has exited, None.
    let mut seen = (0u32, 0u32);
    for _ in 0..200 {
        let mut c = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = i32::try_from(c.id()).expect("pid fits in i32");
        let mut h = MemHistory::new(16);
        loop {
            match memory::sample(pid, procfs::monotonic_ns()) {
                Some(s) => {
                    seen.0 += 1;
                    h.push(s);
                }
                None => {
                    seen.1 += 1;
                    break;
                }
            }
        }
        // It is a zombie now (or was never seen): still None.
        assert_eq!(memory::sample(pid, procfs::monotonic_ns()), None);
        c.wait().expect("reap true");
        assert_eq!(memory::sample(pid, procfs::monotonic_ns()), None);
    }
    assert_eq!(seen.1, 200);
    eprintln!("short-lived processes: {} samples before exit", seen.0);
    assert_eq!(memory::sample(2, procfs::monotonic_ns()), None, "kthreadd has no memory");
    assert_eq!(memory::sample(i32::MAX, 1), None);
}

#[test]
fn sampling_everything_while_2000_processes_come_and_go() {
    let _serial = serial();
    let spawner = thread::spawn(|| {
        for i in 0..2000 {
            let status = std::process::Command::new("true")
                .status()
                .unwrap_or_else(|e| panic!("spawn #{i} of `true`: {e}"));
            assert!(status.success());
        }
    });
    let mut histories: std::collections::HashMap<i32, MemHistory> = Default::default();
    let (mut rounds, mut ok, mut gone) = (0u64, 0u64, 0u64);
    while !spawner.is_finished() {
        for pid in procfs::list_pids() {
            match memory::sample(pid, procfs::monotonic_ns()) {
                Some(s) => {
                    ok += 1;
                    let h = histories.entry(pid).or_insert_with(|| MemHistory::new(32));
                    h.push(s);
                    let _ = (
                        h.growth(&Thresholds::default()),
                        h.not_returned(&Thresholds::default(), 0.0),
                    );
                }
                None => gone += 1,
            }
        }
        rounds += 1;
    }
    spawner.join().expect("spawner thread");
    eprintln!(
        "{rounds} rounds over /proc: {ok} samples, {gone} gone/kernel threads, {} pids",
        histories.len()
    );
    assert!(rounds > 0 && ok > 0);
    // Our own process was sampled every round.
    let me = histories.get(&(std::process::id() as i32)).expect("own pid sampled");
    assert_eq!(me.samples_seen, rounds);
}

// ---------------------------------------------------------------------------
// OOM kills

#[test]
fn oom_kill_in_memory_limited_cgroup_is_in_kernel_log() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (creates a memory cgroup, reads /dev/kmsg)");
        return;
    }
    let _serial = serial();
    const LIMIT: u64 = 64 * MIB;
    // Declared before the child: dropped after it (the child is killed and reaped first).
    let Some(cg) = MemCgroup::create(LIMIT) else { return };
    let child = Child::spawn("mem_hog");
    cg.add(child.pid);
    assert_eq!(cg.pids(), vec![child.pid]);
    assert_eq!(cgroup::memory_limit(&cg.path), Some(LIMIT), "limit of {}", cg.path);
    assert_eq!(cgroup::effective_memory_limit(&cg.path), Some(LIMIT));
    assert_eq!(cgroup::oom_kill_counter(&cg.path), Some(0));

    signal(&child, libc::SIGUSR1);
    let t0 = Instant::now();
    while state(child.pid) != Some('Z') {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "mem_hog (pid {}) in {} was not OOM-killed within 30 s (state {:?})",
            child.pid,
            cg.path,
            state(child.pid)
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cgroup::oom_kill_counter(&cg.path), Some(1), "oom_kill counter of {}", cg.path);

    // The kill is logged just before the victim dies; give the log a moment anyway.
    let mut kills = Vec::new();
    for _ in 0..50 {
        kills = kmsg::try_read_kmsg_history().expect("read /dev/kmsg as root");
        if kills.iter().any(|k| k.pid == child.pid && k.anon_rss_bytes.is_some()) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let k = kills.iter().find(|k| k.pid == child.pid).unwrap_or_else(|| {
        panic!("no OOM kill of pid {} in /dev/kmsg; kills found: {kills:#?}", child.pid)
    });
    assert_eq!(k.comm, "mem_hog", "{k:#?}");
    assert_eq!(k.constraint, "memcg", "{k:#?}");
    assert_eq!(k.cgroup.as_deref(), Some(cg.path.as_str()), "{k:#?}");
    assert_eq!(k.oom_memcg.as_deref(), Some(cg.path.as_str()), "{k:#?}");
    assert_eq!(k.memory_limit_bytes, Some(LIMIT), "the OOM domain's limit: {k:#?}");
    let usage = k.memory_usage_bytes.unwrap_or_else(|| panic!("no usage: {k:#?}"));
    assert!((LIMIT * 9 / 10..=LIMIT).contains(&usage), "{k:#?}");
    let anon = k.anon_rss_bytes.unwrap_or_else(|| panic!("no anon-rss: {k:#?}"));
    assert!((LIMIT / 2..=LIMIT).contains(&anon), "the victim's anon RSS: {k:#?}");
    assert!(k.total_vm_bytes.is_some_and(|v| v >= anon), "{k:#?}");
    assert_eq!(k.uid, Some(0));
    assert_eq!(k.source, "kmsg");
    // The kernel log clock runs with CLOCK_MONOTONIC: the kill happened after the signal.
    let now = procfs::monotonic_ns();
    let at = boot_us_to_mono_ns(k.time_boot_us);
    let ago = Duration::from_nanos(now.saturating_sub(at));
    assert!(
        at <= now + 50_000_000 && ago <= t0.elapsed() + Duration::from_millis(500),
        "kill logged at {at} ns, now {now} ns ({ago:?} ago, signal sent {:?} ago)",
        t0.elapsed()
    );
    drop(child);
    drop(cg);
}
