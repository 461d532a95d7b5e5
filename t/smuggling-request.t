# Request smuggling, client side: a request whose framing is ambiguous
# carries a second, complete request in its tail.  Whatever mod_rproxy (or
# httpd's core before it) chooses -- 400, 501, close, or forwarding one
# cleanly re-framed request -- the backend must never see that second
# request as a request, and what it does see must be framed exactly once.
# docs/framing.md maps each case to its RFC 9112 / 9110 requirement.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use IO::Socket::INET;
use IO::Select;
use RProxyTest;
use Time::HiRes qw(sleep);

my $SMUG = "GET /raw/SMUGGLED HTTP/1.1\r\nHost: h\r\n\r\n";
my $OK   = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
my $H    = "Host: h\r\n";

sub post { "POST /raw/a HTTP/1.1\r\n$H" . $_[0] . "\r\n" . $_[1] }
sub cl   { "Content-Length: " . length($_[0]) . "\r\n" }
# A chunked body whose first chunk is "hello", then the smuggled request.
my $CHUNKED_THEN = "5\r\nhello\r\n0\r\n\r\n$SMUG";

# [ name, request bytes, expected client status ('' = any),
#   what becomes of the tail: 'never' (refused, or closed before it is
#   read) or 'next' (the first request is unambiguous, so the tail is a
#   plain pipelined request and must reach the backend as its own request),
#   TODO reason ]
my @cases = (
    # -- Transfer-Encoding and Content-Length together (RFC 9112 6.1, 6.3)
    [ 'CL.TE: TE chunked wins, CL dropped, connection closed',
      post("Content-Length: 40\r\nTransfer-Encoding: chunked\r\n", $CHUNKED_THEN), 200, 'never' ],
    [ 'TE.CL: CL shorter than the chunked body',
      post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", $CHUNKED_THEN), 200, 'never' ],
    # -- Transfer-Encoding value obfuscations (RFC 9112 6.1, 6.3 item 4)
    [ 'TE "chunked, identity" (chunked not final)',
      post("Transfer-Encoding: chunked, identity\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE "identity"',
      post("Transfer-Encoding: identity\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE "xchunked"',
      post("Transfer-Encoding: xchunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE "chunked, chunked" (chunked twice)',
      post("Transfer-Encoding: chunked, chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 501, 'never' ],
    [ 'TE "gzip, chunked" (a coding the proxy would drop undecoded)',
      post("Transfer-Encoding: gzip, chunked\r\n", $CHUNKED_THEN), 501, 'never' ],
    [ 'two TE lines: identity, then chunked',
      post("Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n" . cl($CHUNKED_THEN),
           $CHUNKED_THEN), 501, 'never' ],
    [ 'two TE lines: chunked, then identity',
      post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n" . cl($CHUNKED_THEN),
           $CHUNKED_THEN), 400, 'never' ],
    [ 'TE " \tchunked" (leading OWS is fine; with CL: closed after)',
      post("Transfer-Encoding:  \tchunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 200, 'never' ],
    [ 'TE "CHUNKED" (case-insensitive; with CL: closed after)',
      post("TRANSFER-ENCODING: CHUNKED\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 200, 'never' ],
    [ 'TE "chunked\\x0b" (vertical tab)',
      post("Transfer-Encoding: chunked\x0b\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE "\\x0bchunked" (vertical tab first)',
      post("Transfer-Encoding: \x0bchunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE "\"chunked\"" (quoted)',
      post("Transfer-Encoding: \"chunked\"\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'TE chunked alone: the tail is a pipelined request',
      post("Transfer-Encoding: chunked\r\n", $CHUNKED_THEN), 200, 'next' ],
    # -- Transfer-Encoding name obfuscations (RFC 9112 5.1, 5.2, 2.2)
    [ 'name "Transfer-Encoding :" (space before colon)',
      post("Transfer-Encoding : chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'name "Transfer-Encoding\\t:" (tab before colon)',
      post("Transfer-Encoding\t: chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'name " Transfer-Encoding" (whitespace before the first field)',
      "POST /raw/a HTTP/1.1\r\n Transfer-Encoding: chunked\r\n$H" . cl($CHUNKED_THEN)
      . "\r\n$CHUNKED_THEN", 400, 'never' ],
    [ 'obs-fold: "Transfer-Encoding:" folded onto " chunked" (unfolded, then closed)',
      post("Transfer-Encoding:\r\n chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 200, 'never' ],
    [ 'obs-fold: "X-A: a" folded onto " Transfer-Encoding: chunked" (one X-A value)',
      post("X-A: a\r\n Transfer-Encoding: chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 200, 'never' ],
    [ 'bare CR inside a field line hides "Transfer-Encoding"',
      post("X-A: a\rTransfer-Encoding: chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'NUL inside a field line',
      post("X-A: a\0Transfer-Encoding: chunked\r\n" . cl($CHUNKED_THEN), $CHUNKED_THEN), 400, 'never' ],
    [ 'bare LF line ends in the request head',
      "POST /raw/a HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n" . (cl($CHUNKED_THEN) =~ s/\r\n/\n/r)
      . "\n$CHUNKED_THEN", 400, 'never' ],
    # -- Content-Length forms (RFC 9110 8.6, RFC 9112 6.3 item 5)
    (map { [ "CL \"$_->[0]\"", post("Content-Length: $_->[0]\r\n", "hello$SMUG"), $_->[1], $_->[2] ] }
        [ '+5', 400, 'never' ], [ '-5', 400, 'never' ], [ '0x5', 400, 'never' ],
        [ '5.0', 400, 'never' ], [ '5e0', 400, 'never' ],
        [ '18446744073709551621', 400, 'never' ], [ '99999999999999999999999999', 400, 'never' ],
        [ '5, 6', 400, 'never' ], [ '6, 5', 400, 'never' ], [ '5 5', 400, 'never' ],
        [ "5\x0b", 400, 'never' ], [ '', 400, 'never' ], [ '5, 5', 400, 'never' ],
        [ '00000000000000000005', 200, 'next' ], [ ' 5 ', 200, 'next' ]),
    [ 'two CL lines that disagree',
      post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello$SMUG"), 400, 'never' ],
    [ 'two CL lines that agree',
      post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello$SMUG"), 400, 'never' ],
    [ 'CL that holds the would-be request in the body',
      post(cl("hello$SMUG"), "hello$SMUG"), 200, 'never' ],
    # -- chunked request bodies (RFC 9112 7.1)
    (map { [ "chunked: $_->[0]", post("Transfer-Encoding: chunked\r\n", $_->[1]), $_->[2], $_->[3] ] }
        [ 'size overflows 64 bits', "10000000000000005\r\nhello\r\n0\r\n\r\n$SMUG", 413, 'never' ],
        [ 'size with 17 hex digits, small value', "00000000000000005\r\nhello\r\n0\r\n\r\n$SMUG", 200, 'next' ],
        [ 'negative size', "-5\r\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'size with 0x', "0x5\r\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'bare LF ends the size line', "5\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'bare LF after the chunk data', "5\r\nhello\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'bare CR ends the size line', "5\rhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'bare CR after the chunk data', "5\r\nhello\r0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'chunk data longer than its size', "3\r\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'chunk extensions', "5;a=b;c=\"d\"\r\nhello\r\n0\r\n\r\n$SMUG", 200, 'next' ],
        [ 'bare LF inside a chunk extension', "5;a\nxx\r\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'bare CR inside a chunk extension', "5;a\rxx\r\nhello\r\n0\r\n\r\n$SMUG", 400, 'never' ],
        [ 'last chunk, bare LF ends the trailer section', "5\r\nhello\r\n0\r\n\n$SMUG", 400, 'never' ],
        [ 'trailer with CL and TE (dropped)', "5\r\nhello\r\n0\r\nContent-Length: 99\r\n"
                                     . "Transfer-Encoding: chunked\r\n\r\n$SMUG", 200, 'next' ]),
    # -- HTTP/1.0 with Transfer-Encoding (RFC 9112 6.1: faulty framing, close)
    [ 'HTTP/1.0 with Transfer-Encoding and CL, keep-alive',
      "POST /raw/a HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
      . "Content-Length: 40\r\n\r\n$CHUNKED_THEN", '', 'never' ],
    [ 'HTTP/1.0 with Transfer-Encoding only, keep-alive',
      "POST /raw/a HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
      . "\r\n$CHUNKED_THEN", '', 'never' ],
    # -- request line and Host (RFC 9112 3, 3.2)
    [ 'two spaces in the request line', "POST  /raw/a HTTP/1.1\r\n$H" . cl('hello') . "\r\nhello$SMUG", 400, 'never' ],
    [ 'lower-case protocol', "POST /raw/a http/1.1\r\n$H" . cl('hello') . "\r\nhello$SMUG", 400, 'never' ],
    [ 'HTTP/1.1 without Host', "POST /raw/a HTTP/1.1\r\n" . cl('hello') . "\r\nhello$SMUG", 400, 'never' ],
    [ 'two Host lines', "POST /raw/a HTTP/1.1\r\n${H}Host: other\r\n" . cl('hello') . "\r\nhello$SMUG", 400, 'never' ],
    # -- bodies on GET and HEAD: forwarded framed, never left on the connection
    [ 'GET with a CL body', "GET /raw/a HTTP/1.1\r\n$H" . cl($SMUG) . "\r\n$SMUG", 200, 'never' ],
    [ 'HEAD with a CL body', "HEAD /raw/a HTTP/1.1\r\n$H" . cl($SMUG) . "\r\n$SMUG", 200, 'never' ],
    [ 'GET with a chunked body', "GET /raw/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"
      . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $SMUG, $SMUG), 200, 'never' ],
);

# Cases with a TODO reason are known to fail today: Test.pm's todo list.
my @bad_hosts = ('a b', 'h@evil.example', 'h/x', 'h\\x', "h\x01", 'h:80:80', '[::1', 'h?x', 'h#x');
my @todo = map { $cases[$_][4] ? (2 * $_ + 1) : () } 0 .. $#cases;
plan tests => 2 * @cases + 8 + @bad_hosts + 5, todo => \@todo;

# Parses one request the backend recorded; returns (request line, error).
sub backend_view {
    my $req = shift;
    my $end = index($req, "\r\n\r\n");
    return ('', 'no complete head') if $end < 0;
    my $head = substr($req, 0, $end + 2);
    my $rest = substr($req, $end + 4);
    my ($line) = $head =~ /\A([^\r\n]*)/;
    my @cl = $head =~ /^Content-Length:[ \t]*([^\r\n]*)\r$/mgi;
    my @te = $head =~ /^Transfer-Encoding:[ \t]*([^\r\n]*)\r$/mgi;
    return ($line, 'CL and TE both') if @cl && @te;
    return ($line, "CL '@cl'") if @cl > 1 || (@cl && $cl[0] !~ /\A[0-9]+\z/);
    return ($line, "TE '@te'") if @te > 1 || (@te && $te[0] ne 'chunked');
    return ($line, 'a field name that is not a token')
        if substr($head, length($line) + 2) =~ /^(?![!#\$%&'*+\-.^_`|~0-9A-Za-z]+:)[^\r\n]*\r$/m;
    if (@cl) {
        return ($line, 'bytes after the body') if length($rest) > $cl[0];
    }
    elsif (@te) {
        while ($rest =~ s/\A([0-9a-f]+)\r\n//) {
            my $n = hex $1;
            if (!$n) {
                $rest =~ s/\A(?:[^\r\n]+\r\n)*\r\n// or return ($line, 'bad trailer');
                last;
            }
            substr($rest, 0, $n + 2, '');
        }
        return ($line, 'bytes after the body') if length $rest;
    }
    elsif (length $rest) {
        return ($line, 'bytes after a bodiless request');
    }
    return ($line, undef);
}

for my $c (@cases) {
    my ($what, $req, $want, $tail, $todo) = @$c;
    my $be = raw_backend(map { { reply => $OK } } 1 .. 3);
    my ($data, $how) = raw_exchange($req, timeout => 2);
    sleep 0.2;
    my @seen = $be->requests;
    $be->stop;
    my $status = ($data =~ m{\AHTTP/1\.\d (\d{3})})[0] // 0;
    my (@problems, $as_request);
    for my $seen (@seen) {
        my ($line, $err) = backend_view($seen);
        $as_request++ if $line =~ /SMUGGLED/;
        push @problems, $err if $err;
    }
    if ($tail eq 'never') {
        push @problems, 'the tail reached the backend as a request' if $as_request;
    }
    else {
        push @problems, 'the pipelined request did not reach the backend'
            unless $as_request && @seen == 2 && $seen[0] =~ /hello/;
    }
    my $n_resp = () = $data =~ m{^HTTP/1\.1 \d{3} }mg;
    t_debug("$what: client got $status ($n_resp responses, $how), backend saw "
            . scalar(@seen) . " request(s)" . (@problems ? ": @problems" : ''));
    t_debug("TODO: $todo") if $todo;
    ok t_cmp(join('; ', @problems), '',
             $tail eq 'never' ? "$what: the backend never sees the tail as a request"
                              : "$what: the tail is the next request, framed apart");
    if ($want eq '') {
        ok 1;
    }
    else {
        ok t_cmp($status, $want, "$what: answered $want");
    }
}

# ---- Expect: 100-continue answered early with a final status (0.CL) ----

# A backend that answers 401 as soon as it has the head, then records what
# else comes on that connection; later connections are plain steps.
sub early_final_backend {
    my $rec = shift;
    return raw_backend({ no_read => 1, reply => sub {
        my $s = shift;
        my $buf = '';
        my $sel = IO::Select->new($s);
        while (index($buf, "\r\n\r\n") < 0 && $sel->can_read(5)) {
            sysread($s, $buf, 65536, length $buf) or last;
        }
        syswrite $s, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope";
        while ($sel->can_read(1.5)) {
            sysread($s, $buf, 65536, length $buf) or last;
        }
        open my $fh, '>', $rec or return;
        binmode $fh;
        print $fh $buf;
        close $fh;
    } }, { reply => $OK }, { reply => $OK });
}

sub slurp { open my $fh, '<', $_[0] or return ''; binmode $fh; local $/; my $d = <$fh>; unlink $_[0]; $d // '' }

for my $when ('with the head', 'after the final status') {
    my $rec = "$RProxyTest::TOP/logs/expect-early.$$";
    my $be = early_final_backend($rec);
    my $head = "POST /raw/e HTTP/1.1\r\n${H}Expect: 100-continue\r\n" . cl($SMUG) . "\r\n";
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                     Timeout => 5) or die "connect: $!";
    binmode $sock;
    syswrite $sock, $when eq 'with the head' ? "$head$SMUG" : $head;
    my $sel = IO::Select->new($sock);
    my ($data, $how) = ('', 'timeout');
    while ($data !~ /\r\n\r\nnope/ && $sel->can_read(5)) {
        sysread($sock, $data, 65536, length $data) or last;
    }
    syswrite $sock, $SMUG if $when ne 'with the head';
    while ($sel->can_read(3)) {
        my $n = sysread($sock, $data, 65536, length $data);
        $how = defined $n ? ($n ? next : 'eof') : 'reset';
        last;
    }
    close $sock;
    sleep 1.7;
    my $first = slurp($rec);
    my @later = grep { length } $be->requests;
    $be->stop;
    my $n_final = () = $data =~ m{^HTTP/1\.1 [2-5]\d\d }mg;
    t_debug("Expect, body sent $when: $n_final final response(s), $how; the backend "
            . "connection carried " . length($first) . " bytes, later requests: " . scalar(@later));
    ok t_cmp(($first =~ /SMUGGLED/ ? 1 : 0) + scalar(@later), 0,
             "Expect answered early, body sent $when: the backend never sees the body's request");
    ok t_cmp("$n_final $how", '1 eof',
             "Expect answered early, body sent $when: one final response, then the connection closes");
}

# ---- absolute-form against Host (RFC 9112 3.2.2): with RProxyPreserveHost
# On the backend gets the request-target's authority, not the Host line. ----
{
    my $port = proxy_port();
    my $be = raw_backend({ reply => $OK });
    my ($data) = raw_exchange("GET http://127.0.0.1:$port/rawph/abs HTTP/1.1\r\n"
        . "Host: evil.example\r\nConnection: close\r\n\r\n", timeout => 5);
    my ($req) = $be->requests;
    $be->stop;
    my @hosts = ($req // '') =~ /^Host: ([^\r\n]*)\r$/mgi;
    t_debug("absolute-form: client got " . (($data =~ m{^HTTP/1\.1 (\d+)})[0] // 0)
            . ", backend Host '@hosts'");
    ok t_cmp("@hosts", "127.0.0.1:$port",
             'absolute-form: the backend Host is the request-target authority');
    ok t_cmp(($req // '') =~ /evil/ ? 1 : 0, 0, 'absolute-form: the ignored Host goes nowhere');
}

# ---- field names with an underscore, which CGI-style backends fold onto
# the dash: Transfer_Encoding must not reach a backend beside a
# Content-Length. ----
{
    my $be = raw_backend({ reply => $OK });
    my ($data) = raw_exchange(post("Transfer_Encoding: chunked\r\nContent_Length: 3\r\nConnection: close\r\n"
                                   . cl($CHUNKED_THEN), $CHUNKED_THEN), timeout => 5);
    my ($req) = $be->requests;
    $be->stop;
    t_debug("underscore names: client got " . (($data =~ m{^HTTP/1\.1 (\d+)})[0] // 0));
    ok t_cmp(($req // '') =~ /^Transfer_Encoding:/mi ? 1 : 0, 0,
             'Transfer_Encoding never reaches the backend');
    ok t_cmp(($req // '') =~ /^Content_Length:/mi ? 1 : 0, 0,
             'Content_Length never reaches the backend');
}

# ---- invalid Host forms under RProxyPreserveHost On: 400, nothing sent ----
for my $host (@bad_hosts) {
    my $be = raw_backend({ reply => $OK });
    my ($data) = raw_exchange("GET /rawph/h HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n",
                              timeout => 5);
    my @seen = $be->requests;
    $be->stop;
    my $status = ($data =~ m{^HTTP/1\.1 (\d+)})[0] // 0;
    (my $shown = $host) =~ s/([^ -~])/sprintf '\\x%02x', ord $1/ge;
    ok t_cmp("$status " . scalar(@seen), '400 0', "Host '$shown': 400, nothing to the backend");
}

# ---- limits httpd's core enforces before the handler (RFC 9112 3, 5) ----
{
    my $be = raw_backend({ reply => $OK });
    my ($data) = raw_exchange("GET /raw/" . ('a' x 9000) . " HTTP/1.1\r\n${H}Connection: close\r\n\r\n",
                              timeout => 5);
    my ($d2) = raw_exchange("GET /raw/f HTTP/1.1\r\n${H}X-Big: " . ('b' x 9000)
                            . "\r\nConnection: close\r\n\r\n", timeout => 5);
    my @seen = $be->requests;
    $be->stop;
    ok t_cmp(($data =~ m{^HTTP/1\.1 (\d+)})[0] // 0, 414, 'request line over LimitRequestLine: 414');
    ok t_cmp(($d2 =~ m{^HTTP/1\.1 (\d+)})[0] // 0, 400, 'field line over LimitRequestFieldSize: 400');
    ok t_cmp(scalar @seen, 0, 'neither reached the backend');
}

# ---- 100-continue from an HTTP/1.0 client is ignored (RFC 9110 10.1.1) ----
{
    my $be = raw_backend({ reply => $OK });
    my ($data) = raw_exchange("POST /raw/x HTTP/1.0\r\n${H}Expect: 100-continue\r\n"
                              . "Content-Length: 4\r\n\r\nabcd", timeout => 5);
    my ($req) = $be->requests;
    $be->stop;
    ok t_cmp($data =~ /^HTTP\/1\.\d 100/m ? 1 : 0, 0, 'HTTP/1.0 client with Expect: no 100');
    ok t_cmp(($data =~ m{^HTTP/1\.1 (\d+)})[0] . ' ' . (($req // '') =~ /\r\n\r\nabcd\z/ ? 'body' : 'none'),
             '200 body', 'HTTP/1.0 client with Expect: no 100, proxied');
}
