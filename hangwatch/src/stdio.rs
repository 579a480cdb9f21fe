//! Standard streams and file descriptors: what hangwatch does when they are missing, closed,
//! full or scarce (docs/snapshot.md, "Exit codes").

use std::io;

/// Whether `fd` is open.
fn is_open(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table; any fd number is valid to ask about.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Makes sure fds 0, 1 and 2 are open, pointing a closed one at /dev/null, so that no file,
/// socket or BPF object hangwatch opens later lands on them (a report written into a BPF map's
/// fd, a log line into a /proc file). Returns whether stdout was closed when hangwatch started.
pub fn ensure_standard_fds() -> bool {
    let stdout_closed = !is_open(libc::STDOUT_FILENO);
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if is_open(fd) {
            continue;
        }
        // SAFETY: the path is a valid C string; open returns the lowest free fd, which is `fd`
        // when the lower ones are open (they are, in this order).
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got >= 0 && got != fd {
            // SAFETY: both fds are ours; dup2 then close the extra one.
            unsafe {
                libc::dup2(got, fd);
                libc::close(got);
            }
        }
    }
    stdout_closed
}

/// The I/O error kind an error carries, looking through anyhow's chain and serde_json's
/// wrapping of the writer's error (a pipe that breaks inside the serializer).
pub fn io_error_kind(e: &anyhow::Error) -> Option<io::ErrorKind> {
    e.chain().find_map(|c| {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        if let Some(StdoutError(io)) = c.downcast_ref::<StdoutError>() {
            return Some(io.kind());
        }
        c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind)
    })
}

/// Whether the error is the reader of stdout having gone away (`| head`): a normal end.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    io_error_kind(e) == Some(io::ErrorKind::BrokenPipe)
}

/// A write to stdout failed (a full disk, an I/O error).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the output to stdout: {0}")]
pub struct StdoutError(pub io::Error);

/// Runs `f`, which writes to stdout, and names stdout in what fails (serde_json's error is
/// turned back into the writer's I/O error).
pub fn writing_stdout<T>(
    f: impl FnOnce() -> Result<T, Box<dyn std::error::Error + Send + Sync>>,
) -> anyhow::Result<T> {
    f().map_err(|e| match e.downcast::<serde_json::Error>() {
        Ok(j) if j.io_error_kind().is_some() => StdoutError(io::Error::from(*j)).into(),
        Ok(j) => anyhow::Error::from(*j),
        Err(e) => match e.downcast::<io::Error>() {
            Ok(io) => StdoutError(*io).into(),
            Err(e) => anyhow::anyhow!("{e}"),
        },
    })
}

/// The least RLIMIT_NOFILE hangwatch runs with: about 25 fds are held in live mode (probes,
/// maps, the ring buffer, the runtime), plus one or two at a time for /proc and netlink reads.
pub const MIN_OPEN_FILES: u64 = 64;

/// Raises the soft limit on open files to the hard limit (what the kernel lets any process
/// do), and fails with a line naming the limit when even the hard limit is below
/// [`MIN_OPEN_FILES`]: running out of fds mid-way would lose probes and /proc reads one by one.
pub fn ensure_open_file_limit() -> Result<(), crate::error::Error> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given, a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    if lim.rlim_cur < MIN_OPEN_FILES {
        return Err(crate::error::Error::Resource(format!(
            "the open-file limit (RLIMIT_NOFILE) is {} and hangwatch needs at least {MIN_OPEN_FILES}, or it fails with \"too many open files\": raise it (ulimit -n 1024, LimitNOFILE= in a systemd unit, docker run --ulimit nofile=1024)",
            lim.rlim_cur
        )));
    }
    Ok(())
}

/// The message for an error, with "too many open files" spelled out wherever EMFILE/ENFILE is
/// somewhere in its chain (aya and others keep the OS error in a source, not in the text).
pub fn describe(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let lower = text.to_lowercase();
    let emfile = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .is_some_and(|n| n == libc::EMFILE || n == libc::ENFILE)
    });
    if emfile && !lower.contains("too many open files") {
        format!("{text}: too many open files (raise RLIMIT_NOFILE: ulimit -n 1024)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_inside_serde_json_is_recognised() {
        struct Broken;
        impl io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let r = writing_stdout(|| Ok(serde_json::to_writer(Broken, &vec![1, 2, 3])?));
        let e = r.expect_err("the write fails");
        assert!(is_broken_pipe(&e), "{e:#}");
        // The same error without the wrapper, straight from serde_json.
        let raw = serde_json::to_writer(Broken, &1).expect_err("fails");
        assert!(is_broken_pipe(&anyhow::Error::from(raw)));
    }

    #[test]
    fn full_disk_names_stdout() {
        let r: anyhow::Result<()> =
            writing_stdout(|| Err(io::Error::from_raw_os_error(libc::ENOSPC).into()));
        let e = r.expect_err("fails");
        assert!(!is_broken_pipe(&e));
        let text = describe(&e);
        assert!(text.contains("stdout") && text.contains("No space left"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn emfile_is_spelled_out() {
        let e = anyhow::Error::from(io::Error::from_raw_os_error(libc::EMFILE))
            .context("map error: failed to create map `STATS`");
        assert!(describe(&e).to_lowercase().contains("too many open files"), "{}", describe(&e));
    }
}
