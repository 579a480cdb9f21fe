//! Findings on real reproductions: deadlocks across processes and between threads, a hung
//! process, and an idle server that must not be reported.

use crate::common;

use common::{
    Child, CpuCgroup, array_field, excerpt, i64_field, require_root, serial, snapshot_json,
    str_field,
};
use serde_json::Value;

fn findings(snap: &Value) -> &Vec<Value> {
    array_field(snap, "findings")
}

fn of_kind<'a>(snap: &'a Value, kind: &str) -> Vec<&'a Value> {
    findings(snap).iter().filter(|f| str_field(f, "kind") == kind).collect()
}

fn pids(f: &Value) -> Vec<i64> {
    array_field(f, "pids").iter().map(|p| p.as_i64().expect("pid is a number")).collect()
}

#[test]
fn parent_joining_child_stuck_on_full_pipe_is_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn("deadlock_pipe_join");
    let child = parent.fact_i64("child");
    let inode = parent.fact_i64("inode");
    parent.wait_since_ready(std::time::Duration::from_millis(1500));
    let snap = snapshot_json(&lock, &["--pid", &parent.pid_arg()]);
    let dl = of_kind(&snap, "deadlock");
    assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(&snap));
    let f = dl[0];
    let mut p = pids(f);
    p.sort();
    assert_eq!(p, vec![parent.pid as i64, child], "both pids named:\n{}", excerpt(f));
    assert_eq!(str_field(f, "severity"), "critical");
    let summary = str_field(f, "summary");
    assert!(summary.contains(&format!("pipe:[{inode}]")), "the pipe is named: {summary}");
    assert!(summary.contains("wait4"), "the join is named: {summary}");
    let chain = array_field(f, "chain");
    assert_eq!(chain.len(), 2, "{}", excerpt(f));
    let syscalls: Vec<&str> = chain.iter().map(|s| str_field(s, "syscall")).collect();
    assert!(syscalls.contains(&"wait4") && syscalls.contains(&"write"), "{syscalls:?}");
    for s in chain {
        assert!(!str_field(s, "waits_on").is_empty());
        i64_field(s, "tid");
    }
    assert!(f.get("since").is_some_and(|s| s.is_string()), "{}", excerpt(f));
}

#[test]
fn client_and_server_both_receiving_on_a_unix_socket_pair_is_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let client = Child::spawn("deadlock_socketpair");
    let server = client.fact_i64("server");
    let (client_ino, server_ino) =
        (client.fact_i64("client_inode"), client.fact_i64("server_inode"));
    client.wait_since_ready(std::time::Duration::from_millis(1500));
    let snap = snapshot_json(&lock, &["--pid", &client.pid_arg()]);
    let dl = of_kind(&snap, "deadlock");
    assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(&snap));
    let f = dl[0];
    let mut p = pids(f);
    p.sort();
    assert_eq!(p, vec![client.pid as i64, server], "both pids named:\n{}", excerpt(f));
    let chain = array_field(f, "chain");
    let why: Vec<&str> = chain.iter().map(|s| str_field(s, "waits_on")).collect();
    let client_step = format!(
        "unix socket:[{client_ino}] whose peer socket:[{server_ino}] only pid {server} holds"
    );
    let server_step = format!(
        "unix socket:[{server_ino}] whose peer socket:[{client_ino}] only pid {} holds",
        client.pid
    );
    assert!(why.contains(&client_step.as_str()), "{why:?}");
    assert!(why.contains(&server_step.as_str()), "{why:?}");
    for s in chain {
        assert_eq!(str_field(s, "syscall"), "recvfrom", "{}", excerpt(s));
    }
}

#[test]
fn mutexes_taken_in_opposite_order_are_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let prog = Child::spawn("deadlock_mutex");
    let (t1, t2) = (prog.fact_i64("t1"), prog.fact_i64("t2"));
    prog.wait_since_ready(std::time::Duration::from_millis(1200));
    let snap = snapshot_json(&lock, &["--pid", &prog.pid_arg()]);
    let dl = of_kind(&snap, "deadlock");
    assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(&snap));
    let f = dl[0];
    let mut tids: Vec<i64> = array_field(f, "tids").iter().filter_map(|t| t.as_i64()).collect();
    tids.sort();
    let mut want = vec![t1, t2];
    want.sort();
    assert_eq!(tids, want, "both threads named:\n{}", excerpt(f));
    let summary = str_field(f, "summary");
    assert!(summary.contains(&format!("mutex owned by thread {t1}")), "{summary}");
    assert!(summary.contains(&format!("mutex owned by thread {t2}")), "{summary}");
}

#[test]
fn process_stuck_in_poll_after_working_is_hung() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let prog = Child::spawn("hung_poll");
    prog.wait_since_ready(std::time::Duration::from_millis(1500));
    let snap = snapshot_json(&lock, &["--pid", &prog.pid_arg(), "--hung-after", "1s"]);
    let hung = of_kind(&snap, "hung");
    assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(&snap));
    assert_eq!(pids(hung[0]), vec![prog.pid as i64]);
    let summary = str_field(hung[0], "summary");
    assert!(summary.contains("poll(") && summary.contains("timeout=infinite"), "{summary}");
    // The chain goes to the silent process that holds the socket's other end.
    let peer = prog.fact_i64("peer");
    let chain = array_field(hung[0], "chain");
    assert_eq!(chain.len(), 2, "{}", excerpt(hung[0]));
    assert!(str_field(&chain[0], "waits_on").ends_with(&format!("only pid {peer} holds")));
    assert_eq!(i64_field(&chain[1], "pid"), peer, "{}", excerpt(hung[0]));
    assert_eq!(str_field(&chain[1], "syscall"), "pause", "{}", excerpt(hung[0]));
    // Not yet hung with the default threshold (30 s).
    let snap = snapshot_json(&lock, &["--pid", &prog.pid_arg()]);
    assert!(of_kind(&snap, "hung").is_empty(), "{}", excerpt(&snap));
}

#[test]
fn idle_server_in_epoll_wait_is_not_a_finding() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let server = Child::spawn("idle_server");
    server.wait_since_ready(std::time::Duration::from_millis(1500));
    let snap = snapshot_json(&lock, &["--pid", &server.pid_arg(), "--hung-after", "1s"]);
    // It is listed and blocked in epoll_wait, yet nothing is wrong with it.
    let procs = array_field(&snap, "processes");
    assert_eq!(procs.len(), 1, "{}", excerpt(&snap));
    let blocked = &array_field(&procs[0], "threads")[0]["blocked"];
    assert!(str_field(blocked, "syscall").starts_with("epoll"), "{}", excerpt(blocked));
    assert!(findings(&snap).is_empty(), "an idle server is not a finding:\n{}", excerpt(&snap));
}

#[test]
fn more_runnable_threads_than_the_cpu_quota_is_cpu_throttled() {
    if !require_root() {
        return;
    }
    let lock = serial();
    // Two spinning processes in a cgroup allowed a fifth of a CPU.
    let Some(cg) = CpuCgroup::create(0.2) else { return };
    let burners = [Child::spawn("cpu_burn"), Child::spawn("cpu_burn")];
    for b in &burners {
        cg.add(b.pid);
    }
    // Let the quota run out a few periods (100 ms each).
    std::thread::sleep(std::time::Duration::from_millis(600));
    let pid_args: Vec<String> = burners.iter().map(|b| b.pid_arg()).collect();
    let snap =
        snapshot_json(&lock, &["--pid", &pid_args[0], "--pid", &pid_args[1], "--window", "500ms"]);
    let found = of_kind(&snap, "cpu_throttled");
    assert_eq!(found.len(), 1, "one cpu_throttled finding expected:\n{}", excerpt(&snap));
    let f = found[0];
    let mut p = pids(f);
    p.sort();
    let mut want: Vec<i64> = burners.iter().map(|b| i64::from(b.pid)).collect();
    want.sort();
    assert_eq!(p, want, "both processes named:\n{}", excerpt(f));
    let summary = str_field(f, "summary");
    assert!(summary.contains(&cg.path), "the cgroup is named: {summary}");
    assert!(summary.contains("quota of 0.20 cores"), "the quota is named: {summary}");
    assert!(summary.contains("2 runnable threads"), "the thread count is named: {summary}");
    drop(burners);
}

#[test]
fn a_thread_held_in_uninterruptible_sleep_is_hung() {
    if !require_root() {
        return;
    }
    let lock = serial();
    // The parent sleeps in D inside vfork() for as long as its child neither execs nor exits.
    let stuck = Child::spawn("vfork_stuck");
    let parent = stuck.fact_i64("parent");
    stuck.wait_since_ready(std::time::Duration::from_millis(1500));
    let pid = parent.to_string();
    let snap = snapshot_json(&lock, &["--pid", &pid, "--hung-after", "1s"]);
    let found = of_kind(&snap, "hung");
    assert_eq!(found.len(), 1, "one hung finding expected:\n{}", excerpt(&snap));
    assert_eq!(pids(found[0]), vec![parent]);
    let summary = str_field(found[0], "summary");
    assert!(summary.contains("uninterruptible sleep (state D)"), "{summary}");
    assert!(summary.contains("vfork() child"), "{summary}");
    // Before --hung-after (default 30 s): not yet.
    let snap = snapshot_json(&lock, &["--pid", &pid]);
    assert!(of_kind(&snap, "hung").is_empty(), "{}", excerpt(&snap));
}

#[test]
fn semaphore_whose_poster_died_is_an_orphaned_wait() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let orphan = Child::spawn("sem_orphan");
    orphan.wait_since_ready(std::time::Duration::from_millis(1200));
    // An orphaned wait is reported once it has lasted --hung-after or 5 s, the shorter.
    let snap = snapshot_json(&lock, &["--pid", &orphan.pid_arg(), "--hung-after", "1s"]);
    let found = of_kind(&snap, "orphaned_wait");
    assert_eq!(found.len(), 1, "one orphaned_wait expected:\n{}", excerpt(&snap));
    assert_eq!(pids(found[0]), vec![orphan.pid as i64]);
    let summary = str_field(found[0], "summary");
    assert!(summary.contains("process-shared futex"), "{summary}");
    // glibc creates the semaphore under a temporary name and links it: maps shows that one.
    assert!(summary.contains("/dev/shm/sem."), "the semaphore's object is named: {summary}");
    assert!(summary.contains("no other live process maps"), "{summary}");
    assert!(of_kind(&snap, "deadlock").is_empty(), "{}", excerpt(&snap));

    // The same wait while the worker lives on and maps the semaphore: it could still post.
    let alive = Child::spawn_args("sem_orphan", &["live"]);
    alive.wait_since_ready(std::time::Duration::from_millis(1200));
    let snap = snapshot_json(&lock, &["--pid", &alive.pid_arg(), "--hung-after", "1s"]);
    let f = findings(&snap);
    assert!(
        f.iter()
            .all(|f| str_field(f, "kind") != "orphaned_wait" && str_field(f, "kind") != "deadlock"),
        "{}",
        excerpt(&snap)
    );
}
