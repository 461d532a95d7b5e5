# A broken configuration fails `httpd -t` with a message naming the directive.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);

my $t = Apache::Test::vars('t_dir');
my $httpd = Apache::Test::vars('httpd');
my $module = "$t/../.libs/mod_rproxy.so";

# The MPM the test server loaded, so the scratch config is a valid one.
my ($mpm) = do {
    open my $fh, '<', "$t/conf/httpd.conf" or die $!;
    grep { defined } map { /^\s*LoadModule\s+(mpm_\w+)\s+"?([^"\s]+)/ ? "$1 $2" : undef } <$fh>;
};

my @cases = (
    [ 'RProxyBufferPool bogus',          qr/RProxyBufferPool.*'bogus'/ ],
    [ 'RProxyTarget ftp://h/',           qr/RProxyTarget.*'ftp:\/\/h\/'/ ],
    [ 'RProxyTarget http:///nohost',     qr/RProxyTarget/ ],
    [ 'RProxyTarget "http://u:p@h/"',    qr/RProxyTarget/ ],
    # apr_uri_parse() wraps ports into 16 bits: 99999 would reach 34463.
    [ 'RProxyTarget http://127.0.0.1:99999/', qr/RProxyTarget.*port '99999'/ ],
    [ 'RProxyTarget http://127.0.0.1:0/',     qr/RProxyTarget.*port '0'/ ],
    [ 'RProxyTarget http://127.0.0.1:65536/', qr/RProxyTarget.*port '65536'/ ],
    [ 'RProxyTarget http://127.0.0.1:-1/',    qr/RProxyTarget.*port '-1'/ ],
    # Bytes a request line cannot carry: every request would fail.
    [ 'RProxyTarget "http://127.0.0.1:1/a b/"', qr/RProxyTarget: 'http:\/\/127\.0\.0\.1:1\/a b\/'.*0x20/ ],
    [ "RProxyTarget \"http://127.0.0.1:1/a\x01b/\"", qr/RProxyTarget: 'http:\/\/127\.0\.0\.1:1\/a\\x01b\/'.*0x01/ ],
    [ "RProxyTarget \"http://127.0.0.1:1/a\x7fb/\"", qr/RProxyTarget.*0x7F/ ],
    [ "RProxyTarget \"http://127.0.0.1:1/caf\xc3\xa9/\"", qr/RProxyTarget.*0xC3.*%C3/ ],
    [ 'RProxyTarget https://127.0.0.1:1/', qr/RProxyTarget https:\/\/127\.0\.0\.1:1\/ in <Location \/x\/>.*: no TLS module is loaded/ ],
    [ "<RProxyGroup g>\n    RProxyMember https://127.0.0.1:1\n</RProxyGroup>",
      qr/RProxyMember https:\/\/127\.0\.0\.1:1 in <RProxyGroup g> of .*: no TLS module is loaded/, 1 ],
    [ 'RProxyBufferSize 10',             qr/RProxyBufferSize.*'10'/, 1 ],
    [ 'RProxyBufferSize lots',           qr/RProxyBufferSize.*'lots'/, 1 ],
    [ 'RProxyFlushInterval -2',          qr/RProxyFlushInterval.*'-2'/ ],
    [ 'RProxyTimeout 0',                 qr/RProxyTimeout.*'0'/ ],
    [ 'RProxyConnectTimeout soon',       qr/RProxyConnectTimeout.*'soon'/ ],
    [ 'RProxyIdleConnections -1',        qr/RProxyIdleConnections.*'-1'/, 1 ],
    # One idle connection set per process: a virtual host's value would be
    # ignored.
    [ "<VirtualHost 127.0.0.1:1>\n    RProxyIdleConnections 8\n</VirtualHost>",
      qr/RProxyIdleConnections.*VirtualHost.*'8'.*whole server only/, 1 ],
    [ "<VirtualHost 127.0.0.1:1>\n    RProxyIdleTimeout 10\n</VirtualHost>",
      qr/RProxyIdleTimeout.*VirtualHost.*'10'.*whole server only/, 1 ],
    [ 'RProxyStatusControl maybe',       qr/RProxyStatusControl: 'maybe' is not On or Off/ ],
    [ 'RProxyPreserveHost maybe',        qr/RProxyPreserveHost: 'maybe' is not On or Off/ ],
    [ 'RProxyAddForwarded 2',            qr/RProxyAddForwarded: '2' is not On or Off/ ],
    [ 'RProxyAllowUpgrade h2c',          qr/RProxyAllowUpgrade: h2c/ ],
    [ 'RProxyAllowUpgrade websocket none', qr/RProxyAllowUpgrade: none/ ],
    [ 'RProxyAllowUpgrade',              qr/RProxyAllowUpgrade/ ],
    [ 'RProxyAllowUnderscoresInHeaders yes', qr/RProxyAllowUnderscoresInHeaders.*'yes'/ ],
);

plan tests => 2 * @cases + 14;

my $dir = tempdir(CLEANUP => 1);

my $slotmem = "$1/mod_slotmem_shm.so" if $mpm =~ m{ (\S+)/mod_mpm_\w+\.so$};

sub check_config {
    my ($server_level, $location_level, $no_slotmem) = @_;
    my $load_slotmem = $no_slotmem ? '' : qq(LoadModule slotmem_shm_module "$slotmem");
    my $conf = "$dir/httpd.conf";
    open my $fh, '>', $conf or die $!;
    my ($mpm_name, $mpm_path) = split ' ', $mpm;
    print $fh <<"EOC";
ServerRoot "$dir"
LoadModule $mpm_name "$mpm_path"
$load_slotmem
LoadModule rproxy_module "$module"
ErrorLog "$dir/error_log"
PidFile "$dir/httpd.pid"
Listen 127.0.0.1:1
$server_level
<Location "/x/">
    SetHandler rproxy
    RProxyTarget "http://127.0.0.1:1/"
    $location_level
</Location>
EOC
    close $fh;
    my $out = `"$httpd" -t -f "$conf" 2>&1`;
    return ($? >> 8, $out);
}

for my $c (@cases) {
    my ($line, $want, $server_only) = @$c;
    my ($rc, $out) = $server_only ? check_config($line, '')
                                  : check_config('', $line);
    (my $shown = $line) =~ s/\n\s*/ /g;
    ok t_cmp($rc != 0 ? 1 : 0, 1, "'$shown' fails the config test");
    ok t_cmp($out =~ $want ? 1 : 0, 1, "and names it: " . ((split /\n/, $out)[1] || $out));
}

# The valid counterparts pass.
{
    my ($rc, $out) = check_config("RProxyBufferSize 4096\nRProxyIdleConnections 8",
        "RProxyBufferPool none\nRProxyFlushInterval -1\nRProxyTimeout 30\n"
        . "RProxyConnectTimeout 500ms\nRProxyPreserveHost On\nRProxyAddForwarded off\n"
        . "RProxyAllowUpgrade websocket foo");
    ok t_cmp($rc, 0, 'a valid configuration passes');
    ok t_cmp($out, qr/Syntax OK/, 'Syntax OK');
}
# The server directives a virtual host honours are allowed in one.
{
    my ($rc, $out) = check_config("<VirtualHost 127.0.0.1:1>\n"
        . "RProxyBufferSize 4096\nRProxyMaxResponseHeadSize 8192\n"
        . "RProxyMaxResponseHeaders 50\n</VirtualHost>", '');
    ok t_cmp($rc, 0, 'per virtual host server directives pass') or diag $out;
}
# The ends of the port range, and a percent-encoded byte, are fine.
for my $url ('http://127.0.0.1:65535/', 'http://127.0.0.1:1/caf%C3%A9/') {
    my ($rc, $out) = check_config('', "RProxyTarget \"$url\"");
    ok t_cmp($rc, 0, "RProxyTarget $url passes") or diag $out;
}

# The counters live in mod_slotmem_shm's shared memory: without it the
# config test fails and says what to load.
{
    my ($rc, $out) = check_config('', '', 1);
    ok t_cmp($rc != 0 ? 1 : 0, 1, 'without mod_slotmem_shm the config test fails');
    ok t_cmp($out, qr/needs mod_slotmem_shm/, 'and names the module') or diag $out;
}

# An https target needs SSLProxyEngine on in its server or virtual host;
# mod_ssl decides an unset one only when the server starts, so configtest
# reads what is written.
{
    my $ssl = "LoadModule ssl_module \"$1/mod_ssl.so\"\n"
        . "LoadModule socache_shmcb_module \"$1/mod_socache_shmcb.so\""
        if $slotmem =~ m{^(.*)/mod_slotmem_shm\.so$};
    my ($rc, $out) = check_config($ssl, 'RProxyTarget "https://127.0.0.1:1/"');
    ok t_cmp($rc != 0 ? 1 : 0, 1, 'an https target without SSLProxyEngine fails configtest');
    ok t_cmp($out, qr{RProxyTarget https://127\.0\.0\.1:1/ in <Location /x/>.*SSLProxyEngine on},
             'naming the target and SSLProxyEngine') or diag $out;
    ($rc, $out) = check_config("$ssl\nSSLProxyEngine on", 'RProxyTarget "https://127.0.0.1:1/"');
    ok t_cmp($rc, 0, 'with SSLProxyEngine on it passes') or diag $out;
    ($rc, $out) = check_config("$ssl\n<VirtualHost 127.0.0.1:1>\nSSLProxyEngine on\n"
        . "<Location \"/v/\">\nSetHandler rproxy\nRProxyTarget \"https://127.0.0.1:1/\"\n"
        . "</Location>\n</VirtualHost>", '');
    ok t_cmp($rc, 0, 'and in a virtual host, with it there') or diag $out;
    # An https group member: the group's server or virtual host needs it.
    my $group = "<RProxyGroup g>\nRProxyMember http://127.0.0.1:1\n"
        . "RProxyMember https://127.0.0.1:2 weight=2\n</RProxyGroup>";
    ($rc, $out) = check_config("$ssl\n$group", 'RProxyTarget "group://g/"');
    ok t_cmp($rc != 0 ? 1 : 0, 1, 'an https member without SSLProxyEngine fails configtest');
    ok t_cmp($out, qr{RProxyMember https://127\.0\.0\.1:2 in <RProxyGroup g> of .*SSLProxyEngine on},
             'naming the directive, the member and SSLProxyEngine') or diag $out;
    ($rc, $out) = check_config("$ssl\nSSLProxyEngine on\n$group", 'RProxyTarget "group://g/"');
    ok t_cmp($rc, 0, 'with SSLProxyEngine on it passes') or diag $out;
}
