#!/usr/bin/perl
# count_backend.pl PORT NAME LOG [DELAY_MS] - a group member the tests own,
# so that they can kill it and start it again (t/failover.t).
#
# HTTP/1.1 with keep-alive, one forked process per connection, all in a
# process group of their own: `kill KILL => -PID` ends the listener and
# every connection it serves at once, as a crashed server would.  Each
# request, once its head and Content-Length body are read, appends one line
# to LOG: "NAME METHOD X-ID BODYLENGTH" (X-ID: the request's X-Id header,
# or "-"), so a test counts which member got what and which POST bodies
# arrived twice.  Then, by the request's query: die=1 closes the connection
# without answering; sleep=MS (or DELAY_MS) waits first; status=NNN answers
# that status.  The answer's body and its X-Backend header are NAME.
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

my ($port, $name, $log, $delay) = @ARGV;
die "usage: $0 PORT NAME LOG [DELAY_MS]\n" unless defined $log;
$delay ||= 0;
setpgrp(0, 0);
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                              Listen => 128, ReuseAddr => 1)
    or die "count_backend: listen on $port: $!\n";
$SIG{CHLD} = 'IGNORE';
open my $lf, '>>', $log or die "count_backend: $log: $!\n";
# A test that dies leaves no backend behind for long.
alarm 600;

while (1) {
    my $c = $l->accept or next;
    my $pid = fork;
    if (!defined $pid) {
        close $c;
        next;
    }
    if ($pid) {
        close $c;
        next;
    }
    close $l;
    serve($c);
    exit 0;
}

sub fill {
    my ($c, $buf, $want) = @_;
    while (length($$buf) < $want) {
        my $n = sysread($c, $$buf, 65536, length $$buf);
        return 0 unless $n;
    }
    return 1;
}

sub serve {
    my ($c) = @_;
    binmode $c;
    my $buf = '';
    while (1) {
        while ($buf !~ /\r\n\r\n/) {
            my $n = sysread($c, $buf, 65536, length $buf);
            return unless $n;
        }
        my $end = index($buf, "\r\n\r\n");
        my $head = substr($buf, 0, $end);
        $buf = substr($buf, $end + 4);
        my ($method, $target) = $head =~ /^(\S+) (\S+)/ or return;
        my %h;
        for (split /\r\n/, $head) {
            $h{lc $1} = $2 if /^([^:]+):\s*(.*?)\s*$/;
        }
        my $cl = $h{'content-length'} || 0;
        return unless fill($c, \$buf, $cl);
        my $body = substr($buf, 0, $cl);
        $buf = substr($buf, $cl);
        my %q = $target =~ /[?&]([^=&]+)=([^&]*)/g;
        my $id = $h{'x-id'} // '-';
        syswrite $lf, "$name $method $id " . length($body) . "\n";
        return if $q{die};
        my $ms = $q{sleep} // $delay;
        sleep($ms / 1000) if $ms;
        my $status = $q{status} || 200;
        my $out = "$name\n";
        syswrite $c, "HTTP/1.1 $status Test\r\nContent-Length: "
            . length($out) . "\r\nX-Backend: $name\r\n\r\n$out" or return;
        return if lc($h{connection} // '') eq 'close';
    }
}
