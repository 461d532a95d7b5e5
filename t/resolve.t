# Member names with several addresses.  A name that resolves to several
# addresses becomes one member per address (each gets requests); with
# RProxyResolveInterval the name is looked up again while the server runs:
# an address gone is drained, a new one is added, a failed lookup keeps
# what there was.  The names come from /etc/hosts: rproxy-multi.test
# (127.0.0.2 and 127.0.0.3, added by .ci/run) for the first part; the second
# part, run as root only, adds lines of its own name (rproxy-re-PID.test) to
# /etc/hosts, changes them (atomically, by rename, under a lock) and removes
# them at the end.  The test runs its own httpd (t/lib/RProxyOwn.pm) in
# front of backends it forks on those addresses, which answer with the
# address they were reached on.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest qw(skip_rest);
use RProxyOwn;
use File::Temp qw(tempdir);
use Fcntl qw(:flock);
use Socket qw(getaddrinfo getnameinfo NI_NUMERICHOST SOCK_STREAM AF_INET);
use Time::HiRes qw(sleep time);

plan tests => 10;

my $HOSTS = '/etc/hosts';
my $re_name = "rproxy-re-$$.test";

sub addresses_of {
    my $name = shift;
    my ($err, @res) = getaddrinfo($name, 80, { socktype => SOCK_STREAM, family => AF_INET });
    return () if $err;
    my %seen;
    return grep { !$seen{$_}++ }
        map { (getnameinfo($_->{addr}, NI_NUMERICHOST))[1] } @res;
}

# Rewrites /etc/hosts with $edit applied to its lines, atomically.
sub edit_hosts {
    my $edit = shift;
    open my $lock, '>>', '/tmp/rproxy-test-hosts.lock' or return 0;
    flock $lock, LOCK_EX or return 0;
    open my $in, '<', $HOSTS or return 0;
    my @lines = $edit->(<$in>);
    close $in;
    my $mode = (stat $HOSTS)[2] & 07777;
    my $tmp = "$HOSTS.rproxy-test.$$";
    open my $out, '>', $tmp or return 0;
    print $out @lines;
    close $out or return 0;
    chmod $mode, $tmp;
    rename $tmp, $HOSTS or do { unlink $tmp; return 0 };
    return 1;
}

my $added = 0;
sub remove_ours { edit_hosts(sub { grep { !/\s\Q$re_name\E\s*$/ } @_ }) if $added; $added = 0 }
END { remove_ours() }

# The backends: one port, on every address the test may use.
my $dir = tempdir(CLEANUP => 1);
my ($port, @be);
for my $try (1 .. 5) {
    $port = RProxyOwn::free_port();
    @be = eval { map { RProxyOwn::backend(addr => $_, port => $port, dir => $dir) }
                 qw(127.0.0.2 127.0.0.3 127.0.0.4) };
    last if @be == 3;
    $_->stop for @be;
}
die "no port free on 127.0.0.2-4" unless @be == 3;

my @multi = addresses_of('rproxy-multi.test');
my $can_edit = $> == 0 && -w $HOSTS
    && edit_hosts(sub { (@_, "127.0.0.2 $re_name\n", "127.0.0.3 $re_name\n") });
$added = $can_edit;
my $multi_conf = @multi >= 2 ? <<"EOC" : '';
<RProxyGroup multi>
    RProxyMember http://rproxy-multi.test:$port
    RProxyBalance round-robin
    RProxySlowStart 0
    RProxyResolveInterval 0
</RProxyGroup>
<Location "/multi/">
    SetHandler rproxy
    RProxyTarget "group://multi/"
</Location>
EOC
my $re_conf = $can_edit ? <<"EOC" : '';
<RProxyGroup re>
    RProxyMember http://$re_name:$port
    RProxyBalance round-robin
    RProxySlowStart 0
    RProxyResolveInterval 1s
</RProxyGroup>
<Location "/re/">
    SetHandler rproxy
    RProxyTarget "group://re/"
</Location>
EOC
my $h = RProxyOwn->new(conf => $multi_conf . $re_conf);

# The addresses 30 requests to $path reached, each at least 5 times (round
# robin is per child), and how many requests failed.
sub spread {
    my $path = shift;
    my (%by, $failed);
    for my $i (1 .. 30) {
        my $r = $h->get("$path$i");
        if ($r =~ m{^HTTP/1\.1 200 .*^addr=(\S+)}ms) { $by{$1}++ } else { $failed++ }
    }
    t_debug(join ' ', map { "$_=$by{$_}" } sort keys %by);
    return (join(' ', map { $by{$_} >= 5 ? $_ : "$_(only $by{$_})" } sort keys %by),
            $failed || 0);
}

SKIP: {
    skip_rest("rproxy-multi.test resolves to " . (join(', ', @multi) || 'nothing')
              . ", not 2 addresses: add '127.0.0.2 rproxy-multi.test' and "
              . "'127.0.0.3 rproxy-multi.test' to /etc/hosts (.ci/run does)", 2)
        unless @multi >= 2;
    my ($spread, $failed) = spread('/multi/x');
    ok t_cmp($spread, '127.0.0.2 127.0.0.3',
             'a name with two addresses is two members, round robin');
    ok t_cmp($failed, 0, 'no request failed');
}

SKIP: {
    skip_rest("re-resolution: changing /etc/hosts needs root", 7) unless $can_edit;
    my ($spread, $failed) = spread('/re/a');
    ok t_cmp($spread, '127.0.0.2 127.0.0.3', "$re_name: two members");

    # 127.0.0.3 leaves the name, 127.0.0.4 joins it.
    my $mark = $h->log_mark;
    edit_hosts(sub { map { s/^127\.0\.0\.3(\s+\Q$re_name\E)/127.0.0.4$1/; $_ } @_ });
    my $changed = RProxyOwn::wait_until(sub {
        my $log = $h->log_since($mark);
        $log =~ /\(127\.0\.0\.3:$port\): up -> gone: the name no longer has this address/
            && $log =~ /\(127\.0\.0\.4:$port\): gone -> up: a new address of the name/
    }, 10);
    ok t_cmp($changed ? 1 : 0, 1, 'the change is noticed within the interval: one address drained, one added');
    my @lines = $h->log_since($mark) =~ /group re: member ([^\n]*-> [^\n]*)/g;
    ok t_cmp(scalar(@lines), 2, 'one log line per change (' . join(' | ', @lines) . ')');
    ($spread, $failed) = spread('/re/b');
    ok t_cmp($spread, '127.0.0.2 127.0.0.4', 'requests go to the new address, none to the old');
    ok t_cmp($failed, 0, 'no request failed');

    # The name stops resolving: its addresses stay.
    remove_ours();
    $mark = $h->log_mark;
    RProxyOwn::wait_until(sub { $h->log_since($mark) =~ /cannot resolve \Q$re_name\E again/ }, 10);
    ($spread, $failed) = spread('/re/c');
    ok t_cmp($h->log_since($mark), qr/group re: member [^\n]*: cannot resolve \Q$re_name\E again; keeping its addresses/,
             'a failed lookup is logged');
    ok t_cmp($spread, '127.0.0.2 127.0.0.4', 'and keeps the addresses it had');
}
$h->stop;
$_->stop for @be;

# configtest names the directive and the value.
{
    my $t = Apache::Test::vars('t_dir');
    my $mpm = RProxyOwn::mpm_line();
    open my $fh, '>', "$dir/bad.conf" or die $!;
    print $fh <<"EOC";
ServerRoot "$dir"
$mpm
LoadModule slotmem_shm_module /usr/lib/apache2/modules/mod_slotmem_shm.so
LoadModule rproxy_module "$t/../.libs/mod_rproxy.so"
<RProxyGroup bad>
    RProxyMember http://localhost:$port
    RProxyResolveInterval soon
</RProxyGroup>
EOC
    close $fh;
    my $httpd = Apache::Test::vars('httpd');
    my $out = `$httpd -t -f $dir/bad.conf 2>&1`;
    ok t_cmp($out, qr/RProxyResolveInterval: 'soon' is not a positive timeout/,
             'configtest: a bad interval names the directive and the value');
}
