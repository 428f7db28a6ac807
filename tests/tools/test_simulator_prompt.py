"""The simulator's own view of a prompt (written apart from cachepin's), on the rules the explainer must agree with."""

from __future__ import annotations

from cachepin_tools.simulator.prompt import Api, prompt_blocks


def claude_code(billing: str) -> dict:
    return {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "Fix it."}], "system": [
        {"type": "text", "text": f"x-anthropic-billing-header: {billing}"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]}


def test_claude_codes_billing_block_keeps_its_tokens_but_not_its_content() -> None:
    """The API evidently does not cache by it: it changes every release, or request with cch=, yet turns hit."""
    one, other = (prompt_blocks(Api.ANTHROPIC, claude_code(billing)) for billing in
                  ("cc_version=2.1.197.2a9; cc_entrypoint=sdk-cli;", "cc_version=2.1.198.f2f; cch=ab12cd;"))
    assert [block.digest for block in one] == [block.digest for block in other]
    assert one[0].tokens == len("x-anthropic-billing-header: cc_version=2.1.197.2a9; cc_entrypoint=sdk-cli;") // 4 + 1


def test_any_other_system_text_is_content() -> None:
    body = claude_code("cc_version=1;")
    changed = claude_code("cc_version=1;")
    changed["system"][1]["text"] = "You are Claude Code, v2."
    assert prompt_blocks(Api.ANTHROPIC, body)[1].digest != prompt_blocks(Api.ANTHROPIC, changed)[1].digest
