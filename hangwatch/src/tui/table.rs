//! The process table: most suspicious first (in the order [`super::app`] keeps stable), the
//! selected row reversed, exited processes grey, a `!` before the pid of a process a finding
//! names (in the finding's severity colour), the heap and the memory verdict (OOM-killed, not
//! returned, growing). Only the rows on screen are built.
//!
//! Two sets of widths: the full one, and below [`FULL_MIN_WIDTH`] columns a narrow one (80
//! columns fit) that narrows COMM, LONGEST WAIT, CPU%, RSS and HEAP and drops the FINDING
//! column (the `!` mark and the findings pane still say it).

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table},
};

use super::{App, findings};
use crate::{
    fmt::{fmt_bytes, fmt_duration_ns, short_bytes, shorten, shorten_tail},
    live::aggregator::ProcessRow,
    model::Wait,
};

/// A column.
struct Column {
    title: &'static str,
    /// Width in the full layout; [`FLEX`] for the cgroup column, which takes what the others
    /// leave.
    width: u16,
    /// Width in the narrow layout; `None` drops the column there.
    narrow: Option<u16>,
    right: bool,
    /// The cell's text for a row, given the column's width.
    cell: fn(&App, &ProcessRow, usize) -> Line<'static>,
}

const FLEX: u16 = 0;
const COLUMN_SPACING: u16 = 1;
/// The cgroup column is never narrower than this.
const MIN_CGROUP: u16 = 6;
/// The full widths are used when they leave the cgroup at least this much room.
const FULL_MIN_CGROUP: u16 = 12;
/// The narrowest table drawn with the full widths (and [`FULL_MIN_CGROUP`] for the cgroup).
pub const FULL_MIN_WIDTH: u16 = full_fixed() + FULL_MIN_CGROUP;

/// Columns in order. Memory columns go between RSS and FINDING: see [`MEMORY_COLUMNS`].
const COLUMNS: &[&[Column]] = &[
    &[
        // A 7-digit pid and the `!` mark.
        Column { title: "PID", width: 8, narrow: Some(8), right: true, cell: pid_cell },
        Column {
            title: "COMM",
            width: 15,
            narrow: Some(12),
            right: false,
            cell: |_, r, w| Line::from(shorten(&r.process.comm, w)),
        },
        Column {
            title: "CGROUP",
            width: FLEX,
            narrow: Some(FLEX),
            right: false,
            cell: |_, r, w| Line::from(cgroup_label(&r.process.cgroup, w)),
        },
        Column { title: "BLK", width: 5, narrow: Some(5), right: true, cell: blocked_cell },
        // "epoll_wait ∞ 2h05m" fits; narrow: "futex ∞ 5m12s".
        Column {
            title: "LONGEST WAIT",
            width: 18,
            narrow: Some(14),
            right: false,
            cell: wait_cell,
        },
        Column { title: "CPU%", width: 6, narrow: Some(5), right: true, cell: cpu_cell },
        // "1023.9 MiB"; narrow: "84.0 MiB", or "512M" when that does not fit.
        Column {
            title: "RSS",
            width: 10,
            narrow: Some(8),
            right: true,
            cell: |_, r, w| Line::from(bytes_label(r.process.rss_bytes, w)),
        },
    ],
    MEMORY_COLUMNS,
    &[Column { title: "FINDING", width: 8, narrow: None, right: false, cell: finding_cell }],
];

/// The memory columns, between RSS and FINDING: the heap held (`[heap]` size, "1.0G"; `-`
/// before the first memory sample or without a brk heap), and the verdict: `OOM` (red) when
/// the kernel OOM-killed the process, `KEPT` (yellow) when it holds memory it does not give
/// back, `+3.2M/m` when it grows; blank otherwise. See docs/memory.md.
const MEMORY_COLUMNS: &[Column] = &[
    Column { title: "HEAP", width: 6, narrow: Some(4), right: true, cell: heap_cell },
    Column { title: "MEM", width: 7, narrow: Some(7), right: false, cell: mem_cell },
];

/// The full widths of every column but the cgroup, with the spacing between columns.
const fn full_fixed() -> u16 {
    let mut sum = 0;
    let mut n = 0;
    let mut g = 0;
    while g < COLUMNS.len() {
        let mut c = 0;
        while c < COLUMNS[g].len() {
            sum += COLUMNS[g][c].width;
            n += 1;
            c += 1;
        }
        g += 1;
    }
    sum + COLUMN_SPACING * (n - 1)
}

/// The columns drawn at `width`, each with its width.
fn layout(width: u16) -> Vec<(&'static Column, u16)> {
    let all = || COLUMNS.iter().flat_map(|c| c.iter());
    let chosen: Vec<(&Column, u16)> = if width >= FULL_MIN_WIDTH {
        all().map(|c| (c, c.width)).collect()
    } else {
        all().filter_map(|c| c.narrow.map(|w| (c, w))).collect()
    };
    let fixed: u16 = chosen.iter().map(|(_, w)| w).sum::<u16>()
        + COLUMN_SPACING * (chosen.len() as u16).saturating_sub(1);
    let flex = width.saturating_sub(fixed).max(MIN_CGROUP);
    chosen.into_iter().map(|(c, w)| (c, if c.width == FLEX { flex } else { w })).collect()
}

/// `fmt_bytes` ("84.0 MiB") when it fits in `width`, else [`short_bytes`].
fn bytes_label(b: u64, width: usize) -> String {
    let s = fmt_bytes(b);
    if s.chars().count() <= width { s } else { short_bytes(b) }
}

/// The pid, after a `!` in the severity colour of the worst finding that names the process.
fn pid_cell(app: &App, r: &ProcessRow, _: usize) -> Line<'static> {
    let pid = Span::raw(r.process.pid.to_string());
    match app.worst_finding(r.process.pid) {
        Some(f) => Line::from(vec![
            Span::styled("!", findings::severity_style(f.severity).add_modifier(Modifier::BOLD)),
            pid,
        ]),
        None => Line::from(pid),
    }
}

fn cpu_cell(_: &App, r: &ProcessRow, width: usize) -> Line<'static> {
    let c = r.process.cpu_percent;
    let s = format!("{c:.1}");
    Line::from(if s.len() <= width { s } else { format!("{c:.0}") })
}

fn heap_cell(_: &App, r: &ProcessRow, _: usize) -> Line<'static> {
    match r.process.memory {
        Some(m) if m.heap > 0 => Line::from(short_bytes(m.heap)),
        _ => Line::from("-").style(Style::new().fg(Color::DarkGray)),
    }
}

fn mem_cell(_: &App, r: &ProcessRow, _: usize) -> Line<'static> {
    let bold = |c: Color| Style::new().fg(c).add_modifier(Modifier::BOLD);
    if r.oom_killed {
        return Line::from(Span::styled("OOM", bold(Color::Red)));
    }
    match r.process.memory {
        Some(m) if m.not_returned => Line::from(Span::styled("KEPT", bold(Color::Yellow))),
        Some(m) if m.growing => Line::from(format!(
            "+{}/m",
            short_bytes(m.growth_bytes_per_min.unwrap_or(0.0).max(0.0) as u64)
        )),
        _ => Line::default(),
    }
}

/// The kind of the worst finding that names the process.
fn finding_cell(app: &App, r: &ProcessRow, _: usize) -> Line<'static> {
    match app.worst_finding(r.process.pid) {
        Some(f) => Line::from(Span::styled(
            findings::flag(f.kind),
            findings::severity_style(f.severity).add_modifier(Modifier::BOLD),
        )),
        None => Line::default(),
    }
}

/// "2/3": blocked threads of live threads.
fn blocked_cell(_: &App, r: &ProcessRow, _: usize) -> Line<'static> {
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

fn wait_cell(_: &App, r: &ProcessRow, width: usize) -> Line<'static> {
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

    let columns = layout(area.width);

    let header = Row::new(columns.iter().map(|(c, _)| {
        let l = Line::from(c.title);
        Cell::from(if c.right { l.right_aligned() } else { l })
    }))
    .style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan));

    let cursor = app.cursor();
    let rows: Vec<Row> = app
        .visible_rows()
        .map(|(i, r)| {
            let cells = columns.iter().map(|(c, w)| {
                let l = (c.cell)(app, r, *w as usize);
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
    let widths: Vec<Constraint> = columns.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    let table = Table::new(rows, widths).header(header).column_spacing(COLUMN_SPACING).block(block);
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::style::{Color, Modifier};

    use super::{cgroup_label, shorten_tail, wait_label};
    use crate::{live::aggregator::ProcessRow, memory::MemStatus, tui::testing::*};

    /// Holds 1 GiB of brk heap, 1.0 GiB anonymous, and gives none of it back.
    fn kept(pid: i32) -> ProcessRow {
        let mut r = idle(pid);
        r.process.comm = "holder".into();
        r.process.rss_bytes = 1100 << 20;
        r.process.memory = Some(MemStatus {
            rss: 1100 << 20,
            rss_anon: 1 << 30,
            peak_rss: 1100 << 20,
            heap: 1 << 30,
            heap_peak: 1 << 30,
            brk_grows: 12,
            returned_bytes: 0,
            not_returned: true,
            samples: 60,
            ..Default::default()
        });
        r
    }

    /// Grows 3.2 MiB a minute.
    fn grower(pid: i32) -> ProcessRow {
        let mut r = idle(pid);
        r.process.comm = "grower".into();
        r.process.memory = Some(MemStatus {
            rss: 120 << 20,
            rss_anon: 100 << 20,
            heap: 48 << 20,
            heap_peak: 48 << 20,
            growing: true,
            growth_bytes_per_min: Some(3.2 * 1024.0 * 1024.0),
            samples: 60,
            ..Default::default()
        });
        r
    }

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
        app.update(crate::live::Update { view: std::sync::Arc::new(v), dropped_records: 0 });
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
    fn memory_columns() {
        let mut v = view(vec![kept(600), grower(601), idle(602)]);
        v.processes[2].process.memory = Some(crate::memory::MemStatus::default());
        let mut app = app_with(v);
        for (w, h) in [(80, 24), (120, 35)] {
            let s = render(&mut app, w, h);
            let all = screen(&s);
            let header = s.iter().find(|l| l.contains("PID")).expect("column header");
            assert!(header.contains(" HEAP MEM"), "{all}");
            let row = |pid: i32| {
                s.iter()
                    .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
                    .unwrap_or_else(|| panic!("{w}x{h}: no row for {pid}:\n{all}"))
            };
            // Holds 1 GiB of heap it does not give back.
            let r = row(600);
            assert!(r.contains(" 1.0G KEPT"), "{all}");
            assert!(r.chars().count() <= w as usize);
            let st = style_of(&mut app, w, h, "KEPT", 0);
            assert_eq!(st.fg, Some(Color::Yellow));
            assert!(st.add_modifier.contains(Modifier::BOLD));
            // Growing: the rate per minute.
            assert!(row(601).contains(" 48M +3.2M/m"), "{all}");
            // Sampled, no heap, no verdict.
            let r = row(602);
            assert!(r.trim_end().ends_with(" -"), "{r}");
            // RSS keeps its long form when it fits (80 columns: 8 characters).
            assert!(row(600).contains("1.1 GiB"), "{all}");
        }
        // A larger RSS falls back to the short form in the narrow layout.
        let mut v = view(vec![kept(600)]);
        v.processes[0].process.rss_bytes = 300 << 20;
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        let r = s.iter().find(|l| l.contains(" 600 ")).expect("row");
        assert!(r.contains(" 300M 1.0G KEPT"), "{r}");
        let s = render(&mut app, 120, 35);
        let r = s.iter().find(|l| l.contains(" 600 ")).expect("row");
        assert!(r.contains("300.0 MiB"), "{r}");
    }

    #[test]
    fn column_sets_by_width() {
        use super::{FULL_MIN_WIDTH, layout};
        for w in [40, 80, 100, FULL_MIN_WIDTH - 1, FULL_MIN_WIDTH, 120, 200] {
            let cols = layout(w);
            let total: u16 = cols.iter().map(|(_, w)| w).sum::<u16>() + cols.len() as u16 - 1;
            let titles: Vec<&str> = cols.iter().map(|(c, _)| c.title).collect();
            let cgroup = cols.iter().find(|(c, _)| c.title == "CGROUP").expect("cgroup").1;
            if w >= 80 {
                assert_eq!(total, w, "{w}: {titles:?}");
            }
            if w >= FULL_MIN_WIDTH {
                assert!(titles.contains(&"FINDING") && cgroup >= 12, "{w}: {titles:?}");
            } else {
                assert!(!titles.contains(&"FINDING"), "{w}: {titles:?}");
            }
            assert!(titles.contains(&"HEAP") && titles.contains(&"MEM"), "{w}");
        }
        // At 80 columns the cgroup keeps 9 characters: "…89abcdef".
        assert_eq!(layout(80).iter().find(|(c, _)| c.title == "CGROUP").expect("cgroup").1, 9);
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
