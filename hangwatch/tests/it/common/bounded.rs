//! Measuring what one hangwatch run costs: its peak RSS (from `wait4`'s rusage of exactly
//! that child) and its output size.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{RUN_TIMEOUT, hangwatch_bin};

/// One hangwatch run with its peak resident set.
pub struct Measured {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// `ru_maxrss` of the hangwatch process, KiB.
    pub max_rss_kib: u64,
}

impl Measured {
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}, peak RSS {} KiB, {} bytes of stdout\n--- stderr ---\n{}",
            self.code,
            self.max_rss_kib,
            self.stdout.len(),
            self.stderr
        )
    }
}

/// Runs hangwatch with `args` to completion (killed after [`RUN_TIMEOUT`]) and reaps it with
/// `wait4`, which gives the resource usage of that one process.
pub fn run_measured(args: &[&str]) -> Measured {
    let mut cmd = Command::new(hangwatch_bin());
    cmd.args(args).env_remove("RUST_LOG");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[allow(clippy::zombie_processes, reason = "reaped by wait4 below, which gives its rusage")]
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start hangwatch {args:?}: {e}"));
    let pid = i32::try_from(child.id()).expect("pid fits in i32");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let t0 = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child; status and ru are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4({pid}): {}", std::io::Error::last_os_error());
        if t0.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            panic!("hangwatch {args:?} did not finish within {RUN_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measured {
        code,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
    }
}
