//! `cargo xtask setup`: installs what building and testing need, idempotently and without
//! prompts: rustfmt and clippy, the nightly toolchain with rust-src, bpf-linker (linked against
//! nightly rustc's own libLLVM), the Debian packages, Python's zmq module, tracefs.

use std::{
    ffi::OsStr,
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context as _, Result, anyhow, ensure};

use super::{Ctx, capture, lint, run, succeeds};

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

const TRACEFS: &str = "/sys/kernel/tracing";

impl Ctx {
    pub(super) fn setup(&self) -> Result<()> {
        lint::ensure_components(self).context("setting up rustfmt and clippy")?;
        self.ensure_nightly_rust_src().context("setting up the nightly toolchain")?;
        self.ensure_bpf_linker().context("setting up bpf-linker")?;
        self.ensure_apt(TEST_PACKAGES).context("installing Debian packages for the tests")?;
        self.ensure_pyzmq().context("setting up Python's zmq module")?;
        self.ensure_tracefs();
        Ok(())
    }

    pub(super) fn ensure_nightly_rust_src(&self) -> Result<()> {
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
    pub(super) fn ensure_bpf_linker(&self) -> Result<()> {
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
    pub(super) fn ensure_apt(&self, packages: &[&str]) -> Result<()> {
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
}
