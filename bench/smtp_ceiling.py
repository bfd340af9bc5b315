"""The ceiling for the SMTP benchmark: a bare aiosmtpd server (the library mailroom's listeners are
built on) that accepts every recipient and discards every message. Run as
``python -m bench.smtp_ceiling PORT``."""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiosmtpd.smtp import SMTP, Envelope, Session


class Discard:
    """Advertises PIPELINING like mailroom and Postfix do; stores nothing."""

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Discarded"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = Discard()
    await loop.create_server(lambda: SMTP(handler, hostname="ceiling.bench.test", loop=loop),
                             "127.0.0.1", port, reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
