// Depot overview: every bench's state live (one event stream per bench), newest runs, pack history.
"use strict";
const cards = {};
function benchCard(s) {
  const r = s.run, card = cards[s.id];
  const label = s.state === "waiting" ? "waiting for operator" : s.state;
  const eta = r.remaining_s === null ? "" : ` · remaining ${remainingText(r)}`;
  card.replaceChildren(
    el("h3", {}, el("a", { href: `/?bench=${encodeURIComponent(s.id)}` }, s.id), " ", el("span", { class: `state ${s.state}` }, label)),
    el("div", { class: "muted" }, `${s.station}${s.simulated ? " (simulated)" : ""}${s.production ? " · production" : ""}`),
    el("div", {}, r.serial ? `${r.serial} · ${r.procedure} · step ${r.step || "–"}` : "no run"),
    el("div", { class: "bar" }, Object.assign(el("div"), { style: `width:${Math.round(100 * (r.progress || 0))}%` })),
    el("div", {}, `elapsed ${hms(r.elapsed_s)}${eta}`),
    el("div", {}, r.verdict ? `verdict ${r.verdict.toUpperCase()}${r.abort_reason ? " — " + r.abort_reason : ""}` : ""),
    el("div", { class: "refusal" + (s.error ? "" : " hidden") }, s.error || ""));
}
async function loadRuns() {
  try {
    const runs = await api("/api/runs?limit=20");
    $("#runs").replaceChildren(el("tr", {}, ...["started", "bench", "pack", "procedure", "verdict", "operator"].map((h) => el("th", {}, h))),
      ...runs.map((r) => { const serial = el("a", { href: "#" }, r.pack_serial); serial.onclick = (e) => { e.preventDefault(); history(r.pack_serial); };
        return el("tr", {}, el("td", {}, r.started_at.replace("T", " ").slice(0, 19)), el("td", {}, r.station), el("td", {}, serial),
          el("td", {}, r.procedure_name), el("td", {}, el("a", { href: `/runs/${r.run_id}/report`, target: "_blank" }, r.verdict)), el("td", {}, r.operator)); }));
  } catch (err) { if (err.message !== "login") { $("#error").textContent = err.message; $("#error").classList.remove("hidden"); } }
}
async function history(serial) {
  $("#history-serial").value = serial;
  const h = await api(`/api/packs/history?serial=${encodeURIComponent(serial)}`);  // a serial may hold "/"
  const n = (v, d = 1) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
  $("#history").replaceChildren(el("tr", {}, ...["date", "bench", "procedure", "verdict", "SOH as received %", "SOH %", "reference capacity Ah", "BMS learned capacity Ah"].map((x) => el("th", {}, x))),
    ...h.visits.map((v) => el("tr", {}, el("td", {}, v.started_at.slice(0, 10)), el("td", {}, v.station), el("td", {}, v.procedure_name), el("td", {}, v.verdict),
      el("td", {}, n(v.as_received_soh_pct)), el("td", {}, n(v.soh_pct)), el("td", {}, n(v.reference_capacity_ah)), el("td", {}, n(v.bms_learned_capacity_ah)))));
}
async function init() {
  await whoami();
  const benches = await api("/api/benches");
  for (const b of benches) {
    cards[b.id] = el("div", { class: "card", id: `bench-${b.id}` }); $("#benches").append(cards[b.id]); benchCard(b);
    let last = b.state;
    const source = new EventSource(`/api/benches/${encodeURIComponent(b.id)}/events`);
    source.onmessage = (m) => { const s = JSON.parse(m.data); benchCard(s); if (s.state !== last && s.state === "finished") loadRuns(); last = s.state; };
  }
  loadRuns();
}
$("#history-go").addEventListener("click", () => history($("#history-serial").value));
$("#logout").addEventListener("click", logout);
init().catch(() => {});
