"""/api/track load by kind, for ``bench_ingest.py``: exposures of new units, repeated
exposures, conversions and a mix of the three — measured with ``wrk`` and with a closed-loop
client that times every request, and checked against what the warehouse stored.

The items are the tracker payload Splitlab accepts (``experimentKey``, ``variantKey``,
``userKey``, ``eventType``, ``props``), with no ``eventId``, as a page tag sends them:

* ``new`` — an exposure of a unit never seen before (one new ``exposures`` row each);
* ``repeat`` — an exposure of a unit exposed before to the same variant (a duplicate: no row,
  no conflict); the units are a pool exposed through the batch API before the runs;
* ``conversion`` — a ``purchase`` event of a new unit (one new ``events`` row each);
* ``mix`` — of every 10 requests 3 new, 5 repeated and 2 conversions (returning visitors
  outnumber new ones).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

KINDS = ("new", "repeat", "conversion", "mix")
MIX = ("new",) * 3 + ("repeat",) * 5 + ("conversion",) * 2
"""The kind of request ``i`` of the mix is ``MIX[i % 10]``."""
POOL = 20_000
"""Units exposed before the runs; repeated exposures cycle through them."""
CONNECTIONS = 16


# --------------------------------------------------------------------------- HTTP


class Connection:
    """One keep-alive HTTP/1.1 connection: send a POST, read the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


def request(path: str, body: bytes, key: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# --------------------------------------------------------------------------- items


def variant(i: int) -> str:
    return "control" if i % 2 == 0 else "b"


def pool_unit(j: int) -> str:
    return f"pool-{j}"


def item(kind: str, tag: str, i: int, salt: int = 0) -> tuple[str, dict[str, Any]]:
    """Request ``i`` of a run of ``kind``: its own kind (for the mix) and its body. New
    units are ``{tag}-{i}``; a repeat is pool unit ``(i * 7919 + salt) % POOL``."""
    if kind == "mix":
        kind = MIX[i % len(MIX)]
    if kind == "repeat":
        j = (i * 7919 + salt) % POOL
        unit, name, chosen = pool_unit(j), "exposure", variant(j)
    else:
        unit, chosen = f"{tag}-{i}", variant(i)
        name = "exposure" if kind == "new" else "purchase"
    body: dict[str, Any] = {
        "experimentKey": "bench",
        "variantKey": chosen,
        "userKey": unit,
        "eventType": name,
        "props": {"page": f"/p{i % 50}"},
    }
    if name == "purchase":
        body["value"] = float(i % 100)
    return kind, body


async def seed_pool(port: int, key: str) -> None:
    """Expose the ``POOL`` units (batches of 10,000) so that repeats find them stored."""
    connection = await Connection.open(port)
    try:
        for start in range(0, POOL, 10_000):
            events = [
                {
                    "experimentKey": "bench",
                    "variantKey": variant(j),
                    "userKey": pool_unit(j),
                    "eventType": "exposure",
                }
                for j in range(start, min(start + 10_000, POOL))
            ]
            status, answer = await connection.post(
                request("/api/events", orjson.dumps({"events": events}), key)
            )
            assert status == 200 and orjson.loads(answer)["accepted"] == len(events), answer[:300]
    finally:
        connection.close()


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = """
-- `tid` is a per-thread global set by setup(); a local here would shadow it
local counter, threads = 0, {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local kind, tag = os.getenv("BENCH_KIND"), os.getenv("BENCH_TAG")
local pool = tonumber(os.getenv("BENCH_POOL"))
local mix = {"new", "new", "new", "repeat", "repeat", "repeat", "repeat", "repeat",
             "conversion", "conversion"}
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
  wrk.headers["Content-Type"] = "application/json"
end
local function variant(i) return (i % 2 == 0) and "control" or "b" end
function request()
  counter = counter + 1
  local k = kind
  if k == "mix" then k = mix[counter % 10 + 1] end
  local body
  if k == "repeat" then
    local j = (counter * 7919 + tid * 104729) % pool
    body = string.format('{"experimentKey":"bench","variantKey":"%s","userKey":"pool-%d",'
      .. '"eventType":"exposure","props":{"page":"/p%d"}}', variant(j), j, counter % 50)
  elseif k == "new" then
    body = string.format('{"experimentKey":"bench","variantKey":"%s","userKey":"%s-%d-%d",'
      .. '"eventType":"exposure","props":{"page":"/p%d"}}',
      variant(counter), tag, tid, counter, counter % 50)
  else
    body = string.format('{"experimentKey":"bench","variantKey":"%s","userKey":"%s-%d-%d",'
      .. '"eventType":"purchase","value":%d.0,"props":{"page":"/p%d"}}',
      variant(counter), tag, tid, counter, counter % 100, counter % 50)
  end
  return wrk.format("POST", "/api/track", nil, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %f, "p50_ms": %f, "p90_ms": %f, "p99_ms": %f, '
    .. '"max_ms": %f, "non2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(
    port: int, key: str, root: Path, kind: str, tag: str, seconds: float
) -> dict[str, Any] | None:
    """``wrk`` (2 threads, 16 connections) sending ``kind`` for ``seconds`` (None: no wrk)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = root / "track_kinds.lua"
    script.write_text(WRK_SCRIPT)
    url = f"http://127.0.0.1:{port}/api/track"
    result = subprocess.run(
        [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "-s", str(script), url],
        env=dict(os.environ, BENCH_KEY=key, BENCH_KIND=kind, BENCH_TAG=tag, BENCH_POOL=str(POOL)),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("WRK ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
    stats: dict[str, Any] = json.loads(lines[-1][4:])
    if stats["non2xx"] or stats["socket_errors"]:
        raise SystemExit(f"/api/track answered errors under load ({kind}): {stats}")
    stats["rate"] = stats["requests"] / stats["seconds"]
    return stats


# --------------------------------------------------------------------------- timing client


async def run_timed(port: int, key: str, kind: str, tag: str, seconds: float) -> dict[str, Any]:
    """16 keep-alive connections in a closed loop, each request built before the clock and
    timed on its own; the answers are checked (a repeat must be a duplicate, a new unit or
    conversion must not). Returns counts and latencies per kind of request."""
    per_connection = int(seconds * 800) + 1_000  # > 12,800 req/s over 16 connections
    plans = [
        [
            (label, request("/api/track", orjson.dumps(body), key))
            for label, body in (
                item(kind, f"{tag}-{c}", i, salt=c * 104_729) for i in range(per_connection)
            )
        ]
        for c in range(CONNECTIONS)
    ]
    latencies, elapsed = await closed_loop(port, plans, seconds, check=_check_answer)
    total = sum(len(values) for values in latencies.values())
    result: dict[str, Any] = {"requests": total, "seconds": elapsed, "rate": total / elapsed}
    for label, values in latencies.items():
        result[label] = {"requests": len(values), **percentiles(values)}
    result["all"] = percentiles([ns for values in latencies.values() for ns in values])
    return result


def _check_answer(label: str, answer: bytes) -> None:
    """A repeat must be answered as a duplicate; a new unit or a conversion must not."""
    if (b'"duplicate":true' in answer) != (label == "repeat"):
        raise SystemExit(f"/api/track answered {answer!r} to a {label} request")


async def closed_loop(
    port: int,
    plans: Sequence[Sequence[tuple[str, bytes]]],
    seconds: float,
    check: Callable[[str, bytes], None] | None = None,
) -> tuple[dict[str, list[int]], float]:
    """One keep-alive connection per plan, in a closed loop: each sends its prepared
    (label, request) pairs until the deadline, times every request on its own and waits for
    every answer. Returns the latencies (ns) per label and the elapsed seconds."""
    latencies: dict[str, list[int]] = {}
    deadline = 0.0

    async def client(plan: Sequence[tuple[str, bytes]]) -> None:
        connection = await Connection.open(port)
        timer = time.perf_counter_ns
        try:
            for label, body in plan:
                if time.perf_counter() >= deadline:
                    return
                started = timer()
                status, answer = await connection.post(body)
                elapsed = timer() - started
                if status != 200:
                    raise SystemExit(f"/api/track answered {status}: {answer[:300]!r}")
                if check is not None:
                    check(label, answer)
                latencies.setdefault(label, []).append(elapsed)
            raise SystemExit("the timing client ran out of prepared requests")
        finally:
            connection.close()

    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(client(plan) for plan in plans))
    return latencies, time.perf_counter() - started


def percentiles(nanoseconds: list[int]) -> dict[str, float]:
    ordered = sorted(nanoseconds)
    count = len(ordered)

    def at(q: float) -> float:
        return ordered[min(count - 1, int(q / 100 * count))] / 1e6

    return {
        "p50_ms": at(50),
        "p90_ms": at(90),
        "p99_ms": at(99),
        "p999_ms": at(99.9),
        "max_ms": ordered[-1] / 1e6,
    }


# --------------------------------------------------------------------------- runs and checks


@dataclass
class Check:
    """What one run must have stored: rows of units ``{tag}-…`` in ``exposures`` and in
    ``events``, each within an inclusive range."""

    label: str
    tag: str
    exposures: tuple[int, int]
    events: tuple[int, int]


@dataclass
class KindRuns:
    """Every round of the per-kind runs on one backend, and what they must have stored."""

    wrk: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)


def share(kind: str, of: str) -> float:
    """The fraction of a ``kind`` run's requests that are ``of`` requests."""
    if kind == "mix":
        return MIX.count(of) / len(MIX)
    return 1.0 if kind == of else 0.0


def wrk_check(kind: str, tag: str, answered: int) -> Check:
    """What a wrk run must have stored: the requests answered, plus up to one in flight per
    connection when it stopped; in the mix, the kinds follow a counter per wrk thread, so
    each thread's share may be off by a few more."""
    slack = CONNECTIONS + (20 if kind == "mix" else 0)

    def rows(of: str) -> tuple[int, int]:
        expected = round(answered * share(kind, of))
        return (max(0, expected - slack + CONNECTIONS), expected + slack) if expected else (0, 0)

    return Check(f"wrk {kind}", tag, rows("new"), rows("conversion"))


def run_kinds(
    port: int,
    key: str,
    root: Path,
    *,
    seconds: float,
    rounds: int,
    kinds: Sequence[str] = KINDS,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    log: Callable[[str], None] = print,
) -> KindRuns:
    """``rounds`` rounds; in each, every kind with wrk and then with the timing client (the
    kinds in a rotated order, so that no kind always runs on the fullest tables)."""
    runs = KindRuns()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(seed_pool(port, key))
        for round_ in range(rounds):
            order = list(kinds[round_ % len(kinds) :]) + list(kinds[: round_ % len(kinds)])
            for kind in order:
                tag = f"w{round_}{kind}"
                stats = run_wrk(port, key, root, kind, tag, seconds)
                runs.loads.append(os.getloadavg()[0])
                if stats is not None:
                    runs.wrk.setdefault(kind, []).append(stats)
                    runs.checks.append(wrk_check(kind, tag, stats["requests"]))
                    log(
                        f"  round {round_ + 1} {kind:10s} wrk   {stats['rate']:7,.0f} req/s "
                        f"(wrk's time-sampled p99 {stats['p99_ms']:.1f} ms)"
                    )
                tag = f"x{round_}{kind}"
                timed = runner.run(run_timed(port, key, kind, tag, seconds))
                runs.loads.append(os.getloadavg()[0])
                runs.timed.setdefault(kind, []).append(timed)
                new, conversions = (
                    timed.get(k, {}).get("requests", 0) for k in ("new", "conversion")
                )
                runs.checks.append(
                    Check(f"timed {kind}", tag, (new, new), (conversions, conversions))
                )
                log(
                    f"  round {round_ + 1} {kind:10s} timed {timed['rate']:7,.0f} req/s "
                    f"p50 {timed['all']['p50_ms']:.1f} p90 {timed['all']['p90_ms']:.1f} "
                    f"p99 {timed['all']['p99_ms']:.1f} ms  (load {runs.loads[-1]:.1f})"
                )
    return runs


def check_stored(
    runs: KindRuns, count: Callable[[str], tuple[int, int, int, int]], log: Callable[[str], None]
) -> None:
    """Compare what each run stored with what it was answered; ``count(pattern)`` gives the
    exposures and events of units matching ``pattern``, then of the pool, then conflicts."""
    problems = []
    pool_exposures = conflicts = 0
    for check in runs.checks:
        exposures, events, pool_exposures, conflicts = count(f"{check.tag}-%")
        for what, stored, (low, high) in (
            ("exposures", exposures, check.exposures),
            ("events", events, check.events),
        ):
            if not low <= stored <= high:
                problems.append(
                    f"{check.label}: {stored:,} {what} stored, {low:,}–{high:,} expected"
                )
    if pool_exposures != POOL:
        problems.append(f"repeated exposures: {pool_exposures:,} pool rows, {POOL:,} expected")
    if conflicts:
        problems.append(f"{conflicts:,} exposure conflicts recorded, none expected")
    exact = [c for c in runs.checks if c.label.startswith("timed")]
    log(
        f"  stored: {len(runs.checks)} runs checked — every new unit one exposure row, every "
        f"conversion one event, repeats none ({POOL:,} pool rows), {conflicts} conflicts; "
        f"the timing client's {len(exact)} runs exactly: " + ("ok" if not problems else "MISMATCH")
    )
    if problems:
        raise SystemExit("/api/track stored the wrong rows:\n" + "\n".join(problems))


def spread(values: Sequence[float], unit: str = "", digits: int = 0) -> str:
    """Median and (min–max) of a few repetitions."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}{unit}"
    return (
        f"{statistics.median(values):,.{digits}f}{unit} "
        f"({min(values):,.{digits}f}–{max(values):,.{digits}f})"
    )


def summarize(name: str, runs: KindRuns, log: Callable[[str], None] = print) -> None:
    """One line per kind and tool: throughput and latency, median (min–max) over rounds."""
    rounds = max(len(timed) for timed in runs.timed.values())
    log(
        f"[{name}] /api/track by kind ({CONNECTIONS} connections; median (min–max) of "
        f"{rounds} round(s); load average {min(runs.loads):.1f}–{max(runs.loads):.1f}):"
    )
    for kind in KINDS:
        if kind in runs.wrk:
            stats = runs.wrk[kind]
            log(
                f"[{name}]   {kind:12s} wrk  : {spread([s['rate'] for s in stats], ' req/s')}; "
                f"wrk's time-sampled p99 {spread([s['p99_ms'] for s in stats], ' ms', 1)}"
            )
        timed = runs.timed.get(kind, [])
        for label in ["all"] + (list(dict.fromkeys(MIX)) if kind == "mix" else []):
            rows = [(t[label], t["seconds"], t["rate"]) for t in timed if label in t]
            if not rows:
                continue
            if label == "all":
                title, rate = kind, spread([r for _, _, r in rows], " req/s")
            else:
                rates = [row["requests"] / seconds for row, seconds, _ in rows]
                title, rate = f"  {label}", spread(rates, " req/s") + " of them"
            log(
                f"[{name}]   {title:12s} timed: {rate}; "
                f"p50 {spread([r['p50_ms'] for r, _, _ in rows], '', 1)}, "
                f"p90 {spread([r['p90_ms'] for r, _, _ in rows], '', 1)}, "
                f"p99 {spread([r['p99_ms'] for r, _, _ in rows], '', 1)} ms, "
                f"max {max(r['max_ms'] for r, _, _ in rows):.0f} ms"
            )
