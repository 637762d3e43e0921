//! Which hosts take a domain's mail, in which order (RFC 5321 §5.1, RFC 7505), sans-IO.
//!
//! Owns: [`plan_mx`]: MX records (or their absence) in, the hosts to try out — sorted by
//! preference, equal preferences shuffled (RFC 5321 §5.1: "randomize them to spread the
//! load"), the domain itself when it has no MX (the implicit MX), and the null MX
//! (RFC 7505: a lone `MX 0 .`, "this domain takes no mail") recognised.
//! Does not: look anything up (the engine glue asks the resolver and passes the answer).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// One host to try.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct MxHost {
    /// The MX preference (0 for the implicit MX).
    pub preference: u16,
    /// The host name (no trailing dot).
    pub host: String,
}

/// What to do with a domain's mail.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum MxPlan {
    /// Try these hosts in order.
    Hosts(Vec<MxHost>),
    /// The domain publishes a null MX: it accepts no mail (RFC 7505 §3; bounce with
    /// `556 5.1.10`).
    NullMx,
}

/// The plan for `domain` given its MX records as `(preference, exchange)` (exchange in
/// presentation form; `.` is the root), or `None` when the domain exists without MX
/// records (then the domain itself is the one host, RFC 5321 §5.1). `seed` drives the
/// shuffle of equal preferences.
#[must_use]
pub fn plan_mx(domain: &str, records: Option<&[(u16, String)]>, seed: u64) -> MxPlan {
    let Some(records) = records else {
        return MxPlan::Hosts(vec![MxHost {
            preference: 0,
            host: domain.trim_end_matches('.').to_owned(),
        }]);
    };
    let is_null = |exchange: &str| exchange.is_empty() || exchange == ".";
    let mut hosts: Vec<MxHost> = records
        .iter()
        .filter(|(_, exchange)| !is_null(exchange))
        .map(|(preference, exchange)| MxHost {
            preference: *preference,
            host: exchange.trim_end_matches('.').to_ascii_lowercase(),
        })
        .collect();
    if hosts.is_empty() {
        // Only null MX records (or none at all in a NOERROR answer that listed MX).
        return if records.is_empty() {
            plan_mx(domain, None, seed)
        } else {
            MxPlan::NullMx
        };
    }
    hosts.sort_by(|a, b| {
        a.preference
            .cmp(&b.preference)
            .then_with(|| a.host.cmp(&b.host))
    });
    hosts.dedup();
    let mut rng = StdRng::seed_from_u64(seed);
    for group in hosts.chunk_by_mut(|a, b| a.preference == b.preference) {
        group.shuffle(&mut rng);
    }
    MxPlan::Hosts(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, (*h).to_owned())).collect()
    }

    fn names(plan: &MxPlan) -> Vec<String> {
        match plan {
            MxPlan::Hosts(hosts) => hosts.iter().map(|h| h.host.clone()).collect(),
            MxPlan::NullMx => vec!["<null>".into()],
        }
    }

    #[test]
    fn sorted_by_preference_and_equal_ones_shuffled() {
        let list = records(&[
            (20, "c.test."),
            (10, "a.test."),
            (10, "b.test."),
            (30, "d.test"),
        ]);
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let plan = plan_mx("x.test", Some(&list), seed);
            let hosts = names(&plan);
            assert_eq!(hosts[2..], ["c.test", "d.test"], "seed {seed}");
            firsts.insert(hosts[0].clone());
        }
        assert_eq!(
            firsts.len(),
            2,
            "both equal-preference hosts come first sometimes"
        );
    }

    #[test]
    fn no_mx_is_the_domain_itself_and_a_null_mx_refuses() {
        assert_eq!(names(&plan_mx("x.test.", None, 1)), ["x.test"]);
        assert_eq!(
            plan_mx("x.test", Some(&records(&[(0, ".")])), 1),
            MxPlan::NullMx
        );
        // A null MX beside real ones is ignored (RFC 7505 §3).
        assert_eq!(
            names(&plan_mx(
                "x.test",
                Some(&records(&[(0, "."), (5, "mx.test")])),
                1
            )),
            ["mx.test"]
        );
        assert_eq!(names(&plan_mx("x.test", Some(&[]), 1)), ["x.test"]);
    }
}
