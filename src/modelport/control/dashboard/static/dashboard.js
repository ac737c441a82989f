// modelport dashboard: copy buttons, confirmations, the live charts and followed logs.
// No inline script anywhere (the pages' Content-Security-Policy forbids it).
"use strict";

const POLL_MS = 2000;
const KEEP = 150; // samples on a chart: five minutes at one every two seconds

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy).then(
    () => { button.textContent = "Copied"; },
    () => { button.textContent = "Copy failed"; },
  );
});

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
}, true);

// -- live view ------------------------------------------------------------------------
function percentile(counts, bounds, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] && seen + counts[i] >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const low = i > 0 ? bounds[i - 1] : 0;
      return low + (bounds[i] - low) * (rank - seen) / counts[i];
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

function grown(now, before) { return now >= before ? now - before : now; }

function rates(before, now, bounds) {
  // What the router's counters gained between two reads, per second.
  const seconds = Math.max(now.time - before.time, 1e-3);
  const klass = (c) => grown(now.requests[c] || 0, before.requests[c] || 0) / seconds;
  const diff = (a, b) => a.map((n, i) => grown(n, (b || [])[i] || 0));
  const latency = diff(now.latencyCounts, before.latencyCounts);
  const waits = diff(now.queueWaitCounts, before.queueWaitCounts);
  const waited = waits.reduce((a, b) => a + b, 0);
  const ms = (v) => (v === null ? null : v * 1000);
  return {
    ok: klass("2xx"), client: klass("4xx"), server: klass("5xx"),
    p50: ms(percentile(latency, bounds, 0.5)), p99: ms(percentile(latency, bounds, 0.99)),
    wait: waited ? grown(now.queueWaitSum, before.queueWaitSum) / waited * 1000 : 0,
    rejected: (grown(now.queueFull, before.queueFull) + grown(now.queueTimeouts, before.queueTimeouts)) / seconds,
  };
}

function markEvents(live, events) {
  return (u) => {
    u.root.querySelectorAll(".mark").forEach((m) => m.remove());
    const over = u.root.querySelector(".u-over");
    for (const e of events()) {
      const x = Date.parse(e.time) / 1000;
      if (x < u.scales.x.min || x > u.scales.x.max) continue;
      const mark = document.createElement("span");
      mark.className = "mark";
      mark.style.left = `${u.valToPos(x, "x")}px`;
      mark.style.height = `${over.clientHeight}px`;
      mark.title = `${e.fromReplicas} → ${e.toReplicas}: ${e.reason}`;
      over.appendChild(mark);
    }
  };
}

function chart(el, series, hooks) {
  const width = Math.max(el.clientWidth, 260);
  const opts = {
    width, height: 180, legend: { show: true },
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: true }))],
    axes: [{}, { size: 50 }],
    hooks: hooks || {},
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

function startLive(section) {
  const url = section.dataset.counters;
  let last = null;
  let events = [];
  const data = { t: [], ok: [], client: [], server: [], p50: [], p99: [], wait: [], rejected: [], ready: [], desired: [] };
  const get = (name) => section.querySelector(`[data-chart=${name}]`);
  const charts = {
    rps: chart(get("rps"), [["2xx", "#137333"], ["4xx", "#b06000"], ["5xx", "#c5221f"]]),
    latency: chart(get("latency"), [["p50", "#0b5fff"], ["p99", "#8430ce"]]),
    queue: chart(get("queue"), [["wait ms", "#b06000"], ["503/s", "#c5221f"]]),
    replicas: chart(get("replicas"), [["ready", "#137333"], ["desired", "#5b6678"]],
      { draw: [markEvents(section, () => events)] }),
  };
  const out = (name, value) => { section.querySelector(`.live-${name}`).textContent = value; };
  const fixed = (v) => (v === null || v === undefined ? "-" : v.toFixed(1));
  async function tick() {
    let body;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      body = await response.json();
    } catch { return; }
    events = body.events || [];
    const list = section.querySelector(".event-list");
    list.replaceChildren(...events.slice(-10).map((e) => {
      const li = document.createElement("li");
      li.textContent = `${e.time.slice(11, 19)} ${e.fromReplicas} → ${e.toReplicas}: ${e.reason}`;
      return li;
    }));
    const now = body.counters;
    const replicas = body.replicas;
    out("replicas", `${replicas.ready}/${replicas.desired}`);
    if (!now) return;
    if (last) {
      const r = rates(last, now, now.latencyBounds || []);
      data.t.push(Date.now() / 1000);
      for (const k of ["ok", "client", "server", "p50", "p99", "wait", "rejected"]) data[k].push(r[k]);
      data.ready.push(replicas.ready);
      data.desired.push(replicas.desired);
      for (const k in data) if (data[k].length > KEEP) data[k].shift();
      out("rps", (r.ok + r.client + r.server).toFixed(1));
      out("p50", fixed(r.p50));
      out("p99", fixed(r.p99));
      out("wait", fixed(r.wait));
      out("503", r.rejected.toFixed(1));
      out("samples", String(data.t.length));
      charts.rps.setData([data.t, data.ok, data.client, data.server]);
      charts.latency.setData([data.t, data.p50, data.p99]);
      charts.queue.setData([data.t, data.wait, data.rejected]);
      charts.replicas.setData([data.t, data.ready, data.desired]);
    }
    last = now;
  }
  tick();
  setInterval(tick, POLL_MS);
}

// -- logs -------------------------------------------------------------------------------
function startLogs(section) {
  const lines = section.querySelector(".log-lines");
  const state = section.querySelector(".log-state");
  const text = section.querySelector(".log-text");
  const replica = section.querySelector(".log-replica");
  const status = section.querySelector(".log-status");
  let controller = null;

  const shown = (line) => !text.value || line.toLowerCase().includes(text.value.toLowerCase());
  function add(line) {
    if (!line) return;
    const row = document.createElement("div");
    row.textContent = line;
    row.hidden = !shown(line);
    lines.appendChild(row);
    while (lines.childElementCount > 2000) lines.firstElementChild.remove();
    if (!row.hidden) lines.scrollTop = lines.scrollHeight;
  }
  function source() {
    const url = new URL(section.dataset.feed, window.location.href);
    if (replica && replica.value) url.searchParams.set("replica", replica.value);
    if (status && status.value) url.searchParams.set("status", status.value);
    return url;
  }
  async function follow() {
    controller?.abort();
    controller = new AbortController();
    lines.replaceChildren();
    state.textContent = "following";
    try {
      const response = await fetch(source(), { signal: controller.signal, credentials: "same-origin" });
      if (!response.ok) { state.textContent = `refused (${response.status})`; return; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (rest + value).split("\n");
        rest = parts.pop();
        parts.forEach(add);
      }
      state.textContent = "ended";
    } catch (error) {
      if (error.name !== "AbortError") state.textContent = "disconnected";
    }
  }
  async function poll() {
    try {
      const response = await fetch(source(), { credentials: "same-origin" });
      const body = await response.text();
      lines.replaceChildren();
      body.split("\n").forEach(add);
      state.textContent = `read at ${new Date().toLocaleTimeString()}`;
    } catch { state.textContent = "disconnected"; }
  }
  text.addEventListener("input", () => {
    for (const row of lines.children) row.hidden = !shown(row.textContent);
  });
  if (section.dataset.follow === "yes") {
    replica?.addEventListener("change", follow);
    status?.addEventListener("change", follow);
    follow();
  } else {
    replica?.addEventListener("change", poll);
    poll();
    setInterval(poll, 3000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("section.live").forEach(startLive);
  document.querySelectorAll("section.logs").forEach(startLogs);
  document.querySelectorAll("a.live-pick").forEach((a) => a.addEventListener("click", () => {
    // An endpoint page shows one version live at a time: reload the view on another.
    const url = new URL(window.location.href);
    url.searchParams.set("live", a.dataset.service);
    window.location.assign(url.toString());
  }));
});
