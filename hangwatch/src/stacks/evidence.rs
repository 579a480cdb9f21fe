//! What a blocked thread's stack says about its wait, for the verdicts (docs/findings.md,
//! "Stacks as evidence"). Pure functions over [`Stack`].
//!
//! The kernel only shows a futex wait; the stack tells a lock being acquired (which some
//! other thread holds) from a condition, an event or a queue being waited on (which any
//! thread may signal). A cycle of futex waits whose every thread is acquiring a lock, or
//! joining a thread of the cycle, is a deadlock even without an owner in the futex word:
//! CPython's locks are semaphores and say nothing of who holds them.

use super::{PyFrame, Stack, describe_python, is_system_python_file};

/// What a thread's stack shows it waits in; `at` is where (its innermost user-code frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InStack {
    /// Acquiring a lock: CPython `Lock`/`RLock` `acquire` or `with lock:` from the program's
    /// own code, or a pthread mutex or rwlock.
    LockAcquire { at: String },
    /// Joining a thread (`Thread.join`, `pthread_join`).
    Join { at: String },
    /// Waiting for a condition, an event, a queue, a semaphore or a selector: for another
    /// thread's (or process's) work, which any of them may post.
    Signalled { at: String },
}

/// CPython's C functions under `Lock.acquire` / `RLock.acquire` (and `with lock:`).
const CPYTHON_LOCK_ACQUIRE: &[&str] = &[
    "lock_PyThread_acquire_lock",
    "rlock_acquire",
    "lock_acquire_parse_args",
    "_PyMutex_LockTimed",
];

/// glibc's and musl's mutex and rwlock acquires.
const NATIVE_LOCK_ACQUIRE: &[&str] = &[
    "pthread_mutex_lock",
    "__pthread_mutex_lock",
    "___pthread_mutex_lock",
    "__pthread_mutex_lock_full",
    "__lll_lock_wait",
    "pthread_mutex_timedlock",
    "pthread_rwlock_rdlock",
    "pthread_rwlock_wrlock",
    "__pthread_rwlock_rdlock",
    "__pthread_rwlock_wrlock",
    "__pthread_rwlock_wrlock_full",
    "__pthread_rwlock_rdlock_full",
];

const NATIVE_JOIN: &[&str] = &["pthread_join", "__pthread_join", "__pthread_clockjoin_ex"];

const NATIVE_SIGNALLED: &[&str] = &[
    "pthread_cond_wait",
    "__pthread_cond_wait",
    "___pthread_cond_wait",
    "pthread_cond_timedwait",
    "__pthread_cond_wait_common",
    "sem_wait",
    "__new_sem_wait",
    "sem_timedwait",
    "sem_clockwait",
];

/// The last component of a qualified Python name (`Thread.join` → `join`).
fn short(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}

fn file_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// The standard library's own waits, by the innermost Python frame.
fn stdlib_wait(f: &PyFrame) -> Option<fn(String) -> InStack> {
    if !is_system_python_file(&f.file) {
        return None;
    }
    let name = file_name(&f.file);
    let func = short(&f.function);
    match name {
        "threading.py" => match func {
            "_wait_for_tstate_lock" | "join" => Some(|at| InStack::Join { at }),
            _ => Some(|at| InStack::Signalled { at }),
        },
        _ => Some(|at| InStack::Signalled { at }),
    }
}

fn has_symbol(s: &Stack, names: &[&str]) -> bool {
    s.native.iter().filter_map(|f| f.symbol.as_deref()).any(|sym| {
        // Symbols may carry a version or a clone suffix (`pthread_mutex_lock@@GLIBC_2.2.5`,
        // `acquire_timed.constprop.0`).
        let base = sym.split(['@', '.']).next().unwrap_or(sym);
        names.contains(&base)
    })
}

/// What the stack shows the thread waits in, when it shows it.
pub fn classify(s: &Stack) -> Option<InStack> {
    let at = || s.user_frame().unwrap_or_else(|| "?".into());
    if let Some(top) = s.python.first() {
        if let Some(kind) = stdlib_wait(top) {
            // Where in the program: the innermost frame outside the standard library.
            let user = s
                .python
                .iter()
                .find(|f| !is_system_python_file(&f.file))
                .map(describe_python)
                .unwrap_or_else(|| describe_python(top));
            return Some(kind(user));
        }
        if has_symbol(s, CPYTHON_LOCK_ACQUIRE) {
            return Some(InStack::LockAcquire { at: describe_python(top) });
        }
        return None;
    }
    if has_symbol(s, NATIVE_LOCK_ACQUIRE) {
        Some(InStack::LockAcquire { at: at() })
    } else if has_symbol(s, NATIVE_JOIN) {
        Some(InStack::Join { at: at() })
    } else if has_symbol(s, NATIVE_SIGNALLED) {
        Some(InStack::Signalled { at: at() })
    } else {
        None
    }
}

/// A pool worker waiting for its next task, by its Python frames: `multiprocessing.Pool`'s
/// `worker`, `concurrent.futures`' process and thread workers. The place, when it is one.
pub fn pool_worker(s: &Stack) -> Option<String> {
    s.python.iter().find_map(|f| {
        let (file, func) = (f.file.as_str(), short(&f.function));
        let pool = (file.ends_with("/multiprocessing/pool.py") && func == "worker")
            || (file.ends_with("/concurrent/futures/process.py") && func == "_process_worker")
            || (file.ends_with("/concurrent/futures/thread.py") && func == "_worker");
        (pool && is_system_python_file(file)).then(|| describe_python(f))
    })
}

/// libzmq's context termination, by the Python frame of pyzmq's `Context.term` (or
/// `destroy`) or libzmq's own `zmq::ctx_t::terminate` / `zmq_ctx_term`: it returns only when
/// every socket of the context is closed, and a socket left open (or one with unsent messages
/// and an infinite LINGER) holds it forever.
pub fn zmq_term(s: &Stack) -> Option<String> {
    let py = s
        .python
        .iter()
        .find(|f| f.file.contains("/zmq/") && matches!(short(&f.function), "term" | "destroy"));
    if let Some(f) = py {
        return Some(describe_python(f));
    }
    s.native
        .iter()
        .filter_map(|f| f.symbol.as_deref())
        .find(|sym| sym.contains("zmq::ctx_t::terminate") || sym.starts_with("zmq_ctx_term"))
        .map(|sym| format!("in {sym}"))
}

/// PostgreSQL's waits for a lock that another session holds: a heavyweight lock (a table, an
/// advisory lock) sleeps in `ProcSleep`; a row lock waits for the transaction that changed the
/// row in `XactLockTableWait` (through `ProcSleep`). PostgreSQL exports its symbols (for its
/// extensions), so these names are there on every distribution.
const DB_LOCK_WAIT: &[&str] = &["ProcSleep", "XactLockTableWait"];

/// Named frames shown after the lock function, to say what is being locked.
const LOCK_CALLERS_SHOWN: usize = 3;

/// A wait for a lock that someone else holds, by the stack: a PostgreSQL session waiting for
/// a table or row lock, or a thread acquiring a mutex, an rwlock or a Python lock
/// ([`classify`]). What and where, for a sentence: `a PostgreSQL lock (in ProcSleep ←
/// LockAcquireExtended ← LockRelationOid)`.
pub fn lock_wait(s: &Stack) -> Option<String> {
    let named: Vec<&str> = s.native.iter().filter_map(|f| f.symbol.as_deref()).collect();
    let base = |sym: &str| sym.split(['@', '.']).next().unwrap_or(sym).to_string();
    if let Some(i) = named.iter().position(|sym| DB_LOCK_WAIT.contains(&base(sym).as_str())) {
        let path: Vec<String> =
            named[i..].iter().take(1 + LOCK_CALLERS_SHOWN).map(|sym| base(sym)).collect();
        return Some(format!("a PostgreSQL lock (in {})", path.join(" ← ")));
    }
    match classify(s)? {
        InStack::LockAcquire { at } => Some(format!("a lock ({at})")),
        InStack::Join { .. } | InStack::Signalled { .. } => None,
    }
}

/// A wait-for cycle is a deadlock by its stacks when every thread in it is acquiring a lock
/// or joining a thread, and at least two acquire locks (two threads joining each other is
/// not a lock cycle, and a lone acquire beside joins is a thread waiting on the joiner):
/// the places, in the cycle's order.
pub fn lock_cycle<'a>(stacks: impl IntoIterator<Item = Option<&'a Stack>>) -> Option<Vec<String>> {
    let mut at = Vec::new();
    let mut locks = 0;
    for s in stacks {
        match classify(s?)? {
            InStack::LockAcquire { at: a } => {
                locks += 1;
                at.push(a);
            }
            InStack::Join { .. } => {}
            InStack::Signalled { .. } => return None,
        }
    }
    (locks >= 2).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::super::NativeFrame;
    use super::*;

    fn native(symbols: &[&str]) -> Vec<NativeFrame> {
        symbols
            .iter()
            .map(|s| NativeFrame { symbol: Some((*s).to_string()), ..Default::default() })
            .collect()
    }

    #[test]
    fn postgresql_lock_waits_and_mutexes_are_lock_waits_conditions_are_not() {
        let pg = Stack {
            native: native(&[
                "epoll_wait",
                "WaitEventSetWait",
                "WaitLatch",
                "ProcSleep",
                "LockAcquireExtended",
                "LockRelationOid",
                "RangeVarGetRelidExtended",
                "main",
            ]),
            ..Default::default()
        };
        assert_eq!(
            lock_wait(&pg).as_deref(),
            Some(
                "a PostgreSQL lock (in ProcSleep ← LockAcquireExtended ← LockRelationOid ← RangeVarGetRelidExtended)"
            )
        );
        // A session idle between queries waits in the same epoll_wait, for its client.
        let idle = Stack {
            native: native(&["epoll_wait", "WaitEventSetWait", "secure_read", "PostgresMain"]),
            ..Default::default()
        };
        assert_eq!(lock_wait(&idle), None);
        let mutex = Stack {
            native: native(&["__lll_lock_wait", "___pthread_mutex_lock", "hw_take"]),
            ..Default::default()
        };
        assert!(lock_wait(&mutex).is_some_and(|w| w.starts_with("a lock (")));
        let cond =
            Stack { native: native(&["___pthread_cond_wait", "hw_next"]), ..Default::default() };
        assert_eq!(lock_wait(&cond), None);
    }

    fn py(frames: &[(&str, &str, u32)]) -> Vec<PyFrame> {
        frames
            .iter()
            .map(|(function, file, line)| PyFrame {
                function: (*function).into(),
                file: (*file).into(),
                line: *line,
            })
            .collect()
    }

    const CPY_LOCK: &[&str] = &[
        "__futex_abstimed_wait_common",
        "__new_sem_wait_slow64",
        "PyThread_acquire_lock_timed",
        "acquire_timed",
        "lock_PyThread_acquire_lock",
        "_PyEval_EvalFrameDefault",
    ];
    const STDLIB: &str = "/usr/lib/python3.11/threading.py";

    #[test]
    fn python_with_lock_is_a_lock_acquire_event_wait_is_not() {
        let acquire = Stack {
            python: py(&[("one", "/srv/app/job.py", 7)]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        assert_eq!(
            classify(&acquire),
            Some(InStack::LockAcquire { at: "at /srv/app/job.py:7 in one()".into() })
        );
        // Event.wait → Condition.wait → waiter.acquire(): the same C path, but a wait for a
        // signal, placed at the program's own line.
        let event = Stack {
            python: py(&[
                ("Condition.wait", STDLIB, 320),
                ("Event.wait", STDLIB, 622),
                ("serve", "/srv/app/job.py", 30),
            ]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        assert_eq!(
            classify(&event),
            Some(InStack::Signalled { at: "at /srv/app/job.py:30 in serve()".into() })
        );
        let join = Stack {
            python: py(&[
                ("Thread._wait_for_tstate_lock", STDLIB, 1139),
                ("<module>", "/srv/app/job.py", 16),
            ]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        assert!(matches!(classify(&join), Some(InStack::Join { .. })));
        // Site-packages are the program's code too (a library's own lock).
        let lib = Stack {
            python: py(&[("emit", "/usr/lib/python3/dist-packages/lib/x.py", 3)]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        assert!(matches!(classify(&lib), Some(InStack::LockAcquire { .. })));
        // A Python frame with no lock below it (a read): nothing said.
        let read = Stack { python: py(&[("recv", "/srv/app/job.py", 9)]), ..Default::default() };
        assert_eq!(classify(&read), None);
    }

    #[test]
    fn pool_workers_and_zmq_termination() {
        let worker = Stack {
            python: py(&[
                ("Connection._recv", "/usr/lib/python3.11/multiprocessing/connection.py", 395),
                ("worker", "/usr/lib/python3.11/multiprocessing/pool.py", 114),
            ]),
            ..Default::default()
        };
        assert!(pool_worker(&worker).is_some_and(|w| w.contains("pool.py:114 in worker()")));
        // A function called worker in the program's own file is not the pool's.
        let own = Stack { python: py(&[("worker", "/srv/app/pool.py", 3)]), ..Default::default() };
        assert_eq!(pool_worker(&own), None);
        let term = Stack {
            python: py(&[
                ("Context.term", "/usr/lib/python3/dist-packages/zmq/sugar/context.py", 280),
                ("<module>", "/srv/app/job.py", 12),
            ]),
            ..Default::default()
        };
        assert!(zmq_term(&term).is_some_and(|t| t.contains("in Context.term()")));
        let native = Stack {
            native: native(&["poll", "zmq::ctx_t::terminate()", "zmq_ctx_term"]),
            ..Default::default()
        };
        assert_eq!(zmq_term(&native).as_deref(), Some("in zmq::ctx_t::terminate()"));
        assert_eq!(zmq_term(&worker), None);
    }

    #[test]
    fn native_mutexes_joins_and_conditions() {
        let m = Stack {
            native: native(&["__lll_lock_wait", "___pthread_mutex_lock@@GLIBC_2.2.5", "worker"]),
            ..Default::default()
        };
        assert!(matches!(classify(&m), Some(InStack::LockAcquire { .. })));
        let j = Stack {
            native: native(&["__futex_abstimed_wait_common", "__pthread_clockjoin_ex", "main"]),
            ..Default::default()
        };
        assert!(matches!(classify(&j), Some(InStack::Join { .. })));
        let c = Stack {
            native: native(&["__futex_abstimed_wait_common", "___pthread_cond_wait", "pop"]),
            ..Default::default()
        };
        assert!(matches!(classify(&c), Some(InStack::Signalled { .. })));
        assert_eq!(classify(&Stack::default()), None);
    }

    #[test]
    fn a_lock_cycle_needs_every_thread_in_a_lock_or_a_join() {
        let lock = |f: &str, line| Stack {
            python: py(&[(f, "/srv/abba.py", line)]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        let (one, two) = (lock("one", 7), lock("two", 12));
        let join = Stack {
            python: py(&[("Thread.join", STDLIB, 1119), ("<module>", "/srv/abba.py", 16)]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        let at = lock_cycle([Some(&join), Some(&one), Some(&two)]).expect("ABBA");
        assert_eq!(at, vec!["at /srv/abba.py:7 in one()", "at /srv/abba.py:12 in two()"]);
        // A thread pool waiting on its queue beside them: not a lock cycle.
        let idle = Stack {
            python: py(&[
                ("Condition.wait", STDLIB, 320),
                ("Queue.get", "/usr/lib/python3.11/queue.py", 171),
            ]),
            native: native(CPY_LOCK),
            ..Default::default()
        };
        assert_eq!(lock_cycle([Some(&one), Some(&two), Some(&idle)]), None);
        // A thread without a stack: no evidence.
        assert_eq!(lock_cycle([Some(&one), None]), None);
        // One acquire and a join: not two locks.
        assert_eq!(lock_cycle([Some(&one), Some(&join)]), None);
    }
}
