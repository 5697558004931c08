/* SPDX-License-Identifier: MIT */
/*
 * tower: the village broadcast towers (หอกระจายข่าว), reached through an MQTT broker.
 *
 * For each announcement and each village with a tower, the plugin chooses the play instants
 * (plan.c), then publishes, at QoS 1, the item on PREFIX/village/N/announce and the village's
 * complete upcoming schedule, retained, on PREFIX/village/N/schedule, in the message contract of
 * prakat-tower (man/prakat-tower.8).  The towers answer on PREFIX/village/N/ack.
 *
 * A job's life:
 *   1. publish() plans the item and writes it to the state folder (items/ID.json) before anything
 *      is sent, so that what goes out is always what a restart finds;
 *   2. every village's announce and schedule go out; a village counts as delivered only once the
 *      broker acknowledged both (PUBACK) and that is on disk;
 *   3. the job stays in flight while the towers ack; its note (host->job_note) says, per state,
 *      which villages are where; it ends when every village has a final ack (played, failed,
 *      skipped) for every instant, or when confirm_within has passed after a village's last
 *      instant without one (that village is "not confirmed").  The outcome: DONE when some tower
 *      played it; UNCONFIRMED when none played and some never confirmed; FAILED when every tower
 *      that answered failed; DONE when it was withdrawn or skipped everywhere.
 * After a restart the core gives the job again (job->interrupted): the plugin finds the item on
 * disk, sends whatever the broker had not acknowledged, and goes on counting.  Towers ignore an
 * "add" of an id they have, and an identical schedule, so sending again is harmless.
 *
 * Withdrawal (retract, and Replaces): every village of the old item gets action "cancel" and a
 * schedule without it; the retract job is DONE once the broker acknowledged all of them.  The
 * agent's "update" keeps the id, and a replacing announcement has an id of its own, so Replaces
 * is a cancel of the old id plus an add of the new one.  A retry of a FAILED or UNCONFIRMED job
 * plans again, from now, the villages that did not play it, and sends them an "update".
 *
 * Nothing here blocks: the MQTT connection is link.c on the host's io and timer services; files
 * are small and written whole.  The plugin's state files are also its idempotency: towers are
 * sent exactly what they were sent before.
 */
#include "tower-channel.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plugin-util.h"

#define TOWER_VERSION "1.0"
#define TOWER_WINDOW 100              /* messages on their way to the broker at once */
#define TOWER_KEEPALIVE 30
#define TOWER_FLUSH_DELAY (20 * 1000ULL) /* PUBACKs and acks of one burst share one write */
#define TOWER_NOTE_INTERVAL (1 * TOWER_SEC)
#define TOWER_WAKE_MAX (3600 * TOWER_SEC)
#define TOWER_ACK_BYTES_MAX (16 * 1024)
#define TOWER_STATUS_BYTES_MAX (16 * 1024)
#define TOWER_ITEM_FILE_MAX (64 * 1024 * 1024)
#define TOWER_ACKS_LOG_COMPACT (1024 * 1024)
#define TOWER_KEEP_FINISHED (14 * 86400 * TOWER_SEC)
/* A finished item leaves memory this long after it finished (its file stays TOWER_KEEP_FINISHED). */
#define TOWER_KEEP_IN_MEMORY (3600 * TOWER_SEC)
#define TOWER_NOTE_MAX 3000
#define TOWER_BAD_LOG_PER_MINUTE 5
/* A job waits outside "sending" only when its next slot is at least this far away ... */
#define TOWER_RELEASE_MIN (60 * TOWER_SEC)
/* ... and no slot that came in the last this long (capped by confirm_within) still waits for its acks. */
#define TOWER_SLOT_BUSY (15 * 60 * TOWER_SEC)
/* ... and every village delivered to has answered, or was delivered to this long ago: a tower
 * that is on line answers within a second, and its answer belongs in the note the job waits with. */
#define TOWER_ANSWER_GRACE (30 * TOWER_SEC)

#define KNOWN_KEYS                                                                                                     \
        "broker, topic_prefix, villages, slots, quiet_hours, quiet_hours.N, gap, confirm_within, client_id, ca_file, " \
        "cert_file, key_file, username, password_file"

/* ------------------------------------------------------------------------------------------------ */
/* Types */

typedef struct Village {
        bool tower;    /* listed in `villages` */
        bool has_quiet; /* quiet_hours.N */
        TowerQuiet quiet;
        /* The retained schedule: its content version, the version the broker acknowledged, and
         * the one on its way (0: none). */
        uint32_t seq, acked_seq, in_flight_seq;
        bool queued;
        int online; /* -1 unknown, 0 offline, 1 online, from PREFIX/village/N/status */
} Village;

typedef enum WorkKind {
        WORK_SCHEDULE,
        WORK_ANNOUNCE,
} WorkKind;

typedef struct Work {
        WorkKind kind;
        unsigned village;
        TowerItem *item; /* WORK_ANNOUNCE */
} Work;

/* A QoS 1 message the broker has not acknowledged yet. */
typedef struct Flight {
        int mid; /* 0: free slot */
        Work work;
        uint32_t seq;   /* WORK_SCHEDULE: the version sent */
        bool cancelled; /* WORK_ANNOUNCE: what it said, to tell a stale PUBACK */
        bool update;
} Flight;

/* A job handed over from a retired instance (a reload changed the section). */
typedef struct Adopted {
        char *id;
        prakat_job *job, *retract_job;
        prakat_usec_t retract_started;
} Adopted;

typedef struct Tower Tower;
struct Tower {
        const prakat_host *host;
        Tower *next_instance;

        /* Configuration. */
        char *broker, *broker_host;
        unsigned broker_port;
        bool tls;
        char *topic_prefix, *client_id;
        char *ca_file, *cert_file, *key_file, *username, *password;
        TowerPlanConfig plan;
        TowerQuiet quiet;
        unsigned gap;
        uint64_t confirm_within;
        Village villages[TOWER_VILLAGE_MAX + 1];
        size_t n_towers;

        /* Running. */
        bool started, retired;
        TowerLink *link;
        char *topic_daemon_status, *online_payload, *will_payload, *goodbye_payload;
        TowerItem **items; /* in the order they were planned */
        size_t n_items, cap_items;
        char *items_dir, *acks_path;
        int acks_fd;
        uint64_t acks_size;
        bool acks_unsynced;

        Work *queue; /* ring */
        size_t q_head, q_len, q_cap;
        Flight *flights; /* open addressing on mid */
        size_t flights_cap, n_flights;

        prakat_timer *start_timer, *flush_timer, *pump_timer, *tick_timer;
        bool flush_wanted, check_delivery;
        Adopted *adopted;
        size_t n_adopted;

        prakat_usec_t bad_window;
        unsigned bad_logged, bad_suppressed;
};

/* Every live instance, so that a new one (after a reload) can take over from the old. */
static Tower *instances;

static void tower_request_flush(Tower *t, uint64_t delay);
static void tower_kick(Tower *t);
static void tower_arm_tick(Tower *t);
static void tower_flush(Tower *t);
static void jobs_update(Tower *t, bool force_notes);

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers */

/* The buffer's text, or "" when it is empty or an allocation failed. */
static char *buf_take(PluginBuf *b) {
        char *text = plugin_buf_steal(b, NULL);
        return text ? text : strdup("");
}

static bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && !strcmp(a, b));
}

/* At most `max` bytes of `s`, cut at a UTF-8 character boundary. */
static char *utf8_prefix(const char *s, size_t max) {
        size_t n = s ? strlen(s) : 0;

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                        n--;
        }
        return strndup(s ? s : "", n);
}

/* "1-3, 5, 7-9" */
static void villages_text(PluginBuf *b, const unsigned *v, size_t n) {
        for (size_t i = 0; i < n;) {
                size_t k = i;
                while (k + 1 < n && v[k + 1] == v[k] + 1)
                        k++;
                if (k == i)
                        plugin_buf_printf(b, "%s%u", i ? ", " : "", v[i]);
                else
                        plugin_buf_printf(b, "%s%u-%u", i ? ", " : "", v[i], v[k]);
                i = k + 1;
        }
}

static int config_fail(char *error, size_t size, unsigned *ret_line, unsigned line, const char *format, ...)
        __attribute__((format(printf, 5, 6)));
static int config_fail(char *error, size_t size, unsigned *ret_line, unsigned line, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(error, size, format, ap);
        va_end(ap);
        *ret_line = line;
        return -EINVAL;
}

static char *path_in_config_dir(const prakat_host *host, const char *value) {
        char *p = NULL;

        if (value[0] == '/' || !host->config_dir)
                return strdup(value);
        if (asprintf(&p, "%s/%s", host->config_dir, value) < 0)
                return NULL;
        return p;
}

static char *topic_of(const Tower *t, unsigned village, const char *leaf) {
        char *s = NULL;
        if (asprintf(&s, "%s/village/%u/%s", t->topic_prefix, village, leaf) < 0)
                return NULL;
        return s;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */

/* The password is the first line of the file, which nobody but prakatd may read. */
static int read_password(const char *path, char **ret, char *error, size_t size) {
        struct stat st = { 0 };
        char *data = NULL;
        int r = plugin_read_small_file(path, PLUGIN_SECRET_MAX, &data, &st);

        if (r < 0) {
                snprintf(error, size, "cannot read password_file %s: %s%s", path, strerror(-r),
                         r == -ENOENT ? " (create it, readable only by prakat: chmod 0600)" : "");
                return r;
        }
        if (st.st_mode & 077) {
                snprintf(error, size, "password_file %s may be read by group or others (mode %04o); fix: chmod 0600 %s",
                         path, (unsigned) (st.st_mode & 07777), path);
                explicit_bzero(data, strlen(data));
                free(data);
                return -EPERM;
        }
        data[strcspn(data, "\r\n")] = 0;
        if (!data[0]) {
                snprintf(error, size, "password_file %s is empty; its first line must be the broker password", path);
                free(data);
                return -EINVAL;
        }
        *ret = data;
        return 0;
}

static int check_readable(const char *key, const char *path, char *error, size_t size) {
        if (access(path, R_OK) < 0) {
                snprintf(error, size, "%s = %s: %s; give a file prakatd may read", key, path, strerror(errno));
                return -errno;
        }
        return 0;
}

/* Makes sure local time is the configured zone (prakatd sets TZ; a plugin must not rely on luck). */
static void ensure_timezone(const prakat_host *host) {
        const char *tz = getenv("TZ");

        if (!host->timezone || !host->timezone[0] || streq_ptr(tz, host->timezone))
                return;
        if (setenv("TZ", host->timezone, 1) == 0)
                tzset();
}

static bool hostname_default(char *buffer, size_t size) {
        if (gethostname(buffer, size) < 0 || !buffer[0])
                return false;
        buffer[size - 1] = 0;
        for (char *c = buffer; *c; c++)
                if (!isalnum((unsigned char) *c) && *c != '-' && *c != '_' && *c != '.')
                        *c = '-';
        return true;
}

static int tower_parse_config(Tower *t, const prakat_config_entry *entries, size_t n, char *error, size_t size,
                              unsigned *line) {
        const char *password_file = NULL, *villages_value = NULL;
        unsigned broker_line = 0, prefix_line = 0, villages_line = 0, password_line = 0, cert_line = 0;
        bool seen[TOWER_VILLAGE_MAX + 1] = { false };
        int r;

        for (size_t i = 0; i < n; i++) {
                const char *k = entries[i].key, *v = entries[i].value;
                unsigned l = entries[i].line;
                char **target = NULL;

                for (size_t j = 0; j < i; j++)
                        if (!strcmp(entries[j].key, k))
                                return config_fail(error, size, line, l, "'%s' is set twice (first on line %u)", k,
                                                   entries[j].line);
                if (!strcmp(k, "broker")) {
                        free(t->broker_host);
                        t->broker_host = NULL;
                        r = tower_parse_broker(v, &t->broker_host, &t->broker_port, &t->tls);
                        if (r == -EPROTO)
                                return config_fail(error, size, line, l,
                                                   "broker = %s: start it with mqtt:// (or mqtts:// for TLS), for "
                                                   "example broker = mqtt://127.0.0.1:1883", v);
                        if (r < 0)
                                return config_fail(error, size, line, l,
                                                   "broker = %s is not a broker address; write mqtt://HOST[:PORT] "
                                                   "(an IPv6 address in brackets)", v);
                        t->broker = strdup(v);
                        broker_line = l;
                } else if (!strcmp(k, "topic_prefix")) {
                        if (!tower_topic_prefix_valid(v))
                                return config_fail(error, size, line, l,
                                                   "topic_prefix = %s: give the prefix the towers use, for example "
                                                   "bokaeo/tower (no '+', '#', empty levels or '/' at either end)", v);
                        t->topic_prefix = strdup(v);
                        prefix_line = l;
                } else if (!strcmp(k, "villages")) {
                        memset(seen, 0, sizeof seen);
                        if (tower_parse_villages(v, seen) < 0)
                                return config_fail(error, size, line, l,
                                                   "villages = %s: list the village numbers that have a tower, "
                                                   "for example villages = 1-12 or villages = 1, 3, 5-9 (1 to %u)",
                                                   v, TOWER_VILLAGE_MAX);
                        villages_value = v;
                        villages_line = l;
                } else if (!strcmp(k, "slots")) {
                        r = tower_parse_slots(v, &t->plan);
                        if (r < 0)
                                return config_fail(error, size, line, l,
                                                   "slots = %s: give the daily broadcast times, for example "
                                                   "slots = 07:00, 17:00 (at most %d)", v, TOWER_SLOTS_MAX);
                } else if (!strcmp(k, "quiet_hours")) {
                        if (tower_parse_quiet(v, &t->quiet) < 0)
                                return config_fail(error, size, line, l,
                                                   "quiet_hours = %s: write a range like 21:00-06:00, or none", v);
                } else if (!strncmp(k, "quiet_hours.", 12)) {
                        char *end;
                        unsigned long vn;
                        errno = 0;
                        vn = strtoul(k + 12, &end, 10);
                        if (errno || end == k + 12 || *end || vn < 1 || vn > TOWER_VILLAGE_MAX)
                                return config_fail(error, size, line, l,
                                                   "'%s': write quiet_hours.N with a village number N, for "
                                                   "example quiet_hours.3 = 20:00-07:00", k);
                        if (tower_parse_quiet(v, &t->villages[vn].quiet) < 0)
                                return config_fail(error, size, line, l,
                                                   "%s = %s: write a range like 21:00-06:00, or none", k, v);
                        t->villages[vn].has_quiet = true;
                } else if (!strcmp(k, "gap")) {
                        uint64_t d;
                        if (plugin_parse_duration(v, &d) < 0 || d % TOWER_SEC || d / TOWER_SEC > TOWER_GAP_MAX)
                                return config_fail(error, size, line, l,
                                                   "gap = %s: give whole seconds between the plays of one slot, "
                                                   "0s to %ds, for example gap = 5s", v, TOWER_GAP_MAX);
                        t->gap = (unsigned) (d / TOWER_SEC);
                } else if (!strcmp(k, "confirm_within")) {
                        if (plugin_parse_duration(v, &t->confirm_within) < 0 || t->confirm_within < TOWER_SEC)
                                return config_fail(error, size, line, l,
                                                   "confirm_within = %s: give a duration of at least 1s, for "
                                                   "example confirm_within = 2h", v);
                } else if (!strcmp(k, "client_id")) {
                        if (!*v || strlen(v) > 64 || strchr(v, '+') || strchr(v, '#') || strchr(v, '/'))
                                return config_fail(error, size, line, l,
                                                   "client_id = %s: give 1 to 64 characters without '/', '+' or "
                                                   "'#'", v);
                        free(t->client_id);
                        t->client_id = strdup(v);
                } else if (!strcmp(k, "ca_file"))
                        target = &t->ca_file;
                else if (!strcmp(k, "cert_file")) {
                        target = &t->cert_file;
                        cert_line = l;
                } else if (!strcmp(k, "key_file"))
                        target = &t->key_file;
                else if (!strcmp(k, "username")) {
                        if (!*v)
                                return config_fail(error, size, line, l,
                                                   "username is empty; give the broker user name or remove the line");
                        t->username = strdup(v);
                } else if (!strcmp(k, "password_file")) {
                        password_file = v;
                        password_line = l;
                } else
                        return config_fail(error, size, line, l, "unknown key '%s' in [channel %s]; known keys: %s",
                                           k, t->host->channel, KNOWN_KEYS);
                if (target) {
                        *target = path_in_config_dir(t->host, v);
                        if (!*target)
                                return -ENOMEM;
                        r = check_readable(k, *target, error, size);
                        if (r < 0) {
                                *line = l;
                                return -EINVAL;
                        }
                }
        }
        if (!broker_line)
                return config_fail(error, size, line, 0,
                                   "broker is missing; add for example broker = mqtt://127.0.0.1:1883");
        if (!prefix_line)
                return config_fail(error, size, line, 0,
                                   "topic_prefix is missing; add the towers' prefix, for example topic_prefix = "
                                   "bokaeo/tower");
        if (!villages_line)
                return config_fail(error, size, line, 0,
                                   "villages is missing; list the villages that have a tower, for example villages = "
                                   "1-12 (an announcement for all villages goes to these)");
        (void) villages_value;
        for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++)
                if (seen[v]) {
                        t->villages[v].tower = true;
                        t->n_towers++;
                }
        if (!!t->cert_file != !!t->key_file)
                return config_fail(error, size, line, cert_line,
                                   "cert_file and key_file go together: give both (a client certificate and its key) "
                                   "or neither");
        if ((t->ca_file || t->cert_file) && !t->tls)
                return config_fail(error, size, line, broker_line,
                                   "ca_file, cert_file and key_file are for TLS; write broker = mqtts://...");
        if (password_file) {
                char *path = path_in_config_dir(t->host, password_file);
                if (!path)
                        return -ENOMEM;
                if (!t->username) {
                        free(path);
                        return config_fail(error, size, line, password_line, "password_file needs a username");
                }
                r = read_password(path, &t->password, error, size);
                free(path);
                if (r < 0) {
                        *line = password_line;
                        return -EINVAL;
                }
        }
        /* A village whose every slot falls in its quiet hours could never be given a normal item. */
        for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++) {
                const TowerQuiet *q = t->villages[v].has_quiet ? &t->villages[v].quiet : &t->quiet;
                bool any = false;
                if (!t->villages[v].tower && !t->villages[v].has_quiet)
                        continue;
                for (size_t i = 0; i < t->plan.n_slots; i++)
                        any = any || !tower_quiet_contains(q, t->plan.slots[i]);
                if (!any)
                        return config_fail(error, size, line, 0,
                                           "every slot of village %u falls inside its quiet hours; move a slot or "
                                           "narrow quiet_hours%s", v, t->villages[v].has_quiet ? ".N" : "");
        }
        if (!t->client_id) {
                char name[64], *id = NULL;
                if (asprintf(&id, "prakatd-%s", hostname_default(name, sizeof name) ? name : t->host->channel) < 0)
                        return -ENOMEM;
                if (strlen(id) > 64)
                        id[64] = 0;
                t->client_id = id;
        }
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Items in memory and on disk */

static TowerItem *tower_find(const Tower *t, const char *id) {
        for (size_t i = t->n_items; i-- > 0;)
                if (!strcmp(t->items[i]->id, id))
                        return t->items[i];
        return NULL;
}

static int tower_add_item(Tower *t, TowerItem *item) {
        if (t->n_items == t->cap_items) {
                size_t cap = t->cap_items ? t->cap_items * 2 : 16;
                TowerItem **p = realloc(t->items, cap * sizeof(TowerItem *));
                if (!p)
                        return -ENOMEM;
                t->items = p;
                t->cap_items = cap;
        }
        t->items[t->n_items++] = item;
        return 0;
}

static char *item_path(const Tower *t, const char *id) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s.json", t->items_dir, id) < 0)
                return NULL;
        return p;
}

static int item_write(Tower *t, TowerItem *item) {
        char *json = tower_item_to_json(item), *path = item_path(t, item->id);
        int r = -ENOMEM;

        if (json && path)
                r = plugin_write_file_durable(path, json, strlen(json));
        if (r < 0)
                t->host->log(t->host, PRAKAT_LOG_ERR, item->id, "Failed to write %s: %s; trying again soon.",
                             path ? path : item->id, strerror(-r));
        free(json);
        free(path);
        return r;
}

static int item_read(Tower *t, const char *path, TowerItem **ret) {
        char *data = NULL;
        struct stat st = { 0 };
        int r = plugin_read_small_file(path, TOWER_ITEM_FILE_MAX, &data, &st);

        if (r >= 0)
                r = tower_item_from_json(data, (size_t) st.st_size, ret);
        free(data);
        return r;
}

/* An item in memory, or one that finished a while ago and is only on disk: loaded again. */
static TowerItem *tower_lookup(Tower *t, const char *id) {
        TowerItem *item = tower_find(t, id);
        char *path;

        if (item || !tower_id_valid(id))
                return item;
        path = item_path(t, id);
        if (path && item_read(t, path, &item) == 0) {
                item->on_disk = true;
                t->host->log(t->host, PRAKAT_LOG_INFO, id, "Read back from %s.", path);
                if (tower_add_item(t, item) < 0)
                        item = tower_item_free(item);
        }
        free(path);
        return item;
}

/* Whether the item is in village `rec`'s upcoming schedule. */
static bool record_in_schedule(const TowerItem *item, const TowerRecord *rec) {
        return !item->tombstone && !rec->cancelled && !rec->unconfirmed && rec->n_slots > 0 && !tower_record_final(rec);
}

/* Whether the record's announce (add, update or cancel) still has to reach the broker. */
static bool record_needs_announce(const TowerItem *item, const TowerRecord *rec) {
        if (rec->announce_acked)
                return false;
        return rec->cancelled || record_in_schedule(item, rec);
}

static Village *village_of(Tower *t, unsigned v) {
        return &t->villages[v <= TOWER_VILLAGE_MAX ? v : 0];
}

/* ---- the send queue ---- */

static int queue_push(Tower *t, Work w) {
        if (t->q_len == t->q_cap) {
                size_t cap = t->q_cap ? t->q_cap * 2 : 256;
                Work *q = malloc(cap * sizeof(Work));
                if (!q)
                        return -ENOMEM;
                for (size_t i = 0; i < t->q_len; i++)
                        q[i] = t->queue[(t->q_head + i) % t->q_cap];
                free(t->queue);
                t->queue = q;
                t->q_head = 0;
                t->q_cap = cap;
        }
        t->queue[(t->q_head + t->q_len) % t->q_cap] = w;
        t->q_len++;
        return 0;
}

static void queue_schedule(Tower *t, unsigned v) {
        Village *vil = village_of(t, v);

        if (vil->queued || queue_push(t, (Work) { .kind = WORK_SCHEDULE, .village = v }) < 0)
                return;
        vil->queued = true;
        tower_kick(t);
}

static void queue_announce(Tower *t, TowerItem *item, TowerRecord *rec) {
        if (rec->queued || rec->in_flight || !record_needs_announce(item, rec))
                return;
        if (queue_push(t, (Work) { .kind = WORK_ANNOUNCE, .village = rec->village, .item = item }) < 0)
                return;
        rec->queued = true;
        tower_kick(t);
}

/* The village's schedule changed: a new version to send; `rec` (if any) waits for it. */
static void village_touch(Tower *t, unsigned v, TowerRecord *rec) {
        Village *vil = village_of(t, v);

        vil->seq++;
        if (rec)
                rec->need_seq = vil->seq;
        queue_schedule(t, v);
}

/* ---- flights (by mid) ---- */

static Flight *flight_slot(Tower *t, int mid) {
        size_t mask = t->flights_cap - 1, i = (size_t) mid & mask;

        while (t->flights[i].mid && t->flights[i].mid != mid)
                i = (i + 1) & mask;
        return &t->flights[i];
}

static int flight_add(Tower *t, const Flight *f) {
        if ((t->n_flights + 1) * 2 > t->flights_cap) {
                size_t cap = t->flights_cap ? t->flights_cap * 2 : 512;
                Flight *old = t->flights;
                size_t old_cap = t->flights_cap;
                t->flights = calloc(cap, sizeof(Flight));
                if (!t->flights) {
                        t->flights = old;
                        return -ENOMEM;
                }
                t->flights_cap = cap;
                for (size_t i = 0; i < old_cap; i++)
                        if (old[i].mid)
                                *flight_slot(t, old[i].mid) = old[i];
                free(old);
        }
        *flight_slot(t, f->mid) = *f;
        t->n_flights++;
        return 0;
}

/* Removes and returns the flight of `mid`; false when it is not ours (the status message). */
static bool flight_take(Tower *t, int mid, Flight *ret) {
        size_t mask, i, j;

        if (!t->flights_cap || mid == 0)
                return false;
        mask = t->flights_cap - 1;
        i = (size_t) mid & mask;
        while (t->flights[i].mid && t->flights[i].mid != mid)
                i = (i + 1) & mask;
        if (!t->flights[i].mid)
                return false;
        *ret = t->flights[i];
        t->flights[i].mid = 0;
        t->n_flights--;
        /* Backward-shift deletion keeps every probe chain unbroken. */
        for (j = (i + 1) & mask; t->flights[j].mid; j = (j + 1) & mask) {
                size_t home = (size_t) t->flights[j].mid & mask;
                if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
                        t->flights[i] = t->flights[j];
                        t->flights[j].mid = 0;
                        i = j;
                }
        }
        return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Messages */

static json_t *wire_item(const TowerItem *item, const TowerRecord *rec) {
        json_t *o = json_object(), *play_at = json_array();
        char buf[21];

        for (size_t k = 0; k < rec->n_slots; k++)
                json_array_append_new(play_at, json_string(tower_format_utc(rec->slots[k].at, buf)));
        json_object_set_new(o, "v", json_integer(1));
        json_object_set_new(o, "id", json_string(item->id));
        json_object_set_new(o, "title", json_string(item->title ? item->title : ""));
        json_object_set_new(o, "text", json_string(item->text ? item->text : ""));
        json_object_set_new(o, "audio_url", item->audio_url ? json_string(item->audio_url) : json_null());
        json_object_set_new(o, "play_at", play_at);
        json_object_set_new(o, "repeat", json_integer(item->repeat));
        json_object_set_new(o, "gap", json_integer(item->gap));
        json_object_set_new(o, "priority", json_string(item->priority == PRAKAT_PRIORITY_EMERGENCY ? "emergency" :
                                                       item->priority == PRAKAT_PRIORITY_URGENT ? "urgent" : "normal"));
        json_object_set_new(o, "expires", item->expires ? json_string(tower_format_utc(item->expires, buf)) : json_null());
        return o;
}

static char *announce_payload(const TowerItem *item, const TowerRecord *rec) {
        json_t *o;
        char *s;

        if (rec->cancelled)
                o = json_pack("{s:i s:s s:s}", "v", 1, "id", item->id, "action", "cancel");
        else {
                o = wire_item(item, rec);
                json_object_set_new(o, "action", json_string(rec->update ? "update" : "add"));
        }
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

/* The village's complete upcoming schedule, in the order the items were planned. */
static char *schedule_payload(Tower *t, unsigned v) {
        json_t *a = json_array();
        size_t bytes = 2, n = 0;
        char *s;

        for (size_t i = 0; i < t->n_items; i++) {
                const TowerItem *item = t->items[i];
                const TowerRecord *rec = item->n_records ? tower_item_record(item, v) : NULL;
                size_t size;
                json_t *o;
                char *one;

                if (!rec || !record_in_schedule(item, rec))
                        continue;
                o = wire_item(item, rec);
                one = json_dumps(o, JSON_COMPACT);
                size = one ? strlen(one) + 1 : 0;
                free(one);
                if (n >= TOWER_SCHEDULE_ITEMS_MAX || bytes + size > TOWER_SCHEDULE_BYTES_MAX) {
                        t->host->log(t->host, PRAKAT_LOG_ERR, item->id,
                                     "Village %u: the schedule would hold more than the tower accepts (%d items, "
                                     "%d bytes); this item is left out of it.", v, TOWER_SCHEDULE_ITEMS_MAX,
                                     TOWER_SCHEDULE_BYTES_MAX);
                        json_decref(o);
                        continue;
                }
                bytes += size;
                n++;
                json_array_append_new(a, o);
        }
        s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(a);
        return s;
}

/* Sends queued work while the window has room. */
static void tower_pump(Tower *t) {
        while (tower_link_connected(t->link) && t->n_flights < TOWER_WINDOW && t->q_len > 0) {
                Work w = t->queue[t->q_head];
                Flight f = { .work = w };
                char *topic = NULL, *payload = NULL;
                int r;

                t->q_head = (t->q_head + 1) % t->q_cap;
                t->q_len--;
                if (w.kind == WORK_SCHEDULE) {
                        Village *vil = village_of(t, w.village);
                        vil->queued = false;
                        if (vil->seq == vil->acked_seq || vil->in_flight_seq == vil->seq)
                                continue;
                        f.seq = vil->seq;
                        topic = topic_of(t, w.village, "schedule");
                        payload = schedule_payload(t, w.village);
                } else {
                        TowerRecord *rec = tower_item_record(w.item, w.village);
                        if (!rec)
                                continue;
                        rec->queued = false;
                        if (rec->in_flight || !record_needs_announce(w.item, rec))
                                continue;
                        f.cancelled = rec->cancelled;
                        f.update = rec->update;
                        topic = topic_of(t, w.village, "announce");
                        payload = announce_payload(w.item, rec);
                }
                if (!topic || !payload) {
                        free(topic);
                        free(payload);
                        break;
                }
                r = tower_link_publish(t->link, topic, payload, strlen(payload), w.kind == WORK_SCHEDULE, &f.mid);
                free(topic);
                free(payload);
                if (r == -ENOTCONN) {
                        /* Sent again on the next connection: the reconnect scan queues it. */
                        break;
                }
                if (r < 0) {
                        t->host->log(t->host, PRAKAT_LOG_ERR, w.kind == WORK_ANNOUNCE ? w.item->id : NULL,
                                     "Failed to publish to village %u: %s; trying again with the next connection.",
                                     w.village, strerror(-r));
                        continue;
                }
                if (flight_add(t, &f) < 0)
                        continue;
                if (w.kind == WORK_SCHEDULE)
                        village_of(t, w.village)->in_flight_seq = f.seq;
                else
                        tower_item_record(w.item, w.village)->in_flight = true;
        }
}

static void on_pump(void *userdata) {
        Tower *t = userdata;

        t->pump_timer = NULL;
        tower_pump(t);
}

/* Sends soon, from the loop: never from inside libmosquitto's callbacks. */
static void tower_kick(Tower *t) {
        if (!t->pump_timer && t->started && !t->retired)
                (void) t->host->timer_start(t->host, 0, on_pump, t, &t->pump_timer);
}

/* Everything that is not on the broker yet, after a (re)connection. */
static void tower_queue_all(Tower *t) {
        for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++)
                if (t->villages[v].seq != t->villages[v].acked_seq)
                        queue_schedule(t, v);
        for (size_t i = 0; i < t->n_items; i++) {
                TowerItem *item = t->items[i];
                for (size_t k = 0; k < item->n_records; k++)
                        queue_announce(t, item, &item->records[k]);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* The connection */

static void on_connected(void *userdata, bool session_present) {
        Tower *t = userdata;
        int mid;

        (void) tower_link_publish(t->link, t->topic_daemon_status, t->online_payload, strlen(t->online_payload), true,
                                  &mid);
        if (!session_present)
                /* A broker that lost our session may have lost the retained schedules too: all again. */
                for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++)
                        if (t->villages[v].tower || t->villages[v].seq)
                                t->villages[v].seq++;
        tower_queue_all(t);
        tower_kick(t);
        tower_request_flush(t, 0);
}

static void on_disconnected(void *userdata) {
        Tower *t = userdata;

        for (size_t i = 0; i < t->flights_cap; i++) {
                Flight *f = &t->flights[i];
                if (!f->mid)
                        continue;
                if (f->work.kind == WORK_ANNOUNCE) {
                        TowerRecord *rec = tower_item_record(f->work.item, f->work.village);
                        if (rec)
                                rec->in_flight = false;
                } else
                        village_of(t, f->work.village)->in_flight_seq = 0;
                f->mid = 0;
        }
        t->n_flights = 0;
        tower_request_flush(t, TOWER_FLUSH_DELAY); /* the notes say "waiting for the broker" */
}

static void on_published(void *userdata, int mid) {
        Tower *t = userdata;
        Flight f;

        if (!flight_take(t, mid, &f))
                return;
        if (f.work.kind == WORK_SCHEDULE) {
                Village *vil = village_of(t, f.work.village);
                if (f.seq > vil->acked_seq)
                        vil->acked_seq = f.seq;
                if (vil->in_flight_seq == f.seq)
                        vil->in_flight_seq = 0;
                if (vil->seq != vil->acked_seq)
                        queue_schedule(t, f.work.village);
        } else {
                TowerRecord *rec = tower_item_record(f.work.item, f.work.village);
                if (rec) {
                        rec->in_flight = false;
                        if (rec->cancelled == f.cancelled && rec->update == f.update) {
                                rec->announce_acked = true;
                                f.work.item->dirty = true;
                        } else
                                queue_announce(t, f.work.item, rec);
                }
        }
        t->check_delivery = true;
        tower_request_flush(t, TOWER_FLUSH_DELAY);
        tower_kick(t);
}

/* Malformed or hostile messages are logged, but a flood of them does not flood the log. */
static void log_bad(Tower *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void log_bad(Tower *t, const char *format, ...) {
        prakat_usec_t now = t->host->now(t->host);
        char text[512];
        va_list ap;

        if (now >= t->bad_window + 60 * TOWER_SEC) {
                if (t->bad_suppressed)
                        t->host->log(t->host, PRAKAT_LOG_WARNING, NULL,
                                     "%u more malformed messages from towers were ignored in the last minute.",
                                     t->bad_suppressed);
                t->bad_window = now;
                t->bad_logged = t->bad_suppressed = 0;
        }
        if (t->bad_logged >= TOWER_BAD_LOG_PER_MINUTE) {
                if (t->bad_suppressed++ == 0)
                        t->host->log(t->host, PRAKAT_LOG_WARNING, NULL,
                                     "More malformed messages from towers: the rest of this minute's are only "
                                     "counted.");
                return;
        }
        t->bad_logged++;
        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        t->host->log(t->host, PRAKAT_LOG_WARNING, NULL, "%s", text);
}

/* PREFIX/village/N/LEAF -> N, or 0. */
static unsigned topic_village(const Tower *t, const char *topic, const char **ret_leaf) {
        size_t n = strlen(t->topic_prefix);
        const char *p;
        unsigned v = 0, digits = 0;

        if (strncmp(topic, t->topic_prefix, n) || strncmp(topic + n, "/village/", 9))
                return 0;
        for (p = topic + n + 9; isdigit((unsigned char) *p) && digits < 4; p++, digits++)
                v = v * 10 + (unsigned) (*p - '0');
        if (digits == 0 || digits > 3 || *p != '/' || v < 1 || v > TOWER_VILLAGE_MAX)
                return 0;
        *ret_leaf = p + 1;
        return v;
}

static bool record_apply(Tower *t, TowerItem *item, TowerRecord *rec, TowerSlotState state, prakat_usec_t slot,
                         const char *detail) {
        bool was_final = tower_record_final(rec);

        if (!tower_record_apply_ack(rec, state, slot, detail))
                return false;
        if (!was_final && tower_record_final(rec) && !rec->cancelled && t->started)
                village_touch(t, rec->village, NULL); /* done here: out of the schedule */
        return true;
}

static void acks_log_append(Tower *t, const char *id, unsigned v, prakat_usec_t slot, TowerSlotState state,
                            const char *detail) {
        char *line = tower_ack_line(id, v, slot, state, detail);
        size_t n;

        if (!line || t->acks_fd < 0) {
                free(line);
                return;
        }
        n = strlen(line);
        line[n] = '\n'; /* json_dumps left room for its NUL */
        for (size_t done = 0; done < n + 1;) {
                ssize_t w = write(t->acks_fd, line + done, n + 1 - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        t->host->log(t->host, PRAKAT_LOG_ERR, id, "Failed to append to %s: %s", t->acks_path,
                                     strerror(errno));
                        break;
                }
                done += (size_t) w;
        }
        t->acks_size += n + 1;
        t->acks_unsynced = true;
        free(line);
}

static void handle_ack(Tower *t, unsigned v, const void *payload, size_t size) {
        json_error_t error;
        json_t *o;
        const json_t *jid, *jstate, *jslot, *jdetail, *jvillage;
        const char *id;
        TowerItem *item;
        TowerRecord *rec;
        prakat_usec_t slot = 0;
        int state;

        if (size > TOWER_ACK_BYTES_MAX) {
                log_bad(t, "Village %u: an ack of %zu bytes (more than %d), ignored.", v, size, TOWER_ACK_BYTES_MAX);
                return;
        }
        o = json_loadb(payload, size, JSON_REJECT_DUPLICATES, &error);
        if (!json_is_object(o)) {
                log_bad(t, "Village %u: an ack that is not a JSON object (%s), ignored.", v,
                        o ? "another JSON value" : error.text);
                json_decref(o);
                return;
        }
        jid = json_object_get(o, "id");
        jstate = json_object_get(o, "state");
        jslot = json_object_get(o, "slot");
        jdetail = json_object_get(o, "detail");
        jvillage = json_object_get(o, "village");
        id = json_string_value(jid);
        state = tower_slot_state_from_name(json_string_value(jstate));
        if (!tower_id_valid(id) || state < 0 || (jslot && !json_is_null(jslot) &&
                                                 tower_parse_utc(json_string_value(jslot), &slot) < 0) ||
            (jdetail && !json_is_null(jdetail) && !json_is_string(jdetail)) ||
            (jvillage && !(json_is_integer(jvillage) && json_integer_value(jvillage) == (json_int_t) v))) {
                log_bad(t, "Village %u: a malformed ack (id, state, slot, detail or village is wrong), ignored.", v);
                json_decref(o);
                return;
        }
        item = tower_find(t, id);
        rec = item ? tower_item_record(item, v) : NULL;
        if (!rec) {
                log_bad(t, "Village %u: an ack (%s) for %s, which is nothing this daemon follows there (unknown, "
                        "or finished long ago); ignored.", v, tower_slot_state_name((TowerSlotState) state), id);
                json_decref(o);
                return;
        }
        const char *detail = json_string_value(jdetail);
        if (record_apply(t, item, rec, (TowerSlotState) state, slot, detail)) {
                acks_log_append(t, id, v, slot, (TowerSlotState) state, detail);
                item->ack_dirty = true;
                t->host->log(t->host, PRAKAT_LOG_DEBUG, id, "Village %u: %s%s%s", v,
                             tower_slot_state_name((TowerSlotState) state), detail ? ": " : "", detail ? detail : "");
                tower_request_flush(t, TOWER_FLUSH_DELAY);
        }
        json_decref(o);
}

static void handle_status(Tower *t, unsigned v, const void *payload, size_t size) {
        json_error_t error;
        json_t *o;
        const char *state;

        if (size == 0 || size > TOWER_STATUS_BYTES_MAX)
                return;
        o = json_loadb(payload, size, 0, &error);
        state = json_string_value(json_object_get(o, "state"));
        if (state)
                village_of(t, v)->online = !strcmp(state, "online");
        json_decref(o);
}

static void on_message(void *userdata, const char *topic, const void *payload, size_t size) {
        Tower *t = userdata;
        const char *leaf = NULL;
        unsigned v = topic_village(t, topic, &leaf);

        if (!v) {
                log_bad(t, "A message on %.200s, which is not a tower topic; ignored.", topic);
                return;
        }
        if (!strcmp(leaf, "ack"))
                handle_ack(t, v, payload, size);
        else if (!strcmp(leaf, "status"))
                handle_status(t, v, payload, size);
}

/* ------------------------------------------------------------------------------------------------ */
/* Progress of the jobs */

typedef enum VillageClass {
        CLASS_WAITING,   /* not on the broker yet */
        CLASS_SENT,      /* on the broker, nothing heard from the tower */
        CLASS_SCHEDULED, /* the tower has it */
        CLASS_PLAYING,
        CLASS_PLAYED,
        CLASS_FAILED,
        CLASS_SKIPPED,
        CLASS_WITHDRAWN,
        CLASS_UNCONFIRMED,
        _CLASS_MAX,
} VillageClass;

static const char *const class_en[_CLASS_MAX] = {
        [CLASS_WAITING] = "waiting for the broker",
        [CLASS_SENT] = "sent, no answer yet",
        [CLASS_SCHEDULED] = "scheduled",
        [CLASS_PLAYING] = "playing",
        [CLASS_PLAYED] = "played",
        [CLASS_FAILED] = "failed",
        [CLASS_SKIPPED] = "skipped",
        [CLASS_WITHDRAWN] = "withdrawn",
        [CLASS_UNCONFIRMED] = "not confirmed",
};

static const char *const class_th[_CLASS_MAX] = {
        [CLASS_WAITING] = "รอส่งถึงโบรกเกอร์",
        [CLASS_SENT] = "ส่งแล้ว รอหอตอบ",
        [CLASS_SCHEDULED] = "หอรับกำหนดการแล้ว",
        [CLASS_PLAYING] = "กำลังออกอากาศ",
        [CLASS_PLAYED] = "ออกอากาศแล้ว",
        [CLASS_FAILED] = "ออกอากาศไม่สำเร็จ",
        [CLASS_SKIPPED] = "ไม่ได้ออกอากาศ",
        [CLASS_WITHDRAWN] = "ยกเลิกแล้ว",
        [CLASS_UNCONFIRMED] = "หอไม่ยืนยัน",
};

static VillageClass record_class(const TowerRecord *rec) {
        bool played = false, failed = false, playing = false, scheduled = false;

        for (size_t k = 0; k < rec->n_slots; k++) {
                TowerSlotState s = rec->slots[k].state;
                played |= s == TOWER_SLOT_PLAYED;
                failed |= s == TOWER_SLOT_FAILED;
                playing |= s == TOWER_SLOT_PLAYING;
                scheduled |= s == TOWER_SLOT_SCHEDULED;
        }
        if (tower_record_final(rec) || rec->unconfirmed || rec->cancelled) {
                if (played)
                        return CLASS_PLAYED;
                if (failed && !rec->cancelled)
                        return CLASS_FAILED;
                if (rec->cancelled)
                        return CLASS_WITHDRAWN;
                if (rec->unconfirmed)
                        return CLASS_UNCONFIRMED;
                return CLASS_SKIPPED;
        }
        if (playing)
                return CLASS_PLAYING;
        if (scheduled || played)
                return CLASS_SCHEDULED;
        return rec->delivered ? CLASS_SENT : CLASS_WAITING;
}

static bool class_pending(VillageClass c) {
        return c <= CLASS_PLAYING;
}

/* The first detail a tower gave for a final state of this class, for the note. */
static const char *record_detail(const TowerRecord *rec, VillageClass c) {
        for (size_t k = 0; k < rec->n_slots; k++) {
                TowerSlotState s = rec->slots[k].state;
                if (rec->slots[k].detail &&
                    ((c == CLASS_FAILED && s == TOWER_SLOT_FAILED) || (c == CLASS_SKIPPED && s == TOWER_SLOT_SKIPPED)))
                        return rec->slots[k].detail;
        }
        return NULL;
}

static void format_instant(Tower *t, prakat_usec_t at, bool thai, char *buffer, size_t size) {
        if (t->host->format_date(t->host, at, thai ? PRAKAT_DATE_THAI_SHORT : PRAKAT_DATE_ISO_LOCAL, buffer, size) < 0)
                tower_format_utc(at, buffer);
        else if (!thai && strlen(buffer) >= 16) {
                buffer[10] = ' ';
                buffer[16] = 0; /* "2026-11-26 07:00" */
        }
}

/* The distinct instants of all villages, at most `max` of them, sorted. */
static size_t item_instants(const TowerItem *item, prakat_usec_t *out, size_t max, bool *more) {
        size_t n = 0;

        *more = false;
        for (size_t i = 0; i < item->n_records; i++)
                for (size_t k = 0; k < item->records[i].n_slots; k++) {
                        prakat_usec_t at = item->records[i].slots[k].at;
                        size_t j = 0;
                        while (j < n && out[j] < at)
                                j++;
                        if (j < n && out[j] == at)
                                continue;
                        if (n == max) {
                                *more = true;
                                if (j == n)
                                        continue;
                                n--;
                        }
                        memmove(out + j + 1, out + j, (n - j) * sizeof(prakat_usec_t));
                        out[j] = at;
                        n++;
                }
        return n;
}

typedef struct Summary {
        size_t counts[_CLASS_MAX];
        size_t pending, total;
        char *en, *th;
} Summary;

/* Counts the villages per class and writes the note, in English and in Thai. */
static void item_summary(Tower *t, const TowerItem *item, Summary *s) {
        unsigned *lists[_CLASS_MAX] = { NULL };
        PluginBuf en = { 0 }, th = { 0 };
        prakat_usec_t instants[4];
        bool more;
        size_t n_inst;

        memset(s, 0, sizeof *s);
        for (int c = 0; c < _CLASS_MAX; c++)
                lists[c] = calloc(item->n_records + 1, sizeof(unsigned));
        for (size_t i = 0; i < item->n_records; i++) {
                VillageClass c = record_class(&item->records[i]);
                if (lists[c])
                        lists[c][s->counts[c]] = item->records[i].village;
                s->counts[c]++;
                s->pending += class_pending(c);
                s->total++;
        }
        n_inst = item_instants(item, instants, 4, &more);
        if (n_inst > 0) {
                plugin_buf_printf(&en, "slot%s ", n_inst > 1 || more ? "s" : "");
                plugin_buf_printf(&th, "เวลาออกอากาศ ");
                for (size_t i = 0; i < n_inst; i++) {
                        char b[96];
                        format_instant(t, instants[i], false, b, sizeof b);
                        plugin_buf_printf(&en, "%s%s", i ? ", " : "", b);
                        format_instant(t, instants[i], true, b, sizeof b);
                        plugin_buf_printf(&th, "%s%s", i ? ", " : "", b);
                }
                plugin_buf_printf(&en, "%s", more ? ", ..." : "");
                plugin_buf_printf(&th, "%s", more ? ", ..." : "");
        }
        for (int c = 0; c < _CLASS_MAX; c++) {
                const char *detail = NULL;
                if (!s->counts[c] || !lists[c])
                        continue;
                plugin_buf_printf(&en, "%s%s: village%s ", en.size ? "; " : "", class_en[c], s->counts[c] > 1 ? "s" : "");
                villages_text(&en, lists[c], s->counts[c]);
                plugin_buf_printf(&th, "%s%s: หมู่ ", th.size ? "; " : "", class_th[c]);
                villages_text(&th, lists[c], s->counts[c]);
                for (size_t i = 0; i < item->n_records && !detail; i++)
                        if (record_class(&item->records[i]) == (VillageClass) c)
                                detail = record_detail(&item->records[i], (VillageClass) c);
                if (detail) {
                        plugin_buf_printf(&en, " (%s)", detail);
                        plugin_buf_printf(&th, " (%s)", detail);
                }
                if (c == CLASS_WAITING && !tower_link_connected(t->link)) {
                        plugin_buf_printf(&en, " (%s)", tower_link_status(t->link));
                        plugin_buf_printf(&th, " (ยังเชื่อมต่อโบรกเกอร์ไม่ได้)");
                }
        }
        if (item->withdrawn_by || item->withdraw_reason) {
                plugin_buf_printf(&en, "; withdrawn%s%s%s%s", item->withdrawn_by ? (item->replaced ? ": replaced by " : " by ") : "",
                           item->withdrawn_by ? item->withdrawn_by : "", item->withdraw_reason ? ": " : "",
                           item->withdraw_reason ? item->withdraw_reason : "");
                plugin_buf_printf(&th, "; %s%s", item->replaced ? "ถูกแทนที่ด้วย " : "ยกเลิกแล้ว ",
                           item->withdrawn_by ? item->withdrawn_by : "");
        }
        if (item->plan_note) {
                plugin_buf_printf(&en, "; %s", item->plan_note);
                plugin_buf_printf(&th, "; %s", item->plan_note);
        }
        for (int c = 0; c < _CLASS_MAX; c++)
                free(lists[c]);
        s->en = buf_take(&en);
        s->th = buf_take(&th);
        if (strlen(s->en) > TOWER_NOTE_MAX) {
                char *cut = utf8_prefix(s->en, TOWER_NOTE_MAX);
                free(s->en);
                s->en = cut;
        }
        if (strlen(s->th) > TOWER_NOTE_MAX) {
                char *cut = utf8_prefix(s->th, TOWER_NOTE_MAX);
                free(s->th);
                s->th = cut;
        }
}

static void summary_done(Summary *s) {
        free(s->en);
        free(s->th);
}

static void job_finish(Tower *t, prakat_job *job, prakat_outcome outcome, const char *en, const char *th) {
        prakat_result result = { .outcome = outcome, .message = en, .message_th = th };
        t->host->job_finish(t->host, job, &result);
}

static void item_finish_publish(Tower *t, TowerItem *item, prakat_outcome outcome, const char *en, const char *th) {
        item->finished = true;
        item->outcome = outcome;
        free(item->message);
        free(item->message_th);
        item->message = strdup_or_null(en);
        item->message_th = strdup_or_null(th);
        item->finished_at = t->host->now(t->host);
        item->dirty = true;
        if (item->job) {
                prakat_job *job = item->job;
                item->job = NULL;
                job_finish(t, job, outcome, en, th);
        }
}

/*
 * Between its slots a job waits as "deferred" in the core, not "sending": the core lets a Cancel
 * through only to a job that is not in flight (a Cancel arriving meanwhile is held until that job
 * ends, which for a tower would be after the play it should have stopped), and a stop of prakatd
 * waits for the jobs in flight.  So once every village has the item and no slot is playing, the
 * job is handed back (RETRY, retry_after = until its next slot or confirmation deadline, the note
 * as its message) and taken up again when the core gives it back; the acks are counted meanwhile.
 * Returns when to come back, or 0 when the job must stay in flight.
 */
static bool record_answered_or_late(const TowerRecord *rec, prakat_usec_t now) {
        if (now >= rec->delivered_at + TOWER_ANSWER_GRACE)
                return true;
        for (size_t k = 0; k < rec->n_slots; k++)
                if (rec->slots[k].state != TOWER_SLOT_SENT)
                        return true;
        return false;
}

static prakat_usec_t item_release_until(const Tower *t, const TowerItem *item, prakat_usec_t now) {
        prakat_usec_t next = UINT64_MAX, busy = t->confirm_within < TOWER_SLOT_BUSY ? t->confirm_within : TOWER_SLOT_BUSY;

        for (size_t i = 0; i < item->n_records; i++) {
                const TowerRecord *rec = &item->records[i];
                if (rec->cancelled || rec->unconfirmed || tower_record_final(rec))
                        continue;
                if (!rec->delivered || !record_answered_or_late(rec, now))
                        return 0;
                for (size_t k = 0; k < rec->n_slots; k++) {
                        const TowerSlot *slot = &rec->slots[k];
                        prakat_usec_t when;
                        if (tower_slot_state_final(slot->state))
                                continue;
                        if (slot->at > now)
                                when = slot->at;
                        else if (now < slot->at + busy)
                                return 0; /* playing now, or should be: its acks are close */
                        else
                                when = slot->at + t->confirm_within;
                        if (when < next)
                                next = when;
                }
        }
        return next != UINT64_MAX && next >= now + TOWER_RELEASE_MIN ? next : 0;
}

static void item_release_job(Tower *t, TowerItem *item, prakat_usec_t until, const Summary *s, prakat_usec_t now) {
        prakat_job *job = item->job;
        prakat_result result = {
                /* Waiting is not a failed attempt: a core that knows WAIT does not count it as one. */
                .outcome = PRAKAT_HOST_KNOWS_WAIT(t->host) ? PRAKAT_OUTCOME_WAIT : PRAKAT_OUTCOME_RETRY,
                .message = s->en,
                .message_th = s->th,
                .retry_after = until - now,
        };

        /* On disk first: when the core gives the job back, it is a return, not an operator's retry. */
        item->released = true;
        if (item->on_disk && item_write(t, item) == 0)
                item->dirty = item->ack_dirty = false;
        item->job = NULL;
        free(item->note_sent);
        item->note_sent = NULL;
        t->host->log(t->host, PRAKAT_LOG_INFO, item->id,
                     "Every tower has it; waiting for the next slot outside \"sending\" (a Cancel may come).");
        t->host->job_finish(t->host, job, &result);
}

static void item_update_publish_job(Tower *t, TowerItem *item, prakat_usec_t now, bool force_note) {
        prakat_usec_t until;
        Summary s;

        if (item->finished)
                return;
        item_summary(t, item, &s);
        if (s.pending == 0) {
                prakat_outcome outcome = s.counts[CLASS_PLAYED] ? PRAKAT_OUTCOME_DONE :
                                         s.counts[CLASS_UNCONFIRMED] ? PRAKAT_OUTCOME_UNCONFIRMED :
                                         s.counts[CLASS_FAILED] ? PRAKAT_OUTCOME_FAILED : PRAKAT_OUTCOME_DONE;
                t->host->log(t->host, outcome == PRAKAT_OUTCOME_DONE ? PRAKAT_LOG_INFO : PRAKAT_LOG_WARNING, item->id,
                             "Towers: %s", s.en);
                item_finish_publish(t, item, outcome, s.en, s.th);
        } else if (item->job && (until = item_release_until(t, item, now)))
                item_release_job(t, item, until, &s, now);
        else if (item->job && !streq_ptr(item->note_sent, s.en) &&
                   (force_note || now >= item->note_at + TOWER_NOTE_INTERVAL)) {
                t->host->job_note(t->host, item->job, s.en, s.th);
                free(item->note_sent);
                item->note_sent = strdup(s.en);
                item->note_at = now;
        }
        summary_done(&s);
}

static void item_update_retract_job(Tower *t, TowerItem *item, prakat_usec_t now) {
        unsigned *done = calloc(item->n_records + 1, sizeof(unsigned));
        size_t n_done = 0, n_played = 0, n_pending = 0;
        PluginBuf en = { 0 }, th = { 0 };
        char *ten, *tth;

        if (!done)
                return;
        for (size_t i = 0; i < item->n_records; i++) {
                const TowerRecord *rec = &item->records[i];
                if (rec->delivered)
                        done[n_done++] = rec->village;
                else
                        n_pending++;
                n_played += record_class(rec) == CLASS_PLAYED;
        }
        if (item->n_records == 0) {
                plugin_buf_printf(&en, "nothing had been sent to the towers; it never will be");
                plugin_buf_printf(&th, "ยังไม่ได้ส่งถึงหอกระจายข่าว และจะไม่ส่งอีก");
        } else {
                plugin_buf_printf(&en, "withdrawn from the towers of village%s ", n_done > 1 ? "s" : "");
                villages_text(&en, done, n_done);
                plugin_buf_printf(&th, "ยกเลิกที่หอกระจายข่าวหมู่ ");
                villages_text(&th, done, n_done);
                plugin_buf_printf(&th, " แล้ว");
                if (n_pending) {
                        plugin_buf_printf(&en, "%s%zu still to reach: %s", n_done ? "; " : "", n_pending,
                                   tower_link_status(t->link));
                        plugin_buf_printf(&th, " (เหลืออีก %zu หมู่ รอโบรกเกอร์)", n_pending);
                }
                if (n_played) {
                        plugin_buf_printf(&en, " (%zu had already played it)", n_played);
                        plugin_buf_printf(&th, " (ออกอากาศไปแล้ว %zu หมู่)", n_played);
                }
        }
        free(done);
        ten = buf_take(&en);
        tth = buf_take(&th);
        if (n_pending == 0) {
                prakat_job *job = item->retract_job;
                item->retract_job = NULL;
                item->retracted = true;
                item->dirty = true;
                t->host->log(t->host, PRAKAT_LOG_INFO, item->id, "Withdrawal: %s", ten);
                job_finish(t, job, PRAKAT_OUTCOME_DONE, ten, tth);
        } else if (now >= item->retract_started + t->confirm_within) {
                prakat_job *job = item->retract_job;
                item->retract_job = NULL;
                job_finish(t, job, PRAKAT_OUTCOME_RETRY, ten, tth);
        } else if (!streq_ptr(item->note_sent, ten) && now >= item->note_at + TOWER_NOTE_INTERVAL) {
                t->host->job_note(t->host, item->retract_job, ten, tth);
                free(item->note_sent);
                item->note_sent = strdup(ten);
                item->note_at = now;
        }
        free(ten);
        free(tth);
}

/* Ends or notes every job whose villages moved.  Counts only what is on disk (called after writing). */
static void jobs_update(Tower *t, bool force_notes) {
        prakat_usec_t now = t->host->now(t->host);

        for (size_t i = 0; i < t->n_items; i++) {
                TowerItem *item = t->items[i];
                if (!item->on_disk)
                        continue;
                if (item->job || (!item->finished && !item->tombstone))
                        item_update_publish_job(t, item, now, force_notes);
                if (item->retract_job)
                        item_update_retract_job(t, item, now);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Time: confirmation deadlines, expiry, pending notes */

/* Nothing of it is on its way, nothing waits for it: it may leave memory (its file stays). */
static bool item_idle(const TowerItem *item, prakat_usec_t now) {
        if (!(item->finished || (item->tombstone && item->retracted)) || item->job || item->retract_job ||
            item->dirty || item->ack_dirty || !item->on_disk || now < item->finished_at + TOWER_KEEP_IN_MEMORY)
                return false;
        for (size_t k = 0; k < item->n_records; k++) {
                const TowerRecord *rec = &item->records[k];
                if (rec->queued || rec->in_flight || record_needs_announce(item, rec) ||
                    (rec->cancelled && !rec->delivered))
                        return false;
        }
        return true;
}

static void tower_evict(Tower *t, prakat_usec_t now) {
        size_t n = 0;

        for (size_t i = 0; i < t->n_items; i++) {
                if (item_idle(t->items[i], now))
                        tower_item_free(t->items[i]);
                else
                        t->items[n++] = t->items[i];
        }
        t->n_items = n;
}

static void tower_tick_work(Tower *t, prakat_usec_t now) {
        for (size_t i = 0; i < t->n_items; i++) {
                TowerItem *item = t->items[i];
                if (item->finished && !item->job)
                        continue;
                for (size_t k = 0; k < item->n_records; k++) {
                        TowerRecord *rec = &item->records[k];
                        bool overdue = rec->n_slots > 0;
                        if (rec->cancelled || rec->unconfirmed || tower_record_final(rec))
                                continue;
                        /* An item that expired before its village ever got it. */
                        if (item->expires && now >= item->expires && !rec->delivered) {
                                (void) tower_record_apply_ack(rec, TOWER_SLOT_SKIPPED, 0,
                                                              "expired before it reached the tower");
                                item->dirty = true;
                                village_touch(t, rec->village, NULL);
                                continue;
                        }
                        for (size_t s = 0; s < rec->n_slots; s++)
                                if (!tower_slot_state_final(rec->slots[s].state) &&
                                    now < rec->slots[s].at + t->confirm_within)
                                        overdue = false;
                        if (overdue) {
                                rec->unconfirmed = true;
                                item->dirty = true;
                                village_touch(t, rec->village, NULL);
                        }
                }
        }
}

static prakat_usec_t tower_next_wake(const Tower *t, prakat_usec_t now) {
        prakat_usec_t next = now + TOWER_WAKE_MAX;

        for (size_t i = 0; i < t->n_items; i++) {
                const TowerItem *item = t->items[i];
                if (item->finished && !item->job && !item->retract_job) {
                        if (item->finished_at + TOWER_KEEP_IN_MEMORY > now &&
                            item->finished_at + TOWER_KEEP_IN_MEMORY < next)
                                next = item->finished_at + TOWER_KEEP_IN_MEMORY;
                        continue;
                }
                if (item->note_sent || item->job || item->retract_job)
                        if (item->note_at + TOWER_NOTE_INTERVAL > now && item->note_at + TOWER_NOTE_INTERVAL < next)
                                next = item->note_at + TOWER_NOTE_INTERVAL;
                if (item->retract_job && item->retract_started + t->confirm_within < next)
                        next = item->retract_started + t->confirm_within;
                if (item->expires > now && item->expires < next)
                        next = item->expires;
                for (size_t k = 0; k < item->n_records; k++) {
                        const TowerRecord *rec = &item->records[k];
                        if (rec->cancelled || rec->unconfirmed)
                                continue;
                        if (item->job && rec->delivered && !record_answered_or_late(rec, now) &&
                            rec->delivered_at + TOWER_ANSWER_GRACE < next)
                                next = rec->delivered_at + TOWER_ANSWER_GRACE;
                        for (size_t s = 0; s < rec->n_slots; s++) {
                                prakat_usec_t due = rec->slots[s].at + t->confirm_within;
                                if (!tower_slot_state_final(rec->slots[s].state) && due < next)
                                        next = due;
                        }
                }
        }
        return next;
}

static void on_tick(void *userdata) {
        Tower *t = userdata;
        prakat_usec_t now = t->host->now(t->host);

        t->tick_timer = NULL;
        tower_tick_work(t, now);
        tower_flush(t); /* writes, counts, notes, and arms the next tick */
        tower_evict(t, now);
}

static void tower_arm_tick(Tower *t) {
        prakat_usec_t now = t->host->now(t->host), next;

        if (!t->started || t->retired)
                return;
        next = tower_next_wake(t, now);
        t->host->timer_cancel(t->tick_timer);
        t->tick_timer = NULL;
        (void) t->host->timer_start(t->host, next > now ? next - now : 0, on_tick, t, &t->tick_timer);
}

/* ------------------------------------------------------------------------------------------------ */
/* Flushing: the state on disk, then what it allows to count */

static void acks_log_sync(Tower *t) {
        if (t->acks_fd >= 0 && t->acks_unsynced) {
                if (fdatasync(t->acks_fd) < 0)
                        t->host->log(t->host, PRAKAT_LOG_ERR, NULL, "Failed to sync %s: %s", t->acks_path,
                                     strerror(errno));
                t->acks_unsynced = false;
        }
}

/* Folds acks.log into the item files and empties it.  Every item an ack touched is rewritten first. */
static void acks_log_compact(Tower *t) {
        bool ok = true;

        if (t->acks_fd < 0 || t->acks_size == 0)
                return;
        for (size_t i = 0; i < t->n_items; i++)
                if ((t->items[i]->ack_dirty || t->items[i]->dirty) && t->items[i]->on_disk) {
                        if (item_write(t, t->items[i]) < 0)
                                ok = false;
                        else
                                t->items[i]->ack_dirty = t->items[i]->dirty = false;
                }
        if (!ok)
                return;
        if (ftruncate(t->acks_fd, 0) < 0 || fsync(t->acks_fd) < 0) {
                t->host->log(t->host, PRAKAT_LOG_ERR, NULL, "Failed to empty %s: %s", t->acks_path, strerror(errno));
                return;
        }
        t->acks_size = 0;
        t->acks_unsynced = false;
}

static void tower_check_delivery(Tower *t) {
        for (size_t i = 0; i < t->n_items; i++) {
                TowerItem *item = t->items[i];
                for (size_t k = 0; k < item->n_records; k++) {
                        TowerRecord *rec = &item->records[k];
                        if (!rec->delivered && rec->announce_acked &&
                            village_of(t, rec->village)->acked_seq >= rec->need_seq) {
                                rec->delivered = true;
                                rec->delivered_at = t->host->now(t->host);
                                item->dirty = true;
                        }
                }
        }
}

static void tower_flush(Tower *t) {
        bool new_items = false;

        t->host->timer_cancel(t->flush_timer);
        t->flush_timer = NULL;
        t->flush_wanted = false;
        if (!t->started || t->retired)
                return;
        if (t->check_delivery) {
                t->check_delivery = false;
                tower_check_delivery(t);
        }
        for (size_t i = 0; i < t->n_items; i++) {
                TowerItem *item = t->items[i];
                if (!item->dirty)
                        continue;
                if (item_write(t, item) < 0) {
                        tower_request_flush(t, TOWER_SEC);
                        continue;
                }
                item->dirty = item->ack_dirty = false;
                if (!item->on_disk) {
                        /* Only now may it go out: whatever is sent, a restart finds. */
                        item->on_disk = true;
                        new_items = true;
                        /* The announce first: a tower then takes the schedule as news it already has. */
                        for (size_t k = 0; k < item->n_records; k++) {
                                queue_announce(t, item, &item->records[k]);
                                village_touch(t, item->records[k].village, &item->records[k]);
                        }
                }
        }
        acks_log_sync(t);
        if (t->acks_size > TOWER_ACKS_LOG_COMPACT)
                acks_log_compact(t);
        jobs_update(t, new_items);
        /* Finishing a job marks its item dirty: written with the next flush. */
        for (size_t i = 0; i < t->n_items; i++)
                if (t->items[i]->dirty && t->items[i]->on_disk) {
                        tower_request_flush(t, TOWER_FLUSH_DELAY);
                        break;
                }
        tower_arm_tick(t);
}

static void on_flush(void *userdata) {
        Tower *t = userdata;

        t->flush_timer = NULL;
        tower_flush(t);
}

static void tower_request_flush(Tower *t, uint64_t delay) {
        if (t->flush_timer || !t->started || t->retired)
                return;
        (void) t->host->timer_start(t->host, delay, on_flush, t, &t->flush_timer);
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading the state */

static void tower_replay_acks(Tower *t) {
        char *data = NULL;
        struct stat st = { 0 };
        size_t start = 0, n, applied = 0, bad = 0;
        int r = plugin_read_small_file(t->acks_path, 256 * 1024 * 1024, &data, &st);

        if (r < 0)
                return;
        n = (size_t) st.st_size;
        while (start < n) {
                char *nl = memchr(data + start, '\n', n - start);
                size_t len = nl ? (size_t) (nl - (data + start)) : n - start;
                char *id = NULL, *detail = NULL;
                unsigned v;
                prakat_usec_t slot;
                TowerSlotState state;

                if (len > 0 && tower_ack_line_parse(data + start, len, &id, &v, &slot, &state, &detail) == 0) {
                        TowerItem *item = tower_find(t, id);
                        TowerRecord *rec = item ? tower_item_record(item, v) : NULL;
                        if (rec && tower_record_apply_ack(rec, state, slot, detail)) {
                                item->ack_dirty = true;
                                applied++;
                        }
                } else if (len > 0)
                        bad++; /* a line cut by a crash */
                free(id);
                free(detail);
                start += len + 1;
        }
        free(data);
        t->acks_size = n;
        if (applied || bad)
                t->host->log(t->host, PRAKAT_LOG_INFO, NULL, "Replayed %zu acks from %s%s.", applied, t->acks_path,
                             bad ? " (a cut last line ignored)" : "");
}

static int tower_load(Tower *t) {
        prakat_usec_t now = t->host->now(t->host);
        DIR *d;
        struct dirent *de;

        if (mkdir(t->items_dir, 0750) < 0 && errno != EEXIST)
                return -errno;
        d = opendir(t->items_dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char *path = NULL;
                TowerItem *item = NULL;

                if (de->d_name[0] == '.')
                        continue;
                if (len > 4 && !strcmp(de->d_name + len - 4, ".tmp")) {
                        /* A write cut off by a crash: the file it was to replace is still whole. */
                        if (asprintf(&path, "%s/%s", t->items_dir, de->d_name) >= 0)
                                (void) unlink(path);
                        free(path);
                        continue;
                }
                if (len <= 5 || strcmp(de->d_name + len - 5, ".json"))
                        continue;
                if (asprintf(&path, "%s/%s", t->items_dir, de->d_name) < 0)
                        continue;
                if (item_read(t, path, &item) < 0) {
                        t->host->log(t->host, PRAKAT_LOG_ERR, NULL, "%s cannot be read; leaving it aside.", path);
                        free(path);
                        continue;
                }
                /* Long finished: forgotten. */
                if ((item->finished || item->tombstone) && item->finished_at &&
                    now > item->finished_at + TOWER_KEEP_FINISHED && now > item->deadline + TOWER_KEEP_FINISHED) {
                        (void) unlink(path);
                        free(path);
                        tower_item_free(item);
                        continue;
                }
                free(path);
                item->on_disk = true;
                if (tower_add_item(t, item) < 0) {
                        tower_item_free(item);
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        /* In the order they were planned, as the schedules list them. */
        for (size_t i = 1; i < t->n_items; i++)
                for (size_t k = i; k > 0 && t->items[k - 1]->planned > t->items[k]->planned; k--) {
                        TowerItem *x = t->items[k];
                        t->items[k] = t->items[k - 1];
                        t->items[k - 1] = x;
                }
        tower_replay_acks(t);
        t->acks_fd = open(t->acks_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (t->acks_fd < 0)
                return -errno;
        acks_log_compact(t);
        tower_evict(t, now);
        /* After a start every schedule goes out once; what waited for one waits for that. */
        for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++)
                if (t->villages[v].tower)
                        t->villages[v].seq = 1;
        for (size_t i = 0; i < t->n_items; i++)
                for (size_t k = 0; k < t->items[i]->n_records; k++) {
                        TowerRecord *rec = &t->items[i]->records[k];
                        Village *vil = village_of(t, rec->village);
                        if (record_in_schedule(t->items[i], rec) || rec->cancelled)
                                vil->seq = 1;
                        rec->need_seq = 1;
                }
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Start: lazily, from a timer or the first job, so that `prakatd --check` never connects */

/* Hands the jobs of an instance replaced by a reload over to `to`, and quiets it. */
static void tower_retire(Tower *old, Tower *to) {
        size_t n = 0;

        if (old->started) {
                tower_flush(old);
                acks_log_compact(old);
        }
        for (size_t i = 0; i < old->n_items; i++)
                n += old->items[i]->job || old->items[i]->retract_job;
        to->adopted = calloc(n + 1, sizeof(Adopted));
        for (size_t i = 0; to->adopted && i < old->n_items; i++) {
                TowerItem *item = old->items[i];
                if (!item->job && !item->retract_job)
                        continue;
                to->adopted[to->n_adopted++] = (Adopted) { strdup(item->id), item->job, item->retract_job,
                                                           item->retract_started };
                item->job = item->retract_job = NULL;
        }
        old->retired = true;
        tower_link_free(old->link, NULL, NULL); /* a plain DISCONNECT: the new instance connects at once */
        old->link = NULL;
        old->host->timer_cancel(old->flush_timer);
        old->host->timer_cancel(old->pump_timer);
        old->host->timer_cancel(old->tick_timer);
        old->host->timer_cancel(old->start_timer);
        old->flush_timer = old->pump_timer = old->tick_timer = old->start_timer = NULL;
        if (old->acks_fd >= 0)
                close(old->acks_fd);
        old->acks_fd = -1;
        old->host->log(old->host, PRAKAT_LOG_INFO, NULL, "Handed %zu jobs over to the reloaded configuration.",
                       to->n_adopted);
}

static int tower_start(Tower *t) {
        const char *subscriptions[2];
        char *ack_filter = NULL, *status_filter = NULL;
        int r;

        if (t->started || t->retired)
                return t->retired ? -ESTALE : 0;
        t->started = true;
        t->host->timer_cancel(t->start_timer);
        t->start_timer = NULL;
        for (Tower *o = instances; o; o = o->next_instance)
                if (o != t && !o->retired && !strcmp(o->host->channel, t->host->channel))
                        tower_retire(o, t);
        r = tower_load(t);
        if (r < 0)
                t->host->log(t->host, PRAKAT_LOG_ERR, NULL, "Failed to read the state in %s: %s", t->host->state_dir,
                             strerror(-r));
        for (size_t i = 0; i < t->n_adopted; i++) {
                TowerItem *item = tower_lookup(t, t->adopted[i].id);
                if (item) {
                        item->job = t->adopted[i].job;
                        item->retract_job = t->adopted[i].retract_job;
                        item->retract_started = t->adopted[i].retract_started;
                } else {
                        if (t->adopted[i].job)
                                job_finish(t, t->adopted[i].job, PRAKAT_OUTCOME_RETRY, "the state was lost in a reload",
                                           NULL);
                        if (t->adopted[i].retract_job)
                                job_finish(t, t->adopted[i].retract_job, PRAKAT_OUTCOME_RETRY,
                                           "the state was lost in a reload", NULL);
                }
                free(t->adopted[i].id);
        }
        free(t->adopted);
        t->adopted = NULL;
        t->n_adopted = 0;

        if (asprintf(&ack_filter, "%s/village/+/ack", t->topic_prefix) < 0 ||
            asprintf(&status_filter, "%s/village/+/status", t->topic_prefix) < 0) {
                free(ack_filter);
                return -ENOMEM;
        }
        subscriptions[0] = ack_filter;
        subscriptions[1] = status_filter;
        TowerLinkOptions options = {
                .host = t->broker_host,
                .port = t->broker_port,
                .tls = t->tls,
                .ca_file = t->ca_file,
                .cert_file = t->cert_file,
                .key_file = t->key_file,
                .username = t->username,
                .password = t->password,
                .client_id = t->client_id,
                .will_topic = t->topic_daemon_status,
                .will_payload = t->will_payload,
                .subscriptions = subscriptions,
                .n_subscriptions = 2,
                .keepalive = TOWER_KEEPALIVE,
                .max_inflight = TOWER_WINDOW,
        };
        TowerLinkCallbacks callbacks = {
                .connected = on_connected,
                .disconnected = on_disconnected,
                .message = on_message,
                .published = on_published,
        };
        r = tower_link_new(t->host, &options, &callbacks, t, &t->link);
        free(ack_filter);
        free(status_filter);
        if (r < 0) {
                t->host->log(t->host, PRAKAT_LOG_ERR, NULL, "Failed to set up MQTT: %s", strerror(-r));
                return r;
        }
        tower_link_start(t->link);
        tower_flush(t);
        return 0;
}

static void on_start(void *userdata) {
        Tower *t = userdata;

        t->start_timer = NULL;
        (void) tower_start(t);
}

/* ------------------------------------------------------------------------------------------------ */
/* Planning an announcement */

/* The public URL of the recorded audio: intake makes it an attachment too, which the website publishes. */
static const char *audio_url_of(const prakat_announcement *a) {
        if (!a->audio || !a->attachment_urls)
                return NULL;
        for (size_t i = 0; i < a->n_attachments; i++)
                if (a->attachments[i].path && a->audio->path && !strcmp(a->attachments[i].path, a->audio->path) &&
                    a->attachment_urls[i] && strlen(a->attachment_urls[i]) <= TOWER_URL_MAX &&
                    (!strncasecmp(a->attachment_urls[i], "https://", 8) ||
                     !strncasecmp(a->attachment_urls[i], "http://", 7)) &&
                    !strpbrk(a->attachment_urls[i], " \t\r\n"))
                        return a->attachment_urls[i];
        return NULL;
}

static char *plan_note(unsigned flags, const prakat_announcement *a, bool audio_lost) {
        PluginBuf b = { 0 };

        if (flags & TOWER_PLAN_MOVED_QUIET)
                plugin_buf_printf(&b, "%sa time inside quiet hours moved to the next slot", b.size ? "; " : "");
        if (flags & TOWER_PLAN_DROPPED_PAST)
                plugin_buf_printf(&b, "%sa Broadcast-At time had already passed", b.size ? "; " : "");
        if (flags & TOWER_PLAN_DROPPED_EXPIRY)
                plugin_buf_printf(&b, "%sa time at or after Expires was dropped", b.size ? "; " : "");
        if (flags & TOWER_PLAN_TOO_MANY)
                plugin_buf_printf(&b, "%sonly the first %d times are used", b.size ? "; " : "", TOWER_PLAY_AT_MAX);
        if (flags & TOWER_PLAN_BAD_SLOT)
                plugin_buf_printf(&b, "%sa Broadcast-At value was not understood", b.size ? "; " : "");
        if (audio_lost)
                plugin_buf_printf(&b, "%sthe audio file has no public URL (the website did not publish it), so the "
                           "text is spoken", b.size ? "; " : "");
        (void) a;
        if (!b.size)
                return NULL;
        return buf_take(&b);
}

static TowerItem *tower_plan_item(Tower *t, const prakat_announcement *a, prakat_usec_t now, size_t *ret_no_tower,
                                  unsigned *no_tower, size_t no_tower_max) {
        TowerItem *item = calloc(1, sizeof(TowerItem));
        size_t n_villages = a->all_villages ? t->n_towers : a->n_villages;
        prakat_usec_t instants[TOWER_PLAY_AT_MAX];
        const char *audio = audio_url_of(a);

        *ret_no_tower = 0;
        if (!item)
                return NULL;
        item->id = strdup(a->id);
        item->title = utf8_prefix(a->title, TOWER_TITLE_MAX);
        item->text = utf8_prefix(a->body, TOWER_TEXT_MAX);
        item->audio_url = strdup_or_null(audio);
        item->priority = a->priority <= PRAKAT_PRIORITY_EMERGENCY ? a->priority : PRAKAT_PRIORITY_NORMAL;
        item->repeat = a->repeat >= 1 && a->repeat <= TOWER_REPEAT_MAX ? a->repeat : a->repeat > TOWER_REPEAT_MAX ?
                       TOWER_REPEAT_MAX : 1;
        item->gap = t->gap;
        item->expires = a->expires ? a->expires - a->expires % TOWER_SEC : 0;
        item->planned = now;
        item->records = calloc(n_villages + 1, sizeof(TowerRecord));
        if (!item->id || !item->title || !item->text || !item->records || (audio && !item->audio_url))
                return tower_item_free(item);
        for (unsigned v = 1, i = 0; v <= TOWER_VILLAGE_MAX && (a->all_villages || i < a->n_villages); v++) {
                const Village *vil = &t->villages[v];
                TowerRecord *rec;
                size_t n;

                if (!a->all_villages) {
                        if (a->villages[i] != v)
                                continue;
                        i++;
                }
                if (!vil->tower) {
                        if (!a->all_villages && *ret_no_tower < no_tower_max)
                                no_tower[(*ret_no_tower)++] = v;
                        continue;
                }
                n = tower_plan_instants(&t->plan, vil->has_quiet ? &vil->quiet : &t->quiet, item->priority,
                                        a->broadcast_at, a->n_broadcast_at, now, item->expires, instants,
                                        &item->plan_flags);
                rec = &item->records[item->n_records++];
                rec->village = v;
                rec->slots = calloc(n + 1, sizeof(TowerSlot));
                if (!rec->slots)
                        return tower_item_free(item);
                for (size_t k = 0; k < n; k++)
                        rec->slots[rec->n_slots++] = (TowerSlot) { .at = instants[k] };
                for (size_t k = 0; k < n; k++)
                        if (instants[k] + t->confirm_within > item->deadline)
                                item->deadline = instants[k] + t->confirm_within;
        }
        item->plan_note = plan_note(item->plan_flags, a, a->audio && !audio);
        return item;
}

/* Withdraws `item` everywhere: each village gets a cancel and a schedule without it. */
static void tower_withdraw(Tower *t, TowerItem *item, const char *by, bool replaced, const char *reason) {
        if (!item->withdrawn_by && by)
                item->withdrawn_by = strdup(by);
        if (!item->withdraw_reason && reason && *reason)
                item->withdraw_reason = utf8_prefix(reason, 300);
        item->replaced = item->replaced || replaced;
        for (size_t k = 0; k < item->n_records; k++) {
                TowerRecord *rec = &item->records[k];
                if (rec->cancelled)
                        continue;
                rec->cancelled = true;
                rec->announce_acked = false;
                rec->delivered = false;
                (void) tower_record_apply_ack(rec, TOWER_SLOT_SKIPPED, 0, replaced ? "replaced" : "withdrawn");
                if (item->on_disk) {
                        /* The cancel first, so the tower acks "cancelled", not "removed from the schedule". */
                        queue_announce(t, item, rec);
                        village_touch(t, rec->village, rec);
                }
        }
        item->dirty = true;
        t->host->log(t->host, PRAKAT_LOG_NOTICE, item->id, "Withdrawn from the towers%s%s.",
                     by ? (replaced ? ": replaced by " : " by ") : "", by ? by : "");
        tower_request_flush(t, 0);
}

/* A retry of a job that ended FAILED or UNCONFIRMED: the villages that did not play it get new times. */
static void tower_replan(Tower *t, TowerItem *item, const prakat_announcement *a, prakat_usec_t now) {
        prakat_usec_t instants[TOWER_PLAY_AT_MAX];
        unsigned flags = 0;

        for (size_t k = 0; k < item->n_records; k++) {
                TowerRecord *rec = &item->records[k];
                Village *vil = village_of(t, rec->village);
                VillageClass c = record_class(rec);
                size_t n;

                if (c == CLASS_PLAYED || rec->cancelled)
                        continue;
                n = tower_plan_instants(&t->plan, vil->has_quiet ? &vil->quiet : &t->quiet, item->priority,
                                        a->broadcast_at, a->n_broadcast_at, now, item->expires, instants, &flags);
                for (size_t s = 0; s < rec->n_slots; s++)
                        free(rec->slots[s].detail);
                free(rec->slots);
                rec->slots = calloc(n + 1, sizeof(TowerSlot));
                rec->n_slots = 0;
                for (size_t s = 0; rec->slots && s < n; s++) {
                        rec->slots[rec->n_slots++] = (TowerSlot) { .at = instants[s] };
                        if (instants[s] + t->confirm_within > item->deadline)
                                item->deadline = instants[s] + t->confirm_within;
                }
                rec->update = true;
                rec->unconfirmed = false;
                rec->announce_acked = false;
                rec->delivered = false;
                queue_announce(t, item, rec);
                village_touch(t, rec->village, rec);
        }
        item->finished = false;
        free(item->note_sent);
        item->note_sent = NULL;
        item->dirty = true;
}

/* ------------------------------------------------------------------------------------------------ */
/* The plugin's entry points */

static void tower_free(Tower *t) {
        if (!t)
                return;
        for (Tower **p = &instances; *p; p = &(*p)->next_instance)
                if (*p == t) {
                        *p = t->next_instance;
                        break;
                }
        if (t->started && !t->retired) {
                tower_flush(t);
                acks_log_compact(t);
        }
        if (t->link)
                tower_link_free(t->link, t->topic_daemon_status, t->goodbye_payload);
        t->host->timer_cancel(t->start_timer);
        t->host->timer_cancel(t->flush_timer);
        t->host->timer_cancel(t->pump_timer);
        t->host->timer_cancel(t->tick_timer);
        if (t->acks_fd >= 0)
                close(t->acks_fd);
        for (size_t i = 0; i < t->n_items; i++)
                tower_item_free(t->items[i]);
        for (size_t i = 0; i < t->n_adopted; i++)
                free(t->adopted[i].id);
        free(t->adopted);
        free(t->items);
        free(t->queue);
        free(t->flights);
        free(t->broker);
        free(t->broker_host);
        free(t->topic_prefix);
        free(t->client_id);
        free(t->ca_file);
        free(t->cert_file);
        free(t->key_file);
        free(t->username);
        if (t->password)
                explicit_bzero(t->password, strlen(t->password));
        free(t->password);
        free(t->topic_daemon_status);
        free(t->online_payload);
        free(t->will_payload);
        free(t->goodbye_payload);
        free(t->items_dir);
        free(t->acks_path);
        free(t);
}

static char *status_payload(const Tower *t, const char *state, const char *reason, bool with_since) {
        char since[21];
        json_t *o = json_pack("{s:s s:s s:s s:I}", "state", state, "version", TOWER_VERSION, "client_id", t->client_id,
                              "villages", (json_int_t) t->n_towers);
        char *s;

        if (with_since)
                json_object_set_new(o, "since", json_string(tower_format_utc(t->host->now(t->host), since)));
        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

static int tower_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                           void **ret_instance, char *error, size_t error_size, unsigned *ret_error_line) {
        Tower *t;
        int r;

        *ret_error_line = 0;
        if (!PRAKAT_HOST_HAS(host, io_watch) || !PRAKAT_HOST_HAS(host, io_set_events) ||
            !PRAKAT_HOST_HAS(host, io_cancel) || !PRAKAT_HOST_HAS(host, job_note)) {
                snprintf(error, error_size, "this prakatd is too old for the tower plugin (it needs io_watch and "
                                            "job_note); update prakat");
                return -EPROTO;
        }
        t = calloc(1, sizeof(Tower));
        if (!t)
                return -ENOMEM;
        t->host = host;
        t->acks_fd = -1;
        t->gap = 5;
        t->confirm_within = 2 * 3600 * TOWER_SEC;
        (void) tower_parse_slots("07:00, 17:00", &t->plan);
        (void) tower_parse_quiet("21:00-06:00", &t->quiet);
        for (unsigned v = 0; v <= TOWER_VILLAGE_MAX; v++)
                t->villages[v].online = -1;
        r = tower_parse_config(t, entries, n_entries, error, error_size, ret_error_line);
        if (r < 0) {
                tower_free(t);
                return r == -ENOMEM ? r : -EINVAL;
        }
        ensure_timezone(host);
        if (asprintf(&t->topic_daemon_status, "%s/daemon/status", t->topic_prefix) < 0 ||
            asprintf(&t->items_dir, "%s/items", host->state_dir) < 0 ||
            asprintf(&t->acks_path, "%s/acks.log", host->state_dir) < 0) {
                tower_free(t);
                return -ENOMEM;
        }
        t->online_payload = status_payload(t, "online", NULL, true);
        t->will_payload = status_payload(t, "offline", NULL, false);
        t->goodbye_payload = status_payload(t, "offline", "stopped", false);
        if (!t->online_payload || !t->will_payload || !t->goodbye_payload) {
                tower_free(t);
                return -ENOMEM;
        }
        /* Connecting starts from the loop: `prakatd --check` configures and destroys without it. */
        r = host->timer_start(host, 0, on_start, t, &t->start_timer);
        if (r < 0) {
                tower_free(t);
                return r;
        }
        t->next_instance = instances;
        instances = t;
        *ret_instance = t;
        return 0;
}

/* A planned item in words, per village: what the towers will be told to play and when. */
static void item_describe(Tower *t, const TowerItem *item, const unsigned *no_tower, size_t n_no_tower, PluginBuf *b) {
        static const char *const priorities[] = { "normal", "urgent", "emergency" };

        plugin_buf_printf(b, "ความสำคัญ / priority: %s; เล่นซ้ำ / repeat: %u (gap %u s)\n", priorities[item->priority],
                          item->repeat, item->gap);
        for (size_t i = 0; i < item->n_records; i++) {
                const TowerRecord *rec = &item->records[i];
                plugin_buf_printf(b, "หมู่ %u / village %u:", rec->village, rec->village);
                if (rec->n_slots == 0)
                        plugin_buf_puts(b, " ไม่มีเวลาออกอากาศ / nothing to play");
                for (size_t k = 0; k < rec->n_slots; k++) {
                        char when[64] = "", utc[21];
                        (void) t->host->format_date(t->host, rec->slots[k].at, PRAKAT_DATE_THAI_LONG, when, sizeof when);
                        plugin_buf_printf(b, "%s %s (%s)", k ? "," : "", when, tower_format_utc(rec->slots[k].at, utc));
                }
                plugin_buf_puts(b, "\n");
        }
        if (n_no_tower) {
                plugin_buf_puts(b, "ไม่มีหอกระจายข่าว / no tower in village(s) ");
                villages_text(b, no_tower, n_no_tower);
                plugin_buf_puts(b, "\n");
        }
        if (item->plan_note)
                plugin_buf_printf(b, "หมายเหตุ / note: %s\n", item->plan_note);
        if (item->audio_url)
                plugin_buf_printf(b, "เสียง / audio: %s\n", item->audio_url);
        else
                plugin_buf_printf(b, "ข้อความที่อ่านออกเสียง / spoken text:\n-----\n%s\n\n%s\n-----\n", item->title,
                                  item->text);
}

/*
 * The towers' plan if the announcement were approved now (or at its publication time, when later):
 * the slots follow from the moment publish() runs, so a later approval may give later slots.
 */
static int tower_preview(void *instance, const prakat_announcement *a, const char *page_path, char **ret_text) {
        Tower *t = instance;
        prakat_usec_t now = t->host->now(t->host);
        unsigned no_tower[16];
        size_t n_no_tower = 0;
        PluginBuf b = { 0 };

        if (!tower_id_valid(a->id))
                return -EINVAL;
        TowerItem *item = tower_plan_item(t, a, a->publish_at > now ? a->publish_at : now, &n_no_tower, no_tower,
                                          sizeof no_tower / sizeof no_tower[0]);
        if (!item)
                return -ENOMEM;
        plugin_buf_puts(&b, "(เวลาตามที่จะได้หากอนุมัติตอนนี้ / times as planned if approved now)\n");
        item_describe(t, item, no_tower, n_no_tower, &b);
        tower_item_free(item);
        char *text = buf_take(&b);
        if (!text)
                return -ENOMEM;
        *ret_text = text;
        return 0;
}

static int tower_publish(void *instance, prakat_job *job, const prakat_announcement *a) {
        Tower *t = instance;
        prakat_usec_t now = t->host->now(t->host);
        unsigned no_tower[16];
        size_t n_no_tower = 0;
        TowerItem *item;
        int r;

        r = tower_start(t);
        if (r < 0 && !t->link) {
                job_finish(t, job, PRAKAT_OUTCOME_RETRY, "the tower channel could not start; see the log",
                           "ช่องทางหอกระจายข่าวเริ่มทำงานไม่ได้");
                return 0;
        }
        if (!tower_id_valid(a->id)) {
                job_finish(t, job, PRAKAT_OUTCOME_FAILED,
                           "this announcement id cannot be used on the towers (they take 1-64 of A-Z a-z 0-9 . _ - "
                           "without \"..\"); give it another ID",
                           "ใช้รหัสประกาศนี้กับหอกระจายข่าวไม่ได้ ให้ตั้งรหัสใหม่");
                return 0;
        }
        item = tower_lookup(t, a->id);
        if (item) {
                if (item->tombstone || (item->withdrawn_by && item->n_records == 0)) {
                        job_finish(t, job, PRAKAT_OUTCOME_DONE, "withdrawn before it went to the towers",
                                   "ถูกยกเลิกก่อนส่งถึงหอกระจายข่าว");
                        return 0;
                }
                if (item->finished && (job->interrupted || item->released || item->outcome == PRAKAT_OUTCOME_DONE)) {
                        /* Finished while the job waited in the core, or before a crash took the news
                         * away: the same outcome again. */
                        if (item->released) {
                                item->released = false;
                                item->dirty = true;
                                tower_request_flush(t, 0);
                        }
                        job_finish(t, job, item->outcome, item->message, item->message_th);
                        return 0;
                }
                if (item->finished) {
                        t->host->log(t->host, PRAKAT_LOG_NOTICE, a->id,
                                     "Retry: the villages that did not play it get new times.");
                        tower_replan(t, item, a, now);
                }
                item->job = job;
                if (item->released) {
                        item->released = false;
                        item->dirty = true;
                }
                free(item->note_sent);
                item->note_sent = NULL;
                item->note_at = 0;
                t->check_delivery = true;
                tower_request_flush(t, 0);
                return 0;
        }
        if (a->replaces && tower_id_valid(a->replaces) && strcmp(a->replaces, a->id)) {
                TowerItem *old = tower_lookup(t, a->replaces);
                if (old && !old->replaced)
                        tower_withdraw(t, old, a->id, true, NULL);
        }
        item = tower_plan_item(t, a, now, &n_no_tower, no_tower, sizeof no_tower / sizeof no_tower[0]);
        if (!item) {
                job_finish(t, job, PRAKAT_OUTCOME_RETRY, "out of memory", NULL);
                return 0;
        }
        if (item->n_records == 0) {
                PluginBuf en = { 0 };
                plugin_buf_printf(&en, "no tower in village%s ", n_no_tower > 1 ? "s" : "");
                villages_text(&en, no_tower, n_no_tower);
                plugin_buf_printf(&en, " (the tower channel's villages are the ones that have one)");
                char *text = buf_take(&en);
                job_finish(t, job, PRAKAT_OUTCOME_DONE, text, "หมู่บ้านที่ระบุไม่มีหอกระจายข่าว");
                free(text);
                tower_item_free(item);
                return 0;
        }
        if (item->deadline == 0) {
                char when[64] = "";
                (void) t->host->format_date(t->host, item->expires, PRAKAT_DATE_ISO_LOCAL, when, sizeof when);
                job_finish(t, job, PRAKAT_OUTCOME_FAILED, item->expires ?
                           "nothing to play: it expires before its first slot; change Expires or Broadcast-At" :
                           "nothing to play: no slot could be found; check slots and quiet_hours",
                           "ไม่มีเวลาออกอากาศ: ประกาศหมดอายุก่อนถึงเวลาออกอากาศ");
                tower_item_free(item);
                return 0;
        }
        if (tower_add_item(t, item) < 0) {
                tower_item_free(item);
                job_finish(t, job, PRAKAT_OUTCOME_RETRY, "out of memory", NULL);
                return 0;
        }
        if (n_no_tower) {
                PluginBuf b = { 0 };
                plugin_buf_printf(&b, "%s%sno tower in village%s ", item->plan_note ? item->plan_note : "",
                           item->plan_note ? "; " : "", n_no_tower > 1 ? "s" : "");
                villages_text(&b, no_tower, n_no_tower);
                free(item->plan_note);
                item->plan_note = buf_take(&b);
        }
        item->job = job;
        item->dirty = true;
        t->host->log(t->host, PRAKAT_LOG_INFO, a->id, "Planned for %zu towers%s%s.", item->n_records,
                     item->plan_note ? ": " : "", item->plan_note ? item->plan_note : "");
        tower_request_flush(t, 0);
        return 0;
}

static int tower_retract(void *instance, prakat_job *job, const prakat_announcement *target, const char *reason) {
        Tower *t = instance;
        TowerItem *item;
        int r;

        r = tower_start(t);
        if (r < 0 && !t->link) {
                job_finish(t, job, PRAKAT_OUTCOME_RETRY, "the tower channel could not start; see the log", NULL);
                return 0;
        }
        if (!tower_id_valid(target->id)) {
                job_finish(t, job, PRAKAT_OUTCOME_DONE, "nothing was sent to the towers (its id is not one they take)",
                           "ไม่ได้ส่งถึงหอกระจายข่าว");
                return 0;
        }
        item = tower_lookup(t, target->id);
        if (!item) {
                /* Never planned here (or forgotten): remember it as withdrawn, tell its villages anyway. */
                item = calloc(1, sizeof(TowerItem));
                if (!item || !(item->id = strdup(target->id)) ||
                    !(item->records = calloc((target->all_villages ? t->n_towers : target->n_villages) + 1,
                                             sizeof(TowerRecord))) ||
                    tower_add_item(t, item) < 0) {
                        tower_item_free(item);
                        job_finish(t, job, PRAKAT_OUTCOME_RETRY, "out of memory", NULL);
                        return 0;
                }
                item->tombstone = true;
                item->planned = t->host->now(t->host);
                item->finished_at = item->planned;
                for (unsigned v = 1, i = 0; v <= TOWER_VILLAGE_MAX && (target->all_villages || i < target->n_villages);
                     v++) {
                        if (!target->all_villages) {
                                if (target->villages[i] != v)
                                        continue;
                                i++;
                        }
                        if (t->villages[v].tower)
                                item->records[item->n_records++].village = v;
                }
        }
        if (item->retract_job && item->retract_job != job)
                t->host->log(t->host, PRAKAT_LOG_WARNING, item->id, "A second withdrawal while one is in flight.");
        item->retract_job = job;
        item->retract_started = t->host->now(t->host);
        free(item->note_sent);
        item->note_sent = NULL;
        item->note_at = 0;
        if (!item->retracted || !item->withdrawn_by)
                tower_withdraw(t, item, NULL, false, reason);
        t->check_delivery = true;
        tower_request_flush(t, 0);
        return 0;
}

static int tower_health(void *instance, char *buffer, size_t size) {
        Tower *t = instance;
        size_t online = 0, known = 0;

        if (!t->started) {
                snprintf(buffer, size, "ok: will connect to %s as %s", t->broker, t->client_id);
                return 0;
        }
        for (unsigned v = 1; v <= TOWER_VILLAGE_MAX; v++)
                if (t->villages[v].tower && t->villages[v].online >= 0) {
                        known++;
                        online += t->villages[v].online == 1;
                }
        if (!tower_link_connected(t->link)) {
                snprintf(buffer, size, "%s", tower_link_status(t->link));
                return -EIO;
        }
        snprintf(buffer, size, "%s; %zu of %zu towers online", tower_link_status(t->link), online, t->n_towers);
        (void) known;
        return 0;
}

static void tower_destroy(void *instance) {
        tower_free(instance);
}

/*
 * The header names both the type and the exported symbol "prakat_channel_plugin"; C does not
 * allow a variable to share its type's typedef name, so the symbol gets that name by asm label.
 */
__attribute__((visibility("default"))) const struct prakat_channel_plugin tower_plugin __asm__(
        PRAKAT_CHANNEL_SYMBOL) = {
        .abi_version = PRAKAT_CHANNEL_ABI_VERSION,
        .struct_size = sizeof(struct prakat_channel_plugin),
        .name = "tower",
        .version = TOWER_VERSION,
        .configure = tower_configure,
        .publish = tower_publish,
        .retract = tower_retract,
        .health = tower_health,
        .destroy = tower_destroy,
        .preview = tower_preview,
};
