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

    /// Tail of algorithm 4 (from "Z3 = b·t2" on; `y3` is X1Z2 + X2Z1).
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

/// A point in Jacobian coordinates (X:Y:Z), x = X/Z², y = Y/Z³; Z = 0 is the identity.
///
/// Used for the accumulators of the table-based multiplications, whose additions are always
/// "accumulator plus affine table entry": the mixed addition below costs 7M + 4S against
/// 11M + 2m_b for the complete projective formula. It is incomplete (see
/// `add_mixed_incomplete`); `table` shows where its exceptional cases cannot occur and handles
/// the rest.
#[derive(Clone, Copy, Debug, Zeroize)]
pub(crate) struct Jacobian {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl ConditionallySelectable for Jacobian {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Jacobian {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
        }
    }
}

impl Jacobian {
    pub(crate) const IDENTITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    #[inline(always)]
    pub(crate) fn from_affine(a: &Affine) -> Jacobian {
        Jacobian {
            x: a.x,
            y: a.y,
            z: Fe::ONE,
        }
    }

    /// self + q for an affine q (formula "madd-2007-bl" of the Explicit-Formulas Database,
    /// 7M + 4S), straight-line and constant-time. Incomplete: correct when self is not the
    /// identity and self ≠ q. For self = −q the result has Z = 0, the identity (correct); for
    /// self = q or self the identity it is meaningless, and the caller must rule these out.
    #[inline(always)]
    pub(crate) fn add_mixed_incomplete(&self, q: &Affine) -> Jacobian {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let z1z1 = z1.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&z1.mul(&z1z1));
        let h = u2.sub(x1);
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s2.sub(y1).double();
        let v = x1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&y1.mul(&j).double());
        let z3 = z1.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// self + q for an affine q, complete but variable-time (public data only): the identity
    /// and the doubling case are handled by branches.
    #[inline(always)]
    pub(crate) fn add_mixed_vartime(&self, q: &Affine) -> Jacobian {
        if bool::from(self.z.is_zero()) {
            return Jacobian::from_affine(q);
        }
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let z1z1 = z1.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&z1.mul(&z1z1));
        let h = u2.sub(x1);
        let r = s2.sub(y1).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) {
                Jacobian::from_affine(q).double()
            } else {
                Jacobian::IDENTITY
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let v = x1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&y1.mul(&j).double());
        let z3 = z1.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// 2·self for a = −3 (formula "dbl-2001-b", 3M + 5S). Correct for every input (the
    /// identity and points of order 2 give Z = 0; the curve has no points of order 2).
    pub(crate) fn double(&self) -> Jacobian {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let delta = z1.square();
        let gamma = y1.square();
        let beta = x1.mul(&gamma);
        let t = x1.sub(&delta).mul(&x1.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = y1.add(z1).square().sub(&gamma).sub(&delta);
        let g2 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&g2);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Affine form; `None` for the identity. Constant-time in the coordinates.
    pub(crate) fn to_affine(self) -> Option<Affine> {
        let mut zi = self.z.invert();
        let mut zi2 = zi.square();
        let out = Affine {
            x: self.x.mul(&zi2),
            y: self.y.mul(&zi2.mul(&zi)),
        };
        zi.zeroize();
        zi2.zeroize();
        if bool::from(self.is_identity()) {
            return None;
        }
        Some(out)
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
