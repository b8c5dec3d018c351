// Login: name (or a badge scan) + password/PIN; the role defaults to the account's own.
"use strict";
// a badge reader ends its code with Enter: that moves on to the PIN, it does not submit
$("#name").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); $("#password").focus(); } });
$("#login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/api/login", { method: "POST", body: { name: $("#name").value, role: $("#role").value || null, password: $("#password").value } });
    const next = new URLSearchParams(location.search).get("next");
    location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  } catch (err) { if (err.message !== "login") { $("#login-error").textContent = err.message; $("#login-error").classList.remove("hidden"); } }
});
