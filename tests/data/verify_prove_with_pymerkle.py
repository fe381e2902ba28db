#!/usr/bin/env python3
"""Independent check of `pension-gateway audit prove --json` with pymerkle 7.0.0, SM3 and gmssl's SM2.

Usage: verify_prove_with_pymerkle.py PROVE.json BANK_PUBLIC_KEY_HEX

PROVE.json is the output of `audit prove <request-id> --json`. For every row whose `log` has a
checkpoint (docs/audit.md, "The log proof of `audit prove`"), without using any of the gateway's
code:

- the leaf hash is pymerkle's hash of the leaf bytes (SM3(0x00 || leaf)) and equals `leaf_hash`;
- the checkpoint note parses (four body lines, an empty line, one signature line) and names the
  row's instance and a tree size above its `seq`;
- the note's signature (SM2 with SM3, signer ID 1234567812345678, over the body bytes) verifies
  under BANK_PUBLIC_KEY_HEX (SEC1 uncompressed, 04 || x || y) with gmssl;
- pymerkle's inclusion verifier, given the leaf hash, the audit path `inclusion`, the leaf index
  and the note's size, arrives at the note's root. The side of each sibling ("rule") is
  pymerkle's own layout for that index and size.

Exit status 0 when every such row checks; 1 with a message otherwise (a changed leaf, path,
root or signature), 2 when the JSON holds no row with a checkpoint.
"""

import base64
import json
import os
import sys

sys.dont_write_bytecode = True  # nothing written next to the script
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from verify_with_pymerkle import fail, register_sm3  # noqa: E402

import pymerkle  # noqa: E402
from gmssl import sm2 as gm_sm2  # noqa: E402
from pymerkle import InclusionProof, InvalidProof, verify_inclusion  # noqa: E402
from pymerkle.core import _inclusion_path_layout  # noqa: E402
from pymerkle.hasher import MerkleHasher  # noqa: E402

SIG_PREFIX = "\u2014 bank-v"


def parse_note(note):
    """(instance, size, root bytes, body bytes, key version, signature r||s bytes)."""
    body, sep, sig = note.partition("\n\n")
    if not sep or not sig.endswith("\n") or "\n" in sig[:-1]:
        fail("checkpoint note: not a body, an empty line and one signature line")
    lines = body.split("\n")
    if len(lines) != 4:
        fail("checkpoint note: the body is not four lines")
    origin, size, root, time = lines
    if not origin.startswith("pension-gateway audit ") or not time.startswith("time "):
        fail("checkpoint note: unexpected body lines")
    if not sig.startswith(SIG_PREFIX):
        fail("checkpoint note: the signature line does not name a bank key version")
    version, _, signature = sig[len(SIG_PREFIX):-1].partition(" ")
    signature = base64.b64decode(signature, validate=True)
    root = base64.b64decode(root, validate=True)
    if len(signature) != 64 or len(root) != 32:
        fail("checkpoint note: root or signature of the wrong length")
    return (origin[len("pension-gateway audit "):], int(size), root, (body + "\n").encode(),
            int(version), signature)


def verify_signature(public_hex, body, signature):
    if len(public_hex) != 130 or not public_hex.startswith("04"):
        fail("the bank public key is not SEC1 uncompressed hex")
    sm2 = gm_sm2.CryptSM2(private_key=None, public_key=public_hex[2:])
    # gmssl's constructor strips a leading "04" with lstrip, which eats leading digits of x;
    # set the 128 hex digits of x || y directly.
    sm2.public_key = public_hex[2:]
    return sm2.verify_with_sm3(signature.hex(), body)


def main():
    if pymerkle.__version__ != "7.0.0":
        fail(f"pymerkle {pymerkle.__version__}, expected 7.0.0")
    register_sm3()
    with open(sys.argv[1], encoding="utf-8") as f:
        proof = json.load(f)
    public_hex = sys.argv[2].strip().lower()
    hasher = MerkleHasher("sm3", True)
    checked = 0
    for row in proof["rows"]:
        log = row["log"]
        if not log.get("checkpoint"):
            continue
        leaf = bytes.fromhex(log["leaf"])
        base = hasher.hash_buff(leaf)
        if base.hex() != log["leaf_hash"]:
            fail(f"leaf hash of seq {log['seq']} differs: pymerkle {base.hex()}")
        instance, size, root, body, _version, signature = parse_note(log["checkpoint"])
        if instance != log["instance_id"]:
            fail("the checkpoint is another instance's")
        seq = log["seq"]
        if not 0 <= seq < size:
            fail(f"seq {seq} is not covered by the checkpoint of size {size}")
        if not verify_signature(public_hex, body, signature):
            fail(f"the checkpoint's signature (size {size}) does not verify")
        path = [bytes.fromhex(h) for h in log["inclusion"]]
        rule, _ = _inclusion_path_layout(seq + 1, size)
        proof_obj = InclusionProof("sm3", True, size, seq + 1, rule, [base] + path)
        try:
            verify_inclusion(base, root, proof_obj, index=seq + 1, size=size, algorithm="sm3")
        except InvalidProof as err:
            fail(f"inclusion of seq {seq} in the checkpoint of size {size}: {err}")
        checked += 1
    if checked == 0:
        print("no row with a checkpoint to check", file=sys.stderr)
        sys.exit(2)
    print(f"pymerkle {pymerkle.__version__} with SM3 and gmssl SM2 verify {checked} row(s): "
          "leaf hash, checkpoint signature, inclusion in the checkpoint's root")


if __name__ == "__main__":
    main()
