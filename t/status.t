# The rproxy-status page, plain and Prometheus, and the log notes.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 26;

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
