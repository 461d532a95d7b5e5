#!/usr/bin/python3
"""A real WebSocket client (Debian's python3-websockets) for t/websocket.t.

    ws_client.py SCENARIO URL [ARG]      (URL ws:// or wss://)

runs one scenario against URL and prints its findings as one JSON object;
t/websocket.t judges them.  Every scenario ends within DEADLINE seconds.

  echo [plain]  text, binary, 1 MiB binary, ~1 MB text and 100 pipelined
                messages, each compared with its echo; then a clean close
                (1000) started by the client.  Offers subprotocols chat.v1
                and echo.v1, and permessage-deflate unless "plain".
  server-close  reads the first message, then the close the server starts
  idle SECONDS  one echo, then nothing: when, and how, the connection ends
  handshake     only the opening handshake: its status, or the error
"""
import asyncio
import json
import random
import ssl
import sys
import time

from websockets.exceptions import (ConnectionClosed, InvalidHandshake,
                                   InvalidStatusCode)
# The "legacy" API is the one of Debian 12's websockets 10.4.
from websockets.legacy.client import connect as ws_connect

DEADLINE = 60


def connect(url, **kwargs):
    """websockets' connect; for wss:// URLs without checking the
    certificate: the test server's is self-signed (t/TEST.PL)."""
    if url.startswith("wss://"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kwargs["ssl"] = ctx
    return ws_connect(url, **kwargs)
MAX_SIZE = 4 * 1024 * 1024


def closing(ws, started):
    return {
        "code": ws.close_code,
        "reason": ws.close_reason,
        # both close frames went: the closing handshake completed
        "handshake": ws.close_rcvd is not None and ws.close_sent is not None,
        "seconds": round(time.monotonic() - started, 3),
    }


async def echo(url, arg):
    out = {}
    rng = random.Random(6)
    async with connect(url, max_size=MAX_SIZE, ping_interval=None,
                       open_timeout=10, close_timeout=10,
                       subprotocols=["chat.v1", "echo.v1"],
                       compression=None if arg == "plain" else "deflate") as ws:
        out["subprotocol"] = ws.subprotocol
        out["extensions"] = [e.name for e in ws.extensions]
        checks = [
            ("text", "h\u00e9llo w\u00f6rld \u20ac \U0001F600"),
            ("binary", bytes(range(256))),
            ("empty_binary", b""),
            ("big_binary", rng.randbytes(1024 * 1024)),
            ("big_text", "".join(rng.choice("ab\u00e9\u20ac\U0001F600\n")
                                 for _ in range(300000))),
        ]
        for name, msg in checks:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 15)
            out[name] = {"same": got == msg, "type_kept":
                         type(got) is type(msg), "sent": len(msg),
                         "got": len(got)}
        # Many messages in flight at once, both ways.
        sent = ["m%d:" % i + "x" * rng.randrange(1, 70000) for i in range(100)]
        for msg in sent:
            await ws.send(msg)
        got = [await asyncio.wait_for(ws.recv(), 15) for _ in sent]
        out["pipelined"] = {"same": got == sent, "count": len(got)}
        started = time.monotonic()
        await ws.close(1000, "done")
    out["close"] = closing(ws, started)
    return out


async def server_close(url, _arg):
    async with connect(url, ping_interval=None, open_timeout=10,
                       close_timeout=10) as ws:
        started = time.monotonic()
        first = await asyncio.wait_for(ws.recv(), 10)
        try:
            more = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            more = None
        await ws.wait_closed()
    return {"first": first, "more": more, "close": closing(ws, started)}


async def idle(url, arg):
    async with connect(url, ping_interval=None, open_timeout=10,
                       close_timeout=5) as ws:
        await ws.send("still there?")
        echoed = await asyncio.wait_for(ws.recv(), 10)
        started = time.monotonic()
        try:
            await asyncio.wait_for(ws.wait_closed(), float(arg))
        except asyncio.TimeoutError:
            return {"echoed": echoed, "closed": False}
    return {"echoed": echoed, "closed": True, "close": closing(ws, started)}


async def handshake(url, _arg):
    try:
        async with connect(url, ping_interval=None, open_timeout=10,
                           close_timeout=5) as ws:
            status = 101
            await ws.close()
        return {"status": status}
    except InvalidStatusCode as e:
        return {"status": e.status_code}
    except InvalidHandshake as e:
        return {"error": type(e).__name__, "message": str(e)}


async def main(scenario, url, arg):
    run = {"echo": echo, "server-close": server_close, "idle": idle,
           "handshake": handshake}[scenario]
    try:
        return await asyncio.wait_for(run(url, arg), DEADLINE)
    except asyncio.TimeoutError:
        return {"error": "deadline", "message": "over %d s" % DEADLINE}
    except Exception as e:  # reported, for the test to show
        return {"error": type(e).__name__, "message": str(e)}


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    result = asyncio.run(main(sys.argv[1], sys.argv[2],
                              sys.argv[3] if len(sys.argv) > 3 else None))
    print(json.dumps(result, sort_keys=True))
