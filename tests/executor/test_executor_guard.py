"""The SSRF policy, the per-host circuit breaker and per-host concurrency."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest
import yarl
from prometheus_client import CollectorRegistry, Gauge

from baton_executor.actions.http import HttpAction
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.guard import (
    CircuitBreaker,
    CircuitState,
    NetworkPolicy,
    OutboundGuard,
    Resolver,
)

from .tasks import step_task


def resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolve


DNS = {
    "public.example": ["93.184.216.34"],
    "sneaky.example": ["93.184.216.34", "10.0.0.7"],
    "metadata.example": ["169.254.169.254"],
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://localhost.:80/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        "http://metadata.example/",
        "http://sneaky.example/",
    ],
)
@pytest.mark.parametrize("parse", [httpx.URL, yarl.URL])
async def test_non_public_destinations_are_refused(
    url: str, parse: type[httpx.URL] | type[yarl.URL]
) -> None:
    policy = NetworkPolicy(resolver=resolver({**DNS, "localhost.": ["127.0.0.1"]}))

    for _ in range(2):  # the second time, address literals' verdicts come from memory
        with pytest.raises(PermanentError) as raised:
            await policy.check(parse(url))

        assert raised.value.error_type == "PolicyDenied"
        assert "SSRF" in raised.value.message


async def test_public_destinations_pass() -> None:
    policy = NetworkPolicy(resolver=resolver(DNS))

    await policy.check(httpx.URL("https://public.example/x"))
    await policy.check(httpx.URL("https://93.184.216.34/"))


async def test_an_allowed_network_opens_exactly_that_range() -> None:
    policy = NetworkPolicy(["127.0.0.1/32"], resolver=resolver(DNS))

    await policy.check(httpx.URL("http://127.0.0.1:9999/"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    with pytest.raises(PermanentError):
        await policy.check(httpx.URL("http://127.0.0.2/"))


async def test_a_name_that_does_not_resolve_is_retryable() -> None:
    policy = NetworkPolicy(resolver=resolver(DNS))

    with pytest.raises(RetryableError) as raised:
        await policy.check(httpx.URL("https://nowhere.example/"))
    assert raised.value.error_type == "DnsError"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_consecutive_failures_and_probes_once() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("circuit", "state", ["host"], registry=registry)
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_seconds=10, gauge=gauge, clock=clock)

    for _ in range(2):
        breaker.before("api")
        breaker.failed("api")
    breaker.before("api")
    breaker.succeeded("api")  # a success resets the count
    for _ in range(3):
        breaker.before("api")
        breaker.failed("api")

    assert breaker.state("api") is CircuitState.OPEN
    assert registry.get_sample_value("circuit", {"host": "api"}) == 2
    with pytest.raises(RetryableError) as raised:
        breaker.before("api")
    assert raised.value.error_type == "CircuitOpen"
    assert raised.value.retry_after_seconds == 10
    breaker.before("other")  # other hosts are unaffected

    clock.now += 10
    breaker.before("api")  # the probe
    assert breaker.state("api") is CircuitState.HALF_OPEN
    with pytest.raises(RetryableError):
        breaker.before("api")  # only one probe at a time
    breaker.failed("api")
    assert breaker.state("api") is CircuitState.OPEN

    clock.now += 10
    breaker.before("api")
    breaker.succeeded("api")
    assert breaker.state("api") is CircuitState.CLOSED
    assert registry.get_sample_value("circuit", {"host": "api"}) == 0


async def test_a_dead_host_stops_being_called_once_its_circuit_opens() -> None:
    calls: list[str] = []

    async def down(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(503)

    guard = OutboundGuard(
        NetworkPolicy(resolver=resolver(DNS)), CircuitBreaker(threshold=2, reset_seconds=60)
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        action = HttpAction(client, guard=guard)
        errors = []
        for _ in range(4):
            with pytest.raises(RetryableError) as raised:
                await action(step_task({"url": "https://public.example/"}))
            errors.append(raised.value.error_type)

    assert errors == ["http_503", "http_503", "CircuitOpen", "CircuitOpen"]
    assert len(calls) == 2


async def test_a_client_error_does_not_count_against_the_host() -> None:
    async def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    breaker = CircuitBreaker(threshold=1)
    guard = OutboundGuard(NetworkPolicy(resolver=resolver(DNS)), breaker)
    async with httpx.AsyncClient(transport=httpx.MockTransport(missing)) as client:
        with pytest.raises(PermanentError):
            await HttpAction(client, guard=guard)(step_task({"url": "https://public.example/"}))

    assert breaker.state("public.example") is CircuitState.CLOSED


async def test_requests_to_one_host_are_limited_others_are_not() -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        running[host] = running.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), running[host])
        await release.wait()
        running[host] -= 1
        return httpx.Response(200)

    dns = {"a.example": ["93.184.216.34"], "b.example": ["93.184.216.35"]}
    guard = OutboundGuard(
        NetworkPolicy(resolver=resolver(dns)), CircuitBreaker(), per_host_concurrency=2
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        action = HttpAction(client, guard=guard)
        calls = [
            asyncio.create_task(action(step_task({"url": f"https://{host}/"})))
            for host in ["a.example"] * 5 + ["b.example"] * 2
        ]
        for _ in range(50):
            await asyncio.sleep(0.01)
            if sum(running.values()) == 4:
                break
        assert running == {"a.example": 2, "b.example": 2}
        release.set()
        await asyncio.gather(*calls)

    assert peak == {"a.example": 2, "b.example": 2}
