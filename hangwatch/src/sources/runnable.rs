//! Why a releaser cannot run: a process that blocked threads wait on may be stopped (`T`),
//! held by a tracer (`t`, `TracerPid` in /proc/PID/status), in a frozen cgroup (v1
//! `freezer.state` FROZEN, v2 `cgroup.events` `frozen 1`) or in uninterruptible sleep (`D`,
//! with its wait channel). Such a process is the culprit of the chain that reaches it, and the
//! chain says why. Only the processes that blocked threads point at are read.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::Path,
};

use crate::model::Process;
use crate::model::facts::Facts;
use crate::sources::{cgroup, quiet::QuietCache};

/// Whether a cgroup is frozen, by `v1:`/`v2:` path, for one pass.
type Frozen = HashMap<String, Option<String>>;

/// `State:` letter and `TracerPid:` of /proc/PID/status.
pub fn parse_status(s: &str) -> (Option<char>, Option<i32>) {
    let mut state = None;
    let mut tracer = None;
    for l in s.lines() {
        if let Some(v) = l.strip_prefix("State:") {
            state = v.trim_start().chars().next();
        } else if let Some(v) = l.strip_prefix("TracerPid:") {
            tracer = v.trim().parse().ok();
        }
    }
    (state, tracer)
}

/// The freezer (v1) and unified (v2) cgroup paths of /proc/PID/cgroup.
pub fn parse_cgroups(s: &str) -> (Option<String>, Option<String>) {
    let mut freezer = None;
    let mut unified = None;
    for l in s.lines() {
        let mut parts = l.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.split(',').any(|c| c == "freezer") {
            freezer = Some(path.to_string());
        } else if ctrls.is_empty() {
            unified = Some(path.to_string());
        }
    }
    (freezer, unified)
}

/// Whether a v2 `cgroup.events` says the cgroup is frozen.
pub fn events_frozen(s: &str) -> bool {
    s.lines().any(|l| l.trim() == "frozen 1")
}

/// Whether the cgroups of /proc/PID/cgroup (`cg`) are frozen, and why; read once per pass
/// and per cgroup (`memo`), since many processes share one.
fn frozen(cg: &str, memo: &mut Frozen) -> Option<String> {
    let (v1, v2) = parse_cgroups(cg);
    let root = Path::new(cgroup::CGROUP_ROOT);
    if let Some(path) = v1 {
        let why = memo.entry(format!("v1:{path}")).or_insert_with(|| {
            let dir = cgroup::under(&root.join("freezer"), &path)?;
            let st = fs::read_to_string(dir.join("freezer.state")).ok()?;
            matches!(st.trim(), "FROZEN" | "FREEZING")
                .then(|| format!("its cgroup {path} is frozen (freezer.state {})", st.trim()))
        });
        if why.is_some() {
            return why.clone();
        }
    }
    let path = v2?;
    memo.entry(format!("v2:{path}"))
        .or_insert_with(|| {
            [root.to_path_buf(), root.join("unified")].iter().find_map(|base| {
                let dir = cgroup::under(base, &path)?;
                let events = fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
                events_frozen(&events)
                    .then(|| format!("its cgroup {path} is frozen (cgroup.events frozen 1)"))
            })
        })
        .clone()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().chars().take(64).collect())
        .unwrap_or_else(|_| "?".into())
}

/// How long a process must have been in uninterruptible sleep to be one that cannot run.
pub const D_MIN_NS: u64 = 5_000_000_000;

/// Why process `p` cannot run, if it cannot; `cgroups` is its /proc/PID/cgroup.
fn why(p: &Process, cgroups: Option<&str>, memo: &mut Frozen) -> Option<String> {
    if let Some(f) = cgroups.and_then(|cg| frozen(cg, memo)) {
        return Some(format!("cannot run: {f}"));
    }
    let live: Vec<_> = p.threads.iter().filter(|t| t.state != 'Z').collect();
    if live.is_empty() {
        return None;
    }
    if live.iter().all(|t| matches!(t.state, 'T' | 't')) {
        let status = fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap_or_default();
        let (_, tracer) = parse_status(&status);
        return Some(match tracer.filter(|t| *t > 0) {
            Some(t) => format!(
                "cannot run: traced (state t) by pid {t} ({}), which holds it stopped",
                comm(t)
            ),
            None => "cannot run: stopped (state T); SIGCONT would resume it".to_string(),
        });
    }
    // Every thread in `D`, and for long enough: a process writing to a busy disk is in `D` for
    // milliseconds at a time and answers right after. A thread in `D` outside a reported wait
    // has no known start, so at least one must be in a reported wait of [`D_MIN_NS`].
    if live.iter().all(|t| t.state == 'D')
        && live.iter().any(|t| t.blocked.as_ref().is_some_and(|w| w.duration_ns >= D_MIN_NS))
    {
        let wchan = live
            .iter()
            .find_map(|t| t.blocked.as_ref().and_then(|w| w.wchan.clone()))
            .or_else(|| fs::read_to_string(format!("/proc/{}/wchan", p.pid)).ok())
            .filter(|w| !w.is_empty() && w != "0")
            .unwrap_or_else(|| "?".into());
        return Some(format!("cannot run: in uninterruptible sleep (state D) in {wchan}"));
    }
    None
}

/// Fills `facts.cannot_run` for the processes blocked threads wait on: holders of the pipes,
/// sockets and locks they wait on, and the children of those in `wait4`.
pub fn gather(procs: &[Process], f: &mut Facts, quiet: &mut QuietCache) {
    let mut cand: BTreeSet<i32> = f.holders.values().flatten().map(|h| h.pid).collect();
    cand.extend(f.lock_blockers.values().flatten().flat_map(|b| b.holders.iter().copied()));
    cand.extend(f.fuse_servers.values().flatten().copied());
    let waiting_children: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.blocked_threads().any(|(_, w)| w.decoded.call.is_child_wait()))
        .map(|p| p.pid)
        .collect();
    if !waiting_children.is_empty() {
        cand.extend(procs.iter().filter(|p| waiting_children.contains(&p.ppid)).map(|p| p.pid));
    }
    let mut memo = Frozen::new();
    for p in procs {
        if cand.contains(&p.pid)
            && let Some(w) = why(p, quiet.cgroups(p.pid).as_deref(), &mut memo)
        {
            f.cannot_run.insert(p.pid, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_in_d_is_not_cannot_run() {
        use crate::model::fixtures::{process, wait};
        // A pid that does not exist: no cgroup to be frozen in, nothing read.
        let mut p = process(i32::MAX - 7, 1.0, 900.0, vec![Some(wait("write", 0.2, true)), None]);
        for t in &mut p.threads {
            t.state = 'D';
        }
        assert_eq!(why(&p, None, &mut Frozen::new()), None, "a write to a busy disk");
        p.threads[0].blocked = Some(wait("read", 60.0, true));
        let why = why(&p, None, &mut Frozen::new()).expect("a minute in D");
        assert!(why.contains("uninterruptible sleep (state D)"), "{why}");
    }

    #[test]
    fn status_and_cgroups() {
        let st = "Name:\tsleep\nState:\tt (tracing stop)\nTgid:\t5\nTracerPid:\t77\n";
        assert_eq!(parse_status(st), (Some('t'), Some(77)));
        assert_eq!(parse_status("State:\tT (stopped)\n"), (Some('T'), None));
        let cg = "12:freezer:/job\n4:cpu,cpuacct:/x\n0::/user.slice/a\n";
        assert_eq!(parse_cgroups(cg), (Some("/job".into()), Some("/user.slice/a".into())));
        assert!(events_frozen("populated 1\nfrozen 1\n"));
        assert!(!events_frozen("populated 1\nfrozen 0\n"));
    }
}
