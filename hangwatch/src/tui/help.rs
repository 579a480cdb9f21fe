//! The key bar at the bottom (or the `/` filter prompt) and the `?` overlay.

use ratatui::{
    Frame,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph},
};

use super::{App, Mode};

/// What each key does, as the overlay lists it.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move the selection (detail: scroll)"),
    ("PgUp PgDn", "a page up or down"),
    ("Home End  g G", "first or last row"),
    ("Enter", "details of the selected process"),
    ("Esc", "back to the table / clear the filter"),
    ("/", "filter by comm, pid or cgroup; Enter applies, Esc clears"),
    ("s", "sort: suspicion, longest wait, CPU, RSS, pid"),
    ("p  Space", "pause: freeze the view (data is still collected)"),
    ("t", "detail: whole stacks of blocked threads, or each one's frame"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
];

fn key(k: &str) -> Span<'static> {
    Span::styled(k.to_string(), Style::new().fg(Color::Black).bg(Color::Cyan))
}

pub fn render_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = if let Some(text) = app.editing() {
        Line::from(vec![
            Span::styled(" filter: ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(text.to_string()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled("  Enter apply · Esc clear", Style::new().fg(Color::DarkGray)),
        ])
    } else {
        let pairs: &[(&str, &str)] = match app.mode {
            Mode::Table => &[
                ("q", "quit"),
                ("?", "help"),
                ("↑↓", "move"),
                ("Enter", "detail"),
                ("/", "filter"),
                ("s", "sort"),
                ("p", "pause"),
            ],
            Mode::Detail(_) => &[
                ("q", "quit"),
                ("?", "help"),
                ("Esc", "back"),
                ("↑↓", "scroll"),
                ("t", "stacks"),
                ("p", "pause"),
            ],
        };
        let mut spans = Vec::new();
        for (k, what) in pairs {
            spans.push(Span::raw(" "));
            spans.push(key(k));
            spans.push(Span::raw(format!(" {what}")));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

pub fn render_overlay(frame: &mut Frame, area: Rect, app: &App) {
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<15}"),
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(" ! before a pid: a finding names the process (red: critical or high)."));
    lines.push(Line::from(" MEM: OOM killed · KEPT memory not given back · +3.2M/m growing."));
    lines.push(Line::from(" Rows reorder only when a score beats the row above by a margin"));
    lines.push(Line::from(" (0.5 suspicion points): see docs/tui.md."));
    if let Some(p) = &app.log_path {
        lines.push(
            Line::from(format!(" Log: {}", p.display())).style(Style::new().fg(Color::DarkGray)),
        );
    }
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = 76.min(area.width);
    let [v] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(v);
    frame.render_widget(Clear, r);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(
            Line::from(" Keys (Esc or ? closes) ").style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
