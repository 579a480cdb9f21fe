//! Checking that hangwatch may load BPF programs and read other processes.

use crate::error::Error;

const CAP_SYS_PTRACE: u32 = 19;
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

pub fn check() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = parse_cap_eff(&status).unwrap_or(0);
    let missing = missing_caps(eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::NotPrivileged { missing: missing.join("+") })
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
    fn parse_status_line() {
        assert_eq!(parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n"), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("nothing"), None);
    }
}
