"""Who may do what at the operator station, and from where.

Rules (issue 10 item 5):
* "loopback" is decided from the addresses the server actually bound, never from the ``--host``
  string: ``--host ""`` binds every interface and is not loopback (issue 18 item 1);
* people log in to their own accounts (bench/ui/accounts.py: salted scrypt hashes, roles per
  account, badge + PIN), sessions expire and failed log-ins are throttled (issue 18 item 6);
  without an accounts file, a loopback station takes a self-declared name (or the role's secret);
* on any other address accounts or a secret are required (read from an environment variable the owner names;
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
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.errors import ConfigError
from bench.ui.accounts import Accounts, Role

ROLES: tuple[Role, ...] = ("operator", "engineer")
SESSION_COOKIE = "bench_session"
#: a session lasts at most a shift, and ends after this long without a request (issue 18 item 6)
SESSION_MAX_S = 12 * 3600.0
SESSION_IDLE_S = 2 * 3600.0
#: this many failed log-ins for one name, or from one client, within the window lock it for the window
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300.0


class LoginThrottled(PermissionError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Session:
    user: User
    created: float
    last_seen: float


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
    #: proved by an account's password/PIN (else a self-declared name on a loopback station)
    authenticated: bool = False

    def may(self, role: Role) -> bool:
        return self.role == "engineer" or role == "operator"

    @property
    def recorded_name(self) -> str:
        """The name as records carry it: a name nobody proved says so (a loopback station without
        an accounts file takes whatever name is typed)."""
        return self.name if self.authenticated else f"{self.name} (self-declared)"

    @property
    def label(self) -> str:
        return f"{self.recorded_name} ({self.role})"


class AccessPolicy:
    """Accounts or secrets, sessions, login throttling, and the origin/host rules for one server."""

    def __init__(self, host: str, port: int, *, operator_secret: str | None = None,
                 engineer_secret: str | None = None, extra_hosts: tuple[str, ...] = (),
                 bound: Sequence[str] | None = None, accounts: Accounts | None = None,
                 session_max_s: float = SESSION_MAX_S, session_idle_s: float = SESSION_IDLE_S) -> None:
        # the addresses actually bound (or, before binding, what ``host`` resolves to): one
        # routable or wildcard address among them and the station is not loopback-only
        addresses = list(bound) if bound is not None else [a for _f, a in resolve_bind(host, port)]
        self.addresses = addresses
        self.loopback = bool(addresses) and all(is_loopback(a) for a in addresses)
        self.accounts = accounts
        self.secrets: dict[Role, str] = {}
        if operator_secret:
            self.secrets["operator"] = operator_secret
        if engineer_secret:
            self.secrets["engineer"] = engineer_secret
        if not self.loopback and not self.secrets and accounts is None:
            raise ConfigError(
                f"refusing to listen on {host!r} ({', '.join(addresses) or 'no address'}): beyond "
                "loopback the station needs a token; give --accounts FILE (people) and/or set the "
                "environment variable named by --token-env (scripts)",
                field="--host")
        names = _host_names(addresses) | {h.lower() for h in extra_hosts}
        self.allowed_hosts = {f"{n}:{port}" for n in names} | names
        self.session_max_s, self.session_idle_s = session_max_s, session_idle_s
        self._sessions: dict[str, _Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def secured(self) -> bool:
        return self.accounts is not None or bool(self.secrets)

    # -- credentials ---------------------------------------------------------------------------
    def login(self, name: str, role: Role | None, password: str, client: str = "") -> User:
        """Check a login; raise PermissionError with the reason when refused.

        With an accounts file the name (or badge code) and password/PIN are checked against the
        account's salted hash and the role must be one of the account's. Without one, the old
        loopback rule holds: a self-declared name, or the role's shared secret when one is set.
        """
        name = name.strip()
        if not name or len(name) > 60:
            raise PermissionError("give your name or badge number (1-60 characters)")
        if role is not None and role not in ROLES:
            raise PermissionError(f"unknown role {role!r}")
        keys = [f"name:{name.casefold()}", f"client:{client}"]
        self._throttle(keys)
        if self.accounts is not None:
            account = self.accounts.authenticate(name, password)
            if account is None:
                self._failed(keys)
                raise PermissionError("wrong name, badge or password")
            chosen = role or account.roles[0]
            if chosen not in account.roles:
                raise PermissionError(f"{account.name} has no {chosen} role on this station")
            self._succeeded(keys)
            return User(name=account.name, role=chosen, authenticated=True)
        if not self.loopback:  # a shared role password says nothing about who typed it
            raise PermissionError("this station has no accounts: the owner adds them with "
                                  "`bench station account add` and serves with --accounts")
        chosen = role or "operator"
        secret = self.secrets.get(chosen)
        if secret is not None and not hmac.compare_digest(password.encode(), secret.encode()):
            self._failed(keys)
            raise PermissionError(f"wrong password for the {chosen} role")
        return User(name=name, role=chosen)

    def bearer(self, token: str, name: str | None) -> User | None:
        """Scripts: ``Authorization: Bearer <secret>``; the role is the one the secret belongs to.

        The name a script sends (``X-Bench-User``) is its own claim, so the record shows it as such.
        """
        roles: tuple[Role, ...] = ("engineer", "operator")
        for role in roles:
            secret = self.secrets.get(role)
            if secret is not None and hmac.compare_digest(token.encode(), secret.encode()):
                claimed = (name or "").strip()[:40]
                # the secret is proved; the name beside it is shown as the script's claim
                return User(name=f"{role} token" + (f" (claims {claimed})" if claimed else ""), role=role,
                            authenticated=True)
        return None

    # -- throttling ----------------------------------------------------------------------------
    def _throttle(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                recent = self._failures.get(key)
                if recent is None:
                    continue
                while recent and now - recent[0] > LOGIN_WINDOW_S:
                    recent.popleft()
                if len(recent) >= LOGIN_MAX_FAILURES:
                    wait = LOGIN_WINDOW_S - (now - recent[0])
                    raise LoginThrottled(f"too many failed log-ins: try again in {wait:.0f} s", wait)

    def _failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=LOGIN_MAX_FAILURES)).append(now)

    def _succeeded(self, keys: list[str]) -> None:
        with self._lock:
            self._failures.pop(keys[0], None)  # the person proved who they are; the client's count stays

    # -- sessions ------------------------------------------------------------------------------
    def open_session(self, user: User) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._sessions[sid] = _Session(user, now, now)
        return sid

    def session_user(self, sid: str | None) -> User | None:
        """The session's user; None when unknown or expired (idle too long, or older than a shift)."""
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.created > self.session_max_s or now - session.last_seen > self.session_idle_s:
                del self._sessions[sid]
                return None
            session.last_seen = now
            return session.user

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
