# Methods, request bodies and response bodies, byte for byte; a request body
# an input filter rewrote; many tiny backend chunks relayed as few.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

my @req_sizes = (0, 1, 32767, 32768, 32769, 10 * 1024 * 1024);
my @resp_sizes = (0, 1, 1233, 1234, 1235, 32767, 32768, 32769, 65536, 100001,
                  3 * 1024 * 1024 + 7);

plan tests => 5 * 2 + @req_sizes * 2 * 2 + @resp_sizes * 2 + 1 + 6 + 2 + 1;

my $ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

# The echo backend answers "<request line>\n<headers>\n\n<body>".
sub split_echo {
    my $body = shift;
    my $end = index($body, "\n\n");
    return ('', '') if $end < 0;
    return (substr($body, 0, $end + 1), substr($body, $end + 2));
}

for my $method (qw(GET HEAD POST PUT DELETE)) {
    my $r = http_request($method => '/be/m');
    ok t_cmp($r->{status}, 200, "$method answers 200");
    if ($method eq 'HEAD') {
        ok t_cmp($r->{raw} =~ /\r\n\r\n\z/ ? 1 : 0, 1, 'HEAD: no body bytes');
    }
    else {
        ok t_cmp(($r->{body} =~ /^(\S+ \S+)/)[0], "$method /m",
                 "$method reaches the backend as such");
    }
}

for my $size (@req_sizes) {
    my $body = pattern($size, 17);
    for my $chunked (0, 1) {
        my $how = $chunked ? 'chunked' : 'Content-Length';
        my $r = http_request(POST => '/be/echo', body => $body,
                             $chunked ? (chunked => 7001) : (),
                             timeout => 60);
        my ($head, $got) = split_echo($r->{body});
        ok t_cmp(length($got) == $size && $got eq $body, 1,
                 "$size-byte $how request body arrives byte-exact");
        my $framing = $chunked ? qr/^Transfer-Encoding: chunked$/m
                               : qr/^Content-Length: $size$/m;
        ok t_cmp($head =~ $framing ? 1 : 0, 1,
                 "$size-byte $how body framed as $how to the backend");
    }
}

for my $size (@resp_sizes) {
    for my $chunked (0, 1) {
        my $how = $chunked ? 'chunked' : 'Content-Length';
        my $q = "gen=$size" . ($chunked ? '&chunked=1' : '');
        my $r = http_request(GET => "/be/g?$q", timeout => 60);
        ok t_cmp($r->{complete} && $r->{body} eq pattern($size) ? 1 : 0, 1,
                 "$size-byte $how response arrives byte-exact");
    }
}

# HEAD keeps the Content-Length the backend announced.
{
    my $r = http_request(HEAD => '/be/h?gen=5000');
    ok t_cmp(($r->{headers}{'content-length'} || [0])->[0], 5000,
             'HEAD relays Content-Length');
}

for my $status (204, 304) {
    my $r = http_request(GET => "/be/s?status=$status");
    ok t_cmp($r->{status}, $status, "$status relayed");
    ok t_cmp($r->{raw} =~ /\r\n\r\n\z/ ? 1 : 0, 1, "$status has no body");
}

# The pool 'none' (request-pool buffers) carries bodies just the same.
{
    my $r = http_request(POST => '/pool/none/echo', body => pattern(70000));
    my (undef, $got) = split_echo($r->{body});
    ok t_cmp($got eq pattern(70000) ? 1 : 0, 1, "pool 'none' request body");
    $r = http_request(GET => '/pool/none/?gen=70000');
    ok t_cmp($r->{body} eq pattern(70000) ? 1 : 0, 1, "pool 'none' response body");
}

# An input filter (mod_deflate inflating a gzip body) changes the body's
# length: it goes to the backend chunked and whole, and nothing inside it
# is taken for a second request.
SKIP: {
    skip_rest('mod_deflate not loaded', 2) unless Apache::Test::have_module('deflate');
    my $plain = ('x' x 1000) . "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    my $gz = `printf '%s' '$plain' | gzip -c`;
    my $be = raw_backend({ reply => $ok }, { reply => $ok });
    my ($data) = raw_exchange("POST /inflate/up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        . "Content-Encoding: gzip\r\nContent-Length: " . length($gz) . "\r\n\r\n$gz");
    my @reqs = $be->requests;
    $be->stop;
    my $req = $reqs[0] // '';
    ok t_cmp($req =~ /^Transfer-Encoding: chunked\r$/m && $req !~ /^Content-Length:/mi ? 1 : 0, 1,
             'filtered body sent chunked, not with the client Content-Length');
    my ($chunks) = $req =~ /\r\n\r\n(.*)\z/s;
    my $dechunked = '';
    $dechunked .= $2 while ($chunks // '') =~ /\G([0-9a-f]+)\r\n((??{ ".{" . hex($1) . "}" }))\r\n/gcs;
    ok t_cmp($dechunked eq $plain ? 1 : 0, 1, 'the inflated body arrived whole, as one request');
}

# Many tiny chunks in one backend write go out as few client chunks (the
# relay writes what it read, not one client chunk per backend chunk).
{
    my $body = join '', map { "1\r\n" . chr(65 + $_ % 26) . "\r\n" } 0 .. 2999;
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  . $body . "0\r\n\r\n" });
    my $r = http_request(GET => '/raw/tiny');
    $be->stop;
    my $chunks = () = $r->{raw} =~ /\r\n[0-9a-f]+\r\n/g;
    ok t_cmp(length($r->{body}) == 3000 && $chunks < 100 ? 1 : 0, 1,
             "3000 one-byte chunks relayed as $chunks chunks");
}
