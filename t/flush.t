# When relayed bytes reach the client: RProxyFlushInterval 0 (at the end),
# -1 (every write), N ms; streamed responses (no Content-Length, or
# text/event-stream) are flushed after every write whatever the setting.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use RProxyTest;

plan tests => 6 + 2;

# The backend sends $first, waits 1.5 s, then the rest.  Returns how long
# after the request the client saw $first's last byte.
sub first_part_delay {
    my ($path, $head, $first, $rest) = @_;
    my $be = raw_backend({ reply => sub {
        my $s = shift;
        syswrite $s, $head . $first;
        sleep 1.5;
        syswrite $s, $rest;
    } });
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                  Timeout => 5) or die $!;
    binmode $s;
    my $t0 = time;
    print $s "GET $path HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    my ($data, $seen) = ('', undef);
    my $sel = IO::Select->new($s);
    while (time - $t0 < 6 && $sel->can_read(6)) {
        sysread($s, $data, 65536, length $data) or last;
        $seen //= time - $t0 if index($data, $first) >= 0;
    }
    $be->stop;
    return ($seen // 99, $data);
}

my $cl_head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n";

{
    my ($t) = first_part_delay('/flush-end/x', $cl_head, 'AAAAA', 'BBBBB');
    ok t_cmp($t > 1.3 ? 1 : 0, 1, sprintf('interval 0: first bytes held to the end (%.2fs)', $t));
}
{
    my ($t) = first_part_delay('/flush-each/x', $cl_head, 'AAAAA', 'BBBBB');
    ok t_cmp($t < 0.5 ? 1 : 0, 1, sprintf('interval -1: first bytes at once (%.2fs)', $t));
}
{
    my ($t) = first_part_delay('/flush-300/x', $cl_head, 'AAAAA', 'BBBBB');
    ok t_cmp($t > 0.2 && $t < 1.0 ? 1 : 0, 1, sprintf('interval 300 ms: first bytes after ~0.3s (%.2fs)', $t));
}
{
    my ($t) = first_part_delay('/flush-end/x',
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5\r\nAAAAA\r\n", "5\r\nBBBBB\r\n0\r\n\r\n");
    ok t_cmp($t < 0.5 ? 1 : 0, 1, sprintf('no Content-Length: flushed at once (%.2fs)', $t));
}
{
    my ($t, $data) = first_part_delay('/flush-end/x',
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 36\r\n\r\n",
        "data: event-one\n\n", "data: event-two!!\n\n");
    ok t_cmp($t < 0.1 ? 1 : 0, 1, sprintf('text/event-stream: event within 100 ms (%.3fs)', $t));
    ok t_cmp($data =~ /event-one\n\ndata: event-two!!\n\n\z/ ? 1 : 0, 1, 'whole stream relayed');
}
{
    # A media type with parameters is still an event stream.
    my ($t, $data) = first_part_delay('/flush-end/x',
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        . "Content-Length: 36\r\n\r\n",
        "data: event-one\n\n", "data: event-two!!\n\n");
    ok t_cmp($t < 0.1 ? 1 : 0, 1,
             sprintf('text/event-stream; charset=utf-8: event within 100 ms (%.3fs)', $t));
    ok t_cmp($data =~ /event-one\n\ndata: event-two!!\n\n\z/ ? 1 : 0, 1,
             'whole stream relayed (charset)');
}
