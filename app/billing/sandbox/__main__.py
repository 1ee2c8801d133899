"""`python -m app.billing.sandbox --port N [--secret whsec_...] [--api-key KEY]`"""

from __future__ import annotations

import argparse
import os

import uvicorn

from app.billing.sandbox.app import DEV_SECRET, SandboxSettings, create_sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.billing.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--api-key", default=os.environ.get("BILLING_SANDBOX_API_KEY", "sandbox-key"),
                        help="the Bearer key callers must send (env BILLING_SANDBOX_API_KEY)")
    parser.add_argument("--secret", default=os.environ.get("BILLING_SANDBOX_SECRET", DEV_SECRET),
                        help="whsec_... secret that signs callbacks (env BILLING_SANDBOX_SECRET)")
    args = parser.parse_args(argv)
    settings = SandboxSettings(api_key=args.api_key, secret=args.secret)
    uvicorn.run(create_sandbox(settings), host=args.host, port=args.port, log_level="warning")


main()
