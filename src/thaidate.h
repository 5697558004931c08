/* SPDX-License-Identifier: MIT */
/*
 * thaidate: the dates staff write, and the dates the public reads.
 *
 * All conversions between local time and UTC use the process's time zone, which the daemon sets
 * once from the config with thaidate_set_timezone() (default Asia/Bangkok).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets TZ for the process and calls tzset(). Returns -EINVAL when /usr/share/zoneinfo has no such zone. */
int thaidate_set_timezone(const char *timezone);

/*
 * Parses a date or date-time written in local time and returns it as microseconds since the
 * epoch (UTC).  Accepted, with ASCII or Thai digits, surrounding blanks ignored:
 *   2026-11-26, 2026-11-26 07:00, 2026-11-26T07:00, 2026-11-26 07:00:30, 2026-11-26T07:00:00+07:00, ...Z
 *   26/11/2569, 26/11/2569 07:00, 26/11/2026 7.00, 26-11-2569 (day first; / - or .)
 *   26 พ.ย. 2569, 26 พ.ย. 69 (two-digit BE year: 25xx), 26 พฤศจิกายน 2569 07.00 น., 26 พฤศจิกายน พ.ศ. 2569 เวลา 07:00 น.
 *   "วันที่ 26 ..." prefixes are allowed; a time may be written 07:00, 7.00, 07:00 น., 7 โมง is NOT accepted.
 * A year >= 2400 is Buddhist Era and has 543 subtracted.  A date with no time means 00:00 local.
 *
 * Returns 0 and sets *ret_usec (and *ret_has_time if not NULL).
 * Returns -EINVAL when the text is not a date in any accepted form,
 *         -ERANGE when it has the form of one but names an impossible day or time (31/02, 25:00, year < 1970).
 */
int thaidate_parse(const char *text, uint64_t *ret_usec, bool *ret_has_time);

typedef enum ThaiDateStyle {
        THAIDATE_LONG,      /* "26 พฤศจิกายน 2569 เวลา 07:00 น." */
        THAIDATE_LONG_DATE, /* "26 พฤศจิกายน 2569" */
        THAIDATE_SHORT,     /* "26 พ.ย. 2569 07:00" */
        THAIDATE_SHORT_DATE,/* "26 พ.ย. 69" */
} ThaiDateStyle;

/* Formats `usec` (UTC) in local time, Thai month names, Buddhist Era year. Returns the length written, or -ENOBUFS. */
int thaidate_format(uint64_t usec, ThaiDateStyle style, char *buffer, size_t size);

/* Formats `usec` in local time as ISO 8601 with offset ("2026-11-26T07:00:00+07:00"). */
int thaidate_format_iso(uint64_t usec, char *buffer, size_t size);

/* Formats `usec` as UTC ISO 8601 ("2026-11-26T00:00:00Z"). */
int thaidate_format_utc(uint64_t usec, char *buffer, size_t size);

/* Parses exactly what thaidate_format_utc() writes. Returns -EINVAL otherwise. */
int thaidate_parse_utc(const char *text, uint64_t *ret_usec);

/* Local calendar date of `usec` as "YYYY-MM-DD" (Common Era) or "YYYYMMDD" (compact). */
int thaidate_format_day(uint64_t usec, bool compact, char *buffer, size_t size);
