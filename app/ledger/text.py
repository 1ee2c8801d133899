"""Journal entries as a person reads them (the user's ledger page and customer service)."""

from __future__ import annotations

KIND_TITLES = {
    "welcome_gift": "Welcome gift",
    "monthly_trial": "Monthly free trial",
    "package": "Token package",
    "pay_as_you_go": "Pay-as-you-go tokens",
    "adjustment": "Adjustment",
    "refund": "Refund",
}


def describe(*, kind: str, amount: int, held_change: int, expired_change: int, balance_after: int,
             feature_title: str | None, grant_kind: str | None, note: str | None) -> str:
    """One line, e.g. "Smart cutout, -31,000, balance 469,000"."""
    balance = f"balance {balance_after:,}"
    what = feature_title or KIND_TITLES.get(grant_kind or "", "Tokens")
    if kind == "grant":
        return f"{what}, {amount:+,}, {balance}" + (f" ({note})" if note else "")
    if kind == "reserve":
        return f"{what}, {amount:+,}, {balance}"
    if kind == "capture":
        return f"{what}, charged {-held_change:,}, {balance}"
    if kind == "release":
        why = f" ({note})" if note else ""
        lapsed = f", {expired_change:,} expired meanwhile" if expired_change else ""
        return f"{what} not charged{why}, {amount:+,}{lapsed}, {balance}"
    if note and note.startswith("revoked: "):  # a refund took back what was unspent
        return f"{what} withdrawn ({note.removeprefix('revoked: ')}), {amount:+,}, {balance}"
    return f"{what} expired, {amount:+,}, {balance}"
