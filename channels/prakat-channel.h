/* SPDX-License-Identifier: MIT */
/*
 * prakat-channel.h: the whole ABI between prakatd and a channel plugin.
 *
 * A channel plugin is a shared object (build/channels/NAME.so) that exports one
 * symbol, PRAKAT_CHANNEL_SYMBOL, a `const prakat_channel_plugin`.  prakatd
 * refuses a plugin whose abi_version differs from PRAKAT_CHANNEL_ABI_VERSION or
 * whose struct_size is smaller than the first version of the struct; members added
 * since (preview) are used only when the plugin's struct_size covers them.
 *
 * Rules for plugins:
 *  - include nothing of prakat's but this header;
 *  - never block: all I/O towards a network goes through host->http_request() or
 *    host->transfer_upload() (or, later, the MQTT service); local file writes are allowed;
 *  - all state lives in the instance pointer returned by configure();
 *  - every function that can fail returns 0 or a negative errno.
 *
 * Life of a delivery job: the core calls publish() (or retract()) with a job
 * handle; the plugin finishes it, at once or later from a callback, by calling
 * host->job_finish() exactly once with the outcome.  Until then the job is
 * "sending" on disk; if prakatd dies meanwhile, publish() is called again after
 * the restart with job->interrupted set, so a plugin whose platform has no
 * idempotency can reconcile before it sends again.
 */
#ifndef PRAKAT_CHANNEL_H
#define PRAKAT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PRAKAT_CHANNEL_ABI_VERSION 1
#define PRAKAT_CHANNEL_SYMBOL "prakat_channel_plugin"

typedef uint64_t prakat_usec_t; /* microseconds since the Unix epoch, UTC */

typedef struct prakat_host prakat_host;
typedef struct prakat_job prakat_job;
typedef struct prakat_timer prakat_timer;
typedef struct prakat_http_call prakat_http_call;
typedef struct prakat_io prakat_io;

/* One "key = value" line of the channel's config section, with its line number. */
typedef struct prakat_config_entry {
        const char *key;
        const char *value;
        unsigned line;
} prakat_config_entry;

typedef enum prakat_priority {
        PRAKAT_PRIORITY_NORMAL = 0,
        PRAKAT_PRIORITY_URGENT = 1,
        PRAKAT_PRIORITY_EMERGENCY = 2,
} prakat_priority;

typedef struct prakat_attachment {
        const char *name; /* safe file name as the writer gave it (no directory part) */
        const char *path; /* absolute path of the durable copy in the queue */
        const char *mime; /* guessed from the extension, e.g. "image/jpeg" */
        uint64_t size;
} prakat_attachment;

/* A parsed, validated announcement; read-only, valid for the duration of the call it is passed to. */
typedef struct prakat_announcement {
        const char *id;
        const char *title;
        const char *body;     /* UTF-8, LF line ends */
        const char *category; /* never NULL: the configured default when unset */
        const char *author;   /* NULL when unset */
        prakat_priority priority;
        prakat_usec_t received;   /* when the file was taken */
        prakat_usec_t publish_at; /* when it goes out (== received when "now") */
        prakat_usec_t expires;    /* 0 = never */
        bool all_villages;
        const unsigned *villages; /* sorted, unique; empty when all_villages */
        size_t n_villages;
        const char *const *broadcast_at; /* "morning"/"evening"/... slot names or ISO 8601 UTC times */
        size_t n_broadcast_at;
        unsigned repeat;
        const prakat_attachment *attachments;
        size_t n_attachments;
        const prakat_attachment *audio; /* NULL when unset */
        const char *replaces;           /* id this one updates, or NULL */
        const char *cancel;             /* id this one withdraws, or NULL */
        /* Public URLs, set once the website job has ended; NULL when there is no website. */
        const char *article_url;
        const char *const *attachment_urls; /* parallel to attachments, or NULL */
} prakat_announcement;

typedef enum prakat_outcome {
        PRAKAT_OUTCOME_DONE = 0,        /* delivered */
        PRAKAT_OUTCOME_RETRY = 1,       /* transient: try again after back-off (or retry_after) */
        PRAKAT_OUTCOME_FAILED = 2,      /* permanent: do not try again */
        PRAKAT_OUTCOME_UNCONFIRMED = 3, /* may or may not have gone out; a person must look */
        /*
         * Not an attempt that failed: the work goes on elsewhere (the towers have the item and play it
         * at their slot), and the job comes back after retry_after (required) without that counting as
         * another attempt.  Only for a core that knows it (PRAKAT_HOST_KNOWS_WAIT); an older one would
         * take it for a failure.
         */
        PRAKAT_OUTCOME_WAIT = 4,
} prakat_outcome;

typedef struct prakat_result {
        prakat_outcome outcome;
        const char *message;       /* short, English, for logs and the receipt; never a secret */
        const char *message_th;    /* the same in Thai, or NULL */
        const char *link;          /* public URL of what was published, or NULL */
        const char *remote_id;     /* platform id (post id, ...), or NULL */
        prakat_usec_t retry_after; /* RETRY only: earliest next try, relative; 0 = use back-off */
        /* website only: the public URL of each attachment, parallel to announcement->attachments. */
        const char *const *attachment_urls;
        size_t n_attachment_urls;
} prakat_result;

/* What the core tells a plugin about a job. */
struct prakat_job {
        const char *channel;   /* instance name, e.g. "website" */
        unsigned attempt;      /* 1 on the first try */
        bool interrupted;      /* a previous attempt was cut off by a crash or stop */
        const char *remote_id; /* remote id recorded by an earlier attempt, or NULL */
        void *core;            /* the core's; do not touch */
};

/* ---- HTTP (libcurl multi, inside the event loop) ---- */

typedef struct prakat_http_header {
        const char *name;
        const char *value;
} prakat_http_header;

/*
 * Requests share keep-alive connections (at most 4 per host).  libcurl sends a request again by
 * itself when the reused connection it went out on died before any byte of an answer -- for a call
 * that is not idempotent (a Facebook post) that could publish twice.  A request with the header
 * PRAKAT_HTTP_SEND_ONCE (any value; the core does not send it) is never sent again that way: once
 * its body has left, a connection that dies ends the call with -ECONNRESET, and the plugin treats it
 * like any answer lost on the way ("may have arrived").  It still uses keep-alive connections.  (A
 * request with "Connection: close" goes out on a fresh HTTP/1.1 connection of its own, closed
 * afterwards: the older way to the same end, kept for plugins that use it.)
 */
#define PRAKAT_HTTP_SEND_ONCE "Prakat-Send-Once"

typedef struct prakat_http_request {
        const char *method; /* "GET", "POST", "DELETE", ... */
        const char *url;
        const prakat_http_header *headers;
        size_t n_headers;
        const void *body; /* copied by the core before http_request() returns */
        size_t body_size;
        unsigned timeout_ms;  /* whole transfer; 0 = 30 s */
        size_t max_response;  /* bytes; 0 = 1 MiB; longer bodies end the call with -EFBIG */
} prakat_http_request;

typedef struct prakat_http_response {
        int error;   /* 0, or negative errno: -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EFBIG, -EIO ... */
        const char *error_text; /* libcurl's description when error != 0 */
        long status; /* HTTP status; 0 when no response arrived */
        const char *body; /* NUL-terminated */
        size_t body_size;
        /* Returns the value of a response header (case-insensitive), or NULL. */
        const char *(*header)(const struct prakat_http_response *response, const char *name);
        const void *core;
} prakat_http_response;

typedef enum prakat_date_style {
        PRAKAT_DATE_THAI_LONG,      /* "26 พฤศจิกายน 2569 เวลา 07:00 น." (local time, Buddhist Era) */
        PRAKAT_DATE_THAI_LONG_DATE, /* "26 พฤศจิกายน 2569" */
        PRAKAT_DATE_THAI_SHORT,     /* "26 พ.ย. 2569 07:00" */
        PRAKAT_DATE_ISO_LOCAL,      /* "2026-11-26T07:00:00+07:00" (RFC 3339, for Atom and <time>) */
        PRAKAT_DATE_ISO_UTC,        /* "2026-11-26T00:00:00Z" */
        PRAKAT_DATE_DAY,            /* "2026-11-26" (local calendar day, Common Era) */
} prakat_date_style;

typedef void (*prakat_http_done_fn)(void *userdata, const prakat_http_response *response);

/*
 * One file to put on a remote host (host->transfer_upload).  Strings are copied before
 * transfer_upload() returns; the local file is read while the transfer runs.
 */
typedef struct prakat_transfer {
        /*
         * sftp://user@host[:port]/dir/name, or ftp://user@host[:port]/dir/name with require_tls;
         * percent-encoded.  An SFTP path is absolute; /~/ starts it in the login's home.
         */
        const char *url;
        bool require_tls;             /* ftp:// only, and required there: AUTH TLS, certificate verified */
        const char *local_path;       /* the file to send; NULL removes the remote file instead (gone is fine) */
        const char *rename_to;        /* after the upload, rename the file to this name in the same folder */
        bool create_dirs;             /* create missing folders on the way */
        const char *password;         /* login password, or NULL */
        const char *private_key_file; /* SFTP: the key to log in with (its .pub beside it is not needed) */
        const char *known_hosts_file; /* SFTP, required: the host's key must be listed there and match */
        const char *ca_file;          /* FTPS: the CAs to trust; NULL = the system's */
        unsigned timeout_ms;          /* whole transfer; 0 = 5 min; a transfer stalled for 30 s fails earlier */
} prakat_transfer;

/*
 * An operator's command for one channel instance (see command_handler_set).  Writes a short
 * English answer for the operator into `reply` and returns 0, or a negative errno
 * (-EOPNOTSUPP for a command the plugin does not know) with the reason in `reply`.
 */
typedef int (*prakat_command_fn)(void *userdata, const char *command, char *reply, size_t reply_size);
typedef void (*prakat_timer_fn)(void *userdata);
/* `events`/`revents` are EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP (from <sys/epoll.h>). */
typedef void (*prakat_io_fn)(void *userdata, int fd, uint32_t revents);

typedef enum prakat_log_level {
        PRAKAT_LOG_ERR = 3,
        PRAKAT_LOG_WARNING = 4,
        PRAKAT_LOG_NOTICE = 5,
        PRAKAT_LOG_INFO = 6,
        PRAKAT_LOG_DEBUG = 7,
} prakat_log_level;

/* Services of the core.  Every pointer stays valid until destroy() returns. */
struct prakat_host {
        uint32_t abi_version;
        uint32_t struct_size;
        const char *channel;   /* this instance's name */
        const char *state_dir; /* private, persistent, created by the core for this instance */
        const char *timezone;  /* e.g. "Asia/Bangkok" */

        /* Wall clock, shifted when PRAKAT_NOW is set. */
        prakat_usec_t (*now)(const prakat_host *host);

        /* Formats a time in the configured zone. Returns the length written, or -ENOBUFS. */
        int (*format_date)(const prakat_host *host, prakat_usec_t usec, prakat_date_style style, char *buffer,
                           size_t size);

        /* announcement_id may be NULL. Never pass secrets. */
        void (*log)(const prakat_host *host, prakat_log_level level, const char *announcement_id,
                    const char *format, ...) __attribute__((format(printf, 4, 5)));

        /* One-shot timer firing after `delay` microseconds of the (shifted) wall clock. */
        int (*timer_start)(const prakat_host *host, prakat_usec_t delay, prakat_timer_fn fn, void *userdata,
                           prakat_timer **ret_timer);
        /* Stops and frees a timer that has not fired; a timer frees itself after it fired. NULL is fine. */
        void (*timer_cancel)(prakat_timer *timer);

        /* Starts a request; `done` is called exactly once, never from inside http_request(). */
        int (*http_request)(const prakat_host *host, const prakat_http_request *request, prakat_http_done_fn done,
                            void *userdata, prakat_http_call **ret_call);
        /* Aborts a call; its `done` is not called. NULL is fine. */
        void (*http_cancel)(prakat_http_call *call);

        /* Ends a job. `result` and its strings are copied. Call exactly once per publish()/retract(). */
        void (*job_finish)(const prakat_host *host, prakat_job *job, const prakat_result *result);

        /* The folder of the config file: a relative path in the channel's section is relative to it. */
        const char *config_dir;

        /*
         * Since struct_size grew to include them (check host->struct_size before use): watching a
         * file descriptor the plugin owns in the event loop, for a client library that brings its own
         * socket (libmosquitto without its thread).  The fd must be non-blocking; the plugin still
         * closes it, after io_cancel().  io_set_events() changes what is watched (0 = nothing for now).
         */
        int (*io_watch)(const prakat_host *host, int fd, uint32_t events, prakat_io_fn fn, void *userdata,
                        prakat_io **ret_io);
        int (*io_set_events)(prakat_io *io, uint32_t events);
        void (*io_cancel)(prakat_io *io); /* NULL is fine */

        /*
         * Progress of a job still in flight, for people: replaces the job's note (shown by
         * `prakat show` and kept on disk), e.g. which towers confirmed so far.  May be called any
         * number of times before job_finish(); the strings are copied.  message_th may be NULL.
         */
        void (*job_note)(const prakat_host *host, prakat_job *job, const char *message, const char *message_th);

        /*
         * Since struct_size grew to include them (check with PRAKAT_HOST_HAS): a file upload over SFTP
         * or explicit FTPS, through the same libcurl multi client as http_request(), inside the loop.
         * `done` is called exactly once, never from inside transfer_upload(), with response->error 0
         * on success or a negative errno: -EKEYREJECTED (SFTP host key unknown or changed), -EACCES
         * (login or permission refused), -ENOSPC (the host's disk is full), -EPROTO (TLS certificate
         * refused), -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -ENOENT (local file missing), -EIO
         * (anything else).  response->error_text then says what failed, with the fix where there is
         * one; response->status is the last FTP reply or SFTP status code; there is no body.  Cancel a
         * call with http_cancel().  Returns 0 when the transfer started; -EINVAL for a malformed url
         * or rename_to, -EPROTONOSUPPORT for a scheme other than sftp:// and ftp://, -EPERM for SFTP
         * without known_hosts_file or FTP without require_tls, or the errno of opening local_path
         * (and `done` is then not called).
         */
        int (*transfer_upload)(const prakat_host *host, const prakat_transfer *transfer, prakat_http_done_fn done,
                               void *userdata, prakat_http_call **ret_call);

        /*
         * Since struct_size grew to include it (check with PRAKAT_HOST_HAS): a handler for operator
         * commands sent to this instance over the control socket (`prakat site sync` sends
         * "site-sync").  One handler per instance; NULL removes it (destroy() need not).
         */
        void (*command_handler_set)(const prakat_host *host, prakat_command_fn fn, void *userdata);

        /*
         * Since struct_size grew to include it (check with PRAKAT_HOST_CHECKING): PRAKAT_HOST_CHECK_ONLY
         * when the instance is made only to check the configuration (`prakatd --check`, often run by
         * root while the daemon runs): configure() then reads and checks what it needs to, and writes,
         * creates, removes and connects nothing; the instance is destroyed without being used.
         */
        uint32_t flags;
};

#define PRAKAT_HOST_CHECK_ONLY 1u

/* True when `host` offers member `field` (a plugin built against a newer header may run on an older core). */
#define PRAKAT_HOST_HAS(host, field) \
        ((host)->struct_size >= offsetof(prakat_host, field) + sizeof((host)->field) && (host)->field)

/* True when the core understands PRAKAT_OUTCOME_WAIT (it came with prakat_host.flags). */
#define PRAKAT_HOST_KNOWS_WAIT(host) ((host)->struct_size >= offsetof(prakat_host, flags) + sizeof((host)->flags))

/* True when the instance is made only to check the configuration (see prakat_host.flags). */
#define PRAKAT_HOST_CHECKING(host) (PRAKAT_HOST_HAS(host, flags) && ((host)->flags & PRAKAT_HOST_CHECK_ONLY))

typedef struct prakat_channel_plugin {
        uint32_t abi_version; /* PRAKAT_CHANNEL_ABI_VERSION */
        uint32_t struct_size; /* sizeof(prakat_channel_plugin) */
        const char *name;     /* the plugin's name, e.g. "website" */
        const char *version;

        /*
         * Reads the channel's config section. On error returns -EINVAL, writes a one-line
         * reason into `error` (English; the core prefixes file:line) and sets *ret_error_line to
         * the line of the offending entry (0 when the whole section is at fault).
         */
        int (*configure)(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                         void **ret_instance, char *error, size_t error_size, unsigned *ret_error_line);

        /* Starts delivering `announcement`; ends with host->job_finish(). */
        int (*publish)(void *instance, prakat_job *job, const prakat_announcement *announcement);

        /*
         * Withdraws announcement `target` (already published through this channel with
         * remote id `job->remote_id`); `reason` may be NULL. Ends with host->job_finish().
         * NULL when the channel cannot retract anything.
         */
        int (*retract)(void *instance, prakat_job *job, const prakat_announcement *target, const char *reason);

        /*
         * Writes a short health line into `buffer` ("ok", "token expired", ...) and returns
         * 0 when healthy, -EIO (or another negative errno) when not. May be NULL.
         */
        int (*health)(void *instance, char *buffer, size_t buffer_size);

        /* Frees the instance; in-flight calls and timers of the instance must be cancelled. */
        void (*destroy)(void *instance);

        /*
         * Since struct_size grew to include it (the core checks with PRAKAT_PLUGIN_HAS; NULL is
         * fine): what publish() would send for `announcement` if it ran now, for the person who must
         * approve it (require_approval = yes).  No I/O towards any platform, no blocking, no change
         * of the instance's state; reading local files is allowed.  It must build its payload with
         * the very functions publish() uses, so that what is shown is what goes out.
         *
         * Returns 0 and in *ret_text (malloc'd UTF-8, freed by the core with free()) what would be
         * sent, in a form a person can read (message texts as they are, JSON pretty-printed), or a
         * negative errno (-ENOMEM, -EINVAL for an announcement it could never send) with
         * *ret_text untouched.
         *
         * `page_path` is NULL, or a file a channel that renders a page (the website) may write whole
         * with the page as it will be published (links to pictures may point at their future public
         * URLs).  A website channel's text starts with a line "article_url: URL" (when it knows the
         * address in advance) and one line "attachment_url: URL" per attachment, in order: the core
         * gives these to the other channels' previews as announcement->article_url and
         * attachment_urls, as they will be once the website job has ended.
         */
        int (*preview)(void *instance, const prakat_announcement *announcement, const char *page_path,
                       char **ret_text);
} prakat_channel_plugin;

/* True when `plugin` offers member `field` (a plugin built against an older header lacks the newer ones). */
#define PRAKAT_PLUGIN_HAS(plugin, field)                                                                    \
        ((plugin)->struct_size >= offsetof(prakat_channel_plugin, field) + sizeof((plugin)->field) &&       \
         (plugin)->field)

/* The size of the first version of prakat_channel_plugin: the smallest struct_size a core accepts. */
#define PRAKAT_CHANNEL_PLUGIN_MIN_SIZE offsetof(prakat_channel_plugin, preview)

/*
 * Defines and exports a plugin whose entry points are PREFIX_configure, PREFIX_publish,
 * PREFIX_retract, PREFIX_health, PREFIX_destroy and PREFIX_preview, e.g. PRAKAT_CHANNEL_DEFINE(website, "website",
 * "1.0").  The header names both the type and the symbol "prakat_channel_plugin", and C does not let
 * a variable share its type's typedef name, so the symbol gets that name by an asm label.
 */
#define PRAKAT_CHANNEL_DEFINE(prefix, plugin_name, plugin_version)                                          \
        __attribute__((visibility("default"))) const struct prakat_channel_plugin prefix##_plugin __asm__( \
                PRAKAT_CHANNEL_SYMBOL) = {                                                                  \
                .abi_version = PRAKAT_CHANNEL_ABI_VERSION,                                                  \
                .struct_size = sizeof(struct prakat_channel_plugin),                                        \
                .name = plugin_name,                                                                        \
                .version = plugin_version,                                                                  \
                .configure = prefix##_configure,                                                            \
                .publish = prefix##_publish,                                                                \
                .retract = prefix##_retract,                                                                \
                .health = prefix##_health,                                                                  \
                .destroy = prefix##_destroy,                                                                \
                .preview = prefix##_preview,                                                                \
        }

#ifdef __cplusplus
}
#endif

#endif
