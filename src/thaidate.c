/* SPDX-License-Identifier: MIT */
/*
 * thaidate: the dates staff write, and the dates the public reads.
 *
 * Parsing runs in two steps: a reader that only recognises the written form and collects the numbers
 * (anything it does not recognise is -EINVAL), then a check of those numbers against the calendar
 * (-ERANGE).  That way "31/04/2569" and "hello" get different messages.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "textenc.h"
#include "thaidate.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define THAIDATE_TEXT_MAX 200
#define BUDDHIST_ERA_OFFSET 543
#define USEC_PER_SEC UINT64_C(1000000)

static const char *const month_full[12] = {
        "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
        "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
};

static const char *const month_short[12] = {
        "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
};

/* The abbreviations as read_month_name() sees them, once dots and blanks are dropped. */
static const char *const month_short_bare[12] = {
        "มค", "กพ", "มีค", "เมย", "พค", "มิย", "กค", "สค", "กย", "ตค", "พย", "ธค",
};

static const char *const month_english[12] = {
        "january", "february", "march", "april", "may", "june",
        "july", "august", "september", "october", "november", "december",
};

/* Indexed like tm_wday.  Official notices say "วันพฤหัสบดีที่ 26 ..." as often as "วันที่ 26 ...". */
static const char *const weekday_thai[7] = {
        "อาทิตย์", "จันทร์", "อังคาร", "พุธ", "พฤหัสบดี", "ศุกร์", "เสาร์",
};

int thaidate_set_timezone(const char *name) {
        char path[sizeof(ZONEINFO_DIR) + 256], magic[4];
        struct stat st;
        FILE *f;
        size_t n;

        /* The name becomes a path: keep it inside the zoneinfo directory. */
        if (!name || name[0] == '\0' || name[0] == '/' || strstr(name, "..") ||
            strlen(name) > 255)
                return -EINVAL;

        snprintf(path, sizeof(path), ZONEINFO_DIR "%s", name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return -EINVAL;

        /* zoneinfo also holds zone.tab, leapseconds and the like; only TZif files are zones. */
        f = fopen(path, "re");
        if (!f)
                return -EINVAL;
        n = fread(magic, 1, sizeof(magic), f);
        fclose(f);
        if (n != sizeof(magic) || memcmp(magic, "TZif", sizeof(magic)) != 0)
                return -EINVAL;

        if (setenv("TZ", name, 1) < 0)
                return -errno;
        tzset();
        return 0;
}

static bool is_leap_year(int year) {
        return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month) {
        static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

/* When s ends with suffix (and has more before it), cuts the suffix off and returns true. */
static bool ends_with_cut(char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        if (n <= m || !streq(s + n - m, suffix))
                return false;
        s[n - m] = '\0';
        return true;
}

/* The length of the blank at p: space, tab, and the no-break and zero-width spaces that word
 * processors put into Thai text. */
static size_t blank_length(const char *p) {
        if (*p == ' ' || *p == '\t')
                return 1;
        if (strncmp(p, "\u00A0", 2) == 0)
                return 2;
        if (strncmp(p, "\u200B", 3) == 0)
                return 3;
        return 0;
}

static const char *skip_blanks(const char *p) {
        for (size_t k; (k = blank_length(p)) > 0;)
                p += k;
        return p;
}

static bool skip_word(const char **p, const char *word) {
        size_t n = strlen(word);

        if (strncmp(*p, word, n) != 0)
                return false;
        *p += n;
        return true;
}

/* Reads a run of digits and returns how many there were; only the first nine count towards the
 * value, which is enough to reject every over-long field by its digit count. */
static size_t read_number(const char **p, int *ret_value) {
        size_t digits = 0;
        int value = 0;

        for (; is_digit(**p); (*p)++, digits++)
                if (digits < 9)
                        value = value * 10 + (**p - '0');
        *ret_value = value;
        return digits;
}

typedef enum Era {
        ERA_GUESS,            /* a year >= 2400 is Buddhist Era, anything else Common Era */
        ERA_BUDDHIST,         /* "พ.ศ." */
        ERA_COMMON,           /* "ค.ศ." */
} Era;

/* What the reader found, before any of it is checked against the calendar. */
typedef struct DateFields {
        int year, month, day, hour, minute, second;
        size_t year_digits;
        bool thai_month;
        Era era;
        int weekday;          /* as tm_wday, -1 when none was written */
        bool has_time;
        bool has_offset;
        int offset_sign, offset_hours, offset_minutes;
} DateFields;

/* "วันที่", "วันพฤหัสบดีที่", "วันพฤหัส": an optional weekday, checked later against the date. */
static void read_day_prefix(const char **p, DateFields *f) {
        if (!skip_word(p, "วัน"))
                return;
        *p = skip_blanks(*p);
        for (int i = 0; i < 7 && f->weekday < 0; i++)
                if (skip_word(p, weekday_thai[i]))
                        f->weekday = i;
        if (f->weekday < 0 && skip_word(p, "พฤหัส"))
                f->weekday = 4;
        *p = skip_blanks(*p);
        (void) skip_word(p, "ที่");
        *p = skip_blanks(*p);
}

static int month_from_name(const char *name, bool *ret_thai) {
        size_t n = strlen(name);

        for (int i = 0; i < 12; i++) {
                if (streq(name, month_full[i]) || streq(name, month_short_bare[i])) {
                        *ret_thai = true;
                        return i + 1;
                }
                /* "November", "Nov", and the "Sept" some people write. */
                if (streq(name, month_english[i]) || (n == 3 && strncmp(name, month_english[i], 3) == 0) ||
                    (i == 8 && streq(name, "sept"))) {
                        *ret_thai = false;
                        return i + 1;
                }
        }
        return 0;
}

/*
 * The month-name form: everything between the day and the year (" พ.ย. ", " พฤศจิกายน พ.ศ. ",
 * " Nov "). Dots, blanks and commas are dropped first, so that "พ.ย.", "พย.", "พ. ย." and "พย" all
 * match, and an era marker at the end is split off.
 */
static int read_month_name(const char **p, DateFields *f) {
        char name[64];
        size_t n = 0;
        const char *q = *p;

        while (*q && !is_digit(*q)) {
                size_t k = blank_length(q);

                if (k > 0 || *q == '.' || *q == ',') {
                        q += k > 0 ? k : 1;
                        continue;
                }
                if (n + 1 >= sizeof(name))
                        return -EINVAL;
                name[n++] = *q >= 'A' && *q <= 'Z' ? (char) (*q - 'A' + 'a') : *q;
                q++;
        }
        name[n] = '\0';

        if (ends_with_cut(name, "พศ"))
                f->era = ERA_BUDDHIST;
        else if (ends_with_cut(name, "คศ"))
                f->era = ERA_COMMON;

        f->month = month_from_name(name, &f->thai_month);
        if (f->month == 0)
                return -EINVAL;
        *p = q;
        return 0;
}

/* "7.00", "07:00", "07:00:30": minutes and seconds have two digits and share the separator. */
static int read_time(const char **p, DateFields *f) {
        const char *q = *p;
        size_t digits = read_number(&q, &f->hour);
        char separator = *q;

        if (digits < 1 || digits > 2 || (separator != ':' && separator != '.'))
                return -EINVAL;
        q++;
        if (read_number(&q, &f->minute) != 2)
                return -EINVAL;
        if (q[0] == separator && is_digit(q[1])) {
                q++;
                if (read_number(&q, &f->second) != 2)
                        return -EINVAL;
        }

        f->has_time = true;
        *p = q;
        return 0;
}

/* "Z", "+07:00", "+0700", "+07", or nothing. */
static int read_offset(const char **p, DateFields *f) {
        const char *q = *p;
        int value;
        size_t digits;

        if (*q == 'Z' || *q == 'z') {
                f->has_offset = true;
                f->offset_sign = 1;
                *p = q + 1;
                return 0;
        }
        if (*q != '+' && *q != '-')
                return 0;

        f->offset_sign = *q++ == '-' ? -1 : 1;
        digits = read_number(&q, &value);
        if (digits == 4) {
                f->offset_hours = value / 100;
                f->offset_minutes = value % 100;
        } else if (digits == 2) {
                f->offset_hours = value;
                if (*q == ':') {
                        q++;
                        if (read_number(&q, &f->offset_minutes) != 2)
                                return -EINVAL;
                }
        } else
                return -EINVAL;

        f->has_offset = true;
        *p = q;
        return 0;
}

/* Recognises the written form (see thaidate.h) and fills in the fields; -EINVAL when it is none. */
static int read_date(const char *text, DateFields *f) {
        const char *p = skip_blanks(text), *q;
        bool iso = false;
        size_t digits;
        int first, r;

        read_day_prefix(&p, f);

        digits = read_number(&p, &first);
        if (digits == 4 && *p == '-') {
                /* 2026-11-26 */
                iso = true;
                f->year = first;
                f->year_digits = 4;
                p++;
                digits = read_number(&p, &f->month);
                if (digits < 1 || digits > 2 || *p != '-')
                        return -EINVAL;
                p++;
                digits = read_number(&p, &f->day);
                if (digits < 1 || digits > 2)
                        return -EINVAL;
        } else if (digits >= 1 && digits <= 2 && (*p == '/' || *p == '-' || *p == '.') && is_digit(p[1])) {
                /* 26/11/2569, 26-11-2569, 26.11.2569 */
                char separator = *p++;

                f->day = first;
                digits = read_number(&p, &f->month);
                if (digits > 2 || *p != separator)
                        return -EINVAL;
                p++;
                f->year_digits = read_number(&p, &f->year);
                if (f->year_digits != 4)
                        return -EINVAL;
        } else if (digits >= 1 && digits <= 2) {
                /* 26 พ.ย. 2569, 26 พฤศจิกายน พ.ศ. 2569, 26 พ.ย. 69, 26 Nov 2026 */
                f->day = first;
                r = read_month_name(&p, f);
                if (r < 0)
                        return r;
                f->year_digits = read_number(&p, &f->year);
                /* Two digits are only ever a Buddhist Era year after a Thai month name ("พ.ย. 69");
                 * anywhere else they would be a guess. */
                if (f->year_digits != 4 && !(f->year_digits == 2 && f->thai_month && f->era != ERA_COMMON))
                        return -EINVAL;
        } else
                return -EINVAL;

        /* The time: "T07:00" in ISO form, or after blanks with an optional "เวลา". */
        if (iso && (*p == 'T' || *p == 't')) {
                p++;
                r = read_time(&p, f);
                if (r < 0)
                        return r;
        } else {
                q = skip_blanks(p);
                if (skip_word(&q, "เวลา"))
                        q = skip_blanks(q);
                else if (!is_digit(*q))
                        q = NULL;
                if (q) {
                        r = read_time(&q, f);
                        if (r < 0)
                                return r;
                        p = q;
                }
        }

        /* An explicit offset is ISO's business; "น." ("o'clock") is what Thai writers put after a time. */
        if (iso && f->has_time) {
                r = read_offset(&p, f);
                if (r < 0)
                        return r;
        }
        p = skip_blanks(p);
        if (f->has_time && !f->has_offset &&
            (skip_word(&p, "นาฬิกา") || skip_word(&p, "น.") || skip_word(&p, "น")))
                p = skip_blanks(p);

        return *p == '\0' ? 0 : -EINVAL;
}

/* Checks the fields against the calendar and turns them into seconds since the epoch. */
static int fields_to_time(const DateFields *f, time_t *ret_time) {
        int year = f->year;
        struct tm tm;
        time_t t;

        if (f->year_digits == 2)
                year += 2500 - BUDDHIST_ERA_OFFSET;
        else if (f->era == ERA_BUDDHIST || (f->era == ERA_GUESS && year >= 2400))
                year -= BUDDHIST_ERA_OFFSET;

        if (year < 1970 || f->month < 1 || f->month > 12 || f->day < 1 ||
            f->day > days_in_month(year, f->month) || f->hour > 23 || f->minute > 59 || f->second > 59)
                return -ERANGE;
        if (f->has_offset && (f->offset_hours > 23 || f->offset_minutes > 59))
                return -ERANGE;

        /* timegm() works out the weekday of the written date whatever the zone. */
        tm = (struct tm) { .tm_year = year - 1900, .tm_mon = f->month - 1, .tm_mday = f->day, .tm_hour = 12 };
        (void) timegm(&tm);
        if (f->weekday >= 0 && tm.tm_wday != f->weekday)
                return -ERANGE;

        tm = (struct tm) {
                .tm_year = year - 1900,
                .tm_mon = f->month - 1,
                .tm_mday = f->day,
                .tm_hour = f->hour,
                .tm_min = f->minute,
                .tm_sec = f->second,
                .tm_isdst = -1,
        };
        if (f->has_offset)
                t = timegm(&tm) - f->offset_sign * (f->offset_hours * 3600 + f->offset_minutes * 60);
        else
                t = mktime(&tm);
        /* Also catches mktime()'s -1, and 1970-01-01 00:00 local, which lies before the epoch east of UTC. */
        if (t < 0)
                return -ERANGE;

        *ret_time = t;
        return 0;
}

int thaidate_parse(const char *text, uint64_t *ret_usec, bool *ret_has_time) {
        char buffer[THAIDATE_TEXT_MAX + 1];
        DateFields fields = { .weekday = -1 };
        size_t n;
        time_t t;
        int r;

        assert(ret_usec);

        if (!text)
                return -EINVAL;
        n = strnlen(text, THAIDATE_TEXT_MAX + 1);
        if (n > THAIDATE_TEXT_MAX)
                return -EINVAL;
        memcpy(buffer, text, n + 1);
        thai_digits_to_ascii(buffer);

        r = read_date(buffer, &fields);
        if (r < 0)
                return r;
        r = fields_to_time(&fields, &t);
        if (r < 0)
                return r;

        *ret_usec = (uint64_t) t * USEC_PER_SEC;
        if (ret_has_time)
                *ret_has_time = fields.has_time;
        return 0;
}

/* Copies a formatted string out only when it fits whole, so the caller's buffer is untouched on failure. */
static int copy_out(const char *s, int n, char *buffer, size_t size) {
        assert(buffer || size == 0);

        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= size)
                return -ENOBUFS;
        memcpy(buffer, s, (size_t) n + 1);
        return n;
}

static int local_time(uint64_t usec, struct tm *ret_tm) {
        time_t t = (time_t) (usec / USEC_PER_SEC);

        return localtime_r(&t, ret_tm) ? 0 : -EOVERFLOW;
}

int thaidate_format(uint64_t usec, ThaiDateStyle style, char *buffer, size_t size) {
        char s[128];
        struct tm tm;
        int r, n, year;

        r = local_time(usec, &tm);
        if (r < 0)
                return r;
        year = tm.tm_year + 1900 + BUDDHIST_ERA_OFFSET;

        switch (style) {
        case THAIDATE_LONG:
                n = snprintf(s, sizeof(s), "%d %s %d เวลา %02d:%02d น.",
                             tm.tm_mday, month_full[tm.tm_mon], year, tm.tm_hour, tm.tm_min);
                break;
        case THAIDATE_LONG_DATE:
                n = snprintf(s, sizeof(s), "%d %s %d", tm.tm_mday, month_full[tm.tm_mon], year);
                break;
        case THAIDATE_SHORT:
                n = snprintf(s, sizeof(s), "%d %s %d %02d:%02d",
                             tm.tm_mday, month_short[tm.tm_mon], year, tm.tm_hour, tm.tm_min);
                break;
        case THAIDATE_SHORT_DATE:
                n = snprintf(s, sizeof(s), "%d %s %02d", tm.tm_mday, month_short[tm.tm_mon], year % 100);
                break;
        default:
                return -EINVAL;
        }
        return copy_out(s, n, buffer, size);
}

/* Writes v as exactly `width` digits at p (v >= 0); returns the end.  The ISO and day formats below
 * are written digit by digit: the state files and receipts carry many, and snprintf() was a visible
 * share of the daemon's CPU. */
static char *put_digits(char *p, long v, unsigned width) {
        for (unsigned i = width; i > 0; i--) {
                p[i - 1] = (char) ('0' + v % 10);
                v /= 10;
        }
        return p + width;
}

/* "YYYY-MM-DDTHH:MM:SS" of tm at s (19 characters), for years 0..9999; returns the end. */
static char *put_iso(char *s, const struct tm *tm) {
        char *p = put_digits(s, tm->tm_year + 1900L, 4);
        *p++ = '-';
        p = put_digits(p, tm->tm_mon + 1L, 2);
        *p++ = '-';
        p = put_digits(p, tm->tm_mday, 2);
        *p++ = 'T';
        p = put_digits(p, tm->tm_hour, 2);
        *p++ = ':';
        p = put_digits(p, tm->tm_min, 2);
        *p++ = ':';
        return put_digits(p, tm->tm_sec, 2);
}

static bool year_fits(const struct tm *tm) {
        return tm->tm_year >= -1900 && tm->tm_year <= 9999 - 1900;
}

int thaidate_format_iso(uint64_t usec, char *buffer, size_t size) {
        char s[64], *p;
        struct tm tm;
        long offset;
        int r;

        r = local_time(usec, &tm);
        if (r < 0)
                return r;
        if (!year_fits(&tm))
                return -EOVERFLOW;
        offset = labs(tm.tm_gmtoff) / 60;
        p = put_iso(s, &tm);
        *p++ = tm.tm_gmtoff < 0 ? '-' : '+';
        p = put_digits(p, offset / 60 % 100, 2);
        *p++ = ':';
        p = put_digits(p, offset % 60, 2);
        *p = 0;
        return copy_out(s, (int) (p - s), buffer, size);
}

int thaidate_format_utc(uint64_t usec, char *buffer, size_t size) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        char s[64], *p;
        struct tm tm;

        if (!gmtime_r(&t, &tm) || !year_fits(&tm))
                return -EOVERFLOW;
        p = put_iso(s, &tm);
        *p++ = 'Z';
        *p = 0;
        return copy_out(s, (int) (p - s), buffer, size);
}

/* Reads exactly `count` ASCII digits at text[at]. */
static int digits_at(const char *text, size_t at, size_t count) {
        int value = 0;

        for (size_t i = at; i < at + count; i++) {
                if (!is_digit(text[i]))
                        return -1;
                value = value * 10 + (text[i] - '0');
        }
        return value;
}

int thaidate_parse_utc(const char *text, uint64_t *ret_usec) {
        int year, month, day, hour, minute, second;
        struct tm tm;
        time_t t;

        assert(ret_usec);

        /* Only the one shape thaidate_format_utc() writes: "YYYY-MM-DDTHH:MM:SSZ". */
        if (!text || strnlen(text, 21) != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
            text[13] != ':' || text[16] != ':' || text[19] != 'Z')
                return -EINVAL;

        year = digits_at(text, 0, 4);
        month = digits_at(text, 5, 2);
        day = digits_at(text, 8, 2);
        hour = digits_at(text, 11, 2);
        minute = digits_at(text, 14, 2);
        second = digits_at(text, 17, 2);
        if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
            hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
                return -EINVAL;

        tm = (struct tm) { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                           .tm_hour = hour, .tm_min = minute, .tm_sec = second };
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;

        *ret_usec = (uint64_t) t * USEC_PER_SEC;
        return 0;
}

int thaidate_format_day(uint64_t usec, bool compact, char *buffer, size_t size) {
        char s[32], *p;
        struct tm tm;
        int r;

        r = local_time(usec, &tm);
        if (r < 0)
                return r;
        if (!year_fits(&tm))
                return -EOVERFLOW;
        p = put_digits(s, tm.tm_year + 1900L, 4);
        if (!compact)
                *p++ = '-';
        p = put_digits(p, tm.tm_mon + 1L, 2);
        if (!compact)
                *p++ = '-';
        p = put_digits(p, tm.tm_mday, 2);
        *p = 0;
        return copy_out(s, (int) (p - s), buffer, size);
}
