/* SPDX-License-Identifier: MIT */
/* line-text.c: measuring and cutting text in LINE's UTF-16 units (see line-text.h). */
#include "line-text.h"

#include "plugin-util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The code point at `s` of clean text, and its length in bytes. */
static size_t next_char(const char *s, uint32_t *ret_cp) {
        size_t n = plugin_utf8_decode((const unsigned char *) s, strnlen(s, 4), ret_cp);
        if (n == 0) { /* not clean after all: count the byte as one unit rather than loop */
                *ret_cp = 0xFFFD;
                return 1;
        }
        return n;
}

/*
 * Marks that belong to the character before them: Thai vowels and tone marks written above or
 * below the consonant, the joiners and variation selectors of emoji sequences, and the general
 * combining marks.  A cut never lands just before one.
 */
static bool char_is_attached(uint32_t cp) {
        return cp == 0x0E31 || (cp >= 0x0E34 && cp <= 0x0E3A) || (cp >= 0x0E47 && cp <= 0x0E4E) ||
               (cp >= 0x0300 && cp <= 0x036F) || cp == 0x200D || (cp >= 0xFE00 && cp <= 0xFE0F) ||
               (cp >= 0x1F3FB && cp <= 0x1F3FF);
}

static bool char_is_unwanted(uint32_t cp) {
        if (cp < 0x20)
                return cp != '\n' && cp != '\t';
        return cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFFFE || cp == 0xFFFF;
}

static void trim_end(char *s) {
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
                s[--n] = 0;
}

char *line_text_clean(const char *text) {
        const unsigned char *s = (const unsigned char *) (text ? text : "");
        size_t left = strlen((const char *) s), o = 0;
        /* A replaced byte grows from 1 to 3 bytes: the worst case is three times the input. */
        char *out = malloc(left * 3 + 1);

        if (!out)
                return NULL;
        while (left > 0) {
                uint32_t cp;
                size_t n = plugin_utf8_decode(s, left, &cp);
                if (n == 0) {
                        memcpy(out + o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        s++, left--;
                        continue;
                }
                if (!char_is_unwanted(cp)) {
                        memcpy(out + o, s, n);
                        o += n;
                }
                s += n, left -= n;
        }
        out[o] = 0;
        trim_end(out);
        return out;
}

size_t line_text_units(const char *text) {
        size_t units = 0;

        for (const char *p = text; *p;) {
                uint32_t cp;
                p += next_char(p, &cp);
                units += cp >= 0x10000 ? 2 : 1;
        }
        return units;
}

size_t line_text_prefix_bytes(const char *text, size_t max_units) {
        size_t units = 0;
        const char *p = text;

        while (*p) {
                uint32_t cp;
                size_t n = next_char(p, &cp);
                size_t u = cp >= 0x10000 ? 2 : 1;
                if (units + u > max_units)
                        break;
                units += u;
                p += n;
        }
        return (size_t) (p - text);
}

/* Byte offset just after the last occurrence of a boundary within text[0..limit), or 0. */
static size_t last_boundary(const char *text, size_t limit, int level) {
        for (size_t i = limit; i > 0; i--) {
                size_t at = i - 1;
                char c = text[at];
                switch (level) {
                case 0: /* a paragraph: cut before the blank line */
                        if (c == '\n' && at > 0 && text[at - 1] == '\n')
                                return at - 1;
                        break;
                case 1: /* a line */
                        if (c == '\n')
                                return at;
                        break;
                case 2: /* the end of a sentence: keep the punctuation */
                        if ((c == '.' || c == '!' || c == '?') && (text[at + 1] == ' ' || text[at + 1] == '\n'))
                                return at + 1;
                        break;
                default: /* a space, which also ends a Thai sentence */
                        if (c == ' ' || c == '\t')
                                return at;
                        break;
                }
        }
        return 0;
}

char *line_text_cut(const char *text, size_t max_units, bool *ret_cut) {
        size_t limit = line_text_prefix_bytes(text, max_units), cut = 0;
        char *out;

        if (text[limit] == 0) {
                if (ret_cut)
                        *ret_cut = false;
                return strdup(text);
        }
        /* A better boundary is taken only when it keeps at least half of what would fit. */
        for (int level = 0; level < 4 && cut == 0; level++) {
                size_t at = last_boundary(text, limit, level);
                if (at >= limit / 2 && at > 0)
                        cut = at;
        }
        if (cut == 0) {
                /* No boundary: cut between characters, never before a mark of the one before. */
                cut = limit;
                while (cut > 0) {
                        uint32_t cp;
                        next_char(text + cut, &cp);
                        if (!char_is_attached(cp))
                                break;
                        do
                                cut--;
                        while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80);
                }
        }
        out = strndup(text, cut);
        if (!out)
                return NULL;
        trim_end(out);
        if (ret_cut)
                *ret_cut = true;
        return out;
}

char *line_text_first_lines(const char *text, size_t max_lines) {
        size_t n = strlen(text), o = 0, lines = 0;
        char *out = malloc(n + 1);

        if (!out)
                return NULL;
        for (const char *p = text; *p && lines < max_lines;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                bool blank = true;
                for (size_t i = 0; i < len && blank; i++)
                        blank = p[i] == ' ' || p[i] == '\t';
                if (!blank) {
                        if (o > 0)
                                out[o++] = '\n';
                        memcpy(out + o, p, len);
                        o += len;
                        lines++;
                }
                p += len + (nl ? 1 : 0);
        }
        out[o] = 0;
        trim_end(out);
        return out;
}
