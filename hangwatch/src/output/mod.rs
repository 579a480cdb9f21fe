//! Rendering reports: the JSON wire format and the human report. Both only read the model.

pub mod human;
pub mod json;

use std::time::SystemTime;

/// RFC3339 UTC with nanoseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// "5m12s", "1.3s", "2h05m", "3d4h": short and readable.
pub fn fmt_duration_ns(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    if s < 10 {
        let ms = ns / 1_000_000;
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{}.{}s", ms / 1000, (ms % 1000) / 100);
    }
    if s < 60 {
        return format!("{s}s");
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    if s < 86_400 {
        return format!("{}h{:02}m", s / 3600, (s % 3600) / 60);
    }
    format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
}

/// "512 B", "1.5 KiB", "84.2 MiB", "1.0 GiB".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Shortens to at most `max` characters, keeping the start and marking the cut with '…'.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration_ns(250_000_000), "250ms");
        assert_eq!(fmt_duration_ns(1_300_000_000), "1.3s");
        assert_eq!(fmt_duration_ns(42_000_000_000), "42s");
        assert_eq!(fmt_duration_ns(312_000_000_000), "5m12s");
        assert_eq!(fmt_duration_ns(7_500_000_000_000), "2h05m");
        assert_eq!(fmt_duration_ns(3 * 86_400_000_000_000 + 4 * 3_600_000_000_000), "3d4h");
    }

    #[test]
    fn bytes() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(1 << 30), "1.0 GiB");
    }

    #[test]
    fn shorten_keeps_short() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcd…");
        assert_eq!(shorten("ééééééé", 3), "éé…");
    }

    #[test]
    fn rfc3339_has_nanos() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }
}
