"""`python -m app ...`: operator commands (models, database, ledger, serving)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    sub = parser.add_subparsers(dest="group", required=True)

    models = sub.add_parser("models", help="model weights").add_subparsers(dest="action", required=True)
    fetch = models.add_parser("fetch", help="fetch, verify and place weights")
    fetch.add_argument("names", nargs="*")
    fetch.add_argument("--all", action="store_true", help="every model in the manifest")
    models.add_parser("list", help="what is installed and verified")

    db = sub.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="apply migrations")

    ledger = sub.add_parser("ledger", help="token ledger").add_subparsers(dest="action", required=True)
    ledger.add_parser("audit", help="check every invariant; exit 0 when all hold")

    storage = sub.add_parser("storage", help="blob store").add_subparsers(dest="action", required=True)
    storage.add_parser("purge", help="delete inputs and results past their retention now")

    serve = sub.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    handler = {
        ("models", "fetch"): _models_fetch,
        ("models", "list"): _models_list,
        ("db", "upgrade"): _db_upgrade,
        ("ledger", "audit"): _ledger_audit,
        ("storage", "purge"): _storage_purge,
        ("serve", None): _serve,
    }[(args.group, getattr(args, "action", None))]
    return handler(settings, args)


def _models_fetch(settings: Settings, args) -> int:
    from app.inference.fetch import FetchError, fetch_models
    from app.inference.manifest import load_manifest

    manifest = load_manifest(settings.models_dir)
    unknown = [n for n in args.names if n not in manifest]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(manifest)}", file=sys.stderr)
        return 2
    if args.all:
        specs = [s for s in manifest.values() if s.source.kind != "local"]
    elif args.names:
        specs = [manifest[n] for n in args.names]
    else:
        specs = [s for s in manifest.values() if s.default]
    try:
        fetch_models(specs, settings.models_dir)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _models_list(settings: Settings, args) -> int:
    from app.inference.manifest import load_manifest, model_state

    print(f"{'name':22} {'task':16} {'state':10} {'default':8} license")
    for spec in load_manifest(settings.models_dir).values():
        state = model_state(spec, settings.models_dir)
        print(f"{spec.name:22} {spec.task:16} {state:10} {str(spec.default).lower():8} {spec.license}")
    return 0


def _db_upgrade(settings: Settings, args) -> int:
    from app.db import upgrade

    upgrade(settings.database_url)
    print("database is at the latest revision")
    return 0


def _ledger_audit(settings: Settings, args) -> int:
    from app.db import create_engine
    from app.ledger.audit import audit

    async def run() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            return await audit(engine)
        finally:
            await engine.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        print(problem)
    print("ledger audit: " + ("FAILED" if problems else "every invariant holds"))
    return 1 if problems else 0


def _storage_purge(settings: Settings, args) -> int:
    from datetime import UTC, datetime

    from app.db import create_engine
    from app.storage import create_store
    from app.storage.retention import purge

    async def run():
        engine = create_engine(settings.database_url)
        try:
            return await purge(create_store(settings), engine, datetime.now(UTC),
                               settings.input_retention_hours, settings.result_retention_days)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    print(f"purged {report.inputs} input(s) and {report.results} result(s)")
    return 0


def _serve(settings: Settings, args) -> int:
    import uvicorn

    uvicorn.run("app.main:app", host=args.host, port=args.port, log_level="info")
    return 0
