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

# A layer may import only layers listed for it (plus itself and the bottom).
BOTTOM = {"relay.events", "relay.errors"}
LAYER_ORDER = [
    "relay.events",
    "relay.rooms.service",
    "relay.client",
    "relay.federation",
    "relay.node",
]


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
