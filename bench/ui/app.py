"""The operator station's web application (FastAPI): pages, JSON API and the live stream.

Pages are static files (``bench/ui/static``, no build step). The JSON API is under ``/api``;
``/api/benches/{id}/events`` is a server-sent-event stream of the bench's state, fed by the
engine's progress events (never by polling the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bench.errors import InputError
from bench.sim.scenario import Fault, builtin_scenarios
from bench.store.liveness import mark_orphan_runs
from bench.ui import preflight
from bench.ui.security import SESSION_COOKIE, AccessPolicy, LoginThrottled, Role, User
from bench.ui.slot import BenchSlot, StartRequest

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
REPO_PROCEDURES = Path(__file__).resolve().parents[2] / "procedures"
#: the allowed list of an operator, first = default (issue 10: EOL test, SOC calibration, service)
DEFAULT_PROCEDURES = ("eol.yaml", "soc_calibration.yaml", "service.yaml")
#: run ids as the engine makes them (runner._new_run_id: 20261129-151746-1a2b3c): nothing else
#: reaches the file system, not even '..' (issue 18 item 8)
RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
#: /api/runs?limit= bounds
MAX_RUNS = 500
#: the live stream sends at most one update per this many seconds per browser
STREAM_MIN_INTERVAL_S = 0.05
#: a run the station finds 'running' at start-up with no process holding it (issue 18 item 3)
ORPHAN_REASON = ("orphaned: the process running it ended without recording a verdict "
                 "(found when the operator station started; outputs were not verified off by it)")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    name: str = Field(max_length=200)
    role: Role | None = None  # None: the account's first role
    password: str = Field(default="", max_length=200)


class StartBody(_Body):
    serial: str
    procedure: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    scenario: str | None = None


class AnswerBody(_Body):
    prompt_id: int
    answer: str


class StopBody(_Body):
    confirm: bool = False


class SpeedBody(_Body):
    speed: float | None = None


@dataclass
class Station:
    slots: dict[str, BenchSlot]
    policy: AccessPolicy
    procedures: dict[str, Path]          # operator's allowed list, key = file stem
    all_procedures: dict[str, Path] = field(default_factory=dict)  # engineer's choice

    closing: bool = False
    migrated: set[str] = field(default_factory=set)  # store URLs whose schema is known current

    def slot(self, slot_id: str) -> BenchSlot:
        found = self.slots.get(slot_id)
        if found is None:
            raise HTTPException(404, f"no bench {slot_id!r}")
        return found

    def begin_shutdown(self, reason: str) -> None:
        """Refuse new starts, stop every run through the engine's safe state, end the live streams."""
        self.closing = True
        for slot in self.slots.values():
            slot.shutdown(reason)

    def wait_stopped(self, timeout_s: float) -> list[str]:
        """Wait (bounded) for every run to reach its safe state and record; the benches still going."""
        deadline = time.monotonic() + timeout_s
        return [slot_id for slot_id, slot in self.slots.items()
                if not slot.join(max(0.0, deadline - time.monotonic()))]

    def mark_orphans(self) -> list[str]:
        """At start-up: runs of these benches left 'running' by a process that died are aborted."""
        marked: list[str] = []
        for slot in self.slots.values():
            def mark(store: Any, slot: BenchSlot = slot) -> list[str]:
                store.migrate()
                return mark_orphan_runs(store, Path(slot.station.runs_dir), reason=ORPHAN_REASON,
                                        station=slot.station.name)
            try:
                marked += preflight.with_store(slot.station, slot.db, "orphan runs", mark, timeout_s=30.0)
            except Exception as exc:  # a dead database must not keep the station from serving
                log.warning("bench %s: orphan runs not checked: %s", slot.id, exc)
        return marked


def default_procedures() -> list[Path]:
    return [REPO_PROCEDURES / name for name in DEFAULT_PROCEDURES if (REPO_PROCEDURES / name).exists()]


def build_station(stations: list[str | None], policy: AccessPolicy, *, db: str | None = None,
                  procedures: list[Path] | None = None) -> Station:
    slots: dict[str, BenchSlot] = {}
    for path in stations or [None]:
        slot = BenchSlot("?", path, db=db)
        base = re.sub(r"[^0-9A-Za-z_-]+", "-", slot.station.name) or "bench"
        slot_id, n = base, 2
        while slot_id in slots:
            slot_id, n = f"{base}-{n}", n + 1
        slot.id = slot_id
        slots[slot_id] = slot
    allowed = {p.stem: p for p in (procedures or default_procedures())}
    if not allowed:
        raise InputError("no procedure files for the station (give --procedure FILE)", field="--procedure")
    everything = dict(allowed)
    for folder in {p.parent for p in allowed.values()}:
        for p in sorted(folder.glob("*.yaml")):
            everything.setdefault(p.stem, p)
    return Station(slots=slots, policy=policy, procedures=allowed, all_procedures=everything)


def current_user(request: Request) -> User:
    policy: AccessPolicy = request.app.state.station.policy
    user = policy.session_user(request.cookies.get(SESSION_COOKIE))
    if user is None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            user = policy.bearer(auth[7:].strip(), request.headers.get("x-bench-user"))
    if user is None:
        raise HTTPException(401, "log in first (station token required)")
    return user


def engineer_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != "engineer":
        raise HTTPException(403, "engineers only")
    return user


AnyUser = Annotated[User, Depends(current_user)]
Engineer = Annotated[User, Depends(engineer_user)]


def create_app(station: Station) -> FastAPI:
    app = FastAPI(title="bench operator station", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.station = station
    policy = station.policy

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = request.headers.get("host")
        if not policy.host_allowed(host):
            return JSONResponse({"detail": f"unexpected Host {host!r}"}, status_code=421)
        state_changing = request.method not in ("GET", "HEAD", "OPTIONS")
        streaming = request.url.path.endswith("/events")
        if (state_changing or streaming) and not policy.same_origin(
                request.headers.get("origin"), host, request.url.scheme):
            return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        if request.method == "OPTIONS":  # no CORS pre-flight is ever granted
            return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        response = await call_next(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # ------------------------------------------------------------------ pages
    def page(name: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})
        return serve

    app.get("/", include_in_schema=False)(page("operator.html"))
    app.get("/depot", include_in_schema=False)(page("depot.html"))
    app.get("/engineer", include_in_schema=False)(page("engineer.html"))
    app.get("/login", include_in_schema=False)(page("login.html"))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/runs/{run_id}/report", include_in_schema=False)
    def report(run_id: str, user: AnyUser) -> Response:
        if not RUN_ID.match(run_id):
            raise HTTPException(404, "no such run")
        for slot in station.slots.values():
            candidates = [slot.run_dirs.get(run_id), Path(slot.station.runs_dir) / run_id]
            for folder in candidates:
                if folder is not None and (folder / "report.html").is_file():
                    return FileResponse(folder / "report.html")
        raise HTTPException(404, "no report for this run (yet)")

    # ------------------------------------------------------------------ session
    @app.post("/api/login")
    def login(body: LoginBody, request: Request) -> Response:
        client = request.client.host if request.client is not None else ""
        try:
            user = policy.login(body.name, body.role, body.password, client=client)
        except LoginThrottled as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)}) from None
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
        response = JSONResponse({"name": user.name, "role": user.role})
        response.set_cookie(SESSION_COOKIE, policy.open_session(user), httponly=True, samesite="strict",
                            secure=False, path="/")
        return response

    @app.post("/api/logout")
    def logout(request: Request) -> Response:
        policy.close_session(request.cookies.get(SESSION_COOKIE))
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/whoami")
    def whoami(user: AnyUser) -> dict[str, Any]:
        return {"name": user.name, "role": user.role,
                "secured": policy.secured, "authenticated": user.authenticated, "loopback": policy.loopback}

    # ------------------------------------------------------------------ benches
    @app.get("/api/procedures")
    def procedures(user: AnyUser) -> list[dict[str, Any]]:
        chosen = station.all_procedures if user.role == "engineer" else station.procedures
        default = next(iter(station.procedures))
        return [{"key": key, "file": path.name, "default": key == default} for key, path in chosen.items()]

    @app.get("/api/benches")
    def benches(user: AnyUser) -> list[dict[str, Any]]:
        return [slot.snapshot() for slot in station.slots.values()]

    @app.get("/api/benches/{slot_id}")
    def bench_state(slot_id: str, user: AnyUser) -> dict[str, Any]:
        return station.slot(slot_id).snapshot()

    @app.post("/api/benches/{slot_id}/start")
    def start(slot_id: str, body: StartBody, user: AnyUser) -> dict[str, Any]:
        slot = station.slot(slot_id)
        key = body.procedure or next(iter(station.procedures))
        allowed = station.all_procedures if user.role == "engineer" else station.procedures
        if key not in allowed:
            raise HTTPException(403, f"procedure {key!r} is not on this station's list for {user.role}s")
        if (body.params or body.scenario) and user.role != "engineer":
            raise HTTPException(403, "only engineers choose parameters and scenarios")
        try:
            slot.start(StartRequest(serial=body.serial, procedure=allowed[key], user=user,
                                    params=body.params, scenario=body.scenario or None))
        except PermissionError as exc:
            raise HTTPException(409, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        return slot.snapshot()

    @app.post("/api/benches/{slot_id}/answer")
    def answer(slot_id: str, body: AnswerBody, user: AnyUser) -> dict[str, Any]:
        slot = station.slot(slot_id)
        try:
            slot.answer(body.prompt_id, body.answer, user)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"ok": True}

    @app.post("/api/benches/{slot_id}/stop")
    def stop(slot_id: str, body: StopBody, user: AnyUser) -> dict[str, Any]:
        if not body.confirm:
            raise HTTPException(400, "stop needs confirmation (confirm: true)")
        try:
            station.slot(slot_id).stop(user)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"ok": True}

    @app.get("/api/benches/{slot_id}/events")
    async def events(slot_id: str, request: Request, user: AnyUser) -> StreamingResponse:
        slot = station.slot(slot_id)
        return StreamingResponse(_stream(slot, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ engineer
    @app.post("/api/benches/{slot_id}/speed")
    def speed(slot_id: str, body: SpeedBody, user: Engineer) -> dict[str, Any]:
        try:
            station.slot(slot_id).set_speed(body.speed, user)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"speed": body.speed}

    @app.post("/api/benches/{slot_id}/fault")
    def fault(slot_id: str, body: dict[str, Any], user: Engineer) -> dict[str, Any]:
        try:
            parsed: Any = TypeAdapter(Fault).validate_python({"at_s": 0.0, **body})
        except ValidationError as exc:
            raise HTTPException(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                               for e in exc.errors())) from None
        try:
            station.slot(slot_id).inject_fault(parsed, user)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"queued": parsed.model_dump(mode="json")}

    @app.get("/api/benches/{slot_id}/truth")
    def truth(slot_id: str, user: Engineer) -> dict[str, Any]:
        found = station.slot(slot_id).truth()
        if found is None:
            raise HTTPException(404, "no simulator ground truth (not simulated, or no run yet)")
        return json.loads(json.dumps(found, default=str))

    @app.get("/api/scenarios")
    def scenarios(user: Engineer) -> list[str]:
        return builtin_scenarios()

    # ------------------------------------------------------------------ records
    @app.get("/api/runs")
    def runs(user: AnyUser, limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 20) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rows in _read_stores(station, "runs", lambda store: store.runs(limit=limit)):
            out += [_jsonable(r.__dict__) for r in rows]
        out.sort(key=lambda r: str(r["started_at"]), reverse=True)
        return out[:limit]

    @app.get("/api/packs/history")
    def history(serial: str, user: AnyUser) -> dict[str, Any]:
        """The serial is a query parameter: a serial may contain '/' (issue 18 item 8)."""
        visits: list[dict[str, Any]] = []
        for rows in _read_stores(station, "pack history", lambda store: store.pack_history(serial)):
            visits += [_jsonable(v.__dict__) for v in rows]
        visits.sort(key=lambda v: str(v["started_at"]))
        return {"serial": serial, "visits": visits}

    @app.get("/api/packs/{serial:path}/history")
    def history_by_path(serial: str, user: AnyUser) -> dict[str, Any]:
        return history(serial, user)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.exception_handler(401)
    async def unauthorized(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"detail": exc.detail}, status_code=401)
        return RedirectResponse("/login")

    return app


def _read_stores(station: Station, what: str, read: Callable[[Any], list[Any]]) -> list[list[Any]]:
    """``read(store)`` on each distinct records store, each bounded in time; 503 when one fails."""
    seen: dict[str, BenchSlot] = {}
    for slot in station.slots.values():
        seen.setdefault(preflight.store_url(slot.station, slot.db), slot)
    results = []
    for url, slot in sorted(seen.items()):
        def call(store: Any, url: str = url) -> list[Any]:
            if url not in station.migrated:  # a fresh database: create the schema once
                store.migrate()
                station.migrated.add(url)
            return read(store)
        try:
            results.append(preflight.with_store(slot.station, slot.db, what, call))
        except Exception as exc:
            raise HTTPException(503, f"records store unreachable: {exc}") from None
    return results


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


async def _stream(slot: BenchSlot, request: Request) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    listener = slot.feed.listen(loop)
    sent_version = -1
    chart_index = 0
    chart_key: tuple[Any, int] | None = None
    try:
        yield "retry: 1000\n\n"
        while not slot.closing:
            listener.changed.clear()
            snapshot = slot.snapshot()
            if snapshot["version"] != sent_version:
                sent_version = snapshot["version"]
                # from the last bucket sent on (it may have grown since: the browser replaces it);
                # whole after a new run or merged buckets
                chart_key, start, chart_index, points = slot.chart_since(max(0, chart_index - 1), chart_key)
                snapshot["chart_from"], snapshot["chart_points"] = start, points
                yield f"data: {json.dumps(snapshot, default=str)}\n\n"
            try:
                await asyncio.wait_for(listener.changed.wait(), timeout=15.0)
            except TimeoutError:
                yield ": keep-alive\n\n"
            if slot.closing or await request.is_disconnected():
                break
            await asyncio.sleep(STREAM_MIN_INTERVAL_S)
    finally:
        slot.feed.drop(listener)
