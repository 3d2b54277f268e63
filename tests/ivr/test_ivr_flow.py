"""Flow files: the shipped ones load; broken ones fail with the file and node named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccd.ivr.flow import BUILTIN_FLOWS, FlowError, load_flow, load_flows, parse_flow

GOOD = """
[flow]
start = "main"
languages = ["en", "zh-CN"]
default_language = "en"
allowed_transfers = ["1001"]
[prompts.en]
menu = "en/menu"
[prompts."zh-CN"]
menu = "zh/menu"
[nodes.main]
type = "menu"
prompt = "menu"
choices = { "1" = "q" }
on_failure = "q"
[nodes.q]
type = "queue"
queue = "support"
"""


def test_shipped_flows_load() -> None:
    flows = load_flows(BUILTIN_FLOWS)
    assert "support" in flows
    support = flows["support"]
    assert support.header.languages == ["zh-CN", "en"]
    kinds = {type(n).__name__ for n in support.nodes.values()}
    assert kinds >= {"LookupNode", "LanguageNode", "PromptNode", "HoursNode", "MenuNode",
                     "CollectNode", "SetNode", "QueueNode", "TransferNode", "VoicemailNode",
                     "CallbackNode", "HangupNode"}
    assert support.sound("main-menu", "zh-CN") == "ccd/zh/main-menu"
    assert support.sound("main-menu", "en") == "ccd/en/main-menu"


def test_minimal_flow_parses() -> None:
    flow = parse_flow(GOOD, "mem.toml")
    assert flow.name == "mem" and flow.start == "main"


@pytest.mark.parametrize(("change", "message"), [
    (('choices = { "1" = "q" }', 'choices = { "1" = "billing" }'),
     "node 'main': choice '1' goes to unknown node 'billing'"),
    (('on_failure = "q"', 'on_failure = "nowhere"'),
     "node 'main': on_failure goes to unknown node 'nowhere'"),
    (('type = "menu"', 'type = "ivr-magic"'), "node 'main': unknown node type"),
    (('prompt = "menu"', 'prompt = "missing"'),
     "node 'main': prompt 'missing' has no sound in language 'en'"),
    (('choices = { "1" = "q" }', 'choices = { "12" = "q" }'),
     "node 'main': choices: choice key '12' is not one DTMF digit"),
    (('on_failure = "q"', 'on_failure = "q"\ntimeout = -1'),
     "node 'main': timeout: Input should be greater than 0"),
    (('on_failure = "q"', 'on_failure = "q"\ncolour = "red"'),
     "node 'main': colour: Extra inputs are not permitted"),
    (('queue = "support"', 'queue = "support,tT"'),
     "node 'q': queue: queue name 'support,tT' has characters a dialplan cannot take"),
    (('start = "main"', 'start = "begin"'), "[flow] start: unknown node 'begin'"),
    (('default_language = "en"', 'default_language = "fr"'),
     "[flow] default_language 'fr' is not in languages"),
    (('[prompts."zh-CN"]\nmenu = "zh/menu"', ''), "[prompts] no prompt set for language 'zh-CN'"),
    (('type = "queue"\nqueue = "support"', 'type = "transfer"\ntarget = "0044123"'),
     "node 'q': target '0044123' is not in [flow] allowed_transfers"),
    (('type = "queue"\nqueue = "support"', 'type = "hours"\ncalendar = "x"\nopen = "q"\n'
      'closed = "q"'), "node 'q': unknown calendar 'x'"),
    (('queue = "support"', 'queue = "support"\n[calendars.c]\ntimezone = "Mars/Olympus"'),
     "[calendars.c] timezone: unknown time zone 'Mars/Olympus'"),
    (('queue = "support"', 'queue = "support"\n[calendars.c]\nmon = ["18:00-09:00"]'),
     "[calendars.c]: opening range '18:00-09:00' ends before it starts"),
    (('languages = ["en", "zh-CN"]\n', ''), "[flow] languages: Field required"),
])
def test_broken_flows_name_the_file_and_node(change: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(FlowError) as err:
        parse_flow(text, "flows/broken.toml")
    assert str(err.value).startswith("flows/broken.toml: ")
    assert message in str(err.value)


def test_collect_pattern_must_compile() -> None:
    text = GOOD.replace('type = "queue"\nqueue = "support"', """type = "collect"
prompt = "menu"
variable = "acct"
pattern = "[0-9"
min_digits = 9
max_digits = 4
next = "q2"
on_failure = "q2"
[nodes.q2]
type = "lookup"
by = "account"
account_variable = "nope"
found = "main"
not_found = "main"
""")
    with pytest.raises(FlowError) as err:
        parse_flow(text, "x.toml")
    msg = str(err.value)
    assert "node 'q': pattern: pattern '[0-9' is not a regular expression" in msg


def test_lookup_needs_a_collected_variable_and_transfer_needs_on_denied() -> None:
    text = GOOD.replace('type = "queue"\nqueue = "support"', """type = "lookup"
by = "account"
account_variable = "nope"
found = "main"
not_found = "t"
[nodes.t]
type = "transfer"
target_variable = "ext"
""")
    with pytest.raises(FlowError) as err:
        parse_flow(text, "x.toml")
    msg = str(err.value)
    assert "node 'q': account_variable 'nope' is not collected by any collect node" in msg
    assert "node 't': target_variable 'ext' is not collected by any collect node" in msg
    assert "node 't': target_variable needs on_denied" in msg


def test_set_node_template_fields_are_checked() -> None:
    text = GOOD.replace('type = "queue"\nqueue = "support"',
                        'type = "set"\nvariables = { CCD_X = "{custmer_name}" }\nnext = "main"')
    with pytest.raises(FlowError,
                       match=r"node 'q': variable CCD_X: unknown field \{custmer_name\}"):
        parse_flow(text, "x.toml")


def test_bad_toml_and_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[flow\nstart=")
    with pytest.raises(FlowError, match=r"bad.toml: not valid TOML"):
        load_flow(p)
    with pytest.raises(FlowError, match=r"nope.toml: cannot read"):
        load_flow(tmp_path / "nope.toml")
    with pytest.raises(FlowError, match="does not exist"):
        load_flows(tmp_path / "missing")


def test_a_broken_file_in_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "sales.toml").write_text(GOOD.replace('"1" = "q"', '"1" = "gone"'))
    with pytest.raises(FlowError) as err:
        load_flows(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'sales.toml'}: node 'main'")


def test_two_files_with_one_flow_name(tmp_path: Path) -> None:
    named = GOOD.replace('start = "main"', 'name = "x"\nstart = "main"')
    (tmp_path / "a.toml").write_text(named)
    (tmp_path / "b.toml").write_text(named)
    with pytest.raises(FlowError, match="flow name 'x' is also used by"):
        load_flows(tmp_path)
