//! Points on the SM2 curve y^2 = x^3 - 3x + b in homogeneous projective coordinates, using the
//! complete addition formulas of Renes, Costello and Batina (2015) for a = -3 (algorithms 4, 5
//! and 6 of the paper). Complete means no special cases: doubling, adding the identity, adding
//! a point to its negative all go through the same straight-line code, which is what makes the
//! fixed-base scalar multiplication constant-time without branches.

use super::field::Fe;
use super::limbs;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// Curve coefficient b in Montgomery form.
pub(crate) const B: Fe = Fe::from_canonical(&limbs::from_hex(
    "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93",
));

/// Base point G, affine.
pub(crate) const G: Affine = Affine {
    x: Fe::from_canonical(&limbs::from_hex(
        "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7",
    )),
    y: Fe::from_canonical(&limbs::from_hex(
        "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0",
    )),
};

/// An affine point (never the identity where it is used as an addend).
#[derive(Clone, Copy, Debug, Default, Zeroize)]
pub(crate) struct Affine {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
}

/// A projective point (X:Y:Z), x = X/Z, y = Y/Z; the identity is (0:1:0).
#[derive(Clone, Copy, Debug, Zeroize)]
pub(crate) struct Projective {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl Affine {
    /// y^2 == x^3 - 3x + b.
    pub(crate) fn is_on_curve(&self) -> Choice {
        let rhs = rhs(&self.x);
        self.y.square().ct_eq(&rhs)
    }

    #[inline(always)]
    pub(crate) fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg(),
        }
    }

    pub(crate) fn to_projective(self) -> Projective {
        Projective {
            x: self.x,
            y: self.y,
            z: Fe::ONE,
        }
    }
}

/// x^3 - 3x + b.
pub(crate) fn rhs(x: &Fe) -> Fe {
    let x3 = x.square().mul(x);
    let three_x = x.double().add(x);
    x3.sub(&three_x).add(&B)
}

impl ConditionallySelectable for Affine {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Affine {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
        }
    }
}

impl ConditionallySelectable for Projective {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Projective {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
        }
    }
}

impl Projective {
    pub(crate) const IDENTITY: Projective = Projective {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// Complete addition (RCB algorithm 4, a = -3): 12M + 2m_b.
    pub(crate) fn add(&self, q: &Projective) -> Projective {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2, z2) = (&q.x, &q.y, &q.z);
        let t0 = x1.mul(x2);
        let t1 = y1.mul(y2);
        let t2 = z1.mul(z2);
        let t3 = x1.add(y1).mul(&x2.add(y2));
        let t3 = t3.sub(&t0.add(&t1));
        let t4 = y1.add(z1).mul(&y2.add(z2));
        let t4 = t4.sub(&t1.add(&t2));
        let x3 = x1.add(z1).mul(&x2.add(z2));
        let y3 = x3.sub(&t0.add(&t2));
        Self::finish(t0, t1, t2, t3, t4, y3)
    }

    /// Complete mixed addition with an affine point that is not the identity
    /// (RCB algorithm 5, a = -3): 11M + 2m_b.
    #[inline]
    pub(crate) fn add_mixed(&self, q: &Affine) -> Projective {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2) = (&q.x, &q.y);
        let t0 = x1.mul(x2);
        let t1 = y1.mul(y2);
        let t3 = x2.add(y2).mul(&x1.add(y1));
        let t3 = t3.sub(&t0.add(&t1));
        let t4 = y2.mul(z1).add(y1);
        let y3 = x2.mul(z1).add(x1);
        // t2 = Z1 * Z2 = Z1
        Self::finish(t0, t1, *z1, t3, t4, y3)
    }

    /// Shared tail of algorithms 4 and 5 (from "Z3 = b·t2" on; `y3` is X1Z2 + X2Z1).
    #[inline(always)]
    fn finish(t0: Fe, t1: Fe, t2: Fe, t3: Fe, t4: Fe, y3: Fe) -> Projective {
        let z3 = B.mul(&t2);
        let x3 = y3.sub(&z3);
        let z3 = x3.double();
        let x3 = x3.add(&z3);
        let z3 = t1.sub(&x3);
        let x3 = t1.add(&x3);
        let y3 = B.mul(&y3);
        let t1 = t2.double();
        let t2 = t1.add(&t2);
        let y3 = y3.sub(&t2);
        let y3 = y3.sub(&t0);
        let t1 = y3.double();
        let y3 = t1.add(&y3);
        let t1 = t0.double();
        let t0 = t1.add(&t0);
        let t0 = t0.sub(&t2);
        let t1 = t4.mul(&y3);
        let t2 = t0.mul(&y3);
        let y3 = x3.mul(&z3);
        let y3 = y3.add(&t2);
        let x3 = t3.mul(&x3);
        let x3 = x3.sub(&t1);
        let z3 = t4.mul(&z3);
        let t1 = t3.mul(&t0);
        let z3 = z3.add(&t1);
        Projective {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Complete doubling (RCB algorithm 6, a = -3): 8M + 3S + 2m_b.
    pub(crate) fn double(&self) -> Projective {
        let (x, y, z) = (&self.x, &self.y, &self.z);
        let t0 = x.square();
        let t1 = y.square();
        let t2 = z.square();
        let t3 = x.mul(y);
        let t3 = t3.double();
        let z3 = x.mul(z);
        let z3 = z3.double();
        let y3 = B.mul(&t2);
        let y3 = y3.sub(&z3);
        let x3 = y3.double();
        let y3 = x3.add(&y3);
        let x3 = t1.sub(&y3);
        let y3 = t1.add(&y3);
        let y3 = x3.mul(&y3);
        let x3 = x3.mul(&t3);
        let t3 = t2.double();
        let t2 = t2.add(&t3);
        let z3 = B.mul(&z3);
        let z3 = z3.sub(&t2);
        let z3 = z3.sub(&t0);
        let t3 = z3.double();
        let z3 = z3.add(&t3);
        let t3 = t0.double();
        let t0 = t3.add(&t0);
        let t0 = t0.sub(&t2);
        let t0 = t0.mul(&z3);
        let y3 = y3.add(&t0);
        let t0 = y.mul(z);
        let t0 = t0.double();
        let z3 = t0.mul(&z3);
        let x3 = x3.sub(&z3);
        let z3 = t0.mul(&t1);
        let z3 = z3.double();
        let z3 = z3.double();
        Projective {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Affine form; `None` for the identity. Constant-time in the coordinates.
    pub(crate) fn to_affine(self) -> Option<Affine> {
        let zi = self.z.invert();
        if bool::from(self.is_identity()) {
            return None;
        }
        Some(Affine {
            x: self.x.mul(&zi),
            y: self.y.mul(&zi),
        })
    }
}

/// Converts many non-identity projective points to affine with one inversion
/// (Montgomery's trick). Variable-time: public data only. Identity inputs yield (0, 0).
pub(crate) fn batch_to_affine(points: &[Projective]) -> Vec<Affine> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        prefix.push(acc);
        if !bool::from(p.z.is_zero()) {
            acc = acc.mul(&p.z);
        }
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine::default(); points.len()];
    for ((p, pre), o) in points.iter().zip(prefix.iter()).zip(out.iter_mut()).rev() {
        if bool::from(p.z.is_zero()) {
            continue;
        }
        let zi = inv.mul(pre);
        inv = inv.mul(&p.z);
        *o = Affine {
            x: p.x.mul(&zi),
            y: p.y.mul(&zi),
        };
    }
    out
}
