// lifelongrec dashboard: reads the service's JSON APIs and draws tables and SVG charts.
// No framework, nothing loaded from elsewhere. Reads carry the login cookie; changes
// (promote, roll back) send the write key typed into the page as X-API-Key.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ elements
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function put(id, ...nodes) {
    const target = typeof id === "string" ? $(id) : id;
    if (target) target.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
  }

  // ------------------------------------------------------------------- formats
  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    const d = digits === undefined ? (Number.isInteger(v) ? 0 : 3) : digits;
    return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  // any JSON value as text: numbers formatted, lists bracketed, nothing as a dash
  function plain(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return num(v);
    if (Array.isArray(v)) return "[" + v.map(plain).join(", ") + "]";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  const ms = (v) => (v === null || v === undefined ? "–" : num(v, v < 10 ? 2 : 1) + " ms");
  const pct = (v) => (v === null || v === undefined ? "–" : num(100 * v, 2) + " %");
  function when(t) {
    if (t === null || t === undefined) return "–";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    if (Number.isNaN(d.getTime())) return String(t);
    return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 120) return num(s, 0) + " s";
    if (s < 7200) return num(s / 60, 1) + " min";
    return num(s / 3600, 1) + " h";
  }
  const badge = (text) => el("span", { class: "badge " + String(text).toLowerCase(), text });
  const kv = (pairs) =>
    el("dl", { class: "kv" }, pairs.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  const tile = (label, value, sub, id) =>
    el("div", { class: "tile", "data-figure": id }, el("div", { class: "label", text: label }),
      el("div", { class: "value", text: value }), sub ? el("div", { class: "sub", text: sub }) : null);

  // columns: [{key, label, num, fmt(value, row) -> text or Node}]
  function table(columns, rows, empty) {
    if (!rows || rows.length === 0) return el("div", { class: "empty", text: empty || "None yet." });
    const cls = (c) => [c.num ? "num" : "", c.fmt === when ? "nowrap" : ""].join(" ").trim() || null;
    const head = el("tr", {}, columns.map((c) => el("th", { class: cls(c), text: c.label })));
    const body = rows.map((r) =>
      el("tr", {}, columns.map((c) => {
        const v = c.fmt ? c.fmt(r[c.key], r) : r[c.key];
        const cell = el("td", { class: cls(c) });
        cell.append(v instanceof Node ? v : document.createTextNode(plain(v)));
        return cell;
      })));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
  }

  // --------------------------------------------------------------------- chart
  function ticks(lo, hi, n) {
    if (hi <= lo) hi = lo + 1;
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }
  function clock(t, span) {
    const d = new Date(t * 1000).toISOString();
    return span > 2 * 86400 ? d.slice(5, 10) + " " + d.slice(11, 16) : span > 600 ? d.slice(11, 16) : d.slice(11, 19);
  }

  // series: [{name, points: [[x, y], ...]}]; x: epoch seconds. Draws axes with ticks and
  // labels, a grid, one line per series and a legend.
  function lineChart(target, series, opts) {
    const W = opts.width || 560, H = 230, L = 58, R = 34, T = 24, B = 40;
    const pts = series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[1] !== undefined);
    const box = typeof target === "string" ? $(target) : target;
    if (!box) return;
    if (pts.length === 0) {
      put(box, el("div", { class: "empty", text: opts.empty || "No data yet." }));
      return;
    }
    let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
    if (x1 === x0) { const pad = opts.pad || 30; x0 -= pad; x1 += pad; }
    let y1 = Math.max(...pts.map((p) => p[1]));
    const y0 = Math.min(0, ...pts.map((p) => p[1]));
    if (y1 <= y0) y1 = y0 + 1;
    const yt = ticks(y0, y1, 4);
    y1 = Math.max(y1, yt[yt.length - 1]);
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.title });
    root.append(svg("text", { x: L, y: 14, class: "title" }, opts.title));
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (const v of yt) {
      grid.append(svg("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
      root.append(svg("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, num(v, Math.abs(y1 - y0) < 5 ? 2 : 0)));
    }
    const span = x1 - x0;
    const xt = [0, 1, 2, 3, 4].map((i) => x0 + (i * span) / 4);
    let last = null;
    for (const v of xt) {
      const label = clock(v, span);
      if (label === last) continue;  // a short span: fewer ticks than labels
      last = label;
      axis.append(svg("line", { x1: sx(v), x2: sx(v), y1: H - B, y2: H - B + 4 }));
      root.append(svg("text", { x: sx(v), y: H - B + 16, "text-anchor": "middle" }, label));
    }
    axis.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }));
    axis.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B }));
    root.append(grid, axis);
    root.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, opts.xLabel || "time (UTC)"));
    root.append(svg("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(T + H - B) / 2})` }, opts.yLabel));
    series.forEach((s, i) => {
      const p = s.points.filter((q) => q[1] !== null && q[1] !== undefined);
      if (!p.length) return;
      const cls = "c" + (i % 8);
      root.append(svg("polyline", { class: "line " + cls, points: p.map((q) => `${sx(q[0]).toFixed(1)},${sy(q[1]).toFixed(1)}`).join(" ") }));
      if (p.length <= 30) for (const q of p) root.append(svg("circle", { class: cls, cx: sx(q[0]), cy: sy(q[1]), r: 3 }));
    });
    const legend = el("div", { class: "legend" },
      series.map((s, i) => el("span", {}, el("i", { class: "c" + (i % 8) }), s.name)));
    put(box, root, legend);
  }

  // ---------------------------------------------------------------------- data
  class HttpError extends Error {
    constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; }
  }

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) {
      window.location.assign("/dashboard/login?next=" + encodeURIComponent(window.location.pathname));
      throw new HttpError(401, "log in again");
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new HttpError(r.status, body.detail || r.statusText);
    return body;
  }

  async function write(path, key) {
    const r = await fetch(path, { method: "POST", credentials: "omit", headers: { "X-API-Key": key, Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new HttpError(r.status, body.detail || r.statusText);
    return body;
  }

  function status(text, stale) {
    const s = $("status");
    if (s) { s.textContent = text; s.className = stale ? "status stale" : "status"; }
  }

  function every(load) {
    let timer = null;
    async function run() {
      try {
        if (!document.hidden) {
          await load();
          status("updated " + new Date().toISOString().slice(11, 19) + " UTC");
        }
      } catch (e) {
        status("update failed: " + e.message, true);
      }
      timer = setTimeout(run, REFRESH_MS);
    }
    run();
    return () => clearTimeout(timer);
  }

  // ------------------------------------------------------------------ overview
  async function overview() {
    const d = await api("/dashboard/api/overview");
    const t = d.traffic, lat = t.latency_ms, l = d.learner;
    const win = "last " + duration(t.window_seconds);
    put("tiles",
      tile("Events / s", num(t.events_per_second, 2), win, "events_per_second"),
      tile("Requests / s", num(t.requests_per_second, 2), win, "requests_per_second"),
      tile("Latency p50", ms(lat.p50), num(lat.count) + " requests, " + win, "p50"),
      tile("Latency p95", ms(lat.p95), win, "p95"),
      tile("Latency p99", ms(lat.p99), win, "p99"),
      tile("Learner lag", num(l.lag_events), "events; " + (l.running ? "learner running" : "learner idle"), "lag"),
      tile("Champion", d.champion || "none", "serving " + d.model_version, "champion"),
      tile("Events ingested", num(d.events_ingested), num(d.n_events) + " stored", "events_ingested"));
    const s = t.series;
    lineChart("chart-traffic", [
      { name: "events / s", points: s.map((p) => [p.t, p.events_per_second]) },
      { name: "requests / s", points: s.map((p) => [p.t, p.requests_per_second]) },
    ], { title: "Events and requests per second", yLabel: "per second", width: 420, empty: "Collecting samples..." });
    lineChart("chart-p95", [{ name: "p95 latency (ms)", points: s.map((p) => [p.t, p.p95_ms]) }],
      { title: "Request latency, 95th percentile", yLabel: "ms", width: 420, empty: "No requests in the samples yet." });
    lineChart("chart-lag", [{ name: "learner lag (events)", points: s.map((p) => [p.t, p.lag_events]) }],
      { title: "Events stored, not yet learned", yLabel: "events", width: 420, empty: "Collecting samples..." });
    put("learner", kv([
      ["State", badge(l.running ? "running" : "idle")],
      ["Lag", num(l.lag_events) + " events"],
      ["Events taken in", num(l.events)],
      ["Events trained on", num(l.trained_events)],
      ["Parameter updates", num(l.batches)],
      ["Learner speed", l.events_per_second === null ? "–" : num(l.events_per_second, 0) + " events/s"],
      ["Challengers judged", num(l.challengers)],
      ["Promotions", num(l.promotions)],
      ["Learner errors", num(l.errors)],
    ]));
    put("champion", kv([
      ["Champion", d.champion || "none"],
      ["Serving", d.model_version],
      ["Model", d.model],
      ["Users", num(d.n_users)],
      ["Items", num(d.n_items)],
      ["Events stored", num(d.n_events)],
      ["Impressions logged", num(d.impressions_logged)],
      ["Uptime", duration(d.uptime_seconds)],
    ]));
    put("routes", table([
      { key: "method", label: "Method" }, { key: "route", label: "Route" },
      { key: "requests", label: "Requests", num: true }, { key: "errors", label: "4xx/5xx", num: true },
      { key: "p50_ms", label: "p50", num: true, fmt: ms }, { key: "p95_ms", label: "p95", num: true, fmt: ms },
      { key: "p99_ms", label: "p99", num: true, fmt: ms },
    ], t.routes, "No requests yet."));
  }

  // ------------------------------------------------------------------ learning
  function byVersion(rows, key) {
    const groups = new Map();
    for (const r of rows) {
      const name = r.model_version + (r.arm ? " / " + r.arm : "");
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push([r.hour, r[key]]);
    }
    return [...groups].map(([name, points]) => ({ name, points: points.sort((a, b) => a[0] - b[0]) }));
  }

  async function learning() {
    const d = await api("/dashboard/api/learning");
    put("gate", kv(Object.entries(d.gate).map(([k, v]) => [k.replace(/_/g, " "), String(v)])));
    put("decisions", table([
      { key: "version", label: "Version" }, { key: "created_at", label: "Registered", fmt: when },
      { key: "parent", label: "Parent" }, { key: "status", label: "Status", fmt: badge },
      { key: "promoted", label: "Gate", fmt: (v, r) => !r.judged ? "not judged" : badge(v ? "promoted" : "rejected") },
      { key: "metric", label: "Metric" },
      { key: "champion_value", label: "Champion", num: true, fmt: (v) => num(v, 4) },
      { key: "challenger_value", label: "Challenger", num: true, fmt: (v) => num(v, 4) },
      { key: "threshold", label: "Threshold", num: true, fmt: (v) => num(v, 4) },
      { key: "n_events", label: "Held-out events", num: true },
      { key: "reason", label: "Reason" },
    ], d.decisions.slice().reverse(), "No versions yet."));
    lineChart("chart-ctr", byVersion(d.online, "ctr"), { title: "Click-through rate", yLabel: "CTR", pad: 1800, empty: "No impressions yet." });
    lineChart("chart-impressions", byVersion(d.online, "impressions"), { title: "Impressions", yLabel: "impressions", pad: 1800, empty: "No impressions yet." });
    put("online", table([
      { key: "hour", label: "Hour", fmt: when }, { key: "model_version", label: "Version" },
      { key: "arm", label: "Arm" }, { key: "impressions", label: "Impressions", num: true },
      { key: "requests", label: "Requests", num: true }, { key: "users", label: "Users", num: true },
      { key: "clicks", label: "Clicks", num: true }, { key: "ctr", label: "CTR", num: true, fmt: pct },
      { key: "coec", label: "COEC", num: true, fmt: (v) => num(v, 3) },
      { key: "conversions", label: "Conversions", num: true },
    ], d.online.slice().sort((a, b) => b.hour - a.hour), "No impressions yet."));
    put("drift", d.drift.length
      ? table([{ key: "version", label: "Version" }, { key: "detection", label: "Detection", fmt: (v) => JSON.stringify(v) }], d.drift)
      : el("div", { class: "empty", text: "No drift detections recorded. The service's background learner judges every challenger with the promotion gate; drift detectors run in lifelongrec stream (see docs/lifelong.md)." }));
    put("history", table([
      { key: "time", label: "Time", fmt: when }, { key: "action", label: "Action", fmt: badge },
      { key: "version", label: "Version" }, { key: "previous", label: "Previous" }, { key: "reason", label: "Reason" },
    ], d.history.slice().reverse(), "No promotion or rollback yet."));
  }

  // --------------------------------------------------------------- experiments
  const ARM_COLUMNS = ["name", "version", "share", "impressions", "clicks", "conversions", "ctr", "users", "requests", "errors", "p99_ms"];

  function ciChart(ci, effect) {
    if (!Array.isArray(ci) || ci.length !== 2 || ci.some((v) => v === null || !Number.isFinite(v))) return null;
    const W = 420, H = 54, pad = 20;
    const lo = Math.min(ci[0], 0, effect ?? 0), hi = Math.max(ci[1], 0, effect ?? 0);
    const span = hi - lo || 1;
    const x = (v) => pad + ((v - lo + span * 0.1) / (span * 1.2)) * (W - 2 * pad);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "confidence interval of the effect" });
    root.append(svg("line", { x1: x(0), x2: x(0), y1: 6, y2: 36, class: "c7", "stroke-dasharray": "3 3" }));
    root.append(svg("text", { x: x(0), y: 48, "text-anchor": "middle" }, "0"));
    root.append(svg("line", { x1: x(ci[0]), x2: x(ci[1]), y1: 21, y2: 21, class: "line c0" }));
    for (const v of ci) {
      root.append(svg("line", { x1: x(v), x2: x(v), y1: 14, y2: 28, class: "line c0" }));
      root.append(svg("text", { x: x(v), y: 48, "text-anchor": "middle" }, num(v, 4)));
    }
    if (effect !== null && effect !== undefined) root.append(svg("circle", { cx: x(effect), cy: 21, r: 4, class: "c1" }));
    return el("div", { class: "chart ci" }, root);
  }

  function experimentCard(x) {
    const v = x.verdict || {};
    const skip = new Set(["arms", "verdict", "name", "id"]);
    const meta = Object.entries(x).filter(([k]) => !skip.has(k)).map(([k, val]) => [
      k.replace(/_/g, " "),
      k === "status" ? badge(val) : /_at$/.test(k) ? when(val) : plain(val),
    ]);
    const arms = x.arms || [];
    const keys = [...new Set([...ARM_COLUMNS.filter((k) => arms.some((a) => k in a)), ...arms.flatMap((a) => Object.keys(a))])];
    const armTable = table(keys.map((k) => ({
      key: k, label: k.replace(/_/g, " "), num: arms.some((a) => typeof a[k] === "number"),
      fmt: k === "ctr" ? pct : k === "share" ? (val) => num(val, 2) : k === "p99_ms" ? ms : undefined,
    })), arms, "No arms.");
    const verdict = el("div", {},
      el("p", { class: "verdict" }, "Decision: ", badge(v.decision || "none yet")),
      kv([["p-value", num(v.p_value, 4)], ["effect", num(v.effect, 4)],
        ["interval", Array.isArray(v.ci) ? `[${num(v.ci[0], 4)}, ${num(v.ci[1], 4)}]` : "–"], ["looks", num(v.looks)]]),
      ciChart(v.ci, v.effect));
    return el("section", { class: "card experiment", "data-id": x.id },
      el("h2", {}, (x.name || "experiment") + (x.id !== undefined ? ` (${x.id})` : "")),
      kv(meta), el("h3", { text: "Arms" }), armTable, el("h3", { text: "Verdict" }), verdict);
  }

  async function experiments() {
    let list = [];
    if (document.body.dataset.experiments === "1") {
      try {
        list = (await api("/experiments")).experiments || [];
      } catch (e) {
        if (e.status !== 404) throw e;
      }
    }
    put("experiments", list.length
      ? list.map(experimentCard)
      : el("section", { class: "card" }, el("div", { class: "empty", text: "No experiments yet." })));
  }

  // -------------------------------------------------------------------- models
  function lineage(versions) {
    const children = new Map();
    const known = new Set(versions.map((v) => v.version));
    for (const v of versions) {
      const p = v.parent && known.has(v.parent) ? v.parent : null;
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(v);
    }
    const branch = (p) => el("ul", {}, (children.get(p) || []).map((v) =>
      el("li", {}, el("code", { text: v.version }), " ", badge(v.status), " ", v.model, " · ", when(v.created_at),
        children.has(v.version) ? branch(v.version) : null)));
    return el("div", { class: "lineage" }, branch(null));
  }

  async function change(path, label) {
    const key = $("write-key").value.trim();
    const out = $("action-result");
    if (!key) {
      out.textContent = "Type a key with the write scope first.";
      out.className = "result fail";
      return;
    }
    try {
      const r = await write(path, key);
      out.textContent = `${label}: ${r.version} is the champion now.`;
      out.className = "result ok";
    } catch (e) {
      out.textContent = `${label} refused (${e.message}).`;
      out.className = "result fail";
    }
    await models();
  }

  async function models() {
    const d = await api("/models");
    put("model-tiles",
      tile("Champion", d.champion || "none", null, "champion"),
      tile("Serving", d.live, null, "live"),
      tile("Versions", num(d.versions.length), null, "versions"));
    put("versions", table([
      { key: "version", label: "Version" }, { key: "created_at", label: "Registered", fmt: when },
      { key: "parent", label: "Parent" }, { key: "status", label: "Status", fmt: badge },
      { key: "registered_as", label: "Registered as" }, { key: "model", label: "Model" },
      { key: "decision", label: "Gate", fmt: (v) => !v ? "–" : `${v.metric}: ${num(v.challenger_value, 4)} vs ${num(v.champion_value, 4)}` },
      { key: "window", label: "Data window", fmt: (v) => !v ? "–" : v.label || `${when(v.start)} – ${when(v.end)}` },
      { key: "version", label: "", fmt: (v, r) => r.status === "champion" ? "" :
        el("button", { type: "button", class: "small secondary", "data-promote": v, onclick: () => change(`/models/${v}/promote`, "Promote " + v) }, "Promote") },
    ], d.versions.slice().reverse(), "No versions."));
    put("lineage", lineage(d.versions));
  }

  // ------------------------------------------------------------------ explorer
  const params = new URLSearchParams(window.location.search);

  function itemLink(id) {
    return el("a", { href: "?item=" + encodeURIComponent(id), onclick: (e) => { e.preventDefault(); showItem(id); } }, id);
  }
  function userLink(id) {
    return el("a", { href: "?user=" + encodeURIComponent(id), onclick: (e) => { e.preventDefault(); showUser(id); } }, id);
  }
  const cats = (v) => (v && v.length ? v.join(", ") : "–");

  async function userView(id) {
    let d;
    try {
      d = await api("/dashboard/api/user/" + encodeURIComponent(id));
    } catch (e) {
      if (e.status !== 404) throw e;
      put("user-view", el("section", { class: "card" }, el("div", { class: "empty", text: `No events of user ${id}.` })));
      return;
    }
    const r = d.recommendations;
    put("user-view", el("section", { class: "card", id: "user-card" },
      el("h2", {}, `User ${d.user_id}: ${num(d.n_events)} events`),
      el("section", { class: "grid2" },
        el("div", {}, el("h3", { text: `Recent history (newest first, ${d.history.length} of ${num(d.n_events)})` }), table([
          { key: "timestamp", label: "Time", fmt: when }, { key: "event_type", label: "Event" },
          { key: "item_id", label: "Item", fmt: itemLink }, { key: "title", label: "Title" },
          { key: "categories", label: "Categories", fmt: cats },
        ], d.history, "No events.")),
        el("div", {}, el("h3", {}, `Recommendations now (${r.model_version}${r.cold_start ? ", cold start" : ""})`), table([
          { key: "rank", label: "#", num: true }, { key: "item_id", label: "Item", fmt: itemLink },
          { key: "title", label: "Title" }, { key: "categories", label: "Categories", fmt: cats },
          { key: "score", label: "Score", num: true, fmt: (v) => num(v, 3) }, { key: "reason", label: "Why" },
        ], r.items.map((it, i) => ({ rank: i + 1, ...it })), "No recommendations.")))));
  }

  async function itemView(id) {
    let d;
    try {
      d = await api("/dashboard/api/item/" + encodeURIComponent(id));
    } catch (e) {
      if (e.status !== 404) throw e;
      put("item-view", el("section", { class: "card" }, el("div", { class: "empty", text: `Unknown item ${id}.` })));
      return;
    }
    const it = d.item || {}, reach = d.reach, top = reach.top_k;
    put("item-view", el("section", { class: "card", id: "item-card" },
      el("h2", {}, `Item ${d.item_id}${it.title ? ": " + it.title : ""}`),
      el("section", { class: "grid2" },
        el("div", {}, el("h3", { text: "Catalogue" }), kv([
          ["Title", it.title || "–"], ["Categories", cats(it.categories)],
          ["Attributes", it.attributes && Object.keys(it.attributes).length ? JSON.stringify(it.attributes) : "–"],
          ["In the live model", d.in_model ? "yes" : "not yet"],
        ])),
        el("div", {}, el("h3", { text: "Reach so far" }), kv([
          ["Impressions", num(reach.impressions)],
          ["Share of answers", reach.answers_since_first_shown ? `${pct(reach.impressions / reach.answers_since_first_shown)} of ${num(reach.answers_since_first_shown)} since first shown` : "–"],
          ["Users shown", num(reach.users_shown)],
          ["First shown", when(reach.first_shown)], ["Last shown", when(reach.last_shown)],
          ["Events", num(reach.events)], ["Users with events", num(reach.users_with_events)],
          [`In the top ${top ? top.k : 10} of`, !top ? "– (a model without an index)" : top.users_sampled ? `${num(top.users_with_item_in_top_k)} of ${num(top.users_sampled)} users served just now` : "– (no user vector cached just now)"],
        ]))),
      el("h3", { text: "Similar items" }), table([
        { key: "item_id", label: "Item", fmt: itemLink }, { key: "title", label: "Title" },
        { key: "categories", label: "Categories", fmt: cats }, { key: "score", label: "Score", num: true, fmt: (v) => num(v, 3) },
      ], d.similar, d.in_model ? "No similar items." : "Not in the live model yet: no vector to compare.")));
  }

  let current = { user: params.get("user"), item: params.get("item") };
  function remember() {
    const q = new URLSearchParams();
    if (current.user) q.set("user", current.user);
    if (current.item) q.set("item", current.item);
    window.history.replaceState(null, "", "?" + q.toString());
  }
  function showUser(id) { current.user = id; $("user-id").value = id; remember(); userView(id).catch((e) => status("update failed: " + e.message, true)); }
  function showItem(id) { current.item = id; $("item-id").value = id; remember(); itemView(id).catch((e) => status("update failed: " + e.message, true)); }

  async function explorer() {
    if (current.user) await userView(current.user);
    if (current.item) await itemView(current.item);
  }

  async function explorerSetup() {
    $("user-form").addEventListener("submit", (e) => { e.preventDefault(); showUser($("user-id").value.trim()); });
    $("item-form").addEventListener("submit", (e) => { e.preventDefault(); showItem($("item-id").value.trim()); });
    if (current.user) $("user-id").value = current.user;
    if (current.item) $("item-id").value = current.item;
    try {
      const d = await api("/dashboard/api/explore");
      put("user-hints", "Recently active: ", d.recent_users.map(userLink));
      put("item-hints", "Popular: ", d.popular_items.map(itemLink));
    } catch (e) {
      status("update failed: " + e.message, true);
    }
  }

  // ---------------------------------------------------------------------- start
  const PAGES = { overview, learning, experiments, models, explorer };
  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "models") $("rollback").addEventListener("click", () => change("/models/rollback", "Roll back"));
    if (page === "explorer") explorerSetup();
    if (PAGES[page]) every(PAGES[page]);
  });
})();
