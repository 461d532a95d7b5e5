package RProxyOwn;
# A test's own httpd (the test server's MPM and modules, several children)
# and small forked backends it controls, for tests that need a server
# configured for them alone: t/checks.t, t/resolve.t, t/group_shared.t.
#
#   my $h = RProxyOwn->new(conf => $text);   # writes httpd.conf, starts it
#   my $h = RProxyOwn->new(conf => $text, mpm => 'prefork'); # that MPM
#   $h->get('/path');                        # raw response, Connection: close
#   $h->post('/path', $form);                # the same, a form POST
#   $h->log_since($mark); $h->log_mark;      # its error log
#   $h->child_pids; $h->graceful;            # its children; a restart
#   my $be = RProxyOwn::backend(addr => '127.0.0.1', port => $p,
#                               dir => $dir); # see backend() below
use strict;
use warnings FATAL => 'all';

use Apache::Test ();
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep time);

# A free port on 127.0.0.1 (free now: the caller binds it soon after).
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die $!;
    return $s->sockport;
}

sub wait_until {
    my ($cond, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

# The LoadModule line of the test server's MPM, for a configtest.
sub mpm_line {
    my $t = Apache::Test::vars('t_dir');
    open my $fh, '<', "$t/conf/httpd.conf" or die $!;
    for (<$fh>) {
        return "LoadModule $1 \"$2\"" if /^\s*LoadModule\s+(mpm_\w+)\s+"?([^"\s]+)/;
    }
    die "no MPM in $t/conf/httpd.conf";
}

# new(conf => TEXT): TEXT goes after the server's own lines (modules, the
# listener on $h->{port}, logs, 3-4 children), then the server starts.
# Options: mpm => NAME, that MPM (from the test server's module directory)
# rather than the suite's; port => P, listen there (one the caller holds
# back from its backends) rather than on a free port of its own;
# threads => N per child, 2 unless given (MinSpareThreads 3 N,
# MaxSpareThreads and MaxRequestWorkers 6 N); modules => [NAME, ...], more
# of the test server's modules to load (status_module, say).
sub new {
    my ($class, %opt) = @_;
    my $t = Apache::Test::vars('t_dir');
    my $dir = tempdir(CLEANUP => 1);
    chmod 0755, $dir;
    my $self = bless { dir => $dir, port => $opt{port} || free_port(), t => $t,
                       httpd => Apache::Test::vars('httpd'), opt => \%opt,
                       owner => $$ }, $class;
    $self->configure(conf => $opt{conf});
    $self->start;
    return $self;
}

# Writes httpd.conf anew with this TEXT after the server's own lines (the
# same options as new()); a graceful restart or a start reads it.
sub configure {
    my ($self, %c) = @_;
    my %opt = %{ $self->{opt} };
    my ($t, $dir) = @$self{qw(t dir)};
    my %mod = do {
        open my $fh, '<', "$t/conf/httpd.conf" or die $!;
        map { /^\s*LoadModule\s+(\w+)\s+"?([^"\s]+)/ ? ($1 => $2) : () } <$fh>;
    };
    my ($mpm) = grep { /^mpm_/ } keys %mod;
    if ($opt{mpm} && $mpm ne "mpm_$opt{mpm}_module") {
        (my $so = $mod{$mpm}) =~ s{[^/]*$}{mod_mpm_$opt{mpm}.so};
        delete $mod{$mpm};
        $mpm = "mpm_$opt{mpm}_module";
        $mod{$mpm} = $so;
    }
    my $more = join '', map { "LoadModule $_ \"$mod{$_}\"\n" } @{ $opt{modules} || [] };
    my $threads = $opt{threads} || 2;
    my ($min, $max) = (3 * $threads, 6 * $threads);
    my $user = $> == 0 ? "User nobody\nGroup nogroup" : '';
    open my $fh, '>', "$dir/httpd.conf" or die $!;
    print $fh <<"EOC";
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
ServerName 127.0.0.1
Listen 127.0.0.1:$self->{port}
LoadModule $mpm "$mod{$mpm}"
LoadModule authz_core_module "$mod{authz_core_module}"
LoadModule slotmem_shm_module "$mod{slotmem_shm_module}"
${more}LoadModule rproxy_module "$t/../.libs/mod_rproxy.so"
$user
ErrorLog "$dir/error_log"
LogLevel info
KeepAlive Off
<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 8
    ServerLimit 8
    MaxRequestWorkers 8
</IfModule>
<IfModule !mpm_prefork_module>
    StartServers 3
    ServerLimit 6
    ThreadsPerChild $threads
    MinSpareThreads $min
    MaxSpareThreads $max
    MaxRequestWorkers $max
</IfModule>
<Location "/rproxy-status">
    SetHandler rproxy-status
</Location>
$c{conf}
EOC
    close $fh;
}

# The server's pid, from its pid file; remembered, so that stop() finds
# it after File::Temp's END has removed the directory, which happens
# before DESTROY runs at global destruction (a test that never calls
# stop() left its httpd running).
sub pid {
    my $self = shift;
    open my $fh, '<', "$self->{dir}/httpd.pid" or return 0;
    my $p = <$fh> // '';
    chomp $p;
    $self->{last_pid} = $p if $p;
    return $p;
}

sub get {
    my ($self, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
                                  Timeout => 10) or return '';
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    local $/;
    return <$s> // '';
}

sub post {
    my ($self, $path, $form) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
                                  Timeout => 10) or return '';
    print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        . "Content-Type: application/x-www-form-urlencoded\r\n"
        . "Content-Length: " . length($form) . "\r\n\r\n$form";
    local $/;
    return <$s> // '';
}

# A graceful restart (-k graceful), waited for: a new generation's
# "resuming normal operations" line and a status page answered.
sub graceful {
    my $self = shift;
    my $gens = sub { scalar(() = $self->log_since(0) =~ /resuming normal operations/g) };
    my $before = $gens->();
    system($self->{httpd}, '-f', "$self->{dir}/httpd.conf", '-k', 'graceful') == 0
        or die "graceful failed";
    wait_until(sub { $gens->() > $before && $self->get('/rproxy-status') =~ m{^HTTP/1\.1 200} }, 30)
        or die "no new generation after graceful:\n" . $self->log_since(0);
}

# Starts the server again after stop().
sub start {
    my $self = shift;
    system($self->{httpd}, '-f', "$self->{dir}/httpd.conf", '-k', 'start') == 0
        or die "cannot start httpd";
    wait_until(sub { $self->pid && $self->get('/rproxy-status') =~ m{^HTTP/1\.1 200} }, 15)
        or die "the test's httpd did not come up:\n" . $self->log_since(0);
}

sub log_mark { -s "$_[0]{dir}/error_log" || 0 }

sub log_since {
    my ($self, $mark) = @_;
    open my $fh, '<', "$self->{dir}/error_log" or return '';
    seek $fh, $mark, 0;
    local $/;
    return <$fh> // '';
}

# How many children the server has now (processes whose parent is it).
sub children { scalar $_[0]->child_pids }

# Their pids.
sub child_pids {
    my $self = shift;
    my $pid = $self->pid or return ();
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $pid;
    }
    return @kids;
}

sub stop {
    my $self = shift;
    my $pid = $self->pid || delete $self->{last_pid} or return;
    delete $self->{last_pid};
    kill 'TERM', $pid;
    wait_until(sub { !kill 0, $pid }, 15);
    unlink "$self->{dir}/httpd.pid";
}

# (Not in a forked client of the test's: only the process that started it.)
sub DESTROY { $_[0]->stop if $$ == ($_[0]{owner} // 0) }

# backend(addr => A, port => P, dir => D): a forked HTTP server on A:P.
# Every request appends "TIME PATH" to D/requests.A; it answers with the
# status in D/status to paths under /health (else, and when the file is
# absent, 200) and a body naming the
# address it was reached on ("addr=A").  ->stop ends it.
sub backend {
    my (%opt) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => $opt{addr},
                                       LocalPort => $opt{port}, Listen => 64,
                                       ReuseAddr => 1, Proto => 'tcp')
        or die "backend: listen on $opt{addr}:$opt{port}: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 300;
        while (my $c = $listen->accept) {
            my $buf = '';
            my $sel = IO::Select->new($c);
            while (index($buf, "\r\n\r\n") < 0 && $sel->can_read(5)) {
                sysread($c, $buf, 8192, length $buf) or last;
            }
            my ($path) = $buf =~ m{^\w+ (\S+)};
            $path //= '-';
            if (open my $log, '>>', "$opt{dir}/requests.$opt{addr}") {
                printf $log "%.3f %s\n", time, $path;
                close $log;
            }
            my $status = 200;
            if ($path =~ m{^/health} && open my $st, '<', "$opt{dir}/status") {
                ($status) = (<$st> // '200') =~ /(\d+)/;
                $status ||= 200;
            }
            my $body = "addr=" . $c->sockhost . "\n";
            syswrite $c, "HTTP/1.1 $status X\r\nContent-Length: "
                . length($body) . "\r\nConnection: close\r\n\r\n$body";
            close $c;
        }
        POSIX::_exit(0);
    }
    close $listen;
    return bless { pid => $pid }, 'RProxyOwn::Backend';
}

# The requests a backend recorded: [time, path] each.
sub requests_of {
    my ($dir, $addr) = @_;
    open my $fh, '<', "$dir/requests.$addr" or return ();
    return map { [split ' ', $_, 2] } map { chomp; $_ } <$fh>;
}

package RProxyOwn::Backend;

sub stop {
    my $self = shift;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = 0;
}

sub DESTROY { $_[0]->stop }

1;
