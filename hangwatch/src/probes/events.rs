//! The ring buffer's records, decoded into owned events: a wait that ended, an OOM victim.
//!
//! The kernel side writes `#[repr(C)]` records (`hangwatch_common`); nothing here trusts their
//! length, and a record of an unknown kind is skipped.

use std::fs;

use hangwatch_common::{COMM_LEN, EventHeader, OOM_RAW_LEN, OomVictim, WaitEnd, kind};

use super::tracefs::TracepointFormat;
use crate::{model::oom::OomVictimEvent, procfs};

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

#[derive(Debug, Clone, PartialEq)]
pub enum KernelEvent {
    WaitEnd(WaitEndEvent),
    OomVictim(OomVictimEvent),
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
    fn short_or_unknown_records_are_ignored() {
        assert_eq!(decode_record(&[1, 2, 3], None), None);
        let mut b = vec![0u8; 64];
        b[0] = 77;
        assert_eq!(decode_record(&b, None), None);
    }
}
