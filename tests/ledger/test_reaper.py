"""Invariant 4: no hold outlives its deadline; the reaper releases it and names its operation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.ledger import HoldNotActive

from .checks import assert_sound

USER = "user-1"


async def test_reaper_releases_holds_past_their_deadline(ledger, engine, clock):
    now = clock.now
    early = await ledger.reserve(USER, 31_000, operation_id="op-early", feature="cutout",
                                 deadline=now + timedelta(minutes=1))
    done = await ledger.reserve(USER, 31_000, operation_id="op-done", feature="cutout",
                                deadline=now + timedelta(minutes=2))
    await ledger.reserve(USER, 31_000, operation_id="op-late", feature="cutout", deadline=now + timedelta(minutes=10))
    await ledger.capture(done.id)
    assert await ledger.reap() == []

    clock.advance(minutes=5)
    assert await ledger.reap() == ["op-early"]
    assert await ledger.reap() == []
    reaped = await ledger.release(early.id, reason="again")
    assert (reaped.status, reaped.reason) == ("released", "deadline")
    with pytest.raises(HoldNotActive):
        await ledger.capture(early.id)

    clock.advance(minutes=5)
    assert await ledger.reap() == ["op-late"]
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (469_000, 0)
    await assert_sound(engine)
