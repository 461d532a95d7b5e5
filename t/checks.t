# Active health checks (RProxyHealthCheck): a member whose check fails
# `fall` times in a row goes down, and comes back after `rise` passes, with
# no client traffic at all; the checks run once for the whole server (one
# mod_watchdog singleton), not once per child.  The test runs its own httpd
# with several children (t/lib/RProxyOwn.pm) in front of a backend it
# forks, whose answer to the check it flips through a file.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyOwn;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

plan tests => 11;

my $dir = tempdir(CLEANUP => 1);
my $bport = RProxyOwn::free_port();
my $be = RProxyOwn::backend(addr => '127.0.0.1', port => $bport, dir => $dir);

# timeout=5s: on a loaded machine a check answered late is still judged by
# its status, which the down line below must name.
my $h = RProxyOwn->new(conf => <<"EOC");
<RProxyGroup chk>
    RProxyMember http://127.0.0.1:$bport
    RProxyHealthCheck GET /health?from=rproxy interval=500ms timeout=5s rise=2 fall=2 status=200-299
    RProxySlowStart 0
</RProxyGroup>
<Location "/g/">
    SetHandler rproxy
    RProxyTarget "group://chk/"
</Location>
EOC

sub checks_between {
    my ($from, $to) = @_;
    return scalar grep { $_->[0] >= $from && $_->[0] < $to
                         && $_->[1] eq '/health?from=rproxy' }
        RProxyOwn::requests_of($dir, '127.0.0.1');
}

# Once per server: over 4 s at 500 ms, about 8 checks, however many
# children there are (once per child would be 3-4 times that).
my $t0 = time;
sleep 5;
my $children = $h->children;
my $n = checks_between($t0 + 1, $t0 + 5);
ok t_cmp($children >= 3 ? 1 : 0, 1, "the server runs several children ($children)");
ok t_cmp($n >= 5 && $n <= 11 ? 1 : 0, 1,
         "$n checks in 4 s at interval=500ms: once per server, not per child");
my @other = grep { $_->[1] ne '/health?from=rproxy' }
    RProxyOwn::requests_of($dir, '127.0.0.1');
ok t_cmp(scalar(@other), 0, 'the backend saw only checks (no client traffic)');

# The backend starts failing its check: down after 2 failures, no traffic.
my $mark = $h->log_mark;
{ open my $fh, '>', "$dir/status" or die $!; print $fh "503\n"; }
my $down = RProxyOwn::wait_until(sub { $h->log_since($mark) =~ /member .*: up -> down: (.*)/ }, 10);
my ($why) = $h->log_since($mark) =~ /group chk: member [^\n]*: up -> down: ([^\n]*)/;
ok t_cmp($down ? 1 : 0, 1, 'failing checks take the member down with no client traffic');
ok t_cmp($why // '', qr/2 checks in a row failed \(last: status 503, not 200-299\)/,
         'the log line says why');
my @lines = $h->log_since($mark) =~ /(member [^\n]*-> [^\n]*)/g;
ok t_cmp(scalar(@lines), 1, 'one log line for the change');
ok t_cmp($h->get('/g/x') =~ m{^HTTP/1\.1 503 .*^Retry-After: }ms ? 1 : 0, 1,
         'a request finds no usable member: 503 from the proxy');

# It passes again: up after 2 passes.
$mark = $h->log_mark;
unlink "$dir/status";
my $up = RProxyOwn::wait_until(sub { $h->log_since($mark) =~ /group chk: member .*: down -> up: 2 checks in a row passed/ }, 10);
ok t_cmp($up ? 1 : 0, 1, 'passing checks bring it back with no client traffic');
ok t_cmp($h->get('/g/x') =~ m{^HTTP/1\.1 200 } ? 1 : 0, 1, 'and requests reach it again');
$h->stop;

# configtest names the directive and the value.
{
    my $conf = "$dir/bad.conf";
    open my $fh, '>', $conf or die $!;
    my $t = Apache::Test::vars('t_dir');
    my $mpm = RProxyOwn::mpm_line();
    print $fh <<"EOC";
ServerRoot "$dir"
$mpm
LoadModule slotmem_shm_module /usr/lib/apache2/modules/mod_slotmem_shm.so
LoadModule rproxy_module "$t/../.libs/mod_rproxy.so"
<RProxyGroup bad>
    RProxyMember http://127.0.0.1:$bport
    RProxyHealthCheck GET /health fall=zero
</RProxyGroup>
EOC
    close $fh;
    my $httpd = Apache::Test::vars('httpd');
    my $out = `$httpd -t -f $conf 2>&1`;
    ok t_cmp($out, qr/RProxyHealthCheck: 'zero' is not a count of failures/,
             'configtest: a bad option names the directive and the value');
    open $fh, '>', $conf or die $!;
    print $fh <<"EOC";
ServerRoot "$dir"
$mpm
LoadModule rproxy_module "$t/../.libs/mod_rproxy.so"
RProxyHealthCheck GET /health
EOC
    close $fh;
    $out = `$httpd -t -f $conf 2>&1`;
    ok t_cmp($out, qr/RProxyHealthCheck is only allowed inside <RProxyGroup>/,
             'configtest: only inside <RProxyGroup>');
}
