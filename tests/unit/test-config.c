/* SPDX-License-Identifier: MIT */
/* The config: values, defaults, and every error naming file, line and fix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"

static char tmpdir[] = "/tmp/prakat-test-config-XXXXXX";

static int load(const char *text, Config **ret, char **ret_error) {
        char *p = path_join(tmpdir, "prakat.conf");
        int r;

        assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
        r = config_load(p, ret, ret_error);
        free(p);
        return r;
}

static void expect_error(const char *text, unsigned line, const char *needle) {
        Config *c = NULL;
        char *error = NULL, prefix[64];

        assert_int_equal(load(text, &c, &error), -EINVAL);
        assert_null(c);
        if (line)
                snprintf(prefix, sizeof prefix, "prakat.conf:%u: ", line);
        else
                snprintf(prefix, sizeof prefix, "prakat.conf: ");
        if (!strstr(error, prefix) || !strstr(error, needle))
                fail_msg("error '%s' lacks '%s' or '%s'", error, prefix, needle);
        free(error);
}

static void test_defaults_and_values(void **state) {
        Config *c = NULL;
        char *error = NULL;

        assert_int_equal(load("; comment\n[prakat]\nspool = spool\nstate = /var/lib/x\nsettle = 500ms\n"
                              "max_file_size = 1M\nretry_min = 10s\nretry_max = 2h\ngive_up_after = 1d\n"
                              "require_approval = yes\n[villages]\n๑ = บ้านบ่อแก้ว\n12 = บ้านใหม่\n"
                              "[channel website]\nplugin = website\noutput = /srv/www\n"
                              "[channel line]\nplugin = line\nenabled = no\n",
                              &c, &error),
                         0);
        assert_true(strstr(c->spool, tmpdir) == c->spool); /* relative to the config's folder */
        assert_string_equal(c->state, "/var/lib/x");
        assert_string_equal(c->timezone, "Asia/Bangkok");
        assert_true(c->settle == 500 * USEC_PER_MSEC);
        assert_true(c->max_file_size == 1024 * 1024);
        assert_true(c->retry_max == 2 * USEC_PER_HOUR);
        assert_true(c->give_up_after == USEC_PER_DAY);
        assert_true(c->require_approval);
        assert_string_equal(c->village_names[1], "บ้านบ่อแก้ว");
        assert_string_equal(c->village_names[12], "บ้านใหม่");
        assert_int_equal(c->n_villages, 2);
        assert_int_equal(c->n_channels, 2);
        assert_string_equal(c->channels[0].plugin, "website");
        assert_int_equal(c->channels[0].n_entries, 1);
        assert_string_equal(c->channels[0].entries[0].key, "output");
        assert_int_equal(c->channels[0].entries[0].line, 16);
        assert_false(c->channels[1].enabled);
        char *list = config_channel_list(c);
        assert_string_equal(list, "website, line (disabled)");
        free(list);
        config_free(c);
}

static void test_errors(void **state) {
        expect_error("[prakat]\nspool = /x\nsettel = 2s\n", 3, "unknown key 'settel'");
        expect_error("[prakat]\nsettle = soon\n", 2, "not a duration");
        expect_error("[prakat]\nmax_file_size = big\n", 2, "not a size");
        expect_error("[prakat]\nrequire_approval = maybe\n", 2, "yes or no");
        expect_error("[prakat]\ntimezone = Mars/Base\n", 0, "not a known time zone");
        expect_error("[prakat]\nretry_min = 2h\nretry_max = 1h\n", 0, "retry_min");
        expect_error("[villages]\nx = บ้าน\n", 2, "not a village number");
        expect_error("[villages]\n1 = ก\n1 = ข\n", 3, "listed twice");
        expect_error("\n[channel website]\noutput = /x\n", 2, "has no plugin = line");
        expect_error("[channel Web Site]\nplugin = website\n", 1, "not allowed");
        expect_error("[channel website]\nplugin = website\noutput = a\noutput = b\n", 4, "set twice");
        expect_error("[channel website]\nplugin = website\nenabled = perhaps\n", 3, "yes or no");
        expect_error("[prakt]\nx = 1\n", 1, "unknown section [prakt]");
        expect_error("[prakat]\nthis line is wrong\n", 2, "not 'key = value'");
        char long_line[400];
        snprintf(long_line, sizeof long_line, "[villages]\n1 = %0300d\n", 0);
        expect_error(long_line, 2, "longer than");
        expect_error("[prakat]\nspool = \xff\xfe\n", 0, "not UTF-8");
}

static void test_missing_file(void **state) {
        Config *c = NULL;
        char *error = NULL;

        assert_int_equal(config_load("/nonexistent/prakat.conf", &c, &error), -ENOENT);
        assert_non_null(strstr(error, "/nonexistent/prakat.conf: cannot read"));
        free(error);
}

static int setup(void **state) {
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state) {
        remove_tree(tmpdir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_values),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_missing_file),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
