# Trailer fields cross the proxy both ways; forbidden names never do.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 9;

# Response trailers reach an HTTP/1.1 client as real trailers.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        . "Trailer: X-Checksum, Content-Length\r\n\r\n5\r\nhello\r\n"
        . "0\r\nX-Checksum: abc123\r\nContent-Length: 99\r\n\r\n" });
    my $r = http_request(GET => '/raw/t');
    $be->stop;
    ok t_cmp($r->{body}, 'hello', 'chunked body');
    ok t_cmp($r->{complete} ? 1 : 0, 1, 'response complete');
    ok t_cmp($r->{trailers} // '', "X-Checksum: abc123\r\n",
             'trailer relayed, framing name dropped');
    ok t_cmp(($r->{headers}{trailer} || [''])->[0], 'X-Checksum',
             'Trailer header announces what may follow');
}

# Request trailers from a chunked client body reach the backend.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data) = raw_exchange("POST /raw/rt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        . "Transfer-Encoding: chunked\r\nTrailer: X-Sig\r\n\r\n"
        . "4\r\nbody\r\n0\r\nX-Sig: s1\r\nHost: evil\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status}, 200, 'chunked request with trailers answered');
    my ($body) = ($req // '') =~ /\r\n\r\n(.*)\z/s;
    ok t_cmp($body // '', "4\r\nbody\r\n0\r\nX-Sig: s1\r\n\r\n",
             'request trailer forwarded, Host trailer dropped');
    ok t_cmp(($req // '') =~ /^Trailer:/mi ? 1 : 0, 0, 'Trailer header itself is hop-by-hop');
}

# A request trailer cannot carry what the request's header section may not:
# RProxyAddForwarded replaces the client's X-Forwarded-*, and
# RProxyAllowUnderscoresInHeaders Off drops X_Forwarded_For; a backend that
# merges trailers into the headers (httpd's MergeTrailers On) would
# otherwise take the client's word for its address.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data) = raw_exchange("POST /raw/rt2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n"
        . "4\r\nbody\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 7.7.7.7\r\n"
        . "X-Forwarded-Proto: https\r\nX-Sig: s2\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status}, 200, 'chunked request with spoofing trailers answered');
    my ($body) = ($req // '') =~ /\r\n\r\n(.*)\z/s;
    ok t_cmp($body // '', "4\r\nbody\r\n0\r\nX-Sig: s2\r\n\r\n",
             'X-Forwarded-* and underscore trailers not forwarded');
}
