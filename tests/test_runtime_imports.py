"""Runtime code must run on a bare mitmproxy: the stdlib, mitmproxy and mitmproxy's own dependencies."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ADDONS = Path(__file__).resolve().parent.parent / "addons"
MITMPROXY_DEPENDENCIES = {
    "mitmproxy", "mitmproxy_rs", "brotli", "backports", "h11", "h2", "hyperframe", "wsproto", "cryptography",
    "OpenSSL", "certifi", "kaitaistruct", "ldap3", "publicsuffix2", "pyparsing", "ruamel", "sortedcontainers",
    "tornado", "urwid", "asgiref", "flask", "aioquic", "bcrypt",
}
ALLOWED = set(sys.stdlib_module_names) | MITMPROXY_DEPENDENCIES | {"cachepin", "compression"}
FILES = sorted(ADDONS.rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ADDONS)))
def test_only_bare_mitmproxy_imports(path: Path) -> None:
    assert imported_roots(path) <= ALLOWED


@pytest.mark.parametrize("path", sorted((ADDONS / "cachepin").glob("*.py")), ids=lambda p: p.name)
def test_the_logic_does_not_import_mitmproxy(path: Path) -> None:
    assert not {"mitmproxy", "mitmproxy_rs"} & imported_roots(path)
