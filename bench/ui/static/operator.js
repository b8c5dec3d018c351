// Operator screen: scan, start, watch, answer, verdict. Live state arrives by server-sent events.
"use strict";
const params = new URLSearchParams(location.search);
let benchId = params.get("bench");
let current = null;        // newest snapshot of the bench
let chart = [];            // buckets: [t (s), bms_min, bms_max, ref_min, ref_max] over the whole run
let shownVerdictFor = null;
let dismissedVerdictFor = null;
window.__latencies = [];   // ms from the engine's sample to this page (benchmark)

async function init() {
  await whoami();
  const benches = await api("/api/benches");
  if (!benchId || !benches.some((b) => b.id === benchId)) benchId = benches[0].id;
  $("#bench-tabs").replaceChildren(...benches.map((b) => el("a", { href: `/?bench=${encodeURIComponent(b.id)}` }, b.id)));
  const procedures = await api("/api/procedures");
  $("#procedure").replaceChildren(...procedures.map((p) => { const o = el("option", { value: p.key }, p.key); if (p.default) o.selected = true; return o; }));
  $("#bench-name").textContent = `bench ${benchId}`;
  connect();
}

function connect() {
  const source = new EventSource(`/api/benches/${encodeURIComponent(benchId)}/events`);
  source.onmessage = (message) => {
    const snap = JSON.parse(message.data);
    if (snap.run.sample_wall_ms) window.__latencies.push(Date.now() - snap.run.sample_wall_ms);
    chart.length = Math.min(chart.length, snap.chart_from);  // the last bucket may have grown: replace it
    chart.push(...snap.chart_points);
    current = snap;
    render(snap);
  };
}

function render(s) {
  const r = s.run, busy = s.state === "running" || s.state === "waiting";
  $("#state").textContent = s.state; $("#state").className = `state ${s.state}`;
  $("#run-serial").textContent = r.serial || "–";
  $("#run-retests").textContent = r.serial ? (r.retest_count ? `retest #${r.retest_count}` : "first test") : "–";
  $("#step").textContent = r.step || "–";
  $("#step-description").textContent = r.step_description || "";
  $("#progress").style.width = `${Math.round(100 * (r.progress || 0))}%`;
  $("#elapsed").textContent = hms(r.elapsed_s);
  $("#remaining").textContent = remainingText(r);
  const x = r.sample || {};
  $("#pack-v").textContent = fmt(x.pack_v); $("#current").textContent = fmt(x.current, 1);
  $("#temp-min").textContent = fmt(x.temp_min, 1); $("#temp-max").textContent = fmt(x.temp_max, 1);
  $("#bms-soc").textContent = fmt(x.bms_soc, 1); $("#ref-soc").textContent = fmt(x.ref_soc, 1);
  $("#cells").replaceChildren(...(x.cells || Array(8).fill(null)).map((v, i) => el("div", {}, `${i + 1}: ${fmt(v, 3)}`)));
  $("#warnings").textContent = (r.warnings || []).join(" · ");
  $("#checks").replaceChildren(...(r.checks || []).map((c) => el("tr", {}, el("td", {}, c.passed ? "✔" : "✘"), el("td", {}, c.text))));
  $("#stop").disabled = !busy;
  $("#start").disabled = busy;
  $("#refusal").classList.toggle("hidden", !(s.state === "faulted" && s.error) && $("#refusal").dataset.local !== "1");
  if (s.state === "faulted" && s.error) { $("#refusal").textContent = `Bench faulted: ${s.error}`; $("#refusal").classList.remove("hidden"); }
  renderPrompt(s.prompt);
  renderChart();
  renderVerdict(s);
}

function renderPrompt(p) {
  const box = $("#prompt");
  if (!p) { box.classList.add("hidden"); box.dataset.id = ""; return; }
  if (box.dataset.id === String(p.id)) return;
  box.dataset.id = String(p.id);
  box.classList.remove("hidden");
  $("#prompt-message").textContent = p.message;
  $("#prompt-input").classList.toggle("hidden", !p.input);
  $("#prompt-choices").replaceChildren();
  promptError("");
  if (p.input) {
    // text + inputmode, not type=number: Chromium's number field turns "5,2" into 52 or ""
    $("#prompt-value").type = "text";
    $("#prompt-value").inputMode = p.input.type === "number" ? "decimal" : "text";
    $("#prompt-value").value = ""; $("#prompt-value").focus();
  } else {
    // no choice gets the focus: an answer is a deliberate click or Tab + Enter, never a stray
    // Enter (a barcode scanner ends every scan with one)
    const buttons = p.choices.map((c) => { const b = el("button", { type: "button", class: "primary" }, c); b.onclick = () => answer(p.id, c); return b; });
    $("#prompt-choices").replaceChildren(...buttons);
  }
}

function promptError(text) { const n = $("#prompt-error"); n.textContent = text; n.classList.toggle("hidden", !text); }

async function answer(id, value) {
  try {
    await api(`/api/benches/${benchId}/answer`, { method: "POST", body: { prompt_id: id, answer: String(value) } });
    promptError("");
  } catch (err) { if (err.message !== "login") promptError(err.message); }
}

// SOC chart: every bucket's min..max (nothing the run went through is thinned away), the
// reference SOC with its ±3 % band, axes in bench time (h:mm) and SOC (%). Drawn at the box's own
// pixel width (a stretched fixed viewBox would stretch the axis labels with it).
function renderChart() {
  const svg = $("#chart"), W = Math.max(300, Math.round(svg.clientWidth || 600)), H = 220, L = 44, B = 28, T = 20, R = 8, ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; return n; };
  const tMax = Math.max(chart.length ? chart[chart.length - 1][0] : 0, 60);
  const X = (t) => (L + (t / tMax) * (W - L - R)).toFixed(1), Y = (soc) => (T + (1 - Math.max(0, Math.min(100, soc)) / 100) * (H - T - B)).toFixed(1);
  const parts = [];
  for (const soc of [0, 25, 50, 75, 100]) {
    parts.push(node("line", { x1: L, x2: W - R, y1: Y(soc), y2: Y(soc), stroke: "#dde3ea" }));
    parts.push(node("text", { x: L - 4, y: Number(Y(soc)) + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6d7e" }, String(soc)));
  }
  const step = niceStep(tMax / 5);
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    parts.push(node("line", { x1: X(t), x2: X(t), y1: T, y2: H - B, stroke: "#eef1f4" }));
    parts.push(node("text", { x: X(t), y: H - B + 14, "text-anchor": "middle", "font-size": 11, fill: "#5d6d7e" }, hm(t)));
  }
  parts.push(node("text", { x: 4, y: 11, "font-size": 11, fill: "#17202a", class: "axis-title" }, "SOC (%)"));
  parts.push(node("text", { x: W - R, y: H - 2, "text-anchor": "end", "font-size": 11, fill: "#17202a", class: "axis-title" }, "bench time (h:mm)"));
  const band = (rows, lo, hi, pad) => {
    if (!rows.length) return "";
    const up = rows.map((p, j) => `${j ? "L" : "M"}${X(p[0])},${Y(p[hi] + pad)}`).join("");
    const down = rows.slice().reverse().map((p) => `L${X(p[0])},${Y(p[lo] - pad)}`).join("");
    return up + down + "Z";
  };
  const ref = chart.filter((p) => p[3] !== null), bms = chart.filter((p) => p[1] !== null);
  if (ref.length) {
    parts.push(node("path", { d: band(ref, 3, 4, 3), fill: "#2ecc7133", stroke: "none" }));
    parts.push(node("path", { d: ref.map((p, j) => `${j ? "L" : "M"}${X(p[0])},${Y((p[3] + p[4]) / 2)}`).join(""), fill: "none", stroke: "#000", "stroke-width": 1.5 }));
  }
  if (bms.length) parts.push(node("path", { d: band(bms, 1, 2, 0), fill: "#1f5fbf55", stroke: "#1f5fbf", "stroke-width": 2, "stroke-linejoin": "round" }));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren(...parts);
}
window.addEventListener("resize", () => renderChart());

function niceStep(raw) {
  for (const s of [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]) if (s >= raw) return s;
  return 86400 * Math.ceil(raw / 86400);
}
const hm = (s) => `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}`;

function renderVerdict(s) {
  const r = s.run, box = $("#verdict");
  if (s.state !== "finished" || !r.verdict || r.run_id === dismissedVerdictFor) { box.classList.add("hidden"); return; }
  if (shownVerdictFor === r.run_id && !box.classList.contains("hidden")) return;
  shownVerdictFor = r.run_id;
  box.className = r.verdict;
  $("#verdict-word").textContent = r.verdict.toUpperCase();
  $("#verdict-serial").textContent = `${r.serial} · ${r.procedure} · ${r.retest_count ? "retest #" + r.retest_count : "first test"}`;
  $("#verdict-reason").textContent = r.abort_reason ? `Reason: ${r.abort_reason}` : "";
  // an output the bench could not confirm off: the one thing the operator must not miss
  $("#verdict-danger").textContent = r.outputs_warning || "";
  $("#verdict-danger").classList.toggle("hidden", !r.outputs_warning);
  $("#verdict-checks").replaceChildren(...(r.failed_checks || []).map((t) => el("li", {}, t)));
  $("#verdict-action").textContent = r.next_action || "";
  const link = $("#verdict-report");
  link.classList.toggle("hidden", !r.report);
  if (r.report) link.href = r.report;
  $("#verdict-next").focus();
}

function showRefusal(text) { const n = $("#refusal"); n.textContent = text; n.dataset.local = "1"; n.classList.remove("hidden"); }

let starting = false;
async function start() {
  const serial = $("#serial").value.trim();
  const busy = current && (current.state === "running" || current.state === "waiting");
  // a second Enter (double press, or a scanner's CR+LF) for the pack already started is not a new start
  if (starting || (busy && serial === current.run.serial)) return;
  $("#refusal").dataset.local = ""; $("#refusal").classList.add("hidden");
  starting = true;
  try {
    await ready;  // a scan can come before the page has learnt its bench and procedures
    await api(`/api/benches/${benchId}/start`, { method: "POST", body: { serial, procedure: $("#procedure").value } });
    dismissedVerdictFor = null;
  } catch (err) { if (err.message !== "login") showRefusal(`Start refused: ${err.message}`); }
  finally { starting = false; }
}

// ---- barcode scanner: a keyboard that types a burst of characters and ends with Enter --------------
// A scan is routed to the serial field only, wherever the focus is: it never answers a prompt,
// never presses a focused button, never confirms a dialog (issue 18 item 4). A scan while a
// verdict is on screen starts the next pack; during a run it waits in the serial field.
// A "burst" is the keys typed since the last pause of PAUSE_MS; it is a scan when it has at least
// SCAN_MIN_CHARS characters typed SCAN_GAP_MS apart on average (people: 100-250 ms) and ends in Enter.
// Averaging, not a per-key gap, keeps one late key (a busy PC) from splitting a scan in two.
const SCAN_GAP_MS = 50, SCAN_MIN_CHARS = 6, PAUSE_MS = 300, SCAN_TRAILER_MS = 300;
let burst = null, lastScanAt = -Infinity;
function scanKeydown(e) {
  const now = performance.now();
  if (e.key === "Enter") {
    // CR+LF / double Enter right after a scan, with nothing typed in between (a next scan's own
    // Enter, however soon, is not a trailer)
    if (now - lastScanAt < SCAN_TRAILER_MS && !burst) { e.preventDefault(); e.stopImmediatePropagation(); return; }
    const b = burst;
    burst = null;
    const scan = b && b.chars.length >= SCAN_MIN_CHARS && now - b.last < PAUSE_MS
      && (b.last - b.first) / (b.chars.length - 1) <= SCAN_GAP_MS;
    if (!scan) return;  // a person's Enter: let it do what it does
    e.preventDefault(); e.stopImmediatePropagation();
    lastScanAt = now;
    const field = b.target, serial = $("#serial");
    // typed into the serial field: the field holds all of it; elsewhere: undo it where it landed
    if (field === serial) { onScan(serial.value); return; }
    if (field && "value" in field) field.value = b.before;
    onScan(b.chars);
    return;
  }
  if (e.key.length !== 1 || e.ctrlKey || e.altKey || e.metaKey) { burst = null; return; }
  if (!burst || now - burst.last > PAUSE_MS || e.target !== burst.target && burst.target) {
    const t = e.target, typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA");
    burst = { chars: "", first: now, last: now, target: typing ? t : null, before: typing ? t.value : "" };
  }
  burst.chars += e.key; burst.last = now;
}
document.addEventListener("keydown", scanKeydown, true);

function onScan(text) {
  const serial = $("#serial");
  if ($("#confirm-stop").open) $("#confirm-stop").close();  // a scan is never an answer to "stop?"
  serial.value = text.trim();
  const verdictShown = !$("#verdict").classList.contains("hidden");
  const busy = current && (current.state === "running" || current.state === "waiting");
  if (verdictShown) dismissVerdict();
  if (busy) { if (serial.value !== current.run.serial) showNote(`Scanned ${serial.value}: press Start when this run has ended.`); return; }
  start();
}

function showNote(text) { const n = $("#scan-note"); n.textContent = text; n.classList.toggle("hidden", !text); }
function dismissVerdict() {
  dismissedVerdictFor = current && current.run.run_id; $("#verdict").classList.add("hidden");
  showNote("");
}

$("#serial").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); start(); } });
$("#start").addEventListener("click", start);
$("#prompt-send").addEventListener("click", () => answer(Number($("#prompt").dataset.id), $("#prompt-value").value));
$("#prompt-value").addEventListener("keydown", (e) => { if (e.key === "Enter") $("#prompt-send").click(); });
$("#stop").addEventListener("click", () => { $("#confirm-stop").showModal(); $("#stop-cancel").focus(); });
$("#stop-cancel").addEventListener("click", () => $("#confirm-stop").close());
$("#stop-confirm").addEventListener("click", async () => {
  $("#confirm-stop").close();
  try { await api(`/api/benches/${benchId}/stop`, { method: "POST", body: { confirm: true } }); } catch (err) { showRefusal(err.message); }
});
// Escape never aborts: in the stop dialog it means "continue"; elsewhere it does nothing.
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("#confirm-stop").open) e.preventDefault(); });
$("#verdict-next").addEventListener("click", () => {
  dismissVerdict(); $("#serial").value = ""; $("#serial").focus();
});
$("#logout").addEventListener("click", logout);
const ready = init().catch((err) => { if (err.message !== "login") showRefusal(err.message); });
