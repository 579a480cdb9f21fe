//! The lint gates: `cargo fmt --all --check`, then
//! `cargo clippy --workspace --all-targets -- -D warnings` (the lint set is the workspace's
//! `[workspace.lints]` in the root Cargo.toml). Run alone by `cargo xtask lint` and first by
//! `cargo xtask test`, so that a formatting or lint error fails fast with one line naming the gate.

use anyhow::{Context as _, Result, bail};

use crate::{Ctx, capture, run};

/// The rustup components the gates run (of the stable toolchain the workspace builds with).
const COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// Runs both gates, formatting first (it is instant).
pub fn run_gates(ctx: &Ctx) -> Result<()> {
    ensure_components(ctx)?;
    run(ctx.cmd("cargo").args(["fmt", "--all", "--check"]))
        .context("lint gate failed: `cargo fmt --all --check` (run `cargo fmt --all` to fix)")?;
    // Checking the workspace builds hangwatch's build script, which builds the eBPF object:
    // that needs the nightly toolchain and bpf-linker.
    ctx.ensure_nightly_rust_src().context("setting up the nightly toolchain")?;
    ctx.ensure_bpf_linker().context("setting up bpf-linker")?;
    run(ctx.cmd("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
        .context("lint gate failed: `cargo clippy --workspace --all-targets -- -D warnings`")?;
    println!("xtask lint: formatting and clippy gates passed");
    Ok(())
}

/// Installs rustfmt and clippy if they are missing. `rustup component add` needs the network;
/// where it cannot reach it, the error names the missing component and the command to run.
pub fn ensure_components(ctx: &Ctx) -> Result<()> {
    let installed = capture(ctx.cmd("rustup").args(["component", "list", "--installed"]))
        .context("listing the installed rustup components")?;
    let missing = missing_components(&installed);
    if missing.is_empty() {
        return Ok(());
    }
    println!("install: rustup components {}", missing.join(", "));
    let mut add = ctx.cmd("rustup");
    add.args(["component", "add"]).args(&missing);
    if let Err(err) = run(&mut add) {
        bail!(
            "the lint gates need the rustup components {} (`rustup component add {}` failed: \
             {err:#})",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

/// Which of [`COMPONENTS`] are not in `rustup component list --installed` output, whose lines
/// are `NAME-TARGET` (e.g. `clippy-x86_64-unknown-linux-gnu`).
fn missing_components(installed: &str) -> Vec<&'static str> {
    COMPONENTS
        .iter()
        .copied()
        .filter(|c| {
            !installed.lines().any(|l| {
                l.trim()
                    .strip_prefix(c)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_components() {
        let all = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                   rustfmt-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(missing_components(all).is_empty());
        let no_fmt = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing_components(no_fmt), vec!["rustfmt"]);
        // `rustc` and `rust-src` are not `rustfmt`.
        let neither = "rustc-x86_64-unknown-linux-gnu\nrust-src\n";
        assert_eq!(missing_components(neither), COMPONENTS.to_vec());
    }
}
