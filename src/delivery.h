/* SPDX-License-Identifier: MIT */
/*
 * delivery: the jobs of DESIGN §4 — when each may run, handing it to its plugin, recording the
 * outcome, back-off, and finishing an announcement with its receipt.
 *
 * A job is made "sending" on disk before its plugin sees it: the state change is queued, written by
 * the flush at the end of the loop iteration, and only then is publish() called.  So after a crash a
 * job is either not yet attempted or known to have been interrupted.
 */
#pragma once

#include "manager.h"

/* Creates the jobs of a newly taken announcement (one per channel). */
void delivery_create_jobs(Manager *m, Entry *e);
/* Arms every job of the entry (new, or loaded after a restart). */
void delivery_schedule_entry(Manager *m, Entry *e);
/* After queue_flush(): hands started jobs to plugins and finishes completed entries. */
void delivery_after_flush(Manager *m);
/* The plugin's host->job_finish(). */
void delivery_job_finished(Manager *m, prakat_job *job, const prakat_result *result);
/* At exit, after the stop grace ran out: drops the core's hold on plugins still sending, so that every
 * plugin's destroy() runs (and cancels its calls and timers).  The jobs stay "sending" on disk. */
void delivery_abandon_in_flight(Manager *m);
/* A plugin's progress note for a job in flight; saved with the next flush. */
void delivery_job_note(Manager *m, prakat_job *job, const char *message, const char *message_th);
/* Exponential back-off with jitter within [retry_min, retry_max]. */
usec_t delivery_backoff(const Config *c, unsigned attempts, double random01);
/* Cancels the timers of all jobs (shutdown). */
void delivery_stop(Manager *m);
/* Jobs not yet ended. */
size_t delivery_pending_jobs(Manager *m);

/*
 * Operator commands (prakat retry/hold/release).  Each returns the number of jobs it changed, or a
 * negative errno: -ENOENT (no such announcement), -EBUSY (held, or a job is being sent right now).
 */
int delivery_retry(Manager *m, const char *id, const char *channel);
int delivery_hold(Manager *m, const char *id, bool hold);
/* The approval gate: approve (jobs start) or reject (jobs cancelled, receipt says why) a waiting entry.
 * -EALREADY when it is not waiting.  `user` is the Unix user who decided. */
int delivery_decide(Manager *m, const char *id, bool approve, const char *user, const char *reason);
