# Plain proxied requests from an HTTPS client (mod_ssl in front), byte for
# byte: bodies of many TLS records both ways, chunked and close-delimited
# responses, and the backend cutting a body after the head went out.  The
# WebSocket tunnel over TLS is in t/websocket.t.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);
use RProxyTest;

my $port = Apache::Test::vars('rproxy_tls_port');
my $curl = '/usr/bin/curl';
plan tests => 8, need {
    'the TLS virtual host (t/TEST.PL makes its certificate with openssl)'
        => ($port && -e Apache::Test::vars('t_dir') . '/conf/tls/cert.pem') ? 1 : 0,
    'curl' => -x $curl };

my $base = "https://127.0.0.1:$port";
my $dir = tempdir(CLEANUP => 1);

# curl over TLS without checking the self-signed certificate; returns
# (-w output, body).
sub curl {
    my @args = @_;
    unlink "$dir/out";
    open my $fh, '-|', $curl, '-sk', '--max-time', '20', '-o', "$dir/out", @args
        or die "curl: $!";
    local $/;
    my $w = <$fh> // '';
    close $fh;
    my $body = -e "$dir/out" ? do { open my $b, '<', "$dir/out" or die; binmode $b; <$b> } : '';
    return ($w, $body);
}

for my $case ([300000, ''], [300000, '&chunked=1'], [1, '']) {
    my ($size, $extra) = @$case;
    my ($w, $body) = curl('-w', '%{http_code} %{ssl_verify_result}', "$base/be/g?gen=$size$extra");
    ok t_cmp(($w =~ /^(\d+)/)[0] . ' ' . ($body eq pattern($size) ? 'exact' : length($body) . ' bytes, differs'),
             '200 exact', "GET $size bytes" . ($extra ? ' chunked' : '') . ' over TLS');
}

# A request body of many TLS records, echoed back.
{
    open my $fh, '>', "$dir/post" or die; binmode $fh; print $fh pattern(200000, 3); close $fh;
    my ($w, $body) = curl('-w', '%{http_code}', '--data-binary', "\@$dir/post",
                          '-H', 'Content-Type: application/x-test', "$base/be/echo");
    my ($head, $got) = split /\n\n/, $body, 2;
    ok t_cmp($w, '200', 'POST over TLS answered');
    ok t_cmp(($got // '') eq pattern(200000, 3) ? 1 : 0, 1, '200000-byte request body byte-exact');
    ok t_cmp(($head // '') =~ /^x-forwarded-proto: https$/mi ? 1 : 0, 1,
             'the backend hears X-Forwarded-Proto: https');
}

# The backend cuts the body after the head: the HTTPS client must see a
# failed transfer, not a short body passed off as complete.
{
    my ($w) = curl('-w', '%{http_code} %{exitcode}', "$base/be/c?gen=200000&cut=70000");
    my ($code, $exit) = split ' ', $w;
    ok t_cmp($code, '200', 'cut body: the head was relayed');
    ok t_cmp(($exit // 0) != 0 ? 'transfer failed' : 'transfer looked complete',
             'transfer failed', 'cut body: curl reports the transfer failed');
}
