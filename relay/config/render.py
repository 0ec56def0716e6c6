"""Writing from the table: relay.toml for `relay init` (every key, with its doc as a
comment) and the README's configuration table."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from relay.config.table import SECTIONS, SETTINGS, SETTINGS_BY_PATH, Setting


def toml_value(value: Any) -> str:
    """A TOML literal for a setting's value (strings, booleans, numbers, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML literal for {value!r}")


def _comment(doc: str) -> list[str]:
    return textwrap.wrap(
        doc.replace("`", ""),
        86,
        initial_indent="# ",
        subsequent_indent="# ",
        break_on_hyphens=False,
    )


def render_settings(values: dict[str, Any]) -> str:
    """relay.toml with every setting, `values` (TOML path -> value) over the defaults."""
    unknown = sorted(set(values) - set(SETTINGS_BY_PATH))
    if unknown:
        raise ValueError(f"not a setting: {unknown[0]}")
    lines = ["# edge-relay configuration. Every key is described in README.md.", ""]
    for section in ("", *SECTIONS):
        rows = [s for s in SETTINGS if s.section == section]
        if section:
            lines.append(f"[{section}]")
        for s in rows:
            if not s.is_table:
                lines += [
                    *_comment(s.doc),
                    f"{s.key} = {toml_value(values.get(s.path, s.default))}",
                ]
        lines.append("")
        for s in rows:
            if s.is_table:
                lines += [f"[{s.path}]", *_comment(s.doc)]
                for name, value in values.get(s.path, s.default).items():
                    lines.append(f"{toml_value(str(name))} = {toml_value(value)}")
                lines.append("")
    return "\n".join(lines)


def render_config(
    *,
    server_name: str,
    client_listen: str,
    federation_listen: str,
    upstream: str | None,
    upstream_url: str | None,
    ca_file: str | None,
    verify_tls: bool,
    registration: str = "closed",
    mdns_interfaces: tuple[str, ...] = (),
    mesh_policy: str = "open",
) -> str:
    """The text `relay init` writes: every key present, with a comment saying what it does."""
    return render_settings(
        {
            "server_name": server_name,
            "listeners.client": client_listen,
            "listeners.federation": federation_listen,
            "federation.upstream": upstream or "",
            "federation.upstream_url": upstream_url or "",
            "federation.ca_file": ca_file or "",
            "federation.verify_tls": verify_tls,
            "registration.mode": registration,
            "mesh.interfaces": list(mdns_interfaces),
            "mesh.policy": mesh_policy,
        }
    )


def _kind_text(s: Setting) -> str:
    if s.choices:
        return " \\| ".join(f"`{c}`" for c in s.choices)
    text = {
        "number": "integer" if s.cast is int else "number",
        "integer": "integer",
        "bool": "boolean",
        "listen": "`HOST:PORT`",
        "metrics_listen": "`HOST:PORT`",
        "path": "path",
        "optional_path": "path",
        "interfaces": "list of strings",
        "thumbnail_sizes": "list of strings",
        "addresses": "list of IP addresses",
        "ip_ranges": "list of addresses or networks",
        "public_baseurl": "URL",
        "server_map": "table",
        "trusted_key_servers": "table of tables",
        "mesh_trusted": "table",
    }.get(s.kind, "string")
    return f"{text} ≥ {s.minimum}" if s.minimum is not None else text


def _default_text(s: Setting) -> str:
    if s.shown_default is not None:
        return s.shown_default
    if s.default == "":
        return "empty"
    if isinstance(s.default, str):
        return f"`{s.default}`"
    return f"`{toml_value(s.default)}`"


def readme_table() -> str:
    """The README's configuration table (between its config-table markers)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        doc = s.doc.replace("|", "\\|")
        lines.append(f"| `{s.path}` | {_kind_text(s)} | {_default_text(s)} | {doc} |")
    return "\n".join(lines) + "\n"
