"""The periodic re-check walks every known Connector once per interval, spread out, never
two at once for one Connector, and forgets deleted ones."""

from __future__ import annotations

import asyncio
import time

from sluice_operator.periodic import PeriodicRechecks


def test_rechecks_are_spread_over_the_interval_and_not_overlapping() -> None:
    calls: list[tuple[str, float]] = []
    running: set[str] = set()
    overlaps: list[str] = []

    async def recheck(namespace: str, name: str) -> None:
        if name in running:
            overlaps.append(name)
        running.add(name)
        calls.append((name, time.monotonic()))
        await asyncio.sleep(0.5 if name == "slow" else 0)
        running.discard(name)

    async def main() -> None:
        rechecks = PeriodicRechecks(0.2, recheck)
        for name in ("a", "b", "slow"):
            rechecks.track("ns", name)
        rechecks.start()
        await asyncio.sleep(0.55)
        rechecks.untrack("ns", "a")
        seen = len(calls)
        await asyncio.sleep(0.45)
        await rechecks.stop()
        assert all(name != "a" for name, _ in calls[seen:])

    asyncio.run(main())
    names = [name for name, _ in calls]
    assert names.count("b") >= 3
    assert 1 <= names.count("slow") <= 2  # a slow one is skipped while it still runs
    assert not overlaps
    # Spread: the first round's three re-checks start a third of the interval apart.
    first_round = sorted(at for _, at in calls)[:3]
    assert first_round[2] - first_round[0] > 0.06
