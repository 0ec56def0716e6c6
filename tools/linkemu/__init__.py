"""A slow-link emulator for tests and benchmarks (issue 17).

- `profiles.py`: the named profiles (9.6k, 64k, 256k with 300 ms each way; `-loss` variants
  with 1 % loss each way; `unshaped`).
- `link.py`: `EmulatedLink`, two network namespaces joined by a veth pair, shaped with
  `tc tbf` (rate) and the delay stage; byte, packet and new-connection counters; `inside(ns)`
  to start servers and make requests in a namespace.
- `delayer.py`: the delay and loss stage, an NFQUEUE reader in each namespace (this kernel has
  no `sch_netem`).
- `seats.py`: `SynapseSeat` and `RelaySeat`, a real Synapse or an edge relay on one side of
  the link; `SeatUser`, a Matrix user of a seat whose requests run in the seat's namespace.
- `pair.py`: `open_seat_pair`, the link with a hq seat in `ns_a` and a field seat in `ns_b`
  (its upstream hq), started, yielded as a `SeatPair`, stopped in reverse order; the seats
  come from `relay_seat(...)` / `synapse_seat(...)`. The tests' and the bench's one setup.
- `__main__.py`: `python -m tools.linkemu check PROFILE` measures a TCP connect and an echo
  round trip over the link against the model.

Rules: only addresses inside the namespaces it makes; everything it starts it stops;
namespaces carry the pid, so parallel runs never meet.
"""
