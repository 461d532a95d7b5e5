#!/usr/bin/env python3
"""soak/chaos_client.py - the load of the chaos soak (soak/chaos.sh).

    chaos_client.py --port P --requests N --conns C --procs K --tag T --out DIR

K processes, each with C/K keep-alive connections (asyncio), send N requests
in all through httpd on 127.0.0.1:P, each with a unique id "T<proc>.<conn>.<n>"
in its query.  Per 10 requests: 5 GET /p/1k, 2 GET /p/64k, 3 POST /p/post
with a body of 1 to 40,000 bytes made from the id (so the backend can check
it; soak/chaos_backend.py).  Every request's outcome goes to
DIR/outcomes.T.<proc>, one line "METHOD ID KIND STATUS RETRIED EPOCH":

  KIND ok         a whole response (STATUS is its status; for a 200 the body
                  was checked: length, and for a POST the backend's "ok ID")
       badbody    a whole response whose body is wrong
       cut        the connection ended inside the response
       noans_new  a new connection ended before any byte of a response
       noans_reused  a reused keep-alive connection ended before any byte:
                  the race of RFC 9112 9.3.1 (httpd closing an idle
                  keep-alive connection, e.g. at a graceful restart, just as
                  the request was sent).  A GET is then retried once on a
                  new connection, as browsers do (RETRIED 1, the retry's
                  outcome is the line's); a POST is not retried.
       connect    the connection to httpd could not be opened
       timeout    no whole response within --timeout seconds

Prints "requests=N seconds=S rps=R" when done.  Bounded: every request has a
timeout, and the whole run stops at --max-seconds.
"""
import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import sys
import time

MIX = ["g1", "g1", "post", "g1", "g64", "post", "g1", "g64", "g1", "post"]
GET_LEN = {"g1": 1024, "g64": 65536}


def pattern(rid, n):
    unit = (rid + ".").encode()
    return (unit * (n // len(unit) + 1))[:n]


class NoAnswer(Exception):
    pass


class Cut(Exception):
    pass


async def read_response(reader, method):
    """(status, body, close) of one response; NoAnswer before any byte,
    Cut inside it."""
    try:
        first = await reader.readline()
    except (ConnectionError, OSError):
        raise NoAnswer()
    if not first:
        raise NoAnswer()
    try:
        head = first
        while not head.endswith(b"\r\n\r\n"):
            line = await reader.readline()
            if not line:
                raise Cut()
            head += line
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if sep:
                headers[k.strip().lower()] = v.strip().lower()
        close = headers.get(b"connection") == b"close"
        if method == "HEAD" or status in (204, 304):
            return status, b"", close
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return status, b"".join(parts), close
        if b"content-length" in headers:
            n = int(headers[b"content-length"])
            return status, await reader.readexactly(n), close
        return status, await reader.read(), True
    except (asyncio.IncompleteReadError, ConnectionError, OSError,
            ValueError, IndexError):
        raise Cut()


class Conn:
    def __init__(self, port):
        self.port = port
        self.r = self.w = None
        self.used = 0

    async def open(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port,
                                                      limit=1 << 20)
        self.used = 0

    def drop(self):
        if self.w:
            self.w.close()
        self.r = self.w = None

    async def exchange(self, data, method):
        """(status, body, reused); raises NoAnswer, Cut, OSError."""
        if not self.w:
            await self.open()
        reused = self.used > 0
        try:
            self.w.write(data)
            await self.w.drain()
        except (ConnectionError, OSError):
            # The peer had closed: whatever it read, it answered nothing.
            self.drop()
            raise NoAnswer(reused)
        try:
            status, body, close = await read_response(self.r, method)
        except NoAnswer:
            self.drop()
            raise NoAnswer(reused)
        except Cut:
            self.drop()
            raise
        self.used += 1
        if close:
            self.drop()
        return status, body


async def one(conn, kind, rid, timeout):
    """(KIND, STATUS, RETRIED) for one request, retrying a GET once after
    noans_reused."""
    if kind == "post":
        body = pattern(rid, random.randint(1, 40000))
        data = (b"POST /p/post?id=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % (rid.encode(), len(body)) + body)
        method = "POST"
    else:
        data = (b"GET /p/%s?id=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                % (b"1k" if kind == "g1" else b"64k", rid.encode()))
        method = "GET"
    retried = 0
    for attempt in (1, 2):
        try:
            status, body = await asyncio.wait_for(conn.exchange(data, method),
                                                  timeout)
        except asyncio.TimeoutError:
            conn.drop()
            return "timeout", 0, retried
        except NoAnswer as e:
            reused = bool(e.args and e.args[0])
            if reused and method == "GET" and attempt == 1:
                retried = 1
                continue
            return ("noans_reused" if reused else "noans_new"), 0, retried
        except Cut:
            return "cut", 0, retried
        except (ConnectionError, OSError):
            conn.drop()
            return "connect", 0, retried
        if status == 200:
            if method == "GET":
                good = len(body) == GET_LEN[kind]
            else:
                good = body.startswith(b"ok %s %d 1" % (rid.encode(),
                                                          len(data) - data.index(b"\r\n\r\n") - 4))
            if not good:
                return "badbody", status, retried
        return "ok", status, retried
    return "noans_reused", 0, retried


async def worker(port, tag, proc, c, count, timeout, deadline, out):
    conn = Conn(port)
    i = c  # spread the mix's phase over connections
    for n in range(count):
        if time.monotonic() > deadline:
            break
        kind = MIX[i % len(MIX)]
        i += 1
        rid = "%s%d.%d.%d" % (tag, proc, c, n)
        k, status, retried = await one(conn, kind, rid, timeout)
        out.append("%s %s %s %d %d %d\n" % ("POST" if kind == "post" else "GET",
                                             rid, k, status, retried, time.time()))
        if len(out) >= 2000:
            flush(out)
    conn.drop()


OUTFILE = None


def flush(out):
    OUTFILE.write("".join(out))
    OUTFILE.flush()
    out.clear()


def run_proc(args, proc, conns, requests):
    global OUTFILE
    random.seed(os.getpid() ^ int(time.time() * 1000))
    OUTFILE = open(os.path.join(args.out, "outcomes.%s.%d" % (args.tag, proc)),
                   "a")
    out = []
    deadline = time.monotonic() + args.max_seconds
    per = [requests // conns + (1 if k < requests % conns else 0)
           for k in range(conns)]

    async def main():
        await asyncio.gather(*(worker(args.port, args.tag, proc, c, per[c],
                                      args.timeout, deadline, out)
                               for c in range(conns)))
    asyncio.run(main())
    flush(out)
    OUTFILE.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--tag", default="c")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--max-seconds", type=float, default=3600)
    a = ap.parse_args()
    procs = max(1, min(a.procs, a.conns))
    t0 = time.monotonic()
    ps = []
    for k in range(procs):
        conns = a.conns // procs + (1 if k < a.conns % procs else 0)
        reqs = a.requests // procs + (1 if k < a.requests % procs else 0)
        p = multiprocessing.Process(target=run_proc, args=(a, k, conns, reqs))
        p.start()
        ps.append(p)
    def stop(signum, frame):
        for p in ps:
            p.terminate()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = 0
    for p in ps:
        p.join()
        rc |= p.exitcode != 0
    secs = time.monotonic() - t0
    n = 0
    for k in range(procs):
        with open(os.path.join(a.out, "outcomes.%s.%d" % (a.tag, k))) as f:
            n += sum(1 for _ in f)
    print("requests=%d seconds=%.1f rps=%.0f" % (n, secs, n / secs))
    sys.exit(rc)


if __name__ == "__main__":
    main()
