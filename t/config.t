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
    [ 'RProxyBufferSize 10',             qr/RProxyBufferSize.*'10'/, 1 ],
    [ 'RProxyBufferSize lots',           qr/RProxyBufferSize.*'lots'/, 1 ],
    [ 'RProxyFlushInterval -2',          qr/RProxyFlushInterval.*'-2'/ ],
    [ 'RProxyTimeout 0',                 qr/RProxyTimeout.*'0'/ ],
    [ 'RProxyConnectTimeout soon',       qr/RProxyConnectTimeout.*'soon'/ ],
    [ 'RProxyIdleConnections -1',        qr/RProxyIdleConnections.*'-1'/, 1 ],
    [ 'RProxyPreserveHost maybe',        qr/RProxyPreserveHost/ ],
    [ 'RProxyAllowUpgrade h2c',          qr/RProxyAllowUpgrade: h2c/ ],
    [ 'RProxyAllowUpgrade websocket none', qr/RProxyAllowUpgrade: none/ ],
    [ 'RProxyAllowUpgrade',              qr/RProxyAllowUpgrade/ ],
    [ 'RProxyAllowUnderscoresInHeaders yes', qr/RProxyAllowUnderscoresInHeaders.*'yes'/ ],
);

plan tests => 2 * @cases + 2;

my $dir = tempdir(CLEANUP => 1);

sub check_config {
    my ($server_level, $location_level) = @_;
    my $conf = "$dir/httpd.conf";
    open my $fh, '>', $conf or die $!;
    my ($mpm_name, $mpm_path) = split ' ', $mpm;
    print $fh <<"EOC";
ServerRoot "$dir"
LoadModule $mpm_name "$mpm_path"
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
    ok t_cmp($rc != 0 ? 1 : 0, 1, "'$line' fails the config test");
    ok t_cmp($out =~ $want ? 1 : 0, 1, "and names it: " . ((split /\n/, $out)[1] || $out));
}

# The valid counterparts pass.
{
    my ($rc, $out) = check_config("RProxyBufferSize 4096\nRProxyIdleConnections 8",
        "RProxyBufferPool none\nRProxyFlushInterval -1\nRProxyTimeout 30\n"
        . "RProxyConnectTimeout 500ms\nRProxyPreserveHost On\nRProxyAddForwarded Off\n"
        . "RProxyAllowUpgrade websocket foo");
    ok t_cmp($rc, 0, 'a valid configuration passes');
    ok t_cmp($out, qr/Syntax OK/, 'Syntax OK');
}
