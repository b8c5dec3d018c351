"""Who may do what at the operator station, and from where.

Rules (issue 10 item 5):
* on a loopback address the station trusts the local machine: a name is enough to log in,
  unless the station owner configured a secret for the role;
* on any other address a secret is required (read from an environment variable the owner names;
  there is no built-in default) and the server refuses to start without one;
* roles: ``operator`` (start, answer prompts, stop) and ``engineer`` (also procedures,
  parameters, scenarios, speed, fault injection, simulator ground truth);
* no cross-origin access: state-changing requests and the live stream must come from the
  station's own origin (no CORS headers are ever sent), and on loopback the Host header must be
  a loopback name (DNS-rebinding defence).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from dataclasses import dataclass
from typing import Literal

from bench.errors import ConfigError

Role = Literal["operator", "engineer"]
ROLES: tuple[Role, ...] = ("operator", "engineer")
SESSION_COOKIE = "bench_session"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role == "engineer" or role == "operator"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"


class AccessPolicy:
    """Secrets per role, sessions, and the origin/host rules for one server."""

    def __init__(self, host: str, port: int, *, operator_secret: str | None = None,
                 engineer_secret: str | None = None, extra_hosts: tuple[str, ...] = ()) -> None:
        self.loopback = is_loopback(host)
        self.secrets: dict[Role, str] = {}
        if operator_secret:
            self.secrets["operator"] = operator_secret
        if engineer_secret:
            self.secrets["engineer"] = engineer_secret
        if not self.loopback and not self.secrets:
            raise ConfigError(
                f"refusing to listen on {host}: beyond 127.0.0.1 the station needs a token; set the "
                "environment variable named by --token-env (and optionally --engineer-token-env)",
                field="--host")
        names = {"127.0.0.1", "localhost", "[::1]"} if self.loopback else set()
        self.allowed_hosts = {f"{n}:{port}" for n in names} | names | set(extra_hosts)
        self._sessions: dict[str, User] = {}
        self._lock = threading.Lock()

    # -- credentials ---------------------------------------------------------------------------
    def login(self, name: str, role: Role, password: str) -> User:
        """Check a login; raise PermissionError with the reason when refused."""
        name = name.strip()
        if not name or len(name) > 60:
            raise PermissionError("give your name or badge number (1-60 characters)")
        if role not in ROLES:
            raise PermissionError(f"unknown role {role!r}")
        secret = self.secrets.get(role)
        if secret is not None:
            if not hmac.compare_digest(password.encode(), secret.encode()):
                raise PermissionError(f"wrong password for the {role} role")
        elif not self.loopback:
            raise PermissionError(f"the {role} role has no password configured on this station")
        return User(name=name, role=role)

    def bearer(self, token: str, name: str | None) -> User | None:
        """Scripts: ``Authorization: Bearer <secret>``; the role is the one the secret belongs to."""
        roles: tuple[Role, ...] = ("engineer", "operator")
        for role in roles:
            secret = self.secrets.get(role)
            if secret is not None and hmac.compare_digest(token.encode(), secret.encode()):
                return User(name=(name or "api").strip()[:60] or "api", role=role)
        return None

    # -- sessions ------------------------------------------------------------------------------
    def open_session(self, user: User) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = user
        return sid

    def session_user(self, sid: str | None) -> User | None:
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    def close_session(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    # -- origin --------------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        if not self.loopback:
            return True  # the token protects a server bound to a routable address
        return (host_header or "") in self.allowed_hosts

    @staticmethod
    def same_origin(origin: str | None, host_header: str | None, scheme: str) -> bool:
        """An absent Origin is a non-browser client (it cannot carry our SameSite cookie anyway)."""
        if origin is None:
            return True
        return origin in (f"{scheme}://{host_header}", f"http://{host_header}", f"https://{host_header}")
