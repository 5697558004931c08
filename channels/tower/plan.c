/* SPDX-License-Identifier: MIT */
/*
 * plan.c: the config values of [channel tower] and the play instants of an announcement.
 *
 * Pure: nothing here reads the clock, the disk or the network; the unit tests drive it directly.
 * Local time is the process's time zone: prakatd sets TZ to the configured `timezone` (and the
 * plugin makes sure of it in configure()), so localtime_r() and mktime() give Asia/Bangkok.  No
 * fixed +07:00 offset is assumed anywhere, although Asia/Bangkok has had no daylight saving since
 * 1920: a slot is a wall-clock time of a local day, turned into an instant by mktime().
 */
#include "tower-channel.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A Broadcast-At time that passed less than this long ago is still sent: the tower plays it late. */
#define TOWER_PAST_GRACE (60 * TOWER_SEC)
/* Slots are looked for this many days ahead (a week covers every daily slot). */
#define TOWER_SLOT_SEARCH_DAYS 8

static const char *skip_blanks(const char *s) {
        while (*s == ' ' || *s == '\t')
                s++;
        return s;
}

static int read_digits(const char **p, unsigned max_digits, unsigned *ret) {
        unsigned v = 0, n = 0;

        while (isdigit((unsigned char) **p) && n < max_digits) {
                v = v * 10 + (unsigned) (**p - '0');
                (*p)++;
                n++;
        }
        if (n == 0)
                return -EINVAL;
        *ret = v;
        return (int) n;
}

/* Reads a time of day at *p and moves past it. */
static int read_time_of_day(const char **p, unsigned *ret) {
        unsigned h, m, s = 0;

        if (read_digits(p, 2, &h) < 0 || (**p != ':' && **p != '.'))
                return -EINVAL;
        (*p)++;
        if (read_digits(p, 2, &m) != 2)
                return -EINVAL;
        if (**p == ':') {
                (*p)++;
                if (read_digits(p, 2, &s) != 2)
                        return -EINVAL;
        }
        if (h > 23 || m > 59 || s > 59)
                return -EINVAL;
        *ret = h * 3600 + m * 60 + s;
        return 0;
}

int tower_parse_time_of_day(const char *s, unsigned *ret) {
        const char *p = skip_blanks(s);
        unsigned v;

        if (read_time_of_day(&p, &v) < 0 || *skip_blanks(p) != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int compare_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *) a, y = *(const unsigned *) b;
        return x < y ? -1 : x > y;
}

int tower_parse_slots(const char *s, TowerPlanConfig *ret) {
        TowerPlanConfig c = { .n_slots = 0 };
        const char *p = s;

        for (;;) {
                unsigned v;

                p = skip_blanks(p);
                while (*p == ',')
                        p = skip_blanks(p + 1);
                if (*p == 0)
                        break;
                if (read_time_of_day(&p, &v) < 0)
                        return -EINVAL;
                if (*p != 0 && *p != ',' && *p != ' ' && *p != '\t')
                        return -EINVAL;
                if (c.n_slots >= TOWER_SLOTS_MAX)
                        return -E2BIG;
                c.slots[c.n_slots++] = v;
        }
        if (c.n_slots == 0)
                return -EINVAL;
        qsort(c.slots, c.n_slots, sizeof(unsigned), compare_unsigned);
        size_t n = 0;
        for (size_t i = 0; i < c.n_slots; i++)
                if (n == 0 || c.slots[n - 1] != c.slots[i])
                        c.slots[n++] = c.slots[i];
        c.n_slots = n;
        *ret = c;
        return 0;
}

int tower_parse_quiet(const char *s, TowerQuiet *ret) {
        const char *p = skip_blanks(s);
        unsigned start, end;

        if (!strcasecmp(p, "none") || !strcasecmp(p, "off") || !strcasecmp(p, "no")) {
                *ret = (TowerQuiet) { .none = true };
                return 0;
        }
        if (read_time_of_day(&p, &start) < 0)
                return -EINVAL;
        p = skip_blanks(p);
        if (*p != '-')
                return -EINVAL;
        p = skip_blanks(p + 1);
        if (read_time_of_day(&p, &end) < 0 || *skip_blanks(p) != 0 || start == end)
                return -EINVAL;
        *ret = (TowerQuiet) { .start = start, .end = end };
        return 0;
}

int tower_parse_villages(const char *s, bool seen[TOWER_VILLAGE_MAX + 1]) {
        const char *p = s;
        int n = 0;

        for (;;) {
                unsigned lo, hi;

                p = skip_blanks(p);
                while (*p == ',')
                        p = skip_blanks(p + 1);
                if (*p == 0)
                        break;
                if (read_digits(&p, 4, &lo) < 0)
                        return -EINVAL;
                hi = lo;
                p = skip_blanks(p);
                if (*p == '-') {
                        p = skip_blanks(p + 1);
                        if (read_digits(&p, 4, &hi) < 0)
                                return -EINVAL;
                }
                p = skip_blanks(p);
                if ((*p != 0 && *p != ',') || lo < 1 || hi > TOWER_VILLAGE_MAX || lo > hi)
                        return -EINVAL;
                for (unsigned v = lo; v <= hi; v++)
                        if (!seen[v]) {
                                seen[v] = true;
                                n++;
                        }
        }
        return n > 0 ? n : -EINVAL;
}


int tower_parse_broker(const char *url, char **ret_host, unsigned *ret_port, bool *ret_tls) {
        const char *rest, *host_start, *host_end, *colon = NULL;
        unsigned long port;
        bool tls;

        if (!strncasecmp(url, "mqtt://", 7)) {
                tls = false;
                rest = url + 7;
        } else if (!strncasecmp(url, "mqtts://", 8)) {
                tls = true;
                rest = url + 8;
        } else
                return -EPROTO;
        if (*rest == '[') {
                host_start = rest + 1;
                host_end = strchr(host_start, ']');
                if (!host_end || host_end == host_start)
                        return -EINVAL;
                if (host_end[1] == ':')
                        colon = host_end + 1;
                else if (host_end[1] != 0)
                        return -EINVAL;
        } else {
                host_start = rest;
                colon = strchr(rest, ':');
                host_end = colon ? colon : rest + strlen(rest);
        }
        if (host_end == host_start || (size_t) (host_end - host_start) > 253)
                return -EINVAL;
        for (const char *c = host_start; c < host_end; c++)
                if (!isalnum((unsigned char) *c) && *c != '.' && *c != '-' && *c != ':' && *c != '_')
                        return -EINVAL;
        port = tls ? 8883 : 1883;
        if (colon) {
                char *end;
                errno = 0;
                port = strtoul(colon + 1, &end, 10);
                if (errno || end == colon + 1 || *end != 0 || port == 0 || port > 65535)
                        return -EINVAL;
        }
        *ret_host = strndup(host_start, (size_t) (host_end - host_start));
        if (!*ret_host)
                return -ENOMEM;
        *ret_port = (unsigned) port;
        *ret_tls = tls;
        return 0;
}

bool tower_topic_prefix_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > TOWER_TOPIC_PREFIX_MAX || s[0] == '/' || s[n - 1] == '/' || strstr(s, "//"))
                return false;
        for (const char *c = s; *c; c++)
                if (*c == '+' || *c == '#' || (unsigned char) *c < ' ' || *c == 0x7f)
                        return false;
        return true;
}

bool tower_id_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > TOWER_ID_MAX || id[0] == '.' || strstr(id, ".."))
                return false;
        for (const char *s = id; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '-' && *s != '_' && *s != '.')
                        return false;
        return true;
}

bool tower_quiet_contains(const TowerQuiet *q, unsigned second_of_day) {
        if (!q || q->none)
                return false;
        if (q->start < q->end)
                return second_of_day >= q->start && second_of_day < q->end;
        return second_of_day >= q->start || second_of_day < q->end; /* across midnight */
}

unsigned tower_local_second_of_day(prakat_usec_t t) {
        time_t s = (time_t) (t / TOWER_SEC);
        struct tm tm;

        if (!localtime_r(&s, &tm))
                return 0;
        return (unsigned) (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
}

/* The instant of `second_of_day` on the local day `days` after the one of `t`. */
static prakat_usec_t local_instant(prakat_usec_t t, int days, unsigned second_of_day) {
        time_t s = (time_t) (t / TOWER_SEC), r;
        struct tm tm;

        if (!localtime_r(&s, &tm))
                return 0;
        tm.tm_mday += days;
        tm.tm_hour = (int) (second_of_day / 3600);
        tm.tm_min = (int) (second_of_day / 60 % 60);
        tm.tm_sec = (int) (second_of_day % 60);
        tm.tm_isdst = -1;
        r = mktime(&tm);
        return r < 0 ? 0 : (prakat_usec_t) r * TOWER_SEC;
}

prakat_usec_t tower_next_slot(const TowerPlanConfig *c, const TowerQuiet *quiet, prakat_usec_t after, bool inclusive) {
        for (int day = -1; day <= TOWER_SLOT_SEARCH_DAYS; day++)
                for (size_t i = 0; i < c->n_slots; i++) {
                        prakat_usec_t at;

                        if (tower_quiet_contains(quiet, c->slots[i]))
                                continue;
                        at = local_instant(after, day, c->slots[i]);
                        if (at > after || (inclusive && at == after))
                                return at;
                }
        return 0;
}

/* The next occurrence of one slot time (a slot name), or the next allowed slot if that one is quiet. */
static prakat_usec_t next_named_slot(const TowerPlanConfig *c, const TowerQuiet *quiet, unsigned second_of_day,
                                     prakat_usec_t now, bool emergency) {
        for (int day = 0; day <= 1; day++) {
                prakat_usec_t at = local_instant(now, day, second_of_day);
                if (at > now)
                        return emergency || !tower_quiet_contains(quiet, second_of_day) ? at :
                               tower_next_slot(c, quiet, at, false);
        }
        return 0;
}

static int compare_usec(const void *a, const void *b) {
        prakat_usec_t x = *(const prakat_usec_t *) a, y = *(const prakat_usec_t *) b;
        return x < y ? -1 : x > y;
}

static void add_instant(prakat_usec_t *out, size_t *n, size_t max, prakat_usec_t at, unsigned *flags) {
        if (at == 0)
                return;
        at -= at % TOWER_SEC; /* the towers read whole seconds */
        for (size_t i = 0; i < *n; i++)
                if (out[i] == at)
                        return;
        if (*n >= max) {
                *flags |= TOWER_PLAN_TOO_MANY;
                return;
        }
        out[(*n)++] = at;
}

size_t tower_plan_instants(const TowerPlanConfig *c, const TowerQuiet *quiet, prakat_priority priority,
                           const char *const *broadcast_at, size_t n_broadcast_at, prakat_usec_t now,
                           prakat_usec_t expires, prakat_usec_t out[TOWER_PLAY_AT_MAX], unsigned *flags) {
        /* Room for everything asked for, then cut to the agent's limit once sorted. */
        size_t cap = n_broadcast_at + 2, n = 0, kept = 0;
        prakat_usec_t *all = calloc(cap, sizeof(prakat_usec_t));
        bool emergency = priority == PRAKAT_PRIORITY_EMERGENCY;

        if (!all)
                return 0;
        if (emergency)
                add_instant(all, &n, cap, now, flags);
        for (size_t i = 0; i < n_broadcast_at; i++) {
                const char *b = broadcast_at[i];
                prakat_usec_t at;

                if (!strcasecmp(b, "morning") || !strcasecmp(b, "evening")) {
                        unsigned second = !strcasecmp(b, "morning") ? c->slots[0] : c->slots[c->n_slots - 1];
                        if (!emergency && tower_quiet_contains(quiet, second))
                                *flags |= TOWER_PLAN_MOVED_QUIET;
                        add_instant(all, &n, cap, next_named_slot(c, quiet, second, now, emergency), flags);
                        continue;
                }
                if (tower_parse_utc(b, &at) < 0) {
                        *flags |= TOWER_PLAN_BAD_SLOT;
                        continue;
                }
                if (at + TOWER_PAST_GRACE < now) {
                        *flags |= TOWER_PLAN_DROPPED_PAST;
                        continue;
                }
                if (!emergency && tower_quiet_contains(quiet, tower_local_second_of_day(at))) {
                        *flags |= TOWER_PLAN_MOVED_QUIET;
                        at = tower_next_slot(c, quiet, at, true);
                }
                add_instant(all, &n, cap, at, flags);
        }
        if (n == 0)
                add_instant(all, &n, cap, tower_next_slot(c, quiet, now, false), flags);
        qsort(all, n, sizeof(prakat_usec_t), compare_usec);
        for (size_t i = 0; i < n; i++) {
                if (expires && all[i] >= expires) {
                        *flags |= TOWER_PLAN_DROPPED_EXPIRY;
                        continue;
                }
                if (kept >= TOWER_PLAY_AT_MAX) {
                        *flags |= TOWER_PLAN_TOO_MANY;
                        break;
                }
                out[kept++] = all[i];
        }
        free(all);
        return kept;
}

const char *tower_format_utc(prakat_usec_t t, char buffer[static 21]) {
        time_t s = (time_t) (t / TOWER_SEC);
        struct tm tm;

        if (!gmtime_r(&s, &tm) || strftime(buffer, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
                snprintf(buffer, 21, "1970-01-01T00:00:00Z");
        return buffer;
}

int tower_parse_utc(const char *s, prakat_usec_t *ret) {
        struct tm tm = { 0 };
        const char *end;
        time_t t;

        if (!s || strlen(s) != 20)
                return -EINVAL;
        end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end != 0)
                return -EINVAL;
        struct tm want = tm, back;
        t = timegm(&tm);
        /* strptime takes 31 February; timegm would quietly make it 3 March: refuse what does not exist. */
        if (t <= 0 || !gmtime_r(&t, &back) || back.tm_year != want.tm_year || back.tm_mon != want.tm_mon ||
            back.tm_mday != want.tm_mday || back.tm_hour != want.tm_hour || back.tm_min != want.tm_min ||
            back.tm_sec != want.tm_sec)
                return -EINVAL;
        *ret = (prakat_usec_t) t * TOWER_SEC;
        return 0;
}
