"""The pure Matrix event model: canonical JSON, hashes, ids, redaction, signing,
room versions (1 to 12, as flags in room_versions.py), auth rules, state resolution
(v1 in state_res_v1.py, v2/v2.1 in state_res.py), relations (what relates to what, which
edit counts). No I/O: no sockets, files,
threads or databases (tests/test_layers.py enforces it)."""
