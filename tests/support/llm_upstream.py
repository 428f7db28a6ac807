"""A tiny recording LLM upstream for tests: answers with known usage figures and keeps every request.

It speaks just enough of the Anthropic Messages, OpenAI Chat Completions and
Responses APIs (JSON and SSE, optionally gzipped, with a delay between events)
for the official SDKs to be satisfied, so tests can compare what the proxy
reports and forwards with exactly what was sent and received.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANTHROPIC_USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 1538, "cache_read_input_tokens": 0,
                   "output_tokens": 85}
OPENAI_USAGE = {"prompt_tokens": 4300, "completion_tokens": 52, "prompt_tokens_details": {"cached_tokens": 4096}}
RESPONSES_USAGE = {"input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912}, "output_tokens": 140,
                   "output_tokens_details": {"reasoning_tokens": 64}}


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Behaviour:
    """What the upstream answers; tests change it between requests."""

    anthropic_usage: dict = field(default_factory=lambda: dict(ANTHROPIC_USAGE))
    openai_usage: dict = field(default_factory=lambda: dict(OPENAI_USAGE))
    responses_usage: dict = field(default_factory=lambda: dict(RESPONSES_USAGE))
    event_delay: float = 0.0
    gzip_sse: bool = False
    status: int = 200
    text: str = "Hello from the fake upstream."
    cut_after: int | None = None  # SSE: drop the connection after this many events, without ending the body


def anthropic_events(usage: dict, text: str, model: str) -> list[tuple[str, dict]]:
    start_usage = {**usage, "output_tokens": 1}
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for word in text.split(" "):
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": word + " "}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": usage.get("output_tokens", 0)}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def anthropic_message(usage: dict, text: str, model: str) -> dict:
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


def chat_completion(usage: dict, text: str, model: str) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage}


def chat_chunks(usage: dict | None, text: str, model: str) -> list[dict]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": word + " "},
                                    "finish_reason": None}]} for word in text.split(" ")]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def response_object(usage: dict, text: str, model: str) -> dict:
    return {"id": "resp_fake", "object": "response", "created_at": 0, "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


class FakeUpstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = Behaviour()
        self.records: list[Recorded] = []
        self.last_event_sent_at: float | None = None
        self.sent: list[bytes] = []  # every response body as written: content-encoded, without chunk framing
        handler = type("Handler", (_Handler,), {"upstream": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:  # HTTPS upstream for interception tests; the handshake runs in accept()
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _record(self) -> Recorded:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("content-encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "zstd":
            from backports import zstd
            raw = zstd.decompress(raw)
        recorded = Recorded(self.command, self.path, list(self.headers.items()), raw)
        self.upstream.records.append(recorded)
        return recorded

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        recorded = self._record()
        behaviour = self.upstream.behaviour
        try:
            body = recorded.json()
        except ValueError:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad json"}})
            return
        if behaviour.status != 200:
            self._json(behaviour.status, {"type": "error", "error": {"type": "overloaded_error",
                                                                        "message": "Overloaded"}})
            return
        model = body.get("model", "fake-model")
        path = self.path.split("?", 1)[0]
        stream = bool(body.get("stream"))
        if path.endswith("/messages"):
            if stream:
                self._sse([(name, data) for name, data in
                           anthropic_events(behaviour.anthropic_usage, behaviour.text, model)])
            else:
                self._json(200, anthropic_message(behaviour.anthropic_usage, behaviour.text, model))
        elif path.endswith("/chat/completions"):
            if stream:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks = chat_chunks(behaviour.openai_usage if include else None, behaviour.text, model)
                self._sse([(None, chunk) for chunk in chunks] + [(None, "[DONE]")])
            else:
                self._json(200, chat_completion(behaviour.openai_usage, behaviour.text, model))
        elif path.endswith("/responses"):
            response = response_object(behaviour.responses_usage, behaviour.text, model)
            if stream:
                events = [("response.created", {"type": "response.created", "sequence_number": 0,
                                                "response": {**response, "status": "in_progress", "output": []}})]
                events += [("response.output_text.delta", {"type": "response.output_text.delta", "delta": word,
                                                           "item_id": "msg_fake", "output_index": 0,
                                                           "content_index": 0, "sequence_number": i + 1})
                           for i, word in enumerate(behaviour.text.split(" "))]
                events.append(("response.completed", {"type": "response.completed", "response": response,
                                                      "sequence_number": len(events)}))
                self._sse(events)
            else:
                self._json(200, response)
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.upstream.sent.append(data)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, object]]) -> None:
        behaviour = self.upstream.behaviour
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        compressor = None
        if behaviour.gzip_sse and "gzip" in (self.headers.get("accept-encoding") or ""):
            self.send_header("content-encoding", "gzip")
            compressor = zlib.compressobj(wbits=31)
        self.end_headers()
        sent = bytearray()
        for i, (name, data) in enumerate(events):
            if i == behaviour.cut_after:
                self.upstream.sent.append(bytes(sent))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if i and behaviour.event_delay:
                time.sleep(behaviour.event_delay)
            payload = data if isinstance(data, str) else json.dumps(data)
            text = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
            chunk = text.encode()
            if compressor is not None:
                chunk = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            self._chunk(chunk)
            sent += chunk
            self.upstream.last_event_sent_at = time.monotonic()
        if compressor is not None:
            tail = compressor.flush()
            self._chunk(tail)
            sent += tail
        self.upstream.sent.append(bytes(sent))  # before the last chunk: a client that has it all sees it here
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
