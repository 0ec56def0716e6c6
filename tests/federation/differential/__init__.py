"""The differential harness: one federation conversation, two servers, every answer compared.

- `fake_remote.py`: the remote server of our own (TLS on its own loopback address, a signing
  key, the events it signs, signed requests out; records what the targets ask of it).
- `conversation.py`: one target (real Synapse or real relay) as the remote sees it, a `Row`
  (one scenario: an act and a view of the answer) and `outcome`, which replaces every
  target-specific string by a symbol so the two answers compare.
- `conftest.py`: the servers, started once per module and shared by every room version
  (the fake remote, a second fake server for ACL rows, Synapse, the relay); per room version
  (10, 11, 12: `VERSIONS`) Alice's room of that version, which Carol joined.
- `test_inbound_differential.py`: `ROWS`, in order (later rows build on earlier ones), run
  in each room version. A new scenario is one row; a difference we keep is a row with
  `known=` its reason, listed in the README ("Federation differences from Synapse we keep").
  A server ACL pair is one `acl_twins` row builder: the same act by a `Side` of Zoe's
  server, which the room's ACL denies, then of Carol's, which it allows.
  Synapse answers `/send` a moment before what it took can be read back: a row that reads
  back what it just sent asks again until it is there (`served_soon`, `wait_until`).
- `hosted_room.py`: a room the fake remote hosts (its events, a damaged one, the make_join
  and send_join it answers, well or badly) and `test_outbound_differential.py`: the targets'
  users joining it, one row per answer (each malformed answer beside its well-formed twin).
"""
