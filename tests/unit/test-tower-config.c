/* SPDX-License-Identifier: MIT */
/*
 * The tower agent's config (defaults, values, every error with FILE:LINE and a fix, the password file),
 * its command templates (one argv element per word, whatever {file} and {text} hold; text never taken
 * for an option) and the audio cache's file names.  Sources are included whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "tower/tower-audio.c"
#include "tower/tower-child.c"
#include "tower/tower-config.c"

static char tmpdir[] = "/tmp/prakat-test-tower-config-XXXXXX";

static int load(const char *text, TowerConfig **ret, char **ret_error) {
        _cleanup_free_ char *p = path_join(tmpdir, "tower.conf");

        assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
        return tower_config_load(p, ret, ret_error);
}

static void expect_error(const char *text, unsigned line, const char *needle) {
        TowerConfig *c = NULL;
        char *error = NULL, prefix[64];

        assert_int_equal(load(text, &c, &error), -EINVAL);
        assert_null(c);
        if (line)
                snprintf(prefix, sizeof prefix, "tower.conf:%u: ", line);
        else
                snprintf(prefix, sizeof prefix, "tower.conf: ");
        if (!strstr(error, prefix) || !strstr(error, needle))
                fail_msg("error '%s' lacks '%s' or '%s'", error, prefix, needle);
        free(error);
}

#define MINIMAL "[tower]\nvillage = 3\nbroker = mqtt://10.0.0.1\ntopic_prefix = bokaeo/tower\n"

static void test_defaults_and_values(void **state) {
        TowerConfig *c = NULL;
        char *error = NULL;

        assert_int_equal(load(MINIMAL, &c, &error), 0);
        assert_int_equal(c->village, 3);
        assert_string_equal(c->host, "10.0.0.1");
        assert_int_equal(c->port, 1883);
        assert_false(c->tls);
        assert_string_equal(c->state_dir, "/var/lib/prakat-tower");
        assert_string_equal(c->player, "mpg123 -q {file}");
        assert_string_equal(c->tts, "espeak-ng -v th {text}");
        assert_true(c->late_limit == 30 * USEC_PER_MINUTE);
        assert_true(c->audio_cache_size == 200ULL * 1024 * 1024);
        tower_config_free(c);

        assert_int_equal(load("; a comment\n[tower]\nvillage = 12\nbroker = mqtts://[::1]:9883\n"
                              "topic_prefix = a/b.c\nstate_dir = state\nplayer = aplay -q {file}\n"
                              "tts = pico2wave -w {file} {text}\nca_file = ca.pem\ncert_file = /etc/c.pem\n"
                              "key_file = /etc/k.pem\nusername = tower12\npassword_file = pw\nlate_limit = 10m\n"
                              "max_play_time = 90s\naudio_cache_size = 1G\n",
                              &c, &error),
                         0);
        assert_string_equal(c->host, "::1");
        assert_int_equal(c->port, 9883);
        assert_true(c->tls);
        assert_true(strstr(c->state_dir, tmpdir) == c->state_dir); /* relative to the config's folder */
        assert_true(strstr(c->ca_file, tmpdir) == c->ca_file);
        assert_string_equal(c->cert_file, "/etc/c.pem");
        assert_true(c->late_limit == 10 * USEC_PER_MINUTE);
        assert_true(c->max_play_time == 90 * USEC_PER_SEC);
        assert_true(c->audio_cache_size == 1024ULL * 1024 * 1024);
        tower_config_free(c);
}

static void test_errors(void **state) {
        expect_error(MINIMAL "colour = blue\n", 5, "unknown key 'colour'");
        expect_error("village = 3\n[tower]\n", 1, "before [tower]");
        expect_error("[towers]\nvillage = 3\n", 2, "unknown section [towers]");
        expect_error("[tower]\nvillage = 0\n", 2, "village number");
        expect_error("[tower]\nvillage = 1000\n", 2, "village number");
        expect_error("[tower]\nvillage = 3\nvillage = 4\n", 3, "set twice (first on line 2)");
        expect_error("[tower]\nbroker = tcp://x\n", 2, "mqtt://");
        expect_error("[tower]\nbroker = mqtt://x:99999\n", 2, "not a broker address");
        expect_error("[tower]\nbroker = mqtt://user@x\n", 2, "not a broker address");
        expect_error("[tower]\nbroker = mqtt://x/path\n", 2, "not a broker address");
        expect_error("[tower]\ntopic_prefix = a/#\n", 2, "topic_prefix");
        expect_error("[tower]\ntopic_prefix = /a\n", 2, "topic_prefix");
        expect_error("[tower]\nplayer = mpg123 -q\n", 2, "no {file}");
        expect_error("[tower]\ntts = espeak-ng\n", 2, "no {text}");
        expect_error("[tower]\nlate_limit = soon\n", 2, "not a duration");
        expect_error("[tower]\nmax_play_time = 0\n", 2, "too short");
        expect_error("[tower]\naudio_cache_size = 10K\n", 2, "at least 1M");
        expect_error("[tower]\nthis is not a key\n", 2, "not 'key = value'");
        expect_error("[tower]\nbroker = mqtt://x\ntopic_prefix = p\n", 0, "village is missing");
        expect_error("[tower]\nvillage = 1\ntopic_prefix = p\n", 0, "broker is missing");
        expect_error("[tower]\nvillage = 1\nbroker = mqtt://x\n", 0, "topic_prefix is missing");
        expect_error(MINIMAL "cert_file = c.pem\n", 5, "go together");
        expect_error(MINIMAL "ca_file = ca.pem\n", 5, "not TLS");
        expect_error(MINIMAL "password_file = pw\n", 5, "without username");
}

static void test_password_file(void **state) {
        _cleanup_free_ char *pw = path_join(tmpdir, "pw"), *text = NULL;
        TowerConfig *c = NULL;
        char *error = NULL, *password = NULL;

        text = xasprintf(MINIMAL "username = t3\npassword_file = %s\n", pw);
        assert_int_equal(load(text, &c, &error), 0);
        assert_true(tower_config_read_password(c, &password, &error) < 0); /* missing */
        free(error);
        assert_int_equal(write_file_atomic(pw, "secret\n", 7, 0644), 0);
        assert_int_equal(tower_config_read_password(c, &password, &error), -EPERM);
        assert_non_null(strstr(error, "chmod"));
        free(error);
        assert_int_equal(chmod(pw, 0600), 0);
        assert_int_equal(tower_config_read_password(c, &password, &error), 0);
        assert_string_equal(password, "secret");
        free(password);
        tower_config_free(c);
}

static void test_command_build(void **state) {
        char **argv = NULL;

        assert_int_equal(tower_command_build("  mpg123  -q\t{file} ", "/var/lib/x/a b.mp3", NULL, &argv), 0);
        assert_string_equal(argv[0], "mpg123");
        assert_string_equal(argv[1], "-q");
        assert_string_equal(argv[2], "/var/lib/x/a b.mp3"); /* one element, spaces and all */
        assert_null(argv[3]);
        tower_strv_free(argv);

        /* The text is one argument whatever it holds; a leading '-' cannot become an option. */
        assert_int_equal(tower_command_build("espeak-ng -v th {text}", NULL, "-w /etc/passwd; rm -rf /\x01\nบรรทัด",
                                             &argv),
                         0);
        assert_string_equal(argv[3], " -w /etc/passwd; rm -rf / \nบรรทัด");
        assert_null(argv[4]);
        tower_strv_free(argv);

        assert_int_equal(tower_command_build("pico2wave --wave={file} {text}", "/s/speech.wav", "สวัสดี", &argv), 0);
        assert_string_equal(argv[1], "--wave=/s/speech.wav");
        assert_string_equal(argv[2], "สวัสดี");
        char *d = tower_command_describe(argv);
        assert_string_equal(d, "pico2wave --wave=/s/speech.wav สวัสดี");
        free(d);
        tower_strv_free(argv);

        assert_int_equal(tower_command_build("   ", NULL, NULL, &argv), -EINVAL);
}

static void test_audio_file_name(void **state) {
        char *a = tower_audio_file_name("https://bokaeo.go.th/news/files/x/เสียง.MP3?v=2#t");
        char *b = tower_audio_file_name("https://bokaeo.go.th/news/files/x/เสียง.MP3?v=3");
        char *c = tower_audio_file_name("https://evil.example/../../etc/passwd");
        char *d = tower_audio_file_name("https://x.th/a.mp3/");

        assert_int_equal(strlen(a), 16 + 4);
        assert_true(endswith_nocase(a, ".mp3"));
        assert_string_not_equal(a, b); /* the whole URL names the file */
        assert_true(endswith_nocase(c, ".audio"));
        assert_null(strchr(c, '/'));
        assert_true(endswith_nocase(d, ".audio"));
        free(a);
        free(b);
        free(c);
        free(d);
}

static void test_audio_trim(void **state) {
        _cleanup_free_ char *dir = path_join(tmpdir, "audio");
        static const char *const urls[] = { "https://x.th/old.mp3", "https://x.th/kept.mp3", "https://x.th/new.mp3" };
        sd_event *event = NULL;
        TowerAudio *a = NULL;
        char *path = NULL;
        const char *error = NULL;
        char data[600 * 1024];

        memset(data, 'a', sizeof data);
        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(tower_audio_new(event, dir, 1024 * 1024, NULL, NULL, &a), 0);
        /* Three cached files of 600 KiB, oldest first, and a temporary a crash left behind. */
        for (size_t i = 0; i < ELEMENTSOF(urls); i++) {
                _cleanup_free_ char *name = tower_audio_file_name(urls[i]), *p = path_join(dir, name);
                struct timespec times[2] = { { .tv_sec = 1000000 + (time_t) i * 100 }, { .tv_sec = 1000000 + (time_t) i * 100 } };
                assert_int_equal(write_file_atomic(p, data, sizeof data, 0640), 0);
                assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
        }
        /* Looking one up marks it as just used. */
        assert_int_equal(tower_audio_lookup(a, urls[0], &path, &error), TOWER_AUDIO_READY);
        assert_non_null(strstr(path, dir));
        free(path);
        /* 1.8 MiB in a 1 MiB cache: "kept" is needed, so the least recently used other one goes ("new",
         * since "old" was just used), then "old"; "kept" stays although the cache is still over. */
        tower_audio_trim(a, (char *const *) &urls[1], 1);
        assert_int_equal(tower_audio_lookup(a, urls[1], &path, &error), TOWER_AUDIO_READY);
        free(path);
        _cleanup_free_ char *n0 = tower_audio_file_name(urls[0]), *p0 = path_join(dir, n0);
        _cleanup_free_ char *n2 = tower_audio_file_name(urls[2]), *p2 = path_join(dir, n2);
        assert_int_equal(access(p2, F_OK), -1);
        assert_int_equal(access(p0, F_OK), -1);
        tower_audio_free(a);
        sd_event_unref(event);
}

static int setup(void **state) {
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state) {
        return remove_tree(tmpdir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_values),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_password_file),
                cmocka_unit_test(test_command_build),
                cmocka_unit_test(test_audio_file_name),
                cmocka_unit_test(test_audio_trim),
        };

        log_set_max_level(LOG_WARNING);
        return cmocka_run_group_tests(tests, setup, teardown);
}
