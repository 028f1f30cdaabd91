"""A small OpenAI-compatible chat-completions server for tests (stdlib only).

`FakeLLMServer` listens on 127.0.0.1 on a free port in a background thread, records every
request (path, headers, JSON body) and answers `POST …/chat/completions` as its `reply` says:
a completion JSON, or Server-Sent Events when the request asked for `stream` — or an HTTP
error, a raw (e.g. invalid) body, after a delay.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """How the server answers the next requests."""

    content: str = ""  # the model's text
    status: int = 200
    raw: str | None = None  # sent as the body instead of a completion (e.g. invalid JSON)
    delay: float = 0.0  # seconds before the response starts
    chunk_size: int = 8  # characters per streamed delta
    chunk_delay: float = 0.0  # seconds between streamed deltas
    events: list[str] | None = None  # streamed `data:` payloads sent verbatim instead


@dataclass
class Recorded:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system(self) -> str:
        return "\n".join(m["content"] for m in self.body["messages"] if m["role"] == "system")

    @property
    def user(self) -> str:
        return "\n".join(m["content"] for m in self.body["messages"] if m["role"] == "user")


@dataclass
class FakeLLMServer:
    """The server; use as a context manager (`with FakeLLMServer() as server:`)."""

    reply: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="fake-llm", daemon=True
        )

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (`…/v1`)."""
        return f"http://127.0.0.1:{self._httpd.server_port}/v1"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ responses

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True if it is still running."""
        return not (seconds > 0 and self._stopping.wait(seconds))

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length).decode("utf-8")
        try:
            body = json.loads(raw_body)
        except ValueError:
            body = {"raw": raw_body}
        self.requests.append(Recorded(handler.path, dict(handler.headers.items()), body))
        reply = self.reply
        if not self._sleep(reply.delay):
            return
        if not handler.path.endswith("/chat/completions"):
            self._send(handler, 404, '{"error": "not found"}', "application/json")
        elif reply.status != 200:
            self._send(handler, reply.status, '{"error": {"message": "boom"}}', "application/json")
        elif reply.raw is not None:
            self._send(handler, 200, reply.raw, "application/json")
        elif body.get("stream"):
            self._stream(handler, body, reply)
        else:
            completion = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": "stop",
                    }
                ],
            }
            self._send(handler, 200, json.dumps(completion, ensure_ascii=False), "application/json")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, text: str, ctype: str) -> None:
        data = text.encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", f"{ctype}; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _stream(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
        events = reply.events
        if events is None:
            events = [_chunk(piece, body.get("model")) for piece in _pieces(reply)]
        for event in events:
            handler.wfile.write(f"data: {event}\n\n".encode())
            handler.wfile.flush()
            if not self._sleep(reply.chunk_delay):
                return
        handler.wfile.write(b"data: [DONE]\n\n")


def _pieces(reply: Reply) -> Iterator[str]:
    size = max(1, reply.chunk_size)
    for i in range(0, len(reply.content), size):
        yield reply.content[i : i + size]


def _chunk(piece: str, model: str | None) -> str:
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
    }
    return json.dumps(chunk, ensure_ascii=False)


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                server.handle(self)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("client went away")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("fake llm: " + format, *args)

    return Handler


def unused_port() -> int:
    """A local port nothing listens on (for «connection refused»)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
