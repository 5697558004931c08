/* SPDX-License-Identifier: MIT */
/*
 * facebook: posts announcements to the office's Facebook Page through the Graph API.
 *
 *   publish   a feed post (text + link to the article page); one image: POST /{page}/photos with
 *             the caption; several: each uploaded unpublished, then one feed post with
 *             attached_media.  An announcement that Replaces another edits that one's post
 *             (POST /{post} message=...), or posts anew when there is none.
 *   retract   DELETE /{post}; a post that is already gone counts as deleted.
 *   health    GET /{page}?fields=id,name at start and every health_interval, re-reading the token.
 *
 * Exactly once without an idempotency key.  Graph has none, so the plugin writes pending/ID
 * durably before a create request leaves (store.c).  An answer that leaves open whether the
 * post was made (timeout, dropped connection, 5xx, HTML from a proxy, codes 1 and 2) is
 * followed, after a short pause, by reading the Page's recent posts and looking for the
 * announcement's marker (the article URL that ends every post); found means done, not found
 * means "retry", and every later attempt -- also the one after a crash, which finds pending/ID
 * or job->interrupted -- reads the Page again before it may post.  Only when the Page cannot be
 * read for hours does the job end "unconfirmed", asking a person to look.
 *
 * Not hammering.  At most max_in_flight Graph requests of this instance are under way; the
 * others wait here in order.  A throttling error pauses every request of the instance until the
 * usage headers' estimated_time_to_regain_access; an expired or revoked token (190 and the
 * token subcodes) stops them until the periodic check (or a job) finds a token that works.  In
 * both cases jobs end RETRY with retry_after, never waiting inside the plugin, so a stop of
 * prakatd is never held up.
 *
 * The token travels only in the Authorization header.  It is never logged, never put into a
 * URL, a result, a state file or an error text (platform texts are scrubbed of it all the same).
 */
#include "facebook.h"

#include "plugin-util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FACEBOOK_VERSION "1.0"
#define SEC FB_USEC_PER_SEC
#define MINUTE (60 * SEC)

#define DEFAULT_API_BASE "https://graph.facebook.com/v24.0"
#define DEFAULT_MAX_IN_FLIGHT 4
#define DEFAULT_TIMEOUT (30 * SEC)
#define DEFAULT_HEALTH_INTERVAL (10 * MINUTE)
#define UNHEALTHY_RECHECK (1 * MINUTE) /* at most this long between checks while something is wrong */
#define HEALTH_BUSY_RETRY (5 * SEC)    /* every request slot taken: check a little later */

#define RECONCILE_DELAY (1 * SEC)     /* after an unclear answer, before the Page is read */
#define RECONCILE_PAGES 5             /* pages of recent posts read, newest first */
#define RECONCILE_PAGE_SIZE 50
#define RECONCILE_GIVE_UP (6 * 60 * MINUTE)
#define RECONCILE_GIVE_UP_FAILURES 3
#define THROTTLE_DEFAULT (1 * MINUTE) /* when the headers do not say; doubles while it repeats */
#define THROTTLE_MAX (60 * MINUTE)
#define SLOW_RETRY (30 * MINUTE)      /* 368: temporarily blocked for policy reasons */

#define MAX_PHOTOS 10
#define MAX_PHOTO_SIZE (10ULL * 1024 * 1024 - 1) /* "a photo must be less than 10MB" */
#define LIST_MAX_RESPONSE (8 * 1024 * 1024)

#define KNOWN_KEYS "page_id, token_file, token_credential, api_base, max_in_flight, timeout, health_interval"

/* ------------------------------------------------------------------------------------------------ */
/* Types */

typedef enum TaskKind {
        TASK_PUBLISH,
        TASK_RETRACT,
} TaskKind;

/* What a task's next (or current) request is. */
typedef enum Step {
        STEP_RECONCILE, /* GET /{page}/published_posts: is the announcement on the Page? */
        STEP_EDIT,      /* POST /{old post} message=...  (Replaces) */
        STEP_UPLOAD,    /* POST /{page}/photos published=false  (one of several photos) */
        STEP_CREATE,    /* POST /{page}/feed or /{page}/photos: the one request that makes a post */
        STEP_DELETE,    /* DELETE /{post} */
} Step;

typedef enum HealthState {
        HEALTH_UNKNOWN,
        HEALTH_OK,
        HEALTH_UNREACHABLE,
} HealthState;

typedef struct Photo {
        char *path;
        char *name;
        char *mime;
        char *url;  /* the website's https URL of the file, or NULL: then the bytes are uploaded */
        char *fbid; /* several photos: the unpublished photo's id once uploaded */
} Photo;

typedef struct Facebook Facebook;
typedef struct Task Task;

/* One job in the plugin's hands. */
struct Task {
        Facebook *fb;
        prakat_job *job;
        TaskKind kind;
        char *id;      /* the announcement published, or the one withdrawn */
        char *message; /* publish: the post's text */
        char *link;    /* publish: the article URL, or NULL */
        char *marker;  /* what identifies the announcement's post on the Page */
        char *old_post; /* publish with Replaces: the post to edit */
        char *post_id;  /* retract: the post to delete */
        Photo *photos;
        size_t n_photos;
        size_t upload_index;

        Step step;
        bool must_reconcile;  /* read the Page before any create request */
        bool after_ambiguous; /* this attempt's create got no clear answer */
        bool after_duplicate; /* this attempt's create was refused as a duplicate (506) */
        unsigned pages_read;
        char *after; /* paging cursor of the next page of posts */

        prakat_http_call *call;
        prakat_timer *timer;
        Task *next, *prev;   /* every task of the instance */
        Task *wait_next;     /* waiting for a request slot */
        bool waiting;
};

/* Posts whose records wait for one sync before their pending/ID goes (at most this many, or the next
 * health check, or the instance's end). */
#define SETTLE_BATCH 64

struct Facebook {
        const prakat_host *host;
        char *settled[SETTLE_BATCH];
        size_t n_settled;
        char *page_id;
        char *api_base; /* without a trailing slash; its last part is the Graph version */
        char *version;
        char *token_file;
        char *token_credential;
        char *token;
        unsigned max_in_flight;
        unsigned timeout_ms;
        prakat_usec_t health_interval;

        Task *tasks;
        Task *wait_head, *wait_tail;
        unsigned in_flight;

        prakat_usec_t paused_until; /* host->now() clock: no request before this */
        unsigned throttle_streak;

        bool auth_failed;
        char auth_detail[400];   /* Facebook's words */
        char token_problem[1024]; /* why the token file could not be read again, "" when it could */

        HealthState health;
        char health_detail[400];
        char page_name[128];
        prakat_timer *health_timer;
        prakat_http_call *health_call;
};

static void task_request(Task *t);
static void task_continue_publish(Task *t);
static void fb_health_arm(Facebook *fb, prakat_usec_t delay);

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers */

/* snprintf() for texts that may be cut: messages for people, where a cut is better than nothing. */
__attribute__((format(printf, 3, 4))) static void text_printf(char *buffer, size_t size, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(buffer, size, format, ap);
        va_end(ap);
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static prakat_usec_t fb_now(const Facebook *fb) {
        return fb->host->now(fb->host);
}

/* The plain line `prakat status`, the log and the receipts show while the token does not work. */
static void auth_message(const Facebook *fb, bool detail, char *en, size_t en_size, char *th, size_t th_size) {
        char place[4200];
        plugin_secret_place(fb->host, fb->token_file, fb->token_credential, place, sizeof place);
        detail = detail && fb->auth_detail[0];
        if (en)
                text_printf(en, en_size,
                            "the Facebook token has expired or was revoked; put a new Page token in %s and reload "
                            "(systemctl reload prakat)%s%s%s",
                            place, detail ? " [" : "", detail ? fb->auth_detail : "", detail ? "]" : "");
        if (th)
                text_printf(th, th_size,
                            "โทเค็น Facebook หมดอายุหรือถูกเพิกถอน ให้ใส่โทเค็นของเพจอันใหม่ใน %s แล้วสั่ง reload "
                            "(systemctl reload prakat)",
                            place);
}

/* ------------------------------------------------------------------------------------------------ */
/* Tasks: creation, the wait queue, finishing */

static void photo_done(Photo *p) {
        free(p->path);
        free(p->name);
        free(p->mime);
        free(p->url);
        free(p->fbid);
}

static Task *task_new(Facebook *fb, prakat_job *job, TaskKind kind, const char *id) {
        Task *t = calloc(1, sizeof(Task));
        if (!t)
                return NULL;
        t->fb = fb;
        t->job = job;
        t->kind = kind;
        t->id = strdup(id);
        if (!t->id) {
                free(t);
                return NULL;
        }
        t->next = fb->tasks;
        if (fb->tasks)
                fb->tasks->prev = t;
        fb->tasks = t;
        return t;
}

static void wait_remove(Facebook *fb, Task *t) {
        if (!t->waiting)
                return;
        Task **p = &fb->wait_head, *last = NULL;
        while (*p && *p != t) {
                last = *p;
                p = &(*p)->wait_next;
        }
        if (*p) {
                *p = t->wait_next;
                if (fb->wait_tail == t)
                        fb->wait_tail = last;
        }
        t->wait_next = NULL;
        t->waiting = false;
}

static void task_free(Task *t) {
        Facebook *fb = t->fb;
        if (t->call) {
                fb->host->http_cancel(t->call);
                fb->in_flight--;
        }
        fb->host->timer_cancel(t->timer);
        wait_remove(fb, t);
        if (t->prev)
                t->prev->next = t->next;
        else
                fb->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        for (size_t i = 0; i < t->n_photos; i++)
                photo_done(&t->photos[i]);
        free(t->photos);
        free(t->id);
        free(t->message);
        free(t->link);
        free(t->marker);
        free(t->old_post);
        free(t->post_id);
        free(t->after);
        free(t);
}

/* Ends the task's job and frees the task.  The core copies every string of the result. */
static void task_finish(Task *t, prakat_outcome outcome, const char *en, const char *th, const char *link,
                        const char *remote_id, prakat_usec_t retry_after) {
        Facebook *fb = t->fb;
        char en_clean[1024], th_clean[1024];
        snprintf(en_clean, sizeof en_clean, "%s", en ? en : "");
        snprintf(th_clean, sizeof th_clean, "%s", th ? th : "");
        graph_scrub(en_clean, fb->token);
        graph_scrub(th_clean, fb->token);
        prakat_result result = {
                .outcome = outcome,
                .message = en ? en_clean : NULL,
                .message_th = th ? th_clean : NULL,
                .link = link,
                .remote_id = remote_id,
                .retry_after = outcome == PRAKAT_OUTCOME_RETRY ? retry_after : 0,
        };
        fb->host->job_finish(fb->host, t->job, &result);
        task_free(t);
}

__attribute__((format(printf, 4, 5))) static void task_retry(Task *t, prakat_usec_t retry_after, const char *th,
                                                             const char *format, ...) {
        char en[1024];
        va_list ap;
        va_start(ap, format);
        vsnprintf(en, sizeof en, format, ap);
        va_end(ap);
        task_finish(t, PRAKAT_OUTCOME_RETRY, en, th, NULL, NULL, retry_after);
}

static void task_retry_throttled(Task *t) {
        Facebook *fb = t->fb;
        prakat_usec_t now = fb_now(fb), left = fb->paused_until > now ? fb->paused_until - now : 0;
        unsigned minutes = (unsigned) ((left + MINUTE - 1) / MINUTE);
        char th[256];
        snprintf(th, sizeof th, "Facebook จำกัดการเรียกใช้ของเพจนี้ชั่วคราว จะลองใหม่ในอีกประมาณ %u นาที", minutes);
        task_retry(t, left, th,
                   "Facebook is limiting this Page's API calls; no call for about %u min, then this is tried again",
                   minutes);
}

static void task_retry_auth(Task *t) {
        char en[1024], th[1024];
        auth_message(t->fb, true, en, sizeof en, th, sizeof th);
        task_finish(t, PRAKAT_OUTCOME_RETRY, en, th, NULL, NULL, t->fb->health_interval);
}

/* Every task waiting for a slot ends now: the instance will not send for a while. */
static void fb_flush_waiting(Facebook *fb) {
        while (fb->wait_head) {
                Task *t = fb->wait_head;
                wait_remove(fb, t);
                if (fb->auth_failed)
                        task_retry_auth(t);
                else
                        task_retry_throttled(t);
        }
}

static void fb_pause(Facebook *fb, prakat_usec_t regain, const char *why) {
        prakat_usec_t pause = regain;
        if (pause == 0) {
                pause = THROTTLE_DEFAULT;
                for (unsigned i = 0; i < fb->throttle_streak && pause < THROTTLE_MAX; i++)
                        pause *= 2;
                if (pause > THROTTLE_MAX)
                        pause = THROTTLE_MAX;
        }
        fb->throttle_streak++;
        prakat_usec_t until = fb_now(fb) + pause;
        if (until > fb->paused_until) {
                fb->paused_until = until;
                fb->host->log(fb->host, PRAKAT_LOG_WARNING, NULL,
                              "Facebook is throttling this Page (%s); no calls for %llus",
                              why, (unsigned long long) (pause / SEC));
        }
        fb_flush_waiting(fb);
}

/*
 * Re-reads the token; a token that differs from the one in use is taken (and, if the old one had
 * stopped working, tried at once).  Returns whether a new token was taken.
 */
static bool fb_token_reload(Facebook *fb, char *error, size_t error_size) {
        if (plugin_secret_reload(fb->host, fb->token_file, fb->token_credential, &fb->token, error, error_size) <= 0)
                return false;
        if (fb->auth_failed) {
                fb->auth_failed = false;
                fb->auth_detail[0] = 0;
                fb->host->log(fb->host, PRAKAT_LOG_NOTICE, NULL, "A new Facebook token was found; trying it");
        }
        return true;
}

static void fb_set_auth_failed(Facebook *fb, const char *detail) {
        if (!fb->auth_failed) {
                snprintf(fb->auth_detail, sizeof fb->auth_detail, "%s", detail ? detail : "");
                graph_scrub(fb->auth_detail, fb->token);
                fb->auth_failed = true;
                char en[1024];
                auth_message(fb, true, en, sizeof en, NULL, 0);
                fb->host->log(fb->host, PRAKAT_LOG_ERR, NULL, "Channel unhealthy: %s", en);
                /* Check again soon: the token may be replaced any minute. */
                if (fb->health_interval > UNHEALTHY_RECHECK)
                        fb_health_arm(fb, UNHEALTHY_RECHECK);
        }
        fb_flush_waiting(fb);
}

/* Takes a slot, or waits for one; ends the job at once while the instance may not send. */
static void task_request_send(Task *t);

static void task_request(Task *t) {
        Facebook *fb = t->fb;
        char ignored[512];

        if (fb->paused_until > fb_now(fb)) {
                task_retry_throttled(t);
                return;
        }
        if (fb->auth_failed && !fb_token_reload(fb, ignored, sizeof ignored)) {
                task_retry_auth(t);
                return;
        }
        if (fb->in_flight >= fb->max_in_flight) {
                t->waiting = true;
                t->wait_next = NULL;
                if (fb->wait_tail)
                        fb->wait_tail->wait_next = t;
                else
                        fb->wait_head = t;
                fb->wait_tail = t;
                return;
        }
        task_request_send(t);
}

static void fb_pump(Facebook *fb) {
        while (fb->wait_head && fb->in_flight < fb->max_in_flight) {
                Task *t = fb->wait_head;
                wait_remove(fb, t);
                task_request(t);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Building and sending requests */

typedef struct Request {
        const char *method;
        char *url;
        char *body;
        size_t body_size;
        char content_type[96];
        size_t max_response;
        bool send_once; /* creates something: never sent again by the transport (see fb_send) */
} Request;

static void request_done(Request *r) {
        free(r->url);
        free(r->body);
}

static char *fb_url(const Facebook *fb, const char *path, const char *query) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "%s/%s", fb->api_base, path);
        if (query && *query)
                plugin_buf_printf(&b, "?%s", query);
        return plugin_buf_steal(&b, NULL);
}

static void make_boundary(char out[48]) {
        char uuid[37];
        if (plugin_uuid4(uuid) < 0)
                snprintf(uuid, sizeof uuid, "%08lx", (unsigned long) random());
        snprintf(out, 48, "prakat-%s", uuid);
}

/* A photo request body: the file's https URL as `url`, else the bytes as multipart `source`. */
static int photo_body(const Photo *p, const char *caption, bool published, Request *req) {
        PluginBuf b = {};
        if (p->url) {
                graph_form_add(&b, "url", p->url);
                if (caption)
                        graph_form_add(&b, "caption", caption);
                if (!published)
                        graph_form_add(&b, "published", "false");
                snprintf(req->content_type, sizeof req->content_type, "application/x-www-form-urlencoded");
        } else {
                char boundary[48];
                make_boundary(boundary);
                if (caption)
                        graph_multipart_field(&b, boundary, "caption", caption);
                if (!published)
                        graph_multipart_field(&b, boundary, "published", "false");
                int r = graph_multipart_file(&b, boundary, "source", p->name, p->mime, p->path, MAX_PHOTO_SIZE);
                if (r < 0) {
                        plugin_buf_free(&b);
                        return r;
                }
                graph_multipart_end(&b, boundary);
                snprintf(req->content_type, sizeof req->content_type, "multipart/form-data; boundary=%s",
                         boundary);
        }
        req->body = plugin_buf_steal(&b, &req->body_size);
        return req->body ? 0 : -ENOMEM;
}

static int build_reconcile(Task *t, Request *req) {
        Facebook *fb = t->fb;
        PluginBuf q = {}, path = {};
        graph_form_add(&q, "fields", "id,message,created_time,permalink_url");
        plugin_buf_printf(&q, "&limit=%d", RECONCILE_PAGE_SIZE);
        if (t->after)
                graph_form_add(&q, "after", t->after);
        plugin_buf_printf(&path, "%s/published_posts", fb->page_id);
        char *query = plugin_buf_steal(&q, NULL), *p = plugin_buf_steal(&path, NULL);
        req->method = "GET";
        req->url = query && p ? fb_url(fb, p, query) : NULL;
        req->max_response = LIST_MAX_RESPONSE;
        free(query);
        free(p);
        return req->url ? 0 : -ENOMEM;
}

static int build_create(Task *t, Request *req) {
        Facebook *fb = t->fb;
        PluginBuf b = {}, path = {};
        req->method = "POST";
        if (t->n_photos == 1) {
                plugin_buf_printf(&path, "%s/photos", fb->page_id);
                int r = photo_body(&t->photos[0], t->message, true, req);
                if (r < 0) {
                        plugin_buf_free(&path);
                        return r;
                }
        } else {
                plugin_buf_printf(&path, "%s/feed", fb->page_id);
                graph_form_add(&b, "message", t->message);
                if (t->n_photos == 0 && t->link)
                        graph_form_add(&b, "link", t->link);
                for (size_t i = 0; i < t->n_photos; i++) {
                        char name[48], value[200];
                        text_printf(name, sizeof name, "attached_media[%zu]", i);
                        text_printf(value, sizeof value, "{\"media_fbid\":\"%s\"}", t->photos[i].fbid);
                        graph_form_add(&b, name, value);
                }
                snprintf(req->content_type, sizeof req->content_type, "application/x-www-form-urlencoded");
                req->body = plugin_buf_steal(&b, &req->body_size);
        }
        char *p = plugin_buf_steal(&path, NULL);
        req->url = p ? fb_url(fb, p, NULL) : NULL;
        free(p);
        return req->url && req->body ? 0 : -ENOMEM;
}

static int build_request(Task *t, Request *req) {
        Facebook *fb = t->fb;
        PluginBuf b = {}, path = {};
        switch (t->step) {
        case STEP_RECONCILE:
                return build_reconcile(t, req);
        case STEP_CREATE:
                req->send_once = true;
                return build_create(t, req);
        case STEP_EDIT:
                req->method = "POST";
                req->url = fb_url(fb, t->old_post, NULL);
                graph_form_add(&b, "message", t->message);
                snprintf(req->content_type, sizeof req->content_type, "application/x-www-form-urlencoded");
                req->body = plugin_buf_steal(&b, &req->body_size);
                return req->url && req->body ? 0 : -ENOMEM;
        case STEP_UPLOAD: {
                req->method = "POST";
                req->send_once = true;
                plugin_buf_printf(&path, "%s/photos", fb->page_id);
                char *p = plugin_buf_steal(&path, NULL);
                req->url = p ? fb_url(fb, p, NULL) : NULL;
                free(p);
                if (!req->url)
                        return -ENOMEM;
                return photo_body(&t->photos[t->upload_index], NULL, false, req);
        }
        case STEP_DELETE:
                req->method = "DELETE";
                req->url = fb_url(fb, t->post_id, NULL);
                return req->url ? 0 : -ENOMEM;
        }
        return -EINVAL;
}

/*
 * Sends `req` with the token in the Authorization header (never in the URL).
 *
 * A request that creates something (a post, a photo) is marked PRAKAT_HTTP_SEND_ONCE.  libcurl
 * silently sends a request again when it went out on a reused keep-alive connection that died before
 * any byte of an answer came back -- exactly the "accepted, then dropped" case, where Facebook has
 * made the post; a POST repeated behind our back would be a second post that no reconciliation can
 * undo.  Marked, it ends as a dropped connection instead (-ECONNRESET: unclear, so the Page is read
 * before anything is posted again).  Every request shares the keep-alive connections.
 */
static int fb_send(Facebook *fb, const Request *req, prakat_http_done_fn done, void *userdata,
                   prakat_http_call **ret_call) {
        size_t auth_size = strlen(fb->token) + 16;
        char *auth = malloc(auth_size);
        if (!auth)
                return -ENOMEM;
        snprintf(auth, auth_size, "Bearer %s", fb->token);
        prakat_http_header headers[4] = {
                { "Authorization", auth },
                { "Accept", "application/json" },
        };
        size_t n = 2;
        if (req->send_once)
                headers[n++] = (prakat_http_header) { PRAKAT_HTTP_SEND_ONCE, "yes" };
        if (req->body)
                headers[n++] = (prakat_http_header) { "Content-Type", req->content_type };
        prakat_http_request request = {
                .method = req->method,
                .url = req->url,
                .headers = headers,
                .n_headers = n,
                .body = req->body,
                .body_size = req->body_size,
                .timeout_ms = fb->timeout_ms,
                .max_response = req->max_response,
        };
        int r = fb->host->http_request(fb->host, &request, done, userdata, ret_call);
        explicit_bzero(auth, auth_size);
        free(auth);
        return r;
}

static void on_task_response(void *userdata, const prakat_http_response *response);

static void task_request_send(Task *t) {
        Facebook *fb = t->fb;
        Request req = {};
        int r = build_request(t, &req);
        if (r < 0) {
                request_done(&req);
                if (r == -ENOMEM)
                        task_retry(t, 0, "หน่วยความจำไม่พอ จะลองใหม่", "out of memory");
                else
                        task_finish(t, PRAKAT_OUTCOME_FAILED, "cannot read a photo of the announcement",
                                    "อ่านไฟล์ภาพของประกาศไม่ได้", NULL, NULL, 0);
                return;
        }
        if (t->step == STEP_CREATE) {
                /* From here on a post may exist: a restart must look before it posts again. */
                StorePending p = {};
                if (store_read_pending(fb->host->state_dir, t->id, &p) < 0 || p.since == 0)
                        p = (StorePending) { .since = fb_now(fb) };
                r = store_write_pending(fb->host->state_dir, t->id, &p);
                if (r < 0) {
                        request_done(&req);
                        task_retry(t, 0, "บันทึกสถานะลงดิสก์ไม่ได้ จะลองใหม่",
                                   "cannot write %s/pending/%s: %s", fb->host->state_dir, t->id, strerror(-r));
                        return;
                }
        }
        r = fb_send(fb, &req, on_task_response, t, &t->call);
        request_done(&req);
        if (r < 0) {
                t->call = NULL;
                task_retry(t, 0, "เริ่มการเชื่อมต่อกับ Facebook ไม่ได้ จะลองใหม่",
                           "cannot start a request to Facebook: %s", strerror(-r));
                return;
        }
        fb->in_flight++;
}

/* ------------------------------------------------------------------------------------------------ */
/* What an answer means for the job */

static char *permalink_of(const char *post_id) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "https://www.facebook.com/%s", post_id);
        return plugin_buf_steal(&b, NULL);
}

/* An error that is not special to the step: throttling, the token, transient or permanent. */
static void task_fail(Task *t, const GraphOutcome *o) {
        Facebook *fb = t->fb;
        char th[600];
        switch (o->klass) {
        case GRAPH_THROTTLED:
                fb_pause(fb, o->regain, o->text);
                task_retry_throttled(t);
                return;
        case GRAPH_AUTH:
                fb_set_auth_failed(fb, o->text);
                task_retry_auth(t);
                return;
        case GRAPH_AMBIGUOUS:
        case GRAPH_NOT_SENT:
        case GRAPH_TRANSIENT:
                snprintf(th, sizeof th, "ติดต่อ Facebook ไม่สำเร็จชั่วคราว จะลองใหม่ (%s)", o->text);
                task_retry(t, o->slow ? SLOW_RETRY : 0, th, "%s; will try again", o->text);
                return;
        case GRAPH_OK:
        case GRAPH_DUPLICATE:
        case GRAPH_MISSING:
        case GRAPH_PERMANENT:
                break;
        }
        snprintf(th, sizeof th, "Facebook ไม่รับคำขอนี้: %s", o->text);
        task_finish(t, PRAKAT_OUTCOME_FAILED, o->text, th, NULL, NULL, 0);
}

/* Removes the pending/ID of settled posts once a batch of their records is synced (store_settle). */
static void fb_settle_now(Facebook *fb) {
        store_settle(fb->host->state_dir, fb->settled, fb->n_settled);
        for (size_t i = 0; i < fb->n_settled; i++)
                free(fb->settled[i]);
        fb->n_settled = 0;
}

static void fb_settle_later(Facebook *fb, const char *id) {
        char *copy = strdup(id);
        if (!copy)
                return;
        fb->settled[fb->n_settled++] = copy;
        if (fb->n_settled == SETTLE_BATCH)
                fb_settle_now(fb);
}

/* The announcement is on the Page as `post_id`: remember it, forget what was pending, done. */
static void task_published(Task *t, const char *post_id, const char *permalink, const char *en, const char *th) {
        Facebook *fb = t->fb;
        char *own = permalink ? NULL : permalink_of(post_id);
        const char *link = permalink ? permalink : own;
        int r = store_write_post(fb->host->state_dir, t->id, post_id, link);
        if (r < 0)
                fb->host->log(fb->host, PRAKAT_LOG_WARNING, t->id,
                              "Failed to record post %s in %s/posts: %s, ignoring", post_id, fb->host->state_dir,
                              strerror(-r));
        (void) store_remove(fb->host->state_dir, "photos", t->id);
        /* Without a record pending/ID stays for good, and a later attempt reads the Page first. */
        if (r >= 0)
                fb_settle_later(fb, t->id);
        task_finish(t, PRAKAT_OUTCOME_DONE, en, th, link, post_id, 0);
        free(own);
}

/* The last step ended in an unclear answer: look at the Page before anything else. */
static void on_reconcile_timer(void *userdata) {
        Task *t = userdata;
        t->timer = NULL;
        t->step = STEP_RECONCILE;
        t->pages_read = 0;
        free(t->after);
        t->after = NULL;
        task_request(t);
}

static void task_reconcile_soon(Task *t) {
        Facebook *fb = t->fb;
        int r = fb->host->timer_start(fb->host, RECONCILE_DELAY, on_reconcile_timer, t, &t->timer);
        if (r < 0) {
                t->timer = NULL;
                on_reconcile_timer(t);
        }
}

/* Which post of a page of published_posts carries the marker; NULL when none. */
static json_t *find_marked_post(json_t *data, const char *marker) {
        size_t i;
        json_t *post;
        json_array_foreach(data, i, post) {
                const char *message = json_string_value(json_object_get(post, "message"));
                if (graph_message_has_marker(message, marker))
                        return post;
        }
        return NULL;
}

/* The Page could not be read.  Normally: retry later (pending/ID keeps the job careful). */
static void reconcile_failed(Task *t, const GraphOutcome *o) {
        Facebook *fb = t->fb;
        if (o->klass == GRAPH_THROTTLED || o->klass == GRAPH_AUTH) {
                task_fail(t, o);
                return;
        }
        StorePending p = {};
        if (t->kind == TASK_PUBLISH && store_read_pending(fb->host->state_dir, t->id, &p) >= 0) {
                p.failures++;
                (void) store_write_pending(fb->host->state_dir, t->id, &p);
                prakat_usec_t now = fb_now(fb);
                if (p.failures >= RECONCILE_GIVE_UP_FAILURES && p.since && now > p.since &&
                    now - p.since > RECONCILE_GIVE_UP) {
                        char en[800], th[800];
                        snprintf(en, sizeof en,
                                 "Facebook gave no clear answer to the post, and the Page could not be read to check "
                                 "for %llu hours (%s); look at the Page: if the post is not there, submit the "
                                 "announcement again",
                                 (unsigned long long) ((now - p.since) / (60 * MINUTE)), o->text);
                        snprintf(th, sizeof th,
                                 "Facebook ไม่ได้ตอบชัดเจนว่าโพสต์สำเร็จหรือไม่ และตรวจสอบเพจไม่ได้มานานแล้ว "
                                 "กรุณาเปิดดูเพจ หากไม่มีโพสต์นี้ ให้ส่งประกาศใหม่อีกครั้ง");
                        task_finish(t, PRAKAT_OUTCOME_UNCONFIRMED, en, th, NULL, NULL, 0);
                        return;
                }
        }
        char th[600];
        snprintf(th, sizeof th, "ตรวจสอบโพสต์บนเพจ Facebook ไม่ได้ จะลองใหม่ก่อนโพสต์ซ้ำ (%s)", o->text);
        task_retry(t, o->slow ? SLOW_RETRY : 0, th,
                   "cannot read the Page to check whether the post is already there (%s); will check again before "
                   "posting",
                   o->text);
}

static void on_reconcile(Task *t, GraphOutcome *o) {
        Facebook *fb = t->fb;
        if (o->klass != GRAPH_OK) {
                reconcile_failed(t, o);
                return;
        }
        json_t *data = json_object_get(o->json, "data");
        json_t *post = find_marked_post(data, t->marker);
        t->pages_read++;
        if (post) {
                char idbuf[64];
                const char *post_id = graph_json_id(post, "id", idbuf, sizeof idbuf);
                const char *permalink = json_string_value(json_object_get(post, "permalink_url"));
                if (permalink && strncmp(permalink, "https://", 8) != 0)
                        permalink = NULL;
                if (post_id && plugin_id_is_safe(post_id)) {
                        fb->host->log(fb->host, PRAKAT_LOG_NOTICE, t->id, "Found post %s on the Page", post_id);
                        if (t->kind == TASK_RETRACT) {
                                free(t->post_id);
                                t->post_id = strdup(post_id);
                                if (!t->post_id) {
                                        task_retry(t, 0, "หน่วยความจำไม่พอ จะลองใหม่", "out of memory");
                                        return;
                                }
                                t->step = STEP_DELETE;
                                task_request(t);
                                return;
                        }
                        task_published(t, post_id, permalink,
                                       "posted to the Facebook Page (found on the Page after an unclear answer from "
                                       "Facebook, so it was not posted twice)",
                                       "โพสต์ลงเพจ Facebook แล้ว (ตรวจพบโพสต์บนเพจหลังจาก Facebook ตอบไม่ชัดเจน "
                                       "จึงไม่โพสต์ซ้ำ)");
                        return;
                }
        }
        const char *after = json_string_value(json_object_get(json_object_get(json_object_get(o->json, "paging"),
                                                                                "cursors"),
                                                               "after"));
        bool more = json_object_get(json_object_get(o->json, "paging"), "next") && after &&
                    json_array_size(data) > 0;
        if (more && t->pages_read < RECONCILE_PAGES) {
                free(t->after);
                t->after = strdup(after);
                if (t->after) {
                        task_request(t);
                        return;
                }
        }

        /* Not among the Page's recent posts. */
        fb->host->log(fb->host, PRAKAT_LOG_INFO, t->id, "Not on the Page (read %u page%s of recent posts)",
                      t->pages_read, t->pages_read == 1 ? "" : "s");
        if (t->kind == TASK_RETRACT) {
                (void) store_remove(fb->host->state_dir, "pending", t->id);
                task_finish(t, PRAKAT_OUTCOME_DONE,
                            "nothing to delete: no post of this announcement was found on the Facebook Page",
                            "ไม่มีโพสต์ของประกาศนี้บนเพจ Facebook จึงไม่ต้องลบ", NULL, NULL, 0);
                return;
        }
        if (t->after_duplicate) {
                (void) store_remove(fb->host->state_dir, "pending", t->id);
                task_finish(t, PRAKAT_OUTCOME_FAILED,
                            "Facebook refused the post as a duplicate of the Page's latest post (error 506); change "
                            "the text and submit it again",
                            "Facebook ไม่รับโพสต์เพราะซ้ำกับโพสต์ล่าสุดของเพจ (รหัส 506) กรุณาแก้ข้อความแล้วส่งใหม่",
                            NULL, NULL, 0);
                return;
        }
        if (t->after_ambiguous) {
                task_retry(t, 0, "Facebook ตอบไม่ชัดเจนและยังไม่พบโพสต์บนเพจ จะตรวจสอบอีกครั้งแล้วโพสต์ใหม่",
                           "Facebook gave no clear answer and the post is not on the Page; it will be checked again "
                           "and then posted");
                return;
        }
        t->must_reconcile = false;
        task_continue_publish(t);
}

static void on_edit(Task *t, GraphOutcome *o) {
        Facebook *fb = t->fb;
        if (o->klass == GRAPH_OK) {
                char *permalink = permalink_of(t->old_post);
                char *post = strdup(t->old_post);
                if (!permalink || !post) {
                        free(permalink);
                        free(post);
                        task_retry(t, 0, "หน่วยความจำไม่พอ จะลองใหม่", "out of memory");
                        return;
                }
                task_published(t, post, permalink, "the earlier announcement's Facebook post was updated",
                               "แก้ไขโพสต์เดิมบนเพจ Facebook แล้ว");
                free(permalink);
                free(post);
                return;
        }
        if (o->klass == GRAPH_MISSING) {
                fb->host->log(fb->host, PRAKAT_LOG_NOTICE, t->id,
                              "The post to update (%s) is gone from the Page; posting anew", t->old_post);
                free(t->old_post);
                t->old_post = NULL;
                task_continue_publish(t);
                return;
        }
        /* An edit repeated is harmless: an unclear answer is a plain retry. */
        task_fail(t, o);
}

static void on_upload(Task *t, GraphOutcome *o) {
        Facebook *fb = t->fb;
        Photo *p = &t->photos[t->upload_index];
        if (o->klass == GRAPH_OK) {
                char idbuf[64];
                const char *id = graph_json_id(o->json, "id", idbuf, sizeof idbuf);
                if (!id || !plugin_id_is_safe(id)) {
                        task_retry(t, 0, "Facebook ตอบการอัปโหลดภาพไม่ถูกต้อง จะลองใหม่",
                                   "Facebook's answer to the photo upload has no usable id; will try again");
                        return;
                }
                free(p->fbid);
                p->fbid = strdup(id);
                char *ids[MAX_PHOTOS] = {};
                size_t n = 0;
                while (n < t->n_photos && t->photos[n].fbid) {
                        ids[n] = t->photos[n].fbid;
                        n++;
                }
                int r = store_write_photos(fb->host->state_dir, t->id, ids, n);
                if (r < 0)
                        fb->host->log(fb->host, PRAKAT_LOG_WARNING, t->id,
                                      "Failed to record uploaded photos: %s, ignoring", strerror(-r));
                task_continue_publish(t);
                return;
        }
        if (o->klass == GRAPH_PERMANENT) {
                char en[800], th[800];
                snprintf(en, sizeof en, "Facebook refused the photo %s: %s", p->name, o->text);
                snprintf(th, sizeof th, "Facebook ไม่รับภาพ %s: %s", p->name, o->text);
                task_finish(t, PRAKAT_OUTCOME_FAILED, en, th, NULL, NULL, 0);
                return;
        }
        /* An unpublished photo uploaded twice is a harmless orphan: an unclear answer is a plain retry. */
        task_fail(t, o);
}

static void on_create(Task *t, GraphOutcome *o) {
        Facebook *fb = t->fb;
        if (o->klass == GRAPH_OK) {
                char idbuf[64];
                /* /photos answers {"id": photo, "post_id": post}; /feed answers {"id": post}. */
                const char *post_id = graph_json_id(o->json, "post_id", idbuf, sizeof idbuf);
                if (!post_id)
                        post_id = graph_json_id(o->json, "id", idbuf, sizeof idbuf);
                if (post_id && plugin_id_is_safe(post_id)) {
                        task_published(t, post_id, NULL, "posted to the Facebook Page", "โพสต์ลงเพจ Facebook แล้ว");
                        return;
                }
                snprintf(o->text, sizeof o->text, "Facebook's answer to the post has no usable id");
                o->klass = GRAPH_AMBIGUOUS;
        }
        switch (o->klass) {
        case GRAPH_AMBIGUOUS:
                fb->host->log(fb->host, PRAKAT_LOG_WARNING, t->id,
                              "Unclear outcome of the post (%s); reading the Page before anything else", o->text);
                t->after_ambiguous = true;
                task_reconcile_soon(t);
                return;
        case GRAPH_DUPLICATE:
                /* Our own earlier attempt may be that latest post. */
                t->after_duplicate = true;
                task_reconcile_soon(t);
                return;
        default:
                break;
        }
        /* Certainly not executed: nothing can be on the Page from this request. */
        (void) store_remove(fb->host->state_dir, "pending", t->id);
        if ((o->klass == GRAPH_PERMANENT || o->klass == GRAPH_MISSING) && t->n_photos > 1 && o->code == 100 &&
            (strstr(o->text, "media_fbid") || strstr(o->text, "attached_media"))) {
                /* The uploaded photos are gone (expired or deleted): upload them again next time. */
                (void) store_remove(fb->host->state_dir, "photos", t->id);
                task_retry(t, 0, "ภาพที่อัปโหลดไว้ใช้ไม่ได้แล้ว จะอัปโหลดใหม่", "%s; the photos will be uploaded again",
                           o->text);
                return;
        }
        task_fail(t, o);
}

static void on_delete(Task *t, GraphOutcome *o) {
        if (o->klass == GRAPH_OK) {
                task_finish(t, PRAKAT_OUTCOME_DONE, "the Facebook post was deleted", "ลบโพสต์บนเพจ Facebook แล้ว", NULL,
                            t->post_id, 0);
                return;
        }
        if (o->klass == GRAPH_MISSING) {
                task_finish(t, PRAKAT_OUTCOME_DONE, "the Facebook post was already deleted",
                            "โพสต์บนเพจ Facebook ถูกลบไปแล้ว", NULL, t->post_id, 0);
                return;
        }
        /* Deleting twice is harmless: an unclear answer is a plain retry. */
        task_fail(t, o);
}

static void on_task_response(void *userdata, const prakat_http_response *response) {
        Task *t = userdata;
        Facebook *fb = t->fb;
        GraphOutcome o;

        t->call = NULL;
        fb->in_flight--;
        graph_classify(response, &o);
        graph_scrub(o.text, fb->token);
        if (o.klass != GRAPH_THROTTLED)
                fb->throttle_streak = 0;
        if (o.klass == GRAPH_OK && fb->health == HEALTH_UNREACHABLE)
                fb->health = HEALTH_OK;
        switch (t->step) {
        case STEP_RECONCILE:
                on_reconcile(t, &o);
                break;
        case STEP_EDIT:
                on_edit(t, &o);
                break;
        case STEP_UPLOAD:
                on_upload(t, &o);
                break;
        case STEP_CREATE:
                on_create(t, &o);
                break;
        case STEP_DELETE:
                on_delete(t, &o);
                break;
        }
        graph_outcome_done(&o);
        fb_pump(fb);
}

/* ------------------------------------------------------------------------------------------------ */
/* The order of a publish: edit (Replaces) → reconcile (if in doubt) → uploads → the create */

static void task_continue_publish(Task *t) {
        if (t->old_post) {
                t->step = STEP_EDIT;
        } else if (t->must_reconcile) {
                t->step = STEP_RECONCILE;
                t->pages_read = 0;
                free(t->after);
                t->after = NULL;
        } else {
                t->step = STEP_CREATE;
                if (t->n_photos > 1)
                        for (size_t i = 0; i < t->n_photos; i++)
                                if (!t->photos[i].fbid) {
                                        t->step = STEP_UPLOAD;
                                        t->upload_index = i;
                                        break;
                                }
        }
        task_request(t);
}

static bool mime_is_photo(const char *mime) {
        return mime && (strcmp(mime, "image/jpeg") == 0 || strcmp(mime, "image/png") == 0);
}

static int task_take_photos(Task *t, const prakat_announcement *a) {
        Facebook *fb = t->fb;
        size_t n = 0;
        for (size_t i = 0; i < a->n_attachments; i++)
                n += mime_is_photo(a->attachments[i].mime);
        if (n == 0)
                return 0;
        if (n > MAX_PHOTOS)
                n = MAX_PHOTOS;
        t->photos = calloc(n, sizeof(Photo));
        if (!t->photos)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_attachments && t->n_photos < n; i++) {
                const prakat_attachment *at = &a->attachments[i];
                if (!mime_is_photo(at->mime))
                        continue;
                if (at->size > MAX_PHOTO_SIZE || at->size == 0) {
                        fb->host->log(fb->host, PRAKAT_LOG_WARNING, a->id,
                                      "Photo %s is %s; Facebook takes photos under 10 MB, leaving it out", at->name,
                                      at->size ? "too big" : "empty");
                        continue;
                }
                const char *url = a->attachment_urls ? a->attachment_urls[i] : NULL;
                Photo *p = &t->photos[t->n_photos++];
                p->path = strdup(at->path);
                p->name = strdup(at->name);
                p->mime = strdup(at->mime);
                p->url = url && strncmp(url, "https://", 8) == 0 ? strdup(url) : NULL;
                if (!p->path || !p->name || !p->mime || (url && !strncmp(url, "https://", 8) && !p->url))
                        return -ENOMEM;
        }
        /* Photos uploaded by an earlier attempt are attached, not uploaded again. */
        char **ids = NULL;
        size_t n_ids = 0;
        if (t->n_photos > 1 && store_read_photos(fb->host->state_dir, t->id, &ids, &n_ids) >= 0) {
                for (size_t i = 0; i < n_ids; i++) {
                        if (i < t->n_photos)
                                t->photos[i].fbid = ids[i];
                        else
                                free(ids[i]);
                }
                free(ids);
        }
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Health */

static void on_health_response(void *userdata, const prakat_http_response *response) {
        Facebook *fb = userdata;
        GraphOutcome o;

        fb->health_call = NULL;
        fb->in_flight--;
        graph_classify(response, &o);
        graph_scrub(o.text, fb->token);
        switch (o.klass) {
        case GRAPH_OK: {
                const char *name = json_string_value(json_object_get(o.json, "name"));
                snprintf(fb->page_name, sizeof fb->page_name, "%s", name ? name : "");
                if (fb->auth_failed || fb->health != HEALTH_OK)
                        fb->host->log(fb->host, PRAKAT_LOG_NOTICE, NULL,
                                      "Facebook token works: Page %s (%s), Graph API %s",
                                      fb->page_name[0] ? fb->page_name : "?", fb->page_id, fb->version);
                fb->auth_failed = false;
                fb->auth_detail[0] = 0;
                fb->health = HEALTH_OK;
                fb->throttle_streak = 0;
                break;
        }
        case GRAPH_AUTH:
                fb_set_auth_failed(fb, o.text);
                break;
        case GRAPH_THROTTLED:
                fb_pause(fb, o.regain, o.text);
                break;
        default:
                if (fb->health != HEALTH_UNREACHABLE)
                        fb->host->log(fb->host, PRAKAT_LOG_WARNING, NULL, "Facebook health check failed: %s",
                                      o.text);
                fb->health = HEALTH_UNREACHABLE;
                snprintf(fb->health_detail, sizeof fb->health_detail, "%s", o.text);
                break;
        }
        graph_outcome_done(&o);
        bool wrong = fb->auth_failed || fb->health != HEALTH_OK;
        fb_health_arm(fb, wrong && fb->health_interval > UNHEALTHY_RECHECK ? UNHEALTHY_RECHECK
                                                                            : fb->health_interval);
        fb_pump(fb);
}

static void on_health_timer(void *userdata) {
        Facebook *fb = userdata;
        char error[1024];

        fb->health_timer = NULL;
        fb_settle_now(fb);
        if (fb->health_call)
                return;
        prakat_usec_t now = fb_now(fb);
        if (fb->paused_until > now) {
                fb_health_arm(fb, fb->paused_until - now);
                return;
        }
        /* The check takes a request slot like any job; with every slot busy, the jobs' answers tell. */
        if (fb->in_flight >= fb->max_in_flight) {
                fb_health_arm(fb, HEALTH_BUSY_RETRY);
                return;
        }
        /*
         * A token file that cannot be read any more (removed, or made readable by others) is
         * reported, but the token read before keeps working until Facebook refuses it.
         */
        error[0] = 0;
        (void) fb_token_reload(fb, error, sizeof error);
        if (error[0] && strcmp(error, fb->token_problem) != 0)
                fb->host->log(fb->host, PRAKAT_LOG_WARNING, NULL,
                              "Cannot read the Facebook token again (%s); still using the one read before", error);
        snprintf(fb->token_problem, sizeof fb->token_problem, "%s", error);
        Request req = { .method = "GET" };
        PluginBuf q = {};
        graph_form_add(&q, "fields", "id,name");
        char *query = plugin_buf_steal(&q, NULL);
        req.url = query ? fb_url(fb, fb->page_id, query) : NULL;
        free(query);
        int r = req.url ? fb_send(fb, &req, on_health_response, fb, &fb->health_call) : -ENOMEM;
        request_done(&req);
        if (r < 0) {
                fb->health_call = NULL;
                fb_health_arm(fb, fb->health_interval);
                return;
        }
        fb->in_flight++;
}

static void fb_health_arm(Facebook *fb, prakat_usec_t delay) {
        fb->host->timer_cancel(fb->health_timer);
        fb->health_timer = NULL;
        if (fb->host->timer_start(fb->host, delay, on_health_timer, fb, &fb->health_timer) < 0)
                fb->health_timer = NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */


static bool is_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* https://host/.../vNN.N; plain http only to this machine (tests, a local proxy). */
static int check_api_base(Facebook *fb, const char *value, PluginConfigError *err, unsigned line) {
        switch (plugin_url_check(value)) {
        case PLUGIN_URL_NOT_HTTP:
                return plugin_config_fail(err, line, "api_base must be an https:// URL, e.g. %s (got '%s')",
                                   DEFAULT_API_BASE, value);
        case PLUGIN_URL_CHARACTERS:
                return plugin_config_fail(err, line, "api_base must be a plain URL without spaces, quotes, '?' "
                                                      "or '#' (got '%s')",
                                           value);
        case PLUGIN_URL_PLAIN_HTTP:
                return plugin_config_fail(err, line,
                                   "api_base must use https:// (plain http:// is allowed only to this "
                                   "machine, for tests), got '%s'",
                                   value);
        case PLUGIN_URL_OK:
                break;
        }
        const char *rest = strstr(value, "://") + 3;
        char *base = strdup(value);
        if (!base)
                return plugin_config_fail(err, line, "out of memory");
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                base[--n] = 0;
        const char *slash = strrchr(base, '/');
        const char *version = slash ? slash + 1 : "";
        bool ok = slash && slash > base + (rest - value) && version[0] == 'v' && version[1] >= '0' &&
                  version[1] <= '9';
        for (const char *p = version + 1; ok && *p; p++)
                ok = (*p >= '0' && *p <= '9') || *p == '.';
        if (!ok) {
                free(base);
                return plugin_config_fail(err, line,
                                   "api_base must end with the Graph API version, e.g. %s (got '%s')",
                                   DEFAULT_API_BASE, value);
        }
        free(fb->api_base);
        free(fb->version);
        fb->api_base = base;
        fb->version = strdup(version);
        return fb->version ? 0 : plugin_config_fail(err, line, "out of memory");
}

static int set_string(char **slot, const char *value, PluginConfigError *err, unsigned line) {
        return plugin_set_string(slot, value) < 0 ? plugin_config_fail(err, line, "out of memory") : 0;
}

static int apply_entry(Facebook *fb, const prakat_config_entry *e, PluginConfigError *err, unsigned *token_line) {
        const char *key = e->key, *value = e->value ? e->value : "";
        prakat_usec_t d;

        if (strcmp(key, "page_id") == 0) {
                if (!is_digits(value) || strlen(value) > 32)
                        return plugin_config_fail(err, e->line,
                                           "page_id must be the Page's numeric id (Page settings → About → Page "
                                           "ID), not '%s'",
                                           value);
                return set_string(&fb->page_id, value, err, e->line);
        }
        if (strcmp(key, "token_file") == 0 || strcmp(key, "token_credential") == 0)
                return plugin_config_secret_key(e, "token_file", "token_credential", &fb->token_file,
                                                &fb->token_credential, token_line, err);
        if (strcmp(key, "api_base") == 0)
                return check_api_base(fb, value, err, e->line);
        if (strcmp(key, "max_in_flight") == 0) {
                char *end = NULL;
                unsigned long v = strtoul(value, &end, 10);
                if (!is_digits(value) || v < 1 || v > 32)
                        return plugin_config_fail(err, e->line, "max_in_flight must be a whole number from 1 to 32, not '%s'",
                                           value);
                fb->max_in_flight = (unsigned) v;
                return 0;
        }
        if (strcmp(key, "timeout") == 0) {
                if (plugin_parse_duration(value, &d) < 0 || d < SEC || d > 10 * MINUTE)
                        return plugin_config_fail(err, e->line,
                                           "timeout must be a duration from 1s to 10m, e.g. 30s, not '%s'", value);
                fb->timeout_ms = (unsigned) (d / 1000);
                return 0;
        }
        if (strcmp(key, "health_interval") == 0) {
                if (plugin_parse_duration(value, &d) < 0 || d < SEC || d > 24 * 60 * MINUTE)
                        return plugin_config_fail(err, e->line,
                                           "health_interval must be a duration from 1s to 1d, e.g. 10m, not '%s'",
                                           value);
                fb->health_interval = d;
                return 0;
        }
        return plugin_config_fail(err, e->line, "unknown key '%s' (known keys: " KNOWN_KEYS ")", key);
}

static int parse_config(Facebook *fb, const prakat_config_entry *entries, size_t n, PluginConfigError *err) {
        unsigned token_line = 0;
        for (size_t i = 0; i < n; i++) {
                int r = plugin_config_check_once(entries, i, err);
                if (r == 0)
                        r = apply_entry(fb, &entries[i], err, &token_line);
                if (r < 0)
                        return r;
        }
        if (!fb->page_id)
                return plugin_config_fail(err, 0, "missing required key 'page_id' (the Page's numeric id, e.g. page_id = "
                                           "123456789)");
        if (!fb->token_file && !fb->token_credential)
                return plugin_config_fail(err, 0, "missing token: set token_file = /etc/prakat/%s.token (mode 0600, the "
                                           "Page access token alone) or token_credential = NAME",
                                   fb->host->channel);
        if (!fb->api_base && check_api_base(fb, DEFAULT_API_BASE, err, 0) < 0)
                return -EINVAL;
        char reason[1024];
        int r = plugin_read_secret(fb->host, fb->token_file, fb->token_credential, &fb->token, reason,
                                   sizeof reason);
        if (r < 0)
                return plugin_config_fail(err, token_line, "%s", reason);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* The plugin's entry points */

static void facebook_free(Facebook *fb) {
        if (!fb)
                return;
        /* Only when prakatd exits with jobs still in our hands: they are resumed after the restart. */
        while (fb->tasks)
                task_free(fb->tasks);
        fb_settle_now(fb);
        fb->host->timer_cancel(fb->health_timer);
        fb->host->http_cancel(fb->health_call);
        plugin_free_secret(fb->token);
        free(fb->page_id);
        free(fb->api_base);
        free(fb->version);
        free(fb->token_file);
        free(fb->token_credential);
        free(fb);
}

static int facebook_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                              void **ret_instance, char *error, size_t error_size, unsigned *ret_error_line) {
        PluginConfigError err = { .text = error, .size = error_size, .line = ret_error_line };
        Facebook *fb = calloc(1, sizeof(Facebook));
        if (!fb)
                return plugin_config_fail(&err, 0, "out of memory");
        fb->host = host;
        fb->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
        fb->timeout_ms = (unsigned) (DEFAULT_TIMEOUT / 1000);
        fb->health_interval = DEFAULT_HEALTH_INTERVAL;

        int r = parse_config(fb, entries, n_entries, &err);
        if (r == 0 && PRAKAT_HOST_CHECKING(host)) { /* prakatd --check: no folders, no health check */
                *ret_instance = fb;
                return 0;
        }
        if (r == 0 && (r = store_init(host->state_dir)) < 0)
                r = plugin_config_fail(&err, 0, "cannot create the state folders in %s: %s", host->state_dir, strerror(-r));
        if (r < 0) {
                facebook_free(fb);
                return r;
        }
        fb_health_arm(fb, 0);
        *ret_instance = fb;
        return 0;
}

static void finish_now(const prakat_host *host, prakat_job *job, prakat_outcome outcome, const char *en,
                       const char *th) {
        prakat_result result = { .outcome = outcome, .message = en, .message_th = th };
        host->job_finish(host, job, &result);
}

/*
 * A publish task for `a` with everything it will send: the message, the link, the photos, and the
 * post it edits instead when `a` replaces one.  publish() and preview() both start from it.
 */
static Task *task_compose(Facebook *fb, prakat_job *job, const prakat_announcement *a) {
        Task *t = task_new(fb, job, TASK_PUBLISH, a->id);
        if (!t)
                return NULL;
        t->message = graph_compose_message(a->title, a->body, a->article_url, a->id);
        t->marker = graph_marker(a->article_url, a->id);
        t->link = strdup_or_null(a->article_url);
        if (!t->message || !t->marker || (a->article_url && !t->link) || task_take_photos(t, a) < 0) {
                task_free(t);
                return NULL;
        }
        if (a->replaces && plugin_id_is_safe(a->replaces) &&
            store_read_post(fb->host->state_dir, a->replaces, &t->old_post, NULL) < 0)
                t->old_post = NULL;
        return t;
}

/* The request of STEP_CREATE (or STEP_EDIT) in words: which endpoint, the message, the link, the photos. */
static void task_describe(const Task *t, PluginBuf *b) {
        const Facebook *fb = t->fb;
        if (t->old_post)
                plugin_buf_printf(b, "แก้ไขโพสต์เดิม / edits the earlier post %s (POST /%s): the message below "
                                  "replaces its text\n", t->old_post, t->old_post);
        else if (t->n_photos == 1)
                plugin_buf_printf(b, "โพสต์รูปพร้อมข้อความ / a photo post (POST /%s/photos), the message as its caption\n",
                                  fb->page_id);
        else
                plugin_buf_printf(b, "โพสต์บนเพจ / a Page post (POST /%s/feed)%s\n", fb->page_id,
                                  t->n_photos > 1 ? " with the photos attached" : "");
        plugin_buf_puts(b, "ข้อความ / message:\n-----\n");
        plugin_buf_puts(b, t->message);
        plugin_buf_puts(b, "\n-----\n");
        if (!t->old_post && t->n_photos == 0 && t->link)
                plugin_buf_printf(b, "ลิงก์ / link: %s\n", t->link);
        for (size_t i = 0; !t->old_post && i < t->n_photos; i++)
                plugin_buf_printf(b, "รูป / photo %zu: %s (%s)\n", i + 1, t->photos[i].name,
                                  t->photos[i].url ? t->photos[i].url : "uploaded from the file");
}

static int facebook_preview(void *instance, const prakat_announcement *a, const char *page_path, char **ret_text) {
        Facebook *fb = instance;
        if (!plugin_id_is_safe(a->id))
                return -EINVAL;
        Task *t = task_compose(fb, NULL, a);
        if (!t)
                return -ENOMEM;
        PluginBuf b = {};
        task_describe(t, &b);
        task_free(t);
        char *text = plugin_buf_steal(&b, NULL);
        if (!text)
                return -ENOMEM;
        *ret_text = text;
        return 0;
}

static int facebook_publish(void *instance, prakat_job *job, const prakat_announcement *a) {
        Facebook *fb = instance;
        if (!plugin_id_is_safe(a->id)) {
                finish_now(fb->host, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used as a file name",
                           "ใช้รหัสประกาศนี้เป็นชื่อไฟล์ไม่ได้");
                return 0;
        }

        /* Already on the Page (the answer came, the job's end was cut off by a crash): done. */
        char *post = NULL, *link = NULL;
        if (store_read_post(fb->host->state_dir, a->id, &post, &link) >= 0) {
                prakat_result result = {
                        .outcome = PRAKAT_OUTCOME_DONE,
                        .message = "posted to the Facebook Page",
                        .message_th = "โพสต์ลงเพจ Facebook แล้ว",
                        .link = link,
                        .remote_id = post,
                };
                fb->host->job_finish(fb->host, job, &result);
                free(post);
                free(link);
                return 0;
        }

        Task *t = task_compose(fb, job, a);
        if (!t)
                return -ENOMEM;

        StorePending p;
        t->must_reconcile = job->interrupted || store_read_pending(fb->host->state_dir, a->id, &p) >= 0;
        if (t->must_reconcile)
                fb->host->log(fb->host, PRAKAT_LOG_INFO, a->id,
                              "An earlier attempt may have posted already; reading the Page first");
        task_continue_publish(t);
        return 0;
}

static int facebook_retract(void *instance, prakat_job *job, const prakat_announcement *target, const char *reason) {
        Facebook *fb = instance;
        if (!plugin_id_is_safe(target->id)) {
                finish_now(fb->host, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used as a file name",
                           "ใช้รหัสประกาศนี้เป็นชื่อไฟล์ไม่ได้");
                return 0;
        }
        Task *t = task_new(fb, job, TASK_RETRACT, target->id);
        if (!t)
                return -ENOMEM;
        t->marker = graph_marker(target->article_url, target->id);
        if (!t->marker) {
                task_free(t);
                return -ENOMEM;
        }
        if (job->remote_id && plugin_id_is_safe(job->remote_id))
                t->post_id = strdup(job->remote_id);
        else if (store_read_post(fb->host->state_dir, target->id, &t->post_id, NULL) < 0)
                t->post_id = NULL;
        if (t->post_id) {
                t->step = STEP_DELETE;
        } else {
                /* No post id known here: look for the announcement's post on the Page. */
                t->step = STEP_RECONCILE;
        }
        task_request(t);
        return 0;
}

static int facebook_health(void *instance, char *buffer, size_t buffer_size) {
        Facebook *fb = instance;
        if (fb->auth_failed) {
                auth_message(fb, false, buffer, buffer_size, NULL, 0);
                return -EIO;
        }
        if (fb->token_problem[0]) {
                snprintf(buffer, buffer_size, "the token cannot be read again: %s", fb->token_problem);
                return -EIO;
        }
        prakat_usec_t now = fb_now(fb);
        char paused[96] = "";
        if (fb->paused_until > now)
                snprintf(paused, sizeof paused, "; throttled by Facebook, no calls for another %llu s",
                         (unsigned long long) ((fb->paused_until - now + SEC - 1) / SEC));
        switch (fb->health) {
        case HEALTH_OK:
                snprintf(buffer, buffer_size, "ok: Page %s (%s), Graph API %s%s",
                         fb->page_name[0] ? fb->page_name : "?", fb->page_id, fb->version, paused);
                return 0;
        case HEALTH_UNREACHABLE:
                snprintf(buffer, buffer_size, "Facebook could not be reached at the last check: %s%s",
                         fb->health_detail, paused);
                return -EHOSTUNREACH;
        case HEALTH_UNKNOWN:
        default:
                snprintf(buffer, buffer_size, "token read; checking it with Facebook (Page %s, Graph API %s)%s",
                         fb->page_id, fb->version, paused);
                return 0;
        }
}

static void facebook_destroy(void *instance) {
        facebook_free(instance);
}

PRAKAT_CHANNEL_DEFINE(facebook, "facebook", FACEBOOK_VERSION);
