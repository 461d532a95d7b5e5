# Headers across the proxy, byte for byte on the backend's side.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 24 + 6 + 1;

my $raw_port = conf_define('RPROXY_RAW_PORT');
my $ok_reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

# Sends one request through $prefix and returns the header lines the
# backend received (the request line first).
sub backend_saw {
    my ($prefix, $head_lines) = @_;
    my $be = raw_backend({ reply => $ok_reply });
    my ($data) = raw_exchange("GET ${prefix}x HTTP/1.1\r\n$head_lines"
                              . "Connection: close\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    $req //= '';
    $req =~ s/\r\n\r\n.*//s;
    return [split /\r\n/, $req];
}

sub lines_named {
    my ($lines, $name) = @_;
    return join '|', map { /^\Q$name\E:\s*(.*)$/i ? $1 : () } @$lines;
}

# Hop-by-hop request headers, and every header Connection names, stop here.
{
    my $saw = backend_saw('/raw/', "Host: front.example\r\n"
        . "Connection: X-Drop-Me, , X-Also\r\nConnection: keep-alive\r\n"
        . "X-Drop-Me: 1\r\nX-Also: 2\r\nX-Keep: 3\r\nKeep-Alive: 300\r\n"
        . "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        . "TE: gzip\r\nTrailer: X-T\r\nUpgrade: foo/1\r\nUser-Agent: tester/1\r\n");
    ok t_cmp($saw->[0], 'GET /x HTTP/1.1', 'request line');
    for my $h (qw(Connection X-Drop-Me X-Also Keep-Alive Proxy-Connection
                  Proxy-Authorization TE Trailer Upgrade)) {
        ok t_cmp(lines_named($saw, $h), '', "$h is not forwarded");
    }
    ok t_cmp(lines_named($saw, 'X-Keep'), '3', 'end-to-end header forwarded');
    ok t_cmp(lines_named($saw, 'User-Agent'), 'tester/1', 'User-Agent passes unchanged');
    ok t_cmp(lines_named($saw, 'Host'), "127.0.0.1:$raw_port", 'Host is the target');
}

# TE: trailers survives as exactly that.
{
    my $saw = backend_saw('/raw/', "Host: h\r\nTE: trailers, deflate;q=0.5\r\n");
    ok t_cmp(lines_named($saw, 'TE'), 'trailers', 'TE: trailers forwarded alone');
    ok t_cmp(lines_named($saw, 'Connection'), 'TE', 'with the Connection: TE a sender of TE must add');
}

# TE: trailers with the Connection: TE that RFC 9110 asks for.
{
    my $be = raw_backend({ reply => $ok_reply });
    raw_exchange("GET /raw/te HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp(($req // '') =~ /^TE: trailers\r$/m ? 1 : 0, 1, 'TE: trailers forwarded despite Connection: TE');
}

# X-Forwarded-*: the client's list is folded and extended; a Connection
# header naming X-Forwarded-For cannot remove ours (CVE-2022-31813).
{
    my $saw = backend_saw('/raw/', "Host: front.example\r\n"
        . "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n"
        . "X-Forwarded-Host: spoofed\r\nX-Forwarded-Proto: gopher\r\n");
    ok t_cmp(lines_named($saw, 'X-Forwarded-For'), '10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1',
             'X-Forwarded-For folded and appended');
    ok t_cmp(lines_named($saw, 'X-Forwarded-Host'), 'front.example', 'X-Forwarded-Host');
    ok t_cmp(lines_named($saw, 'X-Forwarded-Proto'), 'http', 'X-Forwarded-Proto');

    $saw = backend_saw('/raw/', "Host: h\r\nConnection: X-Forwarded-For\r\n"
        . "X-Forwarded-For: 6.6.6.6\r\n");
    ok t_cmp(lines_named($saw, 'X-Forwarded-For'), '127.0.0.1',
             'Connection: X-Forwarded-For cannot drop the proxy-added value');
}

# RProxyAddForwarded Off adds nothing (the client's pass as they are).
{
    my $saw = backend_saw('/rawnf/', "Host: h\r\nX-Forwarded-For: 10.9.9.9\r\n");
    ok t_cmp(lines_named($saw, 'X-Forwarded-For'), '10.9.9.9', 'client XFF untouched');
    ok t_cmp(lines_named($saw, 'X-Forwarded-Host') . lines_named($saw, 'X-Forwarded-Proto'),
             '', 'no X-Forwarded-Host/Proto added');
}

# RProxyPreserveHost On sends the client's Host.
{
    my $saw = backend_saw('/rawph/', "Host: app.example:8443\r\n");
    ok t_cmp(lines_named($saw, 'Host'), 'app.example:8443', 'client Host preserved');
}

# Hop-by-hop response headers stop here too, including those the
# backend's Connection names.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\n"
        . "X-Secret: s3cr3t\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n"
        . "Upgrade: foo\r\nX-Public: yes\r\nContent-Length: 2\r\n\r\nok" });
    my $r = http_request(GET => '/raw/x');
    my $h = $r->{headers};
    ok t_cmp(join(',', grep { $h->{$_} } qw(x-secret keep-alive proxy-authenticate upgrade)),
             '', 'no hop-by-hop response header reaches the client');
    ok t_cmp(($h->{'x-public'} || [''])->[0], 'yes', 'end-to-end response header relayed');
    $be->stop;
}

# Header names with '_': CGI and WSGI backends map '_' and '-' to the same
# variable, so X_Forwarded_For could pose as X-Forwarded-For and
# Content_Length as Content-Length.  Dropped by default (one info line per
# request names them), forwarded as is under
# RProxyAllowUnderscoresInHeaders On.
{
    my $hdrs = "Host: h\r\nX_Forwarded_For: 1.2.3.4\r\nContent_Length: 0\r\nX-Ok: 1\r\n";
    my $mark = error_log_mark();
    my $lines = backend_saw('/raw/', $hdrs);
    ok t_cmp(lines_named($lines, 'X_Forwarded_For'), '', 'X_Forwarded_For dropped by default');
    ok t_cmp(lines_named($lines, 'Content_Length'), '', 'Content_Length dropped by default');
    ok t_cmp(lines_named($lines, 'X-Ok'), '1', 'the other headers still go');
    my $ok = wait_for(sub { error_log_since($mark)
                            =~ /rproxy:info.*not forwarded.*: X_Forwarded_For Content_Length\s*$/m }, 3);
    ok t_cmp($ok ? 1 : 0, 1, 'one info line names the dropped headers');
    $lines = backend_saw('/rawus/', $hdrs);
    ok t_cmp(lines_named($lines, 'X_Forwarded_For'), '1.2.3.4',
             'RProxyAllowUnderscoresInHeaders On: X_Forwarded_For forwarded');
    ok t_cmp(lines_named($lines, 'Content_Length'), '0',
             'RProxyAllowUnderscoresInHeaders On: Content_Length forwarded');
}
