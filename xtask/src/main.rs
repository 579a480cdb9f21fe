//! Chores that cargo cannot do by itself: toolchain set-up, building the eBPF-carrying binary,
//! running the privileged test suite, benchmarks.
//!
//! Every command runs with the workspace root as current directory and with the cargo bin
//! directory (`~/.cargo/bin`, where `bpf-linker` is installed) on `PATH`. Nothing here prompts.
// No `unwrap()`/`expect()` on a runtime path: a bad value is an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::{
    env,
    ffi::{OsStr, OsString},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, anyhow, ensure};
use clap::{Parser, Subcommand};

mod bench;
mod dist;
mod fuzz;
mod lint;
mod setup;
mod soak;
mod vmtest;

/// Debian packages only the benchmark needs.
const BENCH_PACKAGES: &[&str] = &["bpftrace"];

/// The eBPF crate only builds for the BPF target (through aya-build, from hangwatch's build.rs);
/// it has no host tests and its host test harness does not link.
const EBPF_PACKAGE: &str = "hangwatch-ebpf";

/// The soak that `cargo xtask test` runs. Its last half (the part the growth fit reads) must come
/// after the warm-up: under the 10,000-thread waves hangwatch's RSS climbs for the first 1-2
/// minutes (a 90 s run of the merged code failed on it: 52 -> 108 MiB, still climbing). With the
/// stack readers and the typed decoder merged, the climb lasts 2-3 minutes (an 8-minute run:
/// 54 MiB at 10 s, a peak of 86 at 130 s, then 78-81 from 200 s on), and two 4-minute runs
/// failed on it (+7.9 and +9.5 MiB over minutes 2-4). So the fit reads minutes 4 to 8.
const SHORT_SOAK_MINUTES: f64 = 8.0;

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "hangwatch chores: toolchain set-up, build, privileged tests, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (idempotent; safe to re-run).
    Setup,
    /// Set up, then build target/release/hangwatch.
    Build,
    /// Build, then run target/release/hangwatch with ARGS.
    Run {
        /// Arguments for hangwatch (after `--`).
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Check formatting (`cargo fmt --all --check`), then lint
    /// (`cargo clippy --workspace --all-targets -- -D warnings`).
    Lint,
    /// Run the lint gates (as `lint`), build, then run the whole test suite (integration tests
    /// need root), then the kernel matrix (`vmtest`).
    Test {
        /// Arguments for the test binaries (after `--`), e.g. a name filter or --nocapture.
        /// The kernel matrix runs only without them (a filtered run is a partial run).
        #[arg(last = true, value_name = "EXTRA")]
        extra: Vec<OsString>,
    },
    /// Build a stripped static (musl) x86_64 hangwatch in target/dist and check that it runs
    /// alone in an empty chroot.
    Dist {
        /// Also cross-build the arm64 binary (built and checked, not run: no arm64 machine).
        #[arg(long)]
        aarch64: bool,
    },
    /// Build, then boot each kernel of the matrix (5.10, 6.1, 6.12) under qemu and run the
    /// tests that touch the kernel inside it. Installs qemu, virtme-ng and the kernels if missing.
    Vmtest {
        /// Only these kernels (e.g. `6.1`); all of them by default.
        #[arg(value_name = "KERNEL")]
        kernels: Vec<String>,
    },
    /// Set up, build, then measure hangwatch's overhead.
    Bench {
        /// Shorter runs, for a quick sanity check.
        #[arg(long)]
        quick: bool,
    },
    /// Fuzz every parser of outside data for N seconds per target (proptest, debug profile).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (a property test of hangwatch/src/fuzz.rs, e.g. `btf_blobs`).
        #[arg(long)]
        target: Option<String>,
    },
    /// Set up, build, then run live mode under process/thread churn and OOM kills, sampling
    /// hangwatch's RSS, CPU, fds and losses every 10 s; fails on growth (docs/benchmarks.md).
    Soak {
        /// How long (a fraction is fine: 1.5 is 90 s; at least 1).
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            // The cause chain, without anyhow's backtrace (RUST_BACKTRACE is often set here).
            eprintln!("xtask: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Cmd) -> Result<ExitCode> {
    let ctx = Ctx::new()?;
    match command {
        Cmd::Setup => ctx.setup().map(|()| ExitCode::SUCCESS),
        Cmd::Build => ctx.build().map(|()| ExitCode::SUCCESS),
        Cmd::Run { args } => ctx.run_hangwatch(&args),
        Cmd::Lint => lint::run_gates(&ctx).map(|()| ExitCode::SUCCESS),
        Cmd::Test { extra } => ctx.test(&extra).map(|()| ExitCode::SUCCESS),
        Cmd::Bench { quick } => ctx.bench(quick),
        Cmd::Soak { minutes } => ctx.soak(minutes),
        Cmd::Fuzz { seconds, target } => {
            ctx.setup()?;
            fuzz::run(&ctx, seconds, target.as_deref())
        }
        Cmd::Dist { aarch64 } => {
            ctx.setup()?;
            let bin = dist::build(&ctx, &dist::X86_64)?;
            dist::check_in_empty_root(&ctx, &bin)?;
            if aarch64 {
                dist::build(&ctx, &dist::AARCH64)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Vmtest { kernels } => {
            vmtest::check_labels(&kernels)?;
            ctx.build()?;
            vmtest::run_matrix(&ctx, &kernels).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// Where things are, and the environment every child process gets.
struct Ctx {
    /// Workspace root; the current directory of every child.
    root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
    target_dir: PathBuf,
    /// `$CARGO_HOME/bin`, where `cargo install` puts bpf-linker.
    cargo_bin: PathBuf,
    /// `PATH` for children: ours, with `cargo_bin` prepended if it was missing.
    path: OsString,
}

impl Ctx {
    fn new() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or_else(|| anyhow!("xtask manifest dir has no parent"))?
            .to_path_buf();
        let target_dir = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => root.join(dir),
            _ => root.join("target"),
        };
        let cargo_home = match env::var_os("CARGO_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => env::home_dir()
                .ok_or_else(|| anyhow!("cannot find the home directory (HOME is unset)"))?
                .join(".cargo"),
        };
        let cargo_bin = cargo_home.join("bin");
        let current = env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = env::split_paths(&current).collect();
        if !dirs.iter().any(|d| d == &cargo_bin) {
            dirs.insert(0, cargo_bin.clone());
        }
        let path = env::join_paths(dirs).context("building PATH for child processes")?;
        Ok(Self { root, target_dir, cargo_bin, path })
    }

    /// A command that runs in the workspace root with our `PATH` (which is also what the
    /// program itself is looked up in).
    fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root).env("PATH", &self.path);
        cmd
    }

    fn hangwatch_bin(&self) -> PathBuf {
        self.target_dir.join("release").join("hangwatch")
    }

    // ---------------------------------------------------------------- build / run / test

    fn build(&self) -> Result<()> {
        self.setup()?;
        self.cargo_build()
    }

    /// `cargo build --release -p hangwatch`: leaves target/release/hangwatch.
    fn cargo_build(&self) -> Result<()> {
        run(self.cmd("cargo").args(["build", "--release", "--package", "hangwatch"]))
            .context("building hangwatch")
    }

    /// Replaces this process with hangwatch, so signals and the exit code are hangwatch's own.
    fn run_hangwatch(&self, args: &[OsString]) -> Result<ExitCode> {
        self.build()?;
        let bin = self.hangwatch_bin();
        let mut cmd = self.cmd(&bin);
        cmd.args(args);
        println!("$ {}", display_cmd(&cmd));
        let err = cmd.exec();
        Err(err).with_context(|| format!("executing {}", bin.display()))
    }

    fn test(&self, extra: &[OsString]) -> Result<()> {
        // The gates first: they fail in seconds where the suite takes half an hour.
        lint::run_gates(self)?;
        self.build()?;
        let bin = self.hangwatch_bin();
        ensure!(bin.is_file(), "{} was not built", bin.display());
        run(self
            .cmd("cargo")
            .args(["test", "--workspace", "--exclude", EBPF_PACKAGE, "--release", "--no-fail-fast"])
            .arg("--")
            .args(extra)
            .env("HANGWATCH_BIN", &bin)
            .env("RUST_BACKTRACE", "1"))
        .context("the test suite failed")?;
        println!("xtask test: all host suites passed");
        // Only for a full run: a name filter or other test-binary arguments select tests.
        if extra.is_empty() {
            soak::run(self, SHORT_SOAK_MINUTES).context("the short soak failed")?;
            vmtest::run_matrix(self, &[]).context("the kernel matrix failed")?;
        }
        println!("xtask test: all suites passed");
        Ok(())
    }

    // ---------------------------------------------------------------- bench

    fn bench(&self, quick: bool) -> Result<ExitCode> {
        self.setup()?;
        self.ensure_apt(BENCH_PACKAGES).context("installing Debian packages for the benchmark")?;
        self.cargo_build()?;
        bench::run(self, quick)
    }
}

// -------------------------------------------------------------------- soak

impl Ctx {
    fn soak(&self, minutes: f64) -> Result<ExitCode> {
        self.setup()?;
        self.cargo_build()?;
        soak::run(self, minutes)
    }
}

// -------------------------------------------------------------------- helpers

/// Prints `cmd`, runs it with inherited stdio, and fails naming it if it does not exit 0.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = display_cmd(cmd);
    println!("$ {shown}");
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    ensure!(status.success(), "`{shown}` failed ({status})");
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; fails naming it if it does not exit 0.
fn capture(cmd: &mut Command) -> Result<String> {
    let shown = display_cmd(cmd);
    let out =
        cmd.stdin(Stdio::null()).output().with_context(|| format!("could not start `{shown}`"))?;
    ensure!(
        out.status.success(),
        "`{shown}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))
}

/// Whether `cmd` starts and exits 0 (output discarded).
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `VAR=value program args`, shell-quoted where needed; PATH is left out (it is always ours).
fn display_cmd(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if key == "PATH" {
            continue;
        }
        if let Some(value) = value {
            parts.push(format!("{}={}", key.to_string_lossy(), quote(&value.to_string_lossy())));
        }
    }
    parts.push(quote(&cmd.get_program().to_string_lossy()));
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn quote(s: &str) -> String {
    let plain =
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("cargo"), "cargo");
        assert_eq!(quote("-f=${Status}"), "'-f=${Status}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
