# Server-sent events through the proxy: every event reaches the client
# within 100 ms of the backend writing it, all along a stream (a few seconds
# of it here), chunked or close-delimited from the backend.  The backend is
# conf/demo/live_backend.py (plain asyncio, no library), which puts the time
# it wrote each event in the event; the client reads the raw bytes and notes
# when each event was complete.  Same machine, same clock.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use RProxyTest;
use RProxyLive;

plan tests => 20, need { 'Debian python3 (' . python() . ')' => have_python() };

my $LATE = 0.100;
my $be = start_backend(sse_port => live_define('RPROXY_SSE_PORT'));

# GETs $path and reads the event stream as it comes; returns the head, the
# events (each with its fields and the time it was complete), whether the
# stream ended cleanly, and what was left over.
sub read_stream {
    my ($path, $timeout) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                  Timeout => 5) or die "connect: $!";
    binmode $s;
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
           . "Connection: close\r\n\r\n";
    my ($raw, $head, $body, $chunked, $ended, @events) = ('', undef, '', 0, 0);
    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    while (!$ended && (my $left = $deadline - time) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($s, $raw, 65536, length $raw);
        my $now = time;
        if (!defined $head && (my $i = index($raw, "\r\n\r\n")) >= 0) {
            $head = substr($raw, 0, $i);
            $raw = substr($raw, $i + 4);
            $chunked = $head =~ /^Transfer-Encoding:\s*chunked\r?$/mi;
        }
        if (defined $head && $chunked) {
            while ($raw =~ /^([0-9a-fA-F]+)\r\n/) {
                my ($size, $hl) = (hex $1, length($1) + 2);
                last if length($raw) < $hl + $size + 2;
                if ($size == 0) {
                    $ended = substr($raw, $hl, 2) eq "\r\n";
                    $raw = substr($raw, $hl + 2);
                    last;
                }
                $body .= substr($raw, $hl, $size);
                $raw = substr($raw, $hl + $size + 2);
            }
        }
        elsif (defined $head) {
            $body .= $raw;
            $raw = '';
            $ended = 1 if !$n;        # close-delimited: EOF ends it
        }
        while ((my $i = index($body, "\n\n")) >= 0) {
            my %ev = (at => $now);
            for (split /\n/, substr($body, 0, $i)) {
                $ev{$1} = $2 if /^(\w+): ?(.*)$/;
            }
            $ev{data} = eval { JSON::PP->new->decode($ev{data} // '') } || {};
            push @events, \%ev;
            $body = substr($body, $i + 2);
        }
        last unless $n;
    }
    close $s;
    return { head => $head // '', events => \@events, ended => $ended,
             left => $raw . $body };
}

# What a failed check saw, shown even without -verbose.
sub explain { print STDERR map { "# $_\n" } @_ }

# Reads the stream and checks it.  Timing is end to end across three
# processes (backend, httpd, this test), so a machine busy with other work
# can delay any of them: a stream that misses only the deadline is read
# once more, and the second reading is judged (a proxy that holds events
# back misses it every time).
sub check_stream {
    my ($what, $n, $interval, $framing) = @_;
    my ($r, @ev, @late, $max, $worst);
    for my $attempt (1, 2) {
        $r = read_stream("/events/stream?n=$n&interval=$interval&framing=$framing",
                         $n * $interval + 10);
        @ev = @{ $r->{events} };
        @late = map { $_->{at} - ($_->{data}{t} // 0) } @ev;
        $worst = 0;
        $late[$_] > $late[$worst] and $worst = $_ for 0 .. $#late;
        $max = @late ? $late[$worst] : 99;
        last if @ev != $n || $max < $LATE;
        explain(sprintf "$what: event %d came %.1f ms after it was sent%s", $worst + 1,
                $max * 1000, $attempt == 1 ? '; reading the stream once more' : '');
    }
    ok t_cmp($r->{head} =~ m{^HTTP/1\.1 200 } && $r->{head} =~ m{^Content-Type: text/event-stream\r?$}mi
             ? 1 : 0, 1, "$what: 200 text/event-stream");
    ok t_cmp(join(',', map { $_->{id} // '?' } @ev), join(',', 1 .. $n),
             "$what: all $n events, in order");
    t_debug(sprintf "$what: lateness %s", join ' ', map { sprintf '%.1fms', $_ * 1000 } @late)
        if @late <= 20;
    ok t_cmp($max < $LATE && $max > -0.01 ? 1 : 0, 1,
             sprintf("$what: each within %d ms of being sent (worst %.1f ms, event %d)",
                     $LATE * 1000, $max * 1000, $worst + 1));
    ok t_cmp($r->{ended} && $r->{left} eq '' ? 1 : 0, 1, "$what: stream ended cleanly");
    return @ev;
}

# Ten events 300 ms apart, as the backend frames them with chunks.
{
    my @ev = check_stream('chunked, 10 x 300 ms', 10, 0.3, 'chunked');
    my @gaps = map { $ev[$_]{at} - $ev[$_ - 1]{at} } 1 .. $#ev;
    my ($min) = sort { $a <=> $b } @gaps;
    ok t_cmp(defined $min && $min > 0.2 ? 1 : 0, 1,
             sprintf('chunked: events arrive one by one, not bunched (smallest gap %.0f ms)',
                     ($min // 0) * 1000));
}

# The same, the backend's response delimited by its closing the connection.
{
    my @ev = check_stream('close-delimited, 10 x 300 ms', 10, 0.3, 'close');
    my @gaps = map { $ev[$_]{at} - $ev[$_ - 1]{at} } 1 .. $#ev;
    my ($min) = sort { $a <=> $b } @gaps;
    ok t_cmp(defined $min && $min > 0.2 ? 1 : 0, 1,
             sprintf('close-delimited: events arrive one by one (smallest gap %.0f ms)',
                     ($min // 0) * 1000));
}

# Many small events close together: none waits for a buffer to fill.
check_stream('chunked, 100 x 20 ms', 100, 0.02, 'chunked');

# Two streams at once, interleaved in time, each as timely.
{
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        read_stream('/events/stream?n=10&interval=0.25', 10);
        POSIX::_exit(0);
    }
    check_stream('alongside another stream, 10 x 250 ms', 10, 0.25, 'chunked');
    RProxyLive::reap($pid, 10) or RProxyLive::end_child($pid);
}

{
    my @done = $be->wait_events(sub { $_[0]{ev} eq 'sse-done' }, 5, 5);
    ok t_cmp(@done >= 5 ? 1 : 0, 1, 'the backend finished every stream');
    my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 10);
    ok t_cmp($ok ? 1 : 0, 1, 'pool outstanding: 0 afterwards');
}

$be->stop;
