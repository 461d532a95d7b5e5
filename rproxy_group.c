/*
 * rproxy_group.c - backend groups: members, their health, and which one a
 * request goes to.
 *
 * A group (<RProxyGroup name>) is a list of members (RProxyMember).  A
 * member whose host name has several addresses becomes one member per
 * address.  Everything that must be the same in every child lives in
 * shared memory, one slot per member (rproxy_stats.c's slotmem instance
 * "rproxy-members"): the member's address, its health, its requests in
 * flight and its figures.  So every child balances and fails over on the
 * same facts, and a member ejected by one child is ejected for all.
 *
 * Health, passively: a member that fails eject_after times in a row is
 * ejected for eject_time x the times it was ejected, up to eject_max, but
 * never more than max_ejected percent of the group at once (past that the
 * group is "in panic" and every member is used: better some failures than
 * none served).  After an ejection (or a restart) a member's weight ramps
 * up over slow_start.  Every change of state is one error-log line.
 *
 * Picking: "p2c" (the default) takes two members at random by weight and
 * keeps the one with fewer requests in flight for its weight; "round-robin"
 * is smooth weighted round robin (nginx's), per process; "hash" maps a key
 * (a header, a cookie or the client address) onto a ring of points per
 * member, and walks on past members with more than max_load times the
 * group's average in flight (consistent hashing with bounded loads), so a
 * hot key cannot swamp its member and adding one member of N moves about
 * 1/N of the keys.
 */
#include "rproxy.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"
#include "apr_lib.h"
#include "http_log.h"
#include "http_core.h"
#include "util_cookies.h"

#include <stdlib.h>             /* qsort */

#define RING_POINTS 160         /* ring points per unit of weight */
#define HASH_MAX_LOAD 1.25      /* bounded loads' factor */
#define BUDGET_PER_REQUEST 2    /* retry budget, in tenths of a retry */
#define BUDGET_PER_RETRY 10
#define BUDGET_CAP 1000
#define BUDGET_FREE_RETRIES 3   /* past the budget: at once, and a second */

static const char *const state_names[] = {
    "up", "ejected", "down", "draining", "gone"
};

const char *rproxy_member_state_name(const rproxy_member_slot *m,
                                     apr_time_t now)
{
    if (m->admin_drain) {
        return "draining";
    }
    if (m->health == RPROXY_MEMBER_UP && m->back_since
        && now < (apr_time_t)m->back_since + m->group_slow_start) {
        return "slow-start";
    }
    return state_names[m->health < RPROXY_MEMBER_STATES ? m->health : 0];
}

/* ---- configuration ---- */

rproxy_group *rproxy_group_make(apr_pool_t *p, const char *name,
                                server_rec *s)
{
    rproxy_group *g = apr_pcalloc(p, sizeof(*g));
    g->name = name;
    g->server = s;
    g->members = apr_array_make(p, 4, sizeof(rproxy_member_conf));
    g->balance = RPROXY_BALANCE_P2C;
    g->eject_after = 5;
    g->eject_time = apr_time_from_sec(10);
    g->eject_max = apr_time_from_sec(300);
    g->max_ejected_pct = 50;
    g->slow_start = apr_time_from_sec(30);
    g->max_tries = 3;
    g->resolve_interval = apr_time_from_sec(30);
    g->check_tls_verify = 1;
    return g;
}

/* ---- shared slots ---- */

/* The slot name the restart finds a member by. */
static void member_names(apr_pool_t *p, const rproxy_group *g,
                         const rproxy_member_conf *mc, const char *addr,
                         rproxy_member_slot *want)
{
    apr_cpystrn(want->fig.server, rproxy_stats_server_label(p, g->server),
                sizeof(want->fig.server));
    apr_cpystrn(want->fig.location, g->name, sizeof(want->fig.location));
    apr_cpystrn(want->fig.url, apr_psprintf(p, "%s %s", mc->url, addr),
                sizeof(want->fig.url));
}

/* Fills a slot's connection details for one address of a member. */
static void member_address(rproxy_member_slot *m, const rproxy_group *g,
                           const rproxy_member_conf *mc, const char *ip,
                           apr_time_t now)
{
    int v6 = ap_strchr_c(ip, ':') != NULL;
    apr_cpystrn(m->host, ip, sizeof(m->host));
    m->port = mc->port;
    m->tls = mc->tls;
    apr_cpystrn(m->authority, mc->authority, sizeof(m->authority));
    apr_snprintf(m->key, sizeof(m->key), "%s%s%s%s:%u",
                 mc->tls ? "https://" : "", v6 ? "[" : "", ip, v6 ? "]" : "",
                 mc->port);
    if (mc->tls) {
        /* Built here, once per address, not per request.  As a single
         * target's: kept apart per virtual host (its SSLProxy* settings;
         * the same pointer in every child, forked from one configuration)
         * and per verification policy; and per name the certificate is
         * checked against (the SNI), since names of other members or
         * targets may share this address: a connection, or a TLS session
         * to resume, made for one name never serves another.  "member "
         * keeps them apart from a single target's keys. */
        apr_snprintf(m->tls_keys[0], sizeof(m->tls_keys[0]),
                     "member https://%s@%s/%pp/noverify", mc->host,
                     m->key + sizeof("https://") - 1, (void *)g->server);
        apr_snprintf(m->tls_keys[1], sizeof(m->tls_keys[1]),
                     "member https://%s@%s/%pp", mc->host,
                     m->key + sizeof("https://") - 1, (void *)g->server);
    }
    m->weight = mc->weight;
    m->backup = mc->backup;
    m->conf_index = (int)(mc - (const rproxy_member_conf *)g->members->elts);
    m->group_slow_start = g->slow_start;
    if (mc->drain) {
        m->admin_drain = RPROXY_DRAIN_CONF;
    }
    if (!m->back_since) {
        m->back_since = now;    /* a restart ramps up too */
    }
}

apr_status_t rproxy_group_resolve(rproxy_group *g, apr_pool_t *ptemp)
{
    int i;

    for (i = 0; i < g->members->nelts; i++) {
        rproxy_member_conf *mc = &APR_ARRAY_IDX(g->members, i,
                                                rproxy_member_conf);
        apr_sockaddr_t *sa;
        apr_status_t rv = apr_sockaddr_info_get(&sa, mc->host, APR_UNSPEC,
                                                mc->port, 0, ptemp);
        mc->addrs = apr_array_make(ptemp, 2, sizeof(char *));
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, g->server,
                         "rproxy: group %s: member %s: cannot resolve %s",
                         g->name, mc->url, mc->host);
            return rv;
        }
        for (; sa; sa = sa->next) {
            char *ip;
            int j, dup = 0;
            apr_sockaddr_ip_get(&ip, sa);
            for (j = 0; j < mc->addrs->nelts; j++) {
                dup |= !strcmp(APR_ARRAY_IDX(mc->addrs, j, char *), ip);
            }
            if (!dup) {
                *(char **)apr_array_push(mc->addrs) = ip;
            }
        }
    }
    return APR_SUCCESS;
}

/* Room each member name keeps for addresses that appear later. */
#define ADDRESS_HEADROOM 4

int rproxy_group_slots_needed(const rproxy_group *g)
{
    int i, n = 0;
    for (i = 0; i < g->members->nelts; i++) {
        const rproxy_member_conf *mc =
            &APR_ARRAY_IDX(g->members, i, rproxy_member_conf);
        n += mc->addrs->nelts + ADDRESS_HEADROOM;
    }
    return n;
}

/* The state a member address had before this generation: the used slot
 * among old[] with the same names, or NULL. */
static const rproxy_member_slot *state_before(const rproxy_member_slot *old,
                                              int n_old,
                                              const rproxy_member_slot *want)
{
    int i;

    for (i = 0; i < n_old; i++) {
        if (old[i].fig.used && !strcmp(old[i].fig.url, want->fig.url)
            && !strcmp(old[i].fig.location, want->fig.location)
            && !strcmp(old[i].fig.server, want->fig.server)) {
            return &old[i];
        }
    }
    return NULL;
}

void rproxy_group_attach(rproxy_group *g, rproxy_member_slot **slots, int n,
                         const rproxy_member_slot *old, int n_old,
                         rproxy_group_slot *shared, apr_pool_t *pconf,
                         apr_pool_t *ptemp)
{
    apr_time_t now = apr_time_now();
    /* Generation 0 is the start-up pass that only checks, 1 the first
     * real one; past that the running server restarted (graceful or not:
     * the parent, and so the last generation's state, stayed). */
    int restarted = ap_state_query(AP_SQ_CONFIG_GEN) > 1;
    int i, j, used = 0;

    g->slots = slots;
    g->n_slots = n;
    g->shared = shared;
    apr_atomic_inc32(&shared->members_gen);
    shared->retries_in_flight = 0;
    /* A member address that had a slot keeps its figures and health,
     * wherever that slot was (members added or removed before it, in this
     * group or another, move it); the others start afresh. */
    for (i = 0; i < g->members->nelts; i++) {
        rproxy_member_conf *mc = &APR_ARRAY_IDX(g->members, i,
                                                rproxy_member_conf);
        for (j = 0; j < mc->addrs->nelts; j++) {
            const char *ip = APR_ARRAY_IDX(mc->addrs, j, char *);
            rproxy_member_slot want, *m = slots[used++];
            const rproxy_member_slot *was;
            memset(&want, 0, sizeof(want));
            member_names(ptemp, g, mc, ip, &want);
            was = state_before(old, n_old, &want);
            *m = was ? *was : want;
            m->fig.used = 1;
            m->fig.in_flight = 0;
            /* The admin's run-time drain is state like the member's
             * health: a restart of the running server keeps it, while a
             * start (after a stop too) goes by the configuration alone,
             * whatever mod_slotmem_shm's file restored.  The
             * configuration's own drain is applied anew below, so a
             * member configured "drain" is drained whatever the admin
             * did, and one no longer configured so is not. */
            if (!restarted || m->admin_drain != RPROXY_DRAIN_ADMIN) {
                m->admin_drain = 0;
            }
            /* The configuration has this address again; and a member down
             * by checks the group no longer makes would stay down. */
            if (m->health == RPROXY_MEMBER_GONE
                || (m->health == RPROXY_MEMBER_DOWN && !g->check_method)) {
                m->health = RPROXY_MEMBER_UP;
            }
            if (!g->check_method) {
                m->check_run = 0;
                m->last_check = 0;
            }
            member_address(m, g, mc, ip, now);
        }
        /* The headroom of this name, for addresses it gains later. */
        for (j = 0; j < ADDRESS_HEADROOM; j++) {
            rproxy_member_slot *m = slots[used++];
            memset(m, 0, sizeof(*m));
            m->conf_index = i;
        }
    }
    g->rr_current = apr_pcalloc(pconf, sizeof(int) * n);
}

apr_status_t rproxy_group_child_init(rproxy_group *g, apr_pool_t *pchild)
{
    apr_status_t rv = apr_pool_create(&g->ring_pool, pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&g->lock, APR_THREAD_MUTEX_DEFAULT,
                                     pchild);
    }
    return rv;
}

/* ---- health ---- */

static int ejected_count(const rproxy_group *g, int *live)
{
    int i, n = 0;
    *live = 0;
    for (i = 0; i < g->n_slots; i++) {
        const rproxy_member_slot *m = g->slots[i];
        if (m->fig.used && m->health != RPROXY_MEMBER_GONE) {
            (*live)++;
            n += m->health == RPROXY_MEMBER_EJECTED;
        }
    }
    return n;
}

static void set_health(rproxy_group *g, rproxy_member_slot *m,
                       apr_uint32_t to, const char *why)
{
    apr_uint32_t from = apr_atomic_read32(&m->health);
    /* Children race to the same change: the one whose swap took logs. */
    if (from == to || apr_atomic_cas32(&m->health, to, from) != from) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g->server,
                 "rproxy: group %s: member %s (%s): %s -> %s: %s", g->name,
                 m->fig.url, m->key, state_names[from], state_names[to], why);
}

void rproxy_member_succeeded(rproxy_group *g, rproxy_member_slot *m)
{
    (void)g;
    if (m->fails) {
        apr_atomic_set32(&m->fails, 0);
    }
}

void rproxy_member_failed(rproxy_group *g, rproxy_member_slot *m,
                          const char *why)
{
    apr_uint32_t fails = apr_atomic_inc32(&m->fails) + 1;
    int live, ejected;

    apr_atomic_inc64(&m->failures);
    if (fails < (apr_uint32_t)g->eject_after
        || m->health != RPROXY_MEMBER_UP) {
        return;
    }
    ejected = ejected_count(g, &live);
    if ((ejected + 1) * 100 > g->max_ejected_pct * live) {
        /* Past the share: keep it in (panic). */
        return;
    }
    {
        apr_uint32_t times = apr_atomic_inc32(&m->ejections) + 1;
        apr_interval_time_t d = g->eject_time * times;
        if (d > g->eject_max) {
            d = g->eject_max;
        }
        char reason[256];
        m->ejected_until = (apr_uint64_t)(apr_time_now() + d);
        apr_atomic_set32(&m->fails, 0);
        apr_snprintf(reason, sizeof(reason), "%u failures in a row (last: "
                     "%s); out for %" APR_TIME_T_FMT " s", fails, why,
                     apr_time_sec(d));
        set_health(g, m, RPROXY_MEMBER_EJECTED, reason);
    }
}

/* An ejected member whose time is up comes back, ramping up. */
static void maybe_return(rproxy_group *g, rproxy_member_slot *m,
                         apr_time_t now)
{
    if (m->health == RPROXY_MEMBER_EJECTED
        && now >= (apr_time_t)m->ejected_until) {
        m->back_since = (apr_uint64_t)now;
        set_health(g, m, RPROXY_MEMBER_UP, "ejection time over");
    }
}

/* The weight a member is picked by now: its weight, scaled down while it
 * ramps up after coming back. */
static double effective_weight(const rproxy_member_slot *m, apr_time_t now)
{
    apr_interval_time_t since = now - (apr_time_t)m->back_since;
    if (m->group_slow_start > 0 && since >= 0 && since < m->group_slow_start) {
        double share = (double)since / (double)m->group_slow_start;
        return m->weight * (share < 0.05 ? 0.05 : share);
    }
    return m->weight;
}

/* ---- picking ---- */

typedef struct {
    rproxy_member_slot *m;
    int index;
    double weight;
} candidate;

/* The members a request may go to, leaving out those tried: up (or all of
 * them while too many are ejected: panic), not draining; the backups only
 * when no other is usable. */
static int candidates(rproxy_group *g, const unsigned char *tried,
                      candidate *out, apr_time_t now)
{
    int i, n = 0, live, ejected, panic, backup;

    for (i = 0; i < g->n_slots; i++) {
        if (g->slots[i]->fig.used) {
            maybe_return(g, g->slots[i], now);
        }
    }
    ejected = ejected_count(g, &live);
    panic = live > 0 && ejected * 100 > g->max_ejected_pct * live;
    for (backup = 0; backup <= 1 && n == 0; backup++) {
        for (i = 0; i < g->n_slots; i++) {
            rproxy_member_slot *m = g->slots[i];
            if (!m->fig.used || tried[i] || m->admin_drain
                || m->backup != backup || m->health == RPROXY_MEMBER_GONE
                || m->health == RPROXY_MEMBER_DOWN
                || (m->health == RPROXY_MEMBER_EJECTED && !panic)) {
                continue;
            }
            out[n].m = m;
            out[n].index = i;
            out[n].weight = effective_weight(m, now);
            n++;
        }
    }
    return n;
}

static apr_uint32_t next_random(apr_uint32_t *state)
{
    /* xorshift32: a per-thread state is enough to spread picks. */
    apr_uint32_t x = *state ? *state : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static int pick_by_weight(const candidate *c, int n, double total,
                          apr_uint32_t *rnd)
{
    double at = (next_random(rnd) / 4294967296.0) * total;
    int i;
    for (i = 0; i < n - 1; i++) {
        at -= c[i].weight;
        if (at < 0) {
            break;
        }
    }
    return i;
}

static int pick_p2c(const candidate *c, int n, apr_uint32_t *rnd)
{
    double total = 0;
    int a, b, i;

    for (i = 0; i < n; i++) {
        total += c[i].weight;
    }
    a = pick_by_weight(c, n, total, rnd);
    if (n == 1) {
        return a;
    }
    b = pick_by_weight(c, n, total, rnd);
    if (a == b) {
        b = (a + 1 + (int)(next_random(rnd) % (apr_uint32_t)(n - 1))) % n;
    }
    /* Fewer in flight for its weight wins; a tie keeps the first pick,
     * so that an idle group is spread by weight alone. */
    return c[b].m->fig.in_flight / c[b].weight
           < c[a].m->fig.in_flight / c[a].weight ? b : a;
}

/* nginx's smooth weighted round robin, per process. */
static int pick_round_robin(rproxy_group *g, const candidate *c, int n)
{
    int i, best = 0, total = 0;

    apr_thread_mutex_lock(g->lock);
    for (i = 0; i < n; i++) {
        int w = (int)(c[i].weight * 100);
        g->rr_current[c[i].index] += w;
        total += w;
        if (g->rr_current[c[i].index] > g->rr_current[c[best].index]) {
            best = i;
        }
    }
    g->rr_current[c[best].index] -= total;
    apr_thread_mutex_unlock(g->lock);
    return best;
}

/* 64-bit FNV-1a, then a finalizer so that nearby inputs spread. */
static apr_uint64_t hash64(const char *s, apr_size_t len, apr_uint64_t seed)
{
    apr_uint64_t h = 14695981039346656037ULL ^ seed;
    apr_size_t i;
    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

typedef struct {
    apr_uint64_t point;
    int slot;
} ring_point;

static int by_point(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    return x->point < y->point ? -1 : x->point > y->point;
}

/* The ring: RING_POINTS x weight points per member, placed by the
 * member's name, so the same members give the same ring in every process
 * and after a restart.  Made again when the members change. */
static void make_ring(rproxy_group *g)
{
    int i, n = 0, cap = 0;

    for (i = 0; i < g->n_slots; i++) {
        if (g->slots[i]->fig.used) {
            cap += RING_POINTS * (g->slots[i]->weight > 0
                                  ? g->slots[i]->weight : 1);
        }
    }
    apr_pool_clear(g->ring_pool);
    g->ring = apr_palloc(g->ring_pool, sizeof(ring_point) * (cap + 1));
    for (i = 0; i < g->n_slots; i++) {
        const rproxy_member_slot *m = g->slots[i];
        int p, points = RING_POINTS * (m->weight > 0 ? m->weight : 1);
        if (!m->fig.used) {
            continue;
        }
        for (p = 0; p < points; p++) {
            char pt[256];
            int len = apr_snprintf(pt, sizeof(pt), "%s#%d", m->fig.url, p);
            ((ring_point *)g->ring)[n].point = hash64(pt, len, 0);
            ((ring_point *)g->ring)[n].slot = i;
            n++;
        }
    }
    qsort(g->ring, n, sizeof(ring_point), by_point);
    g->ring_len = n;
    g->ring_gen = g->shared->members_gen;
}

/* Consistent hashing with bounded loads: from the key's place on the ring,
 * the first candidate member not above HASH_MAX_LOAD times its fair share
 * of the requests in flight (counting this one); with every candidate
 * full, the first candidate. */
static int pick_hash(rproxy_group *g, const candidate *c, int n,
                     const char *key, apr_pool_t *p)
{
    apr_uint64_t kh = hash64(key, strlen(key), 0);
    apr_uint64_t total_in_flight = 0;
    double total_weight = 0;
    int *of_slot = apr_palloc(p, sizeof(int) * g->n_slots);
    int i, lo, hi, first = -1;
    const ring_point *ring;

    for (i = 0; i < g->n_slots; i++) {
        of_slot[i] = -1;
    }
    for (i = 0; i < n; i++) {
        of_slot[c[i].index] = i;
        total_in_flight += c[i].m->fig.in_flight;
        total_weight += c[i].weight;
    }
    apr_thread_mutex_lock(g->lock);
    if (!g->ring || g->ring_gen != g->shared->members_gen) {
        make_ring(g);
    }
    ring = g->ring;
    lo = 0;
    hi = g->ring_len;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ring[mid].point < kh) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    for (i = 0; i < g->ring_len; i++) {
        int k = of_slot[ring[(lo + i) % g->ring_len].slot];
        double bound;
        if (k < 0) {
            continue;
        }
        if (first < 0) {
            first = k;
        }
        bound = HASH_MAX_LOAD * (double)(total_in_flight + 1) * c[k].weight
                / total_weight;
        if (c[k].m->fig.in_flight + 1 <= bound + 0.999) {
            apr_thread_mutex_unlock(g->lock);
            return k;
        }
    }
    apr_thread_mutex_unlock(g->lock);
    return first >= 0 ? first : 0;
}

/* The key a hash group maps, from the request. */
static const char *hash_key(const rproxy_group *g, request_rec *r)
{
    const char *v = NULL;

    switch (g->hash_source) {
    case RPROXY_HASH_HEADER:
        v = apr_table_get(r->headers_in, g->hash_name);
        break;
    case RPROXY_HASH_COOKIE:
        ap_cookie_read(r, g->hash_name, &v, 0);
        break;
    default:
        v = r->useragent_ip;
        break;
    }
    return v ? v : "";
}

rproxy_member_slot *rproxy_group_pick(rproxy_group *g, request_rec *r,
                                      const unsigned char *tried,
                                      apr_uint32_t *rnd)
{
    candidate *c = apr_palloc(r->pool, sizeof(*c) * (g->n_slots + 1));
    int n = candidates(g, tried, c, apr_time_now()), i;

    if (n == 0) {
        return NULL;
    }
    switch (g->balance) {
    case RPROXY_BALANCE_ROUND_ROBIN:
        i = pick_round_robin(g, c, n);
        break;
    case RPROXY_BALANCE_HASH:
        i = pick_hash(g, c, n, hash_key(g, r), r->pool);
        break;
    default:
        i = pick_p2c(c, n, rnd);
        break;
    }
    return c[i].m;
}

int rproxy_group_untried(rproxy_group *g, const unsigned char *tried,
                         apr_pool_t *p)
{
    candidate *c = apr_palloc(p, sizeof(*c) * (g->n_slots + 1));
    return candidates(g, tried, c, apr_time_now());
}

int rproxy_group_slot_index(const rproxy_group *g,
                            const rproxy_member_slot *m)
{
    int i;
    for (i = 0; i < g->n_slots; i++) {
        if (g->slots[i] == m) {
            return i;
        }
    }
    return -1;
}

int rproxy_group_ejects_on(const rproxy_group *g, int status)
{
    int i;
    for (i = 0; g->eject_statuses && i < g->eject_statuses->nelts; i++) {
        if (APR_ARRAY_IDX(g->eject_statuses, i, int) == status) {
            return 1;
        }
    }
    return 0;
}

/* ---- active checks and re-resolution (rproxy_check.c runs them) ---- */

void rproxy_member_checked(rproxy_group *g, rproxy_member_slot *m,
                           int status, const char *why)
{
    apr_int32_t run = (apr_int32_t)apr_atomic_read32(&m->check_run);
    char reason[256];

    /* Only the one watchdog thread writes these two. */
    if (!why) {
        run = run > 0 ? (run < 1000000 ? run + 1 : run) : 1;
    }
    else {
        run = run < 0 ? (run > -1000000 ? run - 1 : run) : -1;
    }
    apr_atomic_set32(&m->check_run, (apr_uint32_t)run);
    apr_atomic_set32(&m->last_check, status > 0 ? (apr_uint32_t)status : 1);
    if (why && -run >= g->check_fall
        && (m->health == RPROXY_MEMBER_UP
            || m->health == RPROXY_MEMBER_EJECTED)) {
        apr_snprintf(reason, sizeof(reason), "%d check%s in a row failed "
                     "(last: %s)", (int)-run, run < -1 ? "s" : "", why);
        set_health(g, m, RPROXY_MEMBER_DOWN, reason);
    }
    else if (!why && run >= g->check_rise
             && m->health == RPROXY_MEMBER_DOWN) {
        apr_snprintf(reason, sizeof(reason), "%d check%s in a row passed "
                     "(last: %d)", (int)run, run > 1 ? "s" : "", status);
        m->back_since = (apr_uint64_t)apr_time_now();
        set_health(g, m, RPROXY_MEMBER_UP, reason);
    }
}

/* A slot of member conf_index for a new address: a spare one, else one
 * whose address is gone and that has nothing in flight (a request that
 * picked it just before would go to another address of the same name). */
static rproxy_member_slot *free_slot(rproxy_group *g, int conf_index)
{
    int i, pass;
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < g->n_slots; i++) {
            rproxy_member_slot *m = g->slots[i];
            if (m->conf_index != conf_index) {
                continue;
            }
            if (pass == 0 ? !m->fig.used
                : m->health == RPROXY_MEMBER_GONE && !m->fig.in_flight) {
                return m;
            }
        }
    }
    return NULL;
}

void rproxy_group_readdress(rproxy_group *g, int conf_index,
                            const apr_array_header_t *ips, apr_pool_t *p)
{
    const rproxy_member_conf *mc =
        &APR_ARRAY_IDX(g->members, conf_index, rproxy_member_conf);
    char *have = apr_pcalloc(p, ips->nelts + 1);
    apr_time_t now = apr_time_now();
    int i, j, changed = 0;

    for (i = 0; i < g->n_slots; i++) {
        rproxy_member_slot *m = g->slots[i];
        if (!m->fig.used || m->conf_index != conf_index) {
            continue;
        }
        for (j = 0; j < ips->nelts; j++) {
            if (!strcmp(m->host, APR_ARRAY_IDX(ips, j, const char *))) {
                break;
            }
        }
        if (j < ips->nelts) {
            have[j] = 1;
            if (m->health == RPROXY_MEMBER_GONE) {
                m->back_since = (apr_uint64_t)now;
                set_health(g, m, RPROXY_MEMBER_UP,
                           "the name has this address again");
            }
        }
        else if (m->health != RPROXY_MEMBER_GONE) {
            /* No new requests; those in flight finish. */
            set_health(g, m, RPROXY_MEMBER_GONE, "the name no longer has "
                       "this address: drained");
        }
    }
    for (j = 0; j < ips->nelts; j++) {
        const char *ip = APR_ARRAY_IDX(ips, j, const char *);
        rproxy_member_slot want, *m;
        if (have[j]) {
            continue;
        }
        m = free_slot(g, conf_index);
        if (!m) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g->server,
                         "rproxy: group %s: member %s: no room for its new "
                         "address %s (%d spare per name until a restart)",
                         g->name, mc->url, ip, ADDRESS_HEADROOM);
            continue;
        }
        /* Out of every pick while it is written (gone, then unused), its
         * fields first, published last. */
        apr_atomic_set32(&m->health, RPROXY_MEMBER_GONE);
        apr_atomic_set32((volatile apr_uint32_t *)&m->fig.used, 0);
        memset(&want, 0, sizeof(want));
        member_names(p, g, mc, ip, &want);
        want.health = RPROXY_MEMBER_GONE;
        want.fig.in_flight = m->fig.in_flight;
        *m = want;
        member_address(m, g, mc, ip, now);
        m->back_since = (apr_uint64_t)now;
        apr_atomic_set32((volatile apr_uint32_t *)&m->fig.used, 1);
        set_health(g, m, RPROXY_MEMBER_UP, "a new address of the name");
        changed = 1;
    }
    if (changed) {
        apr_atomic_inc32(&g->shared->members_gen);
    }
}

/* ---- the retry budget ---- */

void rproxy_group_count_request(rproxy_group *g)
{
    if (apr_atomic_read32(&g->shared->budget) < BUDGET_CAP) {
        apr_atomic_add32(&g->shared->budget, BUDGET_PER_REQUEST);
    }
}

/* What rproxy_group_take_retry would say now, taking nothing, the free
 * retries of this second counted as it counts them: a status is looked
 * for only when its retry may be given. */
int rproxy_group_retry_possible(rproxy_group *g)
{
    apr_uint32_t sec = (apr_uint32_t)apr_time_sec(apr_time_now());

    return apr_atomic_read32(&g->shared->budget) >= BUDGET_PER_RETRY
           || (apr_atomic_read32(&g->shared->retries_in_flight)
               < BUDGET_FREE_RETRIES
               && (apr_atomic_read32(&g->shared->free_second) != sec
                   || apr_atomic_read32(&g->shared->free_taken)
                      < BUDGET_FREE_RETRIES));
}

int rproxy_group_take_retry(rproxy_group *g)
{
    for (;;) {
        apr_uint32_t b = apr_atomic_read32(&g->shared->budget);
        if (b < BUDGET_PER_RETRY) {
            break;
        }
        if (apr_atomic_cas32(&g->shared->budget, b - BUDGET_PER_RETRY, b)
            == b) {
            apr_atomic_inc32(&g->shared->retries_in_flight);
            return 1;
        }
    }
    /* Past the budget, a few retries are still free, so that a quiet
     * group can retry at all: at most BUDGET_FREE_RETRIES at once and
     * BUDGET_FREE_RETRIES a second.  (Bounded only at once, a client
     * sending one request at a time would get every retry, and a failing
     * pool would see up to RProxyMaxTries times its load.) */
    {
        apr_uint32_t sec = (apr_uint32_t)apr_time_sec(apr_time_now());
        apr_uint32_t was = apr_atomic_read32(&g->shared->free_second);
        if (was != sec
            && apr_atomic_cas32(&g->shared->free_second, sec, was) == was) {
            apr_atomic_set32(&g->shared->free_taken, 0);
        }
        if (apr_atomic_inc32(&g->shared->retries_in_flight)
            < BUDGET_FREE_RETRIES) {
            if (apr_atomic_inc32(&g->shared->free_taken)
                < BUDGET_FREE_RETRIES) {
                return 1;
            }
        }
    }
    apr_atomic_dec32(&g->shared->retries_in_flight);
    apr_atomic_inc64(&g->shared->retries_refused);
    return 0;
}

void rproxy_group_retry_done(rproxy_group *g)
{
    apr_atomic_dec32(&g->shared->retries_in_flight);
}

/* ---- the whole server's groups, at post_config ---- */

apr_status_t rproxy_groups_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                       server_rec *s)
{
    /* In a stable order (by server, then name): a graceful restart finds
     * the same members in the same slots. */
    apr_array_header_t *groups = rproxy_groups_all(ptemp, s);
    rproxy_member_slot **mslots;
    rproxy_group_slot **gslots;
    const rproxy_member_slot *old;
    unsigned int total = 0, at = 0, n_old;
    apr_status_t rv;
    int i;

    for (i = 0; i < groups->nelts; i++) {
        rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        rv = rproxy_group_resolve(g, ptemp);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        total += rproxy_group_slots_needed(g);
    }
    if (!groups->nelts) {
        return APR_SUCCESS;
    }
    mslots = apr_pcalloc(pconf, sizeof(*mslots) * total);
    gslots = apr_pcalloc(pconf, sizeof(*gslots) * groups->nelts);
    /* Where each member address was: the last generation's slots after a
     * graceful restart; else what mod_slotmem_shm's file put back. */
    old = rproxy_stats_previous(s, "rproxy-members",
                                sizeof(rproxy_member_slot), &n_old);
    if (old) {
        old = apr_pmemdup(ptemp, old, sizeof(*old) * n_old);
    }
    rv = rproxy_stats_create("rproxy-members", sizeof(rproxy_member_slot),
                             total, (void **)mslots, pconf, s);
    if (rv == APR_SUCCESS && !old) {
        rproxy_member_slot *copy = apr_palloc(ptemp, sizeof(*copy) * total);
        for (n_old = 0; n_old < total; n_old++) {
            copy[n_old] = *mslots[n_old];
        }
        old = copy;
    }
    if (rv == APR_SUCCESS) {
        rv = rproxy_stats_create("rproxy-groups", sizeof(rproxy_group_slot),
                                 groups->nelts, (void **)gslots, pconf, s);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < groups->nelts; i++) {
        rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        int n = rproxy_group_slots_needed(g);
        rproxy_group_attach(g, mslots + at, n, old, (int)n_old, gslots[i],
                            pconf, ptemp);
        at += n;
    }
    return APR_SUCCESS;
}

apr_status_t rproxy_groups_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_array_header_t *groups = rproxy_groups_all(pchild, s);
    int i;

    for (i = 0; i < groups->nelts; i++) {
        apr_status_t rv = rproxy_group_child_init(
            APR_ARRAY_IDX(groups, i, rproxy_group *), pchild);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* ---- for the status page: every group, and the admin's drain ---- */

/* The weight a member is picked by now (its weight while it ramps up
 * after coming back, scaled down), as the balancer sees it. */
double rproxy_member_effective_weight(const rproxy_member_slot *m,
                                      apr_time_t now)
{
    return effective_weight(m, now);
}

static int by_group_name(const void *a, const void *b)
{
    return strcmp((*(rproxy_group *const *)a)->name,
                  (*(rproxy_group *const *)b)->name);
}

/* Every group of every virtual host, once (a virtual host sees the main
 * server's groups too): in the order of the servers, then by name. */
apr_array_header_t *rproxy_groups_all(apr_pool_t *p, server_rec *s)
{
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(rproxy_group *));
    apr_hash_t *seen = apr_hash_make(p);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        const rproxy_server_conf *sc =
            ap_get_module_config(vs->module_config, &rproxy_module);
        apr_hash_index_t *hi;
        int first = out->nelts;
        if (!sc->groups) {
            continue;
        }
        for (hi = apr_hash_first(p, sc->groups); hi; hi = apr_hash_next(hi)) {
            rproxy_group *g = apr_hash_this_val(hi);
            if (apr_hash_get(seen, &g, sizeof(g))) {
                continue;
            }
            apr_hash_set(seen, apr_pmemdup(p, &g, sizeof(g)), sizeof(g), g);
            *(rproxy_group **)apr_array_push(out) = g;
        }
        qsort(out->elts + first * out->elt_size, out->nelts - first,
              out->elt_size, by_group_name);
    }
    return out;
}

/* A member of g by its key (address:port) or by its name on the status
 * page (the member as written, a space, its address), or NULL. */
rproxy_member_slot *rproxy_group_find_member(rproxy_group *g,
                                             const char *key)
{
    int i;
    for (i = 0; i < g->n_slots; i++) {
        rproxy_member_slot *m = g->slots[i];
        if (m->fig.used && (!strcmp(m->key, key) || !strcmp(m->fig.url, key))) {
            return m;
        }
    }
    return NULL;
}

/* Drains a member (no new requests; those in flight finish) or takes it
 * back, at run time, for every child; one log line naming who did it.
 * Returns whether anything changed. */
int rproxy_member_set_drain(rproxy_group *g, rproxy_member_slot *m,
                            int drain, const char *who)
{
    apr_time_t now = apr_time_now();
    const char *from = rproxy_member_state_name(m, now), *to;
    /* Draining a member drained already (by the configuration, say)
     * changes nothing: it stays the configuration's. */
    apr_uint32_t was = drain ? apr_atomic_cas32(&m->admin_drain,
                                                RPROXY_DRAIN_ADMIN, 0)
                             : apr_atomic_xchg32(&m->admin_drain, 0);

    if (!was == !drain) {
        return 0;
    }
    to = rproxy_member_state_name(m, now);
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g->server,
                 "rproxy: group %s: member %s (%s): %s -> %s: %s by %s",
                 g->name, m->fig.url, m->key, from, to,
                 drain ? "drained" : "enabled", who);
    return 1;
}
