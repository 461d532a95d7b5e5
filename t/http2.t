# HTTP/2 clients (mod_http2, curl with prior knowledge) through the proxy.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);
use RProxyTest;

my $port = Apache::Test::vars('rproxy_h2_port');
my $curl = '/usr/bin/curl';
plan tests => 11, need { 'curl with HTTP/2' => scalar(`$curl -V 2>/dev/null` =~ /HTTP2/) };

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
    skip_rest('h2load (nghttp2-client) not installed', 2) unless -x '/usr/bin/h2load';
    my $out = `/usr/bin/h2load -n 400 -c 1 -m 40 '$base/be/p?gen=50000' 2>&1`;
    ok t_cmp(($out =~ /^requests: .* (\d+) succeeded, (\d+) failed/m) ? "$1 $2" : $out,
             '400 0', '400 requests on 40 concurrent streams, none failed');
    ok t_cmp(($out =~ /\((\d+)\) data/)[0] // 0, 400 * 50000, 'every body byte arrived');
}

# A backend that fails after the head went out: the HTTP/2 client sees that
# stream reset (RST_STREAM), never a short body ended as if complete, and a
# stream running beside it on the same connection completes.  nghttp shows
# the frames (curl 7.88 refuses to reuse a connection after a reset stream).
sub h2_frames {
    my @urls = @_;
    my (%path, %rst, %end, %bytes, $goaway, $cur);
    for (`/usr/bin/nghttp -nv -t 20 @urls 2>&1`) {
        if (/send HEADERS frame <.*stream_id=(\d+)>/) { $cur = $1 }
        elsif (/^\s+:path: (\S+)/ && defined $cur) { $path{$cur} = $1 }
        elsif (/recv RST_STREAM frame <.*stream_id=(\d+)>/) { $rst{$1} = 1 }
        elsif (/recv DATA frame <length=(\d+), flags=0x(\w+), stream_id=(\d+)>/) {
            $bytes{$3} += $1;
            $end{$3} = 1 if hex($2) & 1;
        }
        elsif (/recv GOAWAY/) { $goaway = 1 }
    }
    my %by_path;
    for my $id (keys %path) {
        $by_path{$path{$id}} = ($rst{$id} ? 'reset' : $end{$id} ? 'complete' : 'open')
            . ' ' . ($bytes{$id} // 0);
    }
    $by_path{goaway} = $goaway ? 1 : 0;
    return \%by_path;
}
SKIP: {
    skip_rest('nghttp (nghttp2-client) not installed', 4) unless -x '/usr/bin/nghttp';
    for my $case (['length', "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"],
                  ['chunked', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              . "a\r\n0123456789\r\n"]) {
        my ($what, $reply) = @$case;
        my $be = raw_backend({ reply => $reply });
        my $f = h2_frames("$base/raw/cut", "$base/be/after?gen=5000");
        $be->stop;
        # The 10 bytes may still sit in httpd's buffers when the reset comes.
        ok t_cmp($f->{'/raw/cut'} // 'no stream', qr/^reset (0|10)$/,
                 "$what body cut by the backend: at most its 10 bytes, then the stream is reset");
        ok t_cmp(($f->{'/be/after?gen=5000'} // 'no stream') . " goaway $f->{goaway}",
                 'complete 5000 goaway 0', "$what: the stream beside it completes");
    }
}
