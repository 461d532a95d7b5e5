# Clients that stall cannot hold the proxy: a client that stops reading,
# or stops sending its body, is cut off after Timeout (2 s on this virtual
# host), its buffer goes back and the backend connection is closed.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use RProxyTest;

plan tests => 6;

my $port = Apache::Test::vars('rproxy_short_port');
my $prefork = ($ENV{RPROXY_TEST_MPM} || '') eq 'prefork';

sub short_counters {
    my ($data) = raw_exchange("GET /rproxy-status HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                              port => $port);
    my $r = parse_response($data) || { body => '' };
    return { $r->{body} =~ /^(\w+): (\d+)$/mg };
}

# A client that never reads a 50 MB response.
{
    my $mark = error_log_mark();
    my $before = short_counters();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5) or die $!;
    setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 4096);
    print $s "GET /be/stall?gen=50000000 HTTP/1.1\r\nHost: h\r\n\r\n";
    my $t0 = time;
    my $cut = wait_for(sub { error_log_since($mark) =~ /client went away/ }, 15);
    my $took = time - $t0;
    ok t_cmp($cut ? 1 : 0, 1, sprintf('a client that never reads is cut off (%.1fs)', $took));
    my $after = short_counters();
    ok t_cmp($prefork || $after->{client_aborts} > $before->{client_aborts} ? 1 : 0, 1,
             'counted as a client abort');
    ok t_cmp(wait_for(sub { short_counters()->{outstanding} == 0 }, 5) ? 1 : 0, 1,
             'its buffer went back');
    close $s;
}

# A client that stops sending its request body.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5) or die $!;
    print $s "POST /raw/up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" . ('x' x 10);
    my ($data, $eof) = ('', 0);
    my $sel = IO::Select->new($s);
    while (time - $t0 < 15 && $sel->can_read(15 - (time - $t0))) {
        my $n = sysread($s, $data, 4096, length $data);
        if (!$n) { $eof = 1; last }
    }
    my $took = time - $t0;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status} == 408 || ($r->{status} == 0 && $eof) ? 1 : 0, 1,
             "stalled body answered $r->{status}, connection closed");
    ok t_cmp($eof && $took < 10 ? 1 : 0, 1, sprintf('client connection closed after %.1fs', $took));
    my $req;
    wait_for(sub { ($req) = $be->requests; defined $req }, 5);
    $be->stop;
    # The backend saw the head and the 10 bytes, then its connection closed
    # (the raw backend stops reading at EOF) rather than hanging on.
    ok t_cmp(defined $req && $req =~ /\r\n\r\nx{10}\z/ ? 1 : 0, 1,
             'the backend connection was closed after the partial body');
}
