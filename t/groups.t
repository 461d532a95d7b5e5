# Backend groups on the test server (conf/extra.conf.in, "backend
# groups"): three members, the virtual hosts rproxy_m1..3 serving the test
# backend, whose echo's Host line names the member that answered.  How
# requests spread by weight (round robin and p2c), hash affinity, and a
# group with no usable member.  Members that die, ejection, slow start and
# retries: t/failover.t.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 11;

my %member = map { Apache::Test::vars("rproxy_m${_}_port") => "m$_" } 1 .. 3;

# The member a response came from, by the Host line of the echo.
sub member_of {
    my $r = shift;
    return 'failed' unless $r->{status} == 200;
    my ($port) = $r->{body} =~ /^Host: 127\.0\.0\.1:(\d+)\r?$/m;
    return $port && $member{$port} ? $member{$port} : 'unknown';
}

# $n requests on one keep-alive connection would pin nothing (a group
# picks per request), but fresh connections spread over the children of
# prefork too, which is what a server sees.
sub spread {
    my ($path, $n) = @_;
    my %c = (m1 => 0, m2 => 0, m3 => 0);
    $c{ member_of(http_request(GET => $path)) }++ for 1 .. $n;
    return \%c;
}
sub show { my $c = shift; join ', ', map { "$_=$c->{$_}" } sort keys %$c }

my $n = 3000;
my %weight = (m1 => 3, m2 => 2, m3 => 1);

# Smooth weighted round robin is exact in each process: 3,000 requests
# give 1,500 / 1,000 / 500, give or take a few per child.  +-5% of each.
{
    my $c = spread('/g/rr/x', $n);
    t_debug('round-robin: ' . show($c));
    for my $m (qw(m1 m2 m3)) {
        my $want = $n * $weight{$m} / 6;
        ok t_cmp(abs($c->{$m} - $want) <= 0.05 * $want ? 1 : 0, 1,
                 "round-robin, weight $weight{$m}: $c->{$m} of $n (want $want +-5%)");
    }
}

# p2c with one request at a time: every member has nothing in flight, so
# the first of the two random picks wins and requests follow the weights
# at random.  A member's count is binomial (sd at most 27 of 3,000, under
# 1%), so each share is held within +-5 points of weight/6: over 5 sd, a
# false failure well under one in a million, and equal shares (33% each,
# 17 points off for m1) fail it.
{
    my $c = spread('/g/p2c/x', $n);
    t_debug('p2c: ' . show($c));
    for my $m (qw(m1 m2 m3)) {
        my $share = $c->{$m} / $n;
        my $want = $weight{$m} / 6;
        ok t_cmp(abs($share - $want) <= 0.05 ? 1 : 0, 1,
                 sprintf('p2c, weight %d: %.1f%% (want %.1f%% +-5 points)',
                         $weight{$m}, 100 * $share, 100 * $want));
    }
}

# Hash on a header: a key keeps its member; the keys spread over all three.
{
    my (%first, $same);
    for my $k (1 .. 200) {
        $first{$k} = member_of(http_request(GET => '/g/hashed/x',
                                            headers => ['X-User' => "u$k"]));
    }
    $same = grep {
        member_of(http_request(GET => '/g/hashed/x', headers => ['X-User' => "u$_"]))
            eq $first{$_}
    } 1 .. 200;
    my %used;
    $used{$_}++ for values %first;
    t_debug('hash: ' . show(\%used));
    ok t_cmp($same, 200, 'hash header: each of 200 keys went to the same member twice');
    ok t_cmp(join(',', sort grep { /^m\d$/ } keys %used), 'm1,m2,m3',
             'and the keys spread over all three members');
}

# A group whose only member refuses connections: once it is ejected
# (failures=1, max-share=100%), 503 with Retry-After and one log line.
{
    my $mark = error_log_mark();
    my $r;
    for (1 .. 5) {
        $r = http_request(GET => '/g/alldead/x');
        last if $r->{status} == 503;
    }
    ok t_cmp($r->{status}, 503, 'no usable member: 503');
    my $ra = $r->{headers}{'retry-after'}[0] // '';
    ok t_cmp($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 31 ? 1 : 0, 1,
             "Retry-After in seconds, until the ejection ends ($ra)");
    ok t_cmp(error_log_since($mark) =~ /group alldead has no usable member/ ? 1 : 0, 1,
             'the error log names the group');
}
