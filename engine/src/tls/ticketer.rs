//! Stateless session tickets shared by every core without locks.
//!
//! Owns: [`CoreTicketer`], rustls's [`ProducesTickets`] for one core.
//! Contract: every core holds a copy of the same master secret (chosen at random when the
//! acceptor is built), so a ticket issued on one core resumes on any other — SO_REUSEPORT
//! sends a client's next connection wherever it likes. The key of a ticket is derived from
//! the master secret and the ticket's epoch (`unix time / lifetime`) with HKDF-SHA256:
//! keys rotate every `lifetime` without any cross-core coordination, and a ticket is
//! accepted in its own epoch and the next one. Nonces are an instance id (unique in the
//! process) and a per-instance counter, so two cores never reuse a nonce under one key.
//! Nothing here takes a lock: rustls's own rotating ticketer guards its keys with an
//! `RwLock` every handshake would touch.
//! Does not: persist keys (a restart invalidates outstanding tickets, as with nginx's
//! default); share keys between processes.
//! Tests: below.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Instance ids: the first half of every nonce.
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Bytes of a ticket's header: epoch (4) and nonce (12).
const HEADER: usize = 4 + NONCE_LEN;

/// The master secret every core's ticketer derives its keys from.
#[derive(Clone)]
pub(crate) struct TicketSecret {
    master: Arc<[u8; 32]>,
    lifetime: u32,
}

impl std::fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSecret")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TicketSecret {
    /// A random secret; tickets live `lifetime` seconds (at least 1).
    pub(crate) fn random(lifetime: u32) -> Result<Self, rustls::Error> {
        let mut master = [0u8; 32];
        SystemRandom::new()
            .fill(&mut master)
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        Ok(Self {
            master: Arc::new(master),
            lifetime: lifetime.max(1),
        })
    }

    /// A ticketer for one core (its own nonce space).
    pub(crate) fn ticketer(&self) -> CoreTicketer {
        CoreTicketer {
            secret: self.clone(),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            counter: AtomicU64::new(0),
            clock: None,
        }
    }
}

/// One core's ticketer (see the module docs).
#[derive(Debug)]
pub(crate) struct CoreTicketer {
    secret: TicketSecret,
    instance: u32,
    /// Only this core uses it: the atomic is uncontended (it is here because rustls needs
    /// `Sync`).
    counter: AtomicU64,
    /// A fixed clock (unix seconds) for tests.
    clock: Option<u64>,
}

impl CoreTicketer {
    fn now(&self) -> u64 {
        self.clock.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    fn epoch(&self) -> u32 {
        // Truncation: epochs wrap after 2^32 lifetimes (thousands of years at 1 s).
        (self.now() / u64::from(self.secret.lifetime)) as u32
    }

    fn key(&self, epoch: u32) -> Option<LessSafeKey> {
        let prk = Salt::new(HKDF_SHA256, b"ringwork session tickets").extract(&*self.secret.master);
        let info = epoch.to_be_bytes();
        let info = [&info[..]];
        let okm = prk.expand(&info, &CHACHA20_POLY1305).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

impl ProducesTickets for CoreTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.secret.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let epoch = self.epoch();
        let key = self.key(epoch)?;
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.instance.to_be_bytes());
        nonce[4..].copy_from_slice(&count.to_be_bytes());
        let mut out = Vec::with_capacity(HEADER + plain.len() + CHACHA20_POLY1305.tag_len());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..4]),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < HEADER + CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let epoch = u32::from_be_bytes(cipher[..4].try_into().ok()?);
        let current = self.epoch();
        // This epoch's tickets and the previous one's (a ticket issued just before a
        // rotation stays valid for about one lifetime).
        if epoch != current && epoch.wrapping_add(1) != current {
            return None;
        }
        let key = self.key(epoch)?;
        let nonce = Nonce::try_assume_unique_for_key(&cipher[4..HEADER]).ok()?;
        let mut body = cipher[HEADER..].to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(&cipher[..4]), &mut body)
            .ok()?;
        let len = plain.len();
        body.truncate(len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secret: &TicketSecret, clock: u64) -> CoreTicketer {
        let mut t = secret.ticketer();
        t.clock = Some(clock);
        t
    }

    #[test]
    fn a_ticket_from_one_core_opens_on_another() {
        let secret = TicketSecret::random(3600).unwrap();
        let (a, b) = (at(&secret, 1_000_000), at(&secret, 1_000_000));
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        // Another instance never repeats a nonce.
        let other = b.encrypt(b"session state").unwrap();
        assert_ne!(ticket[4..HEADER], other[4..HEADER]);
    }

    #[test]
    fn tickets_expire_after_the_next_epoch_and_tampering_fails() {
        let secret = TicketSecret::random(100).unwrap();
        let ticket = at(&secret, 1_000).encrypt(b"x").unwrap();
        assert!(at(&secret, 1_099).decrypt(&ticket).is_some());
        assert!(
            at(&secret, 1_150).decrypt(&ticket).is_some(),
            "previous epoch"
        );
        assert!(
            at(&secret, 1_200).decrypt(&ticket).is_none(),
            "two epochs later"
        );
        let mut bad = ticket.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(at(&secret, 1_000).decrypt(&bad).is_none());
        let mut epoch_moved = ticket;
        epoch_moved[3] ^= 1;
        assert!(at(&secret, 1_000).decrypt(&epoch_moved).is_none());
        let stranger = TicketSecret::random(100).unwrap();
        let foreign = at(&stranger, 1_000).encrypt(b"x").unwrap();
        assert!(at(&secret, 1_000).decrypt(&foreign).is_none());
        assert!(at(&secret, 1_000).decrypt(&[0; 10]).is_none());
    }
}
