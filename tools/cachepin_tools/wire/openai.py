"""OpenAI Chat Completions and Responses: usage, bodies, streams, error.

Both count the whole prompt in ``prompt_tokens`` / ``input_tokens``, the
cached part included, and report writes (``cache_write_tokens``) only on the
models that bill them. A Chat Completions stream carries usage only when the
request asked (``stream_options.include_usage``): then every chunk has
``"usage": null`` and one last chunk without choices has the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cachepin_tools.wire.framing import DONE, Event
from cachepin_tools.wire.tokens import Tokens

type Json = dict[str, object]


def _prompt_details(tokens: Tokens, **zeros: int) -> Json | None:
    if tokens.read is None:
        return None
    details: Json = {"cached_tokens": tokens.read, **zeros}
    if tokens.creation:
        details["cache_write_tokens"] = tokens.creation
    return details


# --- Chat Completions ------------------------------------------------------------------------------------------


def chat_usage(tokens: Tokens) -> Json:
    out: Json = {"prompt_tokens": tokens.prompt, "completion_tokens": tokens.output,
                 "total_tokens": tokens.prompt + tokens.output}
    if (details := _prompt_details(tokens, audio_tokens=0)) is not None:
        out["prompt_tokens_details"] = details
    out["completion_tokens_details"] = {"reasoning_tokens": tokens.reasoning, "audio_tokens": 0}
    return out


def completion(used: Mapping[str, object], text: str, model: str, completion_id: str = "chatcmpl-wire",
               created: int = 0) -> Json:
    """The non-streaming answer."""
    answer = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": answer, "logprobs": None, "finish_reason": "stop"}
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": dict(used)}


def chunk_envelope(model: str, completion_id: str = "chatcmpl-wire", created: int = 0, *, usage_follows: bool,
                   system_fingerprint: str | None = None) -> Json:
    """What every chunk of one stream repeats; ``usage_follows``: the stream ends with a usage chunk."""
    envelope: Json = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    if system_fingerprint is not None:
        envelope["system_fingerprint"] = system_fingerprint
    return envelope | ({"usage": None} if usage_follows else {})


def chunk(envelope: Mapping[str, object], delta: Mapping[str, object], finish: str | None = None, *,
          logprobs: bool = True) -> Event:
    """One chunk of text (or the finish). ``logprobs``: OpenAI sends ``"logprobs": null``; compatible servers may
    leave it out (the benchmark does, so its frames keep the size its published figures were measured with)."""
    choice: Json = {"index": 0, "delta": dict(delta)} | ({"logprobs": None} if logprobs else {})
    return None, {**envelope, "choices": [choice | {"finish_reason": finish}]}


def usage_chunk(envelope: Mapping[str, object], used: Mapping[str, object]) -> Event:
    return None, {**envelope, "choices": [], "usage": dict(used)}


def chat_events(used: Mapping[str, object] | None, pieces: Iterable[str], model: str,
                completion_id: str = "chatcmpl-wire", created: int = 0, *, role_chunk: bool = True) -> list[Event]:
    """A whole streamed answer; ``used`` None: the request did not ask for usage.

    ``role_chunk``: OpenAI opens with a chunk that only names the role; some compatible servers put the role
    in the first text chunk instead.
    """
    envelope = chunk_envelope(model, completion_id, created, usage_follows=used is not None)
    out = [chunk(envelope, {"role": "assistant", "content": "", "refusal": None})] if role_chunk else []
    for index, piece in enumerate(pieces):
        opens = not role_chunk and index == 0
        out.append(chunk(envelope, {"role": "assistant", "content": piece} if opens else {"content": piece}))
    out.append(chunk(envelope, {}, "stop"))
    if used is not None:
        out.append(usage_chunk(envelope, used))
    return [*out, DONE]


def error(message_text: str, kind: str, param: str | None = None, code: str | None = None) -> Json:
    """An error body: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message_text, "type": kind, "param": param, "code": code}}


# --- Responses -------------------------------------------------------------------------------------------------


def responses_usage(tokens: Tokens) -> Json:
    out: Json = {"input_tokens": tokens.prompt}
    if (details := _prompt_details(tokens)) is not None:
        out["input_tokens_details"] = details
    out |= {"output_tokens": tokens.output, "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
            "total_tokens": tokens.prompt + tokens.output}
    return out


def response(used: Mapping[str, object] | None, text: str | None, model: str, response_id: str = "resp_wire",
             created: int = 0) -> Json:
    """The response object: completed with its message and usage, or (``text`` None) still in progress."""
    done = text is not None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "model": model,
        "output": [_item(response_id, [_part(text)], "completed")] if text is not None else [],
        "usage": dict(used) if done and used is not None else None,
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def responses_events(used: Mapping[str, object], pieces: Iterable[str], model: str, response_id: str = "resp_wire",
                     created: int = 0) -> list[Event]:
    """A whole streamed response, each event with its ``sequence_number``; ``response.completed`` last."""
    deltas = list(pieces)
    text = "".join(deltas)
    pending = response(None, None, model, response_id, created)
    where = {"item_id": _item_id(response_id), "output_index": 0, "content_index": 0}
    events: list[Json] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {"type": "response.output_item.added", "output_index": 0, "item": _item(response_id, [], "in_progress")},
        {"type": "response.content_part.added", **where, "part": _part("")},
        *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []} for piece in deltas),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _part(text)},
        {"type": "response.output_item.done", "output_index": 0,
         "item": _item(response_id, [_part(text)], "completed")},
        {"type": "response.completed", "response": response(used, text, model, response_id, created)},
    ]
    return [(str(event["type"]), {**event, "sequence_number": n}) for n, event in enumerate(events)]


def _item(response_id: str, content: list[Json], status: str) -> Json:
    return {"id": _item_id(response_id), "type": "message", "status": status, "role": "assistant",
            "content": content}


def _item_id(response_id: str) -> str:
    return "msg_" + response_id.removeprefix("resp_")


def _part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
