/* SPDX-License-Identifier: MIT */
/* json_text_format() must write what jansson's own dumper writes, byte for byte: the state files
 * keep one layout whichever wrote them, and jansson is the reference here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-text.h"

static void check_same(json_t *o) {
        for (unsigned indent = 0; indent <= 4; indent++) {
                size_t flags = (indent ? JSON_INDENT(indent) : JSON_COMPACT) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;
                char *want = json_dumps(o, flags), *got = json_text_format(o, indent);

                assert_non_null(want);
                assert_non_null(got);
                if (strcmp(want, got) != 0)
                        print_error("indent %u:\njansson: %s\nours:    %s\n", indent, want, got);
                assert_string_equal(got, want);
                free(want);
                free(got);
        }
        json_decref(o);
}

static void test_scalars(void **state) {
        (void) state;
        check_same(json_true());
        check_same(json_false());
        check_same(json_null());
        check_same(json_integer(0));
        check_same(json_integer(-9223372036854775807LL - 1));
        check_same(json_integer(1764126000000000LL));
        check_same(json_real(0.5));
        check_same(json_real(3.0));
        check_same(json_real(-1e-300));
        check_same(json_real(1.5e300));
        check_same(json_real(123456789012345678.0));
}

static void test_strings(void **state) {
        char all[128];

        (void) state;
        check_same(json_string(""));
        check_same(json_string("ประกาศ อบต.บ่อแก้ว เรื่อง ภาษีที่ดิน พ.ศ. ๒๕๖๙"));
        check_same(json_string("quote \" backslash \\ slash / tab \t newline \n cr \r bell \a"));
        check_same(json_string("\xe2\x80\xa8 line separator, \xf0\x9f\x93\xa2 loudspeaker"));
        for (int i = 1; i < 128; i++)
                all[i - 1] = (char) i;
        all[127] = 0;
        check_same(json_string(all));
        check_same(json_stringn("nul \0 inside", 12));
}

static void test_nested(void **state) {
        json_t *o = json_object(), *jobs = json_array(), *job = json_object();

        (void) state;
        json_object_set_new(o, "id", json_string("20261126-589233ff"));
        json_object_set_new(o, "empty object", json_object());
        json_object_set_new(o, "empty array", json_array());
        json_object_set_new(job, "channel", json_string("website"));
        json_object_set_new(job, "state", json_string("done"));
        json_object_set_new(job, "attempts", json_integer(1));
        json_object_set_new(job, "next", json_null());
        json_object_set_new(job, "villages", json_pack("[iii]", 1, 2, 12));
        json_array_append_new(jobs, job);
        json_array_append_new(jobs, json_pack("{s:s, s:[[], {}], s:b}", "z", "หมู่ ๓", "nest", "ok", 1));
        json_object_set_new(o, "jobs", jobs);
        json_object_set_new(o, "a key with \"quotes\" and ไทย", json_real(2.25));
        check_same(json_incref(o));
        /* insertion order, not sorted: a key deleted and set again goes last, as in jansson */
        json_object_del(o, "id");
        json_object_set_new(o, "id", json_string("again"));
        check_same(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scalars),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_nested),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
