"""The link profiles: rate, one-way delay and loss of an emulated satellite or radio link."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    #: bits per second each way; None is an unshaped veth.
    rate_bit: int | None
    #: one-way delay added to each packet after its serialisation time.
    delay_ms: int = 300
    #: fraction of packets dropped, each direction, independently (0.01 is 1 %).
    loss: float = 0.0

    @property
    def label(self) -> str:
        if self.rate_bit is None:
            return "unshaped"
        rate = f"{self.rate_bit / 1000:g} kbit/s"
        loss = f", {self.loss * 100:g} % loss" if self.loss else ""
        return f"{rate}, {self.delay_ms} ms{loss}"


UNSHAPED = Profile("unshaped", None, 0)
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        UNSHAPED,
        Profile("9.6k", 9600),
        Profile("64k", 64000),
        Profile("256k", 256000),
        Profile("9.6k-loss", 9600, loss=0.01),
        Profile("64k-loss", 64000, loss=0.01),
        Profile("256k-loss", 256000, loss=0.01),
    )
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown link profile {name!r}; known: {', '.join(PROFILES)}") from None
