//! The orphaned-wait rules whose releaser is gone, on plain values: a wait for a child that is
//! not running, a mutex or PI lock whose owner thread has exited. `analyze` decides from the
//! model and the facts alone; whether a task is gone is a fact `facts::gather` reads from
//! /proc, tested at the end against the real /proc.

use std::sync::Arc;

use super::{Config, Finding, FindingKind, analyze};
use crate::{
    model::{
        Process, Wait,
        facts::{Facts, FutexKey},
        fixtures::{process, wait},
    },
    sources::facts::gather,
    syscalls::{ChildWait, FutexWait, ProcTask, WaitOn},
};

fn cfg() -> Config {
    Config { now_mono_ns: 1_000_000_000_000, hung_after_ns: 30_000_000_000, oom_recent_ns: 0 }
}

fn orphans(procs: &[Process], f: &Facts) -> Vec<Finding> {
    analyze(procs, f, &cfg()).into_iter().filter(|x| x.kind == FindingKind::OrphanedWait).collect()
}

/// pid 100 in `wait4(child)` for 600 s.
fn parent_of(child: i32) -> Process {
    let mut w = wait("wait4", 600.0, true);
    Arc::make_mut(&mut w.decoded).wait_on = WaitOn::Child(ChildWait::Pid(child));
    process(100, 5.0, 900.0, vec![Some(w)])
}

#[test]
fn a_wait_for_a_child_that_is_not_running_is_orphaned() {
    let mut f = Facts::default();
    f.absent_tasks.insert((200, 200));
    let found = orphans(&[parent_of(200)], &f);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].pids.clone(), found[0].tids.clone()), (vec![100], vec![100]));
    assert!(
        found[0].summary.contains("in wait4 for child 200, which is not running"),
        "{}",
        found[0].summary
    );
    assert_eq!(found[0].key, "orphaned_wait:100:100");
}

#[test]
fn a_wait_for_a_child_that_runs_or_is_unknown_is_not_orphaned() {
    // The child is in the model and runs: an edge to it, nothing to report.
    let mut child = process(200, 1.0, 10.0, vec![None]);
    child.ppid = 100;
    let mut f = Facts::default();
    assert!(orphans(&[parent_of(200), child], &f).is_empty());
    // Absent from the model (outside a --pid filter) but not found gone by the facts: unknown
    // is not gone.
    assert!(orphans(&[parent_of(200)], &f).is_empty());
    // Another process's absent task with the same number is no evidence either.
    f.absent_tasks.insert((300, 200));
    assert!(orphans(&[parent_of(200)], &f).is_empty());
}

/// A thread in `futex(WAIT)` expecting `val`, on a private futex at 0x1000.
fn futex_wait(val: u32, owner_tid: Option<u32>) -> Wait {
    let mut w = wait("futex", 600.0, true);
    Arc::make_mut(&mut w.decoded).wait_on =
        WaitOn::Futex(FutexWait { uaddr: 0x1000, cmd: 0, private: true, val, owner_tid });
    w
}

/// pid 60: thread 60 waits on the lock, thread 61 runs (20% CPU: working, not hung).
fn lock_waiter(w: Wait) -> Process {
    let mut p = process(60, 1.0, 900.0, vec![Some(w), None]);
    p.cpu_percent = 20.0;
    p
}

fn mutex_waiter(val: u32) -> Process {
    lock_waiter(futex_wait(val, None))
}

/// Facts: thread 60's futex word is 2 (locked, contended) and glibc's owner field says `owner`.
fn mutex_facts(owner: u32) -> Facts {
    let mut f = Facts::default();
    f.futex_key.insert((60, 60), FutexKey::Private { pid: 60, addr: 0x1000 });
    f.futex_words.insert(60, (2, Some(owner)));
    f
}

#[test]
fn a_mutex_whose_owner_thread_has_exited_is_orphaned() {
    let mut f = mutex_facts(63);
    f.absent_tasks.insert((60, 63));
    let found = orphans(&[mutex_waiter(2)], &f);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].tids, vec![60]);
    assert!(
        found[0].summary.contains("in futex for a mutex whose owner thread 63 has exited"),
        "{}",
        found[0].summary
    );
}

#[test]
fn a_mutex_whose_owner_lives_or_is_unknown_is_not_orphaned() {
    // The owner is the process's running thread: a contended wait with an edge to it.
    let procs = [mutex_waiter(2)];
    let found = analyze(&procs, &mutex_facts(61), &cfg());
    assert!(found.is_empty(), "{found:#?}");
    // An owner not among the scanned threads but not found gone in /proc/PID/task.
    assert!(orphans(&procs, &mutex_facts(63)).is_empty());
    // Gone, but the waiter expects another value than 2: not a contended mutex wait.
    let mut f = mutex_facts(63);
    f.absent_tasks.insert((60, 63));
    assert!(orphans(&[mutex_waiter(0)], &f).is_empty());
}

#[test]
fn a_pi_lock_whose_owner_thread_has_exited_is_orphaned_not_one_it_lives() {
    let pi = |owner| lock_waiter(futex_wait(0, Some(owner)));
    let found = orphans(&[pi(65)], &Facts::default());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].summary.contains("a PI lock whose owner thread 65 has exited"));
    // Owned by its running thread 61.
    assert!(analyze(&[pi(61)], &Facts::default(), &cfg()).is_empty());
}

/// The facts behind both rules, read from the real /proc: a waited-for child that does not
/// exist is recorded gone, a running one is not; a mutex owner that is no thread of the
/// process is recorded gone, a real thread is not.
#[test]
fn gather_reads_which_children_and_owners_are_gone() {
    let me = std::process::id() as i32;
    // Above the largest pid_max (2^22): never a running task.
    let never = 1 << 30;
    let (gone_child, live_child) = (parent_of(never), parent_of(me));
    let f = gather(&[gone_child], &|pid| Box::new(ProcTask { pid }), vec![]);
    assert!(f.absent_tasks.contains(&(never, never)), "{:?}", f.absent_tasks);
    let f = gather(&[live_child], &|pid| Box::new(ProcTask { pid }), vec![]);
    assert!(f.absent_tasks.is_empty(), "{:?}", f.absent_tasks);

    // A mutex in this process's own memory: word 2, glibc's owner field at +8.
    let word = |owner: u32| Box::new([2u32, 0, owner]);
    let waiter = |m: &[u32; 3]| {
        let mut w = futex_wait(2, None);
        if let WaitOn::Futex(x) = &mut Arc::make_mut(&mut w.decoded).wait_on {
            x.uaddr = m.as_ptr() as u64;
        }
        process(me, 1.0, 900.0, vec![Some(w)])
    };
    let gone = word(never as u32);
    let f = gather(&[waiter(&gone)], &|pid| Box::new(ProcTask { pid }), vec![]);
    assert_eq!(f.futex_words.get(&me), Some(&(2, Some(never as u32))));
    assert!(f.absent_tasks.contains(&(me, never)), "{:?}", f.absent_tasks);
    // This test's own thread is a thread of the process, though the model lists only one.
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let live = word(tid as u32);
    let f = gather(&[waiter(&live)], &|pid| Box::new(ProcTask { pid }), vec![]);
    assert!(f.absent_tasks.is_empty(), "{:?}", f.absent_tasks);
}
