//! Loading and attaching the eBPF probes, and reading what they report.
//!
//! Every probe that cannot attach is recorded with the reason and shown to the user; the
//! others keep running. Nothing here is fatal except failing to load the object at all.

pub mod btf;

use std::{collections::HashMap, fs, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
};
pub use hangwatch_common::MemCounters;
use hangwatch_common::{
    COMM_LEN, Config, EventHeader, OOM_RAW_LEN, OomVictim, WaitEnd, kind, stat,
};
use log::{debug, warn};

use crate::{error::Error, procfs};

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

/// A wait that ended, as the kernel reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitEndEvent {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub syscall_nr: i64,
    pub waker_pid: i32,
    pub waker_tid: i32,
    pub waker_comm: String,
}

/// An OOM victim, decoded from the raw `oom:mark_victim` record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OomVictimEvent {
    pub ts_ns: u64,
    /// The victim's pid as hangwatch sees it (in its pid namespace, when it runs in one and
    /// could translate; else the same as `host_pid`).
    pub pid: i32,
    /// The victim's pid in the initial pid namespace (the kernel log's and the record's).
    pub host_pid: i32,
    pub comm: Option<String>,
    /// The layout of older kernels carries only the pid: these are then `None`.
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i64>,
    /// The kernfs id of the victim's memory cgroup when it was chosen (the `oom_victim_memcg`
    /// probe; `None` when it is not attached or did not record this one). See
    /// [`crate::oom::CgroupIds`].
    pub memcg_id: Option<u64>,
    /// What the kernel log and the cgroup files said about the kill when it was read (the
    /// constraint, the victim's memory cgroup, the limit that was hit); added by live mode's
    /// collector.
    pub context: Option<Box<crate::oom::OomKill>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KernelEvent {
    WaitEnd(WaitEndEvent),
    OomVictim(OomVictimEvent),
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

/// Loads and attaches the memory probes: the syscall tracepoints, and the eviction of a
/// process's counters when it exits.
fn attach_memory_probes(ebpf: &mut Ebpf, btf: Result<&aya::Btf, &String>) -> Result<(), String> {
    ensure_tracefs()?;
    let btf = btf.map_err(|e| e.clone())?;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut("mem_process_exit")
        .ok_or("program mem_process_exit missing from the object")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    prog.load("sched_process_exit", btf)
        .map_err(|e| format!("sched_process_exit: load: {}", short_error(&e.to_string())))?;
    prog.attach().map_err(|e| format!("sched_process_exit: attach: {e}"))?;
    for (name, tp) in MEMORY_PROBES {
        let prog: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(format!("program {name} missing from the object"))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| e.to_string())?;
        prog.load().map_err(|e| format!("{tp}: load: {}", short_error(&e.to_string())))?;
        prog.attach("syscalls", tp).map_err(|e| format!("syscalls:{tp}: attach: {e}"))?;
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

const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes sure tracefs is mounted (classic tracepoints need it to look up their ids).
pub fn ensure_tracefs() -> Result<(), String> {
    if Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (src, target, fstype) = (c("nodev"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc =
        unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        debug!("mounted tracefs at {TRACEFS}");
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            " (mounting needs CAP_SYS_ADMIN; or mount it beforehand: mount -t tracefs nodev /sys/kernel/tracing)"
        } else {
            ""
        };
        Err(format!("tracefs is not mounted and cannot be mounted at {TRACEFS}: {e}{hint}"))
    }
}

fn tracefs_dir() -> &'static str {
    if Path::new(TRACEFS).join("events").is_dir() { TRACEFS } else { "/sys/kernel/debug/tracing" }
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

/// The offsets the probes need, from the running kernel's BTF (or `--btf PATH`).
fn task_offsets(config: &mut Config, globals: &mut KernelGlobals) -> Result<(), String> {
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

impl Probes {
    #[allow(
        clippy::too_many_lines,
        reason = "the load and attach steps in order; issue 10 folds the attach chains into one"
    )]
    pub fn load(opts: &LoadOptions) -> Result<Self, Error> {
        raise_memlock();
        let clock_offsets = procfs::task_clock_offsets().map_err(|e| {
            Error::Unsupported(format!(
                "cannot read se.exec_start from /proc/thread-self/sched ({e}); the kernel needs CONFIG_SCHED_DEBUG"
            ))
        })?;
        let mut status = Vec::new();
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
        let mut ebpf = loader
            .load(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hangwatch")))
            .map_err(|e| Error::BpfLoad(e.to_string()))?;

        // Wait ends: tp_btf/sched_waking, with direct field loads, or with probe reads where
        // the verifier does not accept those.
        let kernel_btf = offsets.as_ref().map_err(|e| e.clone()).and_then(|_| aya_kernel_btf());
        let mut attach = |name: &str| -> Result<(), String> {
            let btf = kernel_btf.as_ref().map_err(|e| e.clone())?;
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(format!("program {name} missing from the object"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            prog.load("sched_waking", btf)
                .map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
            prog.attach().map_err(|e| format!("attach: {e}"))?;
            Ok(())
        };
        let mut name = if globals.regs_from_stack != 0 {
            "tp_btf/sched_waking (registers from the task's stack)"
        } else {
            "tp_btf/sched_waking"
        };
        let waking = attach("sched_waking").or_else(|first| {
            debug!("sched_waking with direct loads did not load ({first}); trying probe reads");
            name = if globals.regs_from_stack != 0 {
                "tp_btf/sched_waking (probe-read fallback, registers from the task's stack)"
            } else {
                "tp_btf/sched_waking (probe-read fallback)"
            };
            attach("sched_waking_compat").map_err(|e| format!("{first}; fallback: {e}"))
        });
        if let Err(e) = &waking {
            config.ready = 0;
            warn!("probe tp_btf/sched_waking not attached: {e}");
        }
        status.push(ProbeStatus {
            name,
            attached: waking.is_ok(),
            reason: waking.err(),
            impact: "waits that begin and end between two /proc scans are not seen; ongoing waits still are",
        });

        // OOM kills: oom:mark_victim (classic tracepoint, needs tracefs).
        let mut oom_format = None;
        let oom = (|| -> Result<(), String> {
            ensure_tracefs()?;
            let fmt_path = format!("{}/events/oom/mark_victim/format", tracefs_dir());
            let text = fs::read_to_string(&fmt_path)
                .map_err(|e| format!("tracepoint oom:mark_victim missing ({fmt_path}: {e})"))?;
            oom_format = Some(TracepointFormat::parse(&text));
            let prog: &mut TracePoint = ebpf
                .program_mut("oom_mark_victim")
                .ok_or("program oom_mark_victim missing from the object")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            prog.load().map_err(|e| format!("load: {e}"))?;
            prog.attach("oom", "mark_victim").map_err(|e| format!("attach: {e}"))?;
            Ok(())
        })();
        if let Err(e) = &oom {
            warn!("probe tracepoint/oom:mark_victim not attached: {e}");
        }
        // In a child pid namespace: the victim's pid there, from its task_struct. The kernels
        // whose record has the RSS fields pass the task to the tracepoint.
        let has_task_arg =
            oom_format.as_ref().is_some_and(|f| f.fields.iter().any(|f| f.name == "anon_rss"));
        if config.pidns_inum != 0 && oom.is_ok() {
            // The victim's task: from mark_victim where it passes it, else from the SIGKILL
            // the OOM killer sends it (signal_generate).
            let (prog_name, tp) = if has_task_arg {
                ("oom_victim_pidns", "mark_victim")
            } else {
                ("oom_victim_pidns_kill", "signal_generate")
            };
            let xlate = (|| -> Result<(), String> {
                let btf = kernel_btf.as_ref().map_err(|e| e.clone())?;
                let prog: &mut BtfTracePoint = ebpf
                    .program_mut(prog_name)
                    .ok_or(format!("program {prog_name} missing from the object"))?
                    .try_into()
                    .map_err(|e: aya::programs::ProgramError| e.to_string())?;
                prog.load(tp, btf).map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
                prog.attach().map_err(|e| format!("attach: {e}"))?;
                Ok(())
            })();
            if let Err(e) = &xlate {
                warn!("probe tp_btf/{tp} not attached: {e}");
            }
            status.push(ProbeStatus {
                name: if has_task_arg {
                    "tp_btf/mark_victim (pid namespace)"
                } else {
                    "tp_btf/signal_generate (pid namespace, OOM victims)"
                },
                attached: xlate.is_ok(),
                reason: xlate.err(),
                impact: "OOM victims are named by their host pid, not their pid in hangwatch's namespace",
            });
        }
        // The victim's memory cgroup, read from its task_struct when it is chosen.
        if oom.is_ok() {
            let memcg = (|| -> Result<(), String> {
                if !has_task_arg {
                    return Err("this kernel's mark_victim passes a pid, not the task".into());
                }
                if config.off_cgroup_kn == 0 {
                    return Err("the kernel BTF does not describe the task's memory cgroup".into());
                }
                let btf = kernel_btf.as_ref().map_err(|e| e.clone())?;
                let prog: &mut BtfTracePoint = ebpf
                    .program_mut("oom_victim_memcg")
                    .ok_or("program oom_victim_memcg missing from the object")?
                    .try_into()
                    .map_err(|e: aya::programs::ProgramError| e.to_string())?;
                prog.load("mark_victim", btf)
                    .map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
                prog.attach().map_err(|e| format!("attach: {e}"))?;
                Ok(())
            })();
            if let Err(e) = &memcg {
                warn!("probe tp_btf/mark_victim (memory cgroup) not attached: {e}");
            }
            status.push(ProbeStatus {
                name: "tp_btf/mark_victim (memory cgroup)",
                attached: memcg.is_ok(),
                reason: memcg.err(),
                impact: "an OOM victim's cgroup comes from the kernel log, which the kernel rate-limits, or from /proc after the kill (often `/` or unknown in a storm of kills)",
            });
        }
        status.push(ProbeStatus {
            name: "tracepoint/oom:mark_victim",
            attached: oom.is_ok(),
            reason: oom.err(),
            impact: "OOM kills are only seen in the kernel log, not live",
        });

        let mut exact_memory = false;
        if opts.exact_memory {
            let mem = attach_memory_probes(&mut ebpf, kernel_btf.as_ref());
            if let Err(e) = &mem {
                warn!("memory probes (--exact-memory) not attached: {e}");
            }
            exact_memory = mem.is_ok();
            status.push(ProbeStatus {
                name: "tracepoint/syscalls:sys_{enter,exit}_brk, sys_exit_{mmap,munmap,mremap,madvise}",
                attached: mem.is_ok(),
                reason: mem.err(),
                impact: "memory counters come from /proc samples, not from the kernel",
            });
        }

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
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut("pidns_level")
                .ok_or("program pidns_level missing from the object")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            prog.load().map_err(|e| format!("load: {}", short_error(&e.to_string())))?;
            let link =
                prog.attach("syscalls", "sys_enter_getppid").map_err(|e| format!("attach: {e}"))?;
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
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
        if let Ok(offs) = procfs::task_clock_offsets() {
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

/// The waker's name: the kernel record carries its ids only (to stay small); pid 0 is the
/// idle task, woken by an interrupt (a timer, usually).
fn waker_comm(pid: i32, tid: i32) -> String {
    if pid == 0 {
        return "swapper (interrupt)".to_string();
    }
    fs::read(format!("/proc/{pid}/task/{tid}/comm"))
        .map(|b| procfs::lossy(b.strip_suffix(b"\n").unwrap_or(&b)))
        .unwrap_or_else(|_| "?".to_string())
}

fn comm_str(c: &[u8; COMM_LEN]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    procfs::lossy(&c[..end])
}

/// The `T` at the start of a ring buffer record, or `None` if the record is too short.
fn read_pod<T: aya::Pod>(b: &[u8]) -> Option<T> {
    if b.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; `aya::Pod` promises a plain type valid for any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const T) })
}

/// Decodes one ring buffer record.
pub fn decode_record(b: &[u8], oom: Option<&TracepointFormat>) -> Option<KernelEvent> {
    let h: EventHeader = read_pod(b)?;
    match h.kind {
        kind::WAIT_END => {
            let w: WaitEnd = read_pod(b)?;
            Some(KernelEvent::WaitEnd(WaitEndEvent {
                pid: w.header.pid as i32,
                tid: w.header.tid as i32,
                comm: comm_str(&w.comm),
                start_ns: w.start_ns,
                end_ns: w.header.ts_ns,
                syscall_nr: w.syscall_nr,
                waker_pid: w.waker_pid as i32,
                waker_tid: w.waker_tid as i32,
                waker_comm: waker_comm(w.waker_pid as i32, w.waker_tid as i32),
            }))
        }
        kind::OOM_VICTIM => {
            let o: OomVictim = read_pod(b)?;
            let default_fmt = TracepointFormat::default();
            let f = oom.unwrap_or(&default_fmt);
            Some(KernelEvent::OomVictim(decode_oom(&o.raw, f, o.header.ts_ns)))
        }
        _ => None,
    }
}

/// Field layout of a classic tracepoint, from tracefs `format`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracepointFormat {
    pub fields: Vec<TpField>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TpField {
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    pub data_loc: bool,
}

impl TracepointFormat {
    pub fn parse(text: &str) -> Self {
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else { continue };
            let mut decl = "";
            let (mut offset, mut size, mut signed) = (None, None, false);
            for (i, part) in rest.split(';').enumerate() {
                let part = part.trim();
                if i == 0 {
                    decl = part;
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("signed:") {
                    signed = v == "1";
                }
            }
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .unwrap_or("")
                .split('[')
                .next()
                .unwrap_or("")
                .to_string();
            if let (Some(offset), Some(size)) = (offset, size) {
                fields.push(TpField {
                    name,
                    offset,
                    size,
                    signed,
                    data_loc: decl.starts_with("__data_loc"),
                });
            }
        }
        TracepointFormat { fields }
    }

    pub fn field(&self, name: &str) -> Option<&TpField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Reads an integer field (sign-extended when signed).
    pub fn int(&self, raw: &[u8], name: &str) -> Option<i64> {
        let f = self.field(name)?;
        let b = raw.get(f.offset..f.offset.checked_add(f.size)?)?;
        Some(match (f.size, f.signed) {
            (1, true) => b[0] as i8 as i64,
            (1, false) => b[0] as i64,
            (2, true) => i16::from_le_bytes([b[0], b[1]]) as i64,
            (2, false) => u16::from_le_bytes([b[0], b[1]]) as i64,
            (4, true) => i32::from_le_bytes(b.try_into().ok()?) as i64,
            (4, false) => u32::from_le_bytes(b.try_into().ok()?) as i64,
            (8, _) => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// Reads a `__data_loc char[]` string field.
    pub fn string(&self, raw: &[u8], name: &str) -> Option<String> {
        let f = self.field(name)?;
        if !f.data_loc {
            let b = raw.get(f.offset..f.offset.checked_add(f.size)?)?;
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            return Some(procfs::lossy(&b[..end]));
        }
        let loc = u32::from_le_bytes(raw.get(f.offset..f.offset.checked_add(4)?)?.try_into().ok()?);
        let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        let b = raw.get(off..(off + len).min(raw.len()))?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(procfs::lossy(&b[..end]))
    }
}

pub fn decode_oom(raw: &[u8; OOM_RAW_LEN], f: &TracepointFormat, ts_ns: u64) -> OomVictimEvent {
    // Without a format, assume the oldest layout: 8 bytes of common fields, then `int pid`.
    let pid = f
        .int(raw, "pid")
        .unwrap_or_else(|| i32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as i64);
    let u = |n: &str| f.int(raw, n).map(|v| v as u64);
    OomVictimEvent {
        ts_ns,
        pid: pid as i32,
        host_pid: pid as i32,
        comm: f.string(raw, "comm"),
        total_vm_kb: u("total_vm"),
        anon_rss_kb: u("anon_rss"),
        file_rss_kb: u("file_rss"),
        shmem_rss_kb: u("shmem_rss"),
        uid: f.int(raw, "uid").map(|v| v as u32),
        oom_score_adj: f.int(raw, "oom_score_adj"),
        memcg_id: None,
        context: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_FMT: &str = "name: mark_victim\nID: 609\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;\n\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;\n\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;\n\nprint fmt: \"pid=%d\"\n";
    const OLD_FMT: &str = "name: mark_victim\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n";

    #[test]
    fn parses_new_layout() {
        let f = TracepointFormat::parse(NEW_FMT);
        assert_eq!(f.field("comm").map(|c| c.data_loc), Some(true));
        let mut raw = [0u8; OOM_RAW_LEN];
        raw[8..12].copy_from_slice(&4242i32.to_le_bytes());
        raw[12..16].copy_from_slice(&((6u32 << 16) | 72).to_le_bytes());
        raw[16..24].copy_from_slice(&1000u64.to_le_bytes());
        raw[24..32].copy_from_slice(&204800u64.to_le_bytes());
        raw[32..40].copy_from_slice(&12u64.to_le_bytes());
        raw[48..52].copy_from_slice(&0u32.to_le_bytes());
        raw[64..66].copy_from_slice(&(-500i16).to_le_bytes());
        raw[72..78].copy_from_slice(b"hog\0\0\0");
        let ev = decode_oom(&raw, &f, 7);
        assert_eq!(ev.pid, 4242);
        assert_eq!(ev.comm.as_deref(), Some("hog"));
        assert_eq!(ev.anon_rss_kb, Some(204800));
        assert_eq!(ev.file_rss_kb, Some(12));
        assert_eq!(ev.oom_score_adj, Some(-500));
    }

    #[test]
    fn parses_old_pid_only_layout() {
        let f = TracepointFormat::parse(OLD_FMT);
        let mut raw = [0u8; OOM_RAW_LEN];
        raw[8..12].copy_from_slice(&99i32.to_le_bytes());
        let ev = decode_oom(&raw, &f, 0);
        assert_eq!(ev.pid, 99);
        assert_eq!(ev.comm, None);
        assert_eq!(ev.anon_rss_kb, None);
    }

    #[test]
    fn verifier_errors_are_one_line() {
        let e = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier output: 0: R1=ctx()\n74: (85) call x#160\nprogram of this type cannot use helper x#160\nverification time 572 usec\nstack depth 16+64+0\n";
        assert_eq!(
            short_error(e),
            "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22) verifier: program of this type cannot use helper x#160"
        );
        assert_eq!(short_error("attach: EPERM"), "attach: EPERM");
    }

    #[test]
    fn short_or_unknown_records_are_ignored() {
        assert_eq!(decode_record(&[1, 2, 3], None), None);
        let mut b = vec![0u8; 64];
        b[0] = 77;
        assert_eq!(decode_record(&b, None), None);
    }
}

// ---------------------------------------------------------------- kernel BTF and layout

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
fn aya_kernel_btf() -> Result<aya::Btf, String> {
    match BTF_PATH.get() {
        Some(path) => aya::Btf::parse_file(path, aya::Endianness::default())
            .map_err(|e| format!("--btf {}: {e}", path.display())),
        None => aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}")),
    }
}

/// Constants written into the eBPF object's read-only data before loading.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct KernelGlobals {
    /// 1 on kernels without the `bpf_task_pt_regs` helper (before 5.15).
    regs_from_stack: u32,
    /// Offset of `task_struct.stack`.
    off_stack: u32,
    /// `THREAD_SIZE - sizeof(struct pt_regs)`: where the saved user registers are in the
    /// task's kernel stack.
    regs_in_stack: u32,
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
