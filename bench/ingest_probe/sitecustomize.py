"""Where a webhook's time goes inside ``baton-ingest``: a probe for ``bench/ingest.py --probe``.

Diagnostic only (ADR 0260). Python imports ``sitecustomize`` at start-up from the path;
the bench puts this directory on the ingest processes' ``PYTHONPATH`` and names an output
file in ``BATON_BENCH_PROBE``; nothing happens without it. When ``baton_ingest.main`` is
imported, the probe wraps, without changing what they do:

- the webhook fast path (``WebhookFastPath.__call__``): server time, from the request's
  ASGI call to its answer handed to the transport;
- ``GatheredSends``: each batch's gathering (opened until handed to the producer), its
  ack wait, and its webhooks; each ``deliver`` (a webhook's wait for its batch's ack);
- the event loop: a task that sleeps 5 ms and records how late it wakes (loop lag) and
  how much CPU the loop's thread used meanwhile (a late wake with little CPU is the
  process waiting for a core; with much CPU, its own long loop turn);
- the collector: each collection's generation and CPU time (``gc.callbacks``).

Each sample is ``(time.perf_counter(), value)``: CLOCK_MONOTONIC on Linux, the same in
every process, so the bench keeps the samples of its measurement window only. The file
(JSON) is written when uvicorn's server stops (SIGTERM), before uvicorn re-raises the
signal, which would skip ``atexit``.
"""

from __future__ import annotations

import builtins
import gc
import json
import os
import time
from collections import defaultdict
from typing import Any

_OUT = os.environ.get("BATON_BENCH_PROBE")


def _install(out: str) -> None:
    samples: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
    clock = time.perf_counter
    collecting = [0.0]

    def collected(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.thread_time()
        else:
            samples[f"gc{info['generation']}"].append((clock(), time.thread_time() - collecting[0]))

    gc.callbacks.append(collected)

    def write() -> None:
        with open(out, "w") as file:
            json.dump(samples, file)

    def wrap(module_name: str) -> None:
        import asyncio

        import uvicorn

        from baton_ingest import api, gathered

        serve = uvicorn.Server._serve

        async def serve_probed(self: uvicorn.Server, sockets: Any = None) -> None:
            async def lag() -> None:
                while True:
                    started, cpu = clock(), time.thread_time()
                    await asyncio.sleep(0.005)
                    now = clock()
                    samples["lag"].append((now, now - started - 0.005))
                    samples["tick_cpu"].append((now, time.thread_time() - cpu))

            ticking = asyncio.ensure_future(lag())
            try:
                await serve(self, sockets)
            finally:
                ticking.cancel()
                write()

        uvicorn.Server._serve = serve_probed  # type: ignore[method-assign]

        call = api.WebhookFastPath.__call__

        async def call_probed(self: Any, scope: Any, receive: Any, send: Any) -> None:
            started = clock()
            await call(self, scope, receive, send)
            now = clock()
            samples["server"].append((now, now - started))

        api.WebhookFastPath.__call__ = call_probed  # type: ignore[method-assign]

        deliver = gathered.GatheredSends.deliver

        async def deliver_probed(self: Any, records: Any, within: float) -> Any:
            started = clock()
            outcome = await deliver(self, records, within)
            now = clock()
            samples["deliver"].append((now, now - started))
            return outcome

        gathered.GatheredSends.deliver = deliver_probed  # type: ignore[method-assign]

        opened: dict[int, float] = {}
        new = gathered.GatheredSends._new

        def new_probed(self: Any, tp: Any, timeout: float) -> Any:
            batch = new(self, tp, timeout)
            opened[id(batch)] = clock()
            return batch

        gathered.GatheredSends._new = new_probed  # type: ignore[method-assign]
        submit = gathered.GatheredSends._submit

        async def submit_probed(self: Any, batch: Any) -> None:
            handed = clock()
            samples["gathering"].append((handed, handed - opened.pop(id(batch), handed)))
            samples["batch_webhooks"].append((handed, len(batch.waiters)))
            await submit(self, batch)
            now = clock()
            samples["ack"].append((now, now - handed))

        gathered.GatheredSends._submit = submit_probed  # type: ignore[method-assign]

    importing = builtins.__import__

    def import_probed(name: str, *args: Any, **kwargs: Any) -> Any:
        module = importing(name, *args, **kwargs)
        if name == "baton_ingest.main":
            builtins.__import__ = importing
            wrap(name)
        return module

    builtins.__import__ = import_probed


if _OUT:
    _install(_OUT)
