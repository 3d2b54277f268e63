"""Which tenant a call belongs to decides whose agents, queues and dial patterns a transfer
may use (CallService.tenant_of / transfer)."""

from __future__ import annotations

from typing import Any

import pytest

from ccd.api import ApiError
from ccd.config import Config
from ccd.model import domain as d
from ccd.model.live import Call, LiveModel
from ccd.services.calls import CallService
from ccd.services.directory import AgentRow, QueueRow


class Dir:
    """Two tenants: queue support (1), agents PJSIP/1001 (1) and PJSIP/2001 (2)."""

    async def queues(self, refresh: bool = False) -> dict[str, QueueRow]:
        return {"support": QueueRow(1, 1, "support", "acme", 0, 20, "never", False)}

    async def agent(self, ident: str, tenant_id: int | None = None) -> AgentRow:
        tenant = {"PJSIP/1001": 1, "PJSIP/2001": 2}.get(ident)
        if tenant is None or tenant_id not in (None, tenant):
            raise ApiError(f"no agent {ident!r}", 4)
        return AgentRow(1, tenant, "x", ident, ident[6:], "agent")


def service() -> CallService:
    return CallService(Config(), None, LiveModel(), Dir())  # type: ignore[arg-type]


def call(**rec: Any) -> Call:
    return Call("c1", d.CallRecord(call_id="c1", **rec))


async def test_tenant_from_queue_then_tag_then_agent() -> None:
    s = service()
    assert await s.tenant_of(call(queue="support", agent="PJSIP/2001")) == 1
    assert await s.tenant_of(call(variables={"CCD_TENANT": "2"})) == 2
    assert await s.tenant_of(call(agent="PJSIP/2001")) == 2  # a direct call to tenant 2
    assert await s.tenant_of(call(), agent="PJSIP/2001") == 2
    with pytest.raises(ApiError, match="tenant"):  # never a guess such as tenant 1
        await s.tenant_of(call())


async def test_targets_are_looked_up_in_the_given_tenant() -> None:
    s = service()
    c = call(agent="PJSIP/2001")
    with pytest.raises(ApiError):  # tenant 1's agent is not reachable from tenant 2's call
        await s.resolve_target(c, "agent:PJSIP/1001")
    with pytest.raises(ApiError):  # nor tenant 1's queue
        await s.resolve_target(c, "queue:support")
    assert (await s.resolve_target(c, "agent:PJSIP/1001", tenant=1))[0] == "1001"
