//! The growth verdicts: a least-squares line fitted to each figure over the last half of the
//! run, judged against its bound. Pure: samples in, verdicts out.

use super::{MIB, Sample};
use crate::bench::clock_ticks;

/// A growth bound: the fitted growth over the last half of the run may be at most
/// `max(floor, per_min × minutes in the last half)`.
struct Bound {
    metric: &'static str,
    unit: &'static str,
    floor: f64,
    per_min: f64,
}

impl Bound {
    fn allowed(&self, window_min: f64) -> f64 {
        self.floor.max(self.per_min * window_min)
    }
}

/// The bounds, and why (docs/benchmarks.md, "Soak", says the same):
/// - RSS: 4 MiB, or 0.25 MiB/min on longer runs. Under this churn hangwatch's RSS moves by a
///   few MiB with each 10,000-thread wave (its per-thread state, then the allocator keeping
///   freed pages), so a smaller floor would fail on noise; a per-task leak of even 100 bytes
///   under ~1,000 exits/s would be ~6 MiB/min, far above. 0.25 MiB/min is 15 MiB an hour: a
///   leak that would take hangwatch past the 64 MiB busy-node budget within hours fails.
/// - fds: 2. Every fd hangwatch holds is fixed after start (BPF links, maps, the ring buffer,
///   a netlink socket); one or two are open transiently while it reads /proc at the sampling
///   instant. Any steady growth is a leak.
/// - CPU: 10 points of one core, or 0.5 point/min. hangwatch's CPU follows the churn's phases
///   (10 s samples do not line up with them), so samples vary by several points; a cost that
///   grows with what it has seen (a list never pruned) shows as a steady rise well past this.
/// - tracked processes: 2,000, or 100/min. Exited processes stay in the aggregator for a grace
///   period, so the count swings with the fork/exec bursts (~1,000 exits each); a process
///   never pruned adds ~1,000 per burst (12,000/min).
const BOUNDS: &[Bound] = &[
    Bound { metric: "rss", unit: "MiB", floor: 4.0, per_min: 0.25 },
    Bound { metric: "fds", unit: "fds", floor: 2.0, per_min: 0.0 },
    Bound { metric: "cpu", unit: "% of a core", floor: 10.0, per_min: 0.5 },
    Bound { metric: "tracked", unit: "processes", floor: 2_000.0, per_min: 100.0 },
];

/// One figure per sample, in the unit of its bound. CPU is per interval (between a sample and
/// the one before), so it has one value fewer.
fn series(samples: &[Sample], metric: &str) -> Vec<(f64, f64)> {
    match metric {
        "rss" => samples.iter().map(|s| (s.secs, s.rss_bytes as f64 / MIB)).collect(),
        "fds" => samples.iter().map(|s| (s.secs, s.fds as f64)).collect(),
        "tracked" => samples.iter().map(|s| (s.secs, s.tracked as f64)).collect(),
        "cpu" => samples
            .windows(2)
            .map(|w| {
                let secs = (w[1].secs - w[0].secs).max(1e-3);
                let cpu = w[1].cpu_ticks.saturating_sub(w[0].cpu_ticks) as f64 / clock_ticks();
                (w[1].secs, 100.0 * cpu / secs)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A least-squares line: its slope and the slope's standard error (infinite with two points).
#[derive(Clone, Copy, Debug)]
struct Fit {
    slope: f64,
    stderr: f64,
}

/// Least-squares fit of `points` (y per x); `None` with fewer than two distinct x.
fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let stderr = if points.len() > 2 {
        let sse: f64 = points.iter().map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2)).sum();
        (sse / (n - 2.0) / sxx).sqrt()
    } else {
        f64::INFINITY
    };
    Some(Fit { slope, stderr })
}

/// Student's t, one-sided 95%, for `dof` degrees of freedom: the growth must exceed its bound
/// by this many standard errors to fail, so a short, noisy run does not fail on noise while a
/// steady leak (a straight line, small residuals) does.
fn t95(dof: usize) -> f64 {
    const T: [f64; 10] = [6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812];
    match dof {
        0 => f64::INFINITY,
        1..=10 => T[dof - 1],
        11..=20 => 1.75,
        21..=40 => 1.70,
        _ => 1.645,
    }
}

/// The points in the last half of the run (by time).
fn last_half(points: &[(f64, f64)], end_secs: f64) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| p.0 >= end_secs / 2.0).collect()
}

#[derive(Debug)]
pub(super) struct Verdict {
    pub(super) metric: &'static str,
    pub(super) unit: &'static str,
    pub(super) first_half_mean: f64,
    pub(super) last_half_mean: f64,
    /// Fitted growth over the last half (slope × its length).
    pub(super) growth: f64,
    /// One-sided 95% margin of `growth` (t × standard error × length).
    pub(super) margin: f64,
    pub(super) allowed: f64,
    pub(super) pass: bool,
}

pub(super) fn judge(samples: &[Sample]) -> Vec<Verdict> {
    let end = samples.last().map_or(0.0, |s| s.secs);
    let mean = |p: &[(f64, f64)]| {
        if p.is_empty() { f64::NAN } else { p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64 }
    };
    let mut out: Vec<Verdict> = BOUNDS
        .iter()
        .map(|b| {
            let all = series(samples, b.metric);
            let late = last_half(&all, end);
            let early: Vec<(f64, f64)> = all.iter().copied().filter(|p| p.0 < end / 2.0).collect();
            let window = late.last().map_or(0.0, |l| l.0) - late.first().map_or(0.0, |f| f.0);
            let f = fit(&late);
            let growth = f.map_or(f64::NAN, |f| f.slope * window);
            let margin =
                f.map_or(f64::NAN, |f| t95(late.len().saturating_sub(2)) * f.stderr * window);
            let allowed = b.allowed(window / 60.0);
            Verdict {
                metric: b.metric,
                unit: b.unit,
                first_half_mean: mean(&early),
                last_half_mean: mean(&late),
                growth,
                margin,
                allowed,
                // Too few samples to fit is a failure, not a pass (NaN compares false).
                pass: late.len() >= 3 && growth - margin <= allowed,
            }
        })
        .collect();
    // Losses: a counter; what it gained over the last half, exactly.
    let late: Vec<&Sample> = samples.iter().filter(|s| s.secs >= end / 2.0).collect();
    let lost_late = match (late.first(), late.last()) {
        (Some(a), Some(b)) => b.lost.saturating_sub(a.lost),
        _ => 0,
    };
    let lost_early = late.first().map_or(0, |s| s.lost);
    out.push(Verdict {
        metric: "lost",
        unit: "events",
        first_half_mean: lost_early as f64,
        last_half_mean: late.last().map_or(0, |s| s.lost) as f64,
        growth: lost_late as f64,
        margin: 0.0,
        allowed: 0.0,
        pass: late.len() >= 3 && lost_late == 0,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(f: impl Fn(f64) -> (u64, u64, u64, u64)) -> Vec<Sample> {
        (0..=18)
            .map(|i| {
                let secs = i as f64 * 10.0;
                let (rss, fds, lost, tracked) = f(secs);
                // A steady 5% of a core at 100 ticks/s.
                let cpu_ticks = (secs * clock_ticks() * 0.05) as u64;
                Sample { secs, rss_bytes: rss, cpu_ticks, fds, lost, tracked }
            })
            .collect()
    }

    fn verdict<'a>(v: &'a [Verdict], metric: &str) -> &'a Verdict {
        v.iter().find(|v| v.metric == metric).expect("metric judged")
    }

    #[test]
    fn fit_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        let f = fit(&pts).expect("fits");
        assert!((f.slope - 2.0).abs() < 1e-9);
        assert!(f.stderr < 1e-9);
        assert!(fit(&[(1.0, 1.0)]).is_none());
        assert!(fit(&[(1.0, 1.0), (1.0, 5.0)]).is_none());
    }

    #[test]
    fn flat_after_warm_up_passes() {
        // Grows by 20 MiB in the first half (warm-up), flat with noise after.
        let v = judge(&samples(|t| {
            let mib = if t < 90.0 { 10.0 + t / 4.5 } else { 30.0 + (t as u64 % 20) as f64 / 10.0 };
            ((mib * MIB) as u64, 12, 3, 500)
        }));
        for x in &v {
            assert!(x.pass, "{x:?}");
        }
    }

    #[test]
    fn steady_growth_fails() {
        // 10 MiB over the last 90 s; an fd per sample; losses going on; tracked climbing.
        let v = judge(&samples(|t| {
            (((20.0 + t / 9.0) * MIB) as u64, 10 + (t / 10.0) as u64, t as u64, 100 + 50 * t as u64)
        }));
        for m in ["rss", "fds", "lost", "tracked"] {
            assert!(!verdict(&v, m).pass, "{:?}", verdict(&v, m));
        }
        assert!(verdict(&v, "cpu").pass, "{:?}", verdict(&v, "cpu"));
    }

    #[test]
    fn too_few_samples_fail() {
        let s: Vec<Sample> = samples(|_| (1, 1, 0, 1)).into_iter().take(3).collect();
        assert!(judge(&s).iter().all(|v| !v.pass));
    }

    #[test]
    fn bound_takes_the_larger_of_floor_and_rate() {
        let b = Bound { metric: "x", unit: "u", floor: 4.0, per_min: 0.25 };
        assert_eq!(b.allowed(1.0), 4.0);
        assert_eq!(b.allowed(60.0), 15.0);
    }

    #[test]
    fn noise_in_a_short_run_passes_a_leak_does_not() {
        let short = |rss: &[f64]| -> Vec<Sample> {
            rss.iter()
                .enumerate()
                .map(|(i, mib)| Sample {
                    secs: i as f64 * 10.0,
                    rss_bytes: (mib * MIB) as u64,
                    cpu_ticks: i as u64 * 10,
                    fds: 20,
                    lost: 0,
                    tracked: 100,
                })
                .collect()
        };
        // Seen in a 90 s run under load: warm-up noise, no trend to speak of.
        let noisy = judge(&short(&[15.0, 46.0, 42.0, 76.0, 80.0, 73.0, 96.0, 101.0, 82.0, 100.0]));
        assert!(verdict(&noisy, "rss").pass, "{:?}", verdict(&noisy, "rss"));
        // 2 MiB every 10 s, in a straight line.
        let leak: Vec<f64> = (0..10).map(|i| 40.0 + 2.0 * i as f64).collect();
        let leak = judge(&short(&leak));
        assert!(!verdict(&leak, "rss").pass, "{:?}", verdict(&leak, "rss"));
    }
}
