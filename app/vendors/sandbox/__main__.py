"""`python -m app.vendors.sandbox --port N [--secret whsec_...] [--models-dir ./models]`"""

from __future__ import annotations

import argparse
import os

import uvicorn

from app.vendors.sandbox.app import DEV_SECRET, SandboxSettings, create_sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.vendors.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--api-key", default=os.environ.get("SANDBOX_API_KEY", "sandbox-key"),
                        help="the Bearer key callers must send (env SANDBOX_API_KEY)")
    parser.add_argument("--secret", default=os.environ.get("SANDBOX_SECRET", DEV_SECRET),
                        help="whsec_... secret that signs callbacks (env SANDBOX_SECRET)")
    parser.add_argument("--models-dir", default=os.environ.get("TRIALZONE_MODELS_DIR", "./models"))
    parser.add_argument("--public-url", help="base of result URLs (default http://HOST:PORT)")
    args = parser.parse_args(argv)
    settings = SandboxSettings(api_key=args.api_key, secret=args.secret, models_dir=args.models_dir,
                               public_url=(args.public_url or f"http://{args.host}:{args.port}").rstrip("/"))
    uvicorn.run(create_sandbox(settings), host=args.host, port=args.port, log_level="warning")


main()
