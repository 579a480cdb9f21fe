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
    fs, io,
    os::unix::{fs::symlink, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, anyhow, ensure};
use clap::{Parser, Subcommand};

mod bench;
mod dist;
mod fuzz;
mod lint;
mod soak;
mod vmtest;

/// Debian packages the test suite needs (checked with dpkg-query, installed with apt-get).
const TEST_PACKAGES: &[&str] = &[
    "tmux",
    "stress-ng",
    "gcc",
    "libc6-dev",
    "python3",
    "procps",
    "util-linux",
    "bpftool",
    "redis-server",
    "postgresql",
];

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

const TRACEFS: &str = "/sys/kernel/tracing";

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

    // ---------------------------------------------------------------- setup

    fn setup(&self) -> Result<()> {
        lint::ensure_components(self).context("setting up rustfmt and clippy")?;
        self.ensure_nightly_rust_src().context("setting up the nightly toolchain")?;
        self.ensure_bpf_linker().context("setting up bpf-linker")?;
        self.ensure_apt(TEST_PACKAGES).context("installing Debian packages for the tests")?;
        self.ensure_pyzmq().context("setting up Python's zmq module")?;
        self.ensure_tracefs();
        Ok(())
    }

    fn ensure_nightly_rust_src(&self) -> Result<()> {
        let mut list = self.cmd("rustup");
        list.args(["component", "list", "--toolchain", "nightly", "--installed"]);
        let Ok(installed) = capture(&mut list) else {
            println!("install: nightly toolchain with rust-src");
            return run(self.cmd("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]));
        };
        if installed.lines().any(|l| l.split_whitespace().next() == Some("rust-src")) {
            println!("ok: nightly toolchain with rust-src already present");
            return Ok(());
        }
        println!("install: rust-src for the nightly toolchain");
        run(self.cmd("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
    }

    fn bpf_linker_works(&self) -> bool {
        succeeds(self.cmd("bpf-linker").arg("--version"))
    }

    /// bpf-linker must be linked against an LLVM as new as nightly rustc's. There is no system
    /// LLVM of that version, so link it against nightly rustc's own libLLVM (see PLATFORM.md).
    /// The installed binary finds libLLVM through a RUNPATH pointing at our prefix directory.
    fn ensure_bpf_linker(&self) -> Result<()> {
        if self.bpf_linker_works() {
            println!("ok: bpf-linker already present");
            return Ok(());
        }
        let prefix = self.llvm_prefix()?;
        // A bpf-linker installed from this workspace only stops working when its RUNPATH
        // symlinks are gone (target/ wiped): re-creating them is enough then.
        if self.cargo_bin.join("bpf-linker").exists() && self.bpf_linker_works() {
            println!(
                "ok: bpf-linker already present (re-created its LLVM symlinks in {})",
                prefix.display()
            );
            return Ok(());
        }
        println!("install: bpf-linker (cargo +nightly install, takes about a minute)");
        let major = nightly_llvm_major(&capture(self.cmd("rustc").args(["+nightly", "-vV"]))?)?;
        run(self
            .cmd("cargo")
            .args(["+nightly", "install", "bpf-linker", "--no-default-features"])
            .args(["--features", &format!("llvm-{major}")])
            .env("LLVM_PREFIX", &prefix))?;
        ensure!(
            self.bpf_linker_works(),
            "bpf-linker was installed but `bpf-linker --version` still fails (PATH={})",
            self.path.to_string_lossy()
        );
        Ok(())
    }

    /// Makes `$CARGO_HOME/hangwatch-llvm-prefix/lib/{libLLVM.so, <soname>}` point at nightly
    /// rustc's libLLVM and returns the prefix. It lives beside the installed bpf-linker (which
    /// finds libLLVM through it), not under `target/`, so `cargo clean` or a second checkout
    /// does not break the linker.
    fn llvm_prefix(&self) -> Result<PathBuf> {
        let sysroot = capture(self.cmd("rustc").args(["+nightly", "--print", "sysroot"]))?;
        let sysroot_lib = Path::new(sysroot.trim()).join("lib");
        let llvm = find_libllvm(&sysroot_lib)?;
        let name =
            llvm.file_name().ok_or_else(|| anyhow!("{} has no file name", llvm.display()))?;

        let prefix =
            self.cargo_bin.parent().unwrap_or(&self.target_dir).join("hangwatch-llvm-prefix");
        let lib = prefix.join("lib");
        fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
        for link_name in [OsStr::new("libLLVM.so"), name] {
            let link = lib.join(link_name);
            if fs::read_link(&link).is_ok_and(|to| to == llvm) {
                continue;
            }
            match fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", link.display())),
            }
            symlink(&llvm, &link)
                .with_context(|| format!("symlinking {} -> {}", link.display(), llvm.display()))?;
        }
        Ok(prefix)
    }

    /// Installs whichever of `packages` dpkg does not report as installed.
    fn ensure_apt(&self, packages: &[&str]) -> Result<()> {
        let missing: Vec<&str> =
            packages.iter().copied().filter(|p| !self.dpkg_installed(p)).collect();
        if missing.is_empty() {
            println!("ok: {} already present", packages.join(", "));
            return Ok(());
        }
        println!("install: {} (apt-get)", missing.join(", "));
        run(self.cmd("apt-get").args(["update", "-q"]))?;
        run(self
            .cmd("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        let still: Vec<&str> = missing.into_iter().filter(|p| !self.dpkg_installed(p)).collect();
        ensure!(
            still.is_empty(),
            "apt-get succeeded but dpkg still does not list {} as installed",
            still.join(", ")
        );
        Ok(())
    }

    fn dpkg_installed(&self, package: &str) -> bool {
        // "install ok installed"; a removed package reads "deinstall ok config-files".
        capture(self.cmd("dpkg-query").args(["-W", "-f=${Status}", package]).stderr(Stdio::null()))
            .is_ok_and(|status| status.split_whitespace().last() == Some("installed"))
    }

    /// One test talks ZeroMQ from Python. pip works for pyenv/venv interpreters; Debian's own
    /// python3 refuses pip installs (PEP 668), so fall back to its python3-zmq package.
    fn ensure_pyzmq(&self) -> Result<()> {
        let importable = || succeeds(self.cmd("python3").args(["-c", "import zmq"]));
        if importable() {
            println!("ok: python3 module zmq already present");
            return Ok(());
        }
        println!("install: pyzmq (pip)");
        if let Err(err) =
            run(self.cmd("python3").args(["-m", "pip", "install", "--quiet", "pyzmq"]))
        {
            eprintln!("warning: {err:#}; trying Debian's python3-zmq instead");
            self.ensure_apt(&["python3-zmq"])?;
        }
        ensure!(importable(), "`python3 -c 'import zmq'` still fails after installing pyzmq");
        Ok(())
    }

    /// Classic tracepoints need tracefs. Best effort: a failure here is only a warning.
    fn ensure_tracefs(&self) {
        match tracefs_mounted() {
            Ok(true) => {
                println!("ok: tracefs already mounted at {TRACEFS}");
                return;
            }
            Ok(false) => {}
            Err(err) => eprintln!("warning: {err:#}"),
        }
        println!("install: mounting tracefs at {TRACEFS}");
        if let Err(err) = run(self.cmd("mount").args(["-t", "tracefs", "nodev", TRACEFS])) {
            eprintln!("warning: {err:#}; classic tracepoints will not attach");
        }
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

/// `LLVM version: 22.1.4` in `rustc -vV` output -> 22.
fn nightly_llvm_major(version_info: &str) -> Result<u32> {
    let version = version_info
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .ok_or_else(|| anyhow!("no `LLVM version:` line in `rustc +nightly -vV` output"))?
        .trim();
    let major = version.split('.').next().unwrap_or_default();
    major.parse().with_context(|| format!("cannot read an LLVM major version from {version:?}"))
}

/// The real libLLVM shared object in a rustc sysroot's lib dir: the regular file named
/// `libLLVM.so.<version>` (the sysroot also holds a tiny `libLLVM-<major>-*.so` linker script).
fn find_libllvm(sysroot_lib: &Path) -> Result<PathBuf> {
    let entries =
        fs::read_dir(sysroot_lib).with_context(|| format!("listing {}", sysroot_lib.display()))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", sysroot_lib.display()))?;
        if !entry.file_name().to_string_lossy().starts_with("libLLVM.so.") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a symlinked soname still leads to the real file.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() && best.as_ref().is_none_or(|(len, _)| meta.len() > *len) {
            best = Some((meta.len(), path));
        }
    }
    best.map(|(_, path)| path).ok_or_else(|| {
        anyhow!("no libLLVM.so.* in {} (is the nightly toolchain complete?)", sysroot_lib.display())
    })
}

fn tracefs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, target, fstype) = (fields.next(), fields.next(), fields.next());
        target == Some(TRACEFS) && fstype == Some("tracefs")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc_vv() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nrelease: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(nightly_llvm_major(vv).expect("parses"), 22);
        assert!(nightly_llvm_major("rustc 1.0\n").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("cargo"), "cargo");
        assert_eq!(quote("-f=${Status}"), "'-f=${Status}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
