# Where a request goes: the target's path and query joined with the
# client's (exactly one slash at the seam, escaped targets joined as
# written, the target's query first), checked on the request line the backend received; dot-segments (also
# encoded, also "..;") refused; <Directory> not applied to proxied paths;
# absolute-form request lines, foreign Host headers and CONNECT never
# choosing another backend.
use strict;
use warnings FATAL => 'all';

use Apache::Test;
use Apache::TestUtil;
use RProxyTest;

my $be = Apache::Test::vars('rproxy_backend_port');

# [ location-config, client path, backend request target ]
my @cases = (
    # <Location /app/> to .../base/: the location's prefix is replaced
    [ '/app/ -> /base/',        '/app/x/y?q=1',       '/base/x/y?q=1' ],
    [ '/app/ -> /base/',        '/app/',              '/base/' ],
    # exactly one slash where target path and request path meet
    [ '/j2 -> /',               '/j2/favicon.ico',    '/favicon.ico' ],   # "/"+"/f"
    [ '/j9 -> (none)',          '/j9/favicon.ico',    '/favicon.ico' ],   # ""+"/f"
    [ '/j1/ -> (none)',         '/j1/favicon.ico',    '/favicon.ico' ],   # ""+"f"
    [ '/j1/ -> (none)',         '/j1/',               '/' ],              # ""+""
    # a target with escapes (%2F) is joined as written, never decoded
    [ '/j4 -> /a/b',            '/j4/c',              '/a/b/c' ],
    [ '/j3/ -> /a/b',           '/j3/c',              '/a/b/c' ],
    [ '/j5/ -> /a%2Fb',         '/j5/c',              '/a%2Fb/c' ],
    [ '/j6 -> /a%2Fb%2F',       '/j6/c',              '/a%2Fb%2F/c' ],
    [ '/j7/ -> /a%2Fb%2F',      '/j7/c',              '/a%2Fb%2F/c' ],
    [ '/j8 -> /a%2Fb/',         '/j8/c%2Fd',          '/a%2Fb/c%2Fd' ],
    [ '/j3/ -> /a/b',           '/j3/',               '/a/b/' ],
    # escapes travel as the client sent them
    [ '/be/ -> /',              '/be/a%20b%3Fc/%C3%A9', '/a%20b%3Fc/%C3%A9' ],
    # queries: target's, '&', then the request's
    [ '/jq/ -> /q?t=1',         '/jq/x?y=2&z',        '/q/x?t=1&y=2&z' ],
    [ '/jq/ -> /q?t=1',         '/jq/x',              '/q/x?t=1' ],
    # an empty query keeps its '?' (Go's ForceQuery)
    [ '/be/ -> /',              '/be/x?',             '/x?' ],
    [ '/jq/ -> /q?t=1',         '/jq/x?',             '/q/x?t=1' ],
    # the path goes as received: '//' is not merged (MergeSlashes is
    # httpd's for matching <Location>s, not the backend's)
    [ '/app/ -> /base/',        '/app/x//y',          '/base/x//y' ],
    [ '/app/ -> /base/',        '/app/x//y//?q=1',    '/base/x//y//?q=1' ],
    # no literal <Location>: nothing is stripped
    [ '<LocationMatch> -> /m',  '/jm/x',              '/m/jm/x' ],
    [ 'wildcard <Location> -> /w', '/jw/x',            '/w/jw/x' ],
    [ '<If> in <Location /jif/> -> /i/', '/jif/x',     '/i/x' ],
    # mod_rewrite [PT] to /be/$1: the rewritten path goes out
    [ 'RewriteRule [PT] into /be/', '/old/new%20path?q=1', '/new%20path?q=1' ],
);

plan tests => @cases + 9;

sub backend_request_line {
    my $r = shift;
    my ($line) = $r->{body} =~ /^([^\n]*)\n/;
    return $line // "status $r->{status}";
}

for my $c (@cases) {
    my ($what, $path, $want) = @$c;
    my $r = http_request(GET => $path);
    ok t_cmp(backend_request_line($r), "GET $want HTTP/1.1", "$what: $path");
}

# A proxied path is not a file: no <Directory> section (here one that
# denies everything) and no stat() under DocumentRoot stands in its way.
{
    my $r = http_request(GET => '/proxied-not-files/x?say=proxied');
    ok t_cmp("$r->{status} $r->{body}", '200 proxied', '<Directory> does not apply to proxied paths');
}

# Dot-segments never climb out of the target path, even encoded.
{
    my $r = http_request(GET => '/be/x/..%2F..%2Fsecret');
    ok t_cmp($r->{status}, 400, 'encoded ../ in the forwarded path is refused');
}

# "..;" is ".." to Tomcat and Jetty.
for my $path ('/be/%2e%2e;/x', '/be/a/..;jsessionid=1/x') {
    my $r = http_request(GET => $path);
    ok t_cmp($r->{status}, 400, "$path refused");
}

# The backend is always the configured target: an absolute-form request
# line or a foreign Host header changes nothing.
{
    my ($data) = raw_exchange("GET http://elsewhere.invalid/be/abs HTTP/1.1\r\n"
                              . "Host: elsewhere.invalid\r\nConnection: close\r\n\r\n");
    my $r = parse_response($data);
    ok t_cmp(backend_request_line($r), 'GET /abs HTTP/1.1',
             'absolute-form request goes to the target');
    ok t_cmp(($r->{body} =~ /^Host: (.*)$/m)[0], "127.0.0.1:$be",
             'Host is the target authority');
}
{
    my $r = http_request(GET => '/be/host', host => 'evil.invalid');
    ok t_cmp(($r->{body} =~ /^Host: (.*)$/m)[0], "127.0.0.1:$be",
             'a foreign Host header does not pick the backend');
    ok t_cmp(($r->{body} =~ /^X-Forwarded-Host: (.*)$/m)[0], 'evil.invalid',
             'the client Host travels as X-Forwarded-Host');
}
{
    my ($data) = raw_exchange("CONNECT 127.0.0.1:$be HTTP/1.1\r\n"
                              . "Host: 127.0.0.1:$be\r\nConnection: close\r\n\r\n");
    my $r = parse_response($data) || { status => 0 };
    ok t_cmp($r->{status} >= 400, 1, "CONNECT is refused ($r->{status})");
}
