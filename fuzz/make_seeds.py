#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/ (ok-* and bad-*).

Each file is two selector bytes (see fuzz_response.c) and the backend's
bytes.  ok-* must be read as a well-formed response, bad-* must be refused;
fuzz/build/replay checks both.  Run from anywhere: python3 fuzz/make_seeds.py
"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def sel(cap=4096, recv=0, pool=False, head=False):
    """cap: reader buffer 16..4096 (a multiple of 16); recv: max bytes per
    recv, 0 = as much as fits, else 1..63; pool: overflow area from the
    pool; head: the request was HEAD."""
    assert cap % 16 == 0 and 16 <= cap <= 4096 and 0 <= recv <= 63
    return bytes([cap // 16 - 1, recv | (0x40 if pool else 0) | (0x80 if head else 0)])


def resp(status="HTTP/1.1 200 OK", fields=(), body=b"", eol=b"\r\n"):
    head = status.encode("latin-1") + eol
    for f in fields:
        head += (f.encode("latin-1") if isinstance(f, str) else f) + eol
    return head + eol + body


def chunked(*chunks, trailers=(), ext=b""):
    out = b""
    for c in chunks:
        out += b"%x" % len(c) + ext + b"\r\n" + c + b"\r\n"
    out += b"0\r\n"
    for t in trailers:
        out += t.encode("latin-1") + b"\r\n"
    return out + b"\r\n"


TE = "Transfer-Encoding: chunked"
SEEDS = {
    # -- well-formed --
    "ok-cl-basic": sel() + resp(fields=["Content-Length: 5", "Content-Type: text/plain"], body=b"hello"),
    "ok-cl-split-1byte-recv": sel(16, 1) + resp(fields=["Content-Length: 26"], body=b"abcdefghijklmnopqrstuvwxyz"),
    "ok-cl-repeated-equal": sel(32, 5) + resp(fields=["Content-Length: 3\t, 3", "content-length:3"], body=b"abc"),
    "ok-cl-stray-bytes-after-body": sel() + resp(fields=["Content-Length: 2"], body=b"okHTTP/1.1 200 OK\r\n"),
    "ok-chunked-basic": sel() + resp(fields=[TE], body=chunked(b"hello", b" world")),
    "ok-chunked-ext-trailers": sel(48, 3) + resp(
        fields=[TE, "Trailer: Expires, X-Checksum"],
        body=b"5;name=value\r\nhello\r\nA ;x;y=\"q s\"\r\n0123456789\r\n"
             b"0;last\r\nExpires: Thu, 01 Jan 2037 00:00:00 GMT\r\nX-Checksum:\tabc \r\n\r\n"),
    "ok-chunked-uppercase-hex-leading-zeros": sel(256, 17) + resp(
        fields=["transfer-encoding: Chunked"], body=b"000B\r\nhello world\r\n00\r\n\r\n"),
    "ok-chunked-small-buffer-big-chunk": sel(16, 9) + resp(fields=[TE], body=chunked(bytes(range(256)) * 3)),
    "ok-chunked-bare-lf-head": sel(16, 2) + resp(fields=[TE], body=b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\n", eol=b"\n"),
    "ok-close-delimited": sel(32, 4) + resp("HTTP/1.0 200 OK", fields=["Server: old"], body=b"until the connection closes\r\n\r\n0\r\n"),
    "ok-100-continue-then-cl": sel(64, 1) + resp("HTTP/1.1 100 Continue") + resp(fields=["Content-Length: 2"], body=b"hi"),
    "ok-103-early-hints-then-chunked": sel(128, 11) + resp("HTTP/1.1 103 Early Hints", fields=["Link: </s.css>; rel=preload"])
        + resp(fields=[TE, "Link: </s.css>; rel=preload"], body=chunked(b"body")),
    "ok-ten-interim": sel(16, 63) + resp("HTTP/1.1 102 Processing") * 10 + resp(fields=["Content-Length: 1"], body=b"x"),
    "ok-head-cl-no-body": sel(head=True) + resp(fields=["Content-Length: 1000"]),
    "ok-head-cl-18-digits": sel(head=True) + resp(fields=["Content-Length: 999999999999999999"]),
    "ok-204-no-body": sel() + resp("HTTP/1.1 204 No Content", fields=["X: y"]),
    "ok-304-cl-no-body": sel(32, 8) + resp("HTTP/1.1 304 Not Modified", fields=["Content-Length: 1234", "ETag: \"x\""]),
    "ok-status-no-reason": sel() + resp("HTTP/1.1 200", fields=["Content-Length: 0"]),
    "ok-obs-text-tabs-empty-value": sel(96, 6) + resp("HTTP/1.1 200 \xe9t\xe9\tok",
        fields=["X-Latin: caf\xe9", "X-Tab:\tleft\t and right \t", "X-Empty:", "!#$%&'*+-.^_`|~09aZ: tchar"]),
    "ok-long-field-overflow-pool": sel(16, 0, pool=True) + resp(fields=["X-Long: " + "v" * 8000, "Content-Length: 1"], body=b"z"),
    "ok-long-field-exactly-8192": sel(256, 63) + resp(fields=["X-Max: " + "m" * (8192 - 7), "Content-Length: 0"]),
    "ok-100-fields": sel(4096, 0) + resp(fields=["F%d: %d" % (i, i) for i in range(99)] + ["Content-Length: 0"]),
    # -- to be refused --
    # bare LF ends only head and trailer lines (RFC 9112 2.2), never a
    # chunk line (7.1; Go's CVE-2025-22871)
    "bad-chunked-bare-lf": sel(16, 2) + resp(fields=[TE], body=b"4\nwiki\n5\npedia\n0\n\n", eol=b"\n"),
    "bad-chunk-size-bare-lf": sel() + resp(fields=[TE], body=b"4\nwiki\r\n0\r\n\r\n"),
    "bad-chunk-data-bare-lf": sel() + resp(fields=[TE], body=b"4\r\nwiki\n0\r\n\r\n"),
    "bad-last-chunk-bare-lf": sel() + resp(fields=[TE], body=b"4\r\nwiki\r\n0\n\r\n"),
    "bad-status-http2": sel() + b"HTTP/2 200 OK\r\n\r\n",
    "bad-status-no-space-before-reason": sel() + b"HTTP/1.1 200OK\r\n\r\n",
    "bad-status-double-space": sel() + b"HTTP/1.1  200 OK\r\n\r\n",
    "bad-status-600": sel() + b"HTTP/1.1 600 Too High\r\n\r\n",
    "bad-status-control-in-reason": sel() + b"HTTP/1.1 200 O\x01K\r\n\r\n",
    "bad-status-double-cr": sel() + b"HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n",
    "bad-status-101-unasked": sel() + b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "bad-eleven-interim": sel(32, 13) + resp("HTTP/1.1 100 Continue") * 11 + resp(fields=["Content-Length: 0"]),
    "bad-obs-fold": sel() + resp(fields=["X-Folded: a", " b", "Content-Length: 0"]),
    "bad-field-space-before-colon": sel() + resp(fields=["Content-Length : 5"], body=b"hello"),
    "bad-field-no-colon": sel() + resp(fields=["Content-Length 5"], body=b"hello"),
    "bad-field-nul-in-value": sel(16, 3) + resp(fields=[b"X: a\x00b", "Content-Length: 0"]),
    "bad-field-cr-in-value": sel() + resp(fields=[b"X: a\rContent-Length: 0"]),
    "bad-field-8bit-name": sel() + resp(fields=[b"X-\xc3\xa9: x"]),
    "bad-cl-and-te": sel() + resp(fields=["Content-Length: 5", TE], body=chunked(b"hello")),
    "bad-cl-conflicting-fields": sel() + resp(fields=["Content-Length: 5", "Content-Length: 6"], body=b"hello!"),
    "bad-cl-conflicting-list": sel() + resp(fields=["Content-Length: 5, 6"], body=b"hello!"),
    "bad-cl-negative": sel() + resp(fields=["Content-Length: -1"]),
    "bad-cl-plus-sign": sel() + resp(fields=["Content-Length: +5"], body=b"hello"),
    "bad-cl-19-digits": sel(head=True) + resp(fields=["Content-Length: 1234567890123456789"]),
    "bad-cl-trailing-comma": sel() + resp(fields=["Content-Length: 5,"], body=b"hello"),
    "bad-cl-body-cut-short": sel(16, 2) + resp(fields=["Content-Length: 10"], body=b"abc"),
    "bad-te-gzip-chunked": sel() + resp(fields=["Transfer-Encoding: gzip, chunked"], body=chunked(b"x")),
    "bad-te-two-fields": sel() + resp(fields=[TE, TE], body=chunked(b"x")),
    "bad-chunk-size-empty": sel() + resp(fields=[TE], body=b"\r\nhello\r\n0\r\n\r\n"),
    "bad-chunk-size-0x-prefix": sel() + resp(fields=[TE], body=b"0x5\r\nhello\r\n0\r\n\r\n"),
    "bad-chunk-size-overflow": sel() + resp(fields=[TE], body=b"80000000000000000\r\nx\r\n0\r\n\r\n"),
    "bad-chunk-size-huge-then-eof": sel(16, 5) + resp(fields=[TE], body=b"7fffffffffffffff\r\nonly a few bytes"),
    "bad-chunk-ext-control": sel() + resp(fields=[TE], body=b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
    "bad-chunk-data-longer-than-size": sel(16, 1) + resp(fields=[TE], body=b"3\r\nhello\r\n0\r\n\r\n"),
    "bad-chunk-missing-last-chunk": sel() + resp(fields=[TE], body=b"5\r\nhello\r\n"),
    "bad-trailer-obs-fold": sel() + resp(fields=[TE], body=b"1\r\nx\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
    "bad-eof-in-head": sel() + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
    "bad-empty-stream": sel(),
    "bad-101-fields": sel(1024, 0) + resp(fields=["F%d: %d" % (i, i) for i in range(100)] + ["Content-Length: 0"]),
    "bad-head-over-64k": sel(4096, 0) + resp(fields=["X-%d: %s" % (i, "h" * 8000) for i in range(9)]),
    "bad-line-too-long-status": sel(4096, 0) + b"HTTP/1.1 200 " + b"r" * 9000 + b"\r\n\r\n",
    "bad-line-too-long-field-8193": sel(16, 0) + resp(fields=["X-Max: " + "m" * (8193 - 7)]),
    "bad-line-8193-bare-lf": sel(16, 0) + b"HTTP/1.1 200 OK\r\nX-Max: " + b"m" * (8193 - 7) + b"\n\r\n",
    "bad-line-8194-bare-lf": sel(32, 0) + b"HTTP/1.1 200 OK\r\nX-Max: " + b"m" * (8194 - 7) + b"\n\r\n",
    "bad-line-too-long-no-lf": sel(64, 63) + b"HTTP/1.1 200 OK\r\nX: " + b"y" * 8500,
    "bad-line-too-long-chunk-size": sel(256, 0) + resp(fields=[TE], body=b"0" * 8200 + b"1\r\nx\r\n0\r\n\r\n"),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), OUT))
