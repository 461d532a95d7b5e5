package RProxyLive;
# Helpers of the tests that put real WebSocket and server-sent events
# implementations on both ends of the proxy (t/websocket.t, t/sse.t,
# t/browser.t): the demo's backend (conf/demo/live_backend.py) started and
# stopped by PID, helper programs run with a deadline, and the Defines of
# t/conf/websocket.conf.
#
# Python is Debian's /usr/bin/python3 (RPROXY_TEST_PYTHON overrides it), not
# whatever python3 comes first in PATH: the WebSocket library is Debian's
# python3-websockets, which only that interpreter sees.
use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IO::Select;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Apache::Test ();
use RProxyTest ();

our @EXPORT = qw(python have_python have_websockets live_define
                 start_backend run_capture run_json);

our $TOP = Apache::Test::vars('t_dir');
our $TOP_DIR = Apache::Test::vars('top_dir');
our $PYTHON = $ENV{RPROXY_TEST_PYTHON} || '/usr/bin/python3';
our $BACKEND = "$TOP_DIR/conf/demo/live_backend.py";
# stderr of every helper program, for the curious after a failure.
our $STDERR_LOG = "$TOP/logs/live_stderr_log";

sub python { $PYTHON }

sub have_python { -x $PYTHON }

# Debian 12's python3-websockets (10.4); the tests use its "legacy" API.
sub have_websockets {
    return 0 unless have_python();
    my ($rc) = run_capture(20, $PYTHON, '-c',
                           'import websockets.legacy.client, websockets.legacy.server');
    return $rc == 0;
}

# A "Define NAME value" of t/conf/websocket.conf.in, once generated.
sub live_define { RProxyTest::conf_define(@_) }

# Waits up to $seconds for $pid to exit; true if it did (and was reaped).
sub reap {
    my ($pid, $seconds) = @_;
    my $deadline = time + $seconds;
    while (1) {
        my $r = waitpid $pid, POSIX::WNOHANG();
        return 1 if $r == $pid || $r == -1;
        return 0 if time >= $deadline;
        sleep 0.05;
    }
}

# Ends a child we started: TERM, then KILL if it lingers.
sub end_child {
    my $pid = shift;
    kill 'TERM', $pid;
    return if reap($pid, 5);
    kill 'KILL', $pid;
    reap($pid, 5);
}

# Runs @cmd with stdin from /dev/null and stderr appended to $STDERR_LOG;
# returns (exit status as in $?, stdout).  A program still running after
# $timeout seconds is ended, and the status tells it (-1).
sub run_capture {
    my ($timeout, @cmd) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>>', $STDERR_LOG;
        exec @cmd or POSIX::_exit(127);
    }
    close $w;
    my $out = '';
    my $sel = IO::Select->new($r);
    my $deadline = time + $timeout;
    my $eof = 0;
    while ((my $left = $deadline - time) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($r, $out, 65536, length $out);
        if (!$n) { $eof = 1; last }
    }
    close $r;
    if (!$eof) {
        end_child($pid);
        return (-1, $out);
    }
    unless (reap($pid, $timeout > 5 ? 5 : $timeout)) {
        end_child($pid);
        return (-1, $out);
    }
    return ($?, $out);
}

# Runs a helper that prints one JSON object; returns it as a hash (or one
# with 'error' saying what went wrong).
sub run_json {
    my ($timeout, @cmd) = @_;
    my ($rc, $out) = run_capture($timeout, @cmd);
    my $res = eval { JSON::PP->new->decode($out) };
    return $res if ref $res eq 'HASH';
    return { error => $rc == -1 ? "no answer within ${timeout}s"
                                : "exit status $rc", output => $out };
}

# Starts conf/demo/live_backend.py on 127.0.0.1 (ws_port and/or sse_port)
# and waits until it listens.  It exits by itself after 'lifetime' seconds
# (default 300) should this test die without stopping it.
sub start_backend {
    my %opt = @_;
    my $ready = "$TOP/logs/live_backend.$$.ready";
    my $log = "$TOP/logs/live_backend.$$.log";
    unlink $ready, $log;
    my @args = ('--ready-file', $ready, '--lifetime', $opt{lifetime} || 300);
    push @args, '--ws-port', $opt{ws_port} if $opt{ws_port};
    push @args, '--sse-port', $opt{sse_port} if $opt{sse_port};
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>>', $STDERR_LOG;
        exec $PYTHON, $BACKEND, @args or POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, log => $log, ready => $ready }, __PACKAGE__;
    my $deadline = time + 15;
    until (-s $ready) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid || time > $deadline) {
            delete $self->{pid} if kill(0, $pid) == 0;
            $self->stop;
            die "live_backend.py did not start; see $STDERR_LOG\n";
        }
        sleep 0.05;
    }
    return $self;
}

# The JSON lines the backend logged so far, as hashes.
sub events {
    my $self = shift;
    open my $fh, '<', $self->{log} or return ();
    my @ev;
    while (my $line = <$fh>) {
        my $ev = eval { JSON::PP->new->decode($line) } or next;
        push @ev, $ev;
    }
    return @ev;
}

# Waits (up to $seconds) for $n logged events that $match accepts.
sub wait_events {
    my ($self, $match, $n, $seconds) = @_;
    my $deadline = time + ($seconds || 5);
    my @found;
    while (1) {
        @found = grep { $match->($_) } $self->events;
        last if @found >= $n || time >= $deadline;
        sleep 0.05;
    }
    return @found;
}

sub stop {
    my $self = shift;
    if (my $pid = delete $self->{pid}) {
        end_child($pid);
    }
    unlink $self->{ready};
}

sub DESTROY { $_[0]->stop }

1;
