use which::which;

/// Rebuild the eBPF object whenever the bpf-linker binary changes (see aya-template).
fn main() {
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
