"""Preview dialling through the API methods the agent console calls, and dispositions."""

from __future__ import annotations

import asyncio

import pytest

from ccd.api import ApiError
from ccd.sim.phones import PhoneProfile

pytestmark = pytest.mark.timeout(120)


def num(i: int) -> str:
    return f"+155501000{i:02d}"


@pytest.mark.phones(**{"15550100003": PhoneProfile(answer="busy")})
async def test_preview_next_dial_and_dispositions(stack, db, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, "pv", dial_mode="preview", abandon_message="")
    ids = db.contacts(tid, cid, [(num(1), None), (num(3), None), (num(4), None)])
    ccd = await stack.ccd()
    svc = ccd.svc
    with pytest.raises(ApiError, match="not running") as err:
        await svc.preview_next({"campaign": "pv", "agent": "1001"})
    assert err.value.code == 2
    await svc.set_state("pv", "start")
    await wait_for(lambda: cid in svc.runners and svc.runners[cid].locked, 10, "the dialer")
    with pytest.raises(ApiError, match="not in queue"):
        await svc.preview_next({"campaign": "pv", "agent": "1003"})

    got = await svc.preview_next({"campaign": "pv", "agent": "1001"})
    contact = got["contact"]
    assert (contact["e164"], contact["status"], contact["reserved_by"]) == \
        (num(1), "preview", "PJSIP/1001")
    assert (await svc.preview_next({"campaign": "pv", "agent": "1001"}))["contact"]["id"] == \
        contact["id"]  # the agent keeps the contact it holds
    other = await svc.preview_next({"campaign": "pv", "agent": "1002"})
    busy_id = ids[num(3)]
    assert other["contact"]["id"] == busy_id
    with pytest.raises(ApiError) as err:
        await svc.preview_dial({"campaign": "pv", "agent": "1002", "contact_id": contact["id"]})
    assert err.value.code == 4

    # nothing is dialled until the agent says so
    await asyncio.sleep(0.5)
    assert db.attempts(cid) == []
    dialled = await svc.preview_dial({"campaign": "pv", "agent": "1001",
                                      "contact_id": contact["id"]})
    await wait_for(lambda: db.attempts(cid)[0]["state"] == "answered", 10, "agent answered")
    contact_phone = stack.sim.engine.phones.get(num(1)[1:])
    await wait_for(lambda: any(c.state == 6 for c in contact_phone.calls), 10, "contact up")
    await asyncio.sleep(0.3)
    contact_phone.hangup()
    await wait_for(lambda: db.attempts(cid)[0]["state"] == "done", 10, "call ended")
    first = db.attempts(cid)[0]
    assert (first["id"], first["outcome"], first["agent"], first["mode"]) == \
        (dialled["attempt_id"], "answered", "PJSIP/1001", "preview")
    assert db.contact(ids[num(1)])["status"] == "done"

    # the agent's disposition: do not call again
    res = await svc.disposition({"attempt_id": first["id"], "disposition": "dnc",
                                 "note": "asked"})
    assert res["disposition"] == "dnc"
    assert db.q("SELECT tenant_id, source FROM dnc WHERE e164 = %s", num(1)) == \
        [{"tenant_id": tid, "source": "agent"}]
    assert db.contact(ids[num(1)])["status"] == "dnc"

    # Bob dials his contact: busy -> retried later; a callback disposition sets when
    await svc.preview_dial({"campaign": "pv", "agent": "1002", "contact_id": busy_id})
    await wait_for(lambda: len(db.attempts(cid)) == 2 and db.attempts(cid)[1]["state"] == "done",
                   10, "busy outcome")
    assert db.attempts(cid)[1]["outcome"] == "busy"
    assert db.contact(busy_id)["status"] == "pending"
    await svc.disposition({"attempt_id": db.attempts(cid)[1]["id"],
                           "disposition": "callback", "callback_at": "2030-01-09T15:00:00Z"})
    assert db.contact(busy_id)["next_at"].isoformat() == "2030-01-09T15:00:00+00:00"
    with pytest.raises(ApiError):
        await svc.disposition({"attempt_id": first["id"], "disposition": "Bad Code!"})

    # Alice skips her next contact: nothing else is due
    nxt = await svc.preview_next({"campaign": "pv", "agent": "1001"})
    assert nxt["contact"]["id"] == ids[num(4)]
    for bad in ("inf", "nan", -5, "soon"):  # refused before anything changes
        with pytest.raises(ApiError, match="delay must be"):
            await svc.preview_skip({"campaign": "pv", "agent": "1001",
                                    "contact_id": ids[num(4)], "delay": bad})
    skipped = await svc.preview_skip({"campaign": "pv", "agent": "1001",
                                      "contact_id": ids[num(4)]})
    assert skipped["contact_id"] == ids[num(4)]
    assert (await svc.preview_next({"campaign": "pv", "agent": "1001"}))["contact"] is None
    assert len(db.attempts(cid)) == 2
