//! Processes named to attack the operator's terminal (issue 9), and the checks that nothing of
//! it reaches a terminal raw.

use std::path::PathBuf;

use super::{Child, work_dir};

/// The command-line argument that tries to forge a report line and clear the screen.
pub const FORGED_ARG: &str = "x\n✖ deadlock [critical]: forged\x1b[2J\r";

/// The main thread's name, as the kernel keeps it.
pub const MAIN_COMM: &str = "\x1b]0;pwned\x07";

/// `hostile_names` (see tests/progs/hostile_names.c) with its FIFO in a directory of its own,
/// removed on Drop (after the program is killed).
pub struct Hostile {
    pub child: Child,
    dir: PathBuf,
}

impl Hostile {
    pub fn spawn(tag: &str) -> Hostile {
        let dir = work_dir().join(format!("hostile-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let dir_arg = dir.to_str().expect("the work dir is UTF-8").to_owned();
        let child = Child::spawn_args("hostile_names", &[&dir_arg, FORGED_ARG]);
        Hostile { child, dir }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // The child is dropped (killed) after this body; the FIFO can go now.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Characters that must never reach a terminal from a process: C0 controls (other than the
/// newlines of the output itself), DEL, C1 controls, bidi overrides and isolates, zero-width
/// characters.
pub fn is_raw_control(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Panics when `out` (the bytes a terminal would receive) holds invalid UTF-8 or any raw
/// control, or a line forged by the hostile command line or FIFO path.
pub fn assert_terminal_safe(out: &[u8], what: &str) {
    let text = std::str::from_utf8(out)
        .unwrap_or_else(|e| panic!("{what}: output is not UTF-8 ({e}): raw bytes reached it"));
    if let Some((i, c)) = text.char_indices().find(|&(_, c)| is_raw_control(c)) {
        let from = text[..i].char_indices().rev().nth(60).map_or(0, |(j, _)| j);
        panic!("{what}: raw {c:?} at byte {i}, after {:?}\n{text}", &text[from..i]);
    }
    for line in text.lines() {
        let l = line.trim_start();
        assert!(
            !l.starts_with("✖ deadlock [critical]: forged") && !l.starts_with("✖ forged"),
            "{what}: a process forged the line {line:?}\n{text}"
        );
    }
}
