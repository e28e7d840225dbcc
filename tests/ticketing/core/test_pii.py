import pytest

from ticketing.core.errors import CryptoError, ValidationError
from ticketing.core.pii import PiiCipher, mask_address, mask_phone, normalize_phone


def test_round_trip_and_random_nonce(cipher: PiiCipher) -> None:
    a = cipher.encrypt("13812345678", field="phone")
    b = cipher.encrypt("13812345678", field="phone")
    assert a != b  # fresh nonce each time
    assert b"13812345678" not in a
    assert cipher.decrypt(a, field="phone") == "13812345678"


def test_field_binding_and_tamper_detection(cipher: PiiCipher) -> None:
    blob = cipher.encrypt("上海市浦东新区", field="address")
    with pytest.raises(CryptoError):
        cipher.decrypt(blob, field="phone")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(CryptoError):
        cipher.decrypt(tampered, field="address")
    with pytest.raises(CryptoError):
        PiiCipher(b"x" * 32).decrypt(blob, field="address")


def test_wrong_key_length() -> None:
    with pytest.raises(CryptoError):
        PiiCipher(b"short")


def test_masking() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "138****5678"
    assert mask_address("上海市浦东新区世纪大道100号") == "上海市浦东新******"
    with pytest.raises(ValidationError):
        mask_phone("call me")


def test_lookup_hash_normalises(cipher: PiiCipher) -> None:
    assert cipher.lookup_hash("+86 13812345678") == cipher.lookup_hash("138-1234-5678")
    assert normalize_phone("0086 13812345678") == "13812345678"
