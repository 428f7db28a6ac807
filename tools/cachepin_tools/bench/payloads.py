"""Deterministic, realistic payloads for the benchmark and its fast upstream.

The addons' cost depends on what they parse, so the benchmark uses bodies
shaped like a coding agent's: a Claude-Code-like system prompt, a few dozen
tool schemas, and a long history of text, tool calls and tool results full
of code (newlines, quotes and some non-ASCII, which JSON must escape or
decode). Bodies carry no session id, so the resolver takes its most
expensive path, the fingerprint. SSE streams are made of many small deltas,
like real ones, with the usage events where providers put them.
"""

from __future__ import annotations

import json
import random
import zlib

MODEL = "claude-sonnet-4-5"
OPENAI_MODEL = "gpt-4.1"
USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 1538, "cache_read_input_tokens": 48213,
         "output_tokens": 731}
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


def _frame(data: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def anthropic_events(size: int, seed: int = 7) -> list[bytes]:
    """An Anthropic Messages stream of about ``size`` bytes, one frame per event."""
    rng = random.Random(seed)
    start_usage = {**USAGE, "output_tokens": 1}
    frames = [_frame({"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start"),
        _frame({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
               "content_block_start")]
    end = [_frame({"type": "content_block_stop", "index": 0}, "content_block_stop"),
           _frame({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": USAGE["output_tokens"]}}, "message_delta"),
           _frame({"type": "message_stop"}, "message_stop")]
    deltas = [_frame({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
                     "content_block_delta") for text in _delta_texts(rng)]
    return frames + _filled(deltas, size - sum(map(len, frames + end))) + end


def openai_events(size: int, seed: int = 7) -> list[bytes]:
    """An OpenAI Chat Completions stream (``include_usage``) of about ``size`` bytes."""
    rng = random.Random(seed)
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": OPENAI_MODEL, "system_fingerprint": "fp_bench"}
    usage = {"prompt_tokens": 50_000, "completion_tokens": 731, "total_tokens": 50_731,
             "prompt_tokens_details": {"cached_tokens": 48_128}}
    end = [_frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
           _frame({**base, "choices": [], "usage": usage}), b"data: [DONE]\n\n"]
    deltas = [_frame({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
                      "usage": None}) for text in _delta_texts(rng)]
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


def gzip_frames(frames: list[bytes]) -> list[bytes]:
    """Each frame gzipped and flushed on its own, as a server that streams gzip must."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = [compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH) for frame in frames]
    out[-1] += compressor.flush()
    return out


def chunked(data: bytes, size: int) -> list[bytes]:
    """``data`` cut every ``size`` bytes, regardless of event boundaries (as the network does)."""
    return [data[i : i + size] for i in range(0, len(data), size)]
