"""The token ledger: where tokens come from (grants), where they are set aside (holds), where
they go (captured, released, expired), and a journal of every change. See service.Ledger."""

from app.ledger.errors import HoldNotActive, LedgerInvariantBroken, SourceRefReused
from app.ledger.models import BalanceView, EntryView, GrantBalance, GrantView, HoldView, QuotePart, QuoteView
from app.ledger.policy import FREE_KINDS, GRANT_KINDS, PAID_KINDS
from app.ledger.service import Ledger

__all__ = [
    "BalanceView", "EntryView", "FREE_KINDS", "GRANT_KINDS", "GrantBalance", "GrantView", "HoldNotActive",
    "HoldView", "Ledger", "LedgerInvariantBroken", "PAID_KINDS", "QuotePart", "QuoteView", "SourceRefReused",
]
