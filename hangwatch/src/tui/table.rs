//! The process table: most suspicious first (in the order [`super::app`] keeps stable), the
//! selected row reversed, exited processes grey, OOM-killed ones marked in red. Only the rows
//! on screen are built.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table},
};

use super::App;
use crate::{
    live::aggregator::ProcessRow,
    model::Wait,
    output::{fmt_bytes, fmt_duration_ns, shorten},
};

/// A column. `width == 0` marks the cgroup column, which takes what the others leave.
struct Column {
    title: &'static str,
    width: u16,
    right: bool,
    /// The cell's text for a row, given the column's width.
    cell: fn(&ProcessRow, usize) -> Line<'static>,
}

const COLUMN_SPACING: u16 = 1;
/// The cgroup column is never narrower than this.
const MIN_CGROUP: u16 = 6;

/// Columns in order. Memory columns go between RSS and OOM: see [`MEMORY_COLUMNS`].
const COLUMNS: &[&[Column]] = &[
    &[
        Column {
            title: "PID",
            width: 7,
            right: true,
            cell: |r, _| Line::from(r.process.pid.to_string()),
        },
        Column {
            title: "COMM",
            width: 15,
            right: false,
            cell: |r, w| Line::from(shorten(&r.process.comm, w)),
        },
        Column {
            title: "CGROUP",
            width: 0,
            right: false,
            cell: |r, w| Line::from(cgroup_label(&r.process.cgroup, w)),
        },
        Column { title: "BLK", width: 5, right: true, cell: blocked_cell },
        // "epoll_wait ∞ 2h05m" fits.
        Column { title: "LONGEST WAIT", width: 18, right: false, cell: wait_cell },
        Column {
            title: "CPU%",
            width: 6,
            right: true,
            cell: |r, _| Line::from(format!("{:.1}", r.process.cpu_percent)),
        },
        Column {
            title: "RSS",
            width: 10,
            right: true,
            cell: |r, _| Line::from(fmt_bytes(r.process.rss_bytes)),
        },
    ],
    MEMORY_COLUMNS,
    &[Column { title: "OOM", width: 3, right: false, cell: oom_cell }],
];

/// Hook for the memory columns (heap held, "not returned" verdict) that the memory tracking
/// will add: entries here are drawn between RSS and OOM, and the cgroup column gives up their
/// width.
const MEMORY_COLUMNS: &[Column] = &[];

/// "2/3": blocked threads of live threads.
fn blocked_cell(r: &ProcessRow, _: usize) -> Line<'static> {
    let live = r.process.threads.iter().filter(|t| t.state != 'Z' && t.state != 'X').count();
    Line::from(format!("{}/{}", r.process.blocked_count(), live))
}

/// "poll ∞ 5m12s": syscall (shortened to fit), ∞ when there is no timeout, how long so far.
pub fn wait_label(w: &Wait, width: usize) -> String {
    let dur = fmt_duration_ns(w.duration_ns);
    let inf = if w.decoded.infinite { " ∞" } else { "" };
    let room = width.saturating_sub(dur.chars().count() + inf.chars().count() + 1).max(1);
    format!("{}{inf} {dur}", shorten(&w.decoded.syscall, room))
}

fn wait_cell(r: &ProcessRow, width: usize) -> Line<'static> {
    if r.exited {
        return Line::from("exited");
    }
    match r.process.longest_wait() {
        Some((_, w)) if w.decoded.infinite => {
            Line::from(wait_label(w, width)).style(Style::new().fg(Color::Yellow))
        }
        Some((_, w)) => Line::from(wait_label(w, width)),
        None => Line::from("-"),
    }
}

fn oom_cell(r: &ProcessRow, _: usize) -> Line<'static> {
    if r.oom_killed {
        Line::from(Span::styled("OOM", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)))
    } else {
        Line::default()
    }
}

/// Keeps the tail (container ids and unit names are at the end): "…" marks the cut.
pub fn shorten_tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

/// The cgroup path if it fits; else its last component without the systemd unit suffix
/// (`cri-containerd-<id>.scope` → `cri-containerd-<id>`), keeping the tail: container ids and
/// unit names are at the end.
pub fn cgroup_label(path: &str, width: usize) -> String {
    if path.chars().count() <= width {
        return path.to_string();
    }
    let last = path.rsplit('/').find(|c| !c.is_empty()).unwrap_or(path);
    let last =
        [".scope", ".service", ".slice"].iter().find_map(|s| last.strip_suffix(s)).unwrap_or(last);
    shorten_tail(last, width)
}

/// Table rows that fit in `area` (title line and column header excluded).
pub fn page_rows(area: Rect) -> u16 {
    area.height.saturating_sub(2)
}

fn title(app: &App, area: Rect) -> String {
    let total = app.row_count();
    let mut title = if total == 0 {
        " Processes ".to_string()
    } else {
        let first = app.offset() + 1;
        let last = (app.offset() + page_rows(area) as usize).min(total);
        let mut t = format!(" Processes {first}-{last} of {total} ");
        // Scroll indicator: rows above (▲) and below (▼n).
        if app.offset() > 0 {
            t.push('▲');
        }
        if total > last {
            t.push_str(&format!("▼{} ", total - last));
        } else if app.offset() > 0 {
            t.push(' ');
        }
        t
    };
    title.push_str(&format!("· sort: {} ", app.sort().label()));
    if let Some(f) = app.filter() {
        title.push_str(&format!("· filter: {f} "));
    }
    title
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title(app, area)).style(Style::new().add_modifier(Modifier::BOLD)))
        .border_style(Style::new().fg(Color::DarkGray));

    if app.row_count() == 0 {
        let text = if app.filter().is_some() {
            "no process matches the filter (Esc clears it)"
        } else if app.view().health.scans == 0 {
            "waiting for the first scan…"
        } else {
            "no processes"
        };
        frame.render_widget(Paragraph::new(format!(" {text}")).block(block), area);
        return;
    }

    let columns: Vec<&Column> = COLUMNS.iter().flat_map(|c| c.iter()).collect();
    let fixed: u16 =
        columns.iter().map(|c| c.width).sum::<u16>() + COLUMN_SPACING * (columns.len() as u16 - 1);
    let flex = area.width.saturating_sub(fixed).max(MIN_CGROUP);
    let width = |c: &Column| if c.width == 0 { flex } else { c.width };

    let header = Row::new(columns.iter().map(|c| {
        let l = Line::from(c.title);
        Cell::from(if c.right { l.right_aligned() } else { l })
    }))
    .style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan));

    let cursor = app.cursor();
    let rows: Vec<Row> = app
        .visible_rows()
        .map(|(i, r)| {
            let cells = columns.iter().map(|c| {
                let l = (c.cell)(r, width(c) as usize);
                Cell::from(if c.right { l.right_aligned() } else { l })
            });
            let mut style = Style::new();
            if r.exited {
                style = style.fg(Color::DarkGray);
            }
            if i == cursor {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Row::new(cells).style(style)
        })
        .collect();
    let widths: Vec<Constraint> = columns.iter().map(|c| Constraint::Length(width(c))).collect();
    let table = Table::new(rows, widths).header(header).column_spacing(COLUMN_SPACING).block(block);
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::style::{Color, Modifier};

    use super::{cgroup_label, shorten_tail, wait_label};
    use crate::tui::testing::*;

    #[test]
    fn empty_view() {
        let mut v = view(vec![]);
        v.health.scans = 0;
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        assert!(screen(&s).contains("waiting for the first scan"), "{}", screen(&s));
        assert!(screen(&s).contains("no events yet"), "{}", screen(&s));
        assert!(s[23].contains("q quit"), "{}", screen(&s));
        let mut app = app_with(view(vec![]));
        assert!(screen(&render(&mut app, 80, 24)).contains("no processes"));
    }

    #[test]
    fn one_hung_process() {
        let mut app = app_with(view(vec![idle(1), hung_job(4242), idle(7)]));
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(s[1].contains("blocked: 1 thread in 1 proc"), "{all}");
        let row = s
            .iter()
            .find(|l| l.contains("4242"))
            .unwrap_or_else(|| panic!("no row for 4242:\n{all}"));
        assert!(row.contains("batch-job"), "{row}");
        assert!(row.contains("1/1"), "{row}");
        assert!(row.contains("poll ∞ 5m12s"), "{row}");
        assert!(row.contains("84.0 MiB"), "{row}");
        // The cgroup keeps its tail: the end of the container id.
        assert!(row.contains(" …89abcdef "), "{row}");
        // Most suspicious first, and selected.
        let header_row =
            s.iter().position(|l| l.contains("PID") && l.contains("COMM")).expect("column header");
        assert!(s[header_row + 1].contains("4242"), "{all}");
        assert!(style_of(&mut app, 80, 24, "4242", 0).add_modifier.contains(Modifier::REVERSED));
        assert!(all.contains("Processes 1-3 of 3"), "{all}");
        // Wider: the whole cgroup tail fits.
        let s = render(&mut app, 200, 40);
        let row = s.iter().find(|l| l.contains("4242")).expect("row");
        assert!(row.contains("cri-containerd-0123456789abcdef0123456789abcdef.scope"), "{row}");
    }

    #[test]
    fn oom_kill_is_marked_everywhere() {
        let mut leaky = idle(666);
        leaky.process.comm = "leaky".into();
        let v = with_oom(view(vec![hung_job(4242), leaky]), 666, "leaky");
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(s[1].contains("OOM: 1 (30s ago)"), "{all}");
        assert_eq!(style_of(&mut app, 80, 24, "OOM: 1", 5).fg, Some(Color::Red));
        let row =
            s.iter().find(|l| l.contains(" 666 ")).unwrap_or_else(|| panic!("no row:\n{all}"));
        assert!(row.trim_end().ends_with("OOM"), "{row}");
        let ev = s
            .iter()
            .find(|l| l.contains("OOM kill: 666 leaky"))
            .unwrap_or_else(|| panic!("no event:\n{all}"));
        assert!(ev.contains("30s ago"), "{ev}");
        // The exited, OOM-killed process is grey.
        let mut v = app.view().clone();
        v.processes[1].exited = true;
        app.update(crate::tui::Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        let s = render(&mut app, 80, 24);
        let row = s.iter().find(|l| l.contains(" 666 ")).expect("row");
        assert!(row.contains("exited"), "{row}");
        assert_eq!(style_of(&mut app, 80, 24, "leaky ", 0).fg, Some(Color::DarkGray));
    }

    #[test]
    fn five_hundred_processes_at_80x24() {
        let mut rows: Vec<_> = (1..=500).map(|i| idle(1000 + i)).collect();
        rows.insert(0, hung_job(4242));
        let mut app = app_with(view(rows));
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(all.contains("Processes 1-15 of 501 ▼486"), "{all}");
        assert!(all.contains("4242"), "{all}");
        assert!(all.contains("1001"), "{all}");
        assert!(!all.contains("1400"), "{all}");
        // Scrolled to the end.
        app.on_key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::End));
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(all.contains("Processes 487-501 of 501 ▲"), "{all}");
        assert!(all.contains("1500"), "{all}");
        // Tiny terminals do not panic.
        for (w, h) in [(20, 5), (1, 1), (80, 3), (200, 60)] {
            render(&mut app, w, h);
        }
    }

    #[test]
    fn labels() {
        let w = wait("epoll_pwait2", "", 7_500, true, "");
        assert_eq!(wait_label(&w, 18), "epoll_pwa… ∞ 2h05m");
        let w = wait("nanosleep", "", 42, false, "");
        assert_eq!(wait_label(&w, 18), "nanosleep 42s");
        assert_eq!(shorten_tail("/a/b/cri-containerd-abc.scope", 10), "…abc.scope");
        assert_eq!(shorten_tail("/", 10), "/");
        assert_eq!(cgroup_label("/system.slice/nginx.service", 40), "/system.slice/nginx.service");
        assert_eq!(cgroup_label("/system.slice/nginx.service", 9), "nginx");
        assert_eq!(
            cgroup_label("/kubepods/pod1/cri-containerd-0123456789abcdef.scope", 9),
            "…89abcdef"
        );
        assert_eq!(cgroup_label("/user.slice/user-0.slice/session-3.scope", 12), "session-3");
    }

    #[test]
    #[ignore = "prints screens for a person to look at"]
    fn print_screens() {
        let mut leaky = idle(666);
        leaky.process.comm = "leaky".into();
        let mut rows: Vec<_> = (1..=40).map(|i| idle(1000 + i)).collect();
        rows.insert(0, hung_job(4242));
        rows.push(leaky);
        let mut app = app_with(with_oom(view(rows), 666, "leaky"));
        for (w, h) in [(80, 24), (120, 35)] {
            println!("{}", screen(&render(&mut app, w, h)));
        }
        app.help = true;
        println!("{}", screen(&render(&mut app, 80, 24)));
    }
}
