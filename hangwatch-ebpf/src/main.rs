//! hangwatch's kernel side.
//!
//! Design (see docs/design.md): no probe sits on the syscall path. Attaching any
//! `syscalls:*` or `raw_syscalls:*` tracepoint moves every thread of the machine onto the slow
//! syscall path (15-31% on a futex benchmark here), so hangwatch does not do it. Instead:
//!
//! * `sched_waking` (tp_btf) runs when a sleeping task is woken. The task's
//!   `se.exec_start` still holds the time it stopped running, i.e. when its sleep began; if the
//!   sleep was longer than the configured threshold, the syscall number and arguments are read
//!   from the task's saved user registers and one record goes to the ring buffer. Short waits
//!   (the futex hot path) cost one map lookup, one kernel read and one clock read, and write
//!   nothing.
//! * `oom:mark_victim` copies the raw tracepoint record for userspace to decode.
//!
//! Threads that are blocked right now (including since before hangwatch started) are found by
//! userspace from /proc; this side reports the waits that *end*.
#![no_std]
#![no_main]
// No `unwrap()`/`expect()` on a runtime path: a bad value is an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// The probes are built for `bpfel-unknown-none` on nightly (aya-build, from hangwatch's
// build.rs). `cargo clippy --workspace` also type-checks and lints them for the host on stable:
// only the nightly feature below and the panic handler are BPF-target-only.
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_buf, generated::bpf_task_pt_regs,
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
};
use hangwatch_common::{
    COMM_LEN, Config, EventHeader, MAX_CPUS, MEM_PROCS_MAX, MemCounters, OOM_MEMCG_MAX,
    OOM_RAW_LEN, OomVictim, PF_KTHREAD, PIDNS_VICTIMS_MAX, RING_BUF_BYTES, WaitEnd, kind, stat,
};

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static CLOCK_OFFSETS: Array<i64> = Array::with_max_entries(MAX_CPUS, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BUF_BYTES, 0);

#[map]
static PIDNS_VICTIMS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(PIDNS_VICTIMS_MAX, 0);

#[map]
static OOM_MEMCG: LruHashMap<u32, u64> = LruHashMap::with_max_entries(OOM_MEMCG_MAX, 0);

/// Reads a kernel value at `base + off` (checked by the helper).
#[inline(always)]
unsafe fn kread<T>(base: *const u8, off: u32) -> Option<T> {
    // SAFETY: the helper checks the address; a fault returns an error.
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// The id of `task` in hangwatch's pid namespace (`cfg.pidns_inum`, at depth `cfg.pidns_level`):
/// like the kernel's `pid_nr_ns`, the `upid` of the task's `struct pid` at our namespace's level,
/// if that `upid` is in our namespace. 0 when the task is not visible there. No loop: a bounded
/// loop over the levels made `sched_waking` too complex for the 6.1 verifier ("The sequence of
/// 8193 jumps is too complex").
#[inline(always)]
unsafe fn ns_pid(cfg: &Config, task: *const u8) -> u32 {
    // SAFETY: checked reads at offsets from this kernel's BTF.
    unsafe {
        let Some(pid) = kread::<*const u8>(task, cfg.off_thread_pid).filter(|p| !p.is_null())
        else {
            return 0;
        };
        if cfg.pidns_level_found == 0 {
            return 0;
        }
        let ours = cfg.pidns_level;
        let level: u32 = kread(pid, cfg.off_pid_level).unwrap_or(0);
        if ours > level {
            return 0;
        }
        let upid = pid.add((cfg.off_pid_numbers + ours * cfg.upid_size) as usize);
        match kread::<*const u8>(upid, cfg.off_upid_ns) {
            Some(ns)
                if !ns.is_null() && kread::<u32>(ns, cfg.off_ns_inum) == Some(cfg.pidns_inum) =>
            {
                kread::<u32>(upid, 0).unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// Finds the depth of hangwatch's pid namespace, once at start: hangwatch calls getppid(2) with
/// this attached, and the caller whose own `struct pid` has, at its deepest level, hangwatch's
/// namespace gives that level. (/proc/self/status cannot: a container's /proc shows its own
/// levels only.)
#[tracepoint(category = "syscalls", name = "sys_enter_getppid")]
pub fn pidns_level(_ctx: TracePointContext) -> u32 {
    let Some(cfg) = CONFIG.get_ptr_mut(0) else { return 0 };
    // SAFETY: `cfg` is the live CONFIG value; checked reads at offsets from this kernel's BTF.
    unsafe {
        if (*cfg).pidns_inum == 0 || (*cfg).pidns_level_found != 0 {
            return 0;
        }
        let task = bpf_get_current_task() as *const u8;
        let Some(pid) = kread::<*const u8>(task, (*cfg).off_thread_pid).filter(|p| !p.is_null())
        else {
            return 0;
        };
        let Some(level) = kread::<u32>(pid, (*cfg).off_pid_level).filter(|l| *l < 64) else {
            return 0;
        };
        let upid = pid.add(((*cfg).off_pid_numbers + level * (*cfg).upid_size) as usize);
        if let Some(ns) = kread::<*const u8>(upid, (*cfg).off_upid_ns).filter(|n| !n.is_null())
            && kread::<u32>(ns, (*cfg).off_ns_inum) == Some((*cfg).pidns_inum)
        {
            (*cfg).pidns_level = level;
            (*cfg).pidns_level_found = 1;
        }
    }
    0
}

/// (tgid, tid) of `task` in hangwatch's pid namespace; zeros when not visible there.
#[inline(always)]
unsafe fn ns_ids(cfg: &Config, task: *const u8) -> (u32, u32) {
    // SAFETY: as in `ns_pid`.
    unsafe {
        let tid = ns_pid(cfg, task);
        let leader = kread::<*const u8>(task, cfg.off_group_leader).unwrap_or(task);
        (ns_pid(cfg, leader), tid)
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; the program is not re-entered on one CPU.
        unsafe { *slot += 1 };
    }
}

/// Byte offset of the syscall number inside `struct pt_regs` (the ptrace ABI, fixed per
/// architecture): `orig_ax` on x86_64, `syscallno` on arm64.
#[cfg(bpf_target_arch = "x86_64")]
const SYSCALL_NR_OFFSET: usize = 15 * 8;
#[cfg(bpf_target_arch = "aarch64")]
const SYSCALL_NR_OFFSET: usize = 35 * 8;
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
const SYSCALL_NR_OFFSET: usize = 0;

/// Set by userspace at load time (`.rodata`, frozen): the verifier sees them as constants, so
/// the hot path can load `task_struct` fields directly (no helper call) and compare against a
/// constant threshold. Zero `READY` means "the offsets could not be resolved": do nothing.
#[unsafe(no_mangle)]
static READY: u32 = 0;
#[unsafe(no_mangle)]
static OFF_EXEC_START: u32 = 0;
#[unsafe(no_mangle)]
static OFF_CPU: u32 = 0;
#[unsafe(no_mangle)]
static WAIT_THRESHOLD_NS: u64 = 0;
/// Non-zero on kernels without `bpf_task_pt_regs` (before 5.15): the saved user registers are
/// then found at the top of the task's kernel stack, `task->stack + REGS_IN_STACK`
/// (`THREAD_SIZE - sizeof(struct pt_regs)`, what the kernel's `task_pt_regs()` computes on
/// x86_64 and arm64). The verifier drops the branch not taken, so the helper the kernel lacks
/// is never seen by it.
#[unsafe(no_mangle)]
static REGS_FROM_STACK: u32 = 0;
/// Offset of `task_struct.stack`.
#[unsafe(no_mangle)]
static OFF_STACK: u32 = 0;
/// `THREAD_SIZE - sizeof(struct pt_regs)`.
#[unsafe(no_mangle)]
static REGS_IN_STACK: u32 = 0;

/// The saved user registers (`struct pt_regs`) of `task`, a BTF-typed task pointer; null if
/// they cannot be found.
#[inline(always)]
unsafe fn task_regs(task: *const u8) -> *const u8 {
    // SAFETY: the helper takes a BTF task pointer; the stack read is checked.
    unsafe {
        if rodata(&REGS_FROM_STACK) == 0 {
            bpf_task_pt_regs(task as *mut _) as *const u8
        } else {
            match kread::<*const u8>(task, rodata(&OFF_STACK)) {
                Some(stack) if !stack.is_null() => stack.add(rodata(&REGS_IN_STACK) as usize),
                _ => core::ptr::null(),
            }
        }
    }
}

#[inline(always)]
fn rodata<T: Copy>(v: &T) -> T {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the zero it was
    // compiled with (userspace rewrites it before loading).
    unsafe { core::ptr::read_volatile(v) }
}

/// `sched_waking` with direct (BTF-checked) loads of the two fields it reads on every call.
/// Needs a verifier that tracks constants from frozen read-only maps (Linux 5.5+ does).
#[btf_tracepoint(function = "sched_waking")]
pub fn sched_waking(ctx: BtfTracePointContext) -> i32 {
    if rodata(&READY) == 0 {
        return 0;
    }
    let task: *const u8 = ctx.arg(0);
    // SAFETY: `task` is the BTF-typed task_struct being woken; the offsets are this kernel's,
    // constants to the verifier, which turns the loads into fault-safe ones.
    let (exec_start, cpu) = unsafe {
        (
            *(task.add(rodata(&OFF_EXEC_START) as usize) as *const u64),
            *(task.add(rodata(&OFF_CPU) as usize) as *const u32),
        )
    };
    finish(&ctx, task, exec_start, cpu)
}

/// The same with `bpf_probe_read_kernel`, for kernels whose verifier rejects the direct loads.
#[btf_tracepoint(function = "sched_waking")]
pub fn sched_waking_compat(ctx: BtfTracePointContext) -> i32 {
    if rodata(&READY) == 0 {
        return 0;
    }
    let task: *const u8 = ctx.arg(0);
    // SAFETY: checked reads at offsets from this kernel's BTF.
    let fields = unsafe {
        (
            bpf_probe_read_kernel(task.add(rodata(&OFF_EXEC_START) as usize) as *const u64),
            bpf_probe_read_kernel(task.add(rodata(&OFF_CPU) as usize) as *const u32),
        )
    };
    match fields {
        (Ok(exec_start), Ok(cpu)) => finish(&ctx, task, exec_start, cpu),
        _ => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

#[inline(always)]
fn finish(ctx: &BtfTracePointContext, task: *const u8, exec_start: u64, cpu: u32) -> i32 {
    match try_sched_waking(ctx, task, exec_start, cpu) {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

fn try_sched_waking(
    _ctx: &BtfTracePointContext,
    task: *const u8,
    exec_start: u64,
    cpu: u32,
) -> Result<(), i64> {
    if exec_start == 0 {
        // Migrated or never ran: the sleep start is unknown.
        return Ok(());
    }
    // The sleep began on the task's current CPU (a wake-up has not moved it yet), and
    // exec_start is on that CPU's task clock.
    let Some(offset) = CLOCK_OFFSETS.get(cpu) else {
        return Ok(());
    };
    let start = (exec_start as i64).wrapping_add(*offset) as u64;
    // (bpf_ktime_get_coarse_ns would be cheaper, but tracing programs may not call it.)
    // SAFETY: a helper call without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now <= start || now - start < rodata(&WAIT_THRESHOLD_NS) {
        return Ok(());
    }
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(());
    };
    // Rare path from here on: a wait long enough to matter has ended.
    // SAFETY: offsets from BTF, reads checked by the helper.
    let (tgid, tid) = if cfg.pidns_inum == 0 {
        // SAFETY: as above.
        unsafe {
            (
                bpf_probe_read_kernel(task.add(cfg.off_tgid as usize) as *const u32)
                    .map_err(i64::from)?,
                bpf_probe_read_kernel(task.add(cfg.off_pid as usize) as *const u32).unwrap_or(0),
            )
        }
    } else {
        // SAFETY: as above.
        let ids = unsafe { ns_ids(cfg, task) };
        if ids.0 == 0 {
            count(stat::OTHER_PIDNS);
            return Ok(());
        }
        ids
    };
    if tgid == 0 || (cfg.filter_tgid != 0 && cfg.filter_tgid != tgid) {
        return Ok(());
    }
    // SAFETY: as above.
    let flags: u32 =
        unsafe { bpf_probe_read_kernel(task.add(cfg.off_flags as usize) as *const u32) }
            .map_err(i64::from)?;
    if flags & PF_KTHREAD != 0 {
        return Ok(());
    }
    count(stat::LONG_WAITS);
    let Some(mut entry) = EVENTS.reserve::<WaitEnd>(0) else {
        count(stat::LOST);
        return Ok(());
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points to a reserved, exclusively owned ring buffer slot of the right size.
    unsafe {
        let mut comm = [0u8; COMM_LEN];
        let _ = bpf_probe_read_kernel_buf(task.add(cfg.off_comm as usize), &mut comm);
        let waker = if cfg.pidns_inum == 0 {
            bpf_get_current_pid_tgid()
        } else {
            // A waker outside our namespace (or an interrupt) shows as 0.
            let (p, t) = ns_ids(cfg, bpf_get_current_task() as *const u8);
            (u64::from(p) << 32) | u64::from(t)
        };
        (*ev).header = EventHeader {
            kind: kind::WAIT_END,
            pid: tgid,
            tid,
            cpu: bpf_get_smp_processor_id(),
            ts_ns: now,
        };
        (*ev).start_ns = start;
        (*ev).waker_pid = (waker >> 32) as u32;
        (*ev).waker_tid = waker as u32;
        (*ev).comm = comm;
        let regs = task_regs(task);
        (*ev).syscall_nr = if regs.is_null() {
            -1
        } else {
            bpf_probe_read_kernel(regs.add(SYSCALL_NR_OFFSET) as *const i64).unwrap_or(-1)
        };
    }
    entry.submit(0);
    count(stat::EVENTS);
    Ok(())
}

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    let Some(mut entry) = EVENTS.reserve::<OomVictim>(0) else {
        count(stat::LOST);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: exclusive reserved slot; the raw record is read with a checked helper. The record
    // may be shorter than OOM_RAW_LEN on older kernels: then retry with the fixed part only.
    unsafe {
        (*ev).header = EventHeader {
            kind: kind::OOM_VICTIM,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            cpu: bpf_get_smp_processor_id(),
            ts_ns: bpf_ktime_get_ns(),
        };
        let raw = &mut (*ev).raw;
        if bpf_probe_read_kernel_buf(ctx.as_ptr() as *const u8, raw).is_err() {
            *raw = [0; OOM_RAW_LEN];
            let _ = bpf_probe_read_kernel_buf(ctx.as_ptr() as *const u8, &mut raw[..16]);
        }
    }
    entry.submit(0);
    count(stat::EVENTS);
    0
}

/// When hangwatch runs in a child pid namespace: records each OOM victim's ids in that
/// namespace (the `oom:mark_victim` record has the host pid only). Loaded only on kernels whose
/// `mark_victim` passes the victim's `task_struct` (those with the RSS fields in the record).
#[btf_tracepoint(function = "mark_victim")]
pub fn oom_victim_pidns(ctx: BtfTracePointContext) -> i32 {
    record_pidns_victim(ctx.arg(0), false)
}

/// The same for kernels whose `mark_victim` passes only a pid (before 6.8: 5.10, 6.1): the OOM
/// killer sends its victim SIGKILL, and `signal_generate` passes the task. Records the ids of
/// every SIGKILLed task (a rare event) in hangwatch's namespace; only attached when hangwatch
/// runs in a child pid namespace.
#[btf_tracepoint(function = "signal_generate")]
pub fn oom_victim_pidns_kill(ctx: BtfTracePointContext) -> i32 {
    let sig: i32 = ctx.arg(0);
    if sig != 9 {
        return 0;
    }
    // A SIGKILL to a task outside hangwatch's namespace (tgid 0 there) is not recorded.
    record_pidns_victim(ctx.arg(2), true)
}

/// `task`'s (tgid, tid) in hangwatch's pid namespace into `PIDNS_VICTIMS`, keyed by its host
/// pid; nothing when hangwatch runs in the initial namespace.
#[inline(always)]
fn record_pidns_victim(task: *const u8, skip_invisible: bool) -> i32 {
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    if cfg.pidns_inum == 0 {
        return 0;
    }
    // SAFETY: checked reads at offsets from this kernel's BTF.
    let (host_pid, (tgid, tid)) = unsafe {
        let Some(host_pid) = kread::<u32>(task, cfg.off_pid) else {
            count(stat::READ_ERRORS);
            return 0;
        };
        (host_pid, ns_ids(cfg, task))
    };
    if skip_invisible && tgid == 0 {
        return 0;
    }
    let ids = (u64::from(tgid) << 32) | u64::from(tid);
    if PIDNS_VICTIMS.insert(host_pid, ids, 0).is_err() {
        count(stat::MAP_FULL);
    }
    0
}

/// Records each OOM victim's memory cgroup (the kernfs id of its directory) when the victim
/// is chosen, before the kernel kills it and moves it out: read later from /proc, a dying task
/// says `/` or nothing. Loaded on kernels whose `mark_victim` passes the victim's `task_struct`.
#[btf_tracepoint(function = "mark_victim")]
pub fn oom_victim_memcg(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    if cfg.off_kn_id == 0 && cfg.off_cgroup_kn == 0 {
        return 0;
    }
    // SAFETY: checked reads at offsets from this kernel's BTF.
    let found = unsafe {
        (|| {
            let host_pid = kread::<u32>(task, cfg.off_pid)?;
            let cset = kread::<*const u8>(task, cfg.off_task_cgroups).filter(|p| !p.is_null())?;
            let css = kread::<*const u8>(cset, cfg.off_css_set_mem).filter(|p| !p.is_null())?;
            let cgrp = kread::<*const u8>(css, cfg.off_css_cgroup).filter(|p| !p.is_null())?;
            let kn = kread::<*const u8>(cgrp, cfg.off_cgroup_kn).filter(|p| !p.is_null())?;
            Some((host_pid, kread::<u64>(kn, cfg.off_kn_id)?))
        })()
    };
    let Some((host_pid, id)) = found else {
        count(stat::READ_ERRORS);
        return 0;
    };
    if OOM_MEMCG.insert(host_pid, id, 0).is_err() {
        count(stat::MAP_FULL);
    }
    0
}

// ---------------------------------------------------------------------------
// Optional memory probes (`--exact-memory`): counts of brk/mmap/munmap/mremap/madvise per
// process. They are syscall tracepoints, so attaching them moves every thread of the machine
// onto the slower traced syscall path (docs/memory.md has the measured cost): off by default.

#[map]
static MEM_COUNTERS: LruHashMap<u32, MemCounters> = LruHashMap::with_max_entries(MEM_PROCS_MAX, 0);

/// `struct pt_regs` offsets of the syscall arguments 2, 3 and 4 (x86_64: si, dx, r10; arm64:
/// x1, x2, x3). Saved on entry and still there on exit.
#[cfg(bpf_target_arch = "x86_64")]
const ARG_OFFSETS: [usize; 3] = [13 * 8, 12 * 8, 7 * 8];
#[cfg(not(bpf_target_arch = "x86_64"))]
const ARG_OFFSETS: [usize; 3] = [8, 16, 24];

const PAGE: u64 = 4096;
const MAP_ANONYMOUS: u64 = 0x20;

#[inline(always)]
fn page_up(len: u64) -> u64 {
    len.wrapping_add(PAGE - 1) & !(PAGE - 1)
}

/// Argument `n` (1-based, 2..=4) of the current system call, from the saved user registers.
#[inline(always)]
fn syscall_arg(n: usize) -> u64 {
    // SAFETY: the current task's saved registers, read with a checked helper.
    unsafe {
        let regs = if rodata(&REGS_FROM_STACK) == 0 {
            task_regs(aya_ebpf::helpers::generated::bpf_get_current_task_btf() as *const u8)
        } else {
            task_regs(bpf_get_current_task() as *const u8)
        };
        if regs.is_null() {
            return 0;
        }
        bpf_probe_read_kernel(regs.add(ARG_OFFSETS[n - 2]) as *const u64).unwrap_or(0)
    }
}

/// The calling process's id as hangwatch sees it (0: outside its pid namespace).
#[inline(always)]
fn current_tgid(cfg: &Config) -> u32 {
    if cfg.pidns_inum == 0 {
        return (bpf_get_current_pid_tgid() >> 32) as u32;
    }
    // SAFETY: checked reads of the current task.
    unsafe { ns_ids(cfg, bpf_get_current_task() as *const u8).0 }
}

/// The counters of the calling process, created if `create`.
#[inline(always)]
fn mem_counters(create: bool) -> Option<*mut MemCounters> {
    let cfg = CONFIG.get(0)?;
    let tgid = current_tgid(cfg);
    if tgid == 0 {
        return None;
    }
    if let Some(c) = MEM_COUNTERS.get_ptr_mut(tgid) {
        return Some(c);
    }
    if !create {
        return None;
    }
    // BPF_NOEXIST: another thread may have created it meanwhile (then it is found below).
    if MEM_COUNTERS.insert(tgid, MemCounters::default(), 1).is_err()
        && MEM_COUNTERS.get_ptr_mut(tgid).is_none()
    {
        count(stat::MAP_FULL);
    }
    MEM_COUNTERS.get_ptr_mut(tgid)
}

/// Adds to a counter that other threads of the process may update at the same time.
#[inline(always)]
#[cfg(target_arch = "bpf")]
fn add(field: *mut u64, v: u64) {
    // SAFETY: an aligned u64 inside a live map value, updated atomically.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            field, v,
        )
    };
}

/// The host build of this crate only exists for `cargo clippy --workspace` (it is never run):
/// the BPF target has no `AtomicU64` (no compare-and-swap), the host has no stable intrinsic.
#[inline(always)]
#[cfg(not(target_arch = "bpf"))]
fn add(field: *mut u64, v: u64) {
    // SAFETY: an aligned u64 inside a live map value, which is only updated atomically.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(field) }
        .fetch_add(v, core::sync::atomic::Ordering::Relaxed);
}

/// `long ret` of a `syscalls:sys_exit_*` record.
#[inline(always)]
fn exit_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: the field is at offset 16 in every sys_exit record.
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1)
}

#[tracepoint(category = "syscalls", name = "sys_enter_brk")]
pub fn mem_enter_brk(_ctx: TracePointContext) -> u32 {
    let Some(cfg) = CONFIG.get(0) else { return 0 };
    let Some(c) = mem_counters(true) else { return 0 };
    // SAFETY: checked reads of current->mm->brk at BTF offsets; `c` is a live map value.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let brk = kread::<*const u8>(task, cfg.off_mm)
            .filter(|mm| !mm.is_null())
            .and_then(|mm| kread::<u64>(mm, cfg.off_mm_brk))
            .unwrap_or(0);
        (*c).pending_brk = brk;
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_brk")]
pub fn mem_exit_brk(ctx: TracePointContext) -> u32 {
    let Some(c) = mem_counters(false) else { return 0 };
    let new = exit_ret(&ctx) as u64;
    // SAFETY: `c` is a live map value of this process.
    unsafe {
        let old = (*c).pending_brk;
        (*c).pending_brk = 0;
        if old == 0 || new == old {
            return 0;
        }
        if new > old {
            add(&raw mut (*c).brk_grows, 1);
            add(&raw mut (*c).brk_grow_bytes, page_up(new) - page_up(old));
        } else {
            add(&raw mut (*c).brk_shrinks, 1);
            add(&raw mut (*c).brk_shrink_bytes, page_up(old) - page_up(new));
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mmap")]
pub fn mem_exit_mmap(ctx: TracePointContext) -> u32 {
    let ret = exit_ret(&ctx);
    if (-4095..0).contains(&ret) || syscall_arg(4) & MAP_ANONYMOUS == 0 {
        return 0;
    }
    let len = page_up(syscall_arg(2));
    let Some(c) = mem_counters(true) else { return 0 };
    // SAFETY: `c` is a live map value of this process.
    unsafe {
        add(&raw mut (*c).mmap_calls, 1);
        add(&raw mut (*c).mmap_bytes, len);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_munmap")]
pub fn mem_exit_munmap(ctx: TracePointContext) -> u32 {
    if exit_ret(&ctx) != 0 {
        return 0;
    }
    let len = page_up(syscall_arg(2));
    let Some(c) = mem_counters(true) else { return 0 };
    // SAFETY: as above.
    unsafe {
        add(&raw mut (*c).munmap_calls, 1);
        add(&raw mut (*c).munmap_bytes, len);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mremap")]
pub fn mem_exit_mremap(ctx: TracePointContext) -> u32 {
    if (-4095..0).contains(&exit_ret(&ctx)) {
        return 0;
    }
    let (old, new) = (page_up(syscall_arg(2)), page_up(syscall_arg(3)));
    let Some(c) = mem_counters(true) else { return 0 };
    // SAFETY: as above.
    unsafe {
        add(&raw mut (*c).mremap_calls, 1);
        if new > old {
            add(&raw mut (*c).mremap_grow_bytes, new - old);
        } else {
            add(&raw mut (*c).mremap_shrink_bytes, old - new);
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_madvise")]
pub fn mem_exit_madvise(ctx: TracePointContext) -> u32 {
    // MADV_DONTNEED 4, MADV_FREE 8, MADV_REMOVE 9, MADV_PAGEOUT 21, MADV_DONTNEED_LOCKED 24.
    let advice = syscall_arg(3);
    if exit_ret(&ctx) != 0 || !matches!(advice, 4 | 8 | 9 | 21 | 24) {
        return 0;
    }
    let len = page_up(syscall_arg(2));
    let Some(c) = mem_counters(true) else { return 0 };
    // SAFETY: as above.
    unsafe {
        add(&raw mut (*c).madvise_calls, 1);
        add(&raw mut (*c).madvise_bytes, len);
    }
    0
}

/// Drops a process's memory counters when its main thread exits (with the memory probes).
#[btf_tracepoint(function = "sched_process_exit")]
pub fn mem_process_exit(ctx: BtfTracePointContext) -> i32 {
    let Some(cfg) = CONFIG.get(0) else { return 0 };
    let task: *const u8 = ctx.arg(0);
    // SAFETY: checked reads at BTF offsets.
    let ids = unsafe {
        if cfg.pidns_inum == 0 {
            (
                kread::<u32>(task, cfg.off_tgid).unwrap_or(0),
                kread::<u32>(task, cfg.off_pid).unwrap_or(1),
            )
        } else {
            ns_ids(cfg, task)
        }
    };
    if ids.0 != 0 && ids.0 == ids.1 {
        let _ = MEM_COUNTERS.remove(ids.0);
    }
    0
}

// On the host, `std` (linked through aya, which hangwatch-common's `user` feature pulls in when
// the whole workspace is checked) provides the panic handler.
#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
