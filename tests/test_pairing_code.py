import hashlib

import pytest

from batm_common import pairing_code

TERMINAL_KEY = bytes(range(32))
SERVER_SPKI = b"\x30\x59" + bytes(89)
SN = bytes([1]) * 32
TN = bytes([2]) * 32


def test_code_is_eight_unambiguous_symbols_grouped():
    code = pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, SN, TN)
    assert len(code) == 9 and code[4] == "-"
    assert all(ch in pairing_code.ALPHABET for ch in code.replace("-", ""))
    assert not set("ILOU") & set(code)


def test_code_is_deterministic_and_depends_on_every_input():
    base = pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, SN, TN)
    assert base == pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, SN, TN)
    variants = [
        pairing_code.derive(bytes(32), SERVER_SPKI, SN, TN),
        pairing_code.derive(TERMINAL_KEY, SERVER_SPKI + b"x", SN, TN),
        pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, bytes(32), TN),
        pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, SN, bytes(32)),
    ]
    assert base not in variants


def test_length_prefix_prevents_shifting_bytes_between_fields():
    a = pairing_code.derive(TERMINAL_KEY + b"\x00", SERVER_SPKI, SN, TN)
    b = pairing_code.derive(TERMINAL_KEY, b"\x00" + SERVER_SPKI, SN, TN)
    assert a != b


def test_known_vector():
    # Recompute independently from the spec in docs/protocol.md §1.
    def lp(x):
        return len(x).to_bytes(4, "big") + x

    digest = hashlib.sha256(
        b"batm-pairing-code-v1" + lp(TERMINAL_KEY) + lp(SERVER_SPKI) + lp(SN) + lp(TN)
    ).digest()
    bits = bin(int.from_bytes(digest[:5], "big"))[2:].zfill(40)
    symbols = "".join(pairing_code.ALPHABET[int(bits[i : i + 5], 2)] for i in range(0, 40, 5))
    assert pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, SN, TN) == symbols[:4] + "-" + symbols[4:]


def test_commitment_binds_the_terminal_nonce():
    c = pairing_code.commitment(TN)
    assert pairing_code.verify_commitment(c, TN)
    assert pairing_code.verify_commitment(c.upper(), TN)
    assert not pairing_code.verify_commitment(c, SN)


@pytest.mark.parametrize("typed", ["ABCD-EFGH", "abcd efgh", "ABCDEFGH", " abcd-efgh "])
def test_typed_codes_are_normalized(typed):
    assert pairing_code.normalize(typed) == "ABCD-EFGH"


def test_loose_letters_map_to_digits():
    assert pairing_code.normalize("O1IL-0000") == "0111-0000"
    assert pairing_code.matches("0111-0000", "oiil 0000")


@pytest.mark.parametrize(
    ("typed", "reason"),
    [("ABC", "8 characters"), ("ABCD-EFGHJ", "8 characters"), ("ABCD-EFG!", "'!'"),
     ("ABCD-EFGU", "'U'")],
)
def test_malformed_codes_are_refused_with_a_reason(typed, reason):
    with pytest.raises(pairing_code.CodeFormatError, match=reason):
        pairing_code.normalize(typed)


def test_nonce_length_is_checked():
    with pytest.raises(ValueError, match="server nonce"):
        pairing_code.derive(TERMINAL_KEY, SERVER_SPKI, b"short", TN)
