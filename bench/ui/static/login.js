// Login: name (badge) + role, and the password when the station owner configured one.
"use strict";
$("#login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/api/login", { method: "POST", body: { name: $("#name").value, role: $("#role").value, password: $("#password").value } });
    const next = new URLSearchParams(location.search).get("next");
    location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  } catch (err) { if (err.message !== "login") { $("#login-error").textContent = err.message; $("#login-error").classList.remove("hidden"); } }
});
