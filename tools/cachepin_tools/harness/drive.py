"""Hold conversations through a proxy with the official SDKs, every turn streamed.

``scripts/demo`` and ``scripts/verify`` talk to a provider the same way, so
that the two commands cannot drift apart in it: one client per provider,
``trust_env=False`` (the proxy is ours, on 127.0.0.1), a breakpoint on the
system prompt plus Anthropic's automatic (top-level) ``cache_control`` so
each turn's whole prefix is cached for the next one (OpenAI-style providers
cache automatically), and SDK errors turned into one line without the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import anthropic
import openai

from cachepin_tools.harness.command import RunError, progress
from cachepin_tools.harness.conversations import QUESTIONS, Conversation

SDK_PATHS = {"anthropic": "", "openai": "/v1"}  # what each SDK's base URL adds to the provider's origin
_CLIENTS = {
    "anthropic": (anthropic.Anthropic, anthropic.DefaultHttpxClient),
    "openai": (openai.OpenAI, openai.DefaultHttpxClient),
}
MAX_OUTPUT_TOKENS = 200
REQUEST_TIMEOUT = 120.0  # seconds per request; a CI job should fail, not hang
EPHEMERAL = {"type": "ephemeral"}


def drive(base_url: str, plan: Sequence[Conversation], api_key: str, *, retries: int = 0) -> list[list[str]]:
    """Hold each conversation in turn (one after the other, so the order of sessions in the report is
    the order of ``plan``); every turn streams, and prints its number when done, as progress.
    Returns the answers; raises RunError on an API error."""
    with contextlib.ExitStack() as clients:
        made: dict[str, anthropic.Anthropic | openai.OpenAI] = {}

        def client(provider: str) -> anthropic.Anthropic | openai.OpenAI:
            """One client per provider, made on first use. trust_env=False: the client talks to our own
            mitmdump on 127.0.0.1, so an HTTP_PROXY from the environment is never the way there."""
            if provider not in made:
                factory, http_client = _CLIENTS[provider]
                made[provider] = clients.enter_context(factory(
                    base_url=base_url + SDK_PATHS[provider], api_key=api_key, max_retries=retries,
                    timeout=REQUEST_TIMEOUT, http_client=http_client(trust_env=False),
                ))
            return made[provider]

        replies = []
        for conversation in plan:
            progress(f"  {conversation.label} ({conversation.model}): turn")
            try:
                with _explained(conversation, api_key):
                    replies.append(_hold(client(conversation.provider), conversation))
            finally:
                progress("\n")
        return replies


def _hold(client: anthropic.Anthropic | openai.OpenAI, conversation: Conversation) -> list[str]:
    messages: list[dict[str, str]] = []
    answers = []
    for turn in range(conversation.turns):
        messages.append({"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]})
        if isinstance(client, anthropic.Anthropic):
            answer = _anthropic_turn(client, conversation, messages)
        else:
            answer = _chat_turn(client, conversation, messages)
        messages.append({"role": "assistant", "content": answer or "(no answer)"})
        answers.append(answer)
        progress(f" {turn + 1}")
    return answers


def _anthropic_turn(client: anthropic.Anthropic, conversation: Conversation, messages: list[dict[str, str]]) -> str:
    """A streamed Messages call: a breakpoint on the system prompt, and automatic caching of the whole
    prefix (top-level cache_control), so the next turn can read everything this one sent."""
    system = [{"type": "text", "text": conversation.system, "cache_control": EPHEMERAL}]
    # One plain message list serves both SDKs, so their TypedDict parameter types cannot be named here.
    with client.messages.stream(model=conversation.model, max_tokens=MAX_OUTPUT_TOKENS,
                                system=system,  # type: ignore[arg-type]
                                messages=messages,  # type: ignore[arg-type]
                                cache_control=EPHEMERAL) as stream:  # type: ignore[arg-type]
        return stream.get_final_text()


def _chat_turn(client: openai.OpenAI, conversation: Conversation, messages: list[dict[str, str]]) -> str:
    """A streamed Chat Completions call; usage only arrives in a stream when asked for (include_usage)."""
    chunks = client.chat.completions.create(  # type: ignore[call-overload]  # plain dict messages, as above
        model=conversation.model, messages=[{"role": "system", "content": conversation.system}, *messages],
        max_completion_tokens=MAX_OUTPUT_TOKENS, stream=True, stream_options={"include_usage": True},
    )
    with chunks:
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


@contextlib.contextmanager
def _explained(conversation: Conversation, api_key: str) -> Iterator[None]:
    """SDK errors as one clear line; the key is never in it (OpenAI echoes part of a rejected key)."""
    try:
        yield
    except (anthropic.APIStatusError, openai.APIStatusError) as error:
        where = f"{conversation.label}: the target answered HTTP {error.status_code}"
        if error.status_code in (401, 403):
            raise RunError(f"{where}: the credentials were rejected (pass --api-key-env NAME)") from None
        raise RunError(f"{where}: {_redacted(error.message, api_key)}") from None
    except (anthropic.APIError, openai.APIError) as error:
        raise RunError(f"{conversation.label}: {_redacted(str(error), api_key)}") from None


def _redacted(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
