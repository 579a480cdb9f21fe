//! Decoding of the arguments of a syscall a thread is blocked in.
//!
//! Syscall numbers and struct layouts are x86_64's; on other architectures
//! every syscall falls back to the raw rendering.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use serde_json::{Map, Value, json};

use super::{TaskView, display_name};
use crate::fmt::{fmt_duration_ms, shorten_tail};

/// A decoded blocked syscall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decoded {
    /// syscall name ("futex", "poll", ... or "syscall_N")
    pub syscall: String,
    /// decoded arguments as a JSON object (serde_json::Map<String, Value>)
    pub args: serde_json::Map<String, serde_json::Value>,
    /// one-line human rendering, e.g. "poll(1 fd: 7 socket:[123], timeout=infinite)"
    pub human: String,
    /// true when the wait has no timeout (waits forever until something happens)
    pub infinite: bool,
    /// the fds this wait is on (for later wait-for analysis)
    pub fds: Vec<i32>,
    /// for wait4/waitid: the pid waited for (Some(-1) = any child)
    pub wait_pid: Option<i64>,
}

/// Decode syscall `nr` with raw register arguments `args`, reading pointed-to
/// structs and fd targets through `task`. Never panics; whatever cannot be
/// read is reported as `null` / `*_unreadable`.
#[must_use]
pub fn decode(nr: i64, args: [u64; 6], task: &dyn TaskView) -> Decoded {
    let mut out = Out::default();
    if !decode_known(nr, &args, task, &mut out) {
        out = Out::default();
        raw(&args, &mut out);
    }
    let syscall = display_name(nr);
    let human = format!("{syscall}({})", out.parts.join(", "));
    Decoded {
        syscall,
        args: out.args,
        human,
        infinite: out.infinite,
        fds: out.fds,
        wait_pid: out.wait_pid,
    }
}

// ---------------------------------------------------------------------------
// Output builder

#[derive(Default)]
struct Out {
    args: Map<String, Value>,
    /// Comma-separated pieces between the parentheses of `human`.
    parts: Vec<String>,
    infinite: bool,
    fds: Vec<i32>,
    wait_pid: Option<i64>,
}

impl Out {
    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.args.insert(key.to_owned(), value.into());
    }

    fn part(&mut self, part: impl Into<String>) {
        self.parts.push(part.into());
    }

    /// Record whether the call waits with no time limit (`infinite` both in
    /// the JSON args and on [`Decoded`]).
    fn waits_forever(&mut self, infinite: bool) {
        self.infinite = infinite;
        self.set("infinite", infinite);
    }

    /// `fd` and its target under the given keys; remembers the fd as waited on.
    fn fd(&mut self, fd_key: &str, target_key: &str, fd: &Fd) {
        self.set(fd_key, fd.fd);
        self.set(target_key, fd.target.clone());
        self.push_fd(fd.fd);
    }

    fn push_fd(&mut self, fd: i32) {
        if fd >= 0 && !self.fds.contains(&fd) {
            self.fds.push(fd);
        }
    }

    /// [`Out::timeout_fields`] plus the `timeout=…` human part.
    fn timeout(&mut self, t: Timeout, absolute: bool) {
        self.timeout_fields(t, absolute);
        self.part(t.human(absolute));
    }

    /// `timeout_ms`, `infinite`, and `timeout_absolute` / `timeout_unreadable`
    /// when they apply.
    fn timeout_fields(&mut self, t: Timeout, absolute: bool) {
        match t {
            Timeout::Infinite => {
                self.set("timeout_ms", Value::Null);
                self.waits_forever(true);
            }
            Timeout::Ms(ms) => {
                self.set("timeout_ms", ms);
                self.waits_forever(false);
                if absolute {
                    self.set("timeout_absolute", true);
                }
            }
            Timeout::Unreadable => {
                self.set("timeout_ms", Value::Null);
                self.waits_forever(false);
                self.set("timeout_unreadable", true);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the task

/// Read exactly `len` bytes at `addr` (null pointer → None).
fn read_exact(task: &dyn TaskView, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut bytes = task.read_mem(addr, len)?;
    if bytes.len() < len {
        return None;
    }
    bytes.truncate(len);
    Some(bytes)
}

fn u64_at(bytes: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(off..off + 8)?.try_into().ok()?))
}

fn i64_at(bytes: &[u8], off: usize) -> Option<i64> {
    Some(i64::from_ne_bytes(bytes.get(off..off + 8)?.try_into().ok()?))
}

fn i32_at(bytes: &[u8], off: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(off..off + 4)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(bytes: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(off..off + 2)?.try_into().ok()?))
}

/// `{sec, sub}` pair (struct timespec or struct timeval, 16 bytes) in ms.
/// `sub_per_ms` is 1_000_000 for nanoseconds, 1_000 for microseconds.
fn read_time_ms(task: &dyn TaskView, addr: u64, sub_per_ms: i64) -> Option<u64> {
    let bytes = read_exact(task, addr, 16)?;
    let sec = i64_at(&bytes, 0)?;
    let sub = i64_at(&bytes, 8)?;
    Some(pair_to_ms(sec, sub, sub_per_ms))
}

fn pair_to_ms(sec: i64, sub: i64, sub_per_ms: i64) -> u64 {
    let sec = u64::try_from(sec).unwrap_or(0);
    let sub = u64::try_from(sub / sub_per_ms.max(1)).unwrap_or(0).min(999);
    sec.saturating_mul(1000).saturating_add(sub)
}

/// NUL-terminated string at `addr`, at most 4096 bytes, lossy UTF-8. Reads
/// in chunks that never cross a page so a string near the end of a mapping
/// is still readable.
fn read_cstr(task: &dyn TaskView, addr: u64) -> Option<String> {
    const PAGE: u64 = 4096;
    const MAX: usize = 4096;
    if addr == 0 {
        return None;
    }
    let mut bytes = Vec::new();
    let mut cur = addr;
    while bytes.len() < MAX {
        let want = usize::try_from((PAGE - cur % PAGE).min(256)).ok()?;
        let chunk = task.read_mem(cur, want)?;
        let chunk = chunk.get(..want.min(chunk.len()))?;
        if chunk.is_empty() {
            return None;
        }
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            bytes.extend_from_slice(chunk.get(..end)?);
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.extend_from_slice(chunk);
        cur = cur.checked_add(u64::try_from(chunk.len()).ok()?)?;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------
// Shared pieces

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timeout {
    Infinite,
    Ms(u64),
    Unreadable,
}

impl Timeout {
    /// `int timeout` in ms (poll, epoll_wait): negative waits forever.
    fn int_ms(raw: u64) -> Self {
        let ms = raw as u32 as i32;
        match u64::try_from(ms) {
            Ok(ms) => Self::Ms(ms),
            Err(_) => Self::Infinite,
        }
    }

    /// `struct timespec *`: null waits forever.
    fn timespec(task: &dyn TaskView, addr: u64) -> Self {
        Self::pointer(task, addr, 1_000_000)
    }

    /// `struct timeval *`: null waits forever.
    fn timeval(task: &dyn TaskView, addr: u64) -> Self {
        Self::pointer(task, addr, 1_000)
    }

    fn pointer(task: &dyn TaskView, addr: u64, sub_per_ms: i64) -> Self {
        if addr == 0 {
            return Self::Infinite;
        }
        match read_time_ms(task, addr, sub_per_ms) {
            Some(ms) => Self::Ms(ms),
            None => Self::Unreadable,
        }
    }

    fn human(self, absolute: bool) -> String {
        match self {
            Self::Infinite => "timeout=infinite".to_owned(),
            Self::Ms(ms) if absolute => format!("timeout=abs:{}", fmt_duration_ms(ms)),
            Self::Ms(ms) => format!("timeout={}", fmt_duration_ms(ms)),
            Self::Unreadable => "timeout=?".to_owned(),
        }
    }
}

/// Longest fd target shown in `human` before it is cut to "…" + its tail.
const MAX_TARGET_CHARS: usize = 40;
/// How many fds `human` lists before "+N more".
const MAX_HUMAN_FDS: usize = 4;
/// How many fds (per set) are read and resolved for the JSON args.
const MAX_FDS: usize = 64;

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// A file descriptor argument and what it points to.
#[derive(Clone, Debug)]
struct Fd {
    fd: i32,
    target: Option<String>,
}

impl Fd {
    fn new(task: &dyn TaskView, fd: i32) -> Self {
        let target = if fd >= 0 { task.fd_target(fd) } else { None };
        Self { fd, target }
    }

    /// From a register: the low 32 bits as a C `int`.
    fn arg(task: &dyn TaskView, raw: u64) -> Self {
        Self::new(task, raw as u32 as i32)
    }

    /// "7 socket:[123]" (just "7" when the target is unknown).
    fn label(&self) -> String {
        match &self.target {
            Some(t) => format!("{} {}", self.fd, shorten_tail(t, MAX_TARGET_CHARS)),
            None => self.fd.to_string(),
        }
    }

    fn json(&self) -> Value {
        json!({ "fd": self.fd, "target": self.target })
    }
}

/// "4 pipe:[9], 5 socket:[10], 6 /dev/null, 7 x, +3 more". `unseen` counts
/// fds that exist but were not read at all.
fn fd_list<'a>(fds: impl Iterator<Item = &'a Fd>, unseen: u64) -> String {
    let mut shown = Vec::new();
    let mut more = unseen;
    for fd in fds {
        if shown.len() < MAX_HUMAN_FDS {
            shown.push(fd.label());
        } else {
            more = more.saturating_add(1);
        }
    }
    if more > 0 {
        shown.push(format!("+{more} more"));
    }
    shown.join(", ")
}

/// "A|B|0x40" for the set bits of `value`; "0" when none are set.
fn flags(value: u64, names: &[(u64, &str)]) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    for &(bit, name) in names {
        if bit != 0 && value & bit == bit {
            parts.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(hex(rest));
    }
    if parts.is_empty() { "0".to_owned() } else { parts.join("|") }
}

fn clock_name(id: i64) -> String {
    match id {
        0 => "REALTIME".to_owned(),
        1 => "MONOTONIC".to_owned(),
        2 => "PROCESS_CPUTIME_ID".to_owned(),
        3 => "THREAD_CPUTIME_ID".to_owned(),
        4 => "MONOTONIC_RAW".to_owned(),
        5 => "REALTIME_COARSE".to_owned(),
        6 => "MONOTONIC_COARSE".to_owned(),
        7 => "BOOTTIME".to_owned(),
        8 => "REALTIME_ALARM".to_owned(),
        9 => "BOOTTIME_ALARM".to_owned(),
        11 => "TAI".to_owned(),
        n if n < 0 => format!("CPU_CLOCK_{n}"),
        n => format!("CLOCK_{n}"),
    }
}

// ---------------------------------------------------------------------------
// Dispatch

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: i64 = 0;
    pub const WRITE: i64 = 1;
    pub const OPEN: i64 = 2;
    pub const POLL: i64 = 7;
    pub const IOCTL: i64 = 16;
    pub const PREAD64: i64 = 17;
    pub const PWRITE64: i64 = 18;
    pub const READV: i64 = 19;
    pub const WRITEV: i64 = 20;
    pub const SELECT: i64 = 23;
    pub const PAUSE: i64 = 34;
    pub const NANOSLEEP: i64 = 35;
    pub const SENDFILE: i64 = 40;
    pub const CONNECT: i64 = 42;
    pub const ACCEPT: i64 = 43;
    pub const SENDTO: i64 = 44;
    pub const RECVFROM: i64 = 45;
    pub const SENDMSG: i64 = 46;
    pub const RECVMSG: i64 = 47;
    pub const WAIT4: i64 = 61;
    pub const SEMOP: i64 = 65;
    pub const MSGSND: i64 = 69;
    pub const MSGRCV: i64 = 70;
    pub const FCNTL: i64 = 72;
    pub const FLOCK: i64 = 73;
    pub const FSYNC: i64 = 74;
    pub const FDATASYNC: i64 = 75;
    pub const RT_SIGTIMEDWAIT: i64 = 128;
    pub const RT_SIGSUSPEND: i64 = 130;
    pub const FUTEX: i64 = 202;
    pub const IO_GETEVENTS: i64 = 208;
    pub const SEMTIMEDOP: i64 = 220;
    pub const CLOCK_NANOSLEEP: i64 = 230;
    pub const EPOLL_WAIT: i64 = 232;
    pub const MQ_TIMEDSEND: i64 = 242;
    pub const MQ_TIMEDRECEIVE: i64 = 243;
    pub const WAITID: i64 = 247;
    pub const OPENAT: i64 = 257;
    pub const PSELECT6: i64 = 270;
    pub const PPOLL: i64 = 271;
    pub const SPLICE: i64 = 275;
    pub const TEE: i64 = 276;
    pub const EPOLL_PWAIT: i64 = 281;
    pub const ACCEPT4: i64 = 288;
    pub const RECVMMSG: i64 = 299;
    pub const SENDMMSG: i64 = 307;
    pub const IO_PGETEVENTS: i64 = 333;
    pub const IO_URING_ENTER: i64 = 426;
    pub const OPENAT2: i64 = 437;
    pub const EPOLL_PWAIT2: i64 = 441;
    pub const FUTEX_WAITV: i64 = 449;
    pub const FUTEX_WAIT: i64 = 455;
}

/// Fill `out` for a syscall this module understands; false → raw fallback.
#[cfg(target_arch = "x86_64")]
fn decode_known(nr: i64, a: &[u64; 6], t: &dyn TaskView, o: &mut Out) -> bool {
    use nr::*;
    match nr {
        FUTEX => futex(a, t, o),
        FUTEX_WAITV => futex_waitv(a, t, o),
        FUTEX_WAIT => futex_wait(a, t, o),
        POLL => poll(a, t, o, Timeout::int_ms(a[2])),
        PPOLL => poll(a, t, o, Timeout::timespec(t, a[2])),
        SELECT => select(a, t, o, Timeout::timeval(t, a[4])),
        PSELECT6 => select(a, t, o, Timeout::timespec(t, a[4])),
        EPOLL_WAIT | EPOLL_PWAIT => epoll(a, t, o, Timeout::int_ms(a[3])),
        EPOLL_PWAIT2 => epoll(a, t, o, Timeout::timespec(t, a[3])),
        WAIT4 => wait4(a, o),
        WAITID => waitid(a, t, o),
        READ | RECVFROM => fd_io(a, t, o, Some(a[2]), false),
        WRITE | SENDTO => fd_io(a, t, o, Some(a[2]), true),
        PREAD64 | PWRITE64 => {
            fd_io(a, t, o, Some(a[2]), nr == PWRITE64);
            o.set("offset", a[3] as i64);
        }
        READV | WRITEV => vector_io(a, t, o, nr == WRITEV),
        ACCEPT | ACCEPT4 | CONNECT | RECVMSG | SENDMSG | FSYNC | FDATASYNC => {
            fd_io(a, t, o, None, false);
        }
        RECVMMSG | SENDMMSG => {
            fd_io(a, t, o, None, false);
            o.set("vlen", a[2] as u32);
        }
        IOCTL => {
            fd_io(a, t, o, None, false);
            let request = hex(u64::from(a[1] as u32));
            o.set("request", request.clone());
            o.part(request);
        }
        FLOCK => flock(a, t, o),
        FCNTL => fcntl(a, t, o),
        SPLICE => {
            two_fd(a, t, o, ("fd_in", "target_in", a[0]), ("fd_out", "target_out", a[2]), a[4])
        }
        TEE => two_fd(a, t, o, ("fd_in", "target_in", a[0]), ("fd_out", "target_out", a[1]), a[2]),
        SENDFILE => {
            two_fd(a, t, o, ("in_fd", "in_target", a[1]), ("out_fd", "out_target", a[0]), a[3])
        }
        IO_URING_ENTER => io_uring_enter(a, t, o),
        MQ_TIMEDSEND | MQ_TIMEDRECEIVE => {
            let fd = Fd::arg(t, a[0]);
            o.fd("mqdes", "target", &fd);
            o.part(format!("mqdes {}", fd.label()));
            o.timeout(Timeout::timespec(t, a[4]), true);
        }
        NANOSLEEP => nanosleep(a, t, o),
        CLOCK_NANOSLEEP => clock_nanosleep(a, t, o),
        PAUSE | RT_SIGSUSPEND => o.waits_forever(true),
        RT_SIGTIMEDWAIT => o.timeout(Timeout::timespec(t, a[2]), false),
        SEMOP | SEMTIMEDOP => {
            let semid = a[0] as u32 as i32;
            o.set("semid", semid);
            o.set("nsops", a[2]);
            o.part(format!("semid {semid}, nsops {}", a[2]));
            if nr == SEMTIMEDOP {
                o.timeout(Timeout::timespec(t, a[3]), false);
            } else {
                o.waits_forever(true);
            }
        }
        MSGSND | MSGRCV => msg(a, o, nr == MSGRCV),
        IO_GETEVENTS | IO_PGETEVENTS => {
            o.set("ctx_id", hex(a[0]));
            o.set("min_nr", a[1] as i64);
            o.set("nr", a[2] as i64);
            o.part(format!("ctx {}, min_nr {}", hex(a[0]), a[1] as i64));
            o.timeout(Timeout::timespec(t, a[4]), false);
        }
        OPEN => open(t, o, None, a[0], a[1]),
        OPENAT => open(t, o, Some(a[0]), a[1], a[2]),
        OPENAT2 => open(t, o, Some(a[0]), a[1], 0),
        _ => return false,
    }
    true
}

#[cfg(not(target_arch = "x86_64"))]
fn decode_known(_nr: i64, _a: &[u64; 6], _t: &dyn TaskView, _o: &mut Out) -> bool {
    false
}

/// Unknown syscall: six hex args; `human` drops trailing zero args.
fn raw(a: &[u64; 6], o: &mut Out) {
    o.set("raw", a.iter().map(|&v| hex(v)).collect::<Vec<_>>());
    let keep = a.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
    for &v in a.iter().take(keep) {
        o.part(hex(v));
    }
}

// ---------------------------------------------------------------------------
// futex

const FUTEX_PRIVATE_FLAG: u32 = 128;
const FUTEX_CLOCK_REALTIME: u32 = 256;
const FUTEX_WAIT_OP: u32 = 0;
const FUTEX_LOCK_PI: u32 = 6;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
const FUTEX_LOCK_PI2: u32 = 13;
/// Owner TID bits of a PI futex word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

fn futex_op_name(cmd: u32) -> String {
    const NAMES: [&str; 14] = [
        "WAIT",
        "WAKE",
        "FD",
        "REQUEUE",
        "CMP_REQUEUE",
        "WAKE_OP",
        "LOCK_PI",
        "UNLOCK_PI",
        "TRYLOCK_PI",
        "WAIT_BITSET",
        "WAKE_BITSET",
        "WAIT_REQUEUE_PI",
        "CMP_REQUEUE_PI",
        "LOCK_PI2",
    ];
    match usize::try_from(cmd).ok().and_then(|i| NAMES.get(i)) {
        Some(name) => (*name).to_owned(),
        None => format!("OP_{cmd}"),
    }
}

/// futex(uaddr, op, val, timeout|val2, uaddr2, val3)
fn futex(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    let op = a[1] as u32;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let name = futex_op_name(cmd);
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    // LOCK_PI always times out against CLOCK_REALTIME, whatever the flag says.
    let realtime = cmd == FUTEX_LOCK_PI || op & FUTEX_CLOCK_REALTIME != 0;
    o.set("op", name.clone());
    o.set("uaddr", hex(a[0]));
    o.set("private", private);
    o.set("clock", if realtime { "REALTIME" } else { "MONOTONIC" });
    o.set("val", a[2] as u32);

    let mut human = name;
    if private {
        human.push_str(" private");
    }
    human.push(' ');
    human.push_str(&hex(a[0]));

    // Only the waiting ops take a timeout pointer; for the others arg 3 is
    // an integer (val2) and they do not block.
    let absolute = match cmd {
        FUTEX_WAIT_OP => Some(false),
        FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_REQUEUE_PI => Some(true),
        _ => None,
    };
    if cmd == FUTEX_WAIT_BITSET {
        o.set("bitset", hex(u64::from(a[5] as u32)));
    }
    if cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2 {
        // The futex word of a PI lock holds the owner's TID.
        let owner = read_exact(t, a[0], 4).and_then(|b| u32_at(&b, 0)).map(|w| w & FUTEX_TID_MASK);
        match owner {
            Some(tid) if tid != 0 => {
                o.set("owner_tid", tid);
                human = format!("{human} owner={tid}");
            }
            _ => o.set("owner_tid", Value::Null),
        }
    }
    match absolute {
        Some(absolute) => {
            let timeout = Timeout::timespec(t, a[3]);
            o.timeout_fields(timeout, absolute);
            human.push(' ');
            human.push_str(&timeout.human(absolute));
        }
        None => {
            o.set("timeout_ms", Value::Null);
            o.waits_forever(false);
        }
    }
    o.part(human);
}

/// Upper bound on futex_waitv's nr_futexes (FUTEX_WAITV_MAX).
const FUTEX_WAITV_MAX: u64 = 128;

/// futex_waitv(waiters, nr_futexes, flags, timeout, clockid)
fn futex_waitv(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    let n = u64::from(a[1] as u32);
    o.set("waiters", hex(a[0]));
    o.set("nr_futexes", n);
    o.set("clock", clock_name(i64::from(a[4] as u32 as i32)));
    // struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 __reserved; }
    let uaddrs = usize::try_from(n.min(FUTEX_WAITV_MAX))
        .ok()
        .and_then(|n| read_exact(t, a[0], n * 24))
        .and_then(|b| {
            (0..b.len() / 24).map(|i| u64_at(&b, i * 24 + 8).map(hex)).collect::<Option<Vec<_>>>()
        });
    o.set("uaddrs", uaddrs);
    let timeout = Timeout::timespec(t, a[3]);
    o.timeout_fields(timeout, true);
    let noun = if n == 1 { "futex" } else { "futexes" };
    o.part(format!("{n} {noun} {}", timeout.human(true)));
}

/// futex_wait(uaddr, val, mask, flags, timeout, clockid) — futex2, absolute timeout.
fn futex_wait(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    const FUTEX2_PRIVATE: u64 = 128;
    let private = a[3] & FUTEX2_PRIVATE != 0;
    o.set("uaddr", hex(a[0]));
    o.set("val", a[1]);
    o.set("bitset", hex(a[2]));
    o.set("private", private);
    o.set("clock", clock_name(i64::from(a[5] as u32 as i32)));
    let timeout = Timeout::timespec(t, a[4]);
    o.timeout_fields(timeout, true);
    let private = if private { "private " } else { "" };
    o.part(format!("{private}{} {}", hex(a[0]), timeout.human(true)));
}

// ---------------------------------------------------------------------------
// poll / select / epoll

const POLL_EVENTS: [(u64, &str); 13] = [
    (0x1, "IN"),
    (0x2, "PRI"),
    (0x4, "OUT"),
    (0x8, "ERR"),
    (0x10, "HUP"),
    (0x20, "NVAL"),
    (0x40, "RDNORM"),
    (0x80, "RDBAND"),
    (0x100, "WRNORM"),
    (0x200, "WRBAND"),
    (0x400, "MSG"),
    (0x1000, "REMOVE"),
    (0x2000, "RDHUP"),
];

/// poll(fds, nfds, int ms) / ppoll(fds, nfds, tsp, sigmask, sigsetsize)
fn poll(a: &[u64; 6], t: &dyn TaskView, o: &mut Out, timeout: Timeout) {
    let nfds = u64::from(a[1] as u32);
    o.set("nfds", nfds);
    let want = nfds.min(MAX_FDS as u64);
    if nfds > want {
        o.set("fds_truncated", true);
    }
    // struct pollfd { int fd; short events; short revents; }
    let entries = match usize::try_from(want) {
        Ok(0) => Some(Vec::new()),
        Ok(n) => read_exact(t, a[0], n * 8).and_then(|b| {
            (0..n)
                .map(|i| Some((i32_at(&b, i * 8)?, u16_at(&b, i * 8 + 4)?)))
                .collect::<Option<Vec<_>>>()
        }),
        Err(_) => None,
    };
    let noun = if nfds == 1 { "fd" } else { "fds" };
    match entries {
        Some(entries) => {
            let mut list = Vec::new();
            let mut fds = Vec::new();
            for (fd, events) in entries {
                let fd = Fd::new(t, fd);
                let mut obj = fd.json();
                if let Value::Object(m) = &mut obj {
                    m.insert("events".to_owned(), flags(u64::from(events), &POLL_EVENTS).into());
                }
                list.push(obj);
                // The kernel ignores negative fds.
                if fd.fd >= 0 {
                    o.push_fd(fd.fd);
                    fds.push(fd);
                }
            }
            o.set("fds", list);
            if nfds == 0 {
                o.part("0 fds");
            } else {
                o.part(format!("{nfds} {noun}: {}", fd_list(fds.iter(), nfds - want)));
            }
        }
        None => {
            o.set("fds", Value::Null);
            o.set("fds_unreadable", true);
            o.part(format!("{nfds} {noun}: ?"));
        }
    }
    o.timeout(timeout, false);
}

/// Most fd_set bits read (8 KiB per set).
const MAX_SELECT_BITS: i32 = 65536;

/// The fds set in the fd_set at `addr` (null → empty set).
fn read_fd_set(t: &dyn TaskView, addr: u64, bits: usize) -> Option<Vec<i32>> {
    if addr == 0 || bits == 0 {
        return Some(Vec::new());
    }
    let bytes = read_exact(t, addr, bits.div_ceil(64) * 8)?;
    let mut fds = Vec::new();
    for (w, word) in bytes.chunks_exact(8).enumerate() {
        let word = u64_at(word, 0)?;
        for bit in 0..64 {
            let fd = w * 64 + bit;
            if fd < bits && word & (1u64 << bit) != 0 {
                fds.push(i32::try_from(fd).ok()?);
            }
        }
    }
    Some(fds)
}

/// select(nfds, readfds, writefds, exceptfds, timeval*) /
/// pselect6(nfds, readfds, writefds, exceptfds, timespec*, sigmask)
fn select(a: &[u64; 6], t: &dyn TaskView, o: &mut Out, timeout: Timeout) {
    let nfds = a[0] as u32 as i32;
    o.set("nfds", nfds);
    let bits = usize::try_from(nfds.clamp(0, MAX_SELECT_BITS)).unwrap_or(0);
    let mut parts = Vec::new();
    for (key, label, addr) in
        [("read_fds", "read", a[1]), ("write_fds", "write", a[2]), ("except_fds", "except", a[3])]
    {
        match read_fd_set(t, addr, bits) {
            Some(set) => {
                if set.len() > MAX_FDS {
                    o.set("fds_truncated", true);
                }
                let fds: Vec<Fd> = set.iter().take(MAX_FDS).map(|&fd| Fd::new(t, fd)).collect();
                for fd in &fds {
                    o.push_fd(fd.fd);
                }
                o.set(key, fds.iter().map(Fd::json).collect::<Vec<_>>());
                if !fds.is_empty() {
                    let unseen = (set.len() - fds.len()) as u64;
                    parts.push(format!("{label}: {}", fd_list(fds.iter(), unseen)));
                }
            }
            None => {
                o.set(key, Value::Null);
                o.set("fds_unreadable", true);
                parts.push(format!("{label}: ?"));
            }
        }
    }
    o.fds.sort_unstable();
    if parts.is_empty() {
        parts.push("no fds".to_owned());
    }
    o.parts.extend(parts);
    o.timeout(timeout, false);
}

/// epoll_wait(epfd, events, maxevents, int ms) / epoll_pwait(…, sigmask) /
/// epoll_pwait2(…, timespec*, sigmask)
fn epoll(a: &[u64; 6], t: &dyn TaskView, o: &mut Out, timeout: Timeout) {
    let epfd = Fd::arg(t, a[0]);
    o.fd("epfd", "target", &epfd);
    o.set("maxevents", a[2] as u32 as i32);
    o.part(format!("epfd {}", epfd.label()));
    o.timeout(timeout, false);
}

// ---------------------------------------------------------------------------
// wait4 / waitid

const WNOHANG: u64 = 1;

fn wait_options(options: u64, waitid: bool) -> String {
    let stop = if waitid { "WSTOPPED" } else { "WUNTRACED" };
    flags(
        options,
        &[
            (WNOHANG, "WNOHANG"),
            (2, stop),
            (4, "WEXITED"),
            (8, "WCONTINUED"),
            (0x0100_0000, "WNOWAIT"),
            (0x2000_0000, "__WNOTHREAD"),
            (0x4000_0000, "__WALL"),
            (0x8000_0000, "__WCLONE"),
        ],
    )
}

/// wait4(pid, wstatus, options, rusage)
fn wait4(a: &[u64; 6], o: &mut Out) {
    let pid = a[0] as u32 as i32;
    let options = u64::from(a[2] as u32);
    let (which, human) = match pid {
        p if p > 0 => ("pid", format!("pid {p}")),
        -1 => ("any", "any child".to_owned()),
        0 => ("pgid", "own pgid".to_owned()),
        p => ("pgid", format!("pgid {}", p.unsigned_abs())),
    };
    o.set("pid", pid);
    o.set("which", which);
    o.set("options", wait_options(options, false));
    o.part(human);
    if options != 0 {
        o.part(wait_options(options, false));
    }
    o.wait_pid = Some(i64::from(pid));
    o.waits_forever(options & WNOHANG == 0);
}

/// waitid(idtype, id, infop, options, rusage)
fn waitid(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    let idtype = a[0] as u32;
    let id = a[1] as u32 as i32;
    let options = u64::from(a[3] as u32);
    o.set("id", id);
    o.set("options", wait_options(options, true));
    let (name, human) = match idtype {
        0 => {
            o.wait_pid = Some(-1);
            ("all".to_owned(), "any child".to_owned())
        }
        1 => {
            o.wait_pid = Some(i64::from(id));
            ("pid".to_owned(), format!("pid {id}"))
        }
        2 if id == 0 => ("pgid".to_owned(), "own pgid".to_owned()),
        2 => ("pgid".to_owned(), format!("pgid {id}")),
        3 => {
            let fd = Fd::new(t, id);
            o.set("target", fd.target.clone());
            o.push_fd(fd.fd);
            ("pidfd".to_owned(), format!("pidfd {}", fd.label()))
        }
        n => (format!("idtype_{n}"), format!("idtype {n} id {id}")),
    };
    o.set("idtype", name);
    o.part(human);
    o.part(wait_options(options, true));
    o.waits_forever(options & WNOHANG == 0);
}

// ---------------------------------------------------------------------------
// fd-based calls

/// Plain `(fd, …, count)` call with no timeout: `count` is shown in `human`
/// only for writes (what a reader asks for is just its buffer size).
fn fd_io(a: &[u64; 6], t: &dyn TaskView, o: &mut Out, count: Option<u64>, show_count: bool) {
    let fd = Fd::arg(t, a[0]);
    o.fd("fd", "target", &fd);
    o.part(format!("fd {}", fd.label()));
    if let Some(count) = count {
        o.set("count", count);
        if show_count {
            o.part(format!("{count} bytes"));
        }
    }
    o.waits_forever(true);
}

/// readv/writev(fd, iov, iovcnt): `count` is the iovec total when readable.
fn vector_io(a: &[u64; 6], t: &dyn TaskView, o: &mut Out, write: bool) {
    const MAX_IOV: u64 = 64;
    fd_io(a, t, o, None, false);
    let iovcnt = a[2];
    o.set("iovcnt", iovcnt);
    // struct iovec { void *iov_base; size_t iov_len; }
    let total = if iovcnt <= MAX_IOV {
        usize::try_from(iovcnt).ok().and_then(|n| read_exact(t, a[1], n * 16)).and_then(|b| {
            (0..b.len() / 16)
                .try_fold(0u64, |sum, i| Some(sum.saturating_add(u64_at(&b, i * 16 + 8)?)))
        })
    } else {
        None
    };
    if let Some(total) = total {
        o.set("count", total);
        if write {
            o.part(format!("{total} bytes"));
        }
    }
}

fn flock(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    const LOCK_NB: u64 = 4;
    let op = u64::from(a[1] as u32);
    let name = flags(op, &[(1, "LOCK_SH"), (2, "LOCK_EX"), (LOCK_NB, "LOCK_NB"), (8, "LOCK_UN")]);
    fd_io(a, t, o, None, false);
    o.set("operation", name.clone());
    o.part(name);
    o.waits_forever(op & LOCK_NB == 0);
}

fn fcntl_cmd_name(cmd: u32) -> String {
    let name = match cmd {
        0 => "F_DUPFD",
        1 => "F_GETFD",
        2 => "F_SETFD",
        3 => "F_GETFL",
        4 => "F_SETFL",
        5 => "F_GETLK",
        6 => "F_SETLK",
        7 => "F_SETLKW",
        8 => "F_SETOWN",
        9 => "F_GETOWN",
        10 => "F_SETSIG",
        11 => "F_GETSIG",
        15 => "F_SETOWN_EX",
        16 => "F_GETOWN_EX",
        36 => "F_OFD_GETLK",
        37 => "F_OFD_SETLK",
        38 => "F_OFD_SETLKW",
        1024 => "F_SETLEASE",
        1025 => "F_GETLEASE",
        1026 => "F_NOTIFY",
        1030 => "F_DUPFD_CLOEXEC",
        1031 => "F_SETPIPE_SZ",
        1032 => "F_GETPIPE_SZ",
        1033 => "F_ADD_SEALS",
        1034 => "F_GET_SEALS",
        n => return format!("F_CMD_{n}"),
    };
    name.to_owned()
}

fn fcntl(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    const F_SETLKW: u32 = 7;
    const F_OFD_SETLKW: u32 = 38;
    let cmd = a[1] as u32;
    let name = fcntl_cmd_name(cmd);
    fd_io(a, t, o, None, false);
    o.set("cmd", name.clone());
    o.part(name);
    if (5..=7).contains(&cmd) || (36..=38).contains(&cmd) {
        lock_range(t, a[2], o);
    }
    // Only the lock-wait commands block; the rest return at once.
    o.waits_forever(cmd == F_SETLKW || cmd == F_OFD_SETLKW);
}

/// The `struct flock` of a lock command: `lock` {type, whence, start, len} in the args and
/// e.g. "F_WRLCK 10..+5" (len 0: to the end of the file) in `human`; `lock: null` when
/// unreadable.
fn lock_range(t: &dyn TaskView, addr: u64, o: &mut Out) {
    // struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; }
    let Some(b) = read_exact(t, addr, 32) else {
        o.set("lock", Value::Null);
        return;
    };
    let (Some(ty), Some(whence), Some(start), Some(len)) =
        (u16_at(&b, 0), u16_at(&b, 2), i64_at(&b, 8), i64_at(&b, 16))
    else {
        return;
    };
    let ty = match ty {
        0 => "F_RDLCK".to_owned(),
        1 => "F_WRLCK".to_owned(),
        2 => "F_UNLCK".to_owned(),
        n => format!("F_TYPE_{n}"),
    };
    let whence = match whence {
        0 => "SEEK_SET".to_owned(),
        1 => "SEEK_CUR".to_owned(),
        2 => "SEEK_END".to_owned(),
        n => format!("SEEK_{n}"),
    };
    let from = if whence == "SEEK_SET" { String::new() } else { format!("{whence}+") };
    let range =
        if len == 0 { format!("{from}{start}..EOF") } else { format!("{from}{start}..+{len}") };
    o.part(format!("{ty} {range}"));
    o.set("lock", json!({ "type": ty, "whence": whence, "start": start, "len": len }));
}

/// splice / tee / sendfile: data moves from `src` to `dst`. `fd`/`target`
/// repeat arg 0 so consumers that only know `fd` still find one.
fn two_fd(
    a: &[u64; 6],
    t: &dyn TaskView,
    o: &mut Out,
    src: (&str, &str, u64),
    dst: (&str, &str, u64),
    count: u64,
) {
    let first = Fd::arg(t, a[0]);
    o.fd("fd", "target", &first);
    let from = Fd::arg(t, src.2);
    let to = Fd::arg(t, dst.2);
    o.fd(src.0, src.1, &from);
    o.fd(dst.0, dst.1, &to);
    o.set("count", count);
    o.part(format!("fd {} -> fd {}", from.label(), to.label()));
    o.part(format!("{count} bytes"));
    o.waits_forever(true);
}

/// io_uring_enter(fd, to_submit, min_complete, flags, argp, argsz)
fn io_uring_enter(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    const IORING_ENTER_EXT_ARG: u64 = 8;
    let enter_flags = u64::from(a[3] as u32);
    fd_io(a, t, o, None, false);
    o.set("to_submit", a[1] as u32);
    o.set("min_complete", a[2] as u32);
    o.set("flags", hex(enter_flags));
    o.part(format!("min_complete={}", a[2] as u32));
    // With EXT_ARG the wait may carry a timeout we do not decode.
    o.waits_forever(enter_flags & IORING_ENTER_EXT_ARG == 0);
}

/// msgsnd(msqid, msgp, msgsz, msgflg) / msgrcv(msqid, msgp, msgsz, msgtyp, msgflg)
fn msg(a: &[u64; 6], o: &mut Out, receive: bool) {
    const IPC_NOWAIT: u64 = 0o4000;
    let msqid = a[0] as u32 as i32;
    o.set("msqid", msqid);
    o.part(format!("msqid {msqid}"));
    let msgflg = if receive {
        o.set("msgtyp", a[3] as i64);
        a[4]
    } else {
        a[3]
    };
    o.waits_forever(msgflg & IPC_NOWAIT == 0);
}

/// open(path, flags, mode) / openat(dirfd, path, flags, mode) /
/// openat2(dirfd, path, how, size). Opening a FIFO blocks until the other
/// end is opened.
fn open(t: &dyn TaskView, o: &mut Out, dirfd: Option<u64>, path: u64, open_flags: u64) {
    const AT_FDCWD: i32 = -100;
    if let Some(dirfd) = dirfd {
        let dirfd = dirfd as u32 as i32;
        o.set("dirfd", dirfd);
        if dirfd != AT_FDCWD {
            o.set("dir_target", t.fd_target(dirfd));
        }
    }
    let path = read_cstr(t, path);
    o.part(path.as_deref().map_or_else(|| "?".to_owned(), |p| shorten_tail(p, MAX_TARGET_CHARS)));
    o.set("path", path);
    o.set("flags", hex(u64::from(open_flags as u32)));
}

// ---------------------------------------------------------------------------
// sleeps

fn nanosleep(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    let duration = read_time_ms(t, a[0], 1_000_000);
    o.set("duration_ms", duration);
    if duration.is_none() {
        o.set("timeout_unreadable", true);
    }
    o.part(duration.map_or_else(|| "?".to_owned(), fmt_duration_ms));
    o.waits_forever(false);
}

/// clock_nanosleep(clockid, flags, request, remain)
fn clock_nanosleep(a: &[u64; 6], t: &dyn TaskView, o: &mut Out) {
    const TIMER_ABSTIME: u64 = 1;
    let clock = clock_name(i64::from(a[0] as u32 as i32));
    let absolute = a[1] & TIMER_ABSTIME != 0;
    let ms = read_time_ms(t, a[2], 1_000_000);
    o.set("clock", clock.clone());
    o.set("absolute", absolute);
    o.set(if absolute { "until_ms" } else { "duration_ms" }, ms);
    if ms.is_none() {
        o.set("timeout_unreadable", true);
    }
    o.part(clock);
    let when = ms.map_or_else(|| "?".to_owned(), fmt_duration_ms);
    o.part(if absolute { format!("until {when}") } else { when });
    o.waits_forever(false);
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render() {
        assert_eq!(flags(0, &POLL_EVENTS), "0");
        assert_eq!(flags(0x5, &POLL_EVENTS), "IN|OUT");
        assert_eq!(flags(0x8001, &POLL_EVENTS), "IN|0x8000");
    }

    #[test]
    fn time_pairs_saturate() {
        assert_eq!(pair_to_ms(5, 500_000_000, 1_000_000), 5500);
        assert_eq!(pair_to_ms(-1, 0, 1_000_000), 0);
        assert_eq!(pair_to_ms(1, -5, 1_000_000), 1000);
        assert_eq!(pair_to_ms(i64::MAX, i64::MAX, 1_000_000), u64::MAX);
        assert_eq!(pair_to_ms(2, 250_000, 1_000), 2250);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod x86_64_tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    /// Memory regions (start address → bytes) and an fd table.
    #[derive(Default)]
    struct Fake {
        mem: HashMap<u64, Vec<u8>>,
        fds: HashMap<i32, String>,
    }

    impl Fake {
        fn new() -> Self {
            Self::default()
        }

        fn mem(mut self, addr: u64, bytes: Vec<u8>) -> Self {
            self.mem.insert(addr, bytes);
            self
        }

        fn fd(mut self, fd: i32, target: &str) -> Self {
            self.fds.insert(fd, target.to_owned());
            self
        }
    }

    impl TaskView for Fake {
        fn read_mem(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            self.mem.iter().find_map(|(&base, bytes)| {
                let off = usize::try_from(addr.checked_sub(base)?).ok()?;
                bytes.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
            })
        }

        fn fd_target(&self, fd: i32) -> Option<String> {
            self.fds.get(&fd).cloned()
        }
    }

    /// A task where every read succeeds with `fill` bytes and every fd has
    /// a very long target.
    struct Garbage(u8);

    impl TaskView for Garbage {
        fn read_mem(&self, _addr: u64, len: usize) -> Option<Vec<u8>> {
            Some(vec![self.0; len.min(1 << 16)])
        }

        fn fd_target(&self, fd: i32) -> Option<String> {
            Some(format!("/{}/{fd}", "x".repeat(200)))
        }
    }

    fn timespec(sec: i64, nsec: i64) -> Vec<u8> {
        let mut b = sec.to_ne_bytes().to_vec();
        b.extend_from_slice(&nsec.to_ne_bytes());
        b
    }

    fn pollfds(entries: &[(i32, i16)]) -> Vec<u8> {
        let mut b = Vec::new();
        for &(fd, events) in entries {
            b.extend_from_slice(&fd.to_ne_bytes());
            b.extend_from_slice(&events.to_ne_bytes());
            b.extend_from_slice(&0i16.to_ne_bytes());
        }
        b
    }

    const UADDR: u64 = 0x7f12_3456_7000;
    const TS: u64 = 0x7ffd_0000_1000;
    const FDS: u64 = 0x7ffd_0000_2000;

    #[test]
    fn futex_wait_private_infinite() {
        let d = decode(202, [UADDR, 128, 2, 0, 0, 0], &Fake::new());
        assert_eq!(d.syscall, "futex");
        assert_eq!(d.args["op"], "WAIT");
        assert_eq!(d.args["uaddr"], "0x7f1234567000");
        assert_eq!(d.args["private"], true);
        assert_eq!(d.args["clock"], "MONOTONIC");
        assert_eq!(d.args["val"], 2);
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert_eq!(d.args["infinite"], true);
        assert!(d.infinite);
        assert_eq!(d.human, "futex(WAIT private 0x7f1234567000 timeout=infinite)");
        assert!(d.fds.is_empty());
        assert_eq!(d.wait_pid, None);
    }

    #[test]
    fn futex_wait_relative_timeout() {
        let fake = Fake::new().mem(TS, timespec(1, 500_000_000));
        let d = decode(202, [UADDR, 0, 0, TS, 0, 0], &fake);
        assert_eq!(d.args["timeout_ms"], 1500);
        assert_eq!(d.args["private"], false);
        assert!(!d.args.contains_key("timeout_absolute"));
        assert!(!d.infinite);
        assert_eq!(d.human, "futex(WAIT 0x7f1234567000 timeout=1.5s)");
    }

    #[test]
    fn futex_wait_bitset_absolute() {
        // FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME
        let fake = Fake::new().mem(TS, timespec(90, 250_000_000));
        let d = decode(202, [UADDR, 9 | 128 | 256, 0, TS, 0, 0xffff_ffff], &fake);
        assert_eq!(d.args["op"], "WAIT_BITSET");
        assert_eq!(d.args["clock"], "REALTIME");
        assert_eq!(d.args["bitset"], "0xffffffff");
        assert_eq!(d.args["timeout_ms"], 90_250);
        assert_eq!(d.args["timeout_absolute"], true);
        assert_eq!(d.args["infinite"], false);
        assert!(!d.infinite);
        assert_eq!(d.human, "futex(WAIT_BITSET private 0x7f1234567000 timeout=abs:1m30s)");
    }

    #[test]
    fn futex_lock_pi_reports_owner() {
        // Futex word: FUTEX_WAITERS | owner TID 4242.
        let word = (0x8000_0000u32 | 4242).to_ne_bytes().to_vec();
        let fake = Fake::new().mem(UADDR, word);
        let d = decode(202, [UADDR, 6 | 128, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["op"], "LOCK_PI");
        assert_eq!(d.args["clock"], "REALTIME");
        assert_eq!(d.args["owner_tid"], 4242);
        assert!(d.infinite);
        assert_eq!(d.human, "futex(LOCK_PI private 0x7f1234567000 owner=4242 timeout=infinite)");
    }

    #[test]
    fn futex_wake_does_not_wait() {
        let d = decode(202, [UADDR, 1 | 128, 1, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["op"], "WAKE");
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert!(!d.infinite);
        assert_eq!(d.human, "futex(WAKE private 0x7f1234567000)");
        let d = decode(202, [UADDR, 99, 1, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["op"], "OP_99");
    }

    #[test]
    fn futex_timeout_unreadable() {
        let d = decode(202, [UADDR, 0, 0, TS, 0, 0], &Fake::new());
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert_eq!(d.args["timeout_unreadable"], true);
        assert_eq!(d.args["infinite"], false);
        assert!(!d.infinite);
        assert_eq!(d.human, "futex(WAIT 0x7f1234567000 timeout=?)");
    }

    #[test]
    fn futex_waitv_lists_uaddrs() {
        let mut waiters = Vec::new();
        for uaddr in [0x1000u64, 0x2000] {
            waiters.extend_from_slice(&0u64.to_ne_bytes());
            waiters.extend_from_slice(&uaddr.to_ne_bytes());
            waiters.extend_from_slice(&[0; 8]);
        }
        let fake = Fake::new().mem(FDS, waiters);
        let d = decode(449, [FDS, 2, 0, 0, 1, 0], &fake);
        assert_eq!(d.args["nr_futexes"], 2);
        assert_eq!(d.args["waiters"], hex(FDS));
        assert_eq!(d.args["uaddrs"], json!(["0x1000", "0x2000"]));
        assert_eq!(d.args["clock"], "MONOTONIC");
        assert!(d.infinite);
        assert_eq!(d.human, "futex_waitv(2 futexes timeout=infinite)");
    }

    #[test]
    fn poll_one_socket_infinite() {
        let fake = Fake::new().mem(FDS, pollfds(&[(7, 1)])).fd(7, "socket:[123]");
        let d = decode(7, [FDS, 1, u64::from(u32::MAX), 0, 0, 0], &fake);
        assert_eq!(d.syscall, "poll");
        assert_eq!(d.args["nfds"], 1);
        assert_eq!(d.args["fds"], json!([{"fd": 7, "target": "socket:[123]", "events": "IN"}]));
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert_eq!(d.args["infinite"], true);
        assert!(d.infinite);
        assert_eq!(d.fds, vec![7]);
        assert_eq!(d.human, "poll(1 fd: 7 socket:[123], timeout=infinite)");
    }

    #[test]
    fn poll_three_fds_5s() {
        let fake = Fake::new()
            .mem(FDS, pollfds(&[(4, 1), (5, 1 | 4), (6, 0x2000)]))
            .fd(4, "pipe:[9]")
            .fd(5, "socket:[10]")
            .fd(6, "/dev/null");
        let d = decode(7, [FDS, 3, 5000, 0, 0, 0], &fake);
        assert_eq!(d.args["timeout_ms"], 5000);
        assert_eq!(d.args["infinite"], false);
        assert_eq!(d.args["fds"][1], json!({"fd": 5, "target": "socket:[10]", "events": "IN|OUT"}));
        assert_eq!(d.args["fds"][2]["events"], "RDHUP");
        assert!(!d.infinite);
        assert_eq!(d.fds, vec![4, 5, 6]);
        assert_eq!(d.human, "poll(3 fds: 4 pipe:[9], 5 socket:[10], 6 /dev/null, timeout=5.0s)");
    }

    #[test]
    fn poll_many_fds_shortened() {
        let entries: Vec<(i32, i16)> = (10..80).map(|fd| (fd, 1)).collect();
        let long = format!("/srv/data/{}/segment.log", "a".repeat(50));
        let fake = Fake::new().mem(FDS, pollfds(&entries)).fd(10, &long);
        let d = decode(7, [FDS, 70, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["fds_truncated"], true);
        assert_eq!(d.args["fds"].as_array().unwrap().len(), 64);
        assert_eq!(d.args["fds"][0]["target"], long.as_str());
        assert_eq!(d.fds.len(), 64);
        let tail: String = long.chars().skip(long.chars().count() - 39).collect();
        assert_eq!(d.human, format!("poll(70 fds: 10 …{tail}, 11, 12, 13, +66 more, timeout=0ms)"));
    }

    #[test]
    fn poll_negative_fd_ignored() {
        let fake = Fake::new().mem(FDS, pollfds(&[(-1, 1), (3, 1)])).fd(3, "pipe:[1]");
        let d = decode(7, [FDS, 2, 100, 0, 0, 0], &fake);
        assert_eq!(d.args["fds"][0], json!({"fd": -1, "target": null, "events": "IN"}));
        assert_eq!(d.fds, vec![3]);
        assert_eq!(d.human, "poll(2 fds: 3 pipe:[1], timeout=100ms)");
    }

    #[test]
    fn ppoll_null_tsp_is_infinite() {
        let fake = Fake::new().mem(FDS, pollfds(&[(0, 1)])).fd(0, "/dev/pts/1");
        let d = decode(271, [FDS, 1, 0, 0x1234, 8, 0], &fake);
        assert_eq!(d.syscall, "ppoll");
        assert!(d.infinite);
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert_eq!(d.human, "ppoll(1 fd: 0 /dev/pts/1, timeout=infinite)");

        let fake = fake.mem(TS, timespec(0, 250_000_000));
        let d = decode(271, [FDS, 1, TS, 0, 8, 0], &fake);
        assert_eq!(d.args["timeout_ms"], 250);
        assert_eq!(d.human, "ppoll(1 fd: 0 /dev/pts/1, timeout=250ms)");
    }

    #[test]
    fn select_read_set() {
        const READ: u64 = 0x7ffd_0000_3000;
        // fds 3 and 9 in the read set; nfds 10 → one 64-bit word.
        let set: u64 = (1 << 3) | (1 << 9);
        let mut timeval = 2i64.to_ne_bytes().to_vec();
        timeval.extend_from_slice(&500_000i64.to_ne_bytes());
        let fake = Fake::new()
            .mem(READ, set.to_ne_bytes().to_vec())
            .mem(TS, timeval)
            .fd(3, "socket:[77]")
            .fd(9, "pipe:[5]");
        let d = decode(23, [10, READ, 0, 0, TS, 0], &fake);
        assert_eq!(d.syscall, "select");
        assert_eq!(d.args["nfds"], 10);
        assert_eq!(
            d.args["read_fds"],
            json!([{"fd": 3, "target": "socket:[77]"}, {"fd": 9, "target": "pipe:[5]"}])
        );
        assert_eq!(d.args["write_fds"], json!([]));
        assert_eq!(d.args["except_fds"], json!([]));
        assert_eq!(d.args["timeout_ms"], 2500);
        assert_eq!(d.fds, vec![3, 9]);
        assert!(!d.infinite);
        assert_eq!(d.human, "select(read: 3 socket:[77], 9 pipe:[5], timeout=2.5s)");
    }

    #[test]
    fn pselect6_unreadable_set_and_no_timeout() {
        let d = decode(270, [4, 0x1000, 0, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["read_fds"], Value::Null);
        assert_eq!(d.args["fds_unreadable"], true);
        assert!(d.infinite);
        assert_eq!(d.human, "pselect6(read: ?, timeout=infinite)");
        let d = decode(270, [0, 0, 0, 0, 0, 0], &Fake::new());
        assert_eq!(d.human, "pselect6(no fds, timeout=infinite)");
    }

    #[test]
    fn epoll_wait_infinite_and_timeout() {
        let fake = Fake::new().fd(5, "anon_inode:[eventpoll]");
        let d = decode(232, [5, FDS, 128, u64::MAX, 0, 0], &fake);
        assert_eq!(d.syscall, "epoll_wait");
        assert_eq!(d.args["epfd"], 5);
        assert_eq!(d.args["target"], "anon_inode:[eventpoll]");
        assert_eq!(d.args["maxevents"], 128);
        assert_eq!(d.args["timeout_ms"], Value::Null);
        assert!(d.infinite);
        assert_eq!(d.fds, vec![5]);
        assert_eq!(d.human, "epoll_wait(epfd 5 anon_inode:[eventpoll], timeout=infinite)");

        let d = decode(281, [5, FDS, 128, 1000, 0, 8], &fake);
        assert_eq!(d.args["timeout_ms"], 1000);
        assert!(!d.infinite);
        assert_eq!(d.human, "epoll_pwait(epfd 5 anon_inode:[eventpoll], timeout=1.0s)");
    }

    #[test]
    fn epoll_pwait2_timespec() {
        let fake = Fake::new().fd(5, "anon_inode:[eventpoll]").mem(TS, timespec(30, 0));
        let d = decode(441, [5, FDS, 16, TS, 0, 8], &fake);
        assert_eq!(d.args["timeout_ms"], 30_000);
        assert!(!d.infinite);
        assert_eq!(d.human, "epoll_pwait2(epfd 5 anon_inode:[eventpoll], timeout=30s)");
        let d = decode(441, [5, FDS, 16, 0, 0, 8], &fake);
        assert!(d.infinite);
    }

    #[test]
    fn wait4_pid_and_any() {
        let d = decode(61, [1234, 0x7ffd_0000, 0, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["pid"], 1234);
        assert_eq!(d.args["which"], "pid");
        assert_eq!(d.args["options"], "0");
        assert_eq!(d.wait_pid, Some(1234));
        assert!(d.infinite);
        assert_eq!(d.human, "wait4(pid 1234)");

        let d = decode(61, [u64::from(u32::MAX), 0, 0x4000_0000, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["pid"], -1);
        assert_eq!(d.args["which"], "any");
        assert_eq!(d.args["options"], "__WALL");
        assert_eq!(d.wait_pid, Some(-1));
        assert_eq!(d.human, "wait4(any child, __WALL)");

        let d = decode(61, [(-77i64) as u64, 0, 1, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["which"], "pgid");
        assert!(!d.infinite, "WNOHANG does not wait");
        assert_eq!(d.human, "wait4(pgid 77, WNOHANG)");
    }

    #[test]
    fn waitid_variants() {
        // P_PID 99, WEXITED
        let d = decode(247, [1, 99, 0x7ffd_0000, 4, 0, 0], &Fake::new());
        assert_eq!(d.args["idtype"], "pid");
        assert_eq!(d.args["id"], 99);
        assert_eq!(d.args["options"], "WEXITED");
        assert_eq!(d.wait_pid, Some(99));
        assert!(d.infinite);
        assert_eq!(d.human, "waitid(pid 99, WEXITED)");

        let d = decode(247, [0, 0, 0, 4 | 2, 0, 0], &Fake::new());
        assert_eq!(d.args["idtype"], "all");
        assert_eq!(d.args["options"], "WSTOPPED|WEXITED");
        assert_eq!(d.wait_pid, Some(-1));

        let fake = Fake::new().fd(6, "anon_inode:[pidfd]");
        let d = decode(247, [3, 6, 0, 4 | 1, 0, 0], &fake);
        assert_eq!(d.args["idtype"], "pidfd");
        assert_eq!(d.args["target"], "anon_inode:[pidfd]");
        assert_eq!(d.fds, vec![6]);
        assert_eq!(d.wait_pid, None);
        assert!(!d.infinite);
        assert_eq!(d.human, "waitid(pidfd 6 anon_inode:[pidfd], WNOHANG|WEXITED)");
    }

    #[test]
    fn write_on_pipe() {
        let fake = Fake::new().fd(4, "pipe:[123]");
        let d = decode(1, [4, 0x5555_0000, 65536, 0, 0, 0], &fake);
        assert_eq!(d.syscall, "write");
        assert_eq!(d.args["fd"], 4);
        assert_eq!(d.args["target"], "pipe:[123]");
        assert_eq!(d.args["count"], 65536);
        assert_eq!(d.args["infinite"], true);
        assert!(d.infinite);
        assert_eq!(d.fds, vec![4]);
        assert_eq!(d.human, "write(fd 4 pipe:[123], 65536 bytes)");
    }

    #[test]
    fn read_tty_and_closed_fd() {
        let fake = Fake::new().fd(0, "/dev/pts/1");
        let d = decode(0, [0, 0x5555_0000, 1024, 0, 0, 0], &fake);
        assert_eq!(d.args["count"], 1024);
        assert_eq!(d.human, "read(fd 0 /dev/pts/1)");
        let d = decode(0, [9, 0x5555_0000, 1024, 0, 0, 0], &fake);
        assert_eq!(d.args["target"], Value::Null);
        assert_eq!(d.human, "read(fd 9)");
    }

    #[test]
    fn writev_sums_iovecs() {
        let mut iov = Vec::new();
        for len in [100u64, 28] {
            iov.extend_from_slice(&0x1000u64.to_ne_bytes());
            iov.extend_from_slice(&len.to_ne_bytes());
        }
        let fake = Fake::new().fd(3, "socket:[1]").mem(FDS, iov);
        let d = decode(20, [3, FDS, 2, 0, 0, 0], &fake);
        assert_eq!(d.args["iovcnt"], 2);
        assert_eq!(d.args["count"], 128);
        assert_eq!(d.human, "writev(fd 3 socket:[1], 128 bytes)");
    }

    #[test]
    fn locks() {
        let fake = Fake::new().fd(3, "/var/lib/app.lock");
        let d = decode(72, [3, 7, FDS, 0, 0, 0], &fake);
        assert_eq!(d.args["cmd"], "F_SETLKW");
        assert!(d.infinite);
        assert_eq!(d.human, "fcntl(fd 3 /var/lib/app.lock, F_SETLKW)");
        assert_eq!(d.args["lock"], Value::Null, "struct flock unreadable");
        // struct flock { F_WRLCK, SEEK_SET, start 10, len 5, pid 0 }
        let mut fl = vec![1, 0, 0, 0, 0, 0, 0, 0];
        fl.extend(10i64.to_ne_bytes());
        fl.extend(5i64.to_ne_bytes());
        fl.extend([0u8; 8]);
        let with = Fake::new().fd(3, "/var/lib/app.lock").mem(FDS, fl.clone());
        let d = decode(72, [3, 38, FDS, 0, 0, 0], &with);
        assert_eq!(d.args["cmd"], "F_OFD_SETLKW");
        assert_eq!(
            d.args["lock"],
            json!({"type": "F_WRLCK", "whence": "SEEK_SET", "start": 10, "len": 5})
        );
        assert_eq!(d.human, "fcntl(fd 3 /var/lib/app.lock, F_OFD_SETLKW, F_WRLCK 10..+5)");
        // A read lock to the end of the file, from the current offset.
        fl[0] = 0;
        fl[2] = 1;
        fl[16..24].copy_from_slice(&0i64.to_ne_bytes());
        let d = decode(72, [3, 7, FDS, 0, 0, 0], &Fake::new().mem(FDS, fl));
        assert_eq!(d.human, "fcntl(fd 3, F_SETLKW, F_RDLCK SEEK_CUR+10..EOF)");
        let d = decode(72, [3, 3, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["cmd"], "F_GETFL");
        assert!(!d.infinite);

        let d = decode(73, [3, 2, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["operation"], "LOCK_EX");
        assert!(d.infinite);
        assert_eq!(d.human, "flock(fd 3 /var/lib/app.lock, LOCK_EX)");
        let d = decode(73, [3, 2 | 4, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["operation"], "LOCK_EX|LOCK_NB");
        assert!(!d.infinite);
    }

    #[test]
    fn splice_and_sendfile() {
        let fake = Fake::new().fd(3, "pipe:[1]").fd(4, "socket:[2]");
        let d = decode(275, [3, 0, 4, 0, 4096, 0], &fake);
        assert_eq!(d.args["fd_in"], 3);
        assert_eq!(d.args["target_out"], "socket:[2]");
        assert_eq!(d.args["fd"], 3);
        assert_eq!(d.fds, vec![3, 4]);
        assert_eq!(d.human, "splice(fd 3 pipe:[1] -> fd 4 socket:[2], 4096 bytes)");
        // sendfile(out_fd, in_fd, offset, count)
        let d = decode(40, [4, 3, 0, 100, 0, 0], &fake);
        assert_eq!(d.args["out_fd"], 4);
        assert_eq!(d.args["in_fd"], 3);
        assert_eq!(d.human, "sendfile(fd 3 pipe:[1] -> fd 4 socket:[2], 100 bytes)");
    }

    #[test]
    fn accept_ioctl_io_uring() {
        let fake =
            Fake::new().fd(3, "socket:[9]").fd(0, "/dev/pts/0").fd(5, "anon_inode:[io_uring]");
        assert_eq!(decode(43, [3, 0, 0, 0, 0, 0], &fake).human, "accept(fd 3 socket:[9])");
        assert_eq!(decode(288, [3, 0, 0, 0x80000, 0, 0], &fake).human, "accept4(fd 3 socket:[9])");
        let d = decode(16, [0, 0x5401, FDS, 0, 0, 0], &fake);
        assert_eq!(d.args["request"], "0x5401");
        assert_eq!(d.human, "ioctl(fd 0 /dev/pts/0, 0x5401)");
        let d = decode(426, [5, 0, 1, 1, 0, 0], &fake);
        assert_eq!(d.args["min_complete"], 1);
        assert!(d.infinite);
        assert_eq!(d.human, "io_uring_enter(fd 5 anon_inode:[io_uring], min_complete=1)");
    }

    #[test]
    fn sleeps() {
        let fake = Fake::new().mem(TS, timespec(5, 0));
        let d = decode(35, [TS, 0, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["duration_ms"], 5000);
        assert_eq!(d.args["infinite"], false);
        assert!(!d.infinite);
        assert_eq!(d.human, "nanosleep(5.0s)");

        let fake = Fake::new().mem(TS, timespec(0, 250_000_000));
        let d = decode(230, [1, 0, TS, 0, 0, 0], &fake);
        assert_eq!(d.args["clock"], "MONOTONIC");
        assert_eq!(d.args["absolute"], false);
        assert_eq!(d.args["duration_ms"], 250);
        assert!(!d.infinite);
        assert_eq!(d.human, "clock_nanosleep(MONOTONIC, 250ms)");

        let fake = Fake::new().mem(TS, timespec(7200, 0));
        let d = decode(230, [7, 1, TS, 0, 0, 0], &fake);
        assert_eq!(d.args["clock"], "BOOTTIME");
        assert_eq!(d.args["absolute"], true);
        assert_eq!(d.args["until_ms"], 7_200_000);
        assert!(!d.args.contains_key("duration_ms"));
        assert_eq!(d.human, "clock_nanosleep(BOOTTIME, until 2h00m)");

        let d = decode(35, [TS, 0, 0, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["duration_ms"], Value::Null);
        assert_eq!(d.args["timeout_unreadable"], true);
        assert_eq!(d.human, "nanosleep(?)");
    }

    #[test]
    fn signals_and_pause() {
        let d = decode(34, [0; 6], &Fake::new());
        assert!(d.infinite);
        assert_eq!(d.human, "pause()");
        let d = decode(130, [FDS, 8, 0, 0, 0, 0], &Fake::new());
        assert!(d.infinite);
        assert_eq!(d.human, "rt_sigsuspend()");
        let fake = Fake::new().mem(TS, timespec(10, 0));
        let d = decode(128, [FDS, 0, TS, 8, 0, 0], &fake);
        assert_eq!(d.args["timeout_ms"], 10_000);
        assert_eq!(d.human, "rt_sigtimedwait(timeout=10s)");
    }

    #[test]
    fn sysv_ipc_aio_mqueue() {
        let d = decode(65, [5, FDS, 1, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["semid"], 5);
        assert_eq!(d.args["nsops"], 1);
        assert!(d.infinite);
        assert_eq!(d.human, "semop(semid 5, nsops 1)");
        let fake = Fake::new().mem(TS, timespec(1, 0));
        let d = decode(220, [5, FDS, 2, TS, 0, 0], &fake);
        assert_eq!(d.args["timeout_ms"], 1000);
        assert_eq!(d.human, "semtimedop(semid 5, nsops 2, timeout=1.0s)");

        let d = decode(70, [3, FDS, 64, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["msqid"], 3);
        assert!(d.infinite);
        assert_eq!(d.human, "msgrcv(msqid 3)");

        let fake = Fake::new().fd(4, "/test_queue");
        let d = decode(243, [4, FDS, 8192, 0, 0, 0], &fake);
        assert_eq!(d.args["mqdes"], 4);
        assert_eq!(d.args["target"], "/test_queue");
        assert!(d.infinite);
        assert_eq!(d.human, "mq_timedreceive(mqdes 4 /test_queue, timeout=infinite)");

        let d = decode(208, [0x7f00_0000_0000, 1, 32, FDS, 0, 0], &Fake::new());
        assert_eq!(d.args["ctx_id"], "0x7f0000000000");
        assert_eq!(d.args["min_nr"], 1);
        assert!(d.infinite);
        assert_eq!(d.human, "io_getevents(ctx 0x7f0000000000, min_nr 1, timeout=infinite)");
    }

    #[test]
    fn openat_fifo_path() {
        let mut page = b"/tmp/my.fifo\0junk".to_vec();
        page.resize(4096, 0);
        let fake = Fake::new().mem(FDS, page);
        let d = decode(257, [(-100i64) as u64, FDS, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["path"], "/tmp/my.fifo");
        assert_eq!(d.args["dirfd"], -100);
        assert_eq!(d.args["flags"], "0x0");
        assert_eq!(d.human, "openat(/tmp/my.fifo)");

        // A path that starts 6 bytes before a page boundary: the first read
        // must stop at the boundary (the fake has nothing mapped before it).
        let mut bytes = b"/a/b/c".to_vec();
        bytes.extend_from_slice(b"/fifo\0");
        bytes.resize(6 + 4096, 0);
        let fake = Fake::new().mem(FDS - 6, bytes);
        let d = decode(2, [FDS - 6, 0, 0, 0, 0, 0], &fake);
        assert_eq!(d.args["path"], "/a/b/c/fifo");
        let d = decode(2, [FDS, 1, 0, 0, 0, 0], &Fake::new());
        assert_eq!(d.args["path"], Value::Null);
        assert_eq!(d.human, "open(?)");
    }

    #[test]
    fn unknown_syscall_raw() {
        let d = decode(9999, [1, 0xff, 0, 3, 0, 0], &Fake::new());
        assert_eq!(d.syscall, "syscall_9999");
        assert_eq!(d.args["raw"], json!(["0x1", "0xff", "0x0", "0x3", "0x0", "0x0"]));
        assert_eq!(d.human, "syscall_9999(0x1, 0xff, 0x0, 0x3)");
        assert!(!d.infinite);
        let d = decode(39, [0; 6], &Fake::new());
        assert_eq!(d.human, "getpid()");
        assert_eq!(d.args.len(), 1);
    }

    #[test]
    fn unreadable_memory_never_panics() {
        let empty = Fake::new();
        let patterns: [[u64; 6]; 5] = [
            [0; 6],
            [u64::MAX; 6],
            [0x1000, 3, 0x2000, 0x3000, 0x4000, 0x5000],
            [u64::MAX - 4, 1 << 40, u64::MAX - 8, u64::MAX - 15, u64::MAX - 1, 9],
            [i32::MAX as u64, 64, 0xfff, 0xfff, 0xfff, 0xfff],
        ];
        for nr in -2..=500 {
            for args in patterns {
                let d = decode(nr, args, &empty);
                assert!(d.human.starts_with(&d.syscall), "{nr}: {}", d.human);
                serde_json::to_string(&d).unwrap();
                // Garbage memory and huge targets must not panic either.
                for fill in [0x00, 0x7f, 0xff] {
                    let d = decode(nr, args, &Garbage(fill));
                    assert!(d.human.chars().count() < 1000, "{nr}: {}", d.human);
                }
            }
        }
        // Spot checks of what "unreadable" looks like.
        let d = decode(7, [0x1000, 2, 100, 0, 0, 0], &empty);
        assert_eq!(d.args["fds"], Value::Null);
        assert_eq!(d.args["fds_unreadable"], true);
        assert_eq!(d.human, "poll(2 fds: ?, timeout=100ms)");
        let d = decode(271, [0x1000, 1, TS, 0, 0, 0], &empty);
        assert_eq!(d.args["timeout_unreadable"], true);
        assert!(!d.infinite);
        let d = decode(1, [4, 0, 10, 0, 0, 0], &empty);
        assert_eq!(d.args["target"], Value::Null);
    }

    #[test]
    fn serializes_to_json() {
        let fake = Fake::new().fd(4, "pipe:[123]");
        let v = serde_json::to_value(decode(1, [4, 0, 10, 0, 0, 0], &fake)).unwrap();
        assert_eq!(
            v,
            json!({
                "syscall": "write",
                "args": {"fd": 4, "target": "pipe:[123]", "count": 10, "infinite": true},
                "human": "write(fd 4 pipe:[123], 10 bytes)",
                "infinite": true,
                "fds": [4],
                "wait_pid": null,
            })
        );
    }
}
