//! A fast, pure-Rust SM2 signature engine (GB/T 32918.2 / GM/T 0003.2, recommended 256-bit
//! curve), specialised for prehashed messages: the caller computes e = SM3(Z_A ‖ M).
//!
//! * Field arithmetic mod p = 2^256 − 2^224 − 2^96 + 2^64 − 1 in Montgomery form with a
//!   multiplication-free reduction (p ≡ −1 mod 2^64).
//! * Signing: s = (1+d)^-1·(k + r) − r with (1+d)^-1 cached per key; k·G from a
//!   precomputed table of affine multiples of G (signed 6-bit windows, 43 rows, 42 mixed additions,
//!   no doublings), Jacobian mixed additions whose exceptional cases are excluded or handled in
//!   constant time, and full-row table scans; one constant-time safegcd inversion for the affine
//!   x. Constant-time in d and k.
//! * Verification (variable-time, public data only): s·G + t·P from a window-8 G table and a
//!   window-7 per-key table built when the key is loaded; the x-coordinate check is done in
//!   Jacobian coordinates (no inversion).
//!
//! No `unsafe`, no panics reachable from the public API. Runtime dependencies: `subtle`,
//! `zeroize` and `rand_core` only.
//!
//! ```
//! use sm2_fast::{SigningKey, VerifyingKey};
//! // e = SM3(Z_A ‖ M) is the caller's to compute; a fixed one stands in for it here.
//! let d = [7u8; 32];
//! let e = [0x42u8; 32];
//! let sk = SigningKey::from_bytes(&d)?;
//! let (r, s) = sk.sign_prehash(&e, &mut rand_core::OsRng);
//! let vk = VerifyingKey::from_sec1(&sk.public_key().to_sec1_uncompressed())?;
//! assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
//! # Ok::<(), sm2_fast::Error>(())
//! ```
//!
//! The design, the constant-time argument and how the crate is tested are in the crate's
//! README.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod field;
mod limbs;
mod point;
mod safegcd;
mod scalar;
mod table;

use field::Fe;
use limbs::Limbs;
use point::Affine;
use std::sync::{Arc, OnceLock};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use table::Table;
use zeroize::Zeroize;

/// Errors are opaque-ish and never carry secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The secret key is 0 or at least n − 1.
    InvalidSecretKey,
    /// The public key encoding is malformed, off the curve, or the identity.
    InvalidPublicKey,
    /// The supplied nonce k is out of range or yields a degenerate signature.
    InvalidNonce,
    /// The signature is malformed or does not match.
    InvalidSignature,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::InvalidSecretKey => "invalid SM2 secret key",
            Error::InvalidPublicKey => "invalid SM2 public key",
            Error::InvalidNonce => "invalid SM2 nonce",
            Error::InvalidSignature => "invalid SM2 signature",
        })
    }
}

impl std::error::Error for Error {}

/// n − 1: secret keys must be below this so that 1 + d is invertible mod n.
const N_MINUS_1: Limbs =
    limbs::from_hex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122");

/// Prepared signing key: caches d, (1+d)^-1 mod n and the public point. Zeroized on drop;
/// `Debug` prints no secret.
pub struct SigningKey {
    /// The secret scalar d, canonical limbs.
    d: Limbs,
    /// (1+d)^-1 · 2^256 mod n (Montgomery form, see `scalar`).
    dinv_mont: Limbs,
    /// The public point d·G.
    public: Affine,
    /// The verifying key with its table, built on first use.
    verifying: OnceLock<VerifyingKey>,
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.d.zeroize();
        self.dinv_mont.zeroize();
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &Hex(&encode_uncompressed(&self.public)))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a big-endian secret scalar; rejects 0 and values >= n − 1.
    pub fn from_bytes(d: &[u8; 32]) -> Result<Self, Error> {
        let mut dl = limbs::from_be_bytes(d);
        let ok = !limbs::ct_is_zero(&dl) & limbs::ct_lt(&dl, &N_MINUS_1);
        if !bool::from(ok) {
            dl.zeroize();
            return Err(Error::InvalidSecretKey);
        }
        let mut one_plus_d = scalar::add(&dl, &[1, 0, 0, 0]);
        let dinv_mont = scalar::invert_to_mont(&one_plus_d);
        one_plus_d.zeroize();
        let public = table::mul_base_ct(&dl)
            .to_affine()
            .ok_or(Error::InvalidSecretKey)?;
        Ok(SigningKey {
            d: dl,
            dinv_mont,
            public,
            verifying: OnceLock::new(),
        })
    }

    /// The matching verifying key (its precomputed table is built once and shared).
    pub fn public_key(&self) -> VerifyingKey {
        self.verifying
            .get_or_init(|| VerifyingKey::from_affine(self.public))
            .clone()
    }

    /// Signs e = SM3(Z_A ‖ M), computed by the caller. k comes from `rng`, rejection-sampled
    /// in [1, n) (no modulo bias); retries internally on r = 0, r + k = n and s = 0.
    pub fn sign_prehash(
        &self,
        e: &[u8; 32],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> ([u8; 32], [u8; 32]) {
        let e = scalar::reduce(&limbs::from_be_bytes(e));
        let mut buf = [0u8; 32];
        loop {
            rng.fill_bytes(&mut buf);
            let mut k = limbs::from_be_bytes(&buf);
            if bool::from(scalar::is_in_range(&k)) {
                let res = self.sign_core(&e, &k);
                k.zeroize();
                if let Some(sig) = res {
                    buf.zeroize();
                    return sig;
                }
            }
            k.zeroize();
        }
    }

    /// Deterministic k, for known-answer tests. `Err(InvalidNonce)` if k = 0, k >= n, or k
    /// yields r = 0, r + k = n or s = 0.
    pub fn sign_prehash_with_k(
        &self,
        e: &[u8; 32],
        k: &[u8; 32],
    ) -> Result<([u8; 32], [u8; 32]), Error> {
        let e = scalar::reduce(&limbs::from_be_bytes(e));
        let mut kl = limbs::from_be_bytes(k);
        let res = if bool::from(scalar::is_in_range(&kl)) {
            self.sign_core(&e, &kl)
        } else {
            None
        };
        kl.zeroize();
        res.ok_or(Error::InvalidNonce)
    }

    /// The signature for a reduced e and k in [1, n), or `None` for the degenerate cases.
    /// Constant-time in d and k apart from the (public, negligible-probability) outcome.
    ///
    /// With the public (r, s), either r + k or the point k·G (its coordinates and the affine
    /// conversion's temporaries) gives away k and so d; every such local is zeroized before
    /// returning, on both outcomes.
    fn sign_core(&self, e: &Limbs, k: &Limbs) -> Option<([u8; 32], [u8; 32])> {
        let mut kg = table::mul_base_ct(k);
        // k in [1, n) so kG is not the identity and Z != 0; Jacobian: x = X/Z².
        let mut zinv = kg.z.invert();
        zinv = zinv.square();
        let mut x1_mont = kg.x.mul(&zinv);
        let mut x1 = x1_mont.to_canonical();
        let mut x1_mod_n = scalar::reduce(&x1);
        let r = scalar::add(e, &x1_mod_n);
        let mut r_plus_k = scalar::add(&r, k);
        let degenerate = limbs::ct_is_zero(&r) | limbs::ct_is_zero(&r_plus_k);
        let mut s_plus_r = scalar::mont_mul(&self.dinv_mont, &r_plus_k);
        let s = scalar::sub(&s_plus_r, &r);
        kg.zeroize();
        zinv.zeroize();
        x1_mont.zeroize();
        x1.zeroize();
        x1_mod_n.zeroize();
        r_plus_k.zeroize();
        s_plus_r.zeroize();
        if bool::from(degenerate | limbs::ct_is_zero(&s)) {
            return None;
        }
        Some((limbs::to_be_bytes(&r), limbs::to_be_bytes(&s)))
    }
}

/// Prepared verifying key: caches a per-key precomputed table (cheap to clone: the table is
/// shared).
#[derive(Clone)]
pub struct VerifyingKey {
    sec1: [u8; 65],
    table: Arc<Table>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifyingKey")
            .field(&Hex(&self.sec1))
            .finish()
    }
}

fn encode_uncompressed(p: &Affine) -> [u8; 65] {
    let mut out = [4u8; 65];
    let (_, xy) = out.split_at_mut(1);
    let (x, y) = xy.split_at_mut(32);
    x.copy_from_slice(&p.x.to_bytes());
    y.copy_from_slice(&p.y.to_bytes());
    out
}

struct Hex<'a>(&'a [u8]);
impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl VerifyingKey {
    fn from_affine(point: Affine) -> VerifyingKey {
        VerifyingKey {
            sec1: encode_uncompressed(&point),
            table: Arc::new(Table::new(&point, table::W_VERIFY_KEY)),
        }
    }

    /// Parses SEC1: 65-byte `04‖x‖y` or 33-byte `02/03‖x`. Rejects off-curve points,
    /// coordinates >= p, the identity and any other length or prefix.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        let coord = |b: &[u8]| -> Result<Fe, Error> {
            let arr: &[u8; 32] = b.try_into().map_err(|_| Error::InvalidPublicKey)?;
            Fe::from_bytes(arr).ok_or(Error::InvalidPublicKey)
        };
        let point = match (bytes.first(), bytes.len()) {
            (Some(4), 65) => {
                let x = coord(bytes.get(1..33).ok_or(Error::InvalidPublicKey)?)?;
                let y = coord(bytes.get(33..65).ok_or(Error::InvalidPublicKey)?)?;
                Affine { x, y }
            }
            (Some(&tag @ (2 | 3)), 33) => {
                let x = coord(bytes.get(1..33).ok_or(Error::InvalidPublicKey)?)?;
                let y = point::rhs(&x)
                    .sqrt_vartime()
                    .ok_or(Error::InvalidPublicKey)?;
                let want_odd = subtle::Choice::from(tag & 1);
                let flip = y.is_odd() ^ want_odd;
                Affine {
                    x,
                    y: Fe::conditional_select(&y, &y.neg(), flip),
                }
            }
            _ => return Err(Error::InvalidPublicKey),
        };
        if !bool::from(point.is_on_curve()) {
            return Err(Error::InvalidPublicKey);
        }
        // An affine point on the curve is never the identity, and the cofactor is 1, so the
        // point has order n.
        Ok(VerifyingKey::from_affine(point))
    }

    /// `04‖x‖y`.
    pub fn to_sec1_uncompressed(&self) -> [u8; 65] {
        self.sec1
    }

    /// Verifies (r, s) over e = SM3(Z_A ‖ M). `Err(InvalidSignature)` for r or s = 0 or >= n,
    /// t = r + s = 0 mod n, or a mismatch.
    pub fn verify_prehash(&self, e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> Result<(), Error> {
        let r = limbs::from_be_bytes(r);
        let s = limbs::from_be_bytes(s);
        if !bool::from(scalar::is_in_range(&r) & scalar::is_in_range(&s)) {
            return Err(Error::InvalidSignature);
        }
        let e = scalar::reduce(&limbs::from_be_bytes(e));
        let t = scalar::add(&r, &s);
        if bool::from(limbs::ct_is_zero(&t)) {
            return Err(Error::InvalidSignature);
        }
        let q = table::mul2_vartime(&s, &self.table, &t);
        if bool::from(q.is_identity()) {
            return Err(Error::InvalidSignature);
        }
        // Need (e + x1) mod n == r with x1 = X/Z² in [0, p): x1 ≡ v = r − e (mod n), so
        // x1 = v or x1 = v + n (only if v + n < p). Compare X with v·Z² (no inversion).
        let v = scalar::sub(&r, &e);
        let z2 = q.z.square();
        if bool::from(q.x.ct_eq(&Fe::from_canonical(&v).mul(&z2))) {
            return Ok(());
        }
        let (vn, carry) = limbs::add(&v, &scalar::N);
        if carry == 0
            && bool::from(limbs::ct_lt(&vn, &field::P))
            && bool::from(q.x.ct_eq(&Fe::from_canonical(&vn).mul(&z2)))
        {
            return Ok(());
        }
        Err(Error::InvalidSignature)
    }
}

#[doc(hidden)]
/// Byte-level access to the internal arithmetic for differential tests against a big-integer
/// reference. Not a stable API. Inputs out of range give `None`.
pub mod arith {
    use super::{field::Fe, limbs, point, scalar};

    fn fe(b: &[u8; 32]) -> Option<Fe> {
        Fe::from_bytes(b)
    }
    fn sc(b: &[u8; 32]) -> Option<limbs::Limbs> {
        let x = limbs::from_be_bytes(b);
        bool::from(limbs::ct_lt(&x, &scalar::N)).then_some(x)
    }
    /// a·b mod p.
    pub fn fe_mul(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.mul(&fe(b)?).to_bytes())
    }
    /// a² mod p.
    pub fn fe_square(a: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.square().to_bytes())
    }
    /// a + b mod p.
    pub fn fe_add(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.add(&fe(b)?).to_bytes())
    }
    /// a − b mod p.
    pub fn fe_sub(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.sub(&fe(b)?).to_bytes())
    }
    /// a^-1 mod p (0 for 0).
    pub fn fe_invert(a: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.invert().to_bytes())
    }
    /// a^-1 mod p by Fermat's little theorem (the reference for `fe_invert`; 0 for 0).
    pub fn fe_invert_fermat(a: &[u8; 32]) -> Option<[u8; 32]> {
        Some(fe(a)?.invert_fermat().to_bytes())
    }
    /// A square root of a mod p, if one exists (outer `None`: a >= p).
    pub fn fe_sqrt(a: &[u8; 32]) -> Option<Option<[u8; 32]>> {
        Some(fe(a)?.sqrt_vartime().map(|r| r.to_bytes()))
    }
    /// a·b mod n.
    pub fn sc_mul(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(limbs::to_be_bytes(&scalar::mul(&sc(a)?, &sc(b)?)))
    }
    /// a + b mod n.
    pub fn sc_add(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(limbs::to_be_bytes(&scalar::add(&sc(a)?, &sc(b)?)))
    }
    /// a − b mod n.
    pub fn sc_sub(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
        Some(limbs::to_be_bytes(&scalar::sub(&sc(a)?, &sc(b)?)))
    }
    /// a^-1 mod n (0 for 0).
    pub fn sc_invert(a: &[u8; 32]) -> Option<[u8; 32]> {
        Some(limbs::to_be_bytes(&scalar::from_mont(
            &scalar::invert_to_mont(&sc(a)?),
        )))
    }
    /// a^-1 mod n by Fermat's little theorem (the reference for `sc_invert`; 0 for 0).
    pub fn sc_invert_fermat(a: &[u8; 32]) -> Option<[u8; 32]> {
        Some(limbs::to_be_bytes(&scalar::from_mont(
            &scalar::invert_to_mont_fermat(&sc(a)?),
        )))
    }
    /// Any 256-bit value mod n.
    pub fn sc_reduce(a: &[u8; 32]) -> [u8; 32] {
        limbs::to_be_bytes(&scalar::reduce(&limbs::from_be_bytes(a)))
    }
    /// k·G through the constant-time table path, as uncompressed SEC1 (`None` for the identity).
    pub fn mul_base(k: &[u8; 32]) -> Option<[u8; 65]> {
        let p = super::table::mul_base_ct(&limbs::from_be_bytes(k)).to_affine()?;
        Some(super::encode_uncompressed(&p))
    }
    /// k·G by plain double-and-add with the complete formulas (reference for `mul_base`).
    pub fn mul_base_ladder(k: &[u8; 32]) -> Option<[u8; 65]> {
        let mut acc = point::Projective::IDENTITY;
        let g = point::G.to_projective();
        for byte in k {
            for bit in (0..8).rev() {
                acc = acc.double();
                if (byte >> bit) & 1 == 1 {
                    acc = acc.add(&g);
                }
            }
        }
        Some(super::encode_uncompressed(&acc.to_affine()?))
    }
}

#[cfg(test)]
mod zeroize_tests {
    use super::{limbs, point, scalar, table, Fe, Limbs};
    use zeroize::Zeroize;

    #[test]
    fn secret_types_zeroize() {
        let mut s: Limbs = scalar::add(&[5, 0, 0, 0], &[7, 0, 0, 0]);
        assert!(!bool::from(limbs::ct_is_zero(&s)));
        s.zeroize();
        assert_eq!(s, [0; 4], "scalar");

        let mut f = Fe::ONE;
        f.zeroize();
        assert_eq!(f.0, [0; 4], "field element");

        let mut a = point::G;
        a.zeroize();
        assert_eq!((a.x.0, a.y.0), ([0; 4], [0; 4]), "affine point");

        let mut p = table::mul_base_ct(&[12345, 1, 2, 3]);
        assert!(!bool::from(p.is_identity()));
        p.zeroize();
        assert_eq!(
            (p.x.0, p.y.0, p.z.0),
            ([0; 4], [0; 4], [0; 4]),
            "projective point"
        );
    }

    #[test]
    fn invert_still_inverts_after_zeroizing_its_temporaries() {
        let x = Fe::from_canonical(&[0x1234_5678, 9, 10, 11]);
        assert!(bool::from(subtle::ConstantTimeEq::ct_eq(
            &x.mul(&x.invert()),
            &Fe::ONE
        )));
    }
}
