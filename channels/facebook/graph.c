/* SPDX-License-Identifier: MIT */
/*
 * graph.c: the Facebook Graph API as data.  Nothing here does I/O except reading a photo into a
 * multipart body; nothing keeps state.
 *
 * Answers are classified by error.code, never by the HTTP status alone: Graph sends most errors
 * as 400 (token, throttling, duplicates, bad parameters alike), codes 1 and 2 as 500, and a proxy
 * in front of it may answer 502 with an HTML page.  What matters to the caller is whether the
 * request may have been executed (GRAPH_AMBIGUOUS: a create must then be reconciled before it is
 * sent again) or certainly was not.
 */
#include "facebook.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------ */
/* PluginBuf */


/* ------------------------------------------------------------------------------------------------ */
/* Classifying answers */

const char *graph_class_name(GraphClass klass) {
        static const char *const names[] = {
                [GRAPH_OK] = "ok",
                [GRAPH_AMBIGUOUS] = "ambiguous",
                [GRAPH_NOT_SENT] = "not sent",
                [GRAPH_TRANSIENT] = "transient",
                [GRAPH_THROTTLED] = "throttled",
                [GRAPH_AUTH] = "token",
                [GRAPH_DUPLICATE] = "duplicate",
                [GRAPH_MISSING] = "missing",
                [GRAPH_PERMANENT] = "permanent",
        };
        return klass < sizeof(names) / sizeof(names[0]) && names[klass] ? names[klass] : "?";
}

static bool code_is_throttle(int code) {
        /* 80000..80014 are the Business Use Case limits of the various object types. */
        return code == 4 || code == 17 || code == 32 || code == 341 || code == 613 ||
               (code >= 80000 && code <= 80099);
}

static bool subcode_is_token(int subcode) {
        return subcode == 458 || subcode == 459 || subcode == 460 || subcode == 463 || subcode == 464 ||
               subcode == 467;
}

static int json_int(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        if (json_is_integer(v))
                return (int) json_integer_value(v);
        if (json_is_string(v))
                return atoi(json_string_value(v));
        return 0;
}

/* Copies `s` into `out` without control characters (an error text goes into one log line). */
static void copy_line(char *out, size_t size, const char *s) {
        size_t n = 0;
        for (; s && *s && n + 1 < size; s++)
                out[n++] = (unsigned char) *s < ' ' ? ' ' : *s;
        out[n] = 0;
}

static void classify_error_object(json_t *error, long status, GraphOutcome *o) {
        const char *message = json_string_value(json_object_get(error, "message"));
        const char *type = json_string_value(json_object_get(error, "type"));
        const char *user_msg = json_string_value(json_object_get(error, "error_user_msg"));
        char line[300];

        o->code = json_int(error, "code");
        o->subcode = json_int(error, "error_subcode");
        copy_line(line, sizeof line, message ? message : "(no message)");
        if (o->subcode)
                snprintf(o->text, sizeof o->text, "Facebook error %d/%d: %s", o->code, o->subcode, line);
        else
                snprintf(o->text, sizeof o->text, "Facebook error %d: %s", o->code, line);
        if (user_msg && *user_msg) {
                size_t n = strlen(o->text);
                char extra[200];
                copy_line(extra, sizeof extra, user_msg);
                snprintf(o->text + n, sizeof o->text - n, " (%s)", extra);
        }

        if (o->code == 1 || o->code == 2)
                o->klass = GRAPH_AMBIGUOUS;
        else if (code_is_throttle(o->code))
                o->klass = GRAPH_THROTTLED;
        else if (o->code == 190 || o->code == 102 || subcode_is_token(o->subcode))
                o->klass = GRAPH_AUTH;
        else if (o->code == 506)
                o->klass = GRAPH_DUPLICATE;
        else if ((o->code == 100 && o->subcode == 33) || o->code == 803)
                o->klass = GRAPH_MISSING;
        else if (o->code == 368) {
                o->klass = GRAPH_TRANSIENT;
                o->slow = true;
        } else if (json_is_true(json_object_get(error, "is_transient")))
                o->klass = GRAPH_TRANSIENT;
        else if (status >= 500)
                o->klass = GRAPH_AMBIGUOUS;
        else if (o->code == 0 && type && strcmp(type, "OAuthException") == 0 && status == 401)
                o->klass = GRAPH_AUTH;
        else
                o->klass = GRAPH_PERMANENT;
}

void graph_classify(const prakat_http_response *response, GraphOutcome *ret) {
        GraphOutcome o = { .status = response->status };

        if (response->error) {
                const char *why = response->error_text ? response->error_text : strerror(-response->error);
                switch (response->error) {
                case -ECONNREFUSED:
                case -EHOSTUNREACH:
                case -ENETUNREACH:
                case -EPROTO:
                        o.klass = GRAPH_NOT_SENT;
                        snprintf(o.text, sizeof o.text, "cannot reach Facebook: %s", why);
                        break;
                default:
                        /* Timeouts, dropped connections, a cut body: the request may have been executed. */
                        o.klass = GRAPH_AMBIGUOUS;
                        snprintf(o.text, sizeof o.text, "no clear answer from Facebook: %s", why);
                        break;
                }
                *ret = o;
                return;
        }

        json_error_t jerr;
        json_t *root = response->body_size > 0 ? json_loadb(response->body, response->body_size, 0, &jerr) : NULL;
        json_t *error = json_object_get(root, "error");
        if (json_is_object(root) && !json_is_object(error) && json_is_integer(json_object_get(root, "code")) &&
            json_object_get(root, "message"))
                error = root; /* older error paths put the error object at the top level */

        if (response->status >= 200 && response->status < 300 && json_is_object(root) && !json_is_object(error)) {
                o.klass = GRAPH_OK;
                o.json = root;
                snprintf(o.text, sizeof o.text, "ok");
                *ret = o;
                return;
        }
        if (json_is_object(error)) {
                classify_error_object(error, response->status, &o);
        } else if (response->status >= 200 && response->status < 300) {
                o.klass = GRAPH_AMBIGUOUS;
                snprintf(o.text, sizeof o.text, "Facebook answered HTTP %ld, but not with the expected JSON",
                         response->status);
        } else if (response->status == 429) {
                o.klass = GRAPH_THROTTLED;
                snprintf(o.text, sizeof o.text, "Facebook answered HTTP 429 (too many requests)");
        } else if (response->status >= 500) {
                o.klass = GRAPH_AMBIGUOUS;
                snprintf(o.text, sizeof o.text,
                         "Facebook (or a proxy in front of it) answered HTTP %ld without an API error",
                         response->status);
        } else {
                o.klass = GRAPH_PERMANENT;
                snprintf(o.text, sizeof o.text,
                         "Facebook answered HTTP %ld without an API error (is api_base right?)", response->status);
        }
        if (o.klass == GRAPH_THROTTLED)
                o.regain = graph_usage_regain(response);
        json_decref(root);
        *ret = o;
}

void graph_outcome_done(GraphOutcome *o) {
        json_decref(o->json);
        o->json = NULL;
}

/* The largest estimated_time_to_regain_access anywhere inside `v` (objects and arrays, two levels). */
static long regain_minutes(json_t *v, int depth) {
        long best = 0;
        if (depth > 3)
                return 0;
        if (json_is_object(v)) {
                const char *key;
                json_t *member;
                json_object_foreach(v, key, member) {
                        long m = 0;
                        if (strcmp(key, "estimated_time_to_regain_access") == 0 && json_is_integer(member))
                                m = (long) json_integer_value(member);
                        else
                                m = regain_minutes(member, depth + 1);
                        if (m > best)
                                best = m;
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *item;
                json_array_foreach(v, i, item) {
                        long m = regain_minutes(item, depth + 1);
                        if (m > best)
                                best = m;
                }
        }
        return best;
}

prakat_usec_t graph_usage_regain(const prakat_http_response *response) {
        static const char *const headers[] = { "X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage" };
        long minutes = 0;

        if (!response->header)
                return 0;
        for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
                const char *value = response->header(response, headers[i]);
                if (!value)
                        continue;
                json_t *v = json_loads(value, 0, NULL);
                long m = regain_minutes(v, 0);
                json_decref(v);
                if (m > minutes)
                        minutes = m;
        }
        /* A day at most: a header that says more is wrong, and a job retried tomorrow is still not lost. */
        if (minutes > 24 * 60)
                minutes = 24 * 60;
        prakat_usec_t usec = (prakat_usec_t) minutes * 60 * FB_USEC_PER_SEC;
        const char *retry_after = response->header(response, "Retry-After");
        if (retry_after) {
                long s = strtol(retry_after, NULL, 10);
                if (s > 0 && s <= 24 * 3600 && (prakat_usec_t) s * FB_USEC_PER_SEC > usec)
                        usec = (prakat_usec_t) s * FB_USEC_PER_SEC;
        }
        return usec;
}

/* ------------------------------------------------------------------------------------------------ */
/* The post's text */

static bool is_continuation(unsigned char c) {
        return (c & 0xC0) == 0x80;
}

/* The code point of a Thai character (U+0E00..U+0E7F) at `s`, or 0. */
static unsigned thai_at(const char *s) {
        const unsigned char *u = (const unsigned char *) s;
        if (u[0] != 0xE0 || (u[1] != 0xB8 && u[1] != 0xB9) || !u[2])
                return 0;
        return 0x0E00 | ((unsigned) (u[1] & 0x03) << 6) | (u[2] & 0x3F);
}

/* A vowel or tone mark that belongs to the consonant before it (above, below, or SARA AM). */
static bool is_thai_mark(unsigned cp) {
        return cp == 0x0E31 || cp == 0x0E33 || (cp >= 0x0E34 && cp <= 0x0E3A) || (cp >= 0x0E47 && cp <= 0x0E4E);
}

/* A vowel written before the consonant it belongs to (เ แ โ ใ ไ). */
static bool is_thai_leading_vowel(unsigned cp) {
        return cp >= 0x0E40 && cp <= 0x0E44;
}

static size_t previous_char(const char *s, size_t i) {
        while (i > 0 && is_continuation((unsigned char) s[--i]))
                ;
        return i;
}

/*
 * Where to cut `body` so that it keeps at most `max_chars` code points: at a paragraph break if
 * one is in the second half of the allowance, else at a line break, else after a sentence's end
 * or at a blank (Thai separates sentences with a blank), else between two characters.
 */
static size_t body_cut(const char *body, size_t max_chars, bool *ret_cut) {
        size_t chars = 0, limit = 0, len = strlen(body);
        for (size_t i = 0; i < len; i++) {
                if (is_continuation((unsigned char) body[i]))
                        continue;
                if (chars == max_chars) {
                        limit = i;
                        break;
                }
                chars++;
        }
        if (chars < max_chars || limit == 0) {
                *ret_cut = false;
                return len;
        }
        *ret_cut = true;
        static const char *const breaks[] = { "\n\n", "\n", ". ", " " };
        for (size_t k = 0; k < sizeof breaks / sizeof breaks[0]; k++) {
                size_t blen = strlen(breaks[k]);
                for (size_t i = limit; i >= blen && i > limit / 2; i--)
                        if (memcmp(body + i - blen, breaks[k], blen) == 0)
                                return i - (breaks[k][0] == '.' ? 1 : blen);
        }
        /* No break anywhere near: between two characters, but never inside a Thai syllable's letters. */
        while (limit > 0 && is_thai_mark(thai_at(body + limit)))
                limit = previous_char(body, limit);
        while (limit > 0 && is_thai_leading_vowel(thai_at(body + previous_char(body, limit))))
                limit = previous_char(body, limit);
        return limit;
}

char *graph_marker(const char *article_url, const char *id) {
        PluginBuf b = {};
        if (article_url && *article_url)
                plugin_buf_puts(&b, article_url);
        else
                plugin_buf_printf(&b, "รหัสประกาศ: %s", id);
        return plugin_buf_steal(&b, NULL);
}

char *graph_compose_message(const char *title, const char *body, const char *article_url, const char *id) {
        PluginBuf b = {};
        bool cut = false;
        char *marker = graph_marker(article_url, id);
        if (!marker)
                return NULL;

        if (title && *title) {
                plugin_buf_puts(&b, title);
                plugin_buf_puts(&b, "\n\n");
        }
        if (body && *body) {
                size_t n = body_cut(body, GRAPH_BODY_MAX_CHARS, &cut);
                while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == ' '))
                        n--;
                plugin_buf_put(&b, body, n);
                plugin_buf_puts(&b, cut ? " …\n\n" : "\n\n");
        }
        if (cut && article_url && *article_url)
                plugin_buf_puts(&b, "อ่านต่อ / Read more: ");
        plugin_buf_puts(&b, marker);
        free(marker);
        return plugin_buf_steal(&b, NULL);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

bool graph_message_has_marker(const char *message, const char *marker) {
        size_t n = marker ? strlen(marker) : 0;
        if (!message || n == 0)
                return false;
        for (const char *p = strstr(message, marker); p; p = strstr(p + 1, marker)) {
                bool start = p == message || is_blank(p[-1]);
                bool end = p[n] == 0 || is_blank(p[n]);
                if (start && end)
                        return true;
        }
        return false;
}


/* ------------------------------------------------------------------------------------------------ */
/* Request bodies */

static void form_escape(PluginBuf *b, const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
                        plugin_buf_put(b, p, 1);
                } else {
                        char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
                        plugin_buf_put(b, esc, 3);
                }
        }
}

void graph_form_add(PluginBuf *form, const char *name, const char *value) {
        if (form->size > 0)
                plugin_buf_puts(form, "&");
        form_escape(form, name);
        plugin_buf_puts(form, "=");
        form_escape(form, value);
}

void graph_multipart_field(PluginBuf *body, const char *boundary, const char *name, const char *value) {
        plugin_buf_printf(body, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", boundary, name);
        plugin_buf_puts(body, value);
        plugin_buf_puts(body, "\r\n");
}

int graph_multipart_file(PluginBuf *body, const char *boundary, const char *name, const char *filename,
                         const char *mime, const char *path, uint64_t max_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > max_size) {
                int r = !S_ISREG(st.st_mode) ? -EBADF : -EFBIG;
                close(fd);
                return r;
        }
        /* The file name goes into a quoted header parameter: keep it plain. */
        char safe[128];
        size_t n = 0;
        for (const char *p = filename; *p && n + 1 < sizeof safe; p++)
                safe[n++] = (*p == '"' || *p == '\\' || (unsigned char) *p < ' ') ? '_' : *p;
        safe[n] = 0;
        plugin_buf_printf(body, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                           "Content-Type: %s\r\n\r\n",
                     boundary, name, safe, mime);
        char chunk[65536];
        int r = 0;
        for (;;) {
                ssize_t got = read(fd, chunk, sizeof chunk);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0) {
                        r = -errno;
                        break;
                }
                if (got == 0)
                        break;
                plugin_buf_put(body, chunk, (size_t) got);
        }
        close(fd);
        plugin_buf_puts(body, "\r\n");
        return body->failed ? -ENOMEM : r;
}

void graph_multipart_end(PluginBuf *body, const char *boundary) {
        plugin_buf_printf(body, "--%s--\r\n", boundary);
}

/* ------------------------------------------------------------------------------------------------ */
/* Small things */

void graph_scrub(char *text, const char *secret) {
        size_t n = secret ? strlen(secret) : 0;
        if (!text || n == 0)
                return;
        static const char mask[] = "[token]";
        for (char *p = strstr(text, secret); p; p = strstr(p, secret)) {
                size_t m = strlen(mask) < n ? strlen(mask) : n;
                memcpy(p, mask, m);
                memmove(p + m, p + n, strlen(p + n) + 1);
                p += m;
        }
}

const char *graph_json_id(json_t *object, const char *key, char *buffer, size_t size) {
        json_t *v = json_object_get(object, key);
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(buffer, size, "%lld", (long long) json_integer_value(v));
                return buffer;
        }
        return NULL;
}
