"""Assignment throughput: bulk (vectorised), local evaluation one unit at a time, HTTP.

Run: ``python benchmarks/bench_assign.py`` (add ``--quick`` for a smoke run).

Figures are the best of several repeats (the usual practice for micro-benchmarks on a
shared machine: the minimum is the least disturbed run); the median is printed too.
No result is cached per unit id: every call hashes its unit from scratch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from splitlab.assignment import (
    ExperimentConfig,
    Namespace,
    VariantConfig,
    assign,
    assign_bulk,
)

TWO_ARMS = ExperimentConfig(
    key="checkout-button",
    variants=(VariantConfig("control", 0.5), VariantConfig("treatment", 0.5)),
)
TARGETED = ExperimentConfig(
    key="pricing-page",
    variants=(
        VariantConfig("control", 0.1),
        VariantConfig("b", 0.3),
        VariantConfig("c", 0.6),
    ),
    coverage=0.9,
    namespace=Namespace("pricing", 0.0, 0.8),
    condition={"country": {"$in": ["NL", "BE", "DE"]}, "plan": {"$ne": "enterprise"}},
)


def repeat(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(best, median) items per second over ``repeats`` runs of ``run`` (returns items)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def show(label: str, rates: tuple[float, float], unit: str = "assignments/s") -> None:
    best, median = rates
    print(f"{label:<58} {best:>13,.0f} {unit}  (median {median:,.0f})")


def bench_bulk(n: int, repeats: int) -> None:
    sequential = np.char.add("user-", np.arange(10_000_000, 10_000_000 + n).astype(np.str_))
    uuids = np.array([str(uuid.UUID(int=int(x))) for x in np.arange(n) * 7919 + 1])
    as_list = sequential.tolist()
    show(
        f"bulk, {n:,} ids like 'user-10000000' (numpy array)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, sequential)), repeats),
    )
    show(
        f"bulk, {n:,} UUID ids (numpy array)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, uuids)), repeats),
    )
    show(
        f"bulk, {n:,} ids from a Python list (incl. conversion)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, as_list)), repeats),
    )
    no_condition = ExperimentConfig(
        key=TARGETED.key,
        variants=TARGETED.variants,
        coverage=TARGETED.coverage,
        namespace=TARGETED.namespace,
    )
    show(
        f"bulk, {n:,} ids, 3 arms + coverage + namespace",
        repeat(lambda: len(assign_bulk(no_condition, sequential)), repeats),
    )


def bench_local(n: int, repeats: int) -> None:
    ids = [f"user-{i}" for i in range(10_000_000, 10_000_000 + n)]
    uuids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(n)]
    countries = ("NL", "BE", "DE", "US")
    attributes = [{"country": countries[i % 4], "plan": "free"} for i in range(n)]

    def plain(unit_ids: list[str]) -> Callable[[], int]:
        def run() -> int:
            config = TWO_ARMS
            for unit in unit_ids:
                assign(config, unit)
            return len(unit_ids)

        return run

    def targeted() -> int:
        config = TARGETED
        for unit, attrs in zip(ids, attributes, strict=True):
            assign(config, unit, attrs)
        return len(ids)

    show("local evaluation, assign() one at a time, 2 arms", repeat(plain(ids), repeats))
    show("local evaluation, assign() one at a time, UUID ids", repeat(plain(uuids), repeats))
    show(
        "local evaluation, + targeting (2 rules) + namespace, 3 arms",
        repeat(targeted, repeats),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "splitlab.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def _start_server(home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``splitlab serve`` on a free loopback port with auth on; (process, base URL, key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLITLAB_")}
    env["SPLITLAB_HOME"] = str(home)
    _cli(env, "init")
    _cli(env, "users", "create", "bench", "--role", "admin", "--password", "bench-password-1")
    key = _cli(env, "keys", "create", "--scope", "admin", "--user", "bench").strip()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "splitlab.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base, key
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.1)


def _create_running(base: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        metric = {"key": "conversion", "kind": "binary", "event": "purchase"}
        http.post("/api/metrics", json=metric).raise_for_status()
        experiment = {
            "key": "checkout",
            "hypothesis": "A one-page checkout raises conversion",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "one-page", "weight": 0.5, "payload": {"layout": "single"}},
            ],
            "metrics": {"primary": "conversion"},
        }
        http.post("/api/experiments", json=experiment).raise_for_status()
        url = "/api/experiments/checkout"
        http.post(f"{url}/transitions", json={"to": "review"}).raise_for_status()
        review = {"decision": "approve", "comment": "benchmark"}
        http.post(f"{url}/reviews", json=review).raise_for_status()
        http.post(f"{url}/transitions", json={"to": "running"}).raise_for_status()


async def _connection_worker(
    port: int,
    key: str,
    units: list[str],
    latencies: list[float],
    failures: list[str],
    record: bool,
) -> None:
    """One keep-alive HTTP/1.1 connection sending its requests back to back.

    A minimal client on asyncio streams: on a 2-core box a full HTTP client library costs
    more CPU per request than the server does, and would measure itself.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /api/assign HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    )
    try:
        for unit in units:
            body = orjson.dumps({"experiment": "checkout", "unitId": unit, "record": record})
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            writer.write(request)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not headers.startswith(b"HTTP/1.1 200") or b'"inExperiment":true' not in payload:
                failures.append(headers.split(b"\r\n", 1)[0].decode() + " " + payload.decode())
    finally:
        writer.close()


async def _drive(
    port: int, key: str, total: int, connections: int, record: bool
) -> tuple[float, list[float], list[str]]:
    units = [f"bench-{uuid.uuid4()}" for _ in range(total)]
    latencies: list[float] = []
    failures: list[str] = []
    share = [units[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection_worker(port, key, part, latencies, failures, record) for part in share)
    )
    return time.perf_counter() - started, latencies, failures


def bench_http(total: int = 20_000, connections: int = 32) -> None:
    """``POST /api/assign`` against a real ``splitlab serve`` on loopback, auth on with an
    API key, ``connections`` concurrent keep-alive connections from one client process.

    Every request carries a new unit id, so with ``record=true`` every request records an
    exposure (the worst case: no unit repeats). ``record=false`` is shown for comparison.
    """
    with tempfile.TemporaryDirectory(prefix="splitlab-bench-") as home:
        process, base, key = _start_server(Path(home))
        try:
            _create_running(base, key)
            port = int(base.rsplit(":", 1)[1])
            try:
                import uvloop

                run: Any = uvloop.run
            except ImportError:  # pragma: no cover
                run = asyncio.run
            run(_drive(port, key, min(1000, total), connections, True))  # warm-up
            for record in (True, False):
                elapsed, latencies, failures = run(_drive(port, key, total, connections, record))
                ms = np.array(latencies) * 1000
                label = (
                    f"POST /api/assign, record={str(record).lower()}, "
                    f"{total:,} req, {connections} conns"
                )
                print(
                    f"{label:<58} {total / elapsed:>13,.0f} requests/s  "
                    f"(p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
                    f"{len(failures)} failed)"
                )
                if failures:
                    print(f"  first failure: {failures[0]}")
            # every recorded exposure reached the warehouse (read it after the server stops)
        finally:
            process.terminate()
            process.wait(timeout=30)
        from splitlab.warehouse import Warehouse

        warehouse = Warehouse.open(f"duckdb:///{Path(home) / 'warehouse.duckdb'}", read_only=True)
        try:
            (stored,) = warehouse.query("SELECT count(*) FROM exposures")[0]
        finally:
            warehouse.close()
        expected = min(1000, total) + total
        print(f"{'  exposures stored / recorded':<58} {stored:>13,} / {expected:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    bulk_n, local_n, repeats = (50_000, 20_000, 1) if args.quick else (1_000_000, 100_000, 5)
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {platform.processor() or 'cpu'}"
    )
    bench_bulk(bulk_n, repeats)
    bench_local(local_n, repeats)
    bench_http(*((2_000, 16) if args.quick else (20_000, 32)))


if __name__ == "__main__":
    main()
