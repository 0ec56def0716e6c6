"""relay/config/table.py's table of settings: every row round-trips through the file `relay init`
writes, unknown keys, wrong types and out-of-bounds numbers are errors naming the key,
and the README's configuration table is the one the table renders."""

from __future__ import annotations

import base64
import ipaddress
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from relay.config import (
    SECTIONS,
    SETTINGS,
    Config,
    ConfigError,
    Listen,
    Setting,
    config_from_dict,
    parse_size,
    render_config,
    render_settings,
)
from tools import config_readme

KEY = base64.b64encode(bytes(nacl.signing.SigningKey(bytes(32)).verify_key)).decode()
UNPADDED_KEY = KEY.rstrip("=")
DATA = Path("/srv/relay")


def _other_choice(s: Setting) -> tuple[Any, Any]:
    other = next(c for c in s.choices if c != s.default)
    return other, other


def _number(s: Setting) -> tuple[Any, Any]:
    assert s.minimum is not None
    value = s.minimum + (7 if s.cast is int else 1.5)
    return value, s.cast(value)


#: kind -> a value unlike the default, as written in the file and as the attribute holds it.
SAMPLES: dict[str, Callable[[Setting], tuple[Any, Any]]] = {
    "server_name": lambda s: ("b.example:8448", "b.example:8448"),
    "listen": lambda s: ("[::1]:9000", Listen("::1", 9000)),
    "metrics_listen": lambda s: ("127.0.0.1:9101", Listen("127.0.0.1", 9101)),
    "upstream": lambda s: ("hq.example", "hq.example"),
    "upstream_url": lambda s: ("https://10.0.0.5:8448", "https://10.0.0.5:8448"),
    "optional_path": lambda s: ("ca/extra.pem", DATA / "ca/extra.pem"),
    "path": lambda s: ("elsewhere/file", DATA / "elsewhere/file"),
    "string": lambda s: ('a "quoted" \\ value', 'a "quoted" \\ value'),
    "bool": lambda s: (not s.default, not s.default),
    "number": _number,
    "integer": lambda s: (int(s.minimum or 0) + 7, int(s.minimum or 0) + 7),
    "choice": _other_choice,
    "choice_upper": _other_choice,
    "server_map": lambda s: (
        {"hq.example": "https://10.0.0.5:8448"},
        {"hq.example": "https://10.0.0.5:8448"},
    ),
    "trusted_key_servers": lambda s: (
        {"hq.example": {"ed25519:a_key": UNPADDED_KEY}},
        {"hq.example": {"ed25519:a_key": UNPADDED_KEY}},
    ),
    "interfaces": lambda s: (["eth0", "10.0.0.2"], ("eth0", "10.0.0.2")),
    "mesh_trusted": lambda s: ({"kit-b.lan": KEY}, {"kit-b.lan": UNPADDED_KEY}),
    "thumbnail_sizes": lambda s: (["64x48 scale"], (parse_size("64x48 scale"),)),
    "public_baseurl": lambda s: ("https://chat.example/m", "https://chat.example/m/"),
    "addresses": lambda s: (["10.0.0.1", "::1"], ("10.0.0.1", "::1")),
    "gateway_urls": lambda s: (
        ["http://127.0.0.1:5000", "https://push.example"],
        ("http://127.0.0.1:5000", "https://push.example"),
    ),
    "ip_ranges": lambda s: (
        ["127.0.0.0/8", "10.1.2.3"],
        (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.1.2.3/32")),
    ),
}


def _attribute(config: Config, s: Setting) -> Any:
    owner, _, rest = s.attr.partition(".")
    if owner == "media":
        return getattr(config.media, rest)
    if owner == "rate_limits":
        action, _, half = rest.partition(".")
        return config.rate_limits[action][0 if half == "per_second" else 1]
    return getattr(config, s.attr)


def _parse(text: str) -> Config:
    return config_from_dict(tomllib.loads(text), DATA)


def _init_text() -> str:
    return render_config(
        server_name="a.example",
        client_listen="127.0.0.1:8008",
        federation_listen="0.0.0.0:8448",
        upstream=None,
        upstream_url=None,
        ca_file=None,
        verify_tls=True,
    )


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.path)
def test_every_setting_round_trips_through_the_rendered_file(setting: Setting) -> None:
    written, expected = SAMPLES[setting.kind](setting)
    config = _parse(render_settings({"server_name": "a.example", setting.path: written}))
    assert _attribute(config, setting) == expected
    # Everything else kept its default.
    defaults = _parse(_init_text())
    for other in SETTINGS:
        if other.path not in (setting.path, "server_name"):
            assert _attribute(config, other) == _attribute(defaults, other), other.path


def test_the_rendered_defaults_are_the_defaults_of_missing_keys() -> None:
    assert _parse(_init_text()) == config_from_dict({"server_name": "a.example"}, DATA)


def test_every_key_line_is_the_first_place_its_assignment_appears() -> None:
    """Operators and tests edit the file by its `key = ` lines: no comment may say one
    first, and every table header appears once, as a header."""
    text = _init_text()
    for s in SETTINGS:
        if not s.is_table:
            first = text.index(f"{s.key} = ")
            assert text[first - 1] == "\n", s.path
    for header in [f"[{section}]" for section in SECTIONS] + [
        f"[{s.path}]" for s in SETTINGS if s.is_table
    ]:
        assert text.index(header) == text.index(f"\n{header}\n") + 1, header


@pytest.mark.parametrize("section", ["", *SECTIONS])
def test_an_unknown_key_anywhere_is_an_error_naming_it(section: str) -> None:
    doc = tomllib.loads(_init_text())
    table = doc if not section else doc[section]
    table["retry_minimum"] = 1
    where = f"{section}." if section else ""
    with pytest.raises(ConfigError, match=rf"^unknown key {where}retry_minimum$"):
        config_from_dict(doc, DATA)


@pytest.mark.parametrize("section", SECTIONS)
def test_a_section_that_is_not_a_table_is_an_error(section: str) -> None:
    with pytest.raises(ConfigError, match=rf"^\[{section}\] must be a table$"):
        config_from_dict({"server_name": "a.example", section: 3}, DATA)


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.minimum is not None], ids=lambda s: s.path
)
def test_an_out_of_bounds_number_is_an_error_naming_its_bounds(setting: Setting) -> None:
    assert setting.minimum is not None
    text = render_settings({"server_name": "a.example", setting.path: setting.minimum - 1})
    kind = "an integer" if setting.kind == "integer" else "a number"
    with pytest.raises(ConfigError) as caught:
        _parse(text)
    assert str(caught.value) == f"{setting.path} must be {kind} >= {setting.minimum}"
    # The bound itself is accepted.
    config = _parse(render_settings({"server_name": "a.example", setting.path: setting.minimum}))
    assert _attribute(config, setting) == setting.minimum


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.path)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(setting: Setting) -> None:
    doc = tomllib.loads(_init_text())
    table = doc if not setting.section else doc[setting.section]
    table[setting.key] = [1]
    with pytest.raises(ConfigError, match=setting.path.replace(".", r"\.")):
        config_from_dict(doc, DATA)


def test_choices_are_named_in_the_error() -> None:
    text = _init_text().replace('synchronous = "FULL"', 'synchronous = "normal"')
    assert _parse(text).synchronous == "NORMAL"
    with pytest.raises(
        ConfigError, match=r"^registration\.mode must be one of closed, token, open$"
    ):
        _parse(_init_text().replace('mode = "closed"', 'mode = "CLOSED"'))


def test_readme_configuration_table_is_the_settings_table() -> None:
    text = config_readme.README.read_text(encoding="utf-8")
    assert config_readme.with_table(text) == text, "run: python -m tools.config_readme"
    for s in SETTINGS:
        assert f"| `{s.path}` |" in text
