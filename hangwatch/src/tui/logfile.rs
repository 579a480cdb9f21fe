//! The TUI's log file, opened so that no other user can make it a trap.
//!
//! hangwatch runs as root, and one of the places it may log is `/tmp`, where anyone can create
//! the name first. A FIFO there would block `open()` (and the UI) until someone opens the other
//! end; a symlink would point root's appends at any file; a file of another user would be read
//! by that user. [`open_private`] opens without following a symlink and without blocking, then
//! checks with `fstat` on the opened file (no race with the name) that it is a regular file,
//! owned by the effective user, with one link and no group/other write permission. Anything
//! else is refused with the reason, and the caller tries the next place.

use std::{
    fs::File,
    io,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// Opens `path` for appending (created 0600 if missing) if it is a regular file of ours.
pub fn open_private(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ELOOP) => io::Error::new(io::ErrorKind::InvalidInput, "is a symlink"),
                // O_WRONLY|O_NONBLOCK on a FIFO nobody reads.
                Some(libc::ENXIO) => {
                    io::Error::new(io::ErrorKind::InvalidInput, "is not a regular file (a FIFO)")
                }
                _ => e,
            }
        })?;
    let meta = file.metadata()?;
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    if !meta.file_type().is_file() {
        return refuse(format!("is not a regular file ({})", kind(&meta)));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return refuse(format!("is owned by uid {}, not by us (uid {euid})", meta.uid()));
    }
    if meta.nlink() != 1 {
        return refuse(format!("has {} hard links", meta.nlink()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by others (mode {:o})",
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(file)
}

fn kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, time::Instant};

    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("hangwatch-logfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).expect("test dir");
        d
    }

    #[test]
    fn creates_a_private_file_and_appends() {
        let d = dir("new");
        let p = d.join("hangwatch.log");
        open_private(&p).expect("open").write_all(b"a\n").expect("write");
        open_private(&p).expect("reopen").write_all(b"b\n").expect("write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "a\nb\n");
        assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = dir("fifo");
        let p = d.join("hangwatch.log");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
        let t0 = Instant::now();
        let e = open_private(&p).expect_err("a FIFO must be refused");
        assert!(t0.elapsed().as_secs() < 2, "open blocked");
        assert!(e.to_string().contains("a FIFO"), "{e}");
        // With a reader holding the other end the open succeeds; fstat refuses it.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .expect("reader");
        let e = open_private(&p).expect_err("a FIFO with a reader must be refused");
        assert!(t0.elapsed().as_secs() < 2, "open blocked");
        assert!(e.to_string().contains("not a regular file (a FIFO)"), "{e}");
        drop(reader);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let d = dir("symlink");
        let target = d.join("target");
        std::fs::write(&target, "precious\n").expect("target");
        let p = d.join("hangwatch.log");
        std::os::unix::fs::symlink(&target, &p).expect("symlink");
        let e = open_private(&p).expect_err("a symlink must be refused");
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "precious\n");
        // A dangling symlink is not followed to create its target either.
        std::fs::remove_file(&target).expect("rm");
        assert!(open_private(&p).is_err());
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn hard_links_and_shared_files_are_refused() {
        let d = dir("links");
        let a = d.join("a");
        std::fs::write(&a, "").expect("a");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let p = d.join("hangwatch.log");
        std::fs::hard_link(&a, &p).expect("link");
        assert!(open_private(&p).expect_err("2 links").to_string().contains("2 hard links"));
        std::fs::remove_file(&a).expect("rm");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(open_private(&p).expect_err("0666").to_string().contains("writable by others"));
        // Owned by another user (needs root to chown).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            std::os::unix::fs::chown(&p, Some(65534), None).expect("chown");
            assert!(open_private(&p).expect_err("not ours").to_string().contains("owned by uid"));
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
