/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "textenc.h"

/* Converts and expects success with the given text and encoding. */
static void check_converts(const void *data, size_t size, const char *expected, TextEncoding expected_encoding) {
        char *text = NULL;
        size_t text_size = 0;
        TextEncoding encoding = _TEXT_ENCODING_MAX;

        assert_int_equal(text_to_utf8(data, size, &text, &text_size, &encoding, NULL), 0);
        assert_non_null(text);
        assert_string_equal(text, expected);
        assert_int_equal(text_size, strlen(expected));
        assert_int_equal(encoding, expected_encoding);
        free(text);
}

/* Converts and expects -EILSEQ at `expected_offset`, with the other outputs left alone. */
static void check_rejects(const void *data, size_t size, size_t expected_offset, TextEncoding expected_encoding) {
        char *text = (char *) "untouched";
        size_t text_size = 4242, offset = SIZE_MAX;
        TextEncoding encoding = _TEXT_ENCODING_MAX;

        assert_int_equal(text_to_utf8(data, size, &text, &text_size, &encoding, &offset), -EILSEQ);
        assert_int_equal(offset, expected_offset);
        assert_int_equal(encoding, expected_encoding);
        assert_string_equal(text, "untouched");
        assert_int_equal(text_size, 4242);

        /* The offset is optional. */
        assert_int_equal(text_to_utf8(data, size, &text, &text_size, NULL, NULL), -EILSEQ);
}

static void test_encoding_names(void **state) {
        assert_string_equal(text_encoding_name(TEXT_ENCODING_UTF8), "UTF-8");
        assert_string_equal(text_encoding_name(TEXT_ENCODING_UTF8_BOM), "UTF-8 (BOM)");
        assert_string_equal(text_encoding_name(TEXT_ENCODING_UTF16LE), "UTF-16LE");
        assert_string_equal(text_encoding_name(TEXT_ENCODING_UTF16BE), "UTF-16BE");
        assert_string_equal(text_encoding_name(TEXT_ENCODING_WINDOWS874), "Windows-874");
        assert_null(text_encoding_name(_TEXT_ENCODING_MAX));
        assert_null(text_encoding_name((TextEncoding) -1));
}

#define VALID(s) assert_true(utf8_is_valid(s, sizeof(s) - 1))
#define INVALID(s) assert_false(utf8_is_valid(s, sizeof(s) - 1))

static void test_utf8_is_valid(void **state) {
        assert_true(utf8_is_valid(NULL, 0));
        VALID("plain ASCII");
        VALID("ประกาศ อบต. บ่อแก้ว");
        VALID("\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"); /* every boundary */
        VALID("\xF0\x9F\x93\xA2 emoji");
        VALID("nul \0 is well-formed");

        /* Overlong forms, including of NUL and '/'. */
        INVALID("\xC0\x80");
        INVALID("\xC1\xBF");
        INVALID("\xE0\x80\xAF");
        INVALID("\xE0\x9F\xBF");
        INVALID("\xF0\x80\x80\xAF");
        INVALID("\xF0\x8F\xBF\xBF");
        /* UTF-16 surrogates. */
        INVALID("\xED\xA0\x80");
        INVALID("\xED\xBF\xBF");
        INVALID("\xED\xA0\xBD\xED\xB8\x80"); /* CESU-8 */
        /* Above U+10FFFF, and bytes that never occur. */
        INVALID("\xF4\x90\x80\x80");
        INVALID("\xF5\x80\x80\x80");
        INVALID("\xF8\x88\x80\x80\x80");
        INVALID("\xFE");
        INVALID("\xFF");
        /* Truncated sequences and stray continuation bytes. */
        INVALID("\xE0\xB8");
        INVALID("ab\xE0");
        INVALID("\xF0\x9F\x93");
        INVALID("\x80");
        INVALID("\xE0\xB8\x81\xB8");
        INVALID("\xE0\x41\x81");

        /* Only [s, s+size) counts: cutting a valid string inside a character makes it invalid. */
        assert_false(utf8_is_valid("ก", 2));
        assert_true(utf8_is_valid("กx", 3));
}

static void test_utf8(void **state) {
        check_converts("", 0, "", TEXT_ENCODING_UTF8);
        check_converts("หัวข้อ: ประกาศ\n\nเนื้อหา", strlen("หัวข้อ: ประกาศ\n\nเนื้อหา"),
                       "หัวข้อ: ประกาศ\n\nเนื้อหา", TEXT_ENCODING_UTF8);
        check_converts("\xEF\xBB\xBFtitle", 8, "title", TEXT_ENCODING_UTF8_BOM);
        check_converts("\xEF\xBB\xBF", 3, "", TEXT_ENCODING_UTF8_BOM);
        /* Only a leading BOM is one. */
        check_converts("a\xEF\xBB\xBF", 4, "a\xEF\xBB\xBF", TEXT_ENCODING_UTF8);
}

static void test_line_ends(void **state) {
        check_converts("a\r\nb\rc\nd", 8, "a\nb\nc\nd", TEXT_ENCODING_UTF8);
        check_converts("\r\r\n\n\r", 5, "\n\n\n\n", TEXT_ENCODING_UTF8);
        check_converts("\n\r", 2, "\n\n", TEXT_ENCODING_UTF8);
        check_converts("end\r", 4, "end\n", TEXT_ENCODING_UTF8);
        check_converts("\xEF\xBB\xBF\r\n", 5, "\n", TEXT_ENCODING_UTF8_BOM);
        /* Windows-874 (0xA1 is ก) and UTF-16 go through the same rule. */
        check_converts("\xA1\r\n\xA1\r", 5, "ก\nก\n", TEXT_ENCODING_WINDOWS874);
        check_converts("\xFF\xFE" "a\0\r\0\n\0\r\0", 10, "a\n\n", TEXT_ENCODING_UTF16LE);
}

static void test_nul(void **state) {
        check_rejects("ab\0cd", 5, 2, TEXT_ENCODING_UTF8);
        check_rejects("\0", 1, 0, TEXT_ENCODING_UTF8);
        check_rejects("\xEF\xBB\xBFx\0", 5, 4, TEXT_ENCODING_UTF8_BOM);
        check_rejects("\xA1\0", 2, 1, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xFF\xFE" "a\0\0\0", 6, 4, TEXT_ENCODING_UTF16LE);
        /* UTF-16 without a BOM is ASCII with NULs in between: a binary file, not a guess. */
        check_rejects("a\0b\0", 4, 1, TEXT_ENCODING_UTF8);
        /* A UTF-32 LE BOM starts like a UTF-16 LE one, then decodes to NUL. */
        check_rejects("\xFF\xFE\0\0a\0\0\0", 8, 2, TEXT_ENCODING_UTF16LE);
}

static void test_utf8_bom_then_invalid(void **state) {
        /* A BOM says UTF-8; a Windows-874 byte after it is damage, not a different encoding. */
        check_rejects("\xEF\xBB\xBF" "ok\xA1", 6, 5, TEXT_ENCODING_UTF8_BOM);
}

/* Neither UTF-8 nor Windows-874: the reading that got further is the one reported. */
static void test_neither_reads(void **state) {
        /* Thai UTF-8 with a character cut short: Windows-874 stops at ก's 0x81, UTF-8 at the cut. */
        check_rejects("\xE0\xB8\x81\xE0\xB8", 5, 3, TEXT_ENCODING_UTF8);
        /* Windows-874 with a stray 0xFF: UTF-8 stops at the first Thai byte. */
        check_rejects("\xA1\xA2\xFF", 3, 2, TEXT_ENCODING_WINDOWS874);
}

static void test_double_bom(void **state) {
        check_converts("\xEF\xBB\xBF\xEF\xBB\xBF" "Title", 11, "Title", TEXT_ENCODING_UTF8_BOM);
}

static void test_looks_like_utf16(void **state) {
        bool big_endian = true;

        assert_true(text_looks_like_utf16("T\0i\0+\x0E\n\0", 8, &big_endian));
        assert_false(big_endian);
        assert_true(text_looks_like_utf16("\0T\0i\x0E+\0\n", 8, &big_endian));
        assert_true(big_endian);
        /* Binary with a few NULs, and Thai UTF-8, are not UTF-16. */
        assert_false(text_looks_like_utf16("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, NULL));
        assert_false(text_looks_like_utf16("\xE0\xB8\x81\xE0\xB8\x82", 6, NULL));
        assert_false(text_looks_like_utf16("a\0", 2, NULL));
}

static void test_utf16(void **state) {
        /* "ก 😀\r\n" */
        static const uint8_t le[] = { 0xFF, 0xFE, 0x01, 0x0E, 0x20, 0x00, 0x3D, 0xD8, 0x00, 0xDE, 0x0D, 0x00, 0x0A, 0x00 };
        static const uint8_t be[] = { 0xFE, 0xFF, 0x0E, 0x01, 0x00, 0x20, 0xD8, 0x3D, 0xDE, 0x00, 0x00, 0x0D, 0x00, 0x0A };
        /* The highest code point, U+10FFFF, and U+FFFF. */
        static const uint8_t edges[] = { 0xFE, 0xFF, 0xDB, 0xFF, 0xDF, 0xFF, 0xFF, 0xFF };

        check_converts(le, sizeof(le), "ก \xF0\x9F\x98\x80\n", TEXT_ENCODING_UTF16LE);
        check_converts(be, sizeof(be), "ก \xF0\x9F\x98\x80\n", TEXT_ENCODING_UTF16BE);
        check_converts(edges, sizeof(edges), "\xF4\x8F\xBF\xBF\xEF\xBF\xBF", TEXT_ENCODING_UTF16BE);
        check_converts("\xFF\xFE", 2, "", TEXT_ENCODING_UTF16LE);
        check_converts("\xFE\xFF", 2, "", TEXT_ENCODING_UTF16BE);
}

static void test_utf16_invalid(void **state) {
        /* Odd length: the stray last byte is the bad one. */
        check_rejects("\xFF\xFE" "a\0b", 5, 4, TEXT_ENCODING_UTF16LE);
        check_rejects("\xFE\xFF" "\0a\0", 5, 4, TEXT_ENCODING_UTF16BE);
        check_rejects("\xFF\xFE" "a", 3, 2, TEXT_ENCODING_UTF16LE);
        /* A high surrogate at the end, before a non-surrogate, before another high one. */
        check_rejects("\xFF\xFE" "a\0\x3D\xD8", 6, 4, TEXT_ENCODING_UTF16LE);
        check_rejects("\xFF\xFE" "\x3D\xD8" "a\0", 6, 2, TEXT_ENCODING_UTF16LE);
        check_rejects("\xFE\xFF" "\xD8\x3D\xD8\x3D\xDE\x00", 8, 2, TEXT_ENCODING_UTF16BE);
        /* A low surrogate on its own. */
        check_rejects("\xFE\xFF" "\0a\xDE\x00\0b", 8, 4, TEXT_ENCODING_UTF16BE);
        /* A high surrogate with half a low one after it. */
        check_rejects("\xFF\xFE" "\x3D\xD8\x00", 5, 2, TEXT_ENCODING_UTF16LE);
}

static void test_windows874(void **state) {
        /* "ประกาศ ๒๕๖๙ – “ด่วน”" as Thai Windows Notepad saves it. */
        static const char data[] = "\xBB\xC3\xD0\xA1\xD2\xC8 \xF2\xF5\xF6\xF9 \x96 \x93\xB4\xE8\xC7\xB9\x94";

        check_converts(data, sizeof(data) - 1, "ประกาศ ๒๕๖๙ – “ด่วน”", TEXT_ENCODING_WINDOWS874);
        check_converts("\xA0\x80\x85\xDF", 4, "\xC2\xA0€…฿", TEXT_ENCODING_WINDOWS874);

        /* Undefined bytes: the hole in the Thai range, the top of the code page, the gaps in 0x80-0x9F. */
        check_rejects("\xA1\xDB", 2, 1, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xA1\xA1\xDE", 3, 2, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xFC", 1, 0, TEXT_ENCODING_WINDOWS874);
        check_rejects("abc\xFF", 4, 3, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xA1\x81", 2, 1, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xA1\x98", 2, 1, TEXT_ENCODING_WINDOWS874);
        check_rejects("\xA1\x9F", 2, 1, TEXT_ENCODING_WINDOWS874);
}

/*
 * Every byte against glibc's CP874 converter.  Each byte comes after 0xA1 (ก), which cannot start
 * UTF-8, so detection always picks Windows-874.
 */
static void test_windows874_matches_iconv(void **state) {
        iconv_t cd = iconv_open("UTF-8", "CP874");
        unsigned defined = 0;

        assert_true(cd != (iconv_t) -1);

        for (unsigned b = 1; b <= 0xFF; b++) {
                char in[2] = { '\xA1', (char) b }, out[16], *inp = in, *outp = out;
                size_t inleft = sizeof(in), outleft = sizeof(out);
                bool iconv_ok;
                char *text = NULL;
                size_t text_size, offset = SIZE_MAX;
                TextEncoding encoding;
                int r;

                iconv(cd, NULL, NULL, NULL, NULL);
                iconv_ok = iconv(cd, &inp, &inleft, &outp, &outleft) != (size_t) -1;
                r = text_to_utf8(in, sizeof(in), &text, &text_size, &encoding, &offset);
                assert_int_equal(encoding, TEXT_ENCODING_WINDOWS874);

                if (!iconv_ok) {
                        assert_int_equal(r, -EILSEQ);
                        assert_int_equal(offset, 1);
                        continue;
                }

                assert_int_equal(r, 0);
                *outp = '\0';
                /* The one intended difference: a lone CR becomes LF. */
                if (b == '\r')
                        assert_string_equal(text, "ก\n");
                else {
                        assert_int_equal(text_size, (size_t) (outp - out));
                        assert_memory_equal(text, out, text_size);
                }
                free(text);
                defined++;
        }
        iconv_close(cd);

        /* 127 ASCII + NBSP + 9 extras + 87 Thai (0xA1-0xDA, 0xDF-0xFB). */
        assert_int_equal(defined, 127 + 1 + 9 + 87);
}

static void test_thai_digits_to_ascii(void **state) {
        char a[] = "๐๑๒๓๔๕๖๗๘๙", b[] = "วันที่ ๒๖/๑๑/๒๕๖๙ เวลา ๗.๐๐ น.", c[] = "๏ ๚ ๛ ก 1", d[] = "", e[] = "\xE0\xB9";

        thai_digits_to_ascii(a);
        assert_string_equal(a, "0123456789");
        thai_digits_to_ascii(b);
        assert_string_equal(b, "วันที่ 26/11/2569 เวลา 7.00 น.");
        /* U+0E4F and U+0E5A/U+0E5B sit either side of the digits and are left alone. */
        thai_digits_to_ascii(c);
        assert_string_equal(c, "๏ ๚ ๛ ก 1");
        thai_digits_to_ascii(d);
        assert_string_equal(d, "");
        /* A truncated sequence at the end is not read past. */
        thai_digits_to_ascii(e);
        assert_string_equal(e, "\xE0\xB9");
}

static void test_utf8_length(void **state) {
        assert_int_equal(utf8_length(""), 0);
        assert_int_equal(utf8_length("abc"), 3);
        assert_int_equal(utf8_length("ประกาศ"), 6);
        assert_int_equal(utf8_length("ก่"), 2);
        assert_int_equal(utf8_length("€ \xF0\x9F\x98\x80"), 3);
}

/* Whatever the bytes, a successful conversion yields valid UTF-8 with no NUL and no CR. */
static void test_random_bytes(void **state) {
        uint32_t seed = 2569;
        uint8_t data[64];

        for (unsigned round = 0; round < 20000; round++) {
                size_t size = round % sizeof(data);
                char *text = NULL;
                size_t text_size;
                TextEncoding encoding;

                for (size_t i = 0; i < size; i++) {
                        seed = (uint32_t) (((uint64_t) seed * 1103515245u + 12345u) & 0xFFFFFFFFu);
                        data[i] = (uint8_t) (seed >> 16);
                }
                /* Give the BOM paths a fair share. */
                if (size >= 2 && round % 4 == 1)
                        data[0] = 0xFF, data[1] = 0xFE;
                else if (size >= 2 && round % 4 == 2)
                        data[0] = 0xFE, data[1] = 0xFF;

                if (text_to_utf8(data, size, &text, &text_size, &encoding, NULL) < 0)
                        continue;
                assert_int_equal(strlen(text), text_size);
                assert_true(utf8_is_valid(text, text_size));
                assert_null(memchr(text, '\r', text_size));
                free(text);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encoding_names),
                cmocka_unit_test(test_utf8_is_valid),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_line_ends),
                cmocka_unit_test(test_nul),
                cmocka_unit_test(test_utf8_bom_then_invalid),
                cmocka_unit_test(test_neither_reads),
                cmocka_unit_test(test_double_bom),
                cmocka_unit_test(test_looks_like_utf16),
                cmocka_unit_test(test_utf16),
                cmocka_unit_test(test_utf16_invalid),
                cmocka_unit_test(test_windows874),
                cmocka_unit_test(test_windows874_matches_iconv),
                cmocka_unit_test(test_thai_digits_to_ascii),
                cmocka_unit_test(test_utf8_length),
                cmocka_unit_test(test_random_bytes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
