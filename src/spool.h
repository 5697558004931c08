/* SPDX-License-Identifier: MIT */
/*
 * spool: intake from SPOOL/incoming (DESIGN §3).  inotify tells what changed; a full rescan runs at
 * start and when inotify overflowed.  A name is taken once it has been still for the settle time,
 * or at once when it was renamed in.  Taking means: parse, copy into the durable queue, sync, and
 * only then remove it from incoming/.  What cannot be published goes to rejected/ with NAME.error.txt.
 */
#pragma once

#include "manager.h"

int spool_new(Manager *m, Spool **ret);
void spool_free(Spool *s);
/* Looks at every name in incoming/ again. */
void spool_rescan(Spool *s);
/* Names seen but not yet taken. */
size_t spool_waiting(const Spool *s);
/* Why intake is paused ("disk full ..."), or NULL. */
const char *spool_paused_reason(const Spool *s);

/* True for names staff tools leave behind (".x", "~$x", "*.tmp", "Thumbs.db", ...). */
bool spool_name_ignored(const char *name);
