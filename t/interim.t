# 1xx interim responses: relayed to HTTP/1.1 clients without hop-by-hop
# fields (nor any of their fields on the final response), never to
# HTTP/1.0 clients; 100-continue relayed end to end, several 1xx in one
# backend write kept apart from the client's body.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use RProxyTest;
use Time::HiRes qw(time);

plan tests => 18;

my $final = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
my $hints = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
          . "Connection: X-Hop\r\nX-Hop: secret\r\n\r\n";

# 103 (and 102) reach an HTTP/1.1 client, hop-by-hop fields removed.
{
    my $be = raw_backend({ reply => "HTTP/1.1 102 Processing\r\n\r\n$hints$final" });
    my ($data) = raw_exchange("GET /raw/e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    $be->stop;
    my @heads = $data =~ m{^(HTTP/1\.1 \d{3}[^\r]*)\r\n}mg;
    ok t_cmp("@heads", 'HTTP/1.1 102 Processing HTTP/1.1 103 Early Hints HTTP/1.1 200 OK',
             '102 and 103 relayed before the final response');
    my ($hint_head) = $data =~ m{(HTTP/1\.1 103[^\n]*\n(?:[^\r]+\r\n)*)\r\n};
    ok t_cmp(($hint_head // '') =~ /^Link: <\/s\.css>; rel=preload\r$/m ? 1 : 0, 1,
             '103 keeps its Link field');
    ok t_cmp(($hint_head // '') =~ /X-Hop|Connection/ ? 1 : 0, 0,
             '103 loses its hop-by-hop fields');
    ok t_cmp($data =~ /\r\n\r\nok\z/ ? 1 : 0, 1, 'final body follows');
}

# Never to HTTP/1.0 clients.
{
    my $be = raw_backend({ reply => "$hints$final" });
    my ($data) = raw_exchange("GET /raw/e HTTP/1.0\r\nHost: h\r\n\r\n");
    $be->stop;
    ok t_cmp($data =~ /^HTTP\/1\.1 200 OK\r\n/ ? 1 : 0, 1,
             'HTTP/1.0 client gets the final response first');
    ok t_cmp($data =~ /103/ ? 1 : 0, 0, 'and no 103');
}

# A client that waits for 100 Continue before sending its body.
sub expect_client {
    my (%o) = @_;
    my $t0 = time;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                     Timeout => 5) or die $!;
    binmode $sock;
    print $sock "POST /raw/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
              . "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    my $sel = IO::Select->new($sock);
    my $got = '';
    while ($got !~ /\r\n\r\n/ && $sel->can_read(5)) {
        sysread($sock, $got, 4096, length $got) or last;
    }
    my $first = $got;
    my $waited = time - $t0;
    print $sock "abcd" if $got =~ /^HTTP\/1\.1 100/;
    while ($sel->can_read(5)) {
        sysread($sock, $got, 4096, length $got) or last;
    }
    return ($first, $got, $waited);
}

# Reads the request head in the scripted backend, answers 100, then reads
# the 4-byte body and answers the final response.
sub continue_backend {
    my $sock = shift;
    my $buf = '';
    sysread($sock, $buf, 4096, length $buf) while $buf !~ /\r\n\r\n/;
    syswrite $sock, "HTTP/1.1 100 Continue\r\n\r\n";
    my $body = substr($buf, index($buf, "\r\n\r\n") + 4);
    my $sel = IO::Select->new($sock);
    while (length($body) < 4 && $sel->can_read(5)) {
        sysread($sock, $body, 4096, length $body) or last;
    }
    syswrite $sock, "HTTP/1.1 200 OK\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
}

{
    my $be = raw_backend({ no_read => 1, reply => \&continue_backend });
    my ($first, $all, $waited) = expect_client();
    $be->stop;
    # Sooner than the proxy's own one-second fallback: it is the backend's.
    ok t_cmp($first =~ /^HTTP\/1\.1 100 Continue\r\n\r\n/ && $waited < 0.8 ? 1 : 0, 1,
             sprintf("the backend's 100 Continue reaches the client (%.2fs)", $waited));
    ok t_cmp($all =~ /\r\n\r\nabcd\z/ ? 1 : 0, 1, 'then the body goes through');
}

# The backend answers a final status at once: the body is never sent.
{
    my $be = raw_backend({ no_read => 1, reply => sub {
        my $sock = shift;
        my $buf = '';
        sysread($sock, $buf, 4096, length $buf) while $buf !~ /\r\n\r\n/;
        syswrite $sock, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope";
    } });
    my ($first, $all) = expect_client();
    $be->stop;
    ok t_cmp($first =~ /^HTTP\/1\.1 401 Unauthorized\r\n/ ? 1 : 0, 1,
             'final status relayed without a 100');
    ok t_cmp($all =~ /abcd/ ? 1 : 0, 0, 'the client body was never asked for');
}

# A backend that stays quiet gets the body after a short wait, and the
# Expect header was forwarded to it.
{
    my $be = raw_backend({ reply => $final });
    my ($first, $all) = expect_client();
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp($first =~ /^HTTP\/1\.1 100 Continue/ ? 1 : 0, 1, 'client told to continue');
    ok t_cmp(($req // '') =~ /^Expect: 100-continue\r$/mi ? 1 : 0, 1,
             'Expect forwarded to the backend');
    ok t_cmp(($req // '') =~ /\r\n\r\nabcd\z/ ? 1 : 0, 1, 'body reached the quiet backend');
}

# "Expect: 100-continue" with "Content-Length: 0": there is no content to
# wait for, so the backend is not asked for a 100 (RFC 9110 10.1.1: a client
# must not send the expectation without content), and answers at once.
{
    my $be = raw_backend({ reply => "HTTP/1.1 204 No Content\r\n\r\n" });
    my ($data) = raw_exchange("POST /raw/empty HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                              . "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n");
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp(($data =~ /^HTTP\/1\.1 (\d+)/m)[0], 204, 'empty body with Expect: answered');
    ok t_cmp(($req // '') =~ /^Expect:/mi ? 'Expect sent' : ($req // '') =~ /^Content-Length: 0\r$/mi
             ? 'no Expect, Content-Length: 0' : 'neither', 'no Expect, Content-Length: 0',
             'no 100-continue expectation for a zero-length body');
}

# A 100 and a 102 in one write: the body must not overwrite the 102, and
# nothing in the client body may be taken for the backend's response.
{
    my $be = raw_backend({ no_read => 1, reply => sub {
        my $s = shift;
        my $buf = '';
        sysread($s, $buf, 4096, length $buf) while $buf !~ /\r\n\r\n/;
        syswrite $s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n";
        my ($cl) = $buf =~ /Content-Length: (\d+)/i;
        my $body = substr($buf, index($buf, "\r\n\r\n") + 4);
        my $sel = IO::Select->new($s);
        while (length($body) < $cl && $sel->can_read(5)) { sysread($s, $body, 4096, length $body) or last }
        syswrite $s, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nbackend";
    } });
    my $body = ('A' x 25) . "HTTP/1.1 418 X\r\n\r\npwned!!!!" . ('Z' x 45);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(), Timeout => 5);
    print $s "POST /raw/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $got = '';
    while ($got !~ /HTTP\/1\.1 100/ && $sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    print $s $body;
    while ($sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    $be->stop;
    my $r = parse_response($got) || { status => 0, body => '' };
    ok t_cmp("$r->{status} $r->{body}", '200 backend', "the backend's response, not the client's bytes");
    ok t_cmp(join(',', @{ $r->{interim} || [] }), '100,102', '100 and 102 both relayed');
}

# A Content-Type on a 103 does not leak into the final response.
{
    my $be = raw_backend({ reply => "HTTP/1.1 103 Early Hints\r\nContent-Type: text/x-leaked\r\n\r\n"
                                  . "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    my $r = http_request(GET => '/raw/ct');
    $be->stop;
    ok t_cmp(($r->{headers}{'content-type'} || ['none'])->[0] =~ /leaked/ ? 1 : 0, 0,
             'no Content-Type from the 1xx');
}
