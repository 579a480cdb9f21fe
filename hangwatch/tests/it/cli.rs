//! Flags, exit codes and error messages of `hangwatch snapshot`.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use common::*;

/// Exit 2, nothing on stdout, and a non-empty stderr.
fn assert_user_error(run: &Run) {
    assert_eq!(run.code(), Some(2), "expected exit code 2: {}", run.describe());
    assert!(
        run.stdout.trim().is_empty(),
        "nothing should be printed on stdout: {}",
        run.describe()
    );
    assert!(!run.stderr.trim().is_empty(), "stderr should say what is wrong: {}", run.describe());
}

fn assert_one_line(run: &Run) {
    assert_eq!(
        run.stderr_lines().len(),
        1,
        "stderr should be exactly one line: {}",
        run.describe()
    );
}

#[test]
fn help_exits_zero() {
    let _serial = serial();
    let run = run_hangwatch(&["--help"]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains("snapshot"),
        "top-level help should list `snapshot`: {}",
        run.describe()
    );

    let run = run_hangwatch(&["snapshot", "--help"]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    for flag in ["--window", "--min-blocked", "--pid", "--comm", "--all", "--json"] {
        assert!(
            run.stdout.contains(flag),
            "`snapshot --help` should document {flag}: {}",
            run.describe()
        );
    }
}

#[test]
fn unknown_pid_is_a_user_error() {
    if !require_root() {
        return;
    }
    let _serial = serial();
    let run = run_hangwatch(&["snapshot", "--json", "--pid", "999999999"]);
    assert_user_error(&run);
    assert_one_line(&run);
    assert!(run.stderr.contains("999999999"), "stderr should name the pid: {}", run.describe());
}

#[test]
fn bad_duration_is_named() {
    let _serial = serial();
    for flag in ["--min-blocked", "--window"] {
        let run = run_hangwatch(&["snapshot", "--json", flag, "banana"]);
        assert_user_error(&run);
        assert!(
            run.stderr.contains("banana"),
            "stderr should name the bad value: {}",
            run.describe()
        );
    }
}

#[test]
fn zero_window_is_rejected() {
    let _serial = serial();
    let run = run_hangwatch(&["snapshot", "--json", "--window", "0s"]);
    assert_user_error(&run);
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("0s") || err.contains("window"),
        "stderr should say the window is the problem: {}",
        run.describe()
    );
}

/// A copy of the binary that uid 65534 can execute (the build tree may sit
/// under a directory that only root can enter). Removed on Drop.
struct WorldExecutableCopy(PathBuf);

impl WorldExecutableCopy {
    fn new() -> Self {
        let copy = work_dir().join("hangwatch-unprivileged");
        std::fs::copy(hangwatch_bin(), &copy)
            .unwrap_or_else(|e| panic!("copy {}: {e}", hangwatch_bin().display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .expect("chmod copy");
        WorldExecutableCopy(copy)
    }
}

impl Drop for WorldExecutableCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

#[test]
fn unprivileged_is_refused() {
    let _serial = serial();
    let run = if is_root() {
        // Drop to nobody with no capabilities at all.
        let Some(setpriv) = find_in_path("setpriv") else {
            eprintln!("SKIPPED: setpriv (util-linux) is not installed; cannot drop privileges");
            return;
        };
        let bin = WorldExecutableCopy::new();
        let mut cmd = Command::new(setpriv);
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ])
        .arg(&bin.0)
        .args(["snapshot", "--json"])
        .current_dir("/");
        run_command(cmd)
    } else {
        run_hangwatch(&["snapshot", "--json"])
    };
    assert_user_error(&run);
    assert_one_line(&run);
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("root") || err.contains("cap_"),
        "stderr should say what privilege is missing (root / CAP_...): {}",
        run.describe()
    );
}

#[test]
fn rfc3339_parser_self_check() {
    let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).expect("after epoch"));
    assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
    assert_eq!(at("2026-11-22T02:51:00Z"), Some(Duration::from_secs(1_795_315_860)));
    assert_eq!(at("2026-11-22T02:51:00.5Z"), Some(Duration::new(1_795_315_860, 500_000_000)));
    assert_eq!(at("2026-11-22T03:51:00.000000001+01:00"), Some(Duration::new(1_795_315_860, 1)));
    assert_eq!(at("2026-11-21T21:51:00-05:00"), Some(Duration::from_secs(1_795_315_860)));
    assert_eq!(at("2024-02-29T12:00:00Z"), Some(Duration::from_secs(1_709_208_000)));
    for bad in [
        "",
        "2026-11-22",
        "2026-11-22T02:51:00",
        "2026-13-01T00:00:00Z",
        "2026-11-22T02:51:00.Z",
        "yesterday",
    ] {
        assert_eq!(at(bad), None, "{bad:?} should not parse");
    }
}

#[test]
fn live_ui_without_a_terminal_is_refused() {
    let _serial = serial();
    // The harness pipes stdout: not a terminal, and no --json.
    let run = run_hangwatch(&[]);
    assert_user_error(&run);
    assert_one_line(&run);
    assert!(run.stderr.contains("--json"), "it says what to use instead: {}", run.describe());
}

#[test]
fn live_mode_flags_are_validated() {
    let _serial = serial();
    let run = run_hangwatch(&["--json", "--interval", "5ms"]);
    assert_user_error(&run);
    assert!(run.stderr.contains("5ms"), "{}", run.describe());
    let run = run_hangwatch(&["--json", "--pid", "0"]);
    assert_user_error(&run);
    assert!(run.stderr.contains("'0'"), "{}", run.describe());
    if !require_root() {
        return;
    }
    let run = run_hangwatch(&["--json", "--pid", "999999998"]);
    assert_user_error(&run);
    assert_one_line(&run);
    assert!(run.stderr.contains("999999998"), "{}", run.describe());
}
