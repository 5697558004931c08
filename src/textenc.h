/* SPDX-License-Identifier: MIT */
/* textenc: turn whatever a staff PC saved into UTF-8 with LF line ends. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum TextEncoding {
        TEXT_ENCODING_UTF8,
        TEXT_ENCODING_UTF8_BOM,
        TEXT_ENCODING_UTF16LE, /* with BOM */
        TEXT_ENCODING_UTF16BE, /* with BOM */
        TEXT_ENCODING_WINDOWS874, /* also covers TIS-620, its subset */
        _TEXT_ENCODING_MAX,
} TextEncoding;

/* "UTF-8", "UTF-8 (BOM)", "UTF-16LE", "UTF-16BE", "Windows-874". */
const char *text_encoding_name(TextEncoding encoding);

/* True when [s, s+size) is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
bool utf8_is_valid(const char *s, size_t size);

/*
 * Detects the encoding of `data` and converts it to NUL-terminated UTF-8 with every CRLF and lone
 * CR turned into LF, and the BOM removed (a UTF-8 BOM repeated at the start too).  Detection: a UTF-8
 * BOM, a UTF-16 BOM (LE or BE), else UTF-8 when the bytes are valid UTF-8, else Windows-874.
 *
 * Returns 0 and sets *ret_text (malloc'd), *ret_size (without the NUL) and *ret_encoding.
 * Returns -EILSEQ when the bytes cannot be decoded: a NUL character, UTF-16 with an odd length or
 * an unpaired surrogate, or a byte Windows-874 leaves undefined; *ret_bad_offset (if not NULL)
 * then holds the offset of the first bad byte in `data` and *ret_encoding the encoding that was tried
 * (when neither UTF-8 nor Windows-874 reads the bytes, the one that read further).
 * Returns -ENOMEM when out of memory.  Outputs other than ret_bad_offset/ret_encoding are untouched on failure.
 */
int text_to_utf8(const void *data, size_t size, char **ret_text, size_t *ret_size, TextEncoding *ret_encoding,
                 size_t *ret_bad_offset);

/*
 * True when `data` (which text_to_utf8() refused) looks like UTF-16 saved without a byte-order mark:
 * in its first 512 bytes nearly every other byte is 0x00 or 0x0E (the high half of ASCII and Thai),
 * with NULs among them.  *ret_big_endian (if not NULL) says which half that was.
 */
bool text_looks_like_utf16(const void *data, size_t size, bool *ret_big_endian);

/* Replaces the Thai digits ๐-๙ (U+0E50-U+0E59) in a NUL-terminated UTF-8 string by 0-9, in place. */
void thai_digits_to_ascii(char *s);

/* Number of UTF-8 characters (code points) in a valid UTF-8 string. */
size_t utf8_length(const char *s);
