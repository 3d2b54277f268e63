"""End to end in a real browser: Debian's chromium driven by Playwright (never a downloaded
browser), ccd connected to the PBX simulator. An agent logs in, gets the screen pop while
the simulated phone rings, answers, transfers, wraps up and creates a ticket, while a
supervisor watches the wallboard change. Hostile caller names render as text. Screenshots
go to ``test-artifacts/``."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from web_support import ARTIFACTS, PASSWORD, Stack, wait_until

pytestmark = pytest.mark.timeout(240)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = '<img src=x onerror=alert(1)>"><script>alert(2)</script>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; `make test` does it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Watch:
    """What a page did that it must not: dialogs (alert), foreign requests, console errors."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, d: Any) -> None:
        self.dialogs.append(d.message)
        d.dismiss()

    def check(self) -> None:
        assert self.dialogs == []
        assert self.errors == []
        foreign = [u for u in self.requests
                   if not u.startswith((self.origin + "/", self.origin.replace("http", "ws")))]
        assert foreign == []


def open_page(browser: Browser, stack: Stack, username: str, path: str) -> tuple[Page, Watch]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = ctx.new_page()
    watch = Watch(page, stack.url)
    page.goto(stack.url + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_load_state("networkidle")
    page.goto(stack.url + path)
    expect(page.locator("#conn")).to_have_class("conn", timeout=10000)
    return page, watch


def agent_row(page: Page, name: str) -> Any:
    return page.locator("#wb-agents tbody tr", has=page.locator("td.agent-name", has_text=name))


@pytest.fixture(autouse=True)
def clean(stack: Stack) -> Iterator[None]:
    stack.panel.hub.stats_interval = 0.5
    yield
    stack.hangup_all()
    for iface in ("PJSIP/1001", "PJSIP/1002"):
        stack.logout_agent(iface)


def test_agent_call_flow_with_supervisor_watching(browser: Browser, stack: Stack) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    agent, aw = open_page(browser, stack, "alice", "/agent")
    sup, sw = open_page(browser, stack, "sue", "/wallboard")
    expect(agent.locator("#state")).to_have_text("Logged out")
    agent.click("#btn-login")
    expect(agent.locator("#state")).to_have_text("Available", timeout=10000)
    alice_row = agent_row(sup, "Alice")
    expect(alice_row.locator(".badge")).to_have_text("Available", timeout=10000)

    # the screen pop appears while the phone rings, before anyone answers
    ch = stack.call(caller=("Customer Carol", "5557770001"))
    stack.press(ch, "2")
    expect(agent.locator("#pop")).to_be_visible(timeout=15000)
    expect(agent.locator("#pop-state")).to_have_text("Ringing")
    assert stack.agent("PJSIP/1001")["state"] == "ringing"
    expect(agent.locator("#pop-caller-name")).to_have_text("Customer Carol")
    expect(agent.locator("#pop-caller-num")).to_have_text("5557770001")
    expect(agent.locator("#pop-customer-name")).to_have_text("Carol Customer")
    expect(agent.locator("#pop-queue")).to_have_text("support")
    expect(agent.locator("#pop-ivr")).to_contain_text("main=2")
    expect(agent.locator("#pop-digits")).to_have_text("2")
    expect(agent.locator("#pop-tickets")).to_contain_text("Router keeps rebooting")
    expect(agent.locator("#pop-rec")).to_have_text("Recording")
    expect(agent.locator("#customer-form")).to_be_hidden()
    expect(agent.locator("#wrapup-form")).to_be_hidden()
    expect(agent_row(sup, "Alice").locator(".current-call")).to_contain_text("Customer Carol")
    agent.screenshot(path=str(ARTIFACTS / "screen-pop.png"), full_page=True)

    assert stack.answer("1001")
    expect(agent.locator("#pop-state")).to_have_text("Talking", timeout=10000)
    expect(agent.locator("#state")).to_have_text("On a call")
    expect(alice_row.locator(".badge")).to_have_text("On a call", timeout=10000)
    expect(sup.locator("#wb-queues tbody")).to_contain_text("support")
    sup.wait_for_function("() => Chart.getChart(document.getElementById('chart-volume'))"
                          ".data.labels.length > 0", timeout=10000)
    sup.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)

    # blind transfer to Bob (logged in meanwhile); Alice's part ends and she wraps up
    stack.login_agent("PJSIP/1002")
    expect(agent_row(sup, "Bob").locator(".badge")).to_have_text("Available", timeout=10000)
    agent.select_option("#transfer-kind", "agent")
    agent.select_option("#transfer-agent", str(ids["a_bob"]))
    agent.click("#btn-transfer")
    wait_until(lambda: stack.answer("1002"), 15, "Bob's phone to ring")
    expect(agent.locator("#wrapup-form")).to_be_visible(timeout=10000)
    call_id = agent.locator("#wrapup-call").text_content()
    assert call_id
    agent.select_option("#wrapup-code", "escalated")
    agent.fill("#wrapup-notes", "Bob handles the router")
    agent.click("#btn-wrapup")
    expect(agent.locator("#msg")).to_have_text("Wrap-up saved.", timeout=10000)
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute("SELECT code, notes, customer_id FROM call_dispositions "
                           "WHERE call_id = %s", (call_id,)).fetchone()
    assert row == ("escalated", "Bob handles the router", ids["c_carol"])
    expect(agent_row(sup, "Bob").locator(".badge")).to_have_text("On a call", timeout=10000)
    expect(agent_row(sup, "Alice").locator(".badge")).not_to_have_text("On a call")

    # a ticket from the call, pre-filled with customer and call
    agent.click("#last-call-ticket")
    expect(agent.locator("#ticket-customer")).to_have_text("Carol Customer")
    expect(agent.locator("#ticket-call")).to_have_text(call_id)
    agent.fill("#ticket-subject", "Router reboots every hour")
    agent.fill("#ticket-description", "Escalated to Bob during the call.")
    agent.select_option("#ticket-priority", "high")
    agent.click("#ticket-create")
    expect(agent.locator("#ticket-subject")).to_have_text("Router reboots every hour")
    expect(agent.locator("#ticket-status")).to_have_text("New")
    agent.select_option("#status-select", "open")
    agent.click("#status-change")
    expect(agent.locator("#ticket-status")).to_have_text("Open")
    agent.fill("#comment-body", "Customer will call back tomorrow")
    agent.click("#comment-add")
    expect(agent.locator("#ticket-events")).to_contain_text("Customer will call back tomorrow")
    agent.goto(stack.url + f"/customers/{ids['c_carol']}")
    expect(agent.locator("#timeline")).to_contain_text("Router reboots every hour")
    agent.screenshot(path=str(ARTIFACTS / "customer-timeline.png"), full_page=True)

    stack.hangup_all()
    expect(agent_row(sup, "Bob").locator(".badge")).not_to_have_text("On a call", timeout=10000)
    expect(sup.locator("#chart-volume")).to_be_visible()
    aw.check()
    sw.check()
    for p in (agent, sup):
        p.context.close()


def test_hostile_caller_names_render_as_text(browser: Browser, stack: Stack) -> None:
    agent, aw = open_page(browser, stack, "alice", "/agent")
    sup, sw = open_page(browser, stack, "sue", "/wallboard")
    agent.click("#btn-login")
    expect(agent.locator("#state")).to_have_text("Available", timeout=10000)
    ch = stack.call(caller=(HOSTILE, "5558887777"))
    stack.press(ch, "2")
    expect(agent.locator("#pop")).to_be_visible(timeout=15000)
    expect(agent.locator("#pop-caller-name")).to_have_text(HOSTILE)
    expect(agent.locator("#customer-form")).to_be_visible()
    assert agent.input_value("#cust-name") == HOSTILE
    cell = agent_row(sup, "Alice").locator(".current-call")
    expect(cell).to_contain_text(HOSTILE, timeout=10000)
    # create the customer from the pop: its name is shown as text too
    agent.click("#btn-create-customer")
    expect(agent.locator("#pop-customer-name")).to_have_text(HOSTILE, timeout=10000)
    assert stack.answer("1001")
    expect(agent.locator("#pop-state")).to_have_text("Talking", timeout=10000)
    for page in (agent, sup):
        assert page.locator("main img").count() == 0
        assert page.locator("main script").count() == 0
        assert page.evaluate("() => document.title").endswith("ccd call center")
    agent.screenshot(path=str(ARTIFACTS / "hostile-caller-pop.png"), full_page=True)
    sup.screenshot(path=str(ARTIFACTS / "hostile-caller-wallboard.png"), full_page=True)
    # and the customer's page escapes it
    link = agent.locator("#pop-customer-name").get_attribute("href")
    assert link is not None and link.startswith("/customers/")
    agent.goto(stack.url + link)
    expect(agent.locator("#customer-name")).to_have_text(HOSTILE)
    assert agent.locator("main img").count() == 0
    aw.check()
    sw.check()
    for p in (agent, sup):
        p.context.close()


def test_language_switch_in_the_browser(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser, stack, "bob", "/agent")
    page.select_option("select[name=language]", "zh-CN")
    page.click("header form.inline button:has-text('Apply')")
    expect(page.locator("nav")).to_contain_text("坐席面板")
    expect(page.locator("#state")).to_have_text("未登录", timeout=10000)
    page.select_option("select[name=language]", "en")
    page.click("header form.inline button:has-text('应用')")
    expect(page.locator("nav")).to_contain_text("Agent panel")
    watch.check()
    with contextlib.suppress(Exception):
        page.context.close()
