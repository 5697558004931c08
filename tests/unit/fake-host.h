/* SPDX-License-Identifier: MIT */
/*
 * fake-host.h: a prakat_host for channel plugin unit tests, without the core.
 *
 *  - the clock is FakeHost.now, which the test moves by hand;
 *  - timers wait in a list until the test calls fake_host_run_due(), which fires every timer
 *    whose deadline has come (including ones armed by the timers it fires);
 *  - job_finish() records a copy of each result and aborts on a second finish of one job;
 *  - format_date() is a small stand-in for the core's: Asia/Bangkok is UTC+7 all year, so it
 *    adds seven hours and writes Thai month names and Buddhist Era years;
 *  - log() writes to stderr and counts warnings and errors.
 *
 * Use: FakeHost fake; fake_host_init(&fake, state_dir); pass &fake.host to configure();
 * fake_host_done(&fake) after the plugin's destroy().
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prakat-channel.h"

struct FakeHost;

struct prakat_timer {
        struct prakat_timer *next;
        struct FakeHost *fake;
        prakat_usec_t deadline;
        prakat_timer_fn fn;
        void *userdata;
};

typedef struct FakeFinish {
        prakat_job *job;
        prakat_outcome outcome;
        char *message;
        char *link;
        char *remote_id;
        char **attachment_urls;
        size_t n_attachment_urls;
} FakeFinish;

typedef struct FakeHost {
        prakat_host host; /* first member: the host pointer a plugin gets is the FakeHost's address */
        prakat_usec_t now;
        struct prakat_timer *timers;
        FakeFinish *finished;
        size_t n_finished;
        unsigned n_warnings;
        unsigned n_errors;
        bool quiet; /* do not print log lines (they are still counted) */
} FakeHost;

static inline FakeHost *fake_host_of(const prakat_host *host) {
        return (FakeHost *) host;
}

static inline prakat_usec_t fake_host_now(const prakat_host *host) {
        return fake_host_of(host)->now;
}

static inline int fake_host_format_date(const prakat_host *host, prakat_usec_t usec, prakat_date_style style,
                                        char *buffer, size_t size) {
        static const char *const months[] = {
                "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
                "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
        };
        static const char *const short_months[] = {
                "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
        };
        bool utc = style == PRAKAT_DATE_ISO_UTC;
        time_t t = (time_t) (usec / 1000000) + (utc ? 0 : 7 * 3600);
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -EINVAL;
        int y = tm.tm_year + 1900, be = y + 543;
        int n;
        switch (style) {
        case PRAKAT_DATE_THAI_LONG:
                n = snprintf(buffer, size, "%d %s %d เวลา %02d:%02d น.", tm.tm_mday, months[tm.tm_mon], be,
                             tm.tm_hour, tm.tm_min);
                break;
        case PRAKAT_DATE_THAI_LONG_DATE:
                n = snprintf(buffer, size, "%d %s %d", tm.tm_mday, months[tm.tm_mon], be);
                break;
        case PRAKAT_DATE_THAI_SHORT:
                n = snprintf(buffer, size, "%d %s %d %02d:%02d", tm.tm_mday, short_months[tm.tm_mon], be,
                             tm.tm_hour, tm.tm_min);
                break;
        case PRAKAT_DATE_ISO_LOCAL:
                n = snprintf(buffer, size, "%04d-%02d-%02dT%02d:%02d:%02d+07:00", y, tm.tm_mon + 1, tm.tm_mday,
                             tm.tm_hour, tm.tm_min, tm.tm_sec);
                break;
        case PRAKAT_DATE_ISO_UTC:
                n = snprintf(buffer, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, tm.tm_mon + 1, tm.tm_mday,
                             tm.tm_hour, tm.tm_min, tm.tm_sec);
                break;
        case PRAKAT_DATE_DAY:
                n = snprintf(buffer, size, "%04d-%02d-%02d", y, tm.tm_mon + 1, tm.tm_mday);
                break;
        default:
                return -EINVAL;
        }
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

__attribute__((format(printf, 4, 5))) static inline void fake_host_log(const prakat_host *host,
                                                                       prakat_log_level level,
                                                                       const char *announcement_id,
                                                                       const char *format, ...) {
        FakeHost *fake = fake_host_of(host);
        if (level <= PRAKAT_LOG_ERR)
                fake->n_errors++;
        else if (level == PRAKAT_LOG_WARNING)
                fake->n_warnings++;
        if (fake->quiet)
                return;
        va_list ap;
        va_start(ap, format);
        fprintf(stderr, "[fake-host <%d> %s] ", (int) level, announcement_id ? announcement_id : "-");
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static inline int fake_host_timer_start(const prakat_host *host, prakat_usec_t delay, prakat_timer_fn fn,
                                        void *userdata, prakat_timer **ret_timer) {
        FakeHost *fake = fake_host_of(host);
        struct prakat_timer *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (struct prakat_timer) {
                .next = fake->timers,
                .fake = fake,
                .deadline = fake->now + delay,
                .fn = fn,
                .userdata = userdata,
        };
        fake->timers = t;
        *ret_timer = t;
        return 0;
}

static inline void fake_host_timer_cancel(prakat_timer *timer) {
        if (!timer)
                return;
        for (struct prakat_timer **p = &timer->fake->timers; *p; p = &(*p)->next)
                if (*p == timer) {
                        *p = timer->next;
                        free(timer);
                        return;
                }
        fprintf(stderr, "fake-host: timer_cancel() of a timer that is not armed\n");
        abort();
}

static inline int fake_host_http_request(const prakat_host *host, const prakat_http_request *request,
                                         prakat_http_done_fn done, void *userdata, prakat_http_call **ret_call) {
        return -EOPNOTSUPP;
}

static inline void fake_host_http_cancel(prakat_http_call *call) {
}

static inline char *fake_host_strdup(const char *s) {
        return s ? strdup(s) : NULL;
}

static inline FakeFinish *fake_host_finish_of(FakeHost *fake, const prakat_job *job) {
        for (size_t i = 0; i < fake->n_finished; i++)
                if (fake->finished[i].job == job)
                        return &fake->finished[i];
        return NULL;
}

static inline void fake_host_job_finish(const prakat_host *host, prakat_job *job, const prakat_result *result) {
        FakeHost *fake = fake_host_of(host);
        if (fake_host_finish_of(fake, job)) {
                fprintf(stderr, "fake-host: job %p finished twice\n", (void *) job);
                abort();
        }
        FakeFinish *p = realloc(fake->finished, (fake->n_finished + 1) * sizeof(FakeFinish));
        if (!p)
                abort();
        fake->finished = p;
        FakeFinish *f = &p[fake->n_finished++];
        *f = (FakeFinish) {
                .job = job,
                .outcome = result->outcome,
                .message = fake_host_strdup(result->message),
                .link = fake_host_strdup(result->link),
                .remote_id = fake_host_strdup(result->remote_id),
                .n_attachment_urls = result->n_attachment_urls,
        };
        if (result->n_attachment_urls > 0) {
                f->attachment_urls = calloc(result->n_attachment_urls, sizeof(char *));
                for (size_t i = 0; i < result->n_attachment_urls; i++)
                        f->attachment_urls[i] = fake_host_strdup(result->attachment_urls[i]);
        }
}

static inline void fake_host_init(FakeHost *fake, const char *state_dir) {
        *fake = (FakeHost) {
                .host = {
                        .abi_version = PRAKAT_CHANNEL_ABI_VERSION,
                        .struct_size = sizeof(prakat_host),
                        .channel = "website",
                        .state_dir = state_dir,
                        .timezone = "Asia/Bangkok",
                        .now = fake_host_now,
                        .format_date = fake_host_format_date,
                        .log = fake_host_log,
                        .timer_start = fake_host_timer_start,
                        .timer_cancel = fake_host_timer_cancel,
                        .http_request = fake_host_http_request,
                        .http_cancel = fake_host_http_cancel,
                        .job_finish = fake_host_job_finish,
                },
                .now = 1795564800ULL * 1000000ULL, /* 2026-11-25T00:00:00Z */
        };
}

static inline size_t fake_host_n_timers(const FakeHost *fake) {
        size_t n = 0;
        for (const struct prakat_timer *t = fake->timers; t; t = t->next)
                n++;
        return n;
}

/* Fires the earliest due timer; false when none is due.  A fired timer is freed, as the core's is. */
static inline bool fake_host_fire_one(FakeHost *fake) {
        struct prakat_timer **best = NULL;
        for (struct prakat_timer **p = &fake->timers; *p; p = &(*p)->next)
                if ((*p)->deadline <= fake->now && (!best || (*p)->deadline < (*best)->deadline))
                        best = p;
        if (!best)
                return false;
        struct prakat_timer *t = *best;
        *best = t->next;
        prakat_timer_fn fn = t->fn;
        void *userdata = t->userdata;
        free(t);
        fn(userdata);
        return true;
}

/* Fires due timers until none is due; returns how many fired. */
static inline unsigned fake_host_run_due(FakeHost *fake) {
        unsigned n = 0;
        while (fake_host_fire_one(fake))
                n++;
        return n;
}

/* Moves the clock forward and fires what became due. */
static inline unsigned fake_host_advance(FakeHost *fake, prakat_usec_t usec) {
        fake->now += usec;
        return fake_host_run_due(fake);
}

static inline void fake_host_forget_finished(FakeHost *fake) {
        for (size_t i = 0; i < fake->n_finished; i++) {
                FakeFinish *f = &fake->finished[i];
                free(f->message);
                free(f->link);
                free(f->remote_id);
                for (size_t j = 0; j < f->n_attachment_urls; j++)
                        free(f->attachment_urls[j]);
                free(f->attachment_urls);
        }
        free(fake->finished);
        fake->finished = NULL;
        fake->n_finished = 0;
}

/* Frees what the fake holds. Timers still armed mean the plugin's destroy() forgot them. */
static inline size_t fake_host_done(FakeHost *fake) {
        size_t leaked = 0;
        while (fake->timers) {
                struct prakat_timer *t = fake->timers;
                fake->timers = t->next;
                free(t);
                leaked++;
        }
        fake_host_forget_finished(fake);
        return leaked;
}
