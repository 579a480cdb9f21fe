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
    COMM_LEN, Config, EventHeader, MAX_CPUS, MAX_PIDNS_LEVELS, OOM_RAW_LEN, OomVictim, PF_KTHREAD,
    PIDNS_VICTIMS_MAX, RING_BUF_BYTES, WaitEnd, kind, stat,
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

/// Reads a kernel value at `base + off` (checked by the helper).
#[inline(always)]
unsafe fn kread<T>(base: *const u8, off: u32) -> Option<T> {
    // SAFETY: the helper checks the address; a fault returns an error.
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// The id of `task` in hangwatch's pid namespace (`cfg.pidns_inum`): the `upid` of the task's
/// `struct pid` whose namespace is ours. 0 when the task is not visible there.
#[inline(always)]
unsafe fn ns_pid(cfg: &Config, task: *const u8) -> u32 {
    // SAFETY: checked reads at offsets from this kernel's BTF.
    unsafe {
        let Some(pid) = kread::<*const u8>(task, cfg.off_thread_pid).filter(|p| !p.is_null())
        else {
            return 0;
        };
        let level: u32 = kread(pid, cfg.off_pid_level).unwrap_or(0);
        let mut i = 0;
        while i < MAX_PIDNS_LEVELS && i <= level {
            let upid = pid.add((cfg.off_pid_numbers + i * cfg.upid_size) as usize);
            if let Some(ns) = kread::<*const u8>(upid, cfg.off_upid_ns).filter(|n| !n.is_null())
                && kread::<u32>(ns, cfg.off_ns_inum) == Some(cfg.pidns_inum)
            {
                return kread::<u32>(upid, 0).unwrap_or(0);
            }
            i += 1;
        }
        0
    }
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
        let regs = bpf_task_pt_regs(task as *mut _) as *const u8;
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
    let task: *const u8 = ctx.arg(0);
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
    let ids = (u64::from(tgid) << 32) | u64::from(tid);
    if PIDNS_VICTIMS.insert(&host_pid, &ids, 0).is_err() {
        count(stat::MAP_FULL);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
