//! Terminal safety: the one place where text a process controls is made safe to show.
//!
//! A process chooses its name, its command line, the paths it opens, its cgroup name (inside a
//! container) and, through its name, what the kernel log says about it when it is OOM-killed.
//! Findings and decoded waits embed all of these. Before any of it reaches a terminal (the human
//! report, the TUI) it goes through [`field`] (or [`report`] for a whole report), which:
//!
//! * shows newline, carriage return and tab as `\n`, `\r`, `\t`;
//! * shows the other C0 controls and DEL as `\x1b`-style escapes and the C1 controls
//!   (U+0080-U+009F, which some terminals take as CSI/OSC introducers) as `\u{9b}`;
//! * shows bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069), zero-width and other
//!   invisible format characters (U+200B-U+200F, U+2028/U+2029, U+FEFF, U+00AD, U+061C, ...),
//!   combining marks and unassigned code points as `\u{202e}`: shown, never applied;
//! * bounds each field to a number of terminal columns *while* escaping, so that a 2 MB
//!   command line costs what is shown, not what was read.
//!
//! Invalid UTF-8 never gets this far: /proc and kernel text is decoded with
//! `String::from_utf8_lossy` when read, so an invalid byte is already U+FFFD, a visible `�`.
//! Backslashes are shown as they are (a name may contain the text `\x1b`; the escape of a real
//! ESC byte looks the same, but it is only text).
//!
//! Which characters are invisible comes from the standard library's own tables
//! (`char::escape_debug`, the ones `{:?}` uses) plus an explicit list, so that no hand-kept
//! Unicode table is needed; display width comes from `unicode-width`, the crate ratatui uses.
//! No crate does "escape visibly and bound by width" (crates like `strip-ansi-escapes` remove
//! sequences, which hides that a name was hostile), hence this module.
//!
//! JSON output carries every name exactly as read (the same string once decoded), written by
//! [`json_to_writer`]: serde escapes the C0 controls, and its formatter here also writes DEL,
//! C1, bidi and invisible characters as `\uXXXX`, so that JSON printed on a terminal is as safe
//! as the report (see docs/json.md and docs/security.md).

use std::{borrow::Cow, fmt::Write as _};

use unicode_width::UnicodeWidthChar as _;

/// The columns a field gets when its caller has no tighter layout bound: enough for any real
/// path or cgroup, small enough that no field can flood a screen.
pub const FIELD_COLS: usize = 512;

/// Format characters that must never be applied, whatever the standard library's tables say.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00ad}', '\u{00ad}'),   // soft hyphen
    ('\u{061c}', '\u{061c}'),   // arabic letter mark
    ('\u{115f}', '\u{1160}'),   // hangul fillers (blank but wide)
    ('\u{180e}', '\u{180e}'),   // mongolian vowel separator
    ('\u{200b}', '\u{200f}'),   // zero-width space/joiners, LRM, RLM
    ('\u{2028}', '\u{202e}'),   // line/paragraph separators, bidi embeddings and overrides
    ('\u{2060}', '\u{206f}'),   // word joiner, invisible operators, bidi isolates, deprecated
    ('\u{3164}', '\u{3164}'),   // hangul filler
    ('\u{fe00}', '\u{fe0f}'),   // variation selectors
    ('\u{feff}', '\u{feff}'),   // zero-width no-break space / BOM
    ('\u{ffa0}', '\u{ffa0}'),   // halfwidth hangul filler
    ('\u{fff9}', '\u{fffb}'),   // interlinear annotation
    ('\u{e0000}', '\u{e007f}'), // tags
];

/// True when `c` must be shown as an escape rather than written to a terminal.
pub fn is_unsafe(c: char) -> bool {
    if (' '..='~').contains(&c) {
        return false;
    }
    if c.is_control() {
        return true;
    }
    if INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
        return true;
    }
    // `escape_debug` leaves printable characters alone and escapes the rest (format,
    // unassigned, private-use-less separators, grapheme extenders) as `\u{..}`. Quotes and the
    // backslash are its only other escapes, and they are printable.
    !matches!(c, '"' | '\'' | '\\') && c.escape_debug().len() > 1
}

/// True when some character of `s` would be escaped.
pub fn needs_escape(s: &str) -> bool {
    // Most names and paths are printable ASCII: one byte compare each.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return false;
    }
    s.chars().any(is_unsafe)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// The columns `c` takes once shown (its escape's length when it is escaped).
fn cols(c: char) -> usize {
    if is_unsafe(c) {
        let mut s = String::new();
        push_escaped(&mut s, c);
        s.len()
    } else {
        c.width().unwrap_or(1)
    }
}

/// `s` made safe for a terminal and bounded to `max_cols` columns (the cut marked with `…`).
/// Borrows when nothing needed doing. Costs at most `max_cols` characters of work past what
/// fits, whatever the length of `s`.
pub fn field(s: &str, max_cols: usize) -> Cow<'_, str> {
    let mut used = 0;
    let mut clean_upto = None;
    for (i, c) in s.char_indices() {
        if is_unsafe(c) {
            clean_upto = Some(i);
            break;
        }
        used += c.width().unwrap_or(1);
        if used > max_cols {
            clean_upto = Some(i);
            break;
        }
    }
    let Some(start) = clean_upto else { return Cow::Borrowed(s) };
    // Slow path: rebuild from the start, escaping and counting columns.
    let mut out = String::with_capacity(start + 16);
    let mut used = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let w = cols(c);
        // Keep one column for the '…' unless this is the last character.
        let room = if chars.peek().is_some() { max_cols.saturating_sub(1) } else { max_cols };
        if used + w > room {
            out.push('…');
            return Cow::Owned(out);
        }
        used += w;
        if is_unsafe(c) { push_escaped(&mut out, c) } else { out.push(c) }
    }
    Cow::Owned(out)
}

/// [`field`] with the default bound, [`FIELD_COLS`].
pub fn term(s: &str) -> Cow<'_, str> {
    field(s, FIELD_COLS)
}

/// A whole rendered report: every unsafe character escaped except the newlines that separate
/// its lines. The last line of defence behind [`field`]: a field that a renderer forgot to
/// escape can still add no control sequence, only (at worst) a line.
pub fn report(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) { push_escaped(&mut out, c) } else { out.push(c) }
    }
    Cow::Owned(out)
}

/// Escapes `s` in place (bounded to `max_cols`), allocating only when something changes.
pub fn in_place(s: &mut String, max_cols: usize) {
    if let Cow::Owned(o) = field(s, max_cols) {
        *s = o;
    }
}

/// A `serde_json` formatter that also writes DEL, the C1 controls, bidi and invisible format
/// characters as `\uXXXX` escapes (serde escapes only C0, `\"` and `\\`). The JSON decodes to
/// exactly the same strings; only its bytes change, so that `hangwatch --json` printed on a
/// terminal cannot drive it either.
struct TerminalSafeJson;

impl serde_json::ser::Formatter for TerminalSafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{:04x}", u)?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// `serde_json::to_writer` with [`TerminalSafeJson`]: compact JSON, one value.
pub fn json_to_writer<W: std::io::Write, T: ?Sized + serde::Serialize>(
    w: W,
    value: &T,
) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(w, TerminalSafeJson))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_same_value_but_terminal_safe() {
        let hostile = "\x1b]0;pwned\x07\u{9b}2J\u{202e}x\u{7f}\u{e0041}\n\"q\"\\ é 日本";
        let mut out = Vec::new();
        json_to_writer(&mut out, &serde_json::json!({ "comm": hostile, "n": 1 })).expect("json");
        let text = std::str::from_utf8(&out).expect("utf-8");
        assert!(!text.chars().any(is_unsafe), "{text}");
        assert!(text.contains("\\u009b2J\\u202ex\\u007f\\udb40\\udc41"), "{text}");
        assert!(text.contains("é 日本"), "{text}");
        let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(back["comm"], hostile);
        // Plain strings are written as serde writes them.
        let mut plain = Vec::new();
        json_to_writer(&mut plain, &serde_json::json!(["a b", "é"])).expect("json");
        assert_eq!(plain, serde_json::to_vec(&serde_json::json!(["a b", "é"])).expect("json"));
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["python3 job.py --input data.csv", "/system.slice/a.service", "日本語", "é", ""]
        {
            assert!(matches!(field(s, 100), Cow::Borrowed(_)), "{s}");
            assert_eq!(field(s, 100), s);
        }
        assert_eq!(field("a \"q\" 'x' \\y", 100), "a \"q\" 'x' \\y");
    }

    #[test]
    fn c0_del_and_c1_controls_are_escaped() {
        assert_eq!(field("\x1b]0;pwned\x07", 100), "\\x1b]0;pwned\\x07");
        assert_eq!(field("\x1b[2J\x1b[31m", 100), "\\x1b[2J\\x1b[31m");
        assert_eq!(field("a\rb\tc\0d\x7f", 100), "a\\rb\\tc\\x00d\\x7f");
        // C1: CSI (U+009B) and OSC (U+009D) introducers in 8-bit terminals.
        assert_eq!(field("\u{9b}2J\u{9d}0;x\u{9c}", 100), "\\u{9b}2J\\u{9d}0;x\\u{9c}");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            let s = field(&c.to_string(), 100).into_owned();
            assert!(s.starts_with('\\') && !s.chars().any(|c| c.is_control()), "{c:?}: {s}");
        }
    }

    #[test]
    fn newlines_cannot_forge_lines() {
        let s = field("sleep 1\n✖ deadlock [critical]: pid 1 (init)", 100);
        assert_eq!(s, "sleep 1\\n✖ deadlock [critical]: pid 1 (init)");
        assert!(!s.contains('\n'));
        assert_eq!(field("\u{2028}x\u{2029}", 100), "\\u{2028}x\\u{2029}");
    }

    #[test]
    fn bidi_and_invisible_format_chars_are_shown_not_applied() {
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(field(&format!("a{c}b"), 100), format!("a\\u{{{:x}}}b", c as u32));
        }
        for c in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{feff}'] {
            assert!(field(&c.to_string(), 100).starts_with("\\u{"), "{c:?}");
        }
        for c in ['\u{ad}', '\u{61c}', '\u{2060}', '\u{fe0f}', '\u{e0041}', '\u{3164}'] {
            assert!(is_unsafe(c), "{c:?}");
        }
        // "evil\u{202e}gpj.exe" would read "evilexe.jpg".
        assert_eq!(field("evil\u{202e}gpj.exe", 100), "evil\\u{202e}gpj.exe");
        // Unassigned code points have no known width: escaped too.
        assert!(is_unsafe('\u{0378}'));
    }

    #[test]
    fn invalid_utf8_is_already_a_visible_replacement_char() {
        let s = String::from_utf8_lossy(b"a\xffb");
        assert_eq!(field(&s, 100), "a\u{fffd}b");
        assert!(!is_unsafe('\u{fffd}'));
    }

    #[test]
    fn bounded_by_columns_not_bytes() {
        assert_eq!(field("abcdefgh", 5), "abcd…");
        assert_eq!(field("abcde", 5), "abcde");
        // Wide characters take two columns each.
        assert_eq!(field("日本語日本語", 5), "日本…");
        // An escape counts as what it shows.
        assert_eq!(field("\x1b\x1b\x1b", 9), "\\x1b\\x1b…");
        assert_eq!(field("\x1b\x1b", 8), "\\x1b\\x1b");
        assert_eq!(field("\x1b", 0), "…");
        // A huge field costs what is shown.
        let huge = "\x07".repeat(2_000_000);
        let s = field(&huge, 40);
        assert!(s.chars().count() <= 40 && s.ends_with('…'), "{s}");
        let huge = "a".repeat(2_000_000) + "\x1b";
        assert_eq!(field(&huge, 3), "aa…");
    }

    #[test]
    fn report_keeps_its_own_newlines_only() {
        assert!(matches!(report("a\nb\n"), Cow::Borrowed(_)));
        assert_eq!(report("a\x1b[2J\nb\r\n"), "a\\x1b[2J\nb\\r\n");
    }

    #[test]
    fn in_place_rewrites_only_unsafe() {
        let mut s = String::from("ok");
        in_place(&mut s, 10);
        assert_eq!(s, "ok");
        let mut s = String::from("x\x1by");
        in_place(&mut s, 10);
        assert_eq!(s, "x\\x1by");
    }
}
