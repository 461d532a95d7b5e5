#!/usr/bin/env python3
"""Sum mod_rproxy's rproxy-status counters over all processes of one httpd
(or, with the server-wide counters of the shared-memory status page, read
them once).

    status.py PORT PARENT_PID

The counters are per child process, and each request shows the process that
happened to accept it.  So the page is fetched again and again, each time on
a new connection, until every child of PARENT_PID has answered once (or a
bound of attempts and seconds is reached, which is an error).  Prints the
summed counters as "key value" lines, plus "processes N".
"""
import os
import socket
import sys
import time

MAX_ATTEMPTS = 400
MAX_SECONDS = 10.0


def descendants(root):
    """root and every process below it, from one pass over /proc (also
    used by slowclients.py)."""
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        parent[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    pids, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for kid, pp in parent.items():
            if pp == p and kid not in pids:
                pids.add(kid)
                frontier.append(kid)
    return pids


def fetch(port):
    """One GET of /rproxy-status on a fresh connection: {key: value}."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /rproxy-status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError("status page answered: %r" % head[:80])
    counters = {}
    for line in body.decode().splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip().lstrip("-").isdigit():
            counters[key.strip()] = int(value)
    return counters


def main():
    port, ppid = int(sys.argv[1]), int(sys.argv[2])
    want = descendants(ppid) - {ppid}   # httpd's children have no children
    if not want:
        sys.exit("status.py: process %d has no children" % ppid)
    seen = {}
    first = fetch(port)
    if "pid" not in first:
        # Since the counters moved into shared memory (e505731) the page
        # shows the whole server's figures, whichever child answers: one
        # fetch is the total.
        for key in sorted(first):
            print(key, first[key])
        print("processes", len(want))
        return
    seen[first["pid"]] = first
    deadline = time.monotonic() + MAX_SECONDS
    for _ in range(MAX_ATTEMPTS):
        c = fetch(port)
        seen[c["pid"]] = c
        if want <= set(seen) or time.monotonic() > deadline:
            break
    missing = want - set(seen)
    if missing:
        sys.exit("status.py: no answer from pid(s) %s after %d fetches"
                 % (sorted(missing), len(seen)))
    total = {}
    for pid in want:
        for key, value in seen[pid].items():
            if key != "pid":
                total[key] = total.get(key, 0) + value
    for key in sorted(total):
        print(key, total[key])
    print("processes", len(want))


if __name__ == "__main__":
    main()
