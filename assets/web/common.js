// Shared by the QA and support pages: the staff credential (sessionStorage), API calls, formatting.
"use strict";
const TZ = {
  key: null,
  token() { return sessionStorage.getItem(this.key) || ""; },
  setToken(t) { t ? sessionStorage.setItem(this.key, t) : sessionStorage.removeItem(this.key); },
  headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = this.token();
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  },
  async api(path, opts) {
    opts = opts || {};
    const res = await fetch(path, { method: opts.method || "GET", body: opts.body, headers: this.headers(opts.headers) });
    return res;
  },
  async problem(res) {
    // RFC 9457 problem details, as one line a person can read.
    let text = res.status + " " + res.statusText;
    try {
      const p = await res.json();
      text = (p.title || text) + (p.detail && p.detail !== p.title ? ": " + p.detail : "") + (p.code ? " [" + p.code + "]" : "");
    } catch (e) { /* not JSON */ }
    return text;
  },
  async json(path, opts) {
    const res = await this.api(path, opts);
    if (!res.ok) { const err = new Error(await this.problem(res)); err.status = res.status; throw err; }
    return res.status === 204 ? null : res.json();
  },
  n(x) { return x == null ? "–" : Number(x).toLocaleString("en-US"); },
  when(iso) { if (!iso) return "–"; const d = new Date(iso); return d.toLocaleString(); },
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  },
  uuid() { return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()); },
  show(id, on) { document.getElementById(id).hidden = !on; },
  say(id, text, bad) { const e = document.getElementById(id); e.textContent = text || ""; e.classList.toggle("bad", !!bad); },
};
