"""What the tests of the gateway simulator share: a clock moved by hand, the account a key routes to, raw requests."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-5.1"
EPHEMERAL = {"type": "ephemeral"}


class FakeClock:
    """A clock the test moves by hand, so TTLs are checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sha256_account(key: str, accounts: int = 3) -> int:
    """The account the simulator pins ``key`` to, computed from its documented rule (the first 8 bytes of sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % accounts


def raw_post(url: str, body: bytes | dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A POST that shows the wire (status, headers, undecoded body), which the SDKs hide."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def claude_turns(n: int) -> dict:
    """An automatic-mode conversation of n user turns over a 200-token system prompt."""
    messages: list[dict] = []
    for turn in range(n):
        if turn:
            messages.append({"role": "assistant", "content": "ok"})
        messages.append({"role": "user", "content": f"question {turn}"})
    return {"model": CLAUDE, "max_tokens": 64, "system": "S" * 800, "messages": messages, "cache_control": EPHEMERAL}
