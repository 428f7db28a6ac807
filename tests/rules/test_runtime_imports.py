"""The code's import rules.

Runtime code must run on a bare mitmproxy: the stdlib, mitmproxy and mitmproxy's own dependencies, and the addons'
own ``cachepin`` and ``adapters``; ``cachepin/`` imports neither mitmproxy nor the adapters, and its stages import
only earlier stages, without cycles. And what checks cachepin must not share its code: the
gateway simulator's cache model and the wire kit that renders every fake server's answers import nothing from
``cachepin``, directly or through another ``cachepin_tools`` module, so a bug in cachepin cannot be copied into
the figures it is checked against.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
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
ALLOWED = set(sys.stdlib_module_names) | MITMPROXY_DEPENDENCIES | {"cachepin", "cachepin_mitmproxy", "compression"}
FILES = sorted(ADDONS.rglob("*.py"))  # the scripts, cachepin_mitmproxy/ and cachepin/


OPTIONAL = {"prometheus_client": ADDONS / "cachepin" / "views" / "metrics.py"}  # an extra, and the module using it
GUARDED = {"orjson": ADDONS / "cachepin" / "request" / "json_parse.py"}  # imported on load when installed, else not


def _outside_functions(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes that run when the module is loaded: all but the bodies of functions."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _outside_functions(child)


def imported_roots(path: Path, *, on_load: bool = False) -> set[str]:
    """The top-level packages ``path`` imports (``on_load``: only those imported when the module is loaded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return _roots(_outside_functions(tree) if on_load else ast.walk(tree))


def _roots(nodes: Iterable[ast.AST]) -> set[str]:
    """The top-level packages the import statements among ``nodes`` import."""
    roots = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def guarded_roots(path: Path) -> tuple[set[str], set[str]]:
    """What ``path`` imports in a top-level ``try`` that goes on at ``except ImportError``; and elsewhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tries = [node for node in tree.body if isinstance(node, ast.Try) and any(
        isinstance(name, ast.Name) and name.id in {"ImportError", "ModuleNotFoundError"}
        for handler in node.handlers if handler.type is not None for name in ast.walk(handler.type))]
    inside = {id(node) for attempt in tries for statement in attempt.body for node in ast.walk(statement)}
    return (_roots(node for node in ast.walk(tree) if id(node) in inside),
            _roots(node for node in ast.walk(tree) if id(node) not in inside))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ADDONS)))
def test_only_bare_mitmproxy_imports(path: Path) -> None:
    optional = {name for name, allowed_in in OPTIONAL.items() if allowed_in == path}
    guarded = {name for name, allowed_in in GUARDED.items() if allowed_in == path}
    assert imported_roots(path) <= ALLOWED | optional | guarded
    assert not optional & imported_roots(path, on_load=True), "an optional extra is imported only when it is used"


@pytest.mark.parametrize(("name", "path"), GUARDED.items(), ids=list(GUARDED))
def test_a_guarded_extra_is_imported_only_where_its_absence_is_caught(name: str, path: Path) -> None:
    """A faster parser serves from the module's load on where it is installed; a bare mitmproxy goes on without."""
    guarded, elsewhere = guarded_roots(path)
    assert name in guarded
    assert name not in elsewhere


@pytest.mark.parametrize("path", sorted((ADDONS / "cachepin").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ADDONS / "cachepin")))
def test_the_logic_does_not_import_mitmproxy_nor_its_adapters(path: Path) -> None:
    assert not {"mitmproxy", "mitmproxy_rs", "cachepin_mitmproxy"} & imported_roots(path)


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


STAGED = sorted(path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] in STAGES)


@pytest.mark.parametrize("path", STAGED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_stage_imports_only_from_itself_and_earlier_stages(path: Path) -> None:
    name = path.relative_to(PACKAGE).parts[0]
    own = STAGES.index(name)
    for module in cachepin_imports(path):
        stage = stage_of(module)
        assert stage is not None, f"{module}: a stage never imports the modules above the stages"
        assert stage <= own, f"{module} is a later stage than {name}"


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
INDEPENDENT = sorted(path for package in CHECKERS for path in package.rglob("*.py"))


@pytest.mark.parametrize("path", INDEPENDENT, ids=lambda p: str(p.relative_to(TOOLS)))
def test_what_checks_cachepin_imports_nothing_from_it(path: Path) -> None:
    assert not {name for name in tools_imports(path) if name.split(".")[0] == "cachepin"}


def test_the_package_says_the_version_pyproject_gives() -> None:
    """A plain clone has no installed metadata: the report's version comes from cachepin/__init__.py."""
    import tomllib

    import cachepin

    pyproject = tomllib.loads((ADDONS.parent / "pyproject.toml").read_text())
    assert cachepin.__version__ == pyproject["project"]["version"]
