//! Harness for the real-process integration tests.
//!
//! - [`Child`] builds and starts one of the C programs in `tests/progs/`,
//!   waits for its `ready ...` line and kills its whole process group on
//!   Drop (also when the test panics).
//! - [`snapshot`] runs `hangwatch snapshot --json ...`, asserts success and
//!   parses the one JSON object it prints.
//! - [`serial`] hands out the lock that serializes the tests (those of every
//!   module: they are one test binary): every snapshot attaches BPF programs,
//!   and the timing checks must not compete with another test's busy loop.
//! - Small JSON accessors that panic with the offending excerpt.

pub mod faults;
pub mod hostile;
pub mod postgres;
pub mod redis;
pub mod retain;
pub mod stacks;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod kernels;
pub use kernels::*;

/// How long a test program may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one hangwatch invocation may take before the test gives up.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Privileges

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test may go on. Otherwise says why it skips; use as
/// `if !common::require_root() { return; }`.
pub fn require_root() -> bool {
    if is_root() {
        true
    } else {
        eprintln!("SKIPPED: needs root (hangwatch loads eBPF programs)");
        false
    }
}

// ---------------------------------------------------------------------------
// Serialization of the tests

static SERIAL: Mutex<()> = Mutex::new(());

/// Proof that the caller holds the test lock. Take it first thing
/// in a test (before spawning programs) so that it is released last.
pub struct Serial {
    _guard: MutexGuard<'static, ()>,
}

pub fn serial() -> Serial {
    // A test that panicked while holding the lock poisons it; the lock only
    // orders tests, there is no data to be inconsistent.
    Serial { _guard: SERIAL.lock().unwrap_or_else(PoisonError::into_inner) }
}

// ---------------------------------------------------------------------------
// Paths and test programs

pub fn hangwatch_bin() -> PathBuf {
    match std::env::var_os("HANGWATCH_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_hangwatch")),
    }
}

/// `temp_dir()/hangwatch-tests-<pid>`: compiled programs for this test run.
/// Mode 0755 so that a test running hangwatch as an unprivileged user can
/// reach files placed here. Directories left by earlier runs whose process
/// is gone are removed on first use.
pub fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_work_dirs();
        let dir = std::env::temp_dir().join(format!("hangwatch-tests-{}", process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        dir
    })
}

fn remove_stale_work_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("hangwatch-tests-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn progs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("progs")
}

/// Compiles `tests/progs/<name>.c` once per test binary run and returns the
/// executable's path.
pub fn program(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(PoisonError::into_inner);

    let exe = work_dir().join(name);
    if exe.exists() {
        return exe;
    }
    let src = progs_dir().join(format!("{name}.c"));
    assert!(src.exists(), "no test program source {}", src.display());
    let tmp = work_dir().join(format!("{name}.tmp"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    // A program that needs its own flags names them on its first line: `/* cflags: ... */`.
    let text = std::fs::read_to_string(&src).unwrap_or_default();
    let extra: Vec<&str> = text
        .lines()
        .next()
        .and_then(|l| l.trim_start_matches("/*").trim().strip_prefix("cflags:"))
        .map(|f| f.trim_end_matches("*/").split_whitespace().collect())
        .unwrap_or_default();
    let out = Command::new(&cc)
        .args(["-O1", "-pthread", "-Wall"])
        .args(&extra)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run C compiler {cc:?}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed ({}):\n{}{}",
        src.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    std::fs::rename(&tmp, &exe)
        .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", tmp.display()));
    exe
}

// ---------------------------------------------------------------------------
// Child: a running test program

/// A running test program, in its own process group. Dropping it SIGKILLs
/// the whole group (the program and anything it forked) and reaps it.
pub struct Child {
    child: process::Child,
    pub name: String,
    pub pid: i32,
    /// The ready line without the trailing newline.
    pub ready_line: String,
    /// `key=value` words of the ready line.
    pub facts: HashMap<String, String>,
    /// When the harness read the ready line.
    pub ready_at: Instant,
    /// The same moment on the wall clock (what hangwatch reports in).
    pub ready_wall: SystemTime,
}

impl Child {
    /// Builds (if needed) and starts `tests/progs/<name>.c`, then waits up to
    /// [`READY_TIMEOUT`] for its ready line.
    pub fn spawn(name: &str) -> Child {
        Child::spawn_args(name, &[])
    }

    /// Like [`Child::spawn`], passing `args` to the program.
    pub fn spawn_args(name: &str, args: &[&str]) -> Child {
        let exe = program(name);
        let mut cmd = Command::new(&exe);
        cmd.args(args);
        Child::spawn_command(name, cmd)
    }

    /// Starts `cmd` (any program that prints a ready line), as [`Child::spawn`] does.
    pub fn spawn_command(name: &str, mut cmd: Command) -> Child {
        let exe = cmd.get_program().to_owned();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
        let mut spawned =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = spawned.stdout.take().expect("stdout is piped");
        let pid = i32::try_from(spawned.id()).expect("pid fits in i32");

        // From here on the guard owns the process: any panic below kills it.
        let mut guard = Child {
            child: spawned,
            name: name.to_owned(),
            pid,
            ready_line: String::new(),
            facts: HashMap::new(),
            ready_at: Instant::now(),
            ready_wall: SystemTime::now(),
        };

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let res = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((res, Instant::now(), SystemTime::now()));
            // Keep draining so the program never dies of SIGPIPE.
            let _ = io::copy(&mut reader, &mut io::sink());
        });

        let (line, at, wall) = match rx.recv_timeout(READY_TIMEOUT) {
            Ok((Ok(line), at, wall)) => (line, at, wall),
            Ok((Err(e), _, _)) => panic!("{name} (pid {pid}): reading its stdout failed: {e}"),
            Err(e) => {
                panic!("{name} (pid {pid}) printed no ready line within {READY_TIMEOUT:?}: {e}")
            }
        };
        if line.is_empty() {
            let status = guard.child.wait();
            panic!("{name} (pid {pid}) exited before it was ready: {status:?}");
        }
        let line = line.trim_end().to_owned();
        let mut words = line.split_whitespace();
        assert_eq!(
            words.next(),
            Some("ready"),
            "{name} (pid {pid}): unexpected first line {line:?}"
        );
        for word in words {
            let (k, v) = word.split_once('=').unwrap_or_else(|| {
                panic!("{name}: ready line {line:?}: {word:?} is not key=value")
            });
            guard.facts.insert(k.to_owned(), v.to_owned());
        }
        guard.ready_line = line;
        guard.ready_at = at;
        guard.ready_wall = wall;
        guard
    }

    pub fn pid_arg(&self) -> String {
        self.pid.to_string()
    }

    /// A fact from the ready line; panics if the program did not print it.
    pub fn fact(&self, key: &str) -> &str {
        self.facts.get(key).unwrap_or_else(|| {
            panic!("{}: ready line {:?} has no {key}=", self.name, self.ready_line)
        })
    }

    pub fn fact_i64(&self, key: &str) -> i64 {
        let v = self.fact(key);
        v.parse().unwrap_or_else(|e| panic!("{}: {key}={v:?} is not an integer: {e}", self.name))
    }

    /// A `0x...` fact (an address printed with `%p`).
    pub fn fact_hex(&self, key: &str) -> u64 {
        let v = self.fact(key);
        parse_hex(v).unwrap_or_else(|| panic!("{}: {key}={v:?} is not a hex number", self.name))
    }

    /// Time since the ready line was read.
    pub fn since_ready(&self) -> Duration {
        self.ready_at.elapsed()
    }

    /// Sleeps until at least `d` has passed since the ready line.
    pub fn wait_since_ready(&self, d: Duration) {
        if let Some(rest) = d.checked_sub(self.since_ready()) {
            thread::sleep(rest);
        }
    }

    /// The kernel's current wait channel of one of this program's threads.
    pub fn wchan(&self, tid: i64) -> String {
        read_proc(&format!("/proc/{}/task/{tid}/wchan", self.pid))
    }

    /// What `/proc/<pid>/fd/<fd>` points at (e.g. `pipe:[1234]`).
    pub fn fd_target(&self, fd: i64) -> String {
        let path = format!("/proc/{}/fd/{fd}", self.pid);
        std::fs::read_link(&path)
            .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
            .to_string_lossy()
            .into_owned()
    }

    /// Thread ids as the kernel lists them now.
    pub fn tids(&self) -> Vec<i64> {
        let dir = format!("/proc/{}/task", self.pid);
        let mut tids: Vec<i64> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read_dir {dir}: {e}"))
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        tids
    }

    /// Panics if the program has exited (e.g. crashed) since it was ready.
    pub fn assert_alive(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                panic!("{} (pid {}) exited unexpectedly: {status}", self.name, self.pid)
            }
            Err(e) => panic!("{} (pid {}): try_wait failed: {e}", self.name, self.pid),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions. The group id is
        // our child's pid (process_group(0)) and the child is not reaped yet,
        // so the id cannot have been reused.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

pub fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim_end()
        .to_owned()
}

pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u64::from_str_radix(digits, 16).ok()
}

// ---------------------------------------------------------------------------
// Running hangwatch

/// Outcome of one hangwatch invocation.
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Wall clock just before the spawn and just after the exit.
    pub started: SystemTime,
    pub finished: SystemTime,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        let signal = self.status.signal().map(|s| format!(" (signal {s})")).unwrap_or_default();
        format!(
            "`{}` exited with {:?}{signal} after {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.args.join(" "),
            self.status.code(),
            self.elapsed,
            self.stderr,
            truncate(&self.stdout, 4000),
        )
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs the hangwatch binary with `args` (no RUST_LOG, so stderr carries
/// only what the program itself decides to say).
pub fn run_hangwatch(args: &[&str]) -> Run {
    let mut cmd = Command::new(hangwatch_bin());
    cmd.args(args);
    run_command(cmd)
}

/// Runs `cmd` to completion with [`RUN_TIMEOUT`], capturing its output.
pub fn run_command(mut cmd: Command) -> Run {
    let args: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.env_remove("RUST_LOG").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut child =
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{}`: {e}", args.join(" ")));
    let out_reader = drain(child.stdout.take().expect("stdout is piped"));
    let err_reader = drain(child.stderr.take().expect("stderr is piped"));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if t0.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "`{}` did not finish within {RUN_TIMEOUT:?}; stderr:\n{stderr}",
                    args.join(" ")
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for `{}`: {e}", args.join(" ")),
        }
    };
    let elapsed = t0.elapsed();
    let finished = SystemTime::now();
    Run {
        args,
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        started,
        finished,
        elapsed,
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A successful `hangwatch snapshot --json` run and its parsed output.
pub struct Snapshot {
    pub json: Value,
    pub run: Run,
}

impl Snapshot {
    /// The top-level `time` field.
    pub fn time(&self) -> SystemTime {
        rfc3339(str_field(&self.json, "time"))
    }
}

/// Runs `hangwatch snapshot --json <args>`, asserts exit 0 and that stdout is
/// exactly one JSON object. Taking `&Serial` makes the caller hold the lock.
pub fn snapshot(_serial: &Serial, args: &[&str]) -> Snapshot {
    let mut full = vec!["snapshot", "--json"];
    full.extend_from_slice(args);
    let run = run_hangwatch(&full);
    assert!(run.status.success(), "hangwatch failed: {}", run.describe());
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value: {e}\n{}", run.describe()));
    assert!(json.is_object(), "stdout is JSON but not an object:\n{}", excerpt(&json));
    if !run.stderr.trim().is_empty() {
        eprintln!("hangwatch stderr (exit 0):\n{}", run.stderr);
    }
    Snapshot { json, run }
}

pub fn snapshot_json(serial: &Serial, args: &[&str]) -> Value {
    snapshot(serial, args).json
}

// ---------------------------------------------------------------------------
// JSON accessors (all panic with context)

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &s[..end], s.len() - end)
}

/// Pretty JSON, cut to a size that fits an assertion message.
pub fn excerpt(v: &Value) -> String {
    truncate(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()), 6000)
}

pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("no field `{key}` in:\n{}", excerpt(v)))
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).as_str().unwrap_or_else(|| panic!("`{key}` is not a string in:\n{}", excerpt(v)))
}

pub fn i64_field(v: &Value, key: &str) -> i64 {
    field(v, key)
        .as_i64()
        .unwrap_or_else(|| panic!("`{key}` is not an integer in:\n{}", excerpt(v)))
}

pub fn u64_field(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a non-negative integer in:\n{}", excerpt(v)))
}

pub fn f64_field(v: &Value, key: &str) -> f64 {
    field(v, key).as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in:\n{}", excerpt(v)))
}

pub fn bool_field(v: &Value, key: &str) -> bool {
    field(v, key).as_bool().unwrap_or_else(|| panic!("`{key}` is not a bool in:\n{}", excerpt(v)))
}

pub fn array_field<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in:\n{}", excerpt(v)))
}

pub fn processes(snap: &Value) -> &Vec<Value> {
    array_field(snap, "processes")
}

pub fn listed_pids(snap: &Value) -> Vec<i64> {
    processes(snap).iter().map(|p| i64_field(p, "pid")).collect()
}

/// The process with `pid`; panics (listing what is there) if it is absent.
pub fn find_process(snap: &Value, pid: i32) -> &Value {
    let procs = processes(snap);
    let found: Vec<&Value> =
        procs.iter().filter(|p| p.get("pid").and_then(Value::as_i64) == Some(pid.into())).collect();
    match found.as_slice() {
        [p] => p,
        [] => {
            let listed: Vec<String> = procs
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.get("pid").unwrap_or(&Value::Null),
                        p.get("comm").unwrap_or(&Value::Null)
                    )
                })
                .collect();
            panic!(
                "pid {pid} is not in the snapshot; listed: [{}]\nsnapshot:\n{}",
                listed.join(", "),
                excerpt(snap)
            )
        }
        _ => panic!("pid {pid} is listed {} times:\n{}", found.len(), excerpt(snap)),
    }
}

pub fn threads(process: &Value) -> &Vec<Value> {
    array_field(process, "threads")
}

/// The thread with `tid` in a process object; panics if absent.
pub fn find_thread(process: &Value, tid: i64) -> &Value {
    let ts = threads(process);
    let found: Vec<&Value> =
        ts.iter().filter(|t| t.get("tid").and_then(Value::as_i64) == Some(tid)).collect();
    match found.as_slice() {
        [t] => t,
        [] => panic!("tid {tid} is not among the threads of:\n{}", excerpt(process)),
        _ => panic!("tid {tid} is listed {} times in:\n{}", found.len(), excerpt(process)),
    }
}

/// `blocked` of the main thread (tid == pid); may be null.
pub fn main_blocked(snap: &Value, pid: i32) -> &Value {
    field(find_thread(find_process(snap, pid), pid.into()), "blocked")
}

/// `blocked` of a thread, which must be an object (not null).
pub fn expect_blocked(thread: &Value) -> &Value {
    let b = field(thread, "blocked");
    assert!(
        b.is_object(),
        "thread should be reported blocked, `blocked` is {b}:\n{}",
        excerpt(thread)
    );
    b
}

pub fn args_of(blocked: &Value) -> &Value {
    let a = field(blocked, "args");
    assert!(a.is_object(), "`args` is not an object in:\n{}", excerpt(blocked));
    a
}

/// Checks the documented shape of a process object and everything in it.
pub fn assert_process_shape(p: &Value) {
    for key in ["pid", "ppid"] {
        i64_field(p, key);
    }
    str_field(p, "comm");
    let cmdline = field(p, "cmdline");
    assert!(
        cmdline.is_string() || cmdline.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "`cmdline` is neither a string nor an array of strings in:\n{}",
        excerpt(p)
    );
    let cgroup = field(p, "cgroup");
    assert!(cgroup.is_string() || cgroup.is_null(), "`cgroup` is not a string in:\n{}", excerpt(p));
    let cpu = f64_field(p, "cpu_percent");
    assert!(cpu >= 0.0 && cpu.is_finite(), "bad cpu_percent {cpu} in:\n{}", excerpt(p));
    u64_field(p, "rss_bytes");
    let ts = threads(p);
    assert!(!ts.is_empty(), "process has no threads:\n{}", excerpt(p));
    for t in ts {
        assert_thread_shape(t);
    }
}

pub fn assert_thread_shape(t: &Value) {
    i64_field(t, "tid");
    str_field(t, "comm");
    let state = str_field(t, "state");
    assert!(
        state.len() == 1 && state.chars().all(|c| c.is_ascii_alphabetic()),
        "`state` should be one kernel state letter, got {state:?} in:\n{}",
        excerpt(t)
    );
    let b = field(t, "blocked");
    if b.is_null() {
        return;
    }
    assert!(b.is_object(), "`blocked` is neither null nor an object in:\n{}", excerpt(t));
    assert!(!str_field(b, "syscall").is_empty(), "empty syscall name in:\n{}", excerpt(t));
    rfc3339(str_field(b, "since"));
    let d = f64_field(b, "duration_ms");
    assert!(d >= 0.0 && d.is_finite(), "bad duration_ms {d} in:\n{}", excerpt(t));
    // A string, or null where the kernel gives no wait channel (5.10 on x86_64).
    let wchan = field(b, "wchan");
    assert!(wchan.is_string() || wchan.is_null(), "`wchan` in:\n{}", excerpt(t));
    args_of(b);
}

/// A process's comm must be the test program's name.
pub fn assert_is_program(p: &Value, child: &Child) {
    assert_eq!(str_field(p, "comm"), child.name, "comm of pid {}:\n{}", child.pid, excerpt(p));
    assert_eq!(
        i64_field(p, "ppid"),
        i64::from(process::id()),
        "ppid of pid {} should be the test process:\n{}",
        child.pid,
        excerpt(p)
    );
    let cmdline = field(p, "cmdline").to_string();
    assert!(cmdline.contains(&child.name), "cmdline should name {}:\n{}", child.name, excerpt(p));
}

// ---------------------------------------------------------------------------
// Time

/// Parses an RFC3339 timestamp (`2026-11-22T02:51:00.123456789Z`, any
/// fraction length, `Z` or `+hh:mm`/`-hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 9)];
        nanos = digits.parse::<u64>().ok()? * 10u64.pow(9 - digits.len() as u32);
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).ok()?))
}

pub fn rfc3339(s: &str) -> SystemTime {
    parse_rfc3339(s).unwrap_or_else(|| panic!("{s:?} is not an RFC3339 timestamp"))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `a - b` in milliseconds, negative when `a` is earlier.
pub fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

pub fn hostname() -> String {
    read_proc("/proc/sys/kernel/hostname")
}

// ---------------------------------------------------------------------------
// Signals, process state, memory cgroups

pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet (its
    // guard is alive), so the pid is still ours.
    let rc = unsafe { libc::kill(child.pid, sig) };
    assert_eq!(rc, 0, "kill({}, {sig}) failed: {}", child.pid, std::io::Error::last_os_error());
}

/// Kernel state letter of a process, `None` once it is reaped.
pub fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// A memory-limited cgroup: v1 `/sys/fs/cgroup/memory/<name>` (hybrid systems) or v2
/// `/sys/fs/cgroup/<name>`. Dropping it kills what is left inside and removes it.
pub struct MemCgroup {
    pub dir: PathBuf,
    /// The path as the kernel names it (`/<name>`).
    pub path: String,
}

impl MemCgroup {
    /// `None` (after saying why) when no memory controller can be used.
    pub fn create(limit: u64) -> Option<MemCgroup> {
        let limit = limit.to_string();
        let (dir, path, _) = create_cgroup(
            "hangwatch-test",
            "memory",
            &[("memory.limit_in_bytes", limit.clone())],
            &[("memory.max", limit)],
        )?;
        Some(MemCgroup { dir, path })
    }

    pub fn add(&self, pid: i32) {
        let f = self.dir.join("cgroup.procs");
        std::fs::write(&f, pid.to_string())
            .unwrap_or_else(|e| panic!("write {pid} to {}: {e}", f.display()));
    }

    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.dir);
    }
}

/// Creates a test's own cgroup under `controller`: in its v1 hierarchy
/// (`/sys/fs/cgroup/<controller>`, hybrid systems) with `v1` settings, else in the v2 tree
/// with `v2` settings (enabling the controller for children if needed). Returns its directory,
/// its path as the kernel names it (`/<name>`) and whether it is v1; `None` (after saying why)
/// when the controller cannot be used.
fn create_cgroup(
    prefix: &str,
    controller: &str,
    v1: &[(&str, String)],
    v2: &[(&str, String)],
) -> Option<(PathBuf, String, bool)> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let v1_root = Path::new("/sys/fs/cgroup").join(controller);
    let v2_root = Path::new("/sys/fs/cgroup");
    let is_v1 = v1.first().is_some_and(|(file, _)| v1_root.join(file).exists());
    let (root, settings) = if is_v1 {
        (v1_root.as_path(), v1)
    } else {
        let has = |file: &str| {
            std::fs::read_to_string(v2_root.join(file))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == controller)
        };
        if !has("cgroup.controllers") {
            eprintln!(
                "SKIPPED: no cgroup v1 {controller} hierarchy and no v2 {controller} controller"
            );
            return None;
        }
        if !has("cgroup.subtree_control")
            && let Err(e) =
                std::fs::write(v2_root.join("cgroup.subtree_control"), format!("+{controller}"))
        {
            eprintln!("SKIPPED: cannot enable the v2 {controller} controller for children: {e}");
            return None;
        }
        (v2_root, v2)
    };
    let dir = root.join(&name);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    for (file, value) in settings {
        let f = dir.join(file);
        if let Err(e) = std::fs::write(&f, value) {
            remove_cgroup(&dir);
            panic!("write {value} to {}: {e}", f.display());
        }
    }
    Some((dir, format!("/{name}"), is_v1))
}

/// Kills what is left in a test's own cgroup and removes it.
fn remove_cgroup(dir: &Path) {
    let pids = || -> Vec<i32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    for _ in 0..100 {
        for pid in pids() {
            // SAFETY: kill(2) has no memory-safety preconditions. Only processes this test
            // put into its own cgroup (or their children) can be listed here.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("warning: could not remove {}", dir.display());
}

/// A CPU-limited cgroup of the test's own (cgroup v1 `cpu` hierarchy, or v2 `cpu.max`),
/// removed with whatever is left in it when dropped.
pub struct CpuCgroup {
    pub dir: PathBuf,
    /// The path as the kernel names it (`/<name>`).
    pub path: String,
}

impl CpuCgroup {
    /// A cgroup allowed `cores` CPUs' worth of time per 100 ms period. `None` (after saying
    /// why) when no cpu controller can be used.
    pub fn create(cores: f64) -> Option<CpuCgroup> {
        let quota = ((cores * 100_000.0) as u64).max(1000);
        let (dir, path, _) = create_cgroup(
            "hangwatch-cpu-test",
            "cpu",
            &[("cpu.cfs_period_us", "100000".into()), ("cpu.cfs_quota_us", quota.to_string())],
            &[("cpu.max", format!("{quota} 100000"))],
        )?;
        Some(CpuCgroup { dir, path })
    }

    pub fn add(&self, pid: i32) {
        let f = self.dir.join("cgroup.procs");
        std::fs::write(&f, pid.to_string())
            .unwrap_or_else(|e| panic!("write {pid} to {}: {e}", f.display()));
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Live mode

/// `hangwatch --json` running in the background; its lines arrive on a channel. Dropping it
/// kills hangwatch.
pub struct Live {
    pub child: std::process::Child,
    pub lines: mpsc::Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Live {
    pub fn start(args: &[&str]) -> Live {
        let mut cmd = Command::new(hangwatch_bin());
        cmd.arg("--json").args(args);
        Live::start_command(cmd)
    }

    /// Runs `cmd`, whose standard output is hangwatch's JSON stream (a wrapper that starts
    /// `hangwatch --json`, for instance in a namespace).
    pub fn start_command(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Live { child, lines, seen: Vec::new() }
    }

    /// Waits for a record matching `pred`, up to `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let t0 = Instant::now();
        while let Some(left) = timeout.checked_sub(t0.elapsed()) {
            let Ok(l) = self.lines.recv_timeout(left) else { return None };
            self.seen.push(l.clone());
            let v: Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
            if pred(&v) {
                return Some(v);
            }
        }
        None
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak RSS and output size of one hangwatch run (bounded-read tests).
pub mod bounded;
