"""What the ledger returns: plain msgspec Structs, ready for the HTTP layer to encode."""

from __future__ import annotations

from datetime import datetime

import msgspec


class GrantView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    user_id: str
    kind: str
    amount: int
    remaining: int
    held: int
    captured: int
    expired: int
    source_ref: str
    valid_from: datetime
    expires_at: datetime | None
    created_at: datetime
    note: str | None = None
    actor: str | None = None


class HoldView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    user_id: str
    operation_id: str
    feature: str
    amount: int
    status: str  # held | captured | released
    reason: str | None
    created_at: datetime
    deadline: datetime
    finished_at: datetime | None
    available: int  # the balance right after this change, as its journal entry says (X-Tokens-Remaining)


class GrantBalance(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    amount: int
    remaining: int
    held: int
    valid_from: datetime
    expires_at: datetime | None


class BalanceView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    available: int  # spendable now
    held: int  # set aside for operations in flight
    grants: list[GrantBalance]  # grants with tokens left or held, in spend order


class QuotePart(msgspec.Struct, frozen=True, kw_only=True):
    grant_id: str
    kind: str
    amount: int
    expires_at: datetime | None


class QuoteView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    amount: int
    affordable: bool
    balance: int
    parts: list[QuotePart]  # what a reservation would take from each grant, in spend order


class EntryView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    kind: str  # grant | reserve | capture | release | expire
    amount: int  # change to the spendable balance (negative = tokens left it)
    held_change: int
    operation_id: str | None
    feature: str | None
    grant_id: str | None
    hold_id: str | None
    balance_after: int
    held_after: int
    note: str | None
    text: str  # for a person: "Smart cutout, -31,000, balance 469,000"
