//! Small statistics of the comparison runner: medians, ranges, ratios and rankings.
//!
//! Owns: [`Summary`] (median, min, max of a run's samples), [`ratio`], and the ranking check
//! between two load generators ([`RankCheck`]).
//! Contract: pure functions over `f64` samples; NaN and non-finite samples are ignored, an
//! empty sample set has no summary, and a ratio with a zero or missing side is `None`.
//! Does not: read files, run processes or format text.

use serde::Serialize;

/// Median, minimum and maximum of the samples of one server in one workload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples there were.
    pub n: usize,
}

impl Summary {
    /// Summarises `samples`, skipping non-finite values; `None` when none is left.
    #[must_use]
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// `numerator / denominator`, or `None` when either is missing, zero or not finite.
#[must_use]
pub fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    let (a, b) = (numerator?, denominator?);
    let r = a / b;
    (a.is_finite() && b.is_finite() && b != 0.0 && r.is_finite()).then_some(r)
}

/// Server names ordered by `value`, highest first (ties keep the input order).
#[must_use]
pub fn rank(values: &[(String, f64)]) -> Vec<String> {
    let mut v: Vec<&(String, f64)> = values.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.into_iter().map(|(name, _)| name.clone()).collect()
}

/// Whether two load generators rank the servers of one workload the same way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankCheck {
    /// Servers by ringwork-load's median throughput, fastest first.
    pub ringwork_load: Vec<String>,
    /// Servers by wrk's median throughput, fastest first.
    pub wrk: Vec<String>,
    /// True when both orders are equal.
    pub agree: bool,
    /// Pairs the two tools order differently: `(a, b, gap)` where ringwork-load puts `a`
    /// before `b` and `gap` is wrk's relative difference between them (small gaps are noise).
    pub swapped: Vec<(String, String, f64)>,
}

impl RankCheck {
    /// Compares the rankings of the servers measured by both tools (a server missing from
    /// either side is left out of both).
    #[must_use]
    pub fn new(ringwork_load: &[(String, f64)], wrk: &[(String, f64)]) -> Self {
        let both = |xs: &[(String, f64)], ys: &[(String, f64)]| -> Vec<(String, f64)> {
            xs.iter()
                .filter(|(n, _)| ys.iter().any(|(m, _)| m == n))
                .cloned()
                .collect()
        };
        let a = both(ringwork_load, wrk);
        let b = both(wrk, ringwork_load);
        let (ra, rb) = (rank(&a), rank(&b));
        let pos = |order: &[String], name: &str| order.iter().position(|n| n == name);
        let mut swapped = Vec::new();
        for (i, x) in ra.iter().enumerate() {
            for y in &ra[i + 1..] {
                if pos(&rb, x) > pos(&rb, y) {
                    let value = |name: &str| b.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                    let (vx, vy) = (value(x).unwrap_or(0.0), value(y).unwrap_or(0.0));
                    let gap = if vy > 0.0 { (vy - vx) / vy } else { 0.0 };
                    swapped.push((x.clone(), y.clone(), gap));
                }
            }
        }
        Self {
            agree: ra == rb,
            ringwork_load: ra,
            wrk: rb,
            swapped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(n, x)| ((*n).to_string(), *x)).collect()
    }

    #[test]
    fn summary_of_odd_even_and_empty() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
        assert_eq!(Summary::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn ratio_needs_both_sides_and_a_nonzero_denominator() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(f64::INFINITY), Some(2.0)), None);
    }

    #[test]
    fn rank_orders_highest_first() {
        let order = rank(&named(&[("a", 1.0), ("b", 3.0), ("c", 2.0)]));
        assert_eq!(order, ["b", "c", "a"]);
    }

    #[test]
    fn rank_check_agreement_and_disagreement() {
        let load = named(&[("ringwork", 100.0), ("nginx", 90.0), ("go", 50.0)]);
        let agree = RankCheck::new(
            &load,
            &named(&[("go", 40.0), ("nginx", 80.0), ("ringwork", 85.0)]),
        );
        assert!(agree.agree);
        assert!(agree.swapped.is_empty());

        let disagree = RankCheck::new(
            &load,
            &named(&[("ringwork", 80.0), ("nginx", 88.0), ("go", 45.0)]),
        );
        assert!(!disagree.agree);
        assert_eq!(disagree.wrk, ["nginx", "ringwork", "go"]);
        assert_eq!(disagree.swapped.len(), 1);
        let (a, b, gap) = &disagree.swapped[0];
        assert_eq!((a.as_str(), b.as_str()), ("ringwork", "nginx"));
        assert!((gap - 8.0 / 88.0).abs() < 1e-9);
    }

    #[test]
    fn rank_check_ignores_servers_measured_by_one_tool_only() {
        let load = named(&[("ringwork", 100.0), ("nginx", 90.0), ("python", 5.0)]);
        let check = RankCheck::new(&load, &named(&[("ringwork", 80.0), ("nginx", 70.0)]));
        assert!(check.agree);
        assert_eq!(check.ringwork_load, ["ringwork", "nginx"]);
    }
}
