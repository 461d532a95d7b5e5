# A group member whose new connection dies before any response byte: an
# idempotent request goes to another member (RFC 9110 9.2.2; the member was
# most likely killed), a POST is never sent twice.  The same for a member
# that dies in the middle of its response, or of its head, while none of
# it has reached the client yet: the client gets the other member's answer and nothing of the
# dead one's head (its fields, its type, its trailer announcement).  The scripted backend is
# the member of weight 1000, so it is nearly always picked first.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use IO::Select;
use IO::Socket::INET;

plan tests => 27;

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

# The whole head, then the member dies (SIGKILL between head and body):
# nothing went to the client yet, so the GET goes to the other member.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                   . "Content-Type: text/x-dying\r\n"
                                   . "X-From: dying\r\n\r\n" });
    my $r = http_request(GET => '/g/replay/mid');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the GET and died after its head');
    ok t_cmp($r->{status}, 200, 'the GET was answered by the other member');
    ok t_cmp($r->{body}, qr/^Host: 127\.0\.0\.1:$m1$/m, 'whose answer is the whole body');
    ok t_cmp($r->{headers}{'x-from'}, undef, "none of the dead member's fields");
    ok t_cmp(($r->{headers}{'content-type'} // [''])->[0], qr{^(?!text/x-dying)},
             "nor its Content-Type");
}

# The member dies in the middle of its head (a status line and a field,
# not the empty line that ends the head): none of it reached the client
# either, so the GET goes to the other member as after a whole head.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nX-From: dying\r\n" });
    my $r = http_request(GET => '/g/replay/halfhead');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the GET and died in the middle of its head');
    ok t_cmp($r->{status}, 200, 'the GET was answered by the other member');
    ok t_cmp($r->{body}, qr/^Host: 127\.0\.0\.1:$m1$/m, 'which the Host line names');
}

# A member that sent a 1xx, which went on to the client, then a whole head,
# and died: the client has seen this member's answer begin, so no other
# member is asked (docs/groups.md, case 3).
{
    my $be = raw_backend({ reply => "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                                  . "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" });
    my $r = http_request(GET => '/g/replay/hinted');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the GET, sent a 103 and a head, and died');
    ok t_cmp($r->{status}, 502, 'after its 1xx reached the client, no other member answers: 502');
}

# A PUT under Expect: 100-continue whose first member answers before the
# body (so the body stays with the client) and dies after that head: the
# next member's 100 Continue reaches the client, which sends its body then.
{
    my $be = raw_backend({ no_read => 1, reply => sub {
        my $s = shift;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) { sysread($s, $buf, 4096, length $buf) or return }
        syswrite $s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-From: dying\r\n\r\n";
    } });
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(), Timeout => 5)
        or die $!;
    print $s "PUT /g/replay/expect HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
           . "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $got = '';
    while ($got !~ /\r\n\r\n/ && $sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    my $first = $got;
    print $s "abcd";
    while ($sel->can_read(5)) { sysread($s, $got, 4096, length $got) or last }
    close $s;
    $be->stop;
    my $r = parse_response($got) || { status => 0, body => '' };
    ok t_cmp($first, qr/^HTTP\/1\.1 100 /, 'the client got its 100 Continue from the next member');
    ok t_cmp($r->{status}, 200, 'and the next member answered');
    ok t_cmp($r->{body}, qr/^Host: 127\.0\.0\.1:$m1\n.*\n\nabcd\z/ms, 'with the body the client sent');
}

# Once bytes of the body went to the client, the answer is the dead
# member's, cut: no second answer is spliced onto it.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                   . "X-From: dying\r\n\r\npartial" });
    my $r = http_request(GET => '/g/replay/cut');
    $be->stop;
    ok t_cmp($r->{body}, 'partial', 'the client got the bytes that went out');
    ok t_cmp(($r->{headers}{'x-from'} // [''])->[0], 'dying', "and the head they came with");
    ok t_cmp($r->{body}, qr/^(?!.*Host: )/s, 'and nothing of another member');
}

# A POST in the same case as the first: its body went out, so it is never
# sent again.
{
    my $be = raw_backend({ reply => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" });
    my $mark = error_log_mark();
    my $r = http_request(POST => '/g/replay/midpost', body => 'once');
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the POST and died after its head');
    ok t_cmp($r->{status}, 502, 'the POST is not sent again: 502');
    ok t_cmp(wait_for(sub { error_log_since($mark) =~ /reading 100-byte body/ }, 5)
             ? 'logged' : 'not logged', 'logged', 'the log names the cut body');
}

# A bodiless POST with an Idempotency-Key after the head: the key vouches
# for replaying what may not have arrived, not for what a member answered.
{
    my $be = raw_backend({ reply => "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n" });
    my $r = http_request(POST => '/g/replay/midkey', headers => ['Idempotency-Key' => 'k1']);
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(scalar(@seen), 1, 'the first member got the keyed POST and died after its head');
    ok t_cmp($r->{status}, 502, 'it is not sent to another member: 502');
}
