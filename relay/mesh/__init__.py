"""The LAN mesh: relays on one network find each other and share rooms.

- `discovery.py`: mDNS announcements and browsing (zeroconf, in its own thread, talking to
  trio over a channel), and which peers are alive.
- `trust.py`: what an announcement is worth: trusted (pinned key, proved over the TLS
  certificate its signed key response lists), pending or rejected.
- `gossip.py`: relays that share a room converge to the union of its events.
- `service.py`: discovery + trust + gossip, and the hooks federation consults.

Rules: a peer is trusted only by its pinned ed25519 key (`relay peers approve`), proved by
a TLS handshake with the certificate bound to that key, and every connection to it must
present that certificate; SQL lives in `store/peers.py`.
"""
