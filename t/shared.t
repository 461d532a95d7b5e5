# One state for the whole server: the counters live in shared memory, so
# every child process shows the same figures, children replaced by
# MaxConnectionsPerChild lose nothing, a graceful restart keeps them, and a
# target removed from the configuration leaves the page.  These need a
# server with several children that the test may restart, so the test runs
# its own httpd (the test server's MPM, 3-4 children) in front of the test
# server's backend, and stops it by its pid.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use POSIX ();

plan tests => 16;

my $t = Apache::Test::vars('t_dir');
my $httpd = Apache::Test::vars('httpd');
my $module = "$t/../.libs/mod_rproxy.so";
my $be = Apache::Test::vars('rproxy_backend_port');

# The modules the test server loaded (its MPM among them).
my %mod = do {
    open my $fh, '<', "$t/conf/httpd.conf" or die $!;
    map { /^\s*LoadModule\s+(\w+)\s+"?([^"\s]+)/ ? ($1 => $2) : () } <$fh>;
};
my ($mpm) = grep { /^mpm_/ } keys %mod;

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;
my $port = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die $!;
    $s->sockport;
};

sub write_conf {
    my (%opt) = @_;
    my $user = $> == 0 ? "User nobody\nGroup nogroup" : '';
    my $many = join '', map { <<"EOC" } 1 .. ($opt{many} || 0);
<Location "/many$_/">
    SetHandler rproxy
    RProxyTarget "http://127.0.0.1:$be/"
</Location>
EOC
    my $gone = $opt{with_gone} ? <<"EOC" : '';
<Location "/gone/">
    SetHandler rproxy
    RProxyTarget "http://127.0.0.1:$be/"
</Location>
EOC
    open my $fh, '>', "$dir/httpd.conf" or die $!;
    print $fh <<"EOC";
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
LoadModule $mpm "$mod{$mpm}"
LoadModule authz_core_module "$mod{authz_core_module}"
LoadModule status_module "$mod{status_module}"
LoadModule slotmem_shm_module "$mod{slotmem_shm_module}"
LoadModule rproxy_module "$module"
$user
ErrorLog "$dir/error_log"
LogLevel info
LogFormat "%P %U" pids
CustomLog "$dir/access_log" pids
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
    ThreadsPerChild 2
    MinSpareThreads 6
    MaxSpareThreads 12
    MaxRequestWorkers 12
</IfModule>
MaxConnectionsPerChild $opt{max_conns}
<Location "/be/">
    SetHandler rproxy
    RProxyTarget "http://127.0.0.1:$be/"
</Location>
$gone
$many
<Location "/rproxy-status">
    SetHandler rproxy-status
</Location>
EOC
    close $fh;
}

sub get {
    my $path = shift;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10)
        or return '';
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    local $/;
    my $r = <$s> // '';
    return $r;
}

sub counters_of {
    my ($body) = @_;
    my %c = $body =~ /^(\w+): (\d+)\r?$/mg;
    my ($be_line) = $body =~ m{^target: .* location=/be/ (.*)$}m;
    $c{be_requests} = $be_line && $be_line =~ /\brequests=(\d+)/ ? $1 : -1;
    $c{gone} = $body =~ m{location=/gone/} ? 1 : 0;
    return \%c;
}

sub pid { open my $fh, '<', "$dir/httpd.pid" or return 0; my $p = <$fh>; chomp $p; $p }

sub generations {
    open my $fh, '<', "$dir/error_log" or return 0;
    scalar grep { /resuming normal operations/ } <$fh>;
}

sub start {
    system($httpd, '-f', "$dir/httpd.conf", '-k', 'start') == 0 or die "cannot start httpd";
    wait_for(sub { pid() && get('/rproxy-status') =~ /^HTTP\/1\.1 200/ }, 15)
        or die "the test's httpd did not come up";
}

sub graceful {
    my $before = generations();
    system($httpd, '-f', "$dir/httpd.conf", '-k', 'graceful') == 0 or die "graceful failed";
    wait_for(sub { generations() > $before && get('/rproxy-status') =~ /^HTTP\/1\.1 200/ }, 15)
        or die "no new generation after graceful";
}

sub stop {
    my $pid = pid() or return;
    kill 'TERM', $pid;
    wait_for(sub { !kill 0, $pid }, 15);
}
END { stop() if $dir }

write_conf(max_conns => 0, with_gone => 1);
start();

# N proxied requests on fresh connections, then scrapes until at least two
# children have answered them: every scrape sees all N.
my $n = 40;
get("/be/x$_") for 1 .. $n;
my (%pids, @seen);
for my $i (1 .. 60) {
    my $c = counters_of(get('/rproxy-status'));
    push @seen, $c->{requests};
    last if @seen >= 12 && keys %pids >= 2;
    open my $fh, '<', "$dir/access_log" or next;
    %pids = map { /^(\d+) \/rproxy-status/ ? ($1 => 1) : () } <$fh>;
}
ok t_cmp(scalar(keys %pids) >= 2 ? 1 : 0, 1,
         'the scrapes were answered by several children (' . join(',', sort keys %pids) . ')');
my @short = grep { $_ != $n } @seen;
ok t_cmp("@short", '', scalar(@seen) . " scrapes all show exactly $n requests");
my $prom = get('/rproxy-status?format=prometheus');
ok t_cmp($prom =~ /^rproxy_requests_total $n\r?$/m ? 1 : 0, 1,
         'Prometheus: the whole-server total, without a per-process label');

# Children replaced after every few connections lose no counts.
stop();
write_conf(max_conns => 3, with_gone => 1);
start();
my $base = counters_of(get('/rproxy-status'));
my @answered = grep { get("/be/y$_") =~ m{^HTTP/1\.1 200 } } 1 .. 30;
my %children = do {
    open my $fh, '<', "$dir/access_log" or die $!;
    map { /^(\d+) / ? ($1 => 1) : () } <$fh>;
};
ok t_cmp(scalar(keys %children) > 8 ? 1 : 0, 1,
         'MaxConnectionsPerChild 3 replaced children (' . scalar(keys %children) . ' pids served)');
my $after = counters_of(get('/rproxy-status'));
# (Compared with the requests answered: a connection refused while children
# come and go is not a lost count.)
ok t_cmp($after->{requests} - $base->{requests}, scalar(@answered),
         'replaced children lost none of their counts (' . scalar(@answered)
         . ' of 30 answered)');
ok t_cmp($after->{be_requests} - $base->{be_requests}, scalar(@answered),
         'nor the target its');
ok t_cmp($base->{requests} >= $n ? 1 : 0, 1,
         'a stop and start restored the counters from the last generation');

# A graceful restart with the same configuration keeps the counters.
$base = $after;
graceful();
$after = counters_of(get('/rproxy-status'));
ok t_cmp($after->{requests}, $base->{requests}, 'a graceful restart keeps the server counters');
ok t_cmp($after->{be_requests}, $base->{be_requests}, 'and the target counters');
ok t_cmp($after->{gone}, 1, 'a configured target is on the page');

# A graceful restart while requests flow: the old generation's children
# still count as it goes (mod_slotmem_shm's own saving then finds the
# memory changed under its checksum and throws it away).
{
    $base = $after;
    my $kid = fork // die "fork: $!";
    if (!$kid) {
        my $end = time + 4;
        get('/be/busy') while time < $end;
        POSIX::_exit(0);
    }
    sleep 1;
    graceful();
    waitpid $kid, 0;
    $after = counters_of(get('/rproxy-status'));
    ok t_cmp($after->{requests} >= $base->{requests} ? 1 : 0, 1,
             "a graceful restart under traffic keeps the counters ($base->{requests} before,"
             . " $after->{requests} after)");
    ok t_cmp($after->{outstanding}, 0, 'and outstanding counts this generation: 0 at rest');
    $base = $after;
}

# Targets are counted in steps of 64 slots: past 64 the memory's layout
# changes, which mod_slotmem_shm's saving cannot restore into; the counters
# go on all the same.
write_conf(max_conns => 3, with_gone => 1, many => 70);
graceful();
$after = counters_of(get('/rproxy-status'));
ok t_cmp($after->{be_requests}, $base->{be_requests},
         'a graceful restart to 73 targets (a new memory layout) keeps the target counters');
ok t_cmp($after->{requests} >= $base->{requests} ? 1 : 0, 1, 'and the server counters');

# A target removed from the configuration leaves the page; the others stay.
write_conf(max_conns => 3, with_gone => 0);
graceful();
$after = counters_of(get('/rproxy-status'));
ok t_cmp($after->{gone}, 0, 'a removed target leaves the page after a graceful restart');
ok t_cmp($after->{be_requests}, $base->{be_requests}, 'the remaining target keeps its counts');
