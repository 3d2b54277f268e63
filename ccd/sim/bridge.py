"""Bridges: where channels talk to each other (BridgeCreate/Enter/Leave/Destroy/Merge)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ccd.sim.channel import Channel
from ccd.sim.events import Fields


@dataclass(eq=False)
class Bridge:
    """A basic two-party (or more) bridge, as Asterisk's ``simple_bridge``/``softmix``."""

    uniqueid: str
    created: float
    type: str = "basic"
    technology: str = "simple_bridge"
    creator: str = "<unknown>"
    name: str = "<unknown>"
    channels: list[Channel] = field(default_factory=list)
    dissolved: bool = False
    #: set when the bridge ends; value: (channel that left first, why it left)
    ended: asyncio.Future[tuple[Channel | None, str]] | None = None
    owner: object = None  # the application that made the bridge (Queue attempt, Dial)
    options: str = ""  # the owner's options (t/T: who may transfer)
    transfer_target: tuple[str, str, int] | None = None  # where a blind transfer sends
    consultation: bool = False  # an attended transfer's consultation bridge

    def fields(self, prefix: str = "", count: int | None = None) -> Fields:
        p = prefix
        return [
            (f"{p}BridgeUniqueid", self.uniqueid),
            (f"{p}BridgeType", self.type),
            (f"{p}BridgeTechnology", self.technology),
            (f"{p}BridgeCreator", self.creator),
            (f"{p}BridgeName", self.name),
            (f"{p}BridgeNumChannels", str(len(self.channels) if count is None else count)),
            (f"{p}BridgeVideoSourceMode", "none"),
        ]

    def others(self, ch: Channel) -> list[Channel]:
        return [c for c in self.channels if c is not ch]

    def finish(self, first: Channel | None, why: str) -> None:
        """Resolve :attr:`ended` once (the first channel that left decides)."""
        if self.ended is not None and not self.ended.done():
            self.ended.set_result((first, why))
