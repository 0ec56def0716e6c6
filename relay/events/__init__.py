"""The pure Matrix event model: canonical JSON, hashes, ids, redaction, signing,
room versions, auth rules, state resolution, relations (what relates to what, which
edit counts). No I/O: no sockets, files,
threads or databases (tests/test_layers.py enforces it)."""
