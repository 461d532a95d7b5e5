# The rproxy-status page, plain and Prometheus, and the log notes.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

plan tests => 8;

my $t = Apache::Test::vars('t_dir');

{
    my $s = session();              # one process sees it all, any MPM
    my $before = $s->counters;
    $s->get('/be/s?gen=12345');
    my $after = $s->counters;
    ok t_cmp($after->{requests} - $before->{requests}, 1, 'requests counted');
    ok t_cmp($after->{bytes_from_backend} - $before->{bytes_from_backend}, 12345,
             'body bytes from the backend counted');
    ok t_cmp($after->{active_connections}, 0, 'no backend connection active at rest');
    my @missing = grep { !defined $after->{$_} }
        qw(gets puts outstanding buffers_allocated backend_connects backend_reuses requests errors);
    ok t_cmp("@missing", '', 'every documented counter is there');
}

{
    my $r = http_request(GET => '/rproxy-status?format=prometheus');
    ok t_cmp(($r->{headers}{'content-type'} || [''])->[0], qr{^text/plain; version=0\.0\.4},
             'Prometheus content type');
    ok t_cmp($r->{body} =~ /^# TYPE rproxy_buffer_gets_total counter\nrproxy_buffer_gets_total\{pid="\d+"\} \d+$/m
             ? 1 : 0, 1, 'counter in Prometheus text format');
    ok t_cmp($r->{body} =~ /^rproxy_backend_idle_connections\{pid="\d+"\} \d+$/m ? 1 : 0, 1,
             'idle connections gauge');
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
