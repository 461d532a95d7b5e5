# https backends (RProxyTarget https://...): TLS through mod_ssl, the
# certificate checked by default (chain and name, under mod_ssl's own
# default SSLProxyVerify none), the explicit opt-out, the client
# certificate, keep-alive and session resumption, a backend dropping the
# connection mid-body, a TLS handshake that times out, and a WebSocket to
# a TLS backend.  The backend is t/tools/tls_backend.py on RPROXY_RAW_PORT,
# restarted with the certificate each case needs.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);
use RProxyTest;
use RProxyLive qw(python have_websockets run_json);

my $t_dir = Apache::Test::vars('t_dir');
my $certs = "$t_dir/conf/tls/backend";
my $curl = '/usr/bin/curl';
plan tests => 39, need {
    'backend certificates (t/TEST.PL makes them with openssl)' => -e "$certs/selfsigned.pem" ? 1 : 0,
    'curl' => -x $curl,
    'python3-websockets' => have_websockets() };

my $port = conf_define('RPROXY_RAW_PORT');
my $base = 'http://127.0.0.1:' . proxy_port();
my $dir = tempdir(CLEANUP => 1);
my $stats = "$dir/stats.json";
my $backend;

sub stop_backend {
    return unless $backend;
    kill 'TERM', $backend;
    waitpid $backend, 0;
    undef $backend;
    sleep 0.2;      # the proxy's idle connections see the close
}

# Starts the backend with certificate $name (and options); waits until ready.
sub start_tls {
    my ($name, @opt) = @_;
    stop_backend();
    unlink $stats;
    pipe my $r, my $w or die;
    my $pid = fork // die;
    if (!$pid) {
        close $r;
        open STDOUT, '>&', $w;
        open STDERR, '>>', "$t_dir/logs/live_stderr_log";
        exec python(), "$t_dir/tools/tls_backend.py", $port, "$certs/$name.pem",
             "$certs/$name.key", '--stats', $stats, @opt or POSIX::_exit(127);
    }
    close $w;
    my $line = <$r>;
    die "tls_backend.py did not start\n" unless ($line // '') =~ /ready/;
    $backend = $pid;
}
END { stop_backend() }

sub stats { open my $fh, '<', $stats or return {}; local $/; JSON::PP->new->decode(<$fh>) }

sub curl {
    my @args = @_;
    unlink "$dir/out";
    open my $fh, '-|', $curl, '-s', '--max-time', '20', '-o', "$dir/out", @args or die;
    local $/;
    my $w = <$fh> // '';
    close $fh;
    my $body = -e "$dir/out" ? do { open my $b, '<', "$dir/out" or die; binmode $b; <$b> } : '';
    return ($w, $body);
}

# A good certificate from our CA: byte for byte, several ways.
start_tls('good');
for my $case ([1, ''], [300000, ''], [300000, '&chunked=1'], [5000000, '']) {
    my ($size, $extra) = @$case;
    my ($w, $body) = curl('-w', '%{http_code}', "$base/tlsb/g?gen=$size$extra");
    ok t_cmp("$w " . ($body eq pattern($size) ? 'exact' : length($body) . ' bytes, differs'),
             '200 exact', "GET $size bytes$extra from an https backend");
}
{
    my ($w, $head) = curl('-w', '%{http_code}', '--raw', '-D', "$dir/head", "$base/tlsb/g?gen=30000&chunked=1&trailer=1");
    open my $raw, '<', "$dir/out" or die; binmode $raw; local $/; my $got = <$raw>;
    ok t_cmp($w, '200', 'chunked response with trailers');
    ok t_cmp($got =~ /\r\n0\r\nX-Sum: 30000\r\n\r\n$/ ? 1 : 0, 1, 'its trailer passed on');
}
{
    open my $fh, '>', "$dir/post" or die; binmode $fh; print $fh pattern(200000, 7); close $fh;
    my ($w, $body) = curl('-w', '%{http_code}', '--data-binary', "\@$dir/post", "$base/tlsb/echo");
    ok t_cmp("$w " . ($body eq pattern(200000, 7) ? 'exact' : 'differs'), '200 exact', 'POST 200000 bytes');
    ($w, $body) = curl('-w', '%{http_code}', '-H', 'Transfer-Encoding: chunked', '--data-binary', "\@$dir/post", "$base/tlsb/echo");
    ok t_cmp("$w " . ($body eq pattern(200000, 7) ? 'exact' : 'differs'), '200 exact', 'chunked POST 200000 bytes');
    ($w, $body) = curl('-w', '%{http_code}', "$base/tlsb-ip/g?gen=1000");
    ok t_cmp("$w " . ($body eq pattern(1000) ? 'exact' : 'differs'), '200 exact',
             'https://127.0.0.1 checked against the certificate\'s IP address');
}

# The client certificate (SSLProxyMachineCertificateFile), to a backend
# requiring one; SNI is the target's host.
start_tls('good', '--client-ca', "$certs/ca.pem");
{
    my ($w, $body) = curl('-w', '%{http_code}', "$base/tlsb/peer");
    ok t_cmp($w, '200', 'a backend requiring a client certificate answers');
    ok t_cmp($body =~ /^peer: commonName=client$/m ? 1 : 0, 1, "it got ours ($body)");
    ok t_cmp($body =~ /^sni: localhost$/m ? 1 : 0, 1, 'SNI is the target host');
    ok t_cmp(stats()->{alpn}[0] // 'none', 'http/1.1', 'ALPN offered http/1.1');
}

# Keep-alive: ten requests, one handshake; a new connection resumes.
start_tls('good');
{
    # On one client connection, so on one child process under prefork too.
    open my $fh, '-|', $curl, '-s', '--max-time', '20', '-w', '%{http_code} ',
        map { ('-o', '/dev/null', "$base/tlsb/g?gen=100") } 1 .. 10 or die;
    my $codes = do { local $/; <$fh> } // '';
    close $fh;
    ok t_cmp($codes, join(' ', ('200') x 10) . ' ', 'ten requests');
    ok t_cmp(stats()->{handshakes}, 1, 'ten requests, one TLS handshake');
    # Two at once: the second cannot have the idle connection.
    my $pid = fork // die;
    if (!$pid) { curl("$base/tlsb/g?gen=1000&delay=1"); POSIX::_exit(0) }
    sleep 0.3;
    curl("$base/tlsb/g?gen=1000&delay=1");
    waitpid $pid, 0;
    my $s = stats();
    if (($ENV{RPROXY_TEST_MPM} || 'event') eq 'prefork') {
        # Each child keeps its own idle connections: neither of the two may
        # be the child that holds the first one.
        ok t_cmp($s->{handshakes} >= 2 && $s->{handshakes} <= 3 ? 1 : 0, 1,
                 "two requests at once open a second connection ($s->{handshakes} handshakes)");
    }
    else {
        ok t_cmp($s->{handshakes}, 2, 'two requests at once open a second connection');
    }
    if (($ENV{RPROXY_TEST_MPM} || 'event') eq 'prefork') {
        # Sessions are kept per child process, and under prefork the second
        # request is another child's, which has none yet.
        skip('prefork: the second connection is in another child process', 1);
    }
    else {
        ok t_cmp($s->{resumed}, 1, 'which resumes the TLS session');
    }
}

# A raw connection to the proxy, and what it reads on it until the end
# (or until $until matches), for at most 15 s.
sub proxy_socket {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => proxy_port(),
                                     Timeout => 10) or die "connect: $!";
    return $sock;
}
sub read_from {
    my ($sock, $until) = @_;
    my ($got, $t0) = ('', time);
    while ((!$until || $got !~ $until) && time - $t0 < 15) {
        my $n = sysread $sock, my $chunk, 65536;
        last unless $n;
        $got .= $chunk;
    }
    return $got;
}

# Bytes the backend sent after a response, taken off the socket with its
# last bytes (by the core's 8000-byte reads, or mod_ssl's whole records)
# but not read by the proxy: the connection is not reused, as a plain one
# with bytes on its socket is not.  The response fills the proxy's read
# buffer exactly (32768 bytes) and is all there when it reads: the
# backend answers the head, and the client sends the body half a second
# later.  Then a second request on the same client connection.
{
    my $sock = proxy_socket();
    print $sock "POST /tlsb/stray?total=32768 HTTP/1.1\r\nHost: localhost\r\n"
              . "Content-Length: 5\r\n\r\n";
    sleep 0.5;
    print $sock "hello";
    print $sock "GET /tlsb/g?gen=100 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $all = read_from($sock);
    close $sock;
    my @codes = $all =~ m{HTTP/1\.1 (\d\d\d) }g;
    ok t_cmp(join(' ', @codes) . ($all =~ /POISON/ ? ', the stray response'
                                  : substr($all, -100) eq pattern(100) ? ', exact' : ', differs'),
             '200 200, exact',
             'bytes left in the TLS filters after a response: the connection is not reused');
}

# A backend that closes an idle connection without close_notify (a bare
# FIN, after a complete keep-alive response): the connection is not
# reused, so a POST that follows, which may not be sent twice, goes on a
# new one.  Two requests on one client connection (one child process).
{
    my $sock = proxy_socket();
    print $sock "GET /tlsb/bye HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $all = read_from($sock, qr/\r\n\r\nbye/);
    sleep 0.5;      # the backend's FIN reaches the proxy's idle connection
    print $sock "POST /tlsb/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
              . "Connection: close\r\n\r\nhello";
    $all .= read_from($sock);
    close $sock;
    my @codes = $all =~ m{HTTP/1\.1 (\d\d\d) }g;
    ok t_cmp(join(' ', @codes) . ($all =~ /\r\n\r\nhello\z/ ? ', echoed' : ', not echoed'),
             '200 200, echoed',
             'an idle TLS connection the backend closed without close_notify is not reused');
}

# The backend drops the connection mid-body without close_notify.
{
    my ($w) = curl('-w', '%{http_code} %{exitcode}', "$base/tlsb/cut?gen=200000&at=50000");
    my ($code, $exit) = split ' ', $w;
    ok t_cmp("$code " . ($exit != 0 ? 'failed' : 'complete'), '200 failed',
             'a backend dropping TLS mid-body aborts the client');
}

# A backend that answers before taking the whole request body, and
# closes: the proxy's writes fail, and its answer is relayed as a plain
# backend's is.
{
    open my $fh, '>', "$dir/big" or die; binmode $fh; print $fh pattern(8000000, 3); close $fh;
    my ($w, $body) = curl('-w', '%{http_code}', '-H', 'Expect:', '--data-binary', "\@$dir/big", "$base/tlsb/early");
    ok t_cmp("$w $body", '413 too large', 'an early answer to a request body is relayed');
}

# A body delimited by the close: over TLS only a close_notify ends it
# (RFC 9112 9.8); a bare close may be a cut, and aborts the client.
{
    my ($w, $body) = curl('-w', '%{http_code} %{exitcode}', "$base/tlsb/eof?gen=100000&notify=1");
    my ($code, $exit) = split ' ', $w;
    ok t_cmp("$code $exit " . ($body eq pattern(100000) ? 'exact' : length($body) . ' bytes, differs'),
             '200 0 exact', 'a close-delimited body ended by close_notify: complete');
    my $mark = error_log_mark();
    ($w, $body) = curl('-w', '%{http_code} %{exitcode}', "$base/tlsb/eof?gen=100000");
    ($code, $exit) = split ' ', $w;
    ok t_cmp("$code " . ($exit != 0 ? 'failed' : 'complete'), '200 failed',
             'a close-delimited body ended without close_notify aborts the client');
    my $log = error_log_since($mark);
    ok t_cmp($log =~ /close-delimited body.*close_notify/ ? 1 : 0, 1,
             'and says why in the log');
}

# Certificates that must not be taken: 502 and a log line naming the target
# and the error.
for my $case (['wrongname', 'tlsb', qr/Hostname mismatch/i],
              ['expired', 'tlsb', qr/certificate has expired/],
              ['untrusted', 'tlsb', qr/unable to get local issuer certificate/],
              ['selfsigned', 'tlsb', qr/self[- ]signed certificate/]) {
    my ($name, $loc, $why) = @$case;
    start_tls($name);
    my $mark = error_log_mark();
    my ($w) = curl('-w', '%{http_code}', "$base/$loc/g?gen=10");
    ok t_cmp($w, '502', "$name certificate: 502");
    my $log = error_log_since($mark);
    my ($line) = $log =~ /^(.*rproxy.*TLS handshake with localhost:$port refused.*)$/m;
    ok t_cmp(($line // '') =~ $why && $line =~ m{https://localhost:$port/} ? 1 : 0, 1,
             "$name: the log line names the target and the error (" . ($line // $log) . ')');
}

# RProxyTLSVerify off: the self-signed backend answers.
start_tls('selfsigned');
{
    my ($w, $body) = curl('-w', '%{http_code}', "$base/tlsb-off/g?gen=1000");
    ok t_cmp("$w " . ($body eq pattern(1000) ? 'exact' : 'differs'), '200 exact',
             'RProxyTLSVerify off takes a self-signed backend');
}
stop_backend();

# It turns off mod_rproxy's checks only: mod_ssl's name check applies
# unless SSLProxyCheckPeerName is set off (docs/directives.md).
start_tls('wrongname');
{
    my $mark = error_log_mark();
    my ($w) = curl('-w', '%{http_code}', "$base/tlsb-off/g?gen=10");
    ok t_cmp($w, '502', 'RProxyTLSVerify off: a certificate for another name is still refused by mod_ssl');
    ok t_cmp(error_log_since($mark), qr/TLS handshake with localhost:$port refused: .*RProxyTLSVerify off, mod_ssl still checks the certificate's name and dates \(SSLProxyCheckPeerName/,
             'and the log line says that mod_ssl checks the name whatever RProxyTLSVerify says');
}
stop_backend();

# A backend that accepts and never answers the handshake: 504.
{
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                   Listen => 5, ReuseAddr => 1) or die "listen: $!";
    my $t0 = time;
    my ($w) = curl('-w', '%{http_code}', "$base/tlsb-slow/g?gen=10");
    ok t_cmp($w, '504', sprintf('a TLS handshake that times out: 504 (after %.1f s)', time - $t0));
    close $ls;
}

# A backend whose TCP connect times out (its listen queue is full, so the
# kernel drops the SYN): 502, as for a plain one; no handshake began.
{
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                   ReuseAddr => 1) or die "socket: $!";
    listen($ls, 0) or die "listen: $!";     # (IO::Socket's makes 0 a 5)
    my $filler = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                       Timeout => 5) or die "connect: $!";
    my $mark = error_log_mark();
    my ($w) = curl('-w', '%{http_code}', "$base/tlsb-connect/g?gen=10");
    my $log = error_log_since($mark);
    my ($line) = $log =~ /^(.*rproxy.*localhost:$port.*)$/m;
    ok t_cmp("$w " . ($line // 'no line'), qr/^502 .*cannot connect to localhost:$port/,
             'a TCP connect that times out to an https backend: 502, logged as such');
    close $filler;
    close $ls;
}

# A WebSocket to a TLS backend: messages of all sizes echoed.
start_tls('good', '--ws');
{
    my $r = run_json(80, python(), "$t_dir/live/ws_client.py", 'echo',
                     'ws://127.0.0.1:' . proxy_port() . '/tlsb/echo');
    ok t_cmp($r->{error} // 'none', 'none', 'WebSocket echo session through an https backend');
    my @bad = grep { !($r->{$_} && $r->{$_}{same}) } qw(text binary empty_binary big_binary big_text pipelined);
    ok t_cmp("@bad", '', 'every message came back exactly');
}
stop_backend();
