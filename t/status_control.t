# Draining and enabling a group member at run time, by a POST to a status
# location with RProxyStatusControl On: only POST changes anything, only
# with the nonce, only where the location says so (and has a Require, or
# the config test fails); a drained member gets no new request while the
# one in flight finishes; every change is logged.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use JSON::PP;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(sleep);

plan tests => 28;

my $m1 = Apache::Test::vars('rproxy_m1_port');
my $m2 = Apache::Test::vars('rproxy_m2_port');
my $t = Apache::Test::vars('t_dir');

sub json_of { JSON::PP->new->decode(http_request(GET => "$_[0]?format=json")->{body}) }

# The port of the member that answered a request to group drainme with
# X-Key: $key (the echo's Host line is the member's host:port).
sub member_for {
    my ($key, $path) = @_;
    my $r = http_request(GET => '/g/drainme/' . ($path // 'x'), headers => ['X-Key' => $key]);
    return $r->{body} =~ /^Host: 127\.0\.0\.1:(\d+)$/m ? $1 : "status $r->{status}";
}

sub state_of {
    my ($port) = @_;
    my ($line) = grep { /^member: .* group=drainme .*address=127\.0\.0\.1:$port / }
        split /\n/, http_request(GET => '/rproxy-status')->{body};
    return $line ? { $line =~ /(\w+)=(\S+)/g } : {};
}

sub post {
    my ($path, $form) = @_;
    return http_request(POST => $path, body => $form,
                        headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
}

my $c = json_of('/rproxy-control');
my $nonce = $c->{control}{nonce} // '';
ok t_cmp($c->{control}{enabled} && $nonce =~ /^[0-9a-f]{32}$/ ? 1 : 0, 1,
         'the controlling location\'s JSON has the nonce');
my $plain = json_of('/rproxy-status');
ok t_cmp(!$plain->{control}{enabled} && !exists $plain->{control}{nonce} ? 1 : 0, 1,
         'a status location without RProxyStatusControl shows none');

# Keys that hash to each member.
my (%key_of);
for my $k (map { "k$_" } 1 .. 60) {
    my $port = member_for($k);
    $key_of{$port} //= $k;
    last if $key_of{$m1} && $key_of{$m2};
}
ok t_cmp($key_of{$m1} && $key_of{$m2} ? 1 : 0, 1, 'keys found for both members');
my $k2 = $key_of{$m2} // 'none';
my $drain = "action=drain&group=drainme&member=127.0.0.1:$m2&nonce=$nonce";

# Refused: no RProxyStatusControl here, no nonce, a wrong nonce; and GET
# never changes anything.
{
    my $mark = error_log_mark();
    my $r = post('/rproxy-status', $drain);
    ok t_cmp($r->{status}, 403, 'POST where RProxyStatusControl is not On: 403');
    ok t_cmp(error_log_since($mark), qr/status POST from 127\.0\.0\.1 refused: RProxyStatusControl is not On for \/rproxy-status/,
             'and a log line saying why');
    $mark = error_log_mark();
    $r = post('/rproxy-control', "action=drain&group=drainme&member=127.0.0.1:$m2");
    ok t_cmp($r->{status}, 403, 'POST without the nonce: 403');
    ok t_cmp(error_log_since($mark), qr/status POST from 127\.0\.0\.1 refused: no nonce/, 'logged');
    $mark = error_log_mark();
    $r = post('/rproxy-control', "action=drain&group=drainme&member=127.0.0.1:$m2&nonce=0123456789abcdef0123456789abcdef");
    ok t_cmp($r->{status}, 403, 'POST with a wrong nonce: 403');
    ok t_cmp(error_log_since($mark), qr/refused: wrong nonce/, 'logged');
    $r = http_request(GET => "/rproxy-control?$drain");
    ok t_cmp($r->{status}, 200, 'a GET with the same fields is just the page');
    ok t_cmp(state_of($m2)->{state} // 'none', 'up', 'and nothing of it was drained');
    ok t_cmp(post('/rproxy-control', "action=stop&group=drainme&member=127.0.0.1:$m2&nonce=$nonce")->{status},
             400, 'an unknown action: 400');
    ok t_cmp(post('/rproxy-control', "action=drain&group=drainme&member=127.0.0.1:1&nonce=$nonce")->{status},
             404, 'an unknown member: 404');
}

# Drain with a request in flight to the member: it finishes; no new one
# goes there.  The request takes 6 s: under prefork (3 processes at most
# here) it holds two of them, the proxy's and the backend's, and the page
# that must show it in flight waits for the third to be started.
{
    my $out = "$t/logs/status_control.$$";
    unlink $out;
    my $kid = fork // die "fork: $!";
    if (!$kid) {
        my $port = member_for($k2, 'slow?sleep=6000');
        open my $fh, '>', $out or POSIX::_exit(1);
        print $fh $port;
        close $fh;
        POSIX::_exit(0);
    }
    my $busy = wait_for(sub { (state_of($m2)->{in_flight} // 0) >= 1 }, 10);
    ok t_cmp($busy ? 1 : 0, 1, 'a slow request is in flight to the member');
    my $mark = error_log_mark();
    my $r = post('/rproxy-control', $drain);
    ok t_cmp($r->{status}, 200, 'the drain POST is taken');
    ok t_cmp($r->{body}, qr/up -> draining/, 'and says what changed');
    ok t_cmp(error_log_since($mark),
             qr/group drainme: member http:\/\/127\.0\.0\.1:$m2 127\.0\.0\.1 \(127\.0\.0\.1:$m2\): up -> draining: drained by 127\.0\.0\.1/,
             'one log line: group, member, old and new state, who');
    my $st = state_of($m2);
    ok t_cmp("$st->{state} $st->{in_flight}", 'draining 1', 'the page shows it draining, its request still in flight');
    my @went = map { member_for($_ % 2 ? $k2 : "other$_") } 1 .. 20;
    ok t_cmp(scalar(grep { $_ ne $m1 } @went), 0, 'no new request goes to the drained member, not even its key\'s')
        or diag("@went");
    waitpid $kid, 0;
    my $port = do { local (@ARGV, $/) = $out; <> } // 'nothing';
    unlink $out;
    ok t_cmp($port, $m2, 'the request in flight finished, answered by the drained member');

    $mark = error_log_mark();
    $r = post('/rproxy-control', "action=enable&group=drainme&member=http://127.0.0.1:$m2 127.0.0.1&nonce=$nonce");
    ok t_cmp($r->{status} . ' ' . ($r->{body} =~ /draining -> up/ ? 'changed' : $r->{body}), '200 changed',
             'enable, naming the member as the page does');
    ok t_cmp(error_log_since($mark), qr/\(127\.0\.0\.1:$m2\): draining -> up: enabled by 127\.0\.0\.1/, 'logged');
    ok t_cmp(member_for($k2), $m2, 'its key goes to it again');
}

# The config test: RProxyStatusControl On needs a Require in its section.
{
    my $dir = tempdir(CLEANUP => 1);
    my $httpd = Apache::Test::vars('httpd');
    my ($mpm) = do {
        open my $fh, '<', "$t/conf/httpd.conf" or die $!;
        grep { defined } map { /^\s*LoadModule\s+(mpm_\w+\s+"?[^"\s]+)/ ? $1 : undef } <$fh>;
    };
    my ($mods) = $mpm =~ m{"?(\S+)/mod_mpm_\w+\.so};
    my $check = sub {
        my ($section) = @_;
        open my $fh, '>', "$dir/httpd.conf" or die $!;
        print $fh <<"EOC";
ServerRoot "$dir"
LoadModule $mpm
LoadModule slotmem_shm_module "$mods/mod_slotmem_shm.so"
LoadModule authz_core_module "$mods/mod_authz_core.so"
LoadModule rproxy_module "$t/../.libs/mod_rproxy.so"
ErrorLog "$dir/error_log"
PidFile "$dir/httpd.pid"
Listen 127.0.0.1:1
<Location "/ctl">
    SetHandler rproxy-status
$section
</Location>
EOC
        close $fh;
        my $o = `"$httpd" -t -f "$dir/httpd.conf" 2>&1`;
        return ($? >> 8, $o);
    };
    my ($rc, $o) = $check->("    RProxyStatusControl On");
    ok t_cmp($rc != 0 ? 1 : 0, 1, 'RProxyStatusControl On without a Require fails the config test');
    ok t_cmp($o, qr/RProxyStatusControl On .*<Location "\/ctl">.*no Require/, 'naming the directive and its section');
    ($rc, $o) = $check->("    RProxyStatusControl On\n    Require all granted");
    ok t_cmp($rc, 0, 'with a Require it passes') or diag($o);
    ($rc, $o) = $check->("    RProxyStatusControl On\n    <RequireAny>\n        Require all denied\n    </RequireAny>");
    ok t_cmp($rc, 0, 'a <RequireAny> counts') or diag($o);
}

# The page with the Drain buttons may not be framed by another site: one
# click on a button drains a member, so a page that laid the control view
# under its own (clickjacking) could make an admin drain one unknowingly.
# The nonce does not help there: the framed page reads it itself.
{
    my $page = http_request(GET => '/rproxy-control?format=html');
    ok t_cmp(($page->{headers}{'content-security-policy'} || [''])->[0],
             qr/frame-ancestors 'none'/, 'control view refuses to be framed');
}
