"""The delay (and loss) stage of the emulated link: a userspace NFQUEUE reader.

This kernel has no `sch_netem`, so `tc tbf` gives the rate and this stage the rest, in the
receiving namespace (`iptables -t raw -A PREROUTING -i DEV -j NFQUEUE`): each packet is held
for its serialisation time at the link rate (a FIFO wire: it starts when the one before has
finished) plus the one-way delay, then accepted; with `--loss`, a packet is dropped with that
probability instead (seeded, so a run is repeatable). Together with tbf on the sending side
this behaves like `netem delay D rate R loss L` (../shared/lowband/README.md measured it).

`python -m tools.linkemu.delayer --rate-bit R --delay-ms D [--loss L] [--stats FILE]`, run
inside the namespace; prints `ready` once bound, keeps its counters in FILE (JSON, rewritten
at most twice a second while they change, and at exit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from pathlib import Path

NETLINK_NETFILTER, NFNL_SUBSYS_QUEUE = 12, 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NFQNL_CFG_CMD_BIND, NFQNL_COPY_PACKET = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
ETHERNET_FRAMING = 14  # bytes a packet costs on the wire beyond its IP length


def _attribute(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * ((4 - size % 4) % 4)


class NfQueue:
    """A minimal nfnetlink_queue client: bind a queue, read (packet id, IP length) of each
    queued packet (only its first 20 bytes are copied), give verdicts."""

    def __init__(self, number: int, max_len: int = 16384) -> None:
        self.number, self.seq = number, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 0))
        self._configure(
            _attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))
        )
        self._configure(_attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 20, NFQNL_COPY_PACKET)))
        self._configure(_attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", max_len)))

    def _send(self, kind: int, payload: bytes, flags: int = 1) -> None:
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.number) + payload
        header = struct.pack(
            "=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, self.seq, 0
        )
        self.sock.send(header + body)

    def _configure(self, payload: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, payload, 1 | 4)  # REQUEST | ACK
        data = self.sock.recv(65536)
        kind = struct.unpack_from("=IHHII", data)[1]
        if kind == 2:  # NLMSG_ERROR
            error = struct.unpack_from("=i", data, 16)[0]
            if error:
                raise OSError(-error, "nfqueue config: " + os.strerror(-error))

    def accept_up_to(self, packet_id: int) -> None:
        """Accept every queued packet with an id up to `packet_id` (one message)."""
        verdict = struct.pack("!II", NF_ACCEPT, packet_id)
        self._send(NFQNL_MSG_VERDICT_BATCH, _attribute(NFQA_VERDICT_HDR, verdict))

    def drop(self, packet_id: int) -> None:
        verdict = struct.pack("!II", NF_DROP, packet_id)
        self._send(NFQNL_MSG_VERDICT, _attribute(NFQA_VERDICT_HDR, verdict))

    def packets(self) -> list[tuple[int, int]]:
        """(packet id, IP total length) of each queued-packet message waiting."""
        out: list[tuple[int, int]] = []
        try:
            data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return out
        offset = 0
        while offset + 16 <= len(data):
            size, kind = struct.unpack_from("=IH", data, offset)
            if size < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                at, end, packet_id, length = offset + 20, offset + size, None, 0
                while at + 4 <= end:
                    attr_len, attr_kind = struct.unpack_from("=HH", data, at)
                    if attr_len < 4:
                        break
                    if attr_kind & 0x3FFF == NFQA_PACKET_HDR:
                        packet_id = struct.unpack_from("!I", data, at + 4)[0]
                    elif attr_kind & 0x3FFF == NFQA_PAYLOAD and attr_len >= 8:
                        length = struct.unpack_from("!H", data, at + 6)[0]
                    at += (attr_len + 3) & ~3
                if packet_id is not None:
                    out.append((packet_id, length))
            offset += (size + 3) & ~3
        return out


def run(rate_bit: int, delay_ms: int, loss: float, stats_path: Path | None, queue: int = 0) -> None:
    nfq = NfQueue(queue)
    delay, rate = delay_ms / 1000.0, float(rate_bit)
    chance = random.Random(f"{rate_bit}/{delay_ms}/{loss}")
    pending: deque[tuple[float, int]] = deque()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    wire_free = 0.0
    stats = {"packets": 0, "bytes": 0, "dropped": 0, "max_pending": 0, "recv_errors": 0}
    last_id = 0
    written, next_write = "", 0.0
    print("ready", flush=True)
    while not stop.is_set():
        if stats_path is not None and time.monotonic() >= next_write:
            next_write = time.monotonic() + 0.5
            if json.dumps(stats) != written:
                written = json.dumps(stats)
                stats_path.write_text(written)
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else 0.5
        try:
            readable, _, _ = select.select([nfq.sock], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        if readable:
            try:
                arrived = nfq.packets()
            except OSError:  # ENOBUFS: messages lost; the next batch verdict frees them
                stats["recv_errors"] += 1
                arrived = []
            for packet_id, length in arrived:
                last_id = max(last_id, packet_id)
                start = max(now, wire_free)
                wire_free = start + (length + ETHERNET_FRAMING) * 8 / rate
                if loss and chance.random() < loss:
                    nfq.drop(packet_id)  # it used the wire, and never arrives
                    stats["dropped"] += 1
                    continue
                pending.append((wire_free + delay, packet_id))
                stats["packets"] += 1
                stats["bytes"] += length
            stats["max_pending"] = max(stats["max_pending"], len(pending))
        now = time.monotonic()
        up_to = None
        while pending and pending[0][0] <= now:
            _due, up_to = pending.popleft()
        if up_to is not None:
            nfq.accept_up_to(up_to)
    if last_id:
        nfq.accept_up_to(last_id)  # leave nothing queued: unbinding would drop it
    if stats_path is not None:
        stats_path.write_text(json.dumps(stats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.linkemu.delayer")
    parser.add_argument("--rate-bit", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, default=300)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--stats", type=Path)
    args = parser.parse_args(argv)
    run(args.rate_bit, args.delay_ms, args.loss, args.stats, args.queue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
