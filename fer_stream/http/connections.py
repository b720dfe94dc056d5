"""Connections that wait for their client: closed at a deadline, and bounded per client and in all.

uvicorn arms no timer until a first response has gone out, and its keep-alive
timer is cancelled by every byte that arrives, so a socket that sends nothing,
or a byte every few seconds, is held for as long as its client likes. Its
``limit_concurrency`` counts those sockets with the working ones and answers
503 to *every* request once they reach it: a few hundred idle sockets, with no
token, would lock probes and operators out. None of its settings or h11's
bounds the time before a request, hence this protocol, which adds to uvicorn's
h11 one:

- a deadline: a connection must deliver its whole request within
  ``request_timeout_s`` of opening, or of the end of its previous response,
  however it trickles the bytes; otherwise it is closed;
- a bound on the connections waiting for their client: past
  ``max_waiting_per_client`` from one address, or ``max_waiting`` in all, the
  one that has waited longest is closed to make room, never the new one. A
  probe or an operator who connects and sends a request at once is therefore
  always served, however many idle sockets an attacker holds.

A connection whose request has arrived (it is being answered, or streams
video or events) is not waiting and is never closed by either.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: h11 states of a client still sending its request (or, IDLE, not yet started on it).
_SENDING = (h11.IDLE, h11.SEND_BODY)


class WaitingConnections:
    """The connections of one server waiting for their client's request, oldest first (all on its event loop)."""

    def __init__(self, *, request_timeout_s: float, max_waiting: int, max_waiting_per_client: int) -> None:
        self.request_timeout_s = request_timeout_s
        self.max_waiting = max_waiting
        self.max_waiting_per_client = max_waiting_per_client
        self._all: dict[GuardedH11Protocol, None] = {}
        self._by_client: dict[str, dict[GuardedH11Protocol, None]] = {}

    def protocol(self) -> type[GuardedH11Protocol]:
        """The protocol class to give uvicorn (``Config(http=...)``), bound to this set."""

        class ConsoleH11Protocol(GuardedH11Protocol):
            pass

        ConsoleH11Protocol.waiting = self
        return ConsoleH11Protocol

    def add(self, connection: GuardedH11Protocol) -> None:
        """A connection starts waiting; past a bound, the longest-waiting one of its address, or of all, is closed."""
        self._all[connection] = None
        mine = self._by_client.setdefault(connection.client_address, {})
        mine[connection] = None
        if len(mine) > self.max_waiting_per_client:
            next(iter(mine)).give_up()
        if len(self._all) > self.max_waiting:
            next(iter(self._all)).give_up()

    def discard(self, connection: GuardedH11Protocol) -> None:
        self._all.pop(connection, None)
        mine = self._by_client.get(connection.client_address)
        if mine is not None:
            mine.pop(connection, None)
            if not mine:
                del self._by_client[connection.client_address]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and membership of a :class:`WaitingConnections`."""

    waiting: ClassVar[WaitingConnections]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._upgraded = False

    @property
    def client_address(self) -> str:
        return self.client[0] if self.client else ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_client()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow_client()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_client()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True  # the transport now belongs to the websocket protocol
        self._stop_waiting()
        super().handle_websocket_upgrade(event)

    def give_up(self) -> None:
        """Close the connection: past its deadline, or making room for a newer one."""
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()

    def _follow_client(self) -> None:
        """Wait (with a deadline) while the client owes its request; stop once it has arrived."""
        if self._upgraded or self.transport.is_closing():
            self._stop_waiting()
        elif self.conn.their_state in _SENDING:
            if self._deadline is None:
                self._deadline = self.loop.call_later(self.waiting.request_timeout_s, self.give_up)
                self.waiting.add(self)
        else:
            self._stop_waiting()

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self.waiting.discard(self)
