#!/usr/bin/env python3
"""soak/chaos_check.py - the verdict on the requests of the chaos soak.

    chaos_check.py DIR TAG

Joins the client's outcomes (DIR/outcomes.TAG.*, soak/chaos_client.py) with
what the members saw (DIR/member*.log, soak/chaos_backend.py; ids of TAG
only) and prints "key value" lines, then "example ..." lines for the first
failures.  The rules (issue 13, "A soak that is not quiet"):
  - no GET fails: every GET got a whole 200 (the group always keeps at
    least two members usable in soak/chaos.sh);
  - no POST reaches a backend twice;
  - every POST that failed was answered 502 or 503: a POST with no answer,
    a cut answer, or another status is "silent".  One exception, counted
    apart: a POST sent on a reused keep-alive connection that ended before
    any byte of an answer and that no member ever saw (httpd closed the
    idle connection as the request went out; RFC 9112 9.3.1);
  - every POST answered 200 reached exactly one member, and every body a
    member got is the client's (no mix-up, no truncation).
"""
import glob
import os
import sys
from collections import Counter


def main():
    d, tag = sys.argv[1], sys.argv[2]
    seen = Counter()        # POST id -> times a member got it whole
    badbody_backend = 0
    gets_backend = 0
    for path in glob.glob(os.path.join(d, "member*.log")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4 or not parts[1].startswith(tag):
                    continue
                if parts[0] == "POST":
                    seen[parts[1]] += 1
                    if parts[3] != "1":
                        badbody_backend += 1
                else:
                    gets_backend += 1
    # The chaos events ("EPOCH what ..."), to say what each failure followed.
    events = []
    try:
        with open(os.path.join(d, "events")) as f:
            for line in f:
                t, _, what = line.strip().partition(" ")
                events.append((int(t), what))
    except OSError:
        pass
    c = Counter()
    after = Counter()
    examples = []

    def last_event(t):
        best = None
        for et, what in events:
            if et <= t:
                best = (et, what)
        return best

    def fail(what, line):
        c[what] += 1
        parts = line.split()
        ev = last_event(int(parts[5])) if len(parts) > 5 else None
        kind = (ev[1].split()[0] if ev else
                "before_any_event" if len(parts) > 5 else "unknown_time")
        if ev and kind in ("drain", "enable"):
            kind = ev[1].split()[0] + " by " + ev[1].split()[3]
        after["%s %s" % (what, kind)] += 1
        if len(examples) < 12:
            examples.append("%s: %s [%s]" % (
                what, line.strip(),
                "%d s after: %s" % (int(parts[5]) - ev[0], ev[1]) if ev
                else "before any event" if len(parts) > 5 else "no time"))

    for path in sorted(glob.glob(os.path.join(d, "outcomes.%s.*" % tag))):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 5:
                    continue
                method, rid, kind, status, retried = parts[:5]
                status = int(status)
                c["requests"] += 1
                c[method.lower() + "s"] += 1
                if retried == "1":
                    c["get_retried_after_keepalive_race"] += 1
                if method == "GET":
                    if kind == "ok" and status == 200:
                        c["get_ok"] += 1
                    else:
                        fail("get_failed", line)
                        c["get_failed_%s_%d" % (kind, status)] += 1
                    continue
                n = seen.get(rid, 0)
                if n > 1:
                    fail("post_duplicated", line + " (members saw it %d times)" % n)
                if kind == "ok" and status == 200:
                    c["post_ok"] += 1
                    if n != 1:
                        fail("post_200_not_seen_once", line + " (seen %d)" % n)
                elif kind == "ok" and status in (502, 503):
                    c["post_%d" % status] += 1
                    c["post_%d_reached_member" % status] += n > 0
                elif kind == "noans_reused" and n == 0:
                    c["post_keepalive_race_unsent"] += 1
                else:
                    fail("post_silent", line + " (members saw it %d times)" % n)
                    c["post_silent_%s_%d" % (kind, status)] += 1
    c["posts_seen_by_members"] = len(seen)
    c["post_bodies_wrong_at_member"] = badbody_backend
    c["gets_seen_by_members"] = gets_backend
    failed = (c["get_failed"] + c["post_duplicated"] + c["post_silent"]
              + c["post_200_not_seen_once"] + badbody_backend)
    for k in ("requests", "gets", "posts", "get_ok", "get_failed",
              "get_retried_after_keepalive_race", "post_ok", "post_502",
              "post_503", "post_502_reached_member", "post_503_reached_member",
              "post_keepalive_race_unsent", "post_silent", "post_duplicated",
              "post_200_not_seen_once", "posts_seen_by_members",
              "post_bodies_wrong_at_member", "gets_seen_by_members"):
        print(k, c[k])
    for k in sorted(c):
        if k.startswith(("get_failed_", "post_silent_")):
            print(k, c[k])
    for k in sorted(after):
        print("after_event", k.replace(" ", ":", 1).replace(" ", "_"), after[k])
    print("verdict", "PASS" if failed == 0 and c["requests"] else "FAIL")
    for e in examples:
        print("example", e)


if __name__ == "__main__":
    main()
