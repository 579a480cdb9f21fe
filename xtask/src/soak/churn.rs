//! The churn the soak runs hangwatch under: fork/exec and thread storms, blocked-thread waves,
//! and OOM kills in a memory-limited cgroup of the soak's own.

use std::{
    fs,
    io::Read,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use super::{BLOCKED_THREADS, OOM_PAUSE_MS, signal};
use crate::Ctx;

// ------------------------------------------------------------------------------- churn

/// The churners: one thread each, running its program again and again until `stop`.
pub(super) struct Churn {
    stop: Arc<AtomicBool>,
    /// Set by a churner whose program failed; the soak then fails (it would not be testing
    /// what it says).
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
    /// The long-running OOM loop.
    oom: Option<Child>,
}

impl Churn {
    pub(super) fn start(
        ctx: &Ctx,
        bin_dir: &Path,
        cgroup: &OomCgroup,
        stop: &Arc<AtomicBool>,
    ) -> Result<Self> {
        let mut churn = Churn {
            stop: Arc::clone(stop),
            failed: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
            oom: None,
        };
        let bin = |name: &str| bin_dir.join(name);
        let plans: [(&str, Command, Duration); 3] = [
            ("fork/exec storm", with_args(ctx, &bin("task_churn"), &["fork_exec", "2"]), secs(3)),
            ("thread storm", with_args(ctx, &bin("task_churn"), &["thread", "2"]), secs(3)),
            (
                "blocked threads",
                with_args(
                    ctx,
                    &bin("blocked_threads"),
                    &["cycle", &BLOCKED_THREADS.to_string(), "2"],
                ),
                secs(1),
            ),
        ];
        for (name, cmd, pause) in plans {
            let stop = Arc::clone(&churn.stop);
            let failed = Arc::clone(&churn.failed);
            churn.threads.push(thread::spawn(move || repeat(name, cmd, pause, &stop, &failed)));
        }
        let procs = cgroup.dir.join("cgroup.procs");
        let oom = ctx
            .cmd(bin("oom_loop"))
            .arg(&procs)
            .arg(OOM_PAUSE_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting oom_loop")?;
        churn.oom = Some(oom);
        Ok(churn)
    }

    /// Fails as soon as a churner failed or the OOM loop ended.
    pub(super) fn check(&self) -> Result<()> {
        if let Ok(f) = self.failed.lock()
            && let Some(first) = f.first()
        {
            bail!("churn failed: {first}");
        }
        if let Some(oom) = &self.oom
            && oom.id() != 0
            && fs::metadata(format!("/proc/{}", oom.id())).is_err()
        {
            bail!("oom_loop ended early");
        }
        Ok(())
    }

    /// Stops everything (also done on drop); reports a churner's failure.
    pub(super) fn stop(mut self) -> Result<()> {
        self.shutdown();
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        ensure!(failed.is_empty(), "churn failed: {}", failed.join("; "));
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut oom) = self.oom.take() {
            // Its group: the loop and a victim it may have forked.
            signal(-(oom.id() as i32), libc::SIGKILL);
            let _ = oom.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn with_args(ctx: &Ctx, program: &Path, args: &[&str]) -> Command {
    let mut cmd = ctx.cmd(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.process_group(0);
    cmd
}

/// Runs `cmd` to its end, pauses, again, until `stop`; on `stop` kills its process group.
fn repeat(
    name: &str,
    mut cmd: Command,
    pause: Duration,
    stop: &AtomicBool,
    failed: &Mutex<Vec<String>>,
) {
    let fail = |why: String| {
        if let Ok(mut f) = failed.lock() {
            f.push(format!("{name}: {why}"));
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return fail(format!("cannot start: {e}")),
        };
        let status = loop {
            if stop.load(Ordering::SeqCst) {
                signal(-(child.id() as i32), libc::SIGKILL);
                let _ = child.wait();
                return;
            }
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(e) => return fail(format!("wait: {e}")),
            }
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return fail(format!("exited with {status}: {}", err.trim()));
        }
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ------------------------------------------------------------------------------- cgroup

/// The soak's memory-limited cgroup: v1 `/sys/fs/cgroup/memory/<name>` or v2
/// `/sys/fs/cgroup/<name>` (with no swap, so the victim is killed rather than swapped out).
/// Dropping it kills what is left inside and removes it.
pub(super) struct OomCgroup {
    pub(super) dir: PathBuf,
}

impl OomCgroup {
    pub(super) fn create(limit: u64) -> Result<Self> {
        let name = format!("hangwatch-soak-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let limit = limit.to_string();
        let (dir, settings): (PathBuf, Vec<(&str, &str)>) =
            if v1.join("memory.limit_in_bytes").exists() {
                (v1.join(&name), vec![("memory.limit_in_bytes", &limit)])
            } else {
                let has = |file: &str| {
                    fs::read_to_string(v2.join(file))
                        .unwrap_or_default()
                        .split_whitespace()
                        .any(|c| c == "memory")
                };
                ensure!(
                    has("cgroup.controllers"),
                    "no cgroup v1 memory hierarchy and no cgroup v2 memory controller: the soak \
                     needs one for its OOM kills"
                );
                if !has("cgroup.subtree_control") {
                    fs::write(v2.join("cgroup.subtree_control"), "+memory")
                        .context("enabling the v2 memory controller for children")?;
                }
                (v2.join(&name), vec![("memory.max", &limit), ("memory.swap.max", "0")])
            };
        fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let cgroup = OomCgroup { dir };
        for (file, value) in settings {
            let f = cgroup.dir.join(file);
            // memory.swap.max is absent without swap accounting: nothing to turn off then.
            if file == "memory.swap.max" && !f.exists() {
                continue;
            }
            fs::write(&f, value).with_context(|| format!("writing {value} to {}", f.display()))?;
        }
        Ok(cgroup)
    }
}

impl Drop for OomCgroup {
    fn drop(&mut self) {
        for _ in 0..250 {
            for pid in fs::read_to_string(self.dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                // Only the soak's own victims can be in its own cgroup.
                signal(pid, libc::SIGKILL);
            }
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("soak: warning: could not remove {}", self.dir.display());
    }
}
