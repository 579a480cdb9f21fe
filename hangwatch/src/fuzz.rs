//! Property tests ("fuzzing") of every parser of outside data: what the kernel and other
//! processes write, read from /proc, /dev/kmsg, tracefs, sock_diag, BTF and the ring buffer.
//! The property is always "never panics, and what comes out is bounded by what went in"; some
//! parsers also get a round-trip property on well-formed input.
//!
//! Inputs are either arbitrary bytes or a real sample of the file, mutated token by token
//! (tokens replaced by interesting values: huge numbers, signs, separators, NULs, invalid
//! UTF-8), which reaches much deeper into a parser than random bytes do.
//!
//! `cargo test` runs 64 cases per property. `cargo xtask fuzz [--seconds N]` runs them again and
//! again with many more cases and a fresh seed each round, in the debug profile (arithmetic
//! overflow panics there, as it should be found), for N seconds per property.

use proptest::{prelude::*, sample::Index, test_runner::Config};

use crate::{
    memory, privileges,
    probes::{
        btf::Btf,
        events::{decode_oom, decode_record},
        tracefs::TracepointFormat,
    },
    procfs,
    sources::{cgroup, clock, facts, kmsg, unix_diag},
    syscalls::{self, TaskView},
};

/// 64 cases under `cargo test`; `PROPTEST_CASES` (set by `cargo xtask fuzz`) overrides it.
fn config() -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 64;
    }
    // Shrinking a failure of a cheap parser is fast; cap it anyway for the big inputs.
    c.max_shrink_iters = 4096;
    // No proptest-regressions/ files in the source tree: a failure prints its minimal input,
    // which becomes a named regression test at the end of this file.
    c.failure_persistence = None;
    c
}

/// Values that break parsers: empty, signs, overflow, separators, NUL, bad UTF-8 (lossy: the
/// byte strategies below put raw invalid bytes in).
const INTERESTING: &[&str] = &[
    "",
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "0xffffffffffffffff",
    "ffffffffffffffff",
    "4294967295",
    "2147483648",
    "(",
    ")",
    ") (",
    "((",
    ":",
    "::",
    ",",
    ";",
    "=",
    "[",
    "]",
    "\\x",
    "\\x1",
    "\\xzz",
    "\\x00",
    "\u{0}",
    "\n",
    "\n ",
    " ",
    "\t",
    ".",
    "..",
    "-",
    "\u{fffd}",
    "\u{202e}",
    "\u{1b}[2J",
];

/// One token of a mutation: an interesting value or a short random string.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(INTERESTING).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| format!("{n:x}")),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, String),
    Insert(Index, String),
    Delete(Index),
    Duplicate(Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), token()).prop_map(|(i, t)| Edit::Replace(i, t)),
        2 => (any::<Index>(), token()).prop_map(|(i, t)| Edit::Insert(i, t)),
        1 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Duplicate),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Splits `s` into runs of word characters and single other characters, so separators are
/// tokens of their own.
fn tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn apply(mut toks: Vec<String>, edits: &[Edit]) -> String {
    for e in edits {
        let n = toks.len().max(1);
        match e {
            Edit::Replace(i, t) if !toks.is_empty() => {
                let i = i.index(n);
                toks[i] = t.clone();
            }
            Edit::Replace(_, t) | Edit::Insert(_, t) if toks.is_empty() => toks.push(t.clone()),
            Edit::Insert(i, t) => toks.insert(i.index(n + 1), t.clone()),
            Edit::Delete(i) if !toks.is_empty() => {
                toks.remove(i.index(n));
            }
            Edit::Duplicate(i) if !toks.is_empty() => {
                let i = i.index(n);
                let t = toks[i].clone();
                toks.insert(i, t);
            }
            Edit::Truncate(i) => toks.truncate(i.index(n + 1)),
            _ => {}
        }
    }
    toks.concat()
}

/// `sample` with up to 12 token edits.
fn mutated(sample: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 0..12).prop_map(move |edits| apply(tokens(sample), &edits))
}

/// Mutated text, arbitrary text, or arbitrary bytes made lossy.
fn text(sample: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => mutated(sample),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| procfs::lossy(&b)),
    ]
}

/// Mutated text as bytes, with some invalid UTF-8 spliced in, or arbitrary bytes.
fn bytes(sample: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated(sample).prop_map(String::into_bytes),
        2 => (mutated(sample), any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(
            |(s, at, junk)| {
                let mut b = s.into_bytes();
                let at = at.index(b.len() + 1);
                b.splice(at..at, junk);
                b
            }
        ),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// A binary blob with up to 16 overwrites (bytes or little-endian words, often 0, all-ones or
/// the sign bit) and an optional truncation.
fn binary(blob: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just(0u32),
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x7fff_ffff),
        Just(0xffff),
        Just(0x1_0000),
        0u32..64,
        any::<u32>(),
    ];
    let overwrite = (any::<Index>(), word, any::<bool>());
    (prop::collection::vec(overwrite, 0..16), prop::option::of(any::<Index>())).prop_map(
        move |(writes, cut)| {
            let mut b = blob.clone();
            for (at, w, whole) in writes {
                if b.is_empty() {
                    break;
                }
                let at = at.index(b.len());
                let bytes = w.to_le_bytes();
                let n = if whole { 4 } else { 1 }.min(b.len() - at);
                b[at..at + n].copy_from_slice(&bytes[..n]);
            }
            if let Some(cut) = cut {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        },
    )
}

// --------------------------------------------------------------------------- samples

const STAT: &str = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 1500 0 0 0 25 13 0 0 20 0 \
                    3 0 4567 12345678 890 18446744073709551615 94000000000000 94000000100000 \
                    140730000000000 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 94000000200000 \
                    94000000210000 94000001000000 140730000001000 140730000001100 \
                    140730000001100 140730000002000 0\n";
const SYSCALL: &str = "202 0x7f1234567890 0x80 0x0 0x0 0x0 0x0 0x7ffd12345678 0x7f1234000000\n";
const SCHED: &str = "cat (1234, #threads: 1)\n---------------------------------\n\
                     se.exec_start                                :      12345678.901234\n\
                     se.vruntime                                  :         1234.567890\n\
                     se.sum_exec_runtime                          :            1.234567\n";
const SCHEDSTAT: &str = "1234567 89012 34\n";
const CGROUP: &str = "12:memory:/user.slice/a\n11:cpu,cpuacct:/x\n1:name=systemd:/y\n0::/z\n";
const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t   10000 kB\n\
                      VmSize:\t    9000 kB\nVmHWM:\t    1000 kB\nVmRSS:\t     900 kB\n\
                      RssAnon:\t     100 kB\nRssFile:\t     800 kB\nRssShmem:\t       0 kB\n\
                      Threads:\t1\nCapEff:\t000001ffffffffff\n";
const MAPS: &str = "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                  [heap]\n\
                    7f0000000000-7f0000100000 rw-s 00001000 00:05 1234   /dev/shm/sem.x (deleted)\n\
                    7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]\n";
const FDINFO: &str = "pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\n\
                      tfd:        5 events:       19 data:                5  pos:0 ino:2f sdev:d\n\
                      tfd:        7 events:   80000019 data:                7  pos:0 ino:30 sdev:d\n";
const NET_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0\n";
const NET_UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                        0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/x.sock\n";
const KMSG_KILL: &str = "6,1234,5678901,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),\
                         cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x/y,task=python3,pid=4242,uid=0";
const KMSG_KILLED: &str = "3,1235,5678902,-;Memory cgroup out of memory: Killed process 4242 \
                           (py\\x1b]0;x\\x07thon) total-vm:123456kB, anon-rss:98765kB, \
                           file-rss:1234kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0";
const KMSG_USAGE: &str = "4,1236,5678903,-;memory: usage 204800kB, limit 204800kB, failcnt 123";
const KMSG_TASK_IN: &str =
    "6,1237,5678904,-;Task in /x/y killed as a result of limit of /x\n SUBSYSTEM=memory";
const OOM_FORMAT: &str = "name: mark_victim\nID: 123\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\
    \tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\
    \tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;\n\
    \tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;\n\
    \tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;\n\
    \tfield:short oom_score_adj;\toffset:60;\tsize:2;\tsigned:1;\n";
const CPU_LIST: &str = "0-3,5,7-8\n";
const CPU_MAX: &str = "150000 100000\n";
const CPU_STAT: &str = "nr_periods 10\nnr_throttled 2\nthrottled_time 12345\nthrottled_usec 12\n";

// --------------------------------------------------------------------------- /proc text

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proc_stat(b in bytes(STAT)) {
        if let Some(s) = procfs::parse_stat(&b) {
            prop_assert!(s.comm.len() <= 3 * b.len());
        }
        let _ = memory::parse_start_brk(&b);
    }

    #[test]
    fn proc_stat_any_comm_round_trips(comm in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut line = b"77 (".to_vec();
        line.extend(&comm);
        line.extend(&STAT.as_bytes()[STAT.find(") S").unwrap_or(0)..]);
        let s = procfs::parse_stat(&line);
        prop_assert!(s.is_some());
        if let Some(s) = s {
            prop_assert_eq!(s.pid, 77);
            prop_assert_eq!(s.comm, procfs::lossy(&comm));
            prop_assert_eq!(s.state, 'S');
        }
    }

    #[test]
    fn proc_syscall(s in text(SYSCALL)) {
        let _ = procfs::parse_syscall(&s);
    }

    #[test]
    fn proc_sched_and_schedstat(s in text(SCHED), t in text(SCHEDSTAT)) {
        let _ = procfs::parse_exec_start_ns(&s);
        let _ = procfs::parse_schedstat(&t);
    }

    #[test]
    fn proc_cgroup(s in text(CGROUP)) {
        let path = procfs::parse_cgroup(&s);
        prop_assert!(path == "/" || s.contains(&path));
    }

    #[test]
    fn proc_status(s in text(STATUS)) {
        let _ = procfs::parse_status_mem(&s);
        let _ = memory::parse_status_vm(&s);
        let _ = privileges::parse_cap_eff(&s);
    }

    #[test]
    fn proc_cmdline(b in prop::collection::vec(any::<u8>(), 0..1024)) {
        let s = procfs::parse_cmdline(&b);
        // Lossy UTF-8 at most triples a byte; NULs become single spaces.
        prop_assert!(s.len() <= 3 * b.len());
    }

    #[test]
    fn proc_maps(s in text(MAPS), addr in any::<u64>()) {
        let maps: Vec<facts::Mapping> = s.lines().filter_map(facts::parse_maps_line).collect();
        let _ = facts::futex_key(1, addr, &maps);
        for m in &maps {
            // An address inside every mapping, also at the very ends of the address space.
            let _ = facts::futex_key(1, m.start, &maps);
            let _ = facts::futex_key(1, m.end.saturating_sub(1), &maps);
        }
        let _ = memory::parse_heap(&s);
        let _ = memory::scan_heap(s.as_bytes(), Some(addr));
        let _ = memory::scan_heap(s.as_bytes(), None);
    }

    #[test]
    fn proc_fdinfo_and_fd_targets(s in text(FDINFO), t in text("socket:[123456]")) {
        let _ = facts::parse_fdinfo_mode(&s);
        let set = facts::parse_epoll_fdinfo(&s);
        prop_assert!(set.len() <= s.lines().count());
        let _ = facts::parse_target(&t);
    }

    #[test]
    fn proc_net(tcp in text(NET_TCP), unix in text(NET_UNIX)) {
        let _ = facts::parse_listening_tcp(&tcp);
        let _ = facts::parse_listening_unix(&unix);
    }

    #[test]
    fn cgroup_and_cpu_files(
        list in text(CPU_LIST),
        max in text(CPU_MAX),
        stat in text(CPU_STAT),
        q in text("-1"),
        p in text("100000"),
    ) {
        let cpus = clock::parse_cpu_list(&list);
        // A range like 0-4294967295 must not allocate four billion entries.
        prop_assert!(cpus.len() <= 1 << 16, "{} cpus from {list:?}", cpus.len());
        let _ = cgroup::parse_cpu_max(&max);
        let _ = cgroup::parse_cpu_stat(&stat);
        let _ = cgroup::parse_quota_v1(&q, &p);
        let _ = cgroup::parse_limit(&max);
        let _ = cgroup::parse_oom_kill_count(&stat);
    }
}

// --------------------------------------------------------------------------- kernel log

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kmsg_records(
        a in text(KMSG_KILL),
        b in text(KMSG_KILLED),
        c in text(KMSG_USAGE),
        d in text(KMSG_TASK_IN),
    ) {
        for r in [&a, &b, &c, &d] {
            if let Some(rec) = kmsg::parse_kmsg_record(r) {
                let _ = kmsg::parse_oom_kill_line(&rec.message);
                let _ = kmsg::parse_killed_line(&rec.message, rec.ts_us);
                let _ = kmsg::parse_memcg_usage_line(&rec.message);
            }
        }
        // In report order, as the log holds them, and shuffled.
        let kills = kmsg::parse_kmsg_records(&[&d, &c, &a, &b]);
        prop_assert!(kills.len() <= 4);
        let _ = kmsg::parse_kmsg_records(&[&b, &a, &a, &c]);
    }
}

// --------------------------------------------------------------------------- tracefs, ring buffer

fn record(kind: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[..4].copy_from_slice(&kind.to_ne_bytes());
    b
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tracefs_format_and_oom_record(
        fmt in text(OOM_FORMAT),
        raw in prop::collection::vec(any::<u8>(), hangwatch_common::OOM_RAW_LEN),
    ) {
        let f = TracepointFormat::parse(&fmt);
        let mut arr = [0u8; hangwatch_common::OOM_RAW_LEN];
        arr.copy_from_slice(&raw);
        let ev = decode_oom(&arr, &f, 1);
        prop_assert!(ev.comm.as_ref().map_or(0, String::len) <= 3 * hangwatch_common::OOM_RAW_LEN);
        for name in ["pid", "comm", "total_vm", "anon_rss", "uid", "oom_score_adj", "common_type"] {
            let _ = f.int(&raw, name);
            let _ = f.string(&raw, name);
        }
    }

    #[test]
    fn ring_buffer_records(
        kind in prop_oneof![Just(1u32), Just(2), Just(3), any::<u32>()],
        len in 0usize..400,
        body in prop::collection::vec(any::<u8>(), 400),
        fmt in text(OOM_FORMAT),
    ) {
        let mut b = record(kind, len.max(4));
        let n = b.len();
        b[4..].copy_from_slice(&body[..n - 4]);
        b.truncate(len);
        let f = TracepointFormat::parse(&fmt);
        let _ = decode_record(&b, Some(&f));
        let _ = decode_record(&b, None);
    }
}

// --------------------------------------------------------------------------- sock_diag

/// A netlink datagram of a unix_diag dump: two sockets (one with a peer), then NLMSG_DONE.
fn sock_diag_blob() -> Vec<u8> {
    fn msg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(((16 + payload.len()) as u32).to_ne_bytes());
        b.extend(ty.to_ne_bytes());
        b.extend(2u16.to_ne_bytes());
        b.extend(1u32.to_ne_bytes());
        b.extend(0u32.to_ne_bytes());
        b.extend(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }
    let unix = |ino: u32, peer: Option<u32>| {
        let mut p = vec![libc::AF_UNIX as u8, libc::SOCK_STREAM as u8, 1, 0];
        p.extend(ino.to_ne_bytes());
        p.extend([0u8; 8]);
        p.extend(12u16.to_ne_bytes()); // UNIX_DIAG_NAME
        p.extend(0u16.to_ne_bytes());
        p.extend(b"/x.s\0\0\0\0");
        if let Some(peer) = peer {
            p.extend(8u16.to_ne_bytes());
            p.extend(2u16.to_ne_bytes()); // UNIX_DIAG_PEER
            p.extend(peer.to_ne_bytes());
        }
        msg(20, &p) // SOCK_DIAG_BY_FAMILY
    };
    let mut b = unix(100, Some(101));
    b.extend(unix(102, None));
    b.extend(msg(2, &0u32.to_ne_bytes())); // NLMSG_ERROR 0 (an ack)
    b.extend(msg(3, &[])); // NLMSG_DONE
    b
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sock_diag_messages(b in prop_oneof![
        4 => binary(sock_diag_blob()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]) {
        let batch = unix_diag::parse(&b);
        // A peer takes at least a 16-byte header, a 16-byte unix_diag_msg and an 8-byte attr.
        prop_assert!(batch.peers.len() * 28 <= b.len());
    }
}

// --------------------------------------------------------------------------- BTF

/// struct inner { u64 a; u64 exec_start; }; struct outer { int x; union { int y; struct inner
/// se; }; } with the union anonymous, a typedef and a const in the chain.
fn btf_blob() -> Vec<u8> {
    const INT: u32 = 1;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const TYPEDEF: u32 = 8;
    const CONST: u32 = 10;
    let strings = b"\0int\0a\0exec_start\0inner\0outer\0x\0y\0se\0inner_t\0".to_vec();
    let s = |n: &str| -> u32 {
        let needle = format!("\0{n}\0");
        strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .map_or(0, |p| p as u32 + 1)
    };
    let mut t = Vec::new();
    let mut push = |words: &[u32]| {
        for w in words {
            t.extend_from_slice(&w.to_le_bytes());
        }
    };
    push(&[s("int"), INT << 24, 8, 64]); // 1
    push(&[s("inner"), (STRUCT << 24) | 2, 16]); // 2
    push(&[s("a"), 1, 0]);
    push(&[s("exec_start"), 1, 64]);
    push(&[s("inner_t"), TYPEDEF << 24, 2]); // 3
    push(&[0, CONST << 24, 3]); // 4
    push(&[0, (UNION << 24) | 2, 16]); // 5
    push(&[s("y"), 1, 0]);
    push(&[s("se"), 4, 0]);
    push(&[s("outer"), (1 << 31) | (STRUCT << 24) | 2, 24]); // 6
    push(&[s("x"), 1, 0]);
    push(&[0, 5, 64]);
    let mut d = Vec::new();
    d.extend_from_slice(&0xeb9fu16.to_le_bytes());
    d.extend([1, 0]);
    for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
        d.extend_from_slice(&w.to_le_bytes());
    }
    d.extend_from_slice(&t);
    d.extend_from_slice(&strings);
    d
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn btf_blobs(b in prop_oneof![
        6 => binary(btf_blob()),
        1 => prop::collection::vec(any::<u8>(), 0..128),
    ]) {
        if let Ok(btf) = Btf::parse(&b) {
            for s in ["outer", "inner", "int", "", "x"] {
                let _ = btf.struct_size(s);
                let _ = btf.field_offset(s, &["se", "exec_start"]);
                let _ = btf.field_offset(s, &["x"]);
                let _ = btf.field_offset(s, &["y", "a", "se"]);
            }
        }
    }
}

#[test]
fn btf_blob_is_valid() {
    // The mutated blob starts from a real layout: check it parses as meant.
    let btf = Btf::parse(&btf_blob()).expect("the sample BTF parses");
    assert_eq!(btf.field_offset("outer", &["se", "exec_start"]).ok(), Some(16));
    assert_eq!(btf.struct_size("outer").ok(), Some(24));
}

#[test]
fn sock_diag_blob_is_valid() {
    let batch = unix_diag::parse(&sock_diag_blob());
    assert_eq!(batch.peers, vec![(100, 101)]);
    assert!(batch.done);
    assert_eq!(batch.error, None);
}

// --------------------------------------------------------------------------- syscall decoding

/// A target whose memory and fds are whatever the fuzzer says: what a hostile process can
/// make hangwatch read (its memory through process_vm_readv, its fd link targets).
#[derive(Debug)]
struct HostileTask {
    mem: Vec<u8>,
    fd_target: Option<String>,
}

impl TaskView for HostileTask {
    fn read_mem(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if addr == 0 {
            return None;
        }
        // Like process_vm_readv: any address works, the content repeats; bounded like
        // ProcTask's reads.
        let len = len.min(syscalls::MAX_READ);
        if self.mem.is_empty() {
            return Some(vec![0; len]);
        }
        let at = (addr % self.mem.len() as u64) as usize;
        Some(self.mem.iter().cycle().skip(at).take(len).copied().collect())
    }

    fn fd_target(&self, _fd: i32) -> Option<String> {
        self.fd_target.clone()
    }
}

/// Blocking syscalls hangwatch decodes (x86_64 numbers), and some it does not.
const SYSCALLS: &[i64] = &[
    0, 1, 7, 23, 35, 43, 61, 72, 202, 230, 232, 247, 270, 271, 281, 288, 441, 449, -1, 335, 100_000,
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn syscall_arguments(
        nr in prop_oneof![3 => prop::sample::select(SYSCALLS), 1 => any::<i64>()],
        args in prop::array::uniform6(prop_oneof![
            Just(0u64), Just(u64::MAX), Just(1u64 << 63), 0u64..70_000, any::<u64>()
        ]),
        mem in prop::collection::vec(any::<u8>(), 0..256),
        fd_target in prop::option::of(text("socket:[123456]")),
    ) {
        let task = HostileTask { mem, fd_target };
        let d = syscalls::decode(nr, args, &task);
        // A poll set of 2^64 fds or a cyclic struct must not make the rendering unbounded.
        prop_assert!(d.human.len() <= 64 * 1024, "{} bytes of summary", d.human.len());
        prop_assert!(d.fds.len() <= syscalls::MAX_READ, "{} fds", d.fds.len());
    }
}

// --------------------------------------------------------------------------- terminal escaping

/// Text a process controls (its name, command line, paths), biased to what attacks a terminal:
/// C0 and C1 controls, DEL, escape sequences, bidi overrides, invisible format characters,
/// wide and combining characters.
fn hostile_text() -> impl Strategy<Value = String> {
    let hostile_char = prop_oneof![
        2 => prop::char::range('\u{0}', '\u{1f}'),
        1 => prop::char::range('\u{7f}', '\u{9f}'),
        1 => prop::char::range('\u{200b}', '\u{200f}'),
        1 => prop::char::range('\u{202a}', '\u{202e}'),
        1 => prop::char::range('\u{2066}', '\u{2069}'),
        1 => prop::sample::select(vec!['\u{feff}', '\u{ad}', '\u{e0041}', '\u{301}', '日', '…']),
        4 => prop::char::range(' ', '~'),
        1 => any::<char>(),
    ];
    prop_oneof![
        4 => prop::collection::vec(hostile_char, 0..80).prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
    ]
}

/// Columns as `escape` counts them for characters it lets through.
fn shown_cols(s: &str) -> usize {
    use unicode_width::UnicodeWidthChar as _;
    s.chars().map(|c| c.width().unwrap_or(1)).sum()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn escape_hostile_text(s in hostile_text(), max_cols in prop_oneof![0usize..100, Just(512)]) {
        let f = crate::escape::field(&s, max_cols);
        prop_assert!(!f.chars().any(crate::escape::is_unsafe), "unsafe char left in {f:?}");
        prop_assert!(shown_cols(&f) <= max_cols.max(1), "{} columns > {max_cols}: {f:?}", shown_cols(&f));
        let r = crate::escape::report(&s);
        prop_assert!(!r.chars().any(|c| c != '\n' && crate::escape::is_unsafe(c)));
        let mut json = Vec::new();
        prop_assert!(crate::escape::json_to_writer(&mut json, &s).is_ok());
        let text = String::from_utf8(json);
        prop_assert!(text.is_ok());
        if let Ok(text) = text {
            prop_assert!(!text.chars().any(crate::escape::is_unsafe), "unsafe char in {text:?}");
            let back: Result<String, _> = serde_json::from_str(&text);
            prop_assert_eq!(back.ok(), Some(s.clone()));
        }
    }
}

// --------------------------------------------------------------------------- regressions
// Each input below made a parser panic (arithmetic overflow) when the properties above found
// it; release builds wrapped silently instead and reported a wrong figure.

#[test]
fn regression_status_kb_overflow() {
    // Found by `proc_status`: 2^54 kB overflowed `* 1024`.
    let m = procfs::parse_status_mem("VmSize:\t9000 kB\nVmHWM:18014398509481984    1000 kB\n");
    assert_eq!(m.vm_hwm, u64::MAX);
    assert_eq!(m.vm_size, 9000 * 1024);
}

#[test]
fn regression_cpu_stat_usec_overflow() {
    // Found by `cgroup_and_cpu_files`: throttled_usec near 2^64 / 1000 overflowed `* 1000`.
    let (nr, ns) = cgroup::parse_cpu_stat("nr_throttled 2\nthrottled_usec 18446744073709552\n");
    assert_eq!((nr, ns), (2, u64::MAX));
}

#[test]
fn regression_exec_start_overflow() {
    // Found by `proc_sched_and_schedstat`: 429496729512345678 ms overflowed `* 1_000_000`.
    let sched = "se.exec_start                                :      429496729512345678.901234\n";
    assert_eq!(procfs::parse_exec_start_ns(sched), None);
    let sched = "se.exec_start                                :      12345678.901234\n";
    assert_eq!(procfs::parse_exec_start_ns(sched), Some(12_345_678_901_234));
}

#[test]
fn regression_cpu_list_overflow_and_size() {
    // Found by `cgroup_and_cpu_files`: `a + 65_535` overflowed for a range starting near 2^32,
    // and the per-range cap let many ranges add up past any real CPU count.
    assert_eq!(clock::parse_cpu_list("4294967295-3,5"), vec![5]);
    assert_eq!(clock::parse_cpu_list("4294967294-4294967295"), vec![4294967294, 4294967295]);
    assert_eq!(clock::parse_cpu_list("00-3,5,7-4294967295").len(), 1 << 16);
    assert_eq!(clock::parse_cpu_list("0-3,8-9\n"), vec![0, 1, 2, 3, 8, 9]);
}

#[test]
fn regression_futex_key_offset_overflow() {
    // Found by `proc_maps`: a shared mapping at file offset 2^64-1 overflowed the key's offset.
    let m = facts::parse_maps_line(
        "7f0000000000-7f0000100000 rw-s ffffffffffffffff 00:05 1234   /dev/shm/sem.x",
    )
    .expect("a maps line");
    let a = facts::futex_key(1, 0x7f00_0000_0000, std::slice::from_ref(&m));
    let b = facts::futex_key(1, 0x7f00_0000_0001, std::slice::from_ref(&m));
    assert_ne!(a, b);
}

#[test]
fn regression_tracefs_offset_overflow() {
    // Found by `tracefs_format_and_oom_record`: offset 2^64-1 overflowed `offset + size` (int)
    // and `offset + 4` (__data_loc string).
    let f = TracepointFormat::parse(
        "\tfield:unsigned long anon_rss;\toffset:18446744073709551615;\tsize:8;\tsigned:0;\n\
         \tfield:__data_loc char[] comm;\toffset:18446744073709551615;\tsize:4;\tsigned:0;\n",
    );
    let raw = [0u8; 64];
    assert_eq!(f.int(&raw, "anon_rss"), None);
    assert_eq!(f.string(&raw, "comm"), None);
}

#[test]
fn regression_sock_diag_errno_min() {
    // Found by `sock_diag_messages`: an NLMSG_ERROR of i32::MIN overflowed the negation.
    let mut b = Vec::new();
    b.extend(20u32.to_ne_bytes());
    b.extend(2u16.to_ne_bytes()); // NLMSG_ERROR
    b.extend([0u8; 10]);
    b.extend(0x8000_0000u32.to_ne_bytes());
    let batch = unix_diag::parse(&b);
    assert_eq!(batch.error, Some(i32::MAX));
    assert!(batch.done);
}

#[test]
fn regression_btf_member_offset_overflow() {
    // Found by `btf_blobs`: member bit offsets adding past 2^32 overflowed. In the blob,
    // `outer` reaches `se` through an anonymous union at bit 64; put `se` at bit 2^32 - 1 in
    // the union (the union has no kind_flag, so the whole word is the offset). Type section:
    // int 16 bytes, inner 36, typedef 12, const 12, union 12, member y 12, then member se,
    // whose offset is its third word.
    let mut b = btf_blob();
    let se_offset = 24 + 16 + 36 + 12 + 12 + 12 + 12 + 8;
    assert_eq!(b[se_offset..se_offset + 4], 0u32.to_le_bytes());
    b[se_offset..se_offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let btf = Btf::parse(&b).expect("still well-formed");
    assert!(btf.field_offset("outer", &["se", "exec_start"]).is_err());
}
