"""What a client learns by syncing: the sync builder and everything it gathers.

- `builder.py`: `SyncService`: what changed for a user between two stream positions,
  long-polling on the notifier.
- `rooms.py`: one room's section of a sync answer (timeline, state, ephemeral events).
- `sliding.py`: Simplified Sliding Sync (MSC4186): room lists, windows, subscriptions
  per connection, over the same readers; `sliding_request.py` checks and freezes its
  request body; `sliding_extensions.py` answers its extensions.
- `devices.py`: the device section: to-device messages, device list changes, one-time
  key counts.
- `lazy_members.py`: which member events each device has (lazy loading, memory only).
- `typing_notices.py`: who is typing where (memory only).
- `presence.py`: online / unavailable / offline per local user.
- `receipts.py`: read receipts and the fully-read marker.
- `account_data.py`: per-user JSON blobs, global or per room.
- `notifications.py`: what notified a user (`GET /notifications`); `push_actions.py`: the
  actions a user's push rules give stored events (the counts of users with keyword or
  sender rules, `/notifications`, pushers).

Rules: sync reads every section from one store snapshot; visibility comes from
`relay/rooms/visibility.py`. Nothing here writes room events.
"""
