# HTTP/2 clients (mod_http2, curl with prior knowledge) through the proxy.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);
use RProxyTest;

my $port = Apache::Test::vars('rproxy_h2_port');
my $curl = '/usr/bin/curl';
plan tests => 7, need { 'curl with HTTP/2' => scalar(`$curl -V 2>/dev/null` =~ /HTTP2/) };

my $base = "http://127.0.0.1:$port";
my $dir = tempdir(CLEANUP => 1);

sub curl {
    my @args = @_;
    open my $fh, '-|', $curl, '-s', '--http2-prior-knowledge', '--max-time', '20', @args
        or die "curl: $!";
    binmode $fh;
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

# GET and a body-bearing POST, byte-exact, over HTTP/2.
{
    my $out = curl('-o', "$dir/get", '-w', '%{http_version} %{http_code}',
                   "$base/be/g?gen=300000");
    ok t_cmp($out, '2 200', 'GET over HTTP/2');
    my $body = do { local $/; open my $fh, '<', "$dir/get"; binmode $fh; <$fh> };
    ok t_cmp($body eq pattern(300000) ? 1 : 0, 1, '300000-byte response byte-exact');

    open my $fh, '>', "$dir/post" or die; binmode $fh; print $fh pattern(100000, 5); close $fh;
    $out = curl('--data-binary', "\@$dir/post", '-H', 'Content-Type: application/x-test',
                "$base/be/echo");
    my ($head, $got) = split /\n\n/, $out, 2;
    ok t_cmp(($got // '') eq pattern(100000, 5) ? 1 : 0, 1, '100000-byte POST body byte-exact');
    ok t_cmp(($head // '') =~ /^POST \/echo HTTP\/1\.1$/m ? 1 : 0, 1,
             'the backend gets HTTP/1.1');
}

# Trailers reach the HTTP/2 client.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        . "Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n" });
    my $out = curl('-D', '-', '-o', '/dev/null', "$base/raw/t");
    $be->stop;
    ok t_cmp($out =~ /^x-checksum: abc123\r?$/mi ? 1 : 0, 1, 'trailer delivered over HTTP/2');
}

# Many concurrent streams on one connection (h2load, from nghttp2-client).
SKIP: {
    skip 'h2load (nghttp2-client) not installed', 2 unless -x '/usr/bin/h2load';
    my $out = `/usr/bin/h2load -n 400 -c 1 -m 40 '$base/be/p?gen=50000' 2>&1`;
    ok t_cmp(($out =~ /^requests: .* (\d+) succeeded, (\d+) failed/m) ? "$1 $2" : $out,
             '400 0', '400 requests on 40 concurrent streams, none failed');
    ok t_cmp(($out =~ /\((\d+)\) data/)[0] // 0, 400 * 50000, 'every body byte arrived');
}
