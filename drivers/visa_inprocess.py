"""A VISA backend for instruments that live in the same Python process (``@inprocess``).

pyvisa lets a backend be any :class:`pyvisa.highlevel.VisaLibraryBase` subclass (the same
mechanism as pyvisa-py and pyvisa-sim). This one has no socket and no thread: ``viWrite`` hands
the bytes to the registered endpoint, which executes the complete messages at once and queues
the response; ``viRead`` returns that response up to the termination character. The drivers
above it are unchanged and see the same SCPI strings, the same pyvisa resource objects and the
same VISA errors as with a LAN instrument:

* a read with nothing queued is a VISA time-out (``VI_ERROR_TMO``), at once: nothing else in the
  process can produce the bytes later, so waiting out the time-out would change nothing;
* a session the endpoint dropped raises ``VI_ERROR_CONN_LOST`` on its next read or write;
* an endpoint that refuses connections (or a name nobody registered) fails the open with
  ``VI_ERROR_RSRC_NFOUND``, as pyvisa-py does for a refused TCP connect.

Endpoints register under a VISA resource name (normally the name of the instrument's TCP
socket, so the resource string is the same whichever backend reaches it). The registry holds
them weakly: an endpoint nobody else keeps is gone from it. The embedded bench registers the
simulator's SCPI servers (bench.station.connect_bench).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from pyvisa import constants, highlevel, rname
from pyvisa.constants import StatusCode
from pyvisa.typing import VISARMSession, VISASession
from pyvisa.util import LibraryPath

#: the backend name given to :func:`drivers.visa.resource_manager` / ``open_instrument``
BACKEND = "@inprocess"


class InProcessConnection(Protocol):
    """One open session with an in-process endpoint."""

    def exchange(self, data: bytes) -> bytes:
        """Execute the complete messages in ``data``; return the response bytes they produced.
        Raises ``ConnectionError`` once the endpoint has dropped this session."""
        ...

    def close(self) -> None: ...


class InProcessEndpoint(Protocol):
    def connect(self) -> InProcessConnection:
        """A new session; raises ``ConnectionRefusedError`` while the endpoint refuses them."""
        ...


_ENDPOINTS: weakref.WeakValueDictionary[str, InProcessEndpoint] = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()


def _canonical(resource: str) -> str:
    return str(rname.parse_resource_name(resource))


def register(resource: str, endpoint: InProcessEndpoint) -> None:
    """Serve ``resource`` (a VISA resource name) from ``endpoint`` in this process."""
    with _REGISTRY_LOCK:
        _ENDPOINTS[_canonical(resource)] = endpoint


def unregister(resource: str, endpoint: InProcessEndpoint | None = None) -> None:
    """Stop serving ``resource`` (only if it is still ``endpoint``'s, when given)."""
    key = _canonical(resource)
    with _REGISTRY_LOCK:
        if endpoint is None or _ENDPOINTS.get(key) is endpoint:
            _ENDPOINTS.pop(key, None)


def registered() -> list[str]:
    with _REGISTRY_LOCK:
        return sorted(_ENDPOINTS)


class _Session:
    """The VISA side of one connection: attributes and the response not read yet."""

    def __init__(self, resource: str, connection: InProcessConnection) -> None:
        self.resource = resource
        self.connection = connection
        self.pending = bytearray()
        self.attributes: dict[int, Any] = {
            constants.ResourceAttribute.resource_name: resource,
            constants.ResourceAttribute.termchar: ord("\n"),
            constants.ResourceAttribute.termchar_enabled: constants.VI_FALSE,
            constants.ResourceAttribute.timeout_value: 2000,
            constants.ResourceAttribute.send_end_enabled: constants.VI_TRUE,
            constants.ResourceAttribute.suppress_end_enabled: constants.VI_FALSE,
        }

    def write(self, data: bytes) -> tuple[int, StatusCode]:
        try:
            self.pending += self.connection.exchange(bytes(data))
        except ConnectionError:
            return 0, StatusCode.error_connection_lost
        return len(data), StatusCode.success

    def read(self, count: int) -> tuple[bytes, StatusCode]:
        if not self.pending:
            try:  # a dropped session reports the loss, as a reset socket does, not a time-out
                self.pending += self.connection.exchange(b"")
            except ConnectionError:
                return b"", StatusCode.error_connection_lost
            if not self.pending:
                return b"", StatusCode.error_timeout
        end = len(self.pending)
        status = StatusCode.success
        if self.attributes[constants.ResourceAttribute.termchar_enabled]:
            found = self.pending.find(self.attributes[constants.ResourceAttribute.termchar])
            if found >= 0:
                end, status = found + 1, StatusCode.success_termination_character_read
        if end > count:
            end, status = count, StatusCode.success_max_count_read
        chunk = bytes(self.pending[:end])
        del self.pending[:end]
        return chunk, status


class InProcessVisaLibrary(highlevel.VisaLibraryBase):
    """The VISA library of in-process endpoints: sessions dispatch straight to the endpoint."""

    sessions: dict[int, Any]

    @staticmethod
    def get_library_paths() -> Iterable[LibraryPath]:
        return (LibraryPath("unset"),)

    @staticmethod
    def get_debug_info() -> dict[str, str]:
        return {"backend": "in-process endpoints (drivers.visa_inprocess)"}

    def _init(self) -> None:
        self.sessions = {}
        self._handles = itertools.count(1)

    def _register(self, obj: Any) -> int:
        handle = next(self._handles)
        self.sessions[handle] = obj
        return handle

    def open_default_resource_manager(self) -> tuple[VISARMSession, StatusCode]:
        return VISARMSession(self._register(self)), self.handle_return_value(None, StatusCode.success)

    def list_resources(self, session: VISARMSession, query: str = "?*::INSTR") -> tuple[str, ...]:
        return tuple(rname.filter(registered(), query))

    def open(self, session: VISARMSession, resource_name: str,
             access_mode: constants.AccessModes = constants.AccessModes.no_lock,
             open_timeout: int | None = constants.VI_TMO_IMMEDIATE) -> tuple[VISASession, StatusCode]:
        try:
            resource = _canonical(resource_name)
        except rname.InvalidResourceName:
            return VISASession(0), self.handle_return_value(None, StatusCode.error_invalid_resource_name)
        with _REGISTRY_LOCK:
            endpoint = _ENDPOINTS.get(resource)
        if endpoint is None:
            return VISASession(0), self.handle_return_value(None, StatusCode.error_resource_not_found)
        try:
            connection = endpoint.connect()
        except ConnectionRefusedError:
            return VISASession(0), self.handle_return_value(None, StatusCode.error_resource_not_found)
        handle = VISASession(self._register(_Session(resource, connection)))
        return handle, self.handle_return_value(handle, StatusCode.success)

    def close(self, session: Any) -> StatusCode:
        sess = self.sessions.pop(session, None)
        if sess is None:
            return self.handle_return_value(session, StatusCode.error_invalid_object)
        if isinstance(sess, _Session):
            sess.connection.close()
        return self.handle_return_value(session, StatusCode.success)

    def _session(self, session: Any) -> _Session | None:
        sess = self.sessions.get(session)
        return sess if isinstance(sess, _Session) else None

    def write(self, session: VISASession, data: bytes) -> tuple[int, StatusCode]:
        sess = self._session(session)
        if sess is None:
            return 0, self.handle_return_value(session, StatusCode.error_invalid_object)
        count, status = sess.write(data)
        return count, self.handle_return_value(session, status)

    def read(self, session: VISASession, count: int) -> tuple[bytes, StatusCode]:
        sess = self._session(session)
        if sess is None:
            return b"", self.handle_return_value(session, StatusCode.error_invalid_object)
        chunk, status = sess.read(count)
        return chunk, self.handle_return_value(session, status)

    def clear(self, session: VISASession) -> StatusCode:
        sess = self._session(session)
        if sess is None:
            return self.handle_return_value(session, StatusCode.error_invalid_object)
        sess.pending.clear()
        return self.handle_return_value(session, StatusCode.success)

    def flush(self, session: VISASession, mask: constants.BufferOperation) -> StatusCode:
        return self.handle_return_value(session, StatusCode.success)

    def get_attribute(self, session: Any, attribute: Any) -> tuple[Any, StatusCode]:
        sess = self._session(session)
        if sess is None:
            return 0, self.handle_return_value(session, StatusCode.error_invalid_object)
        if attribute not in sess.attributes:
            return 0, self.handle_return_value(session, StatusCode.error_nonsupported_attribute)
        return sess.attributes[attribute], self.handle_return_value(session, StatusCode.success)

    def set_attribute(self, session: Any, attribute: Any, attribute_state: Any) -> StatusCode:
        sess = self._session(session)
        if sess is None:
            return self.handle_return_value(session, StatusCode.error_invalid_object)
        sess.attributes[attribute] = attribute_state
        return self.handle_return_value(session, StatusCode.success)

    def disable_event(self, session: Any, event_type: Any, mechanism: Any) -> StatusCode:
        return StatusCode.success

    def discard_events(self, session: Any, event_type: Any, mechanism: Any) -> StatusCode:
        return StatusCode.success


#: pyvisa's convention for a backend module (``pyvisa_<name>.WRAPPER_CLASS``)
WRAPPER_CLASS = InProcessVisaLibrary
