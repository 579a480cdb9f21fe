//! Where a process's anonymous memory is (brk heap, glibc thread arenas, other anonymous
//! mmaps), read from /proc/PID/smaps, and the `not_returned` verdict decided from what the
//! kernel shows *now* rather than from a trend the samples of a short window cannot show.
//!
//! The verdict ([`judge`]) is pure and unit-tested with plain values; [`read_layout`] does the
//! I/O, bounded (a process can have 100,000 mappings). docs/memory.md has the rule, its
//! evidence, its false positives and its limits.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
};

use crate::{
    fmt::{fmt_bytes, fmt_duration_ns},
    memory::MIB,
};

/// glibc's `HEAP_MAX_SIZE` on 64-bit (2 × `DEFAULT_MMAP_THRESHOLD_MAX`): every heap of a
/// thread arena is mmap'd at an address aligned to this, and reserves this much.
pub const ARENA_HEAP_ALIGN: u64 = 64 * MIB;

/// How much of /proc/PID/smaps is read at most (bytes and mappings). A mapping is about
/// 1 KiB of text; 16,384 mappings cover nearly every process. Past either, the read stops
/// and the layout says `truncated` (what was read is a lower bound).
pub const MAX_SMAPS_BYTES: u64 = 16 * MIB;
pub const MAX_MAPPINGS: u32 = 16_384;
/// Longest line kept (a path is at most 4096 bytes); longer lines are cut and skipped.
const MAX_LINE: u64 = 8192;

/// Totals of one kind of mapping, bytes (smaps `Size`, `Rss`, `Anonymous`, `Referenced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// Mappings of this kind (for arenas: 64 MiB arena heaps).
    pub count: u32,
    /// Address space.
    pub size: u64,
    pub rss: u64,
    /// Resident anonymous pages.
    pub anon: u64,
    /// Resident pages with the accessed bit set (or `PG_referenced`), i.e. touched since the
    /// kernel last aged them (reclaim, or a `clear_refs` by someone). Nobody ages the pages
    /// of an idle machine: then this equals `rss` and says nothing about recency.
    pub referenced: u64,
}

impl Region {
    fn add(&mut self, m: &Mapping) {
        self.count += 1;
        self.size += m.end - m.start;
        self.rss += m.rss;
        self.anon += m.anon;
        self.referenced += m.referenced;
    }
}

/// Where a process's private anonymous memory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The `[heap]` mapping: glibc's main arena (and any brk allocator).
    pub heap: Region,
    /// glibc thread arenas: anonymous `rw-p` mappings that start on a 64 MiB boundary and
    /// end on one, or are followed by their `---p` reserve up to one (`count`: 64 MiB heaps).
    pub arenas: Region,
    /// Every other private anonymous mapping (big `malloc` chunks, pymalloc arenas,
    /// jemalloc/Go/JVM heaps, thread stacks).
    pub anon_mmaps: Region,
    /// Mappings read.
    pub mappings: u32,
    /// The read stopped at [`MAX_SMAPS_BYTES`] or [`MAX_MAPPINGS`]: the figures are lower
    /// bounds.
    pub truncated: bool,
    /// An allocator of its own that returns freed memory by itself is mapped (jemalloc,
    /// tcmalloc, mimalloc, the JVM): its `anon_mmaps` are its heap, most likely live data.
    pub allocator: Option<&'static str>,
}

impl Layout {
    /// Resident anonymous memory in the heap, the arenas and the other anonymous mappings.
    pub fn anon(&self) -> u64 {
        self.heap.anon + self.arenas.anon + self.anon_mmaps.anon
    }

    /// The regions the `not_returned` verdict judges: glibc's brk heap and thread arenas,
    /// which glibc does not give back by itself, and the other anonymous mappings unless an
    /// allocator that returns freed memory by itself owns them (an idle Redis on jemalloc or
    /// a JVM holds its live data there).
    fn judged(&self) -> [Region; 3] {
        let mmaps = if self.allocator.is_some() { Region::default() } else { self.anon_mmaps };
        [self.heap, self.arenas, mmaps]
    }

    /// Resident anonymous memory in the judged regions.
    pub fn judged_anon(&self) -> u64 {
        self.judged().iter().map(|r| r.anon).sum()
    }

    /// Of the judged regions, resident and not referenced (see [`Region::referenced`]).
    pub fn unreferenced(&self) -> u64 {
        self.judged().iter().map(|r| r.rss.saturating_sub(r.referenced).min(r.anon)).sum()
    }

    /// "512.0 MiB in its brk heap, 128.0 MiB in 2 glibc thread-arena heaps, 3.0 MiB in 40
    /// anonymous mmaps": the regions holding at least 1 MiB, largest first.
    pub fn where_text(&self) -> String {
        let mut parts: Vec<(u64, String)> = Vec::new();
        if self.heap.anon >= MIB {
            parts.push((self.heap.anon, format!("{} in its brk heap", fmt_bytes(self.heap.anon))));
        }
        if self.arenas.anon >= MIB {
            let n = self.arenas.count;
            parts.push((
                self.arenas.anon,
                format!(
                    "{} in {n} glibc thread-arena heap{}",
                    fmt_bytes(self.arenas.anon),
                    if n == 1 { "" } else { "s" }
                ),
            ));
        }
        if self.anon_mmaps.anon >= MIB {
            let n = self.anon_mmaps.count;
            parts.push((
                self.anon_mmaps.anon,
                format!(
                    "{} in {n} anonymous mmap{}",
                    fmt_bytes(self.anon_mmaps.anon),
                    if n == 1 { "" } else { "s" }
                ),
            ));
        }
        parts.sort_by_key(|p| std::cmp::Reverse(p.0));
        let s = parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join(", ");
        if s.is_empty() { "no anonymous region of 1 MiB or more".into() } else { s }
    }
}

/// One mapping as read from smaps, before it is classified.
#[derive(Debug, Clone, Copy, Default)]
struct Mapping {
    start: u64,
    end: u64,
    kind: Kind,
    rss: u64,
    anon: u64,
    referenced: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    Heap,
    /// Private, anonymous, readable and writable.
    #[default]
    AnonRw,
    /// Private, anonymous, no access: a reserve (the tail of an arena heap, a guard page).
    AnonNone,
    /// Anything else (files, shared memory, stacks, vdso): not judged.
    Other,
}

/// Parses an smaps header line (`start-end perms offset dev inode [path]`).
fn parse_header(line: &[u8]) -> Option<(u64, u64, Kind)> {
    let text = String::from_utf8_lossy(line);
    let mut f = text.split_ascii_whitespace();
    let (a, b) = f.next()?.split_once('-')?;
    let (start, end) = (u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?);
    let perms = f.next()?.as_bytes();
    let (_offset, _dev, inode) = (f.next()?, f.next()?, f.next()?);
    if perms.len() < 4 || end < start {
        return None;
    }
    let path = f.next().unwrap_or("");
    let private = perms[3] == b'p';
    let anon = inode == "0" && (path.is_empty() || path.starts_with("[anon:"));
    let kind = if path == "[heap]" {
        Kind::Heap
    } else if private && anon && perms[..2] == *b"rw" {
        Kind::AnonRw
    } else if private && anon && perms[..3] == *b"---" {
        Kind::AnonNone
    } else {
        Kind::Other
    };
    Some((start, end, kind))
}

/// The allocator a mapped file is, among those that return freed memory by themselves.
fn own_allocator(header: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(header);
    let name = text.split_ascii_whitespace().nth(5)?.rsplit('/').next()?;
    [
        ("libjemalloc.so", "jemalloc"),
        ("libtcmalloc", "tcmalloc"),
        ("libmimalloc.so", "mimalloc"),
        ("libjvm.so", "the JVM"),
    ]
    .into_iter()
    .find(|(prefix, _)| name.starts_with(prefix))
    .map(|(_, what)| what)
}

/// `Key:   123 kB` → bytes.
fn parse_kb(line: &[u8], key: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(key)?.strip_prefix(b":")?;
    let v = std::str::from_utf8(rest).ok()?.trim().strip_suffix("kB")?.trim();
    v.parse::<u64>().ok().map(|kb| kb.saturating_mul(1024))
}

/// Reads an smaps text, at most `max_bytes` bytes and `max_mappings` mappings.
pub fn parse_smaps<R: BufRead>(r: R, max_bytes: u64, max_mappings: u32) -> io::Result<Layout> {
    let mut r = r.take(max_bytes);
    let mut maps: Vec<Mapping> = Vec::new();
    let mut cur: Option<Mapping> = None;
    let mut mappings = 0u32;
    let mut allocator = None;
    let truncated;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
        if n == 0 {
            // The byte budget ran out before the file did.
            truncated = r.limit() == 0;
            break;
        }
        if let Some(v) = parse_kb(&line, b"Rss") {
            if let Some(m) = cur.as_mut() {
                m.rss = v;
            }
        } else if let Some(v) = parse_kb(&line, b"Anonymous") {
            if let Some(m) = cur.as_mut() {
                m.anon = v;
            }
        } else if let Some(v) = parse_kb(&line, b"Referenced") {
            if let Some(m) = cur.as_mut() {
                m.referenced = v;
            }
        } else if line.first().is_some_and(u8::is_ascii_hexdigit)
            && let Some((start, end, kind)) = parse_header(&line)
        {
            if mappings == max_mappings {
                truncated = true;
                break;
            }
            mappings += 1;
            if kind == Kind::Other && allocator.is_none() {
                allocator = own_allocator(&line);
            }
            maps.extend(cur.take().filter(|m| m.kind != Kind::Other));
            cur = Some(Mapping { start, end, kind, ..Default::default() });
        }
    }
    maps.extend(cur.filter(|m| m.kind != Kind::Other));
    // With a truncated read the last mapping may lack its figures: it counts as read anyway
    // (its Rss is then 0, a lower bound like the rest).
    Ok(Layout { allocator, ..classify(&maps, mappings, truncated) })
}

/// Thread-arena heaps: a `rw-p` anonymous mapping starting on a 64 MiB boundary that either
/// ends on one (full heaps: the kernel merges adjacent full heaps into one mapping) or is
/// followed right away by its `---p` reserve ending on one. Returns how many 64 MiB heaps the
/// mapping spans (0: not an arena).
fn arena_heaps(m: &Mapping, next: Option<&Mapping>) -> u32 {
    if m.kind != Kind::AnonRw || !m.start.is_multiple_of(ARENA_HEAP_ALIGN) {
        return 0;
    }
    let end = if m.end.is_multiple_of(ARENA_HEAP_ALIGN) {
        m.end
    } else {
        match next {
            Some(n)
                if n.kind == Kind::AnonNone
                    && n.start == m.end
                    && n.end.is_multiple_of(ARENA_HEAP_ALIGN) =>
            {
                n.end
            }
            _ => return 0,
        }
    };
    u32::try_from((end - m.start) / ARENA_HEAP_ALIGN).unwrap_or(u32::MAX)
}

fn classify(maps: &[Mapping], mappings: u32, truncated: bool) -> Layout {
    let mut l = Layout { mappings, truncated, ..Default::default() };
    for (i, m) in maps.iter().enumerate() {
        match m.kind {
            Kind::Heap => l.heap.add(m),
            Kind::AnonRw => match arena_heaps(m, maps.get(i + 1)) {
                0 => l.anon_mmaps.add(m),
                n => {
                    l.arenas.add(m);
                    l.arenas.count += n - 1;
                }
            },
            Kind::AnonNone | Kind::Other => {}
        }
    }
    l
}

/// Reads /proc/PID/smaps (bounded). `None` if the process is gone or smaps may not be read
/// (no ptrace access); a kernel thread or zombie gives an empty layout.
pub fn read_layout(pid: i32) -> Option<Layout> {
    let f = File::open(format!("/proc/{pid}/smaps")).ok()?;
    match parse_smaps(BufReader::with_capacity(16 * 1024, f), MAX_SMAPS_BYTES, MAX_MAPPINGS) {
        Ok(l) => {
            if l.truncated {
                log::debug!("pid {pid}: smaps read stopped after {} mappings", l.mappings);
            }
            Some(l)
        }
        Err(e) => {
            log::debug!("pid {pid}: cannot read smaps: {e}");
            None
        }
    }
}

/// Whether a process holds enough anonymous memory for its layout to be worth reading
/// (reading smaps walks the page tables of every mapping: it is done for few processes).
pub fn worth_reading(rss_anon: u64, cfg: &RetainCfg) -> bool {
    rss_anon >= cfg.min_bytes
}

/// Layouts of the processes worth reading, re-read only when needed: reading smaps walks the
/// page tables (about 0.2 ms per resident MiB on the reference VM: 100 ms for 512 MiB), so
/// live mode reuses a layout while the process's anonymous RSS stays within
/// [`LayoutCache::REREAD_DELTA`] of what it was at the read, for at most
/// [`LayoutCache::MAX_AGE_NS`].
#[derive(Debug, Default)]
pub struct LayoutCache {
    /// pid → (read at, anon RSS then, layout).
    entries: std::collections::HashMap<i32, (u64, u64, Layout)>,
    /// smaps reads done, and those that stopped at the bound.
    pub reads: u64,
    pub truncated: u64,
}

impl LayoutCache {
    pub const REREAD_DELTA: u64 = 16 * MIB;
    pub const MAX_AGE_NS: u64 = 30_000_000_000;

    /// The layouts of the processes in `anon` (pid → anonymous RSS now) worth reading,
    /// reading through `read` only those whose cached layout is missing, stale or off.
    /// Processes not in `anon` or no longer worth reading are dropped from the cache.
    pub fn layouts(
        &mut self,
        now_ns: u64,
        anon: &std::collections::HashMap<i32, u64>,
        cfg: &RetainCfg,
        mut read: impl FnMut(i32) -> Option<Layout>,
    ) -> std::collections::HashMap<i32, Layout> {
        self.entries.retain(|pid, _| anon.get(pid).is_some_and(|&a| worth_reading(a, cfg)));
        let mut out = std::collections::HashMap::new();
        for (&pid, &a) in anon.iter().filter(|&(_, &a)| worth_reading(a, cfg)) {
            let fresh = self.entries.get(&pid).filter(|(t, then, _)| {
                now_ns.saturating_sub(*t) < Self::MAX_AGE_NS
                    && then.abs_diff(a) < Self::REREAD_DELTA
            });
            let layout = match fresh {
                Some(&(_, _, l)) => Some(l),
                None => {
                    let l = read(pid);
                    self.reads += 1;
                    if let Some(l) = l {
                        self.truncated += u64::from(l.truncated);
                        self.entries.insert(pid, (now_ns, a, l));
                    }
                    l
                }
            };
            out.extend(layout.map(|l| (pid, l)));
        }
        out
    }
}

/// Thresholds of the `not_returned` verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetainCfg {
    /// Resident anonymous memory in heap + arenas + anonymous mmaps at least this.
    /// Default 256 MiB.
    pub min_bytes: u64,
    /// "Asleep": every thread of the process has been asleep for at least this. Default 5 s.
    pub asleep_min_ns: u64,
    /// "Nearly idle": the process used less CPU than this (percent of one core) over the
    /// observation. Default 1%.
    pub idle_cpu_percent: f64,
}

impl Default for RetainCfg {
    fn default() -> Self {
        RetainCfg { min_bytes: 256 * MIB, asleep_min_ns: 5_000_000_000, idle_cpu_percent: 1.0 }
    }
}

/// What the process did lately, as seen from outside without touching it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Activity {
    /// Every live thread is asleep, the one that ran last for this long (from the
    /// scheduler's `se.exec_start`); `None` if a thread runs or ran too recently to be
    /// counted as blocked.
    pub asleep_ns: Option<u64>,
    /// CPU used over the observation, percent of one core.
    pub cpu_percent: f64,
    /// Length of that observation.
    pub over_ns: u64,
}

/// Why hangwatch believes the memory is not being used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quiet {
    /// No thread ran for `for_ns`: nothing of the process touched its memory since.
    Asleep { for_ns: u64 },
    /// It used `cpu_percent` of one core over `over_ns`: too little to touch much of it.
    NearlyIdle { cpu_percent: f64, over_ns: u64 },
    /// `bytes` of it are resident and not referenced since the kernel last aged them.
    Unreferenced { bytes: u64 },
}

/// The `not_returned` verdict: memory held in the heap, arenas or anonymous mmaps, and
/// evidence that it is not being used now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retained {
    /// Resident anonymous memory in heap + arenas + anonymous mmaps.
    pub bytes: u64,
    pub quiet: Quiet,
    pub layout: Layout,
}

impl Retained {
    /// The finding's sentence after "pid P (comm) ".
    pub fn describe(&self, peak_rss: u64) -> String {
        let why = match self.quiet {
            Quiet::Asleep { for_ns } => format!(
                "none of its threads has run for {}, so none of it was touched since",
                fmt_duration_ns(for_ns)
            ),
            Quiet::NearlyIdle { cpu_percent, over_ns } => format!(
                "it used {cpu_percent:.1}% of a CPU over the last {}, too little to touch much of it",
                fmt_duration_ns(over_ns)
            ),
            Quiet::Unreferenced { bytes } => {
                let used = self.bytes.saturating_sub(bytes).max(1);
                format!(
                    "{} of it was not referenced since the kernel last aged its pages ({:.1}x what it referenced)",
                    fmt_bytes(bytes),
                    self.bytes as f64 / used as f64
                )
            }
        };
        format!(
            "holds {} resident ({}; peak RSS {}) and gives none back: {why}. hangwatch cannot tell memory freed but kept by the allocator from a live dataset that sits idle (a cache, a loaded table)",
            fmt_bytes(self.bytes),
            self.layout.where_text(),
            fmt_bytes(peak_rss)
        )
    }
}

/// The `not_returned` verdict from one read of the process's layout, whether its memory
/// held steady over the observation (`steady`: no shrink, not growing), and its activity.
///
/// All of: (1) at least `cfg.min_bytes` resident anonymous in heap, arenas and anonymous
/// mmaps; (2) `steady`; (3) evidence that the memory is not in use: every thread asleep for
/// `cfg.asleep_min_ns` or more, else less than `cfg.idle_cpu_percent` of a CPU over the
/// observation, else at least `cfg.min_bytes` of it resident and not referenced.
pub fn judge(layout: &Layout, steady: bool, act: &Activity, cfg: &RetainCfg) -> Option<Retained> {
    let bytes = layout.judged_anon();
    if bytes < cfg.min_bytes || !steady {
        return None;
    }
    let quiet = if let Some(for_ns) = act.asleep_ns.filter(|&n| n >= cfg.asleep_min_ns) {
        Quiet::Asleep { for_ns }
    } else if act.over_ns >= 500_000_000 && act.cpu_percent < cfg.idle_cpu_percent {
        Quiet::NearlyIdle { cpu_percent: act.cpu_percent, over_ns: act.over_ns }
    } else if layout.unreferenced() >= cfg.min_bytes {
        Quiet::Unreferenced { bytes: layout.unreferenced() }
    } else {
        return None;
    };
    Some(Retained { bytes, quiet, layout: *layout })
}

/// The [`Activity`] of a process from its threads and CPU use.
pub fn activity_of(p: &crate::model::Process, over_ns: u64) -> Activity {
    let asleep_ns =
        p.all_blocked().then(|| p.blocked_threads().map(|(_, w)| w.duration_ns).min()).flatten();
    Activity { asleep_ns, cpu_percent: p.cpu_percent, over_ns }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn smaps_entry(
        range: &str,
        perms: &str,
        path: &str,
        rss_kb: u64,
        referenced_kb: u64,
    ) -> String {
        let anon_kb = if path.is_empty() || path == "[heap]" { rss_kb } else { 0 };
        format!(
            "{range} {perms} 00000000 00:00 {} {path}\nSize: 9 kB\nRss: {rss_kb} kB\nPss: {rss_kb} kB\nReferenced: {referenced_kb} kB\nAnonymous: {anon_kb} kB\nVmFlags: rd wr mr mw me ac\n",
            if path.is_empty() || path.starts_with('[') { "0" } else { "1234" }
        )
    }

    /// A process with a 512 MiB heap, one thread arena (a 64 MiB heap: 20 MiB rw + reserve),
    /// a 100 MiB mmap, a thread stack, and a file mapping.
    fn sample_smaps() -> String {
        [
            smaps_entry("555500000000-555500010000", "r-xp", "/usr/bin/x", 60, 60),
            smaps_entry("555600000000-555620000000", "rw-p", "[heap]", 512 * 1024, 512 * 1024),
            smaps_entry("7f0000000000-7f0001400000", "rw-p", "", 20 * 1024, 1024),
            smaps_entry("7f0001400000-7f0004000000", "---p", "", 0, 0),
            smaps_entry("7f0004200000-7f000a600000", "rw-p", "", 100 * 1024, 100 * 1024),
            smaps_entry("7f000a600000-7f000a601000", "---p", "", 0, 0),
            smaps_entry("7f000a601000-7f000ae01000", "rw-p", "", 64, 64),
            smaps_entry("7f000b000000-7f000b100000", "r--p", "/usr/lib/libc.so.6", 900, 900),
            smaps_entry("7ffd00000000-7ffd00021000", "rw-p", "[stack]", 100, 100),
        ]
        .concat()
    }

    #[test]
    fn classifies_heap_arenas_and_mmaps() {
        let l = parse_smaps(sample_smaps().as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!(l.mappings, 9);
        assert!(!l.truncated);
        assert_eq!((l.heap.count, l.heap.size, l.heap.anon), (1, 512 * MIB, 512 * MIB));
        assert_eq!((l.arenas.count, l.arenas.size, l.arenas.anon), (1, 20 * MIB, 20 * MIB));
        assert_eq!(l.arenas.referenced, MIB);
        assert_eq!(l.anon_mmaps.count, 2);
        assert_eq!(l.anon_mmaps.anon, 100 * MIB + 64 * 1024);
        assert_eq!(l.anon(), 632 * MIB + 64 * 1024);
        assert_eq!(l.unreferenced(), 19 * MIB);
        assert_eq!(
            l.where_text(),
            "512.0 MiB in its brk heap, 100.1 MiB in 2 anonymous mmaps, 20.0 MiB in 1 glibc thread-arena heap"
        );
    }

    #[test]
    fn arena_needs_alignment_and_its_reserve() {
        // Aligned, but followed by nothing: a plain mmap.
        let s = smaps_entry("7f0000000000-7f0001400000", "rw-p", "", 1024, 1024);
        let l = parse_smaps(s.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!((l.arenas.count, l.anon_mmaps.count), (0, 1));
        // A full 64 MiB aligned heap needs no reserve.
        let s = smaps_entry("7f0004000000-7f0008000000", "rw-p", "", 1024, 1024);
        let l = parse_smaps(s.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!(l.arenas.count, 1);
        // Full heaps next to each other are merged by the kernel into one mapping, and a
        // partly used heap merges with the full one before it.
        let s = [
            smaps_entry("7fce18000000-7fce20000000", "rw-p", "", 1024, 1024),
            smaps_entry("7fce20000000-7fce24803000", "rw-p", "", 1024, 1024),
            smaps_entry("7fce24803000-7fce28000000", "---p", "", 0, 0),
        ]
        .concat();
        let l = parse_smaps(s.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!((l.arenas.count, l.arenas.anon, l.anon_mmaps.count), (4, 2 * MIB, 0));
        // Not aligned.
        let s = [
            smaps_entry("7f0000200000-7f0001400000", "rw-p", "", 1024, 1024),
            smaps_entry("7f0001400000-7f0004200000", "---p", "", 0, 0),
        ]
        .concat();
        let l = parse_smaps(s.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!((l.arenas.count, l.anon_mmaps.count), (0, 1));
        // Shared anonymous memory and file mappings are not judged.
        let s = smaps_entry("7f0000000000-7f0004000000", "rw-s", "/dev/zero (deleted)", 1024, 1);
        let l = parse_smaps(s.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!(l.anon(), 0);
    }

    #[test]
    fn reads_are_bounded_and_say_so() {
        let one = smaps_entry("7f0004200000-7f000a600000", "rw-p", "", 1024, 1024);
        let many = one.repeat(100);
        let l = parse_smaps(many.as_bytes(), MAX_SMAPS_BYTES, 10).unwrap();
        assert_eq!((l.mappings, l.truncated, l.anon_mmaps.anon), (10, true, 10 * MIB));
        let l = parse_smaps(many.as_bytes(), one.len() as u64 * 3, MAX_MAPPINGS).unwrap();
        assert!(l.truncated);
        assert_eq!(l.mappings, 3);
        let l = parse_smaps(many.as_bytes(), MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!((l.mappings, l.truncated), (100, false));
        // Garbage, an endless line and non-UTF-8 paths are skipped, never fatal.
        let mut junk = vec![b'a'; 100_000];
        junk.extend_from_slice(
            b"\nzz-yy rw-p\n7f0000000000-7f0000001000 rw-p 0 0:0 0 /tmp/\xff\nRss: 4 kB\n",
        );
        let l = parse_smaps(&junk[..], MAX_SMAPS_BYTES, MAX_MAPPINGS).unwrap();
        assert_eq!((l.mappings, l.anon()), (1, 0));
        assert_eq!(parse_smaps(&b""[..], 10, 10).unwrap(), Layout::default());
    }

    #[test]
    fn read_own_layout() {
        let v = std::hint::black_box(vec![1u8; 8 * MIB as usize]);
        let l = read_layout(std::process::id() as i32).expect("own smaps");
        assert!(l.anon() >= 8 * MIB, "{l:?}");
        assert!(l.mappings > 5);
        drop(v);
        assert_eq!(read_layout(i32::MAX), None);
    }

    fn layout(heap: u64, arenas: u64, mmaps: u64) -> Layout {
        let r = |b: u64, n: u32| Region { count: n, size: b, rss: b, anon: b, referenced: b };
        Layout {
            heap: r(heap, 1),
            arenas: r(arenas, (arenas / (64 * MIB)) as u32),
            anon_mmaps: r(mmaps, 3),
            mappings: 40,
            truncated: false,
            allocator: None,
        }
    }

    #[test]
    fn asleep_process_holding_its_heap_is_flagged() {
        let cfg = RetainCfg::default();
        let act = Activity { asleep_ns: Some(12 * SEC), cpu_percent: 0.0, over_ns: SEC };
        let r = judge(&layout(512 * MIB, 0, MIB), true, &act, &cfg).expect("flagged");
        assert_eq!(r.bytes, 513 * MIB);
        assert_eq!(r.quiet, Quiet::Asleep { for_ns: 12 * SEC });
        let text = r.describe(520 * MIB);
        assert!(text.starts_with("holds 513.0 MiB resident (512.0 MiB in its brk heap, 1.0 MiB in 3 anonymous mmaps; peak RSS 520.0 MiB)"), "{text}");
        assert!(text.contains("none of its threads has run for 12s"), "{text}");
        assert!(text.contains("cannot tell"), "{text}");
        // Arenas count as well as the heap.
        let r = judge(&layout(0, 320 * MIB, 0), true, &act, &cfg).expect("arenas");
        assert!(r.describe(0).contains("320.0 MiB in 5 glibc thread-arena heaps"));
    }

    #[test]
    fn small_moving_or_busy_is_not_flagged() {
        let cfg = RetainCfg::default();
        let asleep = Activity { asleep_ns: Some(60 * SEC), cpu_percent: 0.0, over_ns: SEC };
        // Below 256 MiB (a trimmed heap keeps its size but not its pages: anon is what counts).
        assert_eq!(judge(&layout(200 * MIB, 50 * MIB, 0), true, &asleep, &cfg), None);
        // Not steady (grew or shrank during the observation).
        assert_eq!(judge(&layout(512 * MIB, 0, 0), false, &asleep, &cfg), None);
        // Asleep too briefly and busy: a cache reading its data.
        let busy = Activity { asleep_ns: Some(SEC), cpu_percent: 8.0, over_ns: SEC };
        assert_eq!(judge(&layout(512 * MIB, 0, 0), true, &busy, &cfg), None);
        let running = Activity { asleep_ns: None, cpu_percent: 30.0, over_ns: SEC };
        assert_eq!(judge(&layout(512 * MIB, 0, 0), true, &running, &cfg), None);
        // Nearly idle (a heartbeat thread keeps it from being asleep).
        let idle = Activity { asleep_ns: None, cpu_percent: 0.2, over_ns: SEC };
        let r = judge(&layout(512 * MIB, 0, 0), true, &idle, &cfg).expect("nearly idle");
        assert_eq!(r.quiet, Quiet::NearlyIdle { cpu_percent: 0.2, over_ns: SEC });
        assert!(r.describe(0).contains("0.2% of a CPU over the last 1.0s"));
        // Too short an observation says nothing about idleness.
        let short = Activity { over_ns: SEC / 10, ..idle };
        assert_eq!(judge(&layout(512 * MIB, 0, 0), true, &short, &cfg), None);
    }

    #[test]
    fn layout_cache_rereads_only_when_needed() {
        use std::collections::HashMap;
        let cfg = RetainCfg::default();
        let mut c = LayoutCache::default();
        let mut reads = Vec::new();
        let mut read = |pid: i32| {
            reads.push(pid);
            Some(layout(512 * MIB, 0, 0))
        };
        let anon = HashMap::from([(1, 512 * MIB), (2, 10 * MIB)]);
        assert_eq!(c.layouts(0, &anon, &cfg, &mut read).len(), 1);
        // Same RSS, 10 s later: cached.
        assert_eq!(c.layouts(10 * SEC, &anon, &cfg, &mut read).len(), 1);
        // Moved by 20 MiB: re-read; 31 s after that read: re-read.
        let moved = HashMap::from([(1, 532 * MIB)]);
        c.layouts(11 * SEC, &moved, &cfg, &mut read);
        c.layouts(42 * SEC, &moved, &cfg, &mut read);
        // Dropped below the threshold (trimmed): no layout, and the cache forgets it.
        let trimmed = HashMap::from([(1, 3 * MIB)]);
        assert!(c.layouts(43 * SEC, &trimmed, &cfg, &mut read).is_empty());
        c.layouts(44 * SEC, &anon, &cfg, &mut read);
        assert_eq!(reads, vec![1, 1, 1, 1]);
        assert_eq!(c.reads, 4);
    }

    #[test]
    fn an_allocator_that_returns_memory_by_itself_owns_its_mmaps() {
        let cfg = RetainCfg::default();
        let asleep = Activity { asleep_ns: Some(60 * SEC), cpu_percent: 0.0, over_ns: SEC };
        // An idle Redis on jemalloc: 600 MiB of live data in anonymous mmaps, a small heap.
        let smaps = concat!(
            "7f0000000000-7f0025800000 rw-p 00000000 00:00 0 \n",
            "Rss: 614400 kB\nAnonymous: 614400 kB\nReferenced: 614400 kB\n",
            "7f1000000000-7f1000100000 r-xp 00000000 08:01 77 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n",
            "Rss: 512 kB\nAnonymous: 0 kB\n",
        );
        let l = parse_smaps(smaps.as_bytes(), 1 << 20, 100).expect("parses");
        assert_eq!(l.allocator, Some("jemalloc"));
        assert_eq!(l.anon(), 600 * MIB);
        assert_eq!(judge(&l, true, &asleep, &cfg), None);
        // The same mappings without jemalloc (pymalloc arenas pinned by survivors): judged.
        let plain =
            parse_smaps(smaps.replace("libjemalloc.so.2", "libfoo.so").as_bytes(), 1 << 20, 100)
                .expect("parses");
        assert_eq!(plain.allocator, None);
        assert!(judge(&plain, true, &asleep, &cfg).is_some());
        // jemalloc mapped, but 512 MiB in glibc's brk heap all the same: judged.
        let mut heap = l;
        heap.heap.anon = 512 * MIB;
        heap.heap.rss = 512 * MIB;
        assert!(judge(&heap, true, &asleep, &cfg).is_some());
    }

    #[test]
    fn unreferenced_pages_flag_even_a_busy_process() {
        let cfg = RetainCfg::default();
        let busy = Activity { asleep_ns: None, cpu_percent: 40.0, over_ns: SEC };
        let mut l = layout(1024 * MIB, 0, 0);
        l.heap.referenced = 200 * MIB;
        let r = judge(&l, true, &busy, &cfg).expect("unreferenced");
        assert_eq!(r.quiet, Quiet::Unreferenced { bytes: 824 * MIB });
        assert!(r.describe(0).contains("(5.1x what it referenced)"), "{}", r.describe(0));
        l.heap.referenced = 900 * MIB;
        assert_eq!(judge(&l, true, &busy, &cfg), None);
    }
}
