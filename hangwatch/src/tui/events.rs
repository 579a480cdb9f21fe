//! The events pane: OOM kills, long waits that ended, processes that went quiet, exits.
//! Newest first, so the latest is always in sight without scrolling.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph},
};

use super::App;
use crate::{fmt::fmt_duration_ns, live::aggregator::EventKind};

fn tag(kind: EventKind) -> Span<'static> {
    let (text, style) = match kind {
        EventKind::OomKill => ("OOM  ", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        EventKind::WaitEnded => ("ended", Style::new().fg(Color::Green)),
        EventKind::WentQuiet => ("quiet", Style::new().fg(Color::Yellow)),
        EventKind::ProcessExit => ("exit ", Style::new().fg(Color::DarkGray)),
    };
    Span::styled(text, style)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let v = app.view();
    let block = Block::new()
        .borders(Borders::TOP)
        .title(
            Line::from(format!(" Events ({}, newest first) ", v.events.len()))
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .border_style(Style::new().fg(Color::DarkGray));
    let rows = area.height.saturating_sub(1) as usize;
    let lines: Vec<Line> = if v.events.is_empty() {
        vec![Line::from(" no events yet").style(Style::new().fg(Color::DarkGray))]
    } else {
        v.events
            .iter()
            .rev()
            .take(rows)
            .map(|e| {
                let age_ns = v.now_mono_ns.saturating_sub(e.ts_mono_ns);
                let age = if age_ns < 1_000_000_000 {
                    "now".to_string()
                } else {
                    format!("{} ago", fmt_duration_ns(age_ns))
                };
                Line::from(vec![
                    Span::styled(format!("{age:>10} "), Style::new().fg(Color::DarkGray)),
                    tag(e.kind),
                    Span::raw(" "),
                    Span::raw(e.text.clone()),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use crate::{
        live::aggregator::{EventKind, EventLine},
        tui::testing::*,
    };

    #[test]
    fn newest_first_with_age() {
        let mut v = view(vec![hung_job(4242)]);
        let ev = |secs: u64, kind, text: &str| EventLine {
            ts_mono_ns: NOW - secs * SEC,
            kind,
            pid: 4242,
            text: text.into(),
        };
        v.events = vec![
            ev(300, EventKind::ProcessExit, "77 old exited"),
            ev(90, EventKind::WaitEnded, "4242 4243 (batch-job): futex ended after 1m30s"),
            ev(5, EventKind::WentQuiet, "4242 batch-job went quiet: poll(...)"),
        ];
        let mut app = app_with(v);
        let s = render(&mut app, 80, 24);
        let all = screen(&s);
        assert!(all.contains("Events (3, newest first)"), "{all}");
        let quiet = s
            .iter()
            .position(|l| l.contains("quiet 4242 batch-job went quiet"))
            .unwrap_or_else(|| panic!("{all}"));
        let ended = s
            .iter()
            .position(|l| l.contains("ended 4242 4243 (batch-job): futex ended after 1m30s"))
            .unwrap_or_else(|| panic!("{all}"));
        let exit = s
            .iter()
            .position(|l| l.contains("exit  77 old exited"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(quiet < ended && ended < exit, "{all}");
        assert!(s[quiet].contains("5.0s ago"), "{all}");
        assert!(s[exit].contains("5m00s ago"), "{all}");
        // Same second as the view: "now".
        let mut v = app.view().clone();
        v.events.push(ev(0, EventKind::OomKill, "OOM kill: 4242 batch-job"));
        app.update(crate::live::Update { view: std::sync::Arc::new(v), dropped_records: 0 });
        let s = render(&mut app, 80, 24);
        let oom = s
            .iter()
            .find(|l| l.contains("OOM kill: 4242"))
            .unwrap_or_else(|| panic!("{}", screen(&s)));
        assert!(oom.trim_start().starts_with("now OOM "), "{oom}");
    }
}
