"""A request body streamed upstream as it arrives, with a copy kept for the addons that read it afterwards.

mitmproxy holds a request until its whole body has arrived, unless it is
streamed (``request.stream``). When the headers already name the session, the
body is needed before forwarding only for an edit (``prompt_cache_key``,
``cache_diagnostics``), so cachepin streams it like ``stream_large_bodies``
would and keeps the copy: once the body has passed, the flow holds it as if
it had been buffered (the audit reads it, ``-w`` saves it, mitmweb shows it),
but no byte waited for the last one.
"""

from __future__ import annotations

from typing import Protocol

from cachepin.request.dialects import Dialect


class _Data(Protocol):
    content: bytes | None


class _Request(Protocol):
    """What ``settle`` needs of a mitmproxy request (this package never imports mitmproxy)."""

    @property
    def stream(self) -> object: ...

    @property
    def data(self) -> _Data: ...


class RequestTee:
    """``request.stream``: each chunk goes upstream unchanged, and is kept."""

    __slots__ = ("_chunks", "ended")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.ended = False  # the body's end passed (mitmproxy calls the stream with b"")

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:
            self._chunks.append(chunk)
        else:
            self.ended = True
        return chunk

    def body(self) -> bytes:
        """The body as it went upstream, in one piece (joined once)."""
        if len(self._chunks) != 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]


def settle(request: _Request) -> None:
    """In the ``request`` hook, which mitmproxy calls once a streamed body has passed: the body the tee kept
    becomes the request's content, as buffering would have left it (raw, in the client's coding)."""
    tee = request.stream
    if isinstance(tee, RequestTee) and tee.ended and request.data.content is None:
        request.data.content = tee.body()


WANT_THE_REQUEST = ("intercept_active", "modify_body", "map_local", "map_remote", "server_replay", "block_list",
                    "stickyauth", "stickycookie", "anticache", "anticomp", "body_size_limit", "cache_diagnostics")
"""Options whose addons act on a request in its ``request`` hook, once the body is in, or check its size while it
is buffered: a streamed request has left by then, headers and body (and its upstream is chosen). mitmproxy's
intercept, body and header editors, server replay, the block list, its body size limit; the audit's
``cache_diagnostics``, which adds a member to the body."""


KEYED_DIALECTS = (Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES)  # affinity_prompt_cache_key edits their bodies


def may_stream(options: object, dialect: Dialect | None) -> bool:
    """Whether an LLM request whose headers name its session may leave before its body has arrived: both addons
    ask the same, so whichever hook runs first decides as the other would. ``affinity_stream_requests`` is on,
    no loaded addon wants the request first (``options``: mitmproxy's; an option nobody declares is off), and
    ``affinity_prompt_cache_key`` has no OpenAI body to add its member to."""
    def option(name: str) -> object:
        return getattr(options, name, None)

    return (dialect is not None and bool(option("affinity_stream_requests"))
            and not any(option(name) for name in WANT_THE_REQUEST)
            and not (option("affinity_prompt_cache_key") and dialect in KEYED_DIALECTS))
