"""The runtime: plumbing every domain package stands on, and nothing Matrix-specific.

- `database.py`: the trio side of the store: one writer (group commit), a few reader
  threads fed from one queue, and `read_now` for one keyed row on the trio thread.
- `http.py`: the HTTP edge of both listeners: the ASGI app, JSON in (strict) and out.
- `listener.py`: accepting connections for an app: limits on their number (per listener,
  per address) and time (headers, body, keep-alive).
- `identity.py`: the relay's ed25519 signing key and TLS certificate on disk.
- `notifier.py`: wakes long-polls when something new is committed.
- `ratelimit.py`: token buckets per key and action.
- `metrics.py`: counters and histograms in memory, and the Prometheus text format.
- `housekeeping.py`: periodic deletion of records nobody will ask about again.
- `sdnotify.py`: systemd's readiness and watchdog notifications.
- `memory.py`: the C allocator's side of a flat RSS (two malloc arenas, trim).

Rules: runtime modules import `relay.events`, `relay.errors`, `relay.config` and `store/`
only, never a domain package (rooms, sync, e2ee, client, federation, mesh, media).
"""
