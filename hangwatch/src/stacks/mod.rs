//! Stacks of blocked threads: kernel (`/proc/PID/task/TID/stack`), native (C/C++/Rust,
//! unwound from the registers saved at syscall entry) and Python (see `python.rs`).
//! See docs/stacks.md.

pub mod python;

pub use python::PyFrame;

/// The stack of one thread, innermost frame first in every list. `error` says why a part
/// could not be read (the frames read before the failure are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Stack {
    pub kernel: Vec<String>,
    pub native: Vec<NativeFrame>,
    pub python: Vec<PyFrame>,
    pub error: Option<String>,
}

/// One native frame. Where there is no symbol, `module` + `offset` (the file offset in
/// the module) and `build_id` still identify the code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NativeFrame {
    pub addr: u64,
    pub symbol: Option<String>,
    pub module: Option<String>,
    pub offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub build_id: Option<String>,
}

pub mod evidence;
pub mod kernel;
pub mod native;

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::model::Process;

/// Which stacks are read and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StackMode {
    /// Not read at all (`--no-stacks`).
    Off,
    /// Read; the human report shows each blocked thread's innermost user-code frame.
    #[default]
    Brief,
    /// Read; the human report shows whole stacks (`--stacks`).
    Full,
}

/// The time budget of one snapshot's stacks: past it, the remaining threads get an `error`.
pub const SNAPSHOT_BUDGET: Duration = Duration::from_secs(2);
/// The time budget of one live scan's stacks: past it, the remaining waits are read on the
/// next scans (each wait is read once, so a backlog drains).
pub const LIVE_BUDGET: Duration = Duration::from_millis(200);

/// What stack gathering cost and lost, shown in the report's stats.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StackStats {
    /// Threads whose stacks were read in this pass.
    pub stacks_read: u64,
    /// Threads whose wait was already unwound (cached by thread and wait start).
    pub stacks_cached: u64,
    /// Threads left without a stack because the time budget was spent.
    pub stacks_over_budget: u64,
    /// Stacks with an `error` (partial or none).
    pub stacks_with_error: u64,
    /// ELF files parsed for unwind tables (misses of the per-module cache).
    pub modules_parsed: u64,
    /// Time spent, ms.
    pub stacks_ms: u64,
}

/// Reads stacks, with the caches that make a wait cost one unwind and a module one parse.
#[derive(Default)]
pub struct Gatherer {
    python: python::PythonStacks,
    modules: native::ModuleCache,
    /// (tid, wait start) -> stack.
    done: HashMap<(i32, u64), Arc<Stack>>,
    /// Live mode's scans so far (the caches of files are dropped now and then).
    scans: u64,
    pub stats: StackStats,
}

/// Live mode drops its cache of parsed files every this many scans, or when more
/// than [`MAX_CACHED_MODULES`] files are cached: files replaced on disk and processes long gone
/// must not pin memory.
const CACHE_RESET_SCANS: u64 = 600;
const MAX_CACHED_MODULES: usize = 1024;

/// Whether a thread gets a stack: it is in a reported wait, or in uninterruptible sleep.
pub fn wants_stack(t: &crate::model::Thread) -> bool {
    t.blocked.is_some() || t.state == 'D'
}

/// The cache key of a thread's current wait (a `D` thread outside a reported wait: 0).
fn wait_key(t: &crate::model::Thread) -> (i32, u64) {
    (t.tid, t.blocked.as_ref().map_or(0, |w| w.since_mono_ns))
}

impl Gatherer {
    /// Fills `stack` on every thread of `procs` that [`wants_stack`], within `budget`.
    pub fn gather<'a>(
        &mut self,
        procs: impl IntoIterator<Item = &'a mut Process>,
        budget: Duration,
    ) {
        let t0 = Instant::now();
        let parsed_before = self.modules.parsed;
        let me = std::process::id() as i32;
        for p in procs {
            if p.pid == me || !p.threads.iter().any(wants_stack) {
                continue;
            }
            self.gather_process(p, t0, budget);
        }
        self.stats.modules_parsed += self.modules.parsed - parsed_before;
        self.stats.stacks_ms += t0.elapsed().as_millis() as u64;
    }

    fn gather_process(&mut self, p: &mut Process, t0: Instant, budget: Duration) {
        let mut todo: Vec<usize> = Vec::new();
        for (i, t) in p.threads.iter_mut().enumerate() {
            if !wants_stack(t) {
                continue;
            }
            match self.done.get(&wait_key(t)) {
                Some(s) => {
                    t.stack = Some(Arc::clone(s));
                    self.stats.stacks_cached += 1;
                }
                None => todo.push(i),
            }
        }
        if todo.is_empty() {
            return;
        }
        let wanted: Vec<(i32, u64)> = todo.iter().map(|&i| wait_key(&p.threads[i])).collect();
        let stacks = self.read_waits(p.pid, &wanted, t0, budget);
        for (i, s) in todo.into_iter().zip(stacks) {
            p.threads[i].stack = Some(s);
        }
    }

    /// Live mode's collector: the stacks of the threads of `samples` that sleep in a system
    /// call for at least `min_blocked_ns` (or in `D`), by tid, within `budget`. A thread left
    /// out by the budget gets none this time and is read on a later scan.
    pub fn gather_samples(
        &mut self,
        samples: &HashMap<i32, crate::procfs::ProcessSample>,
        offsets: &[i64],
        now_mono_ns: u64,
        min_blocked_for: &dyn Fn(&crate::procfs::ProcessSample) -> Option<u64>,
        budget: Duration,
    ) -> HashMap<i32, Arc<Stack>> {
        self.scans += 1;
        if self.scans.is_multiple_of(CACHE_RESET_SCANS) || self.modules.len() > MAX_CACHED_MODULES {
            self.modules.clear();
        }
        let t0 = Instant::now();
        let parsed_before = self.modules.parsed;
        let me = std::process::id() as i32;
        let mut out = HashMap::new();
        let mut live = std::collections::HashSet::new();
        for (&pid, p) in samples {
            if pid == me || p.is_kernel_thread() {
                continue;
            }
            let Some(min_blocked_ns) = min_blocked_for(p) else { continue };
            let mut wanted = Vec::new();
            for t in &p.threads {
                let since = t.wait_since_ns(offsets);
                let key = (t.tid, since.unwrap_or(0));
                let long = since.is_some_and(|s| now_mono_ns.saturating_sub(s) >= min_blocked_ns);
                if !(long || t.stat.state == 'D') {
                    continue;
                }
                live.insert(key);
                match self.done.get(&key) {
                    Some(s) => {
                        out.insert(t.tid, Arc::clone(s));
                        self.stats.stacks_cached += 1;
                    }
                    None => wanted.push(key),
                }
            }
            if wanted.is_empty() {
                continue;
            }
            if t0.elapsed() >= budget {
                self.stats.stacks_over_budget += wanted.len() as u64;
                continue;
            }
            let stacks = self.read_waits(pid, &wanted, t0, budget);
            for ((tid, _), s) in wanted.into_iter().zip(stacks) {
                if !s.error.as_deref().is_some_and(|e| e.starts_with("not read")) {
                    out.insert(tid, s);
                }
            }
        }
        // Waits that are over are forgotten.
        self.done.retain(|k, _| live.contains(k));
        self.python.forget_exited(&|pid| samples.contains_key(&pid));
        self.stats.modules_parsed += self.modules.parsed - parsed_before;
        self.stats.stacks_ms += t0.elapsed().as_millis() as u64;
        out
    }

    /// Reads the stacks of threads `wanted` ((tid, wait start)) of `pid`, aligned with it.
    fn read_waits(
        &mut self,
        pid: i32,
        wanted: &[(i32, u64)],
        t0: Instant,
        budget: Duration,
    ) -> Vec<Arc<Stack>> {
        let over = format!("not read: the {budget:?} stack time budget was spent");
        if t0.elapsed() >= budget {
            self.stats.stacks_over_budget += wanted.len() as u64;
            let s = Arc::new(Stack { error: Some(over), ..Stack::default() });
            return wanted.iter().map(|_| Arc::clone(&s)).collect();
        }
        let py = self.python.read(pid);
        let modules = native::ProcessModules::read(pid, &mut self.modules);
        // A Python reader's failure matters only for a process that runs an interpreter.
        let py_error = match (&py, &modules) {
            (Err(e), Ok(m)) if m.maps.iter().any(|m| is_python_module(&m.path)) => Some(e.clone()),
            _ => None,
        };
        // Unwind every thread first, then symbolize all their addresses in one call.
        let mut raw: Vec<(Vec<String>, Vec<u64>, Vec<String>)> = Vec::new();
        for &(tid, _) in wanted {
            let mut errors = Vec::new();
            if t0.elapsed() >= budget {
                errors.push(over.clone());
                self.stats.stacks_over_budget += 1;
                raw.push((Vec::new(), Vec::new(), errors));
                continue;
            }
            let kstack = kernel::read(pid, tid).unwrap_or_else(|e| {
                errors.push(e);
                Vec::new()
            });
            let regs = crate::procfs::read_bounded(
                Path::new(&format!("/proc/{pid}/task/{tid}/syscall")),
                512,
            )
            .and_then(|(b, _)| crate::procfs::parse_syscall_regs(&String::from_utf8_lossy(&b)));
            let addrs = match (&modules, regs) {
                (Ok(m), Some((sp, pc))) => {
                    let (a, e) = m.unwind(pid, sp, pc);
                    if let Some(e) = e {
                        errors.push(format!("native stack: {e}"));
                    }
                    a
                }
                (Err(e), _) => {
                    errors.push(format!("native stack: {e}"));
                    Vec::new()
                }
                (_, None) => {
                    errors.push("native stack: no user registers (running or gone)".into());
                    Vec::new()
                }
            };
            self.stats.stacks_read += 1;
            raw.push((kstack, addrs, errors));
        }
        let mut symbols = HashMap::new();
        if modules.is_ok() {
            let mut lookups: Vec<u64> = raw
                .iter()
                .flat_map(|(_, a, _)| a.iter().enumerate().map(|(j, &x)| native::lookup_addr(j, x)))
                .collect();
            lookups.sort_unstable();
            lookups.dedup();
            if !lookups.is_empty() {
                // One symbolizer per process: blazesym caches a process's files under their
                // /proc/PID/map_files names, which no other process shares, so a longer-lived
                // one would only hold memory (live mode under process churn).
                let symbolizer = blazesym::symbolize::Symbolizer::new();
                let syms = native::symbolize(&symbolizer, pid, &lookups);
                symbols = lookups.into_iter().zip(syms).collect();
            }
        }
        // Identical stacks share one Arc.
        let mut same: HashMap<Stack, Arc<Stack>> = HashMap::new();
        let mut out = Vec::with_capacity(wanted.len());
        for (&key, (kstack, addrs, mut errors)) in wanted.iter().zip(raw) {
            let native = match &modules {
                Ok(m) => native::frames(m, &addrs, &symbols),
                Err(_) => Vec::new(),
            };
            // A stack that ends in a thread's or program's first function is whole, however
            // framehop judged its end.
            if let Some(last) = native.last().and_then(|f| f.symbol.as_deref())
                && native::is_root_frame(last)
            {
                errors.retain(|e| !e.starts_with("native stack: unwinding stopped"));
            }
            let python = match &py {
                Ok(by_tid) => by_tid.get(&key.0).cloned().unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            if let Some(e) = &py_error {
                errors.push(e.clone());
            }
            let s = Stack {
                kernel: kstack,
                native,
                python,
                error: (!errors.is_empty()).then(|| errors.join("; ")),
            };
            out.push(self.finish(key, s, &mut same));
        }
        out
    }

    fn finish(
        &mut self,
        key: (i32, u64),
        s: Stack,
        same: &mut HashMap<Stack, Arc<Stack>>,
    ) -> Arc<Stack> {
        if s.error.is_some() {
            self.stats.stacks_with_error += 1;
        }
        let over_budget = s.error.as_deref().is_some_and(|e| e.starts_with("not read"));
        let arc = Arc::clone(same.entry(s.clone()).or_insert_with(|| Arc::new(s)));
        if !over_budget {
            self.done.insert(key, Arc::clone(&arc));
        }
        arc
    }
}

/// Modules that are not the user's code: libc, the dynamic loader, libpthread, the Python
/// interpreter.
pub fn is_system_module(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    ["libc.so", "libc-", "ld-linux", "ld-musl", "ld.so", "libpthread", "libpython", "python"]
        .iter()
        .any(|p| base.starts_with(p))
}

/// The CPython interpreter or its shared library (`python3.11`, `libpython3.11.so.1.0`).
pub fn is_python_module(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.starts_with("python") || base.starts_with("libpython")
}

/// Python files that are not the user's code: the standard library and frozen modules.
pub fn is_system_python_file(file: &str) -> bool {
    file.starts_with("<frozen") || (file.contains("/lib/python") && !file.contains("-packages/"))
}

/// One frame, as shown in the human report and the TUI (not escaped: callers escape).
pub fn describe_native(f: &NativeFrame) -> String {
    let what = match (&f.symbol, &f.module, f.offset) {
        (Some(s), _, _) => format!("in {s}"),
        (None, Some(m), Some(off)) => format!("in {m}+{off:#x}"),
        _ => format!("at {:#x}", f.addr),
    };
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{what} at {file}:{line}"),
        _ => what,
    }
}

pub fn describe_python(f: &PyFrame) -> String {
    format!("at {}:{} in {}()", f.file, f.line, f.function)
}

impl Stack {
    /// The innermost frame of the user's own code: Python first (outside the standard
    /// library), else the first native frame outside libc, the loader and the interpreter.
    /// Falls back to the innermost frame of any kind.
    pub fn user_frame(&self) -> Option<String> {
        if let Some(f) = self.python.iter().find(|f| !is_system_python_file(&f.file)) {
            return Some(describe_python(f));
        }
        if let Some(f) = self.python.first() {
            return Some(describe_python(f));
        }
        if let Some(f) =
            self.native.iter().find(|f| f.module.as_deref().is_some_and(|m| !is_system_module(m)))
        {
            return Some(describe_native(f));
        }
        self.native.first().map(describe_native)
    }

    /// Every frame, innermost first: Python, then native, then kernel.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.python.iter().map(describe_python).collect();
        v.extend(self.native.iter().map(describe_native));
        v.extend(self.kernel.iter().map(|k| format!("[kernel] {k}")));
        v
    }
}

/// Threads grouped by identical stack, in order of first appearance: (stack, tids).
pub fn group<'a>(
    threads: impl IntoIterator<Item = (i32, &'a Stack)>,
) -> Vec<(&'a Stack, Vec<i32>)> {
    // By hash, not by a scan of the groups so far: 10,000 threads with distinct stacks were
    // 50 million stack comparisons.
    let mut out: Vec<(&Stack, Vec<i32>)> = Vec::new();
    let mut index: HashMap<&Stack, usize> = HashMap::new();
    for (tid, s) in threads {
        match index.get(s) {
            Some(&i) => out[i].1.push(tid),
            None => {
                index.insert(s, out.len());
                out.push((s, vec![tid]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(symbol: Option<&str>, module: &str, offset: u64) -> NativeFrame {
        NativeFrame {
            addr: 0x1000 + offset,
            symbol: symbol.map(str::to_string),
            module: Some(module.to_string()),
            offset: Some(offset),
            ..NativeFrame::default()
        }
    }

    fn py(function: &str, file: &str, line: u32) -> PyFrame {
        PyFrame { function: function.into(), file: file.into(), line }
    }

    #[test]
    fn user_frame_skips_libc_and_loader() {
        let s = Stack {
            native: vec![
                nf(Some("__lll_lock_wait"), "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x90),
                nf(Some("pthread_mutex_lock"), "/usr/lib/x86_64-linux-gnu/libc.so.6", 0xa0),
                nf(Some("zmq::ctx_t::terminate()"), "/usr/lib/libzmq.so.5", 0x10),
                nf(Some("main"), "/srv/app", 0x20),
            ],
            ..Stack::default()
        };
        assert_eq!(s.user_frame().as_deref(), Some("in zmq::ctx_t::terminate()"));
    }

    #[test]
    fn user_frame_prefers_python_outside_the_stdlib() {
        let s = Stack {
            python: vec![
                py("wait", "/usr/lib/python3.11/multiprocessing/popen_fork.py", 27),
                py("run", "/srv/job.py", 41),
            ],
            native: vec![nf(Some("_PyEval_EvalFrameDefault"), "/usr/bin/python3.11", 0x10)],
            ..Stack::default()
        };
        assert_eq!(s.user_frame().as_deref(), Some("at /srv/job.py:41 in run()"));
        let only_stdlib =
            Stack { python: vec![py("select", "/usr/lib/python3.11/selectors.py", 9)], ..s };
        assert_eq!(
            only_stdlib.user_frame().as_deref(),
            Some("at /usr/lib/python3.11/selectors.py:9 in select()")
        );
    }

    #[test]
    fn user_frame_without_symbols_is_module_and_offset() {
        let s = Stack {
            native: vec![
                nf(Some("syscall"), "/lib/libc.so.6", 1),
                nf(None, "/tmp/stripped", 0x1234),
            ],
            ..Stack::default()
        };
        assert_eq!(s.user_frame().as_deref(), Some("in /tmp/stripped+0x1234"));
        assert_eq!(Stack::default().user_frame(), None);
        let only_libc = Stack { native: vec![nf(Some("poll"), "/lib/libc.so.6", 1)], ..s };
        assert_eq!(only_libc.user_frame().as_deref(), Some("in poll"));
    }

    #[test]
    fn python_modules() {
        assert!(is_python_module("/usr/bin/python3.11"));
        assert!(is_python_module("/usr/lib/libpython3.12.so.1.0"));
        assert!(!is_python_module("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(is_system_module("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
        assert!(!is_system_module("/srv/app"));
    }

    #[test]
    fn groups_identical_stacks() {
        let a = Stack { kernel: vec!["futex_wait".into()], ..Stack::default() };
        let b = Stack { kernel: vec!["do_wait".into()], ..Stack::default() };
        let g = group([(1, &a), (2, &b), (3, &a), (4, &a)]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].1, vec![1, 3, 4]);
        assert_eq!(g[1].1, vec![2]);
    }

    #[test]
    fn syscall_regs() {
        use crate::procfs::parse_syscall_regs;
        assert_eq!(
            parse_syscall_regs("202 0x1 0x80 0x2 0x0 0x0 0x0 0x7ffd0ff8 0x7f00aa\n"),
            Some((0x7ffd0ff8, 0x7f00aa))
        );
        assert_eq!(parse_syscall_regs("-1 0x7ffd 0x4011\n"), Some((0x7ffd, 0x4011)));
        assert_eq!(parse_syscall_regs("running\n"), None);
        assert_eq!(parse_syscall_regs("7 0x1"), None);
    }

    #[test]
    fn frames_are_described() {
        let f = NativeFrame {
            file: Some("/src/a.c".into()),
            line: Some(7),
            ..nf(Some("one"), "/bin/a", 3)
        };
        assert_eq!(describe_native(&f), "in one at /src/a.c:7");
        let bare = NativeFrame { addr: 0xabc, ..NativeFrame::default() };
        assert_eq!(describe_native(&bare), "at 0xabc");
    }
}
