"""Loopback hosts: one answer for Rasa's exposure check and the webhooks' plain-HTTP rule."""

from ticketing.core.hosts import is_loopback


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST",
                                        "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "rasa", "::", "", None))
