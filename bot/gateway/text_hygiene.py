"""Customer text made storable before anything else touches it.

Some characters a browser or a bot client can send are not text a database or a UTF-8 encoder
will take: PostgreSQL's ``text`` cannot hold NUL, and a lone UTF-16 surrogate (``"\\ud800"``
in a JSON frame) cannot be encoded at all. Left in, they made storing the message fail, the
gateway answered ``unavailable`` and the widget resent the same message every few seconds
forever. The gateway therefore cleans every inbound text and payload first: what a person
could have meant survives (line breaks, tabs, every printable character), what no person
types is dropped (other C0/C1 control characters), and a lone surrogate becomes U+FFFD, the
replacement character, so the customer's words around it are kept.
"""

from __future__ import annotations

import re

# C0 controls except \t (09) and \n (0a); \r is turned into \n first. DEL and C1 controls too.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# In a Python str any surrogate code point is unpaired: json.loads joins valid pairs.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean(text: str) -> str:
    """``text`` without control characters (but \\n and \\t) and with lone surrogates replaced."""
    if text.isprintable() and text.isascii():  # the common case: nothing to do
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATES.sub(REPLACEMENT, _CONTROLS.sub("", text))


def is_clean(text: str) -> bool:
    """True when :func:`clean` would leave ``text`` unchanged."""
    return clean(text) == text
