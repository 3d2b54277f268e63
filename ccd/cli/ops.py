"""Live operations through the running daemon: agents, queues, calls, originate."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ccd.cli.daemon_cmds import api
from ccd.cli.main import Ctx, cli, pass_ctx
from ccd.cli.output import ok, show, when

AGENT_COLUMNS = [("id", "id"), ("name", "name"), ("agent", "interface"), ("tenant", "tenant"),
                 ("state", "state"), ("reason", "reason"), ("in_state", "for s"),
                 ("queues", "queues"), ("call_id", "call")]


def _agent_result(r: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    state = r["state"] + (f" ({r['reason']})" if r.get("reason") else "")
    if r.get("confirmed"):
        ok(f"{r['name']} ({r['agent']}) {verb}: now {state}")
    else:
        click.echo(f"{r['name']} ({r['agent']}): {verb} sent; Asterisk has not confirmed yet "
                   f"(state {state}); check with `ccd agents`", err=True)


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def agents(click_ctx: click.Context, as_json: bool) -> None:
    """Agents and their live state (`ccd agents add` to create one)."""
    if click_ctx.invoked_subcommand is None:
        ctx: Ctx = click_ctx.obj
        rows = api(ctx.config, "agents")
        show(rows, AGENT_COLUMNS, title="Agents", as_json=as_json, empty="no agents")


@cli.group()
def agent() -> None:
    """Log an agent in or out, pause or unpause it."""


def _agent_cmd(action: str, verb: str):
    @click.argument("ident", metavar="AGENT")
    @click.option("--json", "as_json", is_flag=True)
    @pass_ctx
    def cmd(ctx: Ctx, ident: str, as_json: bool, **kw: Any) -> None:
        r = api(ctx.config, "agent", {"action": action, "agent": ident, **kw})
        _agent_result(r, as_json, verb)

    cmd.__doc__ = f"{verb.capitalize()} AGENT (its id, interface, extension or name)."
    return cmd


agent.command("login")(_agent_cmd("login", "logged in"))
agent.command("logout")(_agent_cmd("logout", "logged out"))
agent.command("unpause")(_agent_cmd("unpause", "unpaused"))
agent.command("pause")(click.option("--reason", required=True,
                                    help="Pause reason code (`ccd pause-reasons`).")(
    _agent_cmd("pause", "paused")))


@cli.command("pause-reasons")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def pause_reasons(ctx: Ctx, as_json: bool) -> None:
    """The pause reason codes agents may use."""
    rows = [{"code": k, "label": v} for k, v in api(ctx.config, "pause_reasons").items()]
    show(rows, [("code", "code"), ("label", "label")], title="Pause reasons", as_json=as_json)


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def queues(click_ctx: click.Context, as_json: bool) -> None:
    """Queues live: waiting, longest wait, agents, service level today."""
    if click_ctx.invoked_subcommand is None:
        ctx: Ctx = click_ctx.obj
        rows = api(ctx.config, "queues")
        show(rows, [("queue", "queue"), ("waiting", "waiting"), ("longest_wait", "longest s"),
                    ("available", "avail"), ("busy", "busy"), ("paused", "paused"),
                    ("offered_today", "offered"), ("answered_today", "answered"),
                    ("abandoned_today", "abandoned"), ("sl_today", "SL % today"),
                    ("asa_today", "ASA s")], title="Queues", as_json=as_json,
             empty="no queues known yet")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def calls(ctx: Ctx, as_json: bool) -> None:
    """Calls in progress."""
    rows = api(ctx.config, "calls")
    for r in rows:
        r["started_at"] = when(r.get("started"))
        r["caller"] = (f"{r['caller_name']} <{r['caller_num']}>" if r["caller_name"]
                       else r["caller_num"])
    show(rows, [("call_id", "call"), ("direction", "dir"), ("did", "DID"), ("caller", "caller"),
                ("state", "state"), ("queue", "queue"), ("talking_to", "with"),
                ("duration", "for s"), ("wait", "wait s"), ("recording", "rec")],
         title="Calls in progress", as_json=as_json, empty="no calls in progress")


@cli.group()
def call() -> None:
    """Act on a call in progress (CALL_ID from `ccd calls`)."""


def _user() -> str:
    """Who runs this CLI (recorded with the hang-ups ccd makes for them)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _call_done(r: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        ok(text)


@call.command("hangup")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def call_hangup(ctx: Ctx, call_id: str, as_json: bool) -> None:
    """Hang up a call."""
    r = api(ctx.config, "call", {"action": "hangup", "call_id": call_id,
                                 "requested_by": f"cli:{_user()}"})
    _call_done(r, as_json, f"hung up {', '.join(r['hung_up'])}")


@call.command("transfer")
@click.argument("call_id")
@click.argument("target")
@click.option("--attended", is_flag=True, help="Attended (consult first) instead of blind.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def call_transfer(ctx: Ctx, call_id: str, target: str, attended: bool, as_json: bool) -> None:
    """Transfer a call's agent leg to TARGET: agent:ID, queue:NAME, number:N or a bare value."""
    r = api(ctx.config, "call", {"action": "transfer", "call_id": call_id, "target": target,
                                 "attended": attended})
    _call_done(r, as_json, f"{r['transfer']} transfer of {r['channel']} to "
                           f"{r['exten']}@{r['context']}: {r.get('state', 'requested')}")


for _hold in ("hold", "unhold"):
    def _make_hold(what: str):
        @click.argument("call_id")
        @click.option("--json", "as_json", is_flag=True)
        @pass_ctx
        def cmd(ctx: Ctx, call_id: str, as_json: bool) -> None:
            r = api(ctx.config, "call", {"action": what, "call_id": call_id})
            _call_done(r, as_json, f"call {call_id} {'on hold' if what == 'hold' else 'resumed'}"
                       " (confirmed by Asterisk)")

        cmd.__doc__ = ("Hold the caller inside Asterisk (music on hold; works with any phone)."
                       if what == "hold" else "Resume a call held with `ccd call hold`.")
        return cmd

    call.command(_hold)(_make_hold(_hold))


for _what in ("start", "stop", "pause", "resume"):
    def _make(what: str):
        @click.argument("call_id")
        @click.option("--json", "as_json", is_flag=True)
        @pass_ctx
        def cmd(ctx: Ctx, call_id: str, as_json: bool) -> None:
            r = api(ctx.config, "call", {"action": "record", "call_id": call_id, "what": what})
            _call_done(r, as_json, f"recording {what}: {r['recording']}")

        cmd.__doc__ = f"{what.capitalize()} the call's recording" + (
            " (PCI: e.g. while a card number is read)." if what == "pause" else ".")
        return cmd

    call.command(f"record-{_what}")(_make(_what))


@cli.command()
@click.argument("agent_ident", metavar="AGENT")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def originate(ctx: Ctx, agent_ident: str, number: str, as_json: bool) -> None:
    """Click-to-dial: ring AGENT's phone, then call NUMBER from it."""
    r = api(ctx.config, "originate", {"agent": agent_ident, "number": number})
    _call_done(r, as_json, f"calling {r['number']} from {r['agent']} ({r['message']})")
