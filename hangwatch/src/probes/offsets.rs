//! What the probes need to know about the running kernel, from its BTF (or `--btf PATH`):
//! the offsets of the `task_struct` fields they read, the memory cgroup and pid namespace
//! layouts, and whether the `bpf_task_pt_regs` helper exists (else where the saved user
//! registers are on the task's kernel stack).

use std::{fs, path::Path};

use hangwatch_common::Config;
use log::{debug, warn};

use super::btf;
use crate::error::Error;

/// `--btf PATH`: the kernel's BTF from a file (BTFHub), for kernels without
/// `/sys/kernel/btf/vmlinux`. Set once at start.
static BTF_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Uses the BTF in `path` instead of /sys/kernel/btf/vmlinux. Fails if it is not readable BTF
/// (checked now, so a bad path is a one-line user error, not a missing probe).
pub fn set_btf_path(path: &Path) -> Result<(), Error> {
    let data =
        fs::read(path).map_err(|e| Error::Usage(format!("--btf {}: {e}", path.display())))?;
    btf::Btf::parse(&data)
        .map_err(|e| Error::Usage(format!("--btf {}: not BTF ({e})", path.display())))?;
    let _ = BTF_PATH.set(path.to_path_buf());
    Ok(())
}

/// The kernel BTF's bytes: `--btf PATH`, else /sys/kernel/btf/vmlinux.
fn kernel_btf_bytes() -> Result<Vec<u8>, String> {
    if let Some(path) = BTF_PATH.get() {
        return fs::read(path).map_err(|e| format!("--btf {}: {e}", path.display()));
    }
    btf::Btf::from_sys_fs().map_err(|e| {
        format!(
            "no kernel BTF (/sys/kernel/btf/vmlinux: {e}); the kernel needs CONFIG_DEBUG_INFO_BTF=y, or pass --btf PATH"
        )
    })
}

/// The same BTF, parsed by aya for loading BTF tracepoints.
pub(super) fn aya_kernel_btf() -> Result<aya::Btf, String> {
    match BTF_PATH.get() {
        Some(path) => aya::Btf::parse_file(path, aya::Endianness::default())
            .map_err(|e| format!("--btf {}: {e}", path.display())),
        None => aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}")),
    }
}

/// Constants written into the eBPF object's read-only data before loading.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct KernelGlobals {
    /// 1 on kernels without the `bpf_task_pt_regs` helper (before 5.15).
    pub(super) regs_from_stack: u32,
    /// Offset of `task_struct.stack`.
    pub(super) off_stack: u32,
    /// `THREAD_SIZE - sizeof(struct pt_regs)`: where the saved user registers are in the
    /// task's kernel stack.
    pub(super) regs_in_stack: u32,
}

/// The kernel's stack size (`THREAD_SIZE`): 16 KiB on x86_64 and arm64, twice that with KASAN
/// (x86_64 `KASAN_STACK_ORDER`, arm64 `KASAN_THREAD_SHIFT`). Not in BTF: read from the kernel's
/// config when it is shipped in /boot.
fn thread_size(release: &str) -> u32 {
    let config = fs::read_to_string(format!("/boot/config-{release}")).unwrap_or_default();
    let kasan = config.lines().any(|l| l.trim() == "CONFIG_KASAN=y");
    if kasan { 32 * 1024 } else { 16 * 1024 }
}

/// Which helpers and layouts the probes use on this kernel, from its BTF.
fn kernel_globals(b: &btf::Btf) -> Result<KernelGlobals, String> {
    let mut g = KernelGlobals::default();
    // Every helper of the kernel is an enumerator of `enum bpf_func_id`, so its name is in the
    // kernel's BTF strings exactly when the helper exists.
    if !b.has_string("BPF_FUNC_task_pt_regs") {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let regs = b.struct_size("pt_regs").map_err(|e| e.to_string())?;
        g.regs_from_stack = 1;
        g.off_stack = b.field_offset("task_struct", &["stack"]).map_err(|e| e.to_string())?;
        g.regs_in_stack = thread_size(release.trim()).saturating_sub(regs);
        debug!("no bpf_task_pt_regs helper: user registers at task->stack + {}", g.regs_in_stack);
    }
    Ok(g)
}

/// The offsets the probes need, from the running kernel's BTF (or `--btf PATH`).
pub(super) fn task_offsets(config: &mut Config, globals: &mut KernelGlobals) -> Result<(), String> {
    let data = kernel_btf_bytes()?;
    let b = btf::Btf::parse(&data).map_err(|e| e.to_string())?;
    *globals = kernel_globals(&b)?;
    let f = |p: &[&str]| b.field_offset("task_struct", p).map_err(|e| e.to_string());
    config.off_cpu = f(&["cpu"]).or_else(|_| f(&["thread_info", "cpu"]))?;
    config.off_exec_start = f(&["se", "exec_start"])?;
    config.off_pid = f(&["pid"])?;
    config.off_tgid = f(&["tgid"])?;
    config.off_comm = f(&["comm"])?;
    config.off_flags = f(&["flags"])?;
    // For the optional memory probes; a kernel without them leaves the brk counts at zero.
    config.off_mm = f(&["mm"]).unwrap_or(0);
    config.off_mm_brk = b.field_offset("mm_struct", &["brk"]).unwrap_or(0);
    // For the OOM victims' memory cgroup; without them it is read from /proc (often too late).
    match btf::memcg_offsets(&b) {
        Ok(m) => {
            config.off_task_cgroups = m.task_cgroups;
            config.off_css_set_mem = m.css_set_subsys;
            config.off_css_cgroup = m.css_cgroup;
            config.off_cgroup_kn = m.cgroup_kn;
            config.off_kn_id = m.kn_id;
        }
        Err(e) => debug!("no memory cgroup offsets in the kernel BTF: {e}"),
    }
    if let Some(inum) = own_pid_namespace() {
        let ns = (|| -> Result<(), btf::BtfError> {
            config.off_thread_pid = b.field_offset("task_struct", &["thread_pid"])?;
            config.off_group_leader = b.field_offset("task_struct", &["group_leader"])?;
            config.off_pid_level = b.field_offset("pid", &["level"])?;
            config.off_pid_numbers = b.field_offset("pid", &["numbers"])?;
            config.upid_size = b.struct_size("upid")?;
            config.off_upid_ns = b.field_offset("upid", &["ns"])?;
            config.off_ns_inum = b.field_offset("pid_namespace", &["ns", "inum"])?;
            Ok(())
        })();
        match ns {
            Ok(()) => config.pidns_inum = inum,
            Err(e) => warn!(
                "hangwatch runs in a child pid namespace but cannot translate the kernel's pids \
                 ({e}): pids of ended waits and OOM victims are host pids"
            ),
        }
    }
    Ok(())
}

/// `PROC_PID_INIT_INO`: the inode of the initial pid namespace.
const INIT_PIDNS_INO: u64 = 0xEFFF_FFFC;

/// The inode of hangwatch's pid namespace if it is not the initial one.
fn own_pid_namespace() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = fs::metadata("/proc/self/ns/pid").ok()?.ino();
    (ino != INIT_PIDNS_INO).then_some(ino as u32)
}
