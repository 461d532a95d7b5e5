# Backend keep-alive: idle connections are reused, broken ones never are.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use IO::Socket::INET;

plan tests => 9;

# 100 sequential requests open at most a handful of backend connections.
# They share one client connection, so that (whatever the MPM) one httpd
# process proxies them all and its rproxy-status tells the story.
{
    my $s = session();
    my $before = $s->counters;
    my $ok = 0;
    for my $i (1 .. 100) {
        my (undef, $body) = $s->get("/be/r?say=n$i");
        $ok++ if $body eq "n$i";
    }
    my $after = $s->counters;
    my $connects = $after->{backend_connects} - $before->{backend_connects};
    ok t_cmp($ok, 100, '100 sequential requests answered');
    ok t_cmp($connects <= 3 ? 1 : 0, 1, "opened $connects backend connections (<= 3)");
    ok t_cmp($after->{backend_reuses} - $before->{backend_reuses} >= 97 ? 1 : 0, 1,
             'the rest reused idle connections');
}

# A connection whose response was cut is not reused.
{
    http_request(GET => '/be/c?gen=100000&cut=1000');
    my $r = http_request(GET => '/be/r?say=fresh');
    ok t_cmp($r->{body}, 'fresh', 'request after a cut response works');
}

# Bytes the backend sends after the end of a response are never served to
# the next request: that connection is closed.
{
    my $be = raw_backend(
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
                   . "Content-Length: 6\r\n\r\nsmuggl", keep => 1 },
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean" },
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean" },
    );
    my $r1 = http_request(GET => '/raw/one');
    my $r2 = http_request(GET => '/raw/two');
    ok t_cmp($r1->{body}, 'ok', 'first response');
    ok t_cmp($r2->{body}, 'clean', 'stray bytes were not served as the next response');
    $be->stop;
}

# An idle connection the backend closed is noticed, and the request goes
# out on a fresh one.
{
    my $be = raw_backend(
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" },   # then closes
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb" },
    );
    my $r1 = http_request(GET => '/raw/a');
    my $r2 = http_request(GET => '/raw/b');
    ok t_cmp($r1->{body}, 'a', 'first response');
    ok t_cmp($r2->{body}, 'b', 'backend-closed idle connection was not used');
    $be->stop;
}

# A client that leaves before the end of its response: once the backend's
# response has been read to its end, the backend connection is as good as
# ever and serves the next request.  The client closes right after asking;
# the first chunk reaches its closed socket (which answers with a reset),
# and the last bytes, read 0.3 s later with the end of the body, fail to go
# out (a streamed response is flushed at every read).
SKIP: {
    skip_rest('prefork: the next request may reach another process', 1)
        if ($ENV{RPROXY_TEST_MPM} // '') eq 'prefork';
    my $be = raw_backend(
        { keep => 1, reply => sub {
            syswrite $_[0], "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
            select undef, undef, undef, 0.3;
            syswrite $_[0], "5\r\nlast.\r\n0\r\n\r\n";
        } },
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond" });
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                  Timeout => 5) or die "connect: $!";
    print $s "GET /raw/gone HTTP/1.1\r\nHost: h\r\n\r\n";
    close $s;
    sleep 1;
    my $r = http_request(GET => '/raw/next');
    $be->stop;
    ok t_cmp("$r->{status} " . ($r->{body} // ''), '200 second',
             'the backend connection served the next request after the client left');
}
