"""The sandbox partner vendor: a small separate service speaking our vendor protocol, for tests,
local development and QA demos. Run it with ``python -m app.vendors.sandbox --port 8010``."""

from app.vendors.sandbox.app import DEV_SECRET, SandboxSettings, create_sandbox

__all__ = ["DEV_SECRET", "SandboxSettings", "create_sandbox"]
