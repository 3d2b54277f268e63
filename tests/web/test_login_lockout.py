"""Login lockout against the real panel over real HTTP: concurrent attempts cannot run more
password checks than ``[web] lockout_attempts`` (the attempt is reserved in PostgreSQL
before the check), and an unknown username answers exactly like a real account.

The panel's argon2 verification is wrapped (the real one still runs) to count the checks
and, for the race, to hold them until every request has been answered or is being checked,
so the interleaving is forced rather than left to the scheduler."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from click.testing import CliRunner
from web_support import PASSWORD, Stack, Web, wait_until

from ccd.cli.main import cli
from ccd.security import hash_password
from ccd.store.db import open_pool
from ccd.web import store as store_module

pytestmark = pytest.mark.timeout(240)

ATTEMPTS = 5  # [web] lockout_attempts (the default, as the Stack runs it)


class CountingVerify:
    """The real ``verify_password``, counted per password, optionally held at a gate."""

    def __init__(self, real: Callable[[str, str], bool], gated: bool = False) -> None:
        self.real = real
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, stored_hash: str, password: str) -> bool:
        with self._lock:
            self.calls.append(password)
        assert self.gate.wait(120), "the test never opened the gate"
        return self.real(stored_hash, password)

    @property
    def entered(self) -> int:
        with self._lock:
            return len(self.calls)


def _add_user(stack: Stack, username: str) -> None:
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("INSERT INTO users (tenant_id, username, password_hash) VALUES "
                     "(1, %s, %s)", (username, hash_password(PASSWORD)))


def _login_form(stack: Stack) -> tuple[requests.Session, str]:
    """A browser that has loaded the login page: its session and CSRF token."""
    http = requests.Session()
    page = http.get(stack.url + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return http, token.group(1)


def _post_login(stack: Stack, http: requests.Session, token: str, username: str,
                password: str) -> requests.Response:
    return http.post(stack.url + "/login", allow_redirects=False,
                     data={"username": username, "password": password, "csrf_token": token})


def test_parallel_logins_cannot_bypass_the_lockout(stack: Stack,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """24 concurrent POSTs, 23 wrong then the right password: only ATTEMPTS checks run
    and the right password, arriving while they run, gets no session."""
    _add_user(stack, "racer")
    verify = CountingVerify(store_module.verify_password, gated=True)
    monkeypatch.setattr(store_module, "verify_password", verify)
    browsers = [_login_form(stack) for _ in range(24)]
    done = 0
    done_lock = threading.Lock()

    def attempt(i: int, password: str) -> requests.Response:
        nonlocal done
        http, token = browsers[i]
        try:
            return _post_login(stack, http, token, "racer", password)
        finally:
            with done_lock:
                done += 1

    def settled(n: int) -> bool:
        with done_lock:
            return verify.entered + done >= n

    with ThreadPoolExecutor(max_workers=24) as pool:
        wrong: list[Future[requests.Response]] = [
            pool.submit(attempt, i, f"wrong-password-{i}") for i in range(23)]
        # every wrong attempt is either being checked (held at the gate) or answered
        wait_until(lambda: settled(23), 60, "the wrong attempts to be checked or refused")
        right = pool.submit(attempt, 23, PASSWORD)
        wait_until(lambda: settled(24), 60, "the right attempt to be checked or refused")
        verify.gate.set()
        answers = [f.result(60) for f in wrong]
        last = right.result(60)
    assert verify.entered == ATTEMPTS, verify.calls
    assert PASSWORD not in verify.calls  # refused before its password was looked at
    assert last.status_code == 401 and "locked" in last.text
    assert all(r.status_code == 401 for r in answers), [r.status_code for r in answers]
    for http, _ in browsers:  # nobody got a session
        assert http.get(stack.url + "/api/me").status_code == 401
    # and it stays locked for the right password too
    http, token = _login_form(stack)
    assert _post_login(stack, http, token, "racer", PASSWORD).status_code == 401
    assert verify.entered == ATTEMPTS


def _answer(r: requests.Response) -> tuple[int, str]:
    """What a client can see of a login answer (the CSRF token differs per browser)."""
    body = re.sub(r'(name="csrf[-_]token" (?:value|content))="[^"]+"', r'\1=""', r.text)
    return r.status_code, body


def test_unknown_usernames_answer_like_real_accounts(stack: Stack,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _add_user(stack, "realname")
    verify = CountingVerify(store_module.verify_password)
    monkeypatch.setattr(store_module, "verify_password", verify)
    seen: dict[str, list[tuple[int, str]]] = {}
    for name in ("realname", "ghost-name"):
        http, token = _login_form(stack)
        seen[name] = [_answer(_post_login(stack, http, token, name, f"{name}-wrong-{i}"))
                      for i in range(ATTEMPTS + 2)]
    assert seen["realname"] == seen["ghost-name"]
    statuses = [s for s, _ in seen["ghost-name"]]
    assert statuses == [401] * (ATTEMPTS + 2)
    texts = [t for _, t in seen["ghost-name"]]
    assert all("Wrong username or password" in t for t in texts[:ATTEMPTS - 1])
    assert all("Too many failed attempts" in t for t in texts[ATTEMPTS - 1:])
    # the same work: one argon2 check per allowed attempt, none once locked, for both
    for name in ("realname", "ghost-name"):
        checked = [p for p in verify.calls if p.startswith(f"{name}-wrong-")]
        assert checked == [f"{name}-wrong-{i}" for i in range(ATTEMPTS)], (name, checked)


def _locked_in_cli(stack: Stack, tmp: Path, username: str) -> bool:
    """``ccd users --json`` shows the user's lock."""
    r = CliRunner().invoke(cli, ["users", "--json"], catch_exceptions=False,
                           env={"CCD_DATABASE_URL": stack.db_url, "CCD_DATA_DIR": str(tmp),
                                "CCD_CONFIG": ""})
    assert r.exit_code == 0, r.output
    return next(u for u in json.loads(r.output) if u["username"] == username)[
        "locked_until"] is not None


def test_the_lockout_window_ends_and_a_login_clears_it(stack: Stack, tmp_path: Path) -> None:
    _add_user(stack, "comeback")
    w = Web(stack.url)
    assert w.login("comeback", "wrong-password").status_code == 401
    assert w.login("comeback", PASSWORD).status_code == 200  # 2nd try, right: in
    with psycopg.connect(stack.db_url) as conn:
        assert conn.execute("SELECT count(*) FROM login_throttle WHERE username = "
                            "'comeback'").fetchone() == (0,)
    for _ in range(ATTEMPTS):
        assert Web(stack.url).login("comeback", "wrong-password").status_code == 401
    assert Web(stack.url).login("comeback", PASSWORD).status_code == 401
    assert _locked_in_cli(stack, tmp_path, "comeback")
    with psycopg.connect(stack.db_url) as conn:  # lockout_minutes later
        conn.execute("UPDATE login_throttle SET locked_until = now() - interval '1 second', "
                     "updated_at = now() - interval '16 minutes' WHERE username = 'comeback'")
    assert not _locked_in_cli(stack, tmp_path, "comeback")
    assert Web(stack.url).login("comeback", PASSWORD).status_code == 200


def test_expired_attempts_are_swept(stack: Stack) -> None:
    """Unknown usernames cannot grow login_throttle for ever: rows whose window is over
    are deleted (they mean the same as no row); live ones stay."""
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("INSERT INTO login_throttle (username, failures, locked_until, updated_at)"
                     " VALUES ('old-spray-1', 3, NULL, now() - interval '16 minutes'),"
                     " ('old-spray-2', 5, now() - interval '1 minute',"
                     "  now() - interval '16 minutes'),"
                     " ('still-locked', 5, now() + interval '10 minutes', now())")
    with open_pool(stack.db_url, min_size=1, max_size=2, name="sweep-test") as pool:
        store = store_module.PanelStore(pool)  # a fresh panel process: sweeps at once
        assert store.authenticate("someone-else", "wrong-password", ATTEMPTS, 15) == (
            None, "failed")
    with psycopg.connect(stack.db_url) as conn:
        left = {r[0] for r in conn.execute("SELECT username FROM login_throttle").fetchall()}
    assert "old-spray-1" not in left and "old-spray-2" not in left
    assert {"still-locked", "someone-else"} <= left
