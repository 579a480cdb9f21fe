//! What the user narrowed hangwatch to (`--pid`, `--comm`, `--cgroup`, `--min-blocked`): one
//! type with one meaning for the snapshot and live mode. The command line
//! (`cli::FilterArgs`) is turned into it once, in `main`; the snapshot and the aggregator only
//! ask it questions.
//!
//! **The selectors combine with AND**: a process passes when it is one of the `--pid`s (if any
//! is given) *and* its name contains `--comm` (if given) *and* its cgroup path contains
//! `--cgroup` (if given). Each flag narrows, as in `pgrep` ("all the criteria have to match")
//! and htop's filters. Before, the snapshot let `--pid` override the other two (`--pid 5 --comm
//! x` listed pid 5 whatever its name) while live mode combined them with AND; an option that
//! silently stops applying when another is given is the surprise, so both now narrow.

/// The user's filter. Empty selectors select every process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these processes (thread ids already resolved to their process). Each is listed
    /// even if nothing in it is blocked.
    pub pids: Vec<i32>,
    /// Only processes whose name (`comm`) contains this.
    pub comm: Option<String>,
    /// Only processes whose cgroup path contains this (a container id, a unit name).
    pub cgroup: Option<String>,
    /// Waits shorter than this are not reported, in ns.
    pub min_blocked_ns: u64,
}

impl Filter {
    /// Whether a process with this pid, name and cgroup path passes every selector given.
    pub fn matches(&self, pid: i32, comm: &str, cgroup: &str) -> bool {
        self.admits_pid(pid)
            && self.comm.as_ref().is_none_or(|c| comm.contains(c.as_str()))
            && self.cgroup.as_ref().is_none_or(|c| cgroup.contains(c.as_str()))
    }

    /// [`Filter::matches`] for a process of the model.
    pub fn matches_process(&self, p: &super::Process) -> bool {
        self.matches(p.pid, &p.comm, &p.cgroup)
    }

    /// Whether the pid selector alone lets `pid` through (no `--pid`, or one of them). For
    /// what carries no name or cgroup (a wait-end record of the kernel).
    pub fn admits_pid(&self, pid: i32) -> bool {
        self.pids.is_empty() || self.pids.contains(&pid)
    }

    /// Whether `pid` was named with `--pid` (it is then listed even when nothing in it is
    /// blocked, kernel threads included).
    pub fn names(&self, pid: i32) -> bool {
        self.pids.contains(&pid)
    }

    /// Whether any process selector is given (not `--min-blocked`).
    pub fn is_narrowed(&self) -> bool {
        !self.pids.is_empty() || self.comm.is_some() || self.cgroup.is_some()
    }

    /// The one process the probes can filter on in the kernel, when exactly one is named.
    pub fn single_pid(&self) -> Option<i32> {
        match self.pids.as_slice() {
            [pid] => Some(*pid),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pids: &[i32], comm: Option<&str>, cgroup: Option<&str>) -> Filter {
        Filter {
            pids: pids.to_vec(),
            comm: comm.map(Into::into),
            cgroup: cgroup.map(Into::into),
            min_blocked_ns: 0,
        }
    }

    #[test]
    fn an_empty_filter_selects_everything() {
        let f = Filter::default();
        assert!(f.matches(1, "", "/"));
        assert!(f.matches(42, "postgres", "/system.slice/postgresql.service"));
        assert!(f.admits_pid(7));
        assert!(!f.names(7));
        assert!(!f.is_narrowed());
        assert_eq!(f.single_pid(), None);
    }

    #[test]
    fn each_selector_alone() {
        let f = filter(&[5, 6], None, None);
        assert!(f.matches(5, "a", "/x") && f.matches(6, "b", "/y"));
        assert!(!f.matches(7, "a", "/x"));
        assert!(f.names(5) && !f.names(7));
        assert!(f.is_narrowed());
        assert_eq!(f.single_pid(), None);
        assert_eq!(filter(&[5], None, None).single_pid(), Some(5));

        // Substrings, case-sensitive.
        let f = filter(&[], Some("post"), None);
        assert!(f.matches(1, "postgres", "/"));
        assert!(!f.matches(1, "Postgres", "/"));
        assert!(!f.matches(1, "pg", "/"));
        assert!(f.admits_pid(1));

        let f = filter(&[], None, Some("cri-containerd-0123"));
        assert!(f.matches(1, "x", "/kubepods.slice/cri-containerd-0123abcd.scope"));
        assert!(!f.matches(1, "cri-containerd-0123", "/system.slice/x.service"));
    }

    #[test]
    fn selectors_combine_with_and() {
        // --pid does not override --comm or --cgroup (the snapshot used to let it).
        let f = filter(&[5], Some("job"), None);
        assert!(f.matches(5, "job", "/"));
        assert!(!f.matches(5, "other", "/"));
        assert!(!f.matches(6, "job", "/"));
        // The pid selector alone still admits pid 5 (for records that carry no name).
        assert!(f.admits_pid(5) && !f.admits_pid(6));

        let f = filter(&[], Some("job"), Some("batch"));
        assert!(f.matches(1, "job", "/batch.slice"));
        assert!(!f.matches(1, "job", "/system.slice"));
        assert!(!f.matches(1, "daemon", "/batch.slice"));

        let f = filter(&[1, 2], Some("job"), Some("batch"));
        assert!(f.matches(2, "job", "/batch.slice"));
        assert!(!f.matches(3, "job", "/batch.slice"));
    }

    #[test]
    fn matches_a_process_by_its_pid_name_and_cgroup() {
        let mut p = crate::model::fixtures::process(5, 1.0, 10.0, vec![None]);
        p.cgroup = "/job.slice".into();
        assert!(filter(&[5], Some("p5"), Some("job")).matches_process(&p));
        assert!(!filter(&[5], Some("p6"), None).matches_process(&p));
        assert!(!filter(&[], None, Some("other")).matches_process(&p));
    }
}
