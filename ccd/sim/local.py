"""Local channel optimisation: once both halves of a ``Local/`` channel (without ``/n``) sit
in ordinary two-party bridges, Asterisk swaps the real channel behind ;2 into ;1's bridge
and hangs up the pair (LocalOptimizationBegin/End), as scenario 5b shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.channel import Channel
from ccd.sim.events import CALL

if TYPE_CHECKING:
    from ccd.sim.engine import Engine


class LocalOptimizer:
    """Watches bridge entries and optimises Local pairs away."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: set[int] = set()
        self.ids = 0
        engine.bridge_hooks.append(self.entered)

    def entered(self, ch: Channel) -> None:
        if not ch.is_local or ch.partner is None:
            return
        one = ch if ch.local_half == 1 else ch.partner
        if id(one) in self.pending or not self._candidate(one):
            return
        self.pending.add(id(one))
        self.engine.spawn(self._later(one), name=f"optimize {one.name}")

    def _candidate(self, one: Channel) -> bool:
        two = one.partner
        if two is None or one.dead or two.dead:
            return False
        if not (isinstance(one.owner, dict) and one.owner.get("optimize", True)):
            return False
        b1, b2 = one.bridge, two.bridge
        if b1 is None or b2 is None or b1 is b2:
            return False
        if b1.consultation or b2.consultation:
            return False
        return len(b1.channels) == 2 and len(b2.channels) == 2 and one.state == C.UP

    async def _later(self, one: Channel) -> None:
        try:
            await self.engine.clock.sleep(self.engine.settings.local_optimize_after)
            if self._candidate(one):
                self.optimize(one)
        finally:
            self.pending.discard(id(one))

    def optimize(self, one: Channel) -> None:
        eng = self.engine
        two = one.partner
        if two is None or one.bridge is None or two.bridge is None:
            return
        b1, b2 = one.bridge, two.bridge
        source = b2.others(two)[0]
        ident = str(self.ids)
        self.ids += 1
        eng.emit(
            "LocalOptimizationBegin",
            CALL,
            [
                *one.snapshot("LocalOne"),
                *two.snapshot("LocalTwo"),
                *source.snapshot("Source"),
                ("DestUniqueId", two.uniqueid),
                ("Id", ident),
            ],
        )
        eng.bridge_leave(source)
        eng.bridge_leave(one)
        eng.bridge_enter(b1, source)
        eng.emit(
            "LocalOptimizationEnd",
            CALL,
            [
                *one.snapshot("LocalOne"),
                *two.snapshot("LocalTwo"),
                ("Success", "No"),
                ("Id", ident),
            ],
        )
        source.owner = b1.owner
        eng.hangup(one, C.NORMAL_CLEARING)
