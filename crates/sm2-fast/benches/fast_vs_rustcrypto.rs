//! Sign and verify throughput of the fast engine against RustCrypto `sm2` 0.13 and libsm 0.6,
//! all in one criterion run, over the prehash paths (e = SM3(Z_A ‖ M) computed up front).
//!
//! Run: `cargo bench -p sm2-fast --bench fast_vs_rustcrypto`. At the end it prints the speed-up ratios
//! read back from criterion's estimates of this run.

use criterion::Criterion;
use std::hint::black_box;
use std::time::Duration;

use sm2::dsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use sm2_fast as fast;
use sm3::{Digest, Sm3};

const D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";

fn h32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hex::decode(s).expect("hex"));
    out
}

fn prehash(pk: &[u8; 65]) -> [u8; 32] {
    // e = SM3(Z_A ‖ "message digest") with the default ID.
    let mut z = Sm3::new();
    z.update([0x00, 0x80]);
    z.update(b"1234567812345678");
    for c in [
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC",
        "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93",
        "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7",
        "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0",
    ] {
        z.update(h32(c));
    }
    z.update(&pk[1..]);
    let mut h = Sm3::new();
    h.update(z.finalize());
    h.update(b"message digest");
    h.finalize().into()
}

fn bench(c: &mut Criterion) {
    let d = h32(D);
    let mut rng = rand_core::OsRng;

    let fast_sk = fast::SigningKey::from_bytes(&d).expect("key");
    let fast_vk = fast_sk.public_key();
    let pk = fast_vk.to_sec1_uncompressed();
    let e = prehash(&pk);

    let rc_sk = sm2::dsa::SigningKey::from_bytes("1234567812345678", &d.into()).expect("key");
    let rc_vk = rc_sk.verifying_key().clone();

    let ctx = libsm::sm2::signature::SigCtx::new();
    let ls_sk = num_bigint::BigUint::from_bytes_be(&d);
    let ls_pk = ctx.pk_from_sk(&ls_sk).expect("key");

    let (r, s) = fast_sk.sign_prehash(&e, &mut rng);
    let rc_sig = sm2::dsa::Signature::from_scalars(r, s).expect("sig");
    let ls_sig = libsm::sm2::signature::Signature::new(&r, &s);
    assert!(fast_vk.verify_prehash(&e, &r, &s).is_ok());
    assert!(rc_vk.verify_prehash(&e, &rc_sig).is_ok());
    assert!(ctx.verify_raw(&e, &ls_pk, &ls_sig).expect("libsm"));

    let mut g = c.benchmark_group("sm2_sign");
    g.bench_function("fast", |b| {
        b.iter(|| fast_sk.sign_prehash(black_box(&e), &mut rng))
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| {
            let sig: sm2::dsa::Signature = rc_sk
                .sign_prehash_with_rng(&mut rng, black_box(&e))
                .expect("sign");
            sig
        })
    });
    g.bench_function("libsm", |b| {
        b.iter(|| ctx.sign_raw(black_box(&e), &ls_sk).expect("sign"))
    });
    g.finish();

    let mut g = c.benchmark_group("sm2_verify");
    g.bench_function("fast", |b| {
        b.iter(|| fast_vk.verify_prehash(black_box(&e), &r, &s))
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| rc_vk.verify_prehash(black_box(&e), &rc_sig))
    });
    g.bench_function("libsm", |b| {
        b.iter(|| ctx.verify_raw(black_box(&e), &ls_pk, &ls_sig))
    });
    g.finish();

    // Key preparation costs (one-off per key), for the notes.
    let mut g = c.benchmark_group("sm2_prepare");
    g.bench_function("fast_signing_key", |b| {
        b.iter(|| fast::SigningKey::from_bytes(black_box(&d)))
    });
    g.bench_function("fast_verifying_key", |b| {
        b.iter(|| fast::VerifyingKey::from_sec1(black_box(&pk)))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

/// The criterion group, kept in a private module: `criterion_group!` makes its function `pub`
/// and gives it no documentation.
mod group {
    use super::{bench, config};
    criterion::criterion_group! { name = benches; config = config(); targets = bench }
}

/// Mean time in ns from criterion's estimates.json of this run, if present.
fn mean_ns(group: &str, func: &str) -> Option<f64> {
    // Benches run in the package's directory; criterion writes to the workspace's target.
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
    let path = format!("{dir}/criterion/{group}/{func}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let mean = text.get(text.find("\"mean\"")?..)?;
    let pe = mean.get(mean.find("\"point_estimate\":")? + 17..)?;
    let end = pe.find([',', '}'])?;
    pe.get(..end)?.trim().parse().ok()
}

fn main() {
    group::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    println!("\n== ratios (same run; > 1 means fast is faster) ==");
    for group in ["sm2_sign", "sm2_verify"] {
        if let (Some(f), Some(rc), Some(ls)) = (
            mean_ns(group, "fast"),
            mean_ns(group, "rustcrypto"),
            mean_ns(group, "libsm"),
        ) {
            println!(
                "{group}: fast {:.1} µs ({:.0}/s), rustcrypto {:.1} µs, libsm {:.1} µs -> {:.2}x rustcrypto, {:.2}x libsm",
                f / 1e3,
                1e9 / f,
                rc / 1e3,
                ls / 1e3,
                rc / f,
                ls / f
            );
        }
    }
}
