/* SPDX-License-Identifier: MIT */
/*
 * The website channel's upload bookkeeping (channels/website/upload.c) without a network: the
 * host's transfer_upload() is a fake that records each request and lets the test answer it.
 * Checked: which files a round sends (changed content only, attachments and articles first),
 * the temporary name and the rename, removals, what the manifest keeps across a restart and a
 * failure, prakat site sync, and the settings refused with their fix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>

#include "website/upload.c"
#include "fake-host.h"

#define MAX_REQUESTS 16

typedef struct Request {
        char *url;
        char *local_path;
        char *rename_to;
        bool create_dirs;
        prakat_http_done_fn done;
        void *userdata;
} Request;

static Request requests[MAX_REQUESTS];
static size_t n_requests;
static int rounds_done, last_round_error;

static int fake_transfer_upload(const prakat_host *host, const prakat_transfer *t, prakat_http_done_fn done,
                                void *userdata, prakat_http_call **ret_call) {
        assert_true(n_requests < MAX_REQUESTS);
        assert_non_null(t->known_hosts_file);
        requests[n_requests++] = (Request) {
                .url = strdup(t->url),
                .local_path = t->local_path ? strdup(t->local_path) : NULL,
                .rename_to = t->rename_to ? strdup(t->rename_to) : NULL,
                .create_dirs = t->create_dirs,
                .done = done,
                .userdata = userdata,
        };
        *ret_call = NULL;
        return 0;
}

/* Answers request i (in the order made) with `error`. */
static void answer(size_t i, int error) {
        prakat_http_response response = {.error = error, .error_text = error ? "connection reset" : NULL, .body = ""};
        requests[i].done(requests[i].userdata, &response);
}

static void forget_requests(void) {
        for (size_t i = 0; i < n_requests; i++) {
                free(requests[i].url);
                free(requests[i].local_path);
                free(requests[i].rename_to);
        }
        n_requests = 0;
}

static void on_round(void *userdata, int error, const char *message) {
        rounds_done++;
        last_round_error = error;
}

typedef struct Fixture {
        char dir[64];
        char output[128];
        char state[128];
        char key[128];
        char known_hosts[128];
        FakeHost fake;
        Upload *upload;
} Fixture;

static void write_text(const char *path, const char *text) {
        char *copy = strdup(path), *slash = strrchr(copy, '/');
        *slash = 0;
        char command[512];
        snprintf(command, sizeof command, "mkdir -p '%s'", copy);
        assert_int_equal(system(command), 0);
        free(copy);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void fixture_path(Fixture *f, char *out, size_t size, const char *rel) {
        snprintf(out, size, "%s/%s", f->output, rel);
}

static void put(Fixture *f, const char *rel, const char *text) {
        char p[256];
        fixture_path(f, p, sizeof p, rel);
        write_text(p, text);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        snprintf(f->dir, sizeof f->dir, "/tmp/prakat-test-upload-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->output, sizeof f->output, "%s/site", f->dir);
        snprintf(f->state, sizeof f->state, "%s/state", f->dir);
        snprintf(f->key, sizeof f->key, "%s/key", f->dir);
        snprintf(f->known_hosts, sizeof f->known_hosts, "%s/known_hosts", f->dir);
        assert_int_equal(mkdir(f->output, 0755), 0);
        assert_int_equal(mkdir(f->state, 0755), 0);
        write_text(f->key, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n");
        assert_int_equal(chmod(f->key, 0600), 0);
        write_text(f->known_hosts, "[host.example]:2222 ssh-ed25519 AAAA\n");
        put(f, "index.html", "<p>index</p>");
        put(f, "a/one.html", "<p>one</p>");
        put(f, "files/one/1-map.png", "PNG");
        put(f, ".prakat-tmp-index.html", "half a page");
        rounds_done = 0;
        *state = f;
        return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void close_upload(Fixture *f) {
        upload_free(f->upload);
        f->upload = NULL;
        forget_requests();
        fake_host_done(&f->fake);
}

static int teardown(void **state) {
        Fixture *f = *state;
        close_upload(f);
        nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

/* Configures an Upload as website.c does: entries, then prepare. Returns prepare's result. */
static int open_upload_with(Fixture *f, const prakat_config_entry *entries, size_t n, char *error, size_t size) {
        unsigned line = 0;
        PluginConfigError err = {.text = error, .size = size, .line = &line};
        fake_host_init(&f->fake, f->state);
        f->fake.host.transfer_upload = fake_transfer_upload;
        f->fake.quiet = true;
        for (size_t i = 0; i < n; i++) {
                int r = upload_apply_entry(&f->upload, &f->fake.host, &entries[i], &err);
                if (r < 0)
                        return r;
        }
        return upload_prepare(f->upload, f->output, &err);
}

static void open_upload(Fixture *f) {
        prakat_config_entry entries[] = {
                {"upload", "sftp://prakat@host.example:2222/srv/www/", 7},
                {"upload_key_file", f->key, 8},
                {"upload_known_hosts", f->known_hosts, 9},
        };
        char error[512] = "";
        assert_int_equal(open_upload_with(f, entries, 3, error, sizeof error), 0);
}

/* Runs a round and answers every request with success, as often as the round asks. */
static size_t run_round_ok(Fixture *f) {
        forget_requests();
        int r = upload_run(f->upload, on_round, f);
        if (r == 0)
                return 0;
        assert_int_equal(r, 1);
        for (size_t i = 0; i < n_requests; i++)
                answer(i, 0);
        assert_false(upload_is_busy(f->upload));
        assert_int_equal(last_round_error, 0);
        return n_requests;
}

static void test_first_round_sends_everything_in_order(void **state) {
        Fixture *f = *state;
        open_upload(f);
        assert_true(upload_has_work(f->upload));
        assert_int_equal(upload_run(f->upload, on_round, f), 1);
        assert_int_equal(n_requests, 3);
        /* Attachments, then articles, then the pages linking to them; never the local temporary file. */
        assert_string_equal(requests[0].url, "sftp://prakat@host.example:2222/srv/www/files/one/.prakat-up-1-map.png");
        assert_string_equal(requests[0].rename_to, "1-map.png");
        assert_string_equal(requests[1].url, "sftp://prakat@host.example:2222/srv/www/a/.prakat-up-one.html");
        assert_string_equal(requests[2].url, "sftp://prakat@host.example:2222/srv/www/.prakat-up-index.html");
        assert_string_equal(requests[2].rename_to, "index.html");
        assert_true(requests[2].create_dirs);
        assert_non_null(strstr(requests[2].local_path, "/site/index.html"));
        assert_true(upload_is_busy(f->upload));
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(rounds_done, 0);
                answer(i, 0);
        }
        assert_int_equal(rounds_done, 1);
        assert_int_equal(last_round_error, 0);
        assert_false(upload_has_work(f->upload));
        assert_int_equal(upload_run(f->upload, on_round, f), 0);

        char buffer[256];
        assert_int_equal(upload_health(f->upload, buffer, sizeof buffer), 0);
        assert_non_null(strstr(buffer, "host.example:2222 up to date"));
}

static void test_restart_sends_only_what_changed(void **state) {
        Fixture *f = *state;
        open_upload(f);
        assert_int_equal(run_round_ok(f), 3);
        close_upload(f);

        /* Same files: nothing to do after a restart. */
        open_upload(f);
        assert_false(upload_has_work(f->upload));
        close_upload(f);

        /* One file changed while prakatd was down, one only touched (same content, new mtime). */
        put(f, "index.html", "<p>index, with a new item</p>");
        char p[256];
        fixture_path(f, p, sizeof p, "a/one.html");
        struct timespec times[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
        assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
        open_upload(f);
        assert_true(upload_has_work(f->upload));
        assert_int_equal(run_round_ok(f), 1);
        assert_string_equal(requests[0].rename_to, "index.html");
        close_upload(f);

        /* The touched file's new mtime was recorded: no content hashing at the next start. */
        open_upload(f);
        assert_false(upload_has_work(f->upload));
}

static void test_failure_keeps_the_file_for_the_next_round(void **state) {
        Fixture *f = *state;
        open_upload(f);
        assert_int_equal(upload_run(f->upload, on_round, f), 1);
        assert_int_equal(n_requests, 3);
        answer(0, -ECONNRESET);
        answer(1, 0);
        assert_int_equal(rounds_done, 0);
        answer(2, 0);
        assert_int_equal(rounds_done, 1);
        assert_int_equal(last_round_error, -ECONNRESET);
        assert_non_null(strstr(upload_last_error(f->upload), "files/one/1-map.png"));
        char buffer[512];
        assert_int_equal(upload_health(f->upload, buffer, sizeof buffer), -EIO);
        assert_non_null(strstr(buffer, "failing"));

        /* Only the file that failed goes again, and a good round clears the failure. */
        assert_int_equal(run_round_ok(f), 1);
        assert_string_equal(requests[0].rename_to, "1-map.png");
        assert_null(upload_last_error(f->upload));

        /* The manifest kept both the files that made it in the failed round. */
        close_upload(f);
        open_upload(f);
        assert_false(upload_has_work(f->upload));
}

static void test_removed_file_is_removed_on_the_host(void **state) {
        Fixture *f = *state;
        open_upload(f);
        assert_int_equal(run_round_ok(f), 3);
        char p[256];
        fixture_path(f, p, sizeof p, "files/one/1-map.png");
        assert_int_equal(unlink(p), 0);
        upload_note_path(f->upload, p);
        upload_note_path(f->upload, "/elsewhere/not/ours.html"); /* outside output: ignored */
        forget_requests();
        assert_int_equal(upload_run(f->upload, on_round, f), 1);
        assert_int_equal(n_requests, 1);
        assert_string_equal(requests[0].url, "sftp://prakat@host.example:2222/srv/www/files/one/1-map.png");
        assert_null(requests[0].local_path);
        assert_null(requests[0].rename_to);
        answer(0, 0);
        close_upload(f);
        open_upload(f);
        assert_false(upload_has_work(f->upload)); /* gone from the manifest too */
}

static void test_site_sync_sends_everything_again(void **state) {
        Fixture *f = *state;
        open_upload(f);
        assert_int_equal(run_round_ok(f), 3);
        char reply[256];
        assert_int_equal(upload_forget_all(f->upload, reply, sizeof reply), 0);
        assert_non_null(strstr(reply, "all 3 file(s)"));
        assert_int_equal(run_round_ok(f), 3);
}

static void test_names_are_percent_encoded(void **state) {
        Fixture *f = *state;
        put(f, "files/two/1-a b.pdf", "PDF");
        open_upload(f);
        assert_int_equal(upload_run(f->upload, on_round, f), 1);
        bool seen = false;
        for (size_t i = 0; i < n_requests; i++)
                if (strstr(requests[i].url, "/files/two/.prakat-up-1-a%20b.pdf")) {
                        assert_string_equal(requests[i].rename_to, "1-a b.pdf");
                        seen = true;
                }
        assert_true(seen);
        for (size_t i = 0; i < n_requests; i++)
                answer(i, 0);
        assert_int_equal(rounds_done, 1);
}

static void expect_refused(Fixture *f, const prakat_config_entry *entries, size_t n, const char *text) {
        char error[512] = "";
        assert_int_equal(open_upload_with(f, entries, n, error, sizeof error), -EINVAL);
        if (!strstr(error, text)) {
                fprintf(stderr, "expected '%s' in '%s'\n", text, error);
                fail();
        }
        close_upload(f);
}

static void test_settings_refused_with_the_fix(void **state) {
        Fixture *f = *state;
        prakat_config_entry scheme[] = {{"upload", "ftp://u@h/x", 1}, {"upload_key_file", f->key, 2}};
        expect_refused(f, scheme, 2, "upload must start with sftp:// or ftps://");
        prakat_config_entry password[] = {{"upload", "sftp://u:secret@h/x", 1}, {"upload_key_file", f->key, 2}};
        expect_refused(f, password, 2, "must not hold a password");
        prakat_config_entry no_user[] = {{"upload", "sftp://h/x", 1}, {"upload_key_file", f->key, 2}};
        expect_refused(f, no_user, 2, "USER@HOST");
        prakat_config_entry no_credentials[] = {{"upload", "sftp://u@h/x", 1}};
        expect_refused(f, no_credentials, 1, "needs upload_key_file");
        prakat_config_entry no_known_hosts[] = {{"upload", "sftp://u@h/x", 1},
                                                {"upload_key_file", f->key, 2},
                                                {"upload_known_hosts", "/nonexistent/known_hosts", 3}};
        expect_refused(f, no_known_hosts, 3, "ssh-keyscan");
        prakat_config_entry ftps_key[] = {{"upload", "ftps://u@h/x", 1}, {"upload_key_file", f->key, 2}};
        expect_refused(f, ftps_key, 2, "upload_key_file and upload_known_hosts are for sftp://");
        prakat_config_entry only_key[] = {{"upload_key_file", f->key, 2}};
        expect_refused(f, only_key, 1, "but not upload");
        prakat_config_entry both_keys[] = {{"upload", "sftp://u@h/x", 1},
                                           {"upload_key", f->key, 2},
                                           {"upload_key_file", f->key, 3}};
        expect_refused(f, both_keys, 3, "give one");
        prakat_config_entry timeout[] = {{"upload", "sftp://u@h/x", 1}, {"upload_timeout", "2d", 2}};
        expect_refused(f, timeout, 2, "1s to 1h");

        assert_int_equal(chmod(f->key, 0640), 0);
        prakat_config_entry readable[] = {{"upload", "sftp://u@h/x", 1},
                                          {"upload_key_file", f->key, 2},
                                          {"upload_known_hosts", f->known_hosts, 3}};
        expect_refused(f, readable, 3, "fix: chmod 600");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_first_round_sends_everything_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart_sends_only_what_changed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_keeps_the_file_for_the_next_round, setup, teardown),
                cmocka_unit_test_setup_teardown(test_removed_file_is_removed_on_the_host, setup, teardown),
                cmocka_unit_test_setup_teardown(test_site_sync_sends_everything_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_names_are_percent_encoded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_settings_refused_with_the_fix, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
