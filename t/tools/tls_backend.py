#!/usr/bin/python3
"""A TLS backend for t/tls_backend.t: HTTP/1.1 with keep-alive, or
WebSocket echo, on 127.0.0.1:PORT (or --addr) with the certificate it is
given.

  tls_backend.py PORT CERT KEY [--client-ca CA] [--ws] [--stats FILE]
                 [--addr ADDR]

HTTP paths: /g?gen=N[&chunked=1][&trailer=1][&delay=S] sends N bytes of the suite's
pattern (byte i is i % 251); POST /echo sends the body back; /cut?gen=N&at=M
announces N bytes, sends M and closes without close_notify;
/early answers 413 to a request
without reading its body, and closes; /eof?gen=N[&notify=1] sends N bytes delimited by the close, and then
closes with close_notify only given notify=1; /bye answers "bye" and
closes without close_notify; /stray?total=N
answers as soon as it has the head, before reading the body, with a
response of N bytes, head included, and a second, unasked-for one
("POISON") in the same write; /peer names the
client certificate's subject; /who names the address and port it was
reached on and the SNI of that connection (t/tls_group.t).  After every handshake it rewrites FILE with
{"handshakes": n, "resumed": m}.  Prints "ready" once listening.
"""
import argparse
import asyncio
import json
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit, parse_qs

BLOCK = bytes(i % 251 for i in range(251 * 64))


def pattern(n):
    out = bytearray()
    while len(out) < n:
        out += BLOCK
    return bytes(out[:n])


ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("cert")
ap.add_argument("key")
ap.add_argument("--client-ca")
ap.add_argument("--ws", action="store_true")
ap.add_argument("--stats")
ap.add_argument("--addr", default="127.0.0.1")
args = ap.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
ctx.set_alpn_protocols(["http/1.1"])
if args.client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(args.client_ca)

stats = {"handshakes": 0, "resumed": 0, "sni": [], "alpn": []}
lock = threading.Lock()


def count(s):
    with lock:
        stats["handshakes"] += 1
        stats["resumed"] += 1 if s.session_reused else 0
        stats["alpn"].append(s.selected_alpn_protocol())
        if args.stats:
            with open(args.stats + ".tmp", "w") as f:
                json.dump(stats, f)
            import os
            os.replace(args.stats + ".tmp", args.stats)


def sni_cb(s, name, c):
    stats["sni"].append(name)
    conn_sni[id(s)] = name or ""


conn_sni = {}


ctx.sni_callback = sni_cb


def read_head(f):
    line = f.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return method, target, headers


def read_body(f, headers):
    if "content-length" in headers:
        return f.read(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                return bytes(body)
            body += f.read(size)
            f.readline()
    return b""


def serve(conn):
    try:
        conn.do_handshake()
    except (ssl.SSLError, OSError):
        conn.close()
        return
    count(conn)
    f = conn.makefile("rb")
    try:
        while True:
            req = read_head(f)
            if req is None:
                break
            method, target, headers = req
            u = urlsplit(target)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path.endswith("/stray"):
                # Answered before the body is read: a response of exactly
                # total= bytes, head and body, and a second one.
                total = n = int(q["total"])
                while True:
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n
                    if len(head) + n == total:
                        break
                    n = total - len(head)
                conn.sendall(head + pattern(n)
                             + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
                read_body(f, headers)
                continue
            if u.path.endswith("/early"):
                # Refuses the body unread, and closes: the proxy's writes
                # fail (a reset), its response is still there to read.
                conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\n"
                             b"Content-Length: 9\r\nConnection: close\r\n\r\n"
                             b"too large")
                time.sleep(0.2)
                conn.close()
                return
            body = read_body(f, headers)
            if u.path.endswith("/echo"):
                out = body
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
            elif u.path.endswith("/peer"):
                peer = conn.getpeercert()
                subj = "none"
                if peer:
                    subj = ",".join("%s=%s" % x[0] for x in peer["subject"])
                out = ("peer: %s\nsni: %s\n" % (subj, stats["sni"][-1] if stats["sni"] else "")).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
            elif u.path.endswith("/who"):
                out = ("addr: %s\nport: %d\nsni: %s\n" % (
                    conn.getsockname()[0], conn.getsockname()[1],
                    conn_sni.get(id(conn), ""))).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
            elif u.path.endswith("/cut"):
                n, at = int(q["gen"]), int(q["at"])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + pattern(at))
                conn.close()       # no close_notify: no unwrap()
                return
            elif u.path.endswith("/bye"):
                # A complete keep-alive response, then a close without
                # close_notify (a bare FIN), as when a backend's idle
                # timeout drops the connection.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye")
                conn.close()       # no close_notify: no unwrap()
                return
            elif u.path.endswith("/eof"):
                # A body delimited by the close: with close_notify
                # (notify=1) or without.
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                             + pattern(int(q["gen"])))
                if q.get("notify"):
                    conn.settimeout(2)
                    try:
                        conn.unwrap()
                    except (OSError, ValueError):
                        pass
                conn.close()
                return
            else:
                if q.get("delay"):
                    time.sleep(float(q["delay"]))
                n = int(q.get("gen", "0"))
                data = pattern(n)
                if q.get("chunked"):
                    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    if q.get("trailer"):
                        head += b"Trailer: X-Sum\r\n"
                    out = bytearray(head + b"\r\n")
                    for i in range(0, n, 10000):
                        piece = data[i:i + 10000]
                        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
                    out += b"0\r\n"
                    if q.get("trailer"):
                        out += b"X-Sum: %d\r\n" % n
                    out += b"\r\n"
                    conn.sendall(bytes(out))
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + data)
    except (OSError, ValueError, KeyError):
        pass
    finally:
        conn_sni.pop(id(conn), None)
        try:
            conn.close()
        except OSError:
            pass


def run_http():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.addr, args.port))
    ls.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = ls.accept()
        s = ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=serve, args=(s,), daemon=True).start()


def run_ws():
    from websockets.legacy.server import serve as ws_serve

    async def echo(ws, path):
        count(ws.transport.get_extra_info("ssl_object"))
        async for m in ws:
            await ws.send(m)

    async def main():
        async with ws_serve(echo, args.addr, args.port, ssl=ctx,
                            max_size=None):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


if args.ws:
    run_ws()
else:
    run_http()
