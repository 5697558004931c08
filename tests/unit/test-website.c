/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the website channel plugin.  The plugin's source is included whole so that
 * the tests can look at its instance (and switch fsync off while building big archives);
 * everything else goes through the plugin struct, as the core would use it, with a fake host
 * whose clock and timers the tests drive by hand.
 *
 * PRAKAT_WEBSITE_BENCH_ITEMS=N sets the size of the large archive in the scale test
 * (default 2000, which takes a few seconds on a slow disk; 10000 is the size the design
 * talks about); 0 skips it.  TMPDIR=/dev/shm takes the disk out of the timings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <malloc.h>
#include <sys/wait.h>
#include <time.h>

#include "website/website.c"
#include "website/upload.c"
#include "website/wordpress.c"
#include "fake-host.h"

#define SEC 1000000ULL
#define BASE_URL "https://bokaeo.go.th/news"
#define T0 (1795564800ULL * SEC) /* 2026-11-25T00:00:00Z, the fake host's start */

static const prakat_channel_plugin *const plugin = &website_plugin;

typedef struct Fixture {
        char root[64];
        char out[128];
        char state[128];
        FakeHost fake;
        void *instance;
        prakat_job **jobs;
        size_t n_jobs;
} Fixture;

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        char *s = NULL;
        assert_true(vasprintf(&s, format, ap) >= 0);
        va_end(ap);
        return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void remove_tree(const char *path) {
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The content of output/REL, or NULL when it does not exist. */
static char *read_out(Fixture *f, const char *rel) {
        _cleanup_free_ char *path = xasprintf("%s/%s", f->out, rel);
        char *data = NULL;
        if (read_file(path, 1 << 26, &data, NULL) < 0)
                return NULL;
        return data;
}

static bool out_exists(Fixture *f, const char *rel) {
        _cleanup_free_ char *path = xasprintf("%s/%s", f->out, rel);
        return access(path, F_OK) == 0;
}

static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;
        for (const char *p = haystack; p && (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void assert_out_contains(Fixture *f, const char *rel, const char *needle) {
        _cleanup_free_ char *data = read_out(f, rel);
        if (!data || !strstr(data, needle)) {
                fprintf(stderr, "%s does not contain \"%s\"\n", rel, needle);
                fail();
        }
}

static void assert_out_lacks(Fixture *f, const char *rel, const char *needle) {
        _cleanup_free_ char *data = read_out(f, rel);
        assert_non_null(data);
        if (strstr(data, needle)) {
                fprintf(stderr, "%s contains \"%s\"\n", rel, needle);
                fail();
        }
}

static void write_text(const char *path, const char *text) {
        FILE *file = fopen(path, "w");
        assert_non_null(file);
        fputs(text, file);
        fclose(file);
}

static int configure_with(Fixture *f, const prakat_config_entry *entries, size_t n, char *error, size_t size,
                          unsigned *line) {
        return plugin->configure(&f->fake.host, entries, n, &f->instance, error, size, line);
}

/* The usual configuration; per_page may be NULL for the default. */
static void configure(Fixture *f, const char *per_page) {
        prakat_config_entry entries[] = {
                {"output", f->out, 3},
                {"base_url", BASE_URL "/", 4},
                {"office_name", "องค์การบริหารส่วนตำบลบ่อแก้ว", 5},
                {"per_page", per_page ? per_page : "20", 6},
        };
        char error[256] = "";
        unsigned line = 0;
        int r = configure_with(f, entries, 4, error, sizeof(error), &line);
        if (r < 0)
                fprintf(stderr, "configure: line %u: %s\n", line, error);
        assert_int_equal(r, 0);
        assert_non_null(f->instance);
}

static void destroy(Fixture *f) {
        plugin->destroy(f->instance);
        f->instance = NULL;
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
}

static prakat_job *new_job(Fixture *f) {
        prakat_job **p = realloc(f->jobs, (f->n_jobs + 1) * sizeof(prakat_job *));
        assert_non_null(p);
        f->jobs = p;
        prakat_job *job = calloc(1, sizeof(prakat_job));
        assert_non_null(job);
        job->channel = "website";
        job->attempt = 1;
        f->jobs[f->n_jobs++] = job;
        return job;
}

static prakat_announcement announcement(const char *id, const char *title, const char *body, const char *category,
                                        prakat_usec_t publish_at) {
        return (prakat_announcement) {
                .id = id,
                .title = title,
                .body = body,
                .category = category,
                .received = publish_at,
                .publish_at = publish_at,
                .all_villages = true,
                .repeat = 1,
        };
}

static prakat_job *publish(Fixture *f, const prakat_announcement *a) {
        prakat_job *job = new_job(f);
        assert_int_equal(plugin->publish(f->instance, job, a), 0);
        return job;
}

static prakat_job *retract(Fixture *f, const prakat_announcement *target, const char *reason) {
        prakat_job *job = new_job(f);
        assert_int_equal(plugin->retract(f->instance, job, target, reason), 0);
        return job;
}

static const FakeFinish *finished(Fixture *f, prakat_job *job) {
        return fake_host_finish_of(&f->fake, job);
}

static void assert_done(Fixture *f, prakat_job *job) {
        const FakeFinish *r = finished(f, job);
        assert_non_null(r);
        if (r->outcome != PRAKAT_OUTCOME_DONE)
                fprintf(stderr, "outcome %d: %s\n", r->outcome, r->message ? r->message : "");
        assert_int_equal(r->outcome, PRAKAT_OUTCOME_DONE);
}

/* Publishes n simple items "PREFIX-001".. one minute apart in `category`, then flushes. */
static void publish_many(Fixture *f, const char *prefix, size_t first, size_t n, const char *category) {
        for (size_t i = first; i < first + n; i++) {
                _cleanup_free_ char *id = xasprintf("%s-%05zu", prefix, i);
                _cleanup_free_ char *title = xasprintf("ประกาศที่ %zu", i);
                prakat_announcement a = announcement(id, title, "เนื้อหาประกาศ\nบรรทัดที่สอง", category,
                                                     T0 + i * 60 * SEC);
                publish(f, &a);
        }
        fake_host_run_due(&f->fake);
}

/* ---- a snapshot of output: which files a publish really rewrote ------------------------------- */

typedef struct FileStamp {
        char *rel;
        ino_t inode;
        struct timespec mtime;
} FileStamp;

typedef struct Snapshot {
        FileStamp *files;
        size_t n;
} Snapshot;

static Snapshot *snapshot_target;
static size_t snapshot_prefix;

static int snapshot_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag != FTW_F)
                return 0;
        Snapshot *s = snapshot_target;
        s->files = realloc(s->files, (s->n + 1) * sizeof(FileStamp));
        s->files[s->n++] = (FileStamp) {strdup(path + snapshot_prefix), st->st_ino, st->st_mtim};
        return 0;
}

static Snapshot snapshot_take(Fixture *f) {
        Snapshot s = {};
        snapshot_target = &s;
        snapshot_prefix = strlen(f->out) + 1;
        nftw(f->out, snapshot_entry, 16, FTW_PHYS);
        return s;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void snapshot_free(Snapshot *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->files[i].rel);
        free(s->files);
}

/* Sorted, comma-separated names of files that are new or were replaced since `before`. */
static char *snapshot_changes(Fixture *f, const Snapshot *before) {
        Snapshot after = snapshot_take(f);
        char **changed = calloc(after.n + 1, sizeof(char *));
        size_t n = 0;
        for (size_t i = 0; i < after.n; i++) {
                const FileStamp *a = &after.files[i], *b = NULL;
                for (size_t j = 0; j < before->n && !b; j++)
                        if (strcmp(before->files[j].rel, a->rel) == 0)
                                b = &before->files[j];
                bool same = b && b->inode == a->inode && b->mtime.tv_sec == a->mtime.tv_sec &&
                            b->mtime.tv_nsec == a->mtime.tv_nsec;
                if (!same)
                        changed[n++] = a->rel;
        }
        qsort(changed, n, sizeof(char *), compare_names);
        PluginBuf b = {};
        for (size_t i = 0; i < n; i++)
                plugin_buf_printf(&b, "%s%s", i ? "," : "", changed[i]);
        plugin_buf_puts(&b, "");
        free(changed);
        snapshot_free(&after);
        return b.data;
}

/* ---- setup ------------------------------------------------------------------------------------- */

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        if (!f)
                return -1;
        const char *tmp = getenv("TMPDIR");
        snprintf(f->root, sizeof(f->root), "%s/test-website-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(f->root))
                return -1;
        snprintf(f->out, sizeof(f->out), "%s/www/news", f->root); /* created by configure() */
        snprintf(f->state, sizeof(f->state), "%s/state", f->root);
        if (mkdir(f->state, 0700) < 0)
                return -1;
        fake_host_init(&f->fake, f->state);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        if (f->instance)
                plugin->destroy(f->instance);
        fake_host_done(&f->fake);
        for (size_t i = 0; i < f->n_jobs; i++)
                free(f->jobs[i]);
        free(f->jobs);
        remove_tree(f->root);
        free(f);
        return 0;
}

/* ---- configuration ------------------------------------------------------------------------------ */

static void test_config_errors(void **state) {
        Fixture *f = *state;
        char error[256];
        unsigned line;

        prakat_config_entry unknown[] = {{"output", f->out, 3}, {"base_url", BASE_URL, 4}, {"outptu", "x", 7}};
        line = 99;
        assert_int_equal(configure_with(f, unknown, 3, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 7);
        assert_non_null(strstr(error, "unknown key 'outptu'"));
        assert_non_null(strstr(error, "known keys: output, base_url"));
        assert_null(f->instance);

        prakat_config_entry missing[] = {{"base_url", BASE_URL, 4}};
        line = 99;
        assert_int_equal(configure_with(f, missing, 1, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 0);
        assert_non_null(strstr(error, "'output'"));

        prakat_config_entry no_url[] = {{"output", f->out, 3}};
        assert_int_equal(configure_with(f, no_url, 1, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 0);
        assert_non_null(strstr(error, "'base_url'"));

        prakat_config_entry bad_page[] = {{"output", f->out, 3}, {"base_url", BASE_URL, 4}, {"per_page", "3", 9}};
        assert_int_equal(configure_with(f, bad_page, 3, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 9);
        assert_non_null(strstr(error, "5 to 100"));

        prakat_config_entry bad_feed[] = {{"output", f->out, 3}, {"base_url", BASE_URL, 4}, {"feed_items", "x", 5}};
        assert_int_equal(configure_with(f, bad_feed, 3, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 5);
        assert_non_null(strstr(error, "1 to 500"));

        prakat_config_entry upload[] = {{"output", f->out, 3}, {"base_url", BASE_URL, 4}, {"upload", "sftp://x@y/z", 8}};
        assert_int_equal(configure_with(f, upload, 3, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 8);
        assert_non_null(strstr(error, "sftp:// needs upload_key_file"));

        prakat_config_entry wordpress[] = {{"wordpress_url", "https://x", 2}};
        assert_int_equal(configure_with(f, wordpress, 1, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 2);
        assert_non_null(strstr(error, "needs mode = wordpress"));

        prakat_config_entry bad_mode[] = {{"output", f->out, 3}, {"mode", "joomla", 6}};
        assert_int_equal(configure_with(f, bad_mode, 2, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 6);
        assert_non_null(strstr(error, "static or wordpress"));

        prakat_config_entry ftp[] = {{"output", f->out, 3}, {"base_url", "ftp://bokaeo.go.th", 4}};
        assert_int_equal(configure_with(f, ftp, 2, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 4);
        assert_non_null(strstr(error, "http://"));

        /* A relative output needs the config file's folder to be relative to. */
        prakat_config_entry relative[] = {{"output", "www/news", 3}, {"base_url", BASE_URL, 4}};
        assert_int_equal(configure_with(f, relative, 2, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 3);
        assert_non_null(strstr(error, "absolute"));
        _cleanup_free_ char *conf_dir = xasprintf("%s/conf", f->root);
        assert_int_equal(mkdir(conf_dir, 0755), 0);
        f->fake.host.config_dir = conf_dir;
        prakat_config_entry from_conf[] = {{"output", "../www/relative", 3}, {"base_url", BASE_URL, 4}};
        assert_int_equal(configure_with(f, from_conf, 2, error, sizeof(error), &line), 0);
        _cleanup_free_ char *expected_output = xasprintf("%s/www/relative", f->root);
        assert_string_equal(((Website *) f->instance)->output, expected_output);
        _cleanup_free_ char *css = xasprintf("%s/style.css", expected_output);
        assert_int_equal(access(css, F_OK), 0);
        destroy(f);
        f->fake.host.config_dir = NULL;

        prakat_config_entry twice[] = {{"output", f->out, 3}, {"base_url", BASE_URL, 4}, {"output", f->out, 6}};
        assert_int_equal(configure_with(f, twice, 3, error, sizeof(error), &line), -EINVAL);
        assert_int_equal(line, 6);
        assert_non_null(strstr(error, "first on line 3"));

        /* Nothing was created by the failed attempts; a good section creates output. */
        assert_false(out_exists(f, "index.html"));
        configure(f, NULL);
        assert_true(out_exists(f, "style.css"));
        assert_out_contains(f, "style.css", "\"Sarabun\",\"Noto Sans Thai\",\"Leelawadee UI\",\"Tahoma\",sans-serif");
        assert_out_contains(f, "style.css", "line-height:1.7");
        assert_out_contains(f, "style.css", "max-width:42rem");
        Website *w = f->instance;
        assert_int_equal(w->per_page, 20);
        assert_int_equal(w->feed_items, 50);
        assert_string_equal(w->base_url, BASE_URL);
        assert_string_equal(w->site_title, "ข่าวประชาสัมพันธ์");

        /* An empty site gets its front page at once. */
        fake_host_run_due(&f->fake);
        assert_out_contains(f, "index.html", "ยังไม่มีประกาศ");
        assert_true(out_exists(f, "feed.atom"));
}

static void test_health(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        char buffer[256];
        assert_int_equal(plugin->health(f->instance, buffer, sizeof(buffer)), 0);
        assert_string_equal(buffer, "ok");

        _cleanup_free_ char *moved = xasprintf("%s.moved", f->out);
        assert_int_equal(rename(f->out, moved), 0);
        write_text(f->out, "not a directory");
        assert_int_equal(plugin->health(f->instance, buffer, sizeof(buffer)), -EIO);
        assert_non_null(strstr(buffer, "not writable"));
        unlink(f->out);
        assert_int_equal(rename(moved, f->out), 0);
        assert_int_equal(plugin->health(f->instance, buffer, sizeof(buffer)), 0);
}

/* ---- publishing --------------------------------------------------------------------------------- */

static void test_publish_one(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        fake_host_run_due(&f->fake);

        prakat_announcement a = announcement("20261126-a1b2", "ประชุมประชาคมหมู่บ้าน & แผนพัฒนา",
                                             "ขอเชิญประชาชนร่วมประชุม\nณ ศาลาประชาคม\n\nวันที่ 26 พฤศจิกายน 2569",
                                             "news", T0 + 3600 * SEC);
        a.author = "งานประชาสัมพันธ์";
        prakat_job *job = publish(f, &a);

        /* The article is there at once; the job waits for the shared pages. */
        assert_null(finished(f, job));
        assert_true(out_exists(f, "a/20261126-a1b2.html"));
        assert_int_equal(fake_host_run_due(&f->fake), 1);
        assert_done(f, job);
        const FakeFinish *r = finished(f, job);
        assert_string_equal(r->link, BASE_URL "/a/20261126-a1b2.html");
        assert_string_equal(r->remote_id, "20261126-a1b2");

        const char *escaped = "ประชุมประชาคมหมู่บ้าน &amp; แผนพัฒนา";
        const char *page = "a/20261126-a1b2.html";
        assert_out_contains(f, page, "<html lang=\"th\">");
        assert_out_contains(f, page, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        assert_out_contains(f, page, "<link rel=\"canonical\" href=\"" BASE_URL "/a/20261126-a1b2.html\">");
        assert_out_contains(f, page, "<meta property=\"og:title\" content=\"ประชุมประชาคมหมู่บ้าน &amp; แผนพัฒนา\">");
        assert_out_contains(f, page, "<meta property=\"og:description\" content=\"ขอเชิญประชาชนร่วมประชุม ณ ศาลาประชาคม วันที่ 26");
        assert_out_contains(f, page, "<meta property=\"og:url\" content=\"" BASE_URL "/a/20261126-a1b2.html\">");
        assert_out_contains(f, page, "<meta property=\"og:type\" content=\"article\">");
        assert_out_contains(f, page, "<meta property=\"og:site_name\" content=\"องค์การบริหารส่วนตำบลบ่อแก้ว\">");
        assert_out_contains(f, page, "<meta property=\"og:locale\" content=\"th_TH\">");
        assert_out_contains(f, page, "<time datetime=\"2026-11-25T08:00:00+07:00\">25 พฤศจิกายน 2569 เวลา 08:00 น.</time>");
        assert_out_contains(f, page, "<p>ขอเชิญประชาชนร่วมประชุม<br>\nณ ศาลาประชาคม</p>\n<p>วันที่ 26 พฤศจิกายน 2569</p>");
        assert_out_contains(f, page, "<span class=\"author\">งานประชาสัมพันธ์</span>");
        assert_out_contains(f, page, "href=\"../category/news/index.html\">news</a>");
        assert_out_contains(f, page, "href=\"../index.html\"");
        assert_out_lacks(f, page, "og:image");

        assert_out_contains(f, "index.html", escaped);
        assert_out_contains(f, "index.html", "href=\"a/20261126-a1b2.html\"");
        assert_out_contains(f, "page/1.html", "href=\"../a/20261126-a1b2.html\"");
        assert_out_contains(f, "category/news/index.html", "href=\"../../a/20261126-a1b2.html\"");
        assert_out_contains(f, "category/news/page/1.html", escaped);
        assert_out_contains(f, "feed.atom", escaped);
        assert_out_contains(f, "feed.atom", "<id>" BASE_URL "/a/20261126-a1b2.html</id>");
        assert_out_contains(f, "feed.atom", "<name>งานประชาสัมพันธ์</name>");
        assert_out_contains(f, "feed.atom", "<category term=\"news\"/>");
        assert_out_contains(f, "feed.atom", "<published>2026-11-25T01:00:00Z</published>");
        assert_out_contains(f, "sitemap.xml", "<loc>" BASE_URL "/sitemap-1.xml</loc>");
        assert_out_contains(f, "sitemap-1.xml", "<loc>" BASE_URL "/a/20261126-a1b2.html</loc>");
        assert_out_contains(f, "sitemap-1.xml", "<loc>" BASE_URL "/</loc>");
}

static const char *all_output_files[] = {
        "a/x1.html", "index.html", "page/1.html", "category/news/index.html", "category/news/page/1.html",
        "feed.atom", "sitemap.xml", "sitemap-1.xml",
};

static void test_script_escaped(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("x1", "<script>alert(1)</script>",
                                             "<img src=x onerror=alert(2)> \"quoted\" 'single'\n<script>alert(3)</script>",
                                             "news", T0);
        a.author = "<script>alert(4)</script>";
        prakat_attachment att = {.name = "<script>alert(5)</script>.pdf", .mime = "application/pdf", .size = 5};
        _cleanup_free_ char *src = xasprintf("%s/src.pdf", f->root);
        write_text(src, "%PDF");
        att.path = src;
        a.attachments = &att;
        a.n_attachments = 1;
        prakat_job *job = publish(f, &a);
        fake_host_run_due(&f->fake);
        assert_done(f, job);

        for (size_t i = 0; i < sizeof(all_output_files) / sizeof(all_output_files[0]); i++)
                assert_true(out_exists(f, all_output_files[i]));
        /* Every file of the site, whatever it is. */
        Snapshot all = snapshot_take(f);
        assert_true(all.n >= 10);
        for (size_t i = 0; i < all.n; i++) {
                _cleanup_free_ char *data = read_out(f, all.files[i].rel);
                assert_non_null(data);
                if (strstr(data, "<script>alert") || strstr(data, "<img src=x") || strstr(data, "'single'"))
                        fail_msg("%s holds unescaped user text", all.files[i].rel);
        }
        snapshot_free(&all);
        assert_out_contains(f, "a/x1.html", "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_out_contains(f, "a/x1.html", "content=\"&lt;script&gt;alert(1)&lt;/script&gt;\"");
        assert_out_contains(f, "a/x1.html", "&quot;quoted&quot; &#39;single&#39;");
        assert_out_contains(f, "a/x1.html", ">&lt;script&gt;alert(5)&lt;/script&gt;.pdf</a>");
        assert_out_contains(f, "index.html", "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_out_contains(f, "feed.atom", "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>");
        assert_true(out_exists(f, "files/x1/1-script.pdf")); /* the name ends after the last "/" */
}

static void test_thai_category(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        const char *category = "ข่าวกิจกรรม";
        char slug[80];
        category_make_slug(category, slug);
        assert_int_equal(strlen(slug), 10);
        assert_memory_equal(slug, "c-", 2);
        char expected[16];
        snprintf(expected, sizeof(expected), "c-%08" PRIx32, fnv1a32(category));
        assert_string_equal(slug, expected);
        category_make_slug("Tax-2569", slug);
        assert_string_equal(slug, "tax-2569");
        category_make_slug("ภาษี 2569", slug);
        assert_memory_equal(slug, "c-", 2);

        prakat_announcement a = announcement("t1", "รับสมัครผู้สูงอายุ ๑๒๓", "เบี้ยยังชีพผู้สูงอายุ ๒๕๖๙", category, T0);
        publish(f, &a);
        fake_host_run_due(&f->fake);
        _cleanup_free_ char *index = xasprintf("category/%s/index.html", expected);
        assert_out_contains(f, index, "ข่าวกิจกรรม");
        assert_out_contains(f, index, "รับสมัครผู้สูงอายุ ๑๒๓");
        assert_out_contains(f, "a/t1.html", "เบี้ยยังชีพผู้สูงอายุ ๒๕๖๙");
        assert_out_contains(f, "feed.atom", "<category term=\"ข่าวกิจกรรม\"/>");
}

static void test_summary_and_names(void **state) {
        /* A summary never ends just before a Thai vowel or tone mark. */
        _cleanup_free_ char *s = make_summary("กี่", 1);
        assert_string_equal(s, "กี่");
        _cleanup_free_ char *t = make_summary("  หนึ่ง\n\nสอง  สาม ", 200);
        assert_string_equal(t, "หนึ่ง สอง สาม");
        _cleanup_free_ char *u = make_summary("abcdef", 3);
        assert_string_equal(u, "abc…");

        struct {
                const char *name, *safe;
        } cases[] = {
                {"../../etc/passwd", "1-passwd"},
                {"รูป ประชุม.JPG", "1-file.jpg"},
                {".htaccess", "1-htaccess"},
                {"..", "1-file"},
                {"report 2569.PDF", "1-report2569.pdf"},
                {"C:\\Users\\a\\scan.png", "1-scan.png"},
                {"evil.html", "1-evil-html.txt"},
                {"logo.SVG", "1-logo-svg.txt"},
                {"a..b...tar.gz", "1-a..b...tar.gz"},
                {"", "1-file"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *safe = attachment_safe_name(1, cases[i].name);
                assert_string_equal(safe, cases[i].safe);
        }
}

/* Damaged state files are refused cleanly, never half-read (run under ASan/valgrind to mean much). */
static void test_state_parse_robust(void **state) {
        ItemRecord rec = {
                .id = "p1", .state = ITEM_LISTED, .published = 5, .updated = 6, .expires = 7, .priority = 1,
                .category = "ข่าว", .title = "line one\nline \\two\r", .summary = "s", .image = "files/p1/1-a.jpg",
                .reason = "x",
        };
        PluginBuf b = {};
        item_record_format(&rec, &b);
        ItemRecord back = {};
        assert_int_equal(item_record_parse(b.data, b.size, &back), 0);
        assert_string_equal(back.title, rec.title);
        assert_string_equal(back.category, "ข่าว");
        assert_int_equal(back.published, 5);
        assert_int_equal(back.priority, 1);
        item_record_done(&back);

        srand(1);
        for (unsigned round = 0; round < 20000; round++) {
                _cleanup_free_ char *copy = malloc(b.size + 1);
                memcpy(copy, b.data, b.size + 1);
                size_t size = b.size;
                for (unsigned k = 0; k < 1 + (unsigned) rand() % 4; k++) {
                        size_t at = (size_t) rand() % size;
                        switch (rand() % 3) {
                        case 0: copy[at] = (char) (rand() % 256); break;
                        case 1: copy[at] = '\n'; break;
                        default: size = at; copy[size] = 0; break; /* truncated */
                        }
                        if (size == 0)
                                break;
                }
                ItemRecord r = {};
                if (item_record_parse(copy, size, &r) == 0) {
                        assert_non_null(r.id);
                        assert_true(plugin_id_is_safe(r.id));
                        assert_non_null(r.title);
                        item_record_done(&r);
                }
        }
        plugin_buf_free(&b);
}

static void test_attachments(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        const char *names[] = {"../../etc/passwd", "รูป ประชุม.JPG", "แบบฟอร์ม.pdf", "evil.html"};
        prakat_attachment att[4];
        char *paths[4];
        for (size_t i = 0; i < 4; i++) {
                paths[i] = xasprintf("%s/src%zu", f->root, i);
                _cleanup_free_ char *content = xasprintf("content of attachment %zu", i);
                write_text(paths[i], content);
                att[i] = (prakat_attachment) {.name = names[i], .path = paths[i], .mime = "application/octet-stream",
                                              .size = strlen(content)};
        }
        att[1].mime = "image/jpeg";
        att[2].size = 150 * 1024;
        prakat_announcement a = announcement("att1", "แนบไฟล์", "ดูไฟล์แนบ", "news", T0);
        a.attachments = att;
        a.n_attachments = 4;
        prakat_job *job = publish(f, &a);
        fake_host_run_due(&f->fake);
        assert_done(f, job);

        const FakeFinish *r = finished(f, job);
        assert_int_equal(r->n_attachment_urls, 4);
        assert_string_equal(r->attachment_urls[0], BASE_URL "/files/att1/1-passwd");
        assert_string_equal(r->attachment_urls[1], BASE_URL "/files/att1/2-file.jpg");
        assert_string_equal(r->attachment_urls[2], BASE_URL "/files/att1/3-file.pdf");
        assert_string_equal(r->attachment_urls[3], BASE_URL "/files/att1/4-evil-html.txt");
        _cleanup_free_ char *copy = read_out(f, "files/att1/2-file.jpg");
        assert_string_equal(copy, "content of attachment 1");
        assert_false(out_exists(f, "etc"));

        assert_out_contains(f, "a/att1.html",
                            "<img loading=\"lazy\" src=\"../files/att1/2-file.jpg\" alt=\"รูป ประชุม.JPG\">");
        assert_out_contains(f, "a/att1.html", "<meta property=\"og:image\" content=\"" BASE_URL "/files/att1/2-file.jpg\">");
        assert_out_contains(f, "a/att1.html", "<a href=\"../files/att1/3-file.pdf\" download>แบบฟอร์ม.pdf</a> <span class=\"size\">(150.0 KB)</span>");
        assert_out_contains(f, "a/att1.html", "../files/att1/1-passwd");

        /* A retry with fewer attachments leaves no stale file behind. */
        a.n_attachments = 2;
        job = publish(f, &a);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_true(out_exists(f, "files/att1/2-file.jpg"));
        assert_false(out_exists(f, "files/att1/3-file.pdf"));
        for (size_t i = 0; i < 4; i++)
                free(paths[i]);
}

/*
 * The preview renders the page publish() then writes (with a <base> at the public site), names the
 * URLs the other channels will link to, and changes nothing: no file, no category, no timer.
 */
static void test_preview(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        fake_host_run_due(&f->fake);
        _cleanup_free_ char *picture = xasprintf("%s/photo.jpg", f->root), *page = xasprintf("%s/pv.html", f->root);
        write_text(picture, "not really a JPEG");
        prakat_attachment att = {.name = "photo.jpg", .path = picture, .mime = "image/jpeg", .size = 17};
        prakat_announcement a = announcement("pv1", "ตัวอย่าง <b>หัวข้อ</b>", "เนื้อหา", "หมวดใหม่", T0);
        a.attachments = &att;
        a.n_attachments = 1;
        Website *w = f->instance;
        size_t categories = w->n_categories;
        Snapshot before = snapshot_take(f);
        char *text = NULL;

        assert_int_equal(plugin->preview(f->instance, &a, page, &text), 0);
        _cleanup_free_ char *changes = snapshot_changes(f, &before);
        assert_string_equal(changes, "");
        assert_int_equal(w->n_categories, categories);
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
        const char *urls = "article_url: " BASE_URL "/a/pv1.html\nattachment_url: " BASE_URL "/files/pv1/1-photo.jpg\n";
        assert_true(strncmp(text, urls, strlen(urls)) == 0);
        assert_non_null(strstr(text, "feed.atom"));
        _cleanup_free_ char *shown = NULL;
        size_t size = 0;
        assert_int_equal(read_file(page, 1 << 20, &shown, &size), 0);
        const char *base = "<base href=\"" BASE_URL "/a/\">\n";
        char *at = strstr(shown, base);
        assert_non_null(at);
        assert_non_null(strstr(shown, "ตัวอย่าง &lt;b&gt;หัวข้อ&lt;/b&gt;"));
        memmove(at, at + strlen(base), strlen(at + strlen(base)) + 1);

        prakat_job *job = publish(f, &a);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        _cleanup_free_ char *published = read_out(f, "a/pv1.html");
        assert_string_equal(shown, published);
        free(text);
        snapshot_free(&before);
        assert_int_equal(plugin->preview(f->instance, &(prakat_announcement) {.id = "../x"}, NULL, &text), -EINVAL);
}

static void test_batch(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        fake_host_run_due(&f->fake);
        prakat_job *jobs[1000];
        for (size_t i = 0; i < 1000; i++) {
                _cleanup_free_ char *id = xasprintf("b%04zu", i);
                prakat_announcement a = announcement(id, id, "body", i % 2 ? "odd" : "even", T0 + i * SEC);
                jobs[i] = publish(f, &a);
        }
        /* One timer for the whole batch, and no job ends before the shared pages are written. */
        assert_int_equal(fake_host_n_timers(&f->fake), 1);
        assert_int_equal(f->fake.n_finished, 0);
        assert_int_equal(fake_host_run_due(&f->fake), 1);
        assert_int_equal(f->fake.n_finished, 1000);
        for (size_t i = 0; i < 1000; i++)
                assert_done(f, jobs[i]);
        assert_true(out_exists(f, "page/50.html"));
        assert_true(out_exists(f, "page/51.html")); /* the empty page after the last full one */
        assert_false(out_exists(f, "page/52.html"));
        assert_true(out_exists(f, "category/odd/page/25.html"));
        assert_true(out_exists(f, "sitemap-2.xml")); /* 1000 articles + index.html */
        assert_out_contains(f, "sitemap-2.xml", "/a/b0999.html");
        _cleanup_free_ char *feed = read_out(f, "feed.atom");
        assert_int_equal(count(feed, "<entry>"), 50);
        assert_non_null(strstr(feed, "b0999"));
        assert_null(strstr(feed, "b0949"));
}

static void test_pagination_incremental(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        publish_many(f, "n", 1, 45, "news");

        assert_out_contains(f, "page/1.html", "n-00001");
        assert_out_contains(f, "page/1.html", "n-00020");
        assert_out_lacks(f, "page/1.html", "n-00021");
        assert_out_contains(f, "page/3.html", "n-00045");
        assert_false(out_exists(f, "page/4.html"));
        assert_out_contains(f, "index.html", "n-00026");
        assert_out_lacks(f, "index.html", "n-00025\"");
        /* Newest first on every page. */
        _cleanup_free_ char *p2 = read_out(f, "page/2.html");
        assert_true(strstr(p2, "n-00040") < strstr(p2, "n-00021"));
        assert_non_null(strstr(p2, "href=\"3.html\""));
        assert_non_null(strstr(p2, "href=\"1.html\""));
        /* index.html's "older" link goes to the page holding the item just before its last one. */
        assert_out_contains(f, "index.html", "<a rel=\"next\" href=\"page/2.html\">");

        _cleanup_free_ char *page1 = read_out(f, "page/1.html");
        _cleanup_free_ char *page3 = read_out(f, "page/3.html");
        Snapshot before = snapshot_take(f);
        f->fake.now += 60 * SEC;
        publish_many(f, "n", 46, 1, "news");
        _cleanup_free_ char *changes = snapshot_changes(f, &before);
        assert_string_equal(changes, "a/n-00046.html,category/news/index.html,category/news/page/3.html,feed.atom,"
                                     "index.html,page/3.html,sitemap-1.xml,sitemap.xml");
        snapshot_free(&before);
        _cleanup_free_ char *page1_after = read_out(f, "page/1.html");
        _cleanup_free_ char *page3_after = read_out(f, "page/3.html");
        assert_string_equal(page1, page1_after);
        assert_string_not_equal(page3, page3_after);

        /* Filling page 3 creates page 4 at once (empty), so page 3 never changes again. */
        publish_many(f, "n", 47, 14, "news");
        assert_true(out_exists(f, "page/4.html"));
        assert_out_contains(f, "page/3.html", "href=\"4.html\"");
        assert_out_contains(f, "page/4.html", "ยังไม่มีประกาศในหน้านี้");
        before = snapshot_take(f);
        publish_many(f, "n", 61, 1, "news");
        _cleanup_free_ char *changes2 = snapshot_changes(f, &before);
        assert_string_equal(changes2, "a/n-00061.html,category/news/index.html,category/news/page/4.html,feed.atom,"
                                      "index.html,page/4.html,sitemap-1.xml,sitemap.xml");
        snapshot_free(&before);
}

static void test_republish_idempotent(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("same", "ครั้งแรก", "body", "news", T0);
        publish(f, &a);
        publish(f, &a); /* twice in one batch */
        fake_host_run_due(&f->fake);
        Snapshot before = snapshot_take(f);
        f->fake.now += 10 * SEC;
        prakat_job *job = publish(f, &a); /* a crash-recovery retry */
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        _cleanup_free_ char *changes = snapshot_changes(f, &before);
        snapshot_free(&before);
        /* Only the feed's own <updated> differs; every page is byte-identical and left alone. */
        assert_string_equal(changes, "feed.atom");

        const char *files[] = {"index.html", "page/1.html", "category/news/index.html", "sitemap-1.xml"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                _cleanup_free_ char *data = read_out(f, files[i]);
                assert_int_equal(count(data, "/same.html"), 1);
        }
        _cleanup_free_ char *feed = read_out(f, "feed.atom");
        assert_int_equal(count(feed, "<entry>"), 1);

        /* An edit under the same id: listed once, with the new title and an <updated> in the feed. */
        a.title = "ฉบับแก้ไข";
        publish(f, &a);
        fake_host_run_due(&f->fake);
        _cleanup_free_ char *index = read_out(f, "index.html");
        assert_int_equal(count(index, "/same.html"), 1);
        assert_non_null(strstr(index, "ฉบับแก้ไข"));
        assert_null(strstr(index, "ครั้งแรก"));
        assert_out_contains(f, "feed.atom", "<updated>2026-11-25T00:00:10Z</updated>");
}

static void test_retract(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("r1", "หนึ่ง", "body", "news", T0);
        prakat_announcement b = announcement("r2", "ประกาศที่จะยกเลิก", "body", "news", T0 + SEC);
        prakat_announcement c = announcement("r3", "สาม", "body", "news", T0 + 2 * SEC);
        prakat_attachment att = {.name = "x.pdf", .mime = "application/pdf", .size = 3};
        _cleanup_free_ char *src = xasprintf("%s/x.pdf", f->root);
        write_text(src, "pdf");
        att.path = src;
        b.attachments = &att;
        b.n_attachments = 1;
        publish(f, &a);
        publish(f, &b);
        publish(f, &c);
        fake_host_run_due(&f->fake);
        assert_true(out_exists(f, "files/r2/1-x.pdf"));

        f->fake.now += 3600 * SEC;
        prakat_job *job = retract(f, &b, "วันที่ผิด <b>แก้</b>");
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_string_equal(finished(f, job)->link, BASE_URL "/a/r2.html");

        assert_out_contains(f, "a/r2.html", "ประกาศนี้ถูกยกเลิกแล้ว / This announcement was withdrawn");
        assert_out_contains(f, "a/r2.html", "วันที่ผิด &lt;b&gt;แก้&lt;/b&gt;");
        assert_out_contains(f, "a/r2.html", "25 พฤศจิกายน 2569 เวลา 08:00 น.");
        assert_out_contains(f, "a/r2.html", "ประกาศที่จะยกเลิก");
        assert_out_contains(f, "a/r2.html", "noindex");
        const char *listings[] = {"index.html", "page/1.html", "category/news/index.html", "category/news/page/1.html",
                                  "feed.atom", "sitemap-1.xml"};
        for (size_t i = 0; i < sizeof(listings) / sizeof(listings[0]); i++) {
                assert_out_lacks(f, listings[i], "r2.html");
                assert_out_contains(f, listings[i], "r3.html");
        }
        assert_false(out_exists(f, "files/r2"));

        /* A retry of the retract renders the same notice. */
        _cleanup_free_ char *notice = read_out(f, "a/r2.html");
        f->fake.now += 3600 * SEC;
        job = retract(f, &b, "วันที่ผิด <b>แก้</b>");
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        _cleanup_free_ char *notice2 = read_out(f, "a/r2.html");
        assert_string_equal(notice, notice2);

        /* Withdrawing what the site never had still leaves a notice at its URL. */
        prakat_announcement ghost = announcement("ghost", "ไม่เคยมี", "", "news", T0);
        job = retract(f, &ghost, NULL);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_out_contains(f, "a/ghost.html", "ประกาศนี้ถูกยกเลิกแล้ว");
}

static void test_retract_shifts_pages(void **state) {
        Fixture *f = *state;
        configure(f, "5");
        publish_many(f, "s", 1, 12, "news");
        assert_true(out_exists(f, "page/3.html"));
        prakat_announcement a = announcement("s-00003", "", "", "news", T0 + 3 * 60 * SEC);
        retract(f, &a, NULL);
        fake_host_run_due(&f->fake);
        /* 11 items left: pages 1-2 full, page 3 holds one. */
        assert_out_contains(f, "page/1.html", "s-00006");
        assert_out_lacks(f, "page/1.html", "s-00003");
        assert_out_contains(f, "page/2.html", "s-00011");
        assert_out_contains(f, "page/3.html", "s-00012");
        for (size_t i = 0; i < 3; i++)
                retract(f, &(prakat_announcement) {.id = i == 0 ? "s-00010" : i == 1 ? "s-00011" : "s-00012"}, NULL);
        fake_host_run_due(&f->fake);
        /* 8 items: page 2 has three, page 3 is gone. */
        assert_true(out_exists(f, "page/2.html"));
        assert_false(out_exists(f, "page/3.html"));
        assert_false(out_exists(f, "category/news/page/3.html"));
}

static void test_replaces(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("old1", "ประกาศเดิม", "เนื้อหาเดิม", "news", T0);
        publish(f, &a);
        fake_host_run_due(&f->fake);
        prakat_announcement b = announcement("new1", "ประกาศฉบับปรับปรุง", "เนื้อหาใหม่", "news", T0 + 60 * SEC);
        b.replaces = "old1";
        prakat_job *job = publish(f, &b);
        fake_host_run_due(&f->fake);
        assert_done(f, job);

        assert_out_contains(f, "a/old1.html", "มีฉบับปรับปรุง / An updated version");
        assert_out_contains(f, "a/old1.html", "<a href=\"new1.html\">");
        assert_out_contains(f, "a/old1.html", "ประกาศฉบับปรับปรุง");
        assert_out_contains(f, "a/old1.html", "<link rel=\"canonical\" href=\"" BASE_URL "/a/new1.html\">");
        assert_out_lacks(f, "a/old1.html", "เนื้อหาเดิม");
        const char *listings[] = {"index.html", "category/news/index.html", "feed.atom", "sitemap-1.xml"};
        for (size_t i = 0; i < sizeof(listings) / sizeof(listings[0]); i++) {
                assert_out_lacks(f, listings[i], "old1.html");
                assert_out_contains(f, listings[i], "new1.html");
        }

        /* Replacing an id this site never had changes nothing else. */
        prakat_announcement c = announcement("new2", "อีกฉบับ", "x", "news", T0 + 120 * SEC);
        c.replaces = "unknown";
        job = publish(f, &c);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_false(out_exists(f, "a/unknown.html"));
}

static void test_expiry(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("e1", "รับสมัครถึงสิ้นเดือน", "body", "news", T0);
        a.expires = T0 + 3600 * SEC;
        prakat_announcement b = announcement("e2", "ไม่มีวันหมดอายุ", "body", "news", T0 + SEC);
        prakat_announcement c = announcement("e3", "หมดอายุไปแล้ว", "body", "news", T0 + 2 * SEC);
        c.expires = T0 - SEC;
        publish(f, &a);
        publish(f, &b);
        publish(f, &c);
        fake_host_run_due(&f->fake);
        assert_out_lacks(f, "a/e1.html", "หมดอายุแล้ว");
        assert_out_contains(f, "a/e3.html", "หมดอายุแล้ว / This announcement has expired");
        _cleanup_free_ char *index = read_out(f, "index.html");
        assert_int_equal(count(index, "<span class=\"badge expired\">หมดอายุ</span>"), 1);
        /* The expiry timer waits for e1. */
        assert_int_equal(fake_host_n_timers(&f->fake), 1);

        Snapshot before = snapshot_take(f);
        fake_host_advance(&f->fake, 2 * 3600 * SEC);
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
        assert_out_contains(f, "a/e1.html", "หมดอายุแล้ว / This announcement has expired");
        assert_out_lacks(f, "a/e1.html", EXPIRY_MARKER);
        _cleanup_free_ char *index2 = read_out(f, "index.html");
        assert_int_equal(count(index2, "<span class=\"badge expired\">หมดอายุ</span>"), 2);
        assert_out_contains(f, "category/news/index.html", "<li class=\"expired\">");
        _cleanup_free_ char *changes = snapshot_changes(f, &before);
        snapshot_free(&before);
        assert_string_equal(changes, "a/e1.html,category/news/index.html,category/news/page/1.html,index.html,"
                                     "page/1.html");

        /* The shown banner survives a restart: no timer, no rewrite. */
        destroy(f);
        configure(f, NULL);
        assert_int_equal(fake_host_n_timers(&f->fake), 0);
}

static void test_expiry_after_restart(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        prakat_announcement a = announcement("late", "หมดอายุระหว่างปิดเครื่อง", "body", "news", T0);
        a.expires = T0 + 60 * SEC;
        publish(f, &a);
        fake_host_run_due(&f->fake);
        destroy(f);
        f->fake.now += 3600 * SEC;
        configure(f, NULL);
        fake_host_run_due(&f->fake);
        assert_out_contains(f, "a/late.html", "หมดอายุแล้ว");
        assert_out_contains(f, "index.html", "badge expired");
}

static void test_write_error(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        fake_host_run_due(&f->fake);
        f->fake.quiet = true;

        /* The article directory is a file: the job ends at once, asking for a retry. */
        _cleanup_free_ char *a_dir = xasprintf("%s/a", f->out);
        assert_int_equal(rmdir(a_dir), 0);
        write_text(a_dir, "in the way");
        prakat_announcement a = announcement("w1", "title", "body", "news", T0);
        prakat_job *job = publish(f, &a);
        const FakeFinish *r = finished(f, job);
        assert_non_null(r);
        assert_int_equal(r->outcome, PRAKAT_OUTCOME_RETRY);
        assert_non_null(strstr(r->message, "/a/w1.html"));
        assert_non_null(strstr(r->message, strerror(ENOTDIR)));
        unlink(a_dir);
        fake_host_run_due(&f->fake);

        /* A shared page cannot be written: the whole batch is retried. */
        _cleanup_free_ char *page_dir = xasprintf("%s/page", f->out);
        remove_tree(page_dir);
        write_text(page_dir, "in the way");
        prakat_job *j1 = publish(f, &a);
        prakat_announcement b = announcement("w2", "title", "body", "news", T0 + SEC);
        prakat_job *j2 = publish(f, &b);
        assert_null(finished(f, j1));
        fake_host_run_due(&f->fake);
        for (prakat_job *j = j1; j; j = j == j1 ? j2 : NULL) {
                r = finished(f, j);
                assert_non_null(r);
                assert_int_equal(r->outcome, PRAKAT_OUTCOME_RETRY);
                assert_non_null(strstr(r->message, "/page/"));
                assert_non_null(strstr(r->message, strerror(ENOTDIR)));
        }
        assert_true(f->fake.n_errors > 0);

        /* Once the disk is fine again, the pages are rendered without waiting for a new job. */
        unlink(page_dir);
        assert_int_equal(fake_host_n_timers(&f->fake), 1);
        fake_host_advance(&f->fake, RETRY_FLUSH_USEC);
        assert_out_contains(f, "page/1.html", "w2.html");
        assert_out_contains(f, "index.html", "w1.html");
}

/*
 * A new item's page and record are written in place; the records of recent items are cached for the
 * listings, and a Bloom filter spares the lookup of records that do not exist.  Neither may change
 * what is published: a page left by a crash before its record is replaced, a record edited
 * (same id, new title) shows in the listings at once, and the filter survives a restart.
 */
static void test_fresh_and_cached(void **state) {
        Fixture *f = *state;
        configure(f, NULL);
        fake_host_run_due(&f->fake);

        /* A crash after the page and before the record left this page behind. */
        _cleanup_free_ char *stale = xasprintf("%s/a/20261126-f001.html", f->out);
        write_text(stale, "<p>ครึ่งหน้าจากก่อนเครื่องดับ</p>");
        prakat_announcement a = announcement("20261126-f001", "ประกาศรับสมัครอาสาสมัคร", "รายละเอียด", "news", T0);
        prakat_job *job = publish(f, &a);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_out_contains(f, "a/20261126-f001.html", "ประกาศรับสมัครอาสาสมัคร");
        assert_out_lacks(f, "a/20261126-f001.html", "ครึ่งหน้า");
        Website *w = f->instance;
        assert_true(id_filter_may_have(&w->known, "20261126-f001"));
        assert_false(id_filter_may_have(&w->known, "20261126-f999")); /* one id: 4 bits of 2^19 cannot all be set */

        /* The same id again with a new title: the cached record follows the file. */
        prakat_announcement b = announcement("20261126-f001", "ประกาศรับสมัครอาสาสมัคร (แก้ไขวันปิดรับ)", "รายละเอียด",
                                             "news", T0);
        job = publish(f, &b);
        _cleanup_free_ char *path = xasprintf("%s/items/20261126-f001", f->state), *text = NULL;
        size_t len = 0;
        assert_int_equal(read_file(path, 1 << 20, &text, &len), 0);
        RecordCacheSlot *c = record_cache_slot(w, "20261126-f001");
        assert_non_null(c->id);
        assert_string_equal(c->text, text); /* for the batch's listings */
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_out_contains(f, "index.html", "(แก้ไขวันปิดรับ)");
        assert_out_contains(f, "feed.atom", "(แก้ไขวันปิดรับ)");
        assert_null(c->id); /* emptied once the batch is rendered */

        /* After a restart the filter knows the records on disk (an edit, not a new item). */
        destroy(f);
        configure(f, NULL);
        w = f->instance;
        assert_true(id_filter_may_have(&w->known, "20261126-f001"));
        assert_null(record_cache_slot(w, "20261126-f001")->id); /* loading fills no cache */
        prakat_announcement c2 = announcement("20261126-f001", "ประกาศรับสมัครอาสาสมัคร (ฉบับที่ 3)", "รายละเอียด",
                                              "news", T0);
        job = publish(f, &c2);
        fake_host_run_due(&f->fake);
        assert_done(f, job);
        assert_out_contains(f, "index.html", "(ฉบับที่ 3)");
        assert_out_lacks(f, "index.html", "(แก้ไขวันปิดรับ)");
}

static void test_reload_state(void **state) {
        Fixture *f = *state;
        configure(f, "5");
        publish_many(f, "k", 1, 7, "news");
        publish_many(f, "k", 8, 2, "ข่าวจัดซื้อจัดจ้าง");
        prakat_announcement gone = announcement("k-00002", "", "", "news", 0);
        retract(f, &gone, "ซ้ำ");
        fake_host_run_due(&f->fake);
        destroy(f);

        /* Corrupt and foreign files in the state are logged and skipped. */
        _cleanup_free_ char *bad = xasprintf("%s/items/corrupt", f->state);
        write_text(bad, "prakat-website-item 1\nid corrupt\npublished nonsense\n");
        _cleanup_free_ char *bad2 = xasprintf("%s/items/k-99999", f->state);
        write_text(bad2, "garbage");
        /* A record of version 1 (renamed into place, no end line) is read; one of version 2 without its
         * end line was cut off by a crash and is not. */
        _cleanup_free_ char *p3 = xasprintf("%s/items/k-00003", f->state), *p4 = xasprintf("%s/items/k-88888", f->state);
        _cleanup_free_ char *rec = NULL, *v1 = NULL, *cut = NULL;
        size_t len = 0;
        assert_int_equal(read_file(p3, 1 << 20, &rec, &len), 0);
        assert_true(len > 6 && strcmp(rec + len - 6, "end 1\n") == 0);
        assert_memory_equal(rec, "prakat-website-item 2\n", 22);
        v1 = xasprintf("prakat-website-item 1\n%.*s", (int) (len - 22 - 6), rec + 22);
        write_text(p3, v1);
        cut = xasprintf("prakat-website-item 2\nid k-88888\nstate listed\npublished 1\ncategory news\ntitle ตัดกลาง");
        write_text(p4, cut);
        f->fake.quiet = true;
        unsigned warnings = f->fake.n_warnings;
        configure(f, "5");
        assert_int_equal(f->fake.n_warnings, warnings + 3);
        f->fake.quiet = false;
        Website *w = f->instance;
        assert_int_equal(w->n_items, 8);
        assert_int_equal(w->n_categories, 2);
        assert_int_equal(fake_host_n_timers(&f->fake), 0); /* index.html exists: nothing to rebuild */

        publish_many(f, "k", 10, 1, "news");
        assert_out_contains(f, "page/2.html", "k-00010.html"); /* items 6..10 of the 9 listed + 1 */
        _cleanup_free_ char *feed = read_out(f, "feed.atom");
        assert_int_equal(count(feed, "<entry>"), 9);
        assert_null(strstr(feed, "k-00002"));
        _cleanup_free_ char *sitemap = read_out(f, "sitemap-1.xml");
        assert_int_equal(count(sitemap, "<url>"), 10);
        for (size_t i = 1; i <= 10; i++) {
                _cleanup_free_ char *id = xasprintf("k-%05zu.html", i);
                assert_int_equal(count(sitemap, id), i == 2 ? 0 : 1);
        }

        /* A lost output directory is rebuilt from the state (listings; articles stay lost). */
        destroy(f);
        _cleanup_free_ char *index = xasprintf("%s/index.html", f->out);
        unlink(index);
        f->fake.quiet = true;
        configure(f, "5");
        f->fake.quiet = false;
        fake_host_run_due(&f->fake);
        assert_out_contains(f, "index.html", "k-00010.html");
}

/* Runs Debian's feedparser (and the standard XML parser on the sitemaps) over the output. */
static void test_feed_parses(void **state) {
        Fixture *f = *state;
        if (access("/usr/bin/python3", X_OK) < 0 || system("/usr/bin/python3 -c 'import feedparser' 2>/dev/null") != 0) {
                skip();
                return;
        }
        configure(f, NULL);
        prakat_announcement a = announcement("f1", "<script>alert(1)</script> & ข่าว", "เนื้อหา\x01 \"ภาษาไทย\"", "ข่าว",
                                             T0);
        a.author = "ผู้ใหญ่บ้าน";
        publish(f, &a);
        publish_many(f, "f", 2, 30, "news");
        const char *script =
                "import sys, feedparser, xml.etree.ElementTree as ET\n"
                "d = feedparser.parse(sys.argv[1] + '/feed.atom')\n"
                "assert d.bozo == 0, d.bozo_exception\n"
                "assert d.version == 'atom10', d.version\n"
                "assert len(d.entries) == 31, len(d.entries)\n"
                "e = [x for x in d.entries if x.id.endswith('/a/f1.html')][0]\n"
                "assert e.title == '<script>alert(1)</script> & ข่าว', e.title\n"
                "assert e.author == 'ผู้ใหญ่บ้าน', e.author\n"
                "assert e.tags[0].term == 'ข่าว'\n"
                "assert d.feed.link == '" BASE_URL "/', d.feed.link\n"
                "for name in ('sitemap.xml', 'sitemap-1.xml'):\n"
                "    ET.parse(sys.argv[1] + '/' + name)\n";
        _cleanup_free_ char *path = xasprintf("%s/check.py", f->root);
        write_text(path, script);
        _cleanup_free_ char *command = xasprintf("/usr/bin/python3 %s %s", path, f->out);
        int status = system(command);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- scale: cost of one publish, and memory, as the archive grows ------------------------------ */

static double seconds_since(const struct timespec *start) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double) (now.tv_sec - start->tv_sec) + (double) (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Median time of `rounds` single publishes (with their flush), each into the current archive. */
static double time_one_publish(Fixture *f, const char *prefix, size_t rounds) {
        double t[16];
        for (size_t i = 0; i < rounds; i++) {
                _cleanup_free_ char *id = xasprintf("%s-%zu", prefix, i);
                prakat_announcement a = announcement(id, "วัดเวลา", "เนื้อหา", i % 2 ? "news" : "ข่าวกิจกรรม",
                                                     f->fake.now + i * SEC);
                struct timespec start;
                clock_gettime(CLOCK_MONOTONIC, &start);
                prakat_job *job = publish(f, &a);
                fake_host_run_due(&f->fake);
                t[i] = seconds_since(&start);
                assert_done(f, job);
        }
        for (size_t i = 1; i < rounds; i++) /* insertion sort: a handful of numbers */
                for (size_t j = i; j > 0 && t[j] < t[j - 1]; j--) {
                        double x = t[j];
                        t[j] = t[j - 1];
                        t[j - 1] = x;
                }
        return t[rounds / 2];
}

/* Grows the archive to `n` items quickly (fsync off), in batches of 1000 like a busy loop would. */
static void grow_archive(Fixture *f, size_t n) {
        Website *w = f->instance;
        w->durable = false;
        f->fake.quiet = true;
        while (w->n_items < n) {
                size_t batch = n - w->n_items < 1000 ? n - w->n_items : 1000;
                for (size_t i = 0; i < batch; i++) {
                        _cleanup_free_ char *id = xasprintf("g-%06zu", w->n_items);
                        prakat_announcement a = announcement(id, "ประกาศย้อนหลัง", "เนื้อหาประกาศย้อนหลัง",
                                                             w->n_items % 2 ? "news" : "ข่าวกิจกรรม",
                                                             T0 - 1000000 * SEC + w->n_items * SEC);
                        publish(f, &a);
                }
                fake_host_run_due(&f->fake);
                fake_host_forget_finished(&f->fake);
        }
        w->durable = true;
        f->fake.quiet = false;
        sync(); /* or the first timed fsync pays for writing the whole archive back */
}

static void test_scale(void **state) {
        Fixture *f = *state;
        const char *env = getenv("PRAKAT_WEBSITE_BENCH_ITEMS");
        size_t large = env ? strtoul(env, NULL, 10) : 2000;
        if (large < 200) {
                skip();
                return;
        }
        configure(f, NULL);
        f->fake.now = T0;

        /* The archive's items are older than the timed ones, so the timed ones always append. */
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        grow_archive(f, 100);
        f->fake.now += 3600 * SEC;
        double small_t = time_one_publish(f, "s", 7);
        grow_archive(f, large);
        fprintf(stderr, "website: built an archive of %zu items in %.1f s (fsync off)\n", large, seconds_since(&start));
        f->fake.now += 3600 * SEC;
        Snapshot before = snapshot_take(f);
        double large_t = time_one_publish(f, "l", 7);
        fprintf(stderr, "website: one publish into %zu items: %.2f ms; into %zu items: %.2f ms (ratio %.2f)\n",
                (size_t) 100, small_t * 1e3, large, large_t * 1e3, large_t / small_t);

        /* The same files change however big the archive is (7 publishes spread over two categories). */
        _cleanup_free_ char *changes = snapshot_changes(f, &before);
        snapshot_free(&before);
        size_t n_changed = count(changes, ",") + 1;
        fprintf(stderr, "website: files written by 7 publishes into %zu items: %zu\n", large, n_changed);
        /* 7 articles; index and last page of the site and of 2 categories (+1 each when a page fills); feed;
         * last sitemap chunk (+1 when it fills) and the sitemap index. */
        if (n_changed > 7 + 3 * 3 + 1 + 3)
                fail_msg("too many files written: %s", changes);

        /* Memory of the loaded state. */
        destroy(f);
        struct mallinfo2 m0 = mallinfo2();
        configure(f, NULL);
        struct mallinfo2 m1 = mallinfo2();
        size_t heap = m1.uordblks > m0.uordblks ? m1.uordblks - m0.uordblks : 0;
        heap = heap > ID_FILTER_BITS / 8 ? heap - ID_FILTER_BITS / 8 : 0; /* the fixed Bloom filter of record ids */
        size_t n_items = ((Website *) f->instance)->n_items;
        fprintf(stderr, "website: heap of an instance holding %zu items: %zu KiB (%zu bytes an item)\n", n_items,
                heap / 1024, heap / n_items);
        if (heap > 0) /* 0 under AddressSanitizer, which keeps its own heap */
                assert_true(heap / n_items * 10000 < 1024 * 1024); /* 10,000 items well under 2 MB */
        /* Generous: the ratio is about 1 on a quiet machine; fsync noise dominates both. */
        assert_true(large_t < small_t * 4 + 0.02);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_health, setup, teardown),
                cmocka_unit_test_setup_teardown(test_publish_one, setup, teardown),
                cmocka_unit_test_setup_teardown(test_script_escaped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_thai_category, setup, teardown),
                cmocka_unit_test_setup_teardown(test_summary_and_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_parse_robust, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attachments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_preview, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pagination_incremental, setup, teardown),
                cmocka_unit_test_setup_teardown(test_republish_idempotent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retract, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retract_shifts_pages, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replaces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expiry_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fresh_and_cached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_feed_parses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
