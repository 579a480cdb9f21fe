//! The detail view of one process: what it is, each thread with its syscall, decoded
//! arguments, wait length and wchan; its memory over time; its OOM kills and children.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph},
};

use super::{App, table};
use crate::{
    live::aggregator::ProcessRow,
    model::Thread,
    output::{fmt_bytes, fmt_duration_ns},
};

/// The parts of the detail view.
struct Parts {
    info: Rect,
    threads: Rect,
    chart: Rect,
    misc: Rect,
}

fn split(area: Rect) -> Parts {
    if area.width >= 100 {
        let [info, threads, bottom] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Min(3),
            Constraint::Length((area.height * 3 / 10).max(8)),
        ])
        .areas(area);
        let [chart, misc] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(bottom);
        Parts { info, threads, chart, misc }
    } else {
        let [info, threads, chart, misc] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Min(3),
            Constraint::Length((area.height / 4).max(6)),
            Constraint::Length(4),
        ])
        .areas(area);
        Parts { info, threads, chart, misc }
    }
}

/// Thread lines that fit (the threads pane's title excluded).
pub fn page_rows(area: Rect) -> u16 {
    split(area).threads.height.saturating_sub(1)
}

/// Number of thread lines the detail view of `pid` has at this size (to clamp the scroll).
pub fn line_count(app: &App, pid: i32, area: Rect) -> usize {
    app.process(pid).map_or(0, |r| thread_lines(r, split(area).threads.width).len())
}

const STYLE_DIM: Style = Style::new().fg(Color::DarkGray);

/// Blocked threads first, longest wait first; then the others by tid.
fn ordered(row: &ProcessRow) -> Vec<&Thread> {
    let mut ts: Vec<&Thread> = row.process.threads.iter().collect();
    ts.sort_by(|a, b| {
        let da = a.blocked.as_ref().map(|w| w.duration_ns);
        let db = b.blocked.as_ref().map(|w| w.duration_ns);
        db.cmp(&da).then(a.tid.cmp(&b.tid))
    });
    ts
}

/// Splits `s` into pieces of at most `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(width.max(1)).map(|c| c.iter().collect()).collect()
}

/// Two or more lines per blocked thread (summary, then the decoded call), one per other thread.
fn thread_lines(row: &ProcessRow, width: u16) -> Vec<Line<'static>> {
    const INDENT: usize = 9;
    let mut lines = Vec::new();
    for t in ordered(row) {
        let head = format!("{:>7} {:<15} {} ", t.tid, crate::output::shorten(&t.comm, 15), t.state);
        match &t.blocked {
            Some(w) => {
                let mut spans = vec![
                    Span::raw(head),
                    Span::styled(
                        table::wait_label(w, 40),
                        Style::new()
                            .fg(if w.decoded.infinite { Color::Yellow } else { Color::Reset })
                            .add_modifier(Modifier::BOLD),
                    ),
                ];
                if let Some(wchan) = &w.wchan {
                    spans.push(Span::styled("  wchan ", STYLE_DIM));
                    spans.push(Span::raw(wchan.clone()));
                }
                lines.push(Line::from(spans));
                for piece in wrap(&w.decoded.human, (width as usize).saturating_sub(INDENT)) {
                    lines.push(
                        Line::from(format!("{}{piece}", " ".repeat(INDENT)))
                            .style(Style::new().fg(Color::Cyan)),
                    );
                }
            }
            None => {
                let what = match t.state {
                    'R' => "running",
                    'Z' => "zombie",
                    'D' => "uninterruptible (not in a reported wait)",
                    _ if row.exited => "gone",
                    _ => "not blocked (or waiting less than --min-blocked)",
                };
                lines.push(Line::from(vec![Span::raw(head), Span::styled(what, STYLE_DIM)]));
            }
        }
    }
    lines
}

fn pane(title: String) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title).style(Style::new().add_modifier(Modifier::BOLD)))
        .border_style(STYLE_DIM)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, pid: i32) {
    let Some(row) = app.process(pid) else {
        let text = format!(" process {pid} is gone (Esc goes back)");
        frame.render_widget(Paragraph::new(text).block(pane(format!(" pid {pid} "))), area);
        return;
    };
    let p = &row.process;
    let parts = split(area);

    // What it is.
    let mut title = vec![Span::styled(
        format!(" pid {} · {} · ppid {} ", p.pid, p.comm, p.ppid),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if row.exited {
        title.push(Span::styled("[exited] ", STYLE_DIM));
    }
    if row.oom_killed {
        title.push(Span::styled(
            "[OOM killed] ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    let w = parts.info.width as usize;
    let info = vec![
        Line::from(format!(
            " {} of {} threads blocked · score {:.1} · CPU {:.1}% ({:.1} s total) · RSS {} · up {}",
            p.blocked_count(),
            p.threads.len(),
            p.suspicion(),
            p.cpu_percent,
            p.cpu_total_secs,
            fmt_bytes(p.rss_bytes),
            fmt_duration_ns((p.age_secs * 1e9) as u64),
        )),
        Line::from(vec![
            Span::styled(" cgroup ", STYLE_DIM),
            Span::raw(table::shorten_tail(&p.cgroup, w.saturating_sub(8))),
        ]),
        Line::from(vec![
            Span::styled(" cmd    ", STYLE_DIM),
            Span::raw(crate::output::shorten(&p.cmdline, w.saturating_sub(8))),
        ]),
    ];
    let block = Block::new().borders(Borders::TOP).title(Line::from(title)).border_style(STYLE_DIM);
    frame.render_widget(Paragraph::new(info).block(block), parts.info);

    // Threads, scrollable.
    let lines = thread_lines(row, parts.threads.width);
    let page = parts.threads.height.saturating_sub(1) as usize;
    let scroll = app.detail_scroll().min(lines.len().saturating_sub(page));
    let mut t = format!(" Threads ({}) ", p.threads.len());
    if lines.len() > page {
        let last = (scroll + page).min(lines.len());
        t.push_str(&format!(
            "lines {}-{last} of {} {}",
            scroll + 1,
            lines.len(),
            if last < lines.len() { "▼ " } else { "" }
        ));
    }
    let visible: Vec<Line> = lines.into_iter().skip(scroll).take(page).collect();
    frame.render_widget(Paragraph::new(visible).block(pane(t)), parts.threads);

    render_memory(frame, parts.chart, app, row);
    render_misc(frame, parts.misc, app, row);
}

/// RSS over time, from the history the app keeps (one point per refresh).
fn render_memory(frame: &mut Frame, area: Rect, app: &App, row: &ProcessRow) {
    let now = app.view().now_mono_ns;
    let points: Vec<(f64, f64)> = app
        .rss_history(row.process.pid)
        .map(|(t, b)| (-((now.saturating_sub(t)) as f64 / 1e9), b as f64))
        .collect();
    let span_secs = points.first().map_or(0.0, |p| -p.0);
    let title = format!(
        " Memory: RSS {} (last {}) ",
        fmt_bytes(row.process.rss_bytes),
        fmt_duration_ns((span_secs * 1e9) as u64)
    );
    if points.len() < 2 {
        frame.render_widget(
            Paragraph::new(" collecting (one point a refresh)…")
                .style(STYLE_DIM)
                .block(pane(title)),
            area,
        );
        return;
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let min = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    // A flat line sits in the middle; the labels name the bounds.
    let (lo, hi) = if max > min { (min, max) } else { (min * 0.95, (max * 1.05).max(1.0)) };
    // Heap held and "returned" lines will be further datasets here (memory tracking).
    let datasets = vec![
        Dataset::default()
            .name("RSS")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(&points),
    ];
    let chart = Chart::new(datasets)
        .block(pane(title))
        .x_axis(Axis::default().bounds([-span_secs.max(1.0), 0.0]))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([Span::raw(fmt_bytes(lo as u64)), Span::raw(fmt_bytes(hi as u64))])
                .style(STYLE_DIM),
        )
        .hidden_legend_constraints((Constraint::Ratio(0, 1), Constraint::Ratio(0, 1)));
    frame.render_widget(chart, area);
}

/// Its OOM kills (from the view's OOM list) and its children.
fn render_misc(frame: &mut Frame, area: Rect, app: &App, row: &ProcessRow) {
    let v = app.view();
    let pid = row.process.pid;
    let mut lines = Vec::new();
    let ooms: Vec<_> = v.oom_kills.iter().filter(|o| o.pid == pid).collect();
    if ooms.is_empty() {
        lines.push(
            Line::from(if row.oom_killed { " OOM killed" } else { " no OOM kill" })
                .style(if row.oom_killed { Style::new().fg(Color::Red) } else { STYLE_DIM }),
        );
    }
    for o in ooms.iter().rev() {
        let rss =
            o.anon_rss_bytes.map(|b| format!(", anon RSS {}", fmt_bytes(b))).unwrap_or_default();
        lines.push(
            Line::from(format!(
                " OOM killed {} ago{rss}",
                fmt_duration_ns(v.now_mono_ns.saturating_sub(o.ts_mono_ns))
            ))
            .style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        );
    }
    let children = if row.children.is_empty() {
        "none".to_string()
    } else {
        row.children
            .iter()
            .map(|c| match app.process(*c) {
                Some(r) => format!("{c} {}", r.process.comm),
                None => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    lines.push(Line::from(vec![
        Span::styled(format!(" children ({}) ", row.children.len()), STYLE_DIM),
        Span::raw(children),
    ]));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(pane(" OOM kills · children ".into())),
        area,
    );
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent};

    use crate::tui::{Mode, Update, testing::*};

    /// A server with 3 threads: main in epoll_wait ∞ 10m, a worker in futex ∞ 5m12s, one running.
    fn server(pid: i32) -> crate::live::aggregator::ProcessRow {
        let main = wait(
            "epoll_wait",
            "epoll_wait(epfd=4 eventpoll, maxevents=64, timeout=infinite)",
            600,
            true,
            "ep_poll",
        );
        let worker = wait(
            "futex",
            "futex(uaddr=0x7f3a12345678, FUTEX_WAIT_PRIVATE, val=0, timeout=infinite)",
            312,
            true,
            "futex_wait_queue",
        );
        let mut p = process(
            pid,
            "api-server",
            vec![
                thread(pid, "api-server", Some(main)),
                thread(pid + 1, "worker-1", Some(worker)),
                thread(pid + 2, "gc", None),
            ],
        );
        p.cpu_total_secs = 40.0;
        p.rss_bytes = 300 << 20;
        let mut r = row(p);
        r.children = vec![pid + 10];
        r
    }

    fn open_detail(app: &mut crate::tui::App, pid: i32) {
        while app.selected_pid() != Some(pid) {
            app.on_key(KeyEvent::from(KeyCode::Down));
        }
        app.on_key(KeyEvent::from(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Detail(pid));
    }

    #[test]
    fn process_with_three_threads() {
        let mut child = idle(510);
        child.process.comm = "helper".into();
        let v = with_oom(view(vec![server(500), child]), 500, "api-server");
        let mut app = app_with(v);
        // Three more refreshes, RSS growing: the chart has points.
        for i in 1..=3u64 {
            let mut v = app.view().clone();
            v.now_mono_ns = NOW + i * SEC;
            v.processes[0].process.rss_bytes += i << 20;
            app.update(Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        }
        open_detail(&mut app, 500);
        let s = render(&mut app, 100, 30);
        let all = screen(&s);
        assert!(all.contains("pid 500 · api-server · ppid 1"), "{all}");
        assert!(all.contains("[OOM killed]"), "{all}");
        assert!(all.contains("2 of 3 threads blocked · score"), "{all}");
        assert!(all.contains("/system.slice/api-server.service"), "{all}");
        assert!(all.contains("/usr/bin/api-server --serve"), "{all}");
        // Longest wait first, each with its decoded call and wchan.
        let main = s
            .iter()
            .position(|l| l.contains("    500 api-server"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(
            s[main].contains("epoll_wait ∞ 10m00s") && s[main].contains("wchan ep_poll"),
            "{all}"
        );
        assert!(
            s[main + 1].contains("epoll_wait(epfd=4 eventpoll, maxevents=64, timeout=infinite)"),
            "{all}"
        );
        let worker = s
            .iter()
            .position(|l| l.contains("    501 worker-1"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(worker > main, "{all}");
        assert!(
            s[worker].contains("futex ∞ 5m12s") && s[worker].contains("wchan futex_wait_queue"),
            "{all}"
        );
        assert!(s[worker + 1].contains("futex(uaddr=0x7f3a12345678, FUTEX_WAIT_PRIVATE"), "{all}");
        let gc = s.iter().find(|l| l.contains("    502 gc")).unwrap_or_else(|| panic!("{all}"));
        assert!(gc.contains("running"), "{gc}");
        // Memory chart, OOM history, children.
        assert!(all.contains("Memory: RSS 306.0 MiB (last 3.0s)"), "{all}");
        assert!(all.contains("OOM killed 33s ago, anon RSS 1.0 GiB"), "{all}");
        assert!(all.contains("children (1) 510 helper"), "{all}");
        assert!(all.contains("Esc back"), "{all}");
        // At 80x24 it still fits the essentials, the rest scrolls.
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(all.contains("    500 api-server"), "{all}");
        assert!(all.contains("Threads (3)"), "{all}");
        for _ in 0..20 {
            app.on_key(KeyEvent::from(KeyCode::Down));
        }
        let s = render(&mut app, 80, 24);
        assert!(screen(&s).contains("    502 gc"), "{}", screen(&s));
        // Esc goes back to the table.
        app.on_key(KeyEvent::from(KeyCode::Esc));
        assert!(screen(&render(&mut app, 80, 24)).contains("PID"));
    }

    #[test]
    fn gone_process() {
        let mut app = app_with(view(vec![server(500)]));
        open_detail(&mut app, 500);
        app.update(Update { view: std::sync::Arc::new(view(vec![])), dropped_records: 0 });
        let all = screen(&render(&mut app, 80, 24));
        assert!(all.contains("process 500 is gone"), "{all}");
    }

    #[test]
    #[ignore = "prints screens for a person to look at"]
    fn print_detail() {
        let mut app = app_with(with_oom(view(vec![server(500)]), 500, "api-server"));
        for i in 1..=60u64 {
            let mut v = app.view().clone();
            v.now_mono_ns = NOW + i * SEC;
            v.processes[0].process.rss_bytes += (i % 7) << 20;
            app.update(Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        }
        open_detail(&mut app, 500);
        println!("{}", screen(&render(&mut app, 80, 24)));
        println!("{}", screen(&render(&mut app, 120, 35)));
    }
}
