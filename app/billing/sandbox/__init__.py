"""The billing sandbox: a small separate service playing the carrier's billing system, for tests,
local development and QA demos. Run it with ``python -m app.billing.sandbox --port 8020``."""

from app.billing.sandbox.app import DEV_SECRET, Rule, SandboxSettings, create_sandbox

__all__ = ["DEV_SECRET", "Rule", "SandboxSettings", "create_sandbox"]
