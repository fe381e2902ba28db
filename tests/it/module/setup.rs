//! Set-up the module tests share: the app with its ops routes, a ring's recorded bank v2 key
//! and manifest, the module's password file and declaration, a reload that reopens the module;
//! for the load tests, a gateway that takes queries back to back, the clients' query loop and
//! the driver's wait for answers.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use pension_gateway::accounts::demo::DEMO_PEOPLE;
use pension_gateway::crypto::{EngineKind, PublicKey, SecretKey};
use pension_gateway::keyring::admin::KeyDir;
use pension_gateway::keyring::{ModuleEntry, ModuleSigner};
use pension_gateway::state::AppState;

use super::signer::{module_key, write_0600, PASSWORD, SIGNER_ID};
use crate::common::softsdf::softsdf_library;
use crate::common::{send, Db, Gateway, Keys, Req, Resp, TestService};

/// The gateway's WeChat routes and its ops routes (`/readyz`, `/healthz`).
pub(super) async fn app(
    state: AppState,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    let ops = state.clone();
    actix_web::test::init_service(
        actix_web::App::new()
            .configure(move |cfg| pension_gateway::http::configure(cfg, state))
            .configure(move |cfg| pension_gateway::ops::configure_ops(cfg, ops)),
    )
    .await
}

/// Bank v2's recorded public key (`bank-v2.pub`) and the manifest (`keyring.toml`) in `ring`.
pub(super) fn write_ring(ring: &Path, recorded: &PublicKey, manifest: &str) {
    std::fs::write(ring.join("bank-v2.pub"), recorded.to_hex()).unwrap();
    std::fs::write(ring.join("keyring.toml"), manifest).unwrap();
}

/// The password file `hsm.pass` of the module `hsm`, in `ring`.
pub(super) fn hsm_password_file(ring: &Path) {
    write_0600(&ring.join("hsm.pass"), &format!("{PASSWORD}\n"));
}

/// The software SDF device as the module `hsm` (password file `hsm.pass`), as
/// `keys add-module-key` declares it.
pub(super) fn hsm_entry(sessions: u16, timeout_ms: u64) -> ModuleEntry {
    ModuleEntry::sdf(
        "hsm".into(),
        softsdf_library().to_path_buf(),
        "hsm.pass".into(),
        sessions,
        timeout_ms,
    )
}

/// Reloads the ring, checking that the reload opened its one module afresh (a new handle, new
/// sessions); the module now in use.
pub(super) fn reload_opens_the_module_anew(gw: &Gateway) -> Arc<ModuleSigner> {
    let module = || {
        gw.state
            .keyring()
            .snapshot()
            .modules()
            .next()
            .expect("the ring has a module")
            .clone()
    };
    let before = module();
    gw.state.keyring().reload().unwrap();
    let after = module();
    assert!(
        !Arc::ptr_eq(&before, &after),
        "a reload opens the module afresh"
    );
    after
}

/// The ring directory as `keys` administers it.
pub(super) fn key_dir(ring: &Path) -> KeyDir {
    KeyDir::new(ring, EngineKind::DEFAULT, SIGNER_ID)
}

/// A gateway that takes queries back to back (SQLite; no per-identity limit, as the demo people
/// are queried over and over) and a fresh key in the device (its index), not yet in the ring.
pub(super) async fn busy_gateway() -> (Gateway, u32, SecretKey) {
    let gw = Gateway::start_with(Db::Sqlite, |s| s.limits.per_identity_per_minute = 0)
        .await
        .unwrap();
    let (index, key) = module_key();
    (gw, index, key)
}

/// One client of a load test: signed queries for the demo people in turn (the `first`-th, then
/// every `stride`-th), back to back until `done`; each answer handed to `answered` with the
/// phase it was sent in.
pub(super) async fn query_until_done<S, B, P: Copy>(
    svc: &S,
    keys: &Keys,
    (first, stride): (usize, usize),
    phase: &Cell<P>,
    done: &Cell<bool>,
    mut answered: impl FnMut(P, Resp),
) where
    S: TestService<B>,
    B: MessageBody,
{
    let mut i = first;
    while !done.get() {
        let person = &DEMO_PEOPLE[i % DEMO_PEOPLE.len()];
        i += stride;
        let sent_in = phase.get();
        let resp = send(
            svc,
            keys,
            Req::query(person.name, person.id_number).build(keys),
        )
        .await;
        answered(sent_in, resp);
    }
}

/// Polls until `enough()` or a failure is recorded; after 120 s fails, saying `missing()`.
pub(super) async fn wait_for_answers(
    enough: impl Fn() -> bool,
    failures: &RefCell<Vec<String>>,
    missing: impl Fn() -> String,
) {
    let until = Instant::now() + Duration::from_secs(120);
    while !enough() && failures.borrow().is_empty() {
        assert!(Instant::now() < until, "{}", missing());
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// No answer failed (the first five named).
pub(super) fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} unexpected answers, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
