/* Agent panel: own state, screen pop, call controls, wrap-up, click-to-dial. */
"use strict";
(() => {
  const { t, el, clear, now, duration, when, message, api, command, connect } = CCD;
  const $ = (id) => document.getElementById(id);
  if (!$("state")) return;  // user without a phone

  const S = { me: null, agent: null, calls: new Map(), current: null, wrap: null };

  function stateBadge(node, state) {
    node.textContent = t("state_" + state);
    node.className = "badge s-" + state;
  }

  function renderState(a) {
    S.agent = a;
    stateBadge($("state"), a.state);
    $("reason").textContent = a.state === "paused" || a.paused ? (a.reason || "") : "";
    const loggedIn = a.state !== "logged_out";
    $("btn-login").disabled = loggedIn;
    $("btn-logout").disabled = !loggedIn;
    $("btn-available").disabled = !loggedIn || !a.paused;
    $("btn-pause").disabled = !loggedIn || (a.paused && a.state === "paused");
    tick();
  }

  function tick() {
    const a = S.agent;
    $("since").textContent = a && a.since ? duration(now() - a.since) : "";
    const c = S.current && S.calls.get(S.current);
    if (c && c.state === "ringing") $("pop-wait").textContent = duration(c.wait + (now() - c.ts));
  }

  function callBadge(state) {
    const node = $("pop-state");
    node.textContent = t("call_state_" + state);
    node.className = "badge c-" + state;
  }

  function renderPop() {
    const c = S.current && S.calls.get(S.current);
    $("pop").hidden = !c;
    $("no-call").hidden = !!c || !$("wrapup-form").hidden;
    if (!c) return;
    callBadge(c.state);
    $("pop-caller-name").textContent = c.caller_name || "";
    $("pop-caller-num").textContent = c.caller_num || "";
    $("pop-vip").hidden = !(c.vip || (c.customer && c.customer.vip));
    const camp = c.campaign;  // a campaign call: the contact is the customer
    $("pop-campaign-label").hidden = $("pop-campaign").hidden = !camp;
    $("pop-campaign").textContent = camp ? camp.name + " · #" + camp.attempt_no : "";
    $("pop-queue").textContent = c.queue || t("none");
    $("pop-wait").textContent = duration(c.wait);
    $("pop-did").textContent = c.did || "";
    $("pop-ivr").textContent = c.ivr_path || t("none");
    $("pop-digits").textContent = (c.digits || []).join(" ") || t("none");
    $("pop-rec").textContent = c.recording === false ? t("none")
      : c.muted ? t("recording_muted") : c.recording ? t("recording") : "";
    const live = c.state === "talking" || c.state === "on_hold";
    for (const b of document.querySelectorAll("#call-controls button, #btn-transfer")) {
      b.disabled = !live;
    }
    $("btn-hangup").disabled = c.state === "ended";
    $("btn-hold").disabled = c.state !== "talking";
    $("btn-unhold").disabled = c.state !== "on_hold";
    renderCustomer(c);
    const params = new URLSearchParams({ call_id: c.call_id });
    if (c.customer) params.set("customer_id", String(c.customer.id));
    $("pop-new-ticket").setAttribute("href", "/tickets/new?" + params.toString());
  }

  function renderCustomer(c) {
    const box = $("pop-customer");
    clear(box);
    const form = $("customer-form");
    if (c.customer) {
      form.hidden = true;
      const cu = c.customer;
      const head = el("p");
      const link = el("a", { href: "/customers/" + encodeURIComponent(cu.id), id: "pop-customer-name" },
                      cu.name);
      head.appendChild(link);
      if (cu.vip) head.appendChild(el("span", { class: "vip" }, " " + t("vip")));
      box.appendChild(head);
      const dl = el("dl", { class: "facts" });
      for (const [k, v] of [["account_no", cu.account_no], ["phone", (cu.phones || []).join(", ")],
                            ["notes", cu.notes]]) {
        if (!v) continue;
        dl.appendChild(el("dt", {}, t(k)));
        dl.appendChild(el("dd", {}, v));
      }
      box.appendChild(dl);
    } else {
      if (c.customer_error) box.appendChild(el("p", { class: "error" }, c.customer_error));
      if (form.hidden || form.dataset.call !== c.call_id) {
        form.dataset.call = c.call_id;
        $("cust-name").value = c.caller_name || "";
        $("cust-phone").value = c.e164 || c.caller_num || "";
        $("cust-account").value = "";
        $("cust-notes").value = "";
      }
      form.hidden = false;
    }
    const calls = $("pop-calls");
    clear(calls);
    for (const r of c.recent_calls || []) {
      const parts = [when(r.started_at), r.direction, r.outcome, r.queue, r.agent_name, r.wrapup];
      calls.appendChild(el("li", {}, parts.filter(Boolean).join(" · ")));
    }
    if (!calls.firstChild) calls.appendChild(el("li", { class: "muted" }, t("none")));
    const tickets = $("pop-tickets");
    clear(tickets);
    for (const tk of c.open_tickets || []) {
      const li = el("li");
      li.appendChild(el("a", { href: "/tickets/" + encodeURIComponent(tk.id) }, "#" + tk.id + " " + tk.subject));
      li.appendChild(el("span", { class: "badge st-" + tk.status }, " " + t("status_" + tk.status)));
      tickets.appendChild(li);
    }
    if (!tickets.firstChild) tickets.appendChild(el("li", { class: "muted" }, t("none")));
  }

  function showWrapup(c) {
    S.wrap = c.call_id;
    S.wrapCustomer = c.customer ? c.customer.id : null;
    $("wrapup-call").textContent = c.call_id;
    const params = new URLSearchParams({ call_id: c.call_id });
    if (c.customer) params.set("customer_id", String(c.customer.id));
    $("last-call-id").textContent = c.call_id;
    $("last-call-ticket").setAttribute("href", "/tickets/new?" + params.toString());
    $("last-call").hidden = false;
    $("wrapup-notes").value = "";
    $("wrapup-form").hidden = false;
    $("no-call").hidden = true;
  }

  function onPop(p) {
    $("last-call").hidden = true;
    const old = S.calls.get(p.call_id) || {};
    const c = Object.assign({ state: "ringing", recording: null, muted: false }, old, p);
    if (old.state && old.state !== "ringing") c.state = old.state;
    S.calls.set(p.call_id, c);
    S.current = p.call_id;
    renderPop();
  }

  function onCall(ev) {
    const c = S.calls.get(ev.call_id);
    if (!c) return;
    const mine = S.me && ev.agent === S.me.user.agent;
    switch (ev.kind) {
      case "answered":
      case "agent_connected":
        if (mine) { c.state = ev.state === "on_hold" ? "on_hold" : "talking"; c.mine = true; }
        else if (c.state === "ringing") { S.calls.delete(ev.call_id); }
        if (ev.recording !== undefined) c.recording = ev.recording;
        break;
      case "ring_no_answer":
        if (mine && c.state === "ringing") S.calls.delete(ev.call_id);
        break;
      case "held": c.state = "on_hold"; break;
      case "unheld": c.state = "talking"; break;
      case "recording_started": c.recording = true; break;
      case "recording_stopped": c.recording = false; break;
      case "recording_muted": c.muted = !!ev.muted; break;
      case "transferred":
        if (ev.from_agent === S.me.user.agent) message(t("transferred") + " → " + ev.target, false);
        break;
      case "call_ended":
        S.calls.delete(ev.call_id);
        if (c.mine) showWrapup(c);
        break;
      default: break;
    }
    if (!S.calls.has(S.current)) S.current = [...S.calls.keys()].pop() || null;
    renderPop();
  }

  function onAgentState(a) {
    if (!S.me || a.agent !== S.me.user.agent) return;
    renderState(a);
    // our leg of the call is over (hung up, transferred away): wrap up now
    const c = S.current && S.calls.get(S.current);
    if (c && c.mine && c.state !== "ringing"
        && !["on_call", "on_hold", "ringing"].includes(a.state)) {
      S.calls.delete(c.call_id);
      showWrapup(c);
      S.current = [...S.calls.keys()].pop() || null;
      renderPop();
    }
  }

  function renderQueues(rows) {
    const body = $("queues").tBodies[0];
    clear(body);
    for (const q of rows) {
      const tr = el("tr");
      for (const v of [q.queue, q.waiting, duration(q.longest_wait), q.available,
                       q.sl_today === null || q.sl_today === undefined ? "" : q.sl_today + "%"]) {
        tr.appendChild(el("td", {}, v));
      }
      body.appendChild(tr);
    }
  }

  function fillSelect(select, items, value, label) {
    clear(select);
    for (const it of items) select.appendChild(el("option", { value: value(it) }, label(it)));
  }

  // ------------------------------------------------------------------ commands

  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => {
      const body = b.dataset.action === "pause" ? { reason: $("pause-reason").value } : {};
      command("/api/agent/" + b.dataset.action, body);
    });
  }
  for (const b of document.querySelectorAll("[data-call]")) {
    b.addEventListener("click", () => {
      if (!S.current) return;
      const body = b.dataset.what ? { what: b.dataset.what } : {};
      command("/api/calls/" + encodeURIComponent(S.current) + "/" + b.dataset.call, body);
    });
  }
  $("transfer-kind").addEventListener("change", () => {
    const k = $("transfer-kind").value;
    $("transfer-agent").hidden = k !== "agent";
    $("transfer-queue").hidden = k !== "queue";
    $("transfer-number").hidden = k !== "number";
  });
  $("transfer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!S.current) return;
    const kind = $("transfer-kind").value;
    const target = kind === "agent" ? $("transfer-agent").value
      : kind === "queue" ? $("transfer-queue").value : $("transfer-number").value;
    command("/api/calls/" + encodeURIComponent(S.current) + "/transfer",
            { kind, target, attended: $("transfer-attended").checked });
  });
  $("dial-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    command("/api/dial", { number: $("dial-number").value });
  });
  $("customer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const c = S.current && S.calls.get(S.current);
    try {
      const r = await api("POST", "/api/customers", {
        name: $("cust-name").value, phone: $("cust-phone").value,
        account_no: $("cust-account").value, notes: $("cust-notes").value,
        call_id: c ? c.call_id : "" });
      const bundle = r.customer;
      if (c) Object.assign(c, { customer: bundle.customer, recent_calls: bundle.recent_calls,
                                open_tickets: bundle.open_tickets });
      message(t("done"), false);
      renderPop();
    } catch (e) { message(e.message, true); }
  });
  $("wrapup-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!S.wrap) return;
    try {
      await api("POST", "/api/calls/" + encodeURIComponent(S.wrap) + "/wrapup",
                { code: $("wrapup-code").value, notes: $("wrapup-notes").value,
                  customer_id: S.wrapCustomer || null });
      $("wrapup-form").hidden = true;
      S.wrap = null;
      message(t("wrapup_saved"), false);
      renderPop();
    } catch (e) { message(e.message, true); }
  });

  // ------------------------------------------------------------------ preview dialling

  const P = { contact: null };

  async function loadPreview() {
    let rows = [];
    try { rows = await api("GET", "/api/preview"); } catch (e) { return; }
    const sel = $("preview-campaign");
    clear(sel);
    for (const r of rows) sel.appendChild(el("option", { value: r.name }, r.name + " (" + r.queue + ")"));
    $("preview-card").hidden = rows.length === 0;
  }

  function showContact(c) {
    P.contact = c;
    $("preview-contact").hidden = !c;
    if (!c) return;
    $("preview-name").textContent = c.name || "";
    $("preview-number").textContent = c.e164;
    const data = $("preview-data");
    clear(data);
    for (const [k, v] of Object.entries(c.data || {})) {
      data.appendChild(el("dt", {}, k));
      data.appendChild(el("dd", {}, v));
    }
    const hist = $("preview-history");
    clear(hist);
    for (const h of c.history || []) {
      hist.appendChild(el("li", {}, [h.created_at, h.outcome, h.disposition || ""].join(" · ")));
    }
  }

  $("preview-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("preview-campaign").value;
    if (!name) return;
    try {
      const r = await api("POST", "/api/preview/" + encodeURIComponent(name) + "/next", {});
      showContact(r.contact);
      if (!r.contact) message(t("preview_none"), false);
    } catch (e) { message(e.message, true); }
  });
  for (const [btn, action] of [["btn-preview-dial", "dial"], ["btn-preview-skip", "skip"]]) {
    $(btn).addEventListener("click", async () => {
      if (!P.contact) return;
      const name = $("preview-campaign").value;
      const r = await command("/api/preview/" + encodeURIComponent(name) + "/" + action,
                              { contact_id: P.contact.id });
      if (r) showContact(null);
    });
  }

  // ------------------------------------------------------------------ start

  async function init() {
    try {
      S.me = await api("GET", "/api/me");
    } catch (e) { message(e.message, true); return; }
    const reasons = Object.entries(S.me.pause_reasons || {}).filter(([code]) => code !== "connection-lost");
    fillSelect($("pause-reason"), reasons, (r) => r[0], (r) => r[1]);
    const zh = S.me.user.language === "zh-CN";
    fillSelect($("wrapup-code"), S.me.dispositions, (d) => d.code, (d) => (zh && d.label_zh) || d.label);
    fillSelect($("transfer-agent"), S.me.agents, (a) => String(a.id),
               (a) => a.name + (a.extension ? " (" + a.extension + ")" : ""));
    fillSelect($("transfer-queue"), S.me.queues, (q) => String(q.id), (q) => q.display_name || q.name);
    if (S.me.agent) renderState(Object.assign({ agent: S.me.user.agent }, S.me.agent));
    connect({ agent_state: onAgentState, pop: onPop, call: onCall, queues: renderQueues });
    setInterval(tick, 1000);
    loadPreview();
    setInterval(loadPreview, 30000);
  }

  init();
})();
