/* SPDX-License-Identifier: MIT */
/* receipt: receipt.txt for people, Thai first, English after (DESIGN §4). */
#pragma once

#include "config.h"
#include "queue.h"

char *receipt_format(const Config *config, const Entry *e, usec_t now);

/*
 * Writes SPOOL/published/YYYY-MM-DD-ID/ with the original and receipt.txt for each of n finished
 * entries, atomically: every folder is built under a hidden temporary name, the batch is synced
 * once, then each is renamed into place and the renames are synced.  Idempotent: an existing folder
 * of the same announcement is replaced.  results[i] is 0 or a negative errno; returns how many
 * receipts were written.
 */
size_t receipt_publish(const Config *config, Entry *const *entries, size_t n, usec_t now, int *results);
