"""A healthchecks-style ping receiver for tests: http.server on 127.0.0.1 in a thread.

    with PingReceiver() as receiver:
        ... receiver.url("/uuid/start") ...
        receiver.requests  # [Ping(method, path, body), ...] in arrival order

`status` sets the HTTP status it answers with (e.g. 500 to test a failing ping);
`fail_first` answers the first N requests with 503 (retries). `Ping.headers` holds
every request header (names lower-cased).
`dead_url()` is a URL on a port nothing listens on (a closed receiver).
"""

from __future__ import annotations

import http.server
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    body: bytes
    user_agent: str
    headers: dict[str, str] = field(default_factory=dict)


class PingReceiver:
    def __init__(self, *, status: int = 200, fail_first: int = 0) -> None:
        self.status = status
        self.fail_first = fail_first
        self.requests: list[Ping] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(
                        Ping(
                            self.command,
                            self.path,
                            body,
                            self.headers.get("User-Agent", ""),
                            headers,
                        )
                    )
                    failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(503 if failing else receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(b"OK")

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def __enter__(self) -> PingReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def dead_url(path: str = "/dead") -> str:
    """A URL on a loopback port that was free a moment ago (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
