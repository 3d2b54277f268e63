"""The IVR engine, every node type, over a real FastAGI socket (no database here)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ccd.ivr.checks import luhn_complete
from ccd.ivr.lookup import Customer, MemoryDirectory
from ccd.sim.agi_client import HANG_UP, HANGUP, SUCCESS, Barge, ScriptedChannel

#: Tuesday 2026-11-24 20:00 in Shanghai: the support calendar is closed
CLOSED = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def commands(ch: ScriptedChannel) -> list[str]:
    return [c for c, _ in ch.commands]

ACCOUNT = luhn_complete("4000123412341")  # 14 digits, Luhn-valid
BAD_ACCOUNT = ACCOUNT[:-1] + str((int(ACCOUNT[-1]) + 1) % 10)


async def test_english_caller_reaches_tech_support(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "3"])
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    assert (v["CCD_QUEUE"], v["CCD_PRIORITY"], v["CCD_LANG"], v["CCD_IVR_RESULT"]) == \
        ("support", "0", "en", "queue")
    assert v["CCD_IVR_PATH"] == \
        "identify(not_found)>language=2>welcome>hours(open)>main=3>tech(support/0)"
    assert v["CCD_FALLBACK_QUEUE"] == "support"
    assert ch.played == ["ccd/choose-language", "ccd/en/welcome", "ccd/en/main-menu",
                         "ccd/en/please-hold"]
    rec = h.directory.sessions[0]
    assert (rec.flow, rec.outcome, rec.queue, rec.priority, rec.caller_e164) == \
        ("support", "queue", "support", 0, "+15557770001")
    assert rec.path[4] == {"node": "main", "type": "menu", "input": "3"}


async def test_chinese_caller_hears_chinese_prompts(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["1", "3"])
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CHANNEL(language)"] == "zh"
    assert ch.variables["CCD_LANG"] == "zh-CN"
    assert ch.played[1:] == ["ccd/zh/welcome", "ccd/zh/main-menu", "ccd/zh/please-hold"]


async def test_language_timeout_keeps_the_default_language(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["", "", "3"])
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_LANG"] == "zh-CN"
    assert ch.variables["CCD_IVR_PATH"].startswith(
        "identify(not_found)>language(timeout)>language(timeout)>welcome")


async def test_menu_timeout_and_invalid_input_then_a_valid_choice(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "", "7", "3"])
    assert await h.call(ch) == SUCCESS
    assert "main(timeout)>main=7(invalid)>main=3>tech" in ch.variables["CCD_IVR_PATH"]
    assert ch.played.count("ccd/en/main-menu") == 3
    assert "ccd/en/no-input" in ch.played and "ccd/en/invalid" in ch.played


async def test_menu_retries_exhausted_go_to_on_failure(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "", "9", ""])
    assert await h.call(ch) == SUCCESS
    path = ch.variables["CCD_IVR_PATH"]
    assert path.endswith("main(timeout)>main=9>operator=3000")  # 9 = operator is valid
    ch = ScriptedChannel(["2", "", "", ""])
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_IVR_PATH"].endswith(
        "main(timeout)>main(timeout)>main(timeout)>tech(support/0)")
    # the last failure is not followed by a useless "try again" prompt
    assert ch.played.count("ccd/en/no-input") == 2


async def test_barge_in_on_a_multi_prompt_menu(ivr) -> None:
    h = await ivr(now=CLOSED)
    ch = ScriptedChannel(["2", Barge("2")])  # presses 2 during "we are closed"
    assert await h.call(ch) == HANGUP  # voicemail, then goodbye + hang up
    assert "closed=2>voicemail" in ch.variables["CCD_IVR_PATH"]
    assert "ccd/en/closed-menu" not in ch.played


async def test_caller_hanging_up_mid_menu_is_recorded(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", HANG_UP])
    assert await h.call(ch) == HANGUP
    rec = h.directory.sessions[0]
    assert rec.outcome == "caller_hangup"
    assert rec.path_text.endswith("hours(open)>main(hangup)")
    # SET VARIABLE is allowed on a dead channel: the live model still gets the path
    assert ch.variables["CCD_IVR_PATH"] == rec.path_text
    assert "CCD_QUEUE" not in ch.variables
    assert h.server.stats.hangups == 1 and h.server.stats.fallbacks == 0


async def test_account_number_luhn_check_and_lookup_vip(ivr) -> None:
    d = MemoryDirectory()
    d.add_customer(0, Customer(42, "Acme Corp", ACCOUNT, vip=True, language="en"))
    h = await ivr(directory=d)
    ch = ScriptedChannel(["2", "1", BAD_ACCOUNT + "#", "1234#", ACCOUNT + "#"])
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    stars = "*" * len(ACCOUNT)
    assert f"account={stars}(checksum)>account=****(too_short)>account={stars}" \
        ">account_lookup(found)>accounts_queue(accounts/10)" in v["CCD_IVR_PATH"]
    assert ACCOUNT not in v["CCD_IVR_PATH"]  # account numbers are masked in the path
    assert (v["CCD_CUSTOMER_ID"], v["CCD_CUSTOMER_NAME"], v["CCD_VIP"]) == ("42", "Acme Corp", "1")
    assert (v["CCD_QUEUE"], v["CCD_PRIORITY"]) == ("accounts", "10")
    assert v["CCD_ACCOUNT_ENTERED"] == ACCOUNT
    assert d.sessions[0].customer_id == 42


async def test_survey_flag_follows_the_queue(ivr) -> None:
    d = MemoryDirectory(survey_queues={"support"})
    h = await ivr(directory=d)
    ch = ScriptedChannel(["2", "1", ACCOUNT + "#"])  # unknown account: support queue
    assert await h.call(ch) == SUCCESS
    assert (ch.variables["CCD_QUEUE"], ch.variables["CCD_SURVEY"]) == ("support", "1")
    d.survey_queues.clear()
    ch = ScriptedChannel(["2", "1", ACCOUNT + "#"])
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_SURVEY"] == "0"


async def test_unknown_account_goes_to_tech(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "1", ACCOUNT + "#"])
    assert await h.call(ch) == SUCCESS
    assert "account_lookup(not_found)>account_unknown>tech(support/0)" in \
        ch.variables["CCD_IVR_PATH"]
    assert "CCD_CUSTOMER_ID" not in ch.variables


async def test_order_number_pattern_and_set_node(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "2", "7123456789", "8123456789"])
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    assert "order=7123456789(pattern)>order=8123456789>tag_order>tech" in v["CCD_IVR_PATH"]
    assert (v["CCD_ORDER_NO"], v["CCD_ORDER_REF"], v["CCD_TOPIC"]) == \
        ("8123456789", "ORD-8123456789", "order")


async def test_vip_known_by_caller_id_skips_language_and_gets_priority(ivr) -> None:
    d = MemoryDirectory()
    d.add_customer(0, Customer(7, "张三", "1", vip=True, language="zh-CN"), "+15557770001")
    h = await ivr(directory=d)
    ch = ScriptedChannel(["3"])
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    assert v["CCD_IVR_PATH"] == \
        "identify(found)>language(known:zh-CN)>welcome>hours(open)>main=3>tech(support/10)"
    assert (v["CCD_CUSTOMER_NAME"], v["CCD_VIP"], v["CCD_PRIORITY"]) == ("张三", "1", "10")
    assert v["CHANNEL(language)"] == "zh" and ch.played[0] == "ccd/zh/welcome"


async def test_non_vip_customer_keeps_normal_priority(ivr) -> None:
    d = MemoryDirectory()
    d.add_customer(0, Customer(8, "Bob", None, vip=False, language="en"), "+15557770001")
    h = await ivr(directory=d)
    ch = ScriptedChannel(["3"])
    assert await h.call(ch) == SUCCESS
    assert (ch.variables["CCD_VIP"], ch.variables["CCD_PRIORITY"]) == ("0", "0")


async def test_business_hours_at_fixed_times(ivr) -> None:
    cases = [
        (datetime(2026, 11, 24, 2, 0, tzinfo=UTC), "open"),       # Tue 10:00 Shanghai
        (datetime(2026, 11, 24, 0, 59, tzinfo=UTC), "closed"),    # Tue 08:59
        (datetime(2026, 11, 24, 10, 0, tzinfo=UTC), "closed"),    # Tue 18:00 (end excluded)
        (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), "open"),       # Sat 11:00
        (datetime(2026, 11, 29, 3, 0, tzinfo=UTC), "closed"),     # Sunday
        (datetime(2026, 10, 1, 3, 0, tzinfo=UTC), "holiday"),     # National Day
        (datetime(2026, 12, 31, 2, 0, tzinfo=UTC), "open"),       # special day 10:00
        (datetime(2026, 12, 31, 5, 0, tzinfo=UTC), "holiday"),    # special day 13:00
    ]
    for now, state in cases:
        h = await ivr(now=now)
        ch = ScriptedChannel(["2", "3", ""])
        await h.call(ch)
        assert f"hours({state})" in ch.variables["CCD_IVR_PATH"], now
        assert ("main" in ch.variables["CCD_IVR_PATH"]) == (state == "open")


async def test_closed_callback_request_then_goodbye(ivr) -> None:
    h = await ivr(now=CLOSED)
    ch = ScriptedChannel(["2", "1"])
    assert await h.call(ch) == HANGUP  # the flow hangs up after "goodbye"
    d = h.directory
    assert [(c.e164, c.queue, c.language) for c in d.callbacks] == \
        [("+15557770001", "support", "en")]
    assert ch.variables["CCD_CALLBACK"] == "+15557770001"
    assert d.sessions[0].outcome == "callback"
    cmds = commands(ch)
    assert cmds[cmds.index("HANGUP") + 1:] == [  # allowed on the now dead channel
        "SET VARIABLE CCD_LANG en", "SET VARIABLE CCD_IVR_RESULT callback",
        'SET VARIABLE CCD_IVR_PATH "identify(not_found)>language=2>welcome>hours(closed)>'
        'closed=1>callback(requested)>bye"']
    assert all(r == "200 result=1" for _, r in ch.commands[-3:])
    assert ch.variables["CCD_IVR_PATH"].endswith("closed=1>callback(requested)>bye")
    # a second request while the first is pending is not duplicated
    ch = ScriptedChannel(["2", "1"])
    await h.call(ch)
    assert len(d.callbacks) == 1
    assert "callback(already_pending)" in ch.variables["CCD_IVR_PATH"]


async def test_voicemail(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "0"])
    assert await h.call(ch) == HANGUP
    assert "EXEC VoiceMail 1000@support,s" in commands(ch)
    assert h.directory.sessions[0].outcome == "voicemail"
    assert "voicemail(1000@support)" in h.directory.sessions[0].path_text


async def test_voicemail_that_fails_is_not_a_message_and_offers_a_callback(ivr) -> None:
    """Real Asterisk: VoiceMail() of a mailbox voicemail.conf lacks sets VMSTATUS=FAILED and
    goes on; the caller heard "leave a message" but none exists (real-3/F2b)."""
    h = await ivr()
    ch = ScriptedChannel(["2", "0"], vmstatus="FAILED")
    assert await h.call(ch) == HANGUP
    s = h.directory.sessions[0]
    assert s.outcome == "callback"
    assert "voicemail(1000@support:failed)" in s.path_text
    assert h.directory.callbacks and h.directory.callbacks[0].e164 == "+15557770001"


async def test_general_choice_goes_to_the_line_s_own_queue(ivr) -> None:
    """DID 5551004 (escalation line): digit 3 reaches the line's queue, not support."""
    h = await ivr()
    h.directory.queue_tenants.update({"escalation": 0, "support": 0})
    ch = ScriptedChannel(["2", "3"], variables={"CCD_LINE_QUEUE": "escalation"})
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_QUEUE"] == "escalation"
    # a line queue ccd does not know (or another tenant's) is ignored
    for bad in ("nosuch", "x;Hangup"):
        ch = ScriptedChannel(["2", "3"], variables={"CCD_LINE_QUEUE": bad})
        assert await h.call(ch) == SUCCESS
        assert ch.variables["CCD_QUEUE"] == "support"


async def test_operator_transfer_to_an_allowed_extension(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "9"])
    assert await h.call(ch) == SUCCESS
    cmds = commands(ch)
    i = cmds.index("SET CONTEXT ccd-transfer")
    assert cmds[i:i + 3] == ["SET CONTEXT ccd-transfer", "SET EXTENSION 3000", "SET PRIORITY 1"]
    assert ch.variables["CCD_TRANSFER"] == "3000"
    assert ch.variables["CCD_IVR_RESULT"] == "transfer"


async def test_caller_digits_never_reach_a_dial_string_unchecked(ivr) -> None:
    """Toll fraud: a caller typing an outside number is refused; a listed extension works."""
    h = await ivr()
    for typed in ("00112345678", "9011", "1003", "1001*"):
        ch = ScriptedChannel(["1", typed + "#"])
        assert await h.call(ch, "ivr/desk") == SUCCESS
        assert not any(c.startswith(("SET EXTENSION", "SET CONTEXT")) for c in commands(ch))
        assert f"dial={typed}(denied)>denied>queue(desk/2)" in ch.variables["CCD_IVR_PATH"] \
            or f"ext={typed}(invalid)" in ch.variables["CCD_IVR_PATH"]
        assert ch.variables["CCD_QUEUE"] == "desk"
    ch = ScriptedChannel(["1", "1002#"])
    assert await h.call(ch, "ivr/desk") == SUCCESS
    assert commands(ch)[-6:-3] == ["SET CONTEXT agents", "SET EXTENSION 1002", "SET PRIORITY 1"]


async def test_set_node_templates_and_callback_number_from_digits(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "011442079460000"])  # international call-back number
    assert await h.call(ch, "ivr/desk") == SUCCESS
    assert ch.variables["CCD_GREETING"] == "hi 5557770001 on 5551000 via desk"
    assert [c.e164 for c in h.directory.callbacks] == ["+442079460000"]


async def test_missing_sound_does_not_stop_the_call(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "3"], missing=frozenset({"ccd/en/welcome"}))
    await h.call(ch)
    assert ch.variables["CCD_QUEUE"] == "support"


async def test_flow_in_the_url_that_does_not_exist_goes_to_fallback(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel()
    assert await h.call(ch, "ivr/nosuchflow") == SUCCESS
    assert ch.variables["CCD_AGI_ERROR"] == "LookupError: IVR flow 'nosuchflow' is not loaded"
    assert commands(ch)[-3:] == ["SET CONTEXT ccd-fallback", "SET EXTENSION s", "SET PRIORITY 1"]


async def test_a_looping_flow_ends_in_the_fallback(ivr, tmp_path: Path) -> None:
    d = tmp_path / "loop"
    d.mkdir()
    (d / "support.toml").write_text("""
[flow]
start = "a"
languages = ["en"]
default_language = "en"
max_steps = 20
[prompts.en]
x = "x"
[nodes.a]
type = "prompt"
prompt = "x"
next = "b"
[nodes.b]
type = "prompt"
prompt = "x"
next = "a"
""")
    h = await ivr(flows=d)
    ch = ScriptedChannel()
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_AGI_ERROR"].startswith("RuntimeError: flow 'support' ran 20 steps")
    assert commands(ch)[-1] == "SET PRIORITY 1"
    assert h.directory.sessions[0].outcome == "error"


class BrokenDirectory(MemoryDirectory):
    async def customer_by_phone(self, tenant_id: int, e164: str) -> Customer | None:
        raise ConnectionError("database down")

    async def save_session(self, rec) -> None:
        raise ConnectionError("database down")


async def test_storage_failure_does_not_drop_the_call(ivr) -> None:
    h = await ivr(directory=BrokenDirectory())
    ch = ScriptedChannel(["2", "3"])
    assert await h.call(ch) == SUCCESS
    assert ch.variables["CCD_IVR_PATH"].startswith("identify(error)>")
    assert ch.variables["CCD_QUEUE"] == "support"


async def test_anonymous_caller_is_not_looked_up(ivr) -> None:
    h = await ivr()
    ch = ScriptedChannel(["2", "3"], callerid="anonymous")
    await h.call(ch)
    assert ch.variables["CCD_IVR_PATH"].startswith("identify(no_caller_id)>")
    assert h.directory.sessions[0].caller_e164 is None
