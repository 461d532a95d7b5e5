# A group's member state is the whole server's, on every child's status
# page: a member killed under load shows ejected in the JSON of every
# child (prefork, several children), then back in slow start with its
# effective weight ramping up; a run-time drain survives a graceful
# restart (and a member configured "drain" is drained whatever the admin
# did), while a stop and start goes by the configuration.  Its own httpd
# (prefork, whatever the suite's MPM: one connection per child process
# makes "every child" checkable) in front of backends it kills
# (t/tools/count_backend.pl).
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyOwn;
use JSON::PP;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep time);

plan tests => 19;

my $t = Apache::Test::vars('t_dir');
my $script = "$t/tools/count_backend.pl";
my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

my %bp;
{
    my @s = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die $!
    } 1 .. 3;
    @bp{qw(b1 b2 b3)} = map { $_->sockport } @s;
}

my %pid;
sub start_backend {
    my $name = shift;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        { exec $^X, $script, $bp{$name}, $name, "$dir/backends.log", 0; }
        POSIX::_exit(127);
    }
    $pid{$name} = $pid;
    RProxyOwn::wait_until(sub {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$bp{$name}", Timeout => 2)
    }, 10) or die "backend $name did not come up";
}
sub kill_backend {
    my $name = shift;
    my $pid = delete $pid{$name} or return;
    kill 'KILL', -$pid;     # the listener and every connection it serves
    kill 'KILL', $pid;
    waitpid $pid, 0;
}
END { local $?; kill_backend($_) for keys %pid }
sub backend_hits {
    my ($name) = @_;
    open my $fh, '<', "$dir/backends.log" or return 0;
    return scalar grep { /^$name / } <$fh>;
}

start_backend($_) for qw(b1 b2 b3);
my %m = map { $_ => "http://127.0.0.1:$bp{$_}" } keys %bp;
my $conf = <<"EOC";
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
LogFormat "%P %U" pids
CustomLog access_log pids
Timeout 20
<RProxyGroup kill>
    RProxyMember $m{b1}
    RProxyMember $m{b2}
    RProxyMember $m{b3}
    RProxyEject failures=3 time=3s
    RProxySlowStart 10s
</RProxyGroup>
<Location "/kill/">
    SetHandler rproxy
    RProxyTarget "group://kill/"
</Location>
<RProxyGroup dr>
    RProxyMember $m{b1}
    RProxyMember $m{b2}
    RProxySlowStart 0
</RProxyGroup>
<Location "/dr/">
    SetHandler rproxy
    RProxyTarget "group://dr/"
</Location>
<RProxyGroup cd>
    RProxyMember $m{b1}
    RProxyMember $m{b2} drain
    RProxySlowStart 0
</RProxyGroup>
<Location "/cd/">
    SetHandler rproxy
    RProxyTarget "group://cd/"
</Location>
<Location "/rproxy-control">
    SetHandler rproxy-status
    RProxyStatusControl On
    Require all granted
</Location>
EOC
my $h = RProxyOwn->new(mpm => 'prefork', conf => $conf);

# ---- every child's page ----

my $scrape_n = 0;

# The access log's "PID PATH" lines: which child answered which scrape.
sub answered_by {
    open my $fh, '<', "$h->{dir}/access_log" or return {};
    return { map { m{^(\d+) /rproxy-status/(\d+)$} ? ($2 => $1) : () } <$fh> };
}

# One round: as many connections as the server has children, opened
# together and left quiet for a moment, so that each is taken by a child of
# its own (a prefork child serves one connection at a time and waits for
# its request), then a JSON scrape on each, read to the end.  Returns
# [pid, decoded page] for each answer.
sub scrape_round {
    my @kids = $h->child_pids;
    my @socks = grep { $_ } map {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$h->{port}", Timeout => 10)
    } 1 .. (@kids || 1);
    sleep 0.3;
    my %n_of;
    for my $s (@socks) {
        my $n = ++$scrape_n;
        $n_of{$s} = $n;
        print $s "GET /rproxy-status/$n?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    }
    my %page;
    for my $s (@socks) {
        local $/;
        my $raw = <$s> // '';
        my ($body) = $raw =~ /\r\n\r\n(.*)\z/s;
        $page{ $n_of{$s} } = eval { decode_json($body // '') };
    }
    my $by;
    RProxyOwn::wait_until(sub {
        $by = answered_by();
        !grep { !$by->{$_} } keys %page;
    }, 5);
    return map { [$by->{$_} // 0, $page{$_}] } grep { $page{$_} } sort { $a <=> $b } keys %page;
}

# The member of group $g on port $bp{$name}, from a decoded page.
sub member_of {
    my ($page, $g, $name) = @_;
    my ($grp) = grep { $_->{name} eq $g } @{ $page->{groups} || [] };
    my ($mem) = grep { $_->{key} eq "127.0.0.1:$bp{$name}" } @{ $grp->{members} || [] };
    return $mem || {};
}

# Rounds until every child the server has answered at least once (bounded);
# returns { pid => [member states it showed] } and whether all answered.
sub every_child {
    my ($g, $name, $rounds) = @_;
    my %seen;
    my $all = 0;
    for (1 .. ($rounds || 30)) {
        for my $a (scrape_round()) {
            push @{ $seen{ $a->[0] } }, member_of($a->[1], $g, $name)->{state} // 'none';
        }
        my @missing = grep { !$seen{$_} } $h->child_pids;
        if (!@missing && keys %seen >= 2) {
            $all = 1;
            last;
        }
    }
    return (\%seen, $all);
}
sub describe {
    my $seen = shift;
    return join ' ', map { "$_=" . join(',', @{ $seen->{$_} }) } sort keys %$seen;
}

# Forked clients, each sending GETs to $path on one kept-alive connection
# (a new one if it breaks) until stopped: the load goes through as many
# children as there are clients, and the others see none of it.
sub load_start {
    my ($clients, $path) = @_;
    my @kids;
    for (1 .. $clients) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            $SIG{TERM} = sub { POSIX::_exit(0) };
            my $end = time + 120;
            while (time < $end) {
                my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$h->{port}", Timeout => 10)
                    or next;
                while (time < $end) {
                    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" or last;
                    my $buf = '';
                    while ($buf !~ /\r\n\r\n/) {
                        sysread($s, $buf, 8192, length $buf) or last;
                    }
                    my ($len) = $buf =~ /^Content-Length: (\d+)\r$/mi or last;
                    my $want = index($buf, "\r\n\r\n") + 4 + $len;
                    while (length $buf < $want) {
                        sysread($s, $buf, 8192, length $buf) or last;
                    }
                    last if $buf =~ /^Connection: close\r$/mi;
                }
            }
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    return \@kids;
}
sub load_stop {
    my $kids = shift;
    kill 'TERM', @$kids;
    waitpid $_, 0 for @$kids;
}

# ---- one member killed under load: ejected on every child's page ----
{
    my $mark = $h->log_mark;
    my $load = load_start(2, '/kill/x');
    RProxyOwn::wait_until(sub { backend_hits('b3') >= 20 }, 30);
    my $amark = -s "$h->{dir}/access_log" || 0;
    kill_backend('b3');
    my $ejected = RProxyOwn::wait_until(sub {
        $h->log_since($mark) =~ /group kill: member \S+ \S+ \(127\.0\.0\.1:$bp{b3}\): up -> ejected/
    }, 30);
    # No more requests: an ejected member comes back only as one picks.
    load_stop($load);
    ok t_cmp($ejected ? 1 : 0, 1, 'the killed member was ejected (one log line)');

    my ($seen, $all) = every_child('kill', 'b3');
    my @states = map { @$_ } values %$seen;
    t_debug('states by child: ' . describe($seen));
    ok t_cmp($all ? 1 : 0, 1, 'every child answered a scrape (' . scalar(keys %$seen) . ' children)');
    ok t_cmp(join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } @states }}), 'ejected',
             'each of them showed the member ejected (' . scalar(@states) . ' pages)');
    # Children that proxied nothing since the kill know of the ejection
    # only through the shared memory.
    my %loaded = do {
        open my $fh, '<', "$h->{dir}/access_log" or die $!;
        seek $fh, $amark, 0;
        map { m{^(\d+) /kill/} ? ($1 => 1) : () } <$fh>;
    };
    my @quiet = grep { !$loaded{$_} } keys %$seen;
    ok t_cmp(scalar(@quiet) >= 1 ? 1 : 0, 1, 'among them children that sent the group nothing since the kill ('
             . join(',', sort @quiet) . '; the load went through ' . join(',', sort keys %loaded) . ')');
}

# ---- its return, ramping up over slow start, on every child's page ----
{
    my $mark = $h->log_mark;
    start_backend('b3');
    # The ejection time (3 s) runs out; the next pick brings it back.
    my $back = RProxyOwn::wait_until(sub {
        $h->get('/kill/x');
        $h->log_since($mark) =~ /group kill: member \S+ \S+ \(127\.0\.0\.1:$bp{b3}\): ejected -> up/
    }, 30);
    ok t_cmp($back ? 1 : 0, 1, 'the member came back once its ejection time was over');
    # Rounds until a page shows it at its full weight (bounded): each
    # round's pages, from several children, agree with the ramp so far.
    my (@rounds, %states, $full);
    my $deadline = time + 40;
    while (time < $deadline && !$full) {
        my @r = map {
            my $mem = member_of($_->[1], 'kill', 'b3');
            [$_->[0], $mem->{state} // 'none', $mem->{effective_weight} // -1, $mem->{weight} // -1]
        } scrape_round();
        next unless @r;
        push @rounds, \@r;
        $states{ $_->[1] }++ for @r;
        $full = grep { $_->[1] eq 'up' && $_->[2] == $_->[3] } @r;
    }
    t_debug(join ' | ', map { join ' ', map { "$_->[0]:$_->[1]:$_->[2]" } @$_ } @rounds);
    my @ramp = map { [grep { $_->[1] eq 'slow-start' } @$_] } @rounds;
    my @weights = map { $_->[2] } map { @$_ } @ramp;
    my %ramp_pids = map { $_->[0] => 1 } map { @$_ } @ramp;
    ok t_cmp(scalar(@weights) >= 2 && keys(%ramp_pids) >= 2 ? 1 : 0, 1,
             'pages of several children showed it in slow start (' . scalar(@weights)
             . ' pages, ' . scalar(keys %ramp_pids) . ' children)');
    ok t_cmp(!grep({ $_ <= 0 || $_ >= 1 } @weights) && @weights && $weights[-1] > $weights[0] ? 1 : 0, 1,
             'with an effective weight below its weight, rising (' . ($weights[0] // '-')
             . ' to ' . ($weights[-1] // '-') . ')');
    # Each round was read after the one before had ended: whichever child
    # answered, no page shows less than an earlier round's.
    my ($bad, $max) = (0, 0);
    for my $r (@rounds) {
        my @w = map { $_->[1] eq 'up' ? $_->[3] : $_->[2] } @$r;
        $bad++ if grep { $_ < $max } @w;
        $max = (sort { $b <=> $a } $max, @w)[0];
    }
    ok t_cmp($bad, 0, 'every child showed the same ramp: no round below an earlier one');
    ok t_cmp($full ? 1 : 0, 1, 'then up at its full weight');
    ok t_cmp($states{ejected} // 0, 0, 'and no child showed it ejected any more');
}

# ---- a run-time drain survives a graceful restart ----
sub nonce {
    my ($body) = $h->get('/rproxy-control?format=json') =~ /\r\n\r\n(.*)\z/s;
    my $j = eval { decode_json($body // '') } || {};
    return $j->{control}{nonce} // '';
}
sub control {
    my ($action, $g, $name) = @_;
    my $r = $h->post('/rproxy-control', "action=$action&group=$g&member=127.0.0.1:$bp{$name}&nonce=" . nonce());
    return $r =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
}
# Requests to a group, one at a time: how many reached b2.
sub hits_b2 {
    my ($path, $n) = @_;
    my $before = backend_hits('b2');
    $h->get($path) for 1 .. $n;
    return backend_hits('b2') - $before;
}
{
    ok t_cmp(control(drain => 'dr', 'b2'), 200, 'drained b2 in group dr by POST with the nonce');
    $h->graceful;
    my ($seen, $all) = every_child('dr', 'b2');
    my @states = map { @$_ } values %$seen;
    t_debug('after graceful: ' . describe($seen));
    ok t_cmp($all && join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } @states }}) eq 'draining' ? 1 : 0, 1,
             'after a graceful restart every child shows it still draining ('
             . scalar(keys %$seen) . ' children)');
    ok t_cmp(hits_b2('/dr/x', 20), 0, 'and no request goes to it');
    # A group added that sorts first (its members take the first slots):
    # the drained member's slot moves, and its drain with it.
    $h->configure(conf => "<RProxyGroup aa>\n    RProxyMember $m{b1}\n"
                          . "    RProxyMember $m{b3}\n</RProxyGroup>\n$conf");
    $h->graceful;
    ($seen, $all) = every_child('dr', 'b2');
    t_debug('after a group was added: ' . describe($seen));
    ok t_cmp(join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } map { @$_ } values %$seen }}), 'draining',
             'still draining after a graceful restart that moved its slot');
    ok t_cmp(control(enable => 'dr', 'b2'), 200, 'enabled again with the new nonce');
    ok t_cmp(hits_b2('/dr/x', 40) > 0 ? 1 : 0, 1, 'and it gets requests again');

    # A member the configuration drains: enabled at run time, drained again
    # by the graceful restart.
    ok t_cmp(control(enable => 'cd', 'b2'), 200, 'a member configured "drain" enabled at run time');
    $h->graceful;
    ($seen) = every_child('cd', 'b2', 5);
    t_debug('configured drain after graceful: ' . describe($seen));
    ok t_cmp(join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } map { @$_ } values %$seen }}), 'draining',
             'is drained again after a graceful restart (its configuration says so)');

    # A stop and start goes by the configuration alone.
    control(drain => 'dr', 'b2');
    $h->stop;
    $h->start;
    ($seen) = every_child('dr', 'b2', 5);
    t_debug('after stop and start: ' . describe($seen));
    ok t_cmp(join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } map { @$_ } values %$seen }}), 'up',
             'a run-time drain does not outlive a stop and start');
}
