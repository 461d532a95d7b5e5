# RProxyRetryOnStatus for requests with a body: an idempotent request
# (PUT, DELETE, OPTIONS) whose whole body fits one buffer of the location's
# pool is held there, and when the first member answers 503 the next one
# gets the same body, byte for byte; a longer body streams as before and
# is not retried, a POST never is, and each held buffer is put back once.
# Group retrybody (t/conf/extra.conf.in): m1 answers 503 under /m1fails/,
# m2 echoes the request it read (request line, headers, body).
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use JSON::PP;

plan tests => 28;

my $m1 = Apache::Test::vars('rproxy_m1_port');
my $m2 = Apache::Test::vars('rproxy_m2_port');

sub status_json { decode_json(http_request(GET => '/rproxy-status?format=json')->{body}) }

# Requests each member of group retrybody got so far, and the server's
# buffer gets and puts.
sub figures {
    my $j = status_json();
    my ($g) = grep { $_->{name} eq 'retrybody' } @{ $j->{groups} };
    my %f = map { ($_->{key} eq "127.0.0.1:$m1" ? 'm1' : 'm2') => $_->{requests_total} }
            @{ $g->{members} };
    $f{gets} = $j->{server}{gets};
    $f{puts} = $j->{server}{puts};
    return \%f;
}
sub delta {
    my ($before, $after) = @_;
    return join ' ', map { "$_+" . ($after->{$_} - $before->{$_}) } qw(m1 m2);
}

# The member a key goes to first (the echo's Host line names it); many
# GETs, which also fill the group's retry budget.
my ($k1);
for my $k (map { "key$_" } 1 .. 60) {
    my $r = http_request(GET => '/g/retrybody/x', headers => ['X-Key' => $k]);
    $k1 //= $k if $r->{body} =~ /^Host: 127\.0\.0\.1:$m1$/m;
}
ok t_cmp($k1 ? 1 : 0, 1, 'a key whose first member is m1');
$k1 //= 'none';

# Bytes of every value, CR LF and NUL among them.
sub body_of { my $n = shift; join '', map { chr(($_ * 7 + 3) % 256) } 0 .. $n - 1 }

# The body m2 echoed: what follows the echo's blank line.
sub echoed {
    my $r = shift;
    my $i = index($r->{body}, "\n\n");
    return $i < 0 ? undef : substr($r->{body}, $i + 2);
}

# ---- retried, the body held: PUT, chunked PUT, DELETE, OPTIONS ----
for my $case (
    [PUT => 5000, 0, 'PUT with Content-Length'],
    [PUT => 20000, 777, 'chunked PUT'],
    [DELETE => 300, 0, 'DELETE with a body'],
    [OPTIONS => 64, 0, 'OPTIONS with a body'],
) {
    my ($method, $n, $chunked, $what) = @$case;
    my $body = body_of($n);
    my $before = figures();
    my $r = http_request($method => '/g/retrybody/m1fails/put', body => $body,
                         headers => ['X-Key' => $k1], $chunked ? (chunked => $chunked) : ());
    my $after = figures();
    ok t_cmp($r->{status}, 200, "$what ($n bytes): m1's 503 retried on m2, the client gets 200");
    my $got = echoed($r) // '';
    ok t_cmp(length($got) == $n && $got eq $body ? 1 : 0, 1,
             "m2 got the identical body (" . length($got) . " bytes)");
    ok t_cmp(delta($before, $after), 'm1+1 m2+1', 'each member counted once');
    if ($chunked) {
        ok t_cmp($r->{body} =~ /^Transfer-Encoding: chunked$/m ? 1 : 0, 1, 'sent on chunked to m2');
    }
}

# ---- not retried ----
{
    # Longer than the buffer (32768 bytes): streamed, and the 503 passed on.
    my $before = figures();
    my $r = http_request(PUT => '/g/retrybody/m1fails/big', body => body_of(40000),
                         headers => ['X-Key' => $k1]);
    my $after = figures();
    ok t_cmp($r->{status}, 503, 'a PUT body over the buffer size (40000 bytes) is not retried: 503');
    ok t_cmp(delta($before, $after), 'm1+1 m2+0', 'm2 got nothing');

    $before = figures();
    $r = http_request(POST => '/g/retrybody/m1fails/post', body => 'a POST body',
                      headers => ['X-Key' => $k1]);
    $after = figures();
    ok t_cmp($r->{status}, 503, 'a POST with a body is never retried on a status: 503');
    ok t_cmp(delta($before, $after), 'm1+1 m2+0', 'm2 got nothing');

    $before = figures();
    $r = http_request(POST => '/g/retrybody/m1fails/post', body => 'a POST body',
                      headers => ['X-Key' => $k1, 'Idempotency-Key' => 'abc']);
    $after = figures();
    ok t_cmp("$r->{status} " . delta($before, $after), '503 m1+1 m2+0',
             'nor one with an Idempotency-Key');

    $before = figures();
    $r = http_request(POST => '/g/retrybody/m1fails/post',
                      headers => ['X-Key' => $k1, 'Idempotency-Key' => 'abc']);
    $after = figures();
    ok t_cmp("$r->{status} " . delta($before, $after), '503 m1+1 m2+0',
             'nor one without a body, with an Idempotency-Key');

    # Without RProxyRetryOnStatus nothing is held: one buffer, not two.
    $before = figures();
    $r = http_request(PUT => '/g/retrybody-off/m1fails/put', body => body_of(100),
                      headers => ['X-Key' => $k1]);
    $after = figures();
    ok t_cmp("$r->{status} " . delta($before, $after), '503 m1+1 m2+0',
             'without RProxyRetryOnStatus: the 503 passed on');
    ok t_cmp($after->{gets} - $before->{gets}, 1, 'and one buffer got, the body streamed');
}

# ---- the bound is the location's buffer: testpool's 1234 bytes ----
{
    my $before = figures();
    my $mark = error_log_mark();
    my $body = body_of(1000);
    my $r = http_request(PUT => '/g/retrybody-small/m1fails/put', body => $body,
                         headers => ['X-Key' => $k1]);
    my $after = figures();
    ok t_cmp("$r->{status} " . delta($before, $after), '200 m1+1 m2+1',
             'RProxyBufferPool testpool: a 1000-byte PUT body is held and retried');
    ok t_cmp((echoed($r) // '') eq $body ? 1 : 0, 1, 'the same body');
    wait_for(sub { (() = error_log_since($mark) =~ /putBuf/g) >= 2 });
    my @calls = error_log_since($mark) =~ /rproxy_testpool: (getBuf|putBuf-\d+)/g;
    ok t_cmp("@calls", 'getBuf getBuf putBuf-1234 putBuf-1234',
             'two buffers got (the exchange\'s, the body\'s), each put back once');

    $before = figures();
    $mark = error_log_mark();
    $r = http_request(PUT => '/g/retrybody-small/m1fails/put', body => body_of(2000),
                      headers => ['X-Key' => $k1]);
    $after = figures();
    ok t_cmp("$r->{status} " . delta($before, $after), '503 m1+1 m2+0',
             'a 2000-byte body does not fit: streamed, not retried');
    wait_for(sub { (() = error_log_since($mark) =~ /putBuf/g) >= 2 });
    @calls = error_log_since($mark) =~ /rproxy_testpool: (getBuf|putBuf-\d+)/g;
    ok t_cmp("@calls", 'getBuf getBuf putBuf-1234 putBuf-1234',
             'its two buffers put back once each too');
}

my $end = figures();
ok t_cmp($end->{gets} - $end->{puts}, 0, 'no buffer outstanding');
