"""The design's import rules, read from the source with ast (STYLE.md, "Our house").

relay/events/ is pure: no I/O libraries, no other relay layer, no store.
store/ imports nothing from relay. Nothing imports upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IO_MODULES = {
    "trio",
    "httpx",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "zeroconf",
    "asyncio",
    "threading",
    "subprocess",
    "starlette",
    "hypercorn",
    "store",
}

# The bottom every layer may import (relay/events/ too).
BOTTOM = {"relay.events", "relay.errors"}

# relay/'s layers, bottom first (relay/__init__.py's map). A module may import its own layer
# and the layers before it, never a later one; names on one line are peers that import
# neither each other's packages nor anything later. Every module under relay/ is in one.
LAYER_ORDER: list[tuple[str, ...]] = [
    ("relay", "relay.events", "relay.errors"),  # `relay` itself: only __version__
    ("relay.config",),
    ("relay.runtime",),
    ("relay.services",),
    ("relay.rooms",),
    ("relay.e2ee",),
    ("relay.sync",),  # the device section of /sync reads e2ee
    ("relay.accounts",),
    ("relay.media",),
    ("relay.federation",),
    ("relay.push",),  # pushers: reads rooms and sync, connects through federation's policy
    ("relay.mesh",),
    ("relay.operator",),  # the operator's actions: the CLI, the page and the admin API call them
    ("relay.web",),  # the operator page reads relay.operator; the client listener serves it
    ("relay.client",),
    ("relay.node",),
    ("relay.cli",),
]

# relay/services.py is the composition root's *type*: at run time it imports only config
# and runtime (its rank), but to type one field per service it names every service's
# class, above it, under `if TYPE_CHECKING:`. Only those imports are exempt.
TYPES_ONLY_HUB = "relay.services"

# The one module under relay/ that talks to SQLite itself: it runs store/ functions on
# the writer and reader connections (group commit). Everything else goes through store/.
SQLITE_OWNER = "relay/runtime/database.py"
SQL_CALLS = {"execute", "executemany", "executescript"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules_under(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def test_events_core_does_no_io() -> None:
    offenders = []
    for path in _modules_under("relay.events"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in IO_MODULES:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.startswith("relay.") and not any(
                name == b or name.startswith(b + ".") for b in BOTTOM
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_store_imports_nothing_from_relay() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules_under("store")
        for name in _imports(path)
        if name == "relay" or name.startswith("relay.")
    ]
    assert offenders == []


def test_protocol_layers_do_not_import_the_node_or_cli() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in ("relay.client", "relay.federation", "relay.mesh", "relay.events")
        for path in _modules_under(package)
        for name in _imports(path)
        if name in ("relay.node", "relay.cli")
    ]
    assert offenders == []


def test_client_and_federation_do_not_import_each_others_routes() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules_under("relay.client")
        for name in _imports(path)
        if name.startswith("relay.federation.routes")
    ]
    assert offenders == []


def _runtime_imports(path: Path) -> set[str]:
    """Imports outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(n) for n in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_core_modules_do_not_import_the_protocol_layers() -> None:
    """relay/*.py (the rooms core and its services) sit below client, federation and mesh;
    only node.py and cli.py, which assemble everything, may import them."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "relay").glob("*.py"))
        if path.name not in ("node.py", "cli.py")
        for name in _runtime_imports(path)
        if name.startswith(("relay.client", "relay.federation", "relay.mesh"))
    ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(name: str) -> int | None:
    """The rank of the layer `name` belongs to (its longest matching package), or None."""
    best: tuple[int, int] | None = None
    for rank, packages in enumerate(LAYER_ORDER):
        for package in packages:
            if name == package or (package != "relay" and name.startswith(package + ".")):
                if best is None or len(package) > best[1]:
                    best = (rank, len(package))
    return best[0] if best is not None else None


def _peer_package(name: str) -> str | None:
    for packages in LAYER_ORDER:
        for package in packages:
            if package != "relay" and (name == package or name.startswith(package + ".")):
                return package
    return None


def test_every_relay_module_has_a_layer() -> None:
    unplaced = [
        str(path.relative_to(ROOT))
        for path in _modules_under("relay")
        if _layer_of(_module_name(path)) is None
    ]
    assert unplaced == []


def test_nothing_imports_upward() -> None:
    """Any import (TYPE_CHECKING ones too, but for the types-only hub) of a later layer,
    or of a peer package on the same line of LAYER_ORDER, is an offence."""
    offenders = []
    for path in _modules_under("relay"):
        module = _module_name(path)
        rank = _layer_of(module)
        assert rank is not None
        imports = _runtime_imports(path) if module == TYPES_ONLY_HUB else _imports(path)
        for name in sorted(imports):
            if name != "relay" and not name.startswith("relay."):
                continue
            other = _layer_of(name)
            assert other is not None, f"{name} (imported by {module}) has no layer"
            mine, theirs = _peer_package(module), _peer_package(name)
            if other > rank or (other == rank and mine != theirs and name != "relay"):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def _sqlite_offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] == "sqlite3"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "sqlite3":
                found.append(f"imports {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in SQL_CALLS:
            found.append(f"calls .{node.attr}( on line {node.lineno}")
    return found


def test_all_sql_lives_in_store() -> None:
    """No module under relay/ but the database runner imports sqlite3 or runs SQL: it
    calls store/ functions (and names the connection `store.Connection`)."""
    offenders = [
        f"{path.relative_to(ROOT)} {offence}"
        for path in _modules_under("relay")
        if str(path.relative_to(ROOT)) != SQLITE_OWNER
        for offence in _sqlite_offences(path)
    ]
    assert offenders == []


def test_the_sql_check_sees_what_it_forbids(tmp_path: Path) -> None:
    """The check above reads real source: it finds each forbidden form."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sqlite3\nfrom sqlite3 import Row\n"
        "def f(conn):\n    conn.execute('x')\n    conn.executemany('x', [])\n"
        "    conn.executescript('x')\n    return conn.cursor()\n",
        encoding="utf-8",
    )
    assert _sqlite_offences(sample) == [
        "imports sqlite3",
        "imports sqlite3",
        "calls .execute( on line 4",
        "calls .executemany( on line 5",
        "calls .executescript( on line 6",
    ]
