//! `cargo xtask vmtest`: the kernel matrix. Boots Debian's own 5.10, 6.1 and 6.12 kernels under
//! qemu (TCG: nested KVM hangs on these VMs) with this machine's root filesystem read-only over
//! 9p (virtme-ng), and runs inside each the integration tests that touch the kernel.
//!
//! What it installs when missing (idempotent, no prompts): qemu-system-x86 and busybox-static
//! (Debian; virtme-ng builds its initramfs with busybox), virtme-ng (PyPI), and the kernels as
//! Debian packages: bookworm's from the machine's apt sources, bullseye's 5.10 through a private
//! sources file under `target/vmtest/apt` (the machine's own sources are not touched).
//!
//! The integration test binary is built on the host (`cargo test --test it --no-run`) and runs
//! in the guest, one matrix test at a time, with `HANGWATCH_BIN` set; the guest's writable `/tmp` holds what they write. One VM at a time:
//! TCG is CPU-heavy. docs/kernels.md explains the matrix and what each kernel gives.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value as Json;

use super::{Ctx, capture, display_cmd, quote, run};

/// Debian packages the matrix needs on the host.
pub const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

/// One kernel of the matrix: a Debian kernel package family.
pub struct Kernel {
    /// What the report calls it.
    pub label: &'static str,
    /// The package name is `linux-image-<prefix><N>-amd64`, N the ABI number (highest wins),
    /// e.g. `linux-image-6.1.0-50-amd64`; `suffix` is what follows N.
    prefix: &'static str,
    suffix: &'static str,
    /// From bullseye (through the private sources file) rather than the machine's sources.
    bullseye: bool,
}

pub const KERNELS: &[Kernel] = &[
    Kernel { label: "5.10", prefix: "5.10.0-", suffix: "-amd64", bullseye: true },
    Kernel { label: "6.1", prefix: "6.1.0-", suffix: "-amd64", bullseye: false },
    Kernel { label: "6.12", prefix: "6.12.", suffix: "+deb12-amd64", bullseye: false },
];

/// hangwatch's integration test binary (`hangwatch/tests/it/`).
const TEST_BINARY: &str = "it";

/// The tests that touch the kernel, by their name in [`TEST_BINARY`] (`module::test`), and the
/// time each may take under emulation (5-10x slower than natively).
pub const MATRIX_TESTS: &[(&str, u64)] = &[
    // Every probe loads and attaches (or the kernel's known gap is reported as expected).
    ("kernel::every_probe_attaches_or_its_gap_is_named", 240),
    // A wait that ends while hangwatch watches, reported by the kernel probe with its waker.
    ("kernel::ended_wait_is_reported_exactly_with_its_waker", 240),
    // A wait that began before hangwatch started (from /proc), then one after, then its end.
    ("snapshot::futex_wait_started_before_hangwatch", 300),
    ("live_json::blocked_before_and_after_start_then_unblocked", 300),
    // A cgroup v2 memcg OOM kill, live and from the kernel log.
    (
        "report_memory::oom_kill_in_memory_limited_cgroup_reported_live_and_later_from_kernel_log",
        300,
    ),
    // hangwatch in a child pid namespace.
    ("report_memory::in_a_child_pid_namespace_the_kernel_pids_are_translated", 300),
    // Without privileges: a one-line error.
    ("cli::unprivileged_is_refused", 120),
    // The static (musl) binary of `cargo xtask dist`: runs, every probe attached.
    (DIST, 120),
];

/// The static binary's check: not a test of [`TEST_BINARY`]; the guest script runs it itself.
const DIST: &str = "dist::static_binary_snapshot";

/// Whole-VM bound: boot (~15 s under TCG) plus every test's bound.
fn vm_timeout() -> Duration {
    Duration::from_secs(120 + MATRIX_TESTS.iter().map(|t| t.1).sum::<u64>())
}

const RESULT_TAG: &str = "VMTEST-RESULT";

pub fn run_matrix(ctx: &Ctx, only: &[String]) -> Result<()> {
    ctx.ensure_apt(VM_PACKAGES).context("installing qemu and busybox for the kernel matrix")?;
    let vng = ensure_vng(ctx).context("setting up virtme-ng")?;
    let test_bin = build_test_binary(ctx)?;
    let static_bin = super::dist::build(ctx, &super::dist::X86_64)
        .context("building the static binary the VMs run too")?;
    // The same binary alone in an empty root on this host (issue 13: "a directory containing
    // nothing but itself"), before the VMs run it.
    super::dist::check_in_empty_root(ctx, &static_bin)
        .context("running the static binary alone in an empty chroot")?;
    let dir = ctx.target_dir.join("vmtest");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let script = dir.join("guest.sh");
    fs::write(&script, guest_script(ctx, &test_bin, &static_bin)?)
        .with_context(|| format!("writing {}", script.display()))?;

    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for kernel in KERNELS {
        if !only.is_empty() && !only.iter().any(|o| o == kernel.label) {
            continue;
        }
        let image = ensure_kernel(ctx, kernel, &dir)
            .with_context(|| format!("getting the {} kernel", kernel.label))?;
        println!("vmtest: booting {} ({}) under qemu TCG", kernel.label, image.display());
        let t0 = Instant::now();
        let out = boot(ctx, &vng, &image, &script, &dir.join(format!("{}.log", kernel.label)))?;
        let results = parse_results(&out);
        let elapsed = t0.elapsed().as_secs();
        for &(id, _) in MATRIX_TESTS {
            match results.iter().find(|(t, _)| t == id) {
                Some((_, 0)) => summary.push(format!("{}: ok     {id}", kernel.label)),
                Some((_, rc)) => {
                    summary.push(format!("{}: FAILED {id} (exit {rc})", kernel.label));
                    failures.push(format!("{} {id}", kernel.label));
                }
                None => {
                    summary.push(format!("{}: NOT RUN {id} (the VM ended first)", kernel.label));
                    failures.push(format!("{} {id} (not run)", kernel.label));
                }
            }
        }
        println!("vmtest: {} done in {elapsed} s", kernel.label);
    }
    println!("vmtest summary:");
    for line in &summary {
        println!("  {line}");
    }
    ensure!(
        failures.is_empty(),
        "the kernel matrix failed: {} (logs in {})",
        failures.join(", "),
        dir.display()
    );
    println!("vmtest: every kernel of the matrix passed");
    Ok(())
}

/// `vng` from PyPI's virtme-ng, installed with the python3 on PATH if missing.
fn ensure_vng(ctx: &Ctx) -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        let scripts = capture(
            ctx.cmd("python3")
                .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]),
        )
        .ok()?;
        let vng = Path::new(scripts.trim()).join("vng");
        vng.is_file().then_some(vng)
    };
    if let Some(vng) = find() {
        println!("ok: virtme-ng already present ({})", vng.display());
        return Ok(vng);
    }
    println!("install: virtme-ng (pip)");
    run(ctx.cmd("python3").args(["-m", "pip", "install", "--quiet", "virtme-ng"]))?;
    find().ok_or_else(|| anyhow!("virtme-ng was installed but its `vng` script is not found"))
}

/// `cargo test --no-run` for hangwatch's integration test binary; its executable.
fn build_test_binary(ctx: &Ctx) -> Result<PathBuf> {
    let mut cmd = ctx.cmd("cargo");
    cmd.args(["test", "--release", "--package", "hangwatch", "--test", TEST_BINARY, "--no-run"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    let out = capture(&mut cmd).context("building the integration test binary")?;
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<Json>(line) else { continue };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let kinds = msg["target"]["kind"].as_array().cloned().unwrap_or_default();
        if !kinds.iter().any(|k| k == "test") {
            continue;
        }
        if msg["target"]["name"] == TEST_BINARY
            && let Some(path) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo built no integration test binary named {TEST_BINARY}")
}

/// The script the guest runs: each matrix test in turn, bounded, with a result line each.
fn guest_script(ctx: &Ctx, test_bin: &Path, static_bin: &Path) -> Result<String> {
    let hangwatch = ctx.hangwatch_bin();
    ensure!(hangwatch.is_file(), "{} was not built", hangwatch.display());
    let mut s = String::from(
        "#!/bin/sh\n# Written by `cargo xtask vmtest`; runs inside each matrix VM.\n\
         export RUST_BACKTRACE=1 TMPDIR=/tmp\n",
    );
    s += &format!("export HANGWATCH_BIN={}\n", quote(&hangwatch.to_string_lossy()));
    s += "echo \"vmtest guest: kernel $(uname -r)\"\n";
    // What the kernel offers, for the log.
    s += "\"$HANGWATCH_BIN\" snapshot --window 200ms --min-blocked 1h 2>&1 | head -5\n";
    for &(id, secs) in MATRIX_TESTS {
        if id == DIST {
            // A snapshot whose probes all attached (`"attached":false` nowhere in it).
            s += &format!(
                "echo '--- {id}'\n\
                 out=$(timeout -k 10 {secs} {} snapshot --json --window 200ms) && \
                 ! printf '%s' \"$out\" | grep -q '\"attached\":false'\n\
                 echo \"{RESULT_TAG} {id} $?\"\n",
                quote(&static_bin.to_string_lossy()),
            );
            continue;
        }
        s += &format!(
            "echo '--- {id}'\n\
             timeout -k 10 {secs} {} --exact {id} --test-threads=1 --nocapture 2>&1\n\
             echo \"{RESULT_TAG} {id} $?\"\n",
            quote(&test_bin.to_string_lossy()),
        );
    }
    Ok(s)
}

/// `(test id, exit code)` for every result line of a guest's output.
fn parse_results(out: &str) -> Vec<(String, i32)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.trim_end_matches('\r').split_once(RESULT_TAG)?.1;
            let mut words = rest.split_whitespace();
            let id = words.next()?.to_owned();
            let rc = words.next()?.parse().ok()?;
            Some((id, rc))
        })
        .collect()
}

/// Boots `image` and runs `script` in it; returns the guest's output (also saved to `log`).
fn boot(ctx: &Ctx, vng: &Path, image: &Path, script: &Path, log: &Path) -> Result<String> {
    let mut cmd = ctx.cmd("timeout");
    cmd.args(["-k", "20", &vm_timeout().as_secs().to_string()])
        .arg(vng)
        .arg("-r")
        .arg(image)
        .args(["--disable-kvm", "--force-9p", "--memory", "2G", "--cpus", "2", "-e"])
        .arg(format!("sh {}", quote(&script.to_string_lossy())))
        .stdin(Stdio::null());
    cmd.stdout(Stdio::piped());
    println!("$ {}", display_cmd(&cmd));
    let mut child = cmd.spawn().with_context(|| format!("could not start {}", vng.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("the VM's stdout is not piped"))?;
    // The guest's output, as it comes (for CI logs), and kept for the results.
    let mut text = String::new();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("reading the VM's output")?;
        let line = String::from_utf8_lossy(&line);
        println!("  | {}", line.trim_end_matches('\r'));
        text += &line;
        text.push('\n');
    }
    let status = child.wait().context("waiting for the VM")?;
    fs::write(log, &text).with_context(|| format!("writing {}", log.display()))?;
    if !status.success() {
        eprintln!("vmtest: the VM exited with {status} (log {})", log.display());
    }
    Ok(text)
}

// -------------------------------------------------------------------- kernels

/// `/boot/vmlinuz-<release>` of `kernel`, installing its Debian package when missing.
fn ensure_kernel(ctx: &Ctx, kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    if let Some(image) = installed_kernel(kernel)? {
        println!("ok: kernel {} already present ({})", kernel.label, image.display());
        return Ok(image);
    }
    if kernel.bullseye {
        let apt = BullseyeApt::new(dir)?;
        apt.update(ctx)?;
        let package = newest_package(kernel, &apt.search(ctx, kernel)?)?;
        println!("install: {package} (from bullseye, dpkg -i)");
        run(ctx
            .cmd("apt-get")
            .args(apt.options())
            .args(["download", &package])
            .current_dir(&apt.dir))?;
        let deb = fs::read_dir(&apt.dir)
            .with_context(|| format!("listing {}", apt.dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
                })
            })
            .ok_or_else(|| anyhow!("apt-get download left no {package}_*.deb"))?;
        // Through apt, not `dpkg -i`: the image depends on kmod, linux-base and
        // initramfs-tools, which a fresh machine lacks (CI's did) and apt takes from the
        // machine's own sources (its lists refreshed first). A path makes apt install that
        // very file.
        run(ctx.cmd("apt-get").args(["update", "-q"]))?;
        run(ctx
            .cmd("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    } else {
        let list =
            capture(ctx.cmd("apt-cache").args(["search", "--names-only", &package_regex(kernel)]))?;
        let package = newest_package(kernel, &list)?;
        println!("install: {package} (apt-get)");
        run(ctx
            .cmd("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", &package])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    installed_kernel(kernel)?.ok_or_else(|| {
        anyhow!("the {} kernel was installed but no image is in /boot", kernel.label)
    })
}

/// `^linux-image-6\.1\.0-[0-9]+-amd64$` and so on.
fn package_regex(kernel: &Kernel) -> String {
    let esc = |s: &str| s.replace('.', "\\.").replace('+', "\\+");
    format!("^linux-image-{}[0-9]+{}$", esc(kernel.prefix), esc(kernel.suffix))
}

/// The ABI number N in `<prefix>N<suffix>`, if `release` is of this family.
fn abi_number(kernel: &Kernel, release: &str) -> Option<u32> {
    release.strip_prefix(kernel.prefix)?.strip_suffix(kernel.suffix)?.parse().ok()
}

/// The newest `/boot/vmlinuz-*` of this kernel family.
fn installed_kernel(kernel: &Kernel) -> Result<Option<PathBuf>> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir("/boot").context("listing /boot")? {
        let entry = entry.context("listing /boot")?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("vmlinuz-").and_then(|r| abi_number(kernel, r)) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// The newest package of `kernel`'s family in `apt-cache search` output.
fn newest_package(kernel: &Kernel, search: &str) -> Result<String> {
    search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| {
            let n = abi_number(kernel, p.strip_prefix("linux-image-")?)?;
            Some((n, p.to_owned()))
        })
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("apt knows no package matching {}", package_regex(kernel)))
}

/// apt pointed at bullseye through files of our own: the machine's sources stay as they are.
struct BullseyeApt {
    dir: PathBuf,
}

const BULLSEYE_SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
";

impl BullseyeApt {
    fn new(vmtest_dir: &Path) -> Result<Self> {
        let dir = vmtest_dir.join("apt");
        let partial = dir.join("lists").join("partial");
        fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
        fs::write(dir.join("sources.list"), BULLSEYE_SOURCES)
            .with_context(|| format!("writing {}", dir.join("sources.list").display()))?;
        Ok(Self { dir })
    }

    fn options(&self) -> Vec<String> {
        vec![
            format!("-oDir::Etc::SourceList={}", self.dir.join("sources.list").display()),
            "-oDir::Etc::SourceParts=/dev/null".to_owned(),
            format!("-oDir::State::Lists={}", self.dir.join("lists").display()),
            // Downloads go to our directory, which the _apt sandbox user may not write.
            "-oAPT::Sandbox::User=root".to_owned(),
        ]
    }

    fn update(&self, ctx: &Ctx) -> Result<()> {
        run(ctx.cmd("apt-get").args(self.options()).args(["update", "-q"]))
    }

    fn search(&self, ctx: &Ctx, kernel: &Kernel) -> Result<String> {
        capture(ctx.cmd("apt-cache").args(self.options()).args([
            "search",
            "--names-only",
            &package_regex(kernel),
        ]))
    }
}

/// Checks a kernel label given on the command line.
pub fn check_labels(only: &[String]) -> Result<()> {
    for o in only {
        if !KERNELS.iter().any(|k| k.label == o) {
            let known: Vec<&str> = KERNELS.iter().map(|k| k.label).collect();
            bail!("unknown kernel {o:?}: the matrix has {}", known.join(", "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_families() {
        let [k510, k61, k612] = [&KERNELS[0], &KERNELS[1], &KERNELS[2]];
        assert_eq!(abi_number(k61, "6.1.0-50-amd64"), Some(50));
        assert_eq!(abi_number(k61, "6.1.0-50-cloud-amd64"), None);
        assert_eq!(abi_number(k612, "6.12.117+deb12-amd64"), Some(117));
        assert_eq!(abi_number(k612, "6.12.117+deb12-rt-amd64"), None);
        assert_eq!(abi_number(k510, "5.10.0-46-amd64"), Some(46));
        let search = "linux-image-6.12.100+deb12-amd64 - Linux 6.12\n\
                      linux-image-6.12.117+deb12-amd64 - Linux 6.12\n\
                      linux-image-6.12.99+deb12-amd64 - Linux 6.12\n";
        assert_eq!(
            newest_package(k612, search).expect("found"),
            "linux-image-6.12.117+deb12-amd64"
        );
        assert!(newest_package(k61, search).is_err());
        assert_eq!(package_regex(k612), r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$");
    }

    #[test]
    fn result_lines() {
        let out = "boot noise\r\nVMTEST-RESULT cli::unprivileged_is_refused 0\r\n\
                   x VMTEST-RESULT kernel::a 101\nVMTEST-RESULT broken\n";
        assert_eq!(
            parse_results(out),
            vec![("cli::unprivileged_is_refused".to_owned(), 0), ("kernel::a".to_owned(), 101)]
        );
    }
}
