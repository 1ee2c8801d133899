"""Pure rules of the ledger: spend order, carrier months. No database, no clock."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import NamedTuple, Protocol, Sequence, TypeVar

FREE_KINDS = frozenset({"welcome_gift", "monthly_trial", "adjustment", "refund"})
PAID_KINDS = frozenset({"package", "pay_as_you_go"})
GRANT_KINDS = FREE_KINDS | PAID_KINDS
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


class Spendable(Protocol):
    id: str
    kind: str
    remaining: int
    valid_from: datetime
    expires_at: datetime | None


G = TypeVar("G", bound=Spendable)


def spend_key(grant: Spendable) -> tuple:
    """Soonest expiry first (no expiry last); among equal expiry, free before paid; then oldest."""
    expires = grant.expires_at
    return (expires is None, expires or _NEVER, grant.kind in PAID_KINDS, grant.valid_from, grant.id)


def usable(grant: Spendable, now: datetime) -> bool:
    return grant.remaining > 0 and grant.valid_from <= now and (grant.expires_at is None or grant.expires_at > now)


def plan(grants: Sequence[G], amount: int) -> tuple[list[tuple[G, int]], int]:
    """Take ``amount`` from usable ``grants`` in spend order: (grant, tokens) parts and the shortfall."""
    parts: list[tuple[G, int]] = []
    left = amount
    for grant in sorted(grants, key=spend_key):
        if left == 0:
            break
        take = min(grant.remaining, left)
        parts.append((grant, take))
        left -= take
    return parts, left


class Month(NamedTuple):
    label: str  # YYYY-MM in the carrier's time zone
    start: datetime  # UTC
    end: datetime  # UTC, exclusive: the month's trial expires here


def month_label(now: datetime, tz: tzinfo) -> str:
    return now.astimezone(tz).strftime("%Y-%m")


def carrier_month(now: datetime, tz: tzinfo) -> Month:
    start = now.astimezone(tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Month(start.strftime("%Y-%m"), start.astimezone(timezone.utc), end.astimezone(timezone.utc))
