/* SPDX-License-Identifier: MIT */
/*
 * wordpress: the website channel with `mode = wordpress` publishes each announcement as a post of a
 * WordPress site through its REST API (`wordpress_url` + /wp-json/wp/v2/), instead of writing static
 * pages.  The login is an application password sent as HTTP Basic auth.
 *
 *   publish   look for the announcement's post (GET posts?slug=ID&status=any&context=edit);
 *             find or create its category (GET categories?search=, POST categories); upload each
 *             attachment (POST media, the bytes as the body); then create the post (POST posts) or,
 *             when it exists already, update it (POST posts/N).  With Replaces, the earlier post is
 *             updated in place and keeps its URL.
 *   retract   the post becomes a withdrawal notice at the same URL (POST posts/N), its media are
 *             deleted (DELETE media/N?force=true).
 *   health    GET users/me?context=edit at start and every health_interval, re-reading the password.
 *
 * Exactly once.  Every post carries its announcement's id twice: as its slug (the id in lower case,
 * '.' as '-', what WordPress itself would make of it) and as an HTML comment "<!-- prakat-id: ID -->"
 * at the start of its content.  Every publish looks for that post before it may create one, so a
 * retry after a crash, a timeout, a dropped connection or a 5xx answer to the create updates the post
 * that was made instead of making a second one.  After an unclear answer to the create the post is
 * looked for a second later; not found, the job is retried after the core's back-off and looks again
 * first (a slow WordPress may still be creating it).
 *
 * State (host->state_dir/wordpress/): posts/ID.json per announcement -- the post id, its link, its
 * media ids and URLs (each written durably as soon as WordPress answered, so a retry does not upload
 * a file twice), and whether it was withdrawn or replaced; categories.json caches WordPress's
 * category ids by name.  The password is in memory only: never in a file, a URL, a log line or a
 * result.
 */
#include "wordpress.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WP_SEC PLUGIN_USEC_PER_SEC
#define WP_MINUTE (60 * WP_SEC)
#define WP_DEFAULT_TIMEOUT (60 * WP_SEC) /* an upload of a 20 MB PDF to a slow host */
#define WP_DEFAULT_HEALTH_INTERVAL (10 * WP_MINUTE)
#define WP_UNHEALTHY_RECHECK (1 * WP_MINUTE)
#define WP_RECONCILE_DELAY (1 * WP_SEC)
#define WP_MAX_MEDIA_SIZE (64ULL * 1024 * 1024)
#define WP_LIST_MAX_RESPONSE (8 * 1024 * 1024)
#define WP_MAX_STATE_FILE (1024 * 1024)
#define WP_MARKER_FORMAT "<!-- prakat-id: %s -->"
#define WP_KNOWN_KEYS                                                                                              \
        "mode, wordpress_url, wordpress_user, wordpress_password_file, wordpress_password_credential, timeout, " \
        "health_interval"

/* ------------------------------------------------------------------------------------------------ */
/* Text: escaping, slugs, base64, query values */

static bool wp_codepoint_is_unwanted(uint32_t cp) {
        if (cp < 0x20)
                return cp != '\t' && cp != '\n';
        return cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFFFE || cp == 0xFFFF;
}

/* User text for HTML (text and attribute values); invalid UTF-8 becomes U+FFFD. */
static void wp_put_escaped(PluginBuf *b, const char *text, size_t length) {
        static const char *const entities[128] = {
                ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#039;",
        };
        const unsigned char *s = (const unsigned char *) text;
        while (length > 0) {
                uint32_t cp;
                size_t n = plugin_utf8_decode(s, length, &cp);
                if (n == 0) {
                        plugin_buf_puts(b, "\xEF\xBF\xBD");
                        n = 1;
                } else if (cp < 128 && entities[cp]) {
                        plugin_buf_puts(b, entities[cp]);
                } else if (!wp_codepoint_is_unwanted(cp)) {
                        plugin_buf_put(b, s, n);
                }
                s += n, length -= n;
        }
}

static char *wp_escape(const char *text) {
        PluginBuf b = {};
        wp_put_escaped(&b, text ? text : "", text ? strlen(text) : 0);
        return plugin_buf_steal(&b, NULL);
}

/* What WordPress's sanitize_title() makes of a safe id: lower case, '.' and '_' as '-', no '-' runs. */
static void wp_make_slug(const char *id, char out[static PLUGIN_MAX_ID_LENGTH + 1]) {
        size_t n = 0;
        for (const char *p = id; *p && n < PLUGIN_MAX_ID_LENGTH; p++) {
                char c = *p >= 'A' && *p <= 'Z' ? (char) (*p - 'A' + 'a') : *p == '.' || *p == '_' ? '-' : *p;
                if (c == '-' && (n == 0 || out[n - 1] == '-'))
                        continue;
                out[n++] = c;
        }
        while (n > 0 && out[n - 1] == '-')
                n--;
        out[n] = 0;
}

static char *wp_base64(const unsigned char *data, size_t size) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((size + 2) / 3 * 4 + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16;
                if (i + 1 < size)
                        v |= (uint32_t) data[i + 1] << 8;
                if (i + 2 < size)
                        v |= data[i + 2];
                *o++ = alphabet[(v >> 18) & 63];
                *o++ = alphabet[(v >> 12) & 63];
                *o++ = i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < size ? alphabet[v & 63] : '=';
        }
        *o = 0;
        return out;
}

/* Percent-encodes a query value (UTF-8 bytes as %XX). */
static void wp_put_query_value(PluginBuf *b, const char *value) {
        for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~", *p))
                        plugin_buf_put(b, p, 1);
                else
                        plugin_buf_printf(b, "%%%02X", *p);
        }
}

/* WordPress's messages may hold HTML ("<strong>Error:</strong> ..."): the text alone, on one line. */
static void wp_plain_text(const char *in, char *out, size_t size) {
        size_t n = 0;
        bool in_tag = false, blank = false;
        for (const char *p = in ? in : ""; *p && n + 1 < size; p++) {
                if (*p == '<')
                        in_tag = true;
                else if (*p == '>' && in_tag)
                        in_tag = false;
                else if (in_tag)
                        continue;
                else if ((unsigned char) *p <= ' ') {
                        if (n > 0 && !blank)
                                out[n++] = ' ';
                        blank = true;
                } else {
                        out[n++] = *p;
                        blank = false;
                }
        }
        while (n > 0 && out[n - 1] == ' ')
                n--;
        out[n] = 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Answers: what a response of the REST API means */

typedef enum WpClass {
        WP_OK,        /* 2xx with JSON: in WpOutcome.json */
        WP_AMBIGUOUS, /* may have been executed: timeout, dropped connection, 5xx, 408, 429, 2xx without JSON */
        WP_NOT_SENT,  /* never reached WordPress: connection refused, name or TLS failure */
        WP_AUTH,      /* 401, 403: the login or the user's rights */
        WP_MISSING,   /* 404 (but not a missing REST route), 410: the object is gone */
        WP_PERMANENT, /* any other 4xx: the request is wrong; retrying will not help */
} WpClass;

typedef struct WpOutcome {
        WpClass klass;
        long status;
        json_t *json;    /* WP_OK: the parsed body (owned) */
        char code[64];   /* the error envelope's "code", "" when none */
        json_t *data;    /* the error envelope's "data" (owned), or NULL */
        char text[600];  /* for people, English; never a secret */
} WpOutcome;

static void wp_outcome_done(WpOutcome *o) {
        json_decref(o->json);
        json_decref(o->data);
        o->json = o->data = NULL;
}

static void wp_classify(const prakat_http_response *r, WpOutcome *ret) {
        *ret = (WpOutcome) { .status = r->status };
        if (r->error) {
                bool not_sent = r->error == -ECONNREFUSED || r->error == -EHOSTUNREACH || r->error == -EPROTO;
                ret->klass = not_sent ? WP_NOT_SENT : WP_AMBIGUOUS;
                snprintf(ret->text, sizeof ret->text, "%s: %s",
                         not_sent ? "WordPress could not be reached" : "no answer from WordPress",
                         r->error_text && *r->error_text ? r->error_text : strerror(-r->error));
                return;
        }
        json_t *j = r->body && r->body_size > 0 ? json_loadb(r->body, r->body_size, 0, NULL) : NULL;
        if (r->status >= 200 && r->status < 300) {
                if (j && (json_is_object(j) || json_is_array(j))) {
                        ret->klass = WP_OK;
                        ret->json = j;
                        return;
                }
                json_decref(j);
                ret->klass = WP_AMBIGUOUS;
                snprintf(ret->text, sizeof ret->text,
                         "WordPress answered %ld without JSON (is wordpress_url the address of the WordPress site?)",
                         r->status);
                return;
        }

        const char *code = json_string_value(json_object_get(j, "code"));
        char message[400];
        wp_plain_text(json_string_value(json_object_get(j, "message")), message, sizeof message);
        snprintf(ret->code, sizeof ret->code, "%s", code ? code : "");
        ret->data = json_incref(json_object_get(j, "data"));
        bool envelope = json_is_object(j);
        if (envelope)
                snprintf(ret->text, sizeof ret->text, "WordPress error %ld%s%s: %s", r->status, code ? " " : "",
                         code ? code : "", message[0] ? message : "(no message)");
        else if (r->status == 404)
                snprintf(ret->text, sizeof ret->text, "no WordPress REST API at wordpress_url (404 without JSON): is "
                         "the address right, and are WordPress's permalinks other than \"Plain\" (the API is at "
                         "/wp-json/)?");
        else
                snprintf(ret->text, sizeof ret->text, "WordPress error %ld (the answer is not WordPress's JSON: "
                         "the site or a proxy in front of it failed)", r->status);
        json_decref(j);

        if (r->status == 401 || r->status == 403)
                ret->klass = WP_AUTH;
        else if (r->status == 404 && !envelope)
                ret->klass = WP_PERMANENT;
        else if (r->status == 404 && strcmp(ret->code, "rest_no_route") == 0) {
                ret->klass = WP_PERMANENT;
                size_t n = strlen(ret->text);
                snprintf(ret->text + n, sizeof ret->text - n, " (is wordpress_url right, with the REST API on?)");
        } else if (r->status == 404 || r->status == 410)
                ret->klass = WP_MISSING;
        else if (r->status == 408 || r->status == 429 || r->status >= 500 || r->status < 200)
                ret->klass = WP_AMBIGUOUS;
        else
                ret->klass = WP_PERMANENT;
}

/* An id member as a number (WordPress's ids are integers); 0 when absent or not one. */
static long wp_json_id(json_t *object, const char *key) {
        json_t *v = json_object_get(object, key);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        return n > 0 && n < (json_int_t) 1 << 53 ? (long) n : 0;
}

static const char *wp_json_https_or_http(json_t *object, const char *key) {
        const char *s = json_string_value(json_object_get(object, key));
        if (!s || (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0) || strpbrk(s, " \n\r\t\"<>"))
                return NULL;
        return s;
}

/*
 * Of a list of posts (GET posts?slug=S&context=edit), the one that is the announcement's: its raw
 * content holds the marker.  When WordPress does not show the raw content, a post with the very slug
 * counts.  *ret_foreign tells that the slug is taken by a post prakat did not make.
 */
static json_t *wp_find_own_post(json_t *list, const char *marker, const char *slug, bool *ret_foreign) {
        size_t i;
        json_t *post;
        *ret_foreign = false;
        json_array_foreach(list, i, post) {
                const char *raw = json_string_value(json_object_get(json_object_get(post, "content"), "raw"));
                const char *s = json_string_value(json_object_get(post, "slug"));
                if (raw && strstr(raw, marker))
                        return post;
                if (!raw && s && strcmp(s, slug) == 0)
                        return post;
                if (s && strcmp(s, slug) == 0)
                        *ret_foreign = true;
        }
        return NULL;
}

/* WordPress returns term names HTML-escaped ("A &amp; B"): compare as WordPress would show them. */
static long wp_find_category(json_t *list, const char *name) {
        char *escaped = wp_escape(name);
        size_t i;
        json_t *term;
        long found = 0;
        json_array_foreach(list, i, term) {
                const char *n = json_string_value(json_object_get(term, "name"));
                if (n && (strcmp(n, name) == 0 || (escaped && strcmp(n, escaped) == 0))) {
                        found = wp_json_id(term, "id");
                        break;
                }
        }
        free(escaped);
        return found;
}

/* ------------------------------------------------------------------------------------------------ */
/* The post: its content as HTML */

typedef struct WpAttachment {
        char *path;
        char *name;
        char *mime;
        long media_id; /* 0 until uploaded */
        char *url;     /* the media's source_url */
} WpAttachment;

static bool wp_is_image(const WpAttachment *a) {
        return a->mime && strncmp(a->mime, "image/", 6) == 0;
}

/* Paragraphs at blank lines, line breaks inside them kept. */
static void wp_put_body(PluginBuf *b, const char *body) {
        const char *p = body ? body : "";
        while (*p) {
                while (*p == '\n' || *p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                const char *end = p;
                while (*end) {
                        const char *nl = strchr(end, '\n');
                        if (!nl) {
                                end += strlen(end);
                                break;
                        }
                        const char *q = nl + 1;
                        while (*q == ' ' || *q == '\t')
                                q++;
                        if (*q == '\n' || !*q) {
                                end = nl;
                                break;
                        }
                        end = nl + 1;
                }
                size_t len = (size_t) (end - p);
                while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                plugin_buf_puts(b, "<p>");
                for (const char *line = p; line < p + len;) {
                        const char *nl = memchr(line, '\n', (size_t) (p + len - line));
                        size_t n = nl ? (size_t) (nl - line) : (size_t) (p + len - line);
                        wp_put_escaped(b, line, n);
                        if (!nl)
                                break;
                        plugin_buf_puts(b, "<br />\n");
                        line = nl + 1;
                }
                plugin_buf_puts(b, "</p>\n");
                p = end;
        }
}

/* The post's content: the marker, the body, the pictures shown, the other files linked. */
static char *wp_render_content(const char *id, const char *body, const WpAttachment *att, size_t n_att) {
        PluginBuf b = {};
        plugin_buf_printf(&b, WP_MARKER_FORMAT "\n", id);
        wp_put_body(&b, body);
        for (size_t i = 0; i < n_att; i++) {
                if (!wp_is_image(&att[i]) || !att[i].url)
                        continue;
                plugin_buf_puts(&b, "<figure class=\"wp-block-image\"><img src=\"");
                wp_put_escaped(&b, att[i].url, strlen(att[i].url));
                plugin_buf_puts(&b, "\" alt=\"");
                wp_put_escaped(&b, att[i].name, strlen(att[i].name));
                plugin_buf_printf(&b, "\" class=\"wp-image-%ld\" /></figure>\n", att[i].media_id);
        }
        bool list = false;
        for (size_t i = 0; i < n_att; i++) {
                if (wp_is_image(&att[i]) || !att[i].url)
                        continue;
                if (!list)
                        plugin_buf_puts(&b, "<p>ไฟล์แนบ / Attachments:</p>\n<ul class=\"prakat-attachments\">\n");
                list = true;
                plugin_buf_puts(&b, "<li><a href=\"");
                wp_put_escaped(&b, att[i].url, strlen(att[i].url));
                plugin_buf_puts(&b, "\">");
                wp_put_escaped(&b, att[i].name, strlen(att[i].name));
                plugin_buf_puts(&b, "</a></li>\n");
        }
        if (list)
                plugin_buf_puts(&b, "</ul>\n");
        return plugin_buf_steal(&b, NULL);
}

/* What stays at the post's URL once the announcement is withdrawn. */
static char *wp_render_notice(const char *id, const char *when, const char *reason) {
        PluginBuf b = {};
        plugin_buf_printf(&b, WP_MARKER_FORMAT "\n", id);
        plugin_buf_puts(&b, "<p><strong>ประกาศนี้ถูกยกเลิกแล้ว</strong>");
        if (when && *when) {
                plugin_buf_puts(&b, " เมื่อ ");
                wp_put_escaped(&b, when, strlen(when));
        }
        plugin_buf_puts(&b, "</p>\n<p>This announcement has been withdrawn.</p>\n");
        if (reason && *reason) {
                plugin_buf_puts(&b, "<p>เหตุผล / Reason:</p>\n");
                wp_put_body(&b, reason);
        }
        return plugin_buf_steal(&b, NULL);
}

/* The title as WordPress stores it: HTML, so the user's text escaped. */
static char *wp_notice_title(const char *title) {
        PluginBuf b = {};
        plugin_buf_puts(&b, "ยกเลิกแล้ว / Withdrawn: ");
        wp_put_escaped(&b, title ? title : "", title ? strlen(title) : 0);
        return plugin_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------------------------------------------ */
/* The instance */

typedef enum WpStep {
        WP_STEP_FIND,            /* GET posts?slug=S&status=any&context=edit */
        WP_STEP_CATEGORY_FIND,   /* GET categories?search=NAME */
        WP_STEP_CATEGORY_CREATE, /* POST categories */
        WP_STEP_MEDIA,           /* POST media (attachment `index`) */
        WP_STEP_CREATE,          /* POST posts: the one request that makes a post */
        WP_STEP_UPDATE,          /* POST posts/N: the content (publish) or the notice (retract) */
        WP_STEP_MEDIA_DELETE,    /* DELETE media/N?force=true (retract) */
} WpStep;

typedef enum WpHealth {
        WP_HEALTH_UNKNOWN,
        WP_HEALTH_OK,
        WP_HEALTH_UNREACHABLE,
} WpHealth;

typedef struct WpTask WpTask;

struct WordPress {
        const prakat_host *host;
        char *url; /* the site, without a trailing slash */
        char *api; /* url + /wp-json/wp/v2 */
        char *user;
        char *password_file;
        char *password_credential;
        char *password;
        char *authorization; /* "Basic ...": as secret as the password */
        unsigned timeout_ms;
        prakat_usec_t health_interval;
        char *posts_dir;
        char *categories_path;
        json_t *categories; /* name -> id */

        WpTask *tasks;

        bool auth_failed;
        char auth_detail[600];     /* WordPress's words */
        char password_problem[1024]; /* why the password could not be read again; "" when it could */
        WpHealth health;
        char health_detail[600];
        char user_name[128];
        prakat_timer *health_timer;
        prakat_http_call *health_call;
};

struct WpTask {
        WordPress *wp;
        prakat_job *job;
        bool retract;
        char *id;
        char slug[PLUGIN_MAX_ID_LENGTH + 1];
        char *marker;
        char *title;
        char *body;
        char *category;
        char *reason;
        char *replaces; /* publish: the announcement whose post is updated, or NULL */
        WpAttachment *att;
        size_t n_att;
        size_t index;
        json_t *record; /* posts/ID.json of `id` */

        long post_id; /* the post to update; 0 = none known (yet) */
        long category_id;
        bool looked;           /* the post was looked for in this attempt */
        bool category_known;
        bool updated;          /* retract: the notice is in place */
        bool after_ambiguous;  /* the create got no clear answer */
        WpStep step;

        prakat_http_call *call;
        prakat_timer *timer;
        WpTask *next, *prev;
};

static void wp_task_continue(WpTask *t);
static void wp_health_arm(WordPress *wp, prakat_usec_t delay);

static prakat_usec_t wp_now(const WordPress *wp) {
        return wp->host->now(wp->host);
}

__attribute__((format(printf, 3, 4))) static void wp_text(char *buffer, size_t size, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(buffer, size, format, ap);
        va_end(ap);
}

/* Overwrites every occurrence of `secret` in `text` (defence in depth: WordPress never echoes it). */
static void wp_scrub(char *text, const char *secret) {
        size_t n = secret ? strlen(secret) : 0;
        char *p;
        while (n >= 4 && (p = strstr(text, secret)))
                memset(p, '*', n);
}

static void wp_auth_message(const WordPress *wp, bool detail, char *en, size_t en_size, char *th, size_t th_size) {
        char place[4200];
        plugin_secret_place(wp->host, wp->password_file, wp->password_credential, place, sizeof place);
        detail = detail && wp->auth_detail[0];
        if (en)
                wp_text(en, en_size,
                        "WordPress refused the login of user %s (wrong or revoked application password, or the user "
                        "may not publish posts); make a new application password (Users → Profile → Application "
                        "Passwords), put it in %s and reload (systemctl reload prakat)%s%s%s",
                        wp->user, place, detail ? " [" : "", detail ? wp->auth_detail : "", detail ? "]" : "");
        if (th)
                wp_text(th, th_size,
                        "WordPress ไม่ยอมรับการเข้าสู่ระบบของผู้ใช้ %s (รหัสผ่านแอปพลิเคชันผิดหรือถูกเพิกถอน "
                        "หรือผู้ใช้ไม่มีสิทธิ์เผยแพร่เรื่อง) ให้สร้างรหัสผ่านแอปพลิเคชันใหม่ ใส่ไว้ใน %s "
                        "แล้วสั่ง reload (systemctl reload prakat)",
                        wp->user, place);
}

/* ---- the password ---- */

/* The Authorization header for wp->user and wp->password. */
static int wp_make_authorization(WordPress *wp) {
        size_t n = strlen(wp->user) + 1 + strlen(wp->password);
        char *pair = malloc(n + 1);
        if (!pair)
                return -ENOMEM;
        snprintf(pair, n + 1, "%s:%s", wp->user, wp->password);
        char *encoded = wp_base64((const unsigned char *) pair, n);
        explicit_bzero(pair, n);
        free(pair);
        char *header = encoded ? malloc(strlen(encoded) + 7) : NULL;
        if (!header) {
                plugin_free_secret(encoded);
                return -ENOMEM;
        }
        sprintf(header, "Basic %s", encoded);
        plugin_free_secret(encoded);
        plugin_free_secret(wp->authorization);
        wp->authorization = header;
        return 0;
}

/* Reads the password; WordPress shows application passwords in groups with blanks, which it ignores:
 * so do we, and the password may be pasted as shown. */
static int wp_read_password(WordPress *wp, char **ret, char *error, size_t error_size) {
        return plugin_read_secret_blanks(wp->host, wp->password_file, wp->password_credential, true, ret, error,
                                         error_size);
}

/* Re-reads the password; a new one is taken (and, after a refusal, tried).  Returns whether it changed. */
static bool wp_password_reload(WordPress *wp) {
        char problem[sizeof wp->password_problem];
        int r = plugin_secret_reload_blanks(wp->host, wp->password_file, wp->password_credential, true, &wp->password,
                                            problem, sizeof problem);
        if (r < 0)
                snprintf(wp->password_problem, sizeof wp->password_problem, "%s", problem);
        else
                wp->password_problem[0] = 0;
        if (r <= 0 || wp_make_authorization(wp) < 0)
                return false;
        if (wp->auth_failed) {
                wp->auth_failed = false;
                wp->auth_detail[0] = 0;
                wp->host->log(wp->host, PRAKAT_LOG_NOTICE, NULL, "A new WordPress application password was found; "
                                                                 "trying it");
        }
        return true;
}

static void wp_set_auth_failed(WordPress *wp, const char *detail) {
        if (wp->auth_failed)
                return;
        snprintf(wp->auth_detail, sizeof wp->auth_detail, "%s", detail ? detail : "");
        wp_scrub(wp->auth_detail, wp->password);
        wp->auth_failed = true;
        char en[2048];
        wp_auth_message(wp, true, en, sizeof en, NULL, 0);
        wp->host->log(wp->host, PRAKAT_LOG_ERR, NULL, "Channel unhealthy: %s", en);
        if (wp->health_interval > WP_UNHEALTHY_RECHECK)
                wp_health_arm(wp, WP_UNHEALTHY_RECHECK);
}

/* ---- requests ---- */

typedef struct WpRequest {
        const char *method;
        char *url;
        char *body;
        size_t body_size;
        const char *content_type;
        char disposition[200];
        size_t max_response;
        bool creates; /* makes something: on a fresh connection of its own (see wp_send) */
} WpRequest;

static void wp_request_done(WpRequest *r) {
        free(r->url);
        free(r->body);
}

/*
 * Sends with the Basic login in the Authorization header.  A request that creates something asks
 * for "Connection: close", so the core sends it on a fresh connection: libcurl silently repeats a
 * request whose reused connection died before the answer, which for a create is a second post.
 */
static int wp_send(WordPress *wp, const WpRequest *req, prakat_http_done_fn done, void *userdata,
                   prakat_http_call **ret_call) {
        prakat_http_header headers[5] = {
                { "Authorization", wp->authorization },
                { "Accept", "application/json" },
        };
        size_t n = 2;
        if (req->creates)
                headers[n++] = (prakat_http_header) { "Connection", "close" };
        if (req->body)
                headers[n++] = (prakat_http_header) { "Content-Type", req->content_type };
        if (req->disposition[0])
                headers[n++] = (prakat_http_header) { "Content-Disposition", req->disposition };
        prakat_http_request request = {
                .method = req->method,
                .url = req->url,
                .headers = headers,
                .n_headers = n,
                .body = req->body,
                .body_size = req->body_size,
                .timeout_ms = wp->timeout_ms,
                .max_response = req->max_response,
        };
        return wp->host->http_request(wp->host, &request, done, userdata, ret_call);
}

static char *wp_url(const WordPress *wp, const char *format, ...) __attribute__((format(printf, 2, 3)));
static char *wp_url(const WordPress *wp, const char *format, ...) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "%s/", wp->api);
        va_list ap;
        va_start(ap, format);
        char *tail = NULL;
        if (vasprintf(&tail, format, ap) < 0)
                tail = NULL;
        va_end(ap);
        if (!tail) {
                plugin_buf_free(&b);
                return NULL;
        }
        plugin_buf_puts(&b, tail);
        free(tail);
        return plugin_buf_steal(&b, NULL);
}

/* ---- the durable record of an announcement: posts/ID.json ---- */

static int wp_record_path(const WordPress *wp, const char *id, char *out, size_t size) {
        if (!plugin_id_is_safe(id) || (size_t) snprintf(out, size, "%s/%s.json", wp->posts_dir, id) >= size)
                return -EINVAL;
        return 0;
}

/* The record of `id`, or an empty object when there is none (or it cannot be read). */
static json_t *wp_record_read(const WordPress *wp, const char *id) {
        char path[4096];
        char *data = NULL;
        json_t *j = NULL;
        if (wp_record_path(wp, id, path, sizeof path) == 0 &&
            plugin_read_small_file(path, WP_MAX_STATE_FILE, &data, NULL) == 0)
                j = json_loads(data, 0, NULL);
        free(data);
        if (!json_is_object(j)) {
                json_decref(j);
                j = json_object();
        }
        return j;
}

static int wp_record_write(const WordPress *wp, const char *id, json_t *record) {
        char path[4096];
        int r = wp_record_path(wp, id, path, sizeof path);
        if (r < 0)
                return r;
        char *text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        r = plugin_write_file_durable(path, text, strlen(text));
        free(text);
        return r;
}

static const char *wp_record_state(json_t *record) {
        const char *s = json_string_value(json_object_get(record, "state"));
        return s ? s : "";
}

/* ------------------------------------------------------------------------------------------------ */
/* Tasks */

static void wp_task_free(WpTask *t) {
        WordPress *wp = t->wp;
        wp->host->http_cancel(t->call);
        wp->host->timer_cancel(t->timer);
        if (t->prev)
                t->prev->next = t->next;
        else
                wp->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        for (size_t i = 0; i < t->n_att; i++) {
                free(t->att[i].path);
                free(t->att[i].name);
                free(t->att[i].mime);
                free(t->att[i].url);
        }
        free(t->att);
        free(t->id);
        free(t->marker);
        free(t->title);
        free(t->body);
        free(t->category);
        free(t->reason);
        free(t->replaces);
        json_decref(t->record);
        free(t);
}

static WpTask *wp_task_new(WordPress *wp, prakat_job *job, bool retract, const char *id) {
        WpTask *t = calloc(1, sizeof(WpTask));
        if (!t)
                return NULL;
        *t = (WpTask) { .wp = wp, .job = job, .retract = retract, .id = strdup(id), .next = wp->tasks };
        if (wp->tasks)
                wp->tasks->prev = t;
        wp->tasks = t;
        wp_make_slug(id, t->slug);
        if (!t->id || asprintf(&t->marker, WP_MARKER_FORMAT, id) < 0) {
                t->marker = NULL;
                wp_task_free(t);
                return NULL;
        }
        t->record = wp_record_read(wp, id);
        return t;
}

/* Ends the job; the core copies the result's strings.  Messages are scrubbed of the password. */
static void wp_task_finish(WpTask *t, prakat_outcome outcome, const char *en, const char *th, const char *link,
                           prakat_usec_t retry_after) {
        WordPress *wp = t->wp;
        char en_clean[2048], th_clean[2048], remote[32] = "";
        wp_text(en_clean, sizeof en_clean, "%s", en ? en : "");
        wp_text(th_clean, sizeof th_clean, "%s", th ? th : "");
        wp_scrub(en_clean, wp->password);
        wp_scrub(th_clean, wp->password);
        if (t->post_id > 0)
                wp_text(remote, sizeof remote, "%ld", t->post_id);
        const char **urls = NULL;
        size_t n_urls = 0;
        if (outcome == PRAKAT_OUTCOME_DONE && !t->retract && t->n_att > 0) {
                urls = calloc(t->n_att, sizeof(char *));
                for (size_t i = 0; urls && i < t->n_att; i++)
                        urls[i] = t->att[i].url;
                n_urls = urls ? t->n_att : 0;
        }
        prakat_result result = {
                .outcome = outcome,
                .message = en ? en_clean : NULL,
                .message_th = th ? th_clean : NULL,
                .link = link,
                .remote_id = remote[0] && outcome == PRAKAT_OUTCOME_DONE ? remote : NULL,
                .retry_after = outcome == PRAKAT_OUTCOME_RETRY ? retry_after : 0,
                .attachment_urls = urls,
                .n_attachment_urls = n_urls,
        };
        wp->host->job_finish(wp->host, t->job, &result);
        free(urls);
        wp_task_free(t);
}

static void wp_task_retry_auth(WpTask *t) {
        char en[2048], th[2048];
        wp_auth_message(t->wp, true, en, sizeof en, th, sizeof th);
        wp_task_finish(t, PRAKAT_OUTCOME_RETRY, en, th, NULL, t->wp->health_interval);
}

/* An answer that is not special to the step. */
static void wp_task_fail(WpTask *t, const WpOutcome *o) {
        char en[1024], th[1024];
        switch (o->klass) {
        case WP_AUTH:
                wp_set_auth_failed(t->wp, o->text);
                wp_task_retry_auth(t);
                return;
        case WP_AMBIGUOUS:
        case WP_NOT_SENT:
                wp_text(en, sizeof en, "%s; will try again", o->text);
                wp_text(th, sizeof th, "ติดต่อ WordPress ไม่สำเร็จชั่วคราว จะลองใหม่ (%s)", o->text);
                wp_task_finish(t, PRAKAT_OUTCOME_RETRY, en, th, NULL, 0);
                return;
        case WP_OK:
        case WP_MISSING:
        case WP_PERMANENT:
                break;
        }
        wp_text(th, sizeof th, "WordPress ไม่รับคำขอนี้: %s", o->text);
        wp_task_finish(t, PRAKAT_OUTCOME_FAILED, o->text, th, NULL, 0);
}

static void wp_task_retry_errno(WpTask *t, const char *what, int error) {
        char en[1024];
        wp_text(en, sizeof en, "%s: %s; will try again", what, strerror(-error));
        wp_task_finish(t, PRAKAT_OUTCOME_RETRY, en, "บันทึกหรืออ่านข้อมูลในเครื่องไม่สำเร็จ จะลองใหม่", NULL, 0);
}

/* ---- building each step's request ---- */

/* An ASCII file name WordPress keeps as it is (SLUG-N.ext); the writer's name stays in the post's text. */
static void wp_media_file_name(const WpTask *t, size_t index, char *out, size_t size) {
        const char *dot = strrchr(t->att[index].name, '.');
        char ext[16] = "";
        if (dot && strlen(dot) < sizeof ext && plugin_id_is_safe(dot + 1))
                snprintf(ext, sizeof ext, "%s", dot);
        snprintf(out, size, "%s-%zu%s", t->slug, index + 1, ext);
}

static int wp_build_media(WpTask *t, WpRequest *req) {
        const WpAttachment *a = &t->att[t->index];
        struct stat st = {};
        int r = plugin_read_small_file(a->path, WP_MAX_MEDIA_SIZE, &req->body, &st);
        if (r < 0)
                return r;
        req->body_size = (size_t) st.st_size;
        char name[PLUGIN_MAX_ID_LENGTH + 40];
        wp_media_file_name(t, t->index, name, sizeof name);
        snprintf(req->disposition, sizeof req->disposition, "attachment; filename=\"%s\"", name);
        req->method = "POST";
        req->content_type = a->mime ? a->mime : "application/octet-stream";
        req->creates = true;
        req->url = wp_url(t->wp, "media");
        return req->url ? 0 : -ENOMEM;
}

static int wp_build_post(WpTask *t, WpRequest *req) {
        json_t *o = json_object();
        char *content = NULL, *title = NULL;
        if (t->retract) {
                char when[128] = "";
                if (t->wp->host->format_date(t->wp->host, wp_now(t->wp), PRAKAT_DATE_THAI_LONG, when, sizeof when) < 0)
                        when[0] = 0;
                content = wp_render_notice(t->id, when, t->reason);
                title = wp_notice_title(t->title);
                json_object_set_new(o, "featured_media", json_integer(0));
        } else {
                content = wp_render_content(t->id, t->body, t->att, t->n_att);
                title = wp_escape(t->title);
                long featured = 0;
                for (size_t i = 0; i < t->n_att && !featured; i++)
                        if (wp_is_image(&t->att[i]))
                                featured = t->att[i].media_id;
                json_object_set_new(o, "featured_media", json_integer(featured));
                if (t->category_id > 0)
                        json_object_set_new(o, "categories", json_pack("[I]", (json_int_t) t->category_id));
                if (!t->post_id)
                        json_object_set_new(o, "slug", json_string(t->slug));
        }
        json_object_set_new(o, "status", json_string("publish"));
        if (content)
                json_object_set_new(o, "content", json_string(content));
        if (title)
                json_object_set_new(o, "title", json_string(title));
        free(content);
        free(title);
        req->body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!req->body)
                return -ENOMEM;
        req->body_size = strlen(req->body);
        req->content_type = "application/json; charset=utf-8";
        req->method = "POST";
        req->creates = !t->post_id;
        req->url = t->post_id ? wp_url(t->wp, "posts/%ld", t->post_id) : wp_url(t->wp, "posts");
        return req->url ? 0 : -ENOMEM;
}

static int wp_build_request(WpTask *t, WpRequest *req) {
        PluginBuf q = {};
        switch (t->step) {
        case WP_STEP_FIND:
                req->method = "GET";
                req->max_response = WP_LIST_MAX_RESPONSE;
                req->url = wp_url(t->wp, "posts?slug=%s&status=any&context=edit&per_page=100", t->slug);
                return req->url ? 0 : -ENOMEM;
        case WP_STEP_CATEGORY_FIND: {
                wp_put_query_value(&q, t->category);
                char *name = plugin_buf_steal(&q, NULL);
                req->method = "GET";
                req->max_response = WP_LIST_MAX_RESPONSE;
                req->url = name ? wp_url(t->wp, "categories?search=%s&per_page=100", name) : NULL;
                free(name);
                return req->url ? 0 : -ENOMEM;
        }
        case WP_STEP_CATEGORY_CREATE: {
                json_t *o = json_pack("{s:s}", "name", t->category);
                req->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                req->body_size = req->body ? strlen(req->body) : 0;
                req->content_type = "application/json; charset=utf-8";
                req->method = "POST";
                req->creates = true;
                req->url = wp_url(t->wp, "categories");
                return req->url && req->body ? 0 : -ENOMEM;
        }
        case WP_STEP_MEDIA:
                return wp_build_media(t, req);
        case WP_STEP_CREATE:
        case WP_STEP_UPDATE:
                return wp_build_post(t, req);
        case WP_STEP_MEDIA_DELETE: {
                json_t *m = json_array_get(json_object_get(t->record, "media"), t->index);
                req->method = "DELETE";
                req->url = wp_url(t->wp, "media/%ld?force=true", wp_json_id(m, "id"));
                return req->url ? 0 : -ENOMEM;
        }
        }
        return -EINVAL;
}

static void wp_on_task_response(void *userdata, const prakat_http_response *response);

static void wp_task_send(WpTask *t, WpStep step) {
        WordPress *wp = t->wp;
        t->step = step;
        if (wp->auth_failed && !wp_password_reload(wp)) {
                wp_task_retry_auth(t);
                return;
        }
        WpRequest req = {};
        int r = wp_build_request(t, &req);
        if (r < 0) {
                wp_request_done(&req);
                if (r == -ENOMEM)
                        wp_task_retry_errno(t, "out of memory", r);
                else
                        wp_task_finish(t, PRAKAT_OUTCOME_FAILED, "cannot read an attachment of the announcement",
                                       "อ่านไฟล์แนบของประกาศไม่ได้", NULL, 0);
                return;
        }
        r = wp_send(wp, &req, wp_on_task_response, t, &t->call);
        wp_request_done(&req);
        if (r < 0) {
                t->call = NULL;
                wp_task_retry_errno(t, "cannot start a request to WordPress", r);
        }
}

/* ---- what each answer means ---- */

/* The media of the record, into the task's attachments (a retry does not upload them again). */
static void wp_task_take_recorded_media(WpTask *t) {
        json_t *media = json_object_get(t->record, "media");
        for (size_t i = 0; i < t->n_att && i < json_array_size(media); i++) {
                json_t *m = json_array_get(media, i);
                const char *url = wp_json_https_or_http(m, "url");
                long id = wp_json_id(m, "id");
                if (id > 0 && url && !t->att[i].url) {
                        t->att[i].media_id = id;
                        t->att[i].url = strdup(url);
                }
        }
}

static int wp_task_record_media(WpTask *t) {
        json_t *media = json_array();
        for (size_t i = 0; i < t->n_att; i++)
                json_array_append_new(media, t->att[i].url ? json_pack("{s:I,s:s}", "id", (json_int_t) t->att[i].media_id,
                                                                       "url", t->att[i].url)
                                                           : json_null());
        json_object_set_new(t->record, "media", media);
        return wp_record_write(t->wp, t->id, t->record);
}

static void wp_task_published(WpTask *t, json_t *post) {
        WordPress *wp = t->wp;
        const char *link = wp_json_https_or_http(post, "link");
        long id = wp_json_id(post, "id");
        if (id > 0)
                t->post_id = id;
        json_object_set_new(t->record, "post", json_integer(t->post_id));
        json_object_set_new(t->record, "state", json_string("published"));
        if (link)
                json_object_set_new(t->record, "link", json_string(link));
        else
                link = json_string_value(json_object_get(t->record, "link"));
        int r = wp_task_record_media(t);
        if (r < 0) {
                /* Not done until it is on disk; the retry finds the post by its slug and updates it. */
                wp->host->log(wp->host, PRAKAT_LOG_ERR, t->id, "Failed to record post %ld in %s: %s", t->post_id,
                              wp->posts_dir, strerror(-r));
                wp_task_retry_errno(t, "cannot record the WordPress post in the state folder", r);
                return;
        }
        if (t->replaces) {
                json_t *old = wp_record_read(wp, t->replaces);
                json_object_set_new(old, "state", json_string("replaced"));
                json_object_set_new(old, "replaced_by", json_string(t->id));
                (void) wp_record_write(wp, t->replaces, old);
                json_decref(old);
        }
        char en[256];
        wp_text(en, sizeof en, "published on WordPress as post %ld", t->post_id);
        wp_task_finish(t, PRAKAT_OUTCOME_DONE, en, "เผยแพร่บนเว็บไซต์ (WordPress) แล้ว", link, 0);
}

static void wp_on_reconcile_timer(void *userdata) {
        WpTask *t = userdata;
        t->timer = NULL;
        wp_task_send(t, WP_STEP_FIND);
}

static void wp_on_find(WpTask *t, WpOutcome *o) {
        bool foreign = false;
        json_t *post = wp_find_own_post(o->json, t->marker, t->slug, &foreign);
        t->looked = true;
        if (post) {
                t->post_id = wp_json_id(post, "id");
                const char *link = wp_json_https_or_http(post, "link");
                if (link)
                        json_object_set_new(t->record, "link", json_string(link));
                if (t->after_ambiguous)
                        t->wp->host->log(t->wp->host, PRAKAT_LOG_NOTICE, t->id,
                                         "Found post %ld after an unclear answer; not creating it again", t->post_id);
                wp_task_continue(t);
                return;
        }
        if (t->retract) {
                wp_task_continue(t);
                return;
        }
        if (foreign) {
                char en[512];
                wp_text(en, sizeof en, "a WordPress post that prakat did not make already has the address (slug) %s; "
                                       "give the announcement another ID, or change that post's slug", t->slug);
                wp_task_finish(t, PRAKAT_OUTCOME_FAILED, en,
                               "มีเรื่องใน WordPress ที่ใช้ที่อยู่ (slug) เดียวกับรหัสประกาศนี้อยู่แล้ว ให้เปลี่ยนรหัสประกาศ",
                               NULL, 0);
                return;
        }
        if (t->after_ambiguous) {
                wp_task_finish(t, PRAKAT_OUTCOME_RETRY,
                               "WordPress gave no clear answer to the post and it is not there yet; will look again "
                               "before posting",
                               "WordPress ตอบไม่ชัดเจนว่าสร้างเรื่องแล้วหรือไม่ และยังไม่พบเรื่องนี้ จะตรวจอีกครั้งก่อนสร้างใหม่",
                               NULL, 0);
                return;
        }
        wp_task_continue(t);
}

static void wp_category_remember(WordPress *wp, const char *name, long id) {
        json_object_set_new(wp->categories, name, json_integer(id));
        char *text = json_dumps(wp->categories, JSON_COMPACT | JSON_SORT_KEYS);
        if (text)
                (void) plugin_write_file(wp->categories_path, text, strlen(text), false);
        free(text);
}

static void wp_on_response_ok(WpTask *t, WpOutcome *o) {
        WordPress *wp = t->wp;
        switch (t->step) {
        case WP_STEP_FIND:
                wp_on_find(t, o);
                return;
        case WP_STEP_CATEGORY_FIND:
                t->category_id = wp_find_category(o->json, t->category);
                if (!t->category_id) {
                        wp_task_send(t, WP_STEP_CATEGORY_CREATE);
                        return;
                }
                t->category_known = true;
                wp_category_remember(wp, t->category, t->category_id);
                wp_task_continue(t);
                return;
        case WP_STEP_CATEGORY_CREATE:
                t->category_id = wp_json_id(o->json, "id");
                t->category_known = true;
                if (t->category_id)
                        wp_category_remember(wp, t->category, t->category_id);
                wp_task_continue(t);
                return;
        case WP_STEP_MEDIA: {
                WpAttachment *a = &t->att[t->index];
                const char *url = wp_json_https_or_http(o->json, "source_url");
                a->media_id = wp_json_id(o->json, "id");
                if (!a->media_id || !url) {
                        wp_task_finish(t, PRAKAT_OUTCOME_RETRY, "WordPress accepted a file but did not say its id "
                                       "and URL; will try again", "WordPress ตอบการอัปโหลดไฟล์ไม่ครบ จะลองใหม่", NULL, 0);
                        return;
                }
                a->url = strdup(url);
                int r = a->url ? wp_task_record_media(t) : -ENOMEM;
                if (r < 0) {
                        wp_task_retry_errno(t, "cannot record the uploaded file", r);
                        return;
                }
                wp_task_continue(t);
                return;
        }
        case WP_STEP_CREATE:
                wp_task_published(t, o->json);
                return;
        case WP_STEP_UPDATE:
                if (!t->retract) {
                        wp_task_published(t, o->json);
                        return;
                }
                t->updated = true;
                t->index = 0;
                const char *link = wp_json_https_or_http(o->json, "link");
                if (link)
                        json_object_set_new(t->record, "link", json_string(link));
                json_object_set_new(t->record, "post", json_integer(t->post_id));
                json_object_set_new(t->record, "state", json_string("withdrawn"));
                (void) wp_record_write(wp, t->id, t->record);
                wp_task_continue(t);
                return;
        case WP_STEP_MEDIA_DELETE:
                t->index++;
                wp_task_continue(t);
                return;
        }
}

static void wp_on_task_response(void *userdata, const prakat_http_response *response) {
        WpTask *t = userdata;
        t->call = NULL;
        WpOutcome o;
        wp_classify(response, &o);
        if (o.klass == WP_OK) {
                wp_on_response_ok(t, &o);
        } else if (t->step == WP_STEP_CREATE && o.klass == WP_AMBIGUOUS) {
                t->wp->host->log(t->wp->host, PRAKAT_LOG_WARNING, t->id,
                                 "%s; looking for the post before anything else", o.text);
                t->after_ambiguous = true;
                if (t->wp->host->timer_start(t->wp->host, WP_RECONCILE_DELAY, wp_on_reconcile_timer, t, &t->timer) < 0)
                        wp_on_reconcile_timer(t);
        } else if (t->step == WP_STEP_CATEGORY_CREATE && strcmp(o.code, "term_exists") == 0 &&
                   wp_json_id(o.data, "term_id")) {
                t->category_id = wp_json_id(o.data, "term_id");
                t->category_known = true;
                wp_category_remember(t->wp, t->category, t->category_id);
                wp_task_continue(t);
        } else if (o.klass == WP_MISSING && t->step == WP_STEP_MEDIA_DELETE) {
                t->index++;
                wp_task_continue(t);
        } else if (o.klass == WP_MISSING && t->step == WP_STEP_UPDATE && t->retract) {
                json_object_set_new(t->record, "state", json_string("withdrawn"));
                (void) wp_record_write(t->wp, t->id, t->record);
                wp_task_finish(t, PRAKAT_OUTCOME_DONE, "the WordPress post was already deleted",
                               "เรื่องนี้ถูกลบออกจาก WordPress ไปแล้ว", NULL, 0);
        } else if (o.klass == WP_MISSING && t->step == WP_STEP_UPDATE) {
                /* The post to update was deleted on the site: make a new one. */
                t->post_id = 0;
                free(t->replaces);
                t->replaces = NULL;
                json_object_del(t->record, "post");
                wp_task_send(t, WP_STEP_FIND);
        } else {
                wp_task_fail(t, &o);
        }
        wp_outcome_done(&o);
}

/* Decides the task's next request, or ends it. */
static void wp_task_continue(WpTask *t) {
        if (t->retract) {
                if (!t->post_id && !t->looked) {
                        wp_task_send(t, WP_STEP_FIND);
                        return;
                }
                if (!t->post_id) {
                        wp_task_finish(t, PRAKAT_OUTCOME_DONE, "nothing to withdraw: the announcement has no WordPress post",
                                       "ไม่มีเรื่องของประกาศนี้ใน WordPress จึงไม่ต้องถอน", NULL, 0);
                        return;
                }
                if (!t->updated) {
                        wp_task_send(t, WP_STEP_UPDATE);
                        return;
                }
                json_t *media = json_object_get(t->record, "media");
                while (t->index < json_array_size(media) && !wp_json_id(json_array_get(media, t->index), "id"))
                        t->index++;
                if (t->index < json_array_size(media)) {
                        wp_task_send(t, WP_STEP_MEDIA_DELETE);
                        return;
                }
                json_object_set_new(t->record, "media", json_array());
                (void) wp_record_write(t->wp, t->id, t->record);
                wp_task_finish(t, PRAKAT_OUTCOME_DONE,
                               "withdrawn from WordPress: the post now shows a withdrawal notice",
                               "ถอนประกาศจาก WordPress แล้ว หน้าเดิมแสดงข้อความแจ้งการยกเลิก",
                               json_string_value(json_object_get(t->record, "link")), 0);
                return;
        }

        if (!t->post_id && !t->looked) {
                wp_task_send(t, WP_STEP_FIND);
                return;
        }
        if (!t->category_known) {
                long id = wp_json_id(t->wp->categories, t->category);
                if (id > 0 || !t->category[0]) {
                        t->category_id = id;
                        t->category_known = true;
                } else {
                        wp_task_send(t, WP_STEP_CATEGORY_FIND);
                        return;
                }
        }
        for (t->index = 0; t->index < t->n_att; t->index++)
                if (!t->att[t->index].url) {
                        wp_task_send(t, WP_STEP_MEDIA);
                        return;
                }
        wp_task_send(t, t->post_id ? WP_STEP_UPDATE : WP_STEP_CREATE);
}

/* ------------------------------------------------------------------------------------------------ */
/* Health */

static void wp_on_health(void *userdata, const prakat_http_response *response) {
        WordPress *wp = userdata;
        wp->health_call = NULL;
        WpOutcome o;
        wp_classify(response, &o);
        prakat_usec_t next = wp->health_interval;
        if (o.klass == WP_OK) {
                const char *name = json_string_value(json_object_get(o.json, "name"));
                if (wp->health != WP_HEALTH_OK)
                        wp->host->log(wp->host, PRAKAT_LOG_INFO, NULL, "WordPress login works (user %s)",
                                      name ? name : wp->user);
                snprintf(wp->user_name, sizeof wp->user_name, "%s", name ? name : wp->user);
                wp->health = WP_HEALTH_OK;
        } else if (o.klass == WP_AUTH) {
                wp_set_auth_failed(wp, o.text);
        } else {
                if (wp->health != WP_HEALTH_UNREACHABLE)
                        wp->host->log(wp->host, PRAKAT_LOG_WARNING, NULL, "WordPress check failed: %s", o.text);
                snprintf(wp->health_detail, sizeof wp->health_detail, "%s", o.text);
                wp->health = WP_HEALTH_UNREACHABLE;
        }
        if ((wp->auth_failed || wp->health != WP_HEALTH_OK) && next > WP_UNHEALTHY_RECHECK)
                next = WP_UNHEALTHY_RECHECK;
        wp_outcome_done(&o);
        wp_health_arm(wp, next);
}

static void wp_on_health_timer(void *userdata) {
        WordPress *wp = userdata;
        wp->health_timer = NULL;
        (void) wp_password_reload(wp);
        WpRequest req = { .method = "GET", .url = wp_url(wp, "users/me?context=edit") };
        int r = req.url ? wp_send(wp, &req, wp_on_health, wp, &wp->health_call) : -ENOMEM;
        wp_request_done(&req);
        if (r < 0) {
                wp->health_call = NULL;
                wp_health_arm(wp, WP_UNHEALTHY_RECHECK);
        }
}

static void wp_health_arm(WordPress *wp, prakat_usec_t delay) {
        if (wp->health_call)
                return; /* the answer arms the next check */
        wp->host->timer_cancel(wp->health_timer);
        if (wp->host->timer_start(wp->host, delay, wp_on_health_timer, wp, &wp->health_timer) < 0)
                wp->health_timer = NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */

int wordpress_mode_requested(const prakat_config_entry *entries, size_t n_entries, PluginConfigError *err) {
        for (size_t i = 0; i < n_entries; i++) {
                if (strcmp(entries[i].key, "mode") != 0)
                        continue;
                const char *v = entries[i].value ? entries[i].value : "";
                if (strcmp(v, "wordpress") == 0)
                        return 1;
                if (strcmp(v, "static") == 0)
                        return 0;
                return plugin_config_fail(err, entries[i].line, "mode must be static or wordpress, not '%s'", v);
        }
        return 0;
}

/* https://host[/path]; plain http only to this machine (tests). */
static int wp_check_url(WordPress *wp, const char *value, PluginConfigError *err, unsigned line) {
        PluginUrlProblem problem = plugin_url_check(value);
        if (problem == PLUGIN_URL_PLAIN_HTTP)
                return plugin_config_fail(err, line,
                                          "wordpress_url must use https:// (the application password would travel in "
                                          "the clear; http:// is allowed only to this machine), got '%s'",
                                          value);
        if (problem != PLUGIN_URL_OK)
                return plugin_config_fail(err, line,
                                          "wordpress_url must be the site's https:// address without '?' or '#', e.g. "
                                          "https://example.go.th (got '%s')",
                                          value);
        if (plugin_set_string(&wp->url, value) < 0)
                return plugin_config_fail(err, line, "out of memory");
        size_t n = strlen(wp->url);
        while (n > 0 && wp->url[n - 1] == '/')
                wp->url[--n] = 0;
        if (asprintf(&wp->api, "%s/wp-json/wp/v2", wp->url) < 0) {
                wp->api = NULL;
                return plugin_config_fail(err, line, "out of memory");
        }
        return 0;
}

static int wp_apply_entry(WordPress *wp, const prakat_config_entry *e, PluginConfigError *err,
                          unsigned *password_line) {
        const char *key = e->key, *value = e->value ? e->value : "";
        prakat_usec_t d;
        if (strcmp(key, "mode") == 0)
                return 0;
        if (strcmp(key, "wordpress_url") == 0)
                return wp_check_url(wp, value, err, e->line);
        if (strcmp(key, "wordpress_user") == 0) {
                if (!*value || strchr(value, ':') || strpbrk(value, "\r\n"))
                        return plugin_config_fail(err, e->line, "wordpress_user must be a WordPress user name "
                                                                "without ':', not '%s'", value);
                return plugin_set_string(&wp->user, value) < 0 ? plugin_config_fail(err, e->line, "out of memory") : 0;
        }
        if (strcmp(key, "wordpress_password_file") == 0 || strcmp(key, "wordpress_password_credential") == 0)
                return plugin_config_secret_key(e, "wordpress_password_file", "wordpress_password_credential",
                                                &wp->password_file, &wp->password_credential, password_line, err);
        if (strcmp(key, "timeout") == 0) {
                if (plugin_parse_duration(value, &d) < 0 || d < WP_SEC || d > 10 * WP_MINUTE)
                        return plugin_config_fail(err, e->line, "timeout must be a duration from 1s to 10m, not '%s'",
                                                  value);
                wp->timeout_ms = (unsigned) (d / 1000);
                return 0;
        }
        if (strcmp(key, "health_interval") == 0) {
                if (plugin_parse_duration(value, &d) < 0 || d < WP_SEC || d > 24 * 60 * WP_MINUTE)
                        return plugin_config_fail(err, e->line,
                                                  "health_interval must be a duration from 1s to 1d, not '%s'", value);
                wp->health_interval = d;
                return 0;
        }
        return plugin_config_fail(err, e->line, "'%s' is not used with mode = wordpress (known keys: " WP_KNOWN_KEYS ")",
                                  key);
}

static int wp_parse_config(WordPress *wp, const prakat_config_entry *entries, size_t n, PluginConfigError *err) {
        unsigned password_line = 0;
        for (size_t i = 0; i < n; i++) {
                int r = plugin_config_check_once(entries, i, err);
                if (r == 0)
                        r = wp_apply_entry(wp, &entries[i], err, &password_line);
                if (r < 0)
                        return r;
        }
        if (!wp->url)
                return plugin_config_fail(err, 0, "mode = wordpress needs wordpress_url (the site's address, e.g. "
                                                  "wordpress_url = https://example.go.th)");
        if (!wp->user)
                return plugin_config_fail(err, 0, "mode = wordpress needs wordpress_user (the WordPress user that "
                                                  "posts)");
        if (!wp->password_file && !wp->password_credential)
                return plugin_config_fail(err, 0, "mode = wordpress needs wordpress_password_file = "
                                                  "/etc/prakat/wordpress.password (mode 0600, an application password "
                                                  "of that user) or wordpress_password_credential = NAME");
        char reason[1024];
        int r = wp_read_password(wp, &wp->password, reason, sizeof reason);
        if (r < 0)
                return plugin_config_fail(err, password_line, "%s", reason);
        if (wp_make_authorization(wp) < 0)
                return plugin_config_fail(err, password_line, "out of memory");
        return 0;
}

static int wp_prepare_state(WordPress *wp, PluginConfigError *err) {
        char dir[4096];
        if (PRAKAT_HOST_CHECKING(wp->host)) /* prakatd --check: nothing created */
                return 0;
        snprintf(dir, sizeof dir, "%s/wordpress", wp->host->state_dir);
        if (asprintf(&wp->posts_dir, "%s/posts", dir) < 0 || asprintf(&wp->categories_path, "%s/categories.json", dir) < 0)
                return plugin_config_fail(err, 0, "out of memory");
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (mkdir(wp->posts_dir, 0700) < 0 && errno != EEXIST))
                return plugin_config_fail(err, 0, "cannot create the state folder %s: %s", wp->posts_dir,
                                          strerror(errno));
        char *data = NULL;
        if (plugin_read_small_file(wp->categories_path, WP_MAX_STATE_FILE, &data, NULL) == 0)
                wp->categories = json_loads(data, 0, NULL);
        free(data);
        if (!json_is_object(wp->categories)) {
                json_decref(wp->categories);
                wp->categories = json_object();
        }
        return wp->categories ? 0 : plugin_config_fail(err, 0, "out of memory");
}

/* ------------------------------------------------------------------------------------------------ */
/* What website.c calls */

void wordpress_free(WordPress *wp) {
        if (!wp)
                return;
        while (wp->tasks)
                wp_task_free(wp->tasks);
        wp->host->timer_cancel(wp->health_timer);
        wp->host->http_cancel(wp->health_call);
        plugin_free_secret(wp->password);
        plugin_free_secret(wp->authorization);
        free(wp->url);
        free(wp->api);
        free(wp->user);
        free(wp->password_file);
        free(wp->password_credential);
        free(wp->posts_dir);
        free(wp->categories_path);
        json_decref(wp->categories);
        free(wp);
}

int wordpress_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                        WordPress **ret, PluginConfigError *err) {
        WordPress *wp = calloc(1, sizeof(WordPress));
        if (!wp)
                return plugin_config_fail(err, 0, "out of memory");
        wp->host = host;
        wp->timeout_ms = (unsigned) (WP_DEFAULT_TIMEOUT / 1000);
        wp->health_interval = WP_DEFAULT_HEALTH_INTERVAL;
        int r = wp_parse_config(wp, entries, n_entries, err);
        if (r == 0)
                r = wp_prepare_state(wp, err);
        if (r < 0) {
                wordpress_free(wp);
                return r;
        }
        wp_health_arm(wp, 0);
        *ret = wp;
        return 0;
}

static void wp_finish_now(WordPress *wp, prakat_job *job, prakat_outcome outcome, const char *en, const char *th) {
        prakat_result result = { .outcome = outcome, .message = en, .message_th = th };
        wp->host->job_finish(wp->host, job, &result);
}

static int wp_task_take_attachments(WpTask *t, const prakat_announcement *a) {
        t->att = calloc(a->n_attachments + 1, sizeof(WpAttachment));
        if (!t->att)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_attachments; i++, t->n_att++) {
                const prakat_attachment *src = &a->attachments[i];
                t->att[i].path = strdup(src->path);
                t->att[i].name = strdup(src->name);
                t->att[i].mime = strdup(src->mime ? src->mime : "application/octet-stream");
                if (!t->att[i].path || !t->att[i].name || !t->att[i].mime) {
                        t->n_att++;
                        return -ENOMEM;
                }
        }
        return 0;
}

/* With Replaces, the post of the replaced announcement is updated instead of a new one made. */
static void wp_task_take_replaced(WpTask *t, const prakat_announcement *a) {
        if (!a->replaces || strcmp(a->replaces, a->id) == 0 || !plugin_id_is_safe(a->replaces))
                return;
        json_t *old = wp_record_read(t->wp, a->replaces);
        long old_post = wp_json_id(old, "post");
        if (old_post && strcmp(wp_record_state(old), "withdrawn") != 0) {
                t->post_id = old_post;
                t->looked = true;
                t->replaces = strdup(a->replaces);
        }
        json_decref(old);
}

/* A publish task holding what the post will be made of: publish() and preview() both start from it. */
static WpTask *wp_task_compose(WordPress *wp, prakat_job *job, const prakat_announcement *a) {
        WpTask *t = wp_task_new(wp, job, false, a->id);
        if (!t)
                return NULL;
        t->title = strdup(a->title ? a->title : a->id);
        t->body = strdup(a->body ? a->body : "");
        t->category = strdup(a->category ? a->category : "");
        if (!t->title || !t->body || !t->category || wp_task_take_attachments(t, a) < 0) {
                wp_task_free(t);
                return NULL;
        }
        return t;
}

/* The post in words: title, slug, category, the media to upload and the content HTML as sent. */
static void wp_task_describe(const WpTask *t, const char *title, const char *content, PluginBuf *b) {
        plugin_buf_puts(b, "(ที่อยู่ของบทความ WordPress กำหนดเมื่อสร้างโพสต์ / WordPress gives the article its "
                           "address when the post is made)\n");
        plugin_buf_printf(b, "หัวข้อ / title: %s\nslug: %s\nหมวด / category: %s\n", title, t->slug,
                          t->category[0] ? t->category : "(WordPress's default)");
        if (t->post_id)
                plugin_buf_printf(b, "แก้ไขโพสต์เดิม / updates the earlier post %ld (%s)\n", t->post_id,
                                  t->replaces ? t->replaces : "");
        for (size_t i = 0; i < t->n_att; i++) {
                char name[PLUGIN_MAX_ID_LENGTH + 40];
                wp_media_file_name(t, i, name, sizeof name);
                plugin_buf_printf(b, "สื่อ / media %zu: %s (%s) %s\n", i + 1, t->att[i].name, t->att[i].mime,
                                  t->att[i].url ? t->att[i].url : name);
        }
        if (t->n_att)
                plugin_buf_puts(b, "(the pictures and files go into the content below at the addresses WordPress gives "
                                   "them on upload)\n");
        plugin_buf_printf(b, "เนื้อหา / content (HTML):\n-----\n%s-----\n", content);
}

/* A page to look at: the post's title and content, as a theme would show them without its frame. */
static int wp_write_preview_page(const char *path, const char *title, const char *content) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"th\">\n<head>\n<meta charset=\"utf-8\">\n"
                          "<title>%s</title>\n</head>\n<body>\n<article>\n<h1>%s</h1>\n%s</article>\n</body>\n</html>\n",
                          title, title, content);
        int r = b.failed ? -ENOMEM : plugin_write_file(path, b.data, b.size, false);
        plugin_buf_free(&b);
        return r;
}

int wordpress_preview(WordPress *wp, const prakat_announcement *a, const char *page_path, char **ret_text) {
        if (!plugin_id_is_safe(a->id))
                return -EINVAL;
        WpTask *t = wp_task_compose(wp, NULL, a);
        if (!t)
                return -ENOMEM;
        wp_task_take_recorded_media(t);
        wp_task_take_replaced(t, a);
        char *title = wp_escape(t->title), *content = wp_render_content(t->id, t->body, t->att, t->n_att);
        PluginBuf b = {};
        int r = title && content ? 0 : -ENOMEM;
        if (r == 0 && page_path)
                r = wp_write_preview_page(page_path, title, content);
        if (r == 0)
                wp_task_describe(t, title, content, &b);
        char *text = r == 0 ? plugin_buf_steal(&b, NULL) : NULL;
        plugin_buf_free(&b);
        if (r == 0 && !text)
                r = -ENOMEM;
        if (r == 0)
                *ret_text = text;
        free(title);
        free(content);
        wp_task_free(t);
        return r;
}

int wordpress_publish(WordPress *wp, prakat_job *job, const prakat_announcement *a) {
        if (!plugin_id_is_safe(a->id)) {
                wp_finish_now(wp, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used in a URL",
                              "ใช้รหัสประกาศนี้เป็นชื่อหน้าเว็บไม่ได้");
                return 0;
        }
        WpTask *t = wp_task_compose(wp, job, a);
        if (!t)
                return -ENOMEM;

        /* Published already (the job's end was lost in a crash): done at once. */
        long post = wp_json_id(t->record, "post");
        if (post && strcmp(wp_record_state(t->record), "published") == 0) {
                t->post_id = post;
                wp_task_take_recorded_media(t);
                bool complete = true;
                for (size_t i = 0; i < t->n_att; i++)
                        complete = complete && t->att[i].url;
                if (complete) {
                        wp_task_finish(t, PRAKAT_OUTCOME_DONE, "published on WordPress",
                                       "เผยแพร่บนเว็บไซต์ (WordPress) แล้ว",
                                       json_string_value(json_object_get(t->record, "link")), 0);
                        return 0;
                }
        }
        wp_task_take_recorded_media(t);
        wp_task_take_replaced(t, a);
        wp_task_continue(t);
        return 0;
}

int wordpress_retract(WordPress *wp, prakat_job *job, const prakat_announcement *target, const char *reason) {
        if (!plugin_id_is_safe(target->id)) {
                wp_finish_now(wp, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used in a URL",
                              "ใช้รหัสประกาศนี้เป็นชื่อหน้าเว็บไม่ได้");
                return 0;
        }
        WpTask *t = wp_task_new(wp, job, true, target->id);
        if (!t)
                return -ENOMEM;
        t->title = strdup(target->title ? target->title : target->id);
        t->reason = reason ? strdup(reason) : NULL;
        if (!t->title || (reason && !t->reason)) {
                wp_task_free(t);
                return -ENOMEM;
        }
        const char *replaced_by = json_string_value(json_object_get(t->record, "replaced_by"));
        if (strcmp(wp_record_state(t->record), "replaced") == 0 && replaced_by) {
                char en[512];
                wp_text(en, sizeof en, "nothing withdrawn on WordPress: its post now shows %s, which replaced it "
                                       "(cancel %s to withdraw the post)", replaced_by, replaced_by);
                wp_task_finish(t, PRAKAT_OUTCOME_DONE, en,
                               "ไม่ได้ถอนเรื่องใน WordPress เพราะประกาศนี้ถูกแทนที่ด้วยประกาศใหม่แล้ว", NULL, 0);
                return 0;
        }
        t->post_id = wp_json_id(t->record, "post");
        if (!t->post_id && job->remote_id) {
                char *end = NULL;
                long id = strtol(job->remote_id, &end, 10);
                t->post_id = end && !*end && id > 0 ? id : 0;
        }
        wp_task_continue(t);
        return 0;
}

int wordpress_health(WordPress *wp, char *buffer, size_t buffer_size) {
        if (wp->auth_failed) {
                wp_auth_message(wp, false, buffer, buffer_size, NULL, 0);
                return -EIO;
        }
        if (wp->password_problem[0]) {
                snprintf(buffer, buffer_size, "the WordPress password cannot be read again: %s", wp->password_problem);
                return -EIO;
        }
        switch (wp->health) {
        case WP_HEALTH_OK:
                snprintf(buffer, buffer_size, "ok: WordPress %s, user %s", wp->url, wp->user_name);
                return 0;
        case WP_HEALTH_UNREACHABLE:
                snprintf(buffer, buffer_size, "WordPress %s could not be reached at the last check: %s", wp->url,
                         wp->health_detail);
                return -EHOSTUNREACH;
        case WP_HEALTH_UNKNOWN:
        default:
                snprintf(buffer, buffer_size, "password read; checking the login with WordPress %s", wp->url);
                return 0;
        }
}
