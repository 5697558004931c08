/* SPDX-License-Identifier: MIT */
/*
 * facebook.h: what the three files of the Facebook channel share.
 *
 *   graph.c     the Graph API as data: answers classified by error.code, usage headers, the post text
 *               and its marker, form and multipart bodies.  No I/O, no state.
 *   store.c     the small durable files in host->state_dir that let a restarted prakatd know what is
 *               (or may be) on the Page: posts/ID, pending/ID, photos/ID.
 *   facebook.c  the plugin: config, the per-instance request queue, the job state machine, health.
 */
#ifndef PRAKAT_FACEBOOK_H
#define PRAKAT_FACEBOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prakat-channel.h"
#include "plugin-util.h"

#define FB_USEC_PER_SEC 1000000ULL


/* ---- graph.c ---- */

/* What an answer of the Graph API means for the request that got it. */
typedef enum GraphClass {
        GRAPH_OK,        /* 2xx with a JSON object: parsed into GraphOutcome.json */
        GRAPH_AMBIGUOUS, /* may or may not have been executed: timeout, dropped connection, 5xx, codes 1/2 */
        GRAPH_NOT_SENT,  /* never reached Facebook: connection refused, name or TLS failure */
        GRAPH_TRANSIENT, /* refused for now, not executed (is_transient, 368): try again later */
        GRAPH_THROTTLED, /* 4, 17, 32, 341, 613, 800xx: stop calling until the usage headers say */
        GRAPH_AUTH,      /* 190, 102 and the token subcodes: the token is expired, revoked or wrong */
        GRAPH_DUPLICATE, /* 506: the same text as the Page's latest post */
        GRAPH_MISSING,   /* the object does not exist (100/33, 803): already deleted */
        GRAPH_PERMANENT, /* anything else: the request itself is wrong, retrying will not help */
} GraphClass;

typedef struct GraphOutcome {
        GraphClass klass;
        long status;
        int code;    /* error.code, 0 when none */
        int subcode; /* error.error_subcode, 0 when none */
        bool slow;   /* 368 and similar: retry, but not soon */
        prakat_usec_t regain; /* from the usage headers: how long the throttling lasts, 0 = not said */
        json_t *json;         /* GRAPH_OK: the parsed body (owned) */
        char text[400];       /* for people, English, e.g. "Facebook error 100: (#100) ..."; never a secret */
} GraphOutcome;

void graph_classify(const prakat_http_response *response, GraphOutcome *ret);
void graph_outcome_done(GraphOutcome *o);
const char *graph_class_name(GraphClass klass);

/* The longest estimated_time_to_regain_access (minutes) of the usage headers, or Retry-After; 0 when none. */
prakat_usec_t graph_usage_regain(const prakat_http_response *response);

/* Text of a post: title, blank line, body (cut at a boundary when very long), blank line, marker. */
#define GRAPH_BODY_MAX_CHARS 8000
char *graph_compose_message(const char *title, const char *body, const char *article_url, const char *id);
/* The line that ends every post and identifies its announcement: the article URL, or an id line. */
char *graph_marker(const char *article_url, const char *id);
/* Whether `message` contains `marker` as a whole word (blank or the text's end on both sides). */
bool graph_message_has_marker(const char *message, const char *marker);

/* Ids that may go into a URL path or a file name: [A-Za-z0-9._-], not starting with '.', <= 128. */

/* application/x-www-form-urlencoded */
void graph_form_add(PluginBuf *form, const char *name, const char *value);
/* multipart/form-data: fields, then one file read from `path` (at most max_size bytes). */
void graph_multipart_field(PluginBuf *body, const char *boundary, const char *name, const char *value);
int graph_multipart_file(PluginBuf *body, const char *boundary, const char *name, const char *filename,
                         const char *mime, const char *path, uint64_t max_size);
void graph_multipart_end(PluginBuf *body, const char *boundary);

/* Overwrites every occurrence of `secret` in `text` with "[token]" (shortening the text). */
void graph_scrub(char *text, const char *secret);

/* A JSON member as a string, or NULL; a number is formatted into `buffer`. */
const char *graph_json_id(json_t *object, const char *key, char *buffer, size_t size);

/* ---- store.c ---- */

typedef struct StorePending {
        prakat_usec_t since;  /* when the first create request that may have gone out was sent */
        unsigned failures;    /* reconciliations that could not read the Page since then */
} StorePending;

int store_init(const char *state_dir);
/* posts/ID: the post an announcement is published as (and its link). -ENOENT when none. */
int store_read_post(const char *state_dir, const char *id, char **ret_post_id, char **ret_link);
int store_write_post(const char *state_dir, const char *id, const char *post_id, const char *link);
/* pending/ID: written before a create request leaves: "a post may be on the Page". */
int store_read_pending(const char *state_dir, const char *id, StorePending *ret);
int store_write_pending(const char *state_dir, const char *id, const StorePending *p);
/* photos/ID: the unpublished photos already uploaded for a several-photo post, in order. */
int store_read_photos(const char *state_dir, const char *id, char ***ret_ids, size_t *ret_n);
int store_write_photos(const char *state_dir, const char *id, char *const *ids, size_t n);
/* Removes pending/ID or photos/ID ("pending", "photos"); a missing file is fine. */
int store_remove(const char *state_dir, const char *kind, const char *id);
void store_settle(const char *state_dir, char *const *ids, size_t n);

#endif
