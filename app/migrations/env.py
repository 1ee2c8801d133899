"""Alembic environment, following Alembic's asyncio recipe.

``app.db.upgrade_async`` hands over an open connection (``config.attributes["connection"]``);
``app.db.upgrade`` hands over only ``sqlalchemy.url``, and an async engine is made from it.
There is no offline (``--sql``) mode.
"""

import asyncio

from alembic import context

from app.db import create_engine
from app.tables import metadata

config = context.config


def do_run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if (connection := config.attributes.get("connection")) is not None:
    do_run_migrations(connection)
else:
    asyncio.run(run_async_migrations())
