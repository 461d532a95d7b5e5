/*
 * rproxy_stats.c - the server-wide counters, in memory every child shares.
 *
 * The memory comes from httpd's slotmem provider (mod_slotmem_shm), the way
 * mod_proxy_balancer keeps its workers' state, in two instances:
 * "rproxy-server", one slot with the server's counters, and
 * "rproxy-targets", one slot per RProxyTarget (a group member will take a
 * slot of its own the same way), found by the target's name.  The parent
 * creates both at post_config and every child inherits the mapping, so the
 * request path only does atomic adds on plain memory: no lock, no call into
 * the provider.
 *
 * A graceful restart hands the counters to the next generation through a
 * copy in the process pool (rproxy_stats_create); a full restart through
 * mod_slotmem_shm's file (AP_SLOTMEM_TYPE_PERSIST), when the layout (slot
 * size and count) is the same: counters go on across both.  The target slots are counted in steps of
 * TARGET_SLOT_STEP so that adding or removing a few RProxyTargets keeps the
 * layout; a target's slot is found again by its name, and a slot whose
 * target left the configuration is cleared.  Gauges (in flight, connections)
 * start at zero in each generation: the previous one's children count on
 * in the memory they already have.
 */
#include "rproxy.h"
#include "ap_slotmem.h"
#include "http_core.h"
#include "apr_strings.h"

#define TARGET_SLOT_STEP 64

rproxy_counters *rproxy_stats;

/* What the configuration being read has named: targets are registered as
 * their directives are read, then get their slot at post_config. */
static apr_array_header_t *registered;
static rproxy_target_slot **target_slots;
static unsigned int target_slot_count;

/* Upper bounds of the response-time buckets, in microseconds; the last
 * bucket has none.  Prometheus' default bounds. */
const apr_interval_time_t rproxy_latency_bounds[RPROXY_LATENCY_BUCKETS - 1] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000
};

static apr_status_t forget_registered(void *unused)
{
    (void)unused;
    registered = NULL;
    target_slots = NULL;
    target_slot_count = 0;
    rproxy_stats = NULL;
    return APR_SUCCESS;
}

void rproxy_stats_pre_config(apr_pool_t *pconf)
{
    registered = apr_array_make(pconf, 16, sizeof(rproxy_target *));
    apr_pool_cleanup_register(pconf, NULL, forget_registered,
                              apr_pool_cleanup_null);
}

void rproxy_stats_register_target(rproxy_target *t)
{
    *(rproxy_target **)apr_array_push(registered) = t;
}

const apr_array_header_t *rproxy_stats_targets(void)
{
    return registered;
}

const ap_slotmem_provider_t *rproxy_stats_provider(void)
{
    return ap_lookup_provider(AP_SLOTMEM_PROVIDER_GROUP, "shm",
                              AP_SLOTMEM_PROVIDER_VERSION);
}

const char *rproxy_stats_server_label(apr_pool_t *p, server_rec *s)
{
    apr_port_t port = s->port;
    if (!port && s->addrs) {
        port = s->addrs->host_port;
    }
    return port ? apr_psprintf(p, "%s:%u", s->server_hostname, port)
                : s->server_hostname;
}

/* Copies src into a fixed field, cut short (and marked so) if too long. */
static void set_label(char *dst, apr_size_t size, const char *src)
{
    apr_size_t len = strlen(src);
    if (len < size) {
        memcpy(dst, src, len + 1);
        return;
    }
    memcpy(dst, src, size - 4);
    memcpy(dst + size - 4, "...", 4);
}

static int same_name(const rproxy_target_slot *a, const rproxy_target_slot *b)
{
    return !strcmp(a->server, b->server) && !strcmp(a->location, b->location)
           && !strcmp(a->url, b->url);
}

/* Gives every registered target its slot: the one that already has its
 * name, else one that no configured target names. */
static void assign_slots(apr_pool_t *ptemp)
{
    int n = registered->nelts, i;
    unsigned int j;
    char *named = apr_pcalloc(ptemp, target_slot_count);
    rproxy_target_slot *want = apr_pcalloc(ptemp, sizeof(*want) * (n + 1));

    for (i = 0; i < n; i++) {
        rproxy_target *t = APR_ARRAY_IDX(registered, i, rproxy_target *);
        set_label(want[i].server, sizeof(want[i].server),
                  rproxy_stats_server_label(ptemp, t->server));
        set_label(want[i].location, sizeof(want[i].location),
                  t->location ? t->location : "*");
        set_label(want[i].url, sizeof(want[i].url), t->url);
        t->stats = NULL;
        for (j = 0; j < target_slot_count && !t->stats; j++) {
            if (target_slots[j]->used && same_name(target_slots[j], &want[i])) {
                t->stats = target_slots[j];
                named[j] = 1;
            }
        }
    }
    /* Slots no configured target names any more are cleared: a removed
     * target leaves the status page. */
    for (j = 0; j < target_slot_count; j++) {
        if (!named[j]) {
            memset(target_slots[j], 0, sizeof(*target_slots[j]));
        }
    }
    for (i = 0, j = 0; i < n; i++) {
        rproxy_target *t = APR_ARRAY_IDX(registered, i, rproxy_target *);
        int k;
        /* Two RProxyTargets with one name (the same URL in <If> and <Else>
         * of one <Location>, say) share a slot. */
        for (k = 0; k < i && !t->stats; k++) {
            rproxy_target *o = APR_ARRAY_IDX(registered, k, rproxy_target *);
            if (same_name(&want[i], &want[k])) {
                t->stats = o->stats;
            }
        }
        while (!t->stats) {
            if (!target_slots[j]->used) {
                *target_slots[j] = want[i];
                target_slots[j]->used = 1;
                t->stats = target_slots[j];
            }
            j++;
        }
    }
}

/* Creates (or restores) count slots of size bytes and stores where each
 * lies in slots[], once: the request path then never asks the provider. */
/* What a graceful restart hands the next generation: a copy of one slotmem
 * instance, kept in the process pool, which the parent keeps across
 * restarts.  mod_slotmem_shm's own saving (AP_SLOTMEM_TYPE_PERSIST) writes
 * a file with a checksum while the old generation's children still count
 * into the memory, and then refuses the file as corrupt ("persisted slotmem
 * md5/desc mismatch"); it is kept for stop and start, when no child runs
 * as the file is written. */
typedef struct {
    apr_size_t size;            /* of a slot */
    unsigned int count;
    char *data;
    apr_size_t cap;
    void **slots;               /* the generation being copied */
    server_rec *s;
} snapshot;

static snapshot *snapshot_of(server_rec *s, const char *name)
{
    apr_pool_t *pp = s->process->pool;
    const char *key = apr_pstrcat(pp, "rproxy-snapshot-", name, NULL);
    snapshot *sn = NULL;

    apr_pool_userdata_get((void **)&sn, key, pp);
    if (!sn) {
        sn = apr_pcalloc(pp, sizeof(*sn));
        apr_pool_userdata_set(sn, key, apr_pool_cleanup_null, pp);
    }
    return sn;
}

/* A pre-cleanup of the generation's pool: it runs before mod_slotmem_shm
 * unmaps the memory. */
static apr_status_t take_snapshot(void *data)
{
    snapshot *sn = data;
    unsigned int i;

    if (!sn->slots) {
        return APR_SUCCESS;
    }
    if (sn->cap < sn->size * sn->count) {
        /* Grows only with the configuration: the process pool keeps it. */
        sn->cap = sn->size * sn->count;
        sn->data = apr_palloc(sn->s->process->pool, sn->cap);
    }
    for (i = 0; i < sn->count; i++) {
        memcpy(sn->data + i * sn->size, sn->slots[i], sn->size);
    }
    sn->slots = NULL;
    return APR_SUCCESS;
}

const void *rproxy_stats_previous(server_rec *s, const char *name,
                                  apr_size_t size, unsigned int *count)
{
    snapshot *sn = snapshot_of(s, name);

    *count = sn->data && sn->size == size ? sn->count : 0;
    return *count ? sn->data : NULL;
}

apr_status_t rproxy_stats_create(const char *name, apr_size_t size,
                                 unsigned int count, void **slots,
                                 apr_pool_t *pconf, server_rec *s)
{
    const ap_slotmem_provider_t *shm = rproxy_stats_provider();
    ap_slotmem_instance_t *inst;
    apr_status_t rv = shm->create(&inst, name, size, count,
                                  AP_SLOTMEM_TYPE_PERSIST, pconf);
    snapshot *sn = snapshot_of(s, name);
    unsigned int i;

    for (i = 0; rv == APR_SUCCESS && i < count; i++) {
        rv = shm->dptr(inst, i, &slots[i]);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "rproxy: cannot create the shared memory '%s' (%u slots "
                     "of %" APR_SIZE_T_FMT " bytes)", name, count, size);
        return rv;
    }
    /* After a graceful restart the last generation's copy is fresher than
     * the file (and the file may have been refused): the slots it has go
     * back where they were, whatever the count is now. */
    if (sn->data && sn->size == size) {
        for (i = 0; i < count && i < sn->count; i++) {
            memcpy(slots[i], sn->data + i * size, size);
        }
    }
    sn->size = size;
    sn->count = count;
    sn->slots = apr_pmemdup(pconf, slots, sizeof(*slots) * count);
    sn->s = s;
    apr_pool_pre_cleanup_register(pconf, sn, take_snapshot);
    return APR_SUCCESS;
}

apr_status_t rproxy_stats_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                      server_rec *s)
{
    const ap_slotmem_provider_t *shm = rproxy_stats_provider();
    unsigned int targets = registered->nelts, j;
    void *server_slot;
    apr_status_t rv;

    if (!shm) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "rproxy: mod_slotmem_shm "
                     "is not loaded; mod_rproxy keeps its counters in its "
                     "shared memory (a2enmod slotmem_shm)");
        return APR_ENOTIMPL;
    }
    rv = rproxy_stats_create("rproxy-server", sizeof(rproxy_counters), 1,
                      &server_slot, pconf, s);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    target_slot_count = (targets / TARGET_SLOT_STEP + 1) * TARGET_SLOT_STEP;
    target_slots = apr_pcalloc(pconf, sizeof(*target_slots)
                                      * target_slot_count);
    rv = rproxy_stats_create("rproxy-targets", sizeof(rproxy_target_slot),
                      target_slot_count, (void **)target_slots, pconf, s);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rproxy_stats = server_slot;
    assign_slots(ptemp);
    for (j = 0; j < targets; j++) {
        rproxy_target *t = APR_ARRAY_IDX(registered, j, rproxy_target *);
        t->backend.stats = t->stats;    /* a plain target's one backend */
    }
    rproxy_stats->active_connections = 0;
    rproxy_stats->idle_connections = 0;
    /* The last generation's children put their buffers back into memory
     * this one no longer sees: outstanding counts this generation's. */
    rproxy_stats->puts = rproxy_stats->gets;
    for (j = 0; j < target_slot_count; j++) {
        target_slots[j]->in_flight = 0;
    }
    return APR_SUCCESS;
}

unsigned int rproxy_stats_target_slots(rproxy_target_slot ***slots)
{
    *slots = target_slots;
    return target_slot_count;
}

void rproxy_stats_latency(rproxy_target_slot *ts, apr_interval_time_t us)
{
    int i = 0;

    while (i < RPROXY_LATENCY_BUCKETS - 1 && us > rproxy_latency_bounds[i]) {
        i++;
    }
    apr_atomic_inc64(&ts->latency[i]);
    apr_atomic_add64(&ts->latency_us, (apr_uint64_t)(us > 0 ? us : 0));
}
