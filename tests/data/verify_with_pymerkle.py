#!/usr/bin/env python3
"""Independent check of the audit log's Merkle trees with pymerkle 7.0.0 and SM3.

Usage: verify_with_pymerkle.py CASES.json

CASES.json (written by tests/it/audit/log.rs):
  {"cases": [{"leaves": [hex of each leaf's bytes],
              "leaf_hashes": [hex], "roots": [hex root of the first k leaves, k = 0..n],
              "inclusion": [{"index": i (from 0), "size": n, "path": [hex]}],
              "consistency": [{"first": m, "second": n}]}]}

pymerkle hashes a leaf as H(0x00 || data) and a node as H(0x01 || left || right) when its
"security" mode is on (the default), splits a tree of n leaves at the largest power of two below
n and hashes the empty tree as H(b"") -- RFC 6962's shape. It has no SM3, so SM3 is registered
in its table of hash functions (pymerkle.hasher.HASH_FUNCTIONS / ALGORITHMS), computed by gmssl.

Exit status 0 when every root, leaf hash and proof agrees; 1 with a message otherwise.
"""

import hashlib
import json
import sys

import pymerkle
import pymerkle.hasher
from gmssl import func as gm_func
from gmssl import sm3 as gm_sm3
from pymerkle import InclusionProof, InmemoryTree, InvalidProof, verify_inclusion


class Sm3:
    """hashlib-style SM3 object over gmssl's pure-Python SM3 (one-shot: update then digest)."""

    digest_size = 32

    def __init__(self, data=b""):
        self._buf = bytearray(data)

    def update(self, data):
        self._buf += data

    def digest(self):
        return bytes.fromhex(gm_sm3.sm3_hash(gm_func.bytes_to_list(bytes(self._buf))))

    def hexdigest(self):
        return self.digest().hex()


def register_sm3():
    # GB/T 32905-2016 Appendix A.1: SM3("abc").
    want = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    got = Sm3(b"abc").hexdigest()
    if got != want:
        fail(f"gmssl SM3('abc') = {got}, expected {want}")
    if "sm3" in hashlib.algorithms_available:
        for sample in (b"", b"abc", bytes(range(256))):
            if hashlib.new("sm3", sample).digest() != Sm3(sample).digest():
                fail("gmssl and OpenSSL disagree on SM3")
    pymerkle.hasher.HASH_FUNCTIONS["sm3"] = Sm3
    if "sm3" not in pymerkle.hasher.ALGORITHMS:
        pymerkle.hasher.ALGORITHMS.append("sm3")


def fail(msg):
    print(f"pymerkle check FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if pymerkle.__version__ != "7.0.0":
        fail(f"pymerkle {pymerkle.__version__}, expected 7.0.0")
    register_sm3()
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    checked = {"roots": 0, "inclusion": 0, "consistency": 0}
    for c, case in enumerate(cases):
        leaves = [bytes.fromhex(x) for x in case["leaves"]]
        tree = InmemoryTree(algorithm="sm3")  # security (0x00 / 0x01 prefixes) on by default
        if tree.get_root(0).hex() != case["roots"][0]:
            fail(f"case {c}: empty root differs")
        for k, leaf in enumerate(leaves, start=1):
            tree.append_entry(leaf)
            if tree.get_leaf(k).hex() != case["leaf_hashes"][k - 1]:
                fail(f"case {c}: leaf hash {k - 1} differs")
            if tree.get_root().hex() != case["roots"][k]:
                fail(f"case {c}: root of size {k} differs")
            checked["roots"] += 1
        for p in case["inclusion"]:
            index, size = p["index"], p["size"]
            ours = [bytes.fromhex(h) for h in p["path"]]
            theirs = tree.prove_inclusion(index + 1, size)
            # pymerkle's path is the leaf hash followed by RFC 9162's audit path (siblings from
            # the leaf up); its "rule" bits say on which side each sibling goes.
            if theirs.path[1:] != ours:
                fail(f"case {c}: audit path of leaf {index} in size {size} differs")
            proof = InclusionProof("sm3", True, size, index + 1, theirs.rule,
                                   [tree.get_leaf(index + 1)] + ours)
            verify_inclusion(tree.get_leaf(index + 1), bytes.fromhex(case["roots"][size]), proof,
                             index=index + 1, size=size, algorithm="sm3")
            checked["inclusion"] += 1
        for p in case["consistency"]:
            first, second = p["first"], p["second"]
            # pymerkle's consistency proofs are not RFC 6962's PROOF(m, n): it descends to
            # single leaves where RFC 6962 stops at a whole subtree, so the hash lists differ in
            # length and order and cannot be fed to each other. What pymerkle can check is that
            # the two roots this crate computed are consistent: its own proof between them must
            # verify. (This crate's PROOF(m, n) is checked by its own RFC 9162 verifier.)
            theirs = tree.prove_consistency(first, second)
            theirs.verify(bytes.fromhex(case["roots"][first]),
                          bytes.fromhex(case["roots"][second]), prior_size=first,
                          later_size=second, algorithm="sm3")
            checked["consistency"] += 1
    print(f"pymerkle {pymerkle.__version__} with SM3 agrees: {checked['roots']} roots, "
          f"{checked['inclusion']} inclusion proofs, {checked['consistency']} root pairs consistent")


if __name__ == "__main__":
    try:
        main()
    except InvalidProof as err:
        fail(f"pymerkle refused a proof: {err}")
