// Engineer page: procedures with parameters and scenarios, simulator speed, fault injection, truth.
"use strict";
const say = (text, ok = false) => { const m = $("#message"); m.textContent = text; m.classList.remove("hidden"); m.style.borderColor = ok ? "#1b7f3a" : ""; };
const bench = () => $("#bench").value;
async function init() {
  const me = await whoami();
  if (me.role !== "engineer") { say("This page is for engineers: log in with the engineer role."); return; }
  const benches = await api("/api/benches");
  $("#bench").replaceChildren(...benches.map((b) => el("option", { value: b.id }, b.id)));
  const procedures = await api("/api/procedures");
  $("#procedure").replaceChildren(...procedures.map((p) => { const o = el("option", { value: p.key }, p.key); if (p.default) o.selected = true; return o; }));
  const scenarios = await api("/api/scenarios");
  $("#scenario").append(...scenarios.map((s) => el("option", { value: s }, s)));
  setInterval(refreshTruth, 2000);
}
async function refreshTruth() {
  try { const t = await api(`/api/benches/${bench()}/truth`); $("#truth").textContent = JSON.stringify(t, null, 1).slice(0, 3000); }
  catch (err) { $("#truth").textContent = err.message; }
}
$("#start").addEventListener("click", async () => {
  const params = {};
  for (const line of $("#params").value.split("\n")) { const i = line.indexOf("="); if (i > 0) params[line.slice(0, i).trim()] = line.slice(i + 1).trim(); }
  try { await api(`/api/benches/${bench()}/start`, { method: "POST", body: { serial: $("#serial").value, procedure: $("#procedure").value, params, scenario: $("#scenario").value || null } });
    location.href = `/?bench=${encodeURIComponent(bench())}`; } catch (err) { say(`Start refused: ${err.message}`); }
});
$("#set-speed").addEventListener("click", async () => {
  const v = $("#speed").value;
  try { await api(`/api/benches/${bench()}/speed`, { method: "POST", body: { speed: v === "" ? null : Number(v) } }); say(`speed set to ${v || "max"}`, true); } catch (err) { say(err.message); }
});
$("#inject").addEventListener("click", async () => {
  try { const r = await api(`/api/benches/${bench()}/fault`, { method: "POST", body: JSON.parse($("#fault").value) }); say(`fault queued: ${JSON.stringify(r.queued)}`, true); } catch (err) { say(err.message); }
});
$("#logout").addEventListener("click", logout);
init().catch(() => {});
