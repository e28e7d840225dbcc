from ticketing.core import passwords


def test_hash_verifies_and_is_salted() -> None:
    first, second = passwords.hash_password("kefu-demo"), passwords.hash_password("kefu-demo")
    assert first != second and "kefu-demo" not in first
    assert passwords.verify_password("kefu-demo", first)
    assert passwords.verify_password("kefu-demo", second)
    assert not passwords.verify_password("kefu-dem0", first)


def test_malformed_or_missing_hash_never_verifies() -> None:
    for stored in (None, "", "plain", "md5$1$2$3$aa$bb", "scrypt$x$8$1$aa$bb"):
        assert not passwords.verify_password("kefu-demo", stored)
    assert not passwords.verify_password("", passwords.hash_password("x"))
