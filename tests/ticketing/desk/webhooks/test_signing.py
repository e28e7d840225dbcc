"""Kefu-Signature: HMAC-SHA256 over "<t>.<body>", a timestamp tolerance, and the documented
receiver code agreeing with Kefu's own (ticketing.desk.webhooks.signing)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.ticketing.desk.webhooks.receiver import documented_verifier
from ticketing.desk.webhooks import signing

SECRET = "whsec_test-secret"
BODY = '{"id":"e1","type":"ticket.created","data":{"n":"工单"}}'.encode()
T = 1_772_416_800


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert signing.verify(SECRET, BODY, header, now=T + 10) == T


@pytest.mark.parametrize("secret, body", [
    ("whsec_other", BODY),  # another endpoint's secret
    (SECRET, BODY + b" "),  # one byte more
    (SECRET, BODY.replace(b"created", b"solved")),
])
def test_any_change_breaks_the_signature(secret: str, body: bytes) -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(secret, body, header, now=T)


def test_timestamp_tolerance_both_ways() -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    tolerance = signing.DEFAULT_TOLERANCE_SECONDS
    assert tolerance == 300  # the number docs/webhooks.md promises
    signing.verify(SECRET, BODY, header, now=T + tolerance)
    signing.verify(SECRET, BODY, header, now=T - tolerance)
    for now in (T + tolerance + 1, T - tolerance - 1):
        with pytest.raises(signing.SignatureError, match="tolerance"):
            signing.verify(SECRET, BODY, header, now=now)
    # a replayed body with a forged fresh timestamp does not carry a valid MAC
    forged = header.replace(f"t={T}", f"t={T + 3600}")
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(SECRET, BODY, forged, now=T + 3600)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={T}", "t=soon,v1=abc", "garbage"])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, BODY, header, now=T)


def test_one_matching_signature_of_several_is_enough() -> None:
    good = signing.compute(SECRET, T, BODY)
    header = f"t={T},v1={'0' * 64},v0=ignored,v1={good}"
    assert signing.verify(SECRET, BODY, header, now=T) == T


def test_documented_receiver_code_agrees_with_kefu() -> None:
    verify = documented_verifier()
    fresh = signing.sign(SECRET, BODY)  # signed now: the documented code reads the real clock
    assert verify(SECRET, BODY, fresh) is True
    assert verify(SECRET, BODY + b"x", fresh) is False
    assert verify("whsec_other", BODY, fresh) is False
    assert verify(SECRET, BODY, signing.sign(SECRET, BODY, timestamp=T)) is False  # too old
    assert verify(SECRET, BODY, "t=1,v0=abc") is False
