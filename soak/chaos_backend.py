#!/usr/bin/env python3
"""soak/chaos_backend.py - one member of the chaos soak's group (soak/chaos.sh).

    chaos_backend.py --port P --log FILE [--name NAME]

A small asyncio HTTP/1.1 server on 127.0.0.1:P with keep-alive:
  GET  /1k?id=ID, /64k?id=ID   -> 200, 1024 or 65536 bytes
  POST /post?id=ID             -> 200, body "ok ID LEN" once the whole body
                                  (Content-Length or chunked) has arrived
Every request whose head (and for a POST, whole body) arrived is written to
FILE as one line "METHOD ID LEN OK" (OK: the POST body is the pattern the
client made from its id, so nothing was mixed up or cut) with os.write on an
O_APPEND descriptor *before* the answer is sent: a member killed with
SIGKILL right after loses no line, and the lines of all members together
say how many times each id reached a backend.
"""
import argparse
import asyncio
import os
import signal
import sys

BODIES = {"/1k": b"k" * 1024, "/64k": b"K" * 65536}


def pattern(rid, n):
    unit = (rid + ".").encode()
    return (unit * (n // len(unit) + 1))[:n]


class Member:
    def __init__(self, logpath, name):
        self.fd = os.open(logpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                          0o644)
        self.name = name.encode()

    def log(self, method, rid, n, ok):
        os.write(self.fd, b"%s %s %d %d\n" % (method, rid.encode(), n, ok))

    async def read_body(self, reader, headers):
        te = headers.get(b"transfer-encoding", b"").lower()
        if b"chunked" in te:
            parts = []
            while True:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        n = int(headers.get(b"content-length", b"0"))
        return await reader.readexactly(n) if n else b""

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, sep, v = line.partition(b":")
                    if sep:
                        headers[k.strip().lower()] = v.strip()
                path, _, query = target.decode("latin-1").partition("?")
                rid = "-"
                for kv in query.split("&"):
                    if kv.startswith("id="):
                        rid = kv[3:]
                body = await self.read_body(reader, headers)
                close = headers.get(b"connection", b"").lower() == b"close"
                if method == b"POST":
                    ok = body == pattern(rid, len(body))
                    self.log(b"POST", rid, len(body), ok)
                    out = b"ok %s %d %d" % (rid.encode(), len(body), ok)
                    status = b"200 OK"
                elif path in BODIES:
                    self.log(method, rid, 0, 1)
                    out = BODIES[path]
                    status = b"200 OK"
                else:
                    out = b"not found\n"
                    status = b"404 Not Found"
                writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n"
                             b"X-Member: %s\r\n%s\r\n"
                             % (status, len(out), self.name,
                                b"Connection: close\r\n" if close else b""))
                if method != b"HEAD":
                    writer.write(out)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError,
                asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--name", default="member")
    a = ap.parse_args()
    m = Member(a.log, a.name)
    server = await asyncio.start_server(m.serve, "127.0.0.1", a.port,
                                        backlog=1024, reuse_address=True,
                                        limit=1 << 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as e:
        sys.exit("chaos_backend.py: %s" % e)
