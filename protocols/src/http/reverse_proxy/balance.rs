//! How an upstream pool chooses a server (sans-IO): round-robin, least connections, or a
//! consistent hash of the client's address or of a request header.
//!
//! Owns: [`Balance`], [`HashKey`], [`HashRing`] and [`key_hash`].
//! Contract: the hash is the same in every process and version (FNV-1a with a 64-bit
//! finalizer, not std's unspecified hasher), so proxies and restarts agree on where a key
//! goes; each server has [`POINTS_PER_SERVER`] points on the ring, placed by its address
//! alone, so a server leaving (down, or gone from the configuration) moves only the keys it
//! had, and one coming back takes back exactly those.
//! Does not: count connections (the pool does, per core) or read requests (the proxy
//! hashes the key it asks for).

use std::net::IpAddr;

/// How a pool spreads requests over its servers (`balance` in the proxy's TOML).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub enum Balance {
    /// Each server in turn (default).
    #[default]
    RoundRobin,
    /// The server with the fewest requests in flight from this core (ties in turn).
    LeastConnections,
    /// The server a consistent hash of `HashKey` names: the same client (or header value)
    /// goes to the same server while it is up.
    ConsistentHash(HashKey),
}

/// What a consistent-hash pool hashes.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum HashKey {
    /// The client's IP address (after a PROXY header, the one it names).
    ClientIp,
    /// A request header's value (lowercase name); a request without it goes round-robin.
    Header(String),
}

impl Balance {
    /// Parses the TOML's `balance` (`round-robin`, `least-connections`, `consistent-hash`)
    /// with its `hash_key` (`client_ip`, default, or `header:NAME`).
    ///
    /// # Errors
    /// What is wrong: an unknown name, or a `hash_key` without `consistent-hash`.
    pub fn parse(balance: &str, hash_key: Option<&str>) -> Result<Balance, String> {
        let balance = match balance {
            "round-robin" => Balance::RoundRobin,
            "least-connections" => Balance::LeastConnections,
            "consistent-hash" => {
                Balance::ConsistentHash(HashKey::parse(hash_key.unwrap_or("client_ip"))?)
            }
            other => {
                return Err(format!(
                    "{other:?}: one of \"round-robin\", \"least-connections\", \
                     \"consistent-hash\""
                ));
            }
        };
        if hash_key.is_some() && !matches!(balance, Balance::ConsistentHash(_)) {
            return Err("hash_key goes with balance = \"consistent-hash\"".into());
        }
        Ok(balance)
    }
}

impl HashKey {
    fn parse(text: &str) -> Result<HashKey, String> {
        if text == "client_ip" {
            return Ok(HashKey::ClientIp);
        }
        match text.strip_prefix("header:") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) =>
            {
                Ok(HashKey::Header(name.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "hash_key {text:?}: \"client_ip\" or \"header:NAME\" (a header field name)"
            )),
        }
    }
}

/// Points each server has on the ring: enough for an even spread (within about ±15 % over
/// a few servers) at a few KiB per pool.
pub const POINTS_PER_SERVER: usize = 160;

/// FNV-1a over `bytes`, then a 64-bit finalizer (MurmurHash3's `fmix64`) so that nearby
/// inputs land far apart on the ring. Stable: the same in every build.
#[must_use]
pub fn key_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The hash of a client address (IPv4-mapped IPv6 as its IPv4 address).
#[must_use]
pub fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => key_hash(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => key_hash(&v4.octets()),
            None => key_hash(&v6.octets()),
        },
    }
}

/// The ring of a consistent-hash pool: sorted points, each naming a server index.
#[derive(Clone, Debug, Default)]
pub struct HashRing {
    points: Vec<(u64, usize)>,
}

impl HashRing {
    /// The ring of servers named `names` (their addresses as text: a server's points
    /// depend on its name only).
    #[must_use]
    pub fn new<S: AsRef<str>>(names: &[S]) -> HashRing {
        let mut points = Vec::with_capacity(names.len() * POINTS_PER_SERVER);
        for (index, name) in names.iter().enumerate() {
            for point in 0..POINTS_PER_SERVER {
                let label = format!("{}#{point}", name.as_ref());
                points.push((key_hash(label.as_bytes()), index));
            }
        }
        points.sort_unstable();
        HashRing { points }
    }

    /// The servers in ring order from `hash`, each once: the first that is up takes the
    /// request.
    pub fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(point, _)| *point < hash);
        let (before, after) = self.points.split_at(start);
        let mut seen = Vec::new();
        after
            .iter()
            .chain(before)
            .map(|(_, index)| *index)
            .filter(move |index| {
                if seen.contains(index) {
                    false
                } else {
                    seen.push(*index);
                    true
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(Balance::parse("round-robin", None), Ok(Balance::RoundRobin));
        assert_eq!(
            Balance::parse("least-connections", None),
            Ok(Balance::LeastConnections)
        );
        assert_eq!(
            Balance::parse("consistent-hash", None),
            Ok(Balance::ConsistentHash(HashKey::ClientIp))
        );
        assert_eq!(
            Balance::parse("consistent-hash", Some("header:X-User")),
            Ok(Balance::ConsistentHash(HashKey::Header("x-user".into())))
        );
        assert!(Balance::parse("random", None).is_err());
        assert!(Balance::parse("round-robin", Some("client_ip")).is_err());
        assert!(Balance::parse("consistent-hash", Some("header:")).is_err());
        assert!(Balance::parse("consistent-hash", Some("cookie")).is_err());
    }

    #[test]
    fn hash_is_stable() {
        // Fixed values: a change of the function would move every client of every proxy.
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_eq!(key_hash(b"10.0.0.1"), 0xc879_e56d_dc6c_5c88);
        assert_eq!(key_hash(b""), 0xefd0_1f60_ba99_2926);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(ip_hash(mapped), ip_hash(v4));
    }
}
