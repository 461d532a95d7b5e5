# The live HTML view of the status page (rproxy-status?format=html) in a
# real browser: headless Chromium (Debian's chromium) loads it while
# traffic and errors go through the proxy, and the page, redrawn in place
# from ?format=json, shows the traffic, the error, and the failing target's
# state coloured.  t/live/browser_check.py drives the browser.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use RProxyLive;
use POSIX ();
use Time::HiRes qw(sleep time);

my ($chromium) = grep { -x } exists $ENV{RPROXY_TEST_CHROMIUM}
    ? $ENV{RPROXY_TEST_CHROMIUM} : qw(/usr/bin/chromium /usr/bin/chromium-headless-shell);

plan tests => 9, need { 'chromium (Debian package)' => defined $chromium,
                        'python3-websockets (Debian package) for ' . python()
                            => have_websockets() };

my $page = http_request(GET => '/rproxy-status?format=html');
ok t_cmp($page->{status}, 200, 'the live view is served');
ok t_cmp(($page->{headers}{'content-type'} || [''])->[0], 'text/html; charset=utf-8',
         'as HTML');
ok t_cmp($page->{body} =~ /<(?:link|img|iframe)\b|\bsrc=|https?:\/\// ? 1 : 0, 0,
         'with no external assets');
ok t_cmp(($page->{headers}{'content-security-policy'} || [''])->[0], qr/default-src 'none'/,
         'and a policy that allows none');

http_request(GET => "/be/view$_?gen=10") for 1 .. 5;

# Traffic and errors while the browser watches: the page must pick them up
# by itself.
my $kid = fork // die "fork: $!";
if (!$kid) {
    my $end = time + 6;
    sleep 1;
    while (time < $end) {
        http_request(GET => '/be/view?gen=10');
        http_request(GET => '/dead/view');
        sleep 0.3;
    }
    POSIX::_exit(0);
}

# Done when the page redrew itself at least twice and the dead target's row
# is in the error state, coloured.
my $until = <<'JS';
document.body && +document.body.getAttribute("data-renders") >= 2 &&
Array.prototype.some.call(document.querySelectorAll("#targets tr"), function (tr) {
  var cell = tr.querySelector("td.state");
  return tr.textContent.indexOf("/dead/") >= 0 && cell && cell.textContent === "errors"
      && getComputedStyle(cell).backgroundColor === "rgb(242, 168, 168)";
})
JS
my $driver = Apache::Test::vars('t_dir') . '/live/browser_check.py';
my $url = 'http://127.0.0.1:' . proxy_port() . '/rproxy-status?format=html';
my $r = run_json(90, python(), $driver, $chromium, $url, 45, $until);
waitpid $kid, 0;
t_debug(map { (my $v = "$_=" . ($r->{$_} // 'undef')) =~ s/[^\x20-\x7e\n\t]+/ /g; $v } sort keys %$r);

ok t_cmp($r->{error} // 'none', 'none', 'the browser loaded the page');
ok t_cmp($r->{until} ? 1 : 0, 1,
         'the page redrew itself in place and shows the failing target in red');

# The page's text: a tab-separated row per target (server, location, ...);
# this server's own, not its virtual hosts'.
my %row;
my $port = proxy_port();
for (split /\n/, $r->{text} // '') {
    my @cell = split /\t/;
    $row{$cell[1]} = \@cell if @cell >= 13 && $cell[0] =~ /:$port$/;
}
my $be = $row{'/be/'} || [];
ok t_cmp(($be->[9] // 0) >= 6 ? 1 : 0, 1, 'the traffic shows (requests of /be/: '
         . ($be->[9] // 'none') . ')');
my $dead = $row{'/dead/'} || [];
ok t_cmp(($dead->[10] // 0) >= 1 ? 1 : 0, 1, 'the errors show (errors of /dead/: '
         . ($dead->[10] // 'none') . ')');
ok t_cmp($r->{browser_gone} ? 1 : 0, 1, 'the browser and all its processes ended');
