// Operator screen: scan, start, watch, answer, verdict. Live state arrives by server-sent events.
"use strict";
const params = new URLSearchParams(location.search);
let benchId = params.get("bench");
let current = null;        // newest snapshot of the bench
let chart = [];            // [t, bms_soc, ref_soc]
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
    if (snap.chart_from === 0) chart = [];
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
  $("#remaining").textContent = r.remaining_s === null ? "–" : "≈" + hms(r.remaining_s);
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
  if (p.input) {
    $("#prompt-value").type = p.input.type === "number" ? "number" : "text";
    $("#prompt-value").value = ""; $("#prompt-value").focus();
  } else {
    const buttons = p.choices.map((c) => { const b = el("button", { type: "button", class: "primary" }, c); b.onclick = () => answer(p.id, c); return b; });
    $("#prompt-choices").replaceChildren(...buttons);
    buttons[0].focus();
  }
}

async function answer(id, value) {
  try { await api(`/api/benches/${benchId}/answer`, { method: "POST", body: { prompt_id: id, answer: String(value) } }); }
  catch (err) { showRefusal(err.message); }
}

function renderChart() {
  const svg = $("#chart"), W = 600, H = 220;
  if (!chart.length) { svg.replaceChildren(); return; }
  const tMax = Math.max(chart[chart.length - 1][0], 1);
  const X = (t) => (t / tMax) * W, Y = (soc) => H - (soc / 100) * H;
  const ns = "http://www.w3.org/2000/svg";
  const path = (points, attrs) => { const p = document.createElementNS(ns, "path"); p.setAttribute("d", points); for (const [k, v] of Object.entries(attrs)) p.setAttribute(k, v); return p; };
  const ref = chart.filter((p) => p[2] !== null), bms = chart.filter((p) => p[1] !== null);
  const line = (pts, i) => pts.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[i]).toFixed(1)}`).join("");
  const parts = [];
  if (ref.length) {
    const upper = ref.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(Math.min(100, p[2] + 3)).toFixed(1)}`).join("");
    const lower = ref.slice().reverse().map((p) => `L${X(p[0]).toFixed(1)},${Y(Math.max(0, p[2] - 3)).toFixed(1)}`).join("");
    parts.push(path(upper + lower + "Z", { fill: "#2ecc7133", stroke: "none" }));
    parts.push(path(line(ref, 2), { fill: "none", stroke: "#000", "stroke-width": 1.5 }));
  }
  if (bms.length) parts.push(path(line(bms, 1), { fill: "none", stroke: "#1f5fbf", "stroke-width": 2 }));
  svg.replaceChildren(...parts);
}

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
  const link = $("#verdict-report");
  link.classList.toggle("hidden", !r.report);
  if (r.report) link.href = r.report;
  $("#verdict-next").focus();
}

function showRefusal(text) { const n = $("#refusal"); n.textContent = text; n.dataset.local = "1"; n.classList.remove("hidden"); }

async function start() {
  $("#refusal").dataset.local = ""; $("#refusal").classList.add("hidden");
  try {
    await api(`/api/benches/${benchId}/start`, { method: "POST", body: { serial: $("#serial").value, procedure: $("#procedure").value } });
    dismissedVerdictFor = null;
  } catch (err) { if (err.message !== "login") showRefusal(`Start refused: ${err.message}`); }
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
  dismissedVerdictFor = current && current.run.run_id; $("#verdict").classList.add("hidden");
  $("#serial").value = ""; $("#serial").focus();
});
$("#logout").addEventListener("click", logout);
init().catch((err) => { if (err.message !== "login") showRefusal(err.message); });
