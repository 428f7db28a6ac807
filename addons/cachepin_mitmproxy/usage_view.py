"""The mitmweb/mitmproxy content view of an LLM response's cache figures, and the turn its flow was recorded as."""

from __future__ import annotations

from mitmproxy import contentviews, http

from cachepin.request.dialects import Dialect
from cachepin.views.content_view import TURN_KEY, render
from cachepin_mitmproxy.flows import dialect_of


class UsageContentview(contentviews.Contentview):
    """mitmweb/mitmproxy view of an LLM response's cache figures (and a stream's text)."""

    name = "cachepin usage"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        dialect = _metadata_dialect(metadata)
        if dialect is None:
            raise ValueError("not an LLM API response")
        return render(dialect, metadata.content_type or "", data, _turn_facts(metadata))

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return 2 if _metadata_dialect(metadata) is not None and data else -1


def _turn_facts(metadata: contentviews.Metadata) -> dict | None:
    facts = metadata.flow.metadata.get(TURN_KEY) if metadata.flow is not None else None
    return facts if isinstance(facts, dict) else None


def _metadata_dialect(metadata: contentviews.Metadata) -> Dialect | None:
    flow = metadata.flow
    if not isinstance(flow, http.HTTPFlow) or metadata.http_message is not flow.response:
        return None
    return dialect_of(flow)
