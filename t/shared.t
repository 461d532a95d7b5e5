# One state for the whole server: the counters live in shared memory, so
# every child process shows the same figures, children replaced by
# MaxConnectionsPerChild lose nothing, a graceful restart keeps them, and a
# target removed from the configuration leaves the page.  These need a
# server with several children that the test may restart, so the test runs
# its own httpd (t/lib/RProxyOwn.pm: the test server's MPM, 3-4 children)
# in front of the test server's backend, and stops it by its pid.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use RProxyOwn;
use Time::HiRes qw(sleep time);
use POSIX ();

plan tests => 16;

my $be = Apache::Test::vars('rproxy_backend_port');

# What the test's httpd serves, after RProxyOwn's own lines.
sub conf {
    my (%opt) = @_;
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
    return <<"EOC";
LogFormat "%P %U" pids
CustomLog access_log pids
MaxConnectionsPerChild $opt{max_conns}
<Location "/be/">
    SetHandler rproxy
    RProxyTarget "http://127.0.0.1:$be/"
</Location>
$gone
$many
EOC
}

sub counters_of {
    my ($body) = @_;
    my %c = $body =~ /^(\w+): (\d+)\r?$/mg;
    my ($be_line) = $body =~ m{^target: .* location=/be/ (.*)$}m;
    $c{be_requests} = $be_line && $be_line =~ /\brequests=(\d+)/ ? $1 : -1;
    $c{gone} = $body =~ m{location=/gone/} ? 1 : 0;
    return \%c;
}

my $h = RProxyOwn->new(modules => ['status_module'],
                       conf => conf(max_conns => 0, with_gone => 1));
my $dir = $h->{dir};
sub get { $h->get(@_) }



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
$h->stop;
$h->configure(conf => conf(max_conns => 3, with_gone => 1));
$h->start;
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
$h->graceful;
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
    $h->graceful;
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
$h->configure(conf => conf(max_conns => 3, with_gone => 1, many => 70));
$h->graceful;
$after = counters_of(get('/rproxy-status'));
ok t_cmp($after->{be_requests}, $base->{be_requests},
         'a graceful restart to 73 targets (a new memory layout) keeps the target counters');
ok t_cmp($after->{requests} >= $base->{requests} ? 1 : 0, 1, 'and the server counters');

# A target removed from the configuration leaves the page; the others stay.
$h->configure(conf => conf(max_conns => 3, with_gone => 0));
$h->graceful;
$after = counters_of(get('/rproxy-status'));
ok t_cmp($after->{gone}, 0, 'a removed target leaves the page after a graceful restart');
ok t_cmp($after->{be_requests}, $base->{be_requests}, 'the remaining target keeps its counts');
