// The M3s status page: polls the daemon's own API every 2 s and draws what
// it says. Same origin only; every value goes in through textContent, never
// as HTML.
"use strict";

const ROLES = ["datastore", "server", "agent"];
const PERIOD_MS = 2000;
const MAX_EVENTS = 100;
let lastSeq = 0;
let events = [];
let serverSkew = 0;   // server clock - local clock, ms

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function setBadge(node, text, kind) {
  node.textContent = text;
  node.className = "badge " + (kind || "");
}

// RFC 3339 with up to nanoseconds -> ms since the epoch, or NaN.
function parseTime(s) {
  if (!s || s.startsWith("0001-")) return NaN;
  return Date.parse(s.replace(/(\.\d{3})\d+/, "$1"));
}

function age(ms) {
  if (!isFinite(ms) || ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + Math.floor(s / 3600) % 24 + "h";
}

async function getJSON(path) {
  // location.origin: a page opened as http://user:pass@host/ would make a
  // relative URL carry the credentials, which fetch() refuses; the browser
  // sends the ones it authenticated the page with by itself.
  const r = await fetch(location.origin + path, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) {
    let msg = "HTTP " + r.status;
    try { const j = await r.json(); if (j.error) msg += ": " + j.error; } catch (e) { /* not JSON */ }
    throw new Error(path + ": " + msg);
  }
  return r.json();
}

function drawRole(name, r, now) {
  const box = el("div", { class: "role", "data-role": name });
  if (!r) {
    box.append(el("h3", {}, name), el("div", { class: "err" }, "the " + name + " role did not answer"));
    return box;
  }
  const health = el("span", { class: "badge " + (r.healthy ? "ok" : r.desired ? "warn" : ""),
                              "data-healthy": String(r.healthy) },
                    r.healthy ? "healthy" : r.desired ? "not healthy" : "scaled to 0");
  box.append(el("h3", {}, name, health));
  box.append(el("div", { class: "counts" },
    "running ", el("b", { id: name + "-running" }, r.running),
    " / desired ", el("b", { id: name + "-desired" }, r.desired),
    " (tasks ", el("span", { id: name + "-live" }, r.live), ")"));
  const notes = [];
  if (!r.upstream_healthy && name !== "datastore") notes.push("waits for its upstream role");
  if (r.backoff_ms > 0) notes.push("restart backoff " + Math.ceil(r.backoff_ms / 1000) + "s");
  if (r.outdated > 0) notes.push(r.outdated + " outdated (launched with an older configuration)");
  if (r.spec_unknown > 0) notes.push(r.spec_unknown + " with an unknown spec");
  if (r.replaced_node_not_ready > 0)
    notes.push(r.replaced_node_not_ready + " replaced after their node stayed NotReady (K3S_NODE_TIMEOUT)");
  if (notes.length) box.append(el("div", { class: "dim small" }, notes.join("; ")));
  const ids = Object.keys(r.tasks || {});
  if (!ids.length) {
    box.append(el("div", { class: "empty small" }, "no tasks"));
    return box;
  }
  const body = el("tbody");
  for (const id of ids) {
    const t = r.tasks[id];
    const state = t.state || "(none)";
    body.append(el("tr", { "data-task": id, "data-state": state, "data-host": t.host || "",
                           "data-outdated": String(t.outdated) },
      el("td", { class: "id", title: id }, id.length > 9 ? id.slice(0, 8) + "\u2026" : id),
      el("td", { class: "st-" + state }, state.replace(/^TASK_/, "")),
      el("td", { class: "host" }, t.host || "-"),
      el("td", { class: "age" }, age(now - parseTime(t.since))),
      el("td", {}, t.phase || ""),
      el("td", t.node_unready_since ? { title: "node " + (t.node || "missing") + " not Ready since " + t.node_unready_since } : {},
         (t.healthy === null || t.healthy === undefined ? "-" : t.healthy ? "yes" : "no") +
         (t.node_unready_since ? " (node not Ready " + age(now - parseTime(t.node_unready_since)) + ")" : "")),
      el("td", { class: t.outdated ? "outdated" : "" },
         t.outdated === null || t.outdated === undefined ? "-" : t.outdated ? "outdated" : "current")));
  }
  box.append(el("table", {},
    el("thead", {}, el("tr", {}, ...["task", "state", "host", "age", "phase", "healthy", "spec"].map(h => el("th", {}, h)))),
    body));
  return box;
}

function drawStatus(s) {
  serverSkew = (s.time_ms || Date.now()) - Date.now();
  const now = Date.now() + serverSkew;
  document.getElementById("version").textContent = s.version ? "v" + s.version : "";
  const overall = document.getElementById("overall");
  setBadge(overall, s.status, s.status === "ok" ? "ok" : "bad");
  overall.dataset.status = s.status;
  const mesos = document.getElementById("mesos");
  setBadge(mesos, s.mesos, s.mesos === "subscribed" ? "ok" : "bad");
  mesos.dataset.state = s.mesos;
  document.getElementById("framework").textContent = s.framework_id || "";
  const redis = document.getElementById("redis");
  setBadge(redis, s.redis ? "connected" : "not connected", s.redis ? "ok" : "bad");
  redis.dataset.connected = String(s.redis);
  document.getElementById("redis-queue").textContent =
    s.redis_queued === null || s.redis_queued === undefined ? "" : s.redis_queued + " write(s) queued";
  const o = s.offers;
  document.getElementById("offers").textContent = !o ? "no answer" :
    o.pending + " task(s) waiting for offers" + (o.suppressed ? ", suppressed" : "") +
    (o.cluster_operation ? ", " + o.cluster_operation + " running" : "") +
    (o.agents_cordoned ? ", agents cordoned" : "");
  const problems = document.getElementById("problems");
  problems.replaceChildren(...(s.problems || []).map(p => el("li", {}, p)));
  const plan = document.getElementById("plan");
  const parts = [];
  ROLES.forEach((name, i) => {
    if (i) parts.push(el("div", { class: "arrow" }, "\u2192"));
    parts.push(drawRole(name, s.roles ? s.roles[name] : null, now));
  });
  plan.replaceChildren(...parts);
  drawRollout(s.plan);
  drawKubernetes(s.kubernetes);
}

function shortId(id) {
  return !id ? "-" : id.length > 9 ? id.slice(0, 8) + "\u2026" : id;
}

// The rollout plan (GET /api/m3s/v0/plan's shape), live.
function drawRollout(p) {
  const state = document.getElementById("rollout-state");
  const info = document.getElementById("rollout-info");
  const table = document.getElementById("rollout-table");
  if (!p) {
    setBadge(state, "none", "");
    state.dataset.status = "";
    info.textContent = "No rollout plan yet.";
    table.hidden = true;
    return;
  }
  const kind = { COMPLETE: "ok", FAILED: "bad", IN_PROGRESS: "warn", PAUSED: "warn" }[p.status] || "";
  setBadge(state, p.status + (p.aborting ? " (aborting)" : ""), kind);
  state.dataset.status = p.status;
  info.textContent = "plan " + p.id + ", started " + p.created +
    (p.finished ? ", ended " + p.finished : "") + (p.reason ? ": " + p.reason : "");
  const rows = [];
  for (const ph of p.phases || []) {
    for (const st of ph.steps || []) {
      rows.push(el("tr", { "data-step": st.name, "data-status": st.status },
        el("td", {}, ph.name), el("td", {}, st.name),
        el("td", { class: "st-" + st.status }, st.status), el("td", {}, st.stage || ""),
        el("td", { class: "id", title: st.old_task }, shortId(st.old_task)),
        el("td", { class: "id", title: st.new_task || "" }, shortId(st.new_task)),
        el("td", { class: "dim" }, st.reason || "")));
    }
  }
  document.getElementById("rollout").replaceChildren(...rows);
  table.hidden = rows.length === 0;
}

function drawKubernetes(k) {
  const state = document.getElementById("k8s-state");
  const api = document.getElementById("k8s-api");
  if (!k) {
    setBadge(state, "no answer", "bad");
    state.dataset.k3s = "unknown";
    api.textContent = "";
    document.getElementById("nodes").replaceChildren();
    return;
  }
  setBadge(state, k.k3s === "ready" ? "server node Ready" : "waiting", k.k3s === "ready" ? "ok" : "warn");
  state.dataset.k3s = k.k3s;
  state.title = k.k3s;
  document.getElementById("k8s-simulated").hidden = !k.simulated;
  api.textContent = (k.connected ? "API " + k.api : "not connected") +
    (k.k3s === "ready" ? "" : "; agents wait: " + k.k3s);
  const rows = Object.keys(k.nodes || {}).sort().map(name => {
    const n = k.nodes[name];
    return el("tr", { "data-node": name, "data-ready": String(n.ready) },
      el("td", {}, name), el("td", {}, n.role),
      el("td", { class: n.ready ? "ready-yes" : "ready-no" }, n.ready ? "Ready" : "NotReady"),
      el("td", { class: "id", title: n.task_id }, n.task_id.length > 9 ? n.task_id.slice(0, 8) + "\u2026" : n.task_id || "-"),
      el("td", {}, n.version), el("td", { class: "dim" }, n.os_image));
  });
  document.getElementById("nodes").replaceChildren(...rows);
}

function drawEvents(e) {
  if (e.events && e.events.length) {
    events = events.concat(e.events).slice(-MAX_EVENTS);
    lastSeq = e.last;
  }
  const rows = events.slice().reverse().map(ev =>
    el("tr", { "data-seq": ev.seq, class: "lv-" + ev.level },
      el("td", {}, new Date(ev.time_ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")),
      el("td", {}, ev.level), el("td", {}, ev.actor), el("td", {}, ev.text)));
  document.getElementById("events").replaceChildren(...rows);
}

async function refresh() {
  const err = document.getElementById("fetch-error");
  try {
    const [s, e] = await Promise.all([getJSON("/api/m3s/v0/status"),
                                      getJSON("/api/m3s/v0/events?after=" + lastSeq)]);
    drawStatus(s);
    drawEvents(e);
    err.textContent = "";
    const up = document.getElementById("updated");
    up.textContent = new Date().toLocaleTimeString();
    up.dataset.ok = "1";
  } catch (x) {
    err.textContent = String(x.message || x);
    const overall = document.getElementById("overall");
    setBadge(overall, "unreachable", "bad");
    overall.dataset.status = "unreachable";
  }
  setTimeout(refresh, PERIOD_MS);
}

refresh();
