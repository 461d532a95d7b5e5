#!/usr/bin/python3
"""A slow TLS client of an upgraded connection, for t/websocket.t.

    tls_tail_client.py PORT PATH RATE

Connects to 127.0.0.1:PORT over TLS (the test server's certificate is
self-signed: not checked), asks to upgrade PATH to websocket, then until
the server ends the connection (or 30 s): reads at most RATE bytes/s and
sends 100 bytes every 20 ms.  Prints one JSON object: "status" of the
answer, "got" bytes after its head, "sent" bytes, and how it ended
("eof": close_notify or a clean FIN; "reset"; "timeout").
"""
import json
import select
import socket
import ssl
import sys
import time


def main():
    port, path, rate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s = ctx.wrap_socket(raw)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
               % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    got, sent, end = len(rest), 0, "timeout"
    s.setblocking(False)
    start = time.monotonic()
    next_send = start
    while time.monotonic() - start < 30:
        now = time.monotonic()
        if now >= next_send:
            try:
                sent += s.send(b"u" * 100)
            except (ssl.SSLWantWriteError, BlockingIOError):
                pass
            except OSError:
                pass            # the server is done with our direction
            next_send = now + 0.02
        allowed = int(rate * (now - start)) - got
        if allowed <= 0 and not s.pending():
            time.sleep(0.005)
            continue
        select.select([s], [], [], 0.01)
        try:
            chunk = s.recv(max(1, min(allowed, 65536)))
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except ssl.SSLZeroReturnError:
            end = "eof"
            break
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            end = "reset: %s" % e.__class__.__name__
            break
        if not chunk:
            end = "eof"
            break
        got += len(chunk)
    print(json.dumps({"status": status, "got": got, "sent": sent, "end": end}))


if __name__ == "__main__":
    main()
