/* Supervisor wallboard: live queues and agents by push, today's charts, listen / whisper /
   barge, force pause or logout. Everything from the server is written with textContent. */
"use strict";
(() => {
  const { t, el, clear, now, duration, message, api, command, connect } = CCD;
  const $ = (id) => document.getElementById(id);
  const agents = new Map();  // agent id -> row data
  let charts = null;

  function fmtCall(call) {
    if (!call) return "";
    return [call.caller_name, call.caller_num, call.queue].filter(Boolean).join(" · ");
  }

  function renderQueues(rows) {
    const body = $("wb-queues").tBodies[0];
    clear(body);
    for (const q of rows) {
      const tr = el("tr", { dataset: { queue: q.queue } });
      const sl = q.sl_today === null || q.sl_today === undefined ? "" : q.sl_today + "%";
      for (const v of [q.queue, q.waiting, duration(q.longest_wait), sl, q.offered_today,
                       q.answered_today, q.abandoned_today, q.available, q.busy, q.paused,
                       q.logged_in]) {
        tr.appendChild(el("td", {}, v));
      }
      body.appendChild(tr);
    }
  }

  function actionButton(label, onClick) {
    const b = el("button", { type: "button" }, label);
    b.addEventListener("click", onClick);
    return b;
  }

  function renderAgents() {
    const body = $("wb-agents").tBodies[0];
    clear(body);
    const rows = [...agents.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const a of rows) {
      const tr = el("tr", { dataset: { agentId: String(a.id) } });
      tr.appendChild(el("td", { class: "agent-name" }, a.name));
      tr.appendChild(el("td", {}, a.extension || ""));
      const st = el("td");
      st.appendChild(el("span", { class: "badge s-" + a.state }, t("state_" + a.state)));
      tr.appendChild(st);
      tr.appendChild(el("td", {}, a.paused || a.state === "paused" ? (a.reason || "") : ""));
      tr.appendChild(el("td", { class: "in-state" }, a.since ? duration(now() - a.since) : ""));
      tr.appendChild(el("td", { class: "current-call" }, fmtCall(a.call)));
      const act = el("td", { class: "actions" });
      const path = "/api/agents/" + encodeURIComponent(a.id) + "/";
      const onCall = a.state === "on_call" || a.state === "on_hold";
      for (const mode of ["listen", "whisper", "barge"]) {
        const b = actionButton(t(mode), () => command(path + "spy", { mode }));
        b.disabled = !onCall;
        act.appendChild(b);
      }
      const loggedIn = a.state !== "logged_out";
      const p = actionButton(t("force_pause"), () => command(path + "pause", { reason: $("force-reason").value }));
      p.disabled = !loggedIn || a.paused;
      act.appendChild(p);
      const lo = actionButton(t("force_logout"), () => command(path + "logout"));
      lo.disabled = !loggedIn;
      act.appendChild(lo);
      tr.appendChild(act);
      body.appendChild(tr);
    }
  }

  function tick() {
    for (const tr of $("wb-agents").tBodies[0].rows) {
      const a = agents.get(Number(tr.dataset.agentId));
      if (a && a.since) tr.querySelector(".in-state").textContent = duration(now() - a.since);
    }
  }

  function onAgentState(s) {
    const a = agents.get(s.agent_id) || { id: s.agent_id, name: s.name, extension: "", agent: s.agent };
    Object.assign(a, { state: s.state, reason: s.reason, since: s.since, paused: s.paused,
                       call_id: s.call_id, call: s.call });
    agents.set(s.agent_id, a);
    renderAgents();
  }

  function onCall(ev) {
    let changed = false;
    for (const a of agents.values()) {
      if (a.call_id !== ev.call_id && !(ev.agents || []).includes(a.agent)) continue;
      if (ev.kind === "call_ended") {
        if (a.call && a.call.call_id === ev.call_id) { a.call = null; changed = true; }
      } else if (a.call_id === ev.call_id) {
        a.call = { call_id: ev.call_id, caller_num: ev.caller_num, caller_name: ev.caller_name,
                   queue: ev.queue, state: ev.state };
        changed = true;
      }
    }
    if (changed) renderAgents();
  }

  function label(start) {
    const d = new Date(start * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function renderStats(stats) {
    if (typeof Chart === "undefined") return;
    const iv = (stats && stats.intervals) || [];
    const labels = iv.map((r) => label(r.start));
    const volume = [["offered", "#1f6feb"], ["answered", "#1a7f37"], ["abandoned", "#c62828"]]
      .map(([k, color]) => ({ label: t(k), data: iv.map((r) => r[k]), backgroundColor: color }));
    const sl = [{ label: t("chart_sl"), data: iv.map((r) => r.service_level), borderColor: "#6f42c1",
                  backgroundColor: "#6f42c1", spanGaps: true }];
    if (!charts) {
      const opts = { animation: false, responsive: true, plugins: { legend: { position: "bottom" } } };
      charts = {
        volume: new Chart($("chart-volume"), { type: "bar", data: { labels, datasets: volume },
                                               options: opts }),
        sl: new Chart($("chart-sl"), { type: "line", data: { labels, datasets: sl },
                                       options: Object.assign({}, opts, { scales: { y: { min: 0, max: 100 } } }) }),
      };
      return;
    }
    charts.volume.data.labels = labels;
    charts.volume.data.datasets.forEach((ds, i) => { ds.data = volume[i].data; });
    charts.volume.update();
    charts.sl.data.labels = labels;
    charts.sl.data.datasets[0].data = sl[0].data;
    charts.sl.update();
  }

  function renderCampaigns(rows) {
    const card = $("campaigns-card");
    if (!card) return;
    card.hidden = !rows || rows.length === 0;
    const body = $("wb-campaigns").querySelector("tbody");
    clear(body);
    for (const c of rows || []) {
      const left = (c.contacts.pending || 0) + (c.contacts.preview || 0);
      const ab = c.abandonment || {};
      const rate = ab.campaign_pct === undefined ? ""
        : `${ab.campaign_pct}% · ${ab.window_pct}% (${ab.limit_pct}%)`;
      const tr = el("tr");
      for (const v of [c.name, c.mode, c.state, c.queue, left, (c.in_flight || {}).ringing || 0, rate]) {
        tr.appendChild(el("td", {}, v));
      }
      body.appendChild(tr);
    }
  }

  async function refreshCampaigns() {
    try { renderCampaigns(await api("GET", "/api/campaigns")); } catch (e) { /* next time */ }
  }

  async function init() {
    let wb;
    try {
      wb = await api("GET", "/api/wallboard");
    } catch (e) { message(e.message, true); return; }
    const reasons = $("force-reason");
    for (const [code, lbl] of Object.entries(wb.pause_reasons || {})) {
      reasons.appendChild(el("option", { value: code }, lbl));
    }
    for (const a of wb.agents) {
      if (a.id === null || a.id === undefined) continue;
      agents.set(a.id, { id: a.id, name: a.name, extension: a.extension, agent: a.agent,
                         state: a.state, reason: a.reason, paused: a.paused,
                         since: a.since, call_id: a.call_id, call: a.call });
    }
    renderQueues(wb.queues);
    renderAgents();
    renderStats(wb.stats);
    renderCampaigns(wb.campaigns);
    setInterval(refreshCampaigns, 5000);
    connect({ queues: renderQueues, agent_state: onAgentState, call: onCall, stats: renderStats });
    setInterval(tick, 1000);
  }
  init();
})();
