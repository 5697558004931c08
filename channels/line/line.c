/* SPDX-License-Identifier: MIT */
/*
 * line: the office's LINE Official Account, through the LINE Messaging API.
 *
 * What goes out.  An announcement for all villages is a broadcast (mode = narrowcast sends it
 * as a narrowcast to all friends instead).  When the config maps villages to audience groups
 * (audience.N = ID) and an announcement names some villages, each of which has an audience, it
 * is a narrowcast to those audiences (operator "or"), and its progress is followed until LINE
 * says succeeded or failed.  When a named village has no audience (or more than ten audiences
 * would be needed), the announcement goes to every friend and a warning says why: reaching more
 * people than asked is better than a village not hearing its announcement at all.  The messages
 * are built in line-message.c; a Cancel sends a short correction (LINE cannot recall).
 *
 * Exactly once.  Every send carries an X-Line-Retry-Key that is stored durably before the first
 * request and reused on every retry and after a crash (line-state.h): LINE answers 409 to a key
 * it already accepted, which counts as success.  LINE remembers a key for 24 hours from the first
 * request, so a send whose fate is unknown (timeout, 5xx, dropped connection) is retried with
 * the same key only within `unconfirmed_after` (default 24h) of that; later it ends
 * "unconfirmed" and is never sent again blind.  A send that LINE certainly refused (429, 401,
 * quota) may safely get a new key once the old one has expired.
 *
 * Limits.  Before each send the month's quota and consumption are read; when nothing is left the
 * send is held (not attempted) with a clear message and tried again after `health_interval` or at
 * the 1st of the next month, whichever comes first.  A broadcast costs one message per friend;
 * the number of friends is not read (the reference documents no call for it), so the rule is
 * "something must be left", and LINE's own 429 "monthly limit" answer is held the same way.
 * Broadcast and narrowcast requests, retries included, stay within `rate_per_hour` in any
 * sliding hour (the window survives restarts in state_dir/sends).  At most `max_in_flight` sends
 * talk to LINE at a time; the others wait their turn.
 *
 * Health.  At start and every `health_interval`: GET /v2/bot/info (is the token valid?), then the
 * quota and the consumption.  health() reports the last result without any I/O.  The token is
 * read again from its file before each check and after a 401, so replacing the file with a
 * reissued token needs no restart.  The token is only ever put in the Authorization header.
 *
 * Nothing blocks: all network I/O is host->http_request(), all waiting is host timers; the small
 * state files are written with fsync, as the core does for its queue.
 */
#include "prakat-channel.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include "line-message.h"
#include "line-state.h"
#include "line-text.h"
#include "plugin-util.h"

#define LINE_VERSION "1.0"
#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MIN (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MIN)

#define DEFAULT_API_BASE "https://api.line.me"
#define DEFAULT_RATE_PER_HOUR 60
/* A plan without a monthly limit is not asked about its quota again before each send for this long. */
#define UNLIMITED_FRESH (60 * USEC_PER_SEC)
#define DEFAULT_MAX_IN_FLIGHT 2
#define DEFAULT_TIMEOUT (30ULL * USEC_PER_SEC)
#define DEFAULT_HEALTH_INTERVAL (10ULL * USEC_PER_MIN)
#define DEFAULT_UNCONFIRMED_AFTER (24ULL * USEC_PER_HOUR)
#define MAX_AUDIENCES_PER_SEND 10 /* audience objects LINE takes in one narrowcast */
#define MAX_RESPONSE (256 * 1024)
#define KEY_FILES_KEPT (60ULL * 24 * USEC_PER_HOUR)

/*
 * Following a narrowcast: poll at 1, 3 and 7 s; if LINE is still delivering, the job is let go
 * ("deferred", with the phase in its note) and comes back later, at growing intervals.  A job is
 * held only briefly because prakatd, when asked to stop, waits for the jobs in flight (10 s) and
 * the plugin has no way to hear that it is stopping.
 */
#define FOLLOW_FIRST_POLL (1ULL * USEC_PER_SEC)
#define FOLLOW_HOLD (8ULL * USEC_PER_SEC)
#define FOLLOW_RECHECK_MIN (15ULL * USEC_PER_SEC)
#define FOLLOW_RECHECK_MAX (10ULL * USEC_PER_MIN)
#define PROGRESS_LAG (60ULL * USEC_PER_SEC) /* a 404 this soon after acceptance is not final */

#define KNOWN_KEYS                                                                                                     \
        "token_file, token_credential, api_base, mode, style, rate_per_hour, audience.N, max_in_flight, timeout, "    \
        "health_interval, unconfirmed_after"

#define TOKEN_INVALID_EN                                                                                               \
        "the LINE channel access token is invalid or expired; issue a new one (LINE Developers Console, "             \
        "Messaging API tab) and write it into the token file; prakatd reads it again by itself"
#define TOKEN_INVALID_TH                                                                                               \
        "โทเค็นของช่อง LINE ใช้ไม่ได้หรือหมดอายุ ให้ออกโทเค็นใหม่ใน LINE Developers Console แล้วบันทึกลงไฟล์โทเค็น "          \
        "ระบบจะอ่านใหม่เอง"

/* ------------------------------------------------------------------------------------------------ */
/* Types */

typedef struct Audience {
        unsigned village;
        long long id;
} Audience;

typedef enum HealthState {
        HEALTH_CHECKING,
        HEALTH_OK,
        HEALTH_TOKEN,
        HEALTH_QUOTA_USED,
        HEALTH_UNREACHABLE,
} HealthState;

typedef enum SendStep {
        STEP_WAITING, /* for a free place among max_in_flight */
        STEP_QUOTA,
        STEP_CONSUMPTION,
        STEP_POST,
        STEP_FOLLOW,
} SendStep;

typedef struct Line Line;

/* One publish() or retract() in progress. */
typedef struct Send {
        Line *line;
        prakat_job *job;
        char *id; /* the announcement sent, or the one withdrawn */
        bool retract;
        char *key_path;
        LineKey key;
        LineEndpoint endpoint;
        char *body; /* the request, identical on every attempt of this call */
        char *target_text; /* "all friends", "villages 1, 3 (2 audiences)" */
        LineNotes notes;
        SendStep step;
        bool has_place;
        long long quota; /* -1: no limit */
        prakat_http_call *call;
        prakat_timer *timer;
        prakat_usec_t follow_started;
        prakat_usec_t poll_delay;
        struct Send *next, *prev;       /* every send of the instance */
        struct Send *wait_next;         /* the queue of sends waiting for a place */
} Send;

struct Line {
        const prakat_host *host;

        char *token_file;
        char *token_credential;
        char *token;
        char *api_base;
        LineEndpoint everyone; /* how "all friends" is sent: broadcast, or narrowcast (mode) */
        LineStyle style;
        unsigned rate_per_hour;
        unsigned max_in_flight;
        prakat_usec_t timeout;
        prakat_usec_t health_interval;
        prakat_usec_t unconfirmed_after;
        Audience *audiences;
        size_t n_audiences;

        char *keys_dir;
        char *window_path;
        LineWindow window;
        prakat_usec_t throttled_until; /* after LINE's own 429 rate limit */

        Send *sends;
        unsigned active;
        Send *wait_head, *wait_tail;

        HealthState health;
        char health_text[256];
        prakat_timer *health_timer;
        prakat_http_call *health_call;
        int health_step;
        long long quota_value; /* -1: no limit */
        long long quota_usage;
        prakat_usec_t unlimited_at; /* when LINE last said the plan has no monthly limit; 0: not so */
};

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers */

/* 1234567 → "1,234,567" */
static const char *format_count(long long v, char buf[static 32]) {
        char digits[32];
        int n = snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v), o = 0;

        if (v < 0)
                buf[o++] = '-';
        for (int i = 0; i < n; i++) {
                if (i > 0 && (n - i) % 3 == 0)
                        buf[o++] = ',';
                buf[o++] = digits[i];
        }
        buf[o] = 0;
        return buf;
}

/* "45s", "12 min", "3 h" */
static const char *format_span(prakat_usec_t usec, char buf[static 32]) {
        unsigned long long s = (usec + USEC_PER_SEC - 1) / USEC_PER_SEC;
        if (s < 120)
                snprintf(buf, 32, "%llus", s);
        else if (s < 2 * 3600)
                snprintf(buf, 32, "%llu min", (s + 59) / 60);
        else if (s < 2 * 86400)
                snprintf(buf, 32, "%llu h", (s + 1799) / 3600);
        else
                snprintf(buf, 32, "%llu days", (s + 43199) / 86400);
        return buf;
}

static int parse_unsigned(const char *s, unsigned long long max, unsigned long long *ret) {
        char *end;
        if (!s[0] || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/*
 * When the quota renews: 00:00 local time on the 1st of next month.  The zone's offset comes from
 * the host's own formatting, so the plugin never touches TZ (which is the whole process's).
 */
static prakat_usec_t until_next_month(const prakat_host *host, prakat_usec_t now) {
        char iso[64];
        int y, mo, d, h, mi, sec, oh = 0, om = 0;
        char sign = '+';

        if (host->format_date(host, now, PRAKAT_DATE_ISO_LOCAL, iso, sizeof iso) < 0 ||
            sscanf(iso, "%d-%d-%dT%d:%d:%d%c%d:%d", &y, &mo, &d, &h, &mi, &sec, &sign, &oh, &om) < 6)
                return 24 * USEC_PER_HOUR;
        struct tm tm = { .tm_year = y - 1900 + (mo == 12), .tm_mon = mo == 12 ? 0 : mo, .tm_mday = 1 };
        long long offset = (oh * 3600LL + om * 60LL) * (sign == '-' ? -1 : 1);
        long long next = (long long) timegm(&tm) - offset;
        long long left = next - (long long) (now / USEC_PER_SEC);
        return left > 0 ? (prakat_usec_t) left * USEC_PER_SEC : USEC_PER_MIN;
}

/* ------------------------------------------------------------------------------------------------ */
/* Talking to LINE */

typedef enum AnswerKind {
        ANSWER_ACCEPTED,    /* 2xx */
        ANSWER_DUPLICATE,   /* 409: the retry key was accepted before */
        ANSWER_TOKEN,       /* 401 */
        ANSWER_QUOTA,       /* 429 "You have reached your monthly limit." */
        ANSWER_THROTTLED,   /* 429 otherwise */
        ANSWER_REFUSED,     /* any other 4xx: permanent */
        ANSWER_IN_DOUBT,    /* 5xx, timeout, dropped connection: may have been carried out */
        ANSWER_NOT_REACHED, /* no connection was made: certainly not carried out */
} AnswerKind;

/* LINE's {"message","details":[{"message","property"}]} as one line, or a word on what came instead. */
static void describe_body(const prakat_http_response *resp, char *out, size_t size) {
        json_error_t error;
        json_t *root = resp->body_size > 0 ? json_loadb(resp->body, resp->body_size, 0, &error) : NULL;
        char *text = NULL;
        size_t o = 0;

        out[0] = 0;
        if (root && json_is_object(root)) {
                const char *message = json_string_value(json_object_get(root, "message"));
                o += (size_t) snprintf(out + o, size - o, "%s", message ? message : "");
                json_t *details = json_object_get(root, "details"), *d;
                size_t i;
                json_array_foreach(details, i, d) {
                        const char *m = json_string_value(json_object_get(d, "message"));
                        const char *p = json_string_value(json_object_get(d, "property"));
                        if (o >= size - 1 || i >= 5)
                                break;
                        o += (size_t) snprintf(out + o, size - o, "%s%s%s%s", i == 0 ? ": " : "; ", p ? p : "",
                                               p && m ? " " : "", m ? m : "");
                }
        } else if (resp->body_size > 0) {
                const char *b = resp->body;
                while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
                        b++;
                if (*b == '<')
                        snprintf(out, size, "an HTML page instead of LINE's answer (a proxy or gateway error)");
                else
                        snprintf(out, size, "%.120s", b);
        }
        json_decref(root);
        /* Whatever the network sent, the note is one clean line. */
        text = line_text_clean(out);
        if (text) {
                for (char *p = text; *p; p++)
                        if (*p == '\n' || *p == '\t')
                                *p = ' ';
                size_t keep = strlen(text) < size ? strlen(text) : size - 1;
                while (keep > 0 && ((unsigned char) text[keep] & 0xC0) == 0x80)
                        keep--;
                memcpy(out, text, keep);
                out[keep] = 0;
                free(text);
        }
}

static AnswerKind answer_classify(const Line *l, const prakat_http_response *resp, char *text, size_t size) {
        char body[512], span[32];

        if (resp->error != 0) {
                switch (resp->error) {
                case -ETIMEDOUT:
                        snprintf(text, size, "no answer from LINE within %s", format_span(l->timeout, span));
                        return ANSWER_IN_DOUBT;
                case -ECONNRESET:
                        snprintf(text, size, "the connection to LINE was closed before its answer came");
                        return ANSWER_IN_DOUBT;
                case -ECONNREFUSED:
                case -EHOSTUNREACH:
                        snprintf(text, size, "cannot connect to LINE at %s (%s)", l->api_base,
                                 resp->error_text ? resp->error_text : strerror(-resp->error));
                        return ANSWER_NOT_REACHED;
                case -EPROTO:
                        snprintf(text, size, "the TLS connection to %s failed (%s)", l->api_base,
                                 resp->error_text ? resp->error_text : "certificate or handshake");
                        return ANSWER_NOT_REACHED;
                default:
                        snprintf(text, size, "the request to LINE failed (%s)",
                                 resp->error_text ? resp->error_text : strerror(-resp->error));
                        return ANSWER_IN_DOUBT;
                }
        }
        describe_body(resp, body, sizeof body);
        if (resp->status >= 200 && resp->status < 300) {
                snprintf(text, size, "accepted");
                return ANSWER_ACCEPTED;
        }
        snprintf(text, size, "LINE answered %ld%s%s", resp->status, body[0] ? ": " : "", body);
        if (resp->status == 409)
                return ANSWER_DUPLICATE;
        if (resp->status == 401)
                return ANSWER_TOKEN;
        if (resp->status == 429)
                return strstr(body, "monthly limit") ? ANSWER_QUOTA : ANSWER_THROTTLED;
        if (resp->status >= 400 && resp->status < 500)
                return ANSWER_REFUSED;
        return ANSWER_IN_DOUBT; /* 5xx, and anything odd such as a redirect */
}

static int line_request(Line *l, const char *method, const char *path, const char *body, const char *retry_key,
                        prakat_http_done_fn done, void *userdata, prakat_http_call **ret_call) {
        char *url = NULL, *auth = NULL;
        prakat_http_header headers[3];
        size_t n = 0;
        int r;

        if (asprintf(&url, "%s%s", l->api_base, path) < 0)
                return -ENOMEM;
        if (asprintf(&auth, "Bearer %s", l->token) < 0) {
                free(url);
                return -ENOMEM;
        }
        headers[n++] = (prakat_http_header) { "Authorization", auth };
        if (body)
                headers[n++] = (prakat_http_header) { "Content-Type", "application/json" };
        if (retry_key)
                headers[n++] = (prakat_http_header) { "X-Line-Retry-Key", retry_key };
        prakat_http_request req = {
                .method = method,
                .url = url,
                .headers = headers,
                .n_headers = n,
                .body = body,
                .body_size = body ? strlen(body) : 0,
                .timeout_ms = (unsigned) (l->timeout / 1000),
                .max_response = MAX_RESPONSE,
        };
        r = l->host->http_request(l->host, &req, done, userdata, ret_call);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        free(url);
        return r;
}

/* Reads the token again; true when it changed.  A file that went bad keeps the old token. */
static bool line_reload_token(Line *l) {
        char error[512], *token = NULL;

        if (plugin_read_secret(l->host, l->token_file, l->token_credential, &token, error, sizeof error) < 0) {
                l->host->log(l->host, PRAKAT_LOG_WARNING, NULL,
                             "Cannot read the LINE token again: %s; keeping the one read before, ignoring", error);
                return false;
        }
        if (strcmp(token, l->token) == 0) {
                plugin_free_secret(token);
                return false;
        }
        plugin_free_secret(l->token);
        l->token = token;
        l->host->log(l->host, PRAKAT_LOG_NOTICE, NULL, "The LINE token file has changed; using the new token");
        return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Health */

static void health_arm(Line *l, prakat_usec_t delay);

static void health_set(Line *l, HealthState state, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void health_set(Line *l, HealthState state, const char *format, ...) {
        char text[sizeof l->health_text];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        bool changed = state != l->health || (state != HEALTH_OK && strcmp(text, l->health_text) != 0);
        l->health = state;
        snprintf(l->health_text, sizeof l->health_text, "%s", text);
        if (changed)
                l->host->log(l->host, state == HEALTH_OK ? PRAKAT_LOG_NOTICE : PRAKAT_LOG_WARNING, NULL,
                             "LINE channel health: %s", text);
}

static void health_set_quota(Line *l) {
        char left[32], used[32], total[32];

        if (l->quota_value < 0) {
                health_set(l, HEALTH_OK, "ok, no monthly message limit");
                return;
        }
        if (l->quota_usage >= l->quota_value) {
                health_set(l, HEALTH_QUOTA_USED,
                           "the LINE monthly message quota is used up (%s of %s); sends are held until it renews "
                           "on the 1st or the plan changes",
                           format_count(l->quota_usage, used), format_count(l->quota_value, total));
                return;
        }
        health_set(l, HEALTH_OK, "ok, quota %s left this month", format_count(l->quota_value - l->quota_usage, left));
}

/* An answer to one of the health calls that is not a success. */
static void health_failed(Line *l, AnswerKind kind, const char *text) {
        if (kind == ANSWER_TOKEN)
                health_set(l, HEALTH_TOKEN, TOKEN_INVALID_EN);
        else
                health_set(l, HEALTH_UNREACHABLE, "cannot check the LINE channel: %s", text);
}

static void on_health_answer(void *userdata, const prakat_http_response *resp);

static void health_next_call(Line *l) {
        static const char *const paths[] = { "/v2/bot/info", "/v2/bot/message/quota",
                                             "/v2/bot/message/quota/consumption" };
        int r = line_request(l, "GET", paths[l->health_step], NULL, NULL, on_health_answer, l, &l->health_call);
        if (r < 0) {
                l->health_call = NULL;
                health_set(l, HEALTH_UNREACHABLE, "cannot check the LINE channel: %s", strerror(-r));
                health_arm(l, l->health_interval);
        }
}

static void on_health_answer(void *userdata, const prakat_http_response *resp) {
        Line *l = userdata;
        char text[640];
        AnswerKind kind = answer_classify(l, resp, text, sizeof text);
        json_t *root = NULL;

        l->health_call = NULL;
        if (kind != ANSWER_ACCEPTED) {
                health_failed(l, kind, text);
                health_arm(l, l->health_interval);
                return;
        }
        root = json_loadb(resp->body, resp->body_size, 0, NULL);
        switch (l->health_step) {
        case 1: {
                const char *type = json_string_value(json_object_get(root, "type"));
                json_t *value = json_object_get(root, "value");
                l->quota_value = type && strcmp(type, "limited") == 0 && json_is_integer(value) ?
                                         (long long) json_integer_value(value) : -1;
                l->unlimited_at = l->quota_value < 0 ? l->host->now(l->host) : 0;
                if (l->quota_value < 0) {
                        json_decref(root);
                        l->quota_usage = 0;
                        health_set_quota(l);
                        health_arm(l, l->health_interval);
                        return;
                }
                break;
        }
        case 2: {
                json_t *usage = json_object_get(root, "totalUsage");
                l->quota_usage = json_is_integer(usage) ? (long long) json_integer_value(usage) : 0;
                json_decref(root);
                health_set_quota(l);
                health_arm(l, l->health_interval);
                return;
        }
        default:
                break;
        }
        json_decref(root);
        l->health_step++;
        health_next_call(l);
}

static void on_health_timer(void *userdata) {
        Line *l = userdata;

        l->health_timer = NULL;
        if (l->health_call)
                return; /* a check is running already */
        (void) line_reload_token(l);
        l->health_step = 0;
        health_next_call(l);
}

static void health_arm(Line *l, prakat_usec_t delay) {
        if (l->health_call)
                return; /* a check is running; it arms the next one when it ends */
        l->host->timer_cancel(l->health_timer);
        l->health_timer = NULL;
        if (l->host->timer_start(l->host, delay, on_health_timer, l, &l->health_timer) < 0) {
                l->health_timer = NULL;
                l->host->log(l->host, PRAKAT_LOG_WARNING, NULL, "Cannot arm the LINE health timer, ignoring");
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Ending a send */

static void send_start(Send *s);

static void send_free(Send *s) {
        if (!s)
                return;
        s->line->host->http_cancel(s->call);
        s->line->host->timer_cancel(s->timer);
        free(s->id);
        free(s->key_path);
        free(s->body);
        free(s->target_text);
        free(s);
}

static void send_unlink(Send *s) {
        Line *l = s->line;
        if (s->prev)
                s->prev->next = s->next;
        else if (l->sends == s)
                l->sends = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->next = s->prev = NULL;
}

/* Gives the send's place to the next waiting one. */
static void send_release_place(Send *s) {
        Line *l = s->line;

        if (!s->has_place)
                return;
        s->has_place = false;
        l->active--;
        while (l->wait_head && l->active < l->max_in_flight) {
                Send *next = l->wait_head;
                l->wait_head = next->wait_next;
                if (!l->wait_head)
                        l->wait_tail = NULL;
                next->wait_next = NULL;
                next->has_place = true;
                l->active++;
                send_start(next);
        }
}

typedef struct Outcome {
        prakat_outcome outcome;
        prakat_usec_t retry_after;
        char en[1024];
        char th[1024];
} Outcome;

__attribute__((format(printf, 4, 5))) static void outcome_set(Outcome *o, prakat_outcome outcome, const char *th,
                                                              const char *format, ...) {
        va_list ap;

        o->outcome = outcome;
        snprintf(o->th, sizeof o->th, "%s", th ? th : "");
        va_start(ap, format);
        vsnprintf(o->en, sizeof o->en, format, ap);
        va_end(ap);
}

/*
 * Finishes the job; the send is gone afterwards.  job_finish() comes last: when the core has let
 * go of this instance (a reload changed its section), finishing its last job destroys it, so
 * nothing of the instance may be touched after that call.
 */
static void send_finish(Send *s, const Outcome *o) {
        Line *l = s->line;
        const prakat_host *host = l->host;
        prakat_job *job = s->job;
        char remote[sizeof s->key.request_id];

        snprintf(remote, sizeof remote, "%s", s->key.request_id);
        if (o->outcome != PRAKAT_OUTCOME_DONE && o->outcome != PRAKAT_OUTCOME_RETRY)
                host->log(host, PRAKAT_LOG_ERR, s->id, "%s", o->en);
        send_unlink(s);
        send_release_place(s);
        send_free(s);

        prakat_result result = {
                .outcome = o->outcome,
                .message = o->en,
                .message_th = o->th[0] ? o->th : NULL,
                .remote_id = remote[0] ? remote : NULL,
                .retry_after = o->outcome == PRAKAT_OUTCOME_RETRY ? o->retry_after : 0,
        };
        host->job_finish(host, job, &result);
}

/* Shortcut for the common "try again" endings. */
__attribute__((format(printf, 4, 5))) static void send_retry(Send *s, prakat_usec_t after, const char *th,
                                                             const char *format, ...) {
        Outcome o = { .outcome = PRAKAT_OUTCOME_RETRY, .retry_after = after };
        va_list ap;

        snprintf(o.th, sizeof o.th, "%s", th ? th : "");
        va_start(ap, format);
        vsnprintf(o.en, sizeof o.en, format, ap);
        va_end(ap);
        send_finish(s, &o);
}

/* Writes the record; on failure the send ends "retry" and false is returned. */
static bool send_save_key(Send *s) {
        int r = line_key_save(s->key_path, &s->key);
        if (r < 0) {
                send_retry(s, 0, "บันทึกสถานะการส่ง LINE ลงดิสก์ไม่ได้ จะลองใหม่", "cannot write %s: %s", s->key_path,
                           strerror(-r));
                return false;
        }
        return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Held: quota and token */

static void send_hold_quota(Send *s, const char *detail) {
        Line *l = s->line;
        prakat_usec_t now = l->host->now(l->host), wait = until_next_month(l->host, now);
        char span[32];

        if (wait > l->health_interval)
                wait = l->health_interval;
        send_retry(s, wait,
                   "ระงับไว้ ยังไม่ได้ส่ง: โควตาข้อความ LINE ประจำเดือนใช้หมดแล้ว จะส่งเมื่อโควตาเริ่มใหม่ต้นเดือน "
                   "หรือเมื่อเพิ่มข้อความในแพ็กเกจ LINE Official Account",
                   "held: the LINE monthly message quota is used up (%s); not sent. It renews on the 1st, or add "
                   "messages to the LINE Official Account plan; checking again in %s",
                   detail, format_span(wait, span));
}

static void send_hold_token(Send *s, const char *text) {
        Line *l = s->line;
        char span[32];
        bool changed = line_reload_token(l);

        health_set(l, HEALTH_TOKEN, TOKEN_INVALID_EN);
        if (changed)
                health_arm(l, 0);
        prakat_usec_t wait = changed ? 0 : l->health_interval;
        send_retry(s, wait, TOKEN_INVALID_TH, "not sent: %s (%s); trying again in %s", TOKEN_INVALID_EN, text,
                   changed ? "a moment" : format_span(wait, span));
}

/* ------------------------------------------------------------------------------------------------ */
/* Following a narrowcast */

static void follow_poll(Send *s);

static void on_follow_timer(void *userdata) {
        follow_poll(userdata);
}

/* When a job that let go while LINE was still delivering comes back: later each time. */
static prakat_usec_t follow_recheck(const Send *s) {
        unsigned shift = s->job->attempt > 1 ? s->job->attempt - 1 : 0;
        prakat_usec_t delay = FOLLOW_RECHECK_MIN << (shift > 6 ? 6 : shift);
        return delay > FOLLOW_RECHECK_MAX ? FOLLOW_RECHECK_MAX : delay;
}

static void follow_arm(Send *s) {
        Line *l = s->line;
        if (l->host->timer_start(l->host, s->poll_delay, on_follow_timer, s, &s->timer) < 0) {
                s->timer = NULL;
                send_retry(s, follow_recheck(s), "ติดตามผลการส่ง LINE ไม่ได้ชั่วคราว จะตรวจใหม่",
                           "cannot arm a timer to follow the narrowcast; checking again later");
                return;
        }
        s->poll_delay *= 2;
}

/* Still going, or the answer was unclear: poll again, or let the job go and come back. */
static void follow_later(Send *s, const char *what) {
        Line *l = s->line;
        prakat_usec_t elapsed = l->host->now(l->host) - s->follow_started, recheck = follow_recheck(s);
        char span[32];

        if (elapsed + s->poll_delay <= FOLLOW_HOLD) {
                follow_arm(s);
                return;
        }
        send_retry(s, recheck, "LINE รับข้อความแล้ว กำลังทยอยส่งถึงผู้รับ จะตรวจผลอีกครั้ง",
                   "accepted by LINE (request %s); %s; checking again in %s", s->key.request_id, what,
                   format_span(recheck, span));
}

static void follow_done(Send *s, json_t *root) {
        long long ok = json_integer_value(json_object_get(root, "successCount"));
        long long bad = json_integer_value(json_object_get(root, "failureCount"));
        long long target = json_integer_value(json_object_get(root, "targetCount"));
        char a[32], b[32], c[32];
        Outcome o;

        snprintf(s->key.phase, sizeof s->key.phase, "succeeded");
        if (!send_save_key(s))
                return;
        outcome_set(&o, PRAKAT_OUTCOME_DONE, "ส่งถึงผู้รับทาง LINE แล้ว",
                    "narrowcast delivered to %s of %s%s%s%s (request %s)%s%s", format_count(ok, a),
                    format_count(target, b), bad ? ", " : "", bad ? format_count(bad, c) : "", bad ? " failed" : "",
                    s->key.request_id, s->notes.text[0] ? "; " : "", s->notes.text);
        snprintf(o.th, sizeof o.th, "ส่งถึงผู้รับทาง LINE แล้ว %s จาก %s คน", a, b);
        s->line->host->log(s->line->host, PRAKAT_LOG_INFO, s->id, "%s", o.en);
        send_finish(s, &o);
}

static void follow_failed(Send *s, const char *description, long long code) {
        Outcome o;

        snprintf(s->key.phase, sizeof s->key.phase, "failed");
        snprintf(s->key.detail, sizeof s->key.detail, "%s (error code %lld)", description, code);
        if (!send_save_key(s))
                return;
        outcome_set(&o, PRAKAT_OUTCOME_FAILED, "LINE รับข้อความแล้วแต่ส่งถึงผู้รับไม่สำเร็จ",
                    "LINE accepted the narrowcast (request %s) but could not deliver it: %s", s->key.request_id,
                    s->key.detail);
        send_finish(s, &o);
}

static void on_progress(void *userdata, const prakat_http_response *resp) {
        Send *s = userdata;
        Line *l = s->line;
        char text[640];
        AnswerKind kind = answer_classify(l, resp, text, sizeof text);

        s->call = NULL;
        if (kind == ANSWER_TOKEN) {
                send_hold_token(s, text);
                return;
        }
        if (kind == ANSWER_REFUSED && (resp->status == 404 || resp->status == 400)) {
                /* LINE forgets progress after 14 days; right after acceptance a 404 may be a lag. */
                if (l->host->now(l->host) - s->key.accepted < PROGRESS_LAG) {
                        follow_later(s, "its progress is not available yet");
                        return;
                }
                Outcome o;
                outcome_set(&o, PRAKAT_OUTCOME_UNCONFIRMED,
                            "LINE รับข้อความแล้ว แต่ไม่แจ้งผลการส่งแล้ว โปรดตรวจสอบใน LINE Official Account Manager",
                            "LINE accepted the narrowcast (request %s) but no longer reports its progress (%s); "
                            "check LINE Official Account Manager", s->key.request_id, text);
                send_finish(s, &o);
                return;
        }
        if (kind != ANSWER_ACCEPTED) {
                follow_later(s, text);
                return;
        }
        json_t *root = json_loadb(resp->body, resp->body_size, 0, NULL);
        const char *phase = json_string_value(json_object_get(root, "phase"));
        if (phase && strcmp(phase, "succeeded") == 0)
                follow_done(s, root);
        else if (phase && strcmp(phase, "failed") == 0) {
                const char *d = json_string_value(json_object_get(root, "failedDescription"));
                char *clean = line_text_clean(d ? d : "no description");
                follow_failed(s, clean ? clean : "no description",
                              json_integer_value(json_object_get(root, "errorCode")));
                free(clean);
        } else {
                char what[64];
                snprintf(what, sizeof what, "delivery is %s", phase ? phase : "in progress");
                follow_later(s, what);
        }
        json_decref(root);
}

static void follow_poll(Send *s) {
        char path[192];

        s->timer = NULL;
        snprintf(path, sizeof path, "/v2/bot/message/progress/narrowcast?requestId=%s", s->key.request_id);
        int r = line_request(s->line, "GET", path, NULL, NULL, on_progress, s, &s->call);
        if (r < 0) {
                s->call = NULL;
                follow_later(s, strerror(-r));
        }
}

static void follow_start(Send *s) {
        Line *l = s->line;

        s->step = STEP_FOLLOW;
        if (s->has_place) /* following needs no place: the request has left */
                send_release_place(s);
        s->follow_started = l->host->now(l->host);
        s->poll_delay = FOLLOW_FIRST_POLL;
        follow_arm(s);
}

/* ------------------------------------------------------------------------------------------------ */
/* Sending */

/* LINE has it: done for a broadcast, followed for a narrowcast. */
static void send_accepted(Send *s, const char *request_id, bool duplicate) {
        Line *l = s->line;
        Outcome o;

        snprintf(s->key.request_id, sizeof s->key.request_id, "%s", request_id);
        s->key.accepted = l->host->now(l->host);
        s->key.pending = false;
        s->key.in_doubt = false;
        if (!send_save_key(s))
                return;
        if (l->health == HEALTH_TOKEN)
                health_arm(l, 0);
        l->host->log(l->host, PRAKAT_LOG_INFO, s->id, "%s %s (request %s)%s",
                     s->retract ? "Correction" : "Announcement",
                     duplicate ? "had already been accepted by LINE; not sent again" : "accepted by LINE",
                     request_id, s->endpoint == LINE_ENDPOINT_NARROWCAST ? "; following its delivery" : "");
        if (s->notes.text[0])
                l->host->log(l->host, PRAKAT_LOG_NOTICE, s->id, "%s", s->notes.text);
        if (s->key.endpoint == LINE_ENDPOINT_NARROWCAST) {
                if (PRAKAT_HOST_HAS(l->host, job_note)) {
                        char note[256];
                        snprintf(note, sizeof note, "accepted by LINE (request %s); following its delivery",
                                 request_id);
                        l->host->job_note(l->host, s->job, note, "LINE รับข้อความแล้ว กำลังติดตามผลการส่ง");
                }
                follow_start(s);
                return;
        }
        outcome_set(&o, PRAKAT_OUTCOME_DONE, duplicate ? "LINE รับข้อความนี้ไว้แล้ว ไม่ได้ส่งซ้ำ" : "ส่งทาง LINE แล้ว",
                    "%s to %s (request %s)%s%s", duplicate ? "already accepted by LINE, not sent again" : "sent",
                    s->target_text, request_id, s->notes.text[0] ? "; " : "", s->notes.text);
        send_finish(s, &o);
}

/* A request id from a header, or a stand-in when LINE sent none (or something odd). */
static const char *request_id_of(const prakat_http_response *resp, const char *header) {
        const char *v = resp->header ? resp->header(resp, header) : NULL;
        if (!v || !*v || strlen(v) > 60)
                return "unknown";
        for (const char *p = v; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *p))
                        return "unknown";
        return v;
}

static void on_post(void *userdata, const prakat_http_response *resp) {
        Send *s = userdata;
        Line *l = s->line;
        char text[640], span[32];
        AnswerKind kind = answer_classify(l, resp, text, sizeof text);
        Outcome o;

        s->call = NULL;
        if (kind != ANSWER_THROTTLED)
                l->throttled_until = 0; /* LINE answered something else: the slow-down is over */
        switch (kind) {
        case ANSWER_ACCEPTED:
                send_accepted(s, request_id_of(resp, "x-line-request-id"), false);
                return;
        case ANSWER_DUPLICATE: {
                const char *id = request_id_of(resp, "x-line-accepted-request-id");
                send_accepted(s, strcmp(id, "unknown") ? id : request_id_of(resp, "x-line-request-id"), true);
                return;
        }
        default:
                break;
        }
        /* Not accepted.  Only an unclear answer leaves the send in doubt; the others are definite. */
        s->key.pending = false;
        if (kind == ANSWER_IN_DOUBT)
                s->key.in_doubt = true;
        if (!send_save_key(s))
                return;
        switch (kind) {
        case ANSWER_TOKEN:
                send_hold_token(s, text);
                return;
        case ANSWER_QUOTA:
                send_hold_quota(s, "LINE answered 429: You have reached your monthly limit.");
                return;
        case ANSWER_THROTTLED: {
                prakat_usec_t wait = USEC_PER_HOUR / (l->rate_per_hour ? l->rate_per_hour : 1);
                l->throttled_until = l->host->now(l->host) + wait;
                send_retry(s, wait, "LINE จำกัดจำนวนการส่งต่อชั่วโมง จะลองใหม่ด้วยรหัสเดิม",
                           "%s; LINE's hourly send limit is reached, trying again in %s with the same retry key",
                           text, format_span(wait, span));
                return;
        }
        case ANSWER_REFUSED:
                outcome_set(&o, PRAKAT_OUTCOME_FAILED, "LINE ไม่รับข้อความนี้ (ดูรายละเอียดภาษาอังกฤษ) แก้ไขแล้วส่งใหม่",
                            "%s", text);
                send_finish(s, &o);
                return;
        case ANSWER_NOT_REACHED:
                send_retry(s, 0, "ติดต่อ LINE ไม่ได้ จะลองใหม่", "%s; not sent, will try again", text);
                return;
        default:
                send_retry(s, 0, "LINE ไม่ตอบหรือขัดข้องชั่วคราว จะลองใหม่ด้วยรหัสเดิม ข้อความจะไม่ถูกส่งซ้ำ",
                           "%s; will try again with the same retry key (LINE answers 409 if it was accepted)", text);
                return;
        }
}

/*
 * LINE remembers a retry key for 24 hours from the first request.  Past that (less the time a
 * request may take), a key that may have been accepted must not be sent again: the job ends
 * unconfirmed.  A key that certainly was not accepted is simply replaced.  Returns false when the
 * send has ended.
 */
static bool send_check_key_age(Send *s) {
        Line *l = s->line;
        prakat_usec_t now = l->host->now(l->host), margin = l->unconfirmed_after / 10;
        char span[32];
        Outcome o;

        if (margin > USEC_PER_MIN)
                margin = USEC_PER_MIN;
        if (s->key.first_sent == 0 || now + l->timeout + margin < s->key.first_sent + l->unconfirmed_after)
                return true;
        if (s->key.in_doubt) {
                outcome_set(&o, PRAKAT_OUTCOME_UNCONFIRMED,
                            "ยืนยันไม่ได้: LINE ไม่ได้ยืนยันการส่งภายในเวลาที่จำรหัสส่งซ้ำได้ ข้อความอาจส่งออกไปแล้วหรือไม่ก็ได้ "
                            "ระบบจะไม่ส่งซ้ำเอง โปรดตรวจสอบใน LINE Official Account Manager "
                            "แล้วส่งใหม่ด้วยรหัสประกาศใหม่หากยังไม่ได้ส่ง",
                            "unconfirmed: LINE did not confirm this send within %s of the first attempt (retry key %s, "
                            "%u attempts); it may or may not have gone out, and it is not sent again blindly. Check "
                            "LINE Official Account Manager, and submit it again with a new ID if it did not go out",
                            format_span(l->unconfirmed_after, span), s->key.key, s->key.attempts);
                send_finish(s, &o);
                return false;
        }
        /* Every earlier request was refused outright: nothing went out, a new key is safe. */
        if (line_key_init(&s->key, now) < 0) {
                send_retry(s, 0, "สร้างรหัสส่งซ้ำไม่ได้ จะลองใหม่", "cannot make a new retry key");
                return false;
        }
        l->host->log(l->host, PRAKAT_LOG_NOTICE, s->id,
                     "The retry key is older than %s and none of its requests was accepted; using a new key",
                     format_span(l->unconfirmed_after, span));
        return send_save_key(s);
}

/*
 * After LINE's 429, until it answers anything else: one send at a time, 3600/rate_per_hour apart.
 * Checked before the quota is read and again right before the POST (another send may have met the
 * 429 meanwhile).  True when the send was held.
 */
static bool send_wait_throttle(Send *s, prakat_usec_t now) {
        Line *l = s->line;
        char span[32];

        if (l->throttled_until <= now)
                return false;
        send_retry(s, l->throttled_until - now, "LINE ขอให้ส่งช้าลง (429) ยังไม่ได้ส่ง จะส่งเมื่อถึงคิว",
                   "held: LINE asked to slow down (429); not sent yet, next possible in %s",
                   format_span(l->throttled_until - now, span));
        return true;
}

static const char *send_endpoint_path(const Send *s) {
        return s->endpoint == LINE_ENDPOINT_NARROWCAST ? "/v2/bot/message/narrowcast" : "/v2/bot/message/broadcast";
}

/*
 * rate_per_hour: the sends of the last hour, retries included.  Checked before the quota is read and
 * again right before the POST, where the send is counted: sends that started together (max_in_flight)
 * must not all pass the first check.  True when the send was held.
 */
static bool send_wait_window(Send *s, prakat_usec_t now) {
        Line *l = s->line;
        char span[32];

        line_window_expire(&l->window, now, USEC_PER_HOUR);
        prakat_usec_t wait = line_window_wait(&l->window, now, USEC_PER_HOUR);
        if (wait == 0)
                return false;
        send_retry(s, wait, "ระงับไว้ชั่วคราว: ครบจำนวนการส่ง LINE ต่อชั่วโมงแล้ว จะส่งเมื่อถึงคิว",
                   "held: %u LINE broadcast/narrowcast requests an hour is the limit (rate_per_hour) and "
                   "it is reached; not sent yet, next possible in %s",
                   l->rate_per_hour, format_span(wait, span));
        return true;
}

static void send_post(Send *s) {
        Line *l = s->line;
        prakat_usec_t now = l->host->now(l->host);
        const char *path = send_endpoint_path(s);

        if (!send_check_key_age(s) || send_wait_throttle(s, now) || send_wait_window(s, now))
                return;
        if (l->throttled_until) /* this one tries; the next waits a full gap */
                l->throttled_until = now + USEC_PER_HOUR / (l->rate_per_hour ? l->rate_per_hour : 1);
        s->step = STEP_POST;
        if (s->key.first_sent == 0) {
                s->key.first_sent = now;
                s->key.endpoint = s->endpoint;
        }
        s->key.last_sent = now;
        s->key.attempts++;
        s->key.pending = true;
        if (!send_save_key(s))
                return;
        int r = line_window_add(&l->window, l->window_path, now);
        if (r < 0)
                l->host->log(l->host, PRAKAT_LOG_WARNING, s->id, "Cannot write %s: %s, ignoring", l->window_path,
                             strerror(-r));
        l->host->log(l->host, PRAKAT_LOG_INFO, s->id, "%s%s to %s, retry key %s (request %u with this key)",
                     s->endpoint == LINE_ENDPOINT_NARROWCAST ? "Narrowcast" : "Broadcast",
                     s->retract ? " of a correction" : "", s->target_text, s->key.key, s->key.attempts);
        r = line_request(l, "POST", path, s->body, s->key.key, on_post, s, &s->call);
        if (r < 0) {
                s->call = NULL;
                s->key.pending = false;
                if (!send_save_key(s))
                        return;
                send_retry(s, 0, "เริ่มส่งทาง LINE ไม่ได้ จะลองใหม่", "cannot start the request to LINE: %s",
                           strerror(-r));
        }
}

static void send_read_quota(Send *s, const char *path);

static void on_quota(void *userdata, const prakat_http_response *resp) {
        Send *s = userdata;
        Line *l = s->line;
        char text[640], used[32], total[32];
        AnswerKind kind = answer_classify(l, resp, text, sizeof text);

        s->call = NULL;
        if (kind == ANSWER_TOKEN) {
                send_hold_token(s, text);
                return;
        }
        if (kind != ANSWER_ACCEPTED) {
                send_retry(s, 0, "อ่านโควตาข้อความ LINE ไม่ได้ ยังไม่ได้ส่ง จะลองใหม่",
                           "could not read the LINE message quota (%s); not sent, will try again", text);
                return;
        }
        json_t *root = json_loadb(resp->body, resp->body_size, 0, NULL);
        if (s->step == STEP_QUOTA) {
                const char *type = json_string_value(json_object_get(root, "type"));
                json_t *value = json_object_get(root, "value");
                s->quota = type && strcmp(type, "limited") == 0 && json_is_integer(value) ?
                                   (long long) json_integer_value(value) : -1;
                json_decref(root);
                l->quota_value = s->quota;
                l->unlimited_at = s->quota < 0 ? l->host->now(l->host) : 0;
                if (s->quota < 0) {
                        l->quota_usage = 0;
                        send_post(s);
                        return;
                }
                s->step = STEP_CONSUMPTION;
                send_read_quota(s, "/v2/bot/message/quota/consumption");
                return;
        }
        json_t *usage = json_object_get(root, "totalUsage");
        long long consumed = json_is_integer(usage) ? (long long) json_integer_value(usage) : 0;
        json_decref(root);
        l->quota_value = s->quota;
        l->quota_usage = consumed;
        if (l->health == HEALTH_OK || l->health == HEALTH_QUOTA_USED)
                health_set_quota(l);
        if (consumed >= s->quota) {
                char detail[96];
                snprintf(detail, sizeof detail, "%s of %s messages used", format_count(consumed, used),
                         format_count(s->quota, total));
                send_hold_quota(s, detail);
                return;
        }
        send_post(s);
}

static void send_read_quota(Send *s, const char *path) {
        int r = line_request(s->line, "GET", path, NULL, NULL, on_quota, s, &s->call);
        if (r < 0) {
                s->call = NULL;
                send_retry(s, 0, "อ่านโควตาข้อความ LINE ไม่ได้ จะลองใหม่", "cannot start reading the quota: %s",
                           strerror(-r));
        }
}

/* With a place among max_in_flight: the hourly window, then the quota, then the request. */
static void send_start(Send *s) {
        Line *l = s->line;
        prakat_usec_t now = l->host->now(l->host);

        if (send_wait_throttle(s, now) || send_wait_window(s, now))
                return;
        /* A plan with no monthly limit, read moments ago: a burst does not ask again for every send.  (A
         * plan that got a limit meanwhile answers the send with 429 "monthly limit", which holds it.) */
        if (l->unlimited_at && now < l->unlimited_at + UNLIMITED_FRESH) {
                s->quota = -1;
                send_post(s);
                return;
        }
        s->step = STEP_QUOTA;
        send_read_quota(s, "/v2/bot/message/quota");
}

static void send_enqueue(Send *s) {
        Line *l = s->line;

        s->step = STEP_WAITING;
        if (l->active < l->max_in_flight) {
                s->has_place = true;
                l->active++;
                send_start(s);
                return;
        }
        if (l->wait_tail)
                l->wait_tail->wait_next = s;
        else
                l->wait_head = s;
        l->wait_tail = s;
}

/* ------------------------------------------------------------------------------------------------ */
/* What to send, to whom */

static const Audience *audience_of(const Line *l, unsigned village) {
        for (size_t i = 0; i < l->n_audiences; i++)
                if (l->audiences[i].village == village)
                        return &l->audiences[i];
        return NULL;
}

/*
 * The endpoint and, for a narrowcast to audiences, the recipient object.  Everyone is reached
 * when the announcement is for all villages, when no audiences are configured, or (with a
 * warning in the notes) when a named village has no audience or too many audiences are needed.
 */
static int send_choose_target(Send *s, const prakat_announcement *a, json_t **ret_recipient) {
        Line *l = s->line;
        long long ids[MAX_AUDIENCES_PER_SEND];
        size_t n_ids = 0;
        char villages[256] = "", missing[128] = "";
        size_t vo = 0, mo = 0;
        bool too_many = false;

        *ret_recipient = NULL;
        s->endpoint = l->everyone;
        if (a->all_villages || a->n_villages == 0 || l->n_audiences == 0) {
                s->target_text = strdup("all friends");
                return s->target_text ? 0 : -ENOMEM;
        }
        for (size_t i = 0; i < a->n_villages; i++) {
                const Audience *aud = audience_of(l, a->villages[i]);
                if (vo < sizeof villages)
                        vo += (size_t) snprintf(villages + vo, sizeof villages - vo, "%s%u", i ? ", " : "",
                                                a->villages[i]);
                if (!aud) {
                        if (mo < sizeof missing)
                                mo += (size_t) snprintf(missing + mo, sizeof missing - mo, "%s%u", mo ? ", " : "",
                                                        a->villages[i]);
                        continue;
                }
                bool seen = false;
                for (size_t k = 0; k < n_ids; k++)
                        seen |= ids[k] == aud->id;
                if (seen)
                        continue;
                if (n_ids == MAX_AUDIENCES_PER_SEND)
                        too_many = true;
                else
                        ids[n_ids++] = aud->id;
        }
        if (mo > 0 || too_many) {
                if (mo > 0)
                        snprintf(s->notes.text, sizeof s->notes.text,
                                 "sent to all friends: village(s) %s have no audience (audience.N) in the config", missing);
                else
                        snprintf(s->notes.text, sizeof s->notes.text,
                                 "sent to all friends: villages %s need more than %d audiences, LINE's limit per "
                                 "narrowcast", villages, MAX_AUDIENCES_PER_SEND);
                l->host->log(l->host, PRAKAT_LOG_WARNING, s->id,
                             "Announcement for village(s) %s goes to ALL LINE friends: %s", villages, s->notes.text);
                s->target_text = strdup("all friends");
                return s->target_text ? 0 : -ENOMEM;
        }
        json_t *list = json_array();
        for (size_t k = 0; list && k < n_ids; k++)
                json_array_append_new(list, json_pack("{s:s, s:I}", "type", "audience", "audienceGroupId",
                                                      (json_int_t) ids[k]));
        if (!list)
                return -ENOMEM;
        if (n_ids == 1) {
                *ret_recipient = json_incref(json_array_get(list, 0));
                json_decref(list);
        } else
                *ret_recipient = json_pack("{s:s, s:o}", "type", "operator", "or", list);
        if (!*ret_recipient)
                return -ENOMEM;
        s->endpoint = LINE_ENDPOINT_NARROWCAST;
        if (asprintf(&s->target_text, "village(s) %s (%zu audience%s)", villages, n_ids, n_ids == 1 ? "" : "s") < 0) {
                s->target_text = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* The request body: the messages and, for a narrowcast, its recipients. */
static int send_build_body(Send *s, json_t *messages, json_t *recipient) {
        json_t *root = json_pack("{s:O}", "messages", messages);

        if (!root)
                return -ENOMEM;
        /*
         * A key is kept by LINE per endpoint: once sent to one, it must go on to the same one even if
         * the config changed meanwhile.  Either way everyone asked for is still reached.
         */
        if (s->key.endpoint != LINE_ENDPOINT_NONE && s->key.endpoint != s->endpoint) {
                s->line->host->log(s->line->host, PRAKAT_LOG_NOTICE, s->id,
                                   "The first attempt was a %s; the retries stay one (to all friends), so that "
                                   "LINE recognises the retry key", line_endpoint_name(s->key.endpoint));
                s->endpoint = s->key.endpoint;
                recipient = NULL;
                free(s->target_text);
                s->target_text = strdup("all friends");
        }
        if (recipient && json_object_set(root, "recipient", recipient) < 0) {
                json_decref(root);
                return -ENOMEM;
        }
        s->body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s->body && s->target_text ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------------------------------------ */
/* Starting a job */

static Send *send_new(Line *l, prakat_job *job, const char *id, bool retract) {
        Send *s = calloc(1, sizeof(Send));
        if (!s)
                return NULL;
        s->line = l;
        s->job = job;
        s->retract = retract;
        s->quota = -1;
        s->id = strdup(id);
        if (!s->id || asprintf(&s->key_path, "%s/%s.%s", l->keys_dir, id, retract ? "retract" : "publish") < 0) {
                s->key_path = NULL;
                send_free(s);
                return NULL;
        }
        s->next = l->sends;
        if (l->sends)
                l->sends->prev = s;
        l->sends = s;
        return s;
}

/* Ends the job at once, before a Send exists. */
static void finish_now(Line *l, prakat_job *job, prakat_outcome outcome, const char *en, const char *th) {
        prakat_result r = { .outcome = outcome, .message = en, .message_th = th };
        if (outcome != PRAKAT_OUTCOME_DONE && outcome != PRAKAT_OUTCOME_RETRY)
                l->host->log(l->host, PRAKAT_LOG_ERR, NULL, "%s", en);
        l->host->job_finish(l->host, job, &r);
}

/*
 * The record of an earlier attempt decides first.  Returns 1 when the job has ended (or goes on
 * without a new request), 0 when it must be sent, with s->key holding the key to use.
 */
static int send_resume(Send *s, bool interrupted) {
        Line *l = s->line;
        Outcome o;
        int r = line_key_load(s->key_path, &s->key);

        if (r == -ENOENT) {
                if (line_key_init(&s->key, l->host->now(l->host)) < 0) {
                        send_retry(s, 0, "สร้างรหัสส่งซ้ำไม่ได้ จะลองใหม่", "cannot make a retry key");
                        return 1;
                }
                /* Stored, and synced, right before the first request (send_post()): no request ever leaves
                 * with a key we could lose, and a send held before it (quota, 429) writes nothing. */
                return 0;
        }
        if (r == -EBADMSG) {
                outcome_set(&o, PRAKAT_OUTCOME_UNCONFIRMED,
                            "บันทึกรหัสส่งซ้ำของ LINE เสียหาย ไม่ทราบว่าส่งไปแล้วหรือไม่ โปรดตรวจสอบใน LINE Official Account Manager",
                            "the retry-key record %s is damaged, so whether this went out is unknown; it is not "
                            "sent again blindly. Check LINE Official Account Manager", s->key_path);
                send_finish(s, &o);
                return 1;
        }
        if (r < 0) {
                send_retry(s, 0, "อ่านสถานะการส่ง LINE ไม่ได้ จะลองใหม่", "cannot read %s: %s", s->key_path,
                           strerror(-r));
                return 1;
        }
        if (interrupted || s->key.in_doubt)
                l->host->log(l->host, PRAKAT_LOG_NOTICE, s->id,
                             "Resuming with the stored retry key %s (%u request(s) sent with it%s)", s->key.key,
                             s->key.attempts, s->key.in_doubt ? ", one may have been accepted" : "");
        if (!s->key.request_id[0])
                return 0;
        /* Accepted before: never sent again. */
        s->endpoint = s->key.endpoint;
        if (s->key.endpoint == LINE_ENDPOINT_NARROWCAST && strcmp(s->key.phase, "failed") == 0) {
                outcome_set(&o, PRAKAT_OUTCOME_FAILED, "LINE รับข้อความแล้วแต่ส่งถึงผู้รับไม่สำเร็จ",
                            "LINE accepted the narrowcast (request %s) but could not deliver it: %s",
                            s->key.request_id, s->key.detail);
                send_finish(s, &o);
        } else if (s->key.endpoint == LINE_ENDPOINT_NARROWCAST && strcmp(s->key.phase, "succeeded") != 0) {
                follow_start(s);
        } else {
                outcome_set(&o, PRAKAT_OUTCOME_DONE, "ส่งทาง LINE แล้ว", "sent (request %s)", s->key.request_id);
                send_finish(s, &o);
        }
        return 1;
}

/* Builds the request and queues it; the job ends from the callbacks. */
static void send_prepare(Send *s, json_t *messages, json_t *recipient, bool built) {
        if (!built || !messages || send_build_body(s, messages, recipient) < 0) {
                send_retry(s, 0, "เตรียมข้อความ LINE ไม่สำเร็จ (หน่วยความจำไม่พอ) จะลองใหม่",
                           "cannot build the LINE message: out of memory");
                return;
        }
        if (!send_check_key_age(s))
                return;
        send_enqueue(s);
}

/* The messages of `a` and whom they go to (s->endpoint, target_text, notes): publish() and preview() both. */
static int send_compose(Send *s, const prakat_announcement *a, json_t **ret_messages, json_t **ret_recipient) {
        Line *l = s->line;
        char date[64] = "";

        if (l->host->format_date(l->host, a->publish_at, PRAKAT_DATE_THAI_LONG_DATE, date, sizeof date) < 0)
                date[0] = 0;
        int r = send_choose_target(s, a, ret_recipient);
        if (r == 0)
                *ret_messages = line_messages_announcement(a, l->style, date[0] ? date : NULL, &s->notes);
        return r;
}

/* The request of a preview in words: to whom, the texts as they are, then the JSON body as it is sent. */
static int send_describe(const Send *s, json_t *messages, PluginBuf *b) {
        json_t *body = json_loads(s->body, 0, NULL);
        char *pretty = body ? json_dumps(body, JSON_INDENT(2)) : NULL;
        size_t i;
        json_t *m;

        json_decref(body);
        if (!pretty)
                return -ENOMEM;
        plugin_buf_printf(b, "ส่งถึง / to: %s (%s, POST %s)\n", s->target_text,
                          line_endpoint_name(s->endpoint), send_endpoint_path(s));
        if (s->notes.text[0])
                plugin_buf_printf(b, "หมายเหตุ / note: %s\n", s->notes.text);
        json_array_foreach(messages, i, m) {
                const char *text = json_string_value(json_object_get(m, "text"));
                if (text)
                        plugin_buf_printf(b, "ข้อความที่ %zu / message %zu (text):\n-----\n%s\n-----\n", i + 1, i + 1, text);
        }
        plugin_buf_printf(b, "คำขอ / request body:\n%s\n", pretty);
        free(pretty);
        return 0;
}

static int line_preview(void *instance, const prakat_announcement *a, const char *page_path, char **ret_text) {
        Line *l = instance;
        /* Not linked into l->sends, no key, no timer: nothing of it outlives this call. */
        Send s = { .line = l, .id = (char *) a->id, .quota = -1 };
        json_t *messages = NULL, *recipient = NULL;
        PluginBuf b = {};

        if (!plugin_id_is_safe(a->id))
                return -EINVAL;
        int r = send_compose(&s, a, &messages, &recipient);
        if (r == 0 && (!messages || send_build_body(&s, messages, recipient) < 0))
                r = -ENOMEM;
        if (r == 0)
                r = send_describe(&s, messages, &b);
        json_decref(messages);
        json_decref(recipient);
        free(s.body);
        free(s.target_text);
        char *text = r == 0 ? plugin_buf_steal(&b, NULL) : NULL;
        plugin_buf_free(&b);
        if (r == 0 && !text)
                r = -ENOMEM;
        if (r == 0)
                *ret_text = text;
        return r;
}

static int line_publish(void *instance, prakat_job *job, const prakat_announcement *a) {
        Line *l = instance;
        json_t *messages = NULL, *recipient = NULL;

        if (!plugin_id_is_safe(a->id)) {
                finish_now(l, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used as a file name",
                           "ใช้รหัสประกาศนี้เป็นชื่อไฟล์ไม่ได้");
                return 0;
        }
        Send *s = send_new(l, job, a->id, false);
        if (!s)
                return -ENOMEM;
        if (send_resume(s, job->interrupted))
                return 0;
        int r = send_compose(s, a, &messages, &recipient);
        send_prepare(s, messages, recipient, r == 0);
        json_decref(messages);
        json_decref(recipient);
        return 0;
}

/* Whether anything of `target` may have reached LINE friends (else there is nothing to correct). */
static bool target_was_sent(Line *l, const prakat_job *job, const char *id) {
        char *path = NULL;
        LineKey key;

        if (job->remote_id && *job->remote_id)
                return true;
        if (asprintf(&path, "%s/%s.publish", l->keys_dir, id) < 0)
                return true; /* when in doubt, correct */
        int r = line_key_load(path, &key);
        free(path);
        if (r == -ENOENT)
                return false;
        return r < 0 || key.request_id[0] || key.first_sent != 0;
}

static int line_retract(void *instance, prakat_job *job, const prakat_announcement *target, const char *reason) {
        Line *l = instance;
        json_t *messages = NULL, *recipient = NULL;

        if (!plugin_id_is_safe(target->id)) {
                finish_now(l, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used as a file name",
                           "ใช้รหัสประกาศนี้เป็นชื่อไฟล์ไม่ได้");
                return 0;
        }
        if (!target_was_sent(l, job, target->id)) {
                l->host->log(l->host, PRAKAT_LOG_INFO, target->id,
                             "Not sent through LINE, so no correction is needed");
                finish_now(l, job, PRAKAT_OUTCOME_DONE,
                           "nothing to correct: the announcement was never sent through LINE",
                           "ไม่ต้องแจ้งแก้ไข เพราะประกาศนี้ไม่เคยส่งทาง LINE");
                return 0;
        }
        Send *s = send_new(l, job, target->id, true);
        if (!s)
                return -ENOMEM;
        if (send_resume(s, job->interrupted))
                return 0;
        /* The correction goes to whoever the announcement went to. */
        int r = send_choose_target(s, target, &recipient);
        if (r == 0)
                messages = line_messages_correction(target, reason);
        send_prepare(s, messages, recipient, r == 0);
        json_decref(messages);
        json_decref(recipient);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */



static int config_duration(PluginConfigError *err, const prakat_config_entry *e, prakat_usec_t min, prakat_usec_t *ret) {
        if (plugin_parse_duration(e->value, ret) < 0)
                return plugin_config_fail(err, e->line, "%s = %s is not a duration; write for example 30s, 10m or 24h",
                                   e->key, e->value);
        if (*ret < min)
                return plugin_config_fail(err, e->line, "%s = %s is too short", e->key, e->value);
        return 0;
}

static int config_audience(Line *l, PluginConfigError *err, const prakat_config_entry *e) {
        unsigned long long village, id;

        if (parse_unsigned(e->key + strlen("audience."), 9999, &village) < 0 || village == 0)
                return plugin_config_fail(err, e->line,
                                   "'%s': write audience.N with N the village number, e.g. audience.3 = 4389303728991",
                                   e->key);
        if (parse_unsigned(e->value, (unsigned long long) INT64_MAX, &id) < 0 || id == 0)
                return plugin_config_fail(err, e->line,
                                   "%s = %s is not an audience group id (the number LINE gave the audience, e.g. "
                                   "4389303728991)", e->key, e->value);
        Audience *p = realloc(l->audiences, (l->n_audiences + 1) * sizeof(Audience));
        if (!p)
                return -ENOMEM;
        l->audiences = p;
        l->audiences[l->n_audiences++] = (Audience) { .village = (unsigned) village, .id = (long long) id };
        return 0;
}

static int config_apply(Line *l, PluginConfigError *err, const prakat_config_entry *e, unsigned *token_line) {
        const char *k = e->key, *v = e->value;
        unsigned long long n;

        if (!strcmp(k, "token_file") || !strcmp(k, "token_credential")) {
                *token_line = e->line;
                if (!*v)
                        return plugin_config_fail(err, e->line, "%s is empty", k);
                return plugin_set_string(!strcmp(k, "token_file") ? &l->token_file : &l->token_credential, v);
        }
        if (!strcmp(k, "api_base")) {
                if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
                        return plugin_config_fail(err, e->line, "api_base = %s must start with https:// (or http:// for a "
                                           "local test server)", v);
                int r = plugin_set_string(&l->api_base, v);
                size_t len = l->api_base ? strlen(l->api_base) : 0;
                while (r == 0 && len > 8 && l->api_base[len - 1] == '/')
                        l->api_base[--len] = 0;
                return r;
        }
        if (!strcmp(k, "mode")) {
                if (!strcmp(v, "broadcast"))
                        l->everyone = LINE_ENDPOINT_BROADCAST;
                else if (!strcmp(v, "narrowcast"))
                        l->everyone = LINE_ENDPOINT_NARROWCAST;
                else
                        return plugin_config_fail(err, e->line, "mode = %s: write broadcast or narrowcast", v);
                return 0;
        }
        if (!strcmp(k, "style")) {
                if (!strcmp(v, "flex"))
                        l->style = LINE_STYLE_FLEX;
                else if (!strcmp(v, "text"))
                        l->style = LINE_STYLE_TEXT;
                else
                        return plugin_config_fail(err, e->line, "style = %s: write flex (a card) or text", v);
                return 0;
        }
        if (!strcmp(k, "rate_per_hour") || !strcmp(k, "max_in_flight")) {
                bool rate = !strcmp(k, "rate_per_hour");
                if (parse_unsigned(v, rate ? 3600 : 64, &n) < 0 || n == 0)
                        return plugin_config_fail(err, e->line, "%s = %s: write a whole number from 1 to %u%s", k, v,
                                           rate ? 3600 : 64, rate ? " (LINE allows 60)" : "");
                *(rate ? &l->rate_per_hour : &l->max_in_flight) = (unsigned) n;
                return 0;
        }
        if (!strcmp(k, "timeout")) {
                int r = config_duration(err, e, 100000, &l->timeout);
                if (r == 0 && l->timeout > 600 * USEC_PER_SEC)
                        return plugin_config_fail(err, e->line, "timeout = %s is longer than 10 minutes", v);
                return r;
        }
        if (!strcmp(k, "health_interval"))
                return config_duration(err, e, USEC_PER_SEC, &l->health_interval);
        if (!strcmp(k, "unconfirmed_after")) {
                int r = config_duration(err, e, USEC_PER_SEC, &l->unconfirmed_after);
                if (r == 0 && l->unconfirmed_after > DEFAULT_UNCONFIRMED_AFTER)
                        return plugin_config_fail(err, e->line, "unconfirmed_after = %s is longer than the 24 hours LINE "
                                           "keeps a retry key; a later retry could send twice", v);
                return r;
        }
        if (!strncmp(k, "audience.", 9)) {
                for (size_t i = 0; i < l->n_audiences; i++) {
                        unsigned long long village;
                        if (parse_unsigned(k + 9, 9999, &village) == 0 && l->audiences[i].village == village)
                                return plugin_config_fail(err, e->line, "village %llu has two audiences", village);
                }
                return config_audience(l, err, e);
        }
        return plugin_config_fail(err, e->line, "unknown key '%s' in a LINE channel (known: %s)", k, KNOWN_KEYS);
}

static int config_parse(Line *l, const prakat_config_entry *entries, size_t n, PluginConfigError *err) {
        unsigned token_line = 0;

        for (size_t i = 0; i < n; i++) {
                int r = config_apply(l, err, &entries[i], &token_line);
                if (r == -ENOMEM)
                        return plugin_config_fail(err, entries[i].line, "out of memory");
                if (r < 0)
                        return r;
        }
        if (l->token_file && l->token_credential)
                return plugin_config_fail(err, token_line, "set token_file or token_credential, not both");
        if (!l->token_file && !l->token_credential)
                return plugin_config_fail(err, 0, "missing required key token_file (e.g. token_file = /etc/prakat/%s.token, "
                                   "mode 0600) or token_credential (a systemd credential name)", l->host->channel);
        if (!l->api_base && plugin_set_string(&l->api_base, DEFAULT_API_BASE) < 0)
                return plugin_config_fail(err, 0, "out of memory");

        char error[512];
        int r = plugin_read_secret(l->host, l->token_file, l->token_credential, &l->token, error, sizeof error);
        if (r < 0)
                return plugin_config_fail(err, token_line, "%s", error);
        return 0;
}

/* Removes records of sends that ended long ago; a record is a few hundred bytes, but they add up. */
static void purge_old_keys(Line *l) {
        DIR *d = opendir(l->keys_dir);
        prakat_usec_t now = l->host->now(l->host);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char *path = NULL;
                struct stat st;
                LineKey key;
                if (de->d_name[0] == '.' || asprintf(&path, "%s/%s", l->keys_dir, de->d_name) < 0)
                        continue;
                size_t len = strlen(de->d_name);
                if (len > 4 && !strcmp(de->d_name + len - 4, ".tmp"))
                        (void) unlink(path); /* left by a crash while writing */
                else if (stat(path, &st) == 0 &&
                         (prakat_usec_t) st.st_mtime * USEC_PER_SEC + KEY_FILES_KEPT < now &&
                         line_key_load(path, &key) == 0 && key.request_id[0])
                        (void) unlink(path);
                free(path);
        }
        closedir(d);
}

static void line_free(Line *l) {
        if (!l)
                return;
        while (l->sends) {
                Send *s = l->sends;
                send_unlink(s);
                send_free(s);
        }
        l->host->timer_cancel(l->health_timer);
        l->host->http_cancel(l->health_call);
        plugin_free_secret(l->token);
        free(l->token_file);
        free(l->token_credential);
        free(l->api_base);
        free(l->audiences);
        free(l->keys_dir);
        free(l->window_path);
        line_window_done(&l->window);
        free(l);
}

static int line_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                          void **ret_instance, char *error, size_t error_size, unsigned *ret_error_line) {
        PluginConfigError err = { .text = error, .size = error_size, .line = ret_error_line };
        Line *l = calloc(1, sizeof(Line));
        int r;

        if (!l)
                return plugin_config_fail(&err, 0, "out of memory");
        *l = (Line) {
                .host = host,
                .everyone = LINE_ENDPOINT_BROADCAST,
                .style = LINE_STYLE_FLEX,
                .rate_per_hour = DEFAULT_RATE_PER_HOUR,
                .max_in_flight = DEFAULT_MAX_IN_FLIGHT,
                .timeout = DEFAULT_TIMEOUT,
                .health_interval = DEFAULT_HEALTH_INTERVAL,
                .unconfirmed_after = DEFAULT_UNCONFIRMED_AFTER,
                .health = HEALTH_CHECKING,
                .quota_value = -1,
        };
        snprintf(l->health_text, sizeof l->health_text, "checking the token and the quota");
        r = config_parse(l, entries, n_entries, &err);
        if (r == 0 && (asprintf(&l->keys_dir, "%s/keys", host->state_dir) < 0 ||
                       asprintf(&l->window_path, "%s/sends", host->state_dir) < 0))
                r = plugin_config_fail(&err, 0, "out of memory");
        if (r == 0 && !PRAKAT_HOST_CHECKING(host) && mkdir(l->keys_dir, 0700) < 0 && errno != EEXIST)
                r = plugin_config_fail(&err, 0, "cannot create %s: %s", l->keys_dir, strerror(errno));
        if (r == 0 && line_window_init(&l->window, l->rate_per_hour) < 0)
                r = plugin_config_fail(&err, 0, "out of memory");
        if (r < 0) {
                line_free(l);
                return r;
        }
        if (PRAKAT_HOST_CHECKING(host)) { /* prakatd --check: nothing removed, nothing asked */
                *ret_instance = l;
                return 0;
        }
        line_window_load(&l->window, l->window_path, host->now(host), USEC_PER_HOUR);
        purge_old_keys(l);
        health_arm(l, 0);
        *ret_instance = l;
        return 0;
}

static int line_health(void *instance, char *buffer, size_t buffer_size) {
        Line *l = instance;

        snprintf(buffer, buffer_size, "%s", l->health_text);
        switch (l->health) {
        case HEALTH_OK:
        case HEALTH_CHECKING:
                return 0;
        case HEALTH_QUOTA_USED:
                return -EDQUOT;
        default:
                return -EIO;
        }
}

static void line_destroy(void *instance) {
        line_free(instance);
}

PRAKAT_CHANNEL_DEFINE(line, "line", LINE_VERSION);
