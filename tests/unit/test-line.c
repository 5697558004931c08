/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the LINE channel plugin.  The plugin's sources are included whole; the plugin is
 * driven through its struct as the core drives it, with the fake host's clock and timers and an
 * HTTP fake (below) whose requests the tests answer by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>

#include "line/line-message.c"
#include "line/line-state.c"
#include "line/line-text.c"
#include "line/line.c"
#include "fake-host.h"

#define SEC 1000000ULL
#define TOKEN "unit-test-token-0123456789"
#define ARTICLE "https://bokaeo.go.th/news/a/20261125-abc.html"

static const prakat_channel_plugin *const plugin = &line_plugin;

/* ---- HTTP fake: every request waits in a list until the test answers it ---------------------- */

typedef struct TestCall {
        struct TestCall *next;
        char *method, *url, *body, *retry_key, *auth;
        prakat_http_done_fn done;
        void *userdata;
} TestCall;

typedef struct TestHeaders {
        const char *names[4];
        const char *values[4];
} TestHeaders;

static TestCall *calls;
static unsigned n_requests;

static void call_free(TestCall *c) {
        free(c->method);
        free(c->url);
        free(c->body);
        free(c->retry_key);
        free(c->auth);
        free(c);
}

static int test_http_request(const prakat_host *host, const prakat_http_request *req, prakat_http_done_fn done,
                             void *userdata, prakat_http_call **ret_call) {
        TestCall *c = calloc(1, sizeof(TestCall));
        assert_non_null(c);
        c->method = strdup(req->method);
        c->url = strdup(req->url);
        c->body = req->body ? strndup(req->body, req->body_size) : NULL;
        for (size_t i = 0; i < req->n_headers; i++) {
                if (!strcmp(req->headers[i].name, "X-Line-Retry-Key"))
                        c->retry_key = strdup(req->headers[i].value);
                if (!strcmp(req->headers[i].name, "Authorization"))
                        c->auth = strdup(req->headers[i].value);
        }
        c->done = done;
        c->userdata = userdata;
        TestCall **p = &calls;
        while (*p)
                p = &(*p)->next;
        *p = c;
        n_requests++;
        if (ret_call)
                *ret_call = (prakat_http_call *) c;
        return 0;
}

static void test_http_cancel(prakat_http_call *call) {
        for (TestCall **p = &calls; *p; p = &(*p)->next)
                if (*p == (TestCall *) call) {
                        *p = (*p)->next;
                        call_free((TestCall *) call);
                        return;
                }
}

static const char *test_header(const prakat_http_response *r, const char *name) {
        const TestHeaders *h = r->core;
        for (size_t i = 0; h && i < 4 && h->names[i]; i++)
                if (!strcasecmp(h->names[i], name))
                        return h->values[i];
        return NULL;
}

/* The first waiting request whose URL contains `path`; fails the test when there is none. */
static TestCall *take(const char *path) {
        for (TestCall **p = &calls; *p; p = &(*p)->next)
                if (strstr((*p)->url, path)) {
                        TestCall *c = *p;
                        *p = c->next;
                        c->next = NULL;
                        return c;
                }
        fail_msg("no request to %s is waiting", path);
        return NULL;
}

static bool waiting(const char *path) {
        for (TestCall *c = calls; c; c = c->next)
                if (strstr(c->url, path))
                        return true;
        return false;
}

static void answer_full(TestCall *c, int error, long status, const char *body, const TestHeaders *h) {
        prakat_http_response r = {
                .error = error,
                .error_text = error ? "test error" : NULL,
                .status = status,
                .body = body ? body : "",
                .body_size = body ? strlen(body) : 0,
                .header = test_header,
                .core = h,
        };
        c->done(c->userdata, &r);
        call_free(c);
}

static void answer(const char *path, long status, const char *body) {
        TestHeaders h = { { "x-line-request-id" }, { "req-0001" } };
        answer_full(take(path), 0, status, body, &h);
}

/* ---- fixture ----------------------------------------------------------------------------------- */

typedef struct Fixture {
        char root[64];
        char state[128];
        char token[128];
        FakeHost fake;
        void *instance;
} Fixture;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void write_file(const char *path, const void *data, size_t size, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        close(fd);
        assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        snprintf(f->root, sizeof f->root, "/tmp/prakat-test-line-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        snprintf(f->state, sizeof f->state, "%s/state", f->root);
        snprintf(f->token, sizeof f->token, "%s/line.token", f->root);
        assert_int_equal(mkdir(f->state, 0700), 0);
        write_file(f->token, TOKEN "\n", strlen(TOKEN) + 1, 0600);
        fake_host_init(&f->fake, f->state);
        f->fake.host.channel = "line";
        f->fake.host.http_request = test_http_request;
        f->fake.host.http_cancel = test_http_cancel;
        f->fake.quiet = getenv("PRAKAT_TEST_VERBOSE") == NULL;
        calls = NULL;
        n_requests = 0;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        if (f->instance)
                plugin->destroy(f->instance);
        assert_null(calls); /* destroy() cancelled every request */
        assert_int_equal(fake_host_done(&f->fake), 0);
        nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

/* Configures the channel with token_file, api_base and `extra` ("key=value;key=value"). */
static int configure(Fixture *f, const char *extra, char *error, size_t size, unsigned *line) {
        prakat_config_entry entries[16];
        char *copy = strdup(extra ? extra : ""), *save = NULL;
        size_t n = 0;
        entries[n++] = (prakat_config_entry) { "token_file", f->token, 2 };
        entries[n++] = (prakat_config_entry) { "api_base", "https://api.line.test/", 3 };
        for (char *kv = strtok_r(copy, ";", &save); kv && n < 16; kv = strtok_r(NULL, ";", &save)) {
                char *eq = strchr(kv, '=');
                assert_non_null(eq);
                *eq = 0;
                entries[n] = (prakat_config_entry) { kv, eq + 1, (unsigned) (n + 2) };
                n++;
        }
        int r = plugin->configure(&f->fake.host, entries, n, &f->instance, error, size, line);
        free(copy);
        return r;
}

static void configure_ok(Fixture *f, const char *extra) {
        char error[512] = "";
        unsigned line = 0;
        int r = configure(f, extra, error, sizeof error, &line);
        if (r < 0)
                fail_msg("configure: %s (line %u)", error, line);
        /* The health check at start: bot info, quota (no limit). */
        fake_host_run_due(&f->fake);
        answer("/v2/bot/info", 200, "{\"displayName\":\"test\"}");
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        /* Past the time a "no limit" answer spares the sends their own quota read (UNLIMITED_FRESH). */
        f->fake.now += UNLIMITED_FRESH + SEC;
}

static prakat_announcement announcement(const char *id, const char *title, const char *body) {
        return (prakat_announcement) {
                .id = id,
                .title = title,
                .body = body,
                .category = "ข่าวประชาสัมพันธ์",
                .all_villages = true,
                .article_url = ARTICLE,
        };
}

static const FakeFinish *finished(Fixture *f, prakat_job *job) {
        return fake_host_finish_of(&f->fake, job);
}

/* ---- text ------------------------------------------------------------------------------------- */

static void test_units(void **state) {
        assert_int_equal(line_text_units("abc"), 3);
        assert_int_equal(line_text_units("ประกาศ"), 6);  /* Thai: one unit per code point */
        assert_int_equal(line_text_units("😀"), 2);      /* outside the BMP: a surrogate pair */
        assert_int_equal(line_text_units("ก😀ข"), 4);
        assert_int_equal(line_text_prefix_bytes("ก😀ข", 2), 3); /* never half an emoji */
        assert_int_equal(line_text_prefix_bytes("ก😀ข", 3), 7);
}

static void test_clean(void **state) {
        char *s = line_text_clean("a\r\nb\x01" "c\xff\td  \n\n");
        assert_string_equal(s, "a\nbc\xEF\xBF\xBD\td");
        free(s);
        s = line_text_clean(NULL);
        assert_string_equal(s, "");
        free(s);
}

static void test_cut(void **state) {
        bool cut = true;
        char *s = line_text_cut("short", 10, &cut);
        assert_string_equal(s, "short");
        assert_false(cut);
        free(s);

        /* A sentence end wins over a space when it keeps at least half. */
        s = line_text_cut("One two three. Four five six seven", 20, &cut);
        assert_string_equal(s, "One two three.");
        assert_true(cut);
        free(s);

        /* A line break wins over a sentence end, unless it would lose more than half. */
        s = line_text_cut("First line here\nSecond. Third line goes on", 30, &cut);
        assert_string_equal(s, "First line here");
        free(s);
        s = line_text_cut("A\nSecond sentence here. Third goes on", 30, &cut);
        assert_string_equal(s, "A\nSecond sentence here.");
        free(s);
        s = line_text_cut("First line here is long\nSecond. Third line goes on", 30, &cut);
        assert_string_equal(s, "First line here is long");
        free(s);

        /* Thai without spaces: never between a consonant and its vowel or tone mark. */
        char thai[400] = "";
        for (int i = 0; i < 30; i++)
                strcat(thai, "ที่"); /* ท + ี (above) + ่ (tone) */
        for (size_t max = 1; max < 40; max++) {
                s = line_text_cut(thai, max, &cut);
                assert_true(line_text_units(s) <= max);
                assert_int_equal(line_text_units(s) % 3, 0);
                free(s);
        }
}

static void test_first_lines(void **state) {
        char *s = line_text_first_lines("a\n\n  \nb\nc\nd", 2);
        assert_string_equal(s, "a\nb");
        free(s);
}

/* ---- messages ---------------------------------------------------------------------------------- */

static void test_text_message(void **state) {
        char *body = malloc(40000);
        body[0] = 0;
        for (int i = 0; i < 200; i++)
                strcat(body, "ขอเชิญประชาชนร่วมประชุม 😀 ณ ศาลากลางหมู่บ้าน\n");
        prakat_announcement a = announcement("x", "หัวข้อ", body);
        char *t = line_message_text(&a, LINE_TEXT_MAX);
        assert_non_null(t);
        assert_true(line_text_units(t) <= LINE_TEXT_MAX);
        assert_true(line_text_units(t) > LINE_TEXT_MAX - 100);
        assert_non_null(strstr(t, "หัวข้อ\n\n"));
        const char *tail = "อ่านต่อ / Read more: " ARTICLE;
        assert_string_equal(t + strlen(t) - strlen(tail), tail);
        assert_non_null(strstr(t, "หมู่บ้าน" ELLIPSIS "\n\n")); /* cut at the end of a line */
        free(t);

        a.replaces = "old";
        a.priority = PRAKAT_PRIORITY_URGENT;
        t = line_message_text(&a, LINE_TEXT_MAX);
        assert_true(strncmp(t, "ด่วน / Urgent\nแก้ไขประกาศ / Updated: หัวข้อ", strlen("ด่วน / Urgent\nแก้ไขประกาศ / Updated: หัวข้อ")) == 0);
        free(t);
        free(body);
}

static void test_flex_message(void **state) {
        Fixture *f = *state;
        static const unsigned char png[] = "\x89PNG\r\n\x1a\nrest";
        char p1[160], p2[160], p3[160];
        snprintf(p1, sizeof p1, "%s/a.png", f->root);
        snprintf(p2, sizeof p2, "%s/b.jpg", f->root);
        snprintf(p3, sizeof p3, "%s/c.png", f->root);
        write_file(p1, png, sizeof png, 0644);
        write_file(p2, "\xFF\xD8\xFF\xE0", 4, 0644);
        write_file(p3, "GIF89a", 6, 0644); /* named .png, but is not one */
        prakat_attachment att[4] = {
                { "a.png", p1, "image/png", 10 },
                { "b.jpg", p2, "image/jpeg", 10 },
                { "c.png", p3, "image/png", 10 },
                { "d.pdf", p1, "application/pdf", 10 },
        };
        const char *urls[4] = { "https://x.test/a.png", "https://x.test/b.jpg", "https://x.test/c.png",
                                "https://x.test/d.pdf" };
        prakat_announcement a = announcement("x", "ปิดถนน", "บรรทัด 1\nบรรทัด 2\n3\n4\n5\n6\n7\n8");
        a.attachments = att;
        a.n_attachments = 4;
        a.attachment_urls = urls;
        LineNotes notes = {};
        json_t *m = line_messages_announcement(&a, LINE_STYLE_FLEX, "25 พฤศจิกายน 2569", &notes);
        assert_non_null(m);
        assert_int_equal(json_array_size(m), 2); /* card + b.jpg; c.png is not a PNG, the PDF not a picture */
        json_t *card = json_array_get(m, 0);
        assert_string_equal(json_string_value(json_object_get(card, "type")), "flex");
        const char *alt = json_string_value(json_object_get(card, "altText"));
        assert_true(strncmp(alt, "ปิดถนน\nบรรทัด 1", strlen("ปิดถนน\nบรรทัด 1")) == 0);
        json_t *bubble = json_object_get(card, "contents");
        assert_string_equal(json_string_value(json_object_get(json_object_get(bubble, "hero"), "url")), urls[0]);
        json_t *button = json_array_get(json_object_get(json_object_get(bubble, "footer"), "contents"), 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(button, "action"), "uri")), ARTICLE);
        /* the card shows six lines and says the text goes on */
        json_t *body = json_object_get(json_object_get(bubble, "body"), "contents");
        const char *excerpt = json_string_value(json_object_get(json_array_get(body, json_array_size(body) - 1),
                                                                "text"));
        assert_string_equal(excerpt, "บรรทัด 1\nบรรทัด 2\n3\n4\n5\n6" ELLIPSIS);
        json_t *img = json_array_get(m, 1);
        assert_string_equal(json_string_value(json_object_get(img, "originalContentUrl")), urls[1]);
        assert_non_null(strstr(notes.text, "c.png not sent"));
        json_decref(m);

        /* A picture without an https address is skipped with a note. */
        urls[0] = "http://x.test/a.png";
        memset(&notes, 0, sizeof notes);
        m = line_messages_announcement(&a, LINE_STYLE_TEXT, NULL, &notes);
        assert_int_equal(json_array_size(m), 2); /* text + b.jpg */
        assert_non_null(strstr(notes.text, "a.png not sent: it has no https address"));
        json_decref(m);
}

static void test_message_cap(void **state) {
        Fixture *f = *state;
        char path[160];
        snprintf(path, sizeof path, "%s/p.png", f->root);
        write_file(path, "\x89PNG\r\n\x1a\n", 8, 0644);
        prakat_attachment att[8];
        const char *urls[8];
        for (int i = 0; i < 8; i++) {
                att[i] = (prakat_attachment) { "p.png", path, "image/png", 8 };
                urls[i] = "https://x.test/p.png";
        }
        prakat_announcement a = announcement("x", "t", "b");
        a.attachments = att;
        a.n_attachments = 8;
        a.attachment_urls = urls;
        LineNotes notes = {};
        json_t *m = line_messages_announcement(&a, LINE_STYLE_TEXT, NULL, &notes);
        assert_int_equal(json_array_size(m), LINE_MAX_MESSAGES);
        assert_non_null(strstr(notes.text, "4 more picture(s) not sent"));
        json_decref(m);
}

static void test_correction(void **state) {
        prakat_announcement a = announcement("x", "งานวัด", "b");
        json_t *m = line_messages_correction(&a, "เลื่อนไปเดือนหน้า");
        const char *t = json_string_value(json_object_get(json_array_get(m, 0), "text"));
        assert_non_null(strstr(t, "ยกเลิกประกาศ: งานวัด\nเหตุผล: เลื่อนไปเดือนหน้า\nรายละเอียด: " ARTICLE));
        assert_non_null(strstr(t, "Withdrawn: งานวัด\nReason: เลื่อนไปเดือนหน้า"));
        json_decref(m);
}

/* ---- state files ------------------------------------------------------------------------------- */

static void test_key_record(void **state) {
        Fixture *f = *state;
        char path[192];
        LineKey k, back;
        snprintf(path, sizeof path, "%s/k", f->root);
        assert_int_equal(line_key_load(path, &back), -ENOENT);
        assert_int_equal(line_key_init(&k, 5), 0);
        assert_int_equal(strlen(k.key), 36);
        k.first_sent = 7;
        k.pending = true;
        k.attempts = 2;
        k.endpoint = LINE_ENDPOINT_NARROWCAST;
        snprintf(k.detail, sizeof k.detail, "two\nlines");
        assert_int_equal(line_key_save(path, &k), 0);
        assert_int_equal(line_key_load(path, &back), 0);
        assert_string_equal(back.key, k.key);
        assert_true(back.in_doubt); /* pending when written: may have arrived */
        assert_false(back.pending);
        assert_int_equal(back.first_sent, 7);
        assert_int_equal(back.attempts, 2);
        assert_int_equal(back.endpoint, LINE_ENDPOINT_NARROWCAST);
        assert_string_equal(back.detail, "two lines");
        write_file(path, "garbage\n", 8, 0600);
        assert_int_equal(line_key_load(path, &back), -EBADMSG);
}

static void test_window(void **state) {
        Fixture *f = *state;
        char path[192];
        LineWindow w, back;
        snprintf(path, sizeof path, "%s/sends", f->root);
        assert_int_equal(line_window_init(&w, 2), 0);
        prakat_usec_t t0 = 1000 * SEC, hour = 3600 * SEC;
        assert_int_equal(line_window_wait(&w, t0, hour), 0);
        assert_int_equal(line_window_add(&w, path, t0), 0);
        assert_int_equal(line_window_add(&w, path, t0 + 10 * SEC), 0);
        assert_int_equal(line_window_wait(&w, t0 + 20 * SEC, hour), hour - 20 * SEC);
        assert_int_equal(line_window_init(&back, 2), 0);
        line_window_load(&back, path, t0 + 20 * SEC, hour);
        assert_int_equal(back.n, 2);
        line_window_expire(&back, t0 + hour, hour);
        assert_int_equal(back.n, 1);
        assert_int_equal(line_window_wait(&back, t0 + hour, hour), 0);

        /* Sends are appended; the file is rewritten with only the window once mostly expired lines. */
        for (unsigned i = 0; i < 500; i++)
                assert_int_equal(line_window_add(&w, path, t0 + (20 + i) * SEC), 0);
        char *data = NULL;
        size_t size = 0, lines = 0;
        assert_int_equal(plugin_read_small_file(path, 1 << 20, &data, NULL), 0);
        size = strlen(data);
        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        free(data);
        assert_true(lines >= 2 && lines <= 2 * 2 + 64 + 1);
        line_window_load(&back, path, t0 + 600 * SEC, hour);
        assert_int_equal(back.n, 2);
        assert_int_equal(back.times[1], t0 + 519 * SEC);
        /* A last line cut off by a crash: ignored, and the next send rewrites the file whole. */
        int fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "17", 2), 2);
        close(fd);
        line_window_load(&back, path, t0 + 600 * SEC, hour);
        assert_int_equal(back.n, 2);
        assert_int_equal(line_window_add(&back, path, t0 + 600 * SEC), 0);
        assert_int_equal(plugin_read_small_file(path, 1 << 20, &data, NULL), 0);
        size = strlen(data);
        if (!(size > 0 && data[size - 1] == '\n' && strstr(data, "17\n") == NULL))
                fail_msg("sends after a cut-off line: \"%s\"", data);
        free(data);
        line_window_done(&w);
        line_window_done(&back);
}

/* ---- configuration ----------------------------------------------------------------------------- */

static void expect_config_error(Fixture *f, const char *extra, unsigned want_line, const char *want_text) {
        char error[512] = "";
        unsigned line = 99;
        assert_int_equal(configure(f, extra, error, sizeof error, &line), -EINVAL);
        if (!strstr(error, want_text))
                fail_msg("error '%s' lacks '%s'", error, want_text);
        assert_int_equal(line, want_line);
        assert_null(f->instance);
}

static void test_config_errors(void **state) {
        Fixture *f = *state;
        expect_config_error(f, "colour=blue", 4, "unknown key 'colour'");
        expect_config_error(f, "mode=loud", 4, "write broadcast or narrowcast");
        expect_config_error(f, "style=fancy", 4, "write flex");
        expect_config_error(f, "rate_per_hour=0", 4, "whole number");
        expect_config_error(f, "audience.x=5", 4, "audience.N");
        expect_config_error(f, "audience.3=abc", 4, "not an audience group id");
        expect_config_error(f, "audience.3=1;audience.3=2", 5, "two audiences");
        expect_config_error(f, "timeout=soon", 4, "not a duration");
        expect_config_error(f, "unconfirmed_after=2d", 4, "24 hours");
        expect_config_error(f, "token_credential=line", 4, "not both");
        chmod(f->token, 0644);
        expect_config_error(f, "", 2, "chmod 600");
}

/* ---- sending ----------------------------------------------------------------------------------- */

static void test_broadcast_retry_and_409(void **state) {
        Fixture *f = *state;
        configure_ok(f, "");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("20261125-abc", "ประกาศ", "เนื้อหา");

        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"limited\",\"value\":1000}");
        answer("/v2/bot/message/quota/consumption", 200, "{\"totalUsage\":10}");
        TestCall *post = take("/v2/bot/message/broadcast");
        assert_string_equal(post->method, "POST");
        assert_string_equal(post->auth, "Bearer " TOKEN);
        char key[64];
        snprintf(key, sizeof key, "%s", post->retry_key);
        /* The key is on disk before the request left. */
        char path[256];
        LineKey stored;
        snprintf(path, sizeof path, "%s/keys/20261125-abc.publish", f->state);
        assert_int_equal(line_key_load(path, &stored), 0);
        assert_string_equal(stored.key, key);
        assert_true(stored.in_doubt);
        answer_full(post, 0, 500, "{\"message\":\"Internal server error\"}", NULL);
        assert_int_equal(finished(f, &job)->outcome, PRAKAT_OUTCOME_RETRY);

        /* The retry carries the same key; LINE says it had it: success. */
        prakat_job again = { .channel = "line", .attempt = 2 };
        assert_int_equal(plugin->publish(f->instance, &again, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        post = take("/v2/bot/message/broadcast");
        assert_string_equal(post->retry_key, key);
        TestHeaders h = { { "x-line-request-id", "x-line-accepted-request-id" }, { "req-409", "req-first" } };
        answer_full(post, 0, 409, "{\"message\":\"The retry key is already accepted\"}", &h);
        const FakeFinish *fin = finished(f, &again);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_DONE);
        assert_string_equal(fin->remote_id, "req-first");
        assert_null(strstr(fin->message, TOKEN));

        /* Asked again (say after a crash): done at once, nothing sent. */
        unsigned before = n_requests;
        prakat_job third = { .channel = "line", .attempt = 1, .interrupted = true };
        assert_int_equal(plugin->publish(f->instance, &third, &a), 0);
        assert_int_equal(finished(f, &third)->outcome, PRAKAT_OUTCOME_DONE);
        assert_int_equal(n_requests, before);
}

static void test_quota_used_is_held(void **state) {
        Fixture *f = *state;
        configure_ok(f, "health_interval=5m");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("q1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"limited\",\"value\":1000}");
        answer("/v2/bot/message/quota/consumption", 200, "{\"totalUsage\":1000}");
        assert_false(waiting("/broadcast"));
        const FakeFinish *fin = finished(f, &job);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_RETRY);
        assert_non_null(strstr(fin->message, "held: the LINE monthly message quota is used up (1,000 of 1,000"));
        char buf[256];
        assert_int_equal(plugin->health(f->instance, buf, sizeof buf), -EDQUOT);
        assert_non_null(strstr(buf, "used up"));
}

static void test_unconfirmed(void **state) {
        Fixture *f = *state;
        configure_ok(f, "unconfirmed_after=1h;timeout=10s");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("u1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer_full(take("/broadcast"), -ETIMEDOUT, 0, NULL, NULL);
        assert_int_equal(finished(f, &job)->outcome, PRAKAT_OUTCOME_RETRY);

        f->fake.now += 2 * 3600 * SEC;
        unsigned before = n_requests;
        prakat_job again = { .channel = "line", .attempt = 2 };
        assert_int_equal(plugin->publish(f->instance, &again, &a), 0);
        const FakeFinish *fin = finished(f, &again);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_UNCONFIRMED);
        assert_non_null(strstr(fin->message, "not sent again blindly"));
        assert_int_equal(n_requests, before);
}

static void test_refused_outright_gets_new_key(void **state) {
        Fixture *f = *state;
        configure_ok(f, "unconfirmed_after=1h");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("r1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        TestCall *post = take("/broadcast");
        char key[64];
        snprintf(key, sizeof key, "%s", post->retry_key);
        answer_full(post, 0, 429, "{\"message\":\"The API rate limit has been exceeded. Try again later.\"}", NULL);
        assert_int_equal(finished(f, &job)->outcome, PRAKAT_OUTCOME_RETRY);

        f->fake.now += 2 * 3600 * SEC;
        prakat_job again = { .channel = "line", .attempt = 2 };
        assert_int_equal(plugin->publish(f->instance, &again, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        post = take("/broadcast");
        assert_string_not_equal(post->retry_key, key);
        answer_full(post, 0, 200, "{}", NULL);
        assert_int_equal(finished(f, &again)->outcome, PRAKAT_OUTCOME_DONE);
}

static void test_bad_request_fails(void **state) {
        Fixture *f = *state;
        configure_ok(f, "");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("b1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer("/broadcast", 400,
               "{\"message\":\"The request body has 1 error(s)\",\"details\":[{\"message\":\"May not be empty\","
               "\"property\":\"messages[0].text\"}]}");
        const FakeFinish *fin = finished(f, &job);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_FAILED);
        assert_non_null(strstr(fin->message, "messages[0].text May not be empty"));
}

static void test_narrowcast_followed(void **state) {
        Fixture *f = *state;
        configure_ok(f, "audience.1=111;audience.2=222");
        prakat_job job = { .channel = "line", .attempt = 1 };
        static const unsigned villages[] = { 1, 2 };
        prakat_announcement a = announcement("n1", "t", "b");
        a.all_villages = false;
        a.villages = villages;
        a.n_villages = 2;
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        TestCall *post = take("/v2/bot/message/narrowcast");
        json_t *body = json_loads(post->body, 0, NULL);
        json_t *or = json_object_get(json_object_get(body, "recipient"), "or");
        assert_int_equal(json_array_size(or), 2);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(or, 1), "audienceGroupId")), 222);
        json_decref(body);
        TestHeaders h = { { "x-line-request-id" }, { "nc-1" } };
        answer_full(post, 0, 202, "{}", &h);
        assert_null(finished(f, &job));

        fake_host_advance(&f->fake, 1 * SEC);
        answer("progress/narrowcast?requestId=nc-1", 200, "{\"phase\":\"sending\"}");
        assert_null(finished(f, &job));
        fake_host_advance(&f->fake, 2 * SEC);
        answer("progress/narrowcast?requestId=nc-1", 200,
               "{\"phase\":\"succeeded\",\"successCount\":5,\"failureCount\":0,\"targetCount\":5}");
        const FakeFinish *fin = finished(f, &job);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_DONE);
        assert_non_null(strstr(fin->message, "delivered to 5 of 5"));
}

/* The preview's request body is the narrowcast's body, byte for byte once parsed; nothing is sent. */
static void test_preview_is_what_is_sent(void **state) {
        Fixture *f = *state;
        configure_ok(f, "audience.1=111;style=text");
        prakat_job job = { .channel = "line", .attempt = 1 };
        static const unsigned villages[] = { 1 };
        prakat_announcement a = announcement("pv1", "ประชุมหมู่ 1", "เนื้อหา");
        char *text = NULL;
        a.all_villages = false;
        a.villages = villages;
        a.n_villages = 1;
        unsigned before = n_requests;
        assert_int_equal(plugin->preview(f->instance, &a, NULL, &text), 0);
        assert_int_equal(n_requests, before);
        assert_null(calls);
        assert_non_null(strstr(text, "(narrowcast, POST /v2/bot/message/narrowcast)"));
        char *plain = line_message_text(&a, LINE_TEXT_MAX);
        assert_non_null(strstr(text, plain));
        const char *start = strstr(text, "request body:\n");
        assert_non_null(start);
        json_t *shown = json_loads(start + strlen("request body:\n"), JSON_DISABLE_EOF_CHECK, NULL);
        assert_non_null(shown);

        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        TestCall *post = take("/v2/bot/message/narrowcast");
        json_t *sent = json_loads(post->body, 0, NULL);
        assert_true(json_equal(shown, sent));
        json_decref(sent);
        json_decref(shown);
        TestHeaders h = { { "x-line-request-id" }, { "nc-pv" } };
        answer_full(post, 0, 202, "{}", &h);
        free(plain);
        free(text);
}

static void test_narrowcast_slow_lets_go(void **state) {
        Fixture *f = *state;
        configure_ok(f, "mode=narrowcast");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("n2", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        TestCall *post = take("/v2/bot/message/narrowcast");
        assert_null(strstr(post->body, "recipient")); /* mode = narrowcast, all villages: every friend */
        TestHeaders h = { { "x-line-request-id" }, { "nc-2" } };
        answer_full(post, 0, 202, "{}", &h);
        for (int i = 0; i < 3; i++) {
                fake_host_advance(&f->fake, 4 * SEC);
                if (waiting("progress"))
                        answer("progress", 200, "{\"phase\":\"waiting\"}");
        }
        const FakeFinish *fin = finished(f, &job);
        assert_non_null(fin);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_RETRY);
        assert_non_null(strstr(fin->message, "checking again"));

        /* Back again: it follows the same request, never sends anew. */
        prakat_job again = { .channel = "line", .attempt = 2 };
        assert_int_equal(plugin->publish(f->instance, &again, &a), 0);
        assert_false(waiting("/message/narrowcast"));
        fake_host_advance(&f->fake, 1 * SEC);
        answer("progress/narrowcast?requestId=nc-2", 200,
               "{\"phase\":\"failed\",\"errorCode\":2,\"failedDescription\":\"There were not enough recipients.\"}");
        fin = finished(f, &again);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_FAILED);
        assert_non_null(strstr(fin->message, "not enough recipients"));
}

static void test_token_401_and_health(void **state) {
        Fixture *f = *state;
        char error[256] = "";
        unsigned line = 0;
        char buf[256];
        assert_int_equal(configure(f, "health_interval=1m", error, sizeof error, &line), 0);
        assert_int_equal(plugin->health(f->instance, buf, sizeof buf), 0); /* checking */
        fake_host_run_due(&f->fake);
        answer("/v2/bot/info", 401, "{\"message\":\"Authentication failed\"}");
        assert_int_equal(plugin->health(f->instance, buf, sizeof buf), -EIO);
        assert_non_null(strstr(buf, "invalid or expired"));

        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("t1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        answer("/v2/bot/message/quota", 401, "{\"message\":\"Authentication failed\"}");
        const FakeFinish *fin = finished(f, &job);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_RETRY);
        assert_null(strstr(fin->message, TOKEN));

        /* A new token in the file is read at the next check; health recovers. */
        write_file(f->token, "new-token-abcdef\n", 17, 0600);
        fake_host_advance(&f->fake, 61 * SEC);
        TestCall *c = take("/v2/bot/info");
        assert_string_equal(c->auth, "Bearer new-token-abcdef");
        answer_full(c, 0, 200, "{}", NULL);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"limited\",\"value\":1000}");
        answer("/v2/bot/message/quota/consumption", 200, "{\"totalUsage\":0}");
        assert_int_equal(plugin->health(f->instance, buf, sizeof buf), 0);
        assert_string_equal(buf, "ok, quota 1,000 left this month");
}

static void test_rate_window(void **state) {
        Fixture *f = *state;
        configure_ok(f, "rate_per_hour=1");
        prakat_announcement a = announcement("w1", "t", "b"), b = announcement("w2", "t", "b");
        prakat_job j1 = { .channel = "line", .attempt = 1 }, j2 = { .channel = "line", .attempt = 1 };
        assert_int_equal(plugin->publish(f->instance, &j1, &a), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer("/broadcast", 200, "{}");
        assert_int_equal(finished(f, &j1)->outcome, PRAKAT_OUTCOME_DONE);
        f->fake.now += 10 * 60 * SEC;
        assert_int_equal(plugin->publish(f->instance, &j2, &b), 0);
        assert_false(waiting("/quota"));
        const FakeFinish *fin = finished(f, &j2);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_RETRY);
        assert_non_null(strstr(fin->message, "held: 1 LINE broadcast/narrowcast requests an hour"));
}

/* Two sends that start together both pass the first window check; the one that comes second to the
 * POST is held there, so the hour never holds more than rate_per_hour sends. */
static void test_rate_window_concurrent(void **state) {
        Fixture *f = *state;
        configure_ok(f, "rate_per_hour=1");
        prakat_announcement a = announcement("c1", "t", "b"), b = announcement("c2", "t", "b");
        prakat_job j1 = { .channel = "line", .attempt = 1 }, j2 = { .channel = "line", .attempt = 1 };
        assert_int_equal(plugin->publish(f->instance, &j1, &a), 0);
        assert_int_equal(plugin->publish(f->instance, &j2, &b), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer("/broadcast", 200, "{}");
        assert_false(waiting("/broadcast"));
        unsigned done = 0, held = 0;
        prakat_job *jobs[] = { &j1, &j2 };
        for (size_t i = 0; i < 2; i++) {
                const FakeFinish *fin = finished(f, jobs[i]);
                done += fin->outcome == PRAKAT_OUTCOME_DONE;
                held += fin->outcome == PRAKAT_OUTCOME_RETRY && strstr(fin->message, "held: 1 LINE") != NULL;
        }
        assert_int_equal(done, 1);
        assert_int_equal(held, 1);
}

static void test_max_in_flight(void **state) {
        Fixture *f = *state;
        configure_ok(f, "max_in_flight=1");
        prakat_announcement a = announcement("m1", "t", "b"), b = announcement("m2", "t", "b");
        prakat_job j1 = { .channel = "line", .attempt = 1 }, j2 = { .channel = "line", .attempt = 1 };
        assert_int_equal(plugin->publish(f->instance, &j1, &a), 0);
        assert_int_equal(plugin->publish(f->instance, &j2, &b), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        assert_false(waiting("/quota")); /* the second waits for the first */
        answer("/broadcast", 200, "{}");
        assert_false(waiting("/quota")); /* "no limit" a moment ago: not asked again */
        answer("/broadcast", 200, "{}");
        assert_int_equal(finished(f, &j2)->outcome, PRAKAT_OUTCOME_DONE);
}

/* The quota is read before each send, except for a plan LINE said has no monthly limit less than
 * UNLIMITED_FRESH ago; a limited plan is read every time. */
static void test_quota_read_spared(void **state) {
        Fixture *f = *state;
        configure_ok(f, "");
        prakat_announcement a[4] = { announcement("s1", "t", "b"), announcement("s2", "t", "b"),
                                     announcement("s3", "t", "b"), announcement("s4", "t", "b") };
        prakat_job j[4];
        for (size_t i = 0; i < 4; i++)
                j[i] = (prakat_job) { .channel = "line", .attempt = 1 };

        assert_int_equal(plugin->publish(f->instance, &j[0], &a[0]), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"none\"}");
        answer("/broadcast", 200, "{}");
        f->fake.now += UNLIMITED_FRESH / 2;
        assert_int_equal(plugin->publish(f->instance, &j[1], &a[1]), 0);
        assert_false(waiting("/quota"));
        answer("/broadcast", 200, "{}");
        f->fake.now += UNLIMITED_FRESH;
        assert_int_equal(plugin->publish(f->instance, &j[2], &a[2]), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"limited\",\"value\":1000}");
        answer("/v2/bot/message/quota/consumption", 200, "{\"totalUsage\":10}");
        answer("/broadcast", 200, "{}");
        assert_int_equal(plugin->publish(f->instance, &j[3], &a[3]), 0);
        answer("/v2/bot/message/quota", 200, "{\"type\":\"limited\",\"value\":1000}");
        answer("/v2/bot/message/quota/consumption", 200, "{\"totalUsage\":1000}");
        assert_false(waiting("/broadcast"));
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(finished(f, &j[i])->outcome, PRAKAT_OUTCOME_DONE);
        assert_int_equal(finished(f, &j[3])->outcome, PRAKAT_OUTCOME_RETRY);
}

static void test_destroy_in_flight(void **state) {
        Fixture *f = *state;
        configure_ok(f, "");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("d1", "t", "b");
        assert_int_equal(plugin->publish(f->instance, &job, &a), 0);
        /* teardown destroys the instance with the quota request open: it must be cancelled */
}

static void test_retract_nothing_sent(void **state) {
        Fixture *f = *state;
        configure_ok(f, "");
        prakat_job job = { .channel = "line", .attempt = 1 };
        prakat_announcement a = announcement("never", "t", "b");
        assert_int_equal(plugin->retract(f->instance, &job, &a, "why"), 0);
        const FakeFinish *fin = finished(f, &job);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_DONE);
        assert_non_null(strstr(fin->message, "nothing to correct"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_clean),
                cmocka_unit_test(test_cut),
                cmocka_unit_test(test_first_lines),
                cmocka_unit_test(test_text_message),
                cmocka_unit_test_setup_teardown(test_flex_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_message_cap, setup, teardown),
                cmocka_unit_test(test_correction),
                cmocka_unit_test_setup_teardown(test_key_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_window, setup, teardown),
                cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_broadcast_retry_and_409, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quota_used_is_held, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unconfirmed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_outright_gets_new_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_request_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_narrowcast_followed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_narrowcast_slow_lets_go, setup, teardown),
                cmocka_unit_test_setup_teardown(test_preview_is_what_is_sent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_token_401_and_health, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rate_window, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rate_window_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_max_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quota_read_spared, setup, teardown),
                cmocka_unit_test_setup_teardown(test_destroy_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retract_nothing_sent, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
