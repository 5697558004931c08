/* SPDX-License-Identifier: MIT */
/*
 * id-filter.h: a Bloom filter of ids ("may this id have a file?"), so that a lookup of an id that
 * certainly has none costs no system call.  Header-only, libc only: the daemon (ids in its
 * queue/ and done/ folders) and the website plugin (its item records) each keep one.
 *
 * 2^19 bits (64 KiB) and 4 probes: about 1 % false hits at 50,000 ids, 8 % at 100,000; a false hit
 * only costs the lookup the filter would have saved.  Without its memory (allocation failed), the
 * filter answers "maybe" to everything: correct, slower.
 */
#ifndef PRAKAT_ID_FILTER_H
#define PRAKAT_ID_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ID_FILTER_BITS (1u << 19)
#define ID_FILTER_PROBES 4

typedef struct IdFilter {
        uint8_t *bits; /* NULL: every answer is "maybe" */
} IdFilter;

/* 64-bit FNV-1a (also what the website plugin hashes texts with). */
static inline uint64_t fnv1a64(const void *data, size_t size) {
        const unsigned char *p = data;
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < size; i++) {
                h ^= p[i];
                h *= 1099511628211ULL;
        }
        return h;
}

/* Empties the filter (allocating it the first time). */
static inline void id_filter_reset(IdFilter *f) {
        if (f->bits)
                memset(f->bits, 0, ID_FILTER_BITS / 8);
        else
                f->bits = calloc(ID_FILTER_BITS / 8, 1);
}

static inline void id_filter_free(IdFilter *f) {
        free(f->bits);
        f->bits = NULL;
}

static inline void id_filter_probes(const char *id, uint32_t probes[static ID_FILTER_PROBES]) {
        uint64_t h = fnv1a64(id, strlen(id));
        uint32_t a = (uint32_t) h, b = (uint32_t) (h >> 32) | 1;
        for (unsigned i = 0; i < ID_FILTER_PROBES; i++)
                probes[i] = (a + i * b) % ID_FILTER_BITS;
}

static inline void id_filter_add(IdFilter *f, const char *id) {
        uint32_t probes[ID_FILTER_PROBES];
        if (!f->bits)
                return;
        id_filter_probes(id, probes);
        for (unsigned i = 0; i < ID_FILTER_PROBES; i++)
                f->bits[probes[i] / 8] |= (uint8_t) (1u << (probes[i] % 8));
}

/* False only when the id was certainly never added. */
static inline bool id_filter_may_have(const IdFilter *f, const char *id) {
        uint32_t probes[ID_FILTER_PROBES];
        if (!f->bits)
                return true;
        id_filter_probes(id, probes);
        for (unsigned i = 0; i < ID_FILTER_PROBES; i++)
                if (!(f->bits[probes[i] / 8] & (1u << (probes[i] % 8))))
                        return false;
        return true;
}

#endif
