"""The dependency direction: core is headless and light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_import_core_loads_no_qt_huey_or_apscheduler():
    code = ("import sys, core, core.app, core.jobs.pipeline, core.intake, core.maintenance, "
            "core.store.heartbeat, core.store.state, core.api, core.schedule.windows, core.schedule.offpeak, core.schedule.estimate, "
            "core.schedule.control, core.jobs.settle, core.store.lifecycle, core.store.queries, core.store.frames; "
            "core.process, core.open; "
            "print(sorted({'PySide6', 'huey', 'apscheduler', 'boto3'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


ALLOWED = {
    "core": {"core"},
    "batch": {"core", "batch"},
    "desktop": {"core", "desktop"},
    "cli": {"core", "batch", "desktop", "cli"},
}
"""Package -> our packages it may import: cli -> desktop, batch -> core; no arrow back."""


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(our top-level package, line) for every import in the file, nested ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names
                  if name.split(".")[0] in ALLOWED}
    return found


def test_imports_point_one_way():
    arrows_back = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            for target, line in sorted(imported_packages(path)):
                if target not in allowed:
                    arrows_back.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert arrows_back == []


def test_the_import_check_sees_nested_and_dotted_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport batch.queue\n\ndef f():\n    from desktop.app import X\n"
                      "    from . import sibling\n")
    assert imported_packages(sample) == {("batch", 2), ("desktop", 5)}


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> our modules it imports, at any depth of the file (function-level and
    ``TYPE_CHECKING`` imports too): ``from a import b`` is ``a.b`` when that is a module."""
    modules = {module_name(root, p): p for pkg in packages for p in (root / pkg).rglob("*.py")}

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {ours(alias.name) for alias in node.names
                            if alias.name.split(".")[0] in packages}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}".rstrip(".")
                if base.split(".")[0] not in packages:
                    continue
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                            else ours(base) for alias in node.names}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another, round in a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_among_our_modules():
    graph = import_graph(REPO, tuple(ALLOWED))
    assert len(graph) > 90 and "cli.uploads" in graph["cli.main"]  # sees every module
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_made_up_circle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name, text in {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def later():\n    from pkg.sub.c import f\n",
        "sub/__init__.py": "",
        "sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n",
        "d.py": "import pkg.a\nimport os\n",
    }.items():
        (pkg / name).write_text(text)
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "b.py").write_text("import os\n")
    assert import_cycles(import_graph(tmp_path, ("pkg",))) == []


def test_packaging_is_not_a_python_package():
    assert not (REPO / "packaging" / "__init__.py").exists()


DRIVER_ERROR = re.compile(r"\b(sqlite3|psycopg)\.(errors\.\w+|\w*(Error|Warning|Exception)\b)")
"""A driver's exception named in code: only the dialect layer may (core/store/sqldb.py and
core/store/postgres.py)."""


def driver_errors_named(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if DRIVER_ERROR.search(line)]


def test_driver_errors_are_named_only_in_the_dialect_layer():
    allowed = {REPO / "core" / "store" / "sqldb.py", REPO / "core" / "store" / "postgres.py",
               Path(__file__).resolve()}  # + samples
    named = [f"{path.relative_to(REPO)}:{n}"
             for folder in ("core", "batch", "desktop", "cli", "tests", "bench")
             for path in sorted((REPO / folder).rglob("*.py")) if path not in allowed
             for n in driver_errors_named(path.read_text())]
    assert named == []


def test_the_driver_error_check_sees_each_spelling():
    sample = ("except sqlite3.IntegrityError:\nexcept psycopg.errors.UniqueViolation:\n"
              "except (sqlite3.Error, OSError):\nexcept psycopg.OperationalError:\n"
              "conn = sqlite3.connect(path)\nversion = sqlite3.sqlite_version\n")
    assert driver_errors_named(sample) == [1, 2, 3, 4]
