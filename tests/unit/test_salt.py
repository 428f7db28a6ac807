"""The key of every id derived from prompt text: HMAC with a secret that stays on the proxy, kept across restarts."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

import pytest

from cachepin.request import salt as salt_module
from cachepin.request.salt import SALT_FILE, digest, proxy_salt

KEPT = "0123456789abcdef" * 4  # 64 hex digits, as a kept salt is written


# --- digest -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["You are a coding agent.", "", "héllo wörld", "\ud800 a lone surrogate"])
def test_a_salted_digest_is_hmac_sha256_of_the_text(text: str) -> None:
    key = b"the fleet's shared secret"
    expected = hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    assert digest(key, text) == expected
    assert len(digest(key, text)) == 64


def test_without_a_salt_it_is_plain_sha256() -> None:
    """The pure tests and the tools, which have no proxy and so no key."""
    assert digest(b"", "system prompt") == hashlib.sha256(b"system prompt").hexdigest()


def test_the_key_changes_every_id_and_only_the_key_holder_can_confirm_a_guess() -> None:
    text = "Summarise the secret design document."
    ids = {digest(b"", text), digest(b"proxy one's salt", text), digest(b"proxy two's salt", text)}
    assert len(ids) == 3
    assert digest(b"proxy one's salt", text) == digest(b"proxy one's salt", text)  # stable: one text, one id


# --- proxy_salt ---------------------------------------------------------------------------------


def test_the_option_wins_and_nothing_is_written(tmp_path: Path) -> None:
    assert proxy_salt("the fleet's shared secret", str(tmp_path / "conf")) == b"the fleet's shared secret"
    assert not (tmp_path / "conf").exists()


def test_a_salt_is_made_on_first_use_private_and_kept(tmp_path: Path) -> None:
    confdir = tmp_path / "new" / "confdir"  # made when missing
    made = proxy_salt("", str(confdir))
    path = confdir / SALT_FILE
    assert path.read_text(encoding="ascii") == made.decode() + "\n"
    assert re.fullmatch(r"[0-9a-f]{64}", made.decode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert proxy_salt("", str(confdir)) == made  # a restart keeps every id
    assert [p.name for p in confdir.iterdir()] == [SALT_FILE]  # no temporary file is left behind


def test_two_confdirs_have_salts_of_their_own(tmp_path: Path) -> None:
    assert proxy_salt("", str(tmp_path / "one")) != proxy_salt("", str(tmp_path / "two"))


@pytest.mark.parametrize("written", [KEPT, KEPT + "\n", f"  {KEPT}\r\n"])
def test_a_kept_salt_is_read_as_it_was_written(tmp_path: Path, written: str) -> None:
    (tmp_path / SALT_FILE).write_text(written, encoding="ascii")
    assert proxy_salt("", str(tmp_path)) == KEPT.encode()


def test_the_confdir_may_name_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mitmproxy's default confdir is ``~/.mitmproxy``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    made = proxy_salt("", "~/.mitmproxy")
    assert (tmp_path / ".mitmproxy" / SALT_FILE).read_text().strip() == made.decode()


@pytest.mark.parametrize("written", [KEPT[:-1], KEPT.upper(), KEPT + "0", "not a salt", ""])
def test_a_file_that_is_no_salt_is_refused_not_replaced(tmp_path: Path, written: str) -> None:
    path = tmp_path / SALT_FILE
    path.write_text(written, encoding="ascii")
    with pytest.raises(ValueError, match=r"is not a cachepin salt \(64 hex digits\): delete it to have a new one "
                                         r"made \(session ids then change\), or set affinity_salt"):
        proxy_salt("", str(tmp_path))
    assert path.read_text(encoding="ascii") == written


@pytest.mark.parametrize("problem", ["directory", "not-ascii"])
def test_an_unreadable_salt_says_what_to_do(tmp_path: Path, problem: str) -> None:
    path = tmp_path / SALT_FILE
    if problem == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"cannot read the fingerprint salt .*cachepin-salt \(.*\): fix its "
                                         r"permissions, or set affinity_salt"):
        proxy_salt("", str(tmp_path))


def test_a_salt_that_cannot_be_kept_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(**kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(salt_module.tempfile, "mkstemp", refused)
    with pytest.raises(ValueError, match=r"cannot keep a fingerprint salt in .* \(.*Permission denied\): make the "
                                         r"confdir writable, or set affinity_salt"):
        proxy_salt("", str(tmp_path))
    assert not (tmp_path / SALT_FILE).exists()


def test_of_two_proxies_starting_at_once_the_second_reads_the_first_ones_salt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other proxy's salt appears between this one's look and its link: the link refuses to replace it."""
    link = os.link

    def raced(source: str, destination: Path) -> None:
        Path(destination).write_text(KEPT + "\n", encoding="ascii")  # the first proxy got there first
        link(source, destination)

    monkeypatch.setattr(salt_module.os, "link", raced)
    assert proxy_salt("", str(tmp_path)) == KEPT.encode()
    assert [p.name for p in tmp_path.iterdir()] == [SALT_FILE]  # this one's temporary file is gone
