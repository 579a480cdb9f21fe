//! `cargo xtask dist`: one binary for every distribution. A static (musl), stripped hangwatch
//! for x86_64, then checked: it has no dynamic section and no interpreter, and it runs in a
//! directory that holds nothing but itself (a chroot with /proc and /sys mounted).
//! `--aarch64` also cross-builds it for arm64 (built and checked to be a static arm64 ELF;
//! running it needs an arm64 machine, which this project does not have).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, ensure};

use super::{Ctx, capture, run};

pub struct Target {
    pub triple: &'static str,
    /// ELF `e_machine`.
    machine: u16,
    /// Linker for the cross build (the host's `cc` cannot link another architecture).
    linker: Option<&'static str>,
}

pub const X86_64: Target =
    Target { triple: "x86_64-unknown-linux-musl", machine: 62, linker: None };
pub const AARCH64: Target =
    Target { triple: "aarch64-unknown-linux-musl", machine: 183, linker: Some("rust-lld") };

/// Builds, strips and checks the static binary for `target`; returns its path.
pub fn build(ctx: &Ctx, target: &Target) -> Result<PathBuf> {
    run(ctx.cmd("rustup").args(["target", "add", target.triple]))
        .with_context(|| format!("adding the Rust target {}", target.triple))?;
    let mut cmd = ctx.cmd("cargo");
    cmd.args(["build", "--release", "--package", "hangwatch", "--target", target.triple]);
    if let Some(linker) = target.linker {
        let var = format!("CARGO_TARGET_{}_LINKER", target.triple.to_uppercase().replace('-', "_"));
        cmd.env(var, linker);
    }
    run(&mut cmd).with_context(|| format!("building hangwatch for {}", target.triple))?;
    let built = ctx.target_dir.join(target.triple).join("release").join("hangwatch");
    let dir = ctx.target_dir.join("dist");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("hangwatch-{}", target.triple));
    fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    // llvm's strip knows every architecture; binutils' strip only the host's.
    let strip = if target.linker.is_some() { "llvm-strip" } else { "strip" };
    if let Err(err) = run(ctx.cmd(strip).arg(&out)) {
        ensure!(target.linker.is_some(), "stripping {}: {err:#}", out.display());
        // The eBPF object inside is not affected by stripping; only debug info is lost.
        eprintln!("warning: {err:#}; the {} binary is not stripped", target.triple);
    }
    check_static_elf(&out, target.machine)?;
    let size = fs::metadata(&out).with_context(|| format!("reading {}", out.display()))?.len();
    println!(
        "dist: {} ({:.1} MiB, {size} bytes), static, {}",
        out.display(),
        size as f64 / (1024.0 * 1024.0),
        target.triple
    );
    Ok(out)
}

/// Checks the ELF header and program headers: 64-bit little-endian for `machine`, and no
/// interpreter (`PT_INTERP`): the kernel runs it directly, no loader or library is needed on
/// the target system.
fn check_static_elf(path: &Path, machine: u16) -> Result<()> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at =
        |o: usize| data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    ensure!(data.get(..6) == Some(b"\x7fELF\x02\x01"), "{} is not a 64-bit LE ELF", path.display());
    let got = u16_at(18).ok_or_else(|| anyhow!("truncated ELF header"))?;
    ensure!(got == machine, "{}: e_machine {got}, expected {machine}", path.display());
    let phoff = u64_at(32).ok_or_else(|| anyhow!("truncated ELF header"))? as usize;
    let phentsize = u16_at(54).ok_or_else(|| anyhow!("truncated ELF header"))? as usize;
    let phnum = u16_at(56).ok_or_else(|| anyhow!("truncated ELF header"))? as usize;
    for i in 0..phnum {
        let ty = data
            .get(phoff + i * phentsize..phoff + i * phentsize + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| anyhow!("truncated program headers in {}", path.display()))?;
        // (A static-pie binary, musl's default, keeps a PT_DYNAMIC for its own relocations;
        // without an interpreter nothing loads a library for it.)
        ensure!(ty != 3, "{} has an interpreter (PT_INTERP): not static", path.display());
    }
    Ok(())
}

/// Runs `bin snapshot --json` in a directory holding nothing but the binary, /proc and /sys
/// (a chroot); the report must be JSON with the probes attached.
pub fn check_in_empty_root(ctx: &Ctx, bin: &Path) -> Result<()> {
    let root = ctx.target_dir.join("dist").join("chroot");
    let _ = fs::remove_dir_all(&root);
    for d in ["proc", "sys"] {
        fs::create_dir_all(root.join(d)).with_context(|| format!("creating {}", root.display()))?;
    }
    fs::copy(bin, root.join("hangwatch")).context("copying the binary into the chroot")?;
    // unshare -m: the mounts vanish with the namespace, even if this process is killed.
    let script = "mount -t proc proc \"$1/proc\" && mount -t sysfs sys \"$1/sys\" && \
                  { mount -t tracefs nodev \"$1/sys/kernel/tracing\" 2>/dev/null || true; } && \
                  chroot \"$1\" /hangwatch snapshot --json --window 200ms";
    let out = capture(
        ctx.cmd("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&root),
    )
    .context("running the static binary in an empty chroot")?;
    let snap: serde_json::Value =
        serde_json::from_str(out.trim()).context("the chroot run did not print JSON")?;
    let probes = snap["probes"].as_array().cloned().unwrap_or_default();
    ensure!(!probes.is_empty(), "no probe status in the chroot run's report");
    for p in &probes {
        ensure!(p["attached"] == true, "in the chroot, a probe did not attach: {p}");
    }
    println!(
        "dist: runs alone in a chroot (/proc, /sys only): {} processes listed, {} probes attached",
        snap["processes"].as_array().map_or(0, Vec::len),
        probes.len()
    );
    let _ = fs::remove_dir_all(&root);
    Ok(())
}
