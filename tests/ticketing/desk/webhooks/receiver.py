"""A real HTTP receiver on 127.0.0.1 in a thread, scripted per request, that keeps what it got.

It deduplicates by ``Kefu-Event-Id`` as docs/webhooks.md tells shops to, and checks each
signature with the verification code printed in that page (extracted and executed here, so
the documented code is the tested code).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOC = Path(__file__).resolve().parents[4] / "docs" / "webhooks.md"


def documented_verifier() -> Callable[..., bool]:
    """``verify_kefu_signature`` exactly as docs/webhooks.md prints it."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Verifying a request", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/webhooks.md lost its verification code"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    verifier = namespace["verify_kefu_signature"]
    assert callable(verifier)
    return verifier


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    valid: bool  # the documented check passed


@dataclass
class Receiver:
    """Answers each request with the next scripted step: a status code, or ``("sleep", s)``
    to stall past the client's timeout. With no step left it answers 200."""

    secret: str = ""
    script: list[object] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self) -> object:
        with self.lock:
            return self.script.pop(0) if self.script else 200

    def keep(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    @property
    def processed(self) -> Counter[str]:
        """Receipts per Kefu-Event-Id (a receiver that deduplicates processes each once)."""
        with self.lock:
            return Counter(r.headers["Kefu-Event-Id"] for r in self.received)


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    verify = documented_verifier()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items()}
            valid = verify(receiver.secret, body, headers.get("Kefu-Signature", ""))
            step = receiver.next_step()
            if isinstance(step, tuple) and step[0] == "sleep":
                time.sleep(float(step[1]))
                step = 200
            receiver.keep(Received(self.path, headers, body, valid))
            try:
                self.send_response(int(step))  # type: ignore[call-overload]
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops connects when workers send in parallel

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/kefu-hooks?token=shop-side"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
