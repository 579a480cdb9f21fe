//! Python stacks read from real CPython processes through the library
//! (`hangwatch::stacks::python`), on every CPython of this machine: Debian's python3 and any
//! pyenv CPython 3.8 or later (3.8 to 3.10 exercise the `struct pthread` thread-id mapping,
//! 3.11+ CPython's own `native_thread_id`).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hangwatch::stacks::python::{Losses, MAX_FRAMES, MAX_NAME, PyFrame, PythonStacks};

type Stacks = HashMap<i32, Vec<PyFrame>>;

/// How long a test waits for a program to reach the state it checks.
const SETTLE: Duration = Duration::from_secs(15);

/// Debian's python3, then each pyenv CPython 3.8+ (absent ones are named on stderr).
fn interpreters() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/usr/bin/python3")];
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root.join("versions")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let minor = name.strip_prefix("3.").and_then(|r| r.split('.').next()?.parse().ok());
            let bin = e.path().join("bin").join("python3");
            if minor.is_some_and(|m: u32| m >= 8) && bin.exists() {
                found.push(bin);
            }
        }
    }
    if found.is_empty() {
        eprintln!("note: no pyenv CPython 3.8+ under {}: only Debian's python3", root.display());
    }
    found.sort();
    out.extend(found);
    out
}

/// The 1-based line of `script` holding `# STACK: <marker>` (or `marker` itself).
fn marker_line(script: &str, marker: &str) -> u32 {
    let path = progs_dir().join(script);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let tagged = format!("# STACK: {marker}");
    let idx = text
        .lines()
        .position(|l| l.contains(&tagged))
        .or_else(|| text.lines().position(|l| l.contains(marker)))
        .unwrap_or_else(|| panic!("{script} has no line with {marker:?}"));
    u32::try_from(idx + 1).expect("line fits in u32")
}

fn spawn_py(interp: &PathBuf, script: &str, args: &[&str]) -> Child {
    let mut cmd = Command::new(interp);
    cmd.arg("-u").arg(progs_dir().join(script)).args(args);
    Child::spawn_command(script, cmd)
}

/// Reads `pid` until `ok` holds (or panics after [`SETTLE`] with the last answer).
fn read_until(s: &mut PythonStacks, pid: i32, what: &str, ok: impl Fn(&Stacks) -> bool) -> Stacks {
    let t0 = Instant::now();
    loop {
        let r = s.read(pid);
        match &r {
            Ok(m) if ok(m) => return m.clone(),
            _ if t0.elapsed() > SETTLE => {
                panic!("pid {pid}: {what} not seen in {SETTLE:?}: {r:#?}")
            }
            _ => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Whether `f` is the function `name`: CPython 3.11+ gives qualified names (`Thread.join`).
fn named(f: &PyFrame, name: &str) -> bool {
    f.function == name || f.function.strip_suffix(name).is_some_and(|q| q.ends_with('.'))
}

fn has_frame(frames: &[PyFrame], function: &str, file_end: &str, line: Option<u32>) -> bool {
    frames.iter().any(|f| {
        named(f, function) && f.file.ends_with(file_end) && line.is_none_or(|l| f.line == l)
    })
}

/// The innermost frame of `frames` that is in `script`.
fn first_in<'a>(frames: &'a [PyFrame], script: &str) -> Option<&'a PyFrame> {
    frames.iter().find(|f| f.file.ends_with(script))
}

#[test]
fn main_thread_in_process_join_shows_the_join_line() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let line = marker_line("py_stack_join.py", "join");
    for py in interpreters() {
        let child = spawn_py(&py, "py_stack_join.py", &[]);
        let mut s = PythonStacks::default();
        let m = read_until(&mut s, child.pid, "main thread in join()", |m| {
            m.get(&child.pid).is_some_and(|f| has_frame(f, "run", "py_stack_join.py", Some(line)))
        });
        let main = &m[&child.pid];
        // Innermost first: multiprocessing's join() is inside (before) the script's run().
        let join = main.iter().position(|f| named(f, "join") && f.file.ends_with("process.py"));
        let run = main.iter().position(|f| named(f, "run"));
        assert!(join.is_some() && join < run, "{}: {main:#?}", py.display());
        assert!(
            has_frame(main, "<module>", "py_stack_join.py", None),
            "{}: {main:#?}",
            py.display()
        );
        // The sleeping child is a Python process too, read on its own.
        let kid = i32::try_from(child.fact_i64("child")).expect("pid fits in i32");
        let km = read_until(&mut s, kid, "child in nap()", |m| {
            m.get(&kid).is_some_and(|f| has_frame(f, "nap", "py_stack_join.py", None))
        });
        assert_eq!(km.len(), 1, "{}: {km:#?}", py.display());
        assert_eq!(s.cached(), 2);
    }
}

#[test]
fn each_thread_maps_to_its_own_frames() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let script = "py_stack_threads.py";
    for py in interpreters() {
        let child = spawn_py(&py, script, &["wait"]);
        let mut s = PythonStacks::default();
        let expect: Vec<(i32, &str)> = [("main", "main_wait"), ("a", "wait_a"), ("b", "wait_b")]
            .into_iter()
            .chain([("c", "wait_c"), ("s", "sleeper")])
            .map(|(k, f)| (i32::try_from(child.fact_i64(k)).expect("tid fits in i32"), f))
            .collect();
        // Each tid's innermost frame of the script is its own function, at its wait's line
        // (threads pass a barrier before they wait: until then they are on another line).
        let lines: Vec<u32> = expect.iter().map(|(_, f)| marker_line(script, f)).collect();
        let m = read_until(&mut s, child.pid, "every thread in its wait", |m| {
            expect.iter().zip(&lines).all(|((tid, f), line)| {
                m.get(tid)
                    .and_then(|fr| first_in(fr, script))
                    .is_some_and(|fr| named(fr, f) && fr.line == *line)
            })
        });
        let tasks: HashSet<i32> =
            child.tids().into_iter().map(|t| i32::try_from(t).expect("tid")).collect();
        let keys: HashSet<i32> = m.keys().copied().collect();
        assert_eq!(keys, tasks, "{}: Python threads vs /proc/PID/task", py.display());
        // time.sleep is C code: the sleeper's innermost Python frame is its own.
        let sleeper = expect[4].0;
        assert!(named(&m[&sleeper][0], "sleeper"), "{}: {:#?}", py.display(), m[&sleeper]);
        // Event.wait runs through threading.py's Condition.wait.
        assert!(has_frame(&m[&expect[1].0], "wait", "threading.py", None), "{}", py.display());
        // What a read costs (printed, not asserted: the machine is shared).
        let t = Instant::now();
        let mut fresh = PythonStacks::default();
        assert_eq!(fresh.read(child.pid).map(|m| m.len()), Ok(5), "{}", py.display());
        let first = t.elapsed();
        let t = Instant::now();
        assert_eq!(fresh.read(child.pid).map(|m| m.len()), Ok(5), "{}", py.display());
        let cached = t.elapsed();
        eprintln!("ok: {}: 5 threads; first read {first:?}, cached {cached:?}", py.display());
        assert_eq!(s.losses(), Losses::default(), "{}", py.display());
        assert_eq!(fresh.losses(), Losses::default(), "{}", py.display());
    }
}

#[test]
fn a_main_thread_spinning_with_the_gil_does_not_hide_the_waiting_threads() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let script = "py_stack_threads.py";
    for py in interpreters() {
        let child = spawn_py(&py, script, &["spin"]);
        let a = i32::try_from(child.fact_i64("a")).expect("tid fits in i32");
        let mut s = PythonStacks::default();
        // The main thread runs Python code while it is read (no stop): its frames change under
        // the reader, so a read may need a retry; it must show `spin` within the time allowed.
        let m = read_until(&mut s, child.pid, "main thread in spin()", |m| {
            m.get(&child.pid).and_then(|f| first_in(f, script)).is_some_and(|f| named(f, "spin"))
                && m.get(&a).and_then(|f| first_in(f, script)).is_some_and(|f| named(f, "wait_a"))
        });
        assert_eq!(m.len(), 5, "{}: {m:#?}", py.display());
    }
}

#[test]
fn a_process_that_is_not_python_reads_as_empty() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo ready; exec sleep 600"]);
    let child = Child::spawn_command("sleep", cmd);
    let mut s = PythonStacks::default();
    // sh may still be exec'ing sleep: neither is Python.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(s.read(child.pid), Ok(HashMap::new()));
    assert_eq!(s.cached(), 0, "no reader is kept for a process that is not Python");
    // A C program from the suite, with threads.
    let c = Child::spawn("deadlock_mutex");
    assert_eq!(s.read(c.pid), Ok(HashMap::new()));
}

#[test]
fn a_process_that_exits_between_reads_is_an_error_and_is_forgotten() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let py = PathBuf::from("/usr/bin/python3");
    let child = spawn_py(&py, "py_stack_threads.py", &["wait"]);
    let pid = child.pid;
    let mut s = PythonStacks::default();
    let m = read_until(&mut s, pid, "five threads", |m| m.len() == 5);
    assert!(m.contains_key(&pid));
    assert_eq!(s.cached(), 1);
    s.forget_exited(&|p| p != pid);
    assert_eq!(s.cached(), 0, "forget_exited drops the reader of a process said to be gone");
    let _ = s.read(pid).expect("readable again");
    s.forget_exited(&|_| true);
    assert_eq!(s.cached(), 1, "forget_exited keeps live processes");

    drop(child); // SIGKILL and reap
    let alive = |p: i32| std::path::Path::new(&format!("/proc/{p}")).exists();
    s.forget_exited(&alive);
    assert_eq!(s.cached(), 0);
    match s.read(pid) {
        Ok(m) => assert!(m.is_empty(), "{m:#?}"),
        Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "{e:?}"),
    }
    assert_eq!(s.cached(), 0);
}

#[test]
fn the_feeder_thread_of_a_multiprocessing_child_shows_its_write() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let child =
        Child::spawn_args("pyrun", &[progs_dir().join("py_mp_join.py").to_str().expect("utf-8")]);
    let kid = i32::try_from(child.fact_i64("child")).expect("pid fits in i32");
    let mut s = PythonStacks::default();
    let km = read_until(&mut s, kid, "a feeder thread in _feed/send_bytes", |m| {
        m.values().any(|f| {
            f.iter().any(|x| named(x, "_feed")) && f.iter().any(|x| named(x, "send_bytes"))
        })
    });
    // The child's main thread is exiting: it joins the feeder.
    assert!(
        km.get(&kid)
            .is_some_and(|f| f.iter().any(|x| named(x, "_exit_function"))
                && f.iter().any(|x| named(x, "join"))),
        "{km:#?}"
    );
    let line = marker_line("py_mp_join.py", "p.join()");
    read_until(&mut s, child.pid, "the parent in p.join()", |m| {
        m.get(&child.pid).is_some_and(|f| has_frame(f, "<module>", "py_mp_join.py", Some(line)))
    });
}

#[test]
fn pyzmq_context_term_shows_the_term_call() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let zmq = Command::new("python3").args(["-c", "import zmq"]).status();
    assert!(
        zmq.is_ok_and(|s| s.success()),
        "python3 cannot import zmq: `cargo xtask setup` installs pyzmq"
    );
    let script = "py_zmq_hang.py";
    let child =
        Child::spawn_args("pyrun", &[progs_dir().join(script).to_str().expect("utf-8"), "term"]);
    let line = marker_line(script, "ctx.term()");
    let mut s = PythonStacks::default();
    let m = read_until(&mut s, child.pid, "main thread in Context.term()", |m| {
        m.get(&child.pid).is_some_and(|f| {
            has_frame(f, "<module>", script, Some(line))
                && f.first().is_some_and(|x| named(x, "term") && x.file.contains("zmq"))
        })
    });
    // libzmq's own threads run no Python code: they are not Python threads.
    assert_eq!(m.len(), 1, "{m:#?}");
}

#[test]
fn a_hostile_function_name_is_bounded() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let code = "import threading\n\
                name = 'f' + 'x' * 3000\n\
                exec('def ' + name + '():\\n    print(\"ready\", flush=True)\\n    threading.Event().wait()\\n')\n\
                globals()[name]()\n";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-u", "-c", code]);
    let child = Child::spawn_command("python3 -c", cmd);
    let mut s = PythonStacks::default();
    let m = read_until(&mut s, child.pid, "the long-named function", |m| {
        m.get(&child.pid).is_some_and(|f| f.iter().any(|x| x.function.starts_with("fxxx")))
    });
    let f = m[&child.pid].iter().find(|x| x.function.starts_with("fxxx")).expect("checked");
    assert!(f.function.len() <= MAX_NAME + '…'.len_utf8(), "{} bytes", f.function.len());
    assert!(f.function.ends_with('…'));
}

#[test]
fn a_process_named_python_that_is_not_is_an_error_kept_for_a_while() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let fake = work_dir().join("python3.99");
    if !fake.exists() {
        std::fs::copy("/bin/sleep", &fake).expect("copy /bin/sleep");
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo ready; exec \"$0\" 600"]).arg(&fake);
    let child = Child::spawn_command("python3.99", cmd);
    let mut s = PythonStacks::default();
    let t0 = Instant::now();
    let first = loop {
        // sh may not have exec'd the copy yet: until then it is not Python.
        match s.read(child.pid) {
            Ok(m) if m.is_empty() && t0.elapsed() < SETTLE => {
                thread::sleep(Duration::from_millis(50))
            }
            r => break r,
        }
    };
    let why = first.expect_err("a sleep named python3.99 cannot be read as Python");
    assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
    assert_eq!((s.cached(), s.failed()), (0, 1));
    // Within RETRY_AFTER the same reason comes back without a new try.
    assert_eq!(s.read(child.pid), Err(why));
    assert_eq!(s.losses().read_errors, 1, "one try, then the kept error");
    let pid = child.pid;
    drop(child);
    s.forget_exited(&|p| p != pid);
    assert_eq!((s.cached(), s.failed()), (0, 0));
}

#[test]
fn a_deep_stack_keeps_its_innermost_frames_and_counts_the_cut() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let code = "import threading\n\
                def deep(n):\n\
                \x20   if n == 0:\n\
                \x20       print('ready', flush=True)\n\
                \x20       threading.Event().wait()\n\
                \x20   deep(n - 1)\n\
                deep(300)\n";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-u", "-c", code]);
    let child = Child::spawn_command("python3 -c deep", cmd);
    let mut s = PythonStacks::default();
    let m = read_until(&mut s, child.pid, "the deep thread in Event.wait", |m| {
        m.get(&child.pid).is_some_and(|f| f.first().is_some_and(|x| named(x, "wait")))
    });
    let f = &m[&child.pid];
    assert_eq!(f.len(), MAX_FRAMES, "{f:#?}");
    assert!(f[2..].iter().all(|x| named(x, "deep")), "innermost kept: {f:#?}");
    assert!(s.losses().cut_stacks >= 1, "{:?}", s.losses());
    assert_eq!(s.losses().unmapped_threads, 0);
}
