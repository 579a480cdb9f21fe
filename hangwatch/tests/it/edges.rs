//! Wait-for edges beyond pipes, Unix sockets and futexes: file locks (flock, POSIX and OFD
//! fcntl locks, from /proc/locks), TCP peers on this node, named FIFOs, and releasers that
//! cannot run (stopped, traced, frozen). Each situation is snapshotted with the default window
//! five times in a row and must give the same verdict every time.

use crate::common;

use common::redis::{Proc, Redis};
use common::{
    Child, Serial, array_field, excerpt, i64_field, require_root, serial, snapshot_json, str_field,
};
use serde_json::Value;

/// Snapshots taken per situation: the verdict must not change between them.
const RUNS: usize = 5;

fn of_kind<'a>(snap: &'a Value, kind: &str) -> Vec<&'a Value> {
    array_field(snap, "findings").iter().filter(|f| str_field(f, "kind") == kind).collect()
}

fn sorted_pids(f: &Value) -> Vec<i64> {
    let mut p: Vec<i64> =
        array_field(f, "pids").iter().map(|p| p.as_i64().expect("pid is a number")).collect();
    p.sort_unstable();
    p
}

fn waits_on(f: &Value) -> Vec<String> {
    array_field(f, "chain").iter().map(|s| str_field(s, "waits_on").to_string()).collect()
}

/// Runs `check` on [`RUNS`] snapshots of `args` taken one after the other.
fn every_run(lock: &Serial, args: &[&str], check: impl Fn(&Value)) {
    for _ in 0..RUNS {
        check(&snapshot_json(lock, args));
    }
}

#[test]
fn flock_and_fcntl_locks_taken_in_opposite_order_are_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn_args("file_locks", &["deadlock"]);
    let child = parent.fact_i64("child");
    parent.wait_since_ready(std::time::Duration::from_millis(1200));
    let want = {
        let mut w = vec![i64::from(parent.pid), child];
        w.sort_unstable();
        w
    };
    every_run(&lock, &["--pid", &parent.pid_arg()], |snap| {
        let dl = of_kind(snap, "deadlock");
        assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(snap));
        let f = dl[0];
        assert_eq!(sorted_pids(f), want, "{}", excerpt(f));
        let why = waits_on(f);
        let by_parent = format!("(POSIX WRITE 10-14) held by pid {child}");
        let by_child = format!("(FLOCK WRITE) held by pid {}", parent.pid);
        assert!(
            why.iter().any(|w| w.starts_with("file lock on") && w.ends_with(&by_parent)),
            "{why:?}"
        );
        assert!(why.iter().any(|w| w.ends_with(&by_child)), "{why:?}");
        // The fcntl step shows the range it asks for.
        let chain = array_field(f, "chain");
        let syscalls: Vec<&str> = chain.iter().map(|s| str_field(s, "syscall")).collect();
        assert!(syscalls.contains(&"flock") && syscalls.contains(&"fcntl"), "{syscalls:?}");
        assert!(str_field(f, "summary").contains("fcntl"), "{}", excerpt(f));
    });
    // The decoded arguments show the lock asked for.
    let snap = snapshot_json(&lock, &["--pid", &parent.pid_arg()]);
    let p = common::find_process(&snap, parent.pid);
    let blocked = &array_field(p, "threads")[0]["blocked"];
    assert_eq!(blocked["args"]["cmd"], "F_SETLKW", "{}", excerpt(blocked));
    assert_eq!(blocked["args"]["lock"]["type"], "F_WRLCK", "{}", excerpt(blocked));
    assert_eq!(blocked["args"]["lock"]["start"], 0, "{}", excerpt(blocked));
    assert_eq!(blocked["args"]["lock"]["len"], 100, "{}", excerpt(blocked));
}

#[test]
fn lock_held_by_a_stopped_process_names_it_as_the_culprit() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn_args("file_locks", &["stopped"]);
    let child = parent.fact_i64("child");
    parent.wait_since_ready(std::time::Duration::from_millis(1500));
    let child_arg = child.to_string();
    every_run(&lock, &["--pid", &child_arg, "--hung-after", "1s"], |snap| {
        let hung = of_kind(snap, "hung");
        assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(snap));
        let f = hung[0];
        assert_eq!(sorted_pids(f), vec![child], "{}", excerpt(f));
        let chain = array_field(f, "chain");
        assert_eq!(chain.len(), 2, "{}", excerpt(f));
        assert_eq!(str_field(&chain[0], "syscall"), "flock", "{}", excerpt(f));
        let first = str_field(&chain[0], "waits_on");
        assert!(first.ends_with(&format!("(FLOCK WRITE) held by pid {}", parent.pid)), "{first}");
        assert_eq!(i64_field(&chain[1], "pid"), i64::from(parent.pid), "{}", excerpt(f));
        let last = str_field(&chain[1], "waits_on");
        assert!(last.contains("stopped (state T)"), "{last}");
    });
}

#[test]
fn ofd_lock_holder_is_found_by_the_open_file() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn_args("file_locks", &["ofd"]);
    let child = parent.fact_i64("child");
    parent.wait_since_ready(std::time::Duration::from_millis(1500));
    let child_arg = child.to_string();
    every_run(&lock, &["--pid", &child_arg, "--hung-after", "1s"], |snap| {
        let hung = of_kind(snap, "hung");
        assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(snap));
        let chain = array_field(hung[0], "chain");
        assert_eq!(chain.len(), 2, "{}", excerpt(hung[0]));
        let first = str_field(&chain[0], "waits_on");
        let want = format!("(OFDLCK WRITE 0-EOF) held by pid {}", parent.pid);
        assert!(first.ends_with(&want), "{first}");
        assert_eq!(i64_field(&chain[1], "pid"), i64::from(parent.pid), "{}", excerpt(hung[0]));
        assert_eq!(str_field(&chain[1], "syscall"), "pause", "{}", excerpt(hung[0]));
        assert!(of_kind(snap, "deadlock").is_empty(), "{}", excerpt(snap));
    });
}

#[test]
fn tcp_client_chain_goes_through_its_local_server_to_the_stopped_lock_holder() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let client = Child::spawn_args("tcp_chain", &["locked"]);
    let (server, holder) = (client.fact_i64("server"), client.fact_i64("holder"));
    let port = client.fact_i64("port");
    client.wait_since_ready(std::time::Duration::from_millis(1500));
    every_run(&lock, &["--pid", &client.pid_arg(), "--hung-after", "1s"], |snap| {
        let hung = of_kind(snap, "hung");
        assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(snap));
        let chain = array_field(hung[0], "chain");
        let pids: Vec<i64> = chain.iter().map(|s| i64_field(s, "pid")).collect();
        // Two right answers, depending on whether the server counts as having done work
        // before its flock (1 s after its start: on a loaded machine it may): the client is
        // hung through the TCP hop, or the server is hung and the client, whose chain reaches
        // it through that hop, is grouped under it as a waiter.
        let steps = if pids.first() == Some(&i64::from(client.pid)) {
            assert_eq!(sorted_pids(hung[0]), vec![i64::from(client.pid)], "{}", excerpt(hung[0]));
            assert_eq!(pids, vec![i64::from(client.pid), server, holder], "{}", excerpt(hung[0]));
            let first = str_field(&chain[0], "waits_on");
            assert!(first.starts_with("tcp 127.0.0.1:"), "{first}");
            assert!(first.contains(&format!("-> 127.0.0.1:{port} socket:[")), "{first}");
            assert!(first.ends_with(&format!("only pid {server} holds")), "{first}");
            &chain[1..]
        } else {
            let mut want = vec![i64::from(client.pid), server];
            want.sort();
            assert_eq!(sorted_pids(hung[0]), want, "{}", excerpt(hung[0]));
            assert_eq!(pids, vec![server, holder], "{}", excerpt(hung[0]));
            &chain[..]
        };
        assert_eq!(str_field(&steps[0], "syscall"), "flock", "{}", excerpt(hung[0]));
        let second = str_field(&steps[0], "waits_on");
        assert!(second.ends_with(&format!("(FLOCK WRITE) held by pid {holder}")), "{second}");
        assert!(
            str_field(&steps[1], "waits_on").contains("stopped (state T)"),
            "{}",
            excerpt(hung[0])
        );
        assert!(of_kind(snap, "deadlock").is_empty(), "{}", excerpt(snap));
    });
}

#[test]
fn tcp_client_of_an_idle_local_server_is_not_a_finding() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let client = Child::spawn_args("tcp_chain", &["idle"]);
    let server = client.fact_i64("server");
    client.wait_since_ready(std::time::Duration::from_millis(1500));
    let server_arg = server.to_string();
    // The server's epoll set holds the client's peer socket (a cycle client -> server ->
    // client) and its listening socket: a new client can wake it, so nothing is stuck.
    every_run(
        &lock,
        &["--pid", &client.pid_arg(), "--pid", &server_arg, "--hung-after", "1s"],
        |snap| {
            let found = array_field(snap, "findings");
            assert!(found.is_empty(), "no finding expected:\n{}", excerpt(snap));
        },
    );
}

#[test]
fn two_processes_reading_named_fifos_from_each_other_are_a_deadlock() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn("fifo_cycle");
    let peer = parent.fact_i64("peer");
    let dir = parent.fact("dir").to_string();
    parent.wait_since_ready(std::time::Duration::from_millis(1200));
    let want = {
        let mut w = vec![i64::from(parent.pid), peer];
        w.sort_unstable();
        w
    };
    every_run(&lock, &["--pid", &parent.pid_arg()], |snap| {
        let dl = of_kind(snap, "deadlock");
        assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(snap));
        assert_eq!(sorted_pids(dl[0]), want, "{}", excerpt(dl[0]));
        let why = waits_on(dl[0]);
        let to_parent = format!("fifo {dir}/to_parent (deleted) whose only writer is pid {peer}");
        let to_child =
            format!("fifo {dir}/to_child (deleted) whose only writer is pid {}", parent.pid);
        assert!(why.contains(&to_parent), "{why:?}");
        assert!(why.contains(&to_child), "{why:?}");
    });
}

/// A cgroup v1 freezer cgroup made for one test. On drop it is thawed, whatever is left in it
/// is killed (a frozen process cannot die, so this must come before the processes' own guards
/// wait for them: declare it after them) and it is removed.
struct Freezer {
    path: std::path::PathBuf,
}

impl Freezer {
    fn create() -> Option<Freezer> {
        let root = std::path::Path::new("/sys/fs/cgroup/freezer");
        if !root.join("tasks").exists() {
            eprintln!("skipped: no cgroup v1 freezer at {}", root.display());
            return None;
        }
        let path = root.join(format!("hangwatch-edges-{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Some(Freezer { path })
    }

    fn freeze(&self, pid: i32) {
        let w = |f: &str, v: &str| {
            std::fs::write(self.path.join(f), v)
                .unwrap_or_else(|e| panic!("write {v} to {}/{f}: {e}", self.path.display()))
        };
        w("cgroup.procs", &pid.to_string());
        w("freezer.state", "FROZEN");
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path.join("freezer.state"), "THAWED");
        let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions; these are the test's own
            // processes, moved into this test's cgroup.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn lock_held_by_a_process_in_a_frozen_cgroup_names_the_cgroup() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn_args("file_locks", &["ofd"]);
    let Some(freezer) = Freezer::create() else { return };
    let child = parent.fact_i64("child");
    freezer.freeze(parent.pid);
    parent.wait_since_ready(std::time::Duration::from_millis(1500));
    let child_arg = child.to_string();
    every_run(&lock, &["--pid", &child_arg, "--hung-after", "1s"], |snap| {
        let hung = of_kind(snap, "hung");
        assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(snap));
        let chain = array_field(hung[0], "chain");
        assert_eq!(chain.len(), 2, "{}", excerpt(hung[0]));
        assert_eq!(i64_field(&chain[1], "pid"), i64::from(parent.pid), "{}", excerpt(hung[0]));
        let last = str_field(&chain[1], "waits_on");
        assert!(last.contains("is frozen (freezer.state FROZEN)"), "{last}");
        assert!(last.contains(&format!("hangwatch-edges-{}", std::process::id())), "{last}");
    });
    drop(freezer);
    drop(parent);
}

#[test]
fn lock_held_by_a_traced_process_names_its_tracer() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let parent = Child::spawn_args("file_locks", &["ofd"]);
    let child = parent.fact_i64("child");
    // A tracer that attaches (the tracee stops in `t`) and then only sleeps.
    let script = format!(
        "import ctypes,sys,time\nlibc=ctypes.CDLL(None,use_errno=True)\nif libc.ptrace(16,{},0,0)!=0: sys.exit('attach: errno %d' % ctypes.get_errno())\nprint('attached',flush=True)\ntime.sleep(600)\n",
        parent.pid
    );
    let mut tracer = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = tracer.stdout.take().expect("piped");
    let tracer = Kill(tracer);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read");
    assert_eq!(line.trim(), "attached", "the tracer could not attach");
    parent.wait_since_ready(std::time::Duration::from_millis(1500));
    let child_arg = child.to_string();
    let tracer_pid = tracer.0.id();
    every_run(&lock, &["--pid", &child_arg, "--hung-after", "1s"], |snap| {
        let hung = of_kind(snap, "hung");
        assert_eq!(hung.len(), 1, "one hung finding expected:\n{}", excerpt(snap));
        let chain = array_field(hung[0], "chain");
        assert_eq!(chain.len(), 2, "{}", excerpt(hung[0]));
        let last = str_field(&chain[1], "waits_on");
        assert!(last.contains(&format!("traced (state t) by pid {tracer_pid}")), "{last}");
    });
    drop(tracer);
}

/// The FUSE mount a test program made: on drop its connection is aborted (its server may be
/// stuck in `D` and unkillable until then; declare this after the program's guard so it drops
/// first), it is unmounted and its directory removed.
struct FuseMount {
    dir: String,
    minor: Option<u32>,
    mounted_fusectl: bool,
}

impl FuseMount {
    fn new(dir: &str) -> FuseMount {
        // The device minor from mountinfo: stat() of the mount could hang on its server.
        let minor = std::fs::read_to_string("/proc/self/mountinfo").ok().and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.get(4) == Some(&dir)).then(|| f.get(2)?.split_once(':')?.1.parse().ok())?
            })
        });
        let conns = std::path::Path::new("/sys/fs/fuse/connections");
        let mounted_fusectl = std::fs::read_dir(conns).is_ok_and(|mut d| d.next().is_none())
            && std::process::Command::new("mount")
                .args(["-t", "fusectl", "none", "/sys/fs/fuse/connections"])
                .status()
                .is_ok_and(|s| s.success());
        FuseMount { dir: dir.to_string(), minor, mounted_fusectl }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Some(m) = self.minor {
            let _ = std::fs::write(format!("/sys/fs/fuse/connections/{m}/abort"), "1");
        }
        if let Ok(c) = std::ffi::CString::new(self.dir.as_bytes()) {
            // SAFETY: c is a valid NUL-terminated path; MNT_DETACH never waits on the server.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
        if self.mounted_fusectl {
            let _ = std::process::Command::new("umount").arg("/sys/fs/fuse/connections").status();
        }
    }
}

#[test]
fn fuse_server_stat_ing_its_own_mount_is_a_deadlock_and_its_client_waits_on_it() {
    if !require_root() {
        return;
    }
    let lock = serial();
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse");
        return;
    }
    let server = Child::spawn("fuse_self");
    let mnt = FuseMount::new(server.fact("mnt"));
    assert!(mnt.minor.is_some(), "the mount {} is in mountinfo", mnt.dir);
    let client = server.fact_i64("client");
    server.wait_since_ready(std::time::Duration::from_millis(1200));
    let minor = mnt.minor.unwrap_or_default();
    every_run(&lock, &["--pid", &server.pid_arg()], |snap| {
        let dl = of_kind(snap, "deadlock");
        assert_eq!(dl.len(), 1, "one deadlock expected:\n{}", excerpt(snap));
        assert_eq!(sorted_pids(dl[0]), vec![i64::from(server.pid)], "{}", excerpt(dl[0]));
        let why = waits_on(dl[0]);
        let own =
            format!("FUSE mount {} (connection {minor}) that its own process serves", mnt.dir);
        assert!(why.contains(&own), "{why:?}");
    });
    // The client waits in stat() on the mount too (listed; hangwatch itself never touches
    // the mount, or this snapshot would hang).
    let snap = snapshot_json(&lock, &["--pid", &client.to_string()]);
    let p = common::find_process(&snap, client as i32);
    let blocked = &array_field(p, "threads")[0]["blocked"];
    assert_eq!(str_field(blocked, "syscall"), "newfstatat", "{}", excerpt(blocked));
    drop(mnt);
    drop(server);
}

/// A process started by a test, killed and reaped on drop.
#[test]
fn blpop_on_an_empty_list_of_a_live_redis_is_not_a_finding() {
    if !require_root() {
        return;
    }
    let lock = serial();
    let Some(redis) = Redis::start(&[]) else { return };
    let port = redis.port.clone();
    // A consumer blocked on an empty list, forever (timeout 0).
    let consumer = Proc(
        std::process::Command::new("redis-cli")
            .args(["-p", &port, "BLPOP", "hangwatch:empty", "0"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-cli"),
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (cpid, spid) = (consumer.0.id().to_string(), redis.pid().to_string());
    every_run(&lock, &["--pid", &cpid, "--pid", &spid, "--hung-after", "1s"], |snap| {
        // The consumer is listed as blocked on its connection ...
        let p = common::find_process(snap, consumer.0.id() as i32);
        assert!(!array_field(p, "threads").is_empty(), "{}", excerpt(p));
        // ... and nothing is wrong: redis is alive and would answer a push.
        let found = array_field(snap, "findings");
        assert!(found.is_empty(), "no finding expected:\n{}", excerpt(snap));
    });
    drop(consumer);
    drop(redis);
}
