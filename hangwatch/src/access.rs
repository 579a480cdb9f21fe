//! What hangwatch could not read for lack of permission, named with its consequence, so that a
//! missing permission is never turned into "nothing found" (docs/security.md, "Privileges").
//!
//! Measured on kernel 6.18: a non-root user with CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE passes the
//! privilege check, loads every probe, and still cannot open `/proc/PID/task/TID/syscall` of
//! another user's process: the file is mode 0400 owned by that user, and CAP_SYS_PTRACE does not
//! bypass file permissions (CAP_DAC_READ_SEARCH does). Without that file a sleeping thread's
//! syscall is unknown and the thread is not reported as blocked. And with
//! `kernel.dmesg_restrict=1`, /dev/kmsg needs CAP_SYSLOG, also for uid 0: without it the OOM
//! history is empty.

use std::{collections::HashMap, io};

use crate::{
    privileges::{self, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_SYSLOG},
    procfs::ProcessSample,
};

/// Something hangwatch could not read, why, and what the report lacks because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    /// The permission that would allow the read (a capability, or "ptrace access").
    pub missing: String,
    /// What could not be read.
    pub what: String,
    /// What the report lacks.
    pub consequence: String,
    /// How many things could not be read (threads), when countable.
    pub count: Option<u64>,
    /// Granting a capability to hangwatch would lift it (false: the refusal comes from the
    /// target, e.g. a process holding capabilities outside hangwatch's bounding set).
    pub grantable: bool,
}

impl Limitation {
    /// One line for the human report and the log.
    pub fn message(&self) -> String {
        format!("cannot read {} (missing {}): {}", self.what, self.missing, self.consequence)
    }
}

/// Sleeping threads whose `/proc/PID/task/TID/syscall` was denied: the scan left their syscall
/// unknown; each is tried once more here to tell a denial from a thread that just exited. A file
/// owned by another user is denied by its mode (0400) unless CAP_DAC_READ_SEARCH is held; one
/// owned by hangwatch's own uid is denied by the kernel's ptrace access check.
pub fn unreadable_waits(samples: &HashMap<i32, ProcessSample>, eff: u64) -> Vec<Limitation> {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let dac = privileges::has(eff, CAP_DAC_READ_SEARCH) || privileges::has(eff, CAP_DAC_OVERRIDE);
    // (threads, processes) denied by file mode, then by the ptrace check.
    let mut by_mode = (0u64, 0u64);
    let mut by_ptrace = (0u64, 0u64);
    for p in samples.values().filter(|p| !p.is_kernel_thread()) {
        let (mut mode, mut ptrace) = (0, 0);
        for t in p.threads.iter().filter(|t| t.is_sleeping() && t.syscall.is_none()) {
            let path = format!("/proc/{}/task/{}/syscall", p.pid, t.tid);
            if !matches!(std::fs::read(&path), Err(e) if e.kind() == io::ErrorKind::PermissionDenied)
            {
                continue;
            }
            let other_owner = std::fs::metadata(&path).is_ok_and(|m| m.uid() != euid);
            if other_owner && !dac {
                mode += 1;
            } else {
                ptrace += 1;
            }
        }
        for (n, acc) in [(mode, &mut by_mode), (ptrace, &mut by_ptrace)] {
            if n > 0 {
                acc.0 += n;
                acc.1 += 1;
            }
        }
    }
    let what = |(threads, processes): (u64, u64)| {
        format!(
            "/proc/PID/task/TID/syscall of {threads} sleeping thread{} in {processes} process{}",
            if threads == 1 { "" } else { "s" },
            if processes == 1 { "" } else { "es" }
        )
    };
    let consequence = "what they wait on is unknown and they are not counted as blocked";
    let mut out = Vec::new();
    if by_mode.0 > 0 {
        out.push(Limitation {
            missing: "CAP_DAC_READ_SEARCH: the files are mode 0400, owned by another user".into(),
            what: what(by_mode),
            consequence: consequence.into(),
            count: Some(by_mode.0),
            grantable: true,
        });
    }
    if by_ptrace.0 > 0 {
        out.push(Limitation {
            missing: "ptrace access: the kernel's check refused it (CAP_SYS_PTRACE missing, the \
                      target holding capabilities hangwatch lacks, or an LSM)"
                .into(),
            what: what(by_ptrace),
            consequence: consequence.into(),
            count: Some(by_ptrace.0),
            grantable: !privileges::has(eff, crate::privileges::CAP_SYS_PTRACE),
        });
    }
    out
}

/// The kernel log, where OOM kills from before the start are read.
pub fn kernel_log(eff: u64) -> Option<Limitation> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .err()?;
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|s| s.trim() == "1");
    let missing = match err.kind() {
        io::ErrorKind::PermissionDenied if restricted && !privileges::has(eff, CAP_SYSLOG) => {
            "CAP_SYSLOG, which kernel.dmesg_restrict=1 requires".to_string()
        }
        io::ErrorKind::PermissionDenied => "permission to open /dev/kmsg".to_string(),
        io::ErrorKind::NotFound => "/dev/kmsg in this mount namespace".to_string(),
        _ => format!("/dev/kmsg ({err})"),
    };
    let grantable = err.kind() == io::ErrorKind::PermissionDenied;
    Some(Limitation {
        missing,
        what: "the kernel log (/dev/kmsg)".into(),
        consequence: "OOM kills from before the start are not shown, and live ones lack the \
                      constraint and memory cgroup the log gives"
            .into(),
        count: None,
        grantable,
    })
}

/// Every limitation found after a scan.
pub fn check(samples: &HashMap<i32, ProcessSample>) -> Vec<Limitation> {
    let eff = privileges::effective();
    let mut out = unreadable_waits(samples, eff);
    out.extend(kernel_log(eff));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_permission_and_consequence() {
        let l = Limitation {
            missing: "CAP_SYSLOG".into(),
            what: "the kernel log".into(),
            consequence: "no OOM history".into(),
            count: None,
            grantable: true,
        };
        assert_eq!(l.message(), "cannot read the kernel log (missing CAP_SYSLOG): no OOM history");
    }

    #[test]
    fn readable_threads_are_not_reported() {
        // This test's own process: its threads are readable by itself whatever its privileges.
        let me = std::process::id() as i32;
        let mut samples = HashMap::new();
        let mut p =
            crate::procfs::read_process(me, crate::procfs::Detail::Full).expect("read own process");
        for t in &mut p.threads {
            t.syscall = None;
            t.stat.state = 'S';
        }
        samples.insert(me, p);
        assert_eq!(unreadable_waits(&samples, 0), vec![]);
    }
}
