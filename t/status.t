# The rproxy-status page, plain and Prometheus, and the log notes.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;
use JSON::PP;

plan tests => 41;

my $t = Apache::Test::vars('t_dir');
my $be = Apache::Test::vars('rproxy_backend_port');

# One target's line of the plain page, as a hash.
sub target_line {
    my ($body, $location) = @_;
    my ($line) = grep { m{^target: .* location=\Q$location\E } } split /\n/, $body;
    return undef unless defined $line;
    return { $line =~ /(\w+)=(\S+)/g };
}

{
    my $s = session();
    my $before = $s->counters;
    $s->get('/be/s?gen=12345');
    my $after = $s->counters;
    ok t_cmp($after->{requests} - $before->{requests}, 1, 'requests counted');
    ok t_cmp($after->{bytes_from_backend} - $before->{bytes_from_backend}, 12345,
             'body bytes from the backend counted');
    ok t_cmp($after->{active_connections}, 0, 'no backend connection active at rest');
    my @missing = grep { !defined $after->{$_} }
        qw(gets puts outstanding buffers_allocated fallback_buffers backend_connects
           backend_reuses idle_connections active_connections requests errors
           client_aborts bytes_from_backend bytes_to_backend);
    ok t_cmp("@missing", '', 'every documented counter is there');
}

# Per target: requests, errors, bytes, connections and response times,
# named by server, location and URL.
{
    my $page = sub { http_request(GET => '/rproxy-status')->{body} };
    my $b = target_line($page->(), '/be/');
    my $d = target_line($page->(), '/dead/');
    ok t_cmp(defined $b && defined $d ? 1 : 0, 1, 'a line per target');
    http_request(GET => "/be/t$_?gen=100") for 1 .. 3;
    http_request(GET => '/dead/x');
    my $body = $page->();
    my $b2 = target_line($body, '/be/');
    my $d2 = target_line($body, '/dead/');
    ok t_cmp($b2->{url}, "http://127.0.0.1:$be/", 'the target is named by its URL');
    ok t_cmp($b2->{requests} - $b->{requests}, 3, 'the target counts its requests');
    ok t_cmp($b2->{bytes_from_backend} - $b->{bytes_from_backend}, 300,
             'and the bytes it sent');
    ok t_cmp($b2->{errors} - $b->{errors}, 0, 'and no error');
    ok t_cmp($b2->{backend_connects} + $b2->{backend_reuses}
             - $b->{backend_connects} - $b->{backend_reuses}, 3,
             'a connection, new or reused, per request');
    ok t_cmp($b2->{p50_ms} >= 0 ? 1 : 0, 1, 'a median response time once it has requests');
    ok t_cmp($d2->{requests} - $d->{requests}, 1, 'the dead target counts its request');
    ok t_cmp($d2->{errors} - $d->{errors}, 1, 'and its error');
    ok t_cmp($d2->{in_flight}, 0, 'nothing in flight at rest');
}

# Prometheus: whole-server counters without a per-process label, and a
# series per target labelled with names the admin wrote.
{
    my $r = http_request(GET => '/rproxy-status?format=prometheus');
    my $body = $r->{body};
    ok t_cmp(($r->{headers}{'content-type'} || [''])->[0], qr{^text/plain; version=0\.0\.4},
             'Prometheus content type');
    ok t_cmp($body =~ /^# TYPE rproxy_buffer_gets_total counter\nrproxy_buffer_gets_total \d+$/m
             ? 1 : 0, 1, 'counter in Prometheus text format');
    ok t_cmp($body =~ /^rproxy_backend_idle_connections \d+$/m ? 1 : 0, 1,
             'idle connections gauge');
    ok t_cmp($body =~ /pid=/ ? 1 : 0, 0, 'no per-process label');
    ok t_cmp($body =~ m{^rproxy_target_requests_total\{server="[^"]+",location="/be/",target="http://127\.0\.0\.1:$be/"\} \d+$}m
             ? 1 : 0, 1, 'a series per target, labelled server, location and target');
    my ($inf) = $body =~ m!^rproxy_target_response_seconds_bucket\{[^}]*location="/be/"[^}]*le="\+Inf"\} (\d+)$!m;
    my ($count) = $body =~ m!^rproxy_target_response_seconds_count\{[^}]*location="/be/"[^}]*\} (\d+)$!m;
    ok t_cmp(defined $inf && defined $count && $inf == $count && $count > 0 ? 1 : 0, 1,
             'a response-time histogram per target');
}

# JSON, which the live view polls.
{
    my $r = http_request(GET => '/rproxy-status?format=json');
    ok t_cmp(($r->{headers}{'content-type'} || [''])->[0], 'application/json', 'JSON content type');
    ok t_cmp($r->{body} =~ m{"location":"/be/","url":"http://127\.0\.0\.1:$be/","requests_total":\d+}
             ? 1 : 0, 1, 'targets in the JSON form');
}

# The section in mod_status's /server-status, and its ?auto form.
{
    my $html = http_request(GET => '/server-status')->{body};
    ok t_cmp($html =~ m{<h2>mod_rproxy</h2>} && $html =~ m{<td>http://127\.0\.0\.1:$be/</td>}
             ? 1 : 0, 1, '/server-status has a mod_rproxy section with the targets');
    my $auto = http_request(GET => '/server-status?auto')->{body};
    ok t_cmp($auto =~ /^RProxyRequests: \d+$/m ? 1 : 0, 1, '?auto has the short form');
    ok t_cmp($auto =~ m{^RProxyTarget\d+: \S+ /be/ http://127\.0\.0\.1:$be/$}m ? 1 : 0, 1,
             '?auto names the targets');
}

# Groups and their members, in every form: group flappy's second member is
# a port nothing listens on (t/conf/extra.conf.in): one failed connect
# ejects it; its third member is a backup.
{
    my $flap = conf_define('RPROXY_FLAP_PORT');
    my $m1 = Apache::Test::vars('rproxy_m1_port');
    my $m3 = Apache::Test::vars('rproxy_m3_port');
    my $member = sub {
        my ($body, $port) = @_;
        my ($line) = grep { m{^member: .* group=flappy member=http://127\.0\.0\.1:$port } }
            split /\n/, $body;
        return $line ? { $line =~ /(\w+)=(\S+)/g } : {};
    };
    my $plain = sub { http_request(GET => '/rproxy-status')->{body} };
    my $ok = wait_for(sub {
        http_request(GET => '/g/flappy/x');
        ($member->($plain->(), $flap)->{state} // '') eq 'ejected';
    }, 10);
    my $body = $plain->();
    my $f = $member->($body, $flap);
    ok t_cmp($f->{state} // 'none', 'ejected', 'the failing member shows ejected');
    ok t_cmp(($f->{ejections} // 0) >= 1 && ($f->{failures} // 0) >= 1
             && ($f->{errors} // 0) >= 1 && ($f->{requests} // 0) >= 1 ? 1 : 0, 1,
             'with its ejections, failures, errors and requests');
    ok t_cmp("$f->{address} $f->{weight} $f->{backup} $f->{last_check} $f->{in_flight} "
             . ($f->{effective_weight} =~ /^\d+\.\d\d$/ ? 'ew' : 'no-ew'),
             "127.0.0.1:$flap 1 0 0 0 ew", 'address, weights, backup flag, no check yet, none in flight');
    my $u = $member->($body, $m1);
    ok t_cmp("$u->{state} " . ($u->{requests} >= 1 ? 'served' : 'idle') . ' ' . ($u->{p50_ms} >= 0 ? 'timed' : 'untimed'),
             qr/^(up|slow-start) served timed$/,
             'the healthy member: up (or still in slow start), its requests and response times');
    ok t_cmp($member->($body, $m3)->{state} // 'none', 'backup', 'a healthy backup shows as backup');
    my ($g) = $body =~ /^group: server=\S+ group=flappy (.*)$/m;
    my %g = ($g // '') =~ /(\w+)=(\S+)/g;
    ok t_cmp(defined $g{members} && $g{members} == 3 && $g{retries} >= 1
             && defined $g{retries_refused} && defined $g{no_member} ? 1 : 0, 1,
             'the group line: members, retries, refused retries, no-member 503s')
        or diag($g // 'no group line');

    my $prom = http_request(GET => '/rproxy-status?format=prometheus')->{body};
    my $l = qq{server="[^"]+",group="flappy",member="http://127\\.0\\.0\\.1:$flap 127\\.0\\.0\\.1"};
    ok t_cmp($prom =~ /^rproxy_member_up\{$l\} 0$/m ? 1 : 0, 1, 'Prometheus: rproxy_member_up 0');
    ok t_cmp($prom =~ /^rproxy_member_state\{$l,state="ejected"\} 1$/m
             && $prom =~ /^rproxy_member_state\{$l,state="up"\} 0$/m ? 1 : 0, 1,
             'rproxy_member_state: 1 for its state, 0 for the others');
    ok t_cmp($prom =~ /^rproxy_member_ejections_total\{$l\} [1-9]\d*$/m
             && $prom =~ /^rproxy_member_effective_weight\{$l\} [\d.e-]+$/m
             && $prom =~ /^rproxy_member_last_check_status\{$l\} 0$/m ? 1 : 0, 1,
             'ejections, effective weight, last check');
    ok t_cmp($prom =~ /^rproxy_group_retries_total\{server="[^"]+",group="flappy"\} [1-9]\d*$/m
             && $prom =~ /^rproxy_group_no_member_total\{server="[^"]+",group="flappy"\} \d+$/m
             ? 1 : 0, 1, 'group series: retries and no-member 503s');
    ok t_cmp($prom =~ /^rproxy_member_response_seconds_count\{server="[^"]+",group="flappy",member="http:\/\/127\.0\.0\.1:$m1 127\.0\.0\.1"\} [1-9]\d*$/m
             ? 1 : 0, 1, 'a response-time histogram per member');

    my $json = JSON::PP->new->decode(http_request(GET => '/rproxy-status?format=json')->{body});
    my ($jg) = grep { $_->{name} eq 'flappy' } @{$json->{groups} || []};
    my ($jm) = grep { $_->{key} eq "127.0.0.1:$flap" } @{$jg->{members} || []};
    ok t_cmp(join(' ', map { $jm->{$_} // 'undef' } qw(state up weight ejections_total)),
             'ejected 0 1 ' . $f->{ejections}, 'JSON: the member with its state and figures');
    ok t_cmp(ref $jm->{latency} eq 'ARRAY' && defined $jg->{retries_refused_total} ? 1 : 0, 1,
             'and its response-time buckets, the group its refused retries');

    my $html = http_request(GET => '/server-status')->{body};
    ok t_cmp($html =~ m{<h3>Group flappy .*?<td>http://127\.0\.0\.1:$flap</td><td>127\.0\.0\.1:$flap</td><td>ejected</td>}s
             ? 1 : 0, 1, '/server-status: a table per group with its members\' states');
    my $auto = http_request(GET => '/server-status?auto')->{body};
    my ($n) = $auto =~ m{^RProxyMember(\d+): \S+ flappy http://127\.0\.0\.1:$flap 127\.0\.0\.1:$flap$}m;
    ok t_cmp(defined $n && $auto =~ /^RProxyMember${n}State: ejected$/m ? 1 : 0, 1,
             '?auto: the member and its state');
}

# %{rproxy-reused}n and %{rproxy-backend-time}n in the access log.
{
    http_request(GET => '/be/note1?say=x');
    http_request(GET => '/be/note2?say=x');
    my $line;
    wait_for(sub {
        open my $fh, '<', "$t/logs/rproxy_notes_log" or return 0;
        ($line) = grep { m{^/be/note2 } } <$fh>;
        defined $line;
    }, 5);
    ok t_cmp($line // '', qr{^/be/note2 1 \d+$}, 'notes logged: reused connection, backend time');
}
