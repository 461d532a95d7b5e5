# https group members (RProxyMember https://...): its own httpd
# (t/lib/RProxyOwn.pm, the suite's MPM, several children, mod_ssl with
# SSLProxyEngine on) in front of TLS backends (t/tools/tls_backend.py) it
# starts and restarts with the certificate each case needs.
#
#   - rproxy-multi.test (127.0.0.2 and .3, from the /etc/hosts lines .ci/run
#     adds; skipped without them) is two https members whose certificate
#     names only rproxy-multi.test: they verify, and get it as SNI, only if
#     the name is used, not the address connected to;
#   - bodies byte for byte through the group, requests over every member;
#   - a member whose certificate stops verifying: every request fails over
#     to the others, the log names the member and the verification error,
#     and the member is ejected for it;
#   - active checks over TLS take a member down on a bad certificate and
#     back up, with no client traffic; a group whose locations all say
#     RProxyTLSVerify off is checked without verification;
#   - http and https members in one group.
# configtest for an https member without SSLProxyEngine: t/config.t.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);
use RProxyOwn;
use RProxyTest qw(pattern);
use RProxyLive qw(python);

my $t_dir = Apache::Test::vars('t_dir');
my $certs = "$t_dir/conf/tls/backend";
my $multi = scalar(gethostbyname('rproxy-multi.test')) ? 1 : 0;
my @multi = $multi ? map { join '.', unpack 'C4', $_ }
    (gethostbyname('rproxy-multi.test'))[4 .. 5] : ();
$multi = 0 unless "@{[sort @multi]}" eq '127.0.0.2 127.0.0.3';

plan tests => 27, need {
    'backend certificates (t/TEST.PL makes them with openssl)' => -e "$certs/members.pem" ? 1 : 0,
    'mod_ssl' => -e '/usr/lib/apache2/modules/mod_ssl.so' ? 1 : 0,
    'rproxy-multi.test as 127.0.0.2 and 127.0.0.3 in /etc/hosts (.ci/run adds it)' => $multi };

my $dir = tempdir(CLEANUP => 1);
my %backend;        # name => pid

sub stop_tls {
    my $name = shift;
    my $pid = delete $backend{$name} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# A TLS backend $name on $addr:$port with certificate $cert; waits until ready.
sub start_tls {
    my ($name, $addr, $port, $cert) = @_;
    stop_tls($name);
    pipe my $r, my $w or die;
    my $pid = fork // die;
    if (!$pid) {
        close $r;
        open STDOUT, '>&', $w;
        open STDERR, '>>', "$t_dir/logs/live_stderr_log";
        exec python(), "$t_dir/tools/tls_backend.py", $port, "$certs/$cert.pem",
             "$certs/$cert.key", '--addr', $addr, '--stats', "$dir/stats.$name"
             or POSIX::_exit(127);
    }
    close $w;
    my $line = <$r>;
    die "tls_backend.py $name did not start\n" unless ($line // '') =~ /ready/;
    $backend{$name} = $pid;
}
END { local $?; stop_tls($_) for keys %backend }   # keeps the exit status

sub handshakes {
    open my $fh, '<', "$dir/stats.$_[0]" or return 0;
    local $/;
    return (JSON::PP->new->decode(<$fh> // '{}') || {})->{handshakes} // 0;
}

my $pm = RProxyOwn::free_port();    # rproxy-multi.test: 127.0.0.2 and .3
my $pi = RProxyOwn::free_port();    # https://127.0.0.1
my $pc = RProxyOwn::free_port();    # the checked member
my $po = RProxyOwn::free_port();    # checked without verification
my $ph = RProxyOwn::free_port();    # a plain http member
my $ps = RProxyOwn::free_port();    # one backend, by name and by address
start_tls('m2', '127.0.0.2', $pm, 'members');
start_tls('m3', '127.0.0.3', $pm, 'members');
start_tls('ip', '127.0.0.1', $pi, 'good');
start_tls('chk', '127.0.0.1', $pc, 'good');
start_tls('off', '127.0.0.1', $po, 'selfsigned');
start_tls('s2', '127.0.0.2', $ps, 'members');
start_tls('s3', '127.0.0.3', $ps, 'members');
my $plain = RProxyOwn::backend(addr => '127.0.0.1', port => $ph, dir => $dir);

my $h = RProxyOwn->new(conf => <<"EOC");
<IfModule !ssl_module>
    LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
</IfModule>
SSLProxyEngine on
SSLProxyCACertificateFile "$certs/ca.pem"
<RProxyGroup tg>
    RProxyMember https://rproxy-multi.test:$pm
    RProxyMember https://127.0.0.1:$pi
    RProxyEject failures=2 time=60s max-share=100%
    RProxySlowStart 0
    RProxyResolveInterval 0
</RProxyGroup>
<RProxyGroup tc>
    RProxyMember https://127.0.0.1:$pc
    RProxyHealthCheck GET /g?gen=0 interval=300ms timeout=2s rise=2 fall=2
    RProxySlowStart 0
</RProxyGroup>
<RProxyGroup toff>
    RProxyMember https://localhost:$po
    RProxyHealthCheck GET /g?gen=0 interval=300ms timeout=2s rise=2 fall=2
    RProxySlowStart 0
    RProxyResolveInterval 0
</RProxyGroup>
<RProxyGroup mix>
    RProxyMember http://127.0.0.1:$ph
    RProxyMember https://127.0.0.1:$pi
    RProxySlowStart 0
</RProxyGroup>
<RProxyGroup byname>
    RProxyMember https://rproxy-multi.test:$ps
    RProxySlowStart 0
    RProxyResolveInterval 0
</RProxyGroup>
<RProxyGroup byip>
    RProxyMember https://127.0.0.2:$ps
    RProxySlowStart 0
</RProxyGroup>
<Location "/byname/">
    SetHandler rproxy
    RProxyTarget "group://byname/"
</Location>
<Location "/byip/">
    SetHandler rproxy
    RProxyTarget "group://byip/"
</Location>
<Location "/tg/">
    SetHandler rproxy
    RProxyTarget "group://tg/"
    RProxyTimeout 5
</Location>
<Location "/tc/">
    SetHandler rproxy
    RProxyTarget "group://tc/"
</Location>
<Location "/toff/">
    SetHandler rproxy
    RProxyTarget "group://toff/"
    RProxyTLSVerify off
</Location>
<Location "/mix/">
    SetHandler rproxy
    RProxyTarget "group://mix/"
</Location>
EOC

# One request on a fresh connection: (status, body).
sub req {
    my ($method, $path, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$h->{port}", Timeout => 20)
        or return (0, '');
    binmode $s;
    print $s "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        . (defined $body ? 'Content-Length: ' . length($body) . "\r\n" : '') . "\r\n"
        . ($body // '');
    local $/;
    my $raw = <$s> // '';
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
    return ($status // 0, $rest // '');
}

# Byte for byte through the group.
{
    my @bad;
    for my $size (1, 300000, 300000, 2000000) {
        my ($st, $body) = req(GET => "/tg/g?gen=$size");
        push @bad, "$size: $st " . length($body) unless $st == 200 && $body eq pattern($size);
    }
    ok t_cmp("@bad", '', 'GETs of 1 B to 2 MB through https members, byte for byte');
    my $post = pattern(200000, 3);
    my ($st, $body) = req(POST => '/tg/echo', $post);
    ok t_cmp("$st " . ($body eq $post ? 'exact' : length($body) . ' bytes, differs'), '200 exact',
             'a POST of 200000 bytes echoed by an https member');
}

# Requests spread over the three addresses; SNI is the name, never an
# address (none for the IP literal member).
my (%by, %sni, @fail);
for (1 .. 90) {
    my ($st, $body) = req(GET => '/tg/who');
    my ($addr) = $body =~ /^addr: (\S+)$/m;
    my ($sni) = $body =~ /^sni: (.*)$/m;
    if ($st != 200 || !$addr) { push @fail, $st; next }
    $by{$addr}++;
    $sni{$addr}{$sni // '?'}++;
}
my $show = join ', ', map { "$_=$by{$_}" } sort keys %by;
ok t_cmp(scalar(@fail), 0, "90 requests answered 200 ($show)");
ok t_cmp((grep { ($by{$_} // 0) >= 10 } qw(127.0.0.1 127.0.0.2 127.0.0.3)) == 3 ? 1 : 0, 1,
         "they spread over all three members ($show)");
ok t_cmp(join(',', sort map { keys %{ $sni{$_} } } qw(127.0.0.2 127.0.0.3)),
         'rproxy-multi.test,rproxy-multi.test',
         'the name\'s two addresses got rproxy-multi.test as SNI (and verified against it)');
ok t_cmp(join(',', keys %{ $sni{'127.0.0.1'} || {} }), '',
         'the IP literal member got no SNI');

# 127.0.0.3 comes back with a certificate for another name: no request
# fails, the log names the member and the error, and it is ejected.
start_tls('m3', '127.0.0.3', $pm, 'wrongname');
{
    my $mark = $h->log_mark;
    my (%after, @bad);
    for (1 .. 40) {
        my ($st, $body) = req(GET => '/tg/who');
        my ($addr) = $body =~ /^addr: (\S+)$/m;
        if ($st == 200 && $addr) { $after{$addr}++ } else { push @bad, $st }
    }
    my $log = $h->log_since($mark);
    ok t_cmp(scalar(@bad), 0, 'with one member\'s certificate wrong, every request still gets 200');
    ok t_cmp($after{'127.0.0.3'} // 0, 0, 'none of them from that member');
    my ($line) = $log =~ /^(.*TLS handshake with https:\/\/127\.0\.0\.3:$pm refused.*)$/m;
    ok t_cmp(($line // '') =~ /group:\/\/tg\/ member https:\/\/127\.0\.0\.3:$pm: connecting: .*hostname mismatch/i ? 1 : 0, 1,
             'the log line names the member and the verification error: ' . ($line // 'none'));
    ok t_cmp($log =~ /group tg: member [^\n]*failed \(TLS handshake refused: [^\n]*hostname mismatch\); trying/i ? 1 : 0, 1,
             'and the failover to another member');
    my ($ej) = $log =~ /^(.*group tg: member https:\/\/rproxy-multi\.test:$pm 127\.0\.0\.3 \(https:\/\/127\.0\.0\.3:$pm\): up -> ejected.*)$/m;
    ok t_cmp(($ej // '') =~ /2 failures in a row \(last: TLS handshake refused: certificate verification failed \(depth 0\): hostname mismatch\)/i ? 1 : 0, 1,
             'the member is ejected for it: ' . ($ej // 'no line'));
}

# Active checks over TLS, verified: up while the certificate is good (and
# the checks did reach the backend), down when it is not, up again.
{
    RProxyOwn::wait_until(sub { handshakes('chk') >= 3 }, 10);
    ok t_cmp(handshakes('chk') >= 3 ? 1 : 0, 1,
             'the checks reach an https member over TLS (' . handshakes('chk') . ' handshakes, no client traffic)');
    my $mark = $h->log_mark;
    start_tls('chk', '127.0.0.1', $pc, 'wrongname');
    my $down = RProxyOwn::wait_until(sub { $h->log_since($mark) =~ /group tc: member [^\n]*: up -> down/ }, 10);
    my ($why) = $h->log_since($mark) =~ /group tc: member [^\n]*: up -> down: ([^\n]*)/;
    ok t_cmp($down ? 1 : 0, 1, 'a bad certificate takes the checked member down, no client traffic');
    ok t_cmp($why // '', qr/2 checks in a row failed \(last: TLS handshake refused: certificate verification failed \(depth 0\): IP address mismatch\)/,
             'the log line gives the verification error');
    my ($st) = req(GET => '/tc/who');
    ok t_cmp($st, 503, 'while down, no usable member: 503');
    $mark = $h->log_mark;
    start_tls('chk', '127.0.0.1', $pc, 'good');
    my $up = RProxyOwn::wait_until(sub { $h->log_since($mark) =~ /group tc: member [^\n]*: down -> up: 2 checks in a row passed/ }, 10);
    ok t_cmp($up ? 1 : 0, 1, 'with a good certificate again the checks bring it back');
    ($st) = req(GET => '/tc/who');
    ok t_cmp($st, 200, 'and requests reach it');
}

# A group used only where RProxyTLSVerify is off: its self-signed member
# passes its checks (they verify as its requests do) and answers.
{
    ok t_cmp(handshakes('off') >= 3 ? 1 : 0, 1, 'the unverified group is checked too (' . handshakes('off') . ' handshakes)');
    ok t_cmp($h->log_since(0) =~ /group toff: member [^\n]*-> down/ ? 'down' : 'up', 'up',
             'its self-signed member stays up');
    my ($st) = req(GET => '/toff/who');
    ok t_cmp($st, 200, 'and answers');
}

# http and https members in one group.
{
    my %got;
    for (1 .. 40) {
        my ($st, $body) = req(GET => '/mix/who');
        $got{ $st != 200 ? "status $st" : $body =~ /^addr=/ ? 'http' : $body =~ /^sni: /m ? 'https' : 'other' }++;
    }
    my $s = join ', ', map { "$_=$got{$_}" } sort keys %got;
    ok t_cmp(($got{http} // 0) + ($got{https} // 0), 40, "a mixed group answers every request ($s)");
    ok t_cmp(($got{http} // 0) >= 5 && ($got{https} // 0) >= 5 ? 1 : 0, 1, "from both kinds of member ($s)");
    my $json = $h->get('/rproxy-status?format=json');
    ok t_cmp($json =~ /"key":"https:\/\/127\.0\.0\.1:$pi"/ && $json =~ /"key":"127\.0\.0\.1:$ph"/ ? 1 : 0, 1,
             'the status page keys the https member apart (https://127.0.0.1:port)');
}

# One backend reached by a name and by an address of that name: the
# connections and TLS sessions made for the name (verified against it)
# never serve the address member, which is verified against the address,
# and which the certificate does not name.
{
    my (%name, %ip);
    for (1 .. 15) {
        $name{ (req(GET => '/byname/who'))[0] }++ for 1 .. 3;
        $ip{ (req(GET => '/byip/who'))[0] }++;
    }
    my $n = join ',', map { "$_=$name{$_}" } sort keys %name;
    my $i = join ',', map { "$_=$ip{$_}" } sort keys %ip;
    ok t_cmp($n, '200=45', 'the members by name answer (their connections stay idle)');
    ok t_cmp($ip{200} // 0, 0, "the address member never answers over them ($i)");
    ok t_cmp($ip{502} ? 1 : 0, 1, "it is refused: its certificate does not name it ($i)");
}

ok t_cmp($h->log_since(0) =~ /(exit signal [^\n]*)/ ? $1 : 'none', 'none',
         'no child process crashed (the checks run with no request)');
$h->stop;
$plain->stop;
