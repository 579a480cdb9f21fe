//! Checking that hangwatch may load BPF programs and read other processes.

use crate::error::Error;

pub const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Parses the `CapEff:` line of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_ascii_whitespace().nth(1)?, 16).ok()
}

/// The capabilities missing from `eff`, by name; empty when hangwatch can run.
pub fn missing_caps(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        if !has(CAP_BPF) {
            missing.push("CAP_BPF");
        }
        if !has(CAP_PERFMON) {
            missing.push("CAP_PERFMON");
        }
    }
    if !has(CAP_SYS_PTRACE) {
        missing.push("CAP_SYS_PTRACE");
    }
    missing
}

/// hangwatch's effective capabilities (0 if /proc/self/status cannot be read).
pub fn effective() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_cap_eff(&status).unwrap_or(0)
}

/// Whether capability number `cap` is in `eff`.
pub fn has(eff: u64, cap: u32) -> bool {
    cap < 64 && eff & (1u64 << cap) != 0
}

pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYSLOG: u32 = 34;

/// What each capability is for, in the refusal message.
fn purpose(cap: &str) -> &'static str {
    match cap {
        "CAP_BPF" => "load the eBPF probes",
        "CAP_PERFMON" => "attach them to tracepoints",
        "CAP_SYS_PTRACE" => "read other processes' syscalls, fds and memory",
        _ => "",
    }
}

/// The one-line refusal for `missing` capabilities, saying what each is for and how to grant
/// them where hangwatch runs: with sudo when it is not root; when it is root (in a container,
/// or under a capability-dropping supervisor), by adding the capabilities, since sudo cannot.
pub fn refusal(missing: &[&str], euid: u32) -> String {
    let named: Vec<String> = missing.iter().map(|c| format!("{c} (to {})", purpose(c))).collect();
    let short: Vec<&str> = missing.iter().map(|c| c.trim_start_matches("CAP_")).collect();
    let docker: Vec<String> = short.iter().map(|c| format!("--cap-add={c}")).collect();
    let grant = format!(
        "docker run {}, or in Kubernetes securityContext.capabilities.add: [{}]",
        docker.join(" "),
        short.join(", ")
    );
    let who = if euid == 0 {
        "running as root but without".to_string()
    } else {
        format!("running as uid {euid} without")
    };
    let how = if euid == 0 {
        format!("grant them to the container or service ({grant})")
    } else {
        format!("run it as root (sudo hangwatch ...), or grant them ({grant})")
    };
    format!(
        "{who} the capabilit{} {}: {how}; docs/security.md lists what each is for",
        if missing.len() == 1 { "y" } else { "ies" },
        named.join(", ")
    )
}

pub fn check() -> Result<(), Error> {
    let missing = missing_caps(effective());
    if missing.is_empty() {
        Ok(())
    } else {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Err(Error::NotPrivileged(refusal(&missing, euid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_none() {
        assert!(missing_caps(0x000001ffffffffff).is_empty());
        assert_eq!(missing_caps(0), vec!["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]);
        let bpf_perfmon_ptrace = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_SYS_PTRACE);
        assert!(missing_caps(bpf_perfmon_ptrace).is_empty());
        assert_eq!(missing_caps(1 << CAP_SYS_ADMIN), vec!["CAP_SYS_PTRACE"]);
    }

    #[test]
    fn refusal_names_caps_and_how_to_grant_them() {
        let msg = refusal(&["CAP_BPF", "CAP_SYS_PTRACE"], 1000);
        assert!(!msg.starts_with("hangwatch"), "main adds the prefix: {msg}");
        for part in ["uid 1000", "CAP_BPF (to load", "CAP_SYS_PTRACE (to read", "sudo"] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        assert!(msg.contains("--cap-add=BPF --cap-add=SYS_PTRACE"), "{msg}");
        assert!(msg.contains("capabilities.add: [BPF, SYS_PTRACE]"), "{msg}");
        assert_eq!(msg.lines().count(), 1);
        // Root in a container: sudo would change nothing.
        let msg = refusal(&["CAP_PERFMON"], 0);
        assert!(msg.contains("running as root but without the capability CAP_PERFMON"), "{msg}");
        assert!(!msg.contains("sudo"), "{msg}");
        assert!(msg.contains("--cap-add=PERFMON"), "{msg}");
    }

    #[test]
    fn parse_status_line() {
        assert_eq!(parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n"), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("nothing"), None);
    }
}
