#!/usr/bin/env python3
"""Slow downloads, and the peak memory of the server that serves them.

    slowclients.py --port P --path /p/1m.bin --clients N --rate BYTES_PER_S
                   --pid SERVER_PID [--deadline S] [--rcvbuf BYTES]

Measures the resident memory (RSS) of SERVER_PID and all its descendants,
summed, while idle; then opens N connections at once, sends one GET on each
and reads every response at RATE bytes/s at most, sampling the summed RSS
every 100 ms until all responses are complete or DEADLINE seconds have
passed.  A small receive buffer (--rcvbuf) keeps the kernel from absorbing
the body on the client side, so the server has to hold what it cannot send.

Prints one line:
    idle_kb=.. peak_kb=.. per_conn_kb=.. stack_per_conn_kb=.. clients=..
    complete=.. seconds=..
per_conn_kb is (peak - idle) / clients; stack_per_conn_kb the part of it
in thread stacks (pages the serving threads touched, see tree_stack_kb).  Exits non-zero if a connection
failed outright; incomplete downloads at the deadline are only counted.
"""
import argparse
import os
import socket
import sys
import time

from status import descendants         # bench/status.py, next to this file

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TICK = 0.05                     # how often the readers catch up
SAMPLE = 0.1                    # how often RSS is sampled


def tree_rss_kb(root):
    """Summed RSS in KiB of root and all its descendants."""
    total = 0
    for p in descendants(root):
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            pass                # gone meanwhile
    return total


def tree_stack_kb(root):
    """Summed RSS in KiB of the thread stacks of root and its descendants:
    anonymous mappings of exactly the default 8 MiB pthread stack.  A
    thread's stack pages count only once it has run, and stay counted, so
    stacks after the run minus stacks when idle is what the threads that
    served the slow clients added."""
    total = 0
    for p in descendants(root):
        try:
            with open("/proc/%d/smaps" % p) as f:
                anon = size = 0
                for line in f:
                    if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                        anon = len(line.split()) == 5
                    elif line.startswith("Size:"):
                        size = int(line.split()[1])
                    elif line.startswith("Rss:") and anon and size == 8192:
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Download:
    def __init__(self, port, path, rcvbuf):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect(), so the advertised window stays small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Connection: close\r\n\r\n" % path).encode())
        self.sock.setblocking(False)
        self.head = b""
        self.length = None      # body length, once the head is read
        self.body = 0
        self.received = 0
        self.done = False

    def feed(self, data):
        self.received += len(data)
        if self.length is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError("answered %r" % head[:60])
            self.length = -1
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.length = int(value)
        self.body += len(data)
        if self.length >= 0 and self.body >= self.length:
            self.finish()

    def finish(self):
        self.done = True
        self.sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--deadline", type=float, default=30.0)
    ap.add_argument("--rcvbuf", type=int, default=16384)
    a = ap.parse_args()

    idle = []
    for _ in range(5):
        idle.append(tree_rss_kb(a.pid))
        time.sleep(SAMPLE)
    idle_kb = min(idle)
    peak_kb = max(idle)
    idle_stack_kb = tree_stack_kb(a.pid)

    start = time.monotonic()
    downloads = [Download(a.port, a.path, a.rcvbuf)
                 for _ in range(a.clients)]
    next_sample = start
    while time.monotonic() - start < a.deadline:
        now = time.monotonic()
        if now >= next_sample:
            peak_kb = max(peak_kb, tree_rss_kb(a.pid))
            next_sample = now + SAMPLE
        pending = [d for d in downloads if not d.done]
        if not pending:
            break
        allowed = int(a.rate * (now - start))
        for d in pending:
            for _ in range(8):          # bounded catch-up per tick
                want = allowed - d.received
                if want <= 0 or d.done:
                    break
                try:
                    data = d.sock.recv(min(want, 65536))
                except BlockingIOError:
                    break
                if not data:
                    if d.length is not None and d.length < 0:
                        d.finish()      # close-delimited: EOF ends it
                        break
                    sys.exit("slowclients.py: connection closed early "
                             "(%d bytes)" % d.received)
                d.feed(data)
        time.sleep(max(0.0, min(TICK, next_sample - time.monotonic())))
    seconds = time.monotonic() - start
    peak_kb = max(peak_kb, tree_rss_kb(a.pid))
    stack_kb = tree_stack_kb(a.pid) - idle_stack_kb
    complete = sum(d.done for d in downloads)
    for d in downloads:
        if not d.done:
            d.sock.close()
    print("idle_kb=%d peak_kb=%d per_conn_kb=%.1f stack_per_conn_kb=%.1f "
          "clients=%d complete=%d seconds=%.1f"
          % (idle_kb, peak_kb, (peak_kb - idle_kb) / a.clients,
             stack_kb / a.clients, a.clients, complete, seconds))


if __name__ == "__main__":
    main()
