"""The hot paths' lookup cache: single flight, stale-while-revalidate, errors, ttl 0."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

import pytest

from splitlab.api.caches import Refreshing
from splitlab.errors import AuthenticationError


class Store:
    """A loader whose answers the test changes, and which can be held mid-load."""

    def __init__(self) -> None:
        self.values: dict[str, int | None] = {"a": 1, "b": 2}
        self.calls: list[frozenset[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def load(self, keys: frozenset[str]) -> Mapping[str, int | None]:
        self.calls.append(keys)
        assert self.gate.wait(5)
        found = {}
        for key in keys:
            if key == "bad":
                raise AuthenticationError("invalid or revoked API key")
            found[key] = self.values.get(key)
        return found


def test_concurrent_misses_share_one_load() -> None:
    store = Store()
    cache: Refreshing[int | None] = Refreshing(60, store.load)

    async def main() -> None:
        store.gate.clear()
        waiters = [asyncio.create_task(cache.ensure(["a"])) for _ in range(16)]
        await asyncio.sleep(0.05)
        store.gate.set()
        await asyncio.gather(*waiters)

    asyncio.run(main())
    assert store.calls == [frozenset({"a"})]
    assert cache.get("a") == 1


def test_a_stale_value_is_served_while_one_refresh_runs() -> None:
    store = Store()
    cache: Refreshing[int | None] = Refreshing(0.05, store.load)

    async def main() -> None:
        await cache.ensure(["a"])
        time.sleep(0.06)  # expired
        store.values["a"] = 10
        store.gate.clear()  # the refresh hangs: requests must not wait for it
        for _ in range(16):
            await asyncio.wait_for(cache.ensure(["a"]), 1)
            assert cache.get("a") == 1
        for _ in range(100):  # the refresh's thread has started (and is held at the gate)
            if len(store.calls) == 2:
                break
            await asyncio.sleep(0.01)
        await cache.ensure(["a"])
        assert len(store.calls) == 2  # one refresh for all seventeen
        store.gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if cache.get("a") == 10:
                break
        assert cache.get("a") == 10

    asyncio.run(main())


def test_unusable_values_are_loaded_every_time() -> None:
    store = Store()
    store.values["c"] = None  # e.g. an experiment that is not running (yet)
    cache: Refreshing[int | None] = Refreshing(60, store.load, usable=lambda v: v is not None)

    async def main() -> None:
        await cache.ensure(["c"])
        assert cache.get("c") is None
        store.values["c"] = 3  # started
        await cache.ensure(["c"])
        assert cache.get("c") == 3
        await cache.ensure(["c"])  # now usable: reused

    asyncio.run(main())
    assert len(store.calls) == 2


def test_a_failed_load_raises_for_every_waiter_and_drops_the_entry() -> None:
    store = Store()
    cache: Refreshing[int | None] = Refreshing(0.05, store.load)

    async def main() -> None:
        results = await asyncio.gather(
            *(cache.ensure(["bad"]) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, AuthenticationError) for r in results)
        assert store.calls == [frozenset({"bad"})]

    asyncio.run(main())


def test_a_refresh_that_fails_evicts_so_the_next_request_fails() -> None:
    """A revoked API key: served until the background refresh finds it gone, then refused."""
    store = Store()
    revoked = {"a": False}

    def load(keys: frozenset[str]) -> Mapping[str, int | None]:
        if revoked["a"]:
            raise AuthenticationError("invalid or revoked API key")
        return store.load(keys)

    cache: Refreshing[int | None] = Refreshing(0.05, load)

    async def main() -> None:
        await cache.ensure(["a"])
        revoked["a"] = True
        time.sleep(0.06)
        await cache.ensure(["a"])  # stale: served, refresh started
        for _ in range(100):
            await asyncio.sleep(0.01)
            if cache.get("a") is None:
                break
        with pytest.raises(AuthenticationError):
            await cache.ensure(["a"])

    asyncio.run(main())


def test_ttl_zero_turns_the_cache_off() -> None:
    store = Store()
    cache: Refreshing[int | None] = Refreshing(0, store.load)

    async def main() -> None:
        await cache.ensure(["a"])
        store.values["a"] = 5
        await cache.ensure(["a"])
        assert cache.get("a") == 5

    asyncio.run(main())
    assert len(store.calls) == 2
