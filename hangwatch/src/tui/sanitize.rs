//! What a process controls, made safe before the TUI lays it out (see [`crate::escape`]).
//!
//! [`update`] escapes every string of a published view once, when it arrives: comms, command
//! lines, cgroups, decoded waits (paths, fd targets), wait channels, event lines, OOM victims,
//! probe errors, finding summaries and chains. A view with nothing to escape (the usual case) is
//! passed on as it is, without a copy. [`scrub`] is the last line of defence on the drawn
//! frame: a cell that still holds a control or invisible format character (a panel that drew a
//! string it did not take from the view) is replaced by `�`, so that nothing unsafe is written
//! to the terminal whatever a panel does.

use std::sync::Arc;

use ratatui::buffer::Buffer;

use crate::{
    analysis::Finding,
    escape::{FIELD_COLS, in_place, is_unsafe, needs_escape},
    live::{
        Update,
        aggregator::{EventLine, ProcessRow, View},
    },
    model::facts::OomFact,
};

/// Columns kept of a comm, a command line and a finding summary (the panels shorten further).
const COMM_COLS: usize = 64;
const CMDLINE_COLS: usize = 1024;
const SUMMARY_COLS: usize = 2048;

/// Whether a string needs escaping or is longer than `cols` bytes (a cheap upper bound on its
/// columns, so that a short clean string is never rewritten).
fn dirty(s: &str, cols: usize) -> bool {
    s.len() > cols || needs_escape(s)
}

fn process_dirty(r: &ProcessRow) -> bool {
    let p = &r.process;
    dirty(&p.comm, COMM_COLS)
        || dirty(&p.cmdline, CMDLINE_COLS)
        || dirty(&p.cgroup, FIELD_COLS)
        || p.threads.iter().any(|t| {
            dirty(&t.comm, COMM_COLS)
                || t.blocked.as_ref().is_some_and(|w| {
                    dirty(&w.decoded.human, FIELD_COLS)
                        || dirty(&w.decoded.syscall, COMM_COLS)
                        || w.wchan.as_deref().is_some_and(|c| dirty(c, COMM_COLS))
                })
        })
}

fn finding_dirty(f: &Finding) -> bool {
    dirty(&f.summary, SUMMARY_COLS)
        || f.chain.iter().any(|s| {
            dirty(&s.comm, COMM_COLS)
                || dirty(&s.syscall, COMM_COLS)
                || dirty(&s.waits_on, FIELD_COLS)
        })
}

fn event_dirty(e: &EventLine) -> bool {
    dirty(&e.text, FIELD_COLS)
}

fn oom_dirty(o: &OomFact) -> bool {
    dirty(&o.comm, COMM_COLS) || o.cgroup.as_deref().is_some_and(|c| dirty(c, FIELD_COLS))
}

fn view_dirty(v: &View) -> bool {
    v.processes.iter().any(process_dirty)
        || v.findings.iter().any(finding_dirty)
        || v.events.iter().any(event_dirty)
        || v.oom_kills.iter().any(oom_dirty)
        || v.health.probes.iter().any(|p| p.reason.as_deref().is_some_and(|r| dirty(r, FIELD_COLS)))
}

fn escape_process(r: &mut ProcessRow) {
    let p = &mut r.process;
    in_place(&mut p.comm, COMM_COLS);
    in_place(&mut p.cmdline, CMDLINE_COLS);
    in_place(&mut p.cgroup, FIELD_COLS);
    for t in &mut p.threads {
        in_place(&mut t.comm, COMM_COLS);
        if let Some(w) = &mut t.blocked {
            if dirty(&w.decoded.human, FIELD_COLS) || dirty(&w.decoded.syscall, COMM_COLS) {
                let d = Arc::make_mut(&mut w.decoded);
                in_place(&mut d.human, FIELD_COLS);
                in_place(&mut d.syscall, COMM_COLS);
            }
            if let Some(c) = &mut w.wchan {
                in_place(c, COMM_COLS);
            }
        }
    }
}

fn escape_finding(f: &mut Finding) {
    in_place(&mut f.summary, SUMMARY_COLS);
    for s in &mut f.chain {
        in_place(&mut s.comm, COMM_COLS);
        in_place(&mut s.syscall, COMM_COLS);
        in_place(&mut s.waits_on, FIELD_COLS);
    }
}

/// The update with every process-controlled string escaped and bounded; the same `Arc` when
/// there was nothing to do.
pub fn update(u: Update) -> Update {
    if !view_dirty(&u.view) {
        return u;
    }
    let mut v = View::clone(&u.view);
    v.processes.iter_mut().filter(|r| process_dirty(r)).for_each(escape_process);
    v.findings.iter_mut().for_each(escape_finding);
    v.events.iter_mut().for_each(|e| in_place(&mut e.text, FIELD_COLS));
    for o in &mut v.oom_kills {
        in_place(&mut o.comm, COMM_COLS);
        if let Some(c) = &mut o.cgroup {
            in_place(c, FIELD_COLS);
        }
    }
    for p in &mut v.health.probes {
        if let Some(r) = &mut p.reason {
            in_place(r, FIELD_COLS);
        }
    }
    Update { view: Arc::new(v), ..u }
}

/// Replaces every cell of a drawn frame that holds an unsafe character by `�`.
pub fn scrub(buf: &mut Buffer) {
    for cell in &mut buf.content {
        if cell.symbol().chars().any(is_unsafe) {
            cell.set_symbol("\u{fffd}");
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::tui::{
        Mode,
        testing::{app_with, deadlock_view, row, service, thread, view, wait, with_oom},
    };

    const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\r\u{202e}x\u{9b}1m";

    /// Every panel fed hostile names: a process, its thread and wait, an OOM victim, an event,
    /// a finding and its chain, a probe error.
    fn hostile_view() -> View {
        let w = wait("read", &format!("read(3 /tmp/{HOSTILE})"), 60, true, HOSTILE);
        let mut p = service(666, HOSTILE, vec![thread(666, HOSTILE, Some(w))]);
        p.cmdline = format!("{HOSTILE}\n✖ deadlock [critical]: forged");
        p.cgroup = format!("/{HOSTILE}");
        let mut v = deadlock_view();
        v.processes.insert(0, row(p));
        v.findings[0].summary.push_str(HOSTILE);
        v.findings[0].chain[0].comm = HOSTILE.into();
        v.findings[0].chain[1].waits_on = format!("/tmp/{HOSTILE}\n✖ forged");
        v.health.probes[0].attached = false;
        v.health.probes[0].reason = Some(HOSTILE.into());
        with_oom(v, 666, HOSTILE)
    }

    fn draw_cells(app: &mut crate::tui::App, w: u16, h: u16) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        term.draw(|f| crate::tui::frame(f, app)).expect("draw");
        term.backend().buffer().content.iter().map(|c| c.symbol().to_string()).collect()
    }

    fn assert_safe(cells: &[String], what: &str) {
        for c in cells {
            assert!(!c.chars().any(is_unsafe), "{what}: unsafe cell {c:?}");
        }
    }

    #[test]
    fn clean_view_is_not_copied() {
        let u = Update { view: Arc::new(view(vec![])), dropped_records: 0 };
        let before = Arc::as_ptr(&u.view);
        assert_eq!(Arc::as_ptr(&update(u).view), before);
    }

    #[test]
    fn hostile_view_is_escaped_everywhere() {
        let u = update(Update { view: Arc::new(hostile_view()), dropped_records: 0 });
        let v = &u.view;
        let p = &v.processes[0].process;
        assert_eq!(p.comm, "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m\\r\\u{202e}x\\u{9b}1m");
        assert!(p.cmdline.ends_with("\\n✖ deadlock [critical]: forged"), "{}", p.cmdline);
        assert!(!view_dirty(v), "{v:?}");
    }

    #[test]
    fn no_panel_draws_a_raw_control_at_any_size() {
        let mut app = app_with(hostile_view());
        for (w, h) in [(80, 24), (20, 5), (400, 120), (1, 1), (0, 0), (200, 3)] {
            assert_safe(&draw_cells(&mut app, w, h), &format!("table {w}x{h}"));
        }
        let screen = draw_cells(&mut app, 200, 50).concat();
        assert!(screen.contains("\\x1b]0;pwned"), "{screen}");
        app.mode = Mode::Detail(666);
        for (w, h) in [(80, 24), (20, 5), (400, 120)] {
            assert_safe(&draw_cells(&mut app, w, h), &format!("detail {w}x{h}"));
        }
        app.mode = Mode::Table;
        app.help = true;
        for (w, h) in [(80, 24), (20, 5), (400, 120)] {
            assert_safe(&draw_cells(&mut app, w, h), &format!("help {w}x{h}"));
        }
    }

    #[test]
    fn scrub_replaces_what_a_panel_drew_raw() {
        let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 4, 1));
        buf.content[0].set_symbol("\x1b");
        buf.content[1].set_symbol("a\u{202e}");
        buf.content[2].set_symbol("b");
        scrub(&mut buf);
        let s: Vec<&str> = buf.content.iter().map(|c| c.symbol()).collect();
        assert_eq!(s, ["\u{fffd}", "\u{fffd}", "b", " "]);
    }
}
