"""The key of every id cachepin derives from prompt text: session fingerprints and thread lineages.

An unkeyed hash of a system prompt and first message lets anyone who reads
the logs or a report confirm a guessed prompt. Keyed (HMAC-SHA-256) with a
secret that stays on the proxy, the ids stay stable (one conversation, one
id, for as long as the key stays) and tell nothing to whoever lacks the key.
The key is ``affinity_salt`` when set (replicas that must agree on ids share
one), else a random one made once and kept in mitmproxy's confdir, next to
its CA key, so that a restart keeps every id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path

SALT_FILE = "cachepin-salt"
_SALT = re.compile(r"[0-9a-f]{64}")


def digest(salt: bytes, text: str) -> str:
    """Hex digest of ``text``: keyed when there is a salt, plain SHA-256 without one (pure tests, tools)."""
    data = text.encode("utf-8", "surrogatepass")
    if salt:
        return hmac.new(salt, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def proxy_salt(option: str, confdir: str) -> bytes:
    """The salt ``affinity_salt`` names, else the one kept in ``confdir`` (made on first use).

    Raises ``ValueError`` with what to do when the kept one cannot be read or made.
    """
    if option:
        return option.encode("utf-8")
    return _kept(Path(os.path.expanduser(confdir)) / SALT_FILE)


def _kept(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _made(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the fingerprint salt {path} ({e}): fix its permissions, or set "
                         "affinity_salt") from None
    if not _SALT.fullmatch(text):
        raise ValueError(f"{path} is not a cachepin salt (64 hex digits): delete it to have a new one made "
                         "(session ids then change), or set affinity_salt")
    return text.encode("ascii")


def _made(path: Path) -> bytes:
    """A new salt, written whole and private (0600) before it appears under its name.

    Two proxies sharing a confdir may start at once: ``os.link`` refuses to
    replace a file, so the second one reads the first one's salt.
    """
    salt = secrets.token_hex(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{SALT_FILE}.")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(salt + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(temp, path)
        except FileExistsError:
            return _kept(path)
        finally:
            Path(temp).unlink(missing_ok=True)
    except OSError as e:
        raise ValueError(f"cannot keep a fingerprint salt in {path.parent} ({e}): make the confdir writable, or "
                         "set affinity_salt") from None
    return salt.encode("ascii")
