"""Welcome gift once ever; monthly trial once per carrier-time-zone month, expiring at its end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.ledger import Ledger

from .checks import assert_sound, grant_rows
from .conftest import FEATURES

USER = "user-1"
TRIAL = 25_000_000


def trial_ledger(engine, clock) -> Ledger:
    return Ledger(engine, clock=clock, monthly_trial_tokens=TRIAL, feature_titles=FEATURES)


async def test_welcome_gift_once_ever(ledger, engine, clock):
    for _ in range(3):
        await ledger.ensure_user(USER)
    clock.advance(days=400)
    await ledger.ensure_user(USER)
    rows = await grant_rows(engine, USER)
    assert [(g.kind, g.amount, g.source_ref, g.expires_at) for g in rows] == [
        ("welcome_gift", 500_000, f"welcome:{USER}", None)]
    assert (await ledger.balance(USER)).available == 500_000
    await assert_sound(engine)


async def test_monthly_trial_follows_shanghai_months(engine, clock):
    ledger = trial_ledger(engine, clock)
    clock.now = datetime(2026, 1, 31, 15, 59, tzinfo=timezone.utc)  # Jan 31, 23:59 in Shanghai
    await ledger.ensure_user(USER)
    await ledger.ensure_user(USER)
    clock.now = datetime(2026, 1, 31, 16, 30, tzinfo=timezone.utc)  # Feb 1, 00:30 in Shanghai
    await ledger.ensure_user(USER)
    await ledger.ensure_user(USER)

    trials = {g.source_ref: g for g in await grant_rows(engine, USER) if g.kind == "monthly_trial"}
    assert set(trials) == {f"trial:{USER}:2026-01", f"trial:{USER}:2026-02"}
    january, february = trials[f"trial:{USER}:2026-01"], trials[f"trial:{USER}:2026-02"]
    assert january.expires_at == datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert (january.remaining, january.expired) == (0, TRIAL)  # swept when February began
    assert february.valid_from == datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert february.expires_at == datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc)  # Mar 1, 00:00 Shanghai
    assert (await ledger.balance(USER)).available == 500_000 + TRIAL
    kinds = [e.kind for e in await ledger.entries(USER)]
    assert kinds.count("expire") == 1 and kinds.count("grant") == 3
    await assert_sound(engine)


async def test_first_request_of_a_month_is_a_reservation(engine, clock):
    ledger = trial_ledger(engine, clock)
    clock.now = datetime(2026, 1, 31, 16, 30, tzinfo=timezone.utc)
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    assert hold.available == 500_000 + TRIAL - 31_000
    held = {g.kind: g.held for g in await grant_rows(engine, USER)}
    assert held == {"welcome_gift": 0, "monthly_trial": 31_000}  # the trial expires first
    await assert_sound(engine)


async def test_release_after_expiry_sends_tokens_to_expired(engine, clock):
    ledger = trial_ledger(engine, clock)
    clock.now = datetime(2026, 1, 31, 15, 58, tzinfo=timezone.utc)
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    clock.now = datetime(2026, 1, 31, 16, 1, tzinfo=timezone.utc)  # January's trial has lapsed
    released = await ledger.release(hold.id, reason="timeout")
    assert released.available == 500_000  # January's trial is gone; February's is not granted yet
    [january] = [g for g in await grant_rows(engine, USER) if g.kind == "monthly_trial"]
    assert (january.remaining, january.held, january.expired) == (0, 0, TRIAL)
    assert await ledger.expire_due() == 0
    texts = [e.text for e in await ledger.entries(USER, limit=2)]
    assert texts == [
        "Monthly free trial expired, -24,969,000, balance 500,000",
        "Smart cutout not charged (timeout), +0, 31,000 expired meanwhile, balance 25,469,000",
    ]
    assert (await ledger.balance(USER)).available == 500_000 + TRIAL  # February's trial, lazily
    await assert_sound(engine)


async def test_capture_after_expiry_still_charges(engine, clock):
    ledger = trial_ledger(engine, clock)
    clock.now = datetime(2026, 1, 31, 15, 58, tzinfo=timezone.utc)
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    clock.advance(minutes=3)
    assert await ledger.expire_due() == 1
    await ledger.capture(hold.id)
    [january] = [g for g in await grant_rows(engine, USER) if g.kind == "monthly_trial"]
    assert (january.remaining, january.held, january.captured, january.expired) == (0, 0, 31_000, TRIAL - 31_000)
    await assert_sound(engine)
