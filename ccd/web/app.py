"""The Flask application: sessions, CSRF, roles, languages, security headers.

* Sessions are Flask's signed cookies (HTTP-only, ``SameSite=Strict``, ``Secure`` unless
  ``[web] cookie_secure = false`` for a plain-http localhost demo). A session names the
  user and the user's ``session_epoch``; logout increments the epoch, so every cookie of
  that user stops working at once, and the user is re-read from PostgreSQL per request
  (a role change or deletion applies immediately).
* Every POST carries a CSRF token (Flask-WTF's CSRFProtect: a hidden field in forms, the
  ``X-CSRFToken`` header for the page script); Socket.IO connections are same-origin only
  and authenticated by the session.
* Roles agent < supervisor < admin are checked on the server for every page and call;
  every query is scoped to the user's tenant.
* Content-Security-Policy allows nothing but ccd's own scripts and styles (no inline
  script, no external URL), on top of Jinja's autoescaping and ``textContent`` in scripts.
* Text that no field can hold (a NUL byte, an unpaired surrogate, control characters) is
  refused with a 400 naming the field before any view runs (:mod:`ccd.web.inputs`); a
  value the database still refuses is a 400 as well, never a 500.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from flask import Flask, current_app, g, jsonify, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.wrappers import Response

from ccd.api import ApiError
from ccd.web.heartbeat import HeartbeatMonitor
from ccd.web.hub import Hub
from ccd.web.i18n import LANGUAGES, js_table, normalize, translate
from ccd.web.inputs import request_problem
from ccd.web.store import NotFound, PanelStore, StoreError, User

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
#: ApiError codes (the CLI's exit codes) -> HTTP status
HTTP_OF_API = {2: 400, 3: 503, 4: 404}


@dataclass
class PanelContext:
    """What the views need, kept in ``app.extensions["ccd"]``."""

    config: Any
    bridge: Any
    store: PanelStore
    hub: Hub
    heartbeat: HeartbeatMonitor
    registry: Any = None  # ccd.web.sockets.Registry
    socketio: Any = None


def ctx() -> PanelContext:
    return current_app.extensions["ccd"]


def load_secret_key(config: Any) -> str:
    """``[web] secret_key``, else ``<data_dir>/web.key`` (created 0600 on first start)."""
    key = config.web.secret_key.get_secret_value()
    if key:
        return key
    path = Path(config.data_dir) / "web.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


# ---------------------------------------------------------------------- users and roles


def current_user() -> User | None:
    """The session's user, re-read from the database once per request."""
    if "user" in g:
        return g.user
    user = None
    uid, epoch = session.get("uid"), session.get("epoch")
    if isinstance(uid, int) and isinstance(epoch, int):
        u = ctx().store.user(uid)
        if u is not None and u.session_epoch == epoch:
            user = u
    g.user = user
    return user


def lang() -> str:
    if "lang" not in g:
        user = current_user()
        g.lang = user.language if user else normalize(
            request.accept_languages.best_match(LANGUAGES) or "en")
    return g.lang


def _(key: str) -> str:
    return translate(key, lang())


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"ok": False, "error": message}), status


def bad_request(message: str) -> Any:
    """A 400: JSON for the API, plain text (never HTML made of request data) for pages."""
    if _wants_json():
        return json_error(message, 400)
    return Response(message, status=400, mimetype="text/plain")


def login_required(role: str = "agent") -> Callable[[F], F]:
    """Pages and API calls for users of at least ``role`` (401/403 otherwise)."""
    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if _wants_json():
                    return json_error("login required", 401)
                return redirect(url_for("pages.login"))
            if not user.at_least(role):
                if _wants_json():
                    return json_error(_("forbidden"), 403)
                return _("forbidden"), 403
            return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return deco


def fmt_dt(value: datetime | None) -> str:
    """``2026-11-24 09:30`` in the server's time zone; empty for None."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


def fmt_dtlocal(value: datetime | None) -> str:
    """The value of an ``<input type="datetime-local">``."""
    return value.astimezone().strftime("%Y-%m-%dT%H:%M") if isinstance(value, datetime) else ""


# ---------------------------------------------------------------------- factory


def create_app(config: Any, context: PanelContext, secret_key: str) -> Flask:
    """The Flask app with its blueprints (pages, JSON API)."""
    here = Path(__file__).resolve().parent
    app = Flask("ccd.web", template_folder=str(here / "templates"),
                static_folder=str(here / "static"), static_url_path="/static")
    web = config.web
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="ccd_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=bool(getattr(web, "cookie_secure", True)),
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session's lifetime
        WTF_CSRF_SSL_STRICT=bool(getattr(web, "cookie_secure", True)),
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["ccd"] = context
    CSRFProtect(app)

    @app.before_request
    def _refuse_invalid_text() -> Any:
        problem = request_problem(request)
        return bad_request(f"invalid input: {problem}") if problem else None

    from ccd.web.api import bp as api_bp
    from ccd.web.pages import bp as pages_bp

    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp, url_prefix="/api")

    app.jinja_env.filters["dt"] = fmt_dt
    app.jinja_env.filters["dtlocal"] = fmt_dtlocal

    @app.context_processor
    def _globals() -> dict[str, Any]:
        user = current_user()
        return {"_": _, "user": user, "lang": lang(), "languages": LANGUAGES,
                "i18n": js_table(lang()), "csrf_token": generate_csrf}

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        if _wants_json():
            return json_error(f"CSRF check failed: {exc.description}", 400)
        return f"CSRF check failed: {exc.description}", 400

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        status = HTTP_OF_API.get(exc.code, 502)
        return json_error(str(exc), status) if _wants_json() else (str(exc), status)

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> Any:
        return json_error(_("not_found"), 404) if _wants_json() else (_("not_found"), 404)

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError) -> Any:
        return json_error(str(exc), 400) if _wants_json() else (str(exc), 400)

    @app.errorhandler(psycopg.DataError)
    def _data_error(exc: psycopg.DataError) -> Any:
        # the input checks should have caught it; the transaction was rolled back
        log.warning("panel: %s %s: the database refused a value: %s", request.method,
                    request.path, exc)
        return bad_request("invalid input: a value the database cannot store")

    return app
