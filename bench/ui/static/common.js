// Shared helpers of the station pages (no framework, no build step).
"use strict";
const api = async (path, options = {}) => {
  const init = { credentials: "same-origin", headers: { "Content-Type": "application/json" }, ...options };
  if (init.body && typeof init.body !== "string") init.body = JSON.stringify(init.body);
  const response = await fetch(path, init);
  if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("login"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
  return data;
};
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "class") node.className = v; else node.setAttribute(k, v); }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};
const hms = (s) => { if (s === null || s === undefined) return "–"; s = Math.max(0, Math.round(s));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`; };
const fmt = (v, digits = 2) => (typeof v === "number" && isFinite(v)) ? v.toFixed(digits) : "–";
async function whoami() {
  const me = await api("/api/whoami");
  const who = $("#who"); if (who) who.textContent = `${me.name} (${me.role})`;
  document.querySelectorAll(".engineer-only").forEach((n) => n.classList.toggle("hidden", me.role !== "engineer"));
  return me;
}
async function logout() { await api("/api/logout", { method: "POST" }); location.href = "/login"; }
// Bench time and wall time differ on a simulated bench (it runs faster than real time): show both.
function remainingText(r) {
  if (r.remaining_s === null || r.remaining_s === undefined) return "–";
  const wall = r.remaining_wall_s;
  if (wall === null || wall === undefined || Math.abs(wall - r.remaining_s) < 0.1 * r.remaining_s + 1) return "≈" + hms(r.remaining_s);
  return `≈${hms(r.remaining_s)} bench · ≈${hms(wall)} wall`;
}
