# Response splitting, backend side: a backend answer whose framing is
# ambiguous carries a spoofed response in its tail.  The client, asking
# twice on one connection, must never receive that spoofed response as a
# response: mod_rproxy answers 502, relays the first response and drops the
# backend connection, or passes the bytes on as body it re-framed itself.
# docs/framing.md maps each case to its RFC 9112 / 9110 requirement.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use RProxyTest;
use Time::HiRes qw(sleep time);

my $SPOOF = "HTTP/1.1 200 OK\r\nX-Spoof: yes\r\nContent-Length: 7\r\n\r\nSPOOFED";
my $CLEAN = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean";
my $L = length $SPOOF;

# [ name, the backend's answer to the first request, the client's first
#   status, its body ('' = any), method of the first request, TODO reason ]
my @cases = (
    # -- Transfer-Encoding and Content-Length (RFC 9112 6.1, 6.3)
    [ 'CL and TE',                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE then CL',               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE "chunked, identity"',   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE "identity" with CL',    "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok$SPOOF", 502 ],
    [ 'TE "xchunked"',            "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE "chunked\\x0b"',        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE "\"chunked\""',         "HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE lines chunked, chunked', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE lines identity, chunked', "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'TE " \\tchunked" (OWS), then the spoof as extra bytes',
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: \t chunked \r\n\r\n2\r\nok\r\n0\r\n\r\n$SPOOF", 200, 'ok' ],
    [ 'TE "Chunked", then the spoof as extra bytes',
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n$SPOOF", 200, 'ok' ],
    [ 'name "Transfer-Encoding :"', "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok$SPOOF", 502 ],
    [ 'obs-fold into Transfer-Encoding', "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 2\r\n\r\nok$SPOOF", 502 ],
    [ 'whitespace before the first field', "HTTP/1.1 200 OK\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok$SPOOF", 502 ],
    [ 'bare CR hides a Content-Length', "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: $L\r\nContent-Length: 2\r\n\r\nok$SPOOF", 502 ],
    [ 'Transfer_Encoding (underscore) is not Transfer-Encoding',
                                  "HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\nok$SPOOF", 200, 'ok' ],
    # -- Content-Length forms (RFC 9110 8.6)
    (map { [ "CL \"$_\"", "HTTP/1.1 200 OK\r\nContent-Length: $_\r\n\r\nok$SPOOF", 502 ] }
         '+2', '-2', '0x2', '2.0', '2, 3', '3, 2', '2 2', '18446744073709551618',
         '99999999999999999999999', ''),
    [ 'two CL lines that disagree', "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: $L\r\n\r\nok$SPOOF", 502 ],
    [ 'CL "2, 2": one length, then the spoof as extra bytes', "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok$SPOOF", 200, 'ok' ],
    [ 'CL "0002", then the spoof as extra bytes', "HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok$SPOOF", 200, 'ok' ],
    # -- chunked (RFC 9112 7.1)
    [ 'chunk size overflow',      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'chunk size "0x2"',         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'chunk size "-2"',          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare LF ends a chunk size line', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare LF ends the last chunk line', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\n\r\n$SPOOF", 200, '!' ],
    [ 'bare LF after chunk data', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare CR ends a chunk size line', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\rok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare CR after chunk data', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare LF inside a chunk extension', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nxx\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'bare CR inside a chunk extension', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\rxx\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'chunk data longer than its size', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n$SPOOF", 200, '!' ],
    [ 'chunk extensions, then the spoof as extra bytes',
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\"b;c\"\r\nok\r\n0;z\r\n\r\n$SPOOF", 200, 'ok' ],
    [ 'trailers with CL and TE',  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                                  . "Content-Length: $L\r\nTransfer-Encoding: chunked\r\n\r\n$SPOOF", 200, 'ok' ],
    # -- HTTP/1.0 backend with Transfer-Encoding (RFC 9112 6.1)
    [ 'HTTP/1.0 response with TE and CL', "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n$SPOOF", 502 ],
    [ 'HTTP/1.0 response with TE, keep-alive', "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n$SPOOF", 200, 'ok' ],
    # -- 1xx and 101 (RFC 9110 15.2, RFC 9112 6.3 item 1)
    [ '101 to a request that asked for no upgrade', "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n$SPOOF", 502 ],
    # -- bodies where none may be (RFC 9110 6.4.1, 9112 6.3 item 1)
    [ 'HEAD answered with a body', "HTTP/1.1 200 OK\r\nContent-Length: $L\r\n\r\n$SPOOF", 200, '', 'HEAD' ],
    [ 'HEAD answered chunked with a body', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  . sprintf("%x\r\n%s\r\n0\r\n\r\n", $L, $SPOOF), 200, '', 'HEAD' ],
    [ '204 with a body',          "HTTP/1.1 204 No Content\r\n\r\n$SPOOF", 204, '' ],
    [ '204 with CL and a body',   "HTTP/1.1 204 No Content\r\nContent-Length: $L\r\n\r\n$SPOOF", 204, '' ],
    [ '304 with a body',          "HTTP/1.1 304 Not Modified\r\nContent-Length: $L\r\n\r\n$SPOOF", 304, '' ],
    [ '304 chunked with a body',  "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  . sprintf("%x\r\n%s\r\n0\r\n\r\n", $L, $SPOOF), 304, '' ],
    # -- close-delimited (RFC 9112 6.3 item 8): the spoof is body, re-framed
    [ 'close-delimited body holding a response', "HTTP/1.1 200 OK\r\n\r\nok$SPOOF", 200, "ok$SPOOF" ],
);

plan tests => 2 * @cases + 6 + 6;

sub responses {
    my ($data, $first_method) = @_;
    my @out;
    while (length $data) {
        my $r = parse_response($data, head => !@out && $first_method eq 'HEAD') or last;
        push @out, $r;
        last if !$r->{complete} || !defined $r->{rest} || $r->{rest} eq $data;
        $data = $r->{rest};
    }
    return @out;
}

sub spoofed {
    my @rs = @_;
    return scalar grep { $_->{headers}{'x-spoof'} || ($_->{body} // '') eq 'SPOOFED' } @rs;
}

for my $c (@cases) {
    my ($what, $reply, $want_status, $want_body, $method) = @$c;
    $method ||= 'GET';
    $want_body //= '';
    my $be = raw_backend({ reply => sub { syswrite $_[0], $reply; sleep 1 } },
                         { reply => $CLEAN }, { reply => $CLEAN });
    my ($data, $how) = raw_exchange("$method /raw/one HTTP/1.1\r\nHost: h\r\n\r\n"
        . "GET /raw/two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", timeout => 8);
    $be->stop;
    my @rs = responses($data, $method);
    my $first = $rs[0] || { status => 0, body => '', complete => 0 };
    my @second = @rs > 1 ? ($rs[1]) : ();
    t_debug("$what: " . join(' | ', map { "$_->{status} " . ($_->{complete} ? '' : 'cut ')
                                          . substr($_->{body} // '', 0, 30) } @rs) . " ($how)");
    my $bad = spoofed(@rs);
    $bad++ if @second && !($second[0]{status} == 200 && $second[0]{body} eq 'clean');
    $bad++ if @rs > 2;
    ok t_cmp($bad, 0, "$what: the spoofed response never reaches the client");
    if ($want_body eq '!') {
        # Failed after the head went out: never a complete response.
        ok t_cmp($first->{status} == $want_status && $first->{complete} && @second ? 1 : 0, 0,
                 "$what: relayed, if at all, as a failed response");
    }
    else {
        ok t_cmp("$first->{status}" . ($want_body ne '' ? " $first->{body}" : ''),
                 "$want_status" . ($want_body ne '' ? " $want_body" : ''),
                 "$what: answered $want_status" . ($want_body ne '' ? " $want_body" : ''));
    }
}

# A 1xx carrying a Content-Length has no body (RFC 9110 15.2): what
# follows is the final response.  The relayed 1xx never carries the
# Content-Length (RFC 9110 8.6), so no client counts the final head as
# its body.
{
    my $be = raw_backend({ reply => "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n"
        . "Content-Length: 40\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data) = raw_exchange("GET /raw/e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    $be->stop;
    my ($hint) = $data =~ m{\A(HTTP/1\.1 103[^\n]*\n(?:[^\r\n]+\r\n)*)\r\n};
    ok t_cmp(defined $hint ? 1 : 0, 1, '103 with Content-Length relayed');
    ok t_cmp(($hint // '') =~ /^Content-Length/mi ? 1 : 0, 0,
             'the relayed 103 carries no Content-Length');
    my $r = parse_response($data) || { status => 0, body => '' };
    ok t_cmp("$r->{status} $r->{body}", '200 ok', 'the bytes after the 103 are the final response');
}

# Bytes a backend pushes onto an idle kept-alive connection (a response
# to no request) are never served to the next request on it.
{
    my $be = raw_backend(
        { reply => sub {
            syswrite $_[0], "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            sleep 0.3;
            syswrite $_[0], $SPOOF;
            sleep 2;
        } },
        { reply => $CLEAN });
    my $s = session();
    my ($st1, $b1) = $s->get('/raw/idle1');
    sleep 1;
    my ($st2, $b2) = $s->get('/raw/idle2');
    $be->stop;
    ok t_cmp("$st1 $b1", '200 ok', 'first response');
    ok t_cmp("$st2 $b2", '200 clean', 'bytes pushed onto the idle connection are never a response');
}

# Extra bytes after a response whose framing the proxy had to infer from
# a HEAD: the backend connection is not reused even if they come late.
{
    my $be = raw_backend(
        { reply => sub {
            syswrite $_[0], "HTTP/1.1 200 OK\r\nContent-Length: $L\r\n\r\n";
            sleep 0.3;
            syswrite $_[0], $SPOOF;
            sleep 2;
        } },
        { reply => $CLEAN });
    my ($data) = raw_exchange("HEAD /raw/h1 HTTP/1.1\r\nHost: h\r\n\r\n", timeout => 1);
    sleep 0.5;
    my $r = http_request(GET => '/raw/h2');
    $be->stop;
    ok t_cmp("$r->{status} $r->{body}", '200 clean',
             'a late body after a HEAD response is never the next response');
}

# No framing field on a 204, whatever the backend sent (RFC 9110 8.6,
# RFC 9112 6.1).
{
    my @seen;
    for my $framing ("Content-Length: 5", "Transfer-Encoding: chunked") {
        my $be = raw_backend({ reply => "HTTP/1.1 204 No Content\r\n$framing\r\n\r\n" });
        my ($data) = raw_exchange("GET /raw/n HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                                  timeout => 5);
        $be->stop;
        my ($head) = $data =~ /\A(.*?\r\n)\r\n/s;
        push @seen, ($head // '') =~ /^HTTP\/1\.1 204/ ? ($head =~ /^((?:Content-Length|Transfer-Encoding):[^\r]*)/mi)[0] // ''
                                                       : 'not a 204';
    }
    ok t_cmp(join('|', @seen), '|', '204 with a body: no framing fields to the client');
}

# A chunked backend response to an HTTP/1.0 client: no Transfer-Encoding
# (RFC 9112 6.1), the body delimited by close or a length.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" });
    my ($data, $how) = raw_exchange("GET /raw/o HTTP/1.0\r\nHost: h\r\n\r\n", timeout => 5);
    $be->stop;
    ok t_cmp($data =~ /^Transfer-Encoding:/mi ? 1 : 0, 0,
             'chunked backend, HTTP/1.0 client: no Transfer-Encoding');
    ok t_cmp($data =~ /\r\n\r\nok\z/ && $how eq 'eof' ? 1 : 0, 1,
             'chunked backend, HTTP/1.0 client: the body, then close');
}

# A backend's Connection: close ends that connection's use (RFC 9112 9.6),
# even if the backend keeps it open and would answer on it.
{
    my $be = raw_backend(
        { reply => sub {
            my $s = shift;
            syswrite $s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
            my $sel = IO::Select->new($s);
            my $buf = '';
            if ($sel->can_read(2)) {
                sysread($s, $buf, 65536);
                syswrite $s, $SPOOF if length $buf;
            }
        } },
        { reply => $CLEAN });
    my $r1 = http_request(GET => '/raw/c1');
    sleep 0.3;
    my $r2 = http_request(GET => '/raw/c2');
    $be->stop;
    ok t_cmp("$r1->{status} $r1->{body}", '200 ok', 'Connection: close response relayed');
    ok t_cmp("$r2->{status} $r2->{body}", '200 clean',
             'Connection: close response: the connection is not reused');
    ok t_cmp(($r1->{headers}{'x-spoof'} || $r2->{headers}{'x-spoof'}) ? 1 : 0, 0,
             'Connection: close response: nothing spoofed');
}
