//! dudect-style constant-time check for signing (harness = false).
//!
//! Times `SigningKey::sign_prehash_with_k` for two classes, interleaved at random:
//! class A = one fixed secret key and one fixed nonce, class B = random keys and random nonces
//! (e is fixed and public for both). Both classes draw from pools of the same number of
//! `SigningKey` objects (class A's pool holds copies of the fixed key) so that cache footprint
//! does not differ between classes. Welch's t-test is run on the raw timings and on timings
//! cropped at several percentiles (as dudect does); |t| > 4.5 would indicate a leak.
//!
//! Run: `cargo bench -p sm2-fast --bench ct_sign` (env `CT_SIGN_SAMPLES`, default 300000 per fixed-k case).
//! Two fixed-nonce cases are tried: an ordinary random-looking k and k = 1 (all Booth digits
//! but the lowest are zero, which would expose any zero-digit shortcut).

use sm2_fast::SigningKey;
use std::hint::black_box;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        // keep below n (top byte < 0xFF suffices: n = FFFFFFFE...)
        b[0] &= 0x7F;
        b[31] |= 1;
        b
    }
}

#[derive(Default, Clone, Copy)]
struct Welford {
    n: f64,
    mean: f64,
    m2: f64,
}
impl Welford {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }
    fn var(&self) -> f64 {
        if self.n > 1.0 {
            self.m2 / (self.n - 1.0)
        } else {
            0.0
        }
    }
}
fn welch_t(a: &Welford, b: &Welford) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

const POOL: usize = 32;
const BATCH: usize = 10_000;
const PERCENTILES: [f64; 6] = [0.3, 0.5, 0.7, 0.9, 0.95, 0.99];

fn run(label: &str, fixed_k: [u8; 32], total: usize) -> f64 {
    let mut rng = Rng(0xC0FFEE);
    let fixed_d = [0x3Au8; 32];
    let e = [0x5Cu8; 32];
    let pool_a: Vec<SigningKey> = (0..POOL)
        .map(|_| SigningKey::from_bytes(&fixed_d).expect("key"))
        .collect();
    let pool_b: Vec<SigningKey> = (0..POOL)
        .map(|_| SigningKey::from_bytes(&rng.bytes32()).expect("key"))
        .collect();

    // Warm up and calibrate the crop thresholds on a mixed batch.
    let mut calib = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let (sk, k) = if i % 2 == 0 {
            (&pool_a[i % POOL], fixed_k)
        } else {
            (&pool_b[i % POOL], rng.bytes32())
        };
        let t0 = Instant::now();
        black_box(sk.sign_prehash_with_k(black_box(&e), black_box(&k)).ok());
        calib.push(t0.elapsed().as_nanos() as f64);
    }
    calib.sort_by(|a, b| a.total_cmp(b));
    let thresholds: Vec<f64> = PERCENTILES
        .iter()
        .map(|p| calib[((calib.len() as f64 * p) as usize).min(calib.len() - 1)])
        .collect();

    let mut raw = [Welford::default(); 2];
    let mut cropped = vec![[Welford::default(); 2]; thresholds.len()];
    let mut inputs: Vec<(usize, usize, [u8; 32])> = Vec::with_capacity(BATCH);
    let mut times = vec![0f64; BATCH];
    let mut done = 0;
    while done < total {
        inputs.clear();
        for _ in 0..BATCH {
            let class = (rng.next() & 1) as usize;
            let idx = (rng.next() as usize) % POOL;
            let k = if class == 0 { fixed_k } else { rng.bytes32() };
            inputs.push((class, idx, k));
        }
        for (t, (class, idx, k)) in times.iter_mut().zip(inputs.iter()) {
            let sk = if *class == 0 {
                &pool_a[*idx]
            } else {
                &pool_b[*idx]
            };
            let t0 = Instant::now();
            black_box(sk.sign_prehash_with_k(black_box(&e), black_box(k)).ok());
            *t = t0.elapsed().as_nanos() as f64;
        }
        for (t, (class, _, _)) in times.iter().zip(inputs.iter()) {
            raw[*class].push(*t);
            for (c, th) in cropped.iter_mut().zip(thresholds.iter()) {
                if *t <= *th {
                    c[*class].push(*t);
                }
            }
        }
        done += BATCH;
    }
    let mut max_t = welch_t(&raw[0], &raw[1]).abs();
    println!(
        "[{label}] samples: class A (fixed d,k) {} / class B (random d,k) {}; mean {:.0} ns vs {:.0} ns",
        raw[0].n, raw[1].n, raw[0].mean, raw[1].mean
    );
    println!("[{label}]   raw: t = {:+.3}", welch_t(&raw[0], &raw[1]));
    for (p, c) in PERCENTILES.iter().zip(cropped.iter()) {
        let t = welch_t(&c[0], &c[1]);
        max_t = max_t.max(t.abs());
        println!(
            "[{label}]   cropped at p{:<4}: t = {:+.3} (n = {} / {})",
            p * 100.0,
            t,
            c[0].n,
            c[1].n
        );
    }
    println!(
        "[{label}] max |t| = {max_t:.3} -> {}",
        if max_t < 4.5 {
            "no leak detected (|t| < 4.5)"
        } else {
            "POSSIBLE LEAK (|t| >= 4.5)"
        }
    );
    max_t
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let total: usize = std::env::var("CT_SIGN_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let mut k = [0u8; 32];
    k.copy_from_slice(&[
        0x59, 0x27, 0x6E, 0x27, 0xD5, 0x06, 0x86, 0x1A, 0x16, 0x68, 0x0F, 0x3A, 0xD9, 0xC0, 0x2D,
        0xCC, 0xEF, 0x3C, 0xC1, 0xFA, 0x3C, 0xDB, 0xE4, 0xCE, 0x6D, 0x54, 0xB8, 0x0D, 0xEA, 0xC1,
        0xBC, 0x21,
    ]);
    let a = run("fixed k = Annex A nonce", k, total);
    let mut one = [0u8; 32];
    one[31] = 1;
    let b = run("fixed k = 1", one, total);
    println!("overall max |t| = {:.3}", a.max(b));
}
