package RProxyTest;
# Shared helpers of the mod_rproxy test suite: raw HTTP over sockets (so the
# tests see the bytes a library would hide), a scripted raw backend, the
# rproxy-status counters and the error log.
use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use Apache::Test ();
use Apache::TestRequest ();

our @EXPORT = qw(proxy_port conf_define pattern raw_exchange parse_response
                 http_request counters error_log_mark error_log_since
                 raw_backend wait_for session skip_rest);

our $TOP = Apache::Test::vars('t_dir');

sub proxy_port { Apache::Test::vars('port') }

# Leaves the enclosing SKIP: { ... } block, its $n tests counted as
# skipped.  (Apache::Test's own skip() is Test.pm's: it counts one test,
# whatever number follows the reason, and carries on with the block.)
sub skip_rest {
    my ($why, $n) = @_;
    Test::skip($why) for 1 .. $n;
    no warnings 'exiting';
    last SKIP;
}

# A "Define NAME value" from the generated test-server config files.
sub conf_define {
    my $name = shift;
    for my $conf (glob "$TOP/conf/*.conf") {
        open my $fh, '<', $conf or next;
        while (<$fh>) {
            return $1 if /^\s*Define\s+\Q$name\E\s+(\S+)/;
        }
    }
    die "no Define $name in $TOP/conf/*.conf";
}

# The test backend's body pattern: byte i is i % 251.
sub pattern {
    my ($n, $from) = @_;
    $from ||= 0;
    my $block = join '', map { chr($_ % 251) } 0 .. 251 * 64 - 1;
    my $out = '';
    my $start = $from % 251;
    while (length($out) < $n) {
        $out .= substr($block, $start);
        $start = 0;
    }
    return substr($out, 0, $n);
}

# Sends $bytes to $port and reads until EOF, reset or timeout.
# Returns (data, how) with how one of 'eof', 'reset', 'timeout'.
sub raw_exchange {
    my ($bytes, %opt) = @_;
    my $port = $opt{port} || proxy_port();
    my $timeout = $opt{timeout} || 20;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'tcp', Timeout => 5)
        or die "connect 127.0.0.1:$port: $!";
    binmode $sock;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, 65536, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
    if ($opt{read_max}) {           # read this much, then hang up
        my $got = '';
        my $sel = IO::Select->new($sock);
        while (length($got) < $opt{read_max} && $sel->can_read($timeout)) {
            my $n = sysread($sock, $got, 65536, length $got);
            last unless $n;
        }
        close $sock;
        return ($got, 'closed');
    }
    my ($data, $how) = ('', 'timeout');
    my $sel = IO::Select->new($sock);
    my $deadline = time + $timeout;
    while ((my $left = $deadline - time) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($sock, $data, 65536, length $data);
        if (!defined $n) { $how = 'reset'; last }
        if ($n == 0)     { $how = 'eof';   last }
    }
    close $sock;
    return ($data, $how);
}

# Splits one HTTP/1.1 response: (status, {lc name => [values]}, body, rest).
# Chunked bodies are decoded; 'complete' tells whether framing ended cleanly.
sub parse_response {
    my ($data, %opt) = @_;
    my @interim;
    # Interim (1xx, not 101) responses come first, as a client skips them.
    while ($data =~ s{^(HTTP/1\.\d (1(?!01)\d\d)[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n)}{}) {
        push @interim, $2;
    }
    my $end = index($data, "\r\n\r\n");
    return unless $end >= 0;
    my $head = substr($data, 0, $end);
    my $rest = substr($data, $end + 4);
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/1\.\d (\d{3})} or return;
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $h{lc $k} }, $v;
    }
    my %r = (status => $status, status_line => $status_line,
             headers => \%h, complete => 0, interim => \@interim);
    if ($opt{head} || $status == 204 || $status == 304 || $status < 200) {
        @r{qw(body rest complete)} = ('', $rest, 1);
    }
    elsif (($h{'transfer-encoding'}[0] || '') =~ /chunked/i) {
        my $body = '';
        while ($rest =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $size = hex $1;
            if ($size == 0) {
                $r{complete} = 1 if $rest =~ s/^((?:[^\r\n]+\r\n)*)\r\n//;
                $r{trailers} = $1;
                last;
            }
            last if length($rest) < $size + 2;
            $body .= substr($rest, 0, $size);
            $rest = substr($rest, $size + 2);
        }
        @r{qw(body rest)} = ($body, $rest);
    }
    elsif (defined $h{'content-length'}) {
        my $cl = $h{'content-length'}[0];
        $r{body} = substr($rest, 0, $cl);
        $r{rest} = length($rest) > $cl ? substr($rest, $cl) : '';
        $r{complete} = length($r{body}) == $cl;
    }
    else {
        @r{qw(body rest complete)} = ($rest, '', 1);
    }
    return \%r;
}

# One request over a fresh connection (Connection: close), parsed.
sub http_request {
    my ($method, $path, %opt) = @_;
    my $headers = $opt{headers} || [];
    my $body = $opt{body};
    my $req = "$method $path HTTP/1.1\r\nHost: " . ($opt{host} || "127.0.0.1")
            . "\r\nConnection: close\r\n";
    for (my $i = 0; $i < @$headers; $i += 2) {
        $req .= "$headers->[$i]: $headers->[$i + 1]\r\n";
    }
    if (defined $body && !$opt{chunked}) {
        $req .= "Content-Length: " . length($body) . "\r\n";
    }
    $req .= "Transfer-Encoding: chunked\r\n" if $opt{chunked};
    $req .= "\r\n";
    if (defined $body && $opt{chunked}) {
        my $piece = $opt{chunked};
        for (my $o = 0; $o < length $body; $o += $piece) {
            my $c = substr($body, $o, $piece);
            $req .= sprintf("%x\r\n", length $c) . $c . "\r\n";
        }
        $req .= "0\r\n\r\n";
    }
    elsif (defined $body) {
        $req .= $body;
    }
    my ($data, $how) = raw_exchange($req, %opt);
    my $r = parse_response($data, head => $method eq 'HEAD')
        || { status => 0, headers => {}, body => '', complete => 0 };
    $r->{how} = $how;
    $r->{raw} = $data;
    return $r;
}

# This process's rproxy-status counters, as a hash.
sub counters {
    my $r = http_request(GET => '/rproxy-status');
    my %c = $r->{body} =~ /^(\w+): (\d+)$/mg;
    return \%c;
}

sub wait_for {
    my ($cond, $seconds) = @_;
    my $deadline = time + ($seconds || 5);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

sub error_log_mark { -s "$TOP/logs/error_log" || 0 }

sub error_log_since {
    my $mark = shift;
    open my $fh, '<', "$TOP/logs/error_log" or return '';
    seek $fh, $mark, 0;
    local $/;
    return <$fh> // '';
}

# A scripted backend on RPROXY_RAW_PORT, in a forked child.  Each step of
# @$script serves one request: it reads the request (head, then a
# Content-Length or chunked body), records its exact bytes, then writes
# $step->{reply} (bytes, or a code ref given the socket) and closes the
# connection unless $step->{keep}.  A step with {no_read => 1} answers
# without reading.  ->requests returns the recorded requests; ->stop ends it.
sub raw_backend {
    my (@script) = @_;
    my $port = conf_define('RPROXY_RAW_PORT');
    my $record = "$TOP/logs/raw_backend.$$." . int(rand(1e9));
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Listen => 16,
                                       ReuseAddr => 1, Proto => 'tcp')
        or die "raw backend: listen on $port: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 60;
        my $conn;
        open my $rec, '>', $record or POSIX::_exit(1);
        binmode $rec;
        $rec->autoflush(1);
        for my $step (@script) {
            $conn ||= $listen->accept or last;
            binmode $conn;
            my $req = $step->{no_read} ? '' : read_request($conn);
            print $rec pack('N', length $req), $req;
            sleep $step->{delay} if $step->{delay};
            if (ref $step->{reply} eq 'CODE') {
                $step->{reply}->($conn);
            }
            elsif (defined $step->{reply}) {
                syswrite $conn, $step->{reply};
            }
            unless ($step->{keep}) {
                close $conn;
                undef $conn;
            }
        }
        sleep 0.5;
        POSIX::_exit(0);
    }
    close $listen;
    return bless { pid => $pid, record => $record }, 'RProxyTest::Raw';
}

sub read_request {
    my $sock = shift;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    my $more = sub {
        return 0 unless $sel->can_read(10);
        my $n = sysread($sock, $buf, 65536, length $buf);
        return $n && $n > 0;
    };
    while (index($buf, "\r\n\r\n") < 0) { $more->() or return $buf }
    my $end = index($buf, "\r\n\r\n") + 4;
    my $head = substr($buf, 0, $end);
    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
        my $need = $end + $1;
        while (length($buf) < $need) { $more->() or last }
    }
    elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while ($buf !~ /\r\n0\r\n(?:[^\r\n]+\r\n)*\r\n\z/
               && substr($buf, $end) !~ /^0\r\n(?:[^\r\n]+\r\n)*\r\n\z/) {
            $more->() or last;
        }
    }
    return $buf;
}

# A keep-alive client connection: every request on it reaches the same
# httpd process, so rproxy-status read through it (->counters) describes the
# process that proxied the other requests, whatever the MPM.
sub session {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                     Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    binmode $sock;
    return bless { sock => $sock, buf => '' }, 'RProxyTest::Session';
}

package RProxyTest::Session;

use IO::Select;

sub _more {
    my $self = shift;
    return 0 unless IO::Select->new($self->{sock})->can_read(20);
    my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
    return $n && $n > 0;
}

# GET $path; returns (status, body) of the one response, read by its framing.
sub get {
    my ($self, $path) = @_;
    syswrite $self->{sock}, "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    while (index($self->{buf}, "\r\n\r\n") < 0) { $self->_more or return (0, '') }
    my $end = index($self->{buf}, "\r\n\r\n");
    my $head = substr($self->{buf}, 0, $end);
    $self->{buf} = substr($self->{buf}, $end + 4);
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my $body = '';
    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
        my $cl = $1;
        while (length($self->{buf}) < $cl) { $self->_more or last }
        $body = substr($self->{buf}, 0, $cl, '');
    }
    elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        for (;;) {
            # (The captures of a match in a loop's condition do not outlive
            # the loop: match again here.)
            while ($self->{buf} !~ /\A[0-9a-fA-F]+[^\r\n]*\r\n/) { $self->_more or return ($status, $body) }
            my ($line, $hex) = $self->{buf} =~ /\A(([0-9a-fA-F]+)[^\r\n]*\r\n)/;
            my $size = hex $hex;
            my $hl = length $line;
            if ($size == 0) {
                while (index($self->{buf}, "\r\n\r\n", $hl - 2) < 0) { $self->_more or last }
                my $t = index($self->{buf}, "\r\n\r\n", $hl - 2);
                substr($self->{buf}, 0, $t + 4, '');
                last;
            }
            while (length($self->{buf}) < $hl + $size + 2) { $self->_more or return ($status, $body) }
            $body .= substr($self->{buf}, $hl, $size);
            substr($self->{buf}, 0, $hl + $size + 2, '');
        }
    }
    return ($status, $body);
}

sub counters {
    my $self = shift;
    my (undef, $body) = $self->get('/rproxy-status');
    return { $body =~ /^(\w+): (\d+)$/mg };
}

package RProxyTest::Raw;

sub requests {
    my $self = shift;
    open my $fh, '<', $self->{record} or return ();
    binmode $fh;
    local $/;
    my $all = <$fh> // '';
    my @out;
    while (length $all >= 4) {
        my $len = unpack 'N', substr($all, 0, 4);
        push @out, substr($all, 4, $len);
        $all = substr($all, 4 + $len);
    }
    return @out;
}

sub stop {
    my $self = shift;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
    unlink $self->{record};
}

sub DESTROY { $_[0]->stop }

1;
