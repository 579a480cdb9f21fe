//! The terminal UI: a view of the live aggregator.
//!
//! * [`app`] holds the widget state (what is shown, the selection, the filter, the sort, the
//!   RSS history) and turns keys into state changes. No drawing, no I/O.
//! * one file per panel draws from an `&App`: [`header`], [`table`], [`detail`], [`findings`],
//!   [`events`], [`help`] (the key bar and the `?` overlay). Drawing never touches the
//!   aggregator.
//! * [`sanitize`] escapes what processes control once per update, and scrubs each frame.
//! * [`terminal`] owns the terminal: raw mode and the alternate screen, restored on Drop, on
//!   panic (a panic hook) and on SIGTERM (the loop below ends, the guard drops).
//!
//! Live mode's aggregator publishes an [`Update`] about once a second through a
//! `tokio::sync::watch` channel ([`crate::live::run_published`]); [`run`] owns the terminal
//! and the keyboard. The UI depends on live mode, never the other way: `main` wires them.

pub mod app;
pub mod detail;
pub mod events;
pub mod findings;
pub mod header;
pub mod help;
pub mod logfile;
pub mod sanitize;
pub mod table;
pub mod terminal;

use std::{
    fs::File,
    path::PathBuf,
    time::{Duration, Instant},
};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt as _;
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
};
use tokio::sync::watch;

use crate::live::Update;
pub use app::{App, HostInfo, Mode, SortKey};

/// The screen split into panels. Pure: the same for drawing and for key handling (page size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    /// The process table (table mode) or the detail view (detail mode).
    pub main: Rect,
    /// The findings pane; empty in detail mode and when there are no findings.
    pub findings: Rect,
    /// The events pane; empty in detail mode.
    pub events: Rect,
    pub footer: Rect,
}

pub fn layout(area: Rect, app: &App) -> Areas {
    let header_h = header::height(app).min(area.height.saturating_sub(4));
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(header_h), Constraint::Min(0), Constraint::Length(1)])
            .areas(area);
    match app.mode {
        Mode::Table => {
            // The events pane: its events, at least 3 lines and at most about 30 % of the body.
            let wanted = app.view().events.len() as u16 + 1;
            let events_h = wanted.clamp(4, (body.height * 3 / 10).max(4)).min(body.height / 2);
            // The findings pane, above the events: one line each, at most about a quarter of
            // the body; none without findings.
            let findings_h =
                findings::wanted_height(app.view().findings.len()).min((body.height / 4).max(2));
            let [main, findings, events] = Layout::vertical([
                Constraint::Min(0),
                Constraint::Length(findings_h),
                Constraint::Length(events_h),
            ])
            .areas(body);
            Areas { header, main, findings, events, footer }
        }
        Mode::Detail(_) => {
            Areas { header, main: body, findings: Rect::default(), events: Rect::default(), footer }
        }
    }
}

/// Draws one frame. The app's page sizes must have been set for this frame's layout.
pub fn draw(frame: &mut Frame, app: &App) {
    let areas = layout(frame.area(), app);
    header::render(frame, areas.header, app);
    match app.mode {
        Mode::Table => {
            table::render(frame, areas.main, app);
            if !areas.findings.is_empty() {
                findings::render(frame, areas.findings, app);
            }
            events::render(frame, areas.events, app);
        }
        Mode::Detail(pid) => detail::render(frame, areas.main, app, pid),
    }
    help::render_footer(frame, areas.footer, app);
    if app.help {
        help::render_overlay(frame, frame.area(), app);
    }
}

/// Updates the page sizes for this frame's size, then draws.
pub fn frame(frame: &mut Frame, app: &mut App) {
    let areas = layout(frame.area(), app);
    match app.mode {
        Mode::Table => app.set_table_page(table::page_rows(areas.main) as usize),
        Mode::Detail(pid) => {
            app.set_detail_page(detail::page_rows(areas.main) as usize);
            let lines = detail::line_count(app, pid, areas.main);
            app.clamp_detail_scroll(lines);
        }
    }
    draw(frame, app);
    sanitize::scrub(frame.buffer_mut());
}

/// Runs the UI until `q`, Ctrl-C, SIGINT or SIGTERM, or until the publisher goes away.
pub async fn run(
    mut updates: watch::Receiver<Update>,
    host: HostInfo,
    log_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut guard = terminal::TerminalGuard::enter()?;
    let started = Instant::now();
    let mut app = App::new(host);
    app.log_path = log_path;
    app.update(updates.borrow_and_update().clone());
    let mut keys = EventStream::new();
    // Redraws the clock (uptime, ages) even when nothing else happens.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if terminal::restored() {
            // A panic elsewhere restored the terminal: stop drawing over its message.
            return Ok(());
        }
        app.uptime = started.elapsed();
        guard.terminal().draw(|f| frame(f, &mut app))?;
        if app.quit {
            break;
        }
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                let u = updates.borrow_and_update().clone();
                app.update(u);
            }
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => app.on_key(k),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading the keyboard")),
                None => break,
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => {}
        }
    }
    guard.restore()?;
    Ok(())
}

static LOG_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
/// The places [`open_log_file`] refused, and why (shown as warnings once logging is set up).
static LOG_REFUSED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The log file [`open_log_file`] opened, if any.
pub fn log_path() -> Option<PathBuf> {
    LOG_PATH.get().cloned()
}

/// What [`open_log_file`] refused: `"<path>: <reason>"`, one per place tried before it found
/// one (or all of them when it found none).
pub fn log_refused() -> &'static [String] {
    LOG_REFUSED.get().map(Vec::as_slice).unwrap_or_default()
}

/// Where the diagnostics go while the UI owns the terminal: `$XDG_STATE_HOME/hangwatch.log`,
/// else `/var/log/hangwatch.log`, else `/tmp/hangwatch-<uid>.log`; the first that
/// [`logfile::open_private`] accepts (a regular file of ours, opened without following a
/// symlink or blocking on a FIFO). `None` when none can be opened.
pub fn open_log_file() -> Option<File> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(dir).join("hangwatch.log"));
    }
    candidates.push(PathBuf::from("/var/log/hangwatch.log"));
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    candidates.push(PathBuf::from(format!("/tmp/hangwatch-{uid}.log")));
    let mut refused = Vec::new();
    let file = candidates.into_iter().find_map(|p| match logfile::open_private(&p) {
        Ok(f) => {
            let _ = LOG_PATH.set(p);
            Some(f)
        }
        Err(e) => {
            refused.push(format!("{}: {e}", crate::escape::term(&p.to_string_lossy())));
            None
        }
    });
    let _ = LOG_REFUSED.set(refused);
    file
}

/// Test helpers shared by the panel tests: views that look like what the aggregator builds.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::{
        analysis::{Finding, FindingKind, Severity, Step},
        live::aggregator::{EventKind, EventLine, Health, ProcessRow, View},
        model::{Process, Wait, facts::OomFact},
        probes::ProbeStatus,
    };

    pub const SEC: u64 = 1_000_000_000;
    /// The views' clock: an hour after boot.
    pub const NOW: u64 = 3_600 * SEC;

    pub use crate::model::fixtures::{service, thread};

    /// [`crate::model::fixtures::wait`] on the views' clock (it began `secs` before [`NOW`]),
    /// with the summary and the kernel function the panels show.
    pub fn wait(syscall: &str, human: &str, secs: u64, infinite: bool, wchan: &str) -> Wait {
        let mut w = crate::model::fixtures::wait(syscall, secs as f64, infinite);
        std::sync::Arc::make_mut(&mut w.decoded).human = human.into();
        w.since_mono_ns = NOW - secs * SEC;
        w.duration_ns = secs * SEC;
        w.wchan = Some(wchan.into());
        w
    }

    pub fn row(p: Process) -> ProcessRow {
        ProcessRow { process: p, exited: false, oom_killed: false, children: vec![] }
    }

    /// An idle process: one thread, running.
    pub fn idle(pid: i32) -> ProcessRow {
        let mut p = service(pid, &format!("idle{pid}"), vec![thread(pid, "idle", None)]);
        p.cpu_percent = 0.5;
        row(p)
    }

    /// A job that computed for 12 s, then hung in poll(-1) for 5m12s: 1 of its 1 threads blocked.
    pub fn hung_job(pid: i32) -> ProcessRow {
        let w =
            wait("poll", "poll(1 fd: 7 socket:[123], timeout=infinite)", 312, true, "do_sys_poll");
        let mut p = service(pid, "batch-job", vec![thread(pid, "batch-job", Some(w))]);
        p.cpu_total_secs = 12.0;
        p.age_secs = 330.0;
        p.rss_bytes = 84 << 20;
        p.cgroup = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-0123456789abcdef0123456789abcdef.scope".into();
        row(p)
    }

    pub fn health() -> Health {
        Health {
            own_cpu_percent: 0.4,
            own_rss_bytes: 12 << 20,
            probes: vec![ProbeStatus {
                name: "sched_switch",
                attached: true,
                reason: None,
                impact: "",
            }],
            scans: 10,
            ..Default::default()
        }
    }

    pub fn view(processes: Vec<ProcessRow>) -> View {
        View {
            now_mono_ns: NOW,
            blocked_threads: processes.iter().map(|r| r.process.blocked_count()).sum(),
            blocked_processes: processes.iter().filter(|r| r.process.blocked_count() > 0).count(),
            processes,
            health: health(),
            ..Default::default()
        }
    }

    /// A view with one OOM kill of `pid` 30 s ago, as the aggregator records it.
    pub fn with_oom(mut v: View, pid: i32, comm: &str) -> View {
        v.oom_kills.push(OomFact {
            time_mono_ns: NOW - 30 * SEC,
            pid,
            comm: comm.into(),
            cgroup: Some("/system.slice/leaky.service".into()),
            ppid: None,
            anon_rss_bytes: Some(1 << 30),
            memory_limit_bytes: Some(2 << 30),
        });
        v.events.push(EventLine {
            ts_mono_ns: NOW - 30 * SEC,
            kind: EventKind::OomKill,
            pid,
            text: format!(
                "OOM kill: {pid} {comm} in /system.slice/leaky.service, anon RSS 1.0 GiB"
            ),
        });
        for r in &mut v.processes {
            if r.process.pid == pid {
                r.oom_killed = true;
            }
        }
        v
    }

    pub fn finding(
        kind: FindingKind,
        severity: Severity,
        pids: Vec<i32>,
        summary: &str,
    ) -> Finding {
        Finding {
            kind,
            severity,
            key: format!("{}:{pids:?}", kind.as_str()),
            pids,
            tids: vec![],
            summary: summary.into(),
            since_mono_ns: None,
            chain: vec![],
        }
    }

    /// A parent (710, `joiner`) waits in wait4 for its child (711, `writer`), which is blocked
    /// writing a pipe that only the parent reads: a deadlock for 3 s, as the analysis states
    /// it. Plus an idle process.
    pub fn deadlock_view() -> View {
        let w = wait("wait4", "wait4(pid 711)", 3, true, "do_wait");
        let mut parent = service(710, "joiner", vec![thread(710, "joiner", Some(w))]);
        parent.cpu_total_secs = 0.3;
        let w = wait("write", "write(fd 1 pipe:[55665], 1048576 bytes)", 3, true, "pipe_write");
        let mut child = service(711, "writer", vec![thread(711, "writer", Some(w))]);
        child.ppid = 710;
        child.cpu_total_secs = 0.3;
        let mut parent = row(parent);
        parent.children = vec![711];
        let mut v = view(vec![parent, row(child), idle(1)]);
        let chain = vec![
            Step {
                pid: 710,
                tid: 710,
                comm: "joiner".into(),
                syscall: "wait4".into(),
                waits_on: "child 711".into(),
                frame: None,
            },
            Step {
                pid: 711,
                tid: 711,
                comm: "writer".into(),
                syscall: "write".into(),
                waits_on: "pipe:[55665] whose only reader is pid 710".into(),
                frame: None,
            },
        ];
        let mut f = finding(
            FindingKind::Deadlock,
            Severity::Critical,
            vec![710, 711],
            "deadlock: pid 710 (joiner) tid 710 waits in wait4 on child 711; pid 711 (writer) tid 711 waits in write on pipe:[55665] whose only reader is pid 710",
        );
        f.tids = vec![710, 711];
        f.since_mono_ns = Some(NOW - 3 * SEC);
        f.chain = chain;
        v.findings.push(f);
        v
    }

    pub fn host() -> HostInfo {
        HostInfo { hostname: "node-7".into(), kernel: "6.8.0-51-generic".into() }
    }

    pub fn app_with(v: View) -> App {
        let mut app = App::new(host());
        app.uptime = Duration::from_secs(125);
        app.update(Update { view: Arc::new(v), dropped_records: 0 });
        app
    }

    /// Draws `app` at `w`x`h` and returns the screen as lines.
    pub fn render(app: &mut App, w: u16, h: u16) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        term.draw(|f| frame(f, app)).expect("draw");
        let buf = term.backend().buffer();
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>()).collect()
    }

    /// The style of the cell `skip` characters into the first `needle` on screen.
    pub fn style_of(
        app: &mut App,
        w: u16,
        h: u16,
        needle: &str,
        skip: usize,
    ) -> ratatui::style::Style {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        term.draw(|f| frame(f, app)).expect("draw");
        let buf = term.backend().buffer().clone();
        for y in 0..h {
            let line: Vec<&str> = (0..w).map(|x| buf[(x, y)].symbol()).collect();
            let joined = line.concat();
            if let Some(byte) = joined.find(needle) {
                // Column of the match: count the cells before the byte offset.
                let mut acc = 0;
                for (x, s) in line.iter().enumerate() {
                    if acc == byte {
                        return buf[(x as u16 + skip as u16, y)].style();
                    }
                    acc += s.len();
                }
            }
        }
        panic!("{needle:?} is not on screen:\n{}", render(app, w, h).join("\n"))
    }

    pub fn screen(lines: &[String]) -> String {
        lines.join("\n")
    }
}
