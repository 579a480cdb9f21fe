//! Bounded, streaming reads of /proc/PID/maps.
//!
//! A process controls how many mappings it has (up to `vm.max_map_count`, 65,530 by default)
//! and the names of the files it maps (up to PATH_MAX each): its maps file can be hundreds of
//! megabytes. It is read line by line through one fixed buffer, never held whole, and never
//! past [`MAX_MAPS_LINES`] lines or [`MAX_MAPS_BYTES`] bytes; the kernel formats maps lazily,
//! so lines not read are never generated. Only the fields asked for are kept.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
};

use crate::model::facts::Mapping;

/// Most lines of one process's maps read (the default `vm.max_map_count` is 65,530).
pub const MAX_MAPS_LINES: usize = 65_536;
/// Most bytes of one process's maps read (a line is at most ~4.2 KiB: a PATH_MAX path).
pub const MAX_MAPS_BYTES: u64 = 16 * 1024 * 1024;
/// Longest line kept; longer lines (never written by the kernel) are skipped.
const MAX_LINE: usize = 8 * 1024;

/// One maps line, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub shared: bool,
    pub offset: u64,
    pub dev: &'a str,
    pub inode: u64,
    pub path: &'a str,
}

impl MapsLine<'_> {
    pub fn to_mapping(self) -> Mapping {
        Mapping {
            start: self.start,
            end: self.end,
            shared: self.shared,
            offset: self.offset,
            dev: self.dev.to_string(),
            inode: self.inode,
            path: self.path.to_string(),
        }
    }
}

/// `7f..-7f.. rw-s 00000000 00:05 1234   /dev/shm/sem.x (deleted)`, without allocating.
pub fn parse_line(l: &str) -> Option<MapsLine<'_>> {
    let l = l.strip_suffix('\n').unwrap_or(l);
    let mut it = l.splitn(6, ' ');
    let (range, perms, offset, dev, inode) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    let path = it.next().unwrap_or("").trim();
    let (start, end) = range.split_once('-')?;
    Some(MapsLine {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        shared: perms.as_bytes().get(3) == Some(&b's'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev,
        inode: inode.parse().ok()?,
        path,
    })
}

/// How a bounded walk of a maps file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Walk {
    pub lines: usize,
    /// Stopped at [`MAX_MAPS_LINES`] or [`MAX_MAPS_BYTES`] with more left.
    pub truncated: bool,
}

/// Calls `f` on each parsed line of `r` until it returns `false`, the input ends, or a bound
/// is reached. Memory: one buffer of at most [`MAX_LINE`] bytes.
pub fn walk<R: Read>(
    r: R,
    max_lines: usize,
    max_bytes: u64,
    mut f: impl FnMut(&MapsLine<'_>) -> bool,
) -> io::Result<Walk> {
    let mut r = BufReader::with_capacity(64 * 1024, r.take(max_bytes));
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut w = Walk::default();
    loop {
        if w.lines >= max_lines {
            w.truncated = !r.fill_buf()?.is_empty();
            return Ok(w);
        }
        buf.clear();
        let n = (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf)?;
        if n == 0 {
            // The byte bound: more is left if the underlying file has more.
            w.truncated = r.get_mut().limit() == 0 && !r.get_mut().get_mut().fill_buf_probe()?;
            return Ok(w);
        }
        if buf.last() != Some(&b'\n') && buf.len() < MAX_LINE && r.get_ref().limit() == 0 {
            // Cut by the byte bound in the middle of a line: its fields may be cut too.
            w.truncated = true;
            return Ok(w);
        }
        if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE {
            // Overlong: skip to its end.
            skip_line(&mut r)?;
            w.lines += 1;
            continue;
        }
        w.lines += 1;
        let Ok(s) = std::str::from_utf8(&buf) else {
            // A non-UTF-8 path: the fields before it are ASCII; keep them, drop the path.
            let lossy = String::from_utf8_lossy(&buf).into_owned();
            if let Some(l) = parse_line(&lossy)
                && !f(&l)
            {
                return Ok(w);
            }
            continue;
        };
        if let Some(l) = parse_line(s)
            && !f(&l)
        {
            return Ok(w);
        }
    }
}

fn skip_line<R: BufRead>(r: &mut R) -> io::Result<()> {
    loop {
        let (done, used) = {
            let b = r.fill_buf()?;
            if b.is_empty() {
                return Ok(());
            }
            match b.iter().position(|&c| c == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, b.len()),
            }
        };
        r.consume(used);
        if done {
            return Ok(());
        }
    }
}

/// Whether a reader has at least one more byte (consumes at most one byte; only used once the
/// walk is over).
trait Probe {
    fn fill_buf_probe(&mut self) -> io::Result<bool>;
}

impl<R: Read> Probe for R {
    fn fill_buf_probe(&mut self) -> io::Result<bool> {
        let mut one = [0u8; 1];
        loop {
            match self.read(&mut one) {
                Ok(n) => return Ok(n == 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn open(pid: i32) -> io::Result<File> {
    File::open(format!("/proc/{pid}/maps"))
}

/// The mapping of `pid` that contains `addr` (maps are sorted by address: the walk stops at
/// the first mapping past it). `Err` when maps cannot be read; `Ok((None, walk))` when no
/// mapping contains it within the bounds (`walk.truncated` says whether the search was cut).
pub fn find(pid: i32, addr: u64) -> io::Result<(Option<Mapping>, Walk)> {
    let mut found = None;
    let w = walk(open(pid)?, MAX_MAPS_LINES, MAX_MAPS_BYTES, |m| {
        if m.start <= addr && addr < m.end {
            found = Some(m.to_mapping());
            return false;
        }
        m.start <= addr
    })?;
    Ok((found, w))
}

/// Calls `f(dev, inode)` for every shared mapping of `pid`, within the bounds.
pub fn shared_objects(pid: i32, mut f: impl FnMut(&str, u64)) -> io::Result<Walk> {
    walk(open(pid)?, MAX_MAPS_LINES, MAX_MAPS_BYTES, |m| {
        if m.shared && m.inode != 0 {
            f(m.dev, m.inode);
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, path_len: usize) -> String {
        let path = format!("/{}", "p".repeat(path_len));
        (0..n)
            .map(|i| {
                let s = 0x7f00_0000_0000u64 + (i as u64) * 0x2000;
                format!("{s:x}-{:x} rw-s 00000000 00:1a {} {path}\n", s + 0x1000, 100 + i)
            })
            .collect()
    }

    #[test]
    fn parses_borrowed_fields() {
        let l = parse_line("7f1000000000-7f1000001000 rw-s 00001000 00:1a 4242   /dev/shm/x y\n")
            .unwrap();
        assert_eq!(
            (l.start, l.end, l.offset, l.inode),
            (0x7f1000000000, 0x7f1000001000, 0x1000, 4242)
        );
        assert!(l.shared);
        assert_eq!((l.dev, l.path), ("00:1a", "/dev/shm/x y"));
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("").is_none());
        assert!(parse_line("zz-1 rw-p 0 00:00 0").is_none());
    }

    #[test]
    fn walk_stops_at_the_line_bound_and_says_so() {
        let t = text(100, 10);
        let mut seen = 0;
        let w = walk(t.as_bytes(), 30, u64::MAX, |_| {
            seen += 1;
            true
        })
        .unwrap();
        assert_eq!((seen, w.lines, w.truncated), (30, 30, true));
        let w = walk(t.as_bytes(), 100, u64::MAX, |_| true).unwrap();
        assert_eq!((w.lines, w.truncated), (100, false));
    }

    #[test]
    fn walk_stops_at_the_byte_bound_and_says_so() {
        let t = text(100, 4000);
        let mut seen = 0;
        let w = walk(t.as_bytes(), usize::MAX, 10 * 4096, |_| {
            seen += 1;
            true
        })
        .unwrap();
        assert!(w.truncated);
        assert!(seen <= 10, "{seen} lines within 40 KiB of 4 KiB lines");
        let exact = t.len() as u64;
        let w = walk(t.as_bytes(), usize::MAX, exact, |_| true).unwrap();
        assert_eq!((w.lines, w.truncated), (100, false));
    }

    #[test]
    fn overlong_broken_and_non_utf8_lines() {
        let mut t = format!("1000-2000 rw-s 0 00:01 5 /{}\n", "x".repeat(MAX_LINE * 3));
        t.push_str("no newline at all and then\n");
        let mut b = t.into_bytes();
        b.extend_from_slice(b"3000-4000 rw-s 00000000 00:01 6 /a\xffb\n");
        b.extend_from_slice(b"5000-6000 rw-s 00000000 00:01 7 /last");
        let mut got = Vec::new();
        let w = walk(&b[..], usize::MAX, u64::MAX, |m| {
            got.push(m.inode);
            true
        })
        .unwrap();
        assert_eq!(got, vec![6, 7], "the overlong line and the garbage are skipped");
        assert_eq!((w.lines, w.truncated), (4, false));
    }

    #[test]
    fn finds_own_mapping_and_stops_early() {
        #[allow(clippy::useless_vec, reason = "the test needs a heap allocation")]
        let v = vec![1u8; 10];
        let (m, w) = find(std::process::id() as i32, v.as_ptr() as u64).unwrap();
        let m = m.expect("the heap is mapped");
        assert!(m.start <= v.as_ptr() as u64 && (v.as_ptr() as u64) < m.end);
        assert!(!w.truncated);
        let (none, _) = find(std::process::id() as i32, 0x10).unwrap();
        assert!(none.is_none(), "page 0 is never mapped");
        assert!(find(i32::MAX, 0x10).is_err());
    }
}
