//! Cgroup files: the memory limit that applies to a cgroup, its OOM kill counter, its CPU
//! limit, and the path of a memory cgroup known by its kernfs id (what the OOM probe
//! records), on cgroup v1, v2 and hybrid hosts.
//!
//! Every cgroup path (from /proc/PID/cgroup or the kernel log) goes through [`under`], which
//! refuses a path that would leave the cgroup file system. A file that cannot be read is
//! `None`, never an error.

use std::{
    fs,
    path::{Component, Path, PathBuf},
};

use crate::model::{facts::CpuQuota, oom::OomKill};

/// Where the cgroup file systems are.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `cgroup_path` (as in /proc/PID/cgroup or the kernel log: `/a/b`) under `base`; `None` if
/// it would leave `base` (`..`).
pub fn under(base: &Path, cgroup_path: &str) -> Option<PathBuf> {
    let rel = Path::new(cgroup_path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(base.join(rel))
}

// ---------------------------------------------------------------------------
// Memory limits and OOM kill counters

/// A limit in bytes: "max" (v2) or a value ≥ 2^62 (v1's "unlimited" is the page counter
/// maximum, 9223372036854771712) is no limit: `None`.
pub fn parse_limit(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (v < 1 << 62).then_some(v)
}

/// The `oom_kill N` line of v2 `memory.events` or v1 `memory.oom_control`.
pub fn parse_oom_kill_count(s: &str) -> Option<u64> {
    s.lines().find_map(|l| l.trim().strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// The first of `(dir, file)` under `root` that exists, read.
fn read_first(root: &Path, cgroup_path: &str, places: &[(&str, &str)]) -> Option<String> {
    places.iter().find_map(|(dir, file)| {
        let p = under(&root.join(dir), cgroup_path)?.join(file);
        fs::read_to_string(p).ok()
    })
}

/// v2 (`memory.max` at the root of a pure v2 system, or under `unified/` on a hybrid one),
/// then v1 (`memory/…/memory.limit_in_bytes`).
const LIMIT_FILES: [(&str, &str); 3] =
    [("", "memory.max"), ("unified", "memory.max"), ("memory", "memory.limit_in_bytes")];
const OOM_KILL_FILES: [(&str, &str); 3] =
    [("", "memory.events"), ("unified", "memory.events"), ("memory", "memory.oom_control")];

/// The memory limit of a cgroup under `root` (see [`memory_limit`]).
pub fn memory_limit_at(root: &Path, cgroup_path: &str) -> Option<u64> {
    parse_limit(&read_first(root, cgroup_path, &LIMIT_FILES)?)
}

/// The memory limit set on the cgroup itself, bytes; `None` if it has none, it does not
/// exist (any more) or it has no memory controller. Tries cgroup v2
/// (`/sys/fs/cgroup/<path>/memory.max`, on hybrid systems `/sys/fs/cgroup/unified/<path>/`)
/// then v1 (`/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes`).
pub fn memory_limit(cgroup_path: &str) -> Option<u64> {
    memory_limit_at(Path::new(CGROUP_ROOT), cgroup_path)
}

/// The smallest limit on the cgroup and its ancestors: the one that applies. On v1 the
/// ancestors only count with `memory.use_hierarchy` = 1 (always on since Linux 5.x).
pub fn effective_memory_limit_at(root: &Path, cgroup_path: &str) -> Option<u64> {
    let mut path = Path::new(cgroup_path);
    let mut best: Option<u64> = None;
    loop {
        if let Some(l) = memory_limit_at(root, &path.to_string_lossy()) {
            best = Some(best.map_or(l, |b| b.min(l)));
        }
        match path.parent() {
            Some(p) => path = p,
            None => return best,
        }
    }
}

pub fn effective_memory_limit(cgroup_path: &str) -> Option<u64> {
    effective_memory_limit_at(Path::new(CGROUP_ROOT), cgroup_path)
}

pub fn oom_kill_counter_at(root: &Path, cgroup_path: &str) -> Option<u64> {
    parse_oom_kill_count(&read_first(root, cgroup_path, &OOM_KILL_FILES)?)
}

/// How many processes the kernel OOM-killed in this cgroup (and below it): `oom_kill` of v2
/// `memory.events` or of v1 `memory.oom_control` (Linux 4.13 and later).
pub fn oom_kill_counter(cgroup_path: &str) -> Option<u64> {
    oom_kill_counter_at(Path::new(CGROUP_ROOT), cgroup_path)
}

// ---------------------------------------------------------------------------
// CPU limits

/// cgroup v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us` or v2 `cpu.max` → cores.
pub fn parse_quota_v1(quota: &str, period: &str) -> Option<f64> {
    let q: i64 = quota.trim().parse().ok()?;
    let p: i64 = period.trim().parse().ok()?;
    (q > 0 && p > 0).then(|| q as f64 / p as f64)
}

pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_ascii_whitespace();
    let q = it.next()?;
    let p: f64 = it.next()?.parse().ok()?;
    if q == "max" {
        return None;
    }
    let q: f64 = q.parse().ok()?;
    (p > 0.0).then(|| q / p)
}

/// `nr_throttled` and throttled time (ns) from cpu.stat (v1 `throttled_time` in ns, v2
/// `throttled_usec`).
pub fn parse_cpu_stat(s: &str) -> (u64, u64) {
    let mut nr = 0;
    let mut ns = 0;
    for l in s.lines() {
        let mut it = l.split_ascii_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("nr_throttled"), Some(v)) => nr = v,
            (Some("throttled_time"), Some(v)) => ns = v,
            (Some("throttled_usec"), Some(v)) => ns = v.saturating_mul(1000),
            _ => {}
        }
    }
    (nr, ns)
}

/// The CPU limit of a cgroup (see [`cpu_quota_at`]).
pub fn cpu_quota(cgroup_path: &str) -> Option<CpuQuota> {
    cpu_quota_at(Path::new(CGROUP_ROOT), cgroup_path)
}

/// The CPU limit of a cgroup under `root`, with its throttling counts: v1 (`cpu/` or
/// `cpu,cpuacct/`: `cpu.cfs_quota_us` / `cpu.cfs_period_us`), else v2 (`cpu.max`, at the
/// root or under `unified/`); `None` without a limit.
pub fn cpu_quota_at(root: &Path, cgroup_path: &str) -> Option<CpuQuota> {
    let throttling =
        |dir: &Path| parse_cpu_stat(&fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default());
    for v1 in ["cpu", "cpu,cpuacct"] {
        let dir = under(&root.join(v1), cgroup_path)?;
        if let (Ok(q), Ok(p)) = (
            fs::read_to_string(dir.join("cpu.cfs_quota_us")),
            fs::read_to_string(dir.join("cpu.cfs_period_us")),
        ) {
            let cores = parse_quota_v1(&q, &p)?;
            let (nr_throttled, throttled_ns) = throttling(&dir);
            return Some(CpuQuota { cores, nr_throttled, throttled_ns });
        }
    }
    for v2 in ["", "unified"] {
        let dir = under(&root.join(v2), cgroup_path)?;
        if let Ok(m) = fs::read_to_string(dir.join("cpu.max")) {
            let cores = parse_cpu_max(&m)?;
            let (nr_throttled, throttled_ns) = throttling(&dir);
            return Some(CpuQuota { cores, nr_throttled, throttled_ns });
        }
    }
    None
}

/// The cgroup of each process as the cpu controller sees it (v1 `cpu` hierarchy, else v2).
pub fn cpu_cgroup(pid: i32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut unified = None;
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrls.split(',').any(|c| c == "cpu") {
            return Some(path.to_string());
        }
        if ctrls.is_empty() {
            unified = Some(path.to_string());
        }
    }
    unified
}

// ---------------------------------------------------------------------------
// Cgroup ids (the OOM probe records the victim's memory cgroup by its kernfs id)

/// Where the memory controller's cgroups are: the v1 memory hierarchy (hybrid hosts), else
/// the cgroup v2 tree at the root or under `unified/`.
fn memory_hierarchy(root: &Path) -> Option<PathBuf> {
    let v1 = root.join("memory");
    if v1.join("memory.limit_in_bytes").exists() || v1.join("memory.usage_in_bytes").exists() {
        return Some(v1);
    }
    [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|d| d.join("cgroup.controllers").exists())
}

/// Most cgroup directories one search looks at, and how deep.
const MAX_CGROUP_DIRS: usize = 100_000;
const MAX_CGROUP_DEPTH: usize = 64;

/// The cgroup path (`/a/b`, as /proc/PID/cgroup names it) of the directory under `hierarchy`
/// whose inode number is `id` (on 64-bit kernels a cgroup's kernfs id is its directory's
/// inode number). A bounded breadth-first walk; `None` if not found (the cgroup was removed).
pub fn cgroup_path_of_id_at(hierarchy: &Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut queue = std::collections::VecDeque::from([(hierarchy.to_path_buf(), 0usize)]);
    let mut seen = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        seen += 1;
        if seen > MAX_CGROUP_DIRS {
            return None;
        }
        if fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            let rel = dir.strip_prefix(hierarchy).ok()?;
            return Some(format!("/{}", rel.to_string_lossy()));
        }
        if depth >= MAX_CGROUP_DEPTH {
            continue;
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back((e.path(), depth + 1));
            }
        }
    }
    None
}

/// Cgroup id → path, remembered (ids are never reused while the machine runs). Bounded: the
/// cache is emptied when it holds [`CGROUP_ID_CACHE_MAX`] entries.
static CGROUP_IDS: std::sync::Mutex<Option<std::collections::HashMap<u64, Option<String>>>> =
    std::sync::Mutex::new(None);
const CGROUP_ID_CACHE_MAX: usize = 4096;

/// The path of the memory cgroup whose kernfs id is `id`, on this machine.
pub fn memory_cgroup_path(id: u64) -> Option<String> {
    let mut guard = CGROUP_IDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = guard.get_or_insert_with(Default::default);
    if let Some(p) = cache.get(&id) {
        return p.clone();
    }
    let path = memory_hierarchy(Path::new(CGROUP_ROOT)).and_then(|h| cgroup_path_of_id_at(&h, id));
    if cache.len() >= CGROUP_ID_CACHE_MAX {
        cache.clear();
    }
    cache.insert(id, path.clone());
    path
}

/// Gives a kill seen by the probe the cgroup the kernel had the victim in when it chose it
/// (the `oom_victim_memcg` probe's id), when it has none yet.
pub fn apply_victim_memcg(k: &mut OomKill, memcg_id: Option<u64>) {
    if k.cgroup.is_none()
        && let Some(path) = memcg_id.and_then(memory_cgroup_path)
    {
        k.cgroup = Some(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_ids_are_found_by_inode() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("hw-cgid-{}", std::process::id()));
        let deep = root.join("a").join("b,c").join("d");
        fs::create_dir_all(&deep).unwrap();
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(cgroup_path_of_id_at(&root, ino(&deep)).as_deref(), Some("/a/b,c/d"));
        assert_eq!(cgroup_path_of_id_at(&root, ino(&root)).as_deref(), Some("/"));
        assert_eq!(cgroup_path_of_id_at(&root, u64::MAX), None);
        assert_eq!(cgroup_path_of_id_at(&root.join("missing"), ino(&deep)), None);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_running_kernels_memory_cgroups_resolve() {
        use std::os::unix::fs::MetadataExt;
        let Some(h) = memory_hierarchy(Path::new(CGROUP_ROOT)) else {
            eprintln!("skipped: no memory cgroup hierarchy");
            return;
        };
        let id = fs::metadata(&h).unwrap().ino();
        assert_eq!(memory_cgroup_path(id).as_deref(), Some("/"));
        let mut k = OomKill::new(1, 2, "tracepoint");
        apply_victim_memcg(&mut k, Some(id));
        assert_eq!(k.cgroup.as_deref(), Some("/"));
        k.cgroup = Some("/from-the-log".into());
        apply_victim_memcg(&mut k, Some(id));
        assert_eq!(k.cgroup.as_deref(), Some("/from-the-log"), "the kernel log's line wins");
    }

    #[test]
    fn quotas() {
        assert_eq!(parse_quota_v1("50000\n", "100000\n"), Some(0.5));
        assert_eq!(parse_quota_v1("-1\n", "100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(
            parse_cpu_stat("nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n"),
            (4, 5000)
        );
        assert_eq!(parse_cpu_stat("nr_throttled 3\nthrottled_usec 7\n"), (3, 7000));
    }

    #[test]
    fn paths_that_leave_the_cgroup_fs_are_refused() {
        let base = Path::new("/sys/fs/cgroup/freezer");
        assert_eq!(under(base, "/a/b"), Some(base.join("a/b")));
        assert_eq!(under(base, "/"), Some(base.to_path_buf()));
        assert_eq!(under(base, "/a/../../etc"), None);
        assert_eq!(under(base, "../x"), None);
    }

    #[test]
    fn limit_files() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("67108864\n"), Some(64 << 20));
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("garbage"), None);
        let events = "low 0\nhigh 0\nmax 31\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill_count(events), Some(1));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_kill_count(v1), Some(3));
        assert_eq!(parse_oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    /// A fake /sys/fs/cgroup in a temp dir.
    struct FakeRoot(PathBuf);
    impl FakeRoot {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("hangwatch-oom-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            FakeRoot(p)
        }
        fn put(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
    }
    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn limits_v1_v2_hybrid() {
        let v1 = FakeRoot::new("v1");
        v1.put("memory/memory.limit_in_bytes", "9223372036854771712\n");
        v1.put("memory/a/memory.limit_in_bytes", "1073741824\n");
        v1.put("memory/a/b/memory.limit_in_bytes", "9223372036854771712\n");
        v1.put("memory/a/b/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
        v1.put("unified/a/b/cgroup.procs", "");
        assert_eq!(memory_limit_at(&v1.0, "/a"), Some(1 << 30));
        assert_eq!(memory_limit_at(&v1.0, "/a/b"), None);
        assert_eq!(effective_memory_limit_at(&v1.0, "/a/b"), Some(1 << 30));
        assert_eq!(memory_limit_at(&v1.0, "/"), None);
        assert_eq!(oom_kill_counter_at(&v1.0, "/a/b"), Some(4));
        assert_eq!(memory_limit_at(&v1.0, "/gone"), None);
        assert_eq!(memory_limit_at(&v1.0, "/a/../a"), None);

        let v2 = FakeRoot::new("v2");
        v2.put("k/memory.max", "max\n");
        v2.put("k/pod/memory.max", "536870912\n");
        v2.put("k/pod/memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
        assert_eq!(memory_limit_at(&v2.0, "/k/pod"), Some(512 << 20));
        assert_eq!(memory_limit_at(&v2.0, "/k"), None);
        assert_eq!(effective_memory_limit_at(&v2.0, "/k/pod"), Some(512 << 20));
        assert_eq!(oom_kill_counter_at(&v2.0, "/k/pod"), Some(1));

        let hybrid = FakeRoot::new("hybrid");
        hybrid.put("unified/s/memory.max", "1000\n");
        assert_eq!(memory_limit_at(&hybrid.0, "/s"), Some(1000));
    }

    #[test]
    fn cpu_limits_v1_v2() {
        let v1 = FakeRoot::new("cpu-v1");
        v1.put("cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n");
        v1.put("cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
        v1.put("cpu,cpuacct/job/cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n");
        v1.put("cpu,cpuacct/free/cpu.cfs_quota_us", "-1\n");
        v1.put("cpu,cpuacct/free/cpu.cfs_period_us", "100000\n");
        assert_eq!(
            cpu_quota_at(&v1.0, "/job"),
            Some(CpuQuota { cores: 0.5, nr_throttled: 4, throttled_ns: 5000 })
        );
        assert_eq!(cpu_quota_at(&v1.0, "/free"), None);
        assert_eq!(cpu_quota_at(&v1.0, "/free/../job"), None, "a path that climbs is refused");

        let v2 = FakeRoot::new("cpu-v2");
        v2.put("unified/k/pod/cpu.max", "200000 100000\n");
        v2.put("unified/k/pod/cpu.stat", "nr_throttled 3\nthrottled_usec 7\n");
        assert_eq!(
            cpu_quota_at(&v2.0, "/k/pod"),
            Some(CpuQuota { cores: 2.0, nr_throttled: 3, throttled_ns: 7000 })
        );
        assert_eq!(cpu_quota_at(&v2.0, "/k"), None);
    }
}
