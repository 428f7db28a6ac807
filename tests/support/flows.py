"""The addons driven in process as mitmproxy drives them: flows built as they travel, hooks in order."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from mitmproxy import http
from mitmproxy.log import MitmLogHandler
from mitmproxy.test import taddons


@contextlib.contextmanager
def harness(*addons: object) -> Iterator[taddons.context]:
    """mitmproxy's test context, whose log handler is removed again after (its loop closes with it)."""
    with taddons.context(*addons) as tctx:
        try:
            yield tctx
        finally:
            for handler in list(logging.getLogger().handlers):
                if isinstance(handler, MitmLogHandler) and getattr(handler, "master", None) is tctx.master:
                    handler.uninstall()


def fields(headers: list[tuple[str, str]]) -> http.Headers:
    return http.Headers([(k.encode(), v.encode()) for k, v in headers])


def make_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> http.Request:
    request = http.Request.make(method, f"https://api.example.com{path}")
    request.headers = fields(headers)  # after make(): make() drops a Content-Encoding it cannot encode b"" with
    request.raw_content = body  # as it travels: already encoded when a content-encoding header says so
    return request


def make_response(status: int, headers: list[tuple[str, str]]) -> http.Response:
    response = http.Response.make(status)
    response.headers = fields(headers)
    return response


def run_hook(name: str, flow: http.HTTPFlow, *addons: object) -> None:
    """Call hook ``name`` on every addon that has it, in order, as mitmproxy does (exceptions propagate)."""
    for addon in addons:
        method = getattr(addon, name, None)
        if method is not None:
            method(flow)


def drive(inject: object, audit: object, flow: http.HTTPFlow, response: http.Response,
          chunks: list[bytes]) -> list[bytes] | None:
    """The hooks in mitmproxy's order; returns what the client got when the response was streamed."""
    run_hook("requestheaders", flow, inject, audit)
    run_hook("request", flow, inject, audit)
    body = b"".join(chunks)
    response.raw_content = None  # at responseheaders only the head has arrived
    flow.response = response
    run_hook("responseheaders", flow, inject, audit)
    if callable(response.stream):
        delivered = []
        for piece in [*chunks, b""]:
            out = response.stream(piece)
            assert out is piece, "the tap must hand back the very chunk object"
            delivered.append(out)
    else:
        response.raw_content = body
        delivered = None
    run_hook("response", flow, inject, audit)
    return delivered
