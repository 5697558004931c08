/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the Facebook channel plugin.  Its three source files are included whole; the
 * host is tests/unit/fake-host.h plus, here, a scripted HTTP client: every request the plugin
 * makes is recorded, and the test answers it (status, body, headers, or a transport error) when
 * it chooses, so that each step of the job state machine can be driven and looked at.
 *
 * The integration test (tests/integration/test_facebook.py) runs the same plugin in prakatd
 * against the fake Graph API; these tests cover what is hard to reach from there: the answer
 * classification table, text cutting, the hours-long "cannot read the Page" limit, 506 that
 * turns out to be our own post, the request slots.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>

#include "facebook/facebook.c"
#include "facebook/graph.c"
#include "facebook/store.c"
#include "fake-host.h"

#define TOKEN "EAAGunit0123456789secret"
#define ARTICLE "https://bokaeo.go.th/news/a/%s.html"

static const prakat_channel_plugin *const plugin = &facebook_plugin;

/* ---- the scripted HTTP client ------------------------------------------------------------------ */

struct prakat_http_call {
        int unused;
};

typedef struct FakeCall {
        struct prakat_http_call handle;
        char *method;
        char *url;
        char *body;
        char *authorization;
        char *connection;
        bool send_once;       /* marked PRAKAT_HTTP_SEND_ONCE: the transport must never send it again */
        bool pending_present; /* pending/<id> existed when the request left */
        prakat_http_done_fn done;
        void *userdata;
        bool active;
} FakeCall;

#define MAX_CALLS 64
static FakeCall calls[MAX_CALLS];
static size_t n_calls;
static char state_dir[128];
static const char *pending_watch; /* the id whose pending/ file fake_http_request looks for */

static int fake_http_request(const prakat_host *host, const prakat_http_request *req, prakat_http_done_fn done,
                             void *userdata, prakat_http_call **ret_call) {
        assert_true(n_calls < MAX_CALLS);
        FakeCall *c = &calls[n_calls++];
        *c = (FakeCall) { .method = strdup(req->method), .url = strdup(req->url), .done = done,
                          .userdata = userdata, .active = true };
        c->body = req->body ? strndup(req->body, req->body_size) : NULL;
        for (size_t i = 0; i < req->n_headers; i++) {
                if (strcasecmp(req->headers[i].name, "Authorization") == 0)
                        c->authorization = strdup(req->headers[i].value);
                if (strcasecmp(req->headers[i].name, "Connection") == 0)
                        c->connection = strdup(req->headers[i].value);
                if (strcasecmp(req->headers[i].name, PRAKAT_HTTP_SEND_ONCE) == 0)
                        c->send_once = true;
        }
        if (pending_watch) {
                char path[256];
                snprintf(path, sizeof path, "%s/pending/%s", state_dir, pending_watch);
                c->pending_present = access(path, F_OK) == 0;
        }
        *ret_call = &c->handle;
        return 0;
}

static void fake_http_cancel(prakat_http_call *call) {
        if (call)
                ((FakeCall *) call)->active = false;
}

static size_t n_active(void) {
        size_t n = 0;
        for (size_t i = 0; i < n_calls; i++)
                n += calls[i].active;
        return n;
}

/* The oldest call still waiting for an answer. */
static FakeCall *next_call(void) {
        for (size_t i = 0; i < n_calls; i++)
                if (calls[i].active)
                        return &calls[i];
        fail_msg("no request is waiting for an answer");
        return NULL;
}

typedef struct Answer {
        int error;
        long status;
        const char *body;
        const char *header_name;
        const char *header_value;
} Answer;

static const Answer *current_answer;

static const char *answer_header(const prakat_http_response *r, const char *name) {
        const Answer *a = r->core;
        return a->header_name && strcasecmp(a->header_name, name) == 0 ? a->header_value : NULL;
}

static prakat_http_response response_of(const Answer *a) {
        return (prakat_http_response) {
                .error = a->error,
                .error_text = a->error ? strerror(-a->error) : NULL,
                .status = a->status,
                .body = a->body ? a->body : "",
                .body_size = a->body ? strlen(a->body) : 0,
                .header = answer_header,
                .core = a,
        };
}

static void answer(FakeCall *c, Answer a) {
        assert_true(c->active);
        c->active = false;
        prakat_http_response r = response_of(&a);
        current_answer = &a;
        c->done(c->userdata, &r);
}

static void calls_reset(void) {
        for (size_t i = 0; i < n_calls; i++) {
                free(calls[i].method);
                free(calls[i].url);
                free(calls[i].body);
                free(calls[i].authorization);
                free(calls[i].connection);
        }
        n_calls = 0;
        pending_watch = NULL;
}

/* ---- results with retry_after and the Thai text (fake-host.h keeps neither) ------------------------- */

typedef struct Result {
        prakat_job *job;
        prakat_usec_t retry_after;
        bool has_thai;
} Result;

static Result results[64];
static size_t n_results;

static void record_job_finish(const prakat_host *host, prakat_job *job, const prakat_result *result) {
        assert_true(n_results < 64);
        results[n_results++] = (Result) { job, result->retry_after, result->message_th != NULL };
        if (result->message)
                assert_null(strstr(result->message, TOKEN));
        if (result->message_th)
                assert_null(strstr(result->message_th, TOKEN));
        fake_host_job_finish(host, job, result);
}

static const Result *result_of(prakat_job *job) {
        for (size_t i = 0; i < n_results; i++)
                if (results[i].job == job)
                        return &results[i];
        return NULL;
}

/* ---- fixture ---------------------------------------------------------------------------------- */

typedef struct Fixture {
        char root[64];
        char token_path[128];
        FakeHost fake;
        void *instance;
        prakat_job jobs[32];
        size_t n_jobs;
} Fixture;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void write_token(Fixture *f, const char *token, mode_t mode) {
        char tmp[160];
        snprintf(tmp, sizeof tmp, "%s.new", f->token_path);
        FILE *file = fopen(tmp, "w");
        assert_non_null(file);
        fprintf(file, "%s\n", token);
        fclose(file);
        assert_int_equal(chmod(tmp, mode), 0);
        assert_int_equal(rename(tmp, f->token_path), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        snprintf(f->root, sizeof f->root, "/tmp/prakat-test-facebook-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        snprintf(state_dir, sizeof state_dir, "%s/state", f->root);
        assert_int_equal(mkdir(state_dir, 0700), 0);
        snprintf(f->token_path, sizeof f->token_path, "%s/facebook.token", f->root);
        write_token(f, TOKEN, 0600);
        fake_host_init(&f->fake, state_dir);
        f->fake.quiet = true;
        f->fake.host.channel = "facebook";
        f->fake.host.config_dir = f->root;
        f->fake.host.http_request = fake_http_request;
        f->fake.host.http_cancel = fake_http_cancel;
        f->fake.host.job_finish = record_job_finish;
        n_results = 0;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        if (f->instance)
                plugin->destroy(f->instance);
        assert_int_equal(fake_host_done(&f->fake), 0);
        calls_reset();
        nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static int configure_entries(Fixture *f, const prakat_config_entry *e, size_t n, char *error, size_t size,
                             unsigned *line) {
        return plugin->configure(&f->fake.host, e, n, &f->instance, error, size, line);
}

/* Configured, with the start-up health check answered "ok". */
static void configure(Fixture *f, const char *max_in_flight) {
        prakat_config_entry entries[] = {
                { "page_id", "123456789", 10 },
                { "token_file", "facebook.token", 11 },
                { "api_base", "http://127.0.0.1:9/v24.0", 12 },
                { "health_interval", "10m", 13 },
                { "max_in_flight", max_in_flight ? max_in_flight : "4", 14 },
        };
        char error[512] = "";
        unsigned line = 0;
        int r = configure_entries(f, entries, 5, error, sizeof error, &line);
        if (r < 0)
                fprintf(stderr, "line %u: %s\n", line, error);
        assert_int_equal(r, 0);
        fake_host_run_due(&f->fake);
        FakeCall *c = next_call();
        assert_string_equal(c->method, "GET");
        assert_string_equal(c->url, "http://127.0.0.1:9/v24.0/123456789?fields=id%2Cname");
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789\",\"name\":\"Bokaeo\"}" });
        char health[256];
        assert_int_equal(plugin->health(f->instance, health, sizeof health), 0);
        assert_non_null(strstr(health, "ok: Page Bokaeo"));
}

static prakat_job *new_job(Fixture *f) {
        assert_true(f->n_jobs < 32);
        prakat_job *job = &f->jobs[f->n_jobs++];
        *job = (prakat_job) { .channel = "facebook", .attempt = 1 };
        return job;
}

static prakat_announcement announcement(const char *id, char *url_buffer, size_t size) {
        snprintf(url_buffer, size, ARTICLE, id);
        return (prakat_announcement) {
                .id = id,
                .title = "ประกาศทดสอบ",
                .body = "เนื้อหา",
                .category = "ข่าว",
                .all_villages = true,
                .repeat = 1,
                .article_url = url_buffer,
        };
}

static prakat_job *publish(Fixture *f, const prakat_announcement *a) {
        prakat_job *job = new_job(f);
        assert_int_equal(plugin->publish(f->instance, job, a), 0);
        return job;
}

static const FakeFinish *finished(Fixture *f, prakat_job *job) {
        return fake_host_finish_of(&f->fake, job);
}

static void assert_outcome(Fixture *f, prakat_job *job, prakat_outcome outcome) {
        const FakeFinish *r = finished(f, job);
        assert_non_null(r);
        if (r->outcome != outcome)
                fprintf(stderr, "outcome %d, expected %d: %s\n", r->outcome, outcome, r->message ? r->message : "");
        assert_int_equal(r->outcome, outcome);
        assert_true(result_of(job)->has_thai);
}

static bool state_file_exists(const char *kind, const char *id) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", state_dir, kind, id);
        return access(path, F_OK) == 0;
}

static char *list_body(const char *post_id, const char *message) {
        json_t *o = json_pack("{s:[{s:s, s:s, s:s}]}", "data", "id", post_id, "message", message, "permalink_url",
                              "https://www.facebook.com/123456789/posts/42");
        char *s = json_dumps(o, 0);
        json_decref(o);
        return s;
}

/* ---- graph.c ---------------------------------------------------------------------------------- */

static GraphClass classify(long status, const char *body, int error, const char *hname, const char *hvalue,
                           GraphOutcome *ret) {
        Answer a = { .error = error, .status = status, .body = body, .header_name = hname, .header_value = hvalue };
        prakat_http_response r = response_of(&a);
        graph_classify(&r, ret);
        return ret->klass;
}

static void test_classify(void **state) {
        static const struct {
                long status;
                const char *body;
                int error;
                GraphClass klass;
        } table[] = {
                { 200, "{\"id\":\"1_2\"}", 0, GRAPH_OK },
                { 0, NULL, -ETIMEDOUT, GRAPH_AMBIGUOUS },
                { 0, NULL, -ECONNRESET, GRAPH_AMBIGUOUS },
                { 0, NULL, -ECONNREFUSED, GRAPH_NOT_SENT },
                { 0, NULL, -EPROTO, GRAPH_NOT_SENT },
                { 500, "{\"error\":{\"message\":\"x\",\"type\":\"OAuthException\",\"code\":2,"
                       "\"is_transient\":true}}",
                  0, GRAPH_AMBIGUOUS },
                { 500, "{\"error\":{\"message\":\"An unknown error occurred\",\"code\":1}}", 0, GRAPH_AMBIGUOUS },
                { 502, "<html><body>502 Bad Gateway</body></html>", 0, GRAPH_AMBIGUOUS },
                { 200, "<html>captive portal</html>", 0, GRAPH_AMBIGUOUS },
                { 400, "{\"error\":{\"message\":\"expired\",\"code\":190,\"error_subcode\":463}}", 0, GRAPH_AUTH },
                { 400, "{\"error\":{\"message\":\"x\",\"code\":102}}", 0, GRAPH_AUTH },
                { 400, "{\"error\":{\"message\":\"(#4) limit\",\"code\":4}}", 0, GRAPH_THROTTLED },
                { 400, "{\"error\":{\"message\":\"(#17)\",\"code\":17}}", 0, GRAPH_THROTTLED },
                { 400, "{\"error\":{\"message\":\"(#32)\",\"code\":32}}", 0, GRAPH_THROTTLED },
                { 400, "{\"error\":{\"message\":\"(#613)\",\"code\":613}}", 0, GRAPH_THROTTLED },
                { 400, "{\"error\":{\"message\":\"(#80001)\",\"code\":80001}}", 0, GRAPH_THROTTLED },
                { 429, "Too Many Requests", 0, GRAPH_THROTTLED },
                { 400, "{\"error\":{\"message\":\"(#506) Duplicate status message\",\"code\":506}}", 0,
                  GRAPH_DUPLICATE },
                { 400, "{\"error\":{\"message\":\"does not exist\",\"code\":100,\"error_subcode\":33}}", 0,
                  GRAPH_MISSING },
                { 400, "{\"error\":{\"message\":\"(#100) Invalid parameter\",\"code\":100}}", 0, GRAPH_PERMANENT },
                { 403, "{\"error\":{\"message\":\"(#200) Permissions error\",\"code\":200}}", 0, GRAPH_PERMANENT },
                { 400, "{\"error\":{\"message\":\"blocked\",\"code\":368}}", 0, GRAPH_TRANSIENT },
                { 400, "{\"error\":{\"message\":\"later\",\"code\":9007,\"is_transient\":true}}", 0, GRAPH_TRANSIENT },
                { 400, "{\"code\":190,\"message\":\"old style\"}", 0, GRAPH_AUTH },
                { 404, "Not Found", 0, GRAPH_PERMANENT },
        };
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                GraphOutcome o;
                GraphClass k = classify(table[i].status, table[i].body, table[i].error, NULL, NULL, &o);
                if (k != table[i].klass)
                        fprintf(stderr, "row %zu: %s, expected %s (%s)\n", i, graph_class_name(k),
                                graph_class_name(table[i].klass), o.text);
                assert_int_equal(k, table[i].klass);
                graph_outcome_done(&o);
        }
        GraphOutcome o;
        classify(400, "{\"error\":{\"message\":\"blocked\",\"code\":368}}", 0, NULL, NULL, &o);
        assert_true(o.slow);
        classify(400, "{\"error\":{\"message\":\"Error validating\",\"code\":190,\"error_subcode\":463}}", 0, NULL,
                 NULL, &o);
        assert_string_equal(o.text, "Facebook error 190/463: Error validating");
}

static void test_usage_headers(void **state) {
        GraphOutcome o;
        classify(400, "{\"error\":{\"message\":\"(#80001)\",\"code\":80001}}", 0, "X-Business-Use-Case-Usage",
                 "{\"123\":[{\"type\":\"pages\",\"call_count\":100,\"estimated_time_to_regain_access\":3}],"
                 "\"456\":[{\"type\":\"pages\",\"estimated_time_to_regain_access\":7}]}",
                 &o);
        assert_int_equal(o.klass, GRAPH_THROTTLED);
        assert_int_equal(o.regain, 7 * MINUTE);
        classify(400, "{\"error\":{\"message\":\"(#4)\",\"code\":4}}", 0, "X-App-Usage",
                 "{\"call_count\":100,\"total_time\":25,\"total_cputime\":25}", &o);
        assert_int_equal(o.regain, 0);
        classify(400, "{\"error\":{\"message\":\"(#4)\",\"code\":4}}", 0, "X-Business-Use-Case-Usage", "not json",
                 &o);
        assert_int_equal(o.regain, 0);
        classify(400, "{\"error\":{\"message\":\"(#4)\",\"code\":4}}", 0, "Retry-After", "90", &o);
        assert_int_equal(o.regain, 90 * SEC);
}

static void test_message(void **state) {
        char *m = graph_compose_message("หัวข้อ", "บรรทัดแรก\nบรรทัดสอง\n\n", "https://x.go.th/a/1.html", "1");
        assert_string_equal(m, "หัวข้อ\n\nบรรทัดแรก\nบรรทัดสอง\n\nhttps://x.go.th/a/1.html");
        assert_true(graph_message_has_marker(m, "https://x.go.th/a/1.html"));
        assert_false(graph_message_has_marker(m, "https://x.go.th/a/1.htm"));
        assert_false(graph_message_has_marker(m, "https://x.go.th/a/11.html"));
        free(m);
        m = graph_compose_message("T", "", NULL, "20261126-ab");
        assert_string_equal(m, "T\n\nรหัสประกาศ: 20261126-ab");
        assert_true(graph_message_has_marker(m, "รหัสประกาศ: 20261126-ab"));
        assert_false(graph_message_has_marker(m, "รหัสประกาศ: 20261126-a"));
        free(m);

        /* A very long body is cut at a line break, marked, and still ends with the marker. */
        PluginBuf b = {};
        for (int i = 0; i < 2000; i++)
                plugin_buf_puts(&b, i % 10 == 9 ? "ประกาศ\n" : "ประกาศ ");
        char *body = plugin_buf_steal(&b, NULL);
        m = graph_compose_message("T", body, "https://x.go.th/a/2.html", "2");
        size_t chars = 0;
        for (const char *p = m; *p; p++)
                chars += !is_continuation((unsigned char) *p);
        assert_true(chars <= GRAPH_BODY_MAX_CHARS + 100);
        assert_true(chars > GRAPH_BODY_MAX_CHARS / 2);
        assert_non_null(strstr(m, "ประกาศ …\n\nอ่านต่อ / Read more: https://x.go.th/a/2.html"));
        assert_true(graph_message_has_marker(m, "https://x.go.th/a/2.html"));
        free(m);
        free(body);

        /* No blank anywhere: cut between characters, never between a consonant and its tone mark. */
        for (int i = 0; i < 3000; i++)
                plugin_buf_puts(&b, "น้ำ");
        body = plugin_buf_steal(&b, NULL);
        m = graph_compose_message("T", body, "https://x.go.th/a/3.html", "3");
        assert_non_null(strstr(m, "น้ำ …\n\n"));
        free(m);
        free(body);
}

static void test_form_and_scrub(void **state) {
        PluginBuf b = {};
        graph_form_add(&b, "message", "ก & b=c/ด");
        graph_form_add(&b, "attached_media[0]", "{\"media_fbid\":\"1\"}");
        char *s = plugin_buf_steal(&b, NULL);
        assert_string_equal(s, "message=%E0%B8%81%20%26%20b%3Dc%2F%E0%B8%94&"
                               "attached_media%5B0%5D=%7B%22media_fbid%22%3A%221%22%7D");
        free(s);
        char text[128] = "bad token " TOKEN " in " TOKEN "!";
        graph_scrub(text, TOKEN);
        assert_string_equal(text, "bad token [token] in [token]!");
        assert_true(plugin_id_is_safe("123_456"));
        assert_false(plugin_id_is_safe("../x"));
        assert_false(plugin_id_is_safe(""));
}

/* ---- configuration ---------------------------------------------------------------------------- */

static void expect_config_error(Fixture *f, const prakat_config_entry *e, size_t n, unsigned line,
                                const char *fragment) {
        char error[512] = "";
        unsigned got = 999;
        assert_int_equal(configure_entries(f, e, n, error, sizeof error, &got), -EINVAL);
        if (!strstr(error, fragment) || got != line)
                fprintf(stderr, "line %u (expected %u): %s\n", got, line, error);
        assert_non_null(strstr(error, fragment));
        assert_int_equal(got, line);
        assert_null(strstr(error, TOKEN));
        f->instance = NULL;
}

static void test_config(void **state) {
        Fixture *f = *state;
        prakat_config_entry unknown[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 },
                                          { "colour", "blue", 5 } };
        expect_config_error(f, unknown, 3, 5, "unknown key 'colour'");
        prakat_config_entry no_page[] = { { "token_file", "facebook.token", 4 } };
        expect_config_error(f, no_page, 1, 0, "page_id");
        prakat_config_entry no_token[] = { { "page_id", "1", 3 } };
        expect_config_error(f, no_token, 1, 0, "token_file");
        prakat_config_entry both[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 },
                                       { "token_credential", "fb", 5 } };
        expect_config_error(f, both, 3, 5, "only one");
        prakat_config_entry plain_http[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 },
                                             { "api_base", "http://graph.example.com/v24.0", 6 } };
        expect_config_error(f, plain_http, 3, 6, "https");
        prakat_config_entry no_version[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 },
                                             { "api_base", "https://graph.facebook.com", 7 } };
        expect_config_error(f, no_version, 3, 7, "version");
        prakat_config_entry bad_timeout[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 },
                                              { "timeout", "soon", 8 } };
        expect_config_error(f, bad_timeout, 3, 8, "timeout");
        write_token(f, TOKEN, 0644);
        prakat_config_entry readable[] = { { "page_id", "1", 3 }, { "token_file", "facebook.token", 4 } };
        expect_config_error(f, readable, 2, 4, "chmod 600");
        assert_int_equal(fake_host_n_timers(&f->fake), 0);

        /* Defaults: graph.facebook.com v24.0, 4 requests, 30 s, 10 min. */
        write_token(f, TOKEN, 0600);
        char error[256];
        unsigned line;
        assert_int_equal(configure_entries(f, readable, 2, error, sizeof error, &line), 0);
        Facebook *fb = f->instance;
        assert_string_equal(fb->api_base, "https://graph.facebook.com/v24.0");
        assert_string_equal(fb->version, "v24.0");
        assert_int_equal(fb->max_in_flight, 4);
        assert_int_equal(fb->timeout_ms, 30000);
        assert_int_equal(fb->health_interval, 10 * MINUTE);
}

/* ---- the job state machine ---------------------------------------------------------------------- */

static void test_plain_post(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128];
        prakat_announcement a = announcement("p1", url, sizeof url);
        pending_watch = "p1";
        prakat_job *job = publish(f, &a);
        FakeCall *c = next_call();
        assert_string_equal(c->method, "POST");
        assert_string_equal(c->url, "http://127.0.0.1:9/v24.0/123456789/feed");
        assert_null(strstr(c->url, TOKEN));
        assert_string_equal(c->authorization, "Bearer " TOKEN);
        assert_true(c->send_once);   /* a post: never repeated by the transport ... */
        assert_null(c->connection); /* ... and still on a keep-alive connection */
        assert_true(c->pending_present); /* written before the request left */
        assert_non_null(strstr(c->body, "link=https%3A%2F%2Fbokaeo.go.th%2Fnews%2Fa%2Fp1.html"));
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_77\"}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        assert_string_equal(finished(f, job)->remote_id, "123456789_77");
        assert_string_equal(finished(f, job)->link, "https://www.facebook.com/123456789_77");
        /* posts/ is written without fsync: pending/ stays until a batch of records is synced. */
        assert_true(state_file_exists("posts", "p1"));
        assert_true(state_file_exists("pending", "p1"));
        fb_settle_now(f->instance);
        assert_false(state_file_exists("pending", "p1"));

        /* Asked again (the end of the job was lost in a crash): done from posts/, nothing sent. */
        size_t before = n_calls;
        prakat_job *again = publish(f, &a);
        assert_outcome(f, again, PRAKAT_OUTCOME_DONE);
        assert_string_equal(finished(f, again)->remote_id, "123456789_77");
        assert_int_equal(n_calls, before);
}

/* The preview shows the very message and link publish() then sends, and sends nothing itself. */
static void test_preview_is_what_is_sent(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128], *text = NULL;
        prakat_announcement a = announcement("pv1", url, sizeof url);
        size_t before = n_calls;
        assert_true(PRAKAT_PLUGIN_HAS(plugin, preview));
        assert_int_equal(plugin->preview(f->instance, &a, NULL, &text), 0);
        assert_int_equal(n_calls, before);
        assert_false(state_file_exists("pending", "pv1"));
        char *message = graph_compose_message(a.title, a.body, a.article_url, a.id);
        PluginBuf shown = {}, form = {};
        plugin_buf_printf(&shown, "message:\n-----\n%s\n-----\nลิงก์ / link: %s\n", message, url);
        char *expected = plugin_buf_steal(&shown, NULL);
        assert_non_null(strstr(text, expected));
        assert_non_null(strstr(text, "POST /123456789/feed"));

        prakat_job *job = publish(f, &a);
        FakeCall *c = next_call();
        graph_form_add(&form, "message", message);
        char *encoded = plugin_buf_steal(&form, NULL);
        assert_non_null(strstr(c->body, encoded));
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_78\"}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        free(encoded);
        free(expected);
        free(message);
        free(text);
        assert_int_equal(plugin->preview(f->instance, &(prakat_announcement) { .id = "../x" }, NULL, &text), -EINVAL);
}

static void test_ambiguous_then_found(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128];
        prakat_announcement a = announcement("amb", url, sizeof url);
        prakat_job *job = publish(f, &a);
        answer(next_call(), (Answer) { .error = -ETIMEDOUT });
        assert_null(finished(f, job));
        assert_true(state_file_exists("pending", "amb"));
        assert_int_equal(n_active(), 0);
        fake_host_advance(&f->fake, RECONCILE_DELAY);
        FakeCall *c = next_call();
        assert_string_equal(c->method, "GET");
        assert_false(c->send_once); /* a read may be repeated */
        assert_non_null(strstr(c->url, "/123456789/published_posts?fields=id%2Cmessage"));
        char *msg = graph_compose_message("ประกาศทดสอบ", "เนื้อหา", url, "amb");
        char *body = list_body("123456789_42", msg);
        answer(c, (Answer) { .status = 200, .body = body });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        assert_string_equal(finished(f, job)->remote_id, "123456789_42");
        assert_string_equal(finished(f, job)->link, "https://www.facebook.com/123456789/posts/42");
        fb_settle_now(f->instance);
        assert_false(state_file_exists("pending", "amb"));
        free(msg);
        free(body);
}

static void test_ambiguous_not_found_retries_carefully(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128];
        prakat_announcement a = announcement("nf", url, sizeof url);
        prakat_job *job = publish(f, &a);
        answer(next_call(), (Answer) { .status = 502, .body = "<html>bad gateway</html>" });
        fake_host_advance(&f->fake, RECONCILE_DELAY);
        answer(next_call(), (Answer) { .status = 200, .body = "{\"data\":[]}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_RETRY);
        assert_true(state_file_exists("pending", "nf"));

        /* The next attempt reads the Page before it posts. */
        prakat_job *again = publish(f, &a);
        FakeCall *c = next_call();
        assert_string_equal(c->method, "GET");
        answer(c, (Answer) { .status = 200, .body = "{\"data\":[{\"id\":\"1_1\",\"message\":\"someone else\"}]}" });
        c = next_call();
        assert_string_equal(c->method, "POST");
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_9\"}" });
        assert_outcome(f, again, PRAKAT_OUTCOME_DONE);
}

static void test_reconcile_gives_up_after_hours(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        StorePending p = { .since = f->fake.now - 7 * 60 * MINUTE, .failures = 2 };
        assert_int_equal(store_write_pending(state_dir, "old", &p), 0);
        char url[128];
        prakat_announcement a = announcement("old", url, sizeof url);
        prakat_job *job = publish(f, &a);
        answer(next_call(), (Answer) { .status = 500, .body = "{\"error\":{\"message\":\"x\",\"code\":2}}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_UNCONFIRMED);
        assert_non_null(strstr(finished(f, job)->message, "look at the Page"));

        /* Fewer failures, or less time: only a retry. */
        p = (StorePending) { .since = f->fake.now - 60 * MINUTE, .failures = 5 };
        assert_int_equal(store_write_pending(state_dir, "old2", &p), 0);
        prakat_announcement b = announcement("old2", url, sizeof url);
        job = publish(f, &b);
        answer(next_call(), (Answer) { .error = -ECONNRESET });
        assert_outcome(f, job, PRAKAT_OUTCOME_RETRY);
}

static void test_duplicate_that_is_ours(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128];
        prakat_announcement a = announcement("dup", url, sizeof url);
        prakat_job *job = publish(f, &a);
        answer(next_call(), (Answer) { .status = 400, .body = "{\"error\":{\"message\":\"(#506) Duplicate\","
                                                              "\"code\":506}}" });
        fake_host_advance(&f->fake, RECONCILE_DELAY);
        char *msg = graph_compose_message("ประกาศทดสอบ", "เนื้อหา", url, "dup");
        char *body = list_body("123456789_5", msg);
        answer(next_call(), (Answer) { .status = 200, .body = body });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        free(msg);
        free(body);

        prakat_announcement b = announcement("dup2", url, sizeof url);
        job = publish(f, &b);
        answer(next_call(), (Answer) { .status = 400, .body = "{\"error\":{\"message\":\"(#506) Duplicate\","
                                                              "\"code\":506}}" });
        fake_host_advance(&f->fake, RECONCILE_DELAY);
        answer(next_call(), (Answer) { .status = 200, .body = "{\"data\":[]}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_FAILED);
        assert_non_null(strstr(finished(f, job)->message, "duplicate"));
        assert_false(state_file_exists("pending", "dup2"));
}

static void test_slots(void **state) {
        Fixture *f = *state;
        configure(f, "2");
        char urls[5][128];
        char ids[5][8];
        prakat_job *jobs[5];
        for (int i = 0; i < 5; i++) {
                snprintf(ids[i], sizeof ids[i], "s%d", i);
                prakat_announcement a = announcement(ids[i], urls[i], sizeof urls[i]);
                jobs[i] = publish(f, &a);
        }
        assert_int_equal(n_active(), 2);
        for (int i = 0; i < 5; i++) {
                assert_true(n_active() <= 2);
                char body[64];
                snprintf(body, sizeof body, "{\"id\":\"123456789_%d\"}", 100 + i);
                answer(next_call(), (Answer) { .status = 200, .body = body });
        }
        for (int i = 0; i < 5; i++)
                assert_outcome(f, jobs[i], PRAKAT_OUTCOME_DONE);
        assert_int_equal(n_active(), 0);
}

static void test_throttle_pauses_everything(void **state) {
        Fixture *f = *state;
        configure(f, "1");
        char u1[128], u2[128], u3[128];
        prakat_announcement a1 = announcement("t1", u1, sizeof u1), a2 = announcement("t2", u2, sizeof u2),
                            a3 = announcement("t3", u3, sizeof u3);
        prakat_job *j1 = publish(f, &a1), *j2 = publish(f, &a2);
        assert_int_equal(n_active(), 1);
        answer(next_call(), (Answer) { .status = 400,
                                       .body = "{\"error\":{\"message\":\"(#80001) too many\",\"code\":80001}}",
                                       .header_name = "X-Business-Use-Case-Usage",
                                       .header_value = "{\"123456789\":[{\"estimated_time_to_regain_access\":2}]}" });
        assert_outcome(f, j1, PRAKAT_OUTCOME_RETRY);
        assert_outcome(f, j2, PRAKAT_OUTCOME_RETRY); /* waited for a slot: not sent at all */
        assert_int_equal(result_of(j1)->retry_after, 2 * MINUTE);
        assert_int_equal(result_of(j2)->retry_after, 2 * MINUTE);
        assert_false(state_file_exists("pending", "t1"));
        size_t sent = n_calls;
        fake_host_advance(&f->fake, 30 * SEC);
        prakat_job *j3 = publish(f, &a3);
        assert_outcome(f, j3, PRAKAT_OUTCOME_RETRY);
        assert_int_equal(result_of(j3)->retry_after, 90 * SEC);
        assert_int_equal(n_calls, sent); /* not even the health check */
        fake_host_advance(&f->fake, 90 * SEC);
        prakat_job *j4 = publish(f, &a3);
        assert_int_equal(n_active(), 1);
        answer(next_call(), (Answer) { .status = 200, .body = "{\"id\":\"123456789_3\"}" });
        assert_outcome(f, j4, PRAKAT_OUTCOME_DONE);
}

static void test_expired_token(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128];
        prakat_announcement a = announcement("tok", url, sizeof url);
        prakat_job *job = publish(f, &a);
        answer(next_call(), (Answer) { .status = 400, .body = "{\"error\":{\"message\":\"Error validating access "
                                                              "token: Session has expired\",\"code\":190,"
                                                              "\"error_subcode\":463}}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_RETRY);
        assert_int_equal(result_of(job)->retry_after, 10 * MINUTE);
        assert_non_null(strstr(finished(f, job)->message, "token has expired or was revoked"));
        assert_non_null(strstr(finished(f, job)->message, f->token_path));
        char health[256];
        assert_int_equal(plugin->health(f->instance, health, sizeof health), -EIO);
        assert_non_null(strstr(health, "put a new Page token in"));

        /* Held: no request while the token is the same one. */
        size_t sent = n_calls;
        prakat_job *again = publish(f, &a);
        assert_outcome(f, again, PRAKAT_OUTCOME_RETRY);
        assert_int_equal(n_calls, sent);

        /* A new token in the file: the next job tries it. */
        write_token(f, TOKEN "new", 0600);
        prakat_job *third = publish(f, &a);
        FakeCall *c = next_call();
        assert_string_equal(c->authorization, "Bearer " TOKEN "new");
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_8\"}" });
        assert_outcome(f, third, PRAKAT_OUTCOME_DONE);
        assert_int_equal(plugin->health(f->instance, health, sizeof health), 0);
}

static void test_replaces_and_retract(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        assert_int_equal(store_write_post(state_dir, "orig", "123456789_50", NULL), 0);
        char url[128];
        prakat_announcement a = announcement("upd", url, sizeof url);
        a.replaces = "orig";
        prakat_job *job = publish(f, &a);
        FakeCall *c = next_call();
        assert_string_equal(c->method, "POST");
        assert_string_equal(c->url, "http://127.0.0.1:9/v24.0/123456789_50");
        assert_non_null(strstr(c->body, "message="));
        answer(c, (Answer) { .status = 200, .body = "{\"success\":true}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        assert_string_equal(finished(f, job)->remote_id, "123456789_50");

        /* The post to update is gone: a new post. */
        assert_int_equal(store_write_post(state_dir, "gone", "123456789_51", NULL), 0);
        prakat_announcement b = announcement("upd2", url, sizeof url);
        b.replaces = "gone";
        job = publish(f, &b);
        answer(next_call(), (Answer) { .status = 400, .body = "{\"error\":{\"message\":\"does not exist\","
                                                              "\"code\":100,\"error_subcode\":33}}" });
        c = next_call();
        assert_string_equal(c->url, "http://127.0.0.1:9/v24.0/123456789/feed");
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_52\"}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);

        /* Retract by the job's remote id; a post already gone is done. */
        prakat_job *r = new_job(f);
        r->remote_id = "123456789_52";
        assert_int_equal(plugin->retract(f->instance, r, &b, "wrong"), 0);
        c = next_call();
        assert_string_equal(c->method, "DELETE");
        assert_string_equal(c->url, "http://127.0.0.1:9/v24.0/123456789_52");
        answer(c, (Answer) { .status = 400, .body = "{\"error\":{\"message\":\"does not exist\",\"code\":100,"
                                                    "\"error_subcode\":33}}" });
        assert_outcome(f, r, PRAKAT_OUTCOME_DONE);
        assert_non_null(strstr(finished(f, r)->message, "already deleted"));

        /* Nothing known and nothing on the Page: nothing to delete. */
        prakat_announcement never = announcement("never", url, sizeof url);
        r = new_job(f);
        assert_int_equal(plugin->retract(f->instance, r, &never, NULL), 0);
        answer(next_call(), (Answer) { .status = 200, .body = "{\"data\":[]}" });
        assert_outcome(f, r, PRAKAT_OUTCOME_DONE);
}

static void test_several_photos_reuse_uploads(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char url[128], path1[160], path2[160];
        snprintf(path1, sizeof path1, "%s/a.png", f->root);
        snprintf(path2, sizeof path2, "%s/b.jpg", f->root);
        FILE *file = fopen(path1, "w");
        fputs("\x89PNG\r\n\x1a\nxxxx", file);
        fclose(file);
        file = fopen(path2, "w");
        fputs("\xff\xd8\xffxxxx", file);
        fclose(file);
        prakat_attachment at[] = { { "a.png", path1, "image/png", 12 }, { "b.jpg", path2, "image/jpeg", 7 },
                                   { "c.pdf", path2, "application/pdf", 7 } };
        prakat_announcement a = announcement("ph", url, sizeof url);
        a.attachments = at;
        a.n_attachments = 3;
        prakat_job *job = publish(f, &a);
        FakeCall *c = next_call();
        assert_non_null(strstr(c->url, "/123456789/photos"));
        assert_non_null(strstr(c->body, "name=\"published\"\r\n\r\nfalse"));
        assert_non_null(strstr(c->body, "filename=\"a.png\"\r\nContent-Type: image/png"));
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"901\"}" });
        answer(next_call(), (Answer) { .error = -ECONNRESET }); /* the second upload: unclear */
        assert_outcome(f, job, PRAKAT_OUTCOME_RETRY);
        assert_true(state_file_exists("photos", "ph"));

        /* The retry uploads only the second photo, then posts both. */
        job = publish(f, &a);
        c = next_call();
        assert_non_null(strstr(c->body, "filename=\"b.jpg\""));
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"902\"}" });
        c = next_call();
        assert_non_null(strstr(c->url, "/123456789/feed"));
        assert_non_null(strstr(c->body, "attached_media%5B0%5D=%7B%22media_fbid%22%3A%22901%22%7D"));
        assert_non_null(strstr(c->body, "attached_media%5B1%5D=%7B%22media_fbid%22%3A%22902%22%7D"));
        assert_null(strstr(c->body, "link="));
        answer(c, (Answer) { .status = 200, .body = "{\"id\":\"123456789_60\"}" });
        assert_outcome(f, job, PRAKAT_OUTCOME_DONE);
        assert_false(state_file_exists("photos", "ph"));
}

/* A stop before the records were synced leaves pending/ beside posts/: the next start settles them. */
static void test_settle_leftovers_at_start(void **state) {
        StorePending p = { .since = 1 };

        assert_int_equal(store_init(state_dir), 0);
        assert_int_equal(store_write_pending(state_dir, "posted", &p), 0);
        assert_int_equal(store_write_post(state_dir, "posted", "123456789_60", NULL), 0);
        assert_int_equal(store_write_pending(state_dir, "unknown", &p), 0);
        assert_int_equal(store_init(state_dir), 0);
        assert_false(state_file_exists("pending", "posted"));
        assert_true(state_file_exists("posts", "posted"));
        assert_true(state_file_exists("pending", "unknown")); /* no post recorded: it stays careful */
}

static void test_destroy_with_work_in_flight(void **state) {
        Fixture *f = *state;
        configure(f, "1");
        char u1[128], u2[128];
        prakat_announcement a1 = announcement("d1", u1, sizeof u1), a2 = announcement("d2", u2, sizeof u2);
        publish(f, &a1);
        publish(f, &a2);
        answer(next_call(), (Answer) { .error = -ETIMEDOUT }); /* d1 waits on its reconcile timer */
        plugin->destroy(f->instance);
        f->instance = NULL;
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
        assert_int_equal(n_active(), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_usage_headers),
                cmocka_unit_test(test_message),
                cmocka_unit_test(test_form_and_scrub),
                cmocka_unit_test_setup_teardown(test_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plain_post, setup, teardown),
                cmocka_unit_test_setup_teardown(test_preview_is_what_is_sent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ambiguous_then_found, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ambiguous_not_found_retries_carefully, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reconcile_gives_up_after_hours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_duplicate_that_is_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_throttle_pauses_everything, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expired_token, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replaces_and_retract, setup, teardown),
                cmocka_unit_test_setup_teardown(test_several_photos_reuse_uploads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_settle_leftovers_at_start, setup, teardown),
                cmocka_unit_test_setup_teardown(test_destroy_with_work_in_flight, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
