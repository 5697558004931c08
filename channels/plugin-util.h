/* SPDX-License-Identifier: MIT */
/*
 * plugin-util.h: small helpers shared by channel plugins, so that each plugin does not grow its
 * own copy.  Header-only (static functions) because a plugin links against nothing of prakat's;
 * it needs only libc and prakat-channel.h.
 *
 *  - plugin_read_secret(): a token from `token_file` or from a systemd credential
 *    (`token_credential`, read from $CREDENTIALS_DIRECTORY), refusing a file that group or others
 *    may read.  The secret itself never appears in an error message.
 *  - plugin_uuid4(): a random UUID (for LINE's X-Line-Retry-Key).
 *  - plugin_write_file_durable(): a small state file written whole (temporary, fsync, rename,
 *    fsync of the folder), for what a plugin must remember across restarts.
 *  - plugin_read_small_file(): the other way round.
 *  - PluginConfigError, plugin_config_fail(), plugin_set_string(), plugin_parse_duration(): what
 *    every configure() needs to report an error with its line and read the usual values.
 *  - PluginBuf: a growable text buffer that remembers an allocation failure until the end.
 *  - plugin_utf8_decode(), plugin_id_is_safe(): for text and for ids that become file names.
 */
#ifndef PRAKAT_PLUGIN_UTIL_H
#define PRAKAT_PLUGIN_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prakat-channel.h"

#define PLUGIN_SECRET_MAX 8192
#define PLUGIN_USEC_PER_SEC ((prakat_usec_t) 1000000ULL)

/* ---- a growable buffer; an allocation failure is remembered and reported once, at the end ---- */

typedef struct PluginBuf {
        char *data; /* NUL-terminated once anything was put */
        size_t size;
        size_t allocated;
        bool failed;
} PluginBuf;

static inline void plugin_buf_reserve(PluginBuf *b, size_t extra) {
        if (b->failed || b->size + extra + 1 <= b->allocated)
                return;
        size_t want = b->allocated ? b->allocated * 2 : 1024;
        while (want < b->size + extra + 1)
                want *= 2;
        char *p = realloc(b->data, want);
        if (!p) {
                b->failed = true;
                return;
        }
        b->data = p;
        b->allocated = want;
}

static inline void plugin_buf_put(PluginBuf *b, const void *data, size_t size) {
        plugin_buf_reserve(b, size);
        if (b->failed)
                return;
        if (size > 0)
                memcpy(b->data + b->size, data, size);
        b->size += size;
        b->data[b->size] = 0;
}

static inline void plugin_buf_puts(PluginBuf *b, const char *s) {
        plugin_buf_put(b, s, strlen(s));
}

static inline void plugin_buf_printf(PluginBuf *b, const char *format, ...) __attribute__((format(printf, 2, 3)));
static inline void plugin_buf_printf(PluginBuf *b, const char *format, ...) {
        va_list ap;
        plugin_buf_reserve(b, 128); /* most pieces fit: formatted once, straight into the buffer */
        if (b->failed)
                return;
        size_t room = b->allocated - b->size;
        va_start(ap, format);
        int n = vsnprintf(b->data + b->size, room, format, ap);
        va_end(ap);
        if (n < 0) {
                b->failed = true;
                return;
        }
        if ((size_t) n >= room) {
                plugin_buf_reserve(b, (size_t) n);
                if (b->failed)
                        return;
                va_start(ap, format);
                vsnprintf(b->data + b->size, (size_t) n + 1, format, ap);
                va_end(ap);
        }
        b->size += (size_t) n;
}

static inline void plugin_buf_free(PluginBuf *b) {
        free(b->data);
        *b = (PluginBuf) {};
}

/* Hands the NUL-terminated contents over (the caller frees them); NULL if an allocation failed. */
static inline char *plugin_buf_steal(PluginBuf *b, size_t *ret_size) {
        if (!b->failed && !b->data)
                plugin_buf_put(b, "", 0);
        if (b->failed) {
                plugin_buf_free(b);
                return NULL;
        }
        char *data = b->data;
        if (ret_size)
                *ret_size = b->size;
        *b = (PluginBuf) {};
        return data;
}

/* ---- text and ids ---- */

/* Length of the well-formed UTF-8 sequence at `s` (1..4) and its code point, or 0 when it is not one. */
static inline size_t plugin_utf8_decode(const unsigned char *s, size_t left, uint32_t *ret_cp) {
        size_t n;
        uint32_t cp, min;

        if (s[0] < 0x80) {
                *ret_cp = s[0];
                return 1;
        }
        if ((s[0] & 0xE0) == 0xC0)
                n = 2, cp = s[0] & 0x1F, min = 0x80;
        else if ((s[0] & 0xF0) == 0xE0)
                n = 3, cp = s[0] & 0x0F, min = 0x800;
        else if ((s[0] & 0xF8) == 0xF0)
                n = 4, cp = s[0] & 0x07, min = 0x10000;
        else
                return 0;
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        *ret_cp = cp;
        return n;
}

#define PLUGIN_MAX_ID_LENGTH 128

/* An id (announcement or platform) safe to use as a file or URL name: [A-Za-z0-9._-], no leading dot. */
static inline bool plugin_id_is_safe(const char *id) {
        size_t n = id ? strlen(id) : 0;
        if (n == 0 || n > PLUGIN_MAX_ID_LENGTH || id[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", id[i]))
                        return false;
        return true;
}

/* Where configure() reports: the caller's error buffer and error line. */
typedef struct PluginConfigError {
        char *text;
        size_t size;
        unsigned *line;
} PluginConfigError;

/* Writes the reason and the line of the offending entry; returns -EINVAL for configure() to return. */
static inline int plugin_config_fail(PluginConfigError *e, unsigned line, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static inline int plugin_config_fail(PluginConfigError *e, unsigned line, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        if (e->text && e->size > 0)
                vsnprintf(e->text, e->size, format, ap);
        va_end(ap);
        if (e->line)
                *e->line = line;
        return -EINVAL;
}

/* Refuses entries[i] when its key was set before it in the section (configure() checks each entry). */
static inline int plugin_config_check_once(const prakat_config_entry *entries, size_t i, PluginConfigError *e) {
        for (size_t j = 0; j < i; j++)
                if (strcmp(entries[i].key, entries[j].key) == 0)
                        return plugin_config_fail(e, entries[i].line, "'%s' is set twice (first on line %u)",
                                                  entries[i].key, entries[j].line);
        return 0;
}

/*
 * A secret is named by one of two keys, a file (`file_key`) or a systemd credential: takes entry `e`,
 * one of the two, into *file or *credential, and refuses an empty value or the second of the pair
 * (*seen_line remembers the first).
 */
static inline int plugin_config_secret_key(const prakat_config_entry *e, const char *file_key,
                                           const char *credential_key, char **file, char **credential,
                                           unsigned *seen_line, PluginConfigError *err) {
        const char *value = e->value ? e->value : "";
        if (!*value)
                return plugin_config_fail(err, e->line, "%s is empty", e->key);
        if (*seen_line)
                return plugin_config_fail(err, e->line, "set only one of %s and %s (the other is on line %u)", file_key,
                                          credential_key, *seen_line);
        *seen_line = e->line;
        char *copy = strdup(value);
        if (!copy)
                return plugin_config_fail(err, e->line, "out of memory");
        char **slot = strcmp(e->key, file_key) == 0 ? file : credential;
        free(*slot);
        *slot = copy;
        return 0;
}

/* Replaces *slot with a copy of value. */
static inline int plugin_set_string(char **slot, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*slot);
        *slot = copy;
        return 0;
}

/* "30s", "10m", "1.5h", "500ms", "1d" (also "sec", "min"); a bare number is seconds. */
static inline int plugin_parse_duration(const char *s, prakat_usec_t *ret) {
        static const struct {
                const char *suffix;
                prakat_usec_t factor;
        } units[] = {
                { "", PLUGIN_USEC_PER_SEC },       { "s", PLUGIN_USEC_PER_SEC },       { "sec", PLUGIN_USEC_PER_SEC },
                { "ms", 1000 },                    { "m", 60 * PLUGIN_USEC_PER_SEC },  { "min", 60 * PLUGIN_USEC_PER_SEC },
                { "h", 3600 * PLUGIN_USEC_PER_SEC }, { "d", 86400 * PLUGIN_USEC_PER_SEC },
        };
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !(v >= 0 && v < 1e9) || s[0] == '-' || s[0] == '+')
                return -EINVAL;
        while (*end == ' ')
                end++;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                if (strcmp(end, units[i].suffix) == 0) {
                        double u = v * (double) units[i].factor;
                        if (u > 1e17)
                                return -ERANGE;
                        *ret = (prakat_usec_t) u;
                        return 0;
                }
        return -EINVAL;
}

static inline void plugin_error(char *error, size_t size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static inline void plugin_error(char *error, size_t size, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(error, size, format, ap);
        va_end(ap);
}

/* Reads a whole small regular file (not following a final symlink), NUL-terminated. */
static inline int plugin_read_small_file(const char *path, size_t max, char **ret, struct stat *ret_st) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st = {};
        int r = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EBADF : (uint64_t) st.st_size > max ? -EFBIG : 0;
        if (r < 0) {
                close(fd);
                return r;
        }
        char *data = malloc((size_t) st.st_size + 1);
        size_t got = 0;
        while (data && got < (size_t) st.st_size) {
                ssize_t n = read(fd, data + got, (size_t) st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        close(fd);
        if (!data)
                return -ENOMEM;
        data[got] = 0;
        *ret = data;
        if (ret_st)
                *ret_st = st;
        return 0;
}

/*
 * The channel's secret: from $CREDENTIALS_DIRECTORY/`credential` when `credential` is set, else
 * from `token_file` (relative to host->config_dir).  A file readable by group or others is
 * refused.  Trailing blanks and newlines are dropped; a secret with blanks or control characters
 * inside is refused.  On error returns a negative errno and writes a one-line reason with the
 * fix into `error` (never the secret).
 */
static inline int plugin_read_secret_blanks(const prakat_host *host, const char *token_file, const char *credential,
                                            bool drop_blanks, char **ret, char *error, size_t error_size);

static inline int plugin_read_secret(const prakat_host *host, const char *token_file, const char *credential,
                                     char **ret, char *error, size_t error_size) {
        return plugin_read_secret_blanks(host, token_file, credential, false, ret, error, error_size);
}

/*
 * The same, and with drop_blanks the spaces inside are removed first: a WordPress application
 * password is shown as "abcd EFGH ijkl MNOP qrst UVWX", and WordPress ignores the spaces.
 */
static inline int plugin_read_secret_blanks(const prakat_host *host, const char *token_file, const char *credential,
                                            bool drop_blanks, char **ret, char *error, size_t error_size) {
        char path[4096];
        if (credential) {
                const char *dir = getenv("CREDENTIALS_DIRECTORY");
                if (!dir || !*dir) {
                        plugin_error(error, error_size,
                                     "token_credential = %s, but no systemd credentials were passed "
                                     "($CREDENTIALS_DIRECTORY is unset); add LoadCredential=%s:... to the unit, "
                                     "or use token_file instead",
                                     credential, credential);
                        return -ENOENT;
                }
                if (strchr(credential, '/') || !strcmp(credential, ".") || !strcmp(credential, "..")) {
                        plugin_error(error, error_size, "token_credential must be a plain name, not a path");
                        return -EINVAL;
                }
                snprintf(path, sizeof path, "%s/%s", dir, credential);
        } else if (token_file) {
                if (token_file[0] == '/' || !host->config_dir)
                        snprintf(path, sizeof path, "%s", token_file);
                else
                        snprintf(path, sizeof path, "%s/%s", host->config_dir, token_file);
        } else {
                plugin_error(error, error_size,
                             "no token: set token_file = /etc/prakat/%s.token (mode 0600) or token_credential",
                             host->channel);
                return -EINVAL;
        }

        char *data = NULL;
        struct stat st = {};
        int r = plugin_read_small_file(path, PLUGIN_SECRET_MAX, &data, &st);
        if (r < 0) {
                plugin_error(error, error_size, "cannot read the token file %s: %s%s", path, strerror(-r),
                             r == -ENOENT ? " (create it, readable only by prakat: chmod 600)" : "");
                return r;
        }
        if (!credential && (st.st_mode & 077)) {
                plugin_error(error, error_size,
                             "the token file %s may be read by group or others (mode %04o); "
                             "fix: chmod 600 %s",
                             path, (unsigned) (st.st_mode & 07777), path);
                free(data);
                return -EPERM;
        }
        size_t n = strlen(data);
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' ' || data[n - 1] == '\t'))
                data[--n] = 0;
        if (drop_blanks) {
                size_t k = 0;
                for (size_t i = 0; i < n; i++)
                        if (data[i] != ' ')
                                data[k++] = data[i];
                memset(data + k, 0, n - k);
                n = k;
        }
        bool bad = n == 0;
        for (size_t i = 0; i < n && !bad; i++)
                bad = (unsigned char) data[i] <= ' ' || data[i] == 0x7f;
        if (bad) {
                plugin_error(error, error_size,
                             "the token file %s is empty or has blanks inside; it must hold the token alone",
                             path);
                explicit_bzero(data, n);
                free(data);
                return -EINVAL;
        }
        *ret = data;
        return 0;
}

/* Forgets a secret: overwrites it before freeing. */
static inline void plugin_free_secret(char *secret) {
        if (secret) {
                explicit_bzero(secret, strlen(secret));
                free(secret);
        }
}

/* A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", into out[37]. */
static inline int plugin_uuid4(char out[37]) {
        uint8_t b[16];
        size_t got = 0;
        while (got < sizeof b) {
                ssize_t n = getrandom(b + got, sizeof b - got, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                got += (size_t) n;
        }
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

/*
 * Writes `path` whole: temporary file beside it, then rename, so a reader never sees half of it.
 * With `durable`, also fsync before the rename and fsync of the folder after: what must survive a
 * crash.  Without, a crash may leave the previous version (for bookkeeping that can be rebuilt).
 */
static inline int plugin_write_file(const char *path, const void *data, size_t size, bool durable) {
        char tmp[4096], dir[4096];
        const char *slash = strrchr(path, '/');
        if (!slash || (size_t) snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
                return -ENAMETOOLONG;
        snprintf(dir, sizeof dir, "%.*s", (int) (slash - path), path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        const char *p = data;
        int r = 0;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                p += n, size -= (size_t) n;
        }
        if (r == 0 && durable && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        if (!durable)
                return 0;
        int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0)
                return -errno;
        r = fsync(d) < 0 ? -errno : 0;
        close(d);
        return r;
}

/* Writes `path` whole and durably: temporary file beside it, fsync, rename, fsync of the folder. */
static inline int plugin_write_file_durable(const char *path, const void *data, size_t size) {
        return plugin_write_file(path, data, size, true);
}

/* ---- a channel's secret after start-up, and the addresses of its API ---- */

/* Where the secret comes from, for a message that tells a person where to put a new one. */
static inline const char *plugin_secret_place(const prakat_host *host, const char *file, const char *credential,
                                              char *buffer, size_t size) {
        if (credential)
                snprintf(buffer, size, "the systemd credential %s", credential);
        else if (file && (file[0] == '/' || !host->config_dir))
                snprintf(buffer, size, "%s", file);
        else
                snprintf(buffer, size, "%s/%s", host->config_dir ? host->config_dir : ".", file ? file : "");
        return buffer;
}

/*
 * Reads the secret again (plugin_read_secret()) and takes it into *slot when it differs from the one
 * held there.  Returns 1 when it changed, 0 when it is the same, or a negative errno with the reason in
 * `error` (the secret held is kept: a file that went bad does not stop a working channel).
 */
static inline int plugin_secret_reload_blanks(const prakat_host *host, const char *file, const char *credential,
                                              bool drop_blanks, char **slot, char *error, size_t error_size) {
        char *secret = NULL;
        int r = plugin_read_secret_blanks(host, file, credential, drop_blanks, &secret, error, error_size);
        if (r < 0)
                return r;
        if (*slot && strcmp(secret, *slot) == 0) {
                plugin_free_secret(secret);
                return 0;
        }
        plugin_free_secret(*slot);
        *slot = secret;
        return 1;
}

static inline int plugin_secret_reload(const prakat_host *host, const char *file, const char *credential,
                                       char **slot, char *error, size_t error_size) {
        return plugin_secret_reload_blanks(host, file, credential, false, slot, error, error_size);
}

typedef enum PluginUrlProblem {
        PLUGIN_URL_OK,
        PLUGIN_URL_NOT_HTTP,   /* not http(s)://host... */
        PLUGIN_URL_CHARACTERS, /* blanks, quotes, '?', '#' or other characters that would need escaping */
        PLUGIN_URL_PLAIN_HTTP, /* http:// to another machine: the secret would travel in the clear */
} PluginUrlProblem;

/* An API's address: https://host[/path], or plain http:// only to this machine (tests, a local proxy). */
static inline PluginUrlProblem plugin_url_check(const char *url) {
        const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8
                           : strncmp(url, "http://", 7) == 0 ? url + 7
                                                             : NULL;
        if (!rest || !*rest || *rest == '/')
                return PLUGIN_URL_NOT_HTTP;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f || strchr("\"'<>\\^`{|}#?", *p))
                        return PLUGIN_URL_CHARACTERS;
        if (rest == url + 8)
                return PLUGIN_URL_OK;
        size_t n = strcspn(rest, "/");
        static const char *const local[] = { "127.0.0.1", "localhost", "[::1]" };
        for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
                size_t m = strlen(local[i]);
                if (n >= m && strncmp(rest, local[i], m) == 0 && (n == m || rest[m] == ':'))
                        return PLUGIN_URL_OK;
        }
        return PLUGIN_URL_PLAIN_HTTP;
}

#endif
