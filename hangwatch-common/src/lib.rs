//! Types shared by the eBPF programs and the userspace aggregator.
//!
//! Every struct is `#[repr(C)]`, `Copy`, and laid out without implicit padding so that the
//! bytes the kernel writes into the ring buffer are exactly the bytes userspace reads.
#![no_std]
// No `unwrap()`/`expect()` on a runtime path: a bad value is an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// Length of a kernel task name (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Size of the ring buffer shared by all probes, in bytes (a power of two, a multiple of the
/// page size).
pub const RING_BUF_BYTES: u32 = 2 << 20;

/// `Event::kind` values.
pub mod kind {
    /// A thread woke from a wait that lasted at least `Config::wait_threshold_ns`.
    pub const WAIT_END: u32 = 1;
    /// The OOM killer chose a victim (raw `oom:mark_victim` record attached).
    pub const OOM_VICTIM: u32 = 2;
}

/// Indexes into the `STATS` per-CPU array: counters that the probes only touch on the rare
/// path (an event emitted, a reservation that failed), never on every call.
pub mod stat {
    /// Events written to the ring buffer.
    pub const EVENTS: u32 = 0;
    /// Events lost because the ring buffer was full.
    pub const LOST: u32 = 1;
    /// Kernel reads (`bpf_probe_read_kernel`) that failed.
    pub const READ_ERRORS: u32 = 2;
    /// Waits that ended and were long enough to report (emitted or lost).
    pub const LONG_WAITS: u32 = 3;
    /// Entries that could not be inserted because a map was full.
    pub const MAP_FULL: u32 = 4;
    /// Long waits that ended in tasks outside hangwatch's pid namespace (not reported).
    pub const OTHER_PIDNS: u32 = 5;
    /// Number of counters.
    pub const COUNT: u32 = 8;
}

/// Runtime configuration, written by userspace into the single slot of the `CONFIG` array
/// before (and while) the probes run. Offsets come from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Waits shorter than this are not reported when they end.
    pub wait_threshold_ns: u64,
    /// Unused (kept for layout); the per-CPU offsets are in the `CLOCK_OFFSETS` map.
    pub _reserved: i64,
    /// Offset of `task_struct.se.exec_start`.
    pub off_exec_start: u32,
    /// Offset of `task_struct.pid`.
    pub off_pid: u32,
    /// Offset of `task_struct.tgid`.
    pub off_tgid: u32,
    /// Offset of `task_struct.comm`.
    pub off_comm: u32,
    /// Non-zero once userspace has filled the offsets; probes do nothing before that.
    pub ready: u32,
    /// Only report waits of this process (0 = all).
    pub filter_tgid: u32,
    /// Offset of `task_struct.flags` (to skip kernel threads, which have no user registers).
    pub off_flags: u32,
    /// Offset of the task's CPU (`task_struct.cpu`, or `thread_info.cpu` on older kernels).
    pub off_cpu: u32,
    /// Inode of hangwatch's pid namespace when it is not the initial one (0 = initial: the
    /// kernel's pids are hangwatch's, nothing to translate). Probes then report pids as seen
    /// in that namespace, and skip tasks outside it.
    pub pidns_inum: u32,
    /// Offset of `task_struct.thread_pid` (`struct pid *`).
    pub off_thread_pid: u32,
    /// Offset of `task_struct.group_leader`.
    pub off_group_leader: u32,
    /// Offset of `struct pid.level`.
    pub off_pid_level: u32,
    /// Offset of `struct pid.numbers` (`struct upid[]`).
    pub off_pid_numbers: u32,
    /// `sizeof(struct upid)`.
    pub upid_size: u32,
    /// Offset of `struct upid.ns`.
    pub off_upid_ns: u32,
    /// Offset of `struct pid_namespace.ns.inum`.
    pub off_ns_inum: u32,
    /// Offset of `task_struct.mm` (memory probes).
    pub off_mm: u32,
    /// Offset of `mm_struct.brk` (memory probes).
    pub off_mm_brk: u32,
    /// OOM victims' memory cgroup: offsets of `task_struct.cgroups`, of
    /// `css_set.subsys[memory_cgrp_id]`, `cgroup_subsys_state.cgroup`, `cgroup.kn` and
    /// `kernfs_node.id`; all 0 when this kernel's BTF lacks them (the probe is then not loaded).
    pub off_task_cgroups: u32,
    pub off_css_set_mem: u32,
    pub off_css_cgroup: u32,
    pub off_cgroup_kn: u32,
    pub off_kn_id: u32,
    pub _pad_memcg: u32,
    /// Depth of hangwatch's pid namespace (0: the initial one), found by the `pidns_level`
    /// probe at start.
    pub pidns_level: u32,
    /// Non-zero once `pidns_level` is known; until then no pid can be translated.
    pub pidns_level_found: u32,
}

/// Per-process counts of the memory system calls, kept in the kernel (`MEM_COUNTERS`, keyed
/// by process id) by the optional memory probes (`--exact-memory`). Only calls that succeeded
/// are counted; sizes are rounded up to pages as the kernel does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemCounters {
    pub brk_grows: u64,
    pub brk_shrinks: u64,
    pub brk_grow_bytes: u64,
    pub brk_shrink_bytes: u64,
    /// Anonymous mappings (`MAP_ANONYMOUS`) created by mmap.
    pub mmap_calls: u64,
    pub mmap_bytes: u64,
    /// munmap of any mapping (the call does not say whether it was anonymous).
    pub munmap_calls: u64,
    pub munmap_bytes: u64,
    pub mremap_calls: u64,
    pub mremap_grow_bytes: u64,
    pub mremap_shrink_bytes: u64,
    /// madvise calls that free or reclaim pages: DONTNEED, FREE, REMOVE, PAGEOUT,
    /// DONTNEED_LOCKED.
    pub madvise_calls: u64,
    pub madvise_bytes: u64,
    /// The program break before the brk call in progress (set on entry, used on exit).
    pub pending_brk: u64,
}

/// Processes the `MEM_COUNTERS` map holds at most (least recently used evicted first; an
/// exiting process's entry is removed when it exits).
pub const MEM_PROCS_MAX: u32 = 16384;

/// Deepest pid namespace nesting the probes look through (the kernel allows 32).
pub const MAX_PIDNS_LEVELS: u32 = 8;

/// Entries of the `PIDNS_VICTIMS` map: OOM victims' host pid → their ids in hangwatch's pid
/// namespace (`tgid << 32 | pid`), for the few moments until userspace reads the record.
pub const PIDNS_VICTIMS_MAX: u32 = 64;

/// Entries of the `OOM_MEMCG` map: OOM victims' host pid → the kernfs id of their memory
/// cgroup, from the moment the victim is chosen until userspace reads the record. A storm of
/// kills (thousands a minute) fits: userspace removes each entry as it reads it.
pub const OOM_MEMCG_MAX: u32 = 4096;

/// Entries of the `CLOCK_OFFSETS` array: one per possible CPU. Each holds
/// `CLOCK_MONOTONIC - rq_clock_task` of that CPU in ns (they differ per CPU by the steal time
/// each has accumulated), calibrated by userspace; it converts `se.exec_start` of a task that
/// slept on that CPU to the monotonic clock.
pub const MAX_CPUS: u32 = 4096;

/// `PF_KTHREAD` in `task_struct.flags`.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Common header of every ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    pub kind: u32,
    /// Thread group id (the process id as userspace knows it).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the record was written.
    pub ts_ns: u64,
}

/// `kind::WAIT_END`: a thread woke after sleeping at least the threshold. Kept small (64
/// bytes) so that a burst of simultaneous wake-ups (10,000 threads released at once) fits in
/// the ring buffer: the arguments of the wait are known to userspace from /proc already, and
/// the waker's name is read from /proc when the record arrives.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitEnd {
    pub header: EventHeader,
    /// When the sleep began, on CLOCK_MONOTONIC (from `se.exec_start` + offset).
    pub start_ns: u64,
    /// Syscall number from the saved user registers (`orig_ax` on x86_64), -1 if none.
    pub syscall_nr: i64,
    /// The task that woke it (the current task in `sched_waking`).
    pub waker_pid: u32,
    pub waker_tid: u32,
    pub comm: [u8; COMM_LEN],
}

/// Bytes of the raw `oom:mark_victim` record copied into `OomVictim::raw`.
pub const OOM_RAW_LEN: usize = 128;

/// `kind::OOM_VICTIM`: the raw tracepoint record, decoded in userspace with the layout from
/// tracefs (`events/oom/mark_victim/format`), which differs between kernel versions.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomVictim {
    pub header: EventHeader,
    pub raw: [u8; OOM_RAW_LEN],
}

// No implicit padding in the ring buffer records: their size is the sum of their fields (a
// field added with a hole before it fails the build here, not the decoding at run time).
const _: () = assert!(core::mem::size_of::<EventHeader>() == 4 * 4 + 8);
const _: () = assert!(
    core::mem::size_of::<WaitEnd>()
        == core::mem::size_of::<EventHeader>() + 8 + 8 + 4 + 4 + COMM_LEN
);
const _: () =
    assert!(core::mem::size_of::<OomVictim>() == core::mem::size_of::<EventHeader>() + OOM_RAW_LEN);

/// `aya::Pod`: what userspace may read from a map or the ring buffer as raw bytes.
#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers and byte arrays, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::MemCounters {}
    // SAFETY: as above (sizes asserted above).
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above (sizes asserted above).
    unsafe impl aya::Pod for super::WaitEnd {}
    // SAFETY: as above (sizes asserted above).
    unsafe impl aya::Pod for super::OomVictim {}
}
