/* SPDX-License-Identifier: MIT */
/*
 * announcement: what staff write (DESIGN §3), parsed and validated into one structure.
 *
 * The three forms (NAME.txt/.md, NAME.json, a bundle folder) are first reduced to the same list of
 * fields, then checked by one function, so every rule and every message exists once.
 */
#pragma once

#include <jansson.h>

#include "config.h"
#include "prakat-channel.h"
#include "util.h"

#define ANNOUNCEMENT_ID_MAX 64
#define ANNOUNCEMENT_TITLE_MAX 300   /* characters */
#define ANNOUNCEMENT_TEXT_MAX (1024 * 1024) /* bytes of the announcement text itself */
#define ANNOUNCEMENT_HEADER_LINE_MAX 2000

typedef struct Announcement {
        char *id;
        bool id_given; /* the writer chose it with ID: */
        char *title;
        char *body;
        char *category;
        char *author;
        prakat_priority priority;
        usec_t received;
        usec_t publish_at;
        usec_t expires; /* 0 = never */
        bool all_villages;
        unsigned *villages;
        size_t n_villages;
        char **broadcast_at; /* slot names ("morning", "evening") or UTC ISO 8601 times */
        size_t n_broadcast_at;
        unsigned repeat;
        char **channels; /* enabled channels to deliver to, in config order */
        size_t n_channels;
        char **skipped_channels; /* chosen (or defaulted) but disabled in the config */
        size_t n_skipped_channels;
        char **attachments; /* relative paths inside the bundle */
        size_t n_attachments;
        char *audio;
        char *replaces;
        char *cancel;
        char *source_name; /* the name it had in incoming/ */
        char *encoding;    /* as detected */
        uint64_t source_hash; /* FNV-1a of the original bytes (of every file, for a bundle) */
        char *source_bytes;   /* a single file as read at intake, until the queue has its copy; else NULL */
        size_t source_size;
} Announcement;

typedef struct ParseError {
        unsigned line; /* 0 when it is not about one line */
        char *th;      /* what is wrong and how to fix it, in Thai */
        char *en;      /* the same in English */
} ParseError;

typedef struct ParseContext {
        const Config *config;
        usec_t now;
} ParseContext;

/*
 * Reads and checks the announcement at `path` (a .txt/.md/.json file or a bundle folder), named
 * `name` in messages.  Returns 0 and *ret, or a negative errno with *ret_error filled in:
 * -EINVAL for content the writer must fix, other errors for I/O (error filled in as well).
 */
int announcement_load(const ParseContext *ctx, const char *path, const char *name, Announcement **ret,
                      ParseError *ret_error);

/* The parsers behind announcement_load(), for text already in memory (tests, `prakat validate`). */
int announcement_parse_text(const ParseContext *ctx, const char *name, const void *data, size_t size,
                            const char *bundle_dir, Announcement **ret, ParseError *ret_error);
int announcement_parse_json(const ParseContext *ctx, const char *name, const void *data, size_t size,
                            const char *bundle_dir, Announcement **ret, ParseError *ret_error);

void announcement_free(Announcement *a);
void parse_error_done(ParseError *e);

/* Sets the error of a Cancel:/Replaces: naming an id that was never received. */
void announcement_target_missing(const Announcement *a, ParseError *e);

/* The Thai-and-English text of NAME.error.txt. */
char *parse_error_format(const ParseError *e, const char *name, usec_t now);

/* Durable form (state/queue/ID/announcement.json). */
json_t *announcement_to_json(const Announcement *a);
int announcement_from_json(const json_t *j, Announcement **ret);

bool announcement_id_valid(const char *id);
const char *priority_to_string(prakat_priority p);
