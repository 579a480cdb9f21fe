//! Native (C, C++, Rust) stacks of blocked threads, read without stopping anything.
//!
//! * **Registers:** a thread blocked in a system call has its user registers saved by the
//!   kernel; `/proc/PID/task/TID/syscall` shows its stack and instruction pointers (parsed by
//!   [`crate::procfs::parse_syscall_regs`]). The frame pointer is not shown there, so the
//!   unwind starts with none: frames whose CFI computes the caller from `rsp` (all of libc, all
//!   code built without frame pointers) unwind exactly; a frame that needs the frame pointer
//!   before any callee saved it ends the stack early, with an `error`.
//! * **Memory:** `process_vm_readv`, page-sized chunks read on demand, at most
//!   [`MAX_STACK_BYTES`] per thread. Never ptrace: a blocked thread's stack does not change
//!   while it waits, which is what makes reading it from outside safe.
//! * **Files:** every executable mapping of `/proc/PID/maps` is opened through
//!   `/proc/PID/map_files/START-END` (the very file mapped, also inside another mount
//!   namespace or container, also when deleted), else `/proc/PID/root/PATH`. Only the ELF
//!   headers and the `.eh_frame`, `.eh_frame_hdr` and `.debug_frame` sections are read (the
//!   `object` crate over a read cache, never a whole file, never an mmap that a truncation
//!   could turn into SIGBUS), each at most [`MAX_SECTION_BYTES`]. The result is cached per
//!   (device, inode), shared by every thread and every process mapping the same file.
//! * **Unwinding:** framehop (DWARF CFI from `.eh_frame`/`.debug_frame`, frame pointers where
//!   a module has no CFI): made for remote unwinding in profilers (samply), pure Rust, builds
//!   static with musl. At most [`MAX_FRAMES`] frames.
//! * **Symbols:** blazesym, the libbpf project's symbolizer: process addresses through
//!   `/proc/PID/map_files`, ELF symbols and DWARF file/line, C++ and Rust demangling. Where
//!   there is no symbol, a frame still has its module, its file offset and the module's
//!   build-id (read here from the ELF notes), enough to symbolize offline.
//!
//! Chosen over libunwind/elfutils (C libraries, awkward static musl builds) and over reading
//! with ptrace (stops the process). x86_64 only: on aarch64 the return address of the
//! innermost frame is in `lr`, which /proc does not show.

use std::{
    collections::HashMap,
    fs::File,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::NativeFrame;

/// Most frames unwound per thread.
pub const MAX_FRAMES: usize = 128;
/// Most bytes of stack read per thread.
pub const MAX_STACK_BYTES: usize = 512 * 1024;
/// Most bytes read of one unwind section.
pub const MAX_SECTION_BYTES: u64 = 64 * 1024 * 1024;
/// Most executable file mappings whose unwind tables are read per process (a process controls
/// how many files it maps).
pub const MAX_MODULES: usize = 512;
/// Most bytes of /proc/PID/maps read.
const MAX_MAPS_BYTES: usize = 8 * 1024 * 1024;
/// How far above `sp` a saved frame pointer is looked for.
const FP_SCAN_BYTES: u64 = 4096;
/// The frame pointer the unwind starts with, before one is recovered.
const UNKNOWN_BP: u64 = 1;
/// Most frame pointer guesses tried per thread.
const FP_CANDIDATES: usize = 4;
/// Stack memory is read in chunks of this size.
const CHUNK: u64 = 4096;

/// One executable mapping of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub range: Range<u64>,
    /// File offset of `range.start`.
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    pub path: String,
    pub exec: bool,
}

/// Parses /proc/PID/maps: file-backed mappings (anonymous ones are left out).
pub fn parse_maps(s: &str) -> Vec<Mapping> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(6, ' ');
            let (start, end) = it.next()?.split_once('-')?;
            let perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let dev = it.next()?.to_string();
            let inode: u64 = it.next()?.parse().ok()?;
            let path = it.next()?.trim_start().to_string();
            if inode == 0 || !path.starts_with('/') {
                return None;
            }
            Some(Mapping {
                range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
                offset,
                dev,
                inode,
                path,
                exec: perms.as_bytes().get(2) == Some(&b'x'),
            })
        })
        .collect()
}

/// What is read once per ELF file.
struct ModuleData {
    eh_frame: Option<(Range<u64>, Arc<[u8]>)>,
    eh_frame_hdr: Option<(Range<u64>, Arc<[u8]>)>,
    debug_frame: Option<Arc<[u8]>>,
    text: Option<Range<u64>>,
    got: Option<Range<u64>>,
    /// Segments: (file offset, file size, vaddr).
    loads: Vec<(u64, u64, u64)>,
    build_id: Option<String>,
}

/// A section's address range and (bounded) data.
fn section<'a, O: object::Object<'a>>(o: &O, name: &str) -> Option<(Range<u64>, Arc<[u8]>)> {
    use object::ObjectSection as _;
    let s = o.section_by_name(name)?;
    if s.size() > MAX_SECTION_BYTES {
        return None;
    }
    let data = s.data().ok()?;
    Some((s.address()..s.address() + s.size(), Arc::from(data)))
}

fn read_module(f: File) -> Result<ModuleData, String> {
    use object::{Object as _, ObjectSection as _, ObjectSegment as _};
    let cache = object::ReadCache::new(f);
    let o = object::File::parse(&cache).map_err(|e| format!("not an ELF file ({e})"))?;
    let range = |n: &str| o.section_by_name(n).map(|s| s.address()..s.address() + s.size());
    Ok(ModuleData {
        eh_frame: section(&o, ".eh_frame"),
        eh_frame_hdr: section(&o, ".eh_frame_hdr"),
        debug_frame: section(&o, ".debug_frame").map(|(_, d)| d),
        text: range(".text"),
        got: range(".got"),
        loads: o.segments().map(|s| (s.file_range().0, s.file_range().1, s.address())).collect(),
        build_id: o
            .build_id()
            .ok()
            .flatten()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect()),
    })
}

/// Per-module cache, shared by all the processes of a snapshot (and of live mode's scans).
#[derive(Default)]
pub struct ModuleCache {
    modules: HashMap<(String, u64), Arc<Result<ModuleData, String>>>,
    /// Files parsed (cache misses), for the stats.
    pub parsed: u64,
}

impl ModuleCache {
    fn get(&mut self, pid: i32, m: &Mapping) -> Arc<Result<ModuleData, String>> {
        let key = (m.dev.clone(), m.inode);
        if let Some(d) = self.modules.get(&key) {
            return Arc::clone(d);
        }
        self.parsed += 1;
        let d = Arc::new(open_mapped(pid, m).and_then(read_module));
        self.modules.insert(key, Arc::clone(&d));
        d
    }

    /// Drops every module (live mode calls this now and then, so that files replaced on disk
    /// do not pin memory).
    pub fn clear(&mut self) {
        self.modules.clear();
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }
}

/// The file of a mapping, as the process sees it.
fn open_mapped(pid: i32, m: &Mapping) -> Result<File, String> {
    let mf = format!("/proc/{pid}/map_files/{:x}-{:x}", m.range.start, m.range.end);
    File::open(&mf).or_else(|_| {
        let p = PathBuf::from(format!("/proc/{pid}/root")).join(m.path.trim_start_matches('/'));
        File::open(&p).map_err(|e| format!("cannot open {} ({e})", m.path))
    })
}

/// The process's modules, ready for unwinding.
pub struct ProcessModules {
    pub maps: Vec<Mapping>,
    #[cfg(target_arch = "x86_64")]
    unwinder: framehop::x86_64::UnwinderX86_64<Arc<[u8]>>,
    /// Module (by first mapping's start) -> (path, build-id).
    build_ids: HashMap<String, Option<String>>,
}

impl ProcessModules {
    pub fn read(pid: i32, cache: &mut ModuleCache) -> Result<ProcessModules, String> {
        let (b, _) =
            crate::procfs::read_bounded(Path::new(&format!("/proc/{pid}/maps")), MAX_MAPS_BYTES)
                .ok_or_else(|| "process gone".to_string())?;
        let maps = parse_maps(&String::from_utf8_lossy(&b));
        #[cfg(target_arch = "x86_64")]
        let mut unwinder = framehop::x86_64::UnwinderX86_64::new();
        #[cfg(target_arch = "x86_64")]
        use framehop::Unwinder as _;
        let mut build_ids = HashMap::new();
        for m in maps.iter().filter(|m| m.exec).take(MAX_MODULES) {
            let d = cache.get(pid, m);
            let Ok(d) = d.as_ref() else { continue };
            build_ids.insert(m.path.clone(), d.build_id.clone());
            // The load bias: where the segment holding this file offset was linked vs mapped.
            let Some(&(seg_off, _, seg_vaddr)) = d
                .loads
                .iter()
                .find(|(off, size, _)| off & !0xfff <= m.offset && m.offset < off + size)
            else {
                continue;
            };
            let bias =
                m.range.start.wrapping_sub(m.offset).wrapping_add(seg_off).wrapping_sub(seg_vaddr);
            #[cfg(target_arch = "x86_64")]
            unwinder.add_module(framehop::Module::new(
                m.path.clone(),
                m.range.clone(),
                bias,
                framehop::ExplicitModuleSectionInfo {
                    base_svma: 0,
                    text_svma: d.text.clone(),
                    got_svma: d.got.clone(),
                    eh_frame_svma: d.eh_frame.as_ref().map(|(r, _)| r.clone()),
                    eh_frame: d.eh_frame.as_ref().map(|(_, x)| Arc::clone(x)),
                    eh_frame_hdr_svma: d.eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
                    eh_frame_hdr: d.eh_frame_hdr.as_ref().map(|(_, x)| Arc::clone(x)),
                    debug_frame: d.debug_frame.clone(),
                    ..Default::default()
                },
            ));
            let _ = bias;
        }
        Ok(ProcessModules {
            maps,
            #[cfg(target_arch = "x86_64")]
            unwinder,
            build_ids,
        })
    }

    /// The file mapping holding `addr`.
    pub fn mapping(&self, addr: u64) -> Option<&Mapping> {
        self.maps.iter().find(|m| m.range.contains(&addr))
    }

    /// Unwinds from `sp`/`pc`: the frames' addresses (the first is `pc`, then return
    /// addresses), and why it stopped early if it did.
    ///
    /// The frame pointer (`rbp`) at the system call is not shown by /proc, and code built with
    /// frame pointers (PostgreSQL on Debian, every package of Ubuntu 24.04) computes its
    /// caller from it: the unwind would end at the first such frame. When it ends early, the
    /// frame pointer is recovered from the stack ([`frame_pointer_candidates`]): the first
    /// few slots above `sp` that hold a saved frame pointer next to a return address are
    /// tried, and the longest stack is kept.
    pub fn unwind(&self, pid: i32, sp: u64, pc: u64) -> (Vec<u64>, Option<String>) {
        #[cfg(target_arch = "x86_64")]
        {
            let mut mem = StackReader::new(pid, sp);
            // Not 0: framehop takes a frame pointer of 0 for the end of the stack, and ends
            // quietly; 1 (misaligned, below any stack) makes a frame that needs it fail.
            let first = self.unwind_with(&mut mem, sp, pc, UNKNOWN_BP);
            if first.1.is_none() || first.1.as_deref().is_some_and(|e| e.starts_with("cut at")) {
                return first;
            }
            let mut best = first;
            for bp in self.frame_pointer_candidates(pid, &mut mem, sp) {
                let tried = self.unwind_with(&mut mem, sp, pc, bp);
                if tried.0.len() > best.0.len() {
                    best = tried;
                }
            }
            best
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (pid, sp);
            (vec![pc], Some("native unwinding is only implemented on x86_64".into()))
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn unwind_with(
        &self,
        mem: &mut StackReader,
        sp: u64,
        pc: u64,
        bp: u64,
    ) -> (Vec<u64>, Option<String>) {
        use framehop::Unwinder as _;
        let mut cache = framehop::x86_64::CacheX86_64::<_>::new();
        let regs = framehop::x86_64::UnwindRegsX86_64::new(pc, sp, bp);
        let mut read = |addr: u64| mem.read_u64(addr);
        let mut it = self.unwinder.iter_frames(pc, regs, &mut cache, &mut read);
        let mut out = Vec::new();
        loop {
            match it.next() {
                Ok(Some(f)) => {
                    out.push(f.address());
                    if out.len() >= MAX_FRAMES {
                        return (out, Some(format!("cut at {MAX_FRAMES} frames")));
                    }
                }
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(format!("unwinding stopped ({e})"))),
            }
        }
    }

    /// Where the frame pointer may point, lowest first: slots `x` in the [`FP_SCAN_BYTES`]
    /// above `sp` holding a saved frame pointer (an address further up the stack, or 0 at the
    /// outermost frame) with a return address after it (in an executable file mapping, right
    /// after a call instruction). At most [`FP_CANDIDATES`]; a slot left over from an earlier
    /// call can pass these checks too, which is why each is only kept if it unwinds further.
    #[cfg(target_arch = "x86_64")]
    fn frame_pointer_candidates(&self, pid: i32, mem: &mut StackReader, sp: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let start = sp.next_multiple_of(8);
        for x in (start..start.saturating_add(FP_SCAN_BYTES)).step_by(8) {
            let (Ok(saved), Ok(ret)) = (mem.read_u64(x), mem.read_u64(x + 8)) else { break };
            if saved != 0 && !(x < saved && saved - x <= MAX_STACK_BYTES as u64) {
                continue;
            }
            if !self.mapping(ret).is_some_and(|m| m.exec) || !after_call(pid, ret) {
                continue;
            }
            out.push(x);
            if out.len() >= FP_CANDIDATES {
                break;
            }
        }
        out
    }

    /// Module, file offset and build-id of an address.
    pub fn locate(&self, addr: u64) -> (Option<String>, Option<u64>, Option<String>) {
        match self.mapping(addr) {
            Some(m) => (
                Some(m.path.clone()),
                Some(addr - m.range.start + m.offset),
                self.build_ids.get(&m.path).cloned().flatten(),
            ),
            None => (None, None, None),
        }
    }
}

/// Reads a thread's stack memory in page-sized chunks, bounded by [`MAX_STACK_BYTES`].
struct StackReader {
    pid: i32,
    chunks: Vec<(u64, Vec<u8>)>,
    budget: usize,
    lowest: u64,
}

impl StackReader {
    fn new(pid: i32, sp: u64) -> StackReader {
        StackReader { pid, chunks: Vec::new(), budget: MAX_STACK_BYTES, lowest: sp & !(CHUNK - 1) }
    }

    fn read_u64(&mut self, addr: u64) -> Result<u64, ()> {
        // Only the stack above the innermost frame is ever read.
        if addr < self.lowest || !addr.is_multiple_of(8) {
            return Err(());
        }
        let base = addr & !(CHUNK - 1);
        let i = match self.chunks.iter().position(|(b, _)| *b == base) {
            Some(i) => i,
            None => {
                if self.budget < CHUNK as usize {
                    return Err(());
                }
                self.budget -= CHUNK as usize;
                let buf = read_remote(self.pid, base, CHUNK as usize).ok_or(())?;
                self.chunks.push((base, buf));
                self.chunks.len() - 1
            }
        };
        let (b, buf) = &self.chunks[i];
        let off = (addr - b) as usize;
        let bytes: [u8; 8] = buf.get(off..off + 8).ok_or(())?.try_into().map_err(|_| ())?;
        Ok(u64::from_ne_bytes(bytes))
    }
}

/// Whether the instruction before `ret` in process `pid` is a call, so that `ret` is a return
/// address: `call rel32` (E8), or an indirect call (FF /2) through a register, a register
/// with a displacement, or `[rip+disp32]`, with or without a REX prefix.
fn after_call(pid: i32, ret: u64) -> bool {
    let Some(b) = ret.checked_sub(8).and_then(|at| read_remote(pid, at, 8)) else {
        return false;
    };
    is_call_before(&b)
}

/// [`after_call`] over the 8 bytes before a return address.
fn is_call_before(b: &[u8]) -> bool {
    let n = b.len();
    if n < 8 {
        return false;
    }
    // FF /2: the ModR/M byte's reg field is 2.
    let ff2 = |at: usize| b[at] == 0xFF && (b[at + 1] >> 3) & 7 == 2;
    b[n - 5] == 0xE8 || ff2(n - 2) || ff2(n - 3) || ff2(n - 6) || ff2(n - 7) || ff2(n - 4)
}

/// `len` bytes of another process's memory at `addr`, or `None` (unmapped, gone).
pub fn read_remote(pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` points at `buf`, which is valid for `len` writable bytes and outlives
    // the call; `remote` is only read by the kernel, in the other process, with its own checks.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (n == len as isize).then_some(buf)
}

/// What is known of one address: symbol, source file, line.
pub type SymInfo = (Option<String>, Option<String>, Option<u32>);

/// Symbolizes a process's frame addresses with blazesym: (symbol, file, line) per address.
/// Return addresses are looked up one byte back (the call, not what follows it).
pub fn symbolize(sym: &blazesym::symbolize::Symbolizer, pid: i32, lookups: &[u64]) -> Vec<SymInfo> {
    use blazesym::symbolize::{
        Input, Symbolized,
        source::{Process, Source},
    };
    let mut src = Process::new(blazesym::Pid::from(pid as u32));
    // A perf map is a file in /tmp that the process writes: not trusted.
    src.perf_map = false;
    match sym.symbolize(&Source::Process(src), Input::AbsAddr(lookups)) {
        Ok(v) => v
            .into_iter()
            .map(|s| match s {
                Symbolized::Sym(s) => {
                    let (file, line) = match &s.code_info {
                        Some(ci) => (Some(ci.to_path().to_string_lossy().into_owned()), ci.line),
                        None => (None, None),
                    };
                    (Some(s.name.into_owned()), file, line)
                }
                Symbolized::Unknown(_) => (None, None, None),
            })
            .collect(),
        Err(_) => vec![(None, None, None); lookups.len()],
    }
}

/// Builds the frames of one thread from its unwound addresses.
pub fn frames(
    pm: &ProcessModules,
    addrs: &[u64],
    symbols: &HashMap<u64, SymInfo>,
) -> Vec<NativeFrame> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, &addr)| {
            let lookup = lookup_addr(i, addr);
            let (module, offset, build_id) = pm.locate(lookup);
            let (symbol, file, line) = symbols.get(&lookup).cloned().unwrap_or((None, None, None));
            NativeFrame { addr, symbol, module, offset, file, line, build_id }
        })
        .collect()
}

/// The address to look up for frame `i`: the pc itself, or one byte into the call before a
/// return address.
pub fn lookup_addr(i: usize, addr: u64) -> u64 {
    if i == 0 { addr } else { addr.saturating_sub(1) }
}

/// Functions where a stack properly ends.
pub fn is_root_frame(symbol: &str) -> bool {
    matches!(
        symbol,
        "_start"
            | "__clone"
            | "__clone3"
            | "clone"
            | "clone3"
            | "start_thread"
            | "__libc_start_main"
    ) || symbol.starts_with("__libc_start")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_file_mappings() {
        let s = "55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /usr/bin/x y\n\
                 55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /usr/bin/x y\n\
                 7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n\
                 7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n";
        let m = parse_maps(s);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].path, "/usr/bin/x y");
        assert!(m[1].exec && !m[0].exec);
        assert_eq!(m[1].offset, 0x1000);
        assert_eq!(m[1].range, 0x55d0c0a01000..0x55d0c0a02000);
    }

    #[test]
    fn return_addresses_are_looked_up_one_byte_back() {
        assert_eq!(lookup_addr(0, 0x1000), 0x1000);
        assert_eq!(lookup_addr(1, 0x1000), 0xfff);
        assert!(is_root_frame("__libc_start_call_main") && !is_root_frame("main"));
    }

    #[test]
    fn call_instructions_before_a_return_address() {
        let before = |tail: &[u8]| {
            let mut b = vec![0x90u8; 8 - tail.len()];
            b.extend_from_slice(tail);
            is_call_before(&b)
        };
        assert!(before(&[0xE8, 1, 2, 3, 4])); // call rel32
        assert!(before(&[0xFF, 0xD0])); // call rax
        assert!(before(&[0x41, 0xFF, 0xD3])); // call r11
        assert!(before(&[0xFF, 0x50, 0x08])); // call [rax+8]
        assert!(before(&[0xFF, 0x15, 1, 2, 3, 4])); // call [rip+disp32]
        assert!(before(&[0xFF, 0x54, 0x24, 0x08])); // call [rsp+8]
        assert!(!before(&[0x90, 0x90])); // nops
        assert!(!before(&[0xFF, 0xE0])); // jmp rax (FF /4)
        assert!(!before(&[0xC3])); // ret
        assert!(!is_call_before(&[0xE8, 0, 0, 0, 0])); // too short to tell
    }

    #[test]
    fn reads_own_stack_memory() {
        let x: u64 = 0x1122_3344_5566_7788;
        let addr = &x as *const u64 as u64;
        let b = read_remote(std::process::id() as i32, addr, 8).expect("own memory");
        assert_eq!(u64::from_ne_bytes(b.try_into().expect("8 bytes")), x);
        assert!(read_remote(std::process::id() as i32, 8, 8).is_none());
    }
}
