//! THE formatters for people: durations, byte sizes, shortened text and timestamps. The human
//! report, the TUI, the syscall decoder's one-line summaries and the findings all call these, so
//! one line never mixes two styles (it did: `timeout=1h0m) for 1h00m`).
//!
//! The style:
//! - durations: `250ms` below a second; `1.3s` (one decimal, truncated) below 10 s; `42s`;
//!   `5m12s`; `2h05m`; `3d4h`. Each is at most two units, the second zero-padded so that
//!   columns line up; precision is what a person needs to compare waits, not the exact value
//!   (the JSON carries exact numbers: `timeout_ms`, `duration_ns`, ...);
//! - bytes: binary units with one decimal, `512 B`, `1.5 KiB`, `84.2 MiB`, and
//!   [`short_bytes`] (`3.2M`, at most 4 characters) where a table column has no room;
//! - shortening: at most `max` characters with `…` marking the cut, keeping the start
//!   ([`shorten`]: names, commands) or the end ([`shorten_tail`]: paths, cgroups, container ids);
//! - time of day: RFC3339 UTC with nanoseconds.

use std::time::SystemTime;

/// RFC3339 UTC with nanoseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// A duration in nanoseconds: "250ms", "1.3s", "42s", "5m12s", "2h05m", "3d4h".
pub fn fmt_duration_ns(ns: u64) -> String {
    fmt_duration_ms(ns / 1_000_000)
}

/// A duration in milliseconds, in the style of [`fmt_duration_ns`].
pub fn fmt_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 10 {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{}.{}s", s, (ms % 1000) / 100);
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

/// "1.0G", "512M", "3.2M", "900B": at most 4 characters (below a PiB), for narrow columns.
pub fn short_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 999.5 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else if v < 9.95 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

/// At most `max` characters, keeping the start and marking the cut with '…'.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// At most `max` characters, keeping the end (container ids, unit names and file names are
/// there) and marking the cut with a leading '…'.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration_ns(0), "0ms");
        assert_eq!(fmt_duration_ns(999_999), "0ms");
        assert_eq!(fmt_duration_ns(250_000_000), "250ms");
        assert_eq!(fmt_duration_ns(1_000_000_000), "1.0s");
        assert_eq!(fmt_duration_ns(1_300_000_000), "1.3s");
        assert_eq!(fmt_duration_ns(9_999_000_000), "9.9s");
        assert_eq!(fmt_duration_ns(10_000_000_000), "10s");
        assert_eq!(fmt_duration_ns(42_000_000_000), "42s");
        assert_eq!(fmt_duration_ns(60_000_000_000), "1m00s");
        assert_eq!(fmt_duration_ns(312_000_000_000), "5m12s");
        assert_eq!(fmt_duration_ns(3_600_000_000_000), "1h00m");
        assert_eq!(fmt_duration_ns(7_500_000_000_000), "2h05m");
        assert_eq!(fmt_duration_ns(3 * 86_400_000_000_000 + 4 * 3_600_000_000_000), "3d4h");
        assert_eq!(fmt_duration_ns(u64::MAX), "213503d23h");
    }

    #[test]
    fn milliseconds_in_the_same_style() {
        assert_eq!(fmt_duration_ms(999), "999ms");
        assert_eq!(fmt_duration_ms(5250), "5.2s");
        assert_eq!(fmt_duration_ms(90_000), "1m30s");
        // The line that showed two styles: `timeout=1h0m) for 1h00m`.
        assert_eq!(fmt_duration_ms(3_600_000), fmt_duration_ns(3_600_000_000_000));
        assert_eq!(fmt_duration_ms(u64::MAX), "213503982334d14h");
        for ms in [0, 1, 999, 1000, 9999, 10_000, 59_999, 60_000, 3_599_999, 86_400_000] {
            assert_eq!(fmt_duration_ms(ms), fmt_duration_ns(ms * 1_000_000), "{ms}");
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(1 << 30), "1.0 GiB");
        assert_eq!(fmt_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn short_byte_sizes() {
        assert_eq!(short_bytes(0), "0B");
        assert_eq!(short_bytes(999), "999B");
        assert_eq!(short_bytes(1000), "1.0K");
        assert_eq!(short_bytes(3_355_443), "3.2M");
        assert_eq!(short_bytes(10_433_331), "9.9M");
        assert_eq!(short_bytes(10 << 20), "10M");
        assert_eq!(short_bytes(512 << 20), "512M");
        assert_eq!(short_bytes(1023 << 20), "1.0G");
        assert_eq!(short_bytes(1 << 30), "1.0G");
        // At most 4 characters below a PiB (there is no larger unit than T).
        for b in (0..50).map(|s| 1u64 << s).chain((0..50).map(|s| (1u64 << s) / 1000 * 999)) {
            assert!(short_bytes(b).len() <= 4, "{b}: {}", short_bytes(b));
        }
    }

    #[test]
    fn shorten_keeps_the_start() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcd…");
        assert_eq!(shorten("ééééééé", 3), "éé…");
        assert_eq!(shorten("abc", 0), "");
        assert_eq!(shorten("", 0), "");
    }

    #[test]
    fn shorten_tail_keeps_the_end() {
        assert_eq!(shorten_tail("pipe:[1]", 40), "pipe:[1]");
        assert_eq!(shorten_tail("abcdefgh", 5), "…efgh");
        assert_eq!(shorten_tail("ééééééé", 3), "…éé");
        assert_eq!(shorten_tail("abc", 0), "");
        let long = format!("/very/long/{}/file.log", "x".repeat(60));
        let s = shorten_tail(&long, 40);
        assert_eq!(s.chars().count(), 40);
        assert!(s.starts_with('…') && s.ends_with("xxx/file.log"), "{s}");
    }

    #[test]
    fn rfc3339_has_nanos() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }
}
