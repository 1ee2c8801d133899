"""The ledger's operations one by one, with invariant 1 and a clean audit after each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from app.errors import InsufficientTokens, InvalidOption, NotFound
from app.ledger import HoldNotActive, SourceRefReused
from app.ledger.audit import audit

from .checks import assert_sound, execute, grant_rows

USER = "user-1"


async def test_every_operation_keeps_every_grant_whole(ledger, engine, clock):
    await ledger.ensure_user(USER)
    await assert_sound(engine)
    package = await ledger.grant(USER, kind="package", amount=250_000, source_ref="order:1",
                                 expires_at=clock.now + timedelta(days=30), actor="billing")
    await assert_sound(engine)
    deadline = clock.now + timedelta(minutes=5)
    first = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout", deadline=deadline)
    await assert_sound(engine)
    await ledger.capture(first.id)
    await assert_sound(engine)
    second = await ledger.reserve(USER, 300_000, operation_id="op-2", feature="removal", deadline=deadline)
    await assert_sound(engine)
    await ledger.release(second.id, reason="model_error")
    await assert_sound(engine)
    clock.advance(days=31)
    assert await ledger.expire_due() == 1
    await assert_sound(engine)

    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (500_000, 0)
    rows = {g.id: g for g in await grant_rows(engine, USER)}
    # The package expires first, so it paid for the cutout; the rest of it expired.
    assert (rows[package.id].captured, rows[package.id].expired) == (31_000, 219_000)


async def test_hold_moves_tokens_between_buckets(ledger, clock):
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    assert (hold.status, hold.amount, hold.available) == ("held", 31_000, 469_000)
    assert (await ledger.balance(USER)).held == 31_000
    captured = await ledger.capture(hold.id)
    assert (captured.status, captured.available, captured.finished_at) == ("captured", 469_000, clock.now)
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (469_000, 0)


async def test_capture_and_release_are_idempotent_and_final(ledger, engine, clock):
    deadline = clock.now + timedelta(minutes=5)
    a = await ledger.reserve(USER, 31_000, operation_id="op-a", feature="cutout", deadline=deadline)
    b = await ledger.reserve(USER, 31_000, operation_id="op-b", feature="cutout", deadline=deadline)
    assert (await ledger.capture(a.id)).status == "captured"
    assert (await ledger.capture(a.id)).status == "captured"
    assert (await ledger.release(b.id, reason="failed")).status == "released"
    again = await ledger.release(b.id, reason="failed again")
    assert (again.status, again.reason) == ("released", "failed")
    with pytest.raises(HoldNotActive):
        await ledger.release(a.id, reason="too late")
    with pytest.raises(HoldNotActive):
        await ledger.capture(b.id)
    with pytest.raises(NotFound):
        await ledger.capture("no-such-hold")
    assert (await ledger.balance(USER)).available == 469_000
    await assert_sound(engine)


async def test_one_hold_per_operation(ledger, engine, clock):
    deadline = clock.now + timedelta(minutes=5)
    first = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout", deadline=deadline)
    again = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout", deadline=deadline)
    assert again.id == first.id
    assert (await ledger.balance(USER)).available == 469_000
    with pytest.raises(IntegrityError):
        await ledger.reserve("someone-else", 31_000, operation_id="op-1", feature="cutout", deadline=deadline)
    await assert_sound(engine)


async def test_insufficient_tokens_holds_nothing(ledger, engine, clock):
    with pytest.raises(InsufficientTokens) as caught:
        await ledger.reserve(USER, 600_000, operation_id="op-1", feature="cutout",
                             deadline=clock.now + timedelta(minutes=5))
    assert caught.value.extra == {"price": 600_000, "balance": 500_000}
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (500_000, 0)
    assert [e.kind for e in await ledger.entries(USER)] == ["grant"]
    await assert_sound(engine)


async def test_grant_is_idempotent_by_source_ref(ledger, engine):
    first = await ledger.grant(USER, kind="pay_as_you_go", amount=250_000, source_ref="order:7")
    again = await ledger.grant(USER, kind="pay_as_you_go", amount=250_000, source_ref="order:7")
    assert again == first
    with pytest.raises(SourceRefReused):
        await ledger.grant(USER, kind="pay_as_you_go", amount=999, source_ref="order:7")
    with pytest.raises(InvalidOption):
        await ledger.grant(USER, kind="gift", amount=1, source_ref="x")
    assert len(await grant_rows(engine, USER)) == 1
    await assert_sound(engine)


async def test_spend_order_soonest_expiry_then_free_before_paid(ledger, engine, clock):
    now = clock.now
    await ledger.ensure_user(USER)  # welcome gift, no expiry: spent last
    paid_soon = await ledger.grant(USER, kind="package", amount=10_000, source_ref="p1",
                                   expires_at=now + timedelta(days=1))
    free_soon = await ledger.grant(USER, kind="adjustment", amount=10_000, source_ref="a1",
                                   expires_at=now + timedelta(days=1))
    paid_late = await ledger.grant(USER, kind="package", amount=10_000, source_ref="p2",
                                   expires_at=now + timedelta(days=9))
    quote = await ledger.quote(USER, 35_000)
    assert quote.affordable and quote.balance == 530_000
    assert [(p.grant_id, p.amount) for p in quote.parts] == [
        (free_soon.id, 10_000), (paid_soon.id, 10_000), (paid_late.id, 10_000), (quote.parts[3].grant_id, 5_000)]
    assert quote.parts[3].kind == "welcome_gift"

    await ledger.reserve(USER, 35_000, operation_id="op-1", feature="cutout", deadline=now + timedelta(minutes=5))
    held = {g.source_ref: g.held for g in await grant_rows(engine, USER)}
    assert held == {"a1": 10_000, "p1": 10_000, "p2": 10_000, f"welcome:{USER}": 5_000}
    assert not (await ledger.quote(USER, 10**9)).affordable
    await assert_sound(engine)


async def test_grant_not_yet_valid_is_not_spendable(ledger, clock):
    await ledger.grant(USER, kind="package", amount=10_000_000, source_ref="next-month",
                       valid_from=clock.now + timedelta(days=3), expires_at=clock.now + timedelta(days=33))
    assert (await ledger.balance(USER)).available == 500_000
    with pytest.raises(InsufficientTokens):
        await ledger.reserve(USER, 600_000, operation_id="op-1", feature="cutout",
                             deadline=clock.now + timedelta(minutes=5))
    clock.advance(days=3)
    assert (await ledger.balance(USER)).available == 10_500_000
    await ledger.reserve(USER, 600_000, operation_id="op-2", feature="cutout", deadline=clock.now + timedelta(minutes=5))


async def test_entries_read_like_a_statement(ledger, clock):
    deadline = clock.now + timedelta(minutes=5)
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout", deadline=deadline)
    await ledger.capture(hold.id)
    other = await ledger.reserve(USER, 40_000, operation_id="op-2", feature="removal", deadline=deadline)
    await ledger.release(other.id, reason="model_error")

    entries = await ledger.entries(USER)
    assert [e.text for e in entries] == [
        "Smart removal not charged (model_error), +40,000, balance 469,000",
        "Smart removal, -40,000, balance 429,000",
        "Smart cutout, charged 31,000, balance 469,000",
        "Smart cutout, -31,000, balance 469,000",
        "Welcome gift, +500,000, balance 500,000",
    ]
    assert [e.kind for e in entries] == ["release", "reserve", "capture", "reserve", "grant"]
    assert entries[3].operation_id == "op-1" and entries[3].feature == "cutout" and entries[3].amount == -31_000
    page = await ledger.entries(USER, limit=2, before_id=entries[1].id)
    assert [e.id for e in page] == [entries[2].id, entries[3].id]


async def test_audit_names_a_tampered_grant(ledger, engine, clock):
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    await ledger.capture(hold.id)
    [gift] = await grant_rows(engine, USER)
    await assert_sound(engine)

    # The database refuses a grant whose buckets do not add up ...
    with pytest.raises(IntegrityError):
        await execute(engine, "UPDATE ledger_grants SET remaining = remaining + 1000 WHERE id = :id", id=gift.id)
    # ... and audit catches rows that still add up but disagree with the holds and journal.
    await execute(engine, "UPDATE ledger_grants SET remaining = remaining - 1000, captured = captured + 1000 "
                          "WHERE id = :id", id=gift.id)
    problems = await audit(engine)
    assert any(p.startswith(f"grant {gift.id}") and "captured" in p for p in problems), problems
    await execute(engine, "UPDATE ledger_grants SET remaining = remaining + 1000, captured = captured - 1000 "
                          "WHERE id = :id", id=gift.id)
    await assert_sound(engine)

    # Minting tokens: amount and remaining both raised, consistently with each other.
    await execute(engine, "UPDATE ledger_grants SET amount = amount + 5000, remaining = remaining + 5000 "
                          "WHERE id = :id", id=gift.id)
    problems = await audit(engine)
    assert any(p.startswith(f"grant {gift.id}") and "grant entry" in p for p in problems), problems
    assert any(p.startswith(f"account {USER}") for p in problems), problems


async def test_audit_names_a_tampered_hold(ledger, engine, clock):
    hold = await ledger.reserve(USER, 31_000, operation_id="op-1", feature="cutout",
                                deadline=clock.now + timedelta(minutes=5))
    await execute(engine, "UPDATE ledger_holds SET amount = 1000 WHERE id = :id", id=hold.id)
    problems = await audit(engine)
    assert any(p.startswith(f"hold {hold.id}") for p in problems), problems
