"""Push notifications: pushers and their delivery to push gateways.

- `pushers.py`: `POST /pushers/set` checked as the spec and Synapse have it, stored per
  user and device (store/pushers.py), listed for `GET /pushers`.
- `delivery.py`: the trio service that pushes, for each http pusher, every event the
  user's push rules say `notify` for (relay/sync/push_actions.py), in order, at most once,
  retried with backoff, bounded.
- `gateway.py`: the one POST to a gateway, through the federation destination policy
  (relay/federation/destinations.py): a user-supplied URL never reaches internal
  addresses unless the operator allowed that gateway (`push.allowed_gateways`).

Layer: above rooms, sync and federation (it reads the first two and connects through the
third's policy); below client and node, which expose and run it.

Spec: https://spec.matrix.org/v1.16/client-server-api/#push-notifications,
https://spec.matrix.org/v1.16/push-gateway-api/
"""
