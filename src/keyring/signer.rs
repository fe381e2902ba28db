//! Who signs for a bank key version: the gateway itself with a key file (`file`), or a
//! cryptographic module holding the key (`sdf` or `pkcs11`, docs/hsm.md), reached through the
//! small [`ModuleDevice`] trait so that both share the pool, deadline and health below.
//!
//! Every backend signs the same digest: the gateway computes e = SM3(Z‖M) once (Z from the
//! configured signer ID and the version's public key) and a module signs those 32 bytes. A
//! module is a slow, blocking, possibly remote device, so its calls run on tokio's blocking
//! pool, at most `sessions` at a time (one open session each), each under a deadline that
//! includes the wait for a session. A call past its deadline answers [`ModuleSignError::Timeout`]
//! at once; the stuck thread keeps its session slot until the module answers, so a hung module
//! can never take more than `sessions` threads. The first answer that comes back marks the
//! module healthy again — no restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::device::{DeviceError, DeviceSession, ModuleDevice};
use crate::crypto::sm3::{message_digest, z_a};
use crate::crypto::{PreparedSigner, PublicKey, SignError, Signature};

/// The signing half of a loaded bank key version.
pub enum BankSigner {
    /// A key file, prepared by the configured engine; signs inline (microseconds).
    File(Box<dyn PreparedSigner>),
    /// A key inside a module.
    Module(Arc<ModuleSigner>),
}

impl std::fmt::Debug for BankSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankSigner::File(s) => write!(f, "BankSigner::File({})", s.public_key().fingerprint()),
            BankSigner::Module(m) => write!(f, "{m:?}"),
        }
    }
}

impl BankSigner {
    /// The version's public key.
    pub fn public_key(&self) -> &PublicKey {
        match self {
            BankSigner::File(s) => s.public_key(),
            BankSigner::Module(m) => &m.public,
        }
    }

    /// `file`, `sdf` or `pkcs11`.
    pub fn backend(&self) -> &'static str {
        match self {
            BankSigner::File(_) => "file",
            BankSigner::Module(m) => m.backend(),
        }
    }

    /// The module behind this version, if any.
    pub fn module(&self) -> Option<&Arc<ModuleSigner>> {
        match self {
            BankSigner::File(_) => None,
            BankSigner::Module(m) => Some(m),
        }
    }

    /// Signs `message` on the calling thread. For a module this blocks until it answers (no
    /// deadline): for tools, load-time checks and tests — never on an async worker, where
    /// [`Self::sign_async`] is the way.
    pub fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        match self {
            BankSigner::File(s) => s.sign(message),
            BankSigner::Module(m) => m
                .sign_blocking(&m.digest(message), message)
                .map_err(|_| SignError("the signing module refused the signature")),
        }
    }

    /// Signs `message` on the calling thread without ever waiting past the module's deadline:
    /// a file key inline, a module key on a thread of its own (see
    /// [`ModuleSigner::sign_within_deadline`]). For a thread that is not an async worker and
    /// must not stall on a hung module: the audit writer signing checkpoints.
    pub fn sign_within_deadline(&self, message: &[u8]) -> Result<Signature, BankSignError> {
        match self {
            BankSigner::File(s) => s.sign(message).map_err(BankSignError::Engine),
            BankSigner::Module(m) => m
                .sign_within_deadline(message)
                .map_err(BankSignError::Module),
        }
    }

    /// Signs `message`: a file key inline (no task, no await point of its own), a module key
    /// off the async workers under the module's deadline.
    pub async fn sign_async(&self, message: &[u8]) -> Result<Signature, BankSignError> {
        match self {
            BankSigner::File(s) => s.sign(message).map_err(BankSignError::Engine),
            BankSigner::Module(m) => m.sign(message).await.map_err(BankSignError::Module),
        }
    }
}

/// Why a response could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum BankSignError {
    /// The engine failed (cannot with a validated key; RNG failure).
    #[error(transparent)]
    Engine(SignError),
    /// The module did not sign.
    #[error(transparent)]
    Module(ModuleSignError),
}

/// Why a module did not sign.
#[derive(Debug, thiserror::Error)]
pub enum ModuleSignError {
    /// No answer within the deadline (module stuck or every session busy).
    #[error("the signing module did not answer within {0:?}")]
    Timeout(Duration),
    /// The module answered with an error.
    #[error("the signing module failed: {0}")]
    Device(#[from] DeviceError),
    /// The module's signature is not a valid encoding (checked by the client already; kept
    /// for completeness).
    #[error("the signing module returned a malformed signature")]
    Malformed,
    /// The blocking task did not finish (runtime shutting down).
    #[error("the signing task was cancelled")]
    Cancelled,
}

impl ModuleSignError {
    /// The `reason` label of `gateway_signer_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ModuleSignError::Timeout(_) => "timeout",
            ModuleSignError::Device(_) => "device",
            ModuleSignError::Malformed => "malformed",
            ModuleSignError::Cancelled => "cancelled",
        }
    }
}

/// Where a module-backed version lives and how it is used.
#[derive(Debug, Clone)]
pub struct ModuleSettings {
    /// The module's name in the manifest.
    pub name: String,
    /// The vendor library.
    pub library: PathBuf,
    /// Where the key is in the module (`key index 1`, `key CKA_LABEL `…``), for logs.
    pub key: String,
    /// Sessions kept open (= signatures in flight at most).
    pub sessions: usize,
    /// Deadline of one signature, queueing included.
    pub timeout: Duration,
}

/// A bank key version inside a module: the device (which opens sessions able to sign with the
/// key), a pool of open sessions, and the version's public key with its Z.
pub struct ModuleSigner {
    settings: ModuleSettings,
    device: Box<dyn ModuleDevice>,
    public: PublicKey,
    z_a: [u8; 32],
    /// Open sessions not in use (each able to sign: access right held, or logged in).
    idle: Mutex<Vec<Box<dyn DeviceSession>>>,
    /// One permit per session that may be in use.
    slots: Arc<Semaphore>,
    /// False from a failed or late call until the next call that succeeds.
    healthy: AtomicBool,
    /// A readiness probe is running.
    probing: AtomicBool,
}

impl std::fmt::Debug for ModuleSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleSigner")
            .field("backend", &self.device.backend())
            .field("module", &self.settings.name)
            .field("library", &self.settings.library)
            .field("key", &self.settings.key)
            .field("public_key", &self.public.fingerprint())
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

/// How often [`ModuleSigner::sign_within_deadline`] looks for a free session slot.
const SLOT_POLL: Duration = Duration::from_millis(1);

/// The message of the test signature made at load and by readiness probes.
pub const PROBE_MESSAGE: &[u8] = b"pension-gateway module check";

impl ModuleSigner {
    /// The signer of `device`, whose first session `session` (opened and checked by the
    /// device) reads the key's public key. The caller checks that key against the ring's record
    /// before using the signer.
    pub fn open(
        settings: ModuleSettings,
        device: Box<dyn ModuleDevice>,
        mut session: Box<dyn DeviceSession>,
        signer_id: &[u8],
    ) -> Result<Self, DeviceError> {
        let sec1 = session.public_key()?;
        let public = PublicKey::from_sec1(&sec1).map_err(|_| DeviceError::NotSm2Point)?;
        let z_a = z_a(signer_id, &public).unwrap_or([0; 32]);
        let slots = Arc::new(Semaphore::new(settings.sessions));
        Ok(Self {
            settings,
            device,
            public,
            z_a,
            idle: Mutex::new(vec![session]),
            slots,
            healthy: AtomicBool::new(true),
            probing: AtomicBool::new(false),
        })
    }

    /// The public key the module exported for this key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The module's name in the manifest.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The vendor library's path.
    pub fn library(&self) -> &Path {
        &self.settings.library
    }

    /// `sdf` or `pkcs11`.
    pub fn backend(&self) -> &'static str {
        self.device.backend()
    }

    /// Whether the last call answered in time and without error.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// e = SM3(Z‖M) for this key.
    fn digest(&self, message: &[u8]) -> [u8; 32] {
        message_digest(&self.z_a, message)
    }

    /// Signs `message` off the async workers: e computed here, the module call on the blocking
    /// pool, the whole under the deadline.
    pub async fn sign(self: &Arc<Self>, message: &[u8]) -> Result<Signature, ModuleSignError> {
        let e = self.digest(message);
        // Only a PKCS#11 profile whose mechanism hashes uses it; a response is a few KB.
        let message = message.to_vec();
        let deadline = self.settings.timeout;
        let me = Arc::clone(self);
        let call = async move {
            let slot = Arc::clone(&me.slots)
                .acquire_owned()
                .await
                .map_err(|_| ModuleSignError::Cancelled)?;
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                me.sign_blocking(&e, &message)
            })
            .await
            .map_err(|_| ModuleSignError::Cancelled)?
        };
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                self.healthy.store(false, Ordering::Relaxed);
                Err(ModuleSignError::Timeout(deadline))
            }
        }
    }

    /// Signs `message` from a thread outside the async runtime, under the same deadline and
    /// session slots as [`Self::sign`]: the caller waits at most `timeout` for a slot and the
    /// module's answer, which comes on a thread of its own. Past the deadline it answers
    /// [`ModuleSignError::Timeout`] and marks the module unhealthy; the stuck thread keeps its
    /// slot until the module answers, so a hung module still holds at most `sessions` threads.
    /// One short-lived thread per call: for rare signatures (audit checkpoints), not answers.
    pub fn sign_within_deadline(
        self: &Arc<Self>,
        message: &[u8],
    ) -> Result<Signature, ModuleSignError> {
        let timeout = self.settings.timeout;
        let deadline = Instant::now() + timeout;
        let late = || {
            self.healthy.store(false, Ordering::Relaxed);
            Err(ModuleSignError::Timeout(timeout))
        };
        // tokio's semaphore has no blocking wait with a deadline: poll it (a slot frees within
        // one signature's time unless the module hangs, when the deadline ends the wait).
        let slot = loop {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(slot) => break slot,
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(ModuleSignError::Cancelled)
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return late();
                    }
                    std::thread::sleep(left.min(SLOT_POLL));
                }
            }
        };
        let e = self.digest(message);
        let message = message.to_vec();
        let me = Arc::clone(self);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("module-sign".into())
            .spawn(move || {
                let _slot = slot;
                // The caller may have stopped waiting (deadline): nobody to tell then.
                let _ = tx.send(me.sign_blocking(&e, &message));
            })
            .map_err(|_| ModuleSignError::Cancelled)?;
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => late(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ModuleSignError::Cancelled),
        }
    }

    /// One signature on the calling thread (blocks while the module does): an idle session,
    /// or a new one with the key's access right; a session that failed is closed, not reused.
    fn sign_blocking(&self, e: &[u8; 32], message: &[u8]) -> Result<Signature, ModuleSignError> {
        let result = self.sign_with_session(e, message);
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    fn sign_with_session(
        &self,
        e: &[u8; 32],
        message: &[u8],
    ) -> Result<Signature, ModuleSignError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut session = match idle {
            Some(s) => s,
            None => self.device.open_session()?,
        };
        let (r, s) = session.sign(e, message)?;
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(session);
        Signature::from_scalars(r, s).map_err(|_| ModuleSignError::Malformed)
    }

    /// Readiness: healthy, or a probe signature (under the deadline) succeeds now. At most one
    /// probe runs at a time; a check during a probe answers "not healthy".
    pub async fn check(self: &Arc<Self>) -> bool {
        if self.is_healthy() {
            return true;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let ok = self.sign(PROBE_MESSAGE).await.is_ok();
        self.probing.store(false, Ordering::Release);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EngineKind, SecretKey, DEFAULT_SIGNER_ID};
    use std::sync::Condvar;

    /// Set while the device hangs; its sessions wait on the condition variable until cleared.
    type Hang = Arc<(Mutex<bool>, Condvar)>;

    /// A device whose sessions sign with a real key, or hang while `hung` is set until it is
    /// cleared.
    struct Fake {
        key: Arc<sm2_fast::SigningKey>,
        hung: Hang,
    }

    struct FakeSession(Arc<sm2_fast::SigningKey>, Hang);

    impl ModuleDevice for Fake {
        fn backend(&self) -> &'static str {
            "sdf"
        }
        fn open_session(&self) -> Result<Box<dyn DeviceSession>, DeviceError> {
            Ok(Box::new(FakeSession(
                Arc::clone(&self.key),
                Arc::clone(&self.hung),
            )))
        }
    }

    impl DeviceSession for FakeSession {
        fn public_key(&mut self) -> Result<[u8; 65], DeviceError> {
            Ok(self.0.public_key().to_sec1_uncompressed())
        }
        fn sign(&mut self, e: &[u8; 32], _: &[u8]) -> Result<([u8; 32], [u8; 32]), DeviceError> {
            let (lock, cv) = &*self.1;
            let mut hung = lock.lock().unwrap();
            while *hung {
                hung = cv.wait(hung).unwrap();
            }
            Ok(self.0.sign_prehash_with_k(e, &[0x5a; 32]).unwrap())
        }
    }

    fn signer(timeout: Duration) -> (Arc<ModuleSigner>, SecretKey, Hang) {
        let key = SecretKey::generate();
        let fast = Arc::new(sm2_fast::SigningKey::from_bytes(&key.to_bytes()).unwrap());
        let hung = Arc::new((Mutex::new(false), Condvar::new()));
        let device = Fake {
            key: Arc::clone(&fast),
            hung: Arc::clone(&hung),
        };
        let session = device.open_session().unwrap();
        let settings = ModuleSettings {
            name: "hsm".into(),
            library: PathBuf::from("/fake/libsdf.so"),
            key: "key index 1".into(),
            sessions: 2,
            timeout,
        };
        let m = ModuleSigner::open(settings, Box::new(device), session, DEFAULT_SIGNER_ID).unwrap();
        (Arc::new(m), key, hung)
    }

    fn set_hung(hung: &(Mutex<bool>, Condvar), on: bool) {
        *hung.0.lock().unwrap() = on;
        hung.1.notify_all();
    }

    #[test]
    fn sign_within_deadline_signs_e_of_the_message_and_never_waits_past_the_deadline() {
        let (m, key, hung) = signer(Duration::from_millis(200));
        let verifier = EngineKind::RustCrypto
            .engine()
            .verifier(&key.public_key(), DEFAULT_SIGNER_ID)
            .unwrap();
        // The module signs e = SM3(Z‖M) of the message: an independent engine verifies it.
        let message = b"pension-gateway audit gw-a\n1\nAAAA\ntime 1\n";
        let sig = m.sign_within_deadline(message).unwrap();
        verifier.verify(message, &sig).unwrap();
        assert!(verifier.verify(b"another body", &sig).is_err());
        assert!(m.is_healthy());

        // Hung: each call answers Timeout at its deadline; the two stuck threads hold both
        // session slots, so the third times out waiting for a slot, not in the module.
        set_hung(&hung, true);
        for _ in 0..3 {
            let started = Instant::now();
            let err = m.sign_within_deadline(message).unwrap_err();
            assert!(matches!(err, ModuleSignError::Timeout(_)), "{err}");
            // The deadline is 200 ms; the bound only keeps a loaded machine from failing it.
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(!m.is_healthy());
        }
        assert_eq!(
            m.slots.available_permits(),
            0,
            "the stuck calls hold their slots"
        );

        // The module answers again: the stuck calls end, their slots come back, signing works.
        set_hung(&hung, false);
        let until = Instant::now() + Duration::from_secs(5);
        while m.slots.available_permits() < 2 {
            assert!(
                Instant::now() < until,
                "the stuck calls never gave their slots back"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let sig = m.sign_within_deadline(message).unwrap();
        verifier.verify(message, &sig).unwrap();
        assert!(m.is_healthy());
    }
}
