//! Command line.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hangwatch",
    version,
    about = "Which threads are stuck, on what, since when; and which processes hold memory they never give back.",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Stream JSON Lines events on stdout instead of the terminal UI.
    #[arg(long, global = false)]
    pub json: bool,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Live mode: a process whose every thread has been in an infinite wait this long, after
    /// having used CPU, is reported as hung.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_min_blocked)]
    pub hung_after: Duration,

    /// Live mode: how long an exited process stays listed (and inspectable) before it is
    /// forgotten.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_min_blocked)]
    pub keep_exited: Duration,

    /// Count brk/mmap/munmap/mremap/madvise calls per process in the kernel (exact), instead of
    /// inferring them from /proc samples. Costs every syscall on the machine the traced path
    /// (docs/memory.md has the measured cost), so it is off by default.
    #[arg(long)]
    pub exact_memory: bool,

    /// Live mode: read no stacks of blocked threads (by default, when live mode is narrowed
    /// by --pid, --comm or --cgroup, each long wait's stack is read once, in the /proc
    /// scanner, within a time budget per scan).
    #[arg(long)]
    pub no_stacks: bool,

    /// Live mode over the whole node: read the stacks of blocked threads too (without
    /// --pid/--comm/--cgroup they are off by default: under heavy thread churn they doubled
    /// live mode's CPU, and symbolizing every idle daemon costs memory; see docs/stacks.md).
    #[arg(long = "live-stacks", conflicts_with = "no_stacks")]
    pub live_stacks: bool,

    /// How often live mode rescans /proc.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,

    /// The kernel's BTF from this file (e.g. from BTFHub) instead of /sys/kernel/btf/vmlinux,
    /// for kernels built without CONFIG_DEBUG_INFO_BTF.
    #[arg(long, value_name = "PATH", global = true)]
    pub btf: Option<std::path::PathBuf>,

    /// Log level for hangwatch's own diagnostics (to stderr, or to the log file in the TUI).
    #[arg(long, default_value = "warn", value_name = "LEVEL")]
    pub log_level: log::LevelFilter,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach, observe for a short window, print a report of what is stuck now, and exit.
    Snapshot(SnapshotArgs),
}

/// The filter flags as typed; [`FilterArgs::filter`] turns them into the one
/// [`model::Filter`](crate::model::Filter) both modes use (its module says how the selectors
/// combine: with AND).
#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// Only this process (repeatable). It is always listed, blocked or not. With --comm or
    /// --cgroup, it must match those too.
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<i32>,

    /// Only processes whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,

    /// Only processes whose cgroup path contains PATH (a container id, a unit name).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Hide waits shorter than this (e.g. 500ms, 1s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_min_blocked)]
    pub min_blocked: Duration,
}

impl FilterArgs {
    /// The filter these flags state (thread ids in `pids` are resolved by the caller first).
    pub fn filter(&self) -> crate::model::Filter {
        crate::model::Filter {
            pids: self.pids.clone(),
            comm: self.comm.clone(),
            cgroup: self.cgroup.clone(),
            min_blocked_ns: u64::try_from(self.min_blocked.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct SnapshotArgs {
    /// How long to observe before reporting (CPU use and waits that end are measured over it).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_window)]
    pub window: Duration,

    /// Show every process, not only those with blocked threads.
    #[arg(long)]
    pub all: bool,

    /// A process whose every thread has been in an infinite wait this long, after having
    /// used CPU, is reported as hung.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_min_blocked)]
    pub hung_after: Duration,

    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,

    /// Count brk/mmap/munmap/mremap/madvise calls per process in the kernel (exact), instead of
    /// inferring them from /proc samples. Costs every syscall on the machine the traced path
    /// (docs/memory.md has the measured cost), so it is off by default.
    #[arg(long)]
    pub exact_memory: bool,

    /// Print whole stacks (kernel, native, Python) of blocked threads, identical ones once.
    #[arg(long, conflicts_with = "no_stacks")]
    pub stacks: bool,

    /// Read no stacks at all (by default each blocked thread shows its innermost frame of user
    /// code).
    #[arg(long)]
    pub no_stacks: bool,

    #[command(flatten)]
    pub filter: FilterArgs,
}

impl SnapshotArgs {
    pub fn stack_mode(&self) -> crate::stacks::StackMode {
        use crate::stacks::StackMode;
        match (self.stacks, self.no_stacks) {
            (_, true) => StackMode::Off,
            (true, _) => StackMode::Full,
            _ => StackMode::Brief,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("'{s}' is not a duration (examples: 500ms, 1s, 2m, 1h)"))
}

pub fn parse_min_blocked(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(30 * 24 * 3600) {
        return Err(format!("'{s}' is out of range (at most 30 days)"));
    }
    Ok(d)
}

pub fn parse_window(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
        return Err(format!("'{s}' is out of range (100ms to 10m)"));
    }
    Ok(d)
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(200) || d > Duration::from_secs(60) {
        return Err(format!("'{s}' is out of range (200ms to 1m)"));
    }
    Ok(d)
}

pub fn parse_pid(s: &str) -> Result<i32, String> {
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a process id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_min_blocked("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_min_blocked("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_min_blocked("0s"), Ok(Duration::ZERO));
        assert!(parse_min_blocked("banana").unwrap_err().contains("banana"));
        assert!(parse_min_blocked("-1s").is_err());
        assert!(parse_min_blocked("400d").unwrap_err().contains("out of range"));
        assert!(parse_window("10ms").unwrap_err().contains("10ms"));
        assert_eq!(parse_window("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn pids() {
        assert_eq!(parse_pid("42"), Ok(42));
        assert!(parse_pid("0").is_err());
        assert!(parse_pid("-3").unwrap_err().contains("-3"));
        assert!(parse_pid("x").is_err());
    }

    #[test]
    fn parses_snapshot_command() {
        let cli = Cli::try_parse_from([
            "hangwatch",
            "snapshot",
            "--pid",
            "1",
            "--pid",
            "2",
            "--min-blocked",
            "3s",
            "--json",
        ])
        .unwrap();
        let Some(Command::Snapshot(a)) = cli.command else { panic!("not snapshot") };
        assert_eq!(a.filter.pids, vec![1, 2]);
        assert_eq!(a.filter.min_blocked, Duration::from_secs(3));
        assert!(a.json);
        assert_eq!(a.window, Duration::from_secs(1));
    }

    #[test]
    fn filter_flags_become_the_model_filter() {
        let cli = Cli::try_parse_from([
            "hangwatch",
            "--pid",
            "7",
            "--comm",
            "job",
            "--cgroup",
            "batch",
            "--min-blocked",
            "500ms",
        ])
        .unwrap();
        assert_eq!(
            cli.filter.filter(),
            crate::model::Filter {
                pids: vec![7],
                comm: Some("job".into()),
                cgroup: Some("batch".into()),
                min_blocked_ns: 500_000_000,
            }
        );
        let cli = Cli::try_parse_from(["hangwatch"]).unwrap();
        assert_eq!(
            cli.filter.filter(),
            crate::model::Filter { min_blocked_ns: 1_000_000_000, ..Default::default() }
        );
    }
}
