# WebSocket through the proxy with a real implementation on both ends
# (Debian's python3-websockets: conf/demo/live_backend.py as the server,
# t/live/ws_client.py as the client), plus a raw backend where a real
# server cannot misbehave on purpose.  t/upgrade.t has the same ground
# covered with raw sockets.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha1);
use IO::Select;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(time);
use RProxyTest;
use RProxyLive;

plan tests => 51, need { 'python3-websockets (Debian package) for ' . python()
                         => have_websockets() };

my $client = Apache::Test::vars('t_dir') . '/live/ws_client.py';
my $base = 'ws://127.0.0.1:' . proxy_port();
my $mark = error_log_mark();
my $be = start_backend(ws_port => live_define('RPROXY_WS_PORT'));

sub ws_client { run_json(80, python(), $client, @_) }

sub show { my $r = shift; join ' ', map { "$_=" . (ref $r->{$_} ? '{..}' : $r->{$_} // 'undef') } sort keys %$r }

# What a failed check saw, shown even without -verbose.
sub explain { print STDERR map { "# $_\n" } @_ }

# The backend's record of the connection that ended with $code on $path.
sub closed_event {
    my ($path, $code) = @_;
    my ($ev) = $be->wait_events(sub {
        $_[0]{ev} eq 'ws-closed' && $_[0]{path} eq $path
            && ($_[0]{code} // 0) == $code }, 1, 10);
    return $ev || {};
}

# The echo scenario's messages, each back byte-exact with its frame type,
# and the 100 pipelined ones in order: 6 checks, named with $label.
sub messages_echoed {
    my ($r, $label) = @_;
    for my $m (qw(text binary empty_binary big_binary big_text)) {
        my $c = $r->{$m} || {};
        ok t_cmp($c->{same} && $c->{type_kept} ? 1 : 0, 1,
                 "$label$m message (" . ($c->{sent} // '?') . " bytes/chars) echoed exactly, same frame type");
    }
    ok t_cmp(($r->{pipelined} || {})->{same} ? 1 : 0, 1,
             "${label}100 messages in flight at once, all back in order");
}

# Messages both ways, byte-exact, then a close the client starts.
{
    my $r = ws_client('echo', "$base/ws/echo");
    t_debug(show($r));
    ok t_cmp($r->{error} // 'none', 'none', 'echo session ran: ' . ($r->{message} // ''))
        or explain(show($r));
    ok t_cmp($r->{subprotocol} // '', 'echo.v1', 'subprotocol negotiated through the proxy');
    ok t_cmp(join(',', @{ $r->{extensions} || [] }), 'permessage-deflate',
             'and the permessage-deflate extension');
    messages_echoed($r, '');
    my $close = $r->{close} || {};
    ok t_cmp($close->{code}, 1000, "client's close: the server answered 1000");
    ok t_cmp($close->{reason}, 'done', 'with the reason echoed');
    ok t_cmp($close->{handshake} ? 1 : 0, 1, 'closing handshake complete at the client');
    my $ev = closed_event('/echo', 1000);
    ok t_cmp($ev->{msgs}, 105, 'the server saw every message');
    ok t_cmp($ev->{handshake} ? 1 : 0, 1, 'and a complete closing handshake');
}

# The same through TLS (wss://).  mod_ssl takes whole records off the socket
# and may hold decrypted bytes the tunnel has not asked for yet, which no
# poll of the socket announces: the tunnel must read until httpd has
# nothing more, not stop at a short read (it stalled at the first message
# over one 16 KiB record until RProxyTimeout).
SKIP: {
    my $tls_port = Apache::Test::vars('rproxy_tls_port');
    skip_rest('no TLS virtual host (t/TEST.PL makes its certificate with openssl)', 14)
        unless $tls_port && -e Apache::Test::vars('t_dir') . '/conf/tls/cert.pem';
    my $r = ws_client('echo', "wss://127.0.0.1:$tls_port/ws/echo", 'plain');
    t_debug(show($r));
    ok t_cmp($r->{error} // 'none', 'none', 'wss: echo session ran: ' . ($r->{message} // ''))
        or explain(show($r));
    messages_echoed($r, 'wss: ');
    ok t_cmp(($r->{close} || {})->{code}, 1000, "wss: client's close answered 1000");

    # The backend closes first.  That once ended the TLS state under the
    # tunnel while it still read from the client (ap_flush_conn's EOC made
    # mod_ssl free it): the child crashed.
    my $m = error_log_mark();
    $r = ws_client('server-close', "wss://127.0.0.1:$tls_port/ws/close-first?code=4001&reason=bye");
    t_debug(show($r));
    ok t_cmp($r->{first} // '', 'closing', 'wss: message before the server-side close');
    ok t_cmp(((($r->{close} || {})->{code}) // '') . ' ' . ((($r->{close} || {})->{reason}) // ''),
             '4001 bye', "wss: the server's close reached the client");
    # The parent notices a dead child within about a second: look for 3.
    my $crashed = wait_for(sub { error_log_since($m) =~ /exit signal|AH00052/ }, 3);
    ok t_cmp($crashed ? 'crashed' : 'no crash', 'no crash',
             'wss: no child crashed when the backend closed first');

    # The backend sends 8 MiB and closes while a slow client is still
    # reading them and still sending: the client must get every byte and a
    # clean end.  (Ending the tunnel at once left the client's bytes unread
    # in the socket, and closing it then reset the connection: the tail of
    # the 8 MiB was lost, and the client saw a plain EOF.)
    my $size = 8 * 1024 * 1024;
    my $tail = raw_backend({ reply => sub {
        my $sock = shift;
        syswrite $sock, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\n\r\n";
        my $chunk = 'd' x 65536;
        for (1 .. $size / 65536) { defined syswrite($sock, $chunk) or last }
        shutdown $sock, 1;
        my $sel = IO::Select->new($sock);
        while ($sel->can_read(10)) { sysread($sock, my $buf, 65536) or last }
    } });
    my $res = run_json(60, python(), Apache::Test::vars('t_dir') . '/live/tls_tail_client.py',
                       $tls_port, '/raw/tail', 4 * 1024 * 1024);
    $tail->stop;
    ok t_cmp($res->{status} // 0, 101, 'wss raw: 101 through TLS');
    ok t_cmp($res->{got} // 0, $size, 'wss raw: every byte the backend sent before closing arrived');
    ok t_cmp($res->{end} // '', 'eof', 'wss raw: and then a clean end, not a reset');
}

# The same without compression: the 1 MiB frames cross as they are.
{
    my $r = ws_client('echo', "$base/ws/echo", 'plain');
    t_debug(show($r));
    my @bad = grep { !($r->{$_} || {})->{same} }
              qw(text binary empty_binary big_binary big_text pipelined);
    ok t_cmp(join(',', @bad, ($r->{error} ? "error: $r->{error}" : ()),
                  (($r->{close} || {})->{handshake} ? () : 'close')), '',
             'uncompressed: every message back byte-exact, clean close')
        or explain(show($r));
}

# The server closes first (4001): the client reads what came before, then
# the close, and its answering close frame reaches the server.
{
    my $r = ws_client('server-close', "$base/ws/close-first?code=4001&reason=bye");
    t_debug(show($r));
    ok t_cmp($r->{first} // '', 'closing', 'message before the server-side close');
    my $close = $r->{close} || {};
    ok t_cmp(($close->{code} // '') . ' ' . ($close->{reason} // ''), '4001 bye',
             "server's close code and reason reached the client");
    ok t_cmp($close->{handshake} ? 1 : 0, 1, 'closing handshake complete at the client');
    ok t_cmp(closed_event('/close-first', 4001)->{handshake} ? 1 : 0, 1,
             "and at the server: the client's close frame came back");
}

# Several clients at once, each byte-exact.
{
    my @kids;
    for my $i (1 .. 4) {
        pipe(my $r, my $w) or die;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            my $res = ws_client('echo', "$base/ws/echo");
            my $good = !$res->{error} && $res->{big_binary}{same} && $res->{big_text}{same}
                && $res->{pipelined}{same} && $res->{close}{handshake};
            print $w $good ? "ok\n" : "bad: " . show($res) . "\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my @res;
    my $deadline = time + 90;
    for (@kids) {
        my ($pid, $r) = @$_;
        my $left = $deadline - time;
        my $line = $left > 0 && IO::Select->new($r)->can_read($left) ? <$r> : undef;
        push @res, $line // "no answer within 90 s\n";
        RProxyLive::end_child($pid);
    }
    my @bad = grep { $_ ne "ok\n" } @res;
    ok t_cmp(scalar(@bad), 0, '4 concurrent sessions, each byte-exact with a clean close')
        or explain(map { chomp(my $l = $_); $l } @bad);
}

# Idle: nothing moves for RProxyTimeout (3 s): the proxy ends both sides.
{
    my $m = error_log_mark();
    my $r = ws_client('idle', "$base/wsidle/echo", 10);
    t_debug(show($r));
    ok t_cmp($r->{echoed} // '', 'still there?', 'idle session worked first');
    my $close = $r->{close} || {};
    my $s = $close->{seconds} // 99;
    ok t_cmp($r->{closed} && $s > 2.5 && $s < 6 ? 1 : 0, 1,
             sprintf('the proxy closed it after ~3 s idle (%.2fs)', $s))
        or explain(show($r), show($close));
    ok t_cmp($close->{code}, 1006, 'abruptly: no close frame (1006) at the client');
    ok t_cmp(closed_event('/echo', 1006)->{handshake} ? 1 : 0, 0, 'nor at the server (1006)');
    ok t_cmp(error_log_since($m) =~ /rproxy: \S+: tunnel idle for 3 s/ ? 1 : 0, 1,
             'idle close logged');
}

# The backend declines the upgrade: its plain response reaches the client.
for my $status (400, 200) {
    my $r = ws_client('handshake', "$base/ws/refuse?status=$status");
    ok t_cmp($r->{status} // $r->{error}, $status, "refusal with $status relayed to the WebSocket client");
    my $raw = http_request(GET => "/ws/refuse?status=$status", headers => [
        Connection => 'Upgrade', Upgrade => 'websocket', 'Sec-WebSocket-Version' => 13,
        'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==']);
    ok t_cmp("$raw->{status} $raw->{body}", "$status no upgrade here ($status)\n",
             "$status with its body, as a plain response");
}

# A raw backend: a correct 101 with the first frames in the same write (the
# proxy must pass on what came with the 101), then the client's own close
# frame read back; and a 101 that names another protocol, which the real
# client must see as 502.
sub accept_for {
    my $req = shift;
    my ($key) = $req =~ /^Sec-WebSocket-Key:\s*(\S+)\r$/mi;
    return encode_base64(sha1(($key // '') . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
}

sub frame {    # server-to-client: unmasked, payload < 126 bytes
    my ($opcode, $payload) = @_;
    return chr(0x80 | $opcode) . chr(length $payload) . $payload;
}

{
    my $got = "$RProxyTest::TOP/logs/websocket-raw.$$";
    my $be_raw = raw_backend({ no_read => 1, reply => sub {
        my $sock = shift;
        my $req = RProxyTest::read_request($sock);
        syswrite $sock, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Accept: " . accept_for($req) . "\r\n\r\n"
            . frame(1, 'closing') . frame(8, pack('n', 4002) . 'raw bye');
        # The client's close frame: masked, code and reason.
        my $in = '';
        my $sel = IO::Select->new($sock);
        while (length($in) < 6 + 2 + 7 && $sel->can_read(5)) {
            sysread($sock, $in, 4096, length $in) or last;
        }
        my $text = 'short';
        if (length($in) >= 6 && (ord(substr $in, 1, 1) & 0x80)) {
            my $len = ord(substr $in, 1, 1) & 0x7f;
            my @mask = map { ord } split //, substr($in, 2, 4);
            my $i = 0;
            my $payload = join '', map { chr(ord($_) ^ $mask[$i++ % 4]) }
                                   split //, substr($in, 6, $len);
            $text = sprintf 'op=%d %s', ord(substr $in, 0, 1) & 0x0f,
                length $payload >= 2 ? unpack('n', $payload) . ' ' . substr($payload, 2) : '';
        }
        open my $fh, '>', $got; print $fh $text; close $fh;
    } });
    my $r = ws_client('server-close', "$base/raw/ws");
    $be_raw->stop;
    t_debug(show($r));
    ok t_cmp($r->{first} // '', 'closing', 'frame sent along with the 101 reached the client');
    my $close = $r->{close} || {};
    ok t_cmp(($close->{code} // '') . ' ' . ($close->{reason} // ''), '4002 raw bye',
             "raw backend's close frame reached the client");
    my $back = -r $got ? do { open my $fh, '<', $got; local $/; <$fh> } : '';
    unlink $got;
    ok t_cmp($back, 'op=8 4002 raw bye', "the client's answering close frame reached the backend intact");
}
{
    my $m = error_log_mark();
    my $be_raw = raw_backend({ no_read => 1, reply => sub {
        my $sock = shift;
        my $req = RProxyTest::read_request($sock);
        syswrite $sock, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket-ish\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Accept: " . accept_for($req) . "\r\n\r\n";
        sleep 1;
    } });
    my $r = ws_client('handshake', "$base/raw/ws");
    $be_raw->stop;
    ok t_cmp($r->{status} // $r->{error}, 502, 'a 101 naming another protocol: the client gets 502');
    ok t_cmp(error_log_since($m) =~ /101 Switching Protocols to 'websocket-ish', not the requested 'websocket'/ ? 1 : 0,
             1, 'and the reason is logged');
}

# Afterwards: every buffer back, no tunnel broke, nothing crashed.
{
    my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 10);
    ok t_cmp($ok ? 1 : 0, 1, 'pool outstanding: 0 after every session');
    my $log = error_log_since($mark);
    my @broke = $log =~ /^(.*tunnel broke.*)$/mg;
    ok t_cmp(scalar(@broke), 0, 'no tunnel broke: ' . join(' | ', @broke));
    ok t_cmp($log =~ /exit signal|AH00052/ ? 1 : 0, 0, 'no child crashed');
}

$be->stop;
