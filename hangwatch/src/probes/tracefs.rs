//! tracefs: mounted when missing (classic tracepoints need it to look up their ids), and the
//! field layout of a classic tracepoint's record, read from its `format` file.

use std::path::Path;

use log::debug;

use crate::procfs;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes sure tracefs is mounted (classic tracepoints need it to look up their ids).
pub fn ensure_tracefs() -> Result<(), String> {
    if Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (src, target, fstype) = (c("nodev"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc =
        unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        debug!("mounted tracefs at {TRACEFS}");
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            " (mounting needs CAP_SYS_ADMIN; or mount it beforehand: mount -t tracefs nodev /sys/kernel/tracing)"
        } else {
            ""
        };
        Err(format!("tracefs is not mounted and cannot be mounted at {TRACEFS}: {e}{hint}"))
    }
}

pub(super) fn tracefs_dir() -> &'static str {
    if Path::new(TRACEFS).join("events").is_dir() { TRACEFS } else { "/sys/kernel/debug/tracing" }
}

/// Field layout of a classic tracepoint, from tracefs `format`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracepointFormat {
    pub fields: Vec<TpField>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TpField {
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    pub data_loc: bool,
}

impl TracepointFormat {
    pub fn parse(text: &str) -> Self {
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else { continue };
            let mut decl = "";
            let (mut offset, mut size, mut signed) = (None, None, false);
            for (i, part) in rest.split(';').enumerate() {
                let part = part.trim();
                if i == 0 {
                    decl = part;
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("signed:") {
                    signed = v == "1";
                }
            }
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .unwrap_or("")
                .split('[')
                .next()
                .unwrap_or("")
                .to_string();
            if let (Some(offset), Some(size)) = (offset, size) {
                fields.push(TpField {
                    name,
                    offset,
                    size,
                    signed,
                    data_loc: decl.starts_with("__data_loc"),
                });
            }
        }
        TracepointFormat { fields }
    }

    pub fn field(&self, name: &str) -> Option<&TpField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Reads an integer field (sign-extended when signed).
    pub fn int(&self, raw: &[u8], name: &str) -> Option<i64> {
        let f = self.field(name)?;
        let b = raw.get(f.offset..f.offset.checked_add(f.size)?)?;
        Some(match (f.size, f.signed) {
            (1, true) => b[0] as i8 as i64,
            (1, false) => b[0] as i64,
            (2, true) => i16::from_le_bytes([b[0], b[1]]) as i64,
            (2, false) => u16::from_le_bytes([b[0], b[1]]) as i64,
            (4, true) => i32::from_le_bytes(b.try_into().ok()?) as i64,
            (4, false) => u32::from_le_bytes(b.try_into().ok()?) as i64,
            (8, _) => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// Reads a `__data_loc char[]` string field.
    pub fn string(&self, raw: &[u8], name: &str) -> Option<String> {
        let f = self.field(name)?;
        if !f.data_loc {
            let b = raw.get(f.offset..f.offset.checked_add(f.size)?)?;
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            return Some(procfs::lossy(&b[..end]));
        }
        let loc = u32::from_le_bytes(raw.get(f.offset..f.offset.checked_add(4)?)?.try_into().ok()?);
        let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        let b = raw.get(off..(off + len).min(raw.len()))?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(procfs::lossy(&b[..end]))
    }
}
