//! RFC 6962 / RFC 9162 Merkle tree hashing with SM3 as the hash: the tree hash of any number of
//! leaves, inclusion and consistency proofs with their verifiers, and a compact range (the
//! "frontier" of perfect subtree roots) a writer keeps to update the root per batch without
//! holding every leaf.
//!
//! Domain separation follows RFC 6962 §2.1: a leaf hash is SM3(0x00 ‖ leaf), an interior node is
//! SM3(0x01 ‖ left ‖ right), and the empty tree hashes to SM3 of the empty string. A tree of n > 1
//! leaves splits at k, the largest power of two smaller than n, so uneven trees are left-full.

use subtle::ConstantTimeEq;

use crate::crypto::sm3::sm3;

/// An SM3 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// Prefix of a leaf hash's input (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash's input (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// SM3(0x00 ‖ `leaf`): the hash of one leaf's bytes.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    use sm3::{Digest, Sm3};
    let mut h = Sm3::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf);
    h.finalize().into()
}

/// SM3(0x01 ‖ `left` ‖ `right`): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    use sm3::{Digest, Sm3};
    let mut h = Sm3::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SM3 of the empty string (RFC 6962 §2.1, MTH({})).
pub fn empty_root() -> Hash {
    sm3(b"")
}

/// Constant-time equality of two digests (the project compares digests with `subtle`).
pub fn hash_eq(a: &Hash, b: &Hash) -> bool {
    a.ct_eq(b).into()
}

/// Why a proof was refused or could not be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index or sizes are outside what the tree holds (e.g. index ≥ size, m > n, m = 0).
    #[error("index or tree size out of range")]
    OutOfRange,
    /// The proof has more or fewer hashes than its index and sizes call for.
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    /// The proof's hashes do not lead to the expected root(s).
    #[error("proof does not lead to the expected root")]
    Mismatch,
}

/// k: the largest power of two strictly smaller than `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    // next_power_of_two is n itself for a power of two, so halving gives the strict bound.
    n.next_power_of_two() / 2
}

/// MTH(D\[n\]) over already-hashed leaves (RFC 6962 §2.1), for any n including 0.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            let (l, r) = leaves.split_at(k);
            node_hash(&root(l), &root(r))
        }
    }
}

/// PATH(m, D\[n\]) (RFC 6962 §2.1.1): the audit path of leaf `index` in the tree of `leaves`,
/// siblings from the leaf up.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    if index >= leaves.len() {
        return Err(ProofError::OutOfRange);
    }
    let mut path = Vec::new();
    path_into(leaves, index, &mut path);
    Ok(path)
}

fn path_into(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (l, r) = leaves.split_at(k);
    if m < k {
        path_into(l, m, out);
        out.push(root(r));
    } else {
        path_into(r, m - k, out);
        out.push(root(l));
    }
}

/// PATH(m, D\[n\]) when the first `frontier.size()` leaves are known only through `frontier`
/// (their perfect-subtree roots; the rows were pruned) and `leaves` are the rest, n being
/// `frontier.size() + leaves.len()`. Equal to [`inclusion_proof`] over all n leaves: every
/// node the path needs either lies at or after the cut or is one of the frontier's subtrees
/// (an RFC 6962 node starts at a multiple of its width's power of two, so a left sibling left
/// of the cut whose parent crosses it is a maximal perfect subtree there). `index` must be at
/// or after the cut.
pub fn inclusion_proof_after(
    frontier: &Frontier,
    leaves: &[Hash],
    index: u64,
) -> Result<Vec<Hash>, ProofError> {
    let cut = frontier.size();
    let n = cut + u64::try_from(leaves.len()).map_err(|_| ProofError::OutOfRange)?;
    if index < cut || index >= n {
        return Err(ProofError::OutOfRange);
    }
    let known = AfterCut {
        frontier,
        cut,
        leaves,
    };
    let mut path = Vec::new();
    known.path(0, n, index, &mut path)?;
    Ok(path)
}

/// A tree whose leaves before `cut` are known only as the frontier's subtree roots.
struct AfterCut<'a> {
    frontier: &'a Frontier,
    cut: u64,
    leaves: &'a [Hash],
}

impl AfterCut<'_> {
    /// MTH of leaves \[a, b).
    fn root(&self, a: u64, b: u64) -> Result<Hash, ProofError> {
        if a >= self.cut {
            let from = usize::try_from(a - self.cut).map_err(|_| ProofError::OutOfRange)?;
            let to = usize::try_from(b - self.cut).map_err(|_| ProofError::OutOfRange)?;
            return Ok(root(
                self.leaves.get(from..to).ok_or(ProofError::OutOfRange)?,
            ));
        }
        if b <= self.cut {
            return self.peak(a, b);
        }
        let k = split_u64(b - a);
        Ok(node_hash(&self.root(a, a + k)?, &self.root(a + k, b)?))
    }

    /// The frontier's subtree root spanning exactly \[a, b).
    fn peak(&self, a: u64, b: u64) -> Result<Hash, ProofError> {
        let mut start = 0u64;
        let mut peaks = self.frontier.peaks().iter();
        for bit in (0..64).rev() {
            let width = 1u64 << bit;
            if self.cut & width == 0 {
                continue;
            }
            let peak = peaks.next().ok_or(ProofError::OutOfRange)?;
            if start == a && start + width == b {
                return Ok(*peak);
            }
            start += width;
        }
        Err(ProofError::OutOfRange)
    }

    fn path(&self, a: u64, b: u64, m: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        if b - a <= 1 {
            return Ok(());
        }
        let k = split_u64(b - a);
        if m < a + k {
            self.path(a, a + k, m, out)?;
            out.push(self.root(a + k, b)?);
        } else {
            self.path(a + k, b, m, out)?;
            out.push(self.root(a, a + k)?);
        }
        Ok(())
    }
}

/// [`split`] over `u64`.
fn split_u64(n: u64) -> u64 {
    n.next_power_of_two() / 2
}

/// Verifies an audit path (RFC 9162 §2.1.3.2): `leaf` is leaf number `index` of the tree of
/// `size` leaves whose root is `expected_root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected_root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if hash_eq(&r, expected_root) {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// PROOF(m, D\[n\]) (RFC 6962 §2.1.2): the consistency proof between the first `m` leaves and
/// all of `leaves`. Defined for 0 < m ≤ n; for m = n it is empty.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Result<Vec<Hash>, ProofError> {
    if m == 0 || m > leaves.len() {
        return Err(ProofError::OutOfRange);
    }
    let mut out = Vec::new();
    subproof(m, leaves, true, &mut out);
    Ok(out)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    let (l, r) = leaves.split_at(k);
    if m <= k {
        subproof(m, l, whole, out);
        out.push(root(r));
    } else {
        subproof(m - k, r, false, out);
        out.push(root(l));
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): the tree of `first_size` leaves with root
/// `first_root` is a prefix of the tree of `second_size` leaves with root `second_root`.
pub fn verify_consistency(
    first_size: u64,
    second_size: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first_size == 0 || first_size > second_size {
        return Err(ProofError::OutOfRange);
    }
    if first_size == second_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if hash_eq(first_root, second_root) {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    // Step 2: when first_size is an exact power of two, the first root is the first node.
    let mut nodes: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first_size.is_power_of_two() {
        nodes.push(first_root);
    }
    nodes.extend(proof.iter());
    let (first, rest) = match nodes.split_first() {
        Some(split) => split,
        None => return Err(ProofError::WrongLength),
    };
    let (mut f_n, mut s_n) = (first_size - 1, second_size - 1);
    if f_n & 1 == 1 {
        while f_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
        }
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if hash_eq(&fr, first_root) && hash_eq(&sr, second_root) {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// The compact range \[0, size) of a growing tree: the roots of its maximal perfect subtrees,
/// left to right (one per set bit of `size`, largest first). O(log n) hashes are enough to append
/// leaves and compute the root at any size, so the writer never reads old leaves back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, left (largest) to right (smallest).
    peaks: Vec<Hash>,
}

/// Why stored frontier parts were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frontier of size {size} needs {expected} hashes, got {got}")]
pub struct FrontierError {
    /// The size given.
    pub size: u64,
    /// popcount(size).
    pub expected: usize,
    /// Hashes given.
    pub got: usize,
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier {
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// Rebuilds a frontier from its stored size and perfect-subtree roots (as [`Self::peaks`]
    /// returned them); refuses a count of hashes that does not match the size.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(FrontierError {
                size,
                expected,
                got: peaks.len(),
            });
        }
        Ok(Frontier { size, peaks })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends one leaf hash: O(1) amortised node hashes (merges equal-height peaks).
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing one bit of the old size is a peak of the same height to merge with.
        let mut s = self.size;
        while s & 1 == 1 {
            // A set bit of `size` always has its peak on the stack.
            let Some(left) = self.peaks.pop() else { break };
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// MTH of the leaves appended so far: the peaks folded from the right.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_proof_after_a_cut_equals_the_full_one() {
        let leaves: Vec<Hash> = (0..40u8).map(|i| leaf_hash(&[i])).collect();
        for n in 1..=leaves.len() {
            for cut in 0..=n {
                let mut f = Frontier::new();
                for l in &leaves[..cut] {
                    f.push(*l);
                }
                for index in cut..n {
                    assert_eq!(
                        inclusion_proof_after(&f, &leaves[cut..n], index as u64),
                        inclusion_proof(&leaves[..n], index),
                        "n {n}, cut {cut}, index {index}"
                    );
                }
                if cut > 0 {
                    assert_eq!(
                        inclusion_proof_after(&f, &leaves[cut..n], cut as u64 - 1),
                        Err(ProofError::OutOfRange)
                    );
                }
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u32).to_be_bytes()))
            .collect()
    }

    #[test]
    fn split_is_largest_power_of_two_below_n() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
    }

    #[test]
    fn empty_root_is_sm3_of_nothing() {
        // GB/T 32905 gives no empty-string vector; this value is SM3("") as computed by
        // OpenSSL (`openssl dgst -sm3 /dev/null`).
        assert_eq!(
            hex::encode(empty_root()),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
    }

    #[test]
    fn three_leaf_tree_has_rfc_shape() {
        let l = leaves(3);
        let expect = node_hash(&node_hash(&l[0], &l[1]), &l[2]);
        assert_eq!(root(&l), expect);
    }

    #[test]
    fn frontier_matches_recursive_root_for_every_size() {
        let l = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), root(&[]));
        for n in 1..=l.len() {
            f.push(l[n - 1]);
            assert_eq!(f.root(), root(&l[..n]), "size {n}");
            assert_eq!(f.peaks().len(), n.count_ones() as usize);
        }
    }

    #[test]
    fn frontier_parts_are_checked() {
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
        assert!(Frontier::from_parts(3, vec![[0; 32], [1; 32]]).is_ok());
    }

    #[test]
    fn consistency_of_equal_sizes_is_empty_and_checks_roots() {
        let l = leaves(5);
        let r = root(&l);
        assert_eq!(consistency_proof(&l, 5), Ok(vec![]));
        assert_eq!(verify_consistency(5, 5, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &r, &[0; 32], &[]),
            Err(ProofError::Mismatch)
        );
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let l = leaves(4);
        assert_eq!(inclusion_proof(&l, 4), Err(ProofError::OutOfRange));
        assert_eq!(consistency_proof(&l, 0), Err(ProofError::OutOfRange));
        assert_eq!(consistency_proof(&l, 5), Err(ProofError::OutOfRange));
        let r = root(&l);
        assert_eq!(
            verify_inclusion(4, 4, &l[0], &[], &r),
            Err(ProofError::OutOfRange)
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize, salt: u8) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&[&[salt][..], &(i as u32).to_be_bytes()].concat()))
            .collect()
    }

    fn flip(h: &mut Hash, bit: usize) {
        h[(bit / 8) % 32] ^= 1 << (bit % 8);
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_verifies_and_any_flip_fails(
            n in 1usize..200, pick in any::<usize>(), salt in any::<u8>(), bit in 0usize..256,
            which in any::<usize>(),
        ) {
            let l = leaves(n, salt);
            let r = root(&l);
            let m = pick % n;
            let proof = inclusion_proof(&l, m).unwrap();
            prop_assert_eq!(verify_inclusion(m as u64, n as u64, &l[m], &proof, &r), Ok(()));
            // Flip one bit in the leaf, the root, or one proof hash: refused.
            let spots = proof.len() + 2;
            let mut leaf = l[m];
            let mut rt = r;
            let mut p = proof.clone();
            match which % spots {
                0 => flip(&mut leaf, bit),
                1 => flip(&mut rt, bit),
                k => flip(&mut p[k - 2], bit),
            }
            prop_assert!(verify_inclusion(m as u64, n as u64, &leaf, &p, &rt).is_err());
            // The proof does not verify for another index or size either.
            if n > 1 {
                let other = (m + 1) % n;
                prop_assert!(verify_inclusion(other as u64, n as u64, &l[m], &proof, &r).is_err());
            }
            // Dropping or adding a hash is a length error, not an accident of hashing.
            if !proof.is_empty() {
                prop_assert!(verify_inclusion(m as u64, n as u64, &l[m], &proof[1..], &r).is_err());
            }
            let mut longer = proof.clone();
            longer.push([0; 32]);
            prop_assert!(verify_inclusion(m as u64, n as u64, &l[m], &longer, &r).is_err());
        }

        #[test]
        fn consistency_between_any_m_and_n_verifies_and_any_flip_fails(
            n in 1usize..200, pick in any::<usize>(), salt in any::<u8>(), bit in 0usize..256,
            which in any::<usize>(),
        ) {
            let l = leaves(n, salt);
            let m = 1 + pick % n;
            let (r1, r2) = (root(&l[..m]), root(&l));
            let proof = consistency_proof(&l, m).unwrap();
            prop_assert_eq!(verify_consistency(m as u64, n as u64, &r1, &r2, &proof), Ok(()));
            let spots = proof.len() + 2;
            let (mut a, mut b, mut p) = (r1, r2, proof.clone());
            match which % spots {
                0 => flip(&mut a, bit),
                1 => flip(&mut b, bit),
                k => flip(&mut p[k - 2], bit),
            }
            prop_assert!(verify_consistency(m as u64, n as u64, &a, &b, &p).is_err());
            // A tree that is not an extension (one leaf changed before m) is refused.
            let mut forked = l.clone();
            forked[pick % m][0] ^= 1;
            let forked_root = root(&forked);
            prop_assert!(verify_consistency(m as u64, n as u64, &r1, &forked_root, &proof).is_err());
        }

        #[test]
        fn frontier_root_equals_mth(n in 0usize..300, salt in any::<u8>()) {
            let l = leaves(n, salt);
            let mut f = Frontier::new();
            for h in &l {
                f.push(*h);
            }
            prop_assert_eq!(f.root(), root(&l));
            let again = Frontier::from_parts(f.size(), f.peaks().to_vec()).unwrap();
            prop_assert_eq!(again, f);
        }
    }
}
