"""Commits made by other mailroom processes on the same PostgreSQL database wake this process's
deliverers, as its own commits do. Each writing transaction that journalled a change sends a
NOTIFY naming the mailboxes it changed (mailroom/store/engine.py); PostgreSQL delivers it on
commit. One listening connection per process turns those into wake-ups: no polling anywhere.

If the listening connection is lost it is opened again, and every deliverer is woken once, since
wake-ups may have been missed in between (a deliverer reads the journal, so nothing is lost)."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from mailroom.store import Store
from mailroom.store.engine import NOTIFY_CHANNEL, engine_key, parse_notify

from . import wakeup

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0


async def start(store: Store) -> asyncio.Task[None]:
    """Listen (before returning: commits from now on are heard) and pass other processes' commits on
    to this process's wake-ups until the returned task is cancelled."""
    conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await _listening(conninfo)
    return asyncio.get_running_loop().create_task(_run(conninfo, engine_key(store.engine), conn))


async def _listening(conninfo: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
    return conn


async def _run(conninfo: str, database: str, conn: psycopg.AsyncConnection) -> None:
    while True:
        try:
            async with conn:
                async for note in conn.notifies():
                    mailboxes = parse_notify(note.payload)
                    if mailboxes:
                        wakeup.poke(database, mailboxes)
        except psycopg.Error as exc:
            log.warning("lost the notification listener connection (%s); reconnecting", exc)
        while True:
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                conn = await _listening(conninfo)
                break
            except psycopg.Error as exc:
                log.warning("notification listener cannot reconnect (%s)", exc)
        wakeup.poke_all(database)  # wake-ups may have been missed while it was away
