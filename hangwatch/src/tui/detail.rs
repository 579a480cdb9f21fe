//! The detail view of one process: what it is; the findings that name it, each with its chain
//! drawn as an indented path, then each thread with its syscall, decoded arguments, wait length
//! and wchan (one scrollable pane); its memory figures and verdicts above its RSS and heap over
//! time; its OOM kills and children.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph},
};

use super::{App, findings, table};
use crate::{
    fmt::{fmt_bytes, fmt_duration_ns, shorten, shorten_tail},
    live::aggregator::ProcessRow,
    memory::MemStatus,
    model::Thread,
    output::human::memory_line,
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
            Constraint::Length((area.height / 4).max(7)),
            Constraint::Length(4),
        ])
        .areas(area);
        Parts { info, threads, chart, misc }
    }
}

/// Lines of the findings and threads pane that fit (its title excluded).
pub fn page_rows(area: Rect) -> u16 {
    split(area).threads.height.saturating_sub(1)
}

/// Number of lines the findings and threads pane of `pid` has at this size (to clamp the
/// scroll).
pub fn line_count(app: &App, pid: i32, area: Rect) -> usize {
    app.process(pid).map_or(0, |r| scroll_lines(app, r, split(area).threads.width).len())
}

/// The scrollable pane: the findings that name the process (most severe first), a blank line,
/// then its threads.
fn scroll_lines(app: &App, row: &ProcessRow, width: u16) -> Vec<Line<'static>> {
    let pid = row.process.pid;
    let now = app.view().now_mono_ns;
    let mut lines: Vec<Line> =
        app.findings_of(pid).flat_map(|f| findings::detail_lines(f, now, pid, width)).collect();
    if !lines.is_empty() {
        lines.push(Line::default());
    }
    lines.extend(thread_lines(row, width, app.whole_stacks()));
    lines
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

/// Two or more lines per blocked thread (summary, then the decoded call, then its frame or
/// with `whole` its whole stack), one per other thread.
fn thread_lines(row: &ProcessRow, width: u16, whole: bool) -> Vec<Line<'static>> {
    const INDENT: usize = 9;
    let mut lines = Vec::new();
    for t in ordered(row) {
        let head = format!("{:>7} {:<15} {} ", t.tid, shorten(&t.comm, 15), t.state);
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
                lines.extend(stack_lines(t, width, whole));
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

/// Most frames shown per thread with the whole stack (`t`).
const WHOLE_STACK_FRAMES: usize = 64;

/// The innermost user-code frame of a thread's stack (docs/stacks.md), else why it has none;
/// with `whole`, every frame (Python, native, then kernel; [`WHOLE_STACK_FRAMES`] at most)
/// and the reason it stopped early, if it did.
fn stack_lines(t: &Thread, width: u16, whole: bool) -> Vec<Line<'static>> {
    const INDENT: usize = 9;
    let Some(s) = &t.stack else { return Vec::new() };
    let green = Style::new().fg(Color::Green);
    let texts: Vec<(String, Style)> = if whole {
        let all = s.lines();
        let mut v: Vec<(String, Style)> = all
            .iter()
            .take(WHOLE_STACK_FRAMES)
            .map(|l| (l.clone(), if l.starts_with("[kernel]") { STYLE_DIM } else { green }))
            .collect();
        if all.len() > WHOLE_STACK_FRAMES {
            v.push((format!("… {} more frames", all.len() - WHOLE_STACK_FRAMES), STYLE_DIM));
        }
        if let Some(e) = &s.error {
            v.push((format!("(stack cut: {e})"), STYLE_DIM));
        }
        v
    } else {
        match (s.user_frame(), &s.error) {
            (Some(f), _) => vec![(f, green)],
            (None, Some(e)) => vec![(format!("(no stack: {e})"), STYLE_DIM)],
            (None, None) => Vec::new(),
        }
    };
    // Frames are the target's own names: escaped, then wrapped.
    texts
        .into_iter()
        .flat_map(|(text, style)| {
            let text = crate::escape::field(&text, 300).into_owned();
            wrap(&text, (width as usize).saturating_sub(INDENT))
                .into_iter()
                .map(move |piece| Line::from(format!("{}{piece}", " ".repeat(INDENT))).style(style))
        })
        .collect()
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
            " {} of {} threads blocked · score {:.1} · CPU {:.1}% ({:.1}s total) · RSS {} · up {}",
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
            Span::raw(shorten_tail(&p.cgroup, w.saturating_sub(8))),
        ]),
        Line::from(vec![
            Span::styled(" cmd    ", STYLE_DIM),
            Span::raw(shorten(&p.cmdline, w.saturating_sub(8))),
        ]),
    ];
    let block = Block::new().borders(Borders::TOP).title(Line::from(title)).border_style(STYLE_DIM);
    frame.render_widget(Paragraph::new(info).block(block), parts.info);

    // Findings and threads, scrollable.
    let lines = scroll_lines(app, row, parts.threads.width);
    let page = parts.threads.height.saturating_sub(1) as usize;
    let scroll = app.detail_scroll().min(lines.len().saturating_sub(page));
    let n_findings = app.findings_of(pid).count();
    let mut t = if n_findings > 0 {
        format!(" Findings ({n_findings}) · Threads ({}) ", p.threads.len())
    } else {
        format!(" Threads ({}) ", p.threads.len())
    };
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

/// `memory_line`'s figures, one part per " · ", laid out in lines of at most `width`: RSS
/// (cyan, as its line on the chart), heap (magenta, likewise, when drawn), verdicts in yellow.
fn memory_figures(m: &MemStatus, heap_drawn: bool, width: usize) -> Vec<Line<'static>> {
    let text = memory_line(m);
    let mut lines = Vec::new();
    let mut cur: Vec<Span> = vec![Span::raw(" ")];
    let mut cur_len = 1;
    for part in text.split(" · ") {
        let style = if part.starts_with("RSS") {
            Style::new().fg(Color::Cyan)
        } else if part.starts_with("heap") && heap_drawn {
            Style::new().fg(Color::Magenta)
        } else if part.starts_with("NOT RETURNED") || part.starts_with("GROWING") {
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let n = part.chars().count();
        if cur_len > 1 && cur_len + 3 + n > width {
            lines.push(Line::from(std::mem::replace(&mut cur, vec![Span::raw(" ")])));
            cur_len = 1;
        }
        if cur_len > 1 {
            cur.push(Span::styled(" · ", STYLE_DIM));
            cur_len += 3;
        }
        cur.push(Span::styled(part.to_string(), style));
        cur_len += n;
    }
    lines.push(Line::from(cur));
    lines
}

/// The memory figures and verdicts, then RSS (cyan) and the heap (magenta) over time, from the
/// history the app keeps (one point per refresh).
fn render_memory(frame: &mut Frame, area: Rect, app: &App, row: &ProcessRow) {
    let now = app.view().now_mono_ns;
    let to_xy = |(t, b): (u64, u64)| (-((now.saturating_sub(t)) as f64 / 1e9), b as f64);
    let points: Vec<(f64, f64)> = app.rss_history(row.process.pid).map(to_xy).collect();
    let heap: Vec<(f64, f64)> = app.heap_history(row.process.pid).map(to_xy).collect();
    // Without a brk heap (other allocators, no access to maps) there is no heap line.
    let heap_drawn = heap.len() >= 2 && heap.iter().any(|p| p.1 > 0.0);
    let span_secs = points.first().map_or(0.0, |p| -p.0);
    let title = format!(
        " Memory: RSS {} (last {}) ",
        fmt_bytes(row.process.rss_bytes),
        fmt_duration_ns((span_secs * 1e9) as u64)
    );
    let block = pane(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let figures = match &row.process.memory {
        Some(m) => memory_figures(m, heap_drawn, inner.width as usize),
        None => vec![Line::from(" heap and verdicts: not sampled yet").style(STYLE_DIM)],
    };
    let fig_h = (figures.len() as u16).min(inner.height);
    let [fig_area, chart_area] =
        Layout::vertical([Constraint::Length(fig_h), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(figures), fig_area);
    if chart_area.height < 2 {
        return;
    }
    if points.len() < 2 {
        frame.render_widget(
            Paragraph::new(" collecting (one point a refresh)…").style(STYLE_DIM),
            chart_area,
        );
        return;
    }
    let all = || points.iter().chain(if heap_drawn { heap.iter() } else { [].iter() });
    let max = all().map(|p| p.1).fold(0.0, f64::max);
    let min = all().map(|p| p.1).fold(f64::MAX, f64::min);
    // A flat line sits in the middle; the labels name the bounds.
    let (lo, hi) = if max > min { (min, max) } else { (min * 0.95, (max * 1.05).max(1.0)) };
    let mut datasets = vec![
        Dataset::default()
            .name("RSS")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(&points),
    ];
    if heap_drawn {
        datasets.push(
            Dataset::default()
                .name("heap")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::Magenta))
                .data(&heap),
        );
    }
    let chart = Chart::new(datasets)
        .x_axis(Axis::default().bounds([-span_secs.max(1.0), 0.0]))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([Span::raw(fmt_bytes(lo as u64)), Span::raw(fmt_bytes(hi as u64))])
                .style(STYLE_DIM),
        )
        .hidden_legend_constraints((Constraint::Ratio(0, 1), Constraint::Ratio(0, 1)));
    frame.render_widget(chart, chart_area);
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
                fmt_duration_ns(v.now_mono_ns.saturating_sub(o.time_mono_ns))
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
    use ratatui::style::Color;

    use crate::{
        live::Update,
        tui::{Mode, testing::*},
    };

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
        let mut p = service(
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
    fn memory_figures_and_heap_line() {
        let mut r = server(500);
        r.process.memory = Some(crate::memory::MemStatus {
            rss: 300 << 20,
            rss_anon: 280 << 20,
            peak_rss: 310 << 20,
            heap: 256 << 20,
            heap_peak: 270 << 20,
            brk_grows: 4,
            brk_shrinks: 1,
            returned_bytes: 14 << 20,
            not_returned: true,
            samples: 60,
            ..Default::default()
        });
        let mut app = app_with(view(vec![r]));
        for i in 1..=5u64 {
            let mut v = app.view().clone();
            v.now_mono_ns = NOW + i * SEC;
            let p = &mut v.processes[0].process;
            p.rss_bytes += 1 << 20;
            if let Some(m) = p.memory.as_mut() {
                m.heap += 1 << 20;
            }
            app.update(Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        }
        open_detail(&mut app, 500);
        for (w, h) in [(80, 24), (120, 35)] {
            let s = render(&mut app, w, h);
            let all = screen(&s);
            let title = s
                .iter()
                .position(|l| l.contains("Memory: RSS 305.0 MiB (last 5.0s)"))
                .unwrap_or_else(|| panic!("{all}"));
            // memory_line's parts, wrapped at " · ", right under the title.
            let figures: String =
                s[title + 1..title + 4].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            for part in [
                "RSS 300.0 MiB (anon 280.0 MiB, peak 310.0 MiB)",
                "heap 261.0 MiB (peak 270.0 MiB, 4 grows / 1 shrinks seen)",
                "returned 14.0 MiB",
                "NOT RETURNED",
            ] {
                assert!(figures.contains(part), "{w}x{h}: {part:?} in\n{all}");
            }
            let st = style_of(&mut app, w, h, "NOT RETURNED", 0);
            assert_eq!(st.fg, Some(Color::Yellow));
            // The legend: RSS in the chart's cyan, the heap in its magenta.
            assert_eq!(style_of(&mut app, w, h, "RSS 300.0 MiB (anon", 0).fg, Some(Color::Cyan));
            assert_eq!(style_of(&mut app, w, h, "heap 261.0 MiB", 0).fg, Some(Color::Magenta));
            // Both lines are drawn.
            let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h))
                .expect("test terminal");
            term.draw(|f| crate::tui::frame(f, &mut app)).expect("draw");
            let buf = term.backend().buffer();
            let braille = |c: Color| {
                (title as u16 + 1..h)
                    .flat_map(|y| (0..w).map(move |x| (x, y)))
                    .filter(|&(x, y)| {
                        let cell = &buf[(x, y)];
                        cell.fg == c && cell.symbol().chars().all(|ch| ('⠀'..='⣿').contains(&ch))
                    })
                    .count()
            };
            assert!(braille(Color::Cyan) > 5, "{w}x{h}: no RSS line\n{all}");
            assert!(braille(Color::Magenta) > 5, "{w}x{h}: no heap line\n{all}");
        }
        // A process whose memory was not sampled yet says so.
        let mut app = app_with(view(vec![server(500)]));
        open_detail(&mut app, 500);
        assert!(screen(&render(&mut app, 80, 24)).contains("not sampled yet"));
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
        let mut r = server(500);
        r.process.memory = Some(crate::memory::MemStatus {
            rss: 300 << 20,
            rss_anon: 280 << 20,
            peak_rss: 310 << 20,
            heap: 200 << 20,
            heap_peak: 270 << 20,
            growing: true,
            growth_bytes_per_min: Some(3.2 * 1048576.0),
            ..Default::default()
        });
        let mut app = app_with(with_oom(view(vec![r]), 500, "api-server"));
        for i in 1..=60u64 {
            let mut v = app.view().clone();
            v.now_mono_ns = NOW + i * SEC;
            v.processes[0].process.rss_bytes += (i % 7) << 20;
            if let Some(m) = v.processes[0].process.memory.as_mut() {
                m.heap += (i % 3) << 20;
            }
            app.update(Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        }
        open_detail(&mut app, 500);
        println!("{}", screen(&render(&mut app, 80, 24)));
        println!("{}", screen(&render(&mut app, 120, 35)));
    }

    #[test]
    fn blocked_thread_shows_its_user_frame_escaped() {
        use crate::stacks::{NativeFrame, Stack};
        let mut r = server(500);
        let frame = |sym: &str, module: &str| NativeFrame {
            addr: 0x1000,
            symbol: Some(sym.into()),
            module: Some(module.into()),
            offset: Some(0x10),
            ..NativeFrame::default()
        };
        r.process.threads[1].stack = Some(std::sync::Arc::new(Stack {
            native: vec![
                frame("__lll_lock_wait", "/lib/libc.so.6"),
                frame("Pool::drain\u{1b}[31m()", "/srv/app"),
            ],
            ..Stack::default()
        }));
        let mut app = app_with(view(vec![r]));
        open_detail(&mut app, 500);
        let s = render(&mut app, 100, 30);
        let all = screen(&s);
        let worker = s
            .iter()
            .position(|l| l.contains("    501 worker-1"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(s[worker + 2].contains("in Pool::drain\\x1b[31m()"), "{all}");
        assert!(!all.contains('\u{1b}'), "{all}");
        // `t`: the whole stack, innermost first, escaped too; `t` again: the frame only.
        app.on_key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('t')));
        let s = render(&mut app, 100, 30);
        let all = screen(&s);
        assert!(s[worker + 2].contains("in __lll_lock_wait"), "{all}");
        assert!(s[worker + 3].contains("in Pool::drain\\x1b[31m()"), "{all}");
        assert!(!all.contains('\u{1b}'), "{all}");
        app.on_key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('t')));
        let s = render(&mut app, 100, 30);
        assert!(s[worker + 2].contains("in Pool::drain"), "{}", screen(&s));
    }
}
