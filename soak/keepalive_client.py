#!/usr/bin/env python3
"""Keep-alive GET load that tells a refused or cut request from a retry.

    keepalive_client.py --port P --path /p/1k.bin --conns N --seconds S

N threads each send GETs one after another on a persistent connection for
S seconds.  A server may close an idle keep-alive connection at any time
(httpd does so to every one on `-k graceful`), and a request sent on it
just then gets no answer at all: RFC 9112 section 9.3.1 lets a client
retry such an idempotent request on a new connection, and browsers, curl
and mod_rproxy itself do.  wrk does not: it counts a read error.  This
client retries exactly that case, once, and counts everything else as a
failure:
  refused   connect() failed;
  cut       the connection ended after some bytes of a response, or a
            response did not come in full within 10 s;
  unanswered no byte of a response on a new connection, or on the retry;
  status    a response other than 200.

Prints one line:
    requests=.. ok=.. retried=.. refused=.. cut=.. unanswered=.. status=..
and exits 1 if any request failed.
"""
import argparse
import socket
import threading
import time

TIMEOUT = 10.0


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = {k: 0 for k in ("requests", "ok", "retried", "refused",
                                 "cut", "unanswered", "status")}

    def add(self, key):
        with self.lock:
            self.n[key] += 1


def read_response(sock):
    """(status, keep_alive) of one response, its body read in full; raises
    EOFError(got_any) when the connection ends first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(bool(data))
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(True)
        body += chunk
    return status, not close


def worker(port, path, deadline, counts):
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    sock, served = None, 0
    while time.monotonic() < deadline:
        counts.add("requests")
        retried = False
        while True:
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port),
                                                    timeout=TIMEOUT)
                except OSError:
                    counts.add("refused")
                    time.sleep(0.01)
                    break
                served = 0
            try:
                sock.sendall(request)
                status, keep = read_response(sock)
            except (EOFError, ConnectionResetError, BrokenPipeError) as e:
                got_any = isinstance(e, EOFError) and e.args[0]
                sock.close()
                sock = None
                if got_any:
                    counts.add("cut")
                elif served > 0 and not retried:
                    counts.add("retried")   # the server closed it idle
                    retried = True
                    continue
                else:
                    counts.add("unanswered")
                break
            except socket.timeout:
                sock.close()
                sock = None
                counts.add("cut")
                break
            served += 1
            if status == 200:
                counts.add("ok")
            else:
                counts.add("status")
            if not keep:
                sock.close()
                sock = None
            break
    if sock is not None:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args()

    counts = Counts()
    deadline = time.monotonic() + a.seconds
    threads = [threading.Thread(target=worker,
                                args=(a.port, a.path, deadline, counts))
               for _ in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = counts.n
    print(" ".join("%s=%d" % (k, n[k]) for k in
                   ("requests", "ok", "retried", "refused", "cut",
                    "unanswered", "status")))
    failed = n["refused"] + n["cut"] + n["unanswered"] + n["status"]
    raise SystemExit(1 if failed or not n["ok"] else 0)


if __name__ == "__main__":
    main()
