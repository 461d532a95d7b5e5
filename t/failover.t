# Backend groups with members that die: failover, passive ejection seen by
# every child, slow start, no usable member, the retry budget, POSTs never
# replayed, p2c around a slow member, hash remapping.  The test kills and
# restarts members, so it runs its own httpd (t/lib/RProxyOwn.pm: the
# suite's MPM, several children) in front of its own backends
# (t/tools/count_backend.pl: each logs "NAME METHOD X-ID BODYLENGTH" per
# request it read, and can be killed with all its connections at once).
#
# Here the state of a member is read from the error log lines
# rproxy_group.c's set_health() writes ("up -> ejected", "ejected -> up"),
# and from the requests the backends saw; t/group_shared.t reads it from
# every child's status page.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use RProxyOwn;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

plan tests => 35;

my $t = Apache::Test::vars('t_dir');
my $script = "$t/tools/count_backend.pl";

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

# Free ports, held open together so that they differ, then released.
my ($port, %bp, $dead);
{
    my @s = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                              Listen => 1) or die $!
    } 1 .. 11;
    my @p = map { $_->sockport } @s;
    $port = shift @p;
    $dead = shift @p;
    @bp{qw(b1 b2 b3 b4 b5 slow ramp a1 a2)} = @p;
}

# ---- the backends ----

my %pid;
sub start_backend {
    my ($name, $delay) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        { exec $^X, $script, $bp{$name}, $name, "$dir/backends.log", $delay || 0; }
        POSIX::_exit(127);
    }
    $pid{$name} = $pid;
    wait_for(sub {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$bp{$name}", Timeout => 2)
    }, 10) or die "backend $name did not come up";
}
sub kill_backend {
    my $name = shift;
    my $pid = delete $pid{$name} or return;
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}
END { local $?; kill_backend($_) for keys %pid }
$SIG{$_} = sub { exit 1 } for qw(TERM INT HUP);

# Lines the backends logged since a mark (a byte offset).
sub backend_mark { -s "$dir/backends.log" || 0 }
sub backend_lines {
    my $mark = shift || 0;
    open my $fh, '<', "$dir/backends.log" or return ();
    seek $fh, $mark, 0;
    my @l = <$fh>;
    chomp @l;
    return map { [split / /] } @l;
}

# ---- the test's httpd ----

sub member { "    RProxyMember http://127.0.0.1:$bp{$_[0]}" . ($_[1] // '') . "\n" }

# What the test's httpd serves, after RProxyOwn's own lines.
sub conf {
    my %g = (
        slow  => [[qw(b1 b2 slow)], "RProxySlowStart 0"],
        kill  => [[qw(b1 b2 b3)], "RProxyEject failures=3 time=60s\n    RProxySlowStart 0"],
        ramp  => [[qw(b1 b2 ramp)], "RProxyEject failures=2 time=2s\n    RProxySlowStart 8s"],
        down  => [[qw(a1 a2)], "RProxyEject failures=1 time=2s max-share=100%\n    RProxySlowStart 0"],
        die   => [[qw(b1 b2)], "RProxySlowStart 0"],
        budget => [[qw(b1 b2 b4)], "RProxyEject failures=1000\n    RProxyMaxTries 3\n    RProxySlowStart 0"],
        two   => [[qw(b1 b2)], "RProxyEject failures=1000\n    RProxySlowStart 0"],
        one   => [[qw(b1)], "RProxyEject failures=1000\n    RProxySlowStart 0"],
        # The same member, ejected on its 503s only where statuses= says so.
        ej503 => [[qw(b1 b2)], "RProxyEject failures=2 time=60s statuses=502,503\n    RProxySlowStart 0"],
        no503 => [[qw(b1 b2)], "RProxyEject failures=2 time=60s\n    RProxySlowStart 0"],
        h3    => [[qw(b1 b2 b4)], "RProxyBalance hash header X-Key\n    RProxySlowStart 0"],
        h4    => [[qw(b1 b2 b4 b5)], "RProxyBalance hash header X-Key\n    RProxySlowStart 0"],
    );
    my $groups = '';
    for my $name (sort keys %g) {
        my ($members, $extra) = @{ $g{$name} };
        $groups .= "<RProxyGroup $name>\n" . join('', map { member($_) } @$members)
                 . "    $extra\n</RProxyGroup>\n"
                 . "<Location \"/$name/\">\n    SetHandler rproxy\n"
                 . "    RProxyTarget \"group://$name/\"\n</Location>\n";
    }
    # A member nothing listens on, never ejected: each request that picks
    # it first must move on.
    $groups .= <<"EOC";
<RProxyGroup withdead>
    RProxyMember http://127.0.0.1:$bp{b1}
    RProxyMember http://127.0.0.1:$dead
    RProxyBalance round-robin
    RProxyEject failures=1000
    RProxySlowStart 0
</RProxyGroup>
<Location "/withdead/">
    SetHandler rproxy
    RProxyTarget "group://withdead/"
</Location>
<Location "/budget/">
    RProxyRetryOnStatus 503
</Location>
<Location "/two/">
    RProxyRetryOnStatus 503
</Location>
EOC
    return <<"EOC";
Timeout 20
ErrorLogFormat "[%P] [%l] %M"
LogFormat "%P %U %>s %{X-Backend}o" pids
CustomLog access_log pids
$groups
EOC
}

sub req {
    my ($method, $path, %opt) = @_;
    return http_request($method, $path, port => $port, timeout => 30, %opt);
}
my $h;
sub log_since {
    my ($file, $mark) = @_;
    open my $fh, '<', "$h->{dir}/$file" or return '';
    seek $fh, $mark || 0, 0;
    local $/;
    return <$fh> // '';
}
sub mark { -s "$h->{dir}/$_[0]" || 0 }

# Forked clients: each runs $code->($client, $i) for $i in 1 .. $each and
# reports one line per request.  load_start returns at once.
sub load_start {
    my ($clients, $each, $code) = @_;
    my @kids;
    for my $c (1 .. $clients) {
        pipe my $r, my $w or die $!;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            select((select($w), $| = 1)[0]);
            print $w $code->($c, $_), "\n" for 1 .. $each;
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    return \@kids;
}
sub load_wait {
    my $kids = shift;
    my @lines;
    for (@$kids) {
        my ($pid, $r) = @$_;
        push @lines, <$r>;
        waitpid $pid, 0;
    }
    chomp @lines;
    return @lines;
}
sub load { load_wait(load_start(@_)) }

start_backend($_) for qw(b1 b2 b3 b4 b5 ramp a1 a2);
start_backend('slow', 300);
# Its own httpd (t/lib/RProxyOwn.pm: the suite's MPM, several children)
# on the port held back above.
$h = RProxyOwn->new(port => $port, threads => 4, conf => conf());

# ---- hash: affinity, and one member more moves about 1/N of the keys ----
{
    my %first;
    my (%moved, $same, $again) = ();
    for my $k (1 .. 1000) {
        my $r = req(GET => '/h3/x', headers => ['X-Key' => "user-$k"]);
        $first{$k} = $r->{headers}{'x-backend'}[0] // 'none';
    }
    $again = grep {
        (req(GET => '/h3/x', headers => ['X-Key' => "user-$_"])->{headers}{'x-backend'}[0] // '')
            eq $first{$_}
    } 1 .. 300;
    my %spread;
    $spread{$_}++ for values %first;
    ok t_cmp(join(',', map { "$_=" . ($spread{$_} || 0) } qw(b1 b2 b4)) =~ /none/ ? 0 : 1, 1,
             'hash over 3 members: every key answered');
    ok t_cmp($again, 300, 'the same key goes to the same member (300 keys asked again)');
    my ($to_new, $to_old) = (0, 0);
    for my $k (1 .. 1000) {
        my $b = req(GET => '/h4/x', headers => ['X-Key' => "user-$k"])->{headers}{'x-backend'}[0] // 'none';
        next if $b eq $first{$k};
        $b eq 'b5' ? $to_new++ : $to_old++;
    }
    t_debug("3 -> 4 members: $to_new keys moved to the new member, $to_old elsewhere; spread over 3: "
            . join(',', map { "$_=" . ($spread{$_} || 0) } sort keys %spread));
    # 1/N = 25%.  With 160 ring points a member, the new member's share
    # varies with its name (here its random port): 20-30% in simulations
    # of this ring; 35% leaves room for that, and none for a rehash (about
    # 75% would move).
    ok t_cmp($to_new + $to_old <= 350 ? 1 : 0, 1,
             'adding a 4th member remaps at most about 1/4 of 1,000 keys (' . ($to_new + $to_old) . ')');
    ok t_cmp($to_old, 0, 'and every remapped key went to the new member');
}

# ---- a connect failure fails over, for a POST too; a sent POST is never replayed ----
{
    my $emark = mark('error_log');
    my $bmark = backend_mark();
    my @st = map {
        req(POST => '/withdead/p', body => "body $_", headers => ['X-Id' => "wd-$_"])->{status}
    } 1 .. 20;
    my @bad = grep { $_ != 200 } @st;
    ok t_cmp("@bad", '', '20 POSTs to a group with a dead member: all answered 200');
    my %n;
    $n{ $_->[2] }++ for grep { $_->[2] =~ /^wd-/ } backend_lines($bmark);
    my @twice = grep { ($n{$_} // 0) != 1 } map { "wd-$_" } 1 .. 20;
    ok t_cmp("@twice", '', 'each POST body reached a backend exactly once');
    my $failed_over = () = log_since('error_log', $emark) =~ /member 127\.0\.0\.1:$dead failed \(connect\); trying/g;
    ok t_cmp($failed_over >= 5 ? 1 : 0, 1, "the dead member was tried and the POST moved on ($failed_over times)");

    # Several, so that some go out on a kept-alive connection: one that
    # dies before answering is retried only for an idempotent request.
    $bmark = backend_mark();
    my @dst = map {
        req(POST => '/die/p?die=1', body => 'once only', headers => ['X-Id' => "die-$_"])->{status}
    } 1 .. 6;
    %n = ();
    $n{ $_->[2] }++ for grep { $_->[2] =~ /^die-/ } backend_lines($bmark);
    ok t_cmp("@dst", join(' ', (502) x 6),
             'POSTs whose connection died after the body was sent: 502');
    ok t_cmp(join(' ', map { $n{"die-$_"} // 0 } 1 .. 6), join(' ', (1) x 6),
             'each reached a backend once, never replayed');
}

# ---- the retry budget: every member answers 503 ----
{
    my $bmark = backend_mark();
    my $n = 300;
    my $t0 = time;
    my @st = load(3, $n / 3, sub { req(GET => '/budget/x?status=503')->{status} });
    my $secs = time - $t0;
    my $hits = () = backend_lines($bmark);
    my $per = $hits / $n;
    t_debug("statuses: " . join(',', map { my $s = $_; "$s=" . scalar(grep { $_ == $s } @st) } 502, 503));
    # Without a budget each request would try all 3 members: 3 hits a
    # request.  The budget: a retry for every 5 requests, and past it 3
    # free retries a second (counted from the load's duration, so a slow
    # machine loosens the bound, never breaks it), and a few to spare.
    my $allowed = $n + int(0.2 * $n) + 3 * (int($secs) + 2) + 5;
    ok t_cmp($hits <= $allowed ? 1 : 0, 1,
             sprintf('retry budget: %d backend hits for %d requests in %.1f s (%.2f each; '
                     . 'at most %d, 3 each without a budget)', $hits, $n, $secs, $per, $allowed));
    ok t_cmp($per > 1.0 ? 1 : 0, 1, 'and some requests were retried');
    # A retry the budget refuses leaves the member's 503 the answer, also
    # when concurrent requests took the last retry in the meantime.
    ok t_cmp(scalar(grep { $_ != 503 } @st), 0, 'every request answered a member\'s 503, none a 502');
}

# ---- RProxyEject statuses=: which answers count against a member ----
{
    # Both members answer 503 to every request: a group that lists 503
    # ejects one of them (the other stays: max-share 50%), with the status
    # as the reason; the same group without statuses= ejects none, a member
    # that answers being up.
    my $emark = mark('error_log');
    my @st = map { req(GET => "/$_/x?status=503")->{status} } (('ej503') x 6, ('no503') x 6);
    my $elog = log_since('error_log', $emark);
    ok t_cmp("@st", join(' ', (503) x 12), 'the members\' 503s are passed on');
    my @ej = $elog =~ /^(.*group ej503: member [^\n]*: up -> ejected[^\n]*answered 503.*)$/mg;
    ok t_cmp(scalar(@ej), 1, 'statuses=502,503: a member answering 503 is ejected, and the log says why');
    ok t_cmp(scalar(() = $elog =~ /group no503: member/g), 0,
             'without statuses=: a member answering 503 stays in');
}

# ---- out of members to try ----
{
    # Two members, both 503, RProxyMaxTries 3: the second member's 503
    # is the answer, not a made-up status.
    my $bmark = backend_mark();
    my $r = req(GET => '/two/x?status=503', headers => ['X-Id' => 'two-1']);
    my @hit = map { $_->[0] } grep { $_->[2] eq 'two-1' } backend_lines($bmark);
    ok t_cmp($r->{status}, 503, 'every member of the group answered 503: the last 503 is passed on');
    ok t_cmp(join(',', sort @hit), 'b1,b2', 'after trying each member once');
    # One request after another: past the budget and the second's 3 free
    # retries, a 503 is not retried and goes through as it is, never a
    # 502 made up because the retry the proxy counted on was refused.
    my @seq = map { req(GET => '/two/x?status=503')->{status} } 1 .. 12;
    ok t_cmp("@seq", join(' ', (503) x 12),
             'past the retry budget the member\'s 503 is the answer, not a 502');
    # One member whose kept-alive connection dies before answering a GET:
    # no other member to move on to, so a 502.
    my @st;
    for (1 .. 3) {
        push @st, req(GET => '/one/x')->{status}, req(GET => '/one/x?die=1')->{status};
    }
    ok t_cmp("@st", '200 502 200 502 200 502',
             'a group of one whose connection died before answering: 502');
}

# ---- p2c: one slow member gets few requests under concurrent load ----
{
    my $bmark = backend_mark();
    my @st = load(6, 40, sub { req(GET => '/slow/x')->{headers}{'x-backend'}[0] // 'none' });
    my %n;
    $n{$_}++ for @st;
    my $share = ($n{slow} || 0) / @st;
    t_debug(join(',', map { "$_=$n{$_}" } sort keys %n));
    ok t_cmp($share <= 0.2 ? 1 : 0, 1,
             sprintf('p2c: the slow member got %.0f%% of %d concurrent requests (at most 20%%)',
                     100 * $share, scalar @st));
}

# ---- one member killed under load ----
{
    my $emark = mark('error_log');
    my $amark = mark('access_log');
    my $bmark = backend_mark();
    my $kids = load_start(4, 150, sub {
        my ($c, $i) = @_;
        my $t0 = time;
        if ($i % 3) {
            return join ' ', 'GET', $t0, req(GET => '/kill/x')->{status};
        }
        return join ' ', 'POST', $t0,
            req(POST => '/kill/p', body => "p $c $i", headers => ['X-Id' => "k-$c-$i"])->{status};
    });
    wait_for(sub { grep({ $_->[0] eq 'b3' } backend_lines($bmark)) >= 20 }, 30);
    kill_backend('b3');
    my $killed = time;
    my @lines = map { [split / /] } load_wait($kids);
    my @gets = grep { $_->[0] eq 'GET' && $_->[1] > $killed } @lines;
    my @failed = grep { $_->[2] != 200 } @gets;
    my @early = grep { $_->[0] eq 'GET' && $_->[1] <= $killed && $_->[2] != 200 } @lines;
    t_debug(scalar(@early) . " GETs in flight at the kill failed");
    ok t_cmp(scalar(@gets) >= 50 ? 1 : 0, 1, scalar(@gets) . ' GETs sent after the kill');
    ok t_cmp(scalar(@failed), 0, 'none of them failed');
    my %n;
    $n{ $_->[2] }++ for grep { $_->[2] =~ /^k-/ } backend_lines($bmark);
    my @twice = grep { $n{$_} > 1 } sort keys %n;
    ok t_cmp("@twice", '', 'no POST body reached a backend twice');
    my @lost = grep { $_->[0] eq 'POST' && $_->[2] !~ /^(200|502|503)$/ } @lines;
    ok t_cmp(scalar(@lost), 0, 'every POST was answered 200, 502 or 503');

    # The ejection, once, for every child: after it no child connects to
    # the dead member again (a child of its own would fail 3 times first).
    my $elog = log_since('error_log', $emark);
    my @ej = $elog =~ /^(.*group kill: member [^()]+ \(127\.0\.0\.1:$bp{b3}\): up -> ejected.*)$/mg;
    ok t_cmp(scalar(@ej), 1, 'one "up -> ejected" line for the killed member');
    my $emark2 = mark('error_log');
    $amark = mark('access_log');
    my @st = load(4, 30, sub { req(GET => '/kill/x')->{status} });
    my %pids = map { /^(\d+) \/kill\// ? ($1 => 1) : () } split /\n/, log_since('access_log', $amark);
    my $tried = () = log_since('error_log', $emark2) =~ /127\.0\.0\.1:$bp{b3}/g;
    ok t_cmp(scalar(keys %pids) >= 2 ? 1 : 0, 1,
             'after the ejection, several children served the group (' . join(',', sort keys %pids) . ')');
    ok t_cmp($tried, 0, 'and none of them tried the ejected member');
}

# ---- the return of a member, ramping up over its slow start ----
{
    my $emark = mark('error_log');
    kill_backend('ramp');
    my $ok = wait_for(sub {
        req(GET => '/ramp/x');
        log_since('error_log', $emark) =~ /group ramp: member .*: up -> ejected/;
    }, 30);
    start_backend('ramp');
    # Requests one at a time until 8 s (the slow start) after its first
    # answer, and past it until 2 s and 200 requests have gone by (a busy
    # machine answers fewer a second, and 20 draws of a 1/3 share fall
    # under 0.2 one time in seven); bounded by a time and a count as well.
    my (@hits, $back, $after);
    my $deadline = time + 60;
    while (time < $deadline && @hits < 20000) {
        my $b = req(GET => '/ramp/x')->{headers}{'x-backend'}[0] // 'none';
        sleep 0.002;
        my $now = time;
        $back //= $now if $b eq 'ramp';
        push @hits, [$now, $b] if $back;
        $after++ if $back && $now >= $back + 8;
        last if $back && $now > $back + 10 && $after >= 200;
    }
    my $share = sub {
        my ($from, $to) = @_;
        my @in = grep { $_->[0] >= $back + $from && $_->[0] < $back + $to } @hits;
        return (@in ? (grep { $_->[1] eq 'ramp' } @in) / @in : 0, scalar @in);
    };
    my ($s1, $n1) = $share->(0, 4);
    my ($s2, $n2) = $share->(4, 8);
    my ($s3, $n3) = $share->(8, 60);
    t_debug(sprintf 'share of the returned member: %.2f (%d), %.2f (%d), %.2f (%d)',
            $s1, $n1, $s2, $n2, $s3, $n3);
    ok t_cmp($ok && $back ? 1 : 0, 1, 'the killed member was ejected, then came back');
    # Linear from 5% to its weight: about 0.12 of the requests in the first
    # half, 0.27 in the second, 1/3 after.
    ok t_cmp($n1 >= 50 && $s1 < 0.22 ? 1 : 0, 1,
             sprintf('first half of the slow start: a small share (%.2f of %d)', $s1, $n1));
    ok t_cmp($s2 > $s1 ? 1 : 0, 1, sprintf('growing in the second half (%.2f)', $s2));
    ok t_cmp($n3 >= 100 && $s3 > 0.2 ? 1 : 0, 1, sprintf('near its full share after (%.2f of %d)', $s3, $n3));
}

# ---- no usable member: 503 with Retry-After, then recovery ----
{
    my $emark = mark('error_log');
    kill_backend($_) for qw(a1 a2);
    my $r;
    for (1 .. 10) {
        $r = req(GET => '/down/x');
        last if $r->{status} == 503;
    }
    ok t_cmp($r->{status}, 503, 'every member down: 503');
    my $ra = $r->{headers}{'retry-after'}[0] // '';
    ok t_cmp($ra =~ /^\d+$/ && $ra >= 1 ? 1 : 0, 1, "with Retry-After ($ra)");
    ok t_cmp(log_since('error_log', $emark) =~ /group down has no usable member/ ? 1 : 0, 1,
             'and the log line naming the group');
    start_backend($_) for qw(a1 a2);
    my $back = wait_for(sub { req(GET => '/down/x')->{status} == 200 }, 30);
    ok t_cmp($back ? 1 : 0, 1, 'the group answers again once its members are back');
}
