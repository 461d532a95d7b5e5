# Regressions for review findings: request framing, interim leftovers,
# TE with Connection: TE, ";" in dot-segments, small-chunk merging.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use RProxyTest;

plan tests => 9;

my $ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

# A 100 and a 102 in one write: the body must not overwrite the 102, and
# nothing in the client body may be taken for the backend's response.
{
    my $be = raw_backend({ no_read => 1, reply => sub {
        my $s = shift;
        my $buf = '';
        sysread($s, $buf, 4096, length $buf) while $buf !~ /\r\n\r\n/;
        syswrite $s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n";
        my ($cl) = $buf =~ /Content-Length: (\d+)/i;
        my $body = substr($buf, index($buf, "\r\n\r\n") + 4);
        my $sel = IO::Select->new($s);
        while (length($body) < $cl && $sel->can_read(5)) { sysread($s, $body, 4096, length $body) or last }
        syswrite $s, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nbackend";
    } });
    my $body = ('A' x 25) . "HTTP/1.1 418 X\r\n\r\npwned!!!!" . ('Z' x 45);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(), Timeout => 5);
    print $s "POST /raw/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $got = '';
    while ($got !~ /HTTP\/1\.1 100/ && $sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    print $s $body;
    while ($sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    $be->stop;
    my $r = parse_response($got) || { status => 0, body => '' };
    ok t_cmp("$r->{status} $r->{body}", '200 backend', "the backend's response, not the client's bytes");
    ok t_cmp(join(',', @{ $r->{interim} || [] }), '100,102', '100 and 102 both relayed');
}

# An input filter changes the body's length: it goes chunked, whole.
SKIP: {
    skip_rest('mod_deflate not loaded', 2) unless Apache::Test::have_module('deflate');
    my $plain = ('x' x 1000) . "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    my $gz = `printf '%s' '$plain' | gzip -c`;
    my $be = raw_backend({ reply => $ok }, { reply => $ok });
    my ($data) = raw_exchange("POST /inflate/up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        . "Content-Encoding: gzip\r\nContent-Length: " . length($gz) . "\r\n\r\n$gz");
    my @reqs = $be->requests;
    $be->stop;
    my $req = $reqs[0] // '';
    ok t_cmp($req =~ /^Transfer-Encoding: chunked\r$/m && $req !~ /^Content-Length:/mi ? 1 : 0, 1,
             'filtered body sent chunked, not with the client Content-Length');
    my ($chunks) = $req =~ /\r\n\r\n(.*)\z/s;
    my $dechunked = '';
    $dechunked .= $2 while ($chunks // '') =~ /\G([0-9a-f]+)\r\n((??{ ".{" . hex($1) . "}" }))\r\n/gcs;
    ok t_cmp($dechunked eq $plain ? 1 : 0, 1, 'the inflated body arrived whole, as one request');
}

# TE: trailers with the Connection: TE that RFC 9110 asks for.
{
    my $be = raw_backend({ reply => $ok });
    raw_exchange("GET /raw/te HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp(($req // '') =~ /^TE: trailers\r$/m ? 1 : 0, 1, 'TE: trailers forwarded despite Connection: TE');
}

# "..;" is ".." to Tomcat and Jetty.
for my $path ('/be/%2e%2e;/x', '/be/a/..;jsessionid=1/x') {
    my $r = http_request(GET => $path);
    ok t_cmp($r->{status}, 400, "$path refused");
}

# A Content-Type on a 103 does not leak into the final response.
{
    my $be = raw_backend({ reply => "HTTP/1.1 103 Early Hints\r\nContent-Type: text/x-leaked\r\n\r\n"
                                  . "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my $r = http_request(GET => '/raw/ct');
    $be->stop;
    ok t_cmp(($r->{headers}{'content-type'} || ['none'])->[0] =~ /leaked/ ? 1 : 0, 0,
             'no Content-Type from the 1xx');
}

# Many tiny chunks in one backend write go out as few client chunks.
{
    my $body = join '', map { "1\r\n" . chr(65 + $_ % 26) . "\r\n" } 0 .. 2999;
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  . $body . "0\r\n\r\n" });
    my $r = http_request(GET => '/raw/tiny');
    $be->stop;
    my $chunks = () = $r->{raw} =~ /\r\n[0-9a-f]+\r\n/g;
    ok t_cmp(length($r->{body}) == 3000 && $chunks < 100 ? 1 : 0, 1,
             "3000 one-byte chunks relayed as $chunks chunks");
}
