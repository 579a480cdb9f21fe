//! The human snapshot report: read in ten seconds, most suspicious first.

use std::fmt::Write as _;

use crate::{
    analysis::{Finding, Severity},
    escape::{field, term},
    fmt::{fmt_bytes, fmt_duration_ms, fmt_duration_ns, rfc3339},
    memory::MemStatus,
    model::Process,
    snapshot::Report,
    stacks::{Stack, StackMode},
};

/// Columns for a comm (the kernel keeps 15 bytes; escapes make it longer).
const COMM_COLS: usize = 64;
/// Columns for a finding's one-line summary.
const SUMMARY_COLS: usize = 2048;

/// How many processes the report lists before summarising the rest.
pub const DEFAULT_LIMIT: usize = 20;

/// Every field a process controls (names, command lines, paths, cgroups, findings that quote
/// them) goes through [`crate::escape`], and the whole report once more through
/// [`crate::escape::report`], so that nothing but the report's own newlines reaches the terminal.
pub fn render(r: &Report, limit: usize) -> String {
    crate::escape::report(&render_unchecked(r, limit)).into_owned()
}

fn render_unchecked(r: &Report, limit: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "hangwatch snapshot · {} · kernel {} · {} · window {}",
        term(&r.hostname),
        term(&r.kernel),
        rfc3339(r.time),
        fmt_duration_ns(r.window.as_nanos() as u64)
    );
    let blocked_procs = r.processes.iter().filter(|p| p.blocked_count() > 0).count();
    let _ = writeln!(
        o,
        "{} process{} with threads blocked ≥ {} ({} scanned), most suspicious first",
        blocked_procs,
        if blocked_procs == 1 { "" } else { "es" },
        fmt_duration_ns(r.min_blocked.as_nanos() as u64),
        r.stats.processes_scanned,
    );
    for p in r.probes.iter().filter(|p| !p.attached) {
        let _ = writeln!(
            o,
            "warning: probe {} not attached: {} ({})",
            p.name,
            term(p.reason.as_deref().unwrap_or("unknown reason")),
            p.impact
        );
    }
    for l in &r.limitations {
        let _ = writeln!(o, "warning: {}", l.message());
    }
    if !r.findings.is_empty() {
        let _ = writeln!(o, "\nFindings, most severe first:");
        for f in &r.findings {
            render_finding(&mut o, r, f);
        }
    }
    if r.processes.is_empty() {
        let _ = writeln!(
            o,
            "\nNothing blocked for longer than {}.",
            fmt_duration_ns(r.min_blocked.as_nanos() as u64)
        );
    }
    for p in r.processes.iter().take(limit) {
        o.push('\n');
        render_process(&mut o, p, r.stack_mode);
    }
    if r.processes.len() > limit {
        let _ = writeln!(
            o,
            "\n… {} more processes (narrow with --pid/--comm, or use --json for all)",
            r.processes.len() - limit
        );
    }
    if !r.oom_kills.is_empty() {
        let _ = writeln!(o, "\nOOM kills (kernel log), newest last:");
        let skip = r.oom_kills.len().saturating_sub(10);
        for k in r.oom_kills.iter().skip(skip) {
            let ago =
                r.mono_ns.saturating_sub(crate::model::oom::boot_us_to_mono_ns(k.time_boot_us));
            let _ = writeln!(
                o,
                "  {} ago: {} ({}) in {} [{}]{}{}",
                fmt_duration_ns(ago),
                k.pid,
                field(&k.comm, COMM_COLS),
                term(k.cgroup.as_deref().unwrap_or("?")),
                k.constraint,
                k.memory_limit_bytes
                    .map(|l| format!(", limit {}", fmt_bytes(l)))
                    .unwrap_or_default(),
                k.anon_rss_bytes
                    .map(|a| format!(", victim anon RSS {}", fmt_bytes(a)))
                    .unwrap_or_default()
            );
        }
    }
    if !r.ended_waits.is_empty() {
        let _ = writeln!(o, "\nWaits that ended during the window:");
        for e in r.ended_waits.iter().take(10) {
            let _ = writeln!(
                o,
                "  {} {} ({}) {} after {}, woken by {} ({})",
                e.pid,
                e.tid,
                field(&e.comm, COMM_COLS),
                term(&e.syscall),
                fmt_duration_ns(e.duration_ns),
                e.waker_pid,
                field(&e.waker_comm, COMM_COLS)
            );
        }
    }
    let (k, scan) = (&r.stats.kernel, fmt_duration_ms(r.stats.scan_ms));
    let _ = writeln!(
        o,
        "\nlost events: {} · map full: {} · processes vanished while read: {} · /proc scan {scan}",
        k.lost_events, k.map_full, r.stats.vanished
    );
    o
}

/// "RSS 1.0 GiB (anon 1.0 GiB) · heap 1.0 GiB, peak 1.0 GiB, 0 shrinks · returned 0 B · NOT RETURNED"
pub fn memory_line(m: &MemStatus) -> String {
    let seen = if m.kernel.is_some() { "counted" } else { "seen" };
    let mut s = format!(
        "RSS {} (anon {}, peak {}) · heap {} (peak {}, {} grows / {} shrinks {seen}) · returned {}",
        fmt_bytes(m.rss),
        fmt_bytes(m.rss_anon),
        fmt_bytes(m.peak_rss),
        fmt_bytes(m.heap),
        fmt_bytes(m.heap_peak),
        m.brk_grows,
        m.brk_shrinks,
        fmt_bytes(m.returned_bytes)
    );
    if let Some(k) = &m.kernel {
        s.push_str(&format!(
            " · calls: {} mmap {} / {} munmap {} / {} madvise-free {} (kernel)",
            k.mmap_calls,
            fmt_bytes(k.mmap_bytes),
            k.munmap_calls,
            fmt_bytes(k.munmap_bytes),
            k.madvise_calls,
            fmt_bytes(k.madvise_bytes)
        ));
    }
    if let Some(l) = &m.layout {
        s.push_str(&format!(
            " · where: {}{}",
            l.where_text(),
            if l.truncated { " (smaps read cut short: at least)" } else { "" }
        ));
    }
    if m.not_returned {
        s.push_str(" · NOT RETURNED");
    }
    if let Some(r) = m.growth_bytes_per_min {
        s.push_str(&format!(" · GROWING {}/min", fmt_bytes(r.max(0.0) as u64)));
    }
    s
}

fn render_finding(o: &mut String, r: &Report, f: &Finding) {
    let since = f
        .since_mono_ns
        .map(|s| format!(" (since {} ago)", fmt_duration_ns(r.mono_ns.saturating_sub(s))))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "✖ {} [{}]{}: {}",
        f.kind.as_str(),
        severity(f.severity),
        since,
        field(&f.summary, SUMMARY_COLS)
    );
    for (i, s) in f.chain.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {}└→ pid {} tid {} ({}) in {} waits on {}{}",
            "   ".repeat(i),
            s.pid,
            s.tid,
            field(&s.comm, COMM_COLS),
            if s.syscall.is_empty() { "?".into() } else { term(&s.syscall) },
            term(&s.waits_on),
            s.frame.as_deref().map(|f| format!(" {}", field(f, FRAME_COLS))).unwrap_or_default()
        );
    }
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn render_process(o: &mut String, p: &Process, mode: StackMode) {
    let n = p.threads.len();
    let b = p.blocked_count();
    let blocked = if b == 0 {
        "no thread blocked".to_string()
    } else if p.all_blocked() {
        if n == 1 {
            "its thread is blocked".to_string()
        } else {
            format!("all {n} threads blocked")
        }
    } else {
        format!("{b} of {n} threads blocked")
    };
    let _ = writeln!(
        o,
        "● {} {} — {} · CPU {:.1}% now, {:.1}s total · RSS {}",
        p.pid,
        field(&p.comm, COMM_COLS),
        blocked,
        p.cpu_percent,
        p.cpu_total_secs,
        fmt_bytes(p.rss_bytes)
    );
    if !p.cmdline.is_empty() {
        let _ = writeln!(o, "  cmd: {}", field(&p.cmdline, 100));
    }
    let _ = writeln!(o, "  cgroup: {}", term(&p.cgroup));
    if let Some(m) = &p.memory {
        let _ = writeln!(o, "  memory: {}", memory_line(m));
    }
    let mut blocked: Vec<_> = p.blocked_threads().collect();
    blocked.sort_by(|a, b| b.1.duration_ns.cmp(&a.1.duration_ns).then(a.0.tid.cmp(&b.0.tid)));
    const MAX_THREADS: usize = 8;
    let shown = blocked.len().min(MAX_THREADS);
    for (i, (t, w)) in blocked.iter().take(MAX_THREADS).enumerate() {
        let last = i + 1 == shown && blocked.len() <= MAX_THREADS;
        let _ = writeln!(
            o,
            "  {} {:<7} {} {:<15} {} for {}{}",
            if last { "└─" } else { "├─" },
            t.tid,
            t.state,
            field(&t.comm, 15),
            term(&w.decoded.human),
            fmt_duration_ns(w.duration_ns),
            w.wchan.as_deref().map(|c| format!("  [{}]", term(c))).unwrap_or_default()
        );
        if mode == StackMode::Brief
            && let Some(s) = &t.stack
        {
            stack_brief(o, s, if last { "   " } else { "│  " });
        }
    }
    if blocked.len() > MAX_THREADS {
        let _ = writeln!(o, "  └─ … {} more blocked threads", blocked.len() - MAX_THREADS);
    }
    if mode == StackMode::Full {
        stacks_full(o, p);
    }
}

/// Columns for one frame (a C++ symbol with its parameters can be long).
const FRAME_COLS: usize = 300;
/// Most frames printed per stack with `--stacks`.
const MAX_FRAMES_SHOWN: usize = 64;

/// The innermost user-code frame under a thread's line, or why there is none.
fn stack_brief(o: &mut String, s: &Stack, indent: &str) {
    match (s.user_frame(), &s.error) {
        (Some(f), _) => {
            let _ = writeln!(o, "  {indent}    {}", field(&f, FRAME_COLS));
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "  {indent}    (no stack: {})", field(e, FRAME_COLS));
        }
        (None, None) => {}
    }
}

/// Whole stacks of a process's blocked and `D` threads, identical ones once with their count.
fn stacks_full(o: &mut String, p: &Process) {
    let with: Vec<(i32, &Stack)> =
        p.threads.iter().filter_map(|t| Some((t.tid, t.stack.as_deref()?))).collect();
    for (s, tids) in crate::stacks::group(with) {
        let shown: Vec<String> = tids.iter().take(8).map(|t| t.to_string()).collect();
        let more = if tids.len() > 8 { ", …" } else { "" };
        let _ = writeln!(
            o,
            "  stack × {} thread{} (tid {}{more}):",
            tids.len(),
            if tids.len() == 1 { "" } else { "s" },
            shown.join(", ")
        );
        let lines = s.lines();
        for l in lines.iter().take(MAX_FRAMES_SHOWN) {
            let _ = writeln!(o, "      {}", field(l, FRAME_COLS));
        }
        if lines.len() > MAX_FRAMES_SHOWN {
            let _ = writeln!(o, "      … {} more frames", lines.len() - MAX_FRAMES_SHOWN);
        }
        if let Some(e) = &s.error {
            let _ = writeln!(o, "      ({})", field(e, FRAME_COLS));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{
        model::fixtures::{process, wait},
        snapshot::Stats,
    };

    fn report(processes: Vec<Process>) -> Report {
        Report {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            mono_ns: 1_000_000_000_000,
            hostname: "node1".into(),
            kernel: "6.18.0".into(),
            window: Duration::from_secs(1),
            min_blocked: Duration::from_secs(1),
            processes,
            hidden: 0,
            findings: vec![],
            oom_kills: vec![],
            cgroup_oom_counters: vec![],
            ended_waits: vec![],
            probes: vec![],
            stats: Stats { processes_scanned: 42, ..Default::default() },
            limitations: vec![],
            stack_mode: crate::stacks::StackMode::Brief,
        }
    }

    #[test]
    fn renders_hung_process() {
        let mut p = process(4242, 12.3, 400.0, vec![Some(wait("poll", 312.0, true))]);
        p.comm = "python3".into();
        p.cmdline = "python3 job.py".into();
        std::sync::Arc::make_mut(&mut p.threads[0].blocked.as_mut().unwrap().decoded).human =
            "poll(1 fd: 7 socket:[123], timeout=infinite)".into();
        let s = render(&report(vec![p]), DEFAULT_LIMIT);
        assert!(s.contains("1 process with threads blocked ≥ 1.0s (42 scanned)"), "{s}");
        assert!(
            s.contains("● 4242 python3 — its thread is blocked · CPU 0.0% now, 12.3s total"),
            "{s}"
        );
        assert!(
            s.contains("└─ 4242    S t               poll(1 fd: 7 socket:[123], timeout=infinite) for 5m12s  [poll_schedule_timeout]"),
            "{s}"
        );
        assert!(s.contains("cmd: python3 job.py"));
        assert!(s.contains("lost events: 0"));
        // Every duration in the house style of crate::fmt (it was "/proc scan 12 ms").
        let mut r = report(vec![]);
        r.stats.scan_ms = 12;
        assert!(render(&r, DEFAULT_LIMIT).contains("/proc scan 12ms\n"));
        r.stats.scan_ms = 12_500;
        assert!(render(&r, DEFAULT_LIMIT).contains("/proc scan 12s\n"));
    }

    /// The hostile names of issue 9, in every field a process controls.
    const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\r\u{202e}x\u{9b}1m";

    fn assert_terminal_safe(s: &str) {
        let bad: Vec<char> =
            s.chars().filter(|&c| c != '\n' && crate::escape::is_unsafe(c)).collect();
        assert!(bad.is_empty(), "raw {bad:?} in\n{s}");
        for line in s.lines() {
            assert!(!line.starts_with("✖ deadlock [critical]: forged"), "forged line: {line}");
        }
    }

    #[test]
    fn hostile_names_paths_and_findings_are_escaped() {
        let mut p = process(666, 1.0, 100.0, vec![Some(wait("read", 5.0, true))]);
        p.comm = HOSTILE.into();
        p.cmdline = format!("{HOSTILE}\n✖ deadlock [critical]: forged");
        p.cgroup = format!("/{HOSTILE}");
        p.threads[0].comm = HOSTILE.into();
        let w = p.threads[0].blocked.as_mut().unwrap();
        std::sync::Arc::make_mut(&mut w.decoded).human = format!("read(3 /tmp/{HOSTILE})");
        w.wchan = Some(HOSTILE.into());
        let mut r = report(vec![p]);
        r.hostname = HOSTILE.into();
        r.findings.push(Finding {
            kind: crate::analysis::FindingKind::Hung,
            severity: Severity::High,
            pids: vec![666],
            tids: vec![666],
            summary: format!("pid 666 ({HOSTILE}) is hung\n✖ deadlock [critical]: forged"),
            since_mono_ns: None,
            chain: vec![crate::analysis::Step {
                pid: 666,
                tid: 666,
                comm: HOSTILE.into(),
                syscall: "read".into(),
                waits_on: format!("/tmp/{HOSTILE}\n✖ deadlock [critical]: forged"),
                // A frame is the target's own symbol or Python function name: hostile too.
                frame: Some(format!("in {HOSTILE}\n✖ deadlock [critical]: forged")),
            }],
            key: "k".into(),
        });
        let s = render(&r, DEFAULT_LIMIT);
        assert_terminal_safe(&s);
        assert!(
            s.contains("● 666 \\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m\\r\\u{202e}x\\u{9b}1m — "),
            "{s}"
        );
        assert!(s.contains("\\n✖ deadlock [critical]: forged"), "{s}");
        assert!(s.contains("cgroup: /\\x1b]0;pwned"), "{s}");
    }

    #[test]
    fn hostile_oom_victim_from_the_kernel_log_is_escaped() {
        // The kernel log escapes the name (`\x1b` as text); the parser decodes it back to the
        // real name, and the report must escape it again rather than print it.
        let kills = crate::sources::kmsg::parse_kmsg_records(&[
            "3,10,1000000,-;Memory cgroup out of memory: Killed process 77 (\\x1b]0;pwned\\x07\\x0a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0",
        ]);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].comm, "\x1b]0;pwned\x07\n");
        let mut r = report(vec![]);
        r.oom_kills = kills;
        let s = render(&r, DEFAULT_LIMIT);
        assert_terminal_safe(&s);
        assert!(s.contains("77 (\\x1b]0;pwned\\x07\\n) in ?"), "{s}");
    }

    #[test]
    fn empty_and_truncated() {
        let s = render(&report(vec![]), DEFAULT_LIMIT);
        assert!(s.contains("Nothing blocked for longer than 1.0s."), "{s}");
        let many: Vec<_> = (1..=25)
            .map(|i| process(i, 1.0, 100.0, vec![Some(wait("futex", 5.0, true))]))
            .collect();
        let s = render(&report(many), DEFAULT_LIMIT);
        assert!(s.contains("… 5 more processes"), "{s}");
    }
}
