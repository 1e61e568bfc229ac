-- The status page (served at /): static HTML and script, given to the
-- server once at start. It loads Chart.js from the engine (/chart.js) and
-- polls /api/batches and /api/status every second; as Spark's Streaming tab,
-- each metric has a timeline and a histogram. It writes the number of points
-- its charts plotted into #plotted and the newest batch time into #newest
-- (the specs read them from Chromium's DOM).
return [==[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dstream status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.summary { color: #555; }
table { border-collapse: collapse; }
td, th { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; font-size: 0.9em; }
th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
table.charts td { vertical-align: middle; }
.chart { width: 480px; height: 150px; position: relative; }
.hist { width: 300px; height: 150px; position: relative; }
.name { text-align: left; width: 12em; }
.avg { color: #555; font-size: 0.85em; }
pre { background: #f8f8f8; padding: 0.7em; font-size: 0.85em; overflow-x: auto; }
.err { color: #a00; }
.note { color: #a60; }
</style>
</head>
<body>
<h1 id="title">dstream</h1>
<div class="summary">batch interval <span id="interval">?</span>,
<span id="batches">0</span> batches completed, <span id="records">0</span> records,
<span id="errcount">0</span> receiver errors; updated <span id="updated">never</span>.
Points plotted: <span id="plotted">0</span>, newest batch: <span id="newest">none</span>.</div>
<div id="nochart" class="note" hidden>Chart.js is not installed here (Debian: libjs-chart.js):
no charts, the tables still update.</div>

<h2>Statistics of the last batches</h2>
<table class="charts">
<thead><tr><th class="l">Metric</th><th class="l">Timeline</th><th class="l">Histogram</th></tr></thead>
<tbody id="charts"></tbody>
</table>

<h2>Receivers and sources</h2>
<table id="receivers"><thead><tr><th class="l">Source</th><th>Records</th><th>Errors</th></tr></thead><tbody></tbody></table>
<h3>Errors</h3>
<table id="errors"><thead><tr><th class="l">Time</th><th class="l">Source</th><th class="l">Message</th></tr></thead>
<tbody></tbody></table>

<h2>Keyed state</h2>
<table id="state"><thead><tr><th class="l">Stream</th><th>Keys</th></tr></thead><tbody></tbody></table>

<h2>Recent batches</h2>
<table id="recent"><thead><tr><th class="l">Batch time</th><th>Records</th><th>Scheduling delay</th>
<th>Processing time</th><th>Total delay</th></tr></thead><tbody></tbody></table>

<h2>Stages</h2>
<pre id="explain"></pre>

<script src="/chart.js"></script>
<script>
"use strict";
var METRICS = [
  {key: "inputRate", title: "Input rate", unit: "records/s"},
  {key: "schedulingDelay", title: "Scheduling delay", unit: "ms"},
  {key: "processingDelay", title: "Processing time", unit: "ms"},
  {key: "totalDelay", title: "Total delay", unit: "ms"}
];
var intervalMs = 1000;
var charts = {};
var haveChart = typeof Chart !== "undefined";

function clock(ms) {
  var d = new Date(ms);
  function p(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  return p(d.getHours(), 2) + ":" + p(d.getMinutes(), 2) + ":" + p(d.getSeconds(), 2) + "." +
    p(d.getMilliseconds(), 3);
}
function value(key, b) {
  if (key === "inputRate") return b.numRecords / (intervalMs / 1000);
  return b[key] || 0;
}
function rows(id, list, cells) {
  var body = document.querySelector("#" + id + " tbody");
  while (body.firstChild) body.removeChild(body.firstChild);
  list.forEach(function (item) {
    var tr = document.createElement("tr");
    cells(item).forEach(function (c, i) {
      var td = document.createElement("td");
      if (i === 0 || c.left) td.className = "l";
      td.textContent = c.text !== undefined ? c.text : String(c);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
}
function el(tag, attrs, parent) {
  var e = document.createElement(tag);
  Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  if (parent) parent.appendChild(e);
  return e;
}
function makeRows() {
  var body = document.getElementById("charts");
  METRICS.forEach(function (m) {
    var tr = el("tr", {}, body), name = el("td", {"class": "name"}, tr);
    name.appendChild(document.createTextNode(m.title));
    el("br", {}, name);
    el("span", {"class": "avg", id: "avg-" + m.key}, name);
    el("canvas", {id: "t-" + m.key}, el("div", {"class": "chart"}, el("td", {}, tr)));
    el("canvas", {id: "h-" + m.key}, el("div", {"class": "hist"}, el("td", {}, tr)));
  });
}
function makeCharts() {
  if (!haveChart) { document.getElementById("nochart").hidden = false; return; }
  METRICS.forEach(function (m) {
    var opts = {animation: false, responsive: true, maintainAspectRatio: false,
      plugins: {legend: {display: false}},
      scales: {y: {beginAtZero: true, title: {display: true, text: m.unit}}}};
    charts["t-" + m.key] = new Chart(document.getElementById("t-" + m.key), {type: "line",
      data: {labels: [], datasets: [{data: [], borderColor: "#1f77b4", backgroundColor: "#1f77b4",
        pointRadius: 2, borderWidth: 1}]},
      options: opts});
    charts["h-" + m.key] = new Chart(document.getElementById("h-" + m.key), {type: "bar",
      data: {labels: [], datasets: [{data: [], backgroundColor: "#8fb9dc"}]},
      options: {animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
        plugins: {legend: {display: false}},
        scales: {x: {beginAtZero: true, title: {display: true, text: "batches"}}}}});
  });
}
function histogram(values) {
  var bins = 10, lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
  if (hi === lo) hi = lo + 1;
  var width = (hi - lo) / bins, counts = [], labels = [];
  for (var i = 0; i < bins; i++) { counts.push(0); labels.push((lo + i * width).toFixed(1)); }
  values.forEach(function (v) { counts[Math.min(bins - 1, Math.floor((v - lo) / width))]++; });
  return {labels: labels, counts: counts};
}
function drawBatches(batches) {
  var plotted = 0;
  METRICS.forEach(function (m) {
    var values = batches.map(function (b) { return value(m.key, b); });
    var avg = values.length ? values.reduce(function (a, b) { return a + b; }, 0) / values.length : 0;
    document.getElementById("avg-" + m.key).textContent =
      values.length ? "avg " + avg.toFixed(1) + " " + m.unit : "";
    if (!haveChart || values.length === 0) return;
    var t = charts["t-" + m.key], h = charts["h-" + m.key], hist = histogram(values);
    t.data.labels = batches.map(function (b) { return clock(b.batchTime); });
    t.data.datasets[0].data = values;
    t.update();
    h.data.labels = hist.labels;
    h.data.datasets[0].data = hist.counts;
    h.update();
    plotted += t.getDatasetMeta(0).data.length;
  });
  document.getElementById("plotted").textContent = String(plotted);
  if (batches.length)
    document.getElementById("newest").textContent = String(batches[batches.length - 1].batchTime);
  rows("recent", batches.slice(-20).reverse(), function (b) {
    return [clock(b.batchTime) + " (" + b.batchTime + ")", b.numRecords, b.schedulingDelay + " ms",
      b.processingDelay + " ms", b.totalDelay + " ms"];
  });
}
function drawStatus(s) {
  intervalMs = s.batchInterval || intervalMs;
  document.getElementById("title").textContent = "dstream: " + s.name;
  document.title = "dstream: " + s.name;
  document.getElementById("interval").textContent = intervalMs + " ms";
  document.getElementById("batches").textContent = String(s.batches);
  document.getElementById("errcount").textContent = String(s.receiverErrors);
  var total = 0;
  s.receivers.forEach(function (r) { total += r.records; });
  document.getElementById("records").textContent = String(total);
  rows("receivers", s.receivers, function (r) { return [r.source, r.records, r.errors]; });
  rows("errors", s.errors.slice().reverse(), function (e) {
    return [clock(e.time), {text: e.source, left: true}, {text: e.message, left: true}];
  });
  rows("state", s.stateSizes, function (st) { return [st.stream, st.keys]; });
  document.getElementById("explain").textContent = s.explain;
}
function get(path) {
  return fetch(path, {cache: "no-store"}).then(function (r) {
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  });
}
function refresh() {
  get("/api/status").then(function (s) {
    drawStatus(s);
    return get("/api/batches");
  }).then(function (b) {
    drawBatches(b);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  }).catch(function (e) {
    document.getElementById("updated").textContent = "failed (" + e.message + "); the pipeline may have stopped";
  }).then(function () { setTimeout(refresh, 1000); });
}
makeRows();
makeCharts();
refresh();
</script>
</body>
</html>
]==]
