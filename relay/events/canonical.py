"""Canonical JSON: the one byte encoding that hashes and signatures cover.

Rules kept here:

- ``canonical_json`` is byte-for-byte the ``canonicaljson`` package (as Synapse
  and signedjson use it): shortest UTF-8, keys sorted by code point, no NaN.
- Room versions 6+ (all we claim) forbid floats and integers outside
  ``[-(2**53)+1, 2**53-1]``; ``check_canonical_json_values`` rejects them, and
  ``canonical_json`` does not silently "fix" them (``1.0`` stays ``1.0``), so a
  signature made by Synapse over the same value still verifies here.
- ``parse_json_strict`` is the one way inbound bytes become JSON values: invalid
  UTF-8, ``NaN``/``Infinity`` and duplicate keys are errors, not guesses.

Spec: https://spec.matrix.org/v1.16/appendices/#canonical-json
"""

from __future__ import annotations

import json
from typing import Any

from canonicaljson import encode_canonical_json

#: The inclusive integer range canonical JSON allows.
MIN_INT = -(2**53) + 1
MAX_INT = 2**53 - 1


class CanonicalJsonError(ValueError):
    """A value that strict canonical JSON (room versions 6+) forbids."""


class JsonParseError(ValueError):
    """Bytes that are not strict JSON: bad UTF-8, NaN/Infinity, duplicate keys."""


def canonical_json(obj: Any) -> bytes:
    """The canonical JSON encoding of ``obj`` as UTF-8 bytes.

    Raises:
        ValueError: NaN/Infinity floats, or strings with lone surrogates
            (``UnicodeEncodeError``).
        TypeError: values JSON cannot represent.
    """
    return encode_canonical_json(obj)


def check_canonical_json_values(obj: Any) -> None:
    """Raise ``CanonicalJsonError`` if ``obj`` holds a value strict rooms forbid.

    Forbidden: floats (NaN and infinities included), integers outside
    ``[MIN_INT, MAX_INT]``, strings or keys with lone surrogates (not UTF-8).
    """
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not MIN_INT <= value <= MAX_INT:
                raise CanonicalJsonError(f"integer out of canonical JSON range: {value}")
        elif isinstance(value, float):
            raise CanonicalJsonError(f"float not allowed in canonical JSON: {value!r}")
        elif isinstance(value, str):
            _check_str(value)
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise CanonicalJsonError(f"object key is not a string: {key!r}")
                _check_str(key)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        else:
            raise CanonicalJsonError(f"not a JSON value: {type(value).__name__}")


def _check_str(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CanonicalJsonError("string is not valid Unicode (lone surrogate)") from e


def _reject_constant(name: str) -> Any:
    raise JsonParseError(f"JSON constant not allowed: {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonParseError(f"duplicate key in JSON object: {key!r}")
        result[key] = value
    return result


def parse_json_strict(data: bytes) -> Any:
    """Parse UTF-8 JSON bytes, refusing what a lenient parser would guess at.

    Rejects invalid UTF-8 (including a BOM), ``NaN``/``Infinity``/``-Infinity``
    and duplicate object keys. Floats and big integers parse; room-version
    checks reject them with ``check_canonical_json_values``.

    Raises:
        JsonParseError: the bytes are not strict JSON.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonParseError("JSON is not valid UTF-8") from e
    if text.startswith("\ufeff"):
        raise JsonParseError("JSON must not start with a byte order mark")
    try:
        return json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
        )
    except JsonParseError:
        raise
    except (ValueError, RecursionError) as e:
        raise JsonParseError(f"invalid JSON: {e}") from e
