/* SPDX-License-Identifier: MIT */
/*
 * Encoding detection and conversion (src/textenc.c): whatever the bytes, a conversion yields valid
 * UTF-8 with no NUL and no CR, and a refusal names an offset inside the input.
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "textenc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = NULL;
        size_t text_size = 0, bad = SIZE_MAX;
        TextEncoding encoding = _TEXT_ENCODING_MAX;
        bool big_endian;
        int r;

        r = text_to_utf8(data, size, &text, &text_size, &encoding, &bad);
        FUZZ_CHECK(encoding < _TEXT_ENCODING_MAX && text_encoding_name(encoding));
        if (r < 0) {
                FUZZ_CHECK(r == -EILSEQ && bad < size && !text);
                (void) text_looks_like_utf16(data, size, &big_endian);
                return 0;
        }
        FUZZ_CHECK(r == 0 && text && strlen(text) == text_size);
        FUZZ_CHECK(utf8_is_valid(text, text_size));
        FUZZ_CHECK(!memchr(text, '\r', text_size));
        FUZZ_CHECK(utf8_length(text) <= text_size);
        thai_digits_to_ascii(text);
        FUZZ_CHECK(utf8_is_valid(text, strlen(text)));
        free(text);
        return 0;
}
