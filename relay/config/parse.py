"""Reading relay.toml: every setting of the table through the parser its row names.

Unknown keys, anywhere, are an error naming them; so is a value of the wrong type or
out of bounds. Strings: an empty string means the default.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from relay.config.model import (
    Config,
    ConfigError,
    Listen,
    MediaConfig,
    ThumbnailSize,
    parse_listen,
    parse_size,
)
from relay.config.table import CONFIG_FILE, SECTIONS, SETTINGS, Setting
from relay.events.ids import is_valid_server_name
from relay.events.signing import decode_verify_key_base64, is_valid_key_id


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Parsers: (setting, value in the file or its default, data dir) -> the attribute's value.

Parser = Callable[[Setting, Any, Path], Any]


def _string(s: Setting, value: Any, data_dir: Path) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{s.path} must be a string")
    return value or s.default or None


def _path(s: Setting, value: Any, data_dir: Path) -> Path:
    return data_dir / (_string(s, value, data_dir) or s.default)


def _optional_path(s: Setting, value: Any, data_dir: Path) -> Path | None:
    text = _string(s, value, data_dir)
    return data_dir / text if text else None


def _bool(s: Setting, value: Any, data_dir: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{s.path} must be true or false")
    return value


def _number(s: Setting, value: Any, data_dir: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{s.path} must be a number >= {s.minimum}")
    if s.minimum is not None and value < s.minimum:
        raise ConfigError(f"{s.path} must be a number >= {s.minimum}")
    return s.cast(value)


def _integer(s: Setting, value: Any, data_dir: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{s.path} must be an integer >= {s.minimum}")
    if s.minimum is not None and value < s.minimum:
        raise ConfigError(f"{s.path} must be an integer >= {s.minimum}")
    return value


def _choice(s: Setting, value: Any, data_dir: Path, upper: bool = False) -> str:
    text = _string(s, value, data_dir) or s.default
    if upper:
        text = text.upper()
    if text not in s.choices:
        raise ConfigError(f"{s.path} must be one of {', '.join(s.choices)}")
    return text


def _choice_upper(s: Setting, value: Any, data_dir: Path) -> str:
    return _choice(s, value, data_dir, upper=True)


def _server_name(s: Setting, value: Any, data_dir: Path) -> str:
    name = _string(s, value, data_dir)
    if not name:
        raise ConfigError("server_name is missing")
    if not is_valid_server_name(name):
        raise ConfigError(f"server_name {name!r} is not a valid Matrix server name")
    return name


def _listen(s: Setting, value: Any, data_dir: Path) -> Listen:
    return parse_listen(_string(s, value, data_dir) or "", s.path)


def _metrics_listen(s: Setting, value: Any, data_dir: Path) -> Listen | None:
    text = _string(s, value, data_dir)
    metrics = parse_listen(text, s.path) if text else None
    if metrics is not None and not _is_loopback(metrics.host):
        raise ConfigError(
            f"{s.path} must be a loopback address (127.0.0.0/8, ::1 or localhost):"
            " the figures name the servers this relay talks to"
        )
    return metrics


def _upstream(s: Setting, value: Any, data_dir: Path) -> str | None:
    upstream = _string(s, value, data_dir)
    if upstream is not None and not is_valid_server_name(upstream):
        raise ConfigError(f"{s.path} {upstream!r} is not a valid Matrix server name")
    return upstream


def _upstream_url(s: Setting, value: Any, data_dir: Path) -> str | None:
    url = _string(s, value, data_dir)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(f"{s.path} must start with https://")
    return url


def _public_baseurl(s: Setting, value: Any, data_dir: Path) -> str | None:
    url = _string(s, value, data_dir)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{s.path} must be an http(s) URL like https://chat.example.org/")
    return url.rstrip("/") + "/"


def _addresses(s: Setting, value: Any, data_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{s.path} must be a list of IP addresses")
    try:
        return tuple(str(ipaddress.ip_address(a)) for a in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{s.path} must be a list of IP addresses") from None


def _gateway_urls(s: Setting, value: Any, data_dir: Path) -> tuple[str, ...]:
    """Push gateway base URLs (`https://push.example:5000`): scheme, host and port."""
    message = f"{s.path} must be a list of http(s) URLs like https://push.example.org"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(message)
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(message)
    return tuple(value)


def _ip_ranges(
    s: Setting, value: Any, data_dir: Path
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{s.path} must be a list of addresses or networks")
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in value)
    except ValueError as exc:
        raise ConfigError(f"{s.path}: {exc}") from None


def _server_map(s: Setting, value: Any, data_dir: Path) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{s.path} must map server names to base URLs")
    return dict(value)


def _trusted_key_servers(s: Setting, value: Any, data_dir: Path) -> dict[str, dict[str, str]]:
    where = s.path
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must map server names to {{key id = verify key}} tables")
    result: dict[str, dict[str, str]] = {}
    for name, keys in value.items():
        if not is_valid_server_name(name):
            raise ConfigError(f"{where}: {name!r} is not a valid Matrix server name")
        if not isinstance(keys, dict):
            raise ConfigError(f"{where}.{name} must be a table of key id = verify key")
        for key_id, key in keys.items():
            if not is_valid_key_id(key_id) or not isinstance(key, str):
                raise ConfigError(f"{where}.{name}: bad key {key_id!r}")
            try:
                decode_verify_key_base64(key)
            except ValueError as exc:
                raise ConfigError(f"{where}.{name}.{key_id}: {exc}") from None
        result[name] = dict(keys)
    return result


def _interfaces(s: Setting, value: Any, data_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise ConfigError(f"{s.path} must be a list of interface names or addresses")
    return tuple(value)


def _mesh_trusted(s: Setting, value: Any, data_dir: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{s.path} must map server names to verify keys")
    for name, key in value.items():
        if not is_valid_server_name(name):
            raise ConfigError(f"{s.path}: {name!r} is not a valid Matrix server name")
        if not isinstance(key, str):
            raise ConfigError(f"{s.path}.{name} must be a base64 verify key")
        try:
            decode_verify_key_base64(key)
        except ValueError as exc:
            raise ConfigError(f"{s.path}.{name}: {exc}") from None
    return {name: key.rstrip("=") for name, key in value.items()}


def _thumbnail_sizes(s: Setting, value: Any, data_dir: Path) -> tuple[ThumbnailSize, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ConfigError(f'{s.path} must be a list like ["96x96 crop"]')
    try:
        return tuple(parse_size(x) for x in value)
    except ValueError as exc:
        raise ConfigError(f"{s.path}: {exc}") from None


PARSERS: dict[str, Parser] = {
    "string": _string,
    "path": _path,
    "optional_path": _optional_path,
    "bool": _bool,
    "number": _number,
    "integer": _integer,
    "choice": _choice,
    "choice_upper": _choice_upper,
    "server_name": _server_name,
    "listen": _listen,
    "metrics_listen": _metrics_listen,
    "upstream": _upstream,
    "upstream_url": _upstream_url,
    "public_baseurl": _public_baseurl,
    "addresses": _addresses,
    "ip_ranges": _ip_ranges,
    "gateway_urls": _gateway_urls,
    "server_map": _server_map,
    "trusted_key_servers": _trusted_key_servers,
    "interfaces": _interfaces,
    "mesh_trusted": _mesh_trusted,
    "thumbnail_sizes": _thumbnail_sizes,
}


def load_config(data_dir: Path) -> Config:
    """Read and validate `data_dir/relay.toml`."""
    path = data_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no relay here (run `relay init` first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(doc, data_dir)


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"unknown key {where}{extra[0]}")


def _tables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Section name ("" for the top level) -> its table, each checked for unknown keys."""
    top = {s.key for s in SETTINGS if not s.section}
    _unknown_keys(doc, top | set(SECTIONS), "")
    tables: dict[str, dict[str, Any]] = {"": doc}
    for section in SECTIONS:
        value = doc.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] must be a table")
        _unknown_keys(value, {s.key for s in SETTINGS if s.section == section}, section + ".")
        tables[section] = value
    return tables


def config_from_dict(doc: dict[str, Any], data_dir: Path) -> Config:
    """The Config a parsed relay.toml describes, every setting checked by its parser."""
    tables = _tables(doc)
    fields: dict[str, Any] = {}
    media: dict[str, Any] = {}
    rate_limits: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        value = PARSERS[s.kind](s, tables[s.section].get(s.key, s.default), data_dir)
        owner, _, rest = s.attr.partition(".")
        if owner == "media":
            media[rest] = value
        elif owner == "rate_limits":
            action, _, half = rest.partition(".")
            rate_limits.setdefault(action, {})[half] = value
        else:
            fields[s.attr] = value
    return Config(
        data_dir=data_dir,
        media=MediaConfig(**media),
        rate_limits={a: (float(r["per_second"]), int(r["burst"])) for a, r in rate_limits.items()},
        **fields,
    )
