# A real browser through the proxy: headless Chromium (Debian's chromium)
# loads the demo's live page (conf/demo/live.html, served by the test
# server as /live/live.html), which opens a WebSocket (/ws/echo) and an
# EventSource (/events/stream) through mod_rproxy to
# conf/demo/live_backend.py and sets its title to "ws:ok sse:ok" when both
# worked.  t/live/browser_check.py drives the browser over the DevTools
# protocol and ends it, with every process it started.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use RProxyLive;

# RPROXY_TEST_CHROMIUM names another browser binary (one that is not there
# skips the test).
my ($chromium) = grep { -x } exists $ENV{RPROXY_TEST_CHROMIUM}
    ? $ENV{RPROXY_TEST_CHROMIUM} : qw(/usr/bin/chromium /usr/bin/chromium-headless-shell);

plan tests => 7, need { 'chromium (Debian package)' => defined $chromium,
                        'python3-websockets (Debian package) for ' . python()
                            => have_websockets() };

my $driver = Apache::Test::vars('t_dir') . '/live/browser_check.py';
my $be = start_backend(ws_port => live_define('RPROXY_WS_PORT'),
                       sse_port => live_define('RPROXY_SSE_PORT'));
my $url = 'http://127.0.0.1:' . proxy_port() . '/live/live.html';

my $page = http_request(GET => '/live/live.html');
ok t_cmp($page->{status}, 200, 'the live page is served');

my $r = run_json(90, python(), $driver, $chromium, $url, 45);
# (printable ASCII only: the page's text has other characters)
t_debug(map { (my $v = "$_=" . ($r->{$_} // 'undef')) =~ s/[^\x20-\x7e]+/ /g; $v } sort keys %$r);
ok t_cmp($r->{error} // 'none', 'none', 'the browser loaded the page');
ok t_cmp($r->{title} // '', 'ws:ok sse:ok',
         'WebSocket echo and EventSource both worked in the browser');
ok t_cmp($r->{browser_gone} ? 1 : 0, 1, 'the browser and all its processes ended');

my ($closed) = $be->wait_events(sub { $_[0]{ev} eq 'ws-closed' }, 1, 10);
ok t_cmp(($closed || {})->{msgs}, 2, "the backend echoed the page's text and binary messages");
ok t_cmp(($closed || {})->{handshake} && $closed->{code} == 1000 ? 1 : 0, 1,
         "the page's close (1000) completed the closing handshake");

my $ok = wait_for(sub { counters()->{outstanding} == 0 }, 15);
ok t_cmp($ok ? 1 : 0, 1, 'pool outstanding: 0 afterwards');

$be->stop;
