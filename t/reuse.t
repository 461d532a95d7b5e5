# Backend keep-alive: idle connections are reused, broken ones never are.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use IO::Socket::INET;

plan tests => 10 + 4 + 2 + 1 + 2;

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
    # The second step reads on the first connection: it finds it closed
    # (an empty request) and the third step serves a new connection.
    my @seen = map { m{^GET (\S+)} ? $1 : '(closed)' } $be->requests;
    $be->stop;
    ok t_cmp($r1->{body}, 'ok', 'first response');
    ok t_cmp($r2->{body}, 'clean', 'stray bytes were not served as the next response');
    ok t_cmp("@seen", '/one (closed) /two',
             'the connection with stray bytes was closed, not reused');
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

# 204 and 304 have no body whatever their head says: the response ends
# with its head and the backend connection serves the next request.  The
# raw backend serves the three steps on one connection, so all three
# requests recorded in order means the connection was reused each time (a
# 204 read until close would stall, then leave the next request a new
# connection the backend has not accepted yet).
SKIP: {
    skip_rest('prefork: the next request may reach another process', 4)
        if ($ENV{RPROXY_TEST_MPM} // '') eq 'prefork';
    my $be = raw_backend(
        { keep => 1, reply => "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n" },
        { keep => 1, reply => "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n" },
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter" });
    my $r1 = http_request(GET => '/raw/n204', timeout => 10);
    my $r2 = http_request(GET => '/raw/n304', timeout => 10);
    my $r3 = http_request(GET => '/raw/after', timeout => 10);
    my @seen = map { m{^GET (\S+)} ? $1 : '(none)' } $be->requests;
    $be->stop;
    ok t_cmp($r1->{status}, 204, '204 relayed');
    ok t_cmp($r2->{status}, 304, '304 relayed');
    ok t_cmp($r3->{body}, 'after', 'then a 200');
    ok t_cmp("@seen", '/n204 /n304 /after',
             'all three went over one backend connection, in order');
}

# A backend that stalls mid-body past RProxyTimeout: that connection is
# never reused.  Were it, the rest of the first body (which here looks like
# a response) would be read as the next request's answer: a desync.  The
# rest goes out when the next request reaches the old connection (bytes
# that arrive while it is idle are caught by the idle check anyway).
SKIP: {
    skip_rest('prefork: the next request may reach another process', 2)
        if ($ENV{RPROXY_TEST_MPM} // '') eq 'prefork';
    my $fake = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    my $piece = 'a' x 1000;
    my $be = raw_backend(
        { keep => 1, reply => "HTTP/1.1 200 OK\r\nContent-Length: "
                              . (length($piece) + length($fake)) . "\r\n\r\n$piece" },
        { reply => $fake },
        { reply => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh" });
    my $r1 = http_request(GET => '/raw/stalls', timeout => 10);
    my $r2 = http_request(GET => '/raw/next', timeout => 10);
    $be->stop;
    ok t_cmp($r1->{complete} ? 1 : 0, 0, 'the stalled response is seen cut');
    ok t_cmp($r2->{body}, 'fresh', 'the next request went on a new connection');
}

# A target name with several addresses: each is tried in turn until one
# answers.  The backend listens on IPv4 only; where "localhost" resolves to
# ::1 first (Debian's /etc/hosts), reaching it takes the fallback.
SKIP: {
    use Socket qw(getaddrinfo SOCK_STREAM AF_INET);
    my ($err, @addrs) = getaddrinfo('localhost', '80', { socktype => SOCK_STREAM });
    skip_rest('"localhost" resolves to an IPv4 address first here: no fallback '
              . 'to exercise', 1)
        if $err || @addrs < 2 || $addrs[0]{family} == AF_INET;
    my $r = http_request(GET => '/lh/x?say=fallback');
    ok t_cmp("$r->{status} $r->{body}", '200 fallback',
             'localhost: ::1 refused, 127.0.0.1 answered');
}

# The same with a name of our own whose first address refuses and whose
# second answers: /etc/hosts lines "127.0.0.6 rproxy-fallback.test" and
# "127.0.0.7 rproxy-fallback.test" (.ci/run adds them); the test listens on
# 127.0.0.7 only.
SKIP: {
    use Socket qw(getaddrinfo SOCK_STREAM AF_INET unpack_sockaddr_in inet_ntoa);
    my ($err, @addrs) = getaddrinfo('rproxy-fallback.test', '80',
                                    { socktype => SOCK_STREAM, family => AF_INET });
    my @ips = map { inet_ntoa((unpack_sockaddr_in($_->{addr}))[1]) } @addrs;
    skip_rest('"rproxy-fallback.test" does not resolve to 127.0.0.6 then 127.0.0.7 here '
              . '(add those two /etc/hosts lines, as .ci/run does)', 2)
        if $err || "@ips" ne '127.0.0.6 127.0.0.7';
    my $port = conf_define('RPROXY_RAW_PORT');
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.7', LocalPort => $port,
                                  Listen => 4, ReuseAddr => 1)
        or die "listen on 127.0.0.7:$port: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        alarm 20;
        my $c = $l->accept or POSIX::_exit(1);
        my $req = '';
        while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or last }
        my ($line) = $req =~ /^([^\r\n]*)/;
        syswrite $c, "HTTP/1.1 200 OK\r\nContent-Length: " . length($line)
                     . "\r\nConnection: close\r\n\r\n$line";
        close $c;
        POSIX::_exit(0);
    }
    close $l;
    my $r = http_request(GET => '/fb/x', timeout => 10);
    waitpid $pid, 0;
    ok t_cmp($r->{status}, 200, '127.0.0.6 refused, 127.0.0.7 answered');
    ok t_cmp($r->{body}, 'GET /x HTTP/1.1', 'with the request');
}
