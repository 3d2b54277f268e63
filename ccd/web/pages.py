"""The panel's HTML pages and their forms (login, agent panel, wallboard, tickets,
customers). Every form carries the CSRF token; every id is looked up in the user's tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from ccd.web.app import _, ctx, current_user, login_required
from ccd.web.i18n import LANGUAGES
from ccd.web.store import (
    PRIORITIES,
    SORTS,
    STATUSES,
    NotFound,
    StoreError,
    User,
    parse_id,
    ticket_query,
)

bp = Blueprint("pages", __name__)


def _user() -> User:
    u = current_user()
    if u is None:
        abort(401)
    return u


def _form(key: str, limit: int = 200) -> str:
    return request.form.get(key, "").strip()[:limit]


def _due(value: str) -> datetime | None:
    """A ``datetime-local`` / ISO value; naive times are the server's local time."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        raise StoreError(f"bad date {value!r}") from None


# ---------------------------------------------------------------------- login


@bp.get("/favicon.ico")
def favicon() -> Response:
    return Response(status=204)


@bp.get("/")
def index() -> Response:
    u = current_user()
    if u is None:
        return redirect(url_for("pages.login"))
    if u.supervisor and not u.agent_interface:
        return redirect(url_for("pages.wallboard"))
    return redirect(url_for("pages.agent"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = ""
    if request.method == "POST":
        c = ctx()
        web = c.config.web
        username = _form("username", 64)
        password = request.form.get("password", "")[:1024]
        user, why = c.store.authenticate(username, password,
                                         getattr(web, "lockout_attempts", 5),
                                         getattr(web, "lockout_minutes", 15))
        if user is not None:
            session.clear()
            session.permanent = True
            session["uid"], session["epoch"] = user.id, user.session_epoch
            return redirect(url_for("pages.index"))
        error = _("login_locked") if why == "locked" else _("login_failed")
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> Response:
    u = current_user()
    if u is not None:
        c = ctx()
        c.store.end_sessions(u.id)
        if c.registry is not None:
            c.registry.disconnect_user(u.id)
    session.clear()
    return redirect(url_for("pages.login"))


@bp.post("/language")
@login_required()
def language() -> Response:
    u = _user()
    lang = request.form.get("language", "")
    if lang in LANGUAGES:
        ctx().store.set_language(u.id, lang)
    return redirect(url_for("pages.index"))


# ---------------------------------------------------------------------- panel pages


@bp.get("/agent")
@login_required()
def agent() -> str:
    return render_template("agent.html")


@bp.get("/wallboard")
@login_required("supervisor")
def wallboard() -> str:
    return render_template("wallboard.html")


# ---------------------------------------------------------------------- tickets


@bp.get("/tickets")
@login_required()
def tickets() -> str:
    u = _user()
    c = ctx()
    q = ticket_query(request.args)
    rows, total = c.store.list_tickets(u.tenant_id, u, q)
    args = {k: v for k, v in request.args.items() if k != "page"}
    pages = max(1, (total + 24) // 25)
    return render_template(
        "tickets.html", rows=rows, total=total, q=q, statuses=STATUSES, priorities=PRIORITIES,
        sorts=list(SORTS), agents=c.store.agents(u.tenant_id), queues=c.store.queues(u.tenant_id),
        prev_url="?" + urlencode({**args, "page": q.page - 1}) if q.page > 1 else "",
        next_url="?" + urlencode({**args, "page": q.page + 1}) if q.page < pages else "")


@bp.route("/tickets/new", methods=["GET", "POST"])
@login_required()
def new_ticket() -> Any:
    u = _user()
    c = ctx()
    error = ""
    if request.method == "POST":
        cust = parse_id(request.form.get("customer_id"))
        try:
            tid = c.store.create_ticket(
                u.tenant_id, u, subject=_form("subject"),
                description=_form("description", 10000), priority=_form("priority", 16),
                customer_id=cust, call_id=_form("call_id", 64),
                assignee=_form("assignee", 40), due_at=_due(_form("due", 32)))
        except StoreError as exc:
            error = str(exc)
        else:
            return redirect(url_for("pages.ticket", ticket_id=tid))
    cust_id = parse_id(request.values.get("customer_id"))
    customer = c.store.customer(u.tenant_id, cust_id) if cust_id else None
    call_id = request.values.get("call_id", "")[:64]
    subject = request.values.get("subject", "")[:200]
    if not subject and call_id:
        subject = f"{_('from_call')} {call_id}"
    return render_template("ticket_new.html", customer=customer, call_id=call_id,
                           subject=subject, priorities=PRIORITIES, error=error,
                           agents=c.store.agents(u.tenant_id), queues=c.store.queues(u.tenant_id)
                           ), 400 if error else 200


@bp.get("/tickets/<int:ticket_id>")
@login_required()
def ticket(ticket_id: int) -> str:
    u = _user()
    c = ctx()
    try:
        t = c.store.ticket(u.tenant_id, ticket_id)
    except NotFound:
        abort(404)
    return render_template("ticket.html", t=t, events=c.store.ticket_events(u.tenant_id,
                                                                            ticket_id),
                           agents=c.store.agents(u.tenant_id),
                           queues=c.store.queues(u.tenant_id),
                           error=" ".join(get_flashed_messages(category_filter=["error"])))


@bp.post("/tickets/<int:ticket_id>/<action>")
@login_required()
def ticket_action(ticket_id: int, action: str) -> Response:
    u = _user()
    store = ctx().store
    try:
        if action == "status":
            store.set_status(u.tenant_id, ticket_id, u, _form("status", 16))
        elif action == "assign":
            store.assign(u.tenant_id, ticket_id, u, _form("assignee", 40))
        elif action == "due":
            store.set_due(u.tenant_id, ticket_id, u, _due(_form("due", 32)))
        elif action == "comment":
            store.add_comment(u.tenant_id, ticket_id, u, _form("body", 10000))
        else:
            abort(404)
    except NotFound:
        abort(404)
    except StoreError as exc:  # shown once on the ticket page (never from a link's query)
        flash(str(exc), "error")
    return redirect(url_for("pages.ticket", ticket_id=ticket_id))


# ---------------------------------------------------------------------- customers


@bp.get("/customers")
@login_required()
def customers() -> str:
    u = _user()
    text = request.args.get("q", "")[:200]
    return render_template("customers.html", rows=ctx().store.search_customers(u.tenant_id, text),
                           text=text)


@bp.get("/customers/<int:customer_id>")
@login_required()
def customer(customer_id: int) -> str:
    u = _user()
    store = ctx().store
    cust = store.customer(u.tenant_id, customer_id)
    if cust is None:
        abort(404)
    return render_template("customer.html", c=cust, timeline=store.timeline(u.tenant_id, cust),
                           tickets=store.open_tickets(u.tenant_id, customer_id, 50))
