/* SPDX-License-Identifier: MIT */
/*
 * plugin_open()'s ABI check: a plugin whose struct ends before preview() (built against the first
 * version of prakat_channel_plugin) still loads and PRAKAT_PLUGIN_HAS() says it has no preview; one
 * built with the whole struct has it; one whose struct is shorter than the first version, or of
 * another abi_version, is refused with a message naming both versions.  The plugins are small shared
 * objects compiled by the test with the same compiler ($CC, else cc) against channels/prakat-channel.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

#include "plugin.h"
#include "util.h"

static char dir[] = "/tmp/prakat-test-plugin-XXXXXX";
static char *include_dir;

/* channels/ of the source tree: beside the build folder this test sits in (BUILD/tests/), else here. */
static char *channels_dir(void) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = 0;
                _cleanup_free_ char *candidate = xasprintf("%s/../../channels", dirname(exe));
                _cleanup_free_ char *header = xasprintf("%s/prakat-channel.h", candidate);
                if (access(header, F_OK) == 0)
                        return TAKE_PTR(candidate);
        }
        return xstrdup("channels");
}

/* Compiles a plugin whose struct_size is `size_expression` and whose abi_version is `abi`. */
static char *build_plugin(const char *name, const char *size_expression, unsigned abi, bool with_preview) {
        _cleanup_free_ char *source = xasprintf("%s/%s.c", dir, name), *command = NULL;
        char *object = xasprintf("%s/%s.so", dir, name);
        _cleanup_free_ char *text = xasprintf(
                "#include \"prakat-channel.h\"\n"
                "static int c(const prakat_host *h, const prakat_config_entry *e, size_t n, void **r, char *er,\n"
                "             size_t es, unsigned *l) { *r = (void *) 1; return 0; }\n"
                "static int p(void *i, prakat_job *j, const prakat_announcement *a) { return 0; }\n"
                "static void d(void *i) {}\n"
                "static int v(void *i, const prakat_announcement *a, const char *pp, char **t) { return 0; }\n"
                "__attribute__((visibility(\"default\"))) const prakat_channel_plugin x __asm__(\"%s\") = {\n"
                "        .abi_version = %u, .struct_size = %s, .name = \"%s\", .version = \"1\",\n"
                "        .configure = c, .publish = p, .destroy = d, %s };\n",
                PRAKAT_CHANNEL_SYMBOL, abi, size_expression, name, with_preview ? ".preview = v" : "");
        const char *cc = getenv("CC") ? getenv("CC") : "cc";

        assert_int_equal(write_file_atomic(source, text, strlen(text), 0644), 0);
        command = xasprintf("%s -std=gnu11 -fPIC -shared -fvisibility=hidden -I%s -o %s %s", cc, include_dir, object,
                            source);
        assert_int_equal(system(command), 0);
        return object;
}

/* Builds and opens a plugin of ABI version 1 that must load; returns whether it offers preview(). */
static bool loads_with_preview(const char *name, const char *size_expression, bool with_preview) {
        _cleanup_free_ char *path = build_plugin(name, size_expression, 1, with_preview);
        const prakat_channel_plugin *p = NULL;
        char *error = NULL;
        void *dl = NULL;

        assert_int_equal(plugin_open(path, &dl, &p, &error), 0);
        bool has = PRAKAT_PLUGIN_HAS(p, preview);
        dlclose(dl);
        return has;
}

static void test_older_plugin_loads_without_preview(void **state) {
        /* Its preview pointer is set, but past its struct_size: what an old plugin's memory would hold there. */
        assert_false(loads_with_preview("older", "offsetof(prakat_channel_plugin, preview)", true));
}

static void test_current_plugin_has_preview(void **state) {
        assert_true(loads_with_preview("current", "sizeof(prakat_channel_plugin)", true));
        assert_false(loads_with_preview("nopreview", "sizeof(prakat_channel_plugin)", false));
}

static void test_refused(void **state) {
        static const struct {
                const char *name, *size;
                unsigned abi;
        } cases[] = {
                { "short", "offsetof(prakat_channel_plugin, destroy)", 1 },
                { "other", "sizeof(prakat_channel_plugin)", 2 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = build_plugin(cases[i].name, cases[i].size, cases[i].abi, false);
                const prakat_channel_plugin *p = NULL;
                char *error = NULL;
                void *dl = NULL;

                assert_int_equal(plugin_open(path, &dl, &p, &error), -EPROTO);
                assert_non_null(strstr(error, "needs version 1"));
                assert_null(p);
                free(error);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_older_plugin_loads_without_preview),
                cmocka_unit_test(test_current_plugin_has_preview),
                cmocka_unit_test(test_refused),
        };

        assert_non_null(mkdtemp(dir));
        include_dir = channels_dir();
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        _cleanup_free_ char *rm = xasprintf("rm -rf %s", dir);
        (void) system(rm);
        free(include_dir);
        return r;
}
