"""Who may do what at the operator station, and from where.

Rules (issue 10 item 5):
* "loopback" is decided from the addresses the server actually bound, never from the ``--host``
  string: ``--host ""`` binds every interface and is not loopback (issue 18 item 1);
* on a loopback address the station trusts the local machine: a name is enough to log in,
  unless the station owner configured a secret for the role;
* on any other address a secret is required (read from an environment variable the owner names;
  there is no built-in default) and the server refuses to start without one; the Host header
  must still name this machine (its bound address, host name, or a name given with
  ``--allowed-host``), so a rebinding DNS name cannot reach it either;
* roles: ``operator`` (start, answer prompts, stop) and ``engineer`` (also procedures,
  parameters, scenarios, speed, fault injection, simulator ground truth);
* no cross-origin access: state-changing requests and the live stream must come from the
  station's own origin (no CORS headers are ever sent), and on loopback the Host header must be
  a loopback name (DNS-rebinding defence).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import secrets
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.errors import ConfigError

Role = Literal["operator", "engineer"]
ROLES: tuple[Role, ...] = ("operator", "engineer")
SESSION_COOKIE = "bench_session"


def is_loopback(address: str) -> bool:
    """True for a loopback IP literal; a name or the empty string is *not* an address (resolve it)."""
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def resolve_bind(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) pairs a listener on ``host`` binds; ``""`` means every interface."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}", field="--host") from None
    seen: dict[tuple[int, str], None] = {}
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen[(int(family), str(sockaddr[0]))] = None
    return list(seen)


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind the listening sockets here, so the access rules see the addresses really bound."""
    sockets: list[socket.socket] = []
    try:
        for family, address in resolve_bind(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sockets.append(sock)
            sock.bind((address, port))
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"cannot listen on {host!r} port {port}: {exc.strerror or exc}",
                          field="--host") from None
    return sockets


def bound_addresses(sockets: Iterable[socket.socket]) -> list[str]:
    return [str(sock.getsockname()[0]) for sock in sockets]


def _host_names(addresses: Sequence[str]) -> set[str]:
    """Names a browser may legitimately put in the Host header for a server on ``addresses``."""
    names: set[str] = set()
    wildcard = any(ipaddress.ip_address(a.split("%")[0]).is_unspecified for a in addresses)
    concrete = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_unspecified]
    if wildcard or any(is_loopback(a) for a in addresses):
        names |= {"127.0.0.1", "localhost", "::1"}
    if wildcard:
        for name in {socket.gethostname(), socket.getfqdn()}:
            names.add(name)
            with contextlib.suppress(OSError):
                names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    names |= set(concrete)
    return {(f"[{n}]" if ":" in n else n).lower() for n in names if n}


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
                 engineer_secret: str | None = None, extra_hosts: tuple[str, ...] = (),
                 bound: Sequence[str] | None = None) -> None:
        # the addresses actually bound (or, before binding, what ``host`` resolves to): one
        # routable or wildcard address among them and the station is not loopback-only
        addresses = list(bound) if bound is not None else [a for _f, a in resolve_bind(host, port)]
        self.addresses = addresses
        self.loopback = bool(addresses) and all(is_loopback(a) for a in addresses)
        self.secrets: dict[Role, str] = {}
        if operator_secret:
            self.secrets["operator"] = operator_secret
        if engineer_secret:
            self.secrets["engineer"] = engineer_secret
        if not self.loopback and not self.secrets:
            raise ConfigError(
                f"refusing to listen on {host!r} ({', '.join(addresses) or 'no address'}): beyond "
                "loopback the station needs a token; set the "
                "environment variable named by --token-env (and optionally --engineer-token-env)",
                field="--host")
        names = _host_names(addresses) | {h.lower() for h in extra_hosts}
        self.allowed_hosts = {f"{n}:{port}" for n in names} | names
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
        """Loopback or not, the Host header must name this server (DNS-rebinding defence)."""
        return (host_header or "").lower() in self.allowed_hosts

    @staticmethod
    def same_origin(origin: str | None, host_header: str | None, scheme: str) -> bool:
        """An absent Origin is a non-browser client (it cannot carry our SameSite cookie anyway)."""
        if origin is None:
            return True
        return origin in (f"{scheme}://{host_header}", f"http://{host_header}", f"https://{host_header}")
