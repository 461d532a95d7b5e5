# A group member whose new connection dies before any response byte: an
# idempotent request goes to another member (RFC 9110 9.2.2; the member was
# most likely killed), a POST is never sent twice.  The scripted backend is
# the member of weight 1000, so it is nearly always picked first.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 6;

my $m1 = Apache::Test::vars('rproxy_m1_port');

{
    my $be = raw_backend({ reply => '' });         # reads, then closes
    my $r = http_request(GET => '/g/replay/x');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the GET and closed');
    ok t_cmp($r->{status}, 200, 'the GET was answered by the other member');
    ok t_cmp($r->{body}, qr/^Host: 127\.0\.0\.1:$m1$/m, 'which the Host line names');
}

{
    my $be = raw_backend({ reply => '' });
    my $r = http_request(POST => '/g/replay/p', body => 'once');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the POST and closed');
    ok t_cmp($seen[0] // '', qr/\r\n\r\nonce$/, 'with its body');
    ok t_cmp($r->{status}, 502, 'a POST whose bytes went out is never sent again: 502');
}
