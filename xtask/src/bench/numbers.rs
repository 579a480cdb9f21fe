//! Medians and ranges over runs; how numbers are printed.

use std::time::Duration;

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

pub(super) fn median(v: &[f64]) -> Option<f64> {
    let s = sorted(v);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

pub(super) fn min(v: &[f64]) -> Option<f64> {
    sorted(v).first().copied()
}

pub(super) fn max(v: &[f64]) -> Option<f64> {
    sorted(v).last().copied()
}

/// (max − min) / median.
pub(super) fn spread(v: &[f64]) -> f64 {
    match (min(v), max(v), median(v)) {
        (Some(lo), Some(hi), Some(m)) if m > 0.0 => (hi - lo) / m,
        _ => 0.0,
    }
}

/// 1234567.8 -> "1,234,568".
pub(super) fn fmt_ops(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub(super) fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert!((spread(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-9);
        assert_eq!(fmt_ops(1_234_567.8), "1,234,568");
        assert_eq!(fmt_ops(999.0), "999");
        assert_eq!(fmt_ops(-1000.0), "-1,000");
    }
}
