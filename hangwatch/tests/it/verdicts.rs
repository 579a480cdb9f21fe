//! Verdicts on the incident classes of issue 11 (docs/findings.md, "Incident classes"): each
//! reproduced with real programs (CPython's multiprocessing, concurrent.futures, pyzmq/libzmq,
//! glibc), each judged by the default snapshot (`--window 1s`) five times in a row with the
//! same verdict every time, with the healthy look-alikes that must stay silent.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    Child, Live, MemCgroup, Serial, array_field, excerpt, i64_field, progs_dir, require_root,
    serial, snapshot_json, state, str_field,
};
use serde_json::Value;

/// `--hung-after` for these tests: small enough for test time.
const HUNG_AFTER: &str = "3s";
/// How long the programs have waited before the first snapshot (past `HUNG_AFTER`).
const SETTLE: Duration = Duration::from_millis(3500);
const RUNS: usize = 5;

/// Starts `tests/progs/<script>` under python3 (through `pyrun`, which execs it in place).
fn py(script: &str, args: &[&str]) -> Child {
    let path = progs_dir().join(script);
    let mut a = vec![path.to_str().expect("utf-8 path")];
    a.extend_from_slice(args);
    Child::spawn_args("pyrun", &a)
}

fn pids_of(f: &Value) -> Vec<i64> {
    array_field(f, "pids").iter().map(|p| p.as_i64().expect("pid is a number")).collect()
}

/// One verdict: each finding's kind, severity and sorted pids.
fn verdict(snap: &Value) -> Vec<(String, String, Vec<i64>)> {
    array_field(snap, "findings")
        .iter()
        .map(|f| {
            let mut p = pids_of(f);
            p.sort();
            (str_field(f, "kind").to_string(), str_field(f, "severity").to_string(), p)
        })
        .collect()
}

/// Runs the default snapshot on `pids` [`RUNS`] times; asserts every run reached the same
/// verdict and returns the runs.
fn snapshots(lock: &Serial, pids: &[i64], extra: &[&str]) -> Vec<Value> {
    let pid_args: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let mut args: Vec<&str> = vec!["--hung-after", HUNG_AFTER];
    for p in &pid_args {
        args.extend(["--pid", p.as_str()]);
    }
    args.extend_from_slice(extra);
    let runs: Vec<Value> = (0..RUNS).map(|_| snapshot_json(lock, &args)).collect();
    let first = verdict(&runs[0]);
    for (i, r) in runs.iter().enumerate().skip(1) {
        assert_eq!(
            verdict(r),
            first,
            "run {i} changed its mind:\n{}\nrun 0 was:\n{}",
            excerpt(r),
            excerpt(&runs[0])
        );
    }
    runs
}

fn assert_silent(runs: &[Value], what: &str) {
    for r in runs {
        let f = array_field(r, "findings");
        assert!(f.is_empty(), "{what} must not be a finding:\n{}", excerpt(r));
    }
}

/// The main thread of `pid` is listed as blocked in one of `syscalls` (the test exercises the
/// wait it means to).
fn assert_main_blocked_in(snap: &Value, pid: i32, syscalls: &[&str]) {
    let b = common::main_blocked(snap, pid);
    let s = str_field(b, "syscall");
    assert!(syscalls.contains(&s), "pid {pid} main thread in {s}, expected {syscalls:?}");
}

#[test]
fn consumers_of_a_live_idle_server_are_silent() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let unix = py("py_consumer.py", &[]);
    let tcp = py("py_consumer.py", &["tcp"]);
    tcp.wait_since_ready(SETTLE);
    unix.wait_since_ready(SETTLE);
    let pids = [unix.pid as i64, unix.fact_i64("server"), tcp.pid as i64, tcp.fact_i64("server")];
    let runs = snapshots(&lock, &pids, &[]);
    assert_main_blocked_in(&runs[0], unix.pid, &["recvfrom", "read", "recvmsg"]);
    assert_main_blocked_in(&runs[0], tcp.pid, &["recvfrom", "read", "recvmsg"]);
    assert_silent(&runs, "a queue consumer of a live server (or the idle server)");
}

#[test]
fn thread_pool_waiting_on_a_signal_set_event_is_silent_without_handler_low() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let handled = py("py_pool_signal.py", &[]);
    let bare = py("py_pool_signal.py", &["nohandler"]);
    bare.wait_since_ready(SETTLE);
    let runs = snapshots(&lock, &[handled.pid as i64], &[]);
    assert_main_blocked_in(&runs[0], handled.pid, &["futex"]);
    assert_silent(&runs, "a pool whose main thread waits for a signal handler's event");

    // Nothing can set the event: every thread waits on a futex with no owner. Low, never
    // a critical deadlock.
    let runs = snapshots(&lock, &[bare.pid as i64], &[]);
    let f = array_field(&runs[0], "findings");
    assert_eq!(f.len(), 1, "{}", excerpt(&runs[0]));
    assert_eq!(str_field(&f[0], "kind"), "deadlock");
    assert_eq!(str_field(&f[0], "severity"), "low", "{}", excerpt(&f[0]));
    assert_eq!(pids_of(&f[0]), vec![bare.pid as i64]);
    let summary = str_field(&f[0], "summary");
    assert!(summary.starts_with("every thread waits, nothing visible can wake them"), "{summary}");
}

#[test]
fn pause_and_sigwait_are_silent() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let paused = py("py_signal_wait.py", &["pause"]);
    let sigwait = py("py_signal_wait.py", &["sigwait"]);
    sigwait.wait_since_ready(SETTLE);
    let runs = snapshots(&lock, &[paused.pid as i64, sigwait.pid as i64], &[]);
    assert_main_blocked_in(&runs[0], paused.pid, &["pause", "rt_sigsuspend"]);
    assert_main_blocked_in(&runs[0], sigwait.pid, &["rt_sigtimedwait"]);
    assert_silent(&runs, "a process waiting for a signal");
}

#[test]
fn idle_multiprocessing_pool_is_silent() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let pool = py("py_idle_pool.py", &[]);
    pool.wait_since_ready(SETTLE);
    let mut pids = vec![pool.pid as i64];
    pids.extend(pool.fact("workers").split(',').map(|p| p.parse::<i64>().expect("worker pid")));
    let runs = snapshots(&lock, &pids, &[]);
    for w in &pids[1..] {
        let p = common::find_process(&runs[0], *w as i32);
        assert!(!array_field(p, "threads").is_empty(), "{}", excerpt(p));
    }
    assert_silent(&runs, "an idle multiprocessing pool");
}

/// The hung verdict on one process: exactly one finding, `hung`, naming only it, its chain
/// starting at its main thread.
fn assert_hung(runs: &[Value], pid: i32) -> String {
    let f = array_field(&runs[0], "findings");
    assert_eq!(f.len(), 1, "one finding expected:\n{}", excerpt(&runs[0]));
    assert_eq!(str_field(&f[0], "kind"), "hung", "{}", excerpt(&f[0]));
    assert_eq!(str_field(&f[0], "severity"), "high");
    assert_eq!(pids_of(&f[0]), vec![pid as i64]);
    let chain = array_field(&f[0], "chain");
    assert_eq!(i64_field(&chain[0], "tid"), pid as i64, "{}", excerpt(&f[0]));
    str_field(&f[0], "summary").to_string()
}

#[test]
fn python_lock_abba_with_a_sigterm_handler_is_a_critical_deadlock_by_its_stacks() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let prog = py("py_lock_abba.py", &[]);
    let idle = py("py_lock_abba.py", &["event"]);
    idle.wait_since_ready(SETTLE);
    let runs = snapshots(&lock, &[prog.pid as i64], &[]);
    for r in &runs {
        let f = array_field(r, "findings");
        assert_eq!(f.len(), 1, "{}", excerpt(r));
        assert_eq!(str_field(&f[0], "kind"), "deadlock");
        assert_eq!(str_field(&f[0], "severity"), "critical", "{}", excerpt(&f[0]));
        let summary = str_field(&f[0], "summary");
        assert!(summary.contains("by their stacks"), "{summary}");
        assert!(summary.contains("py_lock_abba.py:28 in one()"), "{summary}");
        assert!(summary.contains("py_lock_abba.py:40 in two()"), "{summary}");
    }
    // The same threads waiting on Events nobody sets, the same handler: idle, silent.
    let runs = snapshots(&lock, &[idle.pid as i64], &[]);
    assert_silent(&runs, "threads waiting on events in a process with a SIGTERM handler");
    // Without stacks there is no evidence of who holds what: silent as before.
    let runs = snapshots(&lock, &[prog.pid as i64], &["--no-stacks"]);
    assert_silent(&runs, "the ABBA without stacks (a handler may wake a futex wait)");
}

#[test]
fn zmq_main_thread_stuck_beside_a_reconnecting_io_thread_is_hung() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let term = py("py_zmq_hang.py", &["term"]);
    let recv = py("py_zmq_hang.py", &["recv"]);
    recv.wait_since_ready(SETTLE);
    for prog in [&term, &recv] {
        let runs = snapshots(&lock, &[prog.pid as i64], &[]);
        assert_main_blocked_in(&runs[0], prog.pid, &["poll"]);
        let summary = assert_hung(&runs, prog.pid);
        assert!(summary.contains("only wake on timers"), "the ticking I/O thread: {summary}");
        assert!(summary.contains("timeout=infinite"), "{summary}");
        // By its stack, the term() one is the known libzmq shutdown hang; recv() is not.
        let term_hang = summary.contains("terminating a libzmq context");
        assert_eq!(term_hang, prog.pid == term.pid, "{summary}");
    }
}

#[test]
fn main_thread_in_queue_get_beside_a_heartbeat_thread_is_hung() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let prog = py("py_heartbeat.py", &[]);
    prog.wait_since_ready(SETTLE);
    let runs = snapshots(&lock, &[prog.pid as i64], &[]);
    let summary = assert_hung(&runs, prog.pid);
    let hb = prog.fact("heartbeat");
    assert!(summary.contains(&format!("only wake on timers: tid {hb}")), "{summary}");
}

#[test]
fn multiprocessing_join_before_draining_the_queue_is_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = py("py_mp_join.py", &[]);
    let child = parent.fact_i64("child");
    parent.wait_since_ready(Duration::from_millis(1500));
    let runs = snapshots(&lock, &[parent.pid as i64], &[]);
    let f = array_field(&runs[0], "findings");
    assert_eq!(f.len(), 1, "{}", excerpt(&runs[0]));
    assert_eq!(str_field(&f[0], "kind"), "deadlock");
    assert_eq!(str_field(&f[0], "severity"), "critical");
    let mut p = pids_of(&f[0]);
    p.sort();
    assert_eq!(p, vec![parent.pid as i64, child], "{}", excerpt(&f[0]));
    let chain = array_field(&f[0], "chain");
    let steps: Vec<(i64, &str)> =
        chain.iter().map(|s| (i64_field(s, "pid"), str_field(s, "syscall"))).collect();
    assert!(steps.contains(&(parent.pid as i64, "wait4")), "{steps:?}");
    assert!(steps.contains(&(child, "write")), "the child's feeder writing: {steps:?}");
}

#[test]
fn lock_copied_at_fork_is_an_orphaned_wait() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let mutex = Child::spawn_args("fork_lock", &["mutex"]);
    let sem = Child::spawn_args("fork_lock", &["sem"]);
    let handler = Child::spawn_args("fork_lock", &["handler"]);
    handler.wait_since_ready(SETTLE);

    let child = mutex.fact_i64("child");
    let owner = mutex.fact_i64("owner");
    let runs = snapshots(&lock, &[mutex.pid as i64, child], &[]);
    let f = array_field(&runs[0], "findings");
    assert_eq!(
        f.len(),
        1,
        "only the child's wait, not its parent in pause():\n{}",
        excerpt(&runs[0])
    );
    assert_eq!(str_field(&f[0], "kind"), "orphaned_wait");
    assert_eq!(pids_of(&f[0]), vec![child]);
    let summary = str_field(&f[0], "summary");
    assert!(summary.contains("a lock copied at fork()"), "{summary}");
    assert!(
        summary.contains(&format!("thread {owner} of pid {}", mutex.pid)),
        "the owner is named in its own process: {summary}"
    );

    let child = sem.fact_i64("child");
    let runs = snapshots(&lock, &[child], &[]);
    let f = array_field(&runs[0], "findings");
    assert_eq!(f.len(), 1, "{}", excerpt(&runs[0]));
    assert_eq!(str_field(&f[0], "kind"), "orphaned_wait");
    assert!(str_field(&f[0], "summary").contains("no thread is left to wake it"));

    // The same wait in a child that catches SIGUSR1: a handler may end it.
    let runs = snapshots(&lock, &[handler.fact_i64("child")], &[]);
    assert_silent(&runs, "a single-threaded futex wait with a signal handler");
}

#[test]
fn pool_worker_oom_killed_blames_the_victim_first() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let Some(cg) = MemCgroup::create(96 << 20) else { return };
    let procs = cg.dir.join("cgroup.procs");
    let parent = py("py_oom_pool.py", &[procs.to_str().expect("utf-8 path")]);
    let workers: Vec<i64> =
        parent.fact("workers").split(',').map(|p| p.parse().expect("worker pid")).collect();
    // Wait for the kill: one of the first workers disappears (the pool reaps and replaces it).
    let t0 = Instant::now();
    let victim = loop {
        if let Some(&w) = workers.iter().find(|w| state(**w as i32).is_none_or(|s| s == 'Z')) {
            break w;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no worker OOM-killed");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let runs = snapshots(&lock, &[parent.pid as i64], &[]);
    let f = array_field(&runs[0], "findings");
    assert!(!f.is_empty(), "{}", excerpt(&runs[0]));
    // Ranked first: the orphaned wait, naming the parent first and the victim.
    assert_eq!(str_field(&f[0], "kind"), "orphaned_wait", "{}", excerpt(&runs[0]));
    let p = pids_of(&f[0]);
    assert_eq!(p[0], parent.pid as i64, "{}", excerpt(&f[0]));
    assert!(p.contains(&victim), "the victim {victim} is named: {}", excerpt(&f[0]));
    let summary = str_field(&f[0], "summary");
    assert!(summary.contains(&format!("its worker pid {victim}")), "{summary}");
    assert!(summary.contains(&cg.path), "{summary}");
    // No separate deadlock among the pool's processes, and no sibling blamed.
    for x in f {
        assert_ne!(str_field(x, "kind"), "deadlock", "folded into the OOM: {}", excerpt(x));
        if str_field(x, "kind") == "orphaned_wait" {
            assert_eq!(
                pids_of(x)[0],
                parent.pid as i64,
                "a sibling is not a waiter: {}",
                excerpt(x)
            );
        }
    }
    assert!(
        f.iter().any(|x| str_field(x, "kind") == "oom_kill" && pids_of(x)[0] == victim),
        "{}",
        excerpt(&runs[0])
    );
    drop(parent);
}

#[test]
fn live_mode_reaches_the_same_hung_and_deadlock_verdicts() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let zmq = py("py_zmq_hang.py", &["term"]);
    let join = py("py_mp_join.py", &[]);
    let child = join.fact_i64("child");
    let (z, j) = (zmq.pid.to_string(), join.pid.to_string());
    // Live mode follows only the processes its filter selects (docs/findings.md): the child
    // is named too.
    let c = child.to_string();
    let mut live =
        Live::start(&["--hung-after", HUNG_AFTER, "--pid", &z, "--pid", &j, "--pid", &c]);
    let deadline = Duration::from_secs(40);
    let hung = live
        .wait_for(deadline, |v| v["type"] == "finding" && v["kind"] == "hung")
        .unwrap_or_else(|| panic!("no live hung finding:\n{}", live.seen.join("\n")));
    assert_eq!(pids_of(&hung), vec![zmq.pid as i64], "{}", excerpt(&hung));
    let seen_deadlock = live.seen.iter().any(|l| l.contains("\"kind\":\"deadlock\""));
    let dl = if seen_deadlock {
        let l = live.seen.iter().find(|l| l.contains("\"kind\":\"deadlock\"")).expect("seen");
        serde_json::from_str::<Value>(l).expect("json")
    } else {
        live.wait_for(deadline, |v| v["type"] == "finding" && v["kind"] == "deadlock")
            .unwrap_or_else(|| panic!("no live deadlock finding:\n{}", live.seen.join("\n")))
    };
    let mut p = pids_of(&dl);
    p.sort();
    assert_eq!(p, vec![join.pid as i64, child], "{}", excerpt(&dl));
    assert_eq!(str_field(&dl, "severity"), "critical");
    drop(live);
    // The snapshot says the same.
    let runs = snapshots(&lock, &[zmq.pid as i64, join.pid as i64], &[]);
    let kinds: Vec<(String, Vec<i64>)> = verdict(&runs[0])
        .into_iter()
        .map(|(k, _, mut p)| {
            (k, {
                p.sort();
                p
            })
        })
        .collect();
    assert!(kinds.contains(&("hung".into(), vec![zmq.pid as i64])), "{kinds:?}");
    let mut want = vec![join.pid as i64, child];
    want.sort();
    assert!(kinds.contains(&("deadlock".into(), want)), "{kinds:?}");
}

/// A PostgreSQL client waiting for a table lock that another session, idle in its transaction,
/// holds: the client is hung (it did nothing but connect and ask), its chain goes through its
/// server session (waiting for the lock, by its stack) to the idle session and that session's
/// own client. Controls on the same server stay silent: a client whose query sleeps on a
/// timer, an interactive session waiting for its user.
#[test]
fn postgresql_client_behind_a_table_lock_is_hung_and_names_the_idle_transaction() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let Some(pg) = common::postgres::Postgres::start() else { return };
    pg.sql("create table hw_t (x int)");
    let mut holder = pg.session();
    holder.send("begin; lock table hw_t in access exclusive mode;");
    pg.wait_until(
        "select count(*) from pg_stat_activity where state = 'idle in transaction'",
        |n| n == "1",
    );
    let holder_backend: i32 = pg
        .sql("select pid from pg_stat_activity where state = 'idle in transaction'")
        .parse()
        .expect("holder session pid");
    let waiter = pg.client("select count(*) from hw_t");
    let sleeper = pg.client("select pg_sleep(600)");
    let idle = pg.session();
    pg.wait_until("select count(*) from pg_stat_activity where wait_event_type = 'Lock'", |n| {
        n == "1"
    });
    let waiter_backend = pg.backend_of_query("select count(*) from hw_t").expect("waiter session");
    let sleeper_backend = pg.backend_of_query("select pg_sleep(600)").expect("sleeper session");
    // Past --hung-after, and past the 5 s a lock wait must last to count: the session's wait
    // is infinite only after its first deadlock check (deadlock_timeout, 1 s).
    std::thread::sleep(Duration::from_millis(8000));

    let (w, h) = (waiter.0.id() as i64, holder.pid() as i64);
    let runs = snapshots(&lock, &[w, sleeper.0.id() as i64, idle.pid() as i64], &[]);
    for r in &runs {
        let f = array_field(r, "findings");
        assert_eq!(f.len(), 1, "one finding, the waiting client's:\n{}", excerpt(r));
        let f = &f[0];
        assert_eq!(str_field(f, "kind"), "hung", "{}", excerpt(f));
        let pids = pids_of(f);
        assert_eq!(pids[0], w, "the waiting client first: {}", excerpt(f));
        for p in [waiter_backend as i64, holder_backend as i64] {
            assert!(pids.contains(&p), "pid {p} not named: {}", excerpt(f));
        }
        let summary = str_field(f, "summary");
        assert!(summary.contains("PostgreSQL lock (in ProcSleep"), "{summary}");
        assert!(
            summary.contains(&format!(
                "idle in a transaction, which may hold it: pid {holder_backend}"
            )),
            "{summary}"
        );
        // The chain: client → its session (the lock) → the idle session → its client. The
        // idle session is woken now and then (PostgreSQL's cache invalidation catch-up): in a
        // snapshot that finds it awake, its own step ends the chain.
        let chain: Vec<i64> =
            array_field(f, "chain").iter().map(|s| s["pid"].as_i64().expect("pid")).collect();
        assert_eq!(
            &chain[..3.min(chain.len())],
            &[w, waiter_backend as i64, holder_backend as i64],
            "{}",
            excerpt(f)
        );
        if let Some(&next) = chain.get(3) {
            assert_eq!(next, h, "after the idle session, its client: {}", excerpt(f));
        }
        for quiet in [sleeper.0.id() as i64, idle.pid() as i64, sleeper_backend as i64] {
            assert!(!pids.contains(&quiet), "pid {quiet} is healthy: {}", excerpt(f));
        }
    }
    // Live mode over the whole node, with stacks (`--live-stacks`: off by default there, for
    // their cost), says the same.
    let mut live = Live::start(&["--hung-after", HUNG_AFTER, "--live-stacks"]);
    let hung = live
        .wait_for(Duration::from_secs(40), |v| {
            v["type"] == "finding" && v["kind"] == "hung" && v["pids"][0] == w
        })
        .unwrap_or_else(|| panic!("no live hung finding for {w}:\n{}", live.seen.join("\n")));
    let pids = pids_of(&hung);
    assert!(pids.contains(&(waiter_backend as i64)), "{}", excerpt(&hung));
    assert!(str_field(&hung, "summary").contains("PostgreSQL lock"), "{}", excerpt(&hung));
    // Live findings name the frame each step waits in, as the snapshot's do.
    let session = array_field(&hung, "chain")
        .iter()
        .find(|s| s["pid"] == waiter_backend)
        .unwrap_or_else(|| panic!("no step for the session:\n{}", excerpt(&hung)));
    assert!(
        session["frame"].as_str().is_some_and(|f| f.contains("WaitEventSetWait")),
        "{}",
        excerpt(session)
    );
}
