/* SPDX-License-Identifier: MIT */
/* receipt: receipt.txt for people, Thai first, English after (DESIGN §4). */
#pragma once

#include "config.h"
#include "queue.h"

char *receipt_format(const Config *config, const Entry *e, usec_t now);

/*
 * Writes SPOOL/published/YYYY-MM-DD-ID/ with the original and receipt.txt, atomically (built in a
 * hidden temporary folder, synced, then renamed into place).  Idempotent: an existing folder of the
 * same announcement is replaced.
 */
int receipt_publish(const Config *config, const Entry *e, usec_t now);
