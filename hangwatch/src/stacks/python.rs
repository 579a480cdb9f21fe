//! Python stacks: the Python frames (function, file, line) of each thread of a CPython
//! process, keyed by the kernel's thread id, read from outside without stopping anything.
//!
//! # How
//! [py-spy](https://github.com/benfred/py-spy) 0.4 is used as a library, built without its
//! `cli` and `unwind` features (so no libunwind: it builds at Rust 1.95 and in the static musl
//! binary). It finds the interpreter (`_PyRuntime` and friends, from the symbols of the
//! executable or libpython, or by scanning `.bss`), knows the structure layouts of CPython 2.7
//! and 3.3 to 3.15, and copies the thread and frame objects with `process_vm_readv`.
//! [`LockingStrategy::NonBlocking`] is set: the process is never stopped (no ptrace attach).
//! `native` is off (native frames are the native stack reader's job).
//!
//! # OS thread ids
//! CPython 3.11 and later keep the kernel thread id in `PyThreadState.native_thread_id`, and
//! py-spy returns it. For older versions py-spy maps thread ids only with its `unwind` feature
//! (libunwind, which would break the static build), so this module does it another way: an older
//! CPython's thread id is `pthread_self()`, the address of the thread's `struct pthread`, and that
//! struct holds the thread's kernel tid (glibc: `tid`, at 0x2d0 on x86_64; musl: `tid`, near the
//! start). The offset differs between C libraries and versions, so it is not hard-coded: the
//! first 2 KiB of each thread's `struct pthread` are read (less where the mapping ends sooner) and the first 4-aligned offset at which
//! every Python thread holds a distinct live tid of `/proc/PID/task` is taken (and cached per
//! process). A Python thread that maps to no live tid is left out.
//!
//! # Cost and cache
//! Detection is a readlink of `/proc/PID/exe` and a bounded scan of `/proc/PID/maps` for
//! `python`/`libpython`. Constructing a [`PythonSpy`] parses the binary's symbols (tens of ms),
//! so one is kept per process (keyed by pid and start time, so a reused pid is not mistaken)
//! until the process exits ([`PythonStacks::forget_exited`]) or a read fails. A process that
//! looks like Python but whose reader cannot be built gets the same error for
//! [`RETRY_AFTER`] without a new try.
//!
//! # Limits
//! Reading without stopping races with a running thread: a thread that holds the GIL and runs
//! Python code can change its frames while they are copied, so a read that fails is retried a
//! few times, and a frame list can still be momentarily inconsistent for such a thread. A
//! blocked thread's frames do not change while it waits. Anything read from the process is
//! hostile: at most [`MAX_FRAMES`] frames per thread, names and paths cut to [`MAX_NAME`] and
//! [`MAX_PATH`] bytes (escaping happens where they are shown).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use py_spy::config::LockingStrategy;
use py_spy::{Config, PythonSpy, StackTrace};
use remoteprocess::ProcessMemory;

/// Frames kept per thread (innermost first; the outermost are dropped).
pub const MAX_FRAMES: usize = 128;
/// Bytes kept of a function name.
pub const MAX_NAME: usize = 256;
/// Bytes kept of a file path.
pub const MAX_PATH: usize = 1024;
/// Length of an error reason.
const MAX_REASON: usize = 200;
/// Reads tried before a process is reported unreadable (a non-blocking read can race).
const READ_TRIES: usize = 3;
/// Lines of `/proc/PID/maps` looked at to tell whether a process is Python.
const MAX_MAPS_LINES: usize = 100_000;
/// Bytes of a `struct pthread` searched for the thread's tid.
const PTHREAD_SCAN: usize = 2048;
/// How long a process whose reader could not be built gets the same error without a new try
/// (building one parses symbols: tens of ms).
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

/// One Python frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PyFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// What was lost since the [`PythonStacks`] was made, to be shown (counted, never silent).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Losses {
    /// Python threads left out because no kernel tid could be found for them.
    pub unmapped_threads: u64,
    /// Thread stacks cut to [`MAX_FRAMES`] (the outermost frames dropped).
    pub cut_stacks: u64,
    /// Reads of a Python process that ended in an error.
    pub read_errors: u64,
}

/// What is cached for one Python process.
struct Cached {
    spy: PythonSpy,
    /// Start time (clock ticks after boot) of the process the spy was made for.
    start: u64,
    /// Offset of the tid in `struct pthread`, once found (only for CPython before 3.11).
    tid_offset: Option<usize>,
}

/// Reads the Python stacks of processes, keeping what is costly to build per process.
#[derive(Default)]
pub struct PythonStacks {
    spies: HashMap<i32, Cached>,
    /// Python processes whose reader could not be built: start time, when, why.
    failed: HashMap<i32, (u64, Instant, String)>,
    losses: Losses,
}

impl PythonStacks {
    /// Python frames of each thread of `pid`, innermost first, keyed by OS thread id (the kernel
    /// tid). Ok(empty map) when `pid` is not a Python process. Err(short reason) when it is
    /// Python but cannot be read (unsupported version, no permission, vanished...).
    pub fn read(&mut self, pid: i32) -> Result<HashMap<i32, Vec<PyFrame>>, String> {
        if pid <= 0 {
            return Err(format!("no such process {pid}"));
        }
        let Some(start) = start_time(pid) else {
            self.spies.remove(&pid);
            self.failed.remove(&pid);
            return Err(format!("process {pid} exited"));
        };
        if self.spies.get(&pid).is_some_and(|e| e.start != start) {
            self.spies.remove(&pid);
        }
        let entry = match self.spies.entry(pid) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                if !is_python(pid) {
                    return Ok(HashMap::new());
                }
                if let Some((s, at, why)) = self.failed.get(&pid)
                    && *s == start
                    && at.elapsed() < RETRY_AFTER
                {
                    return Err(why.clone());
                }
                match PythonSpy::new(pid, &config()) {
                    Ok(spy) => {
                        self.failed.remove(&pid);
                        v.insert(Cached { spy, start, tid_offset: None })
                    }
                    Err(e) => {
                        self.losses.read_errors += 1;
                        let why = reason(&e);
                        self.failed.insert(pid, (start, Instant::now(), why.clone()));
                        return Err(why);
                    }
                }
            }
        };
        match stacks(entry, &mut self.losses) {
            Ok(map) => Ok(map),
            Err(e) => {
                self.losses.read_errors += 1;
                self.spies.remove(&pid);
                if start_time(pid) != Some(start) {
                    return Err(format!("process {pid} exited"));
                }
                Err(e)
            }
        }
    }

    /// Drops cache entries of processes for which `alive(pid)` is false.
    pub fn forget_exited(&mut self, alive: &dyn Fn(i32) -> bool) {
        self.spies.retain(|&pid, _| alive(pid));
        self.failed.retain(|&pid, _| alive(pid));
    }

    /// How many processes have a cached reader.
    pub fn cached(&self) -> usize {
        self.spies.len()
    }

    /// What was lost so far (threads without a tid, cut stacks, failed reads).
    pub fn losses(&self) -> Losses {
        self.losses
    }

    /// How many processes have a cached failure to build a reader.
    pub fn failed(&self) -> usize {
        self.failed.len()
    }
}

fn config() -> Config {
    Config {
        blocking: LockingStrategy::NonBlocking,
        native: false,
        collect_thread_names: false,
        dump_locals: 0,
        ..Config::default()
    }
}

/// The traces of one process, retried on failure, keyed by kernel tid.
fn stacks(entry: &mut Cached, losses: &mut Losses) -> Result<HashMap<i32, Vec<PyFrame>>, String> {
    let mut last = String::new();
    for _ in 0..READ_TRIES {
        match entry.spy.get_stack_traces() {
            Ok(traces) => return Ok(by_tid(entry, &traces, losses)),
            Err(e) => last = reason(&e),
        }
    }
    Err(last)
}

fn by_tid(
    entry: &mut Cached,
    traces: &[StackTrace],
    losses: &mut Losses,
) -> HashMap<i32, Vec<PyFrame>> {
    let mut out = HashMap::new();
    let unmapped: Vec<u64> =
        traces.iter().filter(|t| t.os_thread_id.is_none()).map(|t| t.thread_id).collect();
    let fallback =
        if unmapped.is_empty() { HashMap::new() } else { pthread_tids(entry, &unmapped) };
    for t in traces {
        let tid = t.os_thread_id.or_else(|| fallback.get(&t.thread_id).copied());
        let Some(tid) = tid.and_then(|t| i32::try_from(t).ok()) else {
            losses.unmapped_threads += 1;
            continue;
        };
        if t.frames.len() > MAX_FRAMES {
            losses.cut_stacks += 1;
        }
        let frames = t.frames.iter().take(MAX_FRAMES).map(py_frame).collect();
        out.insert(tid, frames);
    }
    out
}

fn py_frame(f: &py_spy::Frame) -> PyFrame {
    PyFrame {
        function: bounded(&f.name, MAX_NAME),
        file: bounded(&f.filename, MAX_PATH),
        line: u32::try_from(f.line).unwrap_or(0),
    }
}

/// Maps Python thread ids (`pthread_self()` values) to kernel tids through the `tid` field of
/// glibc's or musl's `struct pthread` (see the module doc).
fn pthread_tids(entry: &mut Cached, python_ids: &[u64]) -> HashMap<u64, u64> {
    let pid = entry.spy.pid;
    let live = task_ids(pid);
    if live.is_empty() {
        return HashMap::new();
    }
    let mut structs = Vec::new();
    for &id in python_ids {
        let Ok(addr) = usize::try_from(id) else { continue };
        // A struct near the end of its mapping (musl puts little after it) cannot be read
        // whole: shorter reads then.
        let read = [PTHREAD_SCAN, 1024, 512, 256]
            .into_iter()
            .find_map(|len| entry.spy.process.copy(addr, len).ok());
        if let Some(bytes) = read {
            structs.push((id, bytes));
        }
    }
    let tid_at = |bytes: &[u8], off: usize| -> Option<u64> {
        let b = bytes.get(off..off + 4)?;
        let v = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        u64::try_from(v).ok().filter(|v| live.contains(v))
    };
    let fits = |off: usize| -> bool {
        let mut seen = HashSet::new();
        !structs.is_empty()
            && structs.iter().all(|(_, b)| tid_at(b, off).is_some_and(|t| seen.insert(t)))
    };
    let offset = match entry.tid_offset {
        Some(off) if fits(off) => Some(off),
        _ => (0..PTHREAD_SCAN - 4).step_by(4).find(|&off| fits(off)),
    };
    entry.tid_offset = offset;
    let Some(off) = offset else {
        return HashMap::new();
    };
    structs.iter().filter_map(|(id, b)| Some((*id, tid_at(b, off)?))).collect()
}

/// The kernel's thread ids of `pid`.
fn task_ids(pid: i32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks after boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` runs CPython: its executable is named like `python3.11`, or it maps a
/// `libpython`.
fn is_python(pid: i32) -> bool {
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe"))
        && exe.file_name().and_then(|n| n.to_str()).is_some_and(is_python_name)
    {
        return true;
    }
    let Ok(maps) = fs::File::open(format!("/proc/{pid}/maps")) else {
        return false;
    };
    BufReader::new(maps)
        .split(b'\n')
        .take(MAX_MAPS_LINES)
        .map_while(Result::ok)
        .any(|line| maps_line_is_libpython(&line))
}

/// `python`, `python3`, `python3.11`, `python3.13t`, `python2.7d`...
fn is_python_name(name: &str) -> bool {
    name.strip_prefix("python")
        .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b"dmut".contains(&b)))
}

/// A maps line whose file's name starts with `libpython`.
fn maps_line_is_libpython(line: &[u8]) -> bool {
    let name = line.rsplit(|&b| b == b'/').next().unwrap_or(line);
    name.starts_with(b"libpython")
}

/// An error's chain on one line, bounded.
fn reason(e: &anyhow::Error) -> String {
    bounded(&format!("{e:#}").replace('\n', " "), MAX_REASON)
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names() {
        for n in ["python", "python3", "python3.11", "python3.13t", "python2.7d"] {
            assert!(is_python_name(n), "{n}");
        }
        for n in ["pythonista", "ipython", "python-config", "py", "bash"] {
            assert!(!is_python_name(n), "{n}");
        }
    }

    #[test]
    fn libpython_in_maps() {
        let l = b"7f00-7f10 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";
        assert!(maps_line_is_libpython(l));
        assert!(!maps_line_is_libpython(b"7f00-7f10 r-xp 00000000 08:01 123 /usr/lib/libc.so.6"));
        assert!(!maps_line_is_libpython(b"7f00-7f10 rw-p 00000000 00:00 0 "));
        assert!(!maps_line_is_libpython(b"7f00-7f10 r-xp 0 08:01 1 /home/libpython/x.so"));
    }

    #[test]
    fn bounded_cuts_at_a_char_boundary() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "abc…");
        assert_eq!(bounded("aé", 2), "a…");
        assert_eq!(bounded(&"x".repeat(5000), MAX_PATH).len(), MAX_PATH + '…'.len_utf8());
    }

    #[test]
    fn the_own_process_is_not_python() {
        let mut s = PythonStacks::default();
        let pid = i32::try_from(std::process::id()).expect("pid fits in i32");
        assert_eq!(s.read(pid), Ok(HashMap::new()));
        assert_eq!(s.cached(), 0);
        assert!(s.read(0).is_err());
        assert!(s.read(-5).is_err());
    }
}
