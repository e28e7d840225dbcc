"""Personal data at rest: AES-256-GCM encryption, keyed lookup hashes, and masking for display.

Ciphertext layout: 1 version byte, 12-byte random nonce, then AESGCM(ciphertext||tag).
The associated data binds a value to its field, so a phone cannot be pasted into an address.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ticketing.core.errors import CryptoError, ValidationError

_VERSION = b"\x01"


class PiiCipher:
    """Encrypts and decrypts one kind of personal field with one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise CryptoError("PII key must be 32 bytes for AES-256")
        self._aead = AESGCM(key)
        self._lookup_key = hashlib.sha256(b"kefu-lookup:" + key).digest()

    def encrypt(self, plaintext: str, *, field: str) -> bytes:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), field.encode())
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, *, field: str) -> str:
        if not blob or blob[:1] != _VERSION or len(blob) < 1 + 12 + 16:
            raise CryptoError("unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], field.encode()).decode("utf-8")
        except InvalidTag as exc:
            raise CryptoError("ciphertext does not authenticate") from exc

    def lookup_hash(self, phone: str) -> str:
        """Deterministic keyed hash of a normalised phone, for equality lookups only."""
        return hmac.new(self._lookup_key, normalize_phone(phone).encode(), "sha256").hexdigest()


_PHONE_CHARS = re.compile(r"[\s\-()]")


def normalize_phone(phone: str) -> str:
    """'+86 138-0013-8000' → '13800138000' (mainland numbers lose the country code)."""
    digits = _PHONE_CHARS.sub("", phone.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("+"):
        digits = digits[1:]
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise ValidationError("not a phone number")
    return digits


def mask_phone(phone: str) -> str:
    """'13812345678' → '138****5678'; shorter numbers keep only their last 2 digits."""
    digits = normalize_phone(phone)
    if len(digits) >= 11:
        return digits[:3] + "****" + digits[-4:]
    return "*" * (len(digits) - 2) + digits[-2:]


def mask_address(address: str) -> str:
    """Keep the region (first 6 characters), hide the street and door number."""
    address = address.strip()
    if len(address) <= 6:
        return address[:2] + "*" * max(len(address) - 2, 0)
    return address[:6] + "*" * 6
