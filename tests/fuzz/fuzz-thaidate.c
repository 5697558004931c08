/* SPDX-License-Identifier: MIT */
/*
 * The date parser (src/thaidate.c): any text is a date or -EINVAL/-ERANGE; a date formats back in
 * every style, and the UTC form reads back to the same instant.
 */
#include <errno.h>
#include <stdbool.h>
#include <time.h>

#include "fuzz.h"
#include "textenc.h"
#include "thaidate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool zone_set;
        char *text = fuzz_string(data, size), buffer[256];
        uint64_t t = 0, back = 0;
        bool has_time = false;
        int r;

        if (!zone_set) {
                FUZZ_CHECK(thaidate_set_timezone("Asia/Bangkok") == 0);
                zone_set = true;
        }
        r = thaidate_parse(text, &t, &has_time);
        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0) {
                for (int style = THAIDATE_LONG; style <= THAIDATE_SHORT_DATE; style++)
                        FUZZ_CHECK(thaidate_format(t, (ThaiDateStyle) style, buffer, sizeof buffer) > 0);
                FUZZ_CHECK(thaidate_format_iso(t, buffer, sizeof buffer) > 0);
                FUZZ_CHECK(thaidate_format_day(t, true, buffer, sizeof buffer) > 0);
                FUZZ_CHECK(thaidate_format_utc(t, buffer, sizeof buffer) > 0);
                FUZZ_CHECK(thaidate_parse_utc(buffer, &back) == 0 && back == t);
        }
        r = thaidate_parse_utc(text, &t);
        FUZZ_CHECK(r == 0 || r == -EINVAL);
        free(text);
        return 0;
}
