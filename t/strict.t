# Strict parsing of what the backend says: anything that is not well-formed
# HTTP/1.1 answers 502 (or, once the head went out, never looks complete).
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

my $ok_body = "Content-Length: 2\r\n\r\nok";

my @bad_heads = (
    [ 'HTTP/2.0 version',         "HTTP/2.0 200 OK\r\n$ok_body" ],
    [ 'two-digit status',         "HTTP/1.1 20 OK\r\n$ok_body" ],
    [ 'status 600',               "HTTP/1.1 600 Odd\r\n$ok_body" ],
    [ 'status 099',               "HTTP/1.1 099 Odd\r\n$ok_body" ],
    [ 'no space after status',    "HTTP/1.1 200OK\r\n$ok_body" ],
    [ 'not HTTP',                 "ICY 200 OK\r\n$ok_body" ],
    [ 'lower-case http',          "http/1.1 200 OK\r\n$ok_body" ],
    [ 'space in field name',      "HTTP/1.1 200 OK\r\nBad Name: x\r\n$ok_body" ],
    [ 'space before colon',       "HTTP/1.1 200 OK\r\nX-A : x\r\n$ok_body" ],
    [ 'no colon',                 "HTTP/1.1 200 OK\r\nNoColonHere\r\n$ok_body" ],
    [ 'empty field name',         "HTTP/1.1 200 OK\r\n: x\r\n$ok_body" ],
    [ 'bare CR in value',         "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n$ok_body" ],
    [ 'NUL in value',             "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n$ok_body" ],
    [ 'control byte in value',    "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n$ok_body" ],
    [ 'DEL in value',             "HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n$ok_body" ],
    [ 'obs-fold',                 "HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\n$ok_body" ],
    [ 'header line over 8 KiB',   "HTTP/1.1 200 OK\r\nX-A: " . ('a' x 8200) . "\r\n$ok_body" ],
    [ 'head over 64 KiB',         "HTTP/1.1 200 OK\r\n"
                                  . join('', map { "X-$_: " . ('b' x 4000) . "\r\n" } 1 .. 17)
                                  . $ok_body ],
    [ 'over 100 fields',          "HTTP/1.1 200 OK\r\n"
                                  . join('', map { "X-$_: v\r\n" } 1 .. 101) . $ok_body ],
    [ 'CL and TE',                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                  . "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" ],
    [ 'different CLs',            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n$ok_body" =~ s/2\r\n\r\nok$/3\r\n\r\nok!/r ],
    [ 'CL list disagreeing',      "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!" ],
    [ 'CL with sign',             "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok" ],
    [ 'CL in hex',                "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok" ],
    [ 'CL empty',                 "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok" ],
    [ 'CL overflow',              "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok" ],
    [ 'gzip transfer coding',     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok" ],
    [ 'gzip, chunked',            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" ],
    [ 'chunked twice',            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                  . "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" ],
    [ '11 interim responses',     ("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" x 11)
                                  . "HTTP/1.1 200 OK\r\n$ok_body" ],
    [ 'unsolicited 101',          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                                  . "Connection: upgrade\r\n\r\n" ],
);

# Broken bodies: the client may get the head, but never a complete response.
my @bad_bodies = (
    [ 'short Content-Length body', "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5" ],
    [ 'missing last chunk',        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" ],
    [ 'bad chunk size',            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n" ],
    [ 'chunk size with junk',      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n" ],
    [ 'chunk longer than size',    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n" ],
    [ 'chunk size overflow',       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n0\r\n\r\n" ],
    # A bare LF may end a head line (RFC 9112 2.2), never a chunk line (7.1).
    [ 'bare LF ends a chunk size', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" ],
    [ 'bare LF after chunk data',  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n" ],
    [ 'bare LF ends the last chunk', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n" ],
);

# Well-formed oddities that must pass.
my @good = (
    [ 'no reason phrase',   "HTTP/1.1 200\r\n$ok_body",                      200, 'ok' ],
    [ 'empty reason',       "HTTP/1.1 200 \r\n$ok_body",                     200, 'ok' ],
    [ 'repeated equal CLs', "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok", 200, 'ok' ],
    [ 'bare LF lines',      "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",      200, 'ok' ],
    [ 'bare LF head, CRLF chunks', "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nok\r\n0\r\nX-T: 1\n\n", 200, 'ok' ],
    [ 'chunk extensions',   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;name=val\r\nok\r\n0\r\n\r\n", 200, 'ok' ],
    [ 'CHUNKED upper case', "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, 'ok' ],
    [ 'interim then final', "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: <x>\r\n\r\n"
                            . "HTTP/1.1 201 Created\r\n$ok_body", 201, 'ok' ],
    [ 'unknown status 299', "HTTP/1.1 299 Whatever\r\n$ok_body",             299, 'ok' ],
    [ 'HTTP/1.0 response',  "HTTP/1.0 200 OK\r\n\r\nok",                     200, 'ok' ],
);

plan tests => 2 * @bad_heads + @bad_bodies + 2 * @good + 3;

sub through_raw {
    my $reply = shift;
    my $be = raw_backend({ reply => $reply });
    my $mark = error_log_mark();
    my $r = http_request(GET => '/raw/x');
    $be->stop;
    return ($r, error_log_since($mark));
}

for my $c (@bad_heads) {
    my ($what, $reply) = @$c;
    my ($r, $log) = through_raw($reply);
    ok t_cmp($r->{status}, 502, "$what: 502");
    ok t_cmp($log =~ /rproxy:error.*(malformed response|line longer)/ ? 1 : 0, 1,
             "$what: logged");
}

for my $c (@bad_bodies) {
    my ($what, $reply) = @$c;
    my ($r) = through_raw($reply);
    my $looks_whole = $r->{status} == 200 && $r->{complete} && $r->{how} eq 'eof';
    ok t_cmp($looks_whole ? 1 : 0, 0,
             "$what: not relayed as complete (status $r->{status}, $r->{how})");
}

for my $c (@good) {
    my ($what, $reply, $status, $body) = @$c;
    my ($r) = through_raw($reply);
    ok t_cmp($r->{status}, $status, "$what: status");
    ok t_cmp($r->{body}, $body, "$what: body");
}

# The status line is rebuilt from the code, never copied.
{
    my ($r) = through_raw("HTTP/1.1 200 Totally <b>Fine</b>\r\n$ok_body");
    ok t_cmp($r->{status_line}, 'HTTP/1.1 200 OK', 'status line rebuilt');
    # Framing headers are derived, not copied.
    ($r) = through_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       . "2\r\nok\r\n0\r\n\r\n");
    ok t_cmp(($r->{headers}{'content-length'} || ['none'])->[0] . ' '
             . scalar(@{ $r->{headers}{'transfer-encoding'} || [] }), 'none 1',
             'chunked response re-framed, one Transfer-Encoding');
    ($r) = through_raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
    ok t_cmp(scalar @{ $r->{headers}{'content-length'} || [] }, 1,
             'one Content-Length to the client');
}
