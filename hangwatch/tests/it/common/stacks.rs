//! Helpers for the stack tests: a C++ test program, a stripped copy of a program, and a
//! program run from a private tmpfs in its own mount namespace.

use std::path::PathBuf;
use std::process::Command;

use super::{program, progs_dir, work_dir};

/// Compiles `tests/progs/<name>.cpp` with g++ (once per test binary run).
pub fn program_cxx(name: &str) -> PathBuf {
    let exe = work_dir().join(name);
    if exe.exists() {
        return exe;
    }
    let src = progs_dir().join(format!("{name}.cpp"));
    let tmp = work_dir().join(format!("{name}.tmp"));
    let cxx = std::env::var_os("CXX").unwrap_or_else(|| "g++".into());
    let out = Command::new(&cxx)
        .args(["-O1", "-pthread", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run C++ compiler {cxx:?}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
    exe
}

/// A copy of test program `name` with its symbol tables stripped (`strip`).
pub fn stripped(name: &str) -> PathBuf {
    let src = program(name);
    let dst = work_dir().join(format!("{name}-stripped"));
    if dst.exists() {
        return dst;
    }
    let tmp = work_dir().join(format!("{name}-stripped.tmp"));
    std::fs::copy(&src, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let out = Command::new("strip")
        .arg(&tmp)
        .output()
        .unwrap_or_else(|e| panic!("cannot run strip: {e}"));
    assert!(out.status.success(), "strip failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::rename(&tmp, &dst).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
    dst
}

/// A directory that exists (empty) on the host and onto which a command run by
/// [`in_private_mount_ns`] mounts its own tmpfs. Removed on drop.
pub struct NsDir {
    pub path: PathBuf,
}

impl NsDir {
    pub fn new(tag: &str) -> NsDir {
        let path = work_dir().join(format!("ns-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        NsDir { path }
    }

    /// `unshare --mount` (private propagation) running `exe` from a copy on a tmpfs mounted
    /// on this directory: only the new mount namespace sees the file. The tmpfs goes away
    /// with the namespace, when the program exits.
    pub fn command(&self, exe: &std::path::Path) -> Command {
        let base = exe.file_name().and_then(|n| n.to_str()).unwrap_or("prog").to_string();
        let dir = self.path.display().to_string();
        let script = format!(
            "mount -t tmpfs hwstacks \"{dir}\" && cp \"{}\" \"{dir}/{base}\" && exec \"{dir}/{base}\"",
            exe.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        cmd
    }
}

impl Drop for NsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
