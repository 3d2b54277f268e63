/* ccd panel helpers. Data from the server (caller names come from SIP trunks: hostile)
   only ever reaches the page through textContent and form values, never innerHTML. */
"use strict";
const CCD = (() => {
  const i18n = JSON.parse(document.getElementById("i18n").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  let skew = 0;  // server time - browser time, seconds

  function t(key) { return Object.prototype.hasOwnProperty.call(i18n, key) ? i18n[key] : key; }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function now() { return Date.now() / 1000 + skew; }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(2, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  function when(epoch) {
    if (!epoch) return "";
    const d = new Date(epoch * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  function message(text, isError) {
    const box = document.getElementById("msg");
    if (!box) return;
    box.textContent = text;
    box.className = isError ? "msg error" : "msg";
    box.hidden = false;
    clearTimeout(message.timer);
    message.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
  }

  async function api(method, url, body) {
    const opts = { method, credentials: "same-origin",
                   headers: { "Accept": "application/json", "X-CSRFToken": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(url, opts);
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { ok: false, error: resp.statusText }; }
    if (!resp.ok || !data.ok) {
      const err = new Error(data.error || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data.result;
  }

  /* A command: the page changes only when Asterisk's events confirm it. */
  async function command(url, body) {
    try {
      const r = await api("POST", url, body || {});
      message(r && r.confirmed === false ? t("waiting_confirmation") : t("done"), false);
      return r;
    } catch (e) {
      message(e.message, true);
      return null;
    }
  }

  function connect(handlers) {
    const conn = document.getElementById("conn");
    const socket = io({ transports: ["websocket", "polling"] });
    let beat = null;
    socket.on("connect", () => {
      if (conn) { conn.textContent = t("connected"); conn.className = "conn"; }
    });
    socket.on("disconnect", () => {
      if (conn) { conn.textContent = t("disconnected"); conn.className = "conn off"; }
    });
    socket.on("hello", (h) => {
      skew = h.t - Date.now() / 1000;
      clearInterval(beat);
      beat = setInterval(() => socket.emit("heartbeat", {}), (h.heartbeat || 5) * 1000);
    });
    socket.on("pbx", (p) => { if (p.what === "link_lost") message(t("pbx_down"), true); });
    for (const [name, fn] of Object.entries(handlers)) socket.on(name, fn);
    return socket;
  }

  return { t, el, clear, now, duration, when, message, api, command, connect };
})();
