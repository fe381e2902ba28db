//! A module that hangs, then fails, then recovers, while WeChat keeps querying. Bank v1 (a file)
//! is active and v2 (in the software SDF device) rolled out to 50 %, so about half the answers
//! need the module and half do not. Several clients query back to back and one polls `/healthz`,
//! all on the test's single-threaded runtime — the one thread that serves every request here,
//! as an HTTP worker does. While the module hangs and then fails:
//!
//! - every answer that needed it is the unsigned 503, and it arrives while the module is still
//!   hung (so at its deadline, not when the module answers);
//! - answers signed by the file key and `/healthz` keep coming, counted: had a module call held
//!   the thread, nothing would have answered until the hang ended;
//!
//! then the module answers again and v2 signs without a restart. Counts, not speed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use pension_gateway::http::wechat::respond::MODULE_UNAVAILABLE_BODY;

use super::setup::{
    app, assert_no_failures, busy_gateway, key_dir, query_until_done, wait_for_answers, write_ring,
};
use super::signer::{manifest, module_section, readyz, serial, set_control, wait_ready};
use crate::common::softsdf::softsdf_library;

/// Clients querying at once (the module has 2 sessions).
const CLIENTS: usize = 8;
/// Of each kind of answer, how many each phase must see before the next.
const PER_PHASE: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Healthy,
    Hung,
    Failing,
    Recovered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// 200, verified under this bank version.
    Signed(u32),
    /// The unsigned 503: exactly the documented body, no signature.
    Unsigned503,
    /// `/healthz` answered 200.
    Healthz,
}

#[actix_web::test]
async fn module_hang_and_failure_under_load_block_no_worker() {
    let _serial = serial().await;
    let (mut gw, index, key) = busy_gateway().await;
    let ring = gw.keys.dir.path().to_path_buf();
    // 2 sessions, a 300 ms deadline.
    let module = module_section(&ring, softsdf_library(), 300);
    write_ring(
        &ring,
        &key.public_key(),
        &manifest("active", "staged", index, &module),
    );
    key_dir(&ring).rollout(2, 50).unwrap();
    gw.state
        .keyring()
        .reload()
        .expect("the module version loads");
    gw.keys.bank.push((2, key.clone()));
    let svc = app(gw.state.clone()).await;

    let phase = Cell::new(Phase::Healthy);
    let done = Cell::new(false);
    let counts: RefCell<BTreeMap<(Phase, Outcome), usize>> = RefCell::default();
    let crossed = Cell::new(0usize);
    let failures: RefCell<Vec<String>> = RefCell::default();
    let count = |p: Phase, o: Outcome| counts.borrow().get(&(p, o)).copied().unwrap_or(0);
    let record = |sent_in: Phase, o: Outcome| {
        // Sent in one phase and answered in the next: checked, not counted in either.
        if phase.get() == sent_in {
            *counts.borrow_mut().entry((sent_in, o)).or_default() += 1;
        } else {
            crossed.set(crossed.get() + 1);
        }
    };

    let client = |c: usize| {
        let (record, failures) = (&record, &failures);
        query_until_done(
            &svc,
            &gw.keys,
            (c, CLIENTS),
            &phase,
            &done,
            move |sent_in, resp| match (resp.status, &resp.signed_by) {
                (200, Ok(v)) => record(sent_in, Outcome::Signed(*v)),
                (503, _)
                    if resp.body == MODULE_UNAVAILABLE_BODY.as_bytes()
                        && resp.header("WxIns-Signature").is_none() =>
                {
                    record(sent_in, Outcome::Unsigned503)
                }
                _ => failures.borrow_mut().push(format!(
                    "{sent_in:?}: HTTP {} {:?}, signature {:?}",
                    resp.status, resp.json, resp.signed_by
                )),
            },
        )
    };
    let healthz = async {
        while !done.get() {
            let sent_in = phase.get();
            let resp = actix_web::test::call_service(
                &svc,
                actix_web::test::TestRequest::get()
                    .uri("/healthz")
                    .to_request(),
            )
            .await;
            if resp.status() == 200 {
                record(sent_in, Outcome::Healthz);
            } else {
                failures
                    .borrow_mut()
                    .push(format!("{sent_in:?}: /healthz {}", resp.status()));
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    };

    let driver = async {
        // Waits until phase `p` has seen at least PER_PHASE of each outcome in `want`.
        let wait_for = |p: Phase, want: &'static [Outcome]| {
            wait_for_answers(
                move || want.iter().all(|o| count(p, *o) >= PER_PHASE),
                &failures,
                move || {
                    format!(
                        "{p:?}: too few of {want:?} (healthz {}, v1 {}, v2 {}, 503 {})",
                        count(p, Outcome::Healthz),
                        count(p, Outcome::Signed(1)),
                        count(p, Outcome::Signed(2)),
                        count(p, Outcome::Unsigned503)
                    )
                },
            )
        };
        const SIGNING: &[Outcome] = &[Outcome::Signed(1), Outcome::Signed(2), Outcome::Healthz];
        const DEGRADED: &[Outcome] = &[Outcome::Signed(1), Outcome::Unsigned503, Outcome::Healthz];
        wait_for(Phase::Healthy, SIGNING).await;
        set_control("hang = sign\n");
        phase.set(Phase::Hung);
        wait_for(Phase::Hung, DEGRADED).await;
        set_control("fail = sign\n");
        phase.set(Phase::Failing);
        wait_for(Phase::Failing, DEGRADED).await;
        set_control("");
        wait_ready(&svc).await;
        phase.set(Phase::Recovered);
        wait_for(Phase::Recovered, SIGNING).await;
        done.set(true);
    };

    futures_util::future::join3(
        driver,
        healthz,
        futures_util::future::join_all((0..CLIENTS).map(client)),
    )
    .await;
    set_control("");

    assert_no_failures(failures.into_inner());
    let counts = counts.into_inner();
    eprintln!(
        "answers per (phase, outcome): {counts:?}; {} across a phase change",
        crossed.get()
    );
    let n = |p, o| counts.get(&(p, o)).copied().unwrap_or(0);
    for p in [Phase::Healthy, Phase::Recovered] {
        assert_eq!(n(p, Outcome::Unsigned503), 0, "{p:?}: {counts:?}");
        assert!(n(p, Outcome::Signed(2)) >= PER_PHASE, "{p:?}: {counts:?}");
    }
    for p in [Phase::Hung, Phase::Failing] {
        // Nothing the module should have signed was signed, and what needed it was answered
        // (the 503) while the module was still hung / failing.
        assert_eq!(n(p, Outcome::Signed(2)), 0, "{p:?}: {counts:?}");
        assert!(n(p, Outcome::Unsigned503) >= PER_PHASE, "{p:?}: {counts:?}");
        // What did not need the module kept answering on the same single thread.
        assert!(n(p, Outcome::Signed(1)) >= PER_PHASE, "{p:?}: {counts:?}");
        assert!(n(p, Outcome::Healthz) >= PER_PHASE, "{p:?}: {counts:?}");
    }
    let metrics = gw.state.metrics().render();
    for reason in ["timeout", "device"] {
        assert!(
            metrics.contains(&format!(
                "gateway_signer_failures_total{{backend=\"sdf\",reason=\"{reason}\"}}"
            )),
            "{metrics}"
        );
    }
    assert_eq!(readyz(&svc).await.0, 200, "ready again without a restart");
}
