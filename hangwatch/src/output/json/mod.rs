//! The two JSON schemas hangwatch prints (documented in docs/json.md): [`snapshot`] (the
//! `snapshot --json` document) and [`stream`] (the JSON Lines of `hangwatch --json`), and the
//! objects both carry, here: findings, stacks, a process's memory.
//!
//! These structs are the contract: field names here must not be renamed. They also
//! deserialize, with unknown fields denied, so tests catch any drift between what is printed
//! and what is documented. Rendering only reads the model; nothing here does I/O.

pub mod snapshot;
pub mod stream;

use serde::{Deserialize, Serialize};

use crate::{analysis::Finding, memory::MemStatus};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryJson {
    pub rss_bytes: u64,
    pub anon_rss_bytes: u64,
    pub file_rss_bytes: u64,
    pub shmem_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub rss_change_bytes: i64,
    pub heap_bytes: u64,
    pub heap_peak_bytes: u64,
    pub brk_grows: u64,
    pub brk_shrinks: u64,
    pub brk_grow_bytes: u64,
    pub brk_shrink_bytes: u64,
    pub mmap_bytes: Option<u64>,
    pub munmap_bytes: Option<u64>,
    pub returned_bytes: u64,
    pub not_returned: bool,
    pub growing: bool,
    pub growth_bytes_per_min: Option<f64>,
    pub samples: usize,
    /// "kernel" (`--exact-memory`: the call counts are the kernel's) or "samples".
    pub counted_by: String,
    /// The kernel's call counts (`--exact-memory` only).
    pub calls: Option<MemCallsJson>,
    /// Where the anonymous memory is (read only for processes holding ≥ 256 MiB of it).
    pub layout: Option<LayoutJson>,
    /// The `not_returned` verdict's evidence (null when not flagged).
    pub retained: Option<RetainedJson>,
}

/// One kind of mapping of a process (/proc/PID/smaps).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionJson {
    pub count: u32,
    pub size_bytes: u64,
    pub rss_bytes: u64,
    pub anon_bytes: u64,
    pub referenced_bytes: u64,
}

/// Where a process's anonymous memory is.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayoutJson {
    pub brk_heap: RegionJson,
    pub thread_arenas: RegionJson,
    pub anon_mmaps: RegionJson,
    pub mappings: u32,
    pub truncated: bool,
    /// An allocator that returns freed memory by itself ("jemalloc", "tcmalloc", "mimalloc",
    /// "the JVM"): its `anon_mmaps` are not judged by `not_returned`.
    pub allocator: Option<String>,
}

/// Why memory is judged not returned: `evidence` is "asleep" (`untouched_ns` set),
/// "nearly_idle" (`cpu_percent` and `over_ns` set) or "unreferenced" (`unreferenced_bytes`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetainedJson {
    pub bytes: u64,
    pub evidence: String,
    pub untouched_ns: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub over_ns: Option<u64>,
    pub unreferenced_bytes: Option<u64>,
    pub summary: String,
}

fn region_json(r: &crate::memory_layout::Region) -> RegionJson {
    RegionJson {
        count: r.count,
        size_bytes: r.size,
        rss_bytes: r.rss,
        anon_bytes: r.anon,
        referenced_bytes: r.referenced,
    }
}

pub fn layout_json(l: &crate::memory_layout::Layout) -> LayoutJson {
    LayoutJson {
        brk_heap: region_json(&l.heap),
        thread_arenas: region_json(&l.arenas),
        anon_mmaps: region_json(&l.anon_mmaps),
        mappings: l.mappings,
        truncated: l.truncated,
        allocator: l.allocator.map(str::to_string),
    }
}

pub fn retained_json(r: &crate::memory_layout::Retained, peak_rss: u64) -> RetainedJson {
    use crate::memory_layout::Quiet;
    let mut j = RetainedJson {
        bytes: r.bytes,
        evidence: String::new(),
        untouched_ns: None,
        cpu_percent: None,
        over_ns: None,
        unreferenced_bytes: None,
        summary: r.describe(peak_rss),
    };
    match r.quiet {
        Quiet::Asleep { for_ns } => {
            j.evidence = "asleep".into();
            j.untouched_ns = Some(for_ns);
        }
        Quiet::NearlyIdle { cpu_percent, over_ns } => {
            j.evidence = "nearly_idle".into();
            j.cpu_percent = Some((cpu_percent * 100.0).round() / 100.0);
            j.over_ns = Some(over_ns);
        }
        Quiet::Unreferenced { bytes } => {
            j.evidence = "unreferenced".into();
            j.unreferenced_bytes = Some(bytes);
        }
    }
    j
}

/// Memory system calls of a process since hangwatch attached, counted in the kernel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemCallsJson {
    pub brk_grows: u64,
    pub brk_shrinks: u64,
    pub mmap: u64,
    pub mmap_bytes: u64,
    pub munmap: u64,
    pub munmap_bytes: u64,
    pub mremap: u64,
    pub mremap_grow_bytes: u64,
    pub mremap_shrink_bytes: u64,
    pub madvise_free: u64,
    pub madvise_free_bytes: u64,
}

pub fn memory_json(m: &MemStatus) -> MemoryJson {
    MemoryJson {
        rss_bytes: m.rss,
        anon_rss_bytes: m.rss_anon,
        file_rss_bytes: m.rss_file,
        shmem_rss_bytes: m.rss_shmem,
        peak_rss_bytes: m.peak_rss,
        rss_change_bytes: m.rss_change_bytes,
        heap_bytes: m.heap,
        heap_peak_bytes: m.heap_peak,
        brk_grows: m.brk_grows,
        brk_shrinks: m.brk_shrinks,
        brk_grow_bytes: m.brk_grow_bytes,
        brk_shrink_bytes: m.brk_shrink_bytes,
        mmap_bytes: m.mmap_bytes,
        munmap_bytes: m.munmap_bytes,
        returned_bytes: m.returned_bytes,
        not_returned: m.not_returned,
        growing: m.growing,
        growth_bytes_per_min: m.growth_bytes_per_min.map(|r| r.round()),
        samples: m.samples,
        counted_by: if m.kernel.is_some() { "kernel" } else { "samples" }.to_string(),
        calls: m.kernel.map(|k| MemCallsJson {
            brk_grows: k.brk_grows,
            brk_shrinks: k.brk_shrinks,
            mmap: k.mmap_calls,
            mmap_bytes: k.mmap_bytes,
            munmap: k.munmap_calls,
            munmap_bytes: k.munmap_bytes,
            mremap: k.mremap_calls,
            mremap_grow_bytes: k.mremap_grow_bytes,
            mremap_shrink_bytes: k.mremap_shrink_bytes,
            madvise_free: k.madvise_calls,
            madvise_free_bytes: k.madvise_bytes,
        }),
        layout: m.layout.as_ref().map(layout_json),
        retained: m.retained.as_ref().map(|r| retained_json(r, m.peak_rss)),
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FindingJson {
    pub kind: String,
    pub severity: String,
    pub pids: Vec<i32>,
    pub tids: Vec<i32>,
    pub summary: String,
    pub since: Option<String>,
    pub since_ns: Option<u64>,
    pub chain: Vec<StepJson>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepJson {
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub syscall: String,
    pub waits_on: String,
    /// The innermost user-code frame the step's thread waits in, when its stack was read
    /// (docs/stacks.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
}

pub fn finding_json(f: &Finding, wall: impl Fn(u64) -> String) -> FindingJson {
    FindingJson {
        kind: f.kind.as_str().to_string(),
        severity: serde_json::to_value(f.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        pids: f.pids.clone(),
        tids: f.tids.clone(),
        summary: f.summary.clone(),
        since: f.since_mono_ns.map(&wall),
        since_ns: f.since_mono_ns,
        chain: f
            .chain
            .iter()
            .map(|s| StepJson {
                pid: s.pid,
                tid: s.tid,
                comm: s.comm.clone(),
                syscall: s.syscall.clone(),
                waits_on: s.waits_on.clone(),
                frame: s.frame.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackJson {
    pub kernel: Vec<String>,
    pub native: Vec<NativeFrameJson>,
    pub python: Vec<PyFrameJson>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NativeFrameJson {
    pub addr: u64,
    pub symbol: Option<String>,
    pub module: Option<String>,
    pub offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub build_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PyFrameJson {
    pub function: String,
    pub file: String,
    pub line: u32,
}

pub fn stack_json(s: &crate::stacks::Stack) -> StackJson {
    StackJson {
        kernel: s.kernel.clone(),
        native: s
            .native
            .iter()
            .map(|f| NativeFrameJson {
                addr: f.addr,
                symbol: f.symbol.clone(),
                module: f.module.clone(),
                offset: f.offset,
                file: f.file.clone(),
                line: f.line,
                build_id: f.build_id.clone(),
            })
            .collect(),
        python: s
            .python
            .iter()
            .map(|f| PyFrameJson {
                function: f.function.clone(),
                file: f.file.clone(),
                line: f.line,
            })
            .collect(),
        error: s.error.clone(),
    }
}
