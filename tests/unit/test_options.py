"""The option parsers alone, and the check of values mitmproxy holds back until the addons declare them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from cachepin import options


@dataclass
class Unconverted:
    """Stands in for mitmproxy's ``optmanager._UnconvertedStrings``: what ``--set`` said, as typed."""

    val: list[str]


def problems(**given: object) -> dict[str, str]:
    return options.deferred_problems((*options.INJECT, *options.AUDIT), given)


@pytest.mark.parametrize(("given", "message"), [
    ({"cache_min_hit": Unconverted(["abc"])}, "cache_min_hit must be a whole number 0-100, not 'abc'"),
    ({"cache_min_hit": Unconverted(["200"])}, "cache_min_hit must be 0-100, not 200"),
    ({"cache_min_hit": Unconverted(["80", "90"])},
     "cache_min_hit is given 2 times (cache_min_hit=80, cache_min_hit=90); give it once"),
    ({"cache_report": Unconverted(["a.json", "b.json"])},
     "cache_report is given 2 times (cache_report=a.json, cache_report=b.json); give it once"),
    ({"cache_report": Unconverted([])}, "cache_report is given 0 times (cache_report); give it once"),
    ({"cache_max_sessions": Unconverted(["-1"])}, "cache_max_sessions must be >= 0 (0 = unlimited)"),
    ({"cache_max_sessions": Unconverted(["many"])},
     "cache_max_sessions must be a whole number >= 0 (0 = unlimited), not 'many'"),
    ({"cache_max_turns": Unconverted(["-3"])}, "cache_max_turns must be >= 0 (0 = unlimited)"),
    ({"cache_report_interval": Unconverted(["soon"])},
     "cache_report_interval must be a whole number of seconds >= 0, not 'soon'"),
    ({"cache_resume": Unconverted(["maybe"])}, "cache_resume must be true or false, not 'maybe'"),
    ({"cache_expect": Unconverted(["cold"])}, "cache_expect must be 'off' or 'warm', not 'cold'"),
    ({"cache_explain": Unconverted(["maybe"])}, "cache_explain must be true or false, not 'maybe'"),
    ({"affinity_override": Unconverted(["yes"])}, "affinity_override must be true or false, not 'yes'"),
    ({"affinity_prompt_cache_key": Unconverted(["1"])},
     "affinity_prompt_cache_key must be true or false, not '1'"),
    ({"cache_ttl_scale": Unconverted(["0"])}, "cache_ttl_scale must be a number > 0, not '0'"),
    ({"cache_minimums": Unconverted(["claude=lots"])}, "cache_minimums: expected MODEL=TOKENS, not 'claude=lots'"),
    ({"affinity_session": Unconverted(["two words"])},
     "affinity_session must be 1-256 printable ASCII characters without spaces"),
    ({"affinity_headers": Unconverted(["Authorization"])},
     "affinity_headers: 'Authorization' carries credentials or framing; choose a session header"),
    # config.yaml values arrive typed: mitmproxy only type-checks them
    ({"cache_min_hit": "abc"}, "cache_min_hit must be a whole number 0-100, not 'abc'"),
    ({"cache_explain": "yes"}, "cache_explain must be true or false, not 'yes'"),
    ({"affinity_headers": "X-Session-Id"}, "affinity_headers must be a list of strings, not 'X-Session-Id'"),
    ({"cache_min_hit": True}, "cache_min_hit must be a whole number 0-100, not True"),
    ({"cache_ttl_scale": True}, "cache_ttl_scale must be a number > 0, not True"),
    ({"cache_ttl_scale": -2}, "cache_ttl_scale must be a number > 0, not '-2'"),
    ({"affinity_session": 12345}, "affinity_session must be a string, not 12345"),  # an id is text: quote it
])
def test_a_bad_value_is_named_with_what_is_accepted(given: dict[str, object], message: str) -> None:
    assert problems(**given) == {next(iter(given)): message}


@pytest.mark.parametrize("given", [
    {"cache_min_hit": Unconverted(["80"])},
    {"cache_min_hit": 80},
    {"cache_explain": Unconverted([""])},  # --set cache_explain: "true"
    {"cache_explain": Unconverted(["false"])},
    {"cache_explain": Unconverted([])},  # --set cache_explain, no value: true
    {"affinity_override": Unconverted(["toggle"])},
    {"cache_min_hit": Unconverted(["1_0"])},  # int() takes it, so mitmproxy does
    {"affinity_headers": Unconverted(["X-A", "X-B"])},  # a sequence option takes repeats
    {"cache_minimums": ["claude*=2048"]},
    {"cache_report": Unconverted([""])},
    {"unrelated_option": Unconverted(["1", "2"])},  # not ours: mitmproxy's business
])
def test_good_values_pass(given: dict[str, object]) -> None:
    assert problems(**given) == {}


@pytest.mark.parametrize(("number", "text"), [(2, "2"), (0.5, "0.5"), ("0.25", "0.25")])
def test_a_config_file_number_for_the_ttl_scale_is_applied_as_its_text(number: object, text: str) -> None:
    """mitmproxy has no float option, so the scale is text; config.yaml's ``cache_ttl_scale: 2`` is a YAML int,
    which mitmproxy would refuse to set on a string option (dropping the script): it is handed over as text."""
    deferred: dict[str, object] = {"cache_ttl_scale": number}
    assert options.deferred_problems(options.AUDIT, deferred) == {}
    assert deferred == {"cache_ttl_scale": text}


def test_an_output_option_naming_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder; name a file in it"):
        options.writable_file("cache_events", str(tmp_path))
    with pytest.raises(ValueError, match="missing or read-only"):
        options.writable_file("cache_events", str(tmp_path / "missing" / "events.jsonl"))
    assert options.writable_file("cache_events", str(tmp_path / "events.jsonl")) == str(tmp_path / "events.jsonl")


def test_checks_given_by_the_addon_replace_the_declared_ones() -> None:
    def no_tilde(value: str) -> str:
        if "~" in value:
            raise ValueError("no filters here")
        return value

    found = options.deferred_problems(options.INJECT, {"affinity_scope": Unconverted(["~d x"])},
                                      {"affinity_scope": no_tilde})
    assert found == {"affinity_scope": "no filters here"}


def test_every_declared_option_is_prefixed_by_its_addon() -> None:
    """But the salt and request streaming, which both addons declare alike: both derive ids from prompt text, with
    the same key, and either may stream a request."""
    assert all(option.name.startswith("affinity_") for option in options.INJECT)
    shared = (options.SALT, options.STREAM)
    assert all(option.name.startswith("cache_") for option in options.AUDIT if option not in shared)
    assert options.SALT in options.INJECT and options.SALT in options.AUDIT


@pytest.mark.parametrize("value, accepted", [("", True), ("x" * 15, False), ("x" * 16, True),
                                             ("a-fleet-wide-secret-0123456789", True)])
def test_a_salt_is_the_proxys_own_or_long_enough_to_be_a_secret(value: str, accepted: bool) -> None:
    if accepted:
        assert options.salt(value) == value
    else:
        with pytest.raises(ValueError, match="affinity_salt must be at least 16 characters"):
            options.salt(value)


@pytest.mark.parametrize(("resume", "events", "refused"), [
    (True, "", True),  # nothing to read the earlier turns from
    (True, "events.jsonl", False),
    (False, "", False),
    (False, "events.jsonl", False),
])
def test_resuming_needs_an_events_file(resume: bool, events: str, refused: bool) -> None:
    if not refused:
        assert options.resumable(resume, events) is None
        return
    with pytest.raises(ValueError) as refusal:
        options.resumable(resume, events)
    assert str(refusal.value) == ("cache_resume needs cache_events: the file to read the earlier turns from "
                                  "(and to append this run's to)")
