# Protocol upgrades: a tunnel only after a matching 101, bytes both ways,
# half-closes passed on, idle timeout, and the pool's books balanced.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use Socket qw(SHUT_WR);
use Time::HiRes qw(time);
use RProxyTest;

plan tests => 16;

my $switch = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           . "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
my $ws_request = "GET /raw/ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
               . "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

sub client_connect {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                  Timeout => 5) or die $!;
    binmode $s;
    return $s;
}

# Reads until $pattern matches or EOF/timeout; returns (data, eof?).
sub read_until {
    my ($s, $pattern, $timeout) = @_;
    my ($data, $eof) = ('', 0);
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout || 5);
    my $done = ref $pattern eq 'CODE' ? $pattern : sub { $_[0] =~ $pattern };
    while (!$done->($data) && (my $left = $deadline - time) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($s, $data, 65536, length $data);
        if (!$n) { $eof = 1; last }
    }
    return ($data, $eof);
}

sub read_to_eof { my ($d, $eof) = read_until($_[0], qr/(?!)/, $_[1]); return ($d, $eof) }

# Backend side: echo what arrives until the client half-closes, then say
# "bye" and close.
sub echo_then_bye {
    my $sock = shift;
    syswrite $sock, $switch;
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(5)) {
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        syswrite $sock, $buf;
    }
    syswrite $sock, "bye";
}

{
    my $before = counters();
    my $be = raw_backend({ reply => \&echo_then_bye });
    my $s = client_connect();
    print $s $ws_request;
    my ($head) = read_until($s, qr/\r\n\r\n/);
    ok t_cmp(($head =~ /^(HTTP\/1\.1 \d+)/)[0], 'HTTP/1.1 101', '101 relayed');
    ok t_cmp($head =~ /^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r$/m ? 1 : 0, 1,
             '101 keeps its end-to-end fields');
    ok t_cmp($head =~ /^Upgrade: websocket\r$/mi && $head =~ /^Connection: Upgrade\r$/mi ? 1 : 0, 1,
             '101 carries Connection: Upgrade and Upgrade: websocket');
    my $payload = join '', map { chr($_ % 256) } 0 .. 200_000;
    # Write and read at once, as a WebSocket client does.
    my ($off, $echo) = (0, '');
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    while (length($echo) < length($payload) && time < $deadline) {
        if ($off < length $payload) {
            $off += syswrite($s, $payload, 16384, $off) // 0;
        }
        sysread($s, $echo, 65536, length $echo) if $sel->can_read(0.05);
    }
    ok t_cmp($echo eq $payload ? 1 : 0, 1, '200001 bytes up and back, byte-exact');
    shutdown $s, SHUT_WR;
    my ($tail, $eof) = read_to_eof($s, 5);
    ok t_cmp($tail, 'bye', "client's half-close reached the backend, which could still answer");
    ok t_cmp($eof, 1, 'then the tunnel closed');
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp(($req // '') =~ /^Connection: Upgrade\r$/m && $req =~ /^Upgrade: websocket\r$/m ? 1 : 0, 1,
             'backend was offered the upgrade');
    my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 5);
    ok t_cmp($ok ? 1 : 0, 1, 'both tunnel buffers went back to the pool');
}

# The backend half-closes first: the client sees EOF and may still send.
{
    my $got = "$RProxyTest::TOP/logs/upgrade-late.$$";
    my $be = raw_backend({ reply => sub {
        my $sock = shift;
        syswrite $sock, $switch . "server-done";
        shutdown $sock, SHUT_WR;
        my $all = '';
        my $sel = IO::Select->new($sock);
        while ($sel->can_read(5)) { sysread($sock, $all, 4096, length $all) or last }
        open my $fh, '>', $got; print $fh $all; close $fh;
    } });
    my $s = client_connect();
    print $s $ws_request;
    my ($data, $eof) = read_to_eof($s, 5);
    ok t_cmp($data =~ /\r\n\r\nserver-done\z/ && $eof ? 1 : 0, 1,
             "backend's half-close reached the client");
    syswrite $s, 'late data';
    shutdown $s, SHUT_WR;
    wait_for(sub { -s $got }, 5);
    $be->stop;
    open my $fh, '<', $got; my $late = <$fh> // ''; unlink $got;
    ok t_cmp($late, 'late data', 'client could still send after it');
}

# The backend refuses the upgrade: a plain response, relayed as such.
{
    my $be = raw_backend({ reply => "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope" });
    my ($data) = raw_exchange($ws_request =~ s/\r\n\r\n$/\r\nConnection: close\r\n\r\n/r);
    $be->stop;
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp("$r->{status} $r->{body}", '400 nope', 'refused upgrade relayed as a plain response');
}

# A 101 to another protocol than the one asked for: 502.
{
    my $be = raw_backend({ reply => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                                  . "Connection: Upgrade\r\n\r\n" });
    my ($data) = raw_exchange($ws_request);
    $be->stop;
    ok t_cmp(($data =~ /^HTTP\/1\.1 (\d+)/)[0], 502, 'mismatched 101 answers 502');
}

# Protocols not allowed, and h2c always, are not offered to the backend.
for my $proto (qw(foo h2c)) {
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my ($data) = raw_exchange("GET /raw/x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n"
                              . "Upgrade: $proto\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp(($req // '') =~ /^(Upgrade|Connection):/mi ? 1 : 0, 0,
             "Upgrade: $proto is not forwarded");
}

# An idle tunnel ends after RProxyTimeout (2 s here).
{
    my $be = raw_backend({ reply => sub { syswrite $_[0], $switch; sleep 8 } });
    my $s = client_connect();
    print $s $ws_request;
    my $t0 = time;
    my ($data, $eof) = read_to_eof($s, 8);
    my $took = time - $t0;
    $be->stop;
    ok t_cmp($eof && $took < 6 ? 1 : 0, 1, sprintf('idle tunnel closed after %.1fs', $took));
    my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 5);
    ok t_cmp($ok ? 1 : 0, 1, 'buffers back after the idle timeout');
}
