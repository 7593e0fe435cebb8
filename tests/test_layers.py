"""Imports go one way: handlers and other parts above the chat services, the chat services above
their shared access checks and stream positions, and none of them back up (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# The chat modules from the bottom up: each may import only those before it.
CHAT_LAYERS = [
    *("stream", "access", "extras", "screen", "read", "plays", "history", "send", "pipeline"),
    *("conversations", "sync", "routes", "events"),
]


def _imports(path: Path) -> set[str]:
    """Every `app.…` module a file imports, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("app"))
    return names


def _module(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts)


def test_chat_modules_import_only_the_layers_below_them():
    assert sorted(path.stem for path in (APP / "chat").glob("*.py") if path.stem != "__init__") == sorted(
        [*CHAT_LAYERS, "schemas"]
    )
    for rank, name in enumerate(CHAT_LAYERS):
        above = {f"app.chat.{higher}" for higher in CHAT_LAYERS[rank:]}
        climbs = _imports(APP / "chat" / f"{name}.py") & above
        assert not climbs, f"app/chat/{name}.py imports {sorted(climbs)}"


def test_message_actions_sit_between_the_chat_services_and_the_handlers():
    """app/chat/actions/ uses the chat services; only routes and events use the actions."""
    handlers = {"app.chat.routes", "app.chat.events"}
    for path in (APP / "chat" / "actions").glob("*.py"):
        assert not _imports(path) & handlers, path.name
    for name in CHAT_LAYERS:
        if f"app.chat.{name}" in handlers:
            continue
        climbs = {
            module
            for module in _imports(APP / "chat" / f"{name}.py")
            if module.startswith("app.chat.actions")
        }
        assert not climbs, f"app/chat/{name}.py imports {sorted(climbs)}"


def test_nothing_imports_the_socket_handlers_or_the_routes_of_chat():
    allowed = {"app"}  # the factory registers them
    for path in APP.rglob("*.py"):
        module = _module(path).removesuffix(".__init__")
        if module in allowed or module.startswith("app.chat."):
            continue
        assert not _imports(path) & {"app.chat.events", "app.chat.routes"}, module


def test_the_robot_switch_is_a_leaf_and_chat_reads_it_through_presence():
    assert not _imports(APP / "bots" / "state.py"), "app/bots/state.py imports app modules"
    for path in (APP / "chat").glob("*.py"):
        assert not {name for name in _imports(path) if name.startswith("app.bots")}, path.name
    assert not {name for name in _imports(APP / "presence_service.py") if name.startswith("app.chat")}
