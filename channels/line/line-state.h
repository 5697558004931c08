/* SPDX-License-Identifier: MIT */
/*
 * line-state.h: what the LINE channel remembers across restarts, in host->state_dir.
 *
 *   keys/ID.publish   the retry-key record of announcement ID's send
 *   keys/ID.retract   the retry-key record of the correction that withdraws ID
 *   sends             when the recent broadcast/narrowcast requests left (the hourly window)
 *
 * A retry-key record is written whole and durably (plugin_write_file_durable()) BEFORE the
 * first request that carries the key, again before every later request (marking it pending),
 * and after every answer.  So after a crash the record always says whether a request may have
 * reached LINE: if it may have, only the same key is ever sent again (LINE answers 409 when it
 * had accepted it), and once the key is too old for LINE to remember, nothing is sent at all.
 */
#ifndef PRAKAT_LINE_STATE_H
#define PRAKAT_LINE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "prakat-channel.h"

typedef enum LineEndpoint {
        LINE_ENDPOINT_NONE = 0, /* the key has not been sent yet */
        LINE_ENDPOINT_BROADCAST,
        LINE_ENDPOINT_NARROWCAST,
} LineEndpoint;

typedef struct LineKey {
        char key[37];          /* the X-Line-Retry-Key, a UUID */
        LineEndpoint endpoint; /* where the key was first sent: LINE keeps keys per endpoint */
        prakat_usec_t created;
        prakat_usec_t first_sent; /* 0 until a request carried the key; LINE keeps it 24 h from here */
        prakat_usec_t last_sent;
        unsigned attempts; /* requests that carried the key */
        bool in_doubt;     /* a request may have been accepted without our hearing the answer */
        bool pending;      /* a request was on its way when this was written (read back: in doubt) */
        char request_id[64]; /* x-line-request-id of the accepted request; "" until accepted */
        prakat_usec_t accepted;
        char phase[16];    /* narrowcast: "succeeded" or "failed" once LINE said so; "" before */
        char detail[256];  /* narrowcast: LINE's description of a failure */
} LineKey;

/* A fresh record with a new random key, created `now`. */
int line_key_init(LineKey *ret, prakat_usec_t now);

/*
 * Reads a record.  Returns 0, -ENOENT when there is none, -EBADMSG when the file is not a record
 * (a pending request in it is reported as in_doubt), or another negative errno.
 */
int line_key_load(const char *path, LineKey *ret);

/* Writes a record whole; durably (fsync) when it is pending, i.e. right before a request leaves. */
int line_key_save(const char *path, const LineKey *key);

/* Endpoint names as stored and as in the URL ("broadcast", "narrowcast"). */
const char *line_endpoint_name(LineEndpoint e);

/*
 * The hourly window: the times of recent sends, oldest first.  Loading drops entries older than
 * `window` before `now` and keeps at most `max`; a missing or damaged file is an empty window.
 */
typedef struct LineWindow {
        prakat_usec_t *times;
        size_t n;
        size_t max;
        size_t file_lines; /* in the file: appended to, rewritten once mostly expired (or cut off) */
} LineWindow;

int line_window_init(LineWindow *w, size_t max);
void line_window_done(LineWindow *w);
void line_window_load(LineWindow *w, const char *path, prakat_usec_t now, prakat_usec_t window);
void line_window_expire(LineWindow *w, prakat_usec_t now, prakat_usec_t window);
/* 0 when a send may leave now, else how long until the oldest one leaves the window. */
prakat_usec_t line_window_wait(const LineWindow *w, prakat_usec_t now, prakat_usec_t window);
int line_window_add(LineWindow *w, const char *path, prakat_usec_t when);

#endif
