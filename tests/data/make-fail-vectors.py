#!/usr/bin/env python3
"""Derives the bad-input corpus (fail_*) from the base messages in this folder.

base_seipd1.gpg was made by gpg, base_seipd2_ocb.gpg by Sequoia (see tests/decrypt.rs,
write_base_vectors); both are encrypted to tests/data/keys/cv25519. Offsets follow the
packet layout printed by `gpg --list-packets`.
"""
import os

here = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(here, name), "rb") as f:
        return bytearray(f.read())


def write(name, data):
    with open(os.path.join(here, name), "wb") as f:
        f.write(bytes(data))


def flipped(data, offset):
    out = bytearray(data)
    out[offset] ^= 0x01
    return out


v1 = read("base_seipd1.gpg")
v2 = read("base_seipd2_ocb.gpg")

# PKESK v3: ctb, len, version, key id (offsets 3..11), algo, MPI point (14..47), wrapped key.
write("fail_pkesk_keyid.gpg", flipped(v1, 5))
write("fail_pkesk_point.gpg", flipped(v1, 30))
write("fail_pkesk_wrapped_key.gpg", flipped(v1, 60))
# SEIPD v1 starts at 96: flip inside the body, and the last byte (inside the MDC).
write("fail_seipd_body.gpg", flipped(v1, 110))
write("fail_mdc.gpg", flipped(v1, len(v1) - 1))
write("fail_truncated.gpg", v1[: len(v1) - 40])
write("fail_truncated_header.gpg", v1[:50])
# SEIPD v2 (OCB): the last 16 bytes are the final authentication tag.
write("fail_aead_tag.gpg", flipped(v2, len(v2) - 1))
write("fail_aead_chunk.gpg", flipped(v2, len(v2) - 40))
write("fail_empty.txt", b"")
write("fail_not_openpgp.txt", b"Hello, this is not an OpenPGP message.\n")
write("fail_armor_garbage.asc",
      b"-----BEGIN PGP MESSAGE-----\n\nbm90IGEgbWVzc2FnZQ==\n=AAAA\n-----END PGP MESSAGE-----\n")
