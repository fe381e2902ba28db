//! SM2 sign and verify per engine with prepared keys, and the signing-string builders.
//! Run: `cargo bench --bench sm2`. Compare engines as ratios within one run.

use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use pension_gateway::crypto::signing_string::{request_signing_string, response_signing_string};
use pension_gateway::crypto::{EngineKind, SecretKey, DEFAULT_SIGNER_ID};

const BODY: &[u8] = br#"{"session_id":"s-1","user_true_name":"\u5f20\u4e09","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#;

fn engines(c: &mut Criterion) {
    let sk = SecretKey::generate();
    let msg = request_signing_string(
        "POST",
        b"/v1/pension/account",
        "1661776967",
        "5f270f2ff52b0c67dd47cd5c3ee17e91",
        BODY,
    );
    let mut group = c.benchmark_group("sm2");
    group.throughput(Throughput::Elements(1));
    for kind in EngineKind::ALL {
        let engine = kind.engine();
        let signer = engine.signer(&sk, DEFAULT_SIGNER_ID).unwrap();
        let verifier = engine
            .verifier(&sk.public_key(), DEFAULT_SIGNER_ID)
            .unwrap();
        let sig = signer.sign(&msg).unwrap();
        group.bench_function(format!("sign/{kind}"), |b| {
            b.iter(|| signer.sign(black_box(&msg)).unwrap())
        });
        group.bench_function(format!("verify/{kind}"), |b| {
            b.iter(|| verifier.verify(black_box(&msg), black_box(&sig)).unwrap())
        });
    }
    group.finish();
}

fn signing_strings(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing_string");
    group.bench_function("request", |b| {
        b.iter(|| {
            request_signing_string(
                black_box("POST"),
                black_box(b"/v1/pension/account"),
                black_box("1661776967"),
                black_box("5f270f2ff52b0c67dd47cd5c3ee17e91"),
                black_box(BODY),
            )
        })
    });
    group.bench_function("response", |b| {
        b.iter(|| {
            response_signing_string(
                black_box("1661776967"),
                black_box("5f270f2ff52b0c67dd47cd5c3ee17e91"),
                black_box(BODY),
            )
        })
    });
    group.finish();
}

/// The criterion group, kept in a private module: `criterion_group!` makes its function `pub`
/// and gives it no documentation.
mod group {
    use super::{engines, signing_strings, Criterion};
    criterion::criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
        targets = engines, signing_strings
    }
}
criterion_main!(group::benches);
