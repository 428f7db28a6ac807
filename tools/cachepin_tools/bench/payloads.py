"""Deterministic, realistic payloads for the benchmark and its fast upstream.

The addons' cost depends on what they parse, so the benchmark uses bodies
shaped like a coding agent's: a Claude-Code-like system prompt, a few dozen
tool schemas, and a long history of text, tool calls and tool results full
of code (newlines, quotes and some non-ASCII, which JSON must escape or
decode). Bodies carry no session id, so the resolver takes its most
expensive path, the fingerprint. SSE streams are made of many small deltas,
like real ones, with the usage events where providers put them, rendered by the wire kit.
"""

from __future__ import annotations

import json
import random

from cachepin_tools.wire import anthropic, framing, openai
from cachepin_tools.wire.tokens import Tokens

MODEL = "claude-sonnet-4-5"
OPENAI_MODEL = "gpt-4.1"
USAGE = anthropic.usage(Tokens(12, read=48_213, creation=1538, output=731))
OPENAI_USAGE = openai.chat_usage(Tokens(1872, read=48_128, output=731))  # 50,000 prompt tokens, 48,128 cached
_ASCII_WORDS = ("def", "return", "self", "value", "for", "in", "if", "else", "import", "None", "result", "path",
                "config", "session", "cache", "token", "request", "response", "stream", "flow", "async", "await",
                "class", "raise", "data", "index")
_WORDS = (*_ASCII_WORDS, "héllo", "naïve", "größe", "→")  # agents' contexts hold some non-ASCII text
_DELTA_POOL = 1024  # distinct delta frames a stream cycles through: building 50 MB stays fast


def _code(rng: random.Random, size: int, words: tuple[str, ...] = _WORDS) -> str:
    """Code-like text of about ``size`` characters: indented lines, quotes, some non-ASCII."""
    lines: list[str] = []
    length = 0
    while length < size:
        indent = "    " * rng.randrange(4)
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 12)))
        line = f'{indent}{text} = "{rng.choice(words)}"  # {rng.randrange(10**6)}'
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def _tool(rng: random.Random, index: int, words: tuple[str, ...]) -> dict:
    properties = {f"arg_{i}": {"type": rng.choice(["string", "integer", "boolean"]),
                               "description": _code(rng, 80, words)} for i in range(rng.randrange(2, 6))}
    return {"name": f"Tool{index}", "description": _code(rng, 1200, words),
            "input_schema": {"type": "object", "properties": properties, "required": sorted(properties)[:1]}}


def agent_body(size: int, seed: int = 1, turn: int = 0, ascii_only: bool = False) -> bytes:
    """An Anthropic Messages request of about ``size`` bytes, the ``turn``-th of conversation ``seed``.

    The system prompt and first user message depend on ``seed`` only, so all
    turns of a conversation resolve to the same fingerprint; the last user
    message names the turn, so no two bodies are equal. ``ascii_only`` leaves
    out the non-ASCII words, to show what UTF-8 decoding costs the parser.
    """
    rng = random.Random(seed)
    words = _ASCII_WORDS if ascii_only else _WORDS
    body: dict = {
        "model": MODEL,
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0.0"},
                   {"type": "text", "text": _code(rng, min(12_000, size // 8), words),
                    "cache_control": {"type": "ephemeral"}}],
        "tools": [_tool(rng, i, words) for i in range(max(1, min(24, size // 8000)))],
        "messages": [{"role": "user", "content": [{"type": "text", "text": _code(rng, 400, words)}]}],
    }
    messages = body["messages"]
    length = len(json.dumps(body, ensure_ascii=False).encode())
    step = 0
    while length < size - 600:
        step += 1
        use_id = f"toolu_{seed:04d}{step:08d}"
        assistant = {"role": "assistant", "content": [
            {"type": "text", "text": _code(rng, 200, words)},
            {"type": "tool_use", "id": use_id, "name": "Tool1", "input": {"path": f"src/file_{step}.py"}}]}
        result = {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use_id, "content": _code(rng, min(6000, size - length), words)}]}
        messages += [assistant, result]
        length += len(json.dumps([assistant, result], ensure_ascii=False).encode())
    messages[-1]["content"].append({"type": "text", "text": f"turn {turn}", "cache_control": {"type": "ephemeral"}})
    return json.dumps(body, ensure_ascii=False).encode()


def anthropic_events(size: int, seed: int = 7) -> list[bytes]:
    """An Anthropic Messages stream of about ``size`` bytes, one frame per event."""
    rng = random.Random(seed)
    start = framing.frames(anthropic.opening(USAGE, MODEL, "msg_bench"), framing.RAW_UTF8)
    end = framing.frames(anthropic.closing(USAGE), framing.RAW_UTF8)
    deltas = framing.frames(map(anthropic.text_delta, _delta_texts(rng)), framing.RAW_UTF8)
    return start + _filled(deltas, size - sum(map(len, start + end))) + end


def openai_events(size: int, seed: int = 7) -> list[bytes]:
    """An OpenAI Chat Completions stream (``include_usage``) of about ``size`` bytes."""
    rng = random.Random(seed)
    envelope = openai.chunk_envelope(OPENAI_MODEL, "chatcmpl-bench", 1_700_000_000, usage_follows=True,
                                     system_fingerprint="fp_bench")
    finish = openai.chunk(envelope, {}, "stop", logprobs=False)
    end = framing.frames([finish, openai.usage_chunk(envelope, OPENAI_USAGE), framing.DONE], framing.RAW_UTF8)
    pool = (openai.chunk(envelope, {"content": text}, logprobs=False) for text in _delta_texts(rng))
    deltas = framing.frames(pool, framing.RAW_UTF8)
    return _filled(deltas, size - sum(map(len, end))) + end


def _delta_texts(rng: random.Random) -> list[str]:
    """A few tokens each, like the text deltas of real streams."""
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randrange(1, 8))) for _ in range(_DELTA_POOL)]


def _filled(pool: list[bytes], size: int) -> list[bytes]:
    """Frames from ``pool``, in turn, until they add up to at least ``size`` bytes."""
    frames: list[bytes] = []
    length = 0
    while length < size:
        frame = pool[len(frames) % len(pool)]
        frames.append(frame)
        length += len(frame)
    return frames


def chunked(data: bytes, size: int) -> list[bytes]:
    """``data`` cut every ``size`` bytes, regardless of event boundaries (as the network does)."""
    return [data[i : i + size] for i in range(0, len(data), size)]
