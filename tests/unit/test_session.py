"""Session resolution as pure functions: sources, their order, validation and the fingerprint."""

from __future__ import annotations

import copy
import json

import pytest

from cachepin.request.chains import ResponseChains
from cachepin.request.dialects import Dialect
from cachepin.request.session import (
    SESSION_HEADERS,
    Resolution,
    fingerprint,
    from_headers,
    is_valid_id,
    resolve,
    set_session_headers,
)

UUID = "5f0c2d9e-8a41-4b7e-9c3d-1e2f3a4b5c6d"
SYSTEM = "You are a meticulous coding agent. " * 40


def anthropic_turns(n: int, first_user: str = "Refactor the parser.") -> dict:
    """A Claude-Code-like body after ``n`` user turns, with the breakpoint on the last message."""
    messages: list[dict] = [{"role": "user", "content": first_user}]
    for i in range(1, n):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"follow-up {i}"}]})
    last = messages[-1]
    text = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    last["content"] = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    return {
        "model": "claude-sonnet-4-5" if n % 2 else "claude-opus-4-1",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.{n}; cc_entrypoint=cli;"},
            {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [{"name": f"tool{i}", "input_schema": {"type": "object"}} for i in range(n)],
        "messages": messages,
    }


def chat_turns(n: int, first_user: str = "hello") -> dict:
    messages: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first_user}]
    for i in range(1, n):
        messages += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"u{i}"}]
    return {"model": f"gpt-5-{n}", "messages": messages}


def responses_turns(n: int, first_user: str = "hello") -> dict:
    items: list[dict] = [{"role": "user", "content": [{"type": "input_text", "text": first_user}]}]
    for i in range(1, n):
        items += [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"a{i}"}]},
                  {"role": "user", "content": [{"type": "input_text", "text": f"u{i}"}]}]
    return {"model": "gpt-5.1-codex", "instructions": SYSTEM, "input": items}


def gemini_turns(n: int, first_user: str = "hello") -> dict:
    contents: list[dict] = [{"role": "user", "parts": [{"text": first_user}]}]
    for i in range(1, n):
        contents += [{"role": "model", "parts": [{"text": f"a{i}"}]}, {"role": "user", "parts": [{"text": f"u{i}"}]}]
    return {"systemInstruction": {"parts": [{"text": SYSTEM}]}, "contents": contents}


BUILDERS = {
    Dialect.ANTHROPIC: anthropic_turns,
    Dialect.OPENAI_CHAT: chat_turns,
    Dialect.OPENAI_RESPONSES: responses_turns,
    Dialect.GEMINI: gemini_turns,
}


@pytest.mark.parametrize("header", SESSION_HEADERS)
def test_every_session_header_is_a_source(header: str) -> None:
    resolution = resolve({header.upper(): UUID}, None, Dialect.ANTHROPIC)
    assert (resolution.session_id, resolution.source) == (UUID, f"header:{header}")


def test_header_order_first_wins() -> None:
    headers = {"session-id": "codex-id", "X-Claude-Code-Session-Id": "claude-id", "x-session-affinity": "aff"}
    assert resolve(headers, None, None).source == "header:x-session-affinity"
    del headers["x-session-affinity"]
    assert resolve(headers, None, None).session_id == "claude-id"


def test_a_responses_chain_keeps_the_session_of_the_response_it_continues() -> None:
    """previous_response_id: only the new input is resent, so the fingerprint would change every turn."""
    chains = ResponseChains(limit=2)
    first = {"model": "gpt-5", "input": [{"role": "user", "content": "Fix the build."}]}
    started = resolve({}, first, Dialect.OPENAI_RESPONSES, chains)
    assert started.source == "fingerprint"
    chains.learn("resp_1", started.session_id, started.source)
    second = {"model": "gpt-5", "previous_response_id": "resp_1", "input": [{"role": "user", "content": "Now?"}]}
    chained = resolve({}, second, Dialect.OPENAI_RESPONSES, chains)
    assert (chained.session_id, chained.source) == (started.session_id, "body:previous_response_id")
    assert resolve({"x-session-id": "s"}, second, Dialect.OPENAI_RESPONSES, chains).session_id == "s"
    chains.learn("resp_2", "other", "header:x-session-id")
    chains.learn("resp_3", "other", "header:x-session-id")  # over the limit: resp_1 is forgotten
    assert resolve({}, second, Dialect.OPENAI_RESPONSES, chains).source == "fingerprint"
    assert len(chains) == 2


@pytest.mark.parametrize(
    "user_id, expected",
    [
        (json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": UUID}), UUID),
        (f"user_{'a' * 64}_account_{UUID}_session_{UUID.replace('5f', '6e')}", UUID.replace("5f", "6e")),
        (f"user_{'a' * 64}_account__session_{UUID}", UUID),
    ],
)
def test_metadata_user_id_gives_only_the_session_part(user_id: str, expected: str) -> None:
    resolution = resolve({}, {"metadata": {"user_id": user_id}, "messages": []}, Dialect.ANTHROPIC)
    assert (resolution.session_id, resolution.source) == (expected, "body:metadata.user_id")
    assert "d" * 64 not in resolution.session_id and "a" * 64 not in resolution.session_id


@pytest.mark.parametrize(
    "body, source, expected",
    [
        ({"prompt_cache_key": "ses_abc", "messages": []}, "body:prompt_cache_key", "ses_abc"),
        ({"session_id": "or-123", "messages": []}, "body:session_id", "or-123"),
        ({"metadata": {"user_id": "plain-user"}, "prompt_cache_key": "k1"}, "body:prompt_cache_key", "k1"),
    ],
)
def test_body_fields(body: dict, source: str, expected: str) -> None:
    resolution = resolve({}, body, Dialect.OPENAI_CHAT)
    assert (resolution.session_id, resolution.source) == (expected, source)


def test_header_beats_body() -> None:
    body = {"metadata": {"user_id": json.dumps({"session_id": "from-body"})}}
    assert resolve({"x-claude-code-session-id": "from-header"}, body, Dialect.ANTHROPIC).session_id == "from-header"


@pytest.mark.parametrize(
    "value",
    ["", "has space", "tab\there", "crlf\r\ninjected: 1", "é-non-ascii", "x" * 257, "\x00nul"],
)
def test_invalid_client_ids_are_refused_and_fall_through(value: str) -> None:
    assert not is_valid_id(value)
    body = {"prompt_cache_key": "good-key"}
    resolution = resolve({"x-session-id": value}, body, Dialect.OPENAI_CHAT)
    assert resolution.session_id == "good-key"
    assert resolution.rejected == ("header:x-session-id",)


def test_longest_valid_id_is_accepted() -> None:
    assert is_valid_id("x" * 256)
    assert resolve({"x-session-id": "~" * 256}, None, None).session_id == "~" * 256


@pytest.mark.parametrize(("rejected", "problems"), [
    ((), []),
    (("header:x-session-id",),
     ["ignored the session id in header:x-session-id: not 1-256 printable ASCII characters without spaces"]),
    (("header:session-id", "body:prompt_cache_key"), ["ignored the session id in header:session-id, "
                                                      "body:prompt_cache_key: not 1-256 printable ASCII characters "
                                                      "without spaces"]),
])
def test_refused_ids_are_one_problem_named_by_where_they_were(rejected: tuple[str, ...], problems: list[str]) -> None:
    assert Resolution(None, "none", rejected).problems() == problems


@pytest.mark.parametrize(("headers", "fixed", "resolution"), [
    ({"x-session-id": "from-header"}, "pinned", Resolution("pinned", "option")),
    ({"x-session-id": "bad id"}, "pinned", Resolution("pinned", "option")),  # nothing refused: nothing read
    ({"x-session-id": "from-header"}, "", Resolution("from-header", "header:x-session-id")),
    ({}, "", Resolution(None, "none")),
])
def test_a_fixed_id_beats_the_headers(headers: dict, fixed: str, resolution: Resolution) -> None:
    assert from_headers(headers, fixed) == resolution


@pytest.mark.parametrize(("headers", "names", "override", "injected", "after"), [
    ({}, ["x-session-id", "x-session-affinity"], False, ["x-session-id", "x-session-affinity"],
     {"x-session-id": "s1", "x-session-affinity": "s1"}),
    ({"x-session-id": "client"}, ["x-session-id", "x-session-affinity"], False, ["x-session-affinity"],
     {"x-session-id": "client", "x-session-affinity": "s1"}),
    ({"x-session-id": "client"}, ["x-session-id"], True, ["x-session-id"], {"x-session-id": "s1"}),
    ({"x-session-id": "bad id"}, ["x-session-id"], False, ["x-session-id"], {"x-session-id": "s1"}),
    ({}, ["x-session-id", "x-session-id"], False, ["x-session-id"], {"x-session-id": "s1"}),  # set already
    ({}, ["x-session-id", "x-session-id"], True, ["x-session-id", "x-session-id"], {"x-session-id": "s1"}),
    ({"x-session-id": "client"}, [], False, [], {"x-session-id": "client"}),
])
def test_session_headers_keep_a_valid_client_id_unless_overridden(headers: dict, names: list[str], override: bool,
                                                                   injected: list[str], after: dict) -> None:
    assert set_session_headers(headers, names, "s1", override) == injected
    assert headers == after


@pytest.mark.parametrize("bad", [123, None, {"nested": 1}, ["a"]])
def test_non_string_body_ids_are_refused(bad: object) -> None:
    resolution = resolve({}, {"prompt_cache_key": bad, "messages": [{"role": "user", "content": "hi"}]},
                         Dialect.OPENAI_CHAT)
    assert resolution.source == "fingerprint"
    assert resolution.rejected == ("body:prompt_cache_key",)


@pytest.mark.parametrize("dialect", list(BUILDERS))
def test_fingerprint_is_stable_while_the_conversation_grows(dialect: Dialect) -> None:
    build = BUILDERS[dialect]
    ids = {resolve({}, build(n), dialect).session_id for n in range(1, 8)}
    assert len(ids) == 1
    (only,) = ids
    assert only is not None and only.startswith("fp_") and is_valid_id(only)
    assert resolve({}, build(3), dialect).source == "fingerprint"


@pytest.mark.parametrize("dialect", list(BUILDERS))
def test_different_conversations_get_different_ids(dialect: Dialect) -> None:
    build = BUILDERS[dialect]
    assert fingerprint(build(2, "task A"), dialect) != fingerprint(build(2, "task B"), dialect)


def test_fingerprint_ignores_the_volatile_billing_header_and_cache_control() -> None:
    body = anthropic_turns(1)
    other = copy.deepcopy(body)
    other["system"][0]["text"] = "x-anthropic-billing-header: cc_version=9.9.9; cc_entrypoint=cli;"
    del other["system"][1]["cache_control"]
    other["messages"][0]["content"] = "Refactor the parser."
    assert fingerprint(body, Dialect.ANTHROPIC) == fingerprint(other, Dialect.ANTHROPIC)


def test_fingerprint_changes_with_the_system_prompt() -> None:
    body = anthropic_turns(2)
    other = copy.deepcopy(body)
    other["system"][1]["text"] = "Another agent."
    assert fingerprint(body, Dialect.ANTHROPIC) != fingerprint(other, Dialect.ANTHROPIC)


def test_fingerprint_reveals_nothing_of_the_prompt() -> None:
    session_id = fingerprint({"system": "SECRET-PROMPT", "messages": [{"role": "user", "content": "hi"}]},
                             Dialect.ANTHROPIC)
    assert session_id is not None and "SECRET" not in session_id and len(session_id) == 35


def test_responses_string_input() -> None:
    a = {"instructions": "be brief", "input": "what is 2+2"}
    assert fingerprint(a, Dialect.OPENAI_RESPONSES) == fingerprint(
        {"instructions": "be brief", "input": [{"role": "user", "content": "what is 2+2"}], "model": "x"},
        Dialect.OPENAI_RESPONSES,
    )


@pytest.mark.parametrize("body", [{}, {"model": "m"}, {"messages": []}, {"messages": "nonsense"}])
def test_nothing_to_fingerprint(body: dict) -> None:
    resolution = resolve({}, body, Dialect.ANTHROPIC)
    assert (resolution.session_id, resolution.source) == (None, "none")


@pytest.mark.parametrize("user_id", ["customer-42", "user_" + "a" * 64, "", "{not json"])
def test_an_ordinary_user_id_is_no_session_and_no_warning(user_id: str) -> None:
    body = {"metadata": {"user_id": user_id}, "messages": [{"role": "user", "content": "hi"}]}
    resolution = resolve({}, body, Dialect.ANTHROPIC)
    assert (resolution.source, resolution.rejected) == ("fingerprint", ())


def test_a_malformed_session_part_is_refused() -> None:
    body = {"metadata": {"user_id": json.dumps({"session_id": "has space"})}, "prompt_cache_key": "k"}
    resolution = resolve({}, body, Dialect.ANTHROPIC)
    assert (resolution.session_id, resolution.rejected) == ("k", ("body:metadata.user_id",))
