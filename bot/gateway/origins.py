"""Which web pages may open the widget's WebSocket (``KEFU_WIDGET_ORIGINS``).

A browser sends the page's ``Origin`` with every WebSocket handshake and, unlike for plain
HTTP, no CORS rule stops a foreign page from opening the socket: any site a visitor opens
could talk to the gateway as that visitor (with the shop's token, if the page can get one).
So the gateway refuses, with HTTP 403 before the upgrade, a handshake whose ``Origin`` is not
one of:

- the gateway's own host name (any scheme or port: its demo page, a shop on the same host);
- an origin listed in ``KEFU_WIDGET_ORIGINS`` (comma-separated ``scheme://host[:port]``;
  ``*`` allows every page, for a widget embedded on sites you do not list);
- with the list unset, any ``localhost`` page while the gateway itself is reached on
  localhost (development: a shop's dev server on another port).

A handshake without ``Origin`` is not from a browser page (a script, a test client, a mobile
app); it proves nothing either way and is allowed: the check protects visitors' browsers,
not the gateway, which treats every frame as untrusted anyway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}:{port}"
    return f"{parts.scheme}://{host}"


def _hostname(host_header: str | None) -> str | None:
    if not host_header:
        return None
    try:
        return urlsplit("//" + host_header).hostname
    except ValueError:
        return None


def allowed(origin: str | None, *, host: str | None, configured: tuple[str, ...]) -> bool:
    """May a page of ``origin`` open the socket of the gateway reached as ``host``?"""
    if origin is None:
        return True
    if "*" in configured:
        return True
    normal = normalize(origin)
    if normal is None:  # "null" (sandboxed frames, file://) and garbage
        return False
    if normal in configured:
        return True
    page = urlsplit(normal).hostname
    gateway = _hostname(host)
    if page is not None and page == gateway:
        return True
    return not configured and page in LOOPBACK and gateway in LOOPBACK
