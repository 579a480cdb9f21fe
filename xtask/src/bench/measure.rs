//! Measuring: CPU and memory of processes and of the machine from /proc, `runstat`'s figures
//! for a workload, and the run-time statistics of the BPF programs a tool holds.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};
use serde_json::Value as Json;

use super::Bench;
use crate::capture;

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl Bench<'_> {
    /// Run-time statistics of the BPF programs `pid` holds. Ids, run_time_ns and run_cnt come
    /// from /proc/PID/fdinfo (the kernel's own counters, what bpftool also reads); names from
    /// `bpftool prog show --json` when bpftool is here, else from the attach link.
    pub(super) fn prog_stats(&self, pid: u32) -> Vec<ProgSample> {
        let fds = bpf_fds(pid);
        let mut link_names: BTreeMap<u64, String> = BTreeMap::new();
        for info in fds.iter().filter(|f| f.kind == "bpf_link") {
            if let (Some(id), Some(tp)) = (info.num("prog_id"), info.fields.get("tp_name")) {
                link_names.insert(id, tp.clone());
            }
        }
        let mut progs: Vec<ProgSample> = fds
            .iter()
            .filter(|f| f.kind == "bpf-prog")
            .filter_map(|f| {
                let id = f.num("prog_id")?;
                Some(ProgSample {
                    id,
                    name: link_names.get(&id).cloned().unwrap_or_else(|| {
                        format!("prog {id} (type {})", f.num("prog_type").unwrap_or(0))
                    }),
                    run_time_ns: f.num("run_time_ns").unwrap_or(0),
                    run_cnt: f.num("run_cnt").unwrap_or(0),
                })
            })
            .collect();
        progs.sort_by_key(|p| p.id);
        progs.dedup_by_key(|p| p.id);
        if self.have_bpftool
            && let Ok(text) = capture(self.ctx.cmd("bpftool").args(["prog", "show", "--json"]))
            && let Ok(Json::Array(all)) = serde_json::from_str::<Json>(&text)
        {
            for p in &mut progs {
                let found = all.iter().find(|j| j.get("id").and_then(Json::as_u64) == Some(p.id));
                if let Some(name) = found.and_then(|j| j.get("name")).and_then(Json::as_str) {
                    p.name = name.to_owned();
                }
            }
        }
        progs
    }

    /// hangwatch's `STATS` counters, summed over CPUs (needs bpftool to read the map).
    pub(super) fn hangwatch_counters(&self, pid: u32) -> Option<Vec<u64>> {
        if !self.have_bpftool {
            return None;
        }
        let ids: BTreeSet<u64> = bpf_fds(pid)
            .iter()
            .filter(|f| f.kind == "bpf-map")
            .filter_map(|f| f.num("map_id"))
            .collect();
        let maps = serde_json::from_str::<Json>(
            &capture(self.ctx.cmd("bpftool").args(["map", "show", "--json"])).ok()?,
        )
        .ok()?;
        let id = maps.as_array()?.iter().find_map(|m| {
            let id = m.get("id")?.as_u64()?;
            (ids.contains(&id) && m.get("name")?.as_str()? == "STATS").then_some(id)
        })?;
        let dump =
            capture(self.ctx.cmd("bpftool").args(["map", "dump", "id", &id.to_string(), "--json"]))
                .ok()?;
        percpu_sums(&serde_json::from_str::<Json>(&dump).ok()?)
    }
}

/// `kernel.bpf_stats_enabled`: switched on only for the per-probe cost runs, restored after
/// each, and at the end (also on drop). The value found is saved in a file first, so a bench
/// that was interrupted (Ctrl-C) restores it the next time it starts.
pub(super) struct BpfStats {
    pub(super) original: String,
    saved: PathBuf,
}

impl BpfStats {
    pub(super) fn new(saved: PathBuf) -> Result<Self> {
        if let Ok(prev) = fs::read_to_string(&saved) {
            eprintln!(
                "bench: restoring kernel.bpf_stats_enabled={} left by an interrupted bench",
                prev.trim()
            );
            fs::write(BPF_STATS, prev.trim()).with_context(|| format!("writing {BPF_STATS}"))?;
            let _ = fs::remove_file(&saved);
        }
        let original = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        Ok(BpfStats { original, saved })
    }

    pub(super) fn set(&self, on: bool) -> Result<()> {
        if on {
            fs::write(&self.saved, &self.original)
                .with_context(|| format!("writing {}", self.saved.display()))?;
            fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))
        } else {
            self.restore();
            Ok(())
        }
    }

    pub(super) fn restore(&self) {
        if fs::read_to_string(BPF_STATS).is_ok_and(|v| v.trim() != self.original)
            && let Err(e) = fs::write(BPF_STATS, &self.original)
        {
            eprintln!("warning: could not restore {BPF_STATS} to {}: {e}", self.original);
            return;
        }
        let _ = fs::remove_file(&self.saved);
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        self.restore();
    }
}

// ------------------------------------------------------------------------ /proc readers

/// Threads on the machine: the denominator of the 4th field of /proc/loadavg.
pub(super) fn machine_tasks() -> u64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn clock_ticks() -> f64 {
    use std::sync::OnceLock;
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Machine-wide CPU time from /proc/stat, in clock ticks.
pub(super) struct SysCpu {
    pub(super) busy: u64,
    pub(super) steal: u64,
}

impl SysCpu {
    pub(super) fn read() -> Result<Self> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Self::parse(&text).ok_or_else(|| anyhow!("no `cpu` line in /proc/stat"))
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice` (guest time is
    /// already inside user).
    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 8 {
            return None;
        }
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        Some(SysCpu { busy, steal: v[7] })
    }
}

/// A process's CPU time at one instant: the sum of its threads' `schedstat` run time (ns), with
/// `utime + stime` (ticks, includes threads that already exited) as a cross-check.
pub(super) struct ProcCpu {
    pub(super) at: Instant,
    sched_ns: Option<u64>,
    ticks: Option<u64>,
}

impl ProcCpu {
    pub(super) fn secs_since(&self, before: &ProcCpu) -> f64 {
        let sched = match (self.sched_ns, before.sched_ns) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / 1e9),
            _ => None,
        };
        let ticks = match (self.ticks, before.ticks) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / clock_ticks()),
            _ => None,
        };
        match (sched, ticks) {
            // A thread that exited in between took its schedstat with it: trust the ticks
            // when they are clearly larger.
            (Some(s), Some(t)) if t > s + 2.0 / clock_ticks() => t,
            (Some(s), _) => s,
            (None, Some(t)) => t,
            (None, None) => 0.0,
        }
    }
}

pub(super) fn proc_cpu(pid: u32) -> ProcCpu {
    let at = Instant::now();
    let mut sched_ns = None;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        let mut sum = 0u64;
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("schedstat"))
                && let Some(ns) = s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok())
            {
                sum += ns;
            }
        }
        sched_ns = Some(sum);
    }
    let ticks =
        fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_cpu_ticks(&s));
    ProcCpu { at, sched_ns, ticks }
}

/// utime + stime from /proc/PID/stat (fields 14 and 15; the comm in field 2 may hold spaces).
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (VmRSS, VmHWM) in bytes.
pub(crate) fn proc_rss(pid: u32) -> (u64, u64) {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status_kib(&text, "VmRSS:") * 1024, status_kib(&text, "VmHWM:") * 1024)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One BPF object fd of a process: `anon_inode:bpf-prog`, `bpf-map` or `bpf_link`, and its
/// fdinfo fields.
struct BpfFd {
    kind: String,
    fields: BTreeMap<String, String>,
}

impl BpfFd {
    fn num(&self, key: &str) -> Option<u64> {
        self.fields.get(key)?.parse().ok()
    }
}

fn bpf_fds(pid: u32) -> Vec<BpfFd> {
    let mut out = Vec::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let Some(kind) = target.to_str().and_then(|t| t.strip_prefix("anon_inode:")) else {
            continue;
        };
        if !matches!(kind, "bpf-prog" | "bpf-map" | "bpf_link") {
            continue;
        }
        let info =
            fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
        out.push(BpfFd { kind: kind.to_owned(), fields: parse_fdinfo(&info) });
    }
    out
}

fn parse_fdinfo(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

pub(super) struct ProgSample {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) run_time_ns: u64,
    pub(super) run_cnt: u64,
}

pub(super) struct ProgDelta {
    pub(super) name: String,
    pub(super) run_time_ns: u64,
    pub(super) run_cnt: u64,
    pub(super) secs: f64,
}

impl ProgDelta {
    pub(super) fn ns_per_run(&self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }
    pub(super) fn runs_per_sec(&self) -> f64 {
        if self.secs > 0.0 { self.run_cnt as f64 / self.secs } else { 0.0 }
    }
    pub(super) fn core_pct(&self) -> f64 {
        if self.secs > 0.0 { self.run_time_ns as f64 / 1e9 / self.secs * 100.0 } else { 0.0 }
    }
}

pub(super) struct ToolSample {
    pub(super) cpu: ProcCpu,
    pub(super) progs: Vec<ProgSample>,
    pub(super) counters: Option<Vec<u64>>,
}

/// What `runstat` wrote: the workload's wall time, CPU and peak RSS (from wait4).
pub(super) struct RunStat {
    pub(super) wall_secs: f64,
    utime_us: u64,
    stime_us: u64,
    pub(super) maxrss_kib: u64,
    pub(super) status: i64,
}

impl RunStat {
    pub(super) fn read(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).ok_or_else(|| anyhow!("cannot read runstat's result {text:?}"))
    }

    fn parse(text: &str) -> Option<Self> {
        let f: Vec<&str> = text.split_whitespace().collect();
        Some(RunStat {
            wall_secs: f.first()?.parse::<u64>().ok()? as f64 / 1e9,
            utime_us: f.get(1)?.parse().ok()?,
            stime_us: f.get(2)?.parse().ok()?,
            maxrss_kib: f.get(3)?.parse().ok()?,
            status: f.get(4)?.parse().ok()?,
        })
    }

    pub(super) fn cpu_secs(&self) -> f64 {
        (self.utime_us + self.stime_us) as f64 / 1e6
    }
}

/// Per-key sums over CPUs of a `bpftool map dump --json` of a per-CPU array of u64, indexed by
/// key. bpftool prints raw hex bytes for maps without BTF and numbers for maps with it.
fn percpu_sums(dump: &Json) -> Option<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for entry in dump.as_array()? {
        let entry = entry.get("formatted").unwrap_or(entry);
        let key = bytes_or_num(entry.get("key")?)? as usize;
        let sum: u64 = entry
            .get("values")?
            .as_array()?
            .iter()
            .filter_map(|v| bytes_or_num(v.get("value")?))
            .sum();
        if out.len() <= key {
            out.resize(key + 1, 0);
        }
        out[key] = sum;
    }
    Some(out)
}

/// A little-endian integer from `["0x05","0x00",..]`, or a plain number.
fn bytes_or_num(j: &Json) -> Option<u64> {
    match j {
        Json::Number(_) => j.as_u64(),
        Json::Array(bytes) => {
            let mut v = 0u64;
            for (i, b) in bytes.iter().enumerate().take(8) {
                let b = u64::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok()?;
                v |= b << (8 * i);
            }
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_percpu_dump() {
        let dump = r#"[{"key":["0x00","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x05","0x01","0x00","0x00","0x00","0x00","0x00","0x00"]},{"cpu":1,"value":["0x02","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]},{"key":["0x01","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]}]"#;
        let sums = percpu_sums(&serde_json::from_str::<Json>(dump).expect("parses")).expect("sums");
        assert_eq!(sums, vec![0x105 + 2, 0]);
        let formatted = r#"[{"key":0,"values":[{"cpu":0,"value":7},{"cpu":1,"value":1}]}]"#;
        assert_eq!(
            percpu_sums(&serde_json::from_str::<Json>(formatted).expect("parses")),
            Some(vec![8])
        );
    }

    #[test]
    fn proc_parsers() {
        let stat = "123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15";
        // utime = field 14 = 11, stime = 12.
        assert_eq!(stat_cpu_ticks(stat), Some(23));
        let sys = SysCpu::parse("cpu  10 1 5 100 2 3 4 7 0 0\ncpu0 1 2 3\n").expect("parses");
        assert_eq!((sys.busy, sys.steal), (10 + 1 + 5 + 3 + 4, 7));
        assert_eq!(status_kib("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n", "VmHWM:"), 2048);
        let fdinfo = parse_fdinfo("pos:\t0\nprog_id:\t674\nrun_time_ns:\t100\nrun_cnt:\t4\n");
        assert_eq!(fdinfo.get("prog_id").map(String::as_str), Some("674"));
        let rs = RunStat::parse("1500000000 200000 300000 9572 0\n").expect("parses");
        assert!((rs.wall_secs - 1.5).abs() < 1e-9 && (rs.cpu_secs() - 0.5).abs() < 1e-9);
        assert_eq!(rs.maxrss_kib, 9572);
    }
}
