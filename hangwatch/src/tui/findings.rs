//! The findings pane (above the events pane, only when there are findings): one line per open
//! finding, most severe first as the aggregator orders them — how long the situation has
//! lasted, the kind in its severity's colour, the summary cut to the width. Also the pieces the
//! table (the `!` mark, the FINDING column), the header (the count) and the detail view (each
//! finding with its chain) draw findings with.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph},
};

use super::App;
use crate::{
    analysis::{Finding, FindingKind, Severity, Step},
    fmt::{fmt_duration_ns, shorten},
};

const STYLE_DIM: Style = Style::new().fg(Color::DarkGray);

/// Critical and high in red (critical bold), medium in yellow, low in cyan.
pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::High => Style::new().fg(Color::Red),
        Severity::Medium => Style::new().fg(Color::Yellow),
        Severity::Low => Style::new().fg(Color::Cyan),
    }
}

pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

/// Whether a finding makes the header's count red.
pub fn is_serious(s: Severity) -> bool {
    s >= Severity::High
}

/// The table's word for a finding (at most 8 characters).
pub fn flag(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Deadlock => "DEADLOCK",
        FindingKind::OrphanedWait => "ORPHAN",
        FindingKind::Hung => "HUNG",
        FindingKind::MemoryNotReturned => "KEPT",
        FindingKind::MemoryGrowth => "GROWING",
        FindingKind::CpuThrottled => "THROTTLE",
        FindingKind::OomKill => "OOM",
    }
}

/// The summary without a leading "kind: " (a deadlock's summary starts with "deadlock: ").
pub fn summary(f: &Finding) -> &str {
    let kind = f.kind.as_str();
    f.summary.strip_prefix(kind).and_then(|rest| rest.strip_prefix(": ")).unwrap_or(&f.summary)
}

/// How long the situation has lasted, when known.
fn lasted(f: &Finding, now: u64) -> Option<String> {
    f.since_mono_ns.map(|s| fmt_duration_ns(now.saturating_sub(s)))
}

/// One step of a chain, worded as the snapshot report words it.
pub fn step_text(s: &Step) -> String {
    format!(
        "└→ pid {} tid {} ({}) in {} waits on {}",
        s.pid,
        s.tid,
        s.comm,
        if s.syscall.is_empty() { "?" } else { &s.syscall },
        s.waits_on
    )
}

/// Splits `s` at spaces into lines of at most `width` characters (a longer word is cut).
pub fn wrap_words(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        if cur_len > 0 && cur_len + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if cur_len == 0 {
            while word.len() > width {
                let rest = word.split_off(width);
                lines.push(word.into_iter().collect());
                word = rest;
            }
        } else {
            cur.push(' ');
            cur_len += 1;
        }
        cur_len += word.len();
        cur.extend(word);
    }
    if cur_len > 0 || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A finding as the detail view of `pid` draws it: the kind, severity and age; the summary
/// (not for a deadlock, whose summary is its chain); the chain as an indented path, the steps
/// of `pid` itself in bold. Wrapped to `width`.
pub fn detail_lines(f: &Finding, now: u64, pid: i32, width: u16) -> Vec<Line<'static>> {
    const INDENT: usize = 3;
    let width = width as usize;
    let sev = severity_style(f.severity);
    let mut head = vec![
        Span::styled(" ✖ ", sev),
        Span::styled(f.kind.as_str().to_string(), sev.add_modifier(Modifier::BOLD)),
        Span::styled(format!(" [{}]", severity_label(f.severity)), sev),
    ];
    if let Some(d) = lasted(f, now) {
        head.push(Span::styled(format!(" · for {d}"), STYLE_DIM));
    }
    let mut lines = vec![Line::from(head)];
    if f.kind != FindingKind::Deadlock || f.chain.is_empty() {
        for piece in wrap_words(summary(f), width.saturating_sub(INDENT)) {
            lines.push(Line::from(format!("{}{piece}", " ".repeat(INDENT))));
        }
    }
    for (i, s) in f.chain.iter().enumerate() {
        // Deep chains stop indenting at a third of the width.
        let indent = (INDENT + 3 * i).min(width / 3);
        let style =
            if s.pid == pid { Style::new().add_modifier(Modifier::BOLD) } else { Style::new() };
        let text = step_text(s);
        // Continuation lines line up after the arrow.
        let (first, rest) = text.split_at("└→ ".len());
        let pieces = wrap_words(rest, width.saturating_sub(indent + 3));
        for (j, piece) in pieces.into_iter().enumerate() {
            let lead = if j == 0 { first.to_string() } else { "   ".to_string() };
            lines.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(lead, sev),
                Span::styled(piece, style),
            ]));
        }
    }
    lines
}

/// Lines the pane needs for `n` findings (title included); 0 when there are none.
pub fn wanted_height(n: usize) -> u16 {
    if n == 0 { 0 } else { n.min(u16::MAX as usize - 1) as u16 + 1 }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let v = app.view();
    let rows = area.height.saturating_sub(1) as usize;
    let total = v.findings.len();
    let shown = total.min(rows);
    let mut title = format!(" Findings ({total}, most severe first) ");
    if shown < total {
        title.push_str(&format!("▼{} more ", total - shown));
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title).style(Style::new().add_modifier(Modifier::BOLD)))
        .border_style(STYLE_DIM);
    let kind_w = v.findings.iter().take(shown).map(|f| f.kind.as_str().len()).max().unwrap_or(0);
    let width = area.width as usize;
    let lines: Vec<Line> = v
        .findings
        .iter()
        .take(shown)
        .map(|f| {
            let age = lasted(f, v.now_mono_ns).unwrap_or_default();
            // " 5m12s deadlock  summary…"
            let used = 1 + 6 + 1 + kind_w + 2;
            Line::from(vec![
                Span::styled(format!(" {age:>6} "), STYLE_DIM),
                Span::styled(
                    format!("{:<kind_w$}  ", f.kind.as_str()),
                    severity_style(f.severity).add_modifier(Modifier::BOLD),
                ),
                Span::raw(shorten(summary(f), width.saturating_sub(used))),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent};
    use ratatui::style::{Color, Modifier};

    use super::wrap_words;
    use crate::{
        analysis::{FindingKind, Severity},
        tui::{Mode, testing::*},
    };

    #[test]
    fn words_wrap_and_long_words_are_cut() {
        assert_eq!(wrap_words("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap_words("", 4), vec![""]);
        assert_eq!(wrap_words("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap_words("ab cdefghij", 4), vec!["ab", "cdef", "ghij"]);
        for w in 1..30 {
            let text = "pid 7892 tid 7892 (deadlock_pipe_j) in write waits on pipe:[1183944]";
            let lines = wrap_words(text, w);
            assert!(lines.iter().all(|l| l.chars().count() <= w), "{w}: {lines:?}");
            let joined: String = lines.concat().chars().filter(|c| *c != ' ').collect();
            assert_eq!(joined, text.replace(' ', ""), "{w}: nothing lost");
        }
    }

    #[test]
    fn pane_lists_findings_most_severe_first() {
        let mut v = deadlock_view();
        v.findings.push(finding(
            FindingKind::MemoryGrowth,
            Severity::Low,
            vec![900],
            "pid 900 (grower) grows 3.2 MiB/min (RSS now 120.0 MiB)",
        ));
        let mut app = app_with(v);
        for (w, h) in [(80, 24), (120, 35)] {
            let s = render(&mut app, w, h);
            let all = screen(&s);
            let title = s
                .iter()
                .position(|l| l.contains("Findings (2, most severe first)"))
                .unwrap_or_else(|| panic!("{all}"));
            let events = s.iter().position(|l| l.contains("Events (")).expect("events pane");
            assert!(title < events, "the findings pane is above the events:\n{all}");
            let dl = &s[title + 1];
            assert!(dl.contains("3.0s deadlock"), "{all}");
            // The summary without its "deadlock: " prefix, cut to the width.
            assert!(dl.contains(" pid 710 (joiner) tid 710 waits in wait4"), "{all}");
            assert!(!dl.contains("deadlock: "), "{all}");
            assert!(dl.trim_end().ends_with('…'), "{all}");
            assert!(dl.chars().count() <= w as usize);
            assert!(
                s[title + 2].contains("memory_growth  pid 900 (grower) grows 3.2 MiB/min"),
                "{all}"
            );
            let st = style_of(&mut app, w, h, "3.0s deadlock", 5);
            assert_eq!(st.fg, Some(Color::Red));
            assert!(st.add_modifier.contains(Modifier::BOLD));
            assert_eq!(style_of(&mut app, w, h, "memory_growth  pid", 0).fg, Some(Color::Cyan));
        }
        // Without findings there is no pane.
        let mut app = app_with(view(vec![idle(1)]));
        assert!(!screen(&render(&mut app, 80, 24)).contains("Findings"));
    }

    fn open_detail(app: &mut crate::tui::App, pid: i32) {
        app.on_key(KeyEvent::from(KeyCode::Home));
        while app.selected_pid() != Some(pid) {
            app.on_key(KeyEvent::from(KeyCode::Down));
        }
        app.on_key(KeyEvent::from(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Detail(pid));
    }

    #[test]
    fn a_deadlock_is_shown_everywhere() {
        for (w, h) in [(80, 24), (120, 35)] {
            let mut app = app_with(deadlock_view());
            let s = render(&mut app, w, h);
            let all = screen(&s);
            // Header: the count, red (the deadlock is critical).
            assert!(s[1].contains("findings: 1"), "{all}");
            assert_eq!(style_of(&mut app, w, h, "findings: 1", 10).fg, Some(Color::Red));
            // Both rows marked with a red "!" before the pid; the idle one is not.
            for pid in [710, 711] {
                let row = s
                    .iter()
                    .find(|l| l.contains(&format!("!{pid} ")))
                    .unwrap_or_else(|| panic!("{w}x{h}: no marked row for {pid}:\n{all}"));
                assert!(row.chars().count() <= w as usize);
                let st = style_of(&mut app, w, h, &format!("!{pid}"), 0);
                assert_eq!(st.fg, Some(Color::Red), "{pid}");
                // The full layout names the finding in its own column.
                if w >= crate::tui::table::FULL_MIN_WIDTH {
                    assert!(row.trim_end().ends_with("DEADLOCK"), "{row}");
                }
            }
            let idle = s.iter().find(|l| l.contains("idle1")).expect("idle row");
            assert!(!idle.contains('!'), "{idle}");
            // The pane.
            let pane = s
                .iter()
                .position(|l| l.contains("Findings (1, most severe first)"))
                .unwrap_or_else(|| panic!("{all}"));
            assert!(s[pane + 1].contains("3.0s deadlock  pid 710 (joiner) tid 710"), "{all}");

            // The detail of either process shows the finding and its chain, as a path.
            for pid in [711, 710] {
                open_detail(&mut app, pid);
                let s = render(&mut app, w, h);
                let all = screen(&s);
                assert!(all.contains("Findings (1) · Threads (1)"), "{all}");
                let head = s
                    .iter()
                    .position(|l| l.contains("✖ deadlock [critical] · for 3.0s"))
                    .unwrap_or_else(|| panic!("{w}x{h} pid {pid}:\n{all}"));
                let first = s[head + 1].trim_end();
                assert_eq!(
                    first.trim_start(),
                    "└→ pid 710 tid 710 (joiner) in wait4 waits on child 711",
                    "{all}"
                );
                // The second step is indented under the first, wrapped when long.
                let second = &s[head + 2];
                let indent = |l: &str| l.chars().take_while(|c| *c == ' ').count();
                assert!(second.trim_start().starts_with("└→ pid 711 tid 711 (writer) in write"));
                assert_eq!(indent(second), indent(first) + 3, "{all}");
                let path: String =
                    s[head + 2..head + 4].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                assert!(
                    path.contains(
                        "└→ pid 711 tid 711 (writer) in write waits on pipe:[55665] whose only reader is pid 710"
                    ),
                    "{all}"
                );
                // The steps of this process are bold.
                let own = if pid == 710 { "pid 710 tid 710" } else { "pid 711 tid 711" };
                assert!(style_of(&mut app, w, h, own, 0).add_modifier.contains(Modifier::BOLD));
                // Then the threads, further down at 80x24.
                for _ in 0..10 {
                    app.on_key(KeyEvent::from(KeyCode::Down));
                }
                let all = screen(&render(&mut app, w, h));
                let comm = if pid == 710 { "joiner" } else { "writer" };
                assert!(all.contains(&format!("{pid:>7} {comm}")), "{all}");
                app.on_key(KeyEvent::from(KeyCode::Esc));
            }
        }
    }

    #[test]
    fn header_count_colour_follows_the_worst_severity() {
        let mut v = view(vec![idle(1)]);
        v.findings.push(finding(
            FindingKind::MemoryNotReturned,
            Severity::Medium,
            vec![1],
            "pid 1 holds",
        ));
        let mut app = app_with(v.clone());
        assert_eq!(style_of(&mut app, 80, 24, "findings: 1", 10).fg, Some(Color::Yellow));
        v.findings.insert(0, finding(FindingKind::Hung, Severity::High, vec![1], "pid 1 is hung"));
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        assert!(s[1].contains("findings: 2"), "{}", screen(&s));
        assert_eq!(style_of(&mut app, 80, 24, "findings: 2", 10).fg, Some(Color::Red));
        // The most severe finding marks the row.
        assert_eq!(style_of(&mut app, 120, 35, "!1 ", 0).fg, Some(Color::Red));
        let s = render(&mut app, 120, 35);
        let row = s.iter().find(|l| l.contains("!1 ")).expect("row");
        assert!(row.trim_end().ends_with("HUNG"), "{row}");
        // No findings: "findings: 0" when there is room, left out at 80 columns.
        let mut app = app_with(view(vec![idle(1)]));
        assert!(render(&mut app, 120, 35)[1].contains("findings: 0"));
        let s = render(&mut app, 80, 24);
        assert!(!s[1].contains("findings"), "{}", screen(&s));
        assert!(s[1].contains("self: 0.4%") && s[1].contains("lost: 0"), "{}", screen(&s));
    }

    #[test]
    #[ignore = "prints screens for a person to look at"]
    fn print_findings() {
        let mut app = app_with(deadlock_view());
        for (w, h) in [(80, 24), (120, 35)] {
            println!("{}", screen(&render(&mut app, w, h)));
        }
        open_detail(&mut app, 711);
        for (w, h) in [(80, 24), (120, 35)] {
            println!("{}", screen(&render(&mut app, w, h)));
        }
    }

    #[test]
    fn many_findings_leave_room_for_the_table() {
        let mut v = deadlock_view();
        for i in 0..30 {
            v.findings.push(finding(
                FindingKind::Hung,
                Severity::High,
                vec![2000 + i],
                &format!("pid {} (x) is hung", 2000 + i),
            ));
        }
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(all.contains("Findings (31, most severe first) ▼27 more"), "{all}");
        assert!(all.contains("Processes 1-"), "{all}");
        assert!(s.iter().filter(|l| l.contains("joiner")).count() >= 2, "{all}");
        // Tiny terminals do not panic, in the table or in the detail view.
        for (w, h) in [(20, 5), (1, 1), (80, 3), (200, 60), (30, 12)] {
            render(&mut app, w, h);
        }
        open_detail(&mut app, 711);
        for (w, h) in [(20, 5), (1, 1), (80, 3), (200, 60), (30, 12)] {
            render(&mut app, w, h);
        }
    }
}
