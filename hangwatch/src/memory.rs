//! Memory that processes hold and do not give back, from sampling /proc.
//!
//! Per-call probes on `brk`/`mmap`/`munmap` are too expensive (any `syscalls:*` tracepoint
//! puts every thread of the machine on the slow syscall path, see docs/design.md), so every
//! figure here comes from periodic samples of `/proc/PID/status` and the `[heap]` line of
//! `/proc/PID/maps`. Counters such as [`MemHistory::brk_grows`] are therefore *observed
//! transitions between two samples*, not system calls: ten `brk` calls between two samples
//! count as one grow (or as nothing if they cancel out). docs/memory.md has the rules and
//! their blind spots.
//!
//! The parsers and everything derived from samples ([`MemHistory`], the verdicts) are pure and
//! unit-tested with plain values; [`sample`] does the I/O and treats a process that vanished
//! as normal: it returns `None`, never an error.

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, BufRead, BufReader},
    time::Duration,
};

use crate::memory_layout::{Activity, Layout, RetainCfg, Retained, judge};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// Samples a [`MemHistory`] keeps by default (10 minutes at one sample per second).
pub const DEFAULT_CAPACITY: usize = 600;

/// `start-end` of one /proc/PID/maps line.
fn parse_range(line: &[u8]) -> Option<(u64, u64)> {
    let end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let range = std::str::from_utf8(&line[..end]).ok()?;
    let (a, b) = range.split_once('-')?;
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

fn is_heap_line(line: &[u8]) -> bool {
    line.trim_ascii_end().ends_with(b"[heap]")
}

/// Start and end address of the `[heap]` (brk) mapping of a /proc/PID/maps text. `None` when
/// the process has no brk heap (it never called `brk` to grow, or its allocator uses `mmap`).
/// The heap's size is `end - start`.
pub fn parse_heap(maps: &str) -> Option<(u64, u64)> {
    maps.lines().map(str::as_bytes).filter(|l| is_heap_line(l)).find_map(parse_range)
}

/// What a scan of /proc/PID/maps found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapScan {
    /// The `[heap]` mapping, `(start, end)`.
    Found(u64, u64),
    /// The mappings were listed (or the scan passed `start_brk`) and there is no `[heap]`.
    Absent,
    /// Not a single mapping: the address space is gone (the process exited).
    Empty,
}

/// Reads maps lines until the `[heap]` line, and stops early: mappings are sorted by address
/// and the heap starts at `start_brk` (/proc/PID/stat field 47), so the first mapping that
/// starts above `start_brk` means there is no heap. The heap comes right after the
/// executable's mappings, so for a big process (thousands of mappings) this reads a handful
/// of lines; the kernel formats maps lazily, so the lines not read are never generated.
/// Without `start_brk` (0 or unknown) the whole file may be read.
pub fn scan_heap<R: BufRead>(mut r: R, start_brk: Option<u64>) -> io::Result<HeapScan> {
    let start_brk = start_brk.filter(|&b| b != 0);
    let mut line = Vec::with_capacity(256);
    let mut any = false;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(if any { HeapScan::Absent } else { HeapScan::Empty });
        }
        let Some((start, end)) = parse_range(&line) else { continue };
        any = true;
        if is_heap_line(&line) {
            return Ok(HeapScan::Found(start, end));
        }
        if start_brk.is_some_and(|b| start > b) {
            return Ok(HeapScan::Absent);
        }
    }
}

/// `start_brk` (field 47) of a /proc/PID/stat line. `None` when it is 0, which the kernel
/// prints when the reader may not ptrace the process, for kernel threads and for zombies.
pub fn parse_start_brk(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&c| c == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // The first word after the comm is field 3 (state).
    let v: u64 = rest.split_ascii_whitespace().nth(47 - 3)?.parse().ok()?;
    (v != 0).then_some(v)
}

/// The memory lines of /proc/PID/status (bytes): the same fields /proc scanning reads.
pub type StatusVm = crate::procfs::StatusMem;

/// Parses /proc/PID/status; `None` when it has no `VmSize` line (kernel threads, zombies).
pub fn parse_status_vm(s: &str) -> Option<StatusVm> {
    s.lines().any(|l| l.starts_with("VmSize:")).then(|| crate::procfs::parse_status_mem(s))
}

/// One sample of a process's memory, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemSample {
    /// When it was taken, CLOCK_MONOTONIC ns.
    pub t_mono_ns: u64,
    /// VmRSS = rss_anon + rss_file + rss_shmem.
    pub rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    /// VmHWM: the peak of `rss` over the process's life (kept by the kernel).
    pub hwm: u64,
    /// Size of the brk heap (`[heap]` mapping end minus `start_brk`): address space, not
    /// resident memory. 0 when there is no heap or it could not be read.
    pub heap: u64,
    pub vm_size: u64,
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Samples one process. `None` if it vanished (also between the reads of its files), is a
/// zombie or is a kernel thread; that is normal, not an error.
///
/// Reads /proc/PID/status, /proc/PID/stat (for `start_brk`) and the first lines of
/// /proc/PID/maps up to the `[heap]` line (see [`scan_heap`]). If maps may not be read
/// (no ptrace access), `heap` is 0.
pub fn sample(pid: i32, t_mono_ns: u64) -> Option<MemSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let vm = parse_status_vm(&status)?;
    let start_brk =
        std::fs::read(format!("/proc/{pid}/stat")).ok().and_then(|b| parse_start_brk(&b));
    let scan = File::open(format!("/proc/{pid}/maps"))
        .and_then(|f| scan_heap(BufReader::with_capacity(4096, f), start_brk));
    let heap = match scan {
        Ok(HeapScan::Found(start, end)) => end.saturating_sub(start.max(start_brk.unwrap_or(0))),
        Ok(HeapScan::Absent) => 0,
        // An empty maps file or ESRCH: the process exited between the reads.
        Ok(HeapScan::Empty) => return None,
        Err(e) if is_gone(&e) => return None,
        Err(e) => {
            log::debug!("pid {pid}: cannot read maps: {e}");
            0
        }
    };
    Some(MemSample {
        t_mono_ns,
        rss: vm.vm_rss,
        rss_anon: vm.rss_anon,
        rss_file: vm.rss_file,
        rss_shmem: vm.rss_shmem,
        hwm: vm.vm_hwm,
        heap,
        vm_size: vm.vm_size,
    })
}

/// Thresholds of the verdicts. See [`MemHistory::growth`] and [`MemHistory::not_returned`]
/// for the rules; the defaults are in [`Thresholds::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Samples looked at: those of the last `window` (counted back from the newest sample).
    /// Default 60 s.
    pub window: Duration,
    /// Fewest samples in the window for any verdict. Default 5.
    pub min_samples: usize,
    /// Shortest time the samples in the window must span. Default 5 s; a caller with a
    /// shorter observation (a snapshot) passes its own, see [`Thresholds::for_window`].
    pub min_span: Duration,
    /// `growing` needs an RSS slope of at least this. Default 1 MiB/min.
    pub growth_min_bytes_per_min: f64,
    /// ... and the line to rise by at least this over the samples' span: a short observation
    /// extrapolates a 100 KiB step into MiB/min. Default 1 MiB.
    pub growth_min_total_bytes: u64,
    /// `growing` needs a good fit: R² at least this ... Default 0.8.
    pub min_r2: f64,
    /// ... or at least this share of consecutive RSS deltas non-negative. Default 0.8.
    pub min_nonneg_share: f64,
    /// `not_returned` needs anonymous RSS of at least this. Default 256 MiB.
    pub retained_min_bytes: u64,
    /// `not_returned` needs |RSS slope| below this ("not growing now"). Default 1 MiB/min.
    pub steady_max_bytes_per_min: f64,
    /// A drop of anonymous RSS between two samples of at least this counts as a shrink
    /// (smaller drops are page-level noise: stacks, page tables). Default 1 MiB. Any drop of
    /// the brk heap counts.
    pub shrink_min_bytes: u64,
    /// `not_returned`: "most of the anon memory is the heap" means heap ≥ this × anon RSS.
    /// Default 0.5.
    pub heap_share: f64,
    /// `not_returned`: "still holds its peak" means anon RSS ≥ this × its observed peak.
    /// Default 0.9.
    pub peak_share: f64,
    /// `not_returned`: if set, a process using more CPU than this (percent of one core) is
    /// taken to be working with its memory and is not flagged. Default `None` (CPU ignored).
    pub busy_cpu_percent: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            window: Duration::from_secs(60),
            min_samples: 5,
            min_span: Duration::from_secs(5),
            growth_min_bytes_per_min: MIB as f64,
            growth_min_total_bytes: MIB,
            min_r2: 0.8,
            min_nonneg_share: 0.8,
            retained_min_bytes: 256 * MIB,
            steady_max_bytes_per_min: MIB as f64,
            shrink_min_bytes: MIB,
            heap_share: 0.5,
            peak_share: 0.9,
            busy_cpu_percent: None,
        }
    }
}

impl Thresholds {
    /// Defaults for an observation of length `window` (e.g. a snapshot): looks at the whole
    /// window and asks the samples to span 80% of it, or 5 s if that is less.
    pub fn for_window(window: Duration) -> Self {
        Thresholds {
            window,
            min_span: window.mul_f64(0.8).min(Duration::from_secs(5)),
            ..Thresholds::default()
        }
    }
}

/// A least-squares line through the RSS samples of a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope_bytes_per_min: f64,
    /// Coefficient of determination; `None` when RSS did not change at all (a flat line
    /// explains nothing and leaves nothing to explain).
    pub r2: Option<f64>,
    /// Share of consecutive RSS deltas that are ≥ 0.
    pub nonneg_share: f64,
    pub samples: usize,
    pub span_ns: u64,
}

/// Least-squares slope (bytes per ns) and R² of `(t, y)` points. `None` with fewer than two
/// points or when all have the same time.
pub fn least_squares(points: &[(u64, u64)]) -> Option<(f64, Option<f64>)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    // Centre on the first point: keeps the sums small and exact enough in f64.
    let (t0, y0) = points[0];
    let xs = points.iter().map(|&(t, _)| t.wrapping_sub(t0) as f64);
    let ys = points.iter().map(|&(_, y)| y as f64 - y0 as f64);
    let mx = xs.clone().sum::<f64>() / n;
    let my = ys.clone().sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.zip(ys) {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = (syy > 0.0).then(|| (sxy * sxy) / (sxx * syy));
    Some((slope, r2))
}

/// The memory samples of one process: a bounded ring of the newest samples plus counters kept
/// over the whole observation (they survive samples dropped from the ring).
#[derive(Debug, Clone, PartialEq)]
pub struct MemHistory {
    samples: VecDeque<MemSample>,
    capacity: usize,
    /// Samples pushed since the start (also those dropped from the ring).
    pub samples_seen: u64,
    /// Largest brk heap seen.
    pub heap_peak: u64,
    /// Largest RSS seen (see also `MemSample::hwm`, the kernel's life-long peak).
    pub rss_peak: u64,
    /// Largest anonymous RSS seen, and when (first time it was reached).
    pub anon_peak: u64,
    pub anon_peak_mono_ns: u64,
    /// Observed grows of the brk heap between consecutive samples, and their sum.
    pub brk_grows: u64,
    pub brk_grow_bytes: u64,
    /// Observed shrinks of the brk heap between consecutive samples, and their sum.
    pub brk_shrinks: u64,
    pub brk_shrink_bytes: u64,
    /// Sum of the observed decreases of anonymous RSS between consecutive samples: memory
    /// given back (brk shrink, munmap, madvise(MADV_DONTNEED) and reclaimed MADV_FREE
    /// pages). Memory mapped and unmapped between two samples is not seen.
    pub returned_bytes: u64,
    /// Address space mapped / unmapped other than the brk heap: the growth and shrinkage of
    /// `VmSize` minus the heap's, between consecutive samples (anonymous and file mappings;
    /// a map and unmap between two samples is not seen). `None` until two samples exist.
    pub mmap_bytes: Option<u64>,
    pub munmap_bytes: Option<u64>,
}

impl Default for MemHistory {
    fn default() -> Self {
        MemHistory::new(DEFAULT_CAPACITY)
    }
}

impl MemHistory {
    /// A history that keeps the newest `capacity` samples (at least 2).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        MemHistory {
            // Grown as samples come (a busy node has thousands of processes, most of them
            // idle and sampled rarely: reserving the whole ring up front cost 8.6 KiB each).
            samples: VecDeque::with_capacity(capacity.min(4)),
            capacity,
            samples_seen: 0,
            heap_peak: 0,
            rss_peak: 0,
            anon_peak: 0,
            anon_peak_mono_ns: 0,
            brk_grows: 0,
            brk_grow_bytes: 0,
            brk_shrinks: 0,
            brk_shrink_bytes: 0,
            returned_bytes: 0,
            mmap_bytes: None,
            munmap_bytes: None,
        }
    }

    /// Adds a sample. A sample not newer than the latest one is ignored (returns false).
    pub fn push(&mut self, s: MemSample) -> bool {
        if let Some(prev) = self.samples.back().copied() {
            if s.t_mono_ns <= prev.t_mono_ns {
                return false;
            }
            if s.heap > prev.heap {
                self.brk_grows += 1;
                self.brk_grow_bytes += s.heap - prev.heap;
            } else if s.heap < prev.heap {
                self.brk_shrinks += 1;
                self.brk_shrink_bytes += prev.heap - s.heap;
            }
            self.returned_bytes += prev.rss_anon.saturating_sub(s.rss_anon);
            // Address space that changed other than by the brk heap: mmap (grew) and munmap
            // (shrank), as observed between two samples (file mappings included).
            let dv =
                s.vm_size as i128 - prev.vm_size as i128 - (s.heap as i128 - prev.heap as i128);
            if dv > 0 {
                *self.mmap_bytes.get_or_insert(0) += dv as u64;
            } else {
                *self.munmap_bytes.get_or_insert(0) += (-dv) as u64;
            }
            self.mmap_bytes.get_or_insert(0);
            self.munmap_bytes.get_or_insert(0);
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        self.samples_seen += 1;
        self.heap_peak = self.heap_peak.max(s.heap);
        self.rss_peak = self.rss_peak.max(s.rss);
        if s.rss_anon > self.anon_peak || self.samples_seen == 1 {
            self.anon_peak = s.rss_anon;
            self.anon_peak_mono_ns = s.t_mono_ns;
        }
        true
    }

    pub fn latest(&self) -> Option<&MemSample> {
        self.samples.back()
    }

    /// The samples in the ring, oldest first.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &MemSample> {
        self.samples.iter()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples of the last `window`, counted back from the newest, oldest first.
    fn in_window(&self, window: Duration) -> impl Iterator<Item = &MemSample> {
        let from = self.samples.back().map_or(0, |l| {
            l.t_mono_ns.saturating_sub(window.as_nanos().min(u64::MAX as u128) as u64)
        });
        self.samples.iter().filter(move |s| s.t_mono_ns >= from)
    }

    /// Least-squares fit of RSS over the samples of the last `window`.
    pub fn fit(&self, window: Duration) -> Option<Fit> {
        let pts: Vec<(u64, u64)> = self.in_window(window).map(|s| (s.t_mono_ns, s.rss)).collect();
        let (slope, r2) = least_squares(&pts)?;
        let deltas = pts.len() - 1;
        let nonneg = pts.windows(2).filter(|w| w[1].1 >= w[0].1).count();
        Some(Fit {
            slope_bytes_per_min: slope * 60e9,
            r2,
            nonneg_share: nonneg as f64 / deltas as f64,
            samples: pts.len(),
            span_ns: pts[pts.len() - 1].0 - pts[0].0,
        })
    }

    /// Slope of RSS over the samples of the last `window`, bytes per minute (least squares).
    pub fn growth_rate_bytes_per_min(&self, window: Duration) -> Option<f64> {
        self.fit(window).map(|f| f.slope_bytes_per_min)
    }

    /// A fit over `cfg.window` with enough samples spanning enough time for a verdict.
    fn usable_fit(&self, cfg: &Thresholds) -> Option<Fit> {
        let f = self.fit(cfg.window)?;
        let span_ok = u128::from(f.span_ns) >= cfg.min_span.as_nanos();
        (f.samples >= cfg.min_samples.max(2) && span_ok).then_some(f)
    }

    /// `growing`: the rate in bytes/min if RSS grows steadily, else `None`.
    ///
    /// Rule: over the samples of the last `cfg.window`, at least `cfg.min_samples` samples
    /// spanning at least `cfg.min_span`, a least-squares RSS slope ≥
    /// `cfg.growth_min_bytes_per_min` whose line rises by ≥ `cfg.growth_min_total_bytes` over
    /// that span, and a good fit: R² ≥ `cfg.min_r2` or at least
    /// `cfg.min_nonneg_share` of the consecutive deltas ≥ 0 (a staircase of allocations
    /// fits a line badly but never goes down).
    pub fn growth(&self, cfg: &Thresholds) -> Option<f64> {
        let f = self.usable_fit(cfg)?;
        let good =
            f.r2.is_some_and(|r2| r2 >= cfg.min_r2) || f.nonneg_share >= cfg.min_nonneg_share;
        let rise = f.slope_bytes_per_min * f.span_ns as f64 / 60e9;
        (f.slope_bytes_per_min >= cfg.growth_min_bytes_per_min
            && rise >= cfg.growth_min_total_bytes as f64
            && good)
            .then_some(f.slope_bytes_per_min)
    }

    pub fn is_growing(&self, cfg: &Thresholds) -> bool {
        self.growth(cfg).is_some()
    }

    /// Memory held steady over the samples of the last `cfg.window`: no shrink seen
    /// ([`MemHistory::shrank_in_window`]) and not growing. Any number of samples will do: a
    /// snapshot's verdict must not wait for a span its window cannot give.
    pub fn steady(&self, cfg: &Thresholds) -> bool {
        !self.shrank_in_window(cfg) && !self.is_growing(cfg)
    }

    /// Whether a shrink was seen between two consecutive samples of the last `cfg.window`:
    /// the brk heap got smaller, or anonymous RSS dropped by at least `cfg.shrink_min_bytes`.
    pub fn shrank_in_window(&self, cfg: &Thresholds) -> bool {
        let w: Vec<&MemSample> = self.in_window(cfg.window).collect();
        w.windows(2).any(|p| {
            p[1].heap < p[0].heap
                || p[0].rss_anon.saturating_sub(p[1].rss_anon) >= cfg.shrink_min_bytes
        })
    }

    /// The trend form of `not_returned`, over a history long enough to show one (the reports
    /// no longer use it: they decide from one read of /proc/PID/smaps, see
    /// [`crate::memory_layout::judge`], because a snapshot's window is too short for this
    /// rule). The process holds a large amount of anonymous memory it grew earlier
    /// and is not giving it back. All of:
    ///
    /// 1. anonymous RSS now ≥ `cfg.retained_min_bytes` (256 MiB);
    /// 2. not growing now: at least `cfg.min_samples` samples spanning `cfg.min_span` in the
    ///    last `cfg.window`, and |RSS slope| < `cfg.steady_max_bytes_per_min` (1 MiB/min);
    /// 3. no shrink in that window (see [`MemHistory::shrank_in_window`]);
    /// 4. either most of the anonymous memory is the brk heap (heap ≥ `cfg.heap_share` ×
    ///    anon RSS), or the process has held its peak for the whole window: every sample of
    ///    the window has anon RSS ≥ `cfg.peak_share` × the largest anon RSS observed (so the
    ///    peak was reached earlier and kept; a noisy flat line still qualifies);
    /// 5. if `cfg.busy_cpu_percent` is set, `cpu_percent_now` is not above it.
    ///
    /// The size test is on resident anonymous memory, not on the heap's size: the heap is
    /// address space, and a heap whose free pages were returned with `malloc_trim`
    /// (`MADV_DONTNEED`) keeps its size while its memory went back to the system.
    pub fn not_returned(&self, cfg: &Thresholds, cpu_percent_now: f64) -> bool {
        let Some(now) = self.latest() else { return false };
        if now.rss_anon < cfg.retained_min_bytes {
            return false;
        }
        if cfg.busy_cpu_percent.is_some_and(|max| cpu_percent_now > max) {
            return false;
        }
        let Some(f) = self.usable_fit(cfg) else { return false };
        if f.slope_bytes_per_min.abs() >= cfg.steady_max_bytes_per_min || self.shrank_in_window(cfg)
        {
            return false;
        }
        let heap_most = now.heap as f64 >= cfg.heap_share * now.rss_anon as f64;
        let floor = cfg.peak_share * self.anon_peak as f64;
        let holds_peak = self.in_window(cfg.window).all(|s| s.rss_anon as f64 >= floor);
        heap_most || holds_peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn s(t_ms: u64, rss: u64, anon: u64, heap: u64) -> MemSample {
        MemSample {
            t_mono_ns: t_ms * 1_000_000,
            rss,
            rss_anon: anon,
            heap,
            vm_size: 100 * MIB + heap,
            ..Default::default()
        }
    }

    /// Deterministic noise in [-amp, amp] (an LCG: no dependency, same values every run).
    fn noise(seed: &mut u64, amp: u64) -> i64 {
        *seed =
            seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 33) % (2 * amp + 1)) as i64 - amp as i64
    }

    const MAPS: &str = "\
55d0c8a00000-55d0c8a1e000 r--p 00000000 fd:01 1234   /usr/bin/python3.11
55d0c8a1e000-55d0c8b00000 r-xp 0001e000 fd:01 1234   /usr/bin/python3.11
55d0c8d00000-55d0c8d10000 rw-p 00300000 fd:01 1234   /usr/bin/python3.11
55d0c9f3b000-55d0cbf3b000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0
7ffd1c6c1000-7ffd1c6e2000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn mmap_and_munmap_from_address_space_changes() {
        let mut h = MemHistory::default();
        let v = |t: u64, vm: u64, heap: u64| MemSample {
            t_mono_ns: t * SEC,
            vm_size: vm,
            heap,
            ..Default::default()
        };
        assert!(h.push(v(1, 100 * MIB, 10 * MIB)));
        assert_eq!((h.mmap_bytes, h.munmap_bytes), (None, None));
        h.push(v(2, 1124 * MIB, 10 * MIB)); // mmap 1 GiB
        h.push(v(3, 1134 * MIB, 20 * MIB)); // brk +10 MiB: not mmap
        h.push(v(4, 110 * MIB, 20 * MIB)); // munmap 1 GiB
        assert_eq!(h.mmap_bytes, Some(1024 * MIB));
        assert_eq!(h.munmap_bytes, Some(1024 * MIB));
    }

    #[test]
    fn heap_from_maps() {
        let (a, b) = parse_heap(MAPS).unwrap();
        assert_eq!((a, b), (0x55d0c9f3b000, 0x55d0cbf3b000));
        assert_eq!(b - a, 32 * MIB);
        assert_eq!(parse_heap("7ffd1c6c1000-7ffd1c6e2000 rw-p 00000000 00:00 0  [stack]\n"), None);
        assert_eq!(parse_heap(""), None);
        // Broken lines are skipped, not fatal.
        assert_eq!(
            parse_heap("zz-yy rw-p 0 0:0 0 [heap]\n10-20 rw-p 0 0:0 0 [heap]\n"),
            Some((0x10, 0x20))
        );
    }

    /// A reader that fails if read past a limit: proves the scan stops early.
    struct Limited<'a> {
        data: &'a [u8],
        pos: usize,
        limit: usize,
    }
    impl io::Read for Limited<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.limit {
                return Err(io::Error::other("read past the heap"));
            }
            let n = buf.len().min(self.limit - self.pos).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn scan_stops_at_heap_or_past_start_brk() {
        let heap_end = MAPS.find("[heap]").unwrap() + "[heap]\n".len();
        let r = BufReader::with_capacity(
            16,
            Limited { data: MAPS.as_bytes(), pos: 0, limit: heap_end },
        );
        assert_eq!(scan_heap(r, None).unwrap(), HeapScan::Found(0x55d0c9f3b000, 0x55d0cbf3b000));

        // No heap: stop at the first mapping above start_brk.
        let no_heap: String =
            MAPS.lines().filter(|l| !l.contains("[heap]")).map(|l| format!("{l}\n")).collect();
        let above = no_heap.find("7f1c2a000000").unwrap();
        let past = above + no_heap[above..].find('\n').unwrap() + 1;
        let r =
            BufReader::with_capacity(16, Limited { data: no_heap.as_bytes(), pos: 0, limit: past });
        assert_eq!(scan_heap(r, Some(0x55d0c9f3b000)).unwrap(), HeapScan::Absent);
        // Without start_brk it reads to the end.
        assert_eq!(scan_heap(no_heap.as_bytes(), None).unwrap(), HeapScan::Absent);
        assert_eq!(scan_heap(&b""[..], Some(1)).unwrap(), HeapScan::Empty);
        // Non-UTF-8 paths do not matter.
        let odd = b"400000-401000 r-xp 0 0:0 0 /tmp/\xff\xfe\n402000-403000 rw-p 0 0:0 0  [heap]\n";
        assert_eq!(scan_heap(&odd[..], None).unwrap(), HeapScan::Found(0x402000, 0x403000));
    }

    #[test]
    fn start_brk_field_47() {
        let mut line = String::from("1234 (a) b) c) S");
        // Fields 4..=52 after the state: field n holds the value n.
        for n in 4..=52 {
            line.push_str(&format!(" {n}"));
        }
        assert_eq!(parse_start_brk(line.as_bytes()), Some(47));
        assert_eq!(parse_start_brk(line.replace(" 47 ", " 0 ").as_bytes()), None);
        assert_eq!(parse_start_brk(b"1 (x) S 0 1"), None);
        assert_eq!(parse_start_brk(b""), None);
    }

    #[test]
    fn status_vm() {
        let st = "Name:\tx\nVmPeak:\t 9000 kB\nVmSize:\t 8000 kB\nVmHWM:\t 3000 kB\nVmRSS:\t 2000 kB\nRssAnon:\t 1500 kB\nRssFile:\t 400 kB\nRssShmem:\t 100 kB\n";
        let v = parse_status_vm(st).unwrap();
        assert_eq!(v.vm_size, 8000 * KIB);
        assert_eq!(v.vm_hwm, 3000 * KIB);
        assert_eq!(v.vm_rss, 2000 * KIB);
        assert_eq!((v.rss_anon, v.rss_file, v.rss_shmem), (1500 * KIB, 400 * KIB, 100 * KIB));
        // Kernel thread / zombie: no Vm lines.
        assert_eq!(parse_status_vm("Name:\tkworker/0:1\nState:\tI (idle)\n"), None);
        assert_eq!(parse_status_vm(""), None);
    }

    #[test]
    fn sample_self_and_vanished() {
        let me = std::process::id() as i32;
        let s = sample(me, 1).expect("own process");
        assert!(s.rss > 0 && s.vm_size >= s.rss && s.hwm >= s.rss);
        assert!(s.rss_anon + s.rss_file + s.rss_shmem <= s.rss + 64 * KIB);
        assert_eq!(sample(i32::MAX, 1), None);
        // Kernel thread (kthreadd is pid 2 on Linux).
        assert_eq!(sample(2, 1), None);
    }

    #[test]
    fn least_squares_basics() {
        assert_eq!(least_squares(&[]), None);
        assert_eq!(least_squares(&[(5, 5)]), None);
        assert_eq!(least_squares(&[(5, 5), (5, 9)]), None);
        let (m, r2) = least_squares(&[(0, 10), (10, 30), (20, 50)]).unwrap();
        assert!((m - 2.0).abs() < 1e-12);
        assert!((r2.unwrap() - 1.0).abs() < 1e-12);
        let (m, r2) = least_squares(&[(0, 7), (10, 7), (20, 7)]).unwrap();
        assert_eq!((m, r2), (0.0, None));
    }

    #[test]
    fn growth_3mib_per_s_sampled_200ms_for_3s() {
        let mut h = MemHistory::default();
        let mut seed = 42;
        for i in 0..=15u64 {
            let t_ms = i * 200;
            // 3 MiB/s plus up to ±512 KiB of noise and ±20 ms sampling jitter.
            let jitter = noise(&mut seed, 20);
            let t = (t_ms as i64 + jitter).max(0) as u64;
            let rss = (100 * MIB + 3 * MIB * t / 1000) as i64 + noise(&mut seed, 512 * KIB);
            h.push(s(t_ms, rss as u64, rss as u64, 0));
        }
        let rate = h.growth_rate_bytes_per_min(Duration::from_secs(10)).unwrap();
        let want = 180.0 * MIB as f64;
        assert!((rate - want).abs() / want < 0.2, "rate {} MiB/min", rate / MIB as f64);
        // The default needs 5 s of samples; a 3 s snapshot passes its own span.
        assert!(!h.is_growing(&Thresholds::default()));
        let cfg = Thresholds::for_window(Duration::from_secs(3));
        let g = h.growth(&cfg).expect("growing");
        assert!((g - want).abs() / want < 0.2);
        assert!(!h.not_returned(&cfg, 0.0));
    }

    #[test]
    fn a_small_step_in_a_short_window_is_not_growth() {
        // 140 KiB more after 1 s of a 2 s snapshot: 4 MiB/min if extrapolated, 140 KiB real.
        let mut h = MemHistory::default();
        for i in 0..=10u64 {
            let rss = MIB + if i >= 5 { 140 * KIB } else { 0 };
            h.push(s(i * 200, rss, rss, 0));
        }
        let cfg = Thresholds::for_window(Duration::from_secs(2));
        assert!(h.growth_rate_bytes_per_min(cfg.window).unwrap() > MIB as f64);
        assert_eq!(h.growth(&cfg), None);
        // The same shape in MiB is growth.
        let mut h = MemHistory::default();
        for i in 0..=10u64 {
            let rss = 100 * MIB + if i >= 5 { 20 * MIB } else { 0 };
            h.push(s(i * 200, rss, rss, 0));
        }
        assert!(h.growth(&cfg).is_some());
    }

    #[test]
    fn staircase_growth_has_poor_r2_but_never_drops() {
        // +10 MiB every 4th sample: a staircase.
        let mut h = MemHistory::default();
        for i in 0..40u64 {
            let rss = 50 * MIB + (i / 4) * 10 * MIB;
            h.push(s(i * 500, rss, rss, 0));
        }
        assert!(h.is_growing(&Thresholds::default()));
        // Noise around a flat line is not growth, whatever its R².
        let mut h = MemHistory::default();
        let mut seed = 7;
        for i in 0..40u64 {
            let rss = (300 * MIB) as i64 + noise(&mut seed, 4 * MIB);
            h.push(s(i * 500, rss as u64, rss as u64, 0));
        }
        assert!(!h.is_growing(&Thresholds::default()));
        // Too few samples or too short a span: no verdict.
        let mut h = MemHistory::default();
        for i in 0..4u64 {
            h.push(s(i * 2000, (i + 1) * 100 * MIB, 0, 0));
        }
        assert!(!h.is_growing(&Thresholds::default()));
    }

    #[test]
    fn window_limits_the_fit() {
        let mut h = MemHistory::default();
        // Grew fast for 20 s, then flat for 60 s.
        for i in 0..=80u64 {
            let rss = 100 * MIB + i.min(20) * 10 * MIB;
            h.push(s(i * 1000, rss, rss, 0));
        }
        let all = h.growth_rate_bytes_per_min(Duration::from_secs(1000)).unwrap();
        assert!(all > 10.0 * MIB as f64);
        let recent = h.growth_rate_bytes_per_min(Duration::from_secs(30)).unwrap();
        assert!(recent.abs() < 1.0, "recent slope {recent}");
        assert!(!h.is_growing(&Thresholds::default()));
    }

    #[test]
    fn counters_survive_the_ring() {
        let mut h = MemHistory::new(4);
        let heaps = [0, 10, 30, 20, 20, 50, 5];
        for (i, heap) in heaps.iter().enumerate() {
            let anon = heap * MIB + MIB;
            h.push(s(i as u64 * 100, anon, anon, heap * MIB));
        }
        assert_eq!(h.len(), 4);
        assert_eq!(h.samples_seen, 7);
        assert_eq!(h.brk_grows, 3);
        assert_eq!(h.brk_grow_bytes, 60 * MIB);
        assert_eq!(h.brk_shrinks, 2);
        assert_eq!(h.brk_shrink_bytes, 55 * MIB);
        assert_eq!(h.heap_peak, 50 * MIB);
        assert_eq!(h.rss_peak, 51 * MIB);
        assert_eq!(h.returned_bytes, 55 * MIB);
        assert_eq!((h.anon_peak, h.anon_peak_mono_ns), (51 * MIB, 500 * 1_000_000));
        assert_eq!(h.latest().map(|l| l.heap), Some(5 * MIB));
        assert_eq!(h.samples().next().map(|f| f.heap), Some(20 * MIB));
        // Only the heap moved: no other address space was mapped or unmapped.
        assert_eq!((h.mmap_bytes, h.munmap_bytes), (Some(0), Some(0)));
        // Stale or repeated samples are ignored.
        assert!(!h.push(s(600, 0, 0, 0)));
        assert!(!h.push(s(100, 0, 0, 0)));
        assert_eq!(h.samples_seen, 7);
    }

    /// A process that grew to `anon` bytes (`heap` of it brk heap) over its first 10 s and
    /// then sat still for `idle_s` seconds (one sample per second).
    fn grew_then_idle(anon: u64, heap: u64, idle_s: u64) -> MemHistory {
        let mut h = MemHistory::default();
        for i in 0..=10 {
            h.push(s(i * 1000, anon * i / 10 + 5 * MIB, anon * i / 10, heap * i / 10));
        }
        for i in 11..=10 + idle_s {
            h.push(s(i * 1000, anon + 5 * MIB, anon, heap));
        }
        h
    }

    #[test]
    fn brk_heap_kept_is_not_returned() {
        let cfg = Thresholds::default();
        let h = grew_then_idle(1024 * MIB, 1030 * MIB, 70);
        assert!(h.not_returned(&cfg, 0.0));
        assert!(!h.is_growing(&cfg));
        // Still growing within the window: not (yet) "not returned".
        let h = grew_then_idle(1024 * MIB, 1030 * MIB, 30);
        assert!(!h.not_returned(&cfg, 0.0));
        // Same anon memory in mmap'd regions (no heap), held for the whole window.
        let h = grew_then_idle(1024 * MIB, 0, 70);
        assert!(h.not_returned(&cfg, 0.0));
        // Below the size threshold.
        let h = grew_then_idle(200 * MIB, 200 * MIB, 70);
        assert!(!h.not_returned(&cfg, 0.0));
        assert!(h.not_returned(&Thresholds { retained_min_bytes: 100 * MIB, ..cfg }, 0.0));
        // A busy process is only spared when asked for.
        let h = grew_then_idle(1024 * MIB, 1030 * MIB, 70);
        assert!(h.not_returned(&cfg, 95.0));
        assert!(!h.not_returned(&Thresholds { busy_cpu_percent: Some(50.0), ..cfg }, 95.0));
        // Not enough samples for a verdict.
        let mut short = MemHistory::default();
        short.push(s(0, 2048 * MIB, 2048 * MIB, 2048 * MIB));
        assert!(!short.not_returned(&cfg, 0.0));
        assert!(!MemHistory::default().not_returned(&cfg, 0.0));
    }

    #[test]
    fn noisy_flat_mmap_memory_is_not_returned() {
        // 600 MiB of anon memory outside the heap, flat with ±512 KiB of noise: the highest
        // sample may be the newest one; the verdict must not depend on where the noise peaks.
        let cfg = Thresholds::default();
        let mut seed = 3;
        let mut h = MemHistory::default();
        for i in 0..=90u64 {
            let anon = ((600 * MIB) as i64 + noise(&mut seed, 512 * KIB)) as u64;
            h.push(s(i * 1000, anon + 4 * MIB, anon, 0));
        }
        h.push(s(91_000, 601 * MIB + 4 * MIB, 601 * MIB, 0));
        assert_eq!(h.anon_peak_mono_ns, 91_000 * 1_000_000);
        assert!(h.not_returned(&cfg, 0.0));
    }

    #[test]
    fn mmap_then_munmap_is_not_flagged() {
        let cfg = Thresholds::default();
        let mut h = MemHistory::default();
        // 1 GiB mapped and touched, held 20 s, unmapped, then 60 s of quiet.
        for i in 0..=100u64 {
            let anon = match i {
                0..=4 => 2 * MIB,
                5..=24 => 1026 * MIB,
                _ => 2 * MIB,
            };
            h.push(s(i * 1000, anon + 3 * MIB, anon, 132 * KIB));
        }
        assert!(!h.not_returned(&cfg, 0.0));
        assert!(!h.is_growing(&cfg));
        assert_eq!(h.returned_bytes, 1024 * MIB);
        assert_eq!((h.brk_grows, h.brk_shrinks), (0, 0));
        assert_eq!(h.anon_peak, 1026 * MIB);
    }

    #[test]
    fn trimmed_heap_is_not_flagged_and_shrink_resets() {
        let cfg = Thresholds::default();
        // The heap stays 1 GiB (its top is in use) but malloc_trim gave the pages back.
        let mut h = grew_then_idle(1024 * MIB, 1030 * MIB, 70);
        assert!(h.not_returned(&cfg, 0.0));
        let t = h.latest().unwrap().t_mono_ns / 1_000_000;
        for i in 1..=70 {
            h.push(s(t + i * 1000, 8 * MIB, 3 * MIB, 1030 * MIB));
        }
        assert!(!h.not_returned(&cfg, 0.0));
        assert!(h.returned_bytes >= 1020 * MIB);
        assert_eq!(h.brk_shrinks, 0);

        // A partial give-back inside the window clears the verdict until the window passes.
        let mut h = grew_then_idle(1024 * MIB, 1030 * MIB, 70);
        assert!(h.not_returned(&cfg, 0.0));
        let t = h.latest().unwrap().t_mono_ns / 1_000_000;
        for i in 1..=10 {
            h.push(s(t + i * 1000, 905 * MIB, 900 * MIB, 1030 * MIB));
        }
        assert!(h.shrank_in_window(&cfg));
        assert!(!h.not_returned(&cfg, 0.0));
        let t = h.latest().unwrap().t_mono_ns / 1_000_000;
        for i in 1..=61 {
            h.push(s(t + i * 1000, 905 * MIB, 900 * MIB, 1030 * MIB));
        }
        assert!(!h.shrank_in_window(&cfg));
        assert!(h.not_returned(&cfg, 0.0));
    }

    #[test]
    fn steady_means_no_shrink_and_no_growth_in_the_window() {
        let cfg = Thresholds::for_window(Duration::from_secs(1));
        let mut h = MemHistory::default();
        for i in 0..6 {
            h.push(s(i * 200, 520 * MIB, 512 * MIB, 512 * MIB));
        }
        assert!(h.steady(&cfg));
        // malloc_trim during the window: anon RSS dropped.
        h.push(s(1200, 10 * MIB, 2 * MIB, 512 * MIB));
        assert!(!h.steady(&cfg));
        // Still allocating: growing 100 MiB per second.
        let mut h = MemHistory::default();
        for i in 0..6 {
            h.push(s(i * 200, (300 + 20 * i) * MIB, (300 + 20 * i) * MIB, 0));
        }
        assert!(!h.steady(&cfg));
    }

    #[test]
    fn for_window_thresholds() {
        let c = Thresholds::for_window(Duration::from_secs(3));
        assert_eq!(c.window, Duration::from_secs(3));
        assert_eq!(c.min_span, Duration::from_millis(2400));
        let c = Thresholds::for_window(Duration::from_secs(120));
        assert_eq!(c.min_span, Duration::from_secs(5));
        assert_eq!(SEC, 1_000_000_000);
    }
}

/// The memory figures of one process as reports show them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MemStatus {
    pub rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    pub peak_rss: u64,
    pub heap: u64,
    pub heap_peak: u64,
    pub brk_grows: u64,
    pub brk_shrinks: u64,
    pub brk_grow_bytes: u64,
    pub brk_shrink_bytes: u64,
    pub mmap_bytes: Option<u64>,
    pub munmap_bytes: Option<u64>,
    pub returned_bytes: u64,
    /// RSS change from the first to the last sample of the window.
    pub rss_change_bytes: i64,
    /// Set from `retained` by [`MemStatus::judge_retained`]: the `not_returned` verdict.
    pub not_returned: bool,
    pub growing: bool,
    pub growth_bytes_per_min: Option<f64>,
    pub samples: usize,
    /// The kernel's exact counts of the memory calls since hangwatch attached
    /// (`--exact-memory`); when present, the brk/mmap/munmap/returned figures above are
    /// these, not inferred from samples.
    pub kernel: Option<hangwatch_common::MemCounters>,
    /// Where its anonymous memory is (/proc/PID/smaps), read only for processes holding at
    /// least `RetainCfg::min_bytes` of anonymous memory.
    pub layout: Option<Layout>,
    /// The `not_returned` verdict and its evidence (see [`crate::memory_layout::judge`]).
    pub retained: Option<Retained>,
}

impl MemStatus {
    /// Decides `not_returned` from what the kernel shows now: the process's `layout`, whether
    /// its memory held `steady` over the observation, and its `activity`. The same call in
    /// snapshot and live mode, so both reach the same verdict for the same situation.
    pub fn judge_retained(
        &mut self,
        layout: Option<Layout>,
        steady: bool,
        activity: &Activity,
        cfg: &RetainCfg,
    ) {
        self.layout = layout;
        self.retained = layout.and_then(|l| judge(&l, steady, activity, cfg));
        self.not_returned = self.retained.is_some();
    }

    /// Replaces the figures inferred from samples with the kernel's exact counts:
    /// `returned_bytes` is then brk shrinks + munmap + mremap shrinks + freeing madvise.
    pub fn apply_kernel_counters(&mut self, k: &hangwatch_common::MemCounters) {
        self.brk_grows = k.brk_grows;
        self.brk_shrinks = k.brk_shrinks;
        self.brk_grow_bytes = k.brk_grow_bytes;
        self.brk_shrink_bytes = k.brk_shrink_bytes;
        self.mmap_bytes = Some(k.mmap_bytes);
        self.munmap_bytes = Some(k.munmap_bytes);
        self.returned_bytes =
            k.brk_shrink_bytes + k.munmap_bytes + k.mremap_shrink_bytes + k.madvise_bytes;
        self.kernel = Some(*k);
    }
}

impl MemHistory {
    /// The figures and verdicts now.
    pub fn status(&self, cfg: &Thresholds) -> Option<MemStatus> {
        let last = self.latest()?;
        let first = self.in_window(cfg.window).next().copied().unwrap_or(*last);
        let growth = self.growth(cfg);
        Some(MemStatus {
            rss: last.rss,
            rss_anon: last.rss_anon,
            rss_file: last.rss_file,
            rss_shmem: last.rss_shmem,
            peak_rss: last.hwm.max(self.rss_peak),
            heap: last.heap,
            heap_peak: self.heap_peak,
            brk_grows: self.brk_grows,
            brk_shrinks: self.brk_shrinks,
            brk_grow_bytes: self.brk_grow_bytes,
            brk_shrink_bytes: self.brk_shrink_bytes,
            mmap_bytes: self.mmap_bytes,
            munmap_bytes: self.munmap_bytes,
            returned_bytes: self.returned_bytes,
            rss_change_bytes: last.rss as i64 - first.rss as i64,
            // Decided by `MemStatus::judge_retained` from the process's layout.
            not_returned: false,
            growing: growth.is_some(),
            growth_bytes_per_min: growth,
            samples: self.len(),
            kernel: None,
            layout: None,
            retained: None,
        })
    }
}
