#!/usr/bin/env python3
"""Turn bench/run.sh's raw measurements into the markdown report.

    report.py RAW.tsv META

RAW.tsv has one measurement a line: metric, workload, variant, round, value.
META has "key=value" lines describing the run.  The report goes to stdout.

Every figure is the median over rounds; the ratio next to it is the median
over rounds of (this variant / mod_proxy_http measured in the same round).
"""
import statistics
import sys
from collections import defaultdict

VARIANTS = [
    ("rproxy_apr", "mod_rproxy, pool apr"),
    ("rproxy_g1", "mod_rproxy, group of 1"),
    ("rproxy_g4", "mod_rproxy, group of 4"),
    ("rproxy_none", "mod_rproxy, pool none"),
    ("proxy_http", "mod_proxy_http"),
    ("static", "httpd static (ceiling)"),
    ("nginx", "nginx proxy_pass"),
    ("rproxy_tls", "mod_rproxy, https backend"),
    ("proxy_http_tls", "mod_proxy_http, https backend"),
    ("floor_mem", "floor: httpd answering from memory"),
    ("floor_proxy", "floor: bare backend round trip"),
]
REF = "proxy_http"
# The variants to the https backend are compared with mod_proxy_http to
# that backend, not to the plain one.
TLS_REF = "proxy_http_tls"


def ref_of(variant):
    return TLS_REF if variant.endswith("_tls") else REF
WORKLOADS = [("1k:16", "1 KiB, 16 conns"), ("1k:128", "1 KiB, 128 conns"),
             ("64k:16", "64 KiB, 16 conns"), ("64k:128", "64 KiB, 128 conns")]


def load(path):
    # data[metric][workload][variant][round] = value
    data = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    with open(path) as f:
        for line in f:
            metric, workload, variant, rnd, value = line.split("\t")
            data[metric][workload][variant][int(rnd)] = float(value)
    return data


def median_and_ratio(data, metric, workload, variant, ref_variant=None):
    """(median value, median per-round ratio to ref_variant, by default
    ref_of(variant)), None where missing."""
    ref_variant = ref_variant or ref_of(variant)
    rounds = data[metric][workload][variant]
    ref = data[metric][workload][ref_variant]
    if not rounds:
        return None, None
    value = statistics.median(rounds.values())
    ratios = [v / ref[r] for r, v in rounds.items() if ref.get(r)]
    return value, (statistics.median(ratios) if ratios else None)


def fmt_rps(v):
    return "{:,.0f}".format(v)


def fmt_ms(us):
    ms = us / 1000.0
    return "%.2f ms" % ms if ms < 10 else "%.1f ms" % ms


def fmt_mbs(v):
    return "{:,.0f} MB/s".format(v)


def fmt_kib(v):
    return "%.1f KiB" % v


def fmt_mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def fmt_us(v):
    return "%.0f µs" % v


def row(data, title, metric, workload, fmt, ratio=True, ref=None):
    cells = []
    for v, _ in VARIANTS:
        value, r = median_and_ratio(data, metric, workload, v, ref)
        if value is None:
            cells.append("–")
        elif ratio and r is not None:
            cells.append("%s (%.2fx)" % (fmt(value), r))
        else:
            cells.append(fmt(value))
    return "| %s | %s |" % (title, " | ".join(cells))


def budget(data, measured, nproc, p):
    """What a req/s target leaves the proxy to spend, when the machine's
    CPUs are what limits req/s: at k times the reference's req/s, a request
    may cost the whole machine nproc / (k * ref req/s) of CPU; the backend,
    wrk and the kernel's share outside the proxy (the variant's machine CPU
    per request minus its proxy CPU) stay what they were, and the rest is
    what the proxy may spend.  Set against the floor's and httpd static's
    own proxy CPU, it says whether any handler could meet the target."""
    pairs = [(v, REF, 1.5) for v in ("rproxy_apr",) if REF in measured]
    pairs += [("rproxy_tls", TLS_REF, 1.3)] if TLS_REF in measured else []
    pairs = [x for x in pairs if x[0] in measured]
    if not data["machine_cpu_us"] or not pairs:
        return
    p("")
    p("What the req/s targets leave the proxy to spend (medians; the "
      "machine's busy CPU per request from /proc/stat, all processes): "
      "at the target, a request may cost the machine at most %d CPUs / "
      "(target × the reference's req/s); take away what the backend, wrk "
      "and the kernel outside the proxy spent per request in this run, and "
      "the rest is the proxy's allowance.  Where the allowance is below "
      "what httpd spends answering from memory (floor_mem) or what the "
      "bare backend round trip costs (floor_proxy), no handler in httpd "
      "could meet the target on this machine." % nproc)
    p("")
    p("| variant / reference, workload | busy share of the %d CPUs | machine "
      "CPU per request | of which the proxy | the rest | target req/s | "
      "the proxy's allowance at the target | floor_proxy | floor_mem | "
      "httpd static |" % nproc)
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def med(metric, w, v):
        rounds = data[metric][w][v]
        return statistics.median(rounds.values()) if rounds else None

    def us(v):
        return "–" if v is None else fmt_us(v)
    for v, ref, k in pairs:
        for w, label in WORKLOADS:
            mach, cpu = med("machine_cpu_us", w, v), med("cpu_us", w, v)
            rps, ref_rps = med("rps", w, v), med("rps", w, ref)
            if None in (mach, cpu, rps, ref_rps):
                continue
            want = k * ref_rps
            allowance = nproc * 1e6 / want - (mach - cpu)
            p("| %s / %s, %s | %.0f %% | %s | %s | %s | %s (%.1fx) | **%s** "
              "| %s | %s | %s |" % (
                  v, ref, label, 100.0 * rps * mach / (nproc * 1e6),
                  fmt_us(mach), fmt_us(cpu), fmt_us(mach - cpu),
                  fmt_rps(want), k, fmt_us(allowance),
                  us(med("cpu_us", w, "floor_proxy")),
                  us(med("cpu_us", w, "floor_mem")),
                  us(med("cpu_us", w, "static"))))


def main():
    data = load(sys.argv[1])
    meta = {}
    with open(sys.argv[2]) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    if any("rproxy_alt" in w for m in data.values() for w in m.values()):
        VARIANTS.insert(1, ("rproxy_alt", meta.get("alt_label", "rproxy_alt")))
    # Only the variants measured (BENCH_GROUPS=0, BENCH_VARIANTS).
    measured = set(v for w in data["rps"].values() for v in w)
    VARIANTS[:] = [(v, label) for v, label in VARIANTS if v in measured]

    out = []
    p = out.append
    p("# mod_rproxy vs mod_proxy_http: %s mode" % meta["mode"])
    p("")
    p("- date: %s" % meta["date"])
    p("- machine: %s CPUs (nproc), %s; %s" % (meta["nproc"], meta["cpu"],
                                             meta["kernel"]))
    p("- load average before the run: %s; after: %s" % (meta["loadavg"],
                                                       meta["loadavg_end"]))
    seen, _, checks = meta["busy"].partition(" of ")
    p("- this project's fuzzer or test suite running: %s"
      % ("never seen (%s checks, one before each measurement)" % checks
         if seen == "0" else "**seen at %s of %s checks (before: %s): "
         "those figures are noisy**" % (seen, checks, meta["busy_where"])))
    p("- software: %s; %s; %s; module at %s" % (meta["httpd_version"],
      meta["nginx_version"], meta["wrk_version"], meta["commit"]))
    p("- command: `%s`" % meta["command"])
    p("- wrk: `wrk -t2 -c{16,128} -d%ss --latency`, %s rounds, variants "
      "interleaved within each round; 512 MiB download: %s rounds; "
      "slow clients: %s connections each reading a 1 MiB body at %s KiB/s, "
      "%s round(s), each on a freshly started server"
      % (meta["duration"], meta["rounds"], meta["dl_rounds"], meta["clients"],
         int(meta["rate"]) // 1024, meta["mem_rounds"]))
    if meta["clients"] != "512":
        p("- NOTE: %s slow clients, not 512 (quick mode)" % meta["clients"])
    p("")
    p("Each cell: median over rounds, and in parentheses the median of the "
      "per-round ratio to mod_proxy_http in the same round (for the https "
      "backend columns: to mod_proxy_http to the https backend; for CPU per "
      "request: to httpd serving the file itself). req/s and MB/s: "
      "higher is better; p99, CPU and memory: lower is better. Proxy CPU "
      "per request: the CPU time (user + system, from /proc) of the "
      "proxy's processes during the wrk run over the requests wrk counted; "
      "the backend's and wrk's CPU are not in it.")
    p("")
    p("| figure | %s |" % " | ".join(label for _, label in VARIANTS))
    p("|---|%s" % ("---:|" * len(VARIANTS)))
    for w, label in WORKLOADS:
        p(row(data, "req/s, %s" % label, "rps", w, fmt_rps))
    for w, label in WORKLOADS:
        p(row(data, "p99 latency, %s" % label, "p99_us", w, fmt_ms))
    # What an admin sizes a server with; compared with httpd serving the
    # same bytes itself, the fair floor for a module inside httpd.
    if "static" in measured:
        for w, label in WORKLOADS:
            p(row(data, "proxy CPU per request, %s (× httpd static)" % label,
                  "cpu_us", w, fmt_us, ref="static"))
    if data["machine_cpu_us"]:
        for w, label in WORKLOADS:
            p(row(data, "backend CPU per request, %s" % label,
                  "backend_cpu_us", w, fmt_us, ratio=False))
        for w, label in WORKLOADS:
            p(row(data, "whole machine's busy CPU per request, %s" % label,
                  "machine_cpu_us", w, fmt_us, ratio=False))
    p(row(data, "512 MiB download", "dl_mbs", "512m", fmt_mbs))
    p(row(data, "memory per slow connection (peak − idle RSS) / clients",
          "mem_per_conn_kb", "slow", fmt_kib))
    p(row(data, "of which thread-stack pages / clients",
          "mem_stack_per_conn_kb", "slow", fmt_kib, ratio=False))
    p(row(data, "idle RSS before the slow clients", "mem_idle_kb", "slow",
          fmt_mib, ratio=False))
    p(row(data, "peak RSS with the slow clients", "mem_peak_kb", "slow",
          fmt_mib, ratio=False))
    p(row(data, "slow downloads completed", "mem_complete", "slow",
          lambda v: "%d" % v, ratio=False))

    p("")
    p("Buffer pool churn and backend connections (from rproxy-status, "
      "summed over the httpd's processes, per 1000 requests as counted by "
      "wrk; median over rounds; after a warm-up run):")
    p("")
    p("| workload | apr: buffers_allocated | none: fallback_buffers "
      "| apr: backend_connects | none: backend_connects |")
    p("|---|---:|---:|---:|---:|")
    cells = []
    for v in ("rproxy_apr", "rproxy_none"):
        rounds = data["churn_loop"]["64k"][v]
        cells.append("%.2f" % statistics.median(rounds.values())
                     if rounds else "–")
    p("| counted loop, 2000 × 64 KiB, 16 parallel (curl) | %s | – | – |"
      % " | ".join(cells))
    for w, label in WORKLOADS:
        cells = []
        for metric, v in (("churn", "rproxy_apr"), ("churn", "rproxy_none"),
                          ("bconn", "rproxy_apr"), ("bconn", "rproxy_none")):
            rounds = data[metric][w][v]
            cells.append("%.2f" % statistics.median(rounds.values())
                         if rounds else "–")
        p("| %s | %s |" % (label, " | ".join(cells)))

    total = data["apr_total"]["all"]["rproxy_apr"]
    if total:
        p("")
        p("After all the wrk runs the apr pool held %d buffers in all "
          "(summed over processes): bounded by the peak number of requests "
          "in flight per process, whatever the number of requests."
          % total[1])
    errors = []
    for w in data["errors"]:
        for v, rounds in data["errors"][w].items():
            for r, n in sorted(rounds.items()):
                if n:
                    errors.append("%s %s round %d: %d" % (v, w, r, n))
    if errors:
        p("")
        p("Errors seen by wrk (non-2xx responses and socket errors): "
          + "; ".join(errors))

    if "rproxy_g1" in measured or "rproxy_g4" in measured:
        p("")
        p("Backend groups (issue 13): req/s of the group variants against "
          "the single target (rproxy_apr) and the group of four against the "
          "group of one; each ratio is the median of the per-round ratios "
          "(the variants run back to back within a round), and in brackets "
          "the lowest and highest round.")
        p("")
        p("| workload | single target | group of 1 | group of 4 "
          "| group of 1 / single (>= 0.98) | group of 4 / group of 1 "
          "(>= 0.95) |")
        p("|---|---:|---:|---:|---:|---:|")

        def ratio_cell(w, a, b, floor):
            ra = data["rps"][w][a]
            rb = data["rps"][w][b]
            rs = sorted(ra[r] / rb[r] for r in ra if rb.get(r))
            if not rs:
                return "–"
            m = statistics.median(rs)
            return "%.3f [%.2f-%.2f] %s" % (
                m, rs[0], rs[-1], "met" if m >= floor else "**not met**")

        for w, label in WORKLOADS:
            vals = []
            for v in ("rproxy_apr", "rproxy_g1", "rproxy_g4"):
                value, _ = median_and_ratio(data, "rps", w, v)
                vals.append(fmt_rps(value) if value is not None else "–")
            p("| %s | %s | %s | %s |" % (
                label, " | ".join(vals),
                ratio_cell(w, "rproxy_g1", "rproxy_apr", 0.98),
                ratio_cell(w, "rproxy_g4", "rproxy_g1", 0.95)))

    if "rproxy_tls" in measured and TLS_REF in measured:
        p("")
        p("https backend (issue 14): mod_rproxy (RProxyTarget https://...) "
          "against mod_proxy_http (ProxyPass https://... keepalive=On), both "
          "with SSLProxyEngine on and the certificate verified (chain and "
          "name), to the same nginx TLS backend; the ratio is the median of "
          "the per-round ratios, in brackets the lowest and highest round.")
        p("")
        p("| workload | mod_rproxy req/s | mod_proxy_http req/s "
          "| ratio (>= 1.3) | mod_rproxy p99 | mod_proxy_http p99 "
          "| TLS connections accepted by the backend per 1000 requests, "
          "mod_rproxy / mod_proxy_http |")
        p("|---|---:|---:|---:|---:|---:|---:|")

        def accepts(w, v):
            rounds = data["tls_accepts"][w][v]
            return ("%.2f" % statistics.median(rounds.values())
                    if rounds else "–")
        for w, label in WORKLOADS:
            ra = data["rps"][w]["rproxy_tls"]
            rb = data["rps"][w][TLS_REF]
            rs = sorted(ra[r] / rb[r] for r in ra if rb.get(r))
            if not rs:
                continue
            m = statistics.median(rs)
            va, _ = median_and_ratio(data, "rps", w, "rproxy_tls")
            vb, _ = median_and_ratio(data, "rps", w, TLS_REF)
            pa, _ = median_and_ratio(data, "p99_us", w, "rproxy_tls")
            pb, _ = median_and_ratio(data, "p99_us", w, TLS_REF)
            p("| %s | %s | %s | %.2fx [%.2f-%.2f] %s | %s | %s | %s / %s |" % (
                label, fmt_rps(va), fmt_rps(vb), m, rs[0], rs[-1],
                "met" if m >= 1.3 else "**not met**", fmt_ms(pa), fmt_ms(pb),
                accepts(w, "rproxy_tls"), accepts(w, TLS_REF)))

    budget(data, measured, int(meta["nproc"]), p)

    if "rproxy_apr" not in measured or REF not in measured:
        print("\n".join(out))
        return
    p("")
    p("Targets for mod_rproxy (pool apr) against mod_proxy_http:")
    p("")
    p("| target | measured | |")
    p("|---|---:|---|")

    def target(title, metric, workload, ok):
        _, r = median_and_ratio(data, metric, workload, "rproxy_apr")
        if r is None:
            p("| %s | – | not measured |" % title)
        else:
            p("| %s | %.2fx | %s |" % (title, r,
                                        "met" if ok(r) else "**not met**"))

    def cpu_target(title, workload, limit):
        if "static" not in measured:
            return
        _, r = median_and_ratio(data, "cpu_us", workload, "rproxy_apr",
                                "static")
        if r is None:
            p("| %s | – | not measured |" % title)
        else:
            p("| %s | %.2fx | %s |" % (title, r, "met" if r <= limit
                                        else "**not met**"))

    for w, label in WORKLOADS:
        cpu_target("CPU per request %s <= %.2fx httpd static"
                   % (label, 1.15 if w.startswith("1k") else 1.25), w,
                   1.15 if w.startswith("1k") else 1.25)
    for w, label in WORKLOADS:
        target("req/s %s >= 1.5x" % label, "rps", w, lambda r: r >= 1.5)
    for w, label in WORKLOADS[1::2]:
        target("p99 %s <= 1.0x" % label, "p99_us", w, lambda r: r <= 1.0)
    target("512 MiB download >= 1.6x", "dl_mbs", "512m", lambda r: r >= 1.6)
    target("memory per slow connection <= 0.4x", "mem_per_conn_kb", "slow",
           lambda r: r <= 0.4)
    kib, _ = median_and_ratio(data, "mem_per_conn_kb", "slow", "rproxy_apr")
    if kib is not None:
        p("| memory per slow connection <= 72 KiB (issue 15) | %.1f KiB | %s |"
          % (kib, "met" if kib <= 72 else "**not met**"))
    churn = list(data["churn_loop"]["64k"]["rproxy_apr"].values())
    if churn:
        p("| pool apr: 0 new buffers per 1000 requests after warm-up "
          "(counted loop) | max %.2f | %s |"
          % (max(churn), "met" if max(churn) == 0 else "**not met**"))
    churn = [x for w, _ in WORKLOADS
             for x in data["churn"][w]["rproxy_apr"].values()]
    if churn:
        p("| pool apr: new buffers per 1000 requests in the wrk runs "
          "| max %.2f | %s |" % (max(churn), "0" if max(churn) == 0
                                 else "not 0: a process saw more requests "
                                 "in flight than ever before"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
