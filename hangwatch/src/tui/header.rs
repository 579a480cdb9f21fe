//! The header: where and how long hangwatch runs, the open findings (red when one is critical
//! or high), what is blocked, OOM kills, hangwatch's own cost and lost events (red when not
//! zero), PAUSED, and one yellow line per probe that failed to attach.
//!
//! When the second line is wider than the screen its least important parts are left out: first
//! `findings: 0`, then `self`.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{App, findings};
use crate::{
    analysis::Severity,
    fmt::{fmt_bytes, fmt_duration_ns},
};

/// Probe lines shown at most; more are summed up in one line.
const MAX_PROBE_LINES: usize = 3;

fn failed_probes(app: &App) -> usize {
    app.view().health.probes.iter().filter(|p| !p.attached).count()
}

/// Rows the header needs.
pub fn height(app: &App) -> u16 {
    let failed = failed_probes(app);
    let probe_lines = if failed > MAX_PROBE_LINES { MAX_PROBE_LINES + 1 } else { failed };
    2 + probe_lines as u16
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Joins the segments (after a leading space, two spaces apart), leaving out the least
/// important (the first of them on ties) until the line fits in `width`.
fn fit_segments(mut segments: Vec<(u8, Vec<Span<'static>>)>, width: usize) -> Vec<Span<'static>> {
    let len = |segs: &[(u8, Vec<Span>)]| {
        segs.iter().map(|(_, s)| s.iter().map(|s| s.width()).sum::<usize>() + 2).sum::<usize>() - 1
    };
    while segments.len() > 1 && len(&segments) > width {
        let Some(least) = segments.iter().map(|(p, _)| *p).min() else { break };
        let Some(i) = segments.iter().position(|(p, _)| *p == least) else { break };
        if least >= 7 {
            break; // blocked, OOM and lost stay even if the line is cut
        }
        segments.remove(i);
    }
    let mut out = vec![Span::raw(" ")];
    for (i, (_, spans)) in segments.into_iter().enumerate() {
        if i > 0 {
            out.push(Span::styled("  ", Style::new().fg(Color::DarkGray)));
        }
        out.extend(spans);
    }
    out
}

#[allow(clippy::too_many_lines, reason = "long data: the header's spans, one after the other")]
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let v = app.view();
    let h = &v.health;
    let dim = Style::new().fg(Color::DarkGray);
    let sep = || Span::styled("  ", dim);

    let mut first = vec![
        Span::styled(
            " hangwatch ",
            Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
        Span::styled(app.host.hostname.clone(), Style::new().add_modifier(Modifier::BOLD)),
        sep(),
        Span::styled("kernel ", dim),
        Span::raw(app.host.kernel.clone()),
        sep(),
        Span::styled("up ", dim),
        Span::raw(fmt_duration_ns(app.uptime.as_nanos() as u64)),
    ];
    if app.paused() {
        first.push(sep());
        first.push(Span::styled(
            " PAUSED ",
            Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }

    let blocked_style = if v.blocked_threads > 0 {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let ooms = v.oom_kills.len();
    let oom_text = match v.oom_kills.iter().map(|o| o.time_mono_ns).max() {
        Some(last) => {
            format!("{ooms} ({} ago)", fmt_duration_ns(v.now_mono_ns.saturating_sub(last)))
        }
        None => "0".to_string(),
    };
    let oom_style = if ooms > 0 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let lost = h.kernel.lost_events + h.kernel.map_full + app.dropped_records();
    let lost_style = if lost > 0 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let worst = v.findings.iter().map(|f| f.severity).max();
    let findings_style = match worst {
        Some(s) if findings::is_serious(s) => {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        }
        Some(Severity::Medium) => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        _ => Style::new(),
    };
    // (how much it matters, spans): the least important go first when the line is too wide.
    let segments: Vec<(u8, Vec<Span>)> = vec![
        (
            if v.findings.is_empty() { 0 } else { 9 },
            vec![
                Span::styled("findings: ", dim),
                Span::styled(v.findings.len().to_string(), findings_style),
            ],
        ),
        (
            9,
            vec![
                Span::styled("blocked: ", dim),
                Span::styled(
                    format!(
                        "{} in {}",
                        plural(v.blocked_threads, "thread", "threads"),
                        plural(v.blocked_processes, "proc", "procs")
                    ),
                    blocked_style,
                ),
            ],
        ),
        (8, vec![Span::styled("OOM: ", dim), Span::styled(oom_text, oom_style)]),
        (
            1,
            vec![
                Span::styled("self: ", dim),
                Span::raw(format!("{:.1}% {}", h.own_cpu_percent, fmt_bytes(h.own_rss_bytes))),
            ],
        ),
        (7, vec![Span::styled("lost: ", dim), Span::styled(lost.to_string(), lost_style)]),
    ];
    let second = fit_segments(segments, area.width as usize);

    let mut lines = vec![Line::from(first), Line::from(second)];
    let failed: Vec<_> = h.probes.iter().filter(|p| !p.attached).collect();
    let shown = if failed.len() > MAX_PROBE_LINES { MAX_PROBE_LINES } else { failed.len() };
    for p in &failed[..shown] {
        let mut text = format!(
            "⚠ probe {} not attached: {}",
            p.name,
            p.reason.as_deref().unwrap_or("unknown reason")
        );
        if !p.impact.is_empty() {
            text.push_str(&format!(" ({})", p.impact));
        }
        lines.push(Line::from(text).yellow());
    }
    if failed.len() > shown {
        lines.push(
            Line::from(format!(
                "⚠ … and {} more probes not attached (see the log)",
                failed.len() - shown
            ))
            .yellow(),
        );
    }
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;

    use crate::{probes::ProbeStatus, tui::testing::*};

    #[test]
    fn empty_view() {
        let mut app = app_with(view(vec![]));
        let s = render(&mut app, 80, 24);
        assert!(
            s[0].contains("hangwatch")
                && s[0].contains("node-7")
                && s[0].contains("6.8.0-51-generic"),
            "{}",
            screen(&s)
        );
        assert!(s[0].contains("up 2m05s"), "{}", screen(&s));
        assert!(s[1].contains("blocked: 0 threads in 0 procs"), "{}", screen(&s));
        assert!(s[1].contains("OOM: 0") && s[1].contains("lost: 0"), "{}", screen(&s));
        assert!(s[1].contains("self: 0.4% 12.0 MiB"), "{}", screen(&s));
        assert!(!screen(&s).contains("PAUSED"));
        assert_ne!(style_of(&mut app, 80, 24, "lost: 0", 6).fg, Some(Color::Red));
    }

    #[test]
    fn lost_events_and_failed_probes_stand_out() {
        let mut v = view(vec![]);
        v.health.kernel.lost_events = 3;
        v.health.probes.push(ProbeStatus {
            name: "oom_mark_victim",
            attached: false,
            reason: Some("tracepoint oom:mark_victim not found".into()),
            impact: "no OOM kills",
        });
        let mut app = app_with(v);
        app.update(crate::live::Update {
            view: std::sync::Arc::new(app.view().clone()),
            dropped_records: 2,
        });
        let s = render(&mut app, 100, 24);
        assert!(s[1].contains("lost: 5"), "{}", screen(&s));
        assert_eq!(style_of(&mut app, 100, 24, "lost: 5", 6).fg, Some(Color::Red));
        assert!(
            s[2].contains(
                "probe oom_mark_victim not attached: tracepoint oom:mark_victim not found"
            ),
            "{}",
            screen(&s)
        );
        assert_eq!(style_of(&mut app, 100, 24, "⚠ probe", 0).fg, Some(Color::Yellow));
    }

    #[test]
    fn paused_is_shown() {
        let mut app = app_with(view(vec![]));
        app.set_paused(true);
        let s = render(&mut app, 80, 24);
        assert!(s[0].contains("PAUSED"), "{}", screen(&s));
    }
}
