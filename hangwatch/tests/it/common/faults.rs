//! Helpers for the fault tests (tests/it/faults.rs): running hangwatch with fewer privileges,
//! waiting for an exit with a deadline, and finding the BPF objects a process holds.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::{hangwatch_bin, work_dir};

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A copy of the binary that any user can execute (the build tree may sit under a directory
/// only root can enter). Removed on Drop.
pub struct WorldExecutable(pub PathBuf);

impl WorldExecutable {
    pub fn new(tag: &str) -> Self {
        let copy = work_dir().join(format!("hangwatch-{tag}"));
        std::fs::copy(hangwatch_bin(), &copy)
            .unwrap_or_else(|e| panic!("copy {}: {e}", hangwatch_bin().display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .expect("chmod copy");
        WorldExecutable(copy)
    }
}

impl Drop for WorldExecutable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `setpriv <args> <bin>`, for running hangwatch with other credentials. None (and a SKIPPED
/// line) without setpriv.
pub fn setpriv(args: &[&str], bin: &WorldExecutable) -> Option<Command> {
    let Some(setpriv) = find_in_path("setpriv") else {
        eprintln!("SKIPPED: setpriv (util-linux) is not installed");
        return None;
    };
    let mut cmd = Command::new(setpriv);
    cmd.args(args).arg(&bin.0).current_dir("/");
    Some(cmd)
}

/// Waits up to `timeout` for `child` to exit; kills it and returns None if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The BPF program and link ids whose fds process `pid` holds (from /proc/PID/fdinfo).
pub fn bpf_ids_of(pid: i32) -> (Vec<u32>, Vec<u32>) {
    let (mut progs, mut links) = (Vec::new(), Vec::new());
    let dir = format!("/proc/{pid}/fdinfo");
    let Ok(rd) = std::fs::read_dir(&dir) else { return (progs, links) };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let is_link = text.lines().any(|l| l.starts_with("link_type:"));
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("prog_id:") {
                let Ok(id) = v.trim().parse() else { continue };
                if !is_link {
                    progs.push(id);
                }
            }
            if let Some(v) = l.strip_prefix("link_id:")
                && let Ok(id) = v.trim().parse()
            {
                links.push(id);
            }
        }
    }
    progs.sort_unstable();
    progs.dedup();
    links.sort_unstable();
    links.dedup();
    (progs, links)
}

/// Whether `bpftool <kind> show id <id>` finds the object (kind: "prog" or "link").
pub fn bpftool_has(kind: &str, id: u32) -> bool {
    let bpftool = find_in_path("bpftool")
        .or_else(|| {
            ["/usr/sbin/bpftool", "/sbin/bpftool"].iter().map(PathBuf::from).find(|p| p.is_file())
        })
        .expect("bpftool is not installed (it is in TEST_PACKAGES: run `cargo xtask setup`)");
    let out = Command::new(bpftool)
        .args([kind, "show", "id", &id.to_string()])
        .output()
        .expect("run bpftool");
    out.status.success()
}

/// A small pseudo-random sequence (xorshift), seeded from the clock and printed by the caller
/// so that a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}
