// The console page: plain JavaScript over the console's JSON API (/api/…),
// no framework and nothing fetched but the API. Sections: the API client
// (the key, errors), the query form and its JSON, paging and the event
// view, listings, the live view (server-sent events read from fetch, so
// that the key can travel as a header), the state with its SVG charts,
// and appends.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- The API client -------------------------------------------------------

const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem("gesta-console-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("gesta-console-key", keyInput.value);
  hideError();
  refreshInfo().then(() => { if ($("error").hidden) runQuery(); });
});

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

// An API failure: the HTTP status and the console's typed error.
class ApiFailure extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
  toString() {
    return this.status + " " + this.kind + ": " + this.message;
  }
}

async function api(path, options) {
  const init = Object.assign({}, options || {});
  init.headers = headers(init.headers);
  const response = await fetch("/api" + path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const kind = body && body.error ? body.error : "error";
    const message = body && body.message ? body.message : text || response.statusText;
    throw new ApiFailure(response.status, kind, message);
  }
  return body;
}

function showError(e) {
  const box = $("error");
  box.textContent = e instanceof ApiFailure ? e.toString() : String(e);
  box.hidden = false;
  if (e instanceof ApiFailure && e.status === 401) keyInput.focus();
}
function hideError() { $("error").hidden = true; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function tagList(tags) {
  const span = el("span");
  for (const t of tags || []) span.append(el("span", { class: "tag" }, t));
  return span;
}

function streamOf(e) { return e.stream ? e.stream + " @" + e.revision : ""; }
function shortTime(ts) { return ts ? ts.replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }

function eventRow(e) {
  const tr = el("tr", { "data-position": e.position },
    el("td", { class: "pos" }, e.position),
    el("td", { class: "type" }, e.type),
    el("td", { class: "tags" }, tagList(e.tags)),
    el("td", {}, streamOf(e)),
    el("td", { class: "muted" }, shortTime(e.timestamp)));
  tr.addEventListener("click", () => {
    for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
    tr.classList.add("selected");
    showEvent(e);
  });
  return tr;
}

// ---- Header and tabs -------------------------------------------------------

let writable = false;

async function refreshInfo() {
  try {
    const info = await api("/info");
    $("store-path").textContent = info.store;
    $("head").textContent = info.head;
    writable = info.writable;
    const mode = $("mode");
    mode.textContent = writable ? "appends allowed" : "read-only";
    mode.className = "pill " + (writable ? "rw" : "ro");
    $("append-mode").textContent = writable
      ? "This console accepts appends and changes."
      : "This console is read-only: appends and changes are refused.";
  } catch (e) { showError(e); }
}

let stateTimer = null;
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => selectTab(tab.dataset.tab));
}
function selectTab(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== name;
  clearInterval(stateTimer);
  if (name === "state") { refreshState(); stateTimer = setInterval(refreshState, 2000); }
  if (name === "lists" && !$("list-rows").children.length) runList(false);
}

// ---- The query form ---------------------------------------------------------

function splitList(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function addItem(types, tags) {
  const items = $("items");
  const n = items.children.length;
  const row = el("div", { class: "item" },
    el("span", { class: "or" }, n === 0 ? "" : "OR"),
    el("label", {}, "types ", el("input", { class: "item-types", size: 22, placeholder: "any type" })),
    el("label", {}, "tags ", el("input", { class: "item-tags", size: 30, placeholder: "no constraint" })),
    el("button", { type: "button", class: "small remove", title: "remove this item" }, "×"));
  row.querySelector(".item-types").value = (types || []).join(", ");
  row.querySelector(".item-tags").value = (tags || []).join(", ");
  row.querySelector(".remove").addEventListener("click", () => {
    row.remove();
    if (!$("items").children.length) addItem();
    renderQuery();
  });
  row.addEventListener("input", renderQuery);
  items.append(row);
  renderQuery();
}

// The DCB query the form describes.
function formQuery() {
  const items = [];
  for (const row of $("items").children) {
    const types = splitList(row.querySelector(".item-types").value);
    const tags = splitList(row.querySelector(".item-tags").value);
    items.push({ types, tags });
  }
  // One empty item is "everything", as is no item.
  if (items.length === 1 && !items[0].types.length && !items[0].tags.length) return { items: [] };
  return { items };
}

function by() { return document.querySelector('input[name="by"]:checked').value; }

function renderQuery() {
  const mode = by();
  $("by-query").hidden = mode !== "query";
  $("by-stream").hidden = mode !== "stream";
  $("by-id").hidden = mode !== "id";
  $("start-row").querySelectorAll("input, select").forEach((i) => { if (i.id !== "limit") i.disabled = mode === "id"; });
  $("since").disabled = mode !== "query" || $("direction").value === "backwards";
  $("start-label").textContent =
    (mode === "stream" ? "revision " : "position ") + ($("direction").value === "backwards" ? "before" : "after");
  $("query-json").textContent = mode === "query" ? JSON.stringify(formQuery()) : mode === "stream"
    ? JSON.stringify({ stream: $("stream").value }) : JSON.stringify({ id: $("event-id").value });
}

document.querySelectorAll('input[name="by"]').forEach((r) => r.addEventListener("change", renderQuery));
$("direction").addEventListener("change", renderQuery);
$("stream").addEventListener("input", renderQuery);
$("event-id").addEventListener("input", renderQuery);
$("add-item").addEventListener("click", () => addItem());

// ---- Reading a page, paging both ways ----------------------------------------

// What the current results were read with, and where they start and end.
let current = null;

function readParams(direction, start) {
  const p = new URLSearchParams();
  if (by() === "stream") p.set("stream", $("stream").value.trim());
  else p.set("query", JSON.stringify(formQuery()));
  p.set("direction", direction);
  if (start !== null && start !== "") p.set(direction === "backwards" ? "before" : "after", start);
  p.set("limit", $("limit").value.trim() || "20");
  return p;
}

// Each read takes a number; an answer that comes after a later read's is
// dropped, so that the rows are always the last read's.
let reads = 0;

async function runQuery(event) {
  if (event) event.preventDefault();
  hideError();
  const mode = by();
  const read = ++reads;
  try {
    if (mode === "id") {
      const e = await api("/ids/" + encodeURIComponent($("event-id").value.trim()));
      if (read !== reads) return;
      showPage({ events: [e], more: false }, "forwards", false, null);
      showEvent(e);
      return;
    }
    const direction = $("direction").value;
    const p = readParams(direction, $("start").value.trim());
    const since = $("since").value.trim();
    if (mode === "query" && since && direction === "forwards") { p.delete("after"); p.set("since", since); }
    const page = await api("/events?" + p.toString());
    if (read !== reads) return;
    showPage(page, direction, false, p);
  } catch (e) { if (read === reads) showError(e); }
}

// Shows a page. `flipped`: read against the chosen order (the previous
// page), so shown reversed.
function showPage(page, direction, flipped, params) {
  const events = flipped ? page.events.slice().reverse() : page.events;
  const rows = $("result-rows");
  rows.replaceChildren(...events.map(eventRow));
  $("event-detail").hidden = true;
  if (page.head !== undefined) $("head").textContent = page.head;
  if (page.query) $("query-json").textContent = JSON.stringify(page.query);
  const key = (e) => (by() === "stream" ? e.revision : e.position);
  current = {
    direction,
    first: events.length ? key(events[0]) : null,
    last: events.length ? key(events[events.length - 1]) : null,
    // More beyond the last row (in the chosen order), and before the first.
    moreNext: flipped ? true : page.more,
    morePrev: flipped ? page.more : params !== null && (params.has("after") || params.has("before") || params.has("since")),
  };
  $("next").disabled = !current.moreNext || current.last === null;
  $("prev").disabled = !current.morePrev || current.first === null;
  $("page-info").textContent = events.length
    ? events.length + " event" + (events.length === 1 ? "" : "s") + (by() === "stream" ? ", revisions " : ", positions ")
      + current.first + "–" + current.last
    : "no events";
}

async function page(forward) {
  if (!current) return;
  hideError();
  const opposite = current.direction === "forwards" ? "backwards" : "forwards";
  const direction = forward ? current.direction : opposite;
  const start = forward ? current.last : current.first;
  const read = ++reads;
  try {
    const p = readParams(direction, String(start));
    const result = await api("/events?" + p.toString());
    if (read !== reads) return;
    if (!result.events.length) {
      $(forward ? "next" : "prev").disabled = true;
      return;
    }
    showPage(result, current.direction, !forward, p);
  } catch (e) { showError(e); }
}

$("query-form").addEventListener("submit", runQuery);
$("next").addEventListener("click", () => page(true));
$("prev").addEventListener("click", () => page(false));

// ---- One event ------------------------------------------------------------

function pretty(value) { return JSON.stringify(value, null, 2); }

function showEvent(e) {
  const box = $("event-detail");
  const dl = el("dl", {},
    el("dt", {}, "position"), el("dd", { id: "detail-position" }, e.position),
    el("dt", {}, "type"), el("dd", { id: "detail-type" }, e.type),
    el("dt", {}, "tags"), el("dd", { id: "detail-tags" }, tagList(e.tags)),
    el("dt", {}, "stream"), el("dd", {}, e.stream ? e.stream + " (revision " + e.revision + ")" : "–"),
    el("dt", {}, "id"), el("dd", {}, e.id || "–"),
    el("dt", {}, "committed"), el("dd", {}, e.timestamp));
  const data = e.data !== undefined ? pretty(e.data) : e.data_base64 !== undefined ? "base64: " + e.data_base64 : "(empty)";
  const meta = e.metadata !== undefined ? pretty(e.metadata) : e.metadata_base64 !== undefined ? "base64: " + e.metadata_base64 : "(empty)";
  box.replaceChildren(el("h3", {}, "Event " + e.position), dl,
    el("div", { class: "muted" }, "data"), el("pre", { class: "json", id: "detail-data" }, data),
    el("div", { class: "muted" }, "metadata"), el("pre", { class: "json", id: "detail-metadata" }, meta));
  box.hidden = false;
}

// ---- Listings --------------------------------------------------------------

let listNext = null;

async function runList(more) {
  hideError();
  const what = $("list-what").value;
  const p = new URLSearchParams({ prefix: $("list-prefix").value, limit: "50" });
  if (more && listNext) p.set("after", listNext);
  try {
    const result = await api("/lists/" + what + "?" + p.toString());
    const rows = result.items.map((item) => {
      const tr = el("tr", {}, el("td", {}, item.name), el("td", {}, item.count));
      tr.addEventListener("click", () => queryFor(what, item.name));
      return tr;
    });
    if (more) $("list-rows").append(...rows); else $("list-rows").replaceChildren(...rows);
    listNext = result.next || null;
    $("list-more").hidden = !listNext;
  } catch (e) { showError(e); }
}

// Opens the events of a listed stream, type or tag.
function queryFor(what, name) {
  document.querySelector('input[name="by"][value="' + (what === "streams" ? "stream" : "query") + '"]').checked = true;
  if (what === "streams") $("stream").value = name;
  else {
    $("items").replaceChildren();
    addItem(what === "types" ? [name] : [], what === "tags" ? [name] : []);
  }
  $("start").value = "";
  $("since").value = "";
  renderQuery();
  selectTab("events");
  runQuery();
}

$("list-form").addEventListener("submit", (e) => { e.preventDefault(); runList(false); });
$("list-more").addEventListener("click", () => runList(true));

// ---- Live ------------------------------------------------------------------

const live = { controller: null, last: null, count: 0 };

// Reads a text/event-stream body, calling `on(type, data)` per message.
async function readEvents(response, on) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) on(type, data.join("\n"));
    }
  }
}

function liveQuery() {
  const types = splitList($("live-types").value);
  const tags = splitList($("live-tags").value);
  return types.length || tags.length ? { items: [{ types, tags }] } : { items: [] };
}

async function startLive(event) {
  if (event) event.preventDefault();
  stopLive("stopped");
  hideError();
  const p = new URLSearchParams({ query: JSON.stringify(liveQuery()) });
  if (live.last !== null) p.set("after", live.last);
  const controller = new AbortController();
  live.controller = controller;
  $("live-pause").disabled = false;
  $("live-pause").textContent = "Pause";
  $("live-status").textContent = "connecting…";
  try {
    const response = await fetch("/api/live?" + p.toString(), { headers: headers(), signal: controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiFailure(response.status, body.error || "error", body.message || response.statusText);
    }
    await readEvents(response, (type, data) => {
      if (type === "open") {
        const open = JSON.parse(data);
        if (live.last === null) live.last = open.after;
        $("live-status").textContent = "following after position " + open.after;
      } else if (type === "event") {
        const e = JSON.parse(data);
        live.last = e.position;
        live.count += 1;
        const row = eventRow(e);
        row.classList.add("fresh");
        $("live-rows").prepend(row);
        while ($("live-rows").children.length > 500) $("live-rows").lastChild.remove();
        $("head").textContent = Math.max(Number($("head").textContent) || 0, e.position);
        $("live-status").textContent = "following: " + live.count + " new, last position " + e.position;
      } else if (type === "failed") {
        showError("live view ended: " + data);
      }
    });
    if (live.controller === controller) stopLive("ended by the server");
  } catch (e) {
    if (e.name !== "AbortError") { showError(e); stopLive("stopped"); }
  }
}

function stopLive(status) {
  if (live.controller) live.controller.abort();
  live.controller = null;
  $("live-status").textContent = status;
}

$("live-form").addEventListener("submit", (e) => { live.last = null; live.count = 0; $("live-rows").replaceChildren(); startLive(e); });
$("live-pause").addEventListener("click", () => {
  if (live.controller) {
    stopLive("paused after position " + live.last);
    $("live-pause").textContent = "Resume";
  } else {
    // Resumes after the last position shown: nothing is missed.
    startLive();
  }
});

// ---- State and charts --------------------------------------------------------

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return (u === 0 ? v : v.toFixed(1)) + " " + units[u];
}

// A line chart of (x, y) points drawn into `svg` at its width in pixels
// (so that text is not stretched); the y axis starts at 0 when `fromZero`,
// else at the lowest value (so that small changes show).
function chart(svg, points, format, fromZero) {
  const ns = "http://www.w3.org/2000/svg";
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 320);
  const H = 120, left = 52, bottom = 14, top = 6;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.replaceChildren();
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom });
  add("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom });
  if (points.length < 2) {
    add("text", { x: left + 8, y: H / 2 }, "sampling…");
    return;
  }
  const x0 = points[0][0], x1 = points[points.length - 1][0];
  const ys = points.map((p) => p[1]);
  const ymin = fromZero ? Math.min(0, ...ys) : Math.min(...ys);
  const ymax = Math.max(ymin + 1, ...ys);
  const sx = (x) => left + ((x - x0) / Math.max(1, x1 - x0)) * (W - left - 2);
  const sy = (y) => H - bottom - ((y - ymin) / Math.max(1e-9, ymax - ymin)) * (H - bottom - top);
  const path = points.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
  add("path", { class: "area", d: path + " L" + sx(x1).toFixed(1) + " " + (H - bottom) + " L" + left + " " + (H - bottom) + " Z" });
  add("path", { class: "line", d: path });
  add("text", { x: 2, y: top + 8 }, format(ymax));
  add("text", { x: 2, y: H - bottom }, format(ymin));
  add("text", { x: left, y: H - 2 }, Math.round((x1 - x0) / 1000) + " s ago");
  add("text", { x: W - 22, y: H - 2 }, "now");
}

async function refreshState() {
  try {
    const s = await api("/state");
    $("head").textContent = s.head;
    const figures = [
      ["head", s.head], ["events", s.events],
      ["bytes on disk", human(s.bytes_on_disk)],
      ["disk bytes per event", s.bytes_per_event === null ? "–" : s.bytes_per_event.toFixed(1)],
      ["segments", s.segments],
      ["compressed segments", s.compressed_segments],
      ["segment bytes", human(s.segment_bytes)],
      ["index runs", s.index_runs + " (" + human(s.index_bytes) + ")"],
      ["memtables to flush", s.memtables_waiting],
      ["durable subscriptions", s.cursors.length],
      ["snapshot keys", s.snapshots.length],
      ["lifecycle operations", s.audit_entries],
    ];
    $("figures").replaceChildren(...figures.map(([k, v]) =>
      el("div", { class: "figure", "data-figure": k }, el("div", { class: "v" }, v), el("div", { class: "k" }, k))));
    const rate = [];
    for (let i = 1; i < s.samples.length; i++) {
      const a = s.samples[i - 1], b = s.samples[i];
      rate.push([b.t, (b.head - a.head) / Math.max(0.001, (b.t - a.t) / 1000)]);
    }
    chart($("chart-rate"), rate, (v) => v.toFixed(v < 10 ? 1 : 0), true);
    chart($("chart-disk"), s.samples.map((x) => [x.t, x.bytes]), human, false);
    $("cursor-rows").replaceChildren(...s.cursors.map((c) =>
      el("tr", {}, el("td", {}, c.name), el("td", {}, c.acknowledged), el("td", { class: c.lag ? "bad" : "ok" }, c.lag))));
    $("snapshot-rows").replaceChildren(...s.snapshots.map((x) =>
      el("tr", {}, el("td", {}, x.key), el("td", {}, x.positions.join(", ")))));
  } catch (e) { showError(e); clearInterval(stateTimer); }
}

// ---- Appends -------------------------------------------------------------------

$("append-run").addEventListener("click", async () => {
  hideError();
  const result = $("append-result");
  result.className = "";
  result.textContent = "appending…";
  try {
    const a = await api("/append", { method: "POST", headers: { "Content-Type": "application/x-ndjson" }, body: $("append-body").value });
    result.className = "ok";
    result.textContent = "appended at positions " + a.first + "–" + a.last;
    $("head").textContent = a.last;
  } catch (e) {
    result.className = "bad";
    result.textContent = "refused: " + (e instanceof ApiFailure ? e.toString() : String(e));
    showError(e);
  }
});

// ---- Lifecycle: retroactive tags, redaction ---------------------------------

// The events the lifecycle form names: positions, or the Events tab's query.
function lifecycleTarget() {
  if ($("life-use-query").checked) return { query: formQuery() };
  const positions = splitList($("life-positions").value).map(Number);
  if (positions.some((p) => !Number.isInteger(p) || p < 1)) throw new Error("positions are whole numbers from 1, separated by commas");
  return { positions };
}

async function lifecycle(path, body, done) {
  hideError();
  const result = $("life-result");
  result.className = "";
  result.textContent = "working…";
  try {
    const answer = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    result.className = "ok";
    result.textContent = done(answer);
  } catch (e) {
    result.className = "bad";
    result.textContent = "refused: " + (e instanceof ApiFailure ? e.toString() : String(e));
    showError(e);
  }
}

$("life-tag").addEventListener("click", () => {
  let target;
  try { target = lifecycleTarget(); } catch (e) { showError(e.message); return; }
  target.tags = splitList($("life-tags").value);
  lifecycle("/tags", target, (a) => a.tagged + " of " + a.targeted + " events gained tags");
});
$("life-redact").addEventListener("click", () => {
  if (!$("life-confirm").checked) { showError("tick \"erase their data and metadata for good\" to redact"); return; }
  let target;
  try { target = lifecycleTarget(); } catch (e) { showError(e.message); return; }
  lifecycle("/redact", target, (a) => a.redacted + " of " + a.targeted + " events redacted");
});

// ---- Start -----------------------------------------------------------------------

addItem();
refreshInfo().then(() => runQuery());
