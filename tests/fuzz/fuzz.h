/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what every target in tests/fuzz/ shares.
 *
 * A target is one file, fuzz-NAME.c, defining LLVMFuzzerTestOneInput().  `make fuzz` links it with
 * libFuzzer (clang -fsanitize=fuzzer,address,undefined) and runs it from tests/fuzz/corpus/NAME/;
 * `make check` links it with replay.c instead (any compiler), which runs it once over every file of
 * that corpus, so every seed and every crash found once stays a regression test.
 *
 * FUZZ_CHECK() is the targets' own assertion: a broken invariant must crash under both drivers.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                   \
        do {                                                                                               \
                if (!(cond)) {                                                                             \
                        fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);      \
                        abort();                                                                           \
                }                                                                                          \
        } while (0)

/* The input as a NUL-terminated string (malloc'd; an embedded NUL ends it early, as in a C caller). */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}
