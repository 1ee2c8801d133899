"""Ledger-specific domain errors (InsufficientTokens lives in app.errors with the rest)."""

from app.errors import DomainError


class HoldNotActive(DomainError):
    """Capture of a released hold, or release of a captured one: the outcome is already final."""

    code = "hold_not_active"
    status = 409
    title = "That hold is already settled the other way"


class SourceRefReused(DomainError):
    """A grant's source reference names another user's grant or another amount."""

    code = "grant_source_ref_reused"
    status = 409
    title = "That source reference was used for a different grant"


class LedgerInvariantBroken(DomainError):
    """A cheap in-transaction check failed; the transaction is rolled back, nothing moves."""

    code = "ledger_invariant_broken"
    status = 500
    title = "The token ledger refused an inconsistent change"
