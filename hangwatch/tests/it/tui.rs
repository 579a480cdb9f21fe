//! The terminal UI for real, in tmux: it shows a process that really blocks, takes keys, and
//! hands the terminal back (normal screen, cooked mode) on `q` and on SIGTERM; a real deadlock
//! is marked in the table, listed in the findings pane and explained in the detail view.
//!
//! Needs root (hangwatch loads eBPF programs) and tmux; without either each test says SKIPPED.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long the UI may take to show what the test waits for.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: tmux is not installed");
    }
    ok
}

/// A tmux server of our own (its own socket in the test's directory), killed on Drop, also
/// when the test panics.
struct Tmux {
    socket: PathBuf,
    target: String,
}

impl Tmux {
    /// Starts `script` in a detached session of `w`x`h`, with diagnostics logged to `state`.
    fn start(name: &str, script: &Path, state: &Path, w: u16, h: u16) -> Tmux {
        let socket = work_dir().join(format!("tmux-{name}.sock"));
        let tmux = Tmux { socket, target: format!("hw-test-{}", std::process::id()) };
        let out = Command::new("tmux")
            .arg("-u")
            .arg("-S")
            .arg(&tmux.socket)
            .args(["-f", "/dev/null", "new-session", "-d"])
            .args(["-s", &tmux.target, "-x", &w.to_string(), "-y", &h.to_string()])
            .arg(script)
            .env("XDG_STATE_HOME", state)
            .env_remove("RUST_LOG")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux: {e}"));
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux {args:?}: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", &self.target])
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.cmd(&["send-keys", "-t", &self.target, "-l", text]);
    }

    /// Sends a key by tmux name (`Enter`, `q`, `C-c`).
    fn key(&self, key: &str) {
        self.cmd(&["send-keys", "-t", &self.target, key]);
    }

    fn resize(&self, w: u16, h: u16) {
        self.cmd(&[
            "resize-window",
            "-t",
            &self.target,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
    }

    fn pane_pid(&self) -> i32 {
        let s = self.cmd(&["display-message", "-p", "-t", &self.target, "#{pane_pid}"]);
        s.trim().parse().unwrap_or_else(|e| panic!("pane pid {s:?}: {e}"))
    }

    /// Polls the screen until `pred` holds; panics with the last screen after `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if t0.elapsed() > timeout {
                panic!("the screen did not show {what} within {timeout:?}; last screen:\n{screen}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A script that runs hangwatch, then reports its exit status and the terminal's mode, then
/// stays so that the pane can be read.
fn script(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = work_dir().join(format!("tui-{name}.sh"));
    let bin = hangwatch_bin();
    let text = format!(
        "#!/bin/sh\n'{}' --min-blocked 500ms\necho \"EXITED $?\"\nstty -a | tr ' ;' '\\n\\n' | grep -x -E -e '-?icanon' -e '-?echo' | sed 's/^/MODE /'\nsleep 60\n",
        bin.display()
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

/// The table row of `pid` on `screen`, if shown (the pid may carry a finding's `!`).
fn row_of(screen: &str, pid: i32) -> Option<&str> {
    let p = pid.to_string();
    screen.lines().find(|l| {
        l.split_whitespace().next().map(|w| w.trim_start_matches('!')) == Some(p.as_str())
    })
}

/// Moves the table's selection from the top row to `pid`'s row and opens its detail view.
fn open_detail(tmux: &Tmux, screen: &str, pid: i32) {
    let lines: Vec<&str> = screen.lines().collect();
    let header =
        lines.iter().position(|l| l.contains("PID") && l.contains("COMM")).expect("column header");
    let ours = lines.iter().position(|l| row_of(l, pid).is_some()).expect("our row");
    for _ in 0..ours.saturating_sub(header + 1) {
        tmux.key("j");
    }
    tmux.key("Enter");
}

/// After hangwatch exited: status 0, normal screen back (no UI left over), cooked mode.
fn assert_restored(tmux: &Tmux) {
    let screen = tmux.wait_for("EXITED", Duration::from_secs(10), |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 0"), "hangwatch should exit 0:\n{screen}");
    for ui in ["Processes", "PID COMM", "q quit", "blocked:"] {
        assert!(
            !screen.contains(ui),
            "the UI ({ui:?}) is still on the screen after exit:\n{screen}"
        );
    }
    let screen =
        tmux.wait_for("the terminal mode", Duration::from_secs(5), |s| s.contains("MODE echo"));
    assert!(
        screen.lines().any(|l| l.trim() == "MODE icanon")
            && screen.lines().any(|l| l.trim() == "MODE echo"),
        "the terminal should be back in cooked mode with echo:\n{screen}"
    );
}

#[test]
fn shows_a_blocked_process_and_quits_on_q() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let child = Child::spawn("futex_wait");
    let tmux = Tmux::start("q", &script("q"), work_dir(), 120, 35);
    tmux.wait_for("the process table", SHOW_TIMEOUT, |s| {
        s.contains("Processes") && s.contains("PID")
    });

    // Narrow the table to the test program with the filter.
    tmux.type_text("/futex_wait");
    tmux.key("Enter");
    // Blocked threads appear once their waits pass --min-blocked.
    let screen =
        tmux.wait_for(&format!("pid {} with 2 blocked threads", child.pid), SHOW_TIMEOUT, |s| {
            row_of(s, child.pid).is_some_and(|r| r.contains("2/2"))
        });
    eprintln!("120x35:\n{screen}");
    let row = row_of(&screen, child.pid).expect("row");
    assert!(row.contains("futex_wait"), "comm in {row:?}");
    assert!(row.contains("2/2"), "both threads blocked in {row:?}");
    assert!(row.contains("futex ∞"), "longest wait in {row:?}");
    assert!(screen.contains("filter: futex_wait"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains("hangwatch") && l.contains("up ")),
        "header:\n{screen}"
    );

    // The detail view shows both threads with their decoded call. Other futex_wait programs
    // (other tests) may be listed too: move the selection to ours first.
    open_detail(&tmux, &screen, child.pid);
    let screen = tmux.wait_for("the detail view", SHOW_TIMEOUT, |s| s.contains("Threads (2)"));
    let tid = child.fact_i64("tid");
    assert!(screen.contains(&format!("pid {} · futex_wait", child.pid)), "{screen}");
    assert!(
        screen.lines().any(|l| l.split_whitespace().next() == Some(&tid.to_string())),
        "worker {tid}:\n{screen}"
    );
    assert!(screen.contains("futex(") && screen.contains("timeout=infinite"), "{screen}");
    tmux.key("Escape");

    // 80x24 still shows it.
    tmux.resize(80, 24);
    let screen = tmux.wait_for("the row at 80x24", SHOW_TIMEOUT, |s| {
        s.lines().all(|l| l.chars().count() <= 80) && row_of(s, child.pid).is_some()
    });
    eprintln!("80x24:\n{screen}");

    tmux.key("q");
    assert_restored(&tmux);
}

#[test]
fn a_deadlock_is_marked_listed_and_explained() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let parent = Child::spawn("deadlock_pipe_join");
    let child = i32::try_from(parent.fact_i64("child")).expect("child pid");
    let inode = parent.fact_i64("inode");
    let tmux = Tmux::start("deadlock", &script("deadlock"), work_dir(), 120, 35);
    tmux.wait_for("the process table", SHOW_TIMEOUT, |s| {
        s.contains("Processes") && s.contains("PID")
    });
    tmux.type_text("/deadlock_pipe");
    tmux.key("Enter");

    // Findings are recomputed every 5 scans: both rows get the red `!` and DEADLOCK, the pane
    // lists the deadlock, the header counts it.
    let marked = |s: &str, pid: i32| {
        row_of(s, pid).is_some_and(|r| {
            r.split_whitespace().next().is_some_and(|w| w.starts_with('!'))
                && r.trim_end().ends_with("DEADLOCK")
        })
    };
    let in_pane = |s: &str| {
        s.lines().any(|l| {
            l.contains(" deadlock ")
                && (l.contains(&format!("pid {} (", parent.pid))
                    || l.contains(&format!("pid {child} (")))
        })
    };
    let screen = tmux.wait_for("the deadlock, marked and listed", SHOW_TIMEOUT, |s| {
        marked(s, parent.pid) && marked(s, child) && in_pane(s)
    });
    eprintln!("120x35:\n{screen}");
    assert!(screen.contains("Findings ("), "{screen}");
    assert!(
        screen.lines().nth(1).is_some_and(|l| l.contains("findings: ")),
        "the header counts the findings:\n{screen}"
    );

    // The detail view of the parent draws the chain as a path.
    open_detail(&tmux, &screen, parent.pid);
    let join =
        format!("└→ pid {0} tid {0} (deadlock_pipe_j) in wait4 waits on child {child}", parent.pid);
    let write =
        format!("└→ pid {child} tid {child} (deadlock_pipe_j) in write waits on pipe:[{inode}]");
    let screen = tmux.wait_for("the chain in the detail view", SHOW_TIMEOUT, |s| {
        s.contains("✖ deadlock [critical]") && s.contains(&join) && s.contains(&write)
    });
    eprintln!("detail:\n{screen}");
    assert!(screen.contains(&format!("pid {} · deadlock_pipe_j", parent.pid)), "{screen}");
    tmux.key("Escape");

    // 80x24: both rows still marked, nothing wider than the screen.
    tmux.resize(80, 24);
    let screen = tmux.wait_for("the marked rows at 80x24", SHOW_TIMEOUT, |s| {
        s.lines().all(|l| l.chars().count() <= 80)
            && [parent.pid, child]
                .iter()
                .all(|&p| row_of(s, p).is_some_and(|r| r.trim_start().starts_with('!')))
            && in_pane(s)
    });
    eprintln!("80x24:\n{screen}");

    tmux.key("q");
    assert_restored(&tmux);
}

#[test]
fn sigterm_restores_the_terminal() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let tmux = Tmux::start("term", &script("term"), work_dir(), 100, 30);
    tmux.wait_for("the process table", SHOW_TIMEOUT, |s| s.contains("Processes"));
    // The script's shell is the pane's process; hangwatch is its child.
    let sh = tmux.pane_pid();
    let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
        .expect("children of the pane's shell");
    let pid: i32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child of the pane's shell: {children:?}"));
    assert_eq!(read_proc(&format!("/proc/{pid}/comm")), "hangwatch");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our script's child.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill -TERM {pid}");
    assert_restored(&tmux);
}

// ---------------------------------------------------------------------------
// Terminal safety and terminal faults (issue 9)

/// Like [`script`], with `env` (`VAR=value ...`) set for hangwatch only.
fn script_env(name: &str, env: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = work_dir().join(format!("tui-{name}.sh"));
    let text = format!(
        "#!/bin/sh\n{env} '{}' --min-blocked 500ms\necho \"EXITED $?\"\nsleep 60\n",
        hangwatch_bin().display()
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

impl Tmux {
    fn pane_title(&self) -> String {
        self.cmd(&["display-message", "-p", "-t", &self.target, "#{pane_title}"])
    }

    /// The screen with its attributes as escape sequences (`capture-pane -e`), with tmux's own
    /// SGR sequences (colours, bold: `ESC [ ... m`) taken out, so that what is left is what a
    /// process could have put there.
    fn capture_raw_without_sgr(&self) -> String {
        let raw = self.cmd(&["capture-pane", "-e", "-p", "-t", &self.target]);
        let mut out = String::new();
        let mut rest = raw.as_str();
        while let Some(i) = rest.find("\x1b[") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':')) {
                Some(j) if after[j..].starts_with('m') => rest = &after[j + 1..],
                _ => {
                    out.push_str("\x1b[");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[test]
fn hostile_names_do_not_reach_the_tui() {
    use common::hostile::{Hostile, assert_terminal_safe};
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let h = Hostile::spawn("tui");
    let pid = h.child.pid;
    let tmux = Tmux::start("hostile", &script("hostile"), work_dir(), 160, 40);
    let title = tmux.pane_title();
    tmux.wait_for("the process table", SHOW_TIMEOUT, |s| s.contains("Processes"));
    tmux.type_text(&format!("/{pid}"));
    tmux.key("Enter");
    let screen = tmux.wait_for("the hostile process, escaped", SHOW_TIMEOUT, |s| {
        row_of(s, pid).is_some_and(|r| r.contains("\\x1b]0;pwned"))
    });
    eprintln!("table:\n{screen}");
    // Several redraws later: the table is still there (no `ESC [2J` blanked it), the title is
    // ours, and nothing a process wrote is on the screen raw.
    thread::sleep(Duration::from_secs(3));
    let screen = tmux.capture();
    assert!(row_of(&screen, pid).is_some() && screen.contains("Processes"), "{screen}");
    assert_eq!(tmux.pane_title(), title, "a process changed the pane title");
    assert!(!tmux.pane_title().contains("pwned"));
    assert_terminal_safe(tmux.capture_raw_without_sgr().as_bytes(), "TUI table");

    // The detail view: thread names and the FIFO's path.
    open_detail(&tmux, &screen, pid);
    let screen = tmux.wait_for("the detail view", SHOW_TIMEOUT, |s| s.contains("Threads (4)"));
    eprintln!("detail:\n{screen}");
    for shown in ["\\u{202e}gpj.exe", "\\x1b[2J\\x1b[31", "evil\\x07\\n✖ forged"] {
        assert!(screen.contains(shown), "{shown:?} not on screen:\n{screen}");
    }
    assert_terminal_safe(tmux.capture_raw_without_sgr().as_bytes(), "TUI detail");
    assert_eq!(tmux.pane_title(), title, "a process changed the pane title");
    tmux.key("Escape");
    tmux.key("q");
    assert_restored(&tmux);
}

#[test]
fn tiny_and_huge_terminals() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let tmux = Tmux::start("resize", &script("resize"), work_dir(), 120, 35);
    tmux.wait_for("the process table", SHOW_TIMEOUT, |s| s.contains("Processes"));
    tmux.resize(20, 5);
    // A few redraws at 20x5: still running, nothing wider than the screen.
    thread::sleep(Duration::from_secs(3));
    let screen = tmux.capture();
    eprintln!("20x5:\n{screen}");
    assert!(!screen.contains("EXITED"), "hangwatch ended at 20x5:\n{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 20), "{screen}");
    assert!(screen.lines().count() <= 5, "{screen}");
    tmux.resize(400, 120);
    let screen = tmux.wait_for("the table at 400x120", SHOW_TIMEOUT, |s| {
        s.contains("Processes") && s.contains("PID") && s.lines().count() > 60
    });
    assert!(screen.lines().all(|l| l.chars().count() <= 400), "{screen}");
    tmux.key("q");
    assert_restored(&tmux);
}

#[test]
fn term_dumb_is_refused_with_one_line() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    let tmux = Tmux::start("dumb", &script_env("dumb", "TERM=dumb"), work_dir(), 120, 20);
    let screen = tmux.wait_for("EXITED", SHOW_TIMEOUT, |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 2"), "TERM=dumb should exit 2:\n{screen}");
    let msgs: Vec<&str> = screen.lines().filter(|l| l.starts_with("hangwatch:")).collect();
    assert_eq!(msgs.len(), 1, "one line:\n{screen}");
    assert!(msgs[0].contains("TERM=dumb") && msgs[0].contains("hangwatch snapshot"), "{screen}");
}

#[test]
fn a_fifo_or_symlink_log_file_is_not_a_trap() {
    if !require_root() || !have_tmux() {
        return;
    }
    let _serial = serial();
    for trap in ["fifo", "symlink"] {
        let state = work_dir().join(format!("state-{trap}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state dir");
        let log = state.join("hangwatch.log");
        let target = state.join("target");
        if trap == "fifo" {
            let c = std::ffi::CString::new(log.to_str().expect("utf-8 path")).expect("path");
            // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
        } else {
            std::fs::write(&target, "precious\n").expect("target");
            std::os::unix::fs::symlink(&target, &log).expect("symlink");
        }
        let tmux = Tmux::start(&format!("log-{trap}"), &script(trap), &state, 120, 35);
        // Before the fix, the FIFO blocked open() and the UI never came up.
        tmux.wait_for("the process table", SHOW_TIMEOUT, |s| s.contains("Processes"));
        tmux.key("?");
        let screen = tmux.wait_for("the help overlay", SHOW_TIMEOUT, |s| s.contains("Keys ("));
        assert!(
            !screen.contains(&state.display().to_string()),
            "{trap}: logs into the trap:\n{screen}"
        );
        tmux.key("Escape");
        tmux.key("q");
        assert_restored(&tmux);
        if trap == "symlink" {
            assert_eq!(std::fs::read_to_string(&target).expect("target"), "precious\n");
        }
        let _ = std::fs::remove_dir_all(&state);
    }
}
