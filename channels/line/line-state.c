/* SPDX-License-Identifier: MIT */
/* line-state.c: retry-key records and the hourly send window on disk (see line-state.h). */
#include "line-state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin-util.h"

#define KEY_MAGIC "prakat-line-key 1"
#define KEY_FILE_MAX 4096
#define WINDOW_FILE_MAX (1024 * 1024)

const char *line_endpoint_name(LineEndpoint e) {
        switch (e) {
        case LINE_ENDPOINT_BROADCAST:
                return "broadcast";
        case LINE_ENDPOINT_NARROWCAST:
                return "narrowcast";
        default:
                return "-";
        }
}

int line_key_init(LineKey *ret, prakat_usec_t now) {
        *ret = (LineKey) { .created = now };
        return plugin_uuid4(ret->key);
}

/* Only what an id or a UUID is made of: a value from the network never changes the file's lines. */
static bool token_is_plain(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n == 0 || n >= max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", s[i]))
                        return false;
        return true;
}

static int parse_usec(const char *v, prakat_usec_t *ret) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end)
                return -EBADMSG;
        *ret = x;
        return 0;
}

static int key_apply(LineKey *k, const char *name, const char *v) {
        prakat_usec_t u;

        if (!strcmp(name, "key")) {
                if (strlen(v) != 36 || !token_is_plain(v, sizeof k->key))
                        return -EBADMSG;
                memcpy(k->key, v, 37);
        } else if (!strcmp(name, "endpoint")) {
                k->endpoint = !strcmp(v, "broadcast") ? LINE_ENDPOINT_BROADCAST :
                              !strcmp(v, "narrowcast") ? LINE_ENDPOINT_NARROWCAST : LINE_ENDPOINT_NONE;
        } else if (!strcmp(name, "request_id")) {
                if (strcmp(v, "-") != 0 && !token_is_plain(v, sizeof k->request_id))
                        return -EBADMSG;
                snprintf(k->request_id, sizeof k->request_id, "%s", strcmp(v, "-") ? v : "");
        } else if (!strcmp(name, "phase")) {
                snprintf(k->phase, sizeof k->phase, "%s", strcmp(v, "-") ? v : "");
        } else if (!strcmp(name, "detail")) {
                snprintf(k->detail, sizeof k->detail, "%s", v);
        } else if (!strcmp(name, "in_doubt") || !strcmp(name, "pending")) {
                if (strcmp(v, "0") && strcmp(v, "1"))
                        return -EBADMSG;
                *(!strcmp(name, "in_doubt") ? &k->in_doubt : &k->pending) = v[0] == '1';
        } else {
                if (parse_usec(v, &u) < 0)
                        return -EBADMSG;
                if (!strcmp(name, "created"))
                        k->created = u;
                else if (!strcmp(name, "first_sent"))
                        k->first_sent = u;
                else if (!strcmp(name, "last_sent"))
                        k->last_sent = u;
                else if (!strcmp(name, "attempts"))
                        k->attempts = (unsigned) u;
                else if (!strcmp(name, "accepted"))
                        k->accepted = u;
                /* an unknown number is from a newer version: ignored */
        }
        return 0;
}

int line_key_load(const char *path, LineKey *ret) {
        char *data = NULL;
        LineKey k = {};
        int r = plugin_read_small_file(path, KEY_FILE_MAX, &data, NULL);

        if (r < 0)
                return r;
        char *save = NULL, *line = strtok_r(data, "\n", &save);
        if (!line || strcmp(line, KEY_MAGIC) != 0) {
                free(data);
                return -EBADMSG;
        }
        while ((line = strtok_r(NULL, "\n", &save))) {
                char *space = strchr(line, ' ');
                if (!space) {
                        r = -EBADMSG;
                        break;
                }
                *space = 0;
                if ((r = key_apply(&k, line, space + 1)) < 0)
                        break;
        }
        free(data);
        if (r < 0 || !k.key[0])
                return -EBADMSG;
        /* A request that was on its way when prakatd stopped may have arrived. */
        if (k.pending) {
                k.in_doubt = true;
                k.pending = false;
        }
        *ret = k;
        return 0;
}

/* A single line of text, for the detail field. */
static void one_line(char *out, size_t size, const char *s) {
        snprintf(out, size, "%s", s);
        for (char *p = out; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
}

int line_key_save(const char *path, const LineKey *k) {
        char detail[sizeof k->detail], buf[KEY_FILE_MAX];

        one_line(detail, sizeof detail, k->detail);
        int n = snprintf(buf, sizeof buf,
                         KEY_MAGIC "\nkey %s\nendpoint %s\ncreated %" PRIu64 "\nfirst_sent %" PRIu64
                                   "\nlast_sent %" PRIu64 "\nattempts %u\nin_doubt %d\npending %d\n"
                                   "request_id %s\naccepted %" PRIu64 "\nphase %s\ndetail %s\n",
                         k->key, line_endpoint_name(k->endpoint), k->created, k->first_sent, k->last_sent,
                         k->attempts, k->in_doubt, k->pending, k->request_id[0] ? k->request_id : "-", k->accepted,
                         k->phase[0] ? k->phase : "-", detail);
        if (n < 0 || (size_t) n >= sizeof buf)
                return -ENOBUFS;
        /*
         * Only the record written right before a request leaves (pending) must be on the disk first:
         * it is what proves the key.  A later record (the answer) that a power cut loses falls back to
         * that one, which says "in doubt": the same key is sent again and LINE answers 409 if it had
         * accepted.  (A process crash loses nothing either way: the page cache survives it.)
         */
        return plugin_write_file(path, buf, (size_t) n, k->pending);
}

/* ---- the hourly window ---- */

int line_window_init(LineWindow *w, size_t max) {
        *w = (LineWindow) { .max = max ? max : 1 };
        w->times = calloc(w->max, sizeof(prakat_usec_t));
        return w->times ? 0 : -ENOMEM;
}

void line_window_done(LineWindow *w) {
        free(w->times);
        *w = (LineWindow) {};
}

void line_window_expire(LineWindow *w, prakat_usec_t now, prakat_usec_t window) {
        size_t drop = 0;
        while (drop < w->n && w->times[drop] + window <= now)
                drop++;
        memmove(w->times, w->times + drop, (w->n - drop) * sizeof(prakat_usec_t));
        w->n -= drop;
}

/* Appends without writing; the oldest entry gives way when the window is full. */
static void window_push(LineWindow *w, prakat_usec_t when) {
        if (w->n == w->max) {
                memmove(w->times, w->times + 1, (w->n - 1) * sizeof(prakat_usec_t));
                w->n--;
        }
        w->times[w->n++] = when;
}

void line_window_load(LineWindow *w, const char *path, prakat_usec_t now, prakat_usec_t window) {
        char *data = NULL;

        w->n = 0;
        if (plugin_read_small_file(path, WINDOW_FILE_MAX, &data, NULL) < 0)
                return;
        size_t size = strlen(data);
        /* A last line without its newline was cut off by a crash: not a time; the file is rewritten at
         * the next send. */
        w->file_lines = 0;
        if (size > 0 && data[size - 1] != '\n') {
                char *nl = strrchr(data, '\n');
                *(nl ? nl + 1 : data) = 0;
                w->file_lines = SIZE_MAX / 2;
        }
        char *save = NULL;
        for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                w->file_lines++;
                prakat_usec_t t;
                /* a time in the future (a clock set back) still counts, as if it were now */
                if (parse_usec(line, &t) == 0 && t + window > now)
                        window_push(w, t < now ? t : now);
        }
        free(data);
}

prakat_usec_t line_window_wait(const LineWindow *w, prakat_usec_t now, prakat_usec_t window) {
        if (w->n < w->max)
                return 0;
        prakat_usec_t frees = w->times[w->n - w->max] + window;
        return frees > now ? frees - now : 0;
}

/*
 * Not synced: after a crash the window may miss the last sends, and LINE's own 429 covers that.  The
 * send is appended; the file is rewritten with only the window once most of its lines have expired,
 * so a burst costs one short write per send, not the whole window each time.
 */
int line_window_add(LineWindow *w, const char *path, prakat_usec_t when) {
        char line[24];
        int n, r = 0;

        window_push(w, when);
        if (w->file_lines < 2 * w->n + 64 && (w->file_lines + 1) * 21 < WINDOW_FILE_MAX / 2) {
                int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0) {
                        n = snprintf(line, sizeof line, "%" PRIu64 "\n", when);
                        r = write(fd, line, (size_t) n) == n ? 0 : -EIO;
                        if (close(fd) < 0 && r == 0)
                                r = -errno;
                        if (r == 0) {
                                w->file_lines++;
                                return 0;
                        }
                }
        }
        size_t size = w->n * 24 + 1, o = 0;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < w->n; i++)
                o += (size_t) snprintf(buf + o, size - o, "%" PRIu64 "\n", w->times[i]);
        r = plugin_write_file(path, buf, o, false);
        free(buf);
        w->file_lines = r < 0 ? SIZE_MAX / 2 : w->n;
        return r;
}
