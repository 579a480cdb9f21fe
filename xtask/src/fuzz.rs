//! `cargo xtask fuzz [--seconds N] [--target NAME]`: time-boxed fuzzing of every parser of
//! outside data.
//!
//! The targets are the property tests of `hangwatch/src/fuzz.rs` (proptest). `cargo test` runs
//! each with 64 cases; here each runs again and again, with `PROPTEST_CASES` cases per round
//! and a fresh random seed every round, until it has had N seconds. The test binary is built
//! in the debug profile on purpose: arithmetic overflow panics there, and that is the bug
//! class these parsers are most exposed to (release builds wrap silently and report a wrong
//! figure). A failure prints proptest's minimal failing input and stops the run with an error;
//! it then becomes a named `regression_*` test at the end of hangwatch/src/fuzz.rs, with its
//! fix.

use std::{
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value as Json;

use super::{Ctx, display_cmd};

/// Cases per round: a round of the slowest target (syscall decoding, which renders every case)
/// takes a few seconds, so a time box is respected to within one round.
const CASES_PER_ROUND: u32 = 2_000;

pub(super) fn run(ctx: &Ctx, seconds: u64, only: Option<&str>) -> Result<ExitCode> {
    ensure!(seconds >= 1, "--seconds {seconds}: give at least 1 second per target");
    let bin = build_test_binary(ctx)?;
    let all = list_targets(&bin)?;
    let targets: Vec<&String> = match only {
        Some(name) => {
            let t: Vec<&String> = all.iter().filter(|t| t.as_str() == name).collect();
            ensure!(
                !t.is_empty(),
                "--target {name}: no such fuzz target (have: {})",
                all.join(", ")
            );
            t
        }
        None => all.iter().collect(),
    };
    println!(
        "fuzz: {} targets, {seconds} s each, {CASES_PER_ROUND} cases per round (debug profile)",
        targets.len()
    );
    let mut total_cases = 0u64;
    for target in targets {
        let start = Instant::now();
        let mut rounds = 0u64;
        while rounds == 0 || start.elapsed() < Duration::from_secs(seconds) {
            run_round(&bin, target)?;
            rounds += 1;
        }
        let cases = rounds * u64::from(CASES_PER_ROUND);
        total_cases += cases;
        println!(
            "fuzz: {target}: {cases} cases in {rounds} rounds, {:.0} s, no failure",
            start.elapsed().as_secs_f64()
        );
    }
    println!("fuzz: passed ({total_cases} cases in all)");
    Ok(ExitCode::SUCCESS)
}

/// `cargo test --no-run -p hangwatch --lib` (debug profile); returns the test binary.
fn build_test_binary(ctx: &Ctx) -> Result<PathBuf> {
    let mut cmd = ctx.cmd("cargo");
    cmd.args(["test", "--no-run", "--package", "hangwatch", "--lib", "--message-format=json"]);
    let shown = display_cmd(&cmd);
    println!("$ {shown}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // With --message-format=json the compiler's errors are on stdout: show them.
        for m in text.lines().filter_map(|l| serde_json::from_str::<Json>(l).ok()) {
            if let Some(r) = m.pointer("/message/rendered").and_then(Json::as_str) {
                eprint!("{r}");
            }
        }
        bail!("`{shown}` failed ({})", out.status);
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|m| m.get("reason").and_then(Json::as_str) == Some("compiler-artifact"))
        .filter(|m| m.pointer("/target/name").and_then(Json::as_str) == Some("hangwatch"))
        .filter(|m| m.pointer("/profile/test").and_then(Json::as_bool) == Some(true))
        .find_map(|m| m.get("executable").and_then(Json::as_str).map(PathBuf::from))
        .ok_or_else(|| anyhow!("`{shown}` named no hangwatch lib test executable"))
}

/// The property tests of the `fuzz` module (its `regression_*` and `*_is_valid` tests are
/// plain unit tests: `cargo test` runs them).
fn list_targets(bin: &PathBuf) -> Result<Vec<String>> {
    let out = Command::new(bin)
        .args(["--list", "--format=terse", "fuzz::"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("listing the tests of {}", bin.display()))?;
    ensure!(out.status.success(), "{} --list failed ({})", bin.display(), out.status);
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter_map(|name| name.strip_prefix("fuzz::"))
        .filter(|name| !name.starts_with("regression_") && !name.ends_with("_is_valid"))
        .map(str::to_owned)
        .collect();
    ensure!(!targets.is_empty(), "no fuzz targets in {}", bin.display());
    Ok(targets)
}

fn run_round(bin: &PathBuf, target: &str) -> Result<()> {
    let name = format!("fuzz::{target}");
    let out = Command::new(bin)
        .args(["--exact", &name, "--test-threads=1"])
        .env("PROPTEST_CASES", CASES_PER_ROUND.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {name}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let found: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("panicked at")
                || l.contains("minimal failing input")
                || l.contains("Test failed")
        })
        .collect();
    bail!(
        "fuzz target {target} failed ({}):\n{}",
        out.status,
        if found.is_empty() { text.trim().to_owned() } else { found.join("\n") }
    );
}
