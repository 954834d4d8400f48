// loopline's own script: requests with the CSRF header, sign-in, action buttons, the runs
// table's keyboard, live refresh and lazily drawn charts. No framework; plotly.js draws.
"use strict";

// plotly reads a few HTML tags in the text it draws: names and titles are escaped to show as typed.
const plain = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body) {
  const headers = { "x-csrf-token": csrf() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

function say(element, message) {
  const out = element.querySelector(".error") || document.getElementById("action-error");
  if (out) out.textContent = message; else window.alert(message);
}

// Sign in and out ------------------------------------------------------------------------

function signIn(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/api/v1/session", { token: form.elements.token.value });
      window.location.assign(form.dataset.next || "/");
    } catch (error) { say(form, error.message); }
  });
}

// Buttons that call the API: data-method, data-url, optional data-body (JSON), data-confirm,
// data-reason (asks for a reason, sent as the body's "reason") and data-reload-on (a status
// that also means done: 409 for the move of a protected alias, which files a request).
function actionButton(button) {
  button.addEventListener("click", async () => {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    if (button.dataset.reason !== undefined) {
      const reason = window.prompt(button.dataset.reason || "Reason");
      if (reason === null) return;
      body.reason = reason;
    }
    try {
      const answer = await api(button.dataset.method, button.dataset.url, body);
      if (button.dataset.show && answer) {
        document.getElementById(button.dataset.show).textContent = JSON.stringify(answer, null, 2);
      } else if (button.dataset.then) {
        window.location.assign(button.dataset.then);
      } else {
        window.location.reload();
      }
    } catch (error) {
      if (String(error.status) === button.dataset.reloadOn) window.location.reload();
      else say(button.closest("section, form, main"), error.message);
    }
  });
}

// Buttons acting on every selected row: data-bulk-method and data-bulk-url (with {id}); a
// data-bulk-tag button asks for key=value and sends it as a tag.
function bulkButton(button) {
  button.addEventListener("click", async () => {
    const form = button.closest("form");
    const ids = Array.from(form.querySelectorAll('input[name="run"]:checked')).map((box) => box.value);
    if (!ids.length) { say(form, "select some rows first"); return; }
    if (button.dataset.confirm && !window.confirm(`${button.dataset.confirm} (${ids.length})`)) return;
    let body;
    if (button.dataset.bulkTag !== undefined) {
      const pair = window.prompt("Tag as key=value");
      if (!pair || !pair.includes("=")) return;
      const at = pair.indexOf("=");
      body = { tags: { [pair.slice(0, at).trim()]: pair.slice(at + 1).trim() } };
    }
    try {
      for (const id of ids) {
        await api(button.dataset.bulkMethod, button.dataset.bulkUrl.replace("{id}", encodeURIComponent(id)), body);
      }
      window.location.reload();
    } catch (error) { say(form, error.message); }
  });
}

// The runs table: arrow keys move between rows, Enter opens a run, Space selects it ---------

function keyboardTable(table) {
  const rows = () => Array.from(table.tBodies[0].rows).filter((r) => r.dataset.href);
  table.addEventListener("keydown", (event) => {
    const row = event.target.closest("tr");
    if (!row || !row.dataset.href) return;
    const all = rows();
    const at = all.indexOf(row);
    if (event.key === "ArrowDown" && at < all.length - 1) all[at + 1].focus();
    else if (event.key === "ArrowUp" && at > 0) all[at - 1].focus();
    else if (event.key === "Enter") window.location.assign(row.dataset.href);
    else if (event.key === " ") {
      const box = row.querySelector('input[type="checkbox"]');
      if (box && event.target === row) box.checked = !box.checked;
    } else return;
    event.preventDefault();
  });
}

// Live pages: the element with data-refresh is fetched again every N seconds and swapped in.

function liveRegion(region) {
  const seconds = Number(region.dataset.refresh);
  const tick = async () => {
    if (document.hidden) return;
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById(region.id);
    if (fresh) { region.replaceChildren(...fresh.childNodes); setUp(region); }
    // charts outside the region follow the run as it logs (drawn ones only: the rest wait)
    document.querySelectorAll(".chart[data-drawn]:not([data-zoomed])").forEach((chart) => drawSeries(chart));
  };
  window.setInterval(tick, seconds * 1000);
}

// Charts -----------------------------------------------------------------------------------

let plotlyLoading = null;
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/vendor/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error("plotly.js did not load"));
      document.head.appendChild(script);
    });
  }
  return plotlyLoading;
}

const chartOptions = () => {
  const form = document.getElementById("chart-options");
  if (!form) return { axis: "step", log: false, smoothing: 0 };
  return {
    axis: form.elements.axis.value,
    log: form.elements.log.checked,
    smoothing: Number(form.elements.smoothing.value),
  };
};

function smooth(values, weight) {
  if (!weight) return values;
  let last = null;
  return values.map((v) => {
    if (v === null) return null;
    last = last === null ? v : last * weight + (1 - weight) * v;
    return last;
  });
}

// A chart of one or more series: data-runs (comma-separated run ids), data-key, data-start
// (the run's start, for relative time) and data-names (labels of the runs).
async function drawSeries(element, range) {
  const { axis, log, smoothing } = chartOptions();
  const runs = element.dataset.runs.split(",");
  const names = (element.dataset.names || element.dataset.runs).split(",");
  const starts = (element.dataset.starts || "").split(",").map(Number);
  const wire = axis === "step" ? "step" : "time";
  const traces = [];
  const found = await Promise.all(runs.map((run) => {
    const params = new URLSearchParams({ key: element.dataset.key, axis: wire, buckets: element.dataset.buckets || "300" });
    if (range) { params.set("start", Math.floor(range[0])); params.set("end", Math.ceil(range[1])); }
    return api("GET", `/api/v1/runs/${encodeURIComponent(run)}/series?${params}`);
  }));
  found.forEach((series, i) => {
    const offset = axis === "relative" ? starts[i] || 0 : 0;
    const scale = axis === "relative" ? 1000 : 1;
    const x = series.buckets.map((b) => (b.x_last - offset) / scale);
    const xs = axis === "time" ? x.map((t) => new Date(t)) : x;
    const envelope = series.points > series.buckets.length && runs.length === 1;
    if (envelope) {
      traces.push({ x: xs, y: series.buckets.map((b) => b.max), mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false });
      traces.push({ x: xs, y: series.buckets.map((b) => b.min), mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(31,119,180,0.2)", name: "min–max", hoverinfo: "skip" });
    }
    const mode = series.buckets.length <= 60 ? "lines+markers" : "lines";
    traces.push({ x: xs, y: smooth(series.buckets.map((b) => b.last), smoothing), mode, name: plain(names[i]), line: { width: 1.5 } });
  });
  const Plotly = await plotly();
  const layout = {
    title: { text: plain(element.dataset.key), font: { size: 13 } },
    margin: { l: 50, r: 10, t: 30, b: 35 }, height: 260, showlegend: runs.length > 1 && runs.length <= 20,
    xaxis: { title: { text: axis === "relative" ? "seconds" : axis }, type: axis === "time" ? "date" : "linear" },
    yaxis: { type: log ? "log" : "linear" },
  };
  await Plotly.react(element, traces, layout, { displaylogo: false, responsive: true });
  element.dataset.drawn = "1";
  if (!element.dataset.zoomable) {
    element.dataset.zoomable = "1";
    element.on("plotly_relayout", (change) => {
      const lo = change["xaxis.range[0]"], hi = change["xaxis.range[1]"];
      if (chartOptions().axis !== "step") return; // finer data on zoom: by step
      if (lo !== undefined && hi !== undefined) { element.dataset.zoomed = "1"; drawSeries(element, [lo, hi]); }
      else if (change["xaxis.autorange"]) { delete element.dataset.zoomed; drawSeries(element); }
    });
  }
}

// A figure computed by the server: data-figure holds plotly's JSON (data and layout).
async function drawFigure(element) {
  const figure = JSON.parse(element.dataset.figure);
  const Plotly = await plotly();
  await Plotly.react(element, figure.data, { margin: { l: 60, r: 10, t: 30, b: 40 }, ...figure.layout }, { displaylogo: false, responsive: true });
  element.dataset.drawn = "1";
}

const lazily = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    lazily.unobserve(entry.target);
    const draw = entry.target.dataset.figure ? drawFigure : drawSeries;
    draw(entry.target).catch((error) => { entry.target.textContent = `could not draw: ${error.message}`; });
  }
}, { rootMargin: "200px" });

function chartFilter(input) {
  input.addEventListener("input", () => {
    const needle = input.value.toLowerCase();
    for (const chart of document.querySelectorAll(input.dataset.filter)) {
      chart.hidden = !chart.dataset.key.toLowerCase().includes(needle);
    }
  });
}

function setUp(root) {
  root.querySelectorAll("#sign-in").forEach(signIn);
  root.querySelectorAll("button[data-url]").forEach(actionButton);
  root.querySelectorAll("button[data-bulk-url]").forEach(bulkButton);
  root.querySelectorAll("table[data-keyboard]").forEach(keyboardTable);
  root.querySelectorAll(".chart, .plot").forEach((chart) => lazily.observe(chart));
  root.querySelectorAll("input[data-filter]").forEach(chartFilter);
}

document.addEventListener("DOMContentLoaded", () => {
  setUp(document);
  document.querySelectorAll("[data-refresh]").forEach(liveRegion);
  const signOut = document.querySelector('[data-action="sign-out"]');
  if (signOut) signOut.addEventListener("click", async () => {
    await api("DELETE", "/api/v1/session").catch(() => null);
    window.location.assign("/login");
  });
  const options = document.getElementById("chart-options");
  if (options) options.addEventListener("change", () => {
    document.querySelectorAll(".chart[data-drawn]").forEach((chart) => drawSeries(chart));
  });
});
