# Errors: what the client gets, what the log says, and that every buffer
# went back to the pool (rproxy-status outstanding: 0) on every path.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use Time::HiRes qw(time);

plan tests => 31 + 3 * 4 + 2;

sub outstanding_zero {
    my $what = shift;
    my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 5);
    ok t_cmp($ok ? 1 : 0, 1, "$what: outstanding 0 afterwards");
}

sub logged {
    my ($mark, $re, $what) = @_;
    my $ok = wait_for(sub { error_log_since($mark) =~ $re }, 3);
    ok t_cmp($ok ? 1 : 0, 1, "$what: error log says why");
}

# Backend refuses the connection: 502.
{
    my $mark = error_log_mark();
    my $r = http_request(GET => '/dead/x');
    ok t_cmp($r->{status}, 502, 'refused backend answers 502');
    logged($mark, qr/rproxy:error.*dead|rproxy: http:\/\/127\.0\.0\.1:\d+\/: connecting: cannot connect/,
           'refused');
    outstanding_zero('refused');
}

# Backend closes mid-body after the head went out: the client must not see
# a complete response.
for my $chunked (0, 1) {
    my $how = $chunked ? 'chunked' : 'Content-Length';
    my $mark = error_log_mark();
    my $q = 'gen=200000&cut=70000' . ($chunked ? '&chunked=1' : '');
    my $r = http_request(GET => "/be/c?$q");
    ok t_cmp($r->{status}, 200, "$how cut: head relayed");
    ok t_cmp($r->{complete} ? 1 : 0, 0, "$how cut: client sees an incomplete body");
    logged($mark, qr/rproxy:error.*reading (?:200000-byte body|chunk)/, "$how cut");
    outstanding_zero("$how cut");
}

# Backend too slow: 504 after RProxyTimeout (1 s here).
{
    my $mark = error_log_mark();
    my $t0 = time;
    my $r = http_request(GET => '/slow/x?sleep=4000');
    my $took = time - $t0;
    ok t_cmp($r->{status}, 504, 'slow backend answers 504');
    ok t_cmp($took < 3.5 ? 1 : 0, 1, sprintf('504 came after the timeout (%.1fs)', $took));
    logged($mark, qr/rproxy:error.*timed out/, 'timeout');
    outstanding_zero('timeout');
}

# A backend that takes the request head but never reads its body: once the
# socket buffers between them are full, the body write waits RProxyTimeout
# (2 s on /raw/) and the client gets 504 rather than waiting on.  48 MiB is
# far more than loopback socket buffers hold.
{
    my $be = raw_backend({ no_read => 1, delay => 8 });
    my $mark = error_log_mark();
    my $size = 48 * 1024 * 1024;
    my $t0 = time;
    my ($data) = raw_exchange("POST /raw/upload HTTP/1.1\r\nHost: x\r\n"
                              . "Content-Length: $size\r\n\r\n" . ('x' x $size),
                              timeout => 20);
    my $took = time - $t0;
    $be->stop;
    my $status = parse_response($data)->{status};
    ok t_cmp($status // 'no response', 504, 'a backend that never reads the body: 504');
    ok t_cmp($took < 7 ? 1 : 0, 1, sprintf('504 without waiting for the backend (%.1fs)', $took));
    logged($mark, qr/rproxy:error.*backend read nothing for 2 s/, 'body write timeout');
    outstanding_zero('body write timeout');
}

# Backend answers garbage: 502.
{
    my $be = raw_backend({ reply => "garbage\r\n\r\n" });
    my $mark = error_log_mark();
    my $r = http_request(GET => '/raw/x');
    ok t_cmp($r->{status}, 502, 'garbage status line answers 502');
    logged($mark, qr/rproxy:error.*malformed status line/, 'garbage');
    $be->stop;
}

# Backend closes without a word: 502.
{
    my $be = raw_backend({ reply => '' });
    my $r = http_request(GET => '/raw/x');
    ok t_cmp($r->{status}, 502, 'backend closing without answering: 502');
    $be->stop;
}

# A close-delimited response is relayed whole, then re-framed for the client.
{
    my $body = pattern(100000);
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Type: x/y\r\n\r\n$body" });
    my $r = http_request(GET => '/raw/x');
    ok t_cmp($r->{complete} && $r->{body} eq $body ? 1 : 0, 1,
             'close-delimited body relayed byte-exact');
    ok t_cmp(($r->{headers}{'transfer-encoding'} || [''])->[0], 'chunked',
             'and re-framed chunked for the HTTP/1.1 client');
    $be->stop;
}

# Client disconnects mid-download.
{
    my $before = counters();
    my ($got) = raw_exchange("GET /be/big?gen=50000000 HTTP/1.1\r\nHost: x\r\n\r\n",
                             read_max => 200000);
    ok t_cmp(length($got) >= 200000 ? 1 : 0, 1, 'client read part of a big body');
    # rproxy-status is per process: under prefork another process may answer.
    my $ok = ($ENV{RPROXY_TEST_MPM} || '') eq 'prefork'
        || wait_for(sub { counters()->{client_aborts} > $before->{client_aborts} }, 10);
    ok t_cmp($ok ? 1 : 0, 1, 'the proxy noticed the client left');
    outstanding_zero('client gone');
    my $r = http_request(GET => '/be/after?say=still-here');
    ok t_cmp($r->{body}, 'still-here', 'next request works');
}

# SetHandler rproxy without RProxyTarget: 500 and a log line.
{
    my $mark = error_log_mark();
    my $r = http_request(GET => '/notarget/x');
    ok t_cmp($r->{status}, 500, 'no RProxyTarget answers 500');
    logged($mark, qr/without RProxyTarget/, 'no target');
}

# The testpool's books balance on an error path too.
{
    my $mark = error_log_mark();
    my $r = http_request(GET => '/pool/test/c?gen=200000&cut=5000');
    wait_for(sub { error_log_since($mark) =~ /putBuf/ });
    my @calls = error_log_since($mark) =~ /rproxy_testpool: (getBuf|putBuf-\d+)/g;
    ok t_cmp("@calls", 'getBuf putBuf-1234', 'backend cut: one get, one put');
}

# A backend that fails mid-body after a short first piece (1,000 bytes of a
# 100,000-byte Content-Length, then silence past RProxyTimeout, or a close):
# the client gets the status line and the bytes received so far, then an
# ended connection; never a bare reset.  With Content-Length the short body
# shows the failure, so the connection ends with a FIN after the data.  A
# close-delimited response (to an HTTP/1.0 client) would look complete at a
# FIN: that one ends with a reset, after its bytes left.
{
    my $piece = 'p' x 1000;
    my @cases = (
        [ 'stall', "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", '1.1', 'eof' ],
        [ 'close', "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", '1.1', 'eof' ],
        [ 'close-delimited stall', "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
          '1.0', 'reset' ],
    );
    for my $c (@cases) {
        my ($name, $head, $version, $end) = @$c;
        my $be = raw_backend({ keep => $name ne 'close', reply => sub {
            syswrite $_[0], $head . $piece;
            sleep 4 if $name ne 'close';
        } });
        my $t0 = time;
        my ($data, $how) = raw_exchange("GET /raw/midbody HTTP/$version\r\nHost: h\r\n\r\n",
                                        timeout => 10);
        $be->stop;
        my $r = parse_response($data) || { status => 0, body => '', complete => 0 };
        ok t_cmp($r->{status}, 200, "$name mid-body: the client got the status line");
        ok t_cmp($r->{body} eq $piece ? 1 : 0, 1,
                 "$name mid-body: and the 1000 bytes received so far");
        # A close-delimited body's end is its connection's: only the reset
        # (the next check) tells it from a complete one.
        ok t_cmp($r->{complete} && $end ne 'reset' ? 1 : 0, 0,
                 "$name mid-body: the client can tell the body is cut");
        ok t_cmp($how, $end, "$name mid-body: then the connection ended ($end)");
    }
}

# The same through an output filter that holds bytes (mod_deflate, to an
# HTTP/1.0 client: close-delimited, so the connection is reset): what the
# filter held is flushed before the reset, so the client still gets the
# status line and the compressed bytes so far.
SKIP: {
    skip_rest('mod_deflate not loaded', 2) unless Apache::Test::have_module('deflate');
    my $be = raw_backend({ keep => 1, reply => sub {
        syswrite $_[0], "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        . "Content-Length: 100000\r\n\r\n" . ('p' x 1000);
        sleep 4;
    } });
    my ($data, $how) = raw_exchange("GET /deflated/x HTTP/1.0\r\nHost: h\r\n"
                                    . "Accept-Encoding: gzip\r\n\r\n", timeout => 10);
    $be->stop;
    my $r = parse_response($data) || { status => 0, headers => {} };
    ok t_cmp("$r->{status} " . (($r->{headers}{'content-encoding'} || [''])->[0]),
             '200 gzip', 'filtered mid-body failure: the status line came');
    ok t_cmp($how, 'reset', 'filtered mid-body failure: then a reset');
}
