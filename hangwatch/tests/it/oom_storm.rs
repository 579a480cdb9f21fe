//! OOM kills under a storm: every kill of the storm is reported live with the cgroup the
//! victim was in and that cgroup's limit. The kernel log rate-limits its OOM reports (10 per
//! 5 s), and a victim read from /proc after the kill has left its cgroup: only what the probe
//! read from the victim's task when the kernel chose it names the right cgroup for all of
//! them. Needs root and a memory controller.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;
/// Kills in the storm: well past the kernel log's burst of 10 reports.
const KILLS: usize = 60;

#[test]
fn every_kill_of_an_oom_storm_names_its_cgroup_and_limit() {
    if !require_root() {
        return;
    }
    let _lock = serial();
    const LIMIT: u64 = 32 * MIB;
    let Some(cg) = MemCgroup::create(LIMIT) else { return };
    let out = work_dir().join(format!("oom-storm-{}.pids", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let storm = Child::spawn_args(
        "oom_storm",
        &[&KILLS.to_string(), "3", out.to_str().expect("utf-8 path")],
    );
    cg.add(storm.pid);
    let mut live = Live::start(&[]);
    assert!(
        live.wait_for(Duration::from_secs(30), |v| v["type"] == "stats").is_some(),
        "hangwatch --json started"
    );
    signal(&storm, libc::SIGUSR1);
    let t0 = Instant::now();
    while !out.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "the storm did not finish in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&out).expect("pid list");
    let _ = std::fs::remove_file(&out);
    assert!(!text.contains("other"), "children ended otherwise than by SIGKILL: {text}");
    let victims: BTreeSet<i64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(victims.len(), KILLS, "{text}");

    // Every victim's record, each naming the storm's cgroup and its limit.
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut wrong = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < KILLS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(rec) = live.wait_for(left, |v| {
            v["type"] == "oom_kill" && v["pid"].as_i64().is_some_and(|p| victims.contains(&p))
        }) else {
            break;
        };
        let pid = rec["pid"].as_i64().unwrap_or(0);
        if !seen.insert(pid) {
            continue;
        }
        if rec["cgroup"].as_str() != Some(cg.path.as_str())
            || rec["memory_limit_bytes"].as_u64() != Some(LIMIT)
        {
            wrong.push(format!(
                "pid {pid}: cgroup {} limit {}",
                rec["cgroup"], rec["memory_limit_bytes"]
            ));
        }
    }
    drop(live);
    drop(storm);
    let missing: Vec<&i64> = victims.difference(&seen).collect();
    assert!(missing.is_empty(), "{} of {KILLS} kills not reported: {missing:?}", missing.len());
    assert!(
        wrong.is_empty(),
        "{} of {KILLS} kills with the wrong cgroup or limit (want {} and {LIMIT}):\n{}",
        wrong.len(),
        cg.path,
        wrong.join("\n")
    );
}
