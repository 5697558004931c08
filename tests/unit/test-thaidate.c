/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "thaidate.h"

#define USEC 1000000ULL

/* The expected instants are computed with timegm(), independently of the code under test. */
static uint64_t utc(int year, int month, int day, int hour, int minute, int second) {
        struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                         .tm_hour = hour, .tm_min = minute, .tm_sec = second };
        return (uint64_t) timegm(&tm) * USEC;
}

/* 26 November 2569 (2026), 07:00 in Bangkok, and the same day's local midnight. */
#define NOV26_0700 utc(2026, 11, 26, 0, 0, 0)
#define NOV26_0000 utc(2026, 11, 25, 17, 0, 0)

static void check_parse(const char *text, uint64_t expected, bool expected_has_time) {
        uint64_t usec = 0;
        bool has_time = !expected_has_time;
        int r = thaidate_parse(text, &usec, &has_time);

        if (r != 0 || usec != expected || has_time != expected_has_time)
                print_error("\"%s\": r=%d usec=%llu has_time=%d, expected %llu %d\n", text, r,
                            (unsigned long long) usec, has_time, (unsigned long long) expected, expected_has_time);
        assert_int_equal(r, 0);
        assert_int_equal(usec, expected);
        assert_int_equal(has_time, expected_has_time);
}

static void check_parse_fails(const char *text, int expected) {
        uint64_t usec = 4242;
        bool has_time = true;
        int r = thaidate_parse(text, &usec, &has_time);

        if (r != expected)
                print_error("\"%s\": r=%d, expected %d\n", text, r, expected);
        assert_int_equal(r, expected);
        assert_int_equal(usec, 4242);
        assert_true(has_time);
}

/* Also the teardown of the tests that switch zones, so that a failing one does not move the rest. */
static int setup_bangkok(void **state) {
        return thaidate_set_timezone("Asia/Bangkok") == 0 ? 0 : -1;
}

static void test_set_timezone(void **state) {
        assert_int_equal(thaidate_set_timezone("UTC"), 0);
        assert_string_equal(getenv("TZ"), "UTC");
        assert_int_equal(thaidate_set_timezone("Asia/Bangkok"), 0);
        assert_string_equal(getenv("TZ"), "Asia/Bangkok");

        assert_int_equal(thaidate_set_timezone(NULL), -EINVAL);
        assert_int_equal(thaidate_set_timezone(""), -EINVAL);
        assert_int_equal(thaidate_set_timezone("Asia/Nowhere"), -EINVAL);
        assert_int_equal(thaidate_set_timezone("/usr/share/zoneinfo/Asia/Bangkok"), -EINVAL);
        assert_int_equal(thaidate_set_timezone("../zoneinfo/Asia/Bangkok"), -EINVAL);
        assert_int_equal(thaidate_set_timezone("Asia/../Asia/Bangkok"), -EINVAL);
        /* A directory and a table in zoneinfo are not zones. */
        assert_int_equal(thaidate_set_timezone("Asia"), -EINVAL);
        assert_int_equal(thaidate_set_timezone("zone.tab"), -EINVAL);

        /* A refused name leaves the zone as it was. */
        assert_string_equal(getenv("TZ"), "Asia/Bangkok");
}

static void test_parse_iso(void **state) {
        check_parse("2026-11-26", NOV26_0000, false);
        check_parse("2026-11-26 07:00", NOV26_0700, true);
        check_parse("2026-11-26T07:00", NOV26_0700, true);
        check_parse("2026-11-26 07:00:30", NOV26_0700 + 30 * USEC, true);
        check_parse("2026-11-26T07:00:00", NOV26_0700, true);
        check_parse("  2026-11-26T07:00  ", NOV26_0700, true);

        /* An explicit offset wins over the local zone. */
        check_parse("2026-11-26T07:00:00+07:00", NOV26_0700, true);
        check_parse("2026-11-26T00:00:00Z", NOV26_0700, true);
        check_parse("2026-11-26T00:00Z", NOV26_0700, true);
        check_parse("2026-11-26T09:00:00+09:00", NOV26_0700, true);
        check_parse("2026-11-25T19:00:00-05:00", NOV26_0700, true);
        check_parse("2026-11-26T07:00:00+0700", NOV26_0700, true);
        check_parse("2026-11-26T05:30:00+05:30", NOV26_0700, true);
        check_parse("1970-01-01T00:00:00Z", 0, true);

        /* A Buddhist Era year is recognised here too. */
        check_parse("2569-11-26 07:00", NOV26_0700, true);
        /* Thai digits anywhere. */
        check_parse("๒๐๒๖-๑๑-๒๖ ๐๗:๐๐", NOV26_0700, true);
}

static void test_parse_day_first(void **state) {
        check_parse("26/11/2569", NOV26_0000, false);
        check_parse("26/11/2569 07:00", NOV26_0700, true);
        check_parse("26/11/2026 7.00", NOV26_0700, true);
        check_parse("26/11/2026 07:00:30", NOV26_0700 + 30 * USEC, true);
        check_parse("26-11-2569", NOV26_0000, false);
        check_parse("26.11.2569", NOV26_0000, false);
        check_parse("26.11.2569 07.00 น.", NOV26_0700, true);
        check_parse("26/11/2569 เวลา 07:00 น.", NOV26_0700, true);
        check_parse("26/11/2569 07.00น.", NOV26_0700, true);
        check_parse("26/11/2569 07.00 นาฬิกา", NOV26_0700, true);
        check_parse("วันที่ 26/11/2569", NOV26_0000, false);
        check_parse("1/2/2569", utc(2026, 1, 31, 17, 0, 0), false);
        check_parse("๒๖/๑๑/๒๕๖๙ ๐๗:๐๐", NOV26_0700, true);
        check_parse("\t 26/11/2569 \t", NOV26_0000, false);
}

static void test_parse_month_names(void **state) {
        static const char *const full[12] = {
                "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
                "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
        };
        static const char *const abbreviated[12] = {
                "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
        };
        static const char *const english[12] = {
                "January", "Feb", "MARCH", "apr", "May", "June", "Jul", "August", "Sept", "Oct", "November", "Dec.",
        };

        for (int i = 0; i < 12; i++) {
                /* The 1st of each month of 2569, local midnight, is 17:00 UTC the day before. */
                uint64_t expected = utc(2026, i + 1, 1, 0, 0, 0) - 7 * 3600 * USEC;
                char text[128];

                snprintf(text, sizeof(text), "1 %s 2569", full[i]);
                check_parse(text, expected, false);
                snprintf(text, sizeof(text), "1 %s 2569", abbreviated[i]);
                check_parse(text, expected, false);
                snprintf(text, sizeof(text), "1 %s 69", abbreviated[i]);
                check_parse(text, expected, false);
                snprintf(text, sizeof(text), "1 %s 2026", english[i]);
                check_parse(text, expected, false);
        }

        check_parse("26 พ.ย. 2569", NOV26_0000, false);
        check_parse("26 พ.ย. 69", NOV26_0000, false);
        check_parse("26 พย. 2569", NOV26_0000, false);
        check_parse("26 พ. ย. 2569", NOV26_0000, false);
        check_parse("26 พย 2569", NOV26_0000, false);
        check_parse("26พ.ย.69", NOV26_0000, false);
        check_parse("26 พ.ย. 2569 07.00 น.", NOV26_0700, true);
        check_parse("26 พ.ย. 2569 07:00", NOV26_0700, true);
        check_parse("26 พฤศจิกายน 2569", NOV26_0000, false);
        check_parse("26 พฤศจิกายน 2569 07.00 น.", NOV26_0700, true);
        check_parse("26 พฤศจิกายน พ.ศ. 2569 เวลา 07:00 น.", NOV26_0700, true);
        check_parse("26 พฤศจิกายน พ.ศ.2569", NOV26_0000, false);
        check_parse("26 พ.ย. พ.ศ. 69", NOV26_0000, false);
        check_parse("วันที่ 26 พฤศจิกายน 2569", NOV26_0000, false);
        check_parse("วันที่ ๒๖ พ.ย. ๖๙ เวลา ๐๗.๐๐ น.", NOV26_0700, true);
        check_parse("วันที่๒๖ พฤศจิกายน พ.ศ. ๒๕๖๙", NOV26_0000, false);
        /* "ค.ศ." makes the year Common Era, even one that would otherwise read as Buddhist Era. */
        check_parse("26 พฤศจิกายน ค.ศ. 2026", NOV26_0000, false);
        check_parse("26 November 2026 07:00", NOV26_0700, true);
        check_parse("26 Nov, 2026", NOV26_0000, false);
        /* The no-break and zero-width spaces word processors put between Thai words. */
        check_parse("26\u00A0พ.ย.\u00A02569", NOV26_0000, false);
        check_parse("วันที่\u200B26\u200Bพฤศจิกายน\u200B2569", NOV26_0000, false);
}

static void test_parse_weekday(void **state) {
        /* 26 November 2026 is a Thursday. */
        check_parse("วันพฤหัสบดีที่ 26 พฤศจิกายน 2569", NOV26_0000, false);
        check_parse("วันพฤหัสบดีที่ ๒๖ พ.ย. ๖๙ เวลา ๐๗.๐๐ น.", NOV26_0700, true);
        check_parse("วันพฤหัสที่ 26 พ.ย. 69", NOV26_0000, false);
        check_parse("วันพฤหัสบดี 26/11/2569", NOV26_0000, false);
        check_parse("วันอาทิตย์ที่ 1 พฤศจิกายน 2569", utc(2026, 10, 31, 17, 0, 0), false);

        /* A weekday that does not match the date is a mistake worth stopping for. */
        check_parse_fails("วันจันทร์ที่ 26 พฤศจิกายน 2569", -ERANGE);
        check_parse_fails("วันศุกร์ที่ 26/11/2569", -ERANGE);
}

static void test_parse_calendar(void **state) {
        /* 2567 is 2024, a leap year; 2569 is 2026, not one. */
        check_parse("29/02/2567", utc(2024, 2, 28, 17, 0, 0), false);
        check_parse("29 ก.พ. 67", utc(2024, 2, 28, 17, 0, 0), false);
        check_parse("2024-02-29", utc(2024, 2, 28, 17, 0, 0), false);
        check_parse("2000-02-29", utc(2000, 2, 28, 17, 0, 0), false);
        check_parse_fails("29/02/2569", -ERANGE);
        check_parse_fails("29 กุมภาพันธ์ 2569", -ERANGE);
        check_parse_fails("2100-02-29", -ERANGE);
        check_parse_fails("31/04/2569", -ERANGE);
        check_parse_fails("31 มิ.ย. 69", -ERANGE);
        check_parse_fails("00/11/2569", -ERANGE);
        check_parse_fails("26/13/2569", -ERANGE);
        check_parse_fails("26/00/2569", -ERANGE);
        check_parse_fails("2026-11-26 24:00", -ERANGE);
        check_parse_fails("26/11/2569 23:60", -ERANGE);
        check_parse_fails("26/11/2569 23:59:60", -ERANGE);
        check_parse_fails("2026-11-26T07:00:00+24:00", -ERANGE);
        check_parse("26/11/2569 23:59:59", utc(2026, 11, 26, 16, 59, 59), true);
        check_parse("26/11/2569 0.00", NOV26_0000, true);

        /* Before 1970: 2512 BE is 1969; two-digit 12 is 2512 too; local midnight of 1 January 1970
         * in Bangkok is still 1969 in UTC. */
        check_parse_fails("31/12/2512", -ERANGE);
        check_parse_fails("1 ม.ค. 12", -ERANGE);
        check_parse_fails("1969-12-31T23:59:59Z", -ERANGE);
        check_parse_fails("1970-01-01", -ERANGE);
        check_parse_fails("26 พฤศจิกายน พ.ศ. 2026", -ERANGE);
        check_parse("1970-01-01 07:00", 0, true);
}

static void test_parse_garbage(void **state) {
        static const char *const garbage[] = {
                "", "   ", "hello", "26", "26/11", "26/11/", "26 พ.ย.", "พ.ย. 2569", "2026-11", "2026-11-26T",
                "2026/11/26", "26/11-2569", "26/11/69", "26/11/02569", "26/11/256", "26 พ.ย. 256",
                "26 Nov 69", "26 พ.ย. ค.ศ. 26", "26 ธันวาที่ 2569", "26 พ.ย. 2569 น.", "2026-11-26 7 โมง",
                "7 โมงเช้า", "26/11/2569 07:00 extra", "26/11/2569 07", "26/11/2569 07:0", "26/11/2569 07:000",
                "26/11/2569 07:00:3", "26/11/2569 07:00.30", "26/11/2569 07:00+07:00", "2026-11-26T07:00:00+7",
                "2026-11-26T07:00:00+07:0", "2026-11-26Z", "126/11/2569", "99999999999999999999-11-26",
                "26/99999999999999999999/2569", "๒๖ พฤศจิกายน", "26 ๏ 2569", "\xFF\xFE", "26 \xE0 2569",
                "tomorrow", "เช้า", "วันที่", "-26/11/2569",
        };

        for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
                check_parse_fails(garbage[i], -EINVAL);
        check_parse_fails(NULL, -EINVAL);

        /* has_time is optional. */
        uint64_t usec;
        assert_int_equal(thaidate_parse("26/11/2569", &usec, NULL), 0);
        assert_int_equal(usec, NOV26_0000);
}

static void test_parse_long_input(void **state) {
        char text[100001];

        /* 200 bytes is the limit, counted before any Thai digit is shortened. */
        memset(text, ' ', 200);
        memcpy(text, "26/11/2569", 10);
        text[200] = '\0';
        check_parse(text, NOV26_0000, false);
        text[200] = ' ';
        text[201] = '\0';
        check_parse_fails(text, -EINVAL);

        /* Runs of digits, month text and Thai digits far beyond any buffer. */
        memset(text, '9', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        check_parse_fails(text, -EINVAL);
        check_parse_fails(text + sizeof(text) - 1 - 200, -EINVAL);

        strcpy(text, "26 ");
        for (size_t n = strlen(text); n + 3 < 199; n += 3)
                strcat(text, "ก");
        strcat(text, "69");
        check_parse_fails(text, -EINVAL);

        text[0] = '\0';
        for (int i = 0; i < 66; i++)
                strcat(text, "๙");
        assert_int_equal(strlen(text), 198);
        check_parse_fails(text, -EINVAL);
}

static void test_format(void **state) {
        char buffer[128];

        assert_int_equal(thaidate_format(NOV26_0700, THAIDATE_LONG, buffer, sizeof(buffer)),
                         strlen("26 พฤศจิกายน 2569 เวลา 07:00 น."));
        assert_string_equal(buffer, "26 พฤศจิกายน 2569 เวลา 07:00 น.");
        assert_true(thaidate_format(NOV26_0700, THAIDATE_LONG_DATE, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "26 พฤศจิกายน 2569");
        assert_true(thaidate_format(NOV26_0700, THAIDATE_SHORT, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "26 พ.ย. 2569 07:00");
        assert_true(thaidate_format(NOV26_0700, THAIDATE_SHORT_DATE, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "26 พ.ย. 69");

        /* Single-digit days are not padded; hours and minutes are. */
        assert_true(thaidate_format(utc(2027, 1, 5, 2, 5, 0), THAIDATE_LONG, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "5 มกราคม 2570 เวลา 09:05 น.");
        assert_true(thaidate_format(utc(2030, 6, 1, 0, 0, 0), THAIDATE_SHORT_DATE, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "1 มิ.ย. 73");
        /* The two-digit year of 2600 BE (2057). */
        assert_true(thaidate_format(utc(2057, 3, 1, 0, 0, 0), THAIDATE_SHORT_DATE, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "1 มี.ค. 00");

        assert_int_equal(thaidate_format(NOV26_0700, (ThaiDateStyle) 99, buffer, sizeof(buffer)), -EINVAL);
}

static void test_format_buffer_size(void **state) {
        const char *expected = "26 พ.ย. 69";
        size_t n = strlen(expected);
        char buffer[64];

        /* Too small by one: nothing is written, not even a truncated string. */
        strcpy(buffer, "untouched");
        assert_int_equal(thaidate_format(NOV26_0700, THAIDATE_SHORT_DATE, buffer, n), -ENOBUFS);
        assert_string_equal(buffer, "untouched");
        assert_int_equal(thaidate_format(NOV26_0700, THAIDATE_SHORT_DATE, NULL, 0), -ENOBUFS);
        assert_int_equal(thaidate_format(NOV26_0700, THAIDATE_SHORT_DATE, buffer, n + 1), (int) n);
        assert_string_equal(buffer, expected);

        strcpy(buffer, "untouched");
        assert_int_equal(thaidate_format_iso(NOV26_0700, buffer, 25), -ENOBUFS);
        assert_int_equal(thaidate_format_utc(NOV26_0700, buffer, 20), -ENOBUFS);
        assert_int_equal(thaidate_format_day(NOV26_0700, false, buffer, 10), -ENOBUFS);
        assert_int_equal(thaidate_format_day(NOV26_0700, true, buffer, 8), -ENOBUFS);
        assert_string_equal(buffer, "untouched");
        assert_int_equal(thaidate_format_iso(NOV26_0700, buffer, 26), 25);
        assert_int_equal(thaidate_format_utc(NOV26_0700, buffer, 21), 20);
        assert_int_equal(thaidate_format_day(NOV26_0700, false, buffer, 11), 10);
        assert_int_equal(thaidate_format_day(NOV26_0700, true, buffer, 9), 8);
}

/* 17:30 UTC on the 25th is already half past midnight on the 26th in Bangkok. */
static void test_format_around_midnight(void **state) {
        uint64_t after = utc(2026, 11, 25, 17, 30, 0), before = utc(2026, 11, 25, 16, 59, 59);
        char buffer[128];

        assert_true(thaidate_format(after, THAIDATE_LONG, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "26 พฤศจิกายน 2569 เวลา 00:30 น.");
        assert_true(thaidate_format_iso(after, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-26T00:30:00+07:00");
        assert_true(thaidate_format_utc(after, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-25T17:30:00Z");
        assert_true(thaidate_format_day(after, false, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-26");
        assert_true(thaidate_format_day(after, true, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "20261126");

        assert_true(thaidate_format(before, THAIDATE_SHORT, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "25 พ.ย. 2569 23:59");
        assert_true(thaidate_format_day(before, false, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-25");

        /* New Year's Eve in UTC is already the next Buddhist Era year in Bangkok. */
        assert_true(thaidate_format(utc(2026, 12, 31, 18, 0, 0), THAIDATE_LONG_DATE, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "1 มกราคม 2570");
}

/* The machine formats write four-digit years; a year past 9999 is refused, not cut. */
static void test_format_year_out_of_range(void **state) {
        char buffer[64] = "untouched";

        (void) state;
        assert_int_equal(thaidate_format_iso(utc(10000, 1, 1, 0, 0, 0), buffer, sizeof(buffer)), -EOVERFLOW);
        assert_int_equal(thaidate_format_utc(utc(10000, 1, 1, 0, 0, 0), buffer, sizeof(buffer)), -EOVERFLOW);
        assert_int_equal(thaidate_format_day(utc(10000, 1, 1, 0, 0, 0), true, buffer, sizeof(buffer)), -EOVERFLOW);
        assert_string_equal(buffer, "untouched");
        assert_int_equal(thaidate_format_utc(utc(9999, 12, 31, 23, 59, 59), buffer, sizeof(buffer)), 20);
        assert_string_equal(buffer, "9999-12-31T23:59:59Z");
        assert_int_equal(thaidate_format_utc(0, buffer, sizeof(buffer)), 20);
        assert_string_equal(buffer, "1970-01-01T00:00:00Z");
}

static void test_format_iso_other_zones(void **state) {
        char buffer[64];

        assert_int_equal(thaidate_set_timezone("UTC"), 0);
        assert_true(thaidate_format_iso(NOV26_0700, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-26T00:00:00+00:00");
        assert_true(thaidate_format_day(utc(2026, 11, 25, 17, 30, 0), false, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-25");

        assert_int_equal(thaidate_set_timezone("America/St_Johns"), 0);
        assert_true(thaidate_format_iso(NOV26_0700, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-25T20:30:00-03:30");
}

/* The configured zone may be one with summer time: mktime() must be left to work out which applies. */
static void test_zone_with_summer_time(void **state) {
        char buffer[64];

        assert_int_equal(thaidate_set_timezone("Europe/Berlin"), 0);
        check_parse("2026-07-01 12:00", utc(2026, 7, 1, 10, 0, 0), true);
        check_parse("1 ม.ค. 69 12:00", utc(2026, 1, 1, 11, 0, 0), true);
        assert_true(thaidate_format_iso(utc(2026, 7, 1, 10, 0, 0), buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-07-01T12:00:00+02:00");
        assert_true(thaidate_format_iso(utc(2026, 1, 1, 11, 0, 0), buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-01-01T12:00:00+01:00");
}

static void test_utc_round_trip(void **state) {
        static const uint64_t instants[] = {
                0, 1, 951782400, 1709164800, 1795651200, 4102444799, 253402300799,
        };
        uint32_t seed = 2569;
        char buffer[64];
        uint64_t usec;

        for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
                assert_int_equal(thaidate_format_utc(instants[i] * USEC, buffer, sizeof(buffer)), 20);
                assert_int_equal(thaidate_parse_utc(buffer, &usec), 0);
                assert_int_equal(usec, instants[i] * USEC);
        }
        assert_true(thaidate_format_utc(253402300799 * USEC, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "9999-12-31T23:59:59Z");

        /* Seconds are the resolution: the fraction is dropped. */
        assert_true(thaidate_format_utc(NOV26_0700 + 999999, buffer, sizeof(buffer)) > 0);
        assert_string_equal(buffer, "2026-11-26T00:00:00Z");

        for (int i = 0; i < 10000; i++) {
                seed = (uint32_t) (((uint64_t) seed * 1103515245u + 12345u) & 0xFFFFFFFFu);
                uint64_t t = (uint64_t) seed * 3 * USEC;
                assert_true(thaidate_format_utc(t, buffer, sizeof(buffer)) > 0);
                assert_int_equal(thaidate_parse_utc(buffer, &usec), 0);
                assert_int_equal(usec, t);
        }
}

static void test_parse_utc_strict(void **state) {
        static const char *const bad[] = {
                "", "2026-11-26T00:00:00", "2026-11-26 00:00:00Z", "2026-11-26T00:00:00+07:00",
                "2026-11-26T00:00:00z", "2026-11-26T00:00:00Zx", " 2026-11-26T00:00:00Z",
                "2026-11-26T00:00:00.000Z", "2026-11-26T00:00Z", "+026-11-26T00:00:00Z", "2026-1a-26T00:00:00Z",
                "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-00T00:00:00Z",
                "2026-11-26T24:00:00Z", "2026-11-26T23:60:00Z", "2026-11-26T23:59:60Z", "1969-12-31T23:59:59Z",
                "๒๐๒๖-11-26T00:00:00Z", "26/11/2569",
        };
        uint64_t usec = 4242;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(thaidate_parse_utc(bad[i], &usec), -EINVAL);
                assert_int_equal(usec, 4242);
        }
        assert_int_equal(thaidate_parse_utc(NULL, &usec), -EINVAL);
        assert_int_equal(thaidate_parse_utc("2024-02-29T12:00:00Z", &usec), 0);
        assert_int_equal(usec, utc(2024, 2, 29, 12, 0, 0));
}

/* What thaidate_format() and thaidate_format_iso() write, thaidate_parse() reads back. */
static void test_format_parse_round_trip(void **state) {
        uint32_t seed = 1;
        char buffer[128];
        uint64_t usec;
        bool has_time;

        for (int i = 0; i < 5000; i++) {
                seed = (uint32_t) (((uint64_t) seed * 1103515245u + 12345u) & 0xFFFFFFFFu);
                /* Whole minutes between 1970 and 2070. */
                uint64_t t = (uint64_t) (seed % (100u * 365 * 24 * 60)) * 60 * USEC;

                assert_true(thaidate_format(t, THAIDATE_LONG, buffer, sizeof(buffer)) > 0);
                assert_int_equal(thaidate_parse(buffer, &usec, &has_time), 0);
                assert_int_equal(usec, t);
                assert_true(has_time);

                assert_true(thaidate_format(t, THAIDATE_SHORT, buffer, sizeof(buffer)) > 0);
                assert_int_equal(thaidate_parse(buffer, &usec, NULL), 0);
                assert_int_equal(usec, t);

                assert_true(thaidate_format_iso(t, buffer, sizeof(buffer)) > 0);
                assert_int_equal(thaidate_parse(buffer, &usec, NULL), 0);
                assert_int_equal(usec, t);

                /* Dates alone come back as local midnight of the same day, which for 1 January 1970
                 * in Bangkok lies before the epoch. */
                if (t < 17 * 3600 * USEC)
                        continue;
                assert_true(thaidate_format(t, THAIDATE_LONG_DATE, buffer, sizeof(buffer)) > 0);
                assert_int_equal(thaidate_parse(buffer, &usec, &has_time), 0);
                assert_false(has_time);
                assert_int_equal(usec, t - (t / USEC + 7 * 3600) % 86400 * USEC);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_set_timezone, setup_bangkok),
                cmocka_unit_test(test_parse_iso),
                cmocka_unit_test(test_parse_day_first),
                cmocka_unit_test(test_parse_month_names),
                cmocka_unit_test(test_parse_weekday),
                cmocka_unit_test(test_parse_calendar),
                cmocka_unit_test(test_parse_garbage),
                cmocka_unit_test(test_parse_long_input),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_format_buffer_size),
                cmocka_unit_test(test_format_around_midnight),
                cmocka_unit_test(test_format_year_out_of_range),
                cmocka_unit_test_teardown(test_format_iso_other_zones, setup_bangkok),
                cmocka_unit_test_teardown(test_zone_with_summer_time, setup_bangkok),
                cmocka_unit_test(test_utc_round_trip),
                cmocka_unit_test(test_parse_utc_strict),
                cmocka_unit_test(test_format_parse_round_trip),
        };

        return cmocka_run_group_tests(tests, setup_bangkok, NULL);
}
