//! What the workloads and hangwatch print: a workload's rate, stress-ng's YAML report,
//! hangwatch's JSON Lines.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{Result, anyhow};
use serde_json::Value as Json;

/// The last number a workload printed (its ops/s).
pub(super) fn last_number(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// `bogo-ops-per-second-real-time: X` from `stress-ng --yaml`.
pub(super) fn stress_ng_rate(yaml: &str) -> Result<f64> {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("bogo-ops-per-second-real-time:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no bogo-ops-per-second-real-time in stress-ng's YAML report"))
}

pub(super) fn count_stats_lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"stats\""))
        .count()
}

/// What hangwatch's JSON Lines output said over a run.
pub(super) struct JsonSummary {
    types: BTreeMap<String, usize>,
    stats_lines: usize,
    lost_events: u64,
    /// From the last stats line: cumulative.
    dropped_records: u64,
    /// Sum of the `count` of `lost` records (ring-buffer losses and records dropped between
    /// hangwatch's own stages).
    lost_records: u64,
    pub(super) probes_failed: Vec<String>,
}

impl JsonSummary {
    pub(super) fn read(path: &Path) -> Option<Self> {
        Self::parse(&fs::read_to_string(path).ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut s = JsonSummary {
            types: BTreeMap::new(),
            stats_lines: 0,
            lost_events: 0,
            dropped_records: 0,
            lost_records: 0,
            probes_failed: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(j) = serde_json::from_str::<Json>(line) else { continue };
            let Some(ty) = j.get("type").and_then(Json::as_str) else {
                continue;
            };
            *s.types.entry(ty.to_owned()).or_default() += 1;
            if ty == "lost" {
                s.lost_records += j.get("count").and_then(Json::as_u64).unwrap_or(0);
            }
            if ty == "stats" {
                s.stats_lines += 1;
                s.lost_events = j.get("lost_events").and_then(Json::as_u64).unwrap_or(0);
                s.dropped_records = j.get("dropped_records").and_then(Json::as_u64).unwrap_or(0);
                s.probes_failed = j
                    .get("probes_failed")
                    .and_then(Json::as_array)
                    .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
            }
        }
        (s.stats_lines > 0).then_some(s)
    }

    /// Records hangwatch said it lost, in the kernel or in its own queues: its `lost` records,
    /// or its last stats line's totals when those are larger (a `lost` record can be late).
    pub(super) fn reported_lost(&self) -> u64 {
        self.lost_records.max(self.lost_events + self.dropped_records)
    }

    pub(super) fn count(&self, ty: &str) -> usize {
        self.types.get(ty).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_outputs() {
        assert_eq!(last_number("186624.2\n"), Some(186_624.2));
        assert_eq!(last_number("noise\n12.5\n\n"), Some(12.5));
        assert_eq!(last_number("nothing"), None);
        let yaml =
            "metrics:\n    - stressor: futex\n      bogo-ops-per-second-real-time: 159472.869522\n";
        assert!((stress_ng_rate(yaml).expect("rate") - 159_472.869_522).abs() < 1e-6);
        assert!(stress_ng_rate("metrics:\n").is_err());
    }

    #[test]
    fn hangwatch_json_summary() {
        let out = concat!(
            r#"{"type":"stats","events":0,"lost_events":0,"dropped_records":0,"probes_failed":[]}"#,
            "\n",
            r#"{"type":"blocked","pid":1}"#,
            "\n",
            r#"{"type":"lost","count":7}"#,
            "\n",
            r#"{"type":"stats","events":9,"lost_events":2,"dropped_records":5,"probes_failed":["oom"]}"#,
            "\n"
        );
        let s = JsonSummary::parse(out).expect("has stats");
        assert_eq!((s.stats_lines, s.lost_events, s.dropped_records), (2, 2, 5));
        assert_eq!((s.lost_records, s.reported_lost()), (7, 7));
        assert_eq!(s.count("blocked"), 1);
        assert_eq!(s.probes_failed, vec!["oom".to_owned()]);
        assert!(JsonSummary::parse("").is_none());
    }
}
