"""What every outbound request passes: the SSRF policy, a per-host slot and the breaker.

``OutboundGuard.request(url)`` is an async context manager: it refuses destinations in
loopback, link-local (cloud metadata), private and other special ranges unless an
allowed network covers them, waits for one of the host's concurrency slots, fails fast
while the host's circuit is open, and counts a ``RetryableError`` leaving the block as
a failure of the host (anything else, even an HTTP 4xx, proves the host is alive).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from prometheus_client import Gauge

from baton_executor.errors import PermanentError, RetryableError

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "Destination",
    "NetworkPolicy",
    "OutboundGuard",
    "Resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class Destination(Protocol):
    """Where a request goes: an ``httpx.URL`` or a ``yarl.URL``."""

    @property
    def host(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def _special(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _special(address.ipv4_mapped)
    return not address.is_global or address.is_multicast


_MAX_LITERALS = 1024


class NetworkPolicy:
    """Which addresses outbound requests may reach.

    Public (global unicast) addresses are allowed; loopback, link-local, private,
    shared, reserved, multicast and unspecified addresses only inside ``allowed``.

    Args:
        allowed: networks (CIDR) that may be reached even though they are not public,
            e.g. ``127.0.0.1/32`` for local fakes in tests.
        resolver: host name → addresses; the system resolver by default.
    """

    def __init__(self, allowed: Sequence[str] = (), resolver: Resolver = _resolve) -> None:
        self._allowed: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in allowed]
        self._resolver = resolver
        # Hosts given as address literals → verdict: the policy never changes and a literal
        # resolves to itself, so parsing it for every request is wasted (ADR 0320).
        self._literals: dict[str, bool] = {}

    def permits(self, address: IPAddress) -> bool:
        """Whether a request may connect to ``address``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self._allowed):
            return True
        return not _special(address)

    async def check(self, url: Destination) -> None:
        """Raise unless every address ``url``'s host resolves to is permitted.

        Raises:
            PermanentError: ``PolicyDenied`` for a refused address.
            RetryableError: ``DnsError`` if the name does not resolve (yet).
        """
        host = url.host
        if not host:
            raise PermanentError("the URL has no host", error_type="PolicyDenied")
        if self._literals.get(host) is True:
            return
        try:
            addresses = [ipaddress.ip_address(host)]
            if len(self._literals) >= _MAX_LITERALS:
                self._literals.clear()
            self._literals[host] = self.permits(addresses[0])
        except ValueError:
            try:
                found = await self._resolver(host, url.port or 443)
            except OSError as exc:
                raise RetryableError(
                    f"cannot resolve {host}: {exc}", error_type="DnsError"
                ) from None
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
        if not addresses:
            raise RetryableError(f"{host} resolves to no address", error_type="DnsError")
        for address in addresses:
            if not self.permits(address):
                raise PermanentError(
                    f"request to {host} refused: {address} is not a public address and no "
                    "allowed network covers it (SSRF guard)",
                    error_type="PolicyDenied",
                )


class CircuitState(IntEnum):
    """Breaker states, as the metric's values."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float = 0.0
    state: CircuitState = CircuitState.CLOSED
    probing: bool = False


class CircuitBreaker:
    """Per-host breaker: opens after ``threshold`` consecutive failures; after
    ``reset_seconds`` one probe request may pass (half-open); its success closes the
    circuit, its failure opens it again.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        reset_seconds: float = 30.0,
        gauge: Gauge | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._reset = reset_seconds
        self._gauge = gauge
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, host: str) -> CircuitState:
        return self._circuits.get(host, _Circuit()).state

    def before(self, host: str) -> None:
        """Admit a request to ``host`` or raise ``RetryableError`` (``CircuitOpen``)."""
        circuit = self._circuits.get(host)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return
        if circuit.state is CircuitState.OPEN:
            waited = self._clock() - circuit.opened_at
            if waited < self._reset:
                raise RetryableError(
                    f"circuit for {host} is open after {circuit.failures} consecutive failures; "
                    f"next probe in {self._reset - waited:.1f}s",
                    error_type="CircuitOpen",
                    retry_after_seconds=round(self._reset - waited, 3),
                )
            self._set(host, circuit, CircuitState.HALF_OPEN)
        if circuit.probing:
            raise RetryableError(
                f"circuit for {host} is half-open and a probe is running",
                error_type="CircuitOpen",
            )
        circuit.probing = True

    def succeeded(self, host: str) -> None:
        circuit = self._circuits.get(host)
        if circuit is not None:
            circuit.failures, circuit.probing = 0, False
            self._set(host, circuit, CircuitState.CLOSED)

    def failed(self, host: str) -> None:
        circuit = self._circuits.setdefault(host, _Circuit())
        circuit.failures += 1
        if circuit.state is CircuitState.HALF_OPEN or circuit.failures >= self._threshold:
            circuit.opened_at, circuit.probing = self._clock(), False
            self._set(host, circuit, CircuitState.OPEN)

    def released(self, host: str) -> None:
        """The admitted request ended without a verdict on the host (e.g. cancelled)."""
        if (circuit := self._circuits.get(host)) is not None:
            circuit.probing = False

    def _set(self, host: str, circuit: _Circuit, state: CircuitState) -> None:
        circuit.state = state
        if self._gauge is not None:
            self._gauge.labels(host=host).set(int(state))


class OutboundGuard:
    """The SSRF policy, per-host concurrency and the circuit breaker, in one place."""

    def __init__(
        self, policy: NetworkPolicy, breaker: CircuitBreaker, *, per_host_concurrency: int = 8
    ) -> None:
        self.policy = policy
        self.breaker = breaker
        self._per_host = per_host_concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}

    def request(self, url: Destination) -> AbstractAsyncContextManager[None]:
        """Guard one request to ``url`` (see the module docstring)."""
        return _Guarded(self, url)

    def _slots_of(self, host: str) -> asyncio.Semaphore:
        slots = self._slots.get(host)
        if slots is None:
            slots = self._slots[host] = asyncio.Semaphore(self._per_host)
        return slots


class _Guarded:
    """One guarded request; a class rather than a generator-based context manager,
    which costs several times as much on every request (ADR 0320)."""

    __slots__ = ("_guard", "_host", "_slots", "_url")

    def __init__(self, guard: OutboundGuard, url: Destination) -> None:
        self._guard = guard
        self._url = url

    async def __aenter__(self) -> None:
        guard = self._guard
        await guard.policy.check(self._url)
        self._host = host = self._url.host or ""
        self._slots = slots = guard._slots_of(host)
        await slots.acquire()
        try:
            guard.breaker.before(host)
        except BaseException:
            slots.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        breaker = self._guard.breaker
        try:
            if kind is None:
                breaker.succeeded(self._host)
            elif issubclass(kind, RetryableError):
                breaker.failed(self._host)
            else:
                breaker.released(self._host)
        finally:
            self._slots.release()
