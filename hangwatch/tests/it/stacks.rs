//! Stacks of blocked threads (docs/stacks.md), from real processes: a pthread mutex deadlock
//! (symbolized, then stripped), a C++ method, a binary only visible in its own mount
//! namespace, and what `--stacks` / `--no-stacks` / the default print. Needs root.

use crate::common;

use std::time::Duration;

use common::stacks::{NsDir, program_cxx, stripped};
use common::*;
use serde_json::Value;

const SETTLE: Duration = Duration::from_millis(1200);

fn snap(serial: &Serial, child: &Child, extra: &[&str]) -> Value {
    child.wait_since_ready(SETTLE);
    let pid = child.pid_arg();
    let mut args = vec!["--pid", pid.as_str(), "--min-blocked", "1s", "--window", "300ms"];
    args.extend_from_slice(extra);
    snapshot(serial, &args).json
}

fn human(child: &Child, extra: &[&str]) -> String {
    child.wait_since_ready(SETTLE);
    let pid = child.pid_arg();
    let mut args =
        vec!["snapshot", "--pid", pid.as_str(), "--min-blocked", "1s", "--window", "300ms"];
    args.extend_from_slice(extra);
    let run = run_hangwatch(&args);
    assert!(run.status.success(), "hangwatch failed: {}", run.describe());
    run.stdout
}

/// The `stack` object of a thread, which must be there.
fn stack_of(snap: &Value, pid: i32, tid: i64) -> &Value {
    let t = find_thread(find_process(snap, pid), tid);
    let s = field(t, "stack");
    assert!(s.is_object(), "thread {tid} has no stack:\n{}", excerpt(t));
    for k in ["kernel", "native", "python"] {
        array_field(s, k);
    }
    s
}

fn symbols(stack: &Value) -> Vec<String> {
    array_field(stack, "native")
        .iter()
        .filter_map(|f| f.get("symbol")?.as_str().map(str::to_string))
        .collect()
}

#[test]
fn mutex_deadlock_stacks_name_the_programs_functions_and_the_lock() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("stack_deadlock");
    let s = snap(&serial, &child, &[]);
    for key in ["t1", "t2"] {
        let tid = child.fact_i64(key);
        let st = stack_of(&s, child.pid, tid);
        let syms = symbols(st);
        assert!(
            syms.iter().any(|s| s == "hw_lock_second"),
            "no hw_lock_second in {syms:?}:\n{}",
            excerpt(st)
        );
        assert!(syms.iter().any(|s| s.starts_with("hw_thread_")), "no hw_thread_* in {syms:?}");
        assert!(
            syms.iter().any(|s| s.contains("pthread_mutex_lock") || s.contains("lll_lock_wait")),
            "no pthread_mutex_lock / __lll_lock_wait in {syms:?}"
        );
        // The innermost frame is the pc in libc, each frame has its module.
        let first = &array_field(st, "native")[0];
        assert!(str_field(first, "module").contains("libc"), "{}", excerpt(first));
        assert!(
            array_field(st, "kernel")
                .iter()
                .any(|k| k.as_str().is_some_and(|k| k.contains("futex"))),
            "kernel stack without futex:\n{}",
            excerpt(st)
        );
    }
    // The deadlock finding's chain steps name the frame each thread waits in.
    let deadlock = array_field(&s, "findings")
        .iter()
        .find(|f| str_field(f, "kind") == "deadlock")
        .unwrap_or_else(|| panic!("no deadlock finding:\n{}", excerpt(&s)));
    for step in array_field(deadlock, "chain") {
        assert_eq!(str_field(step, "frame"), "in hw_lock_second", "{}", excerpt(deadlock));
    }
    assert!(
        str_field(deadlock, "summary").contains("waits in hw_lock_second"),
        "{}",
        excerpt(deadlock)
    );
}

/// Code built with frame pointers computes each caller from `rbp`, which /proc does not show:
/// the frame pointer is recovered from the stack, and the stack reaches `main`.
#[test]
fn frame_pointer_code_unwinds_to_main() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("fp_stack");
    let s = snap(&serial, &child, &[]);
    let st = stack_of(&s, child.pid, child.fact_i64("tid"));
    let syms = symbols(st);
    let at = |name: &str| syms.iter().position(|s| s == name);
    let (inner, outer, main) = (at("hw_fp_inner"), at("hw_fp_outer"), at("main"));
    assert!(
        inner.is_some() && inner < outer && outer < main,
        "not inner < outer < main in {syms:?}:\n{}",
        excerpt(st)
    );
}

#[test]
fn stripped_binary_gives_module_and_offset() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let exe = stripped("stack_deadlock");
    let child = Child::spawn_command("stack_deadlock-stripped", std::process::Command::new(&exe));
    let s = snap(&serial, &child, &[]);
    let st = stack_of(&s, child.pid, child.fact_i64("t1"));
    let exe_s = exe.display().to_string();
    let own: Vec<&Value> = array_field(st, "native")
        .iter()
        .filter(|f| f.get("module").and_then(Value::as_str) == Some(exe_s.as_str()))
        .collect();
    assert!(own.len() >= 2, "fewer than 2 frames in {exe_s}:\n{}", excerpt(st));
    for f in &own {
        assert!(f["symbol"].is_null(), "a stripped static function has a symbol: {f}");
        assert!(f["offset"].as_u64().is_some_and(|o| o > 0), "no offset: {f}");
    }
    // libc still has its symbols.
    assert!(symbols(st).iter().any(|s| s.contains("pthread_mutex_lock") || s.contains("lll_lock")));
    // The default report names the module and offset.
    let out = human(&child, &[]);
    assert!(out.contains(&format!("in {exe_s}+0x")), "{out}");
}

#[test]
fn cxx_method_is_demangled() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let exe = program_cxx("stack_cxx");
    let child = Child::spawn_command("stack_cxx", std::process::Command::new(&exe));
    let s = snap(&serial, &child, &[]);
    let st = stack_of(&s, child.pid, child.pid.into());
    let syms = symbols(st);
    assert!(
        syms.iter().any(|s| s.starts_with("hwtest::Pool::drain(")),
        "no demangled hwtest::Pool::drain in {syms:?}"
    );
    let out = human(&child, &[]);
    assert!(out.contains("in hwtest::Pool::drain("), "{out}");
}

#[test]
fn binary_in_its_own_mount_namespace_is_symbolized() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let ns = NsDir::new("stacks");
    let exe = program("stack_deadlock");
    let child = Child::spawn_command("stack_deadlock", ns.command(&exe));
    // The host sees an empty directory: the binary is only in the child's namespace.
    assert!(std::fs::read_dir(&ns.path).map(|mut d| d.next().is_none()).unwrap_or(false));
    let s = snap(&serial, &child, &[]);
    let st = stack_of(&s, child.pid, child.fact_i64("t2"));
    let syms = symbols(st);
    assert!(syms.iter().any(|s| s == "hw_lock_second"), "{syms:?}:\n{}", excerpt(st));
    let module = ns.path.join("stack_deadlock").display().to_string();
    assert!(
        array_field(st, "native")
            .iter()
            .any(|f| f.get("module").and_then(Value::as_str) == Some(module.as_str())),
        "no frame in {module}:\n{}",
        excerpt(st)
    );
    drop(child);
}

#[test]
fn no_stacks_reads_none_stacks_prints_all_default_prints_one_frame() {
    if !require_root() {
        return;
    }
    let serial = serial();
    let child = Child::spawn("stack_deadlock");
    let s = snap(&serial, &child, &["--no-stacks"]);
    for t in threads(find_process(&s, child.pid)) {
        assert!(t.get("stack").is_none(), "--no-stacks gave a stack:\n{}", excerpt(t));
    }
    assert_eq!(u64_field(field(&s, "stats"), "stacks_read"), 0);

    let brief = human(&child, &[]);
    let frame_lines: Vec<&str> =
        brief.lines().filter(|l| l.trim_start_matches(['│', ' ']).starts_with("in ")).collect();
    // Three blocked threads (the main one in pthread_join): one frame line each.
    assert_eq!(frame_lines.len(), 3, "one frame line per blocked thread:\n{brief}");
    assert_eq!(
        frame_lines.iter().filter(|l| l.contains("in hw_lock_second")).count(),
        2,
        "{brief}"
    );
    assert!(!brief.contains("[kernel]"), "{brief}");

    let full = human(&child, &["--stacks"]);
    assert!(full.contains(&format!("stack × 1 thread (tid {})", child.fact("t1"))), "{full}");
    assert!(full.contains("in hw_thread_one") && full.contains("in hw_thread_two"), "{full}");
    assert!(full.contains("[kernel] "), "{full}");
    assert!(full.contains("pthread_mutex_lock") || full.contains("lll_lock_wait"), "{full}");

    let none = human(&child, &["--no-stacks"]);
    assert!(!none.contains("hw_lock_second"), "{none}");
}

#[test]
fn live_blocked_records_carry_the_stack() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let child = Child::spawn("stack_deadlock");
    let tid = child.fact_i64("t1");
    let mut live = Live::start(&["--pid", &child.pid_arg(), "--min-blocked", "500ms"]);
    let rec = live
        .wait_for(Duration::from_secs(20), |v| {
            v.get("type").and_then(Value::as_str) == Some("blocked")
                && v.get("tid").and_then(Value::as_i64) == Some(tid)
        })
        .unwrap_or_else(|| panic!("no blocked record for tid {tid}"));
    let st = field(&rec, "stack");
    let syms = symbols(st);
    assert!(syms.iter().any(|s| s == "hw_lock_second"), "{syms:?}:\n{}", excerpt(&rec));
    // One hangwatch at a time.
    drop(live);

    let mut none =
        Live::start(&["--no-stacks", "--pid", &child.pid_arg(), "--min-blocked", "500ms"]);
    let rec = none
        .wait_for(Duration::from_secs(20), |v| {
            v.get("type").and_then(Value::as_str) == Some("blocked")
                && v.get("tid").and_then(Value::as_i64) == Some(tid)
        })
        .unwrap_or_else(|| panic!("no blocked record for tid {tid} with --no-stacks"));
    assert!(rec.get("stack").is_none(), "--no-stacks gave a stack:\n{}", excerpt(&rec));
}
