//! The userspace side of `hangwatch-ebpf`: loading and attaching the probes, and reading what
//! they report.
//!
//! * this file: [`Probes::load`] (load, attach, the `CONFIG` and clock maps), the ring buffer,
//!   the `STATS` counters and the per-process memory counters;
//! * [`events`]: the ring buffer's records decoded into owned events;
//! * [`offsets`]: what the probes need to know about the running kernel, from its BTF;
//! * [`btf`]: the BTF reader that finds those offsets;
//! * [`tracefs`]: mounting tracefs, and a classic tracepoint's record layout.
//!
//! Every probe that cannot attach is recorded with the reason and shown to the user; the
//! others keep running. Nothing here is fatal except failing to load the object at all.

pub mod btf;
pub mod events;
pub mod offsets;
pub mod tracefs;

use std::{collections::HashMap, fs};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Program, ProgramError, TracePoint, trace_point::TracePointLinkId},
};
pub use hangwatch_common::MemCounters;
use hangwatch_common::{Config, stat};
use log::{debug, warn};

use crate::{error::Error, model::oom::OomVictimEvent};
use events::{KernelEvent, decode_record};
use offsets::{KernelGlobals, aya_kernel_btf, task_offsets};
use tracefs::{TracepointFormat, ensure_tracefs, tracefs_dir};

/// One probe and whether it is working.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeStatus {
    pub name: &'static str,
    pub attached: bool,
    /// Why it is not attached, in words a user can act on.
    pub reason: Option<String>,
    /// What the user loses without it.
    pub impact: &'static str,
}

/// Counters the probes keep (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct KernelStats {
    pub events: u64,
    pub lost_events: u64,
    pub read_errors: u64,
    pub long_waits: u64,
    pub map_full: u64,
}

pub struct LoadOptions {
    pub wait_threshold_ns: u64,
    pub filter_tgid: u32,
    /// Attach the memory syscall probes (`--exact-memory`): exact per-process counts of
    /// brk/mmap/munmap/mremap/madvise, at the cost of the traced syscall path for every thread.
    pub exact_memory: bool,
}

/// The syscall tracepoints of the memory probes, with their programs.
const MEMORY_PROBES: [(&str, &str); 6] = [
    ("mem_enter_brk", "sys_enter_brk"),
    ("mem_exit_brk", "sys_exit_brk"),
    ("mem_exit_mmap", "sys_exit_mmap"),
    ("mem_exit_munmap", "sys_exit_munmap"),
    ("mem_exit_mremap", "sys_exit_mremap"),
    ("mem_exit_madvise", "sys_exit_madvise"),
];

/// A program of the object, as the type it is.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())
}

/// Loads the `tp_btf` program `prog` for the tracepoint `tp` and attaches it. `btf` is the
/// kernel's BTF, or why there is none.
fn attach_btf(
    ebpf: &mut Ebpf,
    btf: Result<&aya::Btf, &String>,
    prog: &str,
    tp: &str,
) -> Result<(), String> {
    let btf = btf.map_err(Clone::clone)?;
    let p: &mut BtfTracePoint = program(ebpf, prog)?;
    p.load(tp, btf).map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
    p.attach().map_err(|e| format!("attach: {e}"))?;
    Ok(())
}

/// Loads the classic tracepoint program `prog` and attaches it to `category:name` (tracefs
/// must be mounted: see [`ensure_tracefs`]).
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    prog: &str,
    category: &str,
    name: &str,
) -> Result<TracePointLinkId, String> {
    let p: &mut TracePoint = program(ebpf, prog)?;
    p.load().map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
    p.attach(category, name).map_err(|e| format!("attach: {e}"))
}

/// Records whether a probe attached, in the order the probes were tried: every probe is listed
/// (`probes` in the report); one that did not attach is also logged, with why.
fn record(
    status: &mut Vec<ProbeStatus>,
    name: &'static str,
    impact: &'static str,
    attached: Result<(), String>,
) -> bool {
    if let Err(e) = &attached {
        warn!("probe {name} not attached: {e}");
    }
    let ok = attached.is_ok();
    status.push(ProbeStatus { name, attached: ok, reason: attached.err(), impact });
    ok
}

/// Loads the eBPF object with the kernel's offsets and layout in its read-only data.
fn load_object(config: &Config, globals: &KernelGlobals) -> Result<Ebpf, Error> {
    let mut loader = EbpfLoader::new();
    loader
        .override_global("READY", &config.ready, true)
        .override_global("OFF_EXEC_START", &config.off_exec_start, true)
        .override_global("OFF_CPU", &config.off_cpu, true)
        .override_global("WAIT_THRESHOLD_NS", &config.wait_threshold_ns, true);
    loader
        .override_global("REGS_FROM_STACK", &globals.regs_from_stack, true)
        .override_global("OFF_STACK", &globals.off_stack, true)
        .override_global("REGS_IN_STACK", &globals.regs_in_stack, true);
    loader
        .load(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hangwatch")))
        .map_err(|e| Error::BpfLoad(e.to_string()))
}

/// Wait ends: `tp_btf/sched_waking`, with direct field loads, or with probe reads where the
/// verifier does not accept those. Returns whether it is attached.
fn attach_wait_ends(
    ebpf: &mut Ebpf,
    btf: Result<&aya::Btf, &String>,
    globals: &KernelGlobals,
    status: &mut Vec<ProbeStatus>,
) -> bool {
    let from_stack = globals.regs_from_stack != 0;
    let mut name = if from_stack {
        "tp_btf/sched_waking (registers from the task's stack)"
    } else {
        "tp_btf/sched_waking"
    };
    let waking = attach_btf(ebpf, btf, "sched_waking", "sched_waking").or_else(|first| {
        debug!("sched_waking with direct loads did not load ({first}); trying probe reads");
        name = if from_stack {
            "tp_btf/sched_waking (probe-read fallback, registers from the task's stack)"
        } else {
            "tp_btf/sched_waking (probe-read fallback)"
        };
        attach_btf(ebpf, btf, "sched_waking_compat", "sched_waking")
            .map_err(|e| format!("{first}; fallback: {e}"))
    });
    record(
        status,
        name,
        "waits that begin and end between two /proc scans are not seen; ongoing waits still are",
        waking,
    )
}

/// OOM kills: `oom:mark_victim` (a classic tracepoint: needs tracefs), and where it attached,
/// the victim's memory cgroup and (in a child pid namespace) its pid there, read from its
/// `task_struct` by BTF programs. Returns the record layout of `oom:mark_victim` when it is
/// known.
fn attach_oom(
    ebpf: &mut Ebpf,
    btf: Result<&aya::Btf, &String>,
    config: &Config,
    status: &mut Vec<ProbeStatus>,
) -> Option<TracepointFormat> {
    let mut format = None;
    let oom = (|| -> Result<(), String> {
        ensure_tracefs()?;
        let fmt_path = format!("{}/events/oom/mark_victim/format", tracefs_dir());
        let text = fs::read_to_string(&fmt_path)
            .map_err(|e| format!("tracepoint oom:mark_victim missing ({fmt_path}: {e})"))?;
        format = Some(TracepointFormat::parse(&text));
        attach_tracepoint(ebpf, "oom_mark_victim", "oom", "mark_victim").map(drop)
    })();
    // The kernels whose record has the RSS fields pass the victim's task to the tracepoint.
    let has_task_arg =
        format.as_ref().is_some_and(|f| f.fields.iter().any(|f| f.name == "anon_rss"));
    if config.pidns_inum != 0 && oom.is_ok() {
        // The victim's pid in hangwatch's namespace, from its task: from mark_victim where it
        // passes it, else from the SIGKILL the OOM killer sends it (signal_generate).
        let (name, prog, tp) = if has_task_arg {
            ("tp_btf/mark_victim (pid namespace)", "oom_victim_pidns", "mark_victim")
        } else {
            (
                "tp_btf/signal_generate (pid namespace, OOM victims)",
                "oom_victim_pidns_kill",
                "signal_generate",
            )
        };
        record(
            status,
            name,
            "OOM victims are named by their host pid, not their pid in hangwatch's namespace",
            attach_btf(ebpf, btf, prog, tp),
        );
    }
    // The victim's memory cgroup, read from its task_struct when it is chosen.
    if oom.is_ok() {
        let memcg = if !has_task_arg {
            Err("this kernel's mark_victim passes a pid, not the task".into())
        } else if config.off_cgroup_kn == 0 {
            Err("the kernel BTF does not describe the task's memory cgroup".into())
        } else {
            attach_btf(ebpf, btf, "oom_victim_memcg", "mark_victim")
        };
        record(
            status,
            "tp_btf/mark_victim (memory cgroup)",
            "an OOM victim's cgroup comes from the kernel log, which the kernel rate-limits, or from /proc after the kill (often `/` or unknown in a storm of kills)",
            memcg,
        );
    }
    // Listed after the probes that depend on it (the order of `probes` in the report).
    record(
        status,
        "tracepoint/oom:mark_victim",
        "OOM kills are only seen in the kernel log, not live",
        oom,
    );
    format
}

/// Loads and attaches the memory probes: the syscall tracepoints, and the eviction of a
/// process's counters when it exits.
fn attach_memory_probes(ebpf: &mut Ebpf, btf: Result<&aya::Btf, &String>) -> Result<(), String> {
    ensure_tracefs()?;
    let btf = btf.map_err(Clone::clone)?;
    attach_btf(ebpf, Ok(btf), "mem_process_exit", "sched_process_exit")
        .map_err(|e| format!("sched_process_exit: {e}"))?;
    for (prog, tp) in MEMORY_PROBES {
        attach_tracepoint(ebpf, prog, "syscalls", tp).map_err(|e| format!("syscalls:{tp}: {e}"))?;
    }
    Ok(())
}

pub struct Probes {
    ebpf: Ebpf,
    ring: Option<RingBuf<MapData>>,
    pub status: Vec<ProbeStatus>,
    config: Config,
    clock_offsets: Vec<i64>,
    oom_format: Option<TracepointFormat>,
    /// The memory probes are attached.
    exact_memory: bool,
}

/// Best effort: since 5.11 BPF memory is charged to the cgroup and the limit does not apply.
fn raise_memlock() {
    let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) } != 0 {
        debug!(
            "setrlimit(RLIMIT_MEMLOCK) failed ({}); fine on kernels that charge BPF memory to the cgroup",
            std::io::Error::last_os_error()
        );
    }
}

/// A load error in one line: the verifier's log is long; its last meaningful line says why.
pub fn short_error(e: &str) -> String {
    let Some((head, log)) = e.split_once("Verifier output:") else { return e.to_string() };
    let why = log
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("processed ")
                && !l.starts_with("stack depth")
        })
        .unwrap_or("");
    format!("{} verifier: {why}", head.trim_end_matches(['.', ' ']))
}

impl Probes {
    pub fn load(opts: &LoadOptions) -> Result<Self, Error> {
        raise_memlock();
        let clock_offsets = crate::sources::clock::task_clock_offsets().map_err(|e| {
            Error::Unsupported(format!(
                "cannot read se.exec_start from /proc/thread-self/sched ({e}); the kernel needs CONFIG_SCHED_DEBUG"
            ))
        })?;
        let mut config = Config {
            wait_threshold_ns: opts.wait_threshold_ns,
            filter_tgid: opts.filter_tgid,
            ..Default::default()
        };
        // The offsets go into the object's read-only data before loading: the hot path then
        // uses them as constants.
        let mut globals = KernelGlobals::default();
        let offsets = task_offsets(&mut config, &mut globals);
        if offsets.is_ok() {
            config.ready = 1;
        }
        let mut ebpf = load_object(&config, &globals)?;
        let kernel_btf = offsets.as_ref().map_err(|e| e.clone()).and_then(|_| aya_kernel_btf());
        let btf = kernel_btf.as_ref();
        let mut status = Vec::new();

        if !attach_wait_ends(&mut ebpf, btf, &globals, &mut status) {
            config.ready = 0;
        }
        let oom_format = attach_oom(&mut ebpf, btf, &config, &mut status);
        let exact_memory = opts.exact_memory
            && record(
                &mut status,
                "tracepoint/syscalls:sys_{enter,exit}_brk, sys_exit_{mmap,munmap,mremap,madvise}",
                "memory counters come from /proc samples, not from the kernel",
                attach_memory_probes(&mut ebpf, btf),
            );

        drop(kernel_btf);
        // Parsing the kernel's BTF (twice: ours and aya's) peaks at tens of MiB that glibc
        // would otherwise keep: give it back, as we ask of others.
        // (glibc only: musl's allocator returns freed pages by itself.)
        // SAFETY: malloc_trim has no preconditions.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0)
        };
        let mut probes =
            Probes { ring: None, ebpf, status, config, clock_offsets, oom_format, exact_memory };
        probes.write_config()?;
        if probes.config.pidns_inum != 0 {
            probes.find_pidns_level();
        }
        probes.write_clock_offsets()?;
        let ring = probes
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| Error::BpfLoad("map EVENTS missing".into()))?;
        probes.ring =
            Some(RingBuf::try_from(ring).map_err(|e| Error::BpfLoad(format!("EVENTS: {e}")))?);
        Ok(probes)
    }

    /// Finds the depth of hangwatch's pid namespace: the `pidns_level` probe, attached for one
    /// getppid(2) call of ours, writes it into CONFIG; read it back. Without it, the kernel's
    /// pids cannot be translated (one warning; ended waits are then not reported).
    fn find_pidns_level(&mut self) {
        let found = (|| -> Result<(), String> {
            ensure_tracefs()?;
            let link =
                attach_tracepoint(&mut self.ebpf, "pidns_level", "syscalls", "sys_enter_getppid")?;
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
            let prog: &mut TracePoint = program(&mut self.ebpf, "pidns_level")?;
            let _ = prog.detach(link);
            let _ = prog.unload();
            let map = self.ebpf.map("CONFIG").ok_or("map CONFIG missing")?;
            let arr: Array<_, Config> = Array::try_from(map).map_err(|e| e.to_string())?;
            let cfg = arr.get(&0, 0).map_err(|e| format!("CONFIG: {e}"))?;
            if cfg.pidns_level_found == 0 {
                return Err("the probe did not see hangwatch's own getppid call".into());
            }
            self.config.pidns_level = cfg.pidns_level;
            self.config.pidns_level_found = 1;
            debug!("hangwatch's pid namespace is at level {}", cfg.pidns_level);
            Ok(())
        })();
        if let Err(e) = found {
            warn!(
                "cannot find the depth of hangwatch's pid namespace ({e}): ended waits and OOM \
                 victims in it are not translated"
            );
        }
    }

    fn write_config(&mut self) -> Result<(), Error> {
        let map = self
            .ebpf
            .map_mut("CONFIG")
            .ok_or_else(|| Error::BpfLoad("map CONFIG missing".into()))?;
        let mut arr: Array<_, Config> =
            Array::try_from(map).map_err(|e| Error::BpfLoad(format!("CONFIG: {e}")))?;
        arr.set(0, self.config, 0).map_err(|e| Error::BpfLoad(format!("CONFIG: {e}")))
    }

    fn write_clock_offsets(&mut self) -> Result<(), Error> {
        let map = self
            .ebpf
            .map_mut("CLOCK_OFFSETS")
            .ok_or_else(|| Error::BpfLoad("map CLOCK_OFFSETS missing".into()))?;
        let mut arr: Array<_, i64> =
            Array::try_from(map).map_err(|e| Error::BpfLoad(format!("CLOCK_OFFSETS: {e}")))?;
        for (cpu, off) in self.clock_offsets.iter().enumerate() {
            if cpu as u32 >= hangwatch_common::MAX_CPUS {
                break;
            }
            arr.set(cpu as u32, off, 0)
                .map_err(|e| Error::BpfLoad(format!("CLOCK_OFFSETS[{cpu}]: {e}")))?;
        }
        Ok(())
    }

    /// Per-CPU scheduler clock offsets in use (CLOCK_MONOTONIC - task clock), index = CPU.
    pub fn clock_offsets(&self) -> &[i64] {
        &self.clock_offsets
    }

    /// Re-measures the clock offsets (they drift apart with steal time on VMs).
    pub fn recalibrate(&mut self) -> Result<(), Error> {
        if let Ok(offs) = crate::sources::clock::task_clock_offsets() {
            self.clock_offsets = offs;
            self.write_clock_offsets()?;
        }
        Ok(())
    }

    /// Hands the ring buffer to a reader that polls it (live mode).
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    /// The `oom:mark_victim` record layout of this kernel, if the probe attached.
    pub fn oom_format(&self) -> Option<TracepointFormat> {
        self.oom_format.clone()
    }

    /// Reads every record currently in the ring buffer.
    pub fn drain(&mut self, out: &mut Vec<KernelEvent>) {
        let fmt = self.oom_format.clone();
        let Some(ring) = self.ring.as_mut() else { return };
        while let Some(item) = ring.next() {
            if let Some(ev) = decode_record(&item, fmt.as_ref()) {
                out.push(ev);
            }
        }
        for ev in out.iter_mut() {
            if let KernelEvent::OomVictim(v) = ev {
                self.victim_memcg(v);
                self.translate_victim(v);
            }
        }
    }

    /// Gives an OOM victim the memory cgroup id the `oom_victim_memcg` probe recorded when it
    /// was chosen, and frees that entry.
    pub fn victim_memcg(&mut self, v: &mut OomVictimEvent) {
        let Some(map) = self.ebpf.map_mut("OOM_MEMCG") else { return };
        let Ok(mut map) = aya::maps::HashMap::<_, u32, u64>::try_from(map) else { return };
        let key = v.host_pid as u32;
        if let Ok(id) = map.get(&key, 0)
            && id != 0
        {
            v.memcg_id = Some(id);
            let _ = map.remove(&key);
        }
    }

    /// Gives an OOM victim its pid in hangwatch's pid namespace, when hangwatch runs in a
    /// child one: the `oom_victim_pidns` probe recorded it when the victim was chosen.
    pub fn translate_victim(&self, v: &mut OomVictimEvent) {
        if self.config.pidns_inum == 0 {
            return;
        }
        let Some(map) = self.ebpf.map("PIDNS_VICTIMS") else { return };
        let Ok(map) = aya::maps::HashMap::<_, u32, u64>::try_from(map) else { return };
        if let Ok(ids) = map.get(&(v.host_pid as u32), 0)
            && ids as u32 != 0
        {
            v.pid = ids as u32 as i32;
        }
    }

    /// The kernel's per-process memory syscall counters (with `--exact-memory`), by pid;
    /// `None` when the memory probes are not attached.
    pub fn memory_counters(&self) -> Option<HashMap<i32, MemCounters>> {
        if !self.exact_memory {
            return None;
        }
        let map = self.ebpf.map("MEM_COUNTERS")?;
        let map = aya::maps::HashMap::<_, u32, MemCounters>::try_from(map).ok()?;
        Some(map.iter().filter_map(Result::ok).map(|(pid, c)| (pid as i32, c)).collect())
    }

    /// Whether the kernel's pids are translated into hangwatch's own pid namespace (it runs
    /// in a child one).
    pub fn translates_pids(&self) -> bool {
        self.config.pidns_inum != 0
    }

    pub fn stats(&self) -> KernelStats {
        let Some(map) = self.ebpf.map("STATS") else { return KernelStats::default() };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return KernelStats::default();
        };
        let get = |i: u32| arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0);
        KernelStats {
            events: get(stat::EVENTS),
            lost_events: get(stat::LOST),
            read_errors: get(stat::READ_ERRORS),
            long_waits: get(stat::LONG_WAITS),
            map_full: get(stat::MAP_FULL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_errors_are_one_line() {
        let e = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier output: 0: R1=ctx()\n74: (85) call x#160\nprogram of this type cannot use helper x#160\nverification time 572 usec\nstack depth 16+64+0\n";
        assert_eq!(
            short_error(e),
            "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22) verifier: program of this type cannot use helper x#160"
        );
        assert_eq!(short_error("attach: EPERM"), "attach: EPERM");
    }
}
