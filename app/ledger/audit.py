"""`python -m app ledger audit`: check every ledger invariant over the whole database.

Each bucket of every grant is counted three ways that are written by different statements:
the grant row itself, the hold parts that point at it, and the journal. They must agree:
  grant:   amount = remaining + held + captured + expired, all >= 0
  grant:   held / captured = its parts in held / captured holds; expired = expire entries +
           the parts that released holds sent to expired; amount = its one grant entry
  hold:    its parts add up to it; its journal entries match its status
  account: totals = the sums over its grants = the sums over its journal = its last entry
The whole check reads one snapshot, so it may run beside live traffic.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import BigInteger, and_, cast, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_read
from app.tables import accounts as A
from app.tables import entries as E
from app.tables import grants as G
from app.tables import hold_parts as P
from app.tables import holds as H

BUCKETS = ("remaining", "held", "captured", "expired")


def _sum(column):
    return cast(func.sum(column), BigInteger)  # PostgreSQL's sum(bigint) is numeric


_DELTAS = (_sum(E.c.amount), _sum(E.c.held_delta), _sum(E.c.captured_delta), _sum(E.c.expired_delta), func.count())


async def audit(engine: AsyncEngine) -> list[str]:
    """Every broken invariant as one line naming the grant, hold or account; empty = all hold."""
    return await run_read(engine, _audit, snapshot=True)


def _audit(conn: Connection) -> list[str]:
    def rows(stmt):
        return conn.execute(stmt).all()

    grants = rows(select(G.c.id, G.c.user_id, G.c.amount, *(G.c[b] for b in BUCKETS)))
    parts_by_status = rows(
        select(P.c.grant_id, H.c.status, _sum(P.c.amount), _sum(P.c.expired))
        .join(H, H.c.id == P.c.hold_id).group_by(P.c.grant_id, H.c.status))
    grant_entries = rows(
        select(E.c.grant_id, E.c.kind, *_DELTAS).where(E.c.grant_id.is_not(None)).group_by(E.c.grant_id, E.c.kind))
    holds = rows(select(H.c.id, H.c.amount, H.c.parts, H.c.status))
    parts_by_hold = rows(
        select(P.c.hold_id, func.count(), _sum(P.c.amount), _sum(P.c.expired)).group_by(P.c.hold_id))
    hold_entries = rows(
        select(E.c.hold_id, E.c.kind, *_DELTAS).where(E.c.hold_id.is_not(None)).group_by(E.c.hold_id, E.c.kind))
    accounts = rows(select(A))
    user_entries = rows(select(E.c.user_id, *_DELTAS[:4]).group_by(E.c.user_id))
    last = select(func.max(E.c.id).label("id")).group_by(E.c.user_id).subquery()
    last_entries = rows(select(E.c.user_id, E.c.balance_after, E.c.held_after).join(last, last.c.id == E.c.id))
    unbalanced = rows(select(E.c.id, E.c.kind).where(or_(
        and_(E.c.kind == "grant", or_(E.c.amount <= 0, E.c.held_delta != 0, E.c.captured_delta != 0,
                                      E.c.expired_delta != 0)),
        and_(E.c.kind != "grant", E.c.amount + E.c.held_delta + E.c.captured_delta + E.c.expired_delta != 0),
    )))

    problems = [f"journal entry {e.id} ({e.kind}) creates or destroys tokens" for e in unbalanced]
    problems += _check_grants(grants, parts_by_status, grant_entries)
    problems += _check_holds(holds, parts_by_hold, hold_entries)
    problems += _check_accounts(accounts, grants, user_entries, last_entries)
    return problems


def _check_grants(grants, parts_by_status, grant_entries) -> list[str]:
    parts = {(g, status): (amount, expired) for g, status, amount, expired in parts_by_status}
    entries = {(g, kind): rest for g, kind, *rest in grant_entries}
    problems = []
    for g in grants:
        name = f"grant {g.id} (user {g.user_id})"
        buckets = {b: g._mapping[b] for b in BUCKETS}
        if g.amount != sum(buckets.values()):
            problems.append(f"{name}: amount {g.amount:,} != " + " + ".join(f"{b} {v:,}" for b, v in buckets.items()))
        problems += [f"{name}: {b} is negative ({v:,})" for b, v in buckets.items() if v < 0]
        expected = {
            "held": parts.get((g.id, "held"), (0, 0))[0],
            "captured": parts.get((g.id, "captured"), (0, 0))[0],
            "expired": entries.get((g.id, "expire"), (0, 0, 0, 0))[3] + parts.get((g.id, "released"), (0, 0))[1],
        }
        problems += [f"{name}: {b} is {buckets[b]:,} but holds and journal account for {v:,}"
                     for b, v in expected.items() if buckets[b] != v]
        granted = entries.get((g.id, "grant"))
        if granted is None or granted[4] != 1 or granted[0] != g.amount:
            problems.append(f"{name}: amount {g.amount:,} does not match its one grant entry ({granted})")
    return problems


# What a hold's journal must say for each status: {entry kind: (available, held, captured)}; a
# release's available + expired change is checked against its parts below.
def _expected_entries(status: str, amount: int) -> dict[str, tuple[int, int, int]]:
    expected = {"reserve": (-amount, amount, 0)}
    if status == "captured":
        expected["capture"] = (0, -amount, amount)
    return expected


def _check_holds(holds, parts_by_hold, hold_entries) -> list[str]:
    parts = {h: (count, amount, expired) for h, count, amount, expired in parts_by_hold}
    entries: dict[str, dict[str, tuple]] = defaultdict(dict)
    for hold_id, kind, amount, held, captured, expired, count in hold_entries:
        entries[hold_id][kind] = (amount, held, captured, expired, count)
    problems = []
    for h in holds:
        name = f"hold {h.id}"
        count, amount, lost = parts.get(h.id, (0, 0, 0))
        if (count, amount) != (h.parts, h.amount):
            problems.append(f"{name}: {h.amount:,} over {h.parts} grants, but its parts are {amount:,} over {count}")
        if lost and h.status != "released":
            problems.append(f"{name}: {h.status}, yet parts say {lost:,} went to expired")
        seen = entries.get(h.id, {})
        want = {k: (*v, 0, 1) for k, v in _expected_entries(h.status, h.amount).items()}
        if h.status == "released":
            want["release"] = (h.amount - lost, -h.amount, 0, lost, 1)
        if seen != want:
            problems.append(f"{name}: {h.status} {h.amount:,}, but the journal says {seen}")
    return problems


def _check_accounts(accounts, grants, user_entries, last_entries) -> list[str]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("granted", *BUCKETS), 0))
    for g in grants:
        s = sums[g.user_id]
        s["granted"] += g.amount
        for b in BUCKETS:
            s[b] += g._mapping[b]
    journal = {u: (available, held, captured, expired) for u, available, held, captured, expired in user_entries}
    last = {u: (available, held) for u, available, held in last_entries}
    problems = []
    for a in accounts:
        name = f"account {a.user_id}"
        totals = {"granted": a.granted, "remaining": a.available, "held": a.held, "captured": a.captured,
                  "expired": a.expired}
        if totals != sums[a.user_id]:
            problems.append(f"{name}: totals {totals} but its grants add up to {sums[a.user_id]}")
        if a.available < 0:
            problems.append(f"{name}: overdrawn ({a.available:,})")
        if journal.get(a.user_id, (0, 0, 0, 0)) != (a.available, a.held, a.captured, a.expired):
            problems.append(f"{name}: journal adds up to {journal.get(a.user_id)}, totals are "
                            f"{(a.available, a.held, a.captured, a.expired)}")
        if a.user_id in last and last[a.user_id] != (a.available, a.held):
            problems.append(f"{name}: last journal entry says {last[a.user_id]}, totals are {(a.available, a.held)}")
    return problems
