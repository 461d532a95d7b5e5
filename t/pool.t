# The buffer-pool contract of mod_rproxy.h, through pools another module
# registers (t/c-modules/rproxy_testpool): every buffer got is put back once
# with its length; a get() answering NULL means a request-pool buffer and
# no put().
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 9 + 4;

# A third-party pool handing out 1234-byte buffers: a body that fits one
# buffer costs one get and one put, in that order, and the put gives back the length the get handed out.
{
    my $mark = error_log_mark();
    my $r = http_request(GET => '/pool/test/?say=hi');
    ok t_cmp($r->{status}, 200, 'testpool request answers 200');
    ok t_cmp($r->{body}, 'hi', 'body through the testpool');
    wait_for(sub { error_log_since($mark) =~ /putBuf/ });
    my @calls = error_log_since($mark) =~ /rproxy_testpool: (getBuf|putBuf-\d+)/g;
    ok t_cmp("@calls", 'getBuf putBuf-1234', 'exactly getBuf then putBuf-1234');
}

# A body of many buffers still costs one get and one put.
{
    my $mark = error_log_mark();
    my $r = http_request(GET => '/pool/test/?gen=100000');
    ok t_cmp(length($r->{body}) == 100000 && $r->{body} eq pattern(100000), 1,
             '100000 bytes through 1234-byte buffers, byte-exact');
    wait_for(sub { error_log_since($mark) =~ /putBuf/ });
    my @calls = error_log_since($mark) =~ /rproxy_testpool: (getBuf|putBuf-\d+)/g;
    ok t_cmp("@calls", 'getBuf putBuf-1234', 'one get, one put for a long body');
}

# A pool whose get answers NULL: the module uses the request pool and never
# calls put.
{
    my $mark = error_log_mark();
    my $s = session();              # one process sees it all, any MPM
    my $before = $s->counters;
    my (undef, $body) = $s->get('/pool/null/?gen=40000');
    ok t_cmp($body eq pattern(40000), 1, 'body with a NULL-answering pool');
    my $log = error_log_since($mark);
    ok t_cmp(scalar(() = $log =~ /nullGet/g), 1, 'get asked once');
    ok t_cmp(scalar(() = $log =~ /nullPut/g), 0, 'put never called');
    my $after = $s->counters;
    ok t_cmp($after->{fallback_buffers} - $before->{fallback_buffers}, 1,
             'one request-pool buffer counted');
}

# A pool whose get hands out a buffer of length 0: useless, so it goes back
# at once, exactly once and with length 0, and the request is served from
# a request-pool buffer; gets and puts balance.
{
    my $mark = error_log_mark();
    my $s = session();
    my $before = $s->counters;
    my (undef, $body) = $s->get('/pool/zero/?gen=40000');
    ok t_cmp($body eq pattern(40000), 1, 'body with a zero-length buffer from the pool');
    wait_for(sub { error_log_since($mark) =~ /zeroPut/ });
    my @calls = error_log_since($mark) =~ /rproxy_testpool: (zeroGet|zeroPut-\d+)/g;
    ok t_cmp("@calls", 'zeroGet zeroPut-0', 'got once, put back exactly once with length 0');
    my $after = $s->counters;
    ok t_cmp($after->{fallback_buffers} - $before->{fallback_buffers}, 1,
             'served from one request-pool buffer');
    ok t_cmp(($after->{gets} - $before->{gets}) - ($after->{puts} - $before->{puts}), 0,
             'gets and puts balance');
}
