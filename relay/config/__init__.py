"""The relay's configuration: `DIR/relay.toml`, read once at start, validated whole.

Map:
- `table.py`: `SETTINGS`, the one table of settings (TOML path, kind, default, lower
  bound, doc, the `Config` attribute it fills) and the constants it names.
- `model.py`: `Config` (defaults from the table), `Listen`, `ConfigError`, `ThumbnailSize`.
- `parse.py`: `load_config` / `config_from_dict`: each row through the parser its kind
  names; unknown keys, wrong types and out-of-bounds numbers are errors naming the key.
- `render.py`: the file `relay init` writes (every key, its doc as a comment) and the
  README's configuration table (`tools/config_readme.py` writes it; tests/test_config.py
  fails when they disagree).

Rules: a setting is added to `SETTINGS` and nowhere else. A broken file raises
`ConfigError` naming the key; the CLI turns it into a one-line error, exit 2. Paths in
the file are relative to the data dir. This package imports only `relay.events`; the thumbnail sizes
it parses (`ThumbnailSize`, `parse_size` in `model.py`) are its own, and relay/media uses
them.
"""

from relay.config.model import (
    THUMBNAIL_METHODS,
    Config,
    ConfigError,
    Listen,
    MediaConfig,
    ThumbnailSize,
    parse_listen,
    parse_size,
)
from relay.config.parse import PARSERS, config_from_dict, load_config
from relay.config.render import readme_table, render_config, render_settings, toml_value
from relay.config.table import (
    CONFIG_FILE,
    DEFAULT_CLIENT_LISTEN,
    DEFAULT_FEDERATION_LISTEN,
    DEFAULT_THUMBNAIL_SIZES,
    LOG_LEVELS,
    MESH_POLICIES,
    MIB,
    REGISTRATION_MODES,
    SECTIONS,
    SETTINGS,
    SETTINGS_BY_PATH,
    SYNCHRONOUS_MODES,
    Setting,
)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_CLIENT_LISTEN",
    "DEFAULT_FEDERATION_LISTEN",
    "DEFAULT_THUMBNAIL_SIZES",
    "LOG_LEVELS",
    "MESH_POLICIES",
    "MIB",
    "PARSERS",
    "REGISTRATION_MODES",
    "SECTIONS",
    "SETTINGS",
    "SETTINGS_BY_PATH",
    "SYNCHRONOUS_MODES",
    "THUMBNAIL_METHODS",
    "Config",
    "ConfigError",
    "Listen",
    "MediaConfig",
    "Setting",
    "ThumbnailSize",
    "config_from_dict",
    "load_config",
    "parse_listen",
    "parse_size",
    "readme_table",
    "render_config",
    "render_settings",
    "toml_value",
]
