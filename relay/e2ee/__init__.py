"""End-to-end encryption support: the server's side of Olm/Megolm key exchange.

The server never sees plaintext; it stores and routes keys and encrypted messages.

- `device_keys.py`: device and one-time keys, cross-signing: upload, query, claim, for
  local users and over federation.
- `device_lists.py`: who must re-fetch whose device keys, here and on other servers.
- `to_device.py`: to-device messages into a device's inbox, and out over federation.
- `key_backup.py`: server-side key backup versions and the room keys in them.

Rules: SQL lives in `store/` (`store/e2ee_keys.py`, `store/key_backup.py`,
`store/device_inbox.py`); the HTTP layers call in, nothing here imports them.
"""
