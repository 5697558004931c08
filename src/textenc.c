/* SPDX-License-Identifier: MIT */
/*
 * textenc: turn whatever a staff PC saved into UTF-8 with LF line ends.
 *
 * Every encoding is read through a decoder that yields one code point at a time, so the rules that
 * hold for all of them (no NUL, CRLF and CR become LF) live in one place, convert().
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "textenc.h"

static const char *const text_encoding_names[_TEXT_ENCODING_MAX] = {
        [TEXT_ENCODING_UTF8] = "UTF-8",
        [TEXT_ENCODING_UTF8_BOM] = "UTF-8 (BOM)",
        [TEXT_ENCODING_UTF16LE] = "UTF-16LE",
        [TEXT_ENCODING_UTF16BE] = "UTF-16BE",
        [TEXT_ENCODING_WINDOWS874] = "Windows-874",
};

const char *text_encoding_name(TextEncoding encoding) {
        if ((unsigned) encoding >= _TEXT_ENCODING_MAX)
                return NULL;
        return text_encoding_names[encoding];
}

/* A decoder reads one character from [p, p+n), n >= 1, and returns the bytes it used, or -EILSEQ. */
typedef int (*decode_func_t)(const uint8_t *p, size_t n, uint32_t *ret_code);

static int decode_utf8(const uint8_t *p, size_t n, uint32_t *ret_code) {
        uint32_t code, min;
        size_t length;

        if (p[0] < 0x80) {
                *ret_code = p[0];
                return 1;
        }

        /* 0xC0 and 0xC1 can only start overlong forms; 0xF5 and up only code points above U+10FFFF. */
        if (p[0] >= 0xC2 && p[0] <= 0xDF)
                length = 2, code = p[0] & 0x1F, min = 0x80;
        else if ((p[0] & 0xF0) == 0xE0)
                length = 3, code = p[0] & 0x0F, min = 0x800;
        else if (p[0] >= 0xF0 && p[0] <= 0xF4)
                length = 4, code = p[0] & 0x07, min = 0x10000;
        else
                return -EILSEQ;

        if (n < length)
                return -EILSEQ;
        for (size_t i = 1; i < length; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return -EILSEQ;
                code = code << 6 | (p[i] & 0x3F);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
                return -EILSEQ;

        *ret_code = code;
        return (int) length;
}

static int decode_utf16(const uint8_t *p, size_t n, bool big_endian, uint32_t *ret_code) {
        uint32_t high, low;

        if (n < 2)
                return -EILSEQ;
        high = big_endian ? (uint32_t) p[0] << 8 | p[1] : (uint32_t) p[1] << 8 | p[0];
        if (high < 0xD800 || high > 0xDFFF) {
                *ret_code = high;
                return 2;
        }

        /* A surrogate is only meaningful as a high one immediately followed by a low one. */
        if (high > 0xDBFF || n < 4)
                return -EILSEQ;
        low = big_endian ? (uint32_t) p[2] << 8 | p[3] : (uint32_t) p[3] << 8 | p[2];
        if (low < 0xDC00 || low > 0xDFFF)
                return -EILSEQ;

        *ret_code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        return 4;
}

static int decode_utf16le(const uint8_t *p, size_t n, uint32_t *ret_code) {
        return decode_utf16(p, n, false, ret_code);
}

static int decode_utf16be(const uint8_t *p, size_t n, uint32_t *ret_code) {
        return decode_utf16(p, n, true, ret_code);
}

/*
 * Windows-874 is TIS-620 (ASCII, then the Thai letters at 0xA1-0xFB, which sit in the same order as
 * the Unicode Thai block, U+0E01-U+0E5B, with a hole at 0xDB-0xDE) plus NBSP at 0xA0 and a few
 * typographic marks in 0x80-0x9F that Thai Windows added.  The remaining bytes mean nothing in it.
 */
static int decode_windows874(const uint8_t *p, size_t n, uint32_t *ret_code) {
        static const uint16_t extras[0x21] = {
                [0x00] = 0x20AC, /* € */
                [0x05] = 0x2026, /* … */
                [0x11] = 0x2018, /* ‘ */
                [0x12] = 0x2019, /* ’ */
                [0x13] = 0x201C, /* “ */
                [0x14] = 0x201D, /* ” */
                [0x15] = 0x2022, /* • */
                [0x16] = 0x2013, /* – */
                [0x17] = 0x2014, /* — */
                [0x20] = 0x00A0, /* no-break space */
        };
        uint8_t b = p[0];
        uint32_t code;

        if (b < 0x80)
                code = b;
        else if ((b >= 0xA1 && b <= 0xDA) || (b >= 0xDF && b <= 0xFB))
                code = 0x0E00 + (b - 0xA0);
        else if (b <= 0xA0 && extras[b - 0x80] != 0)
                code = extras[b - 0x80];
        else
                return -EILSEQ;

        *ret_code = code;
        return 1;
}

static const decode_func_t decoders[_TEXT_ENCODING_MAX] = {
        [TEXT_ENCODING_UTF8] = decode_utf8,
        [TEXT_ENCODING_UTF8_BOM] = decode_utf8,
        [TEXT_ENCODING_UTF16LE] = decode_utf16le,
        [TEXT_ENCODING_UTF16BE] = decode_utf16be,
        [TEXT_ENCODING_WINDOWS874] = decode_windows874,
};

bool utf8_is_valid(const char *s, size_t size) {
        const uint8_t *p = (const uint8_t *) s;

        assert(s || size == 0);

        for (size_t i = 0; i < size;) {
                uint32_t code;
                int k = decode_utf8(p + i, size - i, &code);
                if (k < 0)
                        return false;
                i += k;
        }
        return true;
}

static size_t encode_utf8(uint32_t code, char *out) {
        if (code < 0x80) {
                out[0] = (char) code;
                return 1;
        }
        if (code < 0x800) {
                out[0] = (char) (0xC0 | code >> 6);
                out[1] = (char) (0x80 | (code & 0x3F));
                return 2;
        }
        if (code < 0x10000) {
                out[0] = (char) (0xE0 | code >> 12);
                out[1] = (char) (0x80 | (code >> 6 & 0x3F));
                out[2] = (char) (0x80 | (code & 0x3F));
                return 3;
        }
        out[0] = (char) (0xF0 | code >> 18);
        out[1] = (char) (0x80 | (code >> 12 & 0x3F));
        out[2] = (char) (0x80 | (code >> 6 & 0x3F));
        out[3] = (char) (0x80 | (code & 0x3F));
        return 4;
}

/*
 * Decodes data[start, size) and writes it as UTF-8 to `out`, or, with out == NULL, only checks it and
 * counts the bytes it would write.  Counting first lets the caller allocate exactly once and never
 * has to free a half-written buffer.
 */
static int convert(const uint8_t *data, size_t size, size_t start, decode_func_t decode, char *out,
                   size_t *ret_length, size_t *ret_bad_offset) {
        size_t length = 0;
        bool after_cr = false;
        char scratch[4];

        for (size_t i = start; i < size;) {
                uint32_t code;
                int k = decode(data + i, size - i, &code);

                /* Staff never type NUL; finding one means the file is binary or in an encoding we
                 * did not recognise, and passing it on would cut the text short in every C string. */
                if (k < 0 || code == 0) {
                        *ret_bad_offset = i;
                        return -EILSEQ;
                }
                i += k;

                if (code == '\n' && after_cr) {
                        after_cr = false;
                        continue;
                }
                after_cr = code == '\r';
                if (after_cr)
                        code = '\n';

                length += encode_utf8(code, out ? out + length : scratch);
        }

        *ret_length = length;
        return 0;
}

int text_to_utf8(const void *data, size_t size, char **ret_text, size_t *ret_size, TextEncoding *ret_encoding,
                 size_t *ret_bad_offset) {
        const uint8_t *p = data;
        TextEncoding encoding;
        size_t start = 0, length, bad_offset;
        char *text;
        int r;

        assert(data || size == 0);
        assert(ret_text);
        assert(ret_size);

        if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
                encoding = TEXT_ENCODING_UTF8_BOM, start = 3;
                /* Files glued together by a script or saved twice carry the BOM twice; a U+FEFF left
                 * at the start would make the first header line unreadable and invisible in messages. */
                while (size - start >= 3 && memcmp(p + start, "\xEF\xBB\xBF", 3) == 0)
                        start += 3;
        } else if (size >= 2 && p[0] == 0xFF && p[1] == 0xFE)
                encoding = TEXT_ENCODING_UTF16LE, start = 2;
        else if (size >= 2 && p[0] == 0xFE && p[1] == 0xFF)
                encoding = TEXT_ENCODING_UTF16BE, start = 2;
        else if (utf8_is_valid(data, size))
                encoding = TEXT_ENCODING_UTF8;
        else
                encoding = TEXT_ENCODING_WINDOWS874;

        r = convert(p, size, start, decoders[encoding], NULL, &length, &bad_offset);
        if (r < 0 && encoding == TEXT_ENCODING_WINDOWS874) {
                /* Neither reading works.  Blame the one that got further: a UTF-8 file with one broken
                 * character fails as Windows-874 at its first Thai letter, which says nothing useful. */
                size_t utf8_bad_offset, ignored;
                if (convert(p, size, 0, decode_utf8, NULL, &ignored, &utf8_bad_offset) < 0 &&
                    utf8_bad_offset > bad_offset) {
                        encoding = TEXT_ENCODING_UTF8;
                        bad_offset = utf8_bad_offset;
                }
        }
        if (r < 0) {
                if (ret_bad_offset)
                        *ret_bad_offset = bad_offset;
                if (ret_encoding)
                        *ret_encoding = encoding;
                return r;
        }

        if (length == SIZE_MAX)
                return -ENOMEM;
        text = malloc(length + 1);
        if (!text)
                return -ENOMEM;
        r = convert(p, size, start, decoders[encoding], text, &length, &bad_offset);
        assert(r == 0);
        text[length] = '\0';

        *ret_text = text;
        *ret_size = length;
        if (ret_encoding)
                *ret_encoding = encoding;
        return 0;
}

bool text_looks_like_utf16(const void *data, size_t size, bool *ret_big_endian) {
        const uint8_t *p = data;
        size_t n = size < 512 ? size : 512, high[2] = {}, nul[2] = {};

        assert(data || size == 0);

        /* In UTF-16 text of Thai and ASCII every other byte is the high half of U+00xx or U+0Exx. */
        if (n < 4)
                return false;
        for (size_t i = 0; i + 1 < n; i += 2)
                for (size_t k = 0; k < 2; k++) {
                        high[k] += p[i + k] == 0x00 || p[i + k] == 0x0E;
                        nul[k] += p[i + k] == 0x00;
                }
        for (size_t k = 0; k < 2; k++)
                if (nul[k] > 0 && high[k] * 10 >= (n / 2) * 9 && nul[1 - k] * 10 < n / 2) {
                        if (ret_big_endian)
                                *ret_big_endian = k == 0;
                        return true;
                }
        return false;
}

void thai_digits_to_ascii(char *s) {
        char *w = s;

        assert(s);

        /* ๐-๙ are U+0E50-U+0E59, i.e. E0 B9 90 - E0 B9 99.  Short-circuiting keeps every read
         * before the terminating NUL. */
        for (const char *r = s; *r;) {
                if ((uint8_t) r[0] == 0xE0 && (uint8_t) r[1] == 0xB9 && (uint8_t) r[2] >= 0x90 &&
                    (uint8_t) r[2] <= 0x99) {
                        *w++ = (char) ('0' + ((uint8_t) r[2] - 0x90));
                        r += 3;
                } else
                        *w++ = *r++;
        }
        *w = '\0';
}

size_t utf8_length(const char *s) {
        size_t n = 0;

        assert(s);

        /* Every code point has exactly one byte that is not a continuation byte (10xxxxxx). */
        for (; *s; s++)
                if (((uint8_t) *s & 0xC0) != 0x80)
                        n++;
        return n;
}
