//! hangwatch in live mode (`--json`), its output read as it is written, sampled from /proc.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Read},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value as Json;

use super::{OOM_COMM, Sample, signal};
use crate::{
    Ctx,
    bench::{proc_rss, stat_cpu_ticks, wait_timeout},
};

// ------------------------------------------------------------------------------- hangwatch

/// What hangwatch's output said, read as it is written (no file grows during a long soak).
#[derive(Default)]
pub(super) struct Seen {
    pub(super) types: BTreeMap<String, u64>,
    pub(super) oom_kills: u64,
    lost: u64,
    tracked: u64,
    /// Lines that were not a JSON object with a `type`: hangwatch's output must always be valid.
    bad_lines: u64,
}

pub(super) struct Live {
    child: Child,
    pub(super) pid: u32,
    seen: Arc<Mutex<Seen>>,
    reader: Option<thread::JoinHandle<()>>,
    stderr: PathBuf,
}

impl Live {
    pub(super) fn start(ctx: &Ctx, bin: &Path, dir: &Path) -> Result<Self> {
        let stderr = dir.join("hangwatch.stderr");
        let err_file =
            fs::File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let mut child = ctx
            .cmd(bin)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} --json", bin.display()))?;
        let pid = child.id();
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe"))?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let seen = Arc::clone(&seen);
            thread::spawn(move || read_output(out, &seen, tx))
        };
        let mut live = Live { child, pid, seen, reader: Some(reader), stderr };
        // Ready at its first record (or when it exits, which is an error).
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => Ok(live),
            Err(_) => {
                let status = live.child.try_wait().ok().flatten();
                bail!(
                    "hangwatch --json wrote nothing within 60 s ({}): {}",
                    status.map_or("still running".into(), |s| s.to_string()),
                    fs::read_to_string(&live.stderr).unwrap_or_default().trim()
                )
            }
        }
    }

    pub(super) fn sample(&self, secs: f64) -> Result<Sample> {
        let pid = self.pid;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("hangwatch (pid {pid}) is gone"))?;
        let cpu_ticks =
            stat_cpu_ticks(&stat).ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
        let fds = fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count() as u64;
        let (lost, tracked) = match self.seen.lock() {
            Ok(s) => (s.lost, s.tracked),
            Err(_) => bail!("the output reader panicked"),
        };
        Ok(Sample { secs, rss_bytes: proc_rss(pid).0, cpu_ticks, fds, lost, tracked })
    }

    /// SIGINT, a second SIGINT after 5 s, SIGTERM after 10 s, SIGKILL after 15 s; fails unless
    /// hangwatch exited 0 and wrote only valid records. A first SIGINT that is not acted on is
    /// only a warning: it is issue 9's lost-SIGINT bug, which this soak is not about.
    pub(super) fn stop(mut self) -> Result<Seen> {
        let mut status = None;
        for (i, sig) in [libc::SIGINT, libc::SIGINT, libc::SIGTERM].into_iter().enumerate() {
            signal(self.pid as i32, sig);
            status = wait_timeout(&mut self.child, Duration::from_secs(5))?;
            if status.is_some() {
                if i > 0 {
                    eprintln!(
                        "soak: warning: hangwatch did not act on SIGINT within 5 s; it exited \
                         after signal {} of 3 (SIGINT, SIGINT, SIGTERM)",
                        i + 1
                    );
                }
                break;
            }
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let seen = match self.seen.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(_) => bail!("the output reader panicked"),
        };
        let err = fs::read_to_string(&self.stderr).unwrap_or_default();
        match status {
            None => bail!("hangwatch did not exit within 15 s of SIGINT, SIGINT, SIGTERM (killed)"),
            Some(s) if !s.success() => bail!("hangwatch exited with {s}: {}", err.trim()),
            Some(_) => {}
        }
        ensure!(
            seen.bad_lines == 0,
            "hangwatch wrote {} lines that are not records",
            seen.bad_lines
        );
        Ok(seen)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads hangwatch's JSON Lines until EOF, keeping counts and the latest stats.
fn read_output(out: impl Read, seen: &Mutex<Seen>, ready: std::sync::mpsc::Sender<()>) {
    let mut out = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        match out.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if first {
            first = false;
            let _ = ready.send(());
        }
        let rec: Option<Json> = serde_json::from_slice(&line).ok();
        let Ok(mut s) = seen.lock() else { return };
        let Some(ty) = rec.as_ref().and_then(|r| r.get("type")).and_then(Json::as_str) else {
            s.bad_lines += 1;
            continue;
        };
        *s.types.entry(ty.to_owned()).or_default() += 1;
        let num = |key: &str| rec.as_ref().and_then(|r| r.get(key)).and_then(Json::as_u64);
        match ty {
            "stats" => {
                s.lost = num("lost_events").unwrap_or(0) + num("dropped_records").unwrap_or(0);
                s.tracked = num("processes_tracked").unwrap_or(0);
            }
            "oom_kill"
                if rec.as_ref().and_then(|r| r.get("comm")).and_then(Json::as_str)
                    == Some(OOM_COMM) =>
            {
                s.oom_kills += 1;
            }
            _ => {}
        }
    }
}
