/// Emits `bpf_target_arch` (the probes read architecture-specific saved registers) and
/// rebuilds the object whenever the bpf-linker binary changes (see aya-template).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(bpf_linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
    aya_build::emit_bpf_target_arch_cfg().map_err(|e| e.to_string())?;
    Ok(())
}
