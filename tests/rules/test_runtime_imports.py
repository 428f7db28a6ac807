"""The code's import rules.

Runtime code must run on a bare mitmproxy: the stdlib, mitmproxy and mitmproxy's own dependencies; the stages of
``cachepin/`` import only earlier stages, without cycles. And what checks cachepin must not share its code: the
gateway simulator's cache model and the wire kit that renders every fake server's answers import nothing from
``cachepin``, directly or through another ``cachepin_tools`` module, so a bug in cachepin cannot be copied into
the figures it is checked against.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADDONS = ROOT / "addons"
TOOLS = ROOT / "tools"
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


STAGES = ("request", "response", "turns", "views")  # the order data flows through cachepin/
PACKAGE = ADDONS / "cachepin"


def stage_of(module: str) -> int | None:
    """The stage index of a ``cachepin.<stage>...`` module; None for the modules above the stages."""
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 2 and parts[1] in STAGES else None


def cachepin_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cachepin"):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.startswith("cachepin")}
    return modules


def test_the_listing_reads_as_the_data_flow() -> None:
    """``ls addons/cachepin`` shows the stages in the order a flow goes through them."""
    assert sorted(STAGES) == list(STAGES)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(STAGES)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*/*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_stage_imports_only_from_itself_and_earlier_stages(path: Path) -> None:
    own = STAGES.index(path.parent.name)
    for module in cachepin_imports(path):
        stage = stage_of(module)
        assert stage is not None, f"{module}: a stage never imports the modules above the stages"
        assert stage <= own, f"{module} is a later stage than {path.parent.name}"


def test_there_is_no_import_cycle() -> None:
    graph = {
        ".".join(("cachepin", *path.relative_to(PACKAGE).with_suffix("").parts)): cachepin_imports(path)
        for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"
    }
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*trail, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def tools_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, and those that its ``cachepin_tools`` imports import, and so on."""
    seen: set[Path] = set()
    found: set[str] = set()
    pending = [path]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for node in ast.walk(ast.parse(current.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                found.add(name)
                if name.split(".")[0] == "cachepin_tools":
                    module = TOOLS.joinpath(*name.split("."))
                    pending += [candidate for candidate in (module.with_suffix(".py"), module / "__init__.py")
                                if candidate.exists()]
    return found


CHECKERS = (TOOLS / "cachepin_tools" / "simulator", TOOLS / "cachepin_tools" / "wire")
INDEPENDENT = sorted(path for package in CHECKERS for path in package.glob("*.py"))


@pytest.mark.parametrize("path", INDEPENDENT, ids=lambda p: str(p.relative_to(TOOLS)))
def test_what_checks_cachepin_imports_nothing_from_it(path: Path) -> None:
    assert not {name for name in tools_imports(path) if name.split(".")[0] == "cachepin"}


def test_the_package_says_the_version_pyproject_gives() -> None:
    """A plain clone has no installed metadata: the report's version comes from cachepin/__init__.py."""
    import tomllib

    import cachepin

    pyproject = tomllib.loads((ADDONS.parent / "pyproject.toml").read_text())
    assert cachepin.__version__ == pyproject["project"]["version"]
