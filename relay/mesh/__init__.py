"""The LAN mesh: relays on one network find each other and share rooms.

- `discovery.py`: mDNS announcements and browsing (zeroconf, in its own thread, talking to
  trio over a channel), and which peers are alive.
- `trust.py`: what an announcement is worth: trusted (pinned key), pending or rejected.
- `gossip.py`: relays that share a room converge to the union of its events.
- `service.py`: discovery + trust + gossip, and the hooks federation consults.

Rules: a peer is trusted only by its pinned ed25519 key (`relay peers approve`); SQL lives
in `store/peers.py`.
"""
