# The live view's group tables in a real browser (headless Chromium, as in
# t/status_view.t): a member going down and coming back, its state coloured
# in place, and the Drain and Enable buttons of a location with
# RProxyStatusControl On.  Group flappy's second member is a port where
# this test starts a listener only once the page has shown the member
# ejected (out for 2 s after each failed connect); it then comes back in
# slow start.  Then the page's own Drain button drains group drainme's
# second member (orange) and its Enable button takes it back.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use RProxyLive;
use JSON::PP;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

my ($chromium) = grep { -x } exists $ENV{RPROXY_TEST_CHROMIUM}
    ? $ENV{RPROXY_TEST_CHROMIUM} : qw(/usr/bin/chromium /usr/bin/chromium-headless-shell);

plan tests => 9, need { 'chromium (Debian package)' => defined $chromium,
                        'python3-websockets (Debian package) for ' . python()
                            => have_websockets() };

my $t = Apache::Test::vars('t_dir');
my $flap = conf_define('RPROXY_FLAP_PORT');
my $m2 = Apache::Test::vars('rproxy_m2_port');
my $flag = "$t/logs/group_view.$$.listen";
my $alog = "$t/logs/access_log";
unlink $flag;

sub flap_state {
    my ($line) = grep { /^member: .* group=flappy .*address=127\.0\.0\.1:$flap / }
        split /\n/, http_request(GET => '/rproxy-status')->{body};
    return $line && $line =~ /state=(\S+)/ ? $1 : 'none';
}

# The member's listener, once $flag exists: answers 200 to anything.
my $listener = fork // die "fork: $!";
if (!$listener) {
    $SIG{ALRM} = sub { POSIX::_exit(0) };
    alarm 150;
    sleep 0.1 until -e $flag;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $flap,
                                  Listen => 16, ReuseAddr => 1, Proto => 'tcp')
        or POSIX::_exit(1);
    while (my $c = $l->accept) {
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            last unless sysread $c, $buf, 4096, length $buf;
        }
        print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        close $c;
    }
    POSIX::_exit(0);
}

# Traffic through the group: the member fails and is ejected; once the
# page has fetched its figures three times since (so it drew the member
# ejected), the listener starts and the member comes back.
my $traffic = fork // die "fork: $!";
if (!$traffic) {
    my $end = time + 110;
    my $mark;
    while (time < $end) {
        http_request(GET => '/g/flappy/view');
        if (!defined $mark && flap_state() eq 'ejected') {
            $mark = -s $alog || 0;
        }
        if (defined $mark && !-e $flag) {
            open my $fh, '<', $alog or next;
            seek $fh, $mark, 0;
            my $fetches = grep { m{"GET /rproxy-control\?format=json } } <$fh>;
            if ($fetches >= 3) {
                open my $f, '>', $flag;
                close $f;
            }
        }
        sleep 0.3;
    }
    POSIX::_exit(0);
}

# Steps, in the page: flappy's member red "ejected"; then back, light
# green "slow-start" (or green "up"); then a click on drainme's member's
# Drain button, the row orange "draining"; a click on Enable, back "up".
my $until = <<"JS";
(function () {
  var st = window.__gv || (window.__gv = { step: 0, log: [] });
  function find(group, key) {
    var t = document.querySelector('table.group[data-group="' + group + '"]');
    if (!t) return null;
    return Array.prototype.filter.call(t.querySelectorAll("tbody tr"), function (tr) {
      return tr.getAttribute("data-key") === key;
    })[0] || null;
  }
  function look(tr) {
    var c = tr && tr.querySelector("td.state");
    return c ? c.textContent + " " + getComputedStyle(c).backgroundColor : "";
  }
  function button(tr, label) {
    var b = tr.querySelector("button");
    if (b && b.textContent === label && !b.disabled) { b.click(); return true; }
    return false;
  }
  var f = find("flappy", "127.0.0.1:$flap"), d = find("drainme", "127.0.0.1:$m2");
  if (!f || !d) return false;
  var lf = look(f), ld = look(d);
  if (st.step === 0 && lf === "ejected rgb(242, 168, 168)") { st.step = 1; st.log.push("ejected-red"); }
  if (st.step === 1 && (lf === "slow-start rgb(227, 246, 211)" || lf === "up rgb(191, 232, 191)")) {
    st.step = 2; st.log.push("back-" + lf.split(" ")[0] + "-green");
  }
  if (st.step === 2 && button(d, "Drain")) { st.step = 3; }
  if (st.step === 3 && ld === "draining rgb(255, 213, 138)") { st.step = 4; st.log.push("draining-orange"); }
  if (st.step === 4 && button(d, "Enable")) { st.step = 5; }
  if (st.step === 5 && ld === "up rgb(191, 232, 191)") { st.step = 6; st.log.push("enabled-green"); }
  var out = document.getElementById("testlog");
  if (!out) {
    out = document.createElement("pre");
    out.id = "testlog";
    document.body.appendChild(out);
  }
  out.textContent = "TESTLOG " + st.log.join(",");
  return st.step === 6;
})()
JS
my $mark = error_log_mark();
my $driver = "$t/live/browser_check.py";
my $url = 'http://127.0.0.1:' . proxy_port() . '/rproxy-control?format=html';
my $r = run_json(120, python(), $driver, $chromium, $url, 90, $until);
RProxyLive::end_child($traffic);
RProxyLive::end_child($listener);
unlink $flag;
t_debug(map { (my $v = "$_=" . ($r->{$_} // 'undef')) =~ s/[^\x20-\x7e\n\t]+/ /g; $v } sort keys %$r);

my ($log) = ($r->{text} // '') =~ /TESTLOG (\S*)/;
$log //= '';
ok t_cmp($r->{error} // 'none', 'none', 'the browser loaded the page');
ok t_cmp($log, qr/^ejected-red/, 'the page showed the member ejected, in red');
ok t_cmp($log, qr/,back-(slow-start|up)-green/, 'then back, in (light) green, redrawn in place');
ok t_cmp($log, qr/,draining-orange/, 'the Drain button drained a member: orange');
ok t_cmp($log, qr/,enabled-green$/, 'the Enable button took it back');
ok t_cmp($r->{until} ? 1 : 0, 1, 'every step seen');
my $errors = error_log_since($mark);
ok t_cmp($errors, qr/group flappy: member http:\/\/127\.0\.0\.1:$flap 127\.0\.0\.1 \(127\.0\.0\.1:$flap\): ejected -> up: ejection time over/,
         'the error log has the member\'s return');
ok t_cmp($errors, qr/\(127\.0\.0\.1:$m2\): up -> draining: drained by 127\.0\.0\.1.*draining -> up: enabled by 127\.0\.0\.1/s,
         'and the buttons\' changes, with who');
ok t_cmp($r->{browser_gone} ? 1 : 0, 1, 'the browser and all its processes ended');

# Whatever happened, the member is not left drained for the tests after.
my $n = ($r->{text} // '') ? JSON::PP->new->decode(http_request(GET => '/rproxy-control?format=json')->{body})->{control}{nonce} : '';
http_request(POST => '/rproxy-control', body => "action=enable&group=drainme&member=127.0.0.1:$m2&nonce=$n",
             headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
