# What a client can and cannot make the proxy do with its request body.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 15;

# A body over LimitRequestBody: refused, and the client connection closes
# (its unread body must not be taken for the next request).
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my $body = 'x' . ('y' x 998) . "\nGET /be/smuggled?say=oops HTTP/1.1\r\nHost: h\r\n\r\n";
    my ($data, $how) = raw_exchange("POST /limited/x HTTP/1.1\r\nHost: h\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body", timeout => 10);
    $be->stop;
    my $r = parse_response($data) || { status => 0, headers => {} };
    ok t_cmp($r->{status}, 413, 'body over LimitRequestBody answers 413');
    ok t_cmp(($r->{headers}{connection} || [''])->[0], 'close', 'with Connection: close');
    ok t_cmp($how, 'eof', 'and the connection is closed');
    ok t_cmp($data =~ /oops/ ? 1 : 0, 0, 'nothing in the body was served as a request');
}

# A chunked body that breaks off mid-way: error status, connection closed.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data, $how) = raw_exchange("POST /raw/x HTTP/1.1\r\nHost: h\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-hex\r\n\r\n", timeout => 10);
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status} >= 400 && $how eq 'eof' ? 1 : 0, 1,
             "malformed chunked body: $r->{status} and closed ($how)");
}

# An HTTP/1.0 request with Transfer-Encoding has faulty framing (RFC 9112
# 6.1): refused with 400 and the connection closed, so the bytes after its
# chunked body are never read as a second request.
{
    my $ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    my $be = raw_backend({ reply => $ok }, { reply => $ok });
    my ($data, $how) = raw_exchange("POST /raw/te10 HTTP/1.0\r\nHost: h\r\n"
        . "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        . "5\r\nhello\r\n0\r\n\r\n"
        . "GET /raw/smuggled HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        timeout => 4);
    my @seen = $be->requests;
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status}, 400, 'HTTP/1.0 with Transfer-Encoding answers 400');
    ok t_cmp($how, 'eof', 'and the connection is closed at once');
    ok t_cmp(scalar(grep { m{^GET /smuggled } } @seen), 0,
             'the bytes after its body never reach the backend as a request');
    ok t_cmp(scalar(@seen), 0, 'the refused request itself never reaches the backend');
}

# A request Transfer-Encoding other than "chunked" alone: httpd's core
# undoes the final chunked and lets the rest through, and forwarding what
# is left as plain content would drop a coding undecoded.  501, before the
# backend sees anything, and the connection closes.
for my $te ('gzip, chunked', 'chunked, chunked', "identity\r\nTransfer-Encoding: chunked") {
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data, $how) = raw_exchange("POST /raw/x HTTP/1.1\r\nHost: h\r\n"
        . "Transfer-Encoding: $te\r\n\r\n5\r\nhello\r\n0\r\n\r\n", timeout => 5);
    my @seen = $be->requests;
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    (my $name = $te) =~ s/\r\n.*/ + chunked (two lines)/;
    ok t_cmp("$r->{status} $how " . scalar(@seen), '501 eof 0',
             "Transfer-Encoding '$name': 501, closed, nothing to the backend");
}

# An error document the proxy serves: httpd's redirect is a GET that keeps
# the failed request's Content-Length, but its body was read and thrown
# away.  The backend must not be promised it: it would wait for bytes that
# never come, or take the start of the next request on the connection for
# them.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nerrdoc!" });
    my ($data) = raw_exchange("POST /errdoc/missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        . "Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", timeout => 10);
    my ($req) = $be->requests;
    $be->stop;
    my $r = parse_response($data) || { body => '' };
    my ($head, $body) = split /\r\n\r\n/, ($req // ''), 2;
    ok t_cmp(($head // '') =~ /^GET \/errdoc HTTP\/1\.1\r\n/ ? 1 : 0, 1,
             'the error document is asked for with a GET');
    ok t_cmp(($head // '') =~ /^(?:Content-Length|Transfer-Encoding):/mi ? 1 : 0, 0,
             'without the thrown-away body\'s framing');
    ok t_cmp($r->{body}, 'errdoc!', 'the client gets the error document');
}
