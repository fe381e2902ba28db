//! Rotation from a file key to a module key while WeChat keeps querying: several clients send
//! signed queries back to back while the module version is added (as `keys add-module-key`
//! does), rolled out to 50 %, activated and the file version retired, each step followed by a
//! reload. Every answer must be a 200 whose signature the WeChat-side client verifies; the
//! versions that signed are counted per phase (a request sent and answered between the same two
//! reloads; one that spans a reload is checked but not counted in a phase).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::setup::{
    assert_no_failures, busy_gateway, hsm_entry, hsm_password_file, key_dir, query_until_done,
    wait_for_answers,
};
use super::signer::{assert_no_private_key, serial};

/// Clients querying at once.
const CLIENTS: usize = 6;
/// Answers each phase must see before the next step (generous: at 50 % the chance that one
/// version never signs in 80 answers is 2⁻⁷⁹).
const PER_PHASE: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// v2 added as staged: v1 signs.
    Staged,
    /// v2 rolled out to 50 %.
    Rollout,
    /// v2 active, v1 retiring.
    Active,
    /// v1 retired.
    Retired,
}

#[actix_web::test]
async fn rotation_file_to_module_under_concurrent_load() {
    let _serial = serial().await;
    let (mut gw, index, key) = busy_gateway().await;
    let ring = gw.keys.dir.path().to_path_buf();
    hsm_password_file(&ring);
    // The WeChat side knows v2's public key before it signs anything (exported first).
    gw.keys.bank.push((2, key.clone()));
    let svc = gw.service().await;
    let admin = key_dir(&ring);

    let phase = Cell::new(Phase::Staged);
    let done = Cell::new(false);
    // (phase, version) → answers; failures as text, so every client keeps going and the test
    // reports them all.
    let counts: RefCell<BTreeMap<(Phase, u32), usize>> = RefCell::default();
    let failures: RefCell<Vec<String>> = RefCell::default();
    let crossed = Cell::new(0usize);
    let in_phase = |p: Phase| -> usize {
        counts
            .borrow()
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|(_, n)| n)
            .sum()
    };

    let client = |c: usize| {
        let (phase, counts, failures, crossed) = (&phase, &counts, &failures, &crossed);
        query_until_done(
            &svc,
            &gw.keys,
            (c, CLIENTS),
            phase,
            &done,
            move |sent_in, resp| match (&resp.signed_by, resp.status) {
                // Sent before a reload and answered after it: checked, not counted in a
                // phase (either set may have signed it).
                (Ok(_), 200) if phase.get() != sent_in => crossed.set(crossed.get() + 1),
                (Ok(v), 200) => *counts.borrow_mut().entry((sent_in, *v)).or_default() += 1,
                _ => failures.borrow_mut().push(format!(
                    "{sent_in:?}: HTTP {} {:?}, signature {:?}",
                    resp.status, resp.json, resp.signed_by
                )),
            },
        )
    };

    let driver = async {
        let wait_for = |p: Phase| {
            wait_for_answers(
                move || in_phase(p) >= PER_PHASE,
                &failures,
                move || format!("{p:?}: too few answers"),
            )
        };
        // v1 (file) active, v2 added in the module as staged, loaded by a reload.
        let declare = hsm_entry(4, 5000);
        assert_eq!(
            admin.add_module_key("hsm", index, Some(declare)).unwrap(),
            2
        );
        gw.state.keyring().reload().unwrap();
        wait_for(Phase::Staged).await;
        admin.rollout(2, 50).unwrap();
        gw.state.keyring().reload().unwrap();
        phase.set(Phase::Rollout);
        wait_for(Phase::Rollout).await;
        admin.activate(2).unwrap();
        gw.state.keyring().reload().unwrap();
        phase.set(Phase::Active);
        wait_for(Phase::Active).await;
        admin.retire(1).unwrap();
        gw.state.keyring().reload().unwrap();
        phase.set(Phase::Retired);
        wait_for(Phase::Retired).await;
        done.set(true);
    };

    futures_util::future::join(
        driver,
        futures_util::future::join_all((0..CLIENTS).map(client)),
    )
    .await;

    assert_no_failures(failures.into_inner());
    let counts = counts.into_inner();
    let n = |p, v| counts.get(&(p, v)).copied().unwrap_or(0);
    eprintln!(
        "answers per (phase, version): {counts:?}; {} across a reload",
        crossed.get()
    );
    // Staged: only the file key signs. Rollout: both. Active and retired: only the module.
    assert!(n(Phase::Staged, 1) >= PER_PHASE, "{counts:?}");
    assert_eq!(
        n(Phase::Staged, 2),
        0,
        "a staged version never signs: {counts:?}"
    );
    assert!(
        n(Phase::Rollout, 1) > 0,
        "v1 signs part of the rollout: {counts:?}"
    );
    assert!(
        n(Phase::Rollout, 2) > 0,
        "v2 signs part of the rollout: {counts:?}"
    );
    assert_eq!(n(Phase::Active, 1), 0, "{counts:?}");
    assert!(n(Phase::Active, 2) >= PER_PHASE, "{counts:?}");
    assert_eq!(n(Phase::Retired, 1), 0, "{counts:?}");
    assert!(n(Phase::Retired, 2) >= PER_PHASE, "{counts:?}");
    // The module's private key was never written into the ring directory.
    assert_no_private_key(&ring, &key);
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains("gateway_sign_seconds_count{engine=\"sdf\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("gateway_signer_failures_total{backend=\"sdf\""),
        "no module call failed: {metrics}"
    );
}
