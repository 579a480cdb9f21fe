//! Kernel stacks: `/proc/PID/task/TID/stack` (root only; CAP_SYS_ADMIN since Linux 4.2).

use std::{io::ErrorKind, path::Path};

/// Most bytes of a kernel stack file read (the kernel prints at most 64 frames, ~4 KiB).
pub const MAX_KERNEL_STACK_BYTES: usize = 16 * 1024;

/// The kernel stack of a thread, innermost first, or why it could not be read.
pub fn read(pid: i32, tid: i32) -> Result<Vec<String>, String> {
    let path = format!("/proc/{pid}/task/{tid}/stack");
    let f = std::fs::File::open(Path::new(&path)).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => "kernel stack: needs root (CAP_SYS_ADMIN)".to_string(),
        ErrorKind::NotFound => "kernel stack: thread gone".to_string(),
        _ => format!("kernel stack: {e}"),
    })?;
    let (b, _) = crate::procfs::read_bounded_from(f, MAX_KERNEL_STACK_BYTES).map_err(|e| {
        if e.kind() == ErrorKind::PermissionDenied {
            "kernel stack: needs root (CAP_SYS_ADMIN)".to_string()
        } else {
            format!("kernel stack: {e}")
        }
    })?;
    Ok(parse(&String::from_utf8_lossy(&b)))
}

/// `[<0>] futex_wait_queue+0x60/0x90` lines to `futex_wait_queue+0x60/0x90`.
pub fn parse(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| match l.split_once("] ") {
            Some((pre, rest)) if pre.starts_with("[<") => rest.trim().to_string(),
            _ => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_kernel_stack() {
        let s = "[<0>] futex_wait_queue+0x60/0x90\n[<0>] __futex_wait+0x8a/0x120\n\n";
        assert_eq!(super::parse(s), vec!["futex_wait_queue+0x60/0x90", "__futex_wait+0x8a/0x120"]);
    }
}
