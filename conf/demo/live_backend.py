#!/usr/bin/python3
"""A tiny WebSocket echo and server-sent events backend for mod_rproxy.

conf/demo/run.sh starts it behind the demo proxy (conf/demo/live.html uses
it); t/websocket.t, t/sse.t and t/browser.t start their own.  It listens on
127.0.0.1 only, on two ports:

  --ws-port   WebSocket (the `websockets` library, Debian's
              python3-websockets):
                /echo                    every message back, text as text,
                                         binary as binary (subprotocol
                                         echo.v1 if offered, and
                                         permessage-deflate)
                /close-first?code=N&reason=R
                                         sends "closing", then closes the
                                         connection itself with N / R
                /refuse?status=N         declines the upgrade with a plain
                                         N response
  --sse-port  plain HTTP/1.1 (asyncio, no library):
                /stream?n=N&interval=S&framing=chunked|close
                                         text/event-stream, N events S
                                         seconds apart, no Content-Length;
                                         each event's data is JSON with
                                         "t", the time it was written
                /health                  200 "ok"

Each WebSocket connection that ends, and each stream, logs one JSON line to
stdout.  Bounded: at most MAX_CONNS connections per server, messages up to
4 MiB, streams of at most 10000 events, and with --lifetime the process
exits by itself after that many seconds.  SIGTERM stops it.
"""
import argparse
import asyncio
import http
import json
import os
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

MAX_CONNS = 64
MAX_MESSAGE = 4 * 1024 * 1024
MAX_EVENTS = 10000
HEAD_LIMIT = 16384
IDLE_SECONDS = 15


def log(**fields):
    fields["at"] = round(time.time(), 3)
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def query(target):
    parts = urlsplit(target)
    return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}


def int_arg(args, name, default, low, high):
    try:
        return min(max(int(args.get(name, default)), low), high)
    except ValueError:
        return default


# ---- WebSocket ----

class WsServer:
    def __init__(self):
        self.conns = 0

    async def process_request(self, target, headers):
        path, args = query(target)
        if path == "/refuse":
            try:
                status = http.HTTPStatus(int_arg(args, "status", 400, 200, 599))
            except ValueError:
                status = http.HTTPStatus.BAD_REQUEST
            body = ("no upgrade here (%d)\n" % status.value).encode()
            log(ev="ws-refused", path=path, status=status.value)
            return (status, [("Content-Type", "text/plain"),
                             ("Content-Length", str(len(body)))], body)
        if path not in ("/echo", "/close-first"):
            return (http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain")],
                    b"not found\n")
        if self.conns >= MAX_CONNS:
            return (http.HTTPStatus.SERVICE_UNAVAILABLE,
                    [("Content-Type", "text/plain")], b"busy\n")
        return None

    async def handler(self, ws):
        path, args = query(ws.path)
        self.conns += 1
        msgs = nbytes = 0
        try:
            if path == "/close-first":
                await ws.send("closing")
                await ws.close(int_arg(args, "code", 1000, 1000, 4999),
                               args.get("reason", "")[:100])
            else:
                async for msg in ws:
                    msgs += 1
                    nbytes += len(msg)
                    await ws.send(msg)
        except Exception as e:  # the connection broke: logged below
            log(ev="ws-error", path=path, error=type(e).__name__)
        finally:
            self.conns -= 1
            await ws.wait_closed()
            log(ev="ws-closed", path=path, msgs=msgs, bytes=nbytes,
                code=ws.close_code, reason=ws.close_reason,
                # both close frames went: the closing handshake completed
                handshake=ws.close_rcvd is not None
                and ws.close_sent is not None)


# ---- server-sent events ----

class SseServer:
    def __init__(self):
        self.conns = 0

    async def client(self, reader, writer):
        self.conns += 1
        try:
            if self.conns > MAX_CONNS:
                return
            while await self.one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.TimeoutError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.conns -= 1
            writer.close()

    async def one_request(self, reader, writer):
        """Serves one request; True if the connection may carry another."""
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                      IDLE_SECONDS)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return False
        method, target, version = parts
        fields = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields or "transfer-encoding" in fields:
            # no endpoint takes a body; do not try to frame one
            self.plain(writer, 400, b"no request bodies here\n", close=True)
            return False
        close = (version == "HTTP/1.0"
                 or "close" in fields.get("connection", "").lower())
        path, args = query(target)
        if path == "/health":
            self.plain(writer, 200, b"ok\n", close, method == "HEAD")
        elif path == "/stream" and method == "GET":
            return await self.stream(writer, args, close)
        else:
            self.plain(writer, 404, b"not found\n", close, method == "HEAD")
        await writer.drain()
        return not close

    @staticmethod
    def plain(writer, status, body, close, head_only=False):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        writer.write(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %d\r\n%s\r\n"
                      % (status, reason, len(body),
                         "Connection: close\r\n" if close else "")).encode()
                     + (b"" if head_only else body))

    async def stream(self, writer, args, close):
        n = int_arg(args, "n", 10, 1, MAX_EVENTS)
        try:
            interval = min(max(float(args.get("interval", 0.3)), 0.01), 60.0)
        except ValueError:
            interval = 0.3
        chunked = args.get("framing", "chunked") != "close"
        if not chunked:
            close = True
        writer.write(("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\n%s%s\r\n"
                      % ("Transfer-Encoding: chunked\r\n" if chunked else "",
                         "Connection: close\r\n" if close else "")).encode())
        await writer.drain()
        started = time.time()
        for i in range(1, n + 1):
            if i > 1:
                await asyncio.sleep(interval)
            data = json.dumps({"i": i, "n": n, "t": time.time()})
            event = ("id: %d\nevent: tick\ndata: %s\n\n" % (i, data)).encode()
            if chunked:
                event = b"%x\r\n%s\r\n" % (len(event), event)
            writer.write(event)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        log(ev="sse-done", events=n, interval=interval,
            framing="chunked" if chunked else "close",
            seconds=round(time.time() - started, 3))
        return not close


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ws-port", type=int, default=0,
                    help="WebSocket port (0: none)")
    ap.add_argument("--sse-port", type=int, default=0,
                    help="server-sent events port (0: none)")
    ap.add_argument("--ready-file",
                    help="written once every port listens")
    ap.add_argument("--lifetime", type=float, default=0,
                    help="exit after this many seconds (0: run until SIGTERM)")
    opt = ap.parse_args()

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(0))
    if opt.lifetime > 0:
        loop.call_later(opt.lifetime,
                        lambda: done.done() or done.set_result(0))

    servers = []
    if opt.ws_port:
        # Only needed for this port.  The "legacy" API is the one of
        # Debian 12's websockets 10.4, still there in later versions.
        from websockets.legacy.server import serve
        ws = WsServer()
        servers.append(await serve(
            ws.handler, "127.0.0.1", opt.ws_port,
            process_request=ws.process_request, max_size=MAX_MESSAGE,
            subprotocols=["echo.v1"],
            ping_interval=None, close_timeout=5))
    if opt.sse_port:
        sse = SseServer()
        servers.append(await asyncio.start_server(
            sse.client, "127.0.0.1", opt.sse_port, limit=HEAD_LIMIT))
    log(ev="ready", pid=os.getpid(), ws_port=opt.ws_port,
        sse_port=opt.sse_port)
    if opt.ready_file:
        with open(opt.ready_file + ".tmp", "w") as fh:
            fh.write("%d\n" % os.getpid())
        os.replace(opt.ready_file + ".tmp", opt.ready_file)
    await done
    for server in servers:
        server.close()
    for server in servers:
        await asyncio.wait_for(server.wait_closed(), 5)
    log(ev="stopped")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        pass
