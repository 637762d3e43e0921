//! The transport layer (RFC 4253) shared by the server and client machines: the version
//! exchange, KEXINIT negotiation, the `curve25519-sha256` exchange (RFC 8731) signed with
//! the Ed25519 host key, key derivation, strict KEX against Terrapin (OpenSSH's
//! `kex-strict-*-v00@openssh.com`: sequence numbers reset at each NEWKEYS, nothing but
//! key exchange messages before the first), re-keying by bytes and by time, and the
//! server's `EXT_INFO` (`server-sig-algs`, so RSA keys sign with SHA-2).
//!
//! Sans-IO: bytes in (`Transport::input`), service payloads out
//! (`Transport::poll_payload`), payloads in (`Transport::send`), packets out
//! (`Transport::take_output`). A protocol error records why (`Transport::error`),
//! queues a DISCONNECT and stops all further processing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ring::agreement;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::cipher::{CIPHERS, CipherKeys, Opener, Sealer};
use super::keys::{PublicKey, SigningKey};
use super::wire::{Reader, Writer, msg, reason};

/// Transport settings shared by both roles.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Our version string, without the line end.
    pub version: String,
    /// Re-key after this many bytes (both directions) since the last exchange.
    pub rekey_bytes: u64,
    /// Re-key after this long since the last exchange.
    pub rekey_interval: Duration,
    /// The longest time the version exchange and first key exchange may take.
    pub handshake_timeout: Duration,
    /// Client role: the host key algorithms offered, preferred first (by default every
    /// one [`HOST_KEY_ALGS`] names). A client whose `known_hosts` lists one key type for a
    /// host should offer that type alone, as OpenSSH's `HostKeyAlgorithms` does. The
    /// server offers those of its host keys, whatever this says.
    pub host_key_algorithms: Vec<String>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            version: format!("SSH-2.0-ringwork_{}", env!("CARGO_PKG_VERSION")),
            rekey_bytes: 1 << 30,
            rekey_interval: Duration::from_secs(3600),
            handshake_timeout: Duration::from_secs(30),
            host_key_algorithms: HOST_KEY_ALGS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Checks the server's host key (client role): `Err(why)` refuses it.
pub type HostKeyCheck = Arc<dyn Fn(&PublicKey) -> Result<(), String> + Send + Sync>;

/// Which end of the connection.
pub(crate) enum Role {
    /// The host keys, each offered with its algorithms (at least one key).
    Server(Vec<Arc<SigningKey>>),
    Client(HostKeyCheck),
}

const KEX_ALGS: &[&str] = &["curve25519-sha256", "curve25519-sha256@libssh.org"];
const STRICT_S: &str = "kex-strict-s-v00@openssh.com";
const STRICT_C: &str = "kex-strict-c-v00@openssh.com";
const EXT_INFO_C: &str = "ext-info-c";
const MAX_VERSION_LINE: usize = 255;
const MAX_BANNER_LINES: usize = 32;
/// Host key algorithms a client verifies, in its default order of preference.
pub const HOST_KEY_ALGS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "rsa-sha2-512",
    "rsa-sha2-256",
];
/// Sign algorithms the server verifies (announced in `server-sig-algs`).
pub(crate) const SIG_ALGS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "rsa-sha2-512",
    "rsa-sha2-256",
];

#[derive(Default)]
struct Kex {
    ours: Option<Vec<u8>>,
    theirs: Option<Vec<u8>>,
    cipher_cs: String,
    cipher_sc: String,
    ephemeral: Option<agreement::EphemeralPrivateKey>,
    /// The negotiated host key algorithm.
    host_alg: String,
    /// Keys for the incoming direction, installed at the peer's NEWKEYS.
    incoming: Option<CipherKeys>,
    newkeys_sent: bool,
    /// The peer guessed wrong with `first_kex_packet_follows`: drop its next packet.
    skip_guess: bool,
}

/// One connection's transport state.
pub(crate) struct Transport {
    role: Role,
    config: TransportConfig,
    rng: SystemRandom,
    inbuf: BytesMut,
    out: BytesMut,
    version_sent: bool,
    peer_version: Option<Vec<u8>>,
    banner_lines: usize,
    sealer: Sealer,
    opener: Opener,
    kex: Option<Kex>,
    session_id: Option<Vec<u8>>,
    held: VecDeque<Vec<u8>>,
    strict: bool,
    peer_ext_info: bool,
    /// The first exchange has completed in both directions.
    ready: bool,
    received_packets: u64,
    bytes_since_kex: u64,
    rekey_at: Option<Instant>,
    handshake_deadline: Option<Instant>,
    error: Option<String>,
    peer_host_key: Option<PublicKey>,
    rekeys: u64,
}

impl Transport {
    pub(crate) fn new(role: Role, config: TransportConfig) -> Self {
        Self {
            role,
            config,
            rng: SystemRandom::new(),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            version_sent: false,
            peer_version: None,
            banner_lines: 0,
            sealer: Sealer::new(),
            opener: Opener::new(),
            kex: None,
            session_id: None,
            held: VecDeque::new(),
            strict: false,
            peer_ext_info: false,
            ready: false,
            received_packets: 0,
            bytes_since_kex: 0,
            rekey_at: None,
            handshake_deadline: None,
            error: None,
            peer_host_key: None,
            rekeys: 0,
        }
    }

    /// Our host key algorithms: the server's keys' (in their order), or the client's
    /// configured list.
    fn host_key_algorithms(&self) -> Vec<&str> {
        match &self.role {
            Role::Server(keys) => {
                let mut algs: Vec<&str> = Vec::new();
                for alg in keys.iter().flat_map(|k| k.algorithms()) {
                    if !algs.contains(alg) {
                        algs.push(alg);
                    }
                }
                algs
            }
            Role::Client(_) => self
                .config
                .host_key_algorithms
                .iter()
                .map(String::as_str)
                .collect(),
        }
    }

    fn is_server(&self) -> bool {
        matches!(self.role, Role::Server(_))
    }

    /// Sends our version line and first KEXINIT.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.version_sent {
            return;
        }
        self.version_sent = true;
        self.handshake_deadline = Some(now + self.config.handshake_timeout);
        let line = format!("{}\r\n", self.config.version);
        self.out.extend_from_slice(line.as_bytes());
        self.send_kexinit();
    }

    /// Bytes from the peer.
    pub(crate) fn input(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.inbuf.extend_from_slice(data);
        }
    }

    /// Bytes buffered but not yet a whole packet (bounded by one packet).
    pub(crate) fn buffered(&self) -> usize {
        self.inbuf.len()
    }

    /// Why the transport failed, once it has.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The session identifier (the first exchange hash), once known.
    pub(crate) fn session_id(&self) -> Option<&[u8]> {
        self.session_id.as_deref()
    }

    /// Whether the first key exchange has completed.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether strict KEX is on.
    pub(crate) fn is_strict(&self) -> bool {
        self.strict
    }

    /// Completed re-keys (exchanges after the first).
    pub(crate) fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// The host key the server proved (client role).
    pub(crate) fn peer_host_key(&self) -> Option<&PublicKey> {
        self.peer_host_key.as_ref()
    }

    /// Packets to write.
    pub(crate) fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// Whether packets wait to be taken by `Transport::take_output` (payloads held for a
    /// key exchange do not count: at a close they are dropped).
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes queued to write (the caller's backpressure signal).
    pub(crate) fn pending_output(&self) -> usize {
        self.out.len() + self.held.iter().map(Vec::len).sum::<usize>()
    }

    /// The next deadline: the handshake's, or the time-based re-key.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        if self.ready {
            self.rekey_at
        } else {
            self.handshake_deadline
        }
    }

    /// Acts on deadlines at or before `now`.
    pub(crate) fn timeout(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        if !self.ready {
            if self.handshake_deadline.is_some_and(|d| d <= now) {
                self.fail(reason::PROTOCOL_ERROR, "key exchange timed out");
            }
        } else if self.rekey_at.is_some_and(|d| d <= now) && self.kex.is_none() {
            self.send_kexinit();
        }
    }

    /// Queues a service payload: sent now, or held while a key exchange runs.
    pub(crate) fn send(&mut self, payload: Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        if self.kex.is_some() || !self.ready {
            self.held.push_back(payload);
        } else {
            self.seal(&payload);
        }
    }

    /// Queues a DISCONNECT and stops (a local decision, not a peer error).
    pub(crate) fn disconnect(&mut self, code: u32, text: &str) {
        self.fail(code, text);
    }

    fn seal(&mut self, payload: &[u8]) {
        let n = self.sealer.seal(payload, &mut self.out);
        self.count(n as u64);
    }

    fn count(&mut self, n: u64) {
        self.bytes_since_kex = self.bytes_since_kex.saturating_add(n);
        if self.ready && self.kex.is_none() && self.bytes_since_kex >= self.config.rekey_bytes {
            self.send_kexinit();
        }
    }

    fn fail(&mut self, code: u32, text: &str) {
        if self.error.is_some() {
            return;
        }
        let mut w = Writer::message(msg::DISCONNECT);
        w.u32(code).string(text).string("");
        if self.version_sent {
            self.sealer.seal(w.as_slice(), &mut self.out);
        }
        self.error = Some(text.to_owned());
        self.held.clear();
        self.inbuf.clear();
    }

    fn send_kexinit(&mut self) {
        let mut cookie = [0u8; 16];
        let _ = self.rng.fill(&mut cookie);
        let mut kex: Vec<&str> = KEX_ALGS.to_vec();
        if self.is_server() {
            kex.push(STRICT_S);
        } else {
            kex.push(EXT_INFO_C);
            kex.push(STRICT_C);
        }
        let host_algs = self.host_key_algorithms();
        let mut w = Writer::message(msg::KEXINIT);
        w.raw(&cookie)
            .name_list(&kex)
            .name_list(&host_algs)
            .name_list(CIPHERS)
            .name_list(CIPHERS)
            .name_list(&["hmac-sha2-256"])
            .name_list(&["hmac-sha2-256"])
            .name_list(&["none"])
            .name_list(&["none"])
            .name_list(&[])
            .name_list(&[])
            .bool(false)
            .u32(0);
        let payload = w.finish();
        // The exchange is marked running before sealing: sealing counts bytes, and the
        // byte limit must not start a second exchange.
        let state = self.kex.get_or_insert_with(Kex::default);
        state.ours = Some(payload.clone());
        self.seal(&payload);
    }

    /// Runs the transport on buffered input: the next service payload (message number
    /// 5..=7 or 50 and up), or `None` when more bytes are needed or the transport failed.
    pub(crate) fn poll_payload(&mut self) -> Option<Vec<u8>> {
        if self.error.is_some() || !self.read_version() {
            return None;
        }
        loop {
            if self.error.is_some() {
                return None;
            }
            let (payload, wire_len) = match self.opener.open(&mut self.inbuf) {
                Ok(Some(p)) => p,
                Ok(None) => return None,
                Err(e) => {
                    self.fail(reason::MAC_ERROR, &e.to_string());
                    return None;
                }
            };
            self.received_packets += 1;
            self.count(wire_len as u64);
            if let Some(p) = self.handle_packet(payload) {
                return Some(p);
            }
        }
    }

    fn read_version(&mut self) -> bool {
        while self.peer_version.is_none() {
            let Some(end) = self.inbuf.iter().position(|&b| b == b'\n') else {
                if self.inbuf.len() > MAX_VERSION_LINE {
                    self.fail(reason::PROTOCOL_ERROR, "version line too long");
                }
                return false;
            };
            let line = self.inbuf.split_to(end + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_VERSION_LINE {
                self.fail(reason::PROTOCOL_ERROR, "version line too long");
                return false;
            }
            if line.starts_with(b"SSH-") {
                if !(line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-")) {
                    self.fail(reason::PROTOCOL_ERROR, "only SSH 2.0 is supported");
                    return false;
                }
                self.peer_version = Some(line.to_vec());
            } else {
                // A server may send lines before its version; a client may not.
                self.banner_lines += 1;
                if self.is_server() || self.banner_lines > MAX_BANNER_LINES {
                    self.fail(reason::PROTOCOL_ERROR, "expected an SSH version line");
                    return false;
                }
            }
        }
        true
    }

    /// One packet: transport messages are handled here; service payloads are returned.
    fn handle_packet(&mut self, payload: Vec<u8>) -> Option<Vec<u8>> {
        let Some(&number) = payload.first() else {
            self.fail(reason::PROTOCOL_ERROR, "empty packet");
            return None;
        };
        if let Some(kex) = &mut self.kex
            && kex.skip_guess
            && (30..=49).contains(&number)
        {
            kex.skip_guess = false;
            return None;
        }
        let in_first_kex = !self.ready;
        match number {
            msg::KEXINIT => self.on_kexinit(payload),
            msg::KEX_ECDH_INIT if self.is_server() => self.on_ecdh_init(&payload),
            msg::KEX_ECDH_REPLY if !self.is_server() => self.on_ecdh_reply(&payload),
            msg::NEWKEYS => self.on_newkeys(),
            msg::DISCONNECT => {
                let mut r = Reader::new(&payload[1..]);
                let _ = r.u32();
                let text = r.utf8().unwrap_or("").to_owned();
                self.error = Some(format!("peer disconnected: {text}"));
                self.held.clear();
            }
            msg::IGNORE | msg::DEBUG | msg::UNIMPLEMENTED if !(in_first_kex && self.strict) => {}
            _ if in_first_kex || (30..=49).contains(&number) || number < msg::SERVICE_REQUEST => {
                self.fail(
                    reason::PROTOCOL_ERROR,
                    &format!("unexpected message {number}"),
                );
            }
            _ if self.kex.as_ref().is_some_and(|k| k.theirs.is_some()) => {
                // After its KEXINIT the peer sends nothing but the exchange until NEWKEYS.
                self.fail(reason::PROTOCOL_ERROR, "message during key exchange");
            }
            _ => return Some(payload),
        }
        None
    }

    fn on_kexinit(&mut self, payload: Vec<u8>) {
        if self.kex.as_ref().is_some_and(|k| k.theirs.is_some()) {
            self.fail(
                reason::PROTOCOL_ERROR,
                "second KEXINIT during a key exchange",
            );
            return;
        }
        if self.kex.is_none() {
            self.send_kexinit();
        }
        let mut r = Reader::new(&payload[1..]);
        let parsed = (|| {
            r.bytes(16)?;
            let lists: Vec<Vec<&str>> = (0..10).map(|_| r.name_list()).collect::<Result<_, _>>()?;
            let follows = r.bool()?;
            Ok::<_, super::wire::WireError>((lists, follows))
        })();
        let Ok((lists, follows)) = parsed else {
            self.fail(reason::PROTOCOL_ERROR, "malformed KEXINIT");
            return;
        };
        let server = self.is_server();
        let first = self.session_id.is_none();
        if first {
            let marker = if server { STRICT_C } else { STRICT_S };
            if lists[0].contains(&marker) {
                if self.received_packets != 1 {
                    self.fail(
                        reason::PROTOCOL_ERROR,
                        "strict KEX: KEXINIT was not the first packet",
                    );
                    return;
                }
                self.strict = true;
            }
            if server && lists[0].contains(&EXT_INFO_C) {
                self.peer_ext_info = true;
            }
        }
        // The client's list decides: its first name the server also has.
        let pick = |ours: &[&str], theirs: &[&str]| -> Option<String> {
            let (client, server_list) = if server {
                (theirs, ours)
            } else {
                (ours, theirs)
            };
            client
                .iter()
                .find(|n| server_list.contains(n))
                .map(|s| (*s).to_owned())
        };
        let kex_alg = pick(KEX_ALGS, &lists[0]);
        let host_alg = pick(&self.host_key_algorithms(), &lists[1]);
        let cipher_cs = pick(CIPHERS, &lists[2]);
        let cipher_sc = pick(CIPHERS, &lists[3]);
        let comp_ok = lists[6].contains(&"none") && lists[7].contains(&"none");
        let (Some(kex_alg), Some(host_alg), Some(cipher_cs), Some(cipher_sc), true) =
            (kex_alg, host_alg, cipher_cs, cipher_sc, comp_ok)
        else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "no common algorithm");
            return;
        };
        let kex = self.kex.get_or_insert_with(Kex::default);
        if follows
            && lists[0]
                .first()
                .map(|s| *s != kex_alg.as_str())
                .unwrap_or(true)
        {
            kex.skip_guess = true;
        }
        kex.theirs = Some(payload);
        kex.host_alg = host_alg;
        kex.cipher_cs = cipher_cs;
        kex.cipher_sc = cipher_sc;
        if !server {
            let Ok(ephemeral) =
                agreement::EphemeralPrivateKey::generate(&agreement::X25519, &self.rng)
            else {
                self.fail(reason::KEY_EXCHANGE_FAILED, "random source failed");
                return;
            };
            let Ok(public) = ephemeral.compute_public_key() else {
                self.fail(reason::KEY_EXCHANGE_FAILED, "key generation failed");
                return;
            };
            let mut w = Writer::message(msg::KEX_ECDH_INIT);
            w.string(public.as_ref());
            kex.ephemeral = Some(ephemeral);
            let payload = w.finish();
            self.seal(&payload);
        }
    }

    fn exchange_hash(&self, host_blob: &[u8], q_c: &[u8], q_s: &[u8], k: &[u8]) -> Option<Vec<u8>> {
        let kex = self.kex.as_ref()?;
        let (ours, theirs) = (kex.ours.as_ref()?, kex.theirs.as_ref()?);
        let ours_v = self.config.version.as_bytes();
        let theirs_v = self.peer_version.as_deref()?;
        let (v_c, v_s, i_c, i_s) = if self.is_server() {
            (theirs_v, ours_v, theirs, ours)
        } else {
            (ours_v, theirs_v, ours, theirs)
        };
        let mut w = Writer::new();
        w.string(v_c)
            .string(v_s)
            .string(i_c)
            .string(i_s)
            .string(host_blob);
        w.string(q_c).string(q_s).mpint(k);
        Some(
            digest::digest(&digest::SHA256, w.as_slice())
                .as_ref()
                .to_vec(),
        )
    }

    /// Derives both directions' keys; installs the outgoing one after our NEWKEYS.
    fn derive_and_send_newkeys(&mut self, k: &[u8], h: &[u8]) {
        if self.session_id.is_none() {
            self.session_id = Some(h.to_vec());
        }
        let session_id = self.session_id.clone().unwrap_or_default();
        let mut k_mpint = Writer::new();
        k_mpint.mpint(k);
        let k_mpint = k_mpint.finish();
        let derive = |letter: u8, len: usize| -> Vec<u8> {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(&k_mpint);
            ctx.update(h);
            ctx.update(&[letter]);
            ctx.update(&session_id);
            let mut out = ctx.finish().as_ref().to_vec();
            while out.len() < len {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(&k_mpint);
                ctx.update(h);
                ctx.update(&out);
                out.extend_from_slice(ctx.finish().as_ref());
            }
            out.truncate(len);
            out
        };
        let Some(kex) = self.kex.as_ref() else { return };
        let (cs, sc) = (kex.cipher_cs.clone(), kex.cipher_sc.clone());
        let (key_cs_len, iv_cs_len) = CipherKeys::sizes(&cs);
        let (key_sc_len, iv_sc_len) = CipherKeys::sizes(&sc);
        let iv_cs = derive(b'A', iv_cs_len);
        let iv_sc = derive(b'B', iv_sc_len);
        let key_cs = derive(b'C', key_cs_len);
        let key_sc = derive(b'D', key_sc_len);
        let server = self.is_server();
        let (out_name, out_key, out_iv, in_name, in_key, in_iv) = if server {
            (&sc, &key_sc, &iv_sc, &cs, &key_cs, &iv_cs)
        } else {
            (&cs, &key_cs, &iv_cs, &sc, &key_sc, &iv_sc)
        };
        let (Some(outgoing), Some(incoming)) = (
            CipherKeys::new(out_name, out_key, out_iv, true),
            CipherKeys::new(in_name, in_key, in_iv, false),
        ) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "cipher setup failed");
            return;
        };
        self.seal(&[msg::NEWKEYS]);
        self.sealer.keys = outgoing;
        if self.strict {
            self.sealer.seq = 0;
        }
        if let Some(kex) = &mut self.kex {
            kex.incoming = Some(incoming);
            kex.newkeys_sent = true;
        }
        // EXT_INFO goes right after the server's first NEWKEYS.
        if server && self.peer_ext_info && !self.ready && self.rekeys == 0 {
            let mut w = Writer::message(msg::EXT_INFO);
            w.u32(1).string("server-sig-algs").name_list(SIG_ALGS);
            let payload = w.finish();
            self.seal(&payload);
        }
    }

    fn on_ecdh_init(&mut self, payload: &[u8]) {
        let Role::Server(host_keys) = &self.role else {
            return;
        };
        let host_alg = self
            .kex
            .as_ref()
            .map(|k| k.host_alg.clone())
            .unwrap_or_default();
        let Some(host_key) = host_keys
            .iter()
            .find(|k| k.algorithms().contains(&host_alg.as_str()))
            .map(Arc::clone)
        else {
            self.fail(reason::PROTOCOL_ERROR, "ECDH_INIT out of order");
            return;
        };
        let q_c = match Reader::new(&payload[1..]).string() {
            Ok(q) if q.len() == 32 => q.to_vec(),
            _ => {
                self.fail(reason::KEY_EXCHANGE_FAILED, "bad ECDH public key");
                return;
            }
        };
        if self
            .kex
            .as_ref()
            .is_none_or(|k| k.theirs.is_none() || k.newkeys_sent)
        {
            self.fail(reason::PROTOCOL_ERROR, "ECDH_INIT out of order");
            return;
        }
        let Ok(ephemeral) = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &self.rng)
        else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "random source failed");
            return;
        };
        let Ok(q_s) = ephemeral.compute_public_key() else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "key generation failed");
            return;
        };
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, &q_c);
        let Ok(k) = agreement::agree_ephemeral(ephemeral, &peer, |k| k.to_vec()) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "bad ECDH public key");
            return;
        };
        let host_blob = host_key.public_blob();
        let Some(h) = self.exchange_hash(&host_blob, &q_c, q_s.as_ref(), &k) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "exchange state missing");
            return;
        };
        let Ok(signature) = host_key.sign_as(&host_alg, &h) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "host key signing failed");
            return;
        };
        let mut w = Writer::message(msg::KEX_ECDH_REPLY);
        w.string(&host_blob).string(q_s.as_ref()).string(signature);
        let reply = w.finish();
        self.seal(&reply);
        self.derive_and_send_newkeys(&k, &h);
    }

    fn on_ecdh_reply(&mut self, payload: &[u8]) {
        let Role::Client(check) = &self.role else {
            return;
        };
        let check = Arc::clone(check);
        let mut r = Reader::new(&payload[1..]);
        let (Ok(host_blob), Ok(q_s), Ok(sig)) = (r.string(), r.string(), r.string()) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "malformed ECDH reply");
            return;
        };
        let Some(ephemeral) = self.kex.as_mut().and_then(|k| k.ephemeral.take()) else {
            self.fail(reason::PROTOCOL_ERROR, "ECDH reply out of order");
            return;
        };
        let Ok(q_c) = ephemeral.compute_public_key() else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "key generation failed");
            return;
        };
        let q_c = q_c.as_ref().to_vec();
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, q_s);
        let Ok(k) = agreement::agree_ephemeral(ephemeral, &peer, |k| k.to_vec()) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "bad ECDH public key");
            return;
        };
        let host_alg = self
            .kex
            .as_ref()
            .map(|k| k.host_alg.clone())
            .unwrap_or_default();
        let sig_alg = Reader::new(sig).utf8().unwrap_or("");
        let host = match PublicKey::from_blob(host_blob) {
            Ok(key) if key.accepts_algorithm(&host_alg) && sig_alg == host_alg => key,
            _ => {
                self.fail(reason::HOST_KEY_NOT_VERIFIABLE, "unsupported host key");
                return;
            }
        };
        let Some(h) = self.exchange_hash(host_blob, &q_c, q_s, &k) else {
            self.fail(reason::KEY_EXCHANGE_FAILED, "exchange state missing");
            return;
        };
        if !host.verify(&h, sig) {
            self.fail(
                reason::KEY_EXCHANGE_FAILED,
                "host key signature does not verify",
            );
            return;
        }
        // The key must be the one we know (also at re-keys: the same host).
        if let Some(known) = &self.peer_host_key {
            if known != &host {
                self.fail(
                    reason::HOST_KEY_NOT_VERIFIABLE,
                    "host key changed at re-key",
                );
                return;
            }
        } else if let Err(why) = check(&host) {
            self.fail(reason::HOST_KEY_NOT_VERIFIABLE, &why);
            return;
        }
        self.peer_host_key = Some(host);
        self.derive_and_send_newkeys(&k, &h);
    }

    fn on_newkeys(&mut self) {
        let Some(mut kex) = self.kex.take() else {
            self.fail(reason::PROTOCOL_ERROR, "NEWKEYS without a key exchange");
            return;
        };
        let Some(incoming) = kex.incoming.take().filter(|_| kex.newkeys_sent) else {
            self.fail(reason::PROTOCOL_ERROR, "NEWKEYS before the exchange");
            return;
        };
        self.opener.keys = incoming;
        if self.strict {
            self.opener.seq = 0;
        }
        if self.ready {
            self.rekeys += 1;
        }
        self.ready = true;
        self.bytes_since_kex = 0;
        self.rekey_at = None;
        while let Some(payload) = self.held.pop_front() {
            self.seal(&payload);
            if self.kex.is_some() {
                break; // the byte limit started the next exchange: hold the rest
            }
        }
    }

    /// Starts the time-based re-key clock (called with the time of the last exchange).
    pub(crate) fn arm_rekey(&mut self, now: Instant) {
        if self.ready && self.rekey_at.is_none() && self.kex.is_none() {
            self.rekey_at = Some(now + self.config.rekey_interval);
        }
    }
}
