"""Fetch LiteLLM's price database and write it as cachepin's dated price file.

The database ships inside the ``litellm`` wheel on PyPI, so ``pip download``
is all the network this needs; ``--wheel`` and ``--database`` read a copy
already on disk instead (the tests do, with no network at all). Progress goes
to stderr, one line per step; a problem stops the run with one line saying
what to do, and the shipped file is replaced only by a complete new one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cachepin.turns import litellm
from cachepin.turns.models import PRICES_FILE, Price, read_json

PACKAGE = "litellm"
URL = "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json"
MEMBERS = ("litellm/model_prices_and_context_window_backup.json", "litellm/model_prices_and_context_window.json")
EXPECTED = ("claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5")
"""Models the README names (Claude Code's default and its side models): a database without them is worth a word."""
REQUIRED = ("anthropic", "openai", "gemini", "xai", "deepseek", "moonshot")
"""Providers that must each contribute models: none from one means LiteLLM's format changed under us."""
PROG = "scripts/update-prices"


class UpdateError(Exception):
    """A problem the user can act on; its message is the whole error line."""


@dataclass(frozen=True)
class Database:
    entries: Mapping[str, object]
    origin: str  # where it was read: the wheel's member, or the file given
    version: str | None  # the litellm package's version, when read from its wheel


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def download(version: str | None, into: Path) -> Path:
    """The ``litellm`` wheel from PyPI (``version``, or the latest), downloaded into ``into`` by pip."""
    spec = f"{PACKAGE}=={version}" if version else PACKAGE
    _say(f"downloading {spec} from PyPI (pip download --no-deps)")
    command = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(into)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise UpdateError(f"could not download {spec} from PyPI: {last[0]} (pip exited {done.returncode})")
    wheels = sorted(into.glob(f"{PACKAGE}-*.whl"))
    if not wheels:
        raise UpdateError(f"pip downloaded no {PACKAGE} wheel into {into}")
    return wheels[-1]


def read_wheel(path: Path) -> Database:
    """The price database inside a ``litellm`` wheel, and the wheel's version."""
    try:
        with zipfile.ZipFile(path) as wheel:
            names = set(wheel.namelist())
            member = next((name for name in MEMBERS if name in names), None)
            if member is None:
                raise UpdateError(f"{path}: no {' or '.join(MEMBERS)} in this wheel; if LiteLLM moved it, "
                                  f"give the JSON file with --database")
            text = wheel.read(member).decode("utf-8")
            version = _version(wheel, names, path)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise UpdateError(f"{path}: cannot read the wheel: {error}") from error
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise UpdateError(f"{path}: {member} is not valid JSON: {error.msg} at line {error.lineno}") from error
    return Database(_checked(entries, f"{path.name}:{member}"), member, version)


def _version(wheel: zipfile.ZipFile, names: set[str], path: Path) -> str | None:
    metadata = next((name for name in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", name)), None)
    if metadata is not None:
        found = re.search(r"^Version: (\S+)$", wheel.read(metadata).decode("utf-8", "replace"), re.MULTILINE)
        if found:
            return found[1]
    parts = path.name.split("-")
    return parts[1] if len(parts) > 2 else None


def read_database(path: Path) -> Database:
    """A ``model_prices_and_context_window.json`` on disk."""
    try:
        entries = read_json(path, "price database")
    except ValueError as error:
        raise UpdateError(str(error)) from None
    return Database(_checked(entries, str(path)), path.name, None)


def _checked(entries: object, origin: str) -> Mapping[str, object]:
    if not isinstance(entries, dict) or not litellm.is_litellm(entries):
        raise UpdateError(f"{origin}: not LiteLLM's price database (no entry with litellm_provider and "
                          f"input_cost_per_token)")
    return entries


def generated(database: Database, now: datetime) -> dict[str, object]:
    """The content of ``prices.json``: when, from what, and the prices of every model taken."""
    try:
        prices = litellm.prices_of(database.entries, database.origin)
    except ValueError as error:
        raise UpdateError(str(error)) from None
    taken = Counter(entry["litellm_provider"] for name, entry in database.entries.items()  # type: ignore[index]
                    if litellm.taken(name, entry))
    empty = [provider for provider in REQUIRED if not taken[provider]]
    if empty:
        raise UpdateError(f"{database.origin}: no chat model of {', '.join(empty)}; LiteLLM's format may have "
                          f"changed (the shipped prices are left as they were)")
    _say(f"{len(prices)} models priced, from {', '.join(f'{p} {n}' for p, n in taken.items())} entries")
    missing = [model for model in EXPECTED if model not in prices]
    if missing:
        _say(f"WARNING: the database has no price for {', '.join(missing)}: their turns stay unpriced; add them "
             f"to a cache_prices file")
    source: dict[str, object] = {"database": "LiteLLM model_prices_and_context_window.json", "url": URL,
                                 "file": database.origin}
    if database.version:
        source |= {"package": PACKAGE, "version": database.version, "registry": "PyPI"}
    return {
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": source,
        "units": "USD per million tokens; cache_write_5m/cache_write_1h are the default and extended TTL's "
                 "writes (Anthropic 5 min and 1 h, OpenAI 30 min and 12 h); tiers apply above a prompt length",
        "models": {model: _fields(prices[model]) for model in sorted(prices)},
    }


def _fields(price: Price) -> dict[str, object]:
    fields: dict[str, object] = {"input": price.input, "output": price.output, "cache_read": price.cache_read,
                                 "cache_write_5m": price.cache_write_5m, "cache_write_1h": price.cache_write_1h}
    if price.tiers:
        fields["tiers"] = [{"above": above, **_fields(tier)} for above, tier in price.tiers]
    return fields


def render(data: Mapping[str, object]) -> str:
    """The file as JSON with one line per model, so that a regeneration reads as a diff of prices."""
    head = {name: value for name, value in data.items() if name != "models"}
    lines = [f"  {json.dumps(name)}: {json.dumps(value)}," for name, value in head.items()]
    models = data["models"]
    assert isinstance(models, dict)
    rows = [f"    {json.dumps(model)}: {json.dumps(fields)}" for model, fields in models.items()]
    return "{\n" + "\n".join(lines) + '\n  "models": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def write(text: str, path: Path) -> None:
    """Replace ``path`` whole: a temporary file beside it, renamed over it."""
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as file:
            file.write(text)
        os.replace(file.name, path)
    except OSError as error:
        raise UpdateError(f"cannot write {path}: {error.strerror or error}") from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Regenerate cachepin's built-in price table (addons/cachepin/turns/prices.json) from LiteLLM's public\n"
            "price database, which ships inside the litellm package on PyPI: downloads the wheel with pip (no\n"
            "other network), reads model_prices_and_context_window.json out of it and writes the prices of the\n"
            "models of the providers cachepin reads (Anthropic, OpenAI, Gemini, xAI, DeepSeek, Moonshot, Claude on\n"
            "Bedrock), in USD per million tokens, with the date and the package version they come from."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="A cache_prices file may be LiteLLM's database itself, for prices fresher than this table.",
    )
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--version", metavar="X.Y.Z", help="the litellm version to download (default: the latest)")
    given.add_argument("--wheel", type=Path, metavar="FILE", help="read a litellm wheel already downloaded")
    given.add_argument("--database", type=Path, metavar="FILE",
                       help="read a model_prices_and_context_window.json instead of a wheel")
    parser.add_argument("--output", type=Path, default=PRICES_FILE, metavar="FILE",
                        help="the file to write (default: the shipped %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.database is not None:
            database = read_database(args.database)
        elif args.wheel is not None:
            database = read_wheel(args.wheel)
        else:
            with tempfile.TemporaryDirectory(prefix="cachepin-prices-") as folder:
                database = read_wheel(download(args.version, Path(folder)))
        version = f" of {PACKAGE} {database.version}" if database.version else ""
        _say(f"read {len(database.entries)} entries{version} ({database.origin})")
        write(render(generated(database, now())), args.output)
    except UpdateError as error:
        _say(f"error: {error}")
        return 1
    _say(f"wrote {args.output}")
    return 0
