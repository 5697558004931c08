/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the website channel's WordPress mode (channels/website/wordpress.c), included
 * whole: the answers of the REST API classified, the post's HTML (escaping, paragraphs, pictures
 * and files), slugs, the Basic login, finding our own post and a category in a list, the config;
 * and, with a one-request-at-a-time HTTP client, a publish whose create got a 500 (looked up, then
 * updated, never created twice) and a refused password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>

#include "website/wordpress.c"
#include "fake-host.h"

#define PASSWORD "abcd EFGH ijkl MNOP" /* as WordPress shows it */
#define PASSWORD_PLAIN "abcdEFGHijklMNOP"

/* ---- one request in flight at a time ---------------------------------------------------------- */

struct prakat_http_call {
        int unused;
};

static struct {
        struct prakat_http_call handle;
        bool active;
        char method[8];
        char url[512];
        char *body;
        char authorization[256];
        bool own_connection;
        prakat_http_done_fn done;
        void *userdata;
} call;
static unsigned n_requests;

static int one_http_request(const prakat_host *host, const prakat_http_request *req, prakat_http_done_fn done,
                            void *userdata, prakat_http_call **ret_call) {
        assert_false(call.active);
        free(call.body);
        call.body = req->body ? strndup(req->body, req->body_size) : NULL;
        snprintf(call.method, sizeof call.method, "%s", req->method);
        snprintf(call.url, sizeof call.url, "%s", req->url);
        call.authorization[0] = 0;
        call.own_connection = false;
        for (size_t i = 0; i < req->n_headers; i++) {
                if (strcmp(req->headers[i].name, "Authorization") == 0)
                        snprintf(call.authorization, sizeof call.authorization, "%s", req->headers[i].value);
                if (strcmp(req->headers[i].name, "Connection") == 0)
                        call.own_connection = strcmp(req->headers[i].value, "close") == 0;
        }
        call.active = true;
        call.done = done;
        call.userdata = userdata;
        n_requests++;
        *ret_call = &call.handle;
        return 0;
}

static void one_http_cancel(prakat_http_call *c) {
        if (c)
                call.active = false;
}

/* Answers the request in flight, which must be `method` on a URL containing `url_part`. */
static void reply(const char *method, const char *url_part, long status, const char *body) {
        assert_true(call.active);
        assert_string_equal(call.method, method);
        if (!strstr(call.url, url_part))
                fail_msg("expected a request to ...%s, got %s", url_part, call.url);
        call.active = false;
        prakat_http_response r = { .status = status, .body = body, .body_size = strlen(body) };
        call.done(call.userdata, &r);
}

/* ---- fixture ---------------------------------------------------------------------------------- */

typedef struct Fixture {
        char root[64];
        char state[96];
        FakeHost fake;
        WordPress *wp;
        prakat_job job;
} Fixture;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void write_file(const char *path, const char *text, mode_t mode) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        snprintf(f->root, sizeof f->root, "/tmp/prakat-test-wordpress-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        snprintf(f->state, sizeof f->state, "%s/state", f->root);
        assert_int_equal(mkdir(f->state, 0700), 0);
        char path[128];
        snprintf(path, sizeof path, "%s/wp.password", f->root);
        write_file(path, PASSWORD_PLAIN "\n", 0600);
        fake_host_init(&f->fake, f->state);
        f->fake.quiet = true;
        f->fake.host.config_dir = f->root;
        f->fake.host.http_request = one_http_request;
        f->fake.host.http_cancel = one_http_cancel;
        n_requests = 0;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        wordpress_free(f->wp);
        assert_false(call.active);
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
        fake_host_done(&f->fake);
        free(call.body);
        call.body = NULL;
        nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static int configure_with(Fixture *f, const prakat_config_entry *entries, size_t n, char *error, size_t size) {
        unsigned line = 0;
        PluginConfigError err = { .text = error, .size = size, .line = &line };
        return wordpress_configure(&f->fake.host, entries, n, &f->wp, &err);
}

/* Configured; the start-up check answered "ok". */
static void configure(Fixture *f) {
        prakat_config_entry entries[] = {
                { "mode", "wordpress", 3 },
                { "wordpress_url", "http://127.0.0.1:9/", 4 },
                { "wordpress_user", "prakat", 5 },
                { "wordpress_password_file", "wp.password", 6 },
        };
        char error[512] = "";
        assert_int_equal(configure_with(f, entries, 4, error, sizeof error), 0);
        fake_host_run_due(&f->fake);
        reply("GET", "/wp-json/wp/v2/users/me?context=edit", 200, "{\"id\":1,\"name\":\"ผู้ดูแล\"}");
}

static const FakeFinish *finished(Fixture *f) {
        return fake_host_finish_of(&f->fake, &f->job);
}

/* ---- pure functions --------------------------------------------------------------------------- */

static prakat_http_response response(int error, long status, const char *body) {
        return (prakat_http_response) { .error = error, .status = status, .body = body, .body_size = strlen(body) };
}

static void test_classify(void **state) {
        struct {
                prakat_http_response r;
                WpClass klass;
                const char *text;
        } cases[] = {
                { response(0, 201, "{\"id\":5}"), WP_OK, "" },
                { response(0, 200, "[]"), WP_OK, "" },
                { response(0, 200, "<html>"), WP_AMBIGUOUS, "without JSON" },
                { response(-ETIMEDOUT, 0, ""), WP_AMBIGUOUS, "no answer" },
                { response(-ECONNRESET, 0, ""), WP_AMBIGUOUS, "no answer" },
                { response(-ECONNREFUSED, 0, ""), WP_NOT_SENT, "could not be reached" },
                { response(0, 401, "{\"code\":\"incorrect_password\",\"message\":\"<strong>Error:</strong> The "
                                   "password you entered for the username <strong>prakat</strong> is incorrect.\","
                                   "\"data\":{\"status\":401}}"),
                  WP_AUTH, "WordPress error 401 incorrect_password: Error: The password you entered for the username "
                           "prakat is incorrect." },
                { response(0, 403, "{\"code\":\"rest_cannot_create\",\"message\":\"Sorry\",\"data\":{\"status\":403}}"),
                  WP_AUTH, "rest_cannot_create" },
                { response(0, 400, "{\"code\":\"rest_invalid_param\",\"message\":\"Invalid parameter(s): status\","
                                   "\"data\":{\"status\":400}}"),
                  WP_PERMANENT, "WordPress error 400 rest_invalid_param: Invalid parameter(s): status" },
                { response(0, 404, "{\"code\":\"rest_post_invalid_id\",\"message\":\"Invalid post ID.\"}"), WP_MISSING,
                  "rest_post_invalid_id" },
                { response(0, 404, "{\"code\":\"rest_no_route\",\"message\":\"No route\"}"), WP_PERMANENT,
                  "is wordpress_url right" },
                { response(0, 500, "{\"code\":\"internal_server_error\",\"message\":\"<p>critical</p>\"}"), WP_AMBIGUOUS,
                  "WordPress error 500 internal_server_error: critical" },
                { response(0, 502, "<html>Bad Gateway</html>"), WP_AMBIGUOUS, "not WordPress's JSON" },
                { response(0, 404, "<html>Not Found</html>"), WP_PERMANENT, "permalinks other than \"Plain\"" },
                { response(0, 429, "{}"), WP_AMBIGUOUS, "429" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                WpOutcome o;
                wp_classify(&cases[i].r, &o);
                if (o.klass != cases[i].klass || !strstr(o.text, cases[i].text))
                        fail_msg("case %zu: class %d text '%s'", i, o.klass, o.text);
                wp_outcome_done(&o);
        }
        WpOutcome o;
        prakat_http_response exists = response(0, 400, "{\"code\":\"term_exists\",\"message\":\"exists\","
                                                       "\"data\":{\"status\":400,\"term_id\":42}}");
        wp_classify(&exists, &o);
        assert_string_equal(o.code, "term_exists");
        assert_int_equal(wp_json_id(o.data, "term_id"), 42);
        wp_outcome_done(&o);
}

static void test_content(void **state) {
        WpAttachment att[] = {
                { .name = "ภาพ <1>.jpg", .mime = "image/jpeg", .media_id = 11, .url = "https://x.go.th/u/a.jpg?a=1&b=2" },
                { .name = "คำสั่ง.pdf", .mime = "application/pdf", .media_id = 12, .url = "https://x.go.th/u/b.pdf" },
                { .name = "not-yet.pdf", .mime = "application/pdf" },
        };
        char *c = wp_render_content("ID-1", "\n  บรรทัด <หนึ่ง> & \"สอง\"\nต่อ\n\n\n ย่อหน้า\xff สอง \n", att, 3);
        assert_string_equal(c, "<!-- prakat-id: ID-1 -->\n"
                               "<p>บรรทัด &lt;หนึ่ง&gt; &amp; &quot;สอง&quot;<br />\nต่อ</p>\n"
                               "<p>ย่อหน้า\xEF\xBF\xBD สอง</p>\n"
                               "<figure class=\"wp-block-image\"><img src=\"https://x.go.th/u/a.jpg?a=1&amp;b=2\" "
                               "alt=\"ภาพ &lt;1&gt;.jpg\" class=\"wp-image-11\" /></figure>\n"
                               "<p>ไฟล์แนบ / Attachments:</p>\n<ul class=\"prakat-attachments\">\n"
                               "<li><a href=\"https://x.go.th/u/b.pdf\">คำสั่ง.pdf</a></li>\n</ul>\n");
        free(c);
        c = wp_render_notice("ID-1", "1 ธันวาคม 2569", "งบ <ไม่พอ>");
        assert_non_null(strstr(c, "<!-- prakat-id: ID-1 -->"));
        assert_non_null(strstr(c, "ประกาศนี้ถูกยกเลิกแล้ว</strong> เมื่อ 1 ธันวาคม 2569"));
        assert_non_null(strstr(c, "<p>งบ &lt;ไม่พอ&gt;</p>"));
        free(c);
        c = wp_notice_title("A & B");
        assert_string_equal(c, "ยกเลิกแล้ว / Withdrawn: A &amp; B");
        free(c);
}

static void test_slug_base64_query(void **state) {
        char slug[PLUGIN_MAX_ID_LENGTH + 1];
        wp_make_slug("20261126-AB12cd", slug);
        assert_string_equal(slug, "20261126-ab12cd");
        wp_make_slug("a..b_c--d.", slug);
        assert_string_equal(slug, "a-b-c-d");
        char *b = wp_base64((const unsigned char *) "prakat:abc", 10);
        assert_string_equal(b, "cHJha2F0OmFiYw==");
        free(b);
        b = wp_base64((const unsigned char *) "ab", 2);
        assert_string_equal(b, "YWI=");
        free(b);
        PluginBuf q = {};
        wp_put_query_value(&q, "ข่าว & a-b");
        char *s = plugin_buf_steal(&q, NULL);
        assert_string_equal(s, "%E0%B8%82%E0%B9%88%E0%B8%B2%E0%B8%A7%20%26%20a-b");
        free(s);
}

static void test_find_in_lists(void **state) {
        json_t *posts = json_loads("[{\"id\":3,\"slug\":\"x\",\"content\":{\"raw\":\"someone else's\"}},"
                                   "{\"id\":4,\"slug\":\"x-2\",\"content\":{\"raw\":\"<!-- prakat-id: X -->\\n<p>\"}}]",
                                   0, NULL);
        bool foreign;
        json_t *p = wp_find_own_post(posts, "<!-- prakat-id: X -->", "x", &foreign);
        assert_int_equal(wp_json_id(p, "id"), 4);
        p = wp_find_own_post(posts, "<!-- prakat-id: Y -->", "x", &foreign);
        assert_null(p);
        assert_true(foreign);
        json_decref(posts);
        posts = json_loads("[{\"id\":9,\"slug\":\"x\"}]", 0, NULL);
        assert_int_equal(wp_json_id(wp_find_own_post(posts, "<!-- prakat-id: X -->", "x", &foreign), "id"), 9);
        json_decref(posts);

        json_t *cats = json_loads("[{\"id\":5,\"name\":\"ข่าว &amp; กิจกรรม ย่อย\"},{\"id\":6,\"name\":\"ข่าว &amp; กิจกรรม\"}]",
                                  0, NULL);
        assert_int_equal(wp_find_category(cats, "ข่าว & กิจกรรม"), 6);
        assert_int_equal(wp_find_category(cats, "ข่าว"), 0);
        json_decref(cats);
}

/* ---- the config ------------------------------------------------------------------------------- */

static void test_config(void **state) {
        Fixture *f = *state;
        char error[512];
        PluginConfigError err = { .text = error, .size = sizeof error };
        prakat_config_entry bad_mode[] = { { "mode", "ftp", 2 } };
        assert_int_equal(wordpress_mode_requested(bad_mode, 1, &err), -EINVAL);
        prakat_config_entry static_mode[] = { { "output", "/x", 1 }, { "mode", "static", 2 } };
        assert_int_equal(wordpress_mode_requested(static_mode, 2, &err), 0);
        assert_int_equal(wordpress_mode_requested(NULL, 0, &err), 0);

        struct {
                prakat_config_entry e[4];
                size_t n;
                const char *error;
        } cases[] = {
                { { { "mode", "wordpress", 1 }, { "wordpress_user", "u", 2 }, { "wordpress_password_file", "wp.password", 3 } },
                  3, "needs wordpress_url" },
                { { { "wordpress_url", "http://example.go.th", 1 } }, 1, "must use https://" },
                { { { "wordpress_url", "https://example.go.th/?p=1", 1 } }, 1, "without '?'" },
                { { { "wordpress_url", "https://x.go.th", 1 }, { "wordpress_password_file", "wp.password", 3 } }, 2,
                  "needs wordpress_user" },
                { { { "wordpress_url", "https://x.go.th", 1 }, { "wordpress_user", "u", 2 } }, 2,
                  "needs wordpress_password_file" },
                { { { "wordpress_url", "https://x.go.th", 1 }, { "output", "/var/www", 2 } }, 2,
                  "'output' is not used with mode = wordpress" },
                { { { "wordpress_url", "https://x.go.th", 1 }, { "wordpress_user", "u", 2 },
                    { "wordpress_password_file", "missing", 3 } },
                  3, "cannot read" },
                { { { "timeout", "0s", 1 } }, 1, "from 1s to 10m" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                error[0] = 0;
                assert_int_equal(configure_with(f, cases[i].e, cases[i].n, error, sizeof error), -EINVAL);
                if (!strstr(error, cases[i].error))
                        fail_msg("case %zu: '%s'", i, error);
                assert_null(f->wp);
        }

        /* WordPress shows the password in groups with blanks, and ignores them: so does the plugin. */
        char path[128];
        snprintf(path, sizeof path, "%s/wp.password", f->root);
        write_file(path, PASSWORD "\n", 0600);
        prakat_config_entry ok[] = { { "wordpress_url", "https://x.go.th/", 1 }, { "wordpress_user", "u", 2 },
                                     { "wordpress_password_file", "wp.password", 3 } };
        assert_int_equal(configure_with(f, ok, 3, error, sizeof error), 0);
        assert_string_equal(f->wp->password, PASSWORD_PLAIN);
        wordpress_free(f->wp);
        f->wp = NULL;
        write_file(path, PASSWORD_PLAIN "\n", 0640);
        assert_int_equal(configure_with(f, ok, 3, error, sizeof error), -EINVAL);
        assert_non_null(strstr(error, "chmod 600"));
        chmod(path, 0600);
        assert_int_equal(configure_with(f, ok, 3, error, sizeof error), 0);
        assert_string_equal(f->wp->api, "https://x.go.th/wp-json/wp/v2");
        wordpress_free(f->wp);
        f->wp = NULL;

        /* A systemd credential: read from $CREDENTIALS_DIRECTORY, whatever the file's mode. */
        prakat_config_entry cred[] = { { "wordpress_url", "https://x.go.th", 1 }, { "wordpress_user", "u", 2 },
                                       { "wordpress_password_credential", "wp.password", 3 } };
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", f->root, 1), 0);
        chmod(path, 0640);
        assert_int_equal(configure_with(f, cred, 3, error, sizeof error), 0);
        unsetenv("CREDENTIALS_DIRECTORY");
        assert_string_equal(f->wp->password, PASSWORD_PLAIN);
        prakat_config_entry both[] = { { "wordpress_password_file", "a", 1 }, { "wordpress_password_credential", "b", 2 } };
        WordPress *kept = f->wp;
        f->wp = NULL;
        assert_int_equal(configure_with(f, both, 2, error, sizeof error), -EINVAL);
        assert_non_null(strstr(error, "set only one of wordpress_password_file and wordpress_password_credential"));
        f->wp = kept;
        char *expected = wp_base64((const unsigned char *) "u:" PASSWORD_PLAIN, strlen("u:" PASSWORD_PLAIN));
        assert_non_null(strstr(f->wp->authorization, expected) ? expected : NULL);
        free(expected);
}

/* ---- flows ------------------------------------------------------------------------------------ */

static prakat_announcement announcement(const char *id) {
        return (prakat_announcement) { .id = id, .title = "งด <น้ำ>", .body = "ข้อความ", .category = "ข่าว" };
}

static void test_publish_500_after_create(void **state) {
        Fixture *f = *state;
        configure(f);
        prakat_announcement a = announcement("W-1");
        assert_int_equal(wordpress_publish(f->wp, &f->job, &a), 0);
        reply("GET", "/posts?slug=w-1&status=any&context=edit", 200, "[]");
        reply("GET", "/categories?search=%E0%B8%82", 200, "[]");
        reply("POST", "/categories", 201, "{\"id\":7,\"name\":\"ข่าว\"}");
        assert_true(call.own_connection);
        assert_true(strncmp(call.authorization, "Basic ", 6) == 0);
        json_t *body = json_loads(call.body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(body, "slug")), "w-1");
        assert_string_equal(json_string_value(json_object_get(body, "status")), "publish");
        assert_string_equal(json_string_value(json_object_get(body, "title")), "งด &lt;น้ำ&gt;");
        assert_int_equal(json_integer_value(json_array_get(json_object_get(body, "categories"), 0)), 7);
        assert_true(call.own_connection);
        json_decref(body);
        reply("POST", "/wp-json/wp/v2/posts", 500, "{\"code\":\"internal_server_error\",\"message\":\"x\"}");
        assert_null(finished(f));
        fake_host_advance(&f->fake, WP_RECONCILE_DELAY);
        reply("GET", "/posts?slug=w-1", 200,
              "[{\"id\":33,\"slug\":\"w-1\",\"link\":\"https://x.go.th/w-1/\",\"content\":{\"raw\":\"<!-- prakat-id: W-1 "
              "-->\"}}]");
        reply("POST", "/wp-json/wp/v2/posts/33", 200, "{\"id\":33,\"link\":\"https://x.go.th/w-1/\"}");
        assert_false(call.own_connection);
        const FakeFinish *fin = finished(f);
        assert_non_null(fin);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_DONE);
        assert_string_equal(fin->link, "https://x.go.th/w-1/");
        assert_string_equal(fin->remote_id, "33");

        /* The job's end lost: published again, it is done at once from the record. */
        prakat_job again = {};
        unsigned before = n_requests;
        assert_int_equal(wordpress_publish(f->wp, &again, &a), 0);
        assert_int_equal(n_requests, before);
        assert_int_equal(fake_host_finish_of(&f->fake, &again)->outcome, PRAKAT_OUTCOME_DONE);
        /* The category is known now: no lookup for the next one. */
        prakat_job third = {};
        prakat_announcement b = announcement("W-2");
        assert_int_equal(wordpress_publish(f->wp, &third, &b), 0);
        reply("GET", "/posts?slug=w-2", 200, "[]");
        reply("POST", "/wp-json/wp/v2/posts", 201, "{\"id\":34,\"link\":\"https://x.go.th/w-2/\"}");
        assert_int_equal(fake_host_finish_of(&f->fake, &third)->outcome, PRAKAT_OUTCOME_DONE);
}

/* The preview: the title and content as the create sends them, slug, category, media; no request. */
static void test_preview(void **state) {
        Fixture *f = *state;
        configure(f);
        char picture[128], page[128], *text = NULL;
        snprintf(picture, sizeof picture, "%s/ภาพ.jpg", f->root);
        snprintf(page, sizeof page, "%s/pv.html", f->root);
        write_file(picture, "jpeg", 0644);
        prakat_attachment att = { .name = "ภาพ.jpg", .path = picture, .mime = "image/jpeg", .size = 4 };
        prakat_announcement a = announcement("W-3");
        a.attachments = &att;
        a.n_attachments = 1;
        unsigned before = n_requests;
        assert_int_equal(wordpress_preview(f->wp, &a, page, &text), 0);
        assert_int_equal(n_requests, before);
        assert_false(call.active);
        assert_non_null(strstr(text, "หัวข้อ / title: งด &lt;น้ำ&gt;\nslug: w-3\nหมวด / category: ข่าว\n"));
        assert_non_null(strstr(text, "สื่อ / media 1: ภาพ.jpg (image/jpeg) w-3-1.jpg\n"));
        char *content = wp_render_content("W-3", a.body, NULL, 0);
        assert_non_null(strstr(text, content));
        char *shown = NULL;
        assert_int_equal(plugin_read_small_file(page, 1 << 20, &shown, NULL), 0);
        assert_non_null(strstr(shown, "<h1>งด &lt;น้ำ&gt;</h1>"));
        char record[256];
        assert_int_equal(wp_record_path(f->wp, "W-3", record, sizeof record), 0);
        assert_int_equal(access(record, F_OK), -1); /* nothing recorded */
        free(shown);
        free(content);
        free(text);
}

static void test_refused_password(void **state) {
        Fixture *f = *state;
        configure(f);
        prakat_announcement a = announcement("W-3");
        assert_int_equal(wordpress_publish(f->wp, &f->job, &a), 0);
        reply("GET", "/posts?slug=w-3", 401, "{\"code\":\"incorrect_password\",\"message\":\"wrong\"}");
        const FakeFinish *fin = finished(f);
        assert_int_equal(fin->outcome, PRAKAT_OUTCOME_RETRY);
        assert_non_null(strstr(fin->message, "WordPress refused the login of user prakat"));
        assert_non_null(strstr(fin->message, "wp.password"));
        assert_null(strstr(fin->message, PASSWORD_PLAIN));
        char health[1024];
        assert_int_equal(wordpress_health(f->wp, health, sizeof health), -EIO);
        assert_non_null(strstr(health, "Application Passwords"));

        /* Same password in the file: the next job is held without a request. */
        prakat_job second = {};
        unsigned before = n_requests;
        assert_int_equal(wordpress_publish(f->wp, &second, &a), 0);
        assert_int_equal(n_requests, before);
        assert_int_equal(fake_host_finish_of(&f->fake, &second)->outcome, PRAKAT_OUTCOME_RETRY);

        /* A new password: the check takes it and the channel is healthy again. */
        char path[128];
        snprintf(path, sizeof path, "%s/wp.password", f->root);
        write_file(path, "NewPassword1234\n", 0600);
        fake_host_advance(&f->fake, WP_UNHEALTHY_RECHECK);
        reply("GET", "/users/me", 200, "{\"id\":1,\"name\":\"ผู้ดูแล\"}");
        assert_int_equal(wordpress_health(f->wp, health, sizeof health), 0);
        assert_non_null(strstr(health, "ok: WordPress"));
}

static void test_retract_notice(void **state) {
        Fixture *f = *state;
        configure(f);
        prakat_announcement a = announcement("W-4");
        f->job.remote_id = "40";
        assert_int_equal(wordpress_retract(f->wp, &f->job, &a, "เหตุผล"), 0);
        json_t *body = json_loads(call.body, 0, NULL);
        assert_non_null(strstr(json_string_value(json_object_get(body, "content")), "ประกาศนี้ถูกยกเลิกแล้ว"));
        assert_int_equal(json_integer_value(json_object_get(body, "featured_media")), 0);
        json_decref(body);
        reply("POST", "/wp-json/wp/v2/posts/40", 200, "{\"id\":40,\"link\":\"https://x.go.th/w-4/\"}");
        assert_int_equal(finished(f)->outcome, PRAKAT_OUTCOME_DONE);
        assert_string_equal(finished(f)->link, "https://x.go.th/w-4/");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_content),
                cmocka_unit_test(test_slug_base64_query),
                cmocka_unit_test(test_find_in_lists),
                cmocka_unit_test_setup_teardown(test_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_publish_500_after_create, setup, teardown),
                cmocka_unit_test_setup_teardown(test_preview, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_password, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retract_notice, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
