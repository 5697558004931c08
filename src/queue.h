/* SPDX-License-Identifier: MIT */
/*
 * queue: the durable state of every announcement not yet finished (DESIGN §4).
 *
 *   STATE/queue/ID/announcement.json   the parsed announcement, written once at intake, with the
 *                                      jobs as they were then ("jobs"; "layout": 2)
 *   STATE/queue/ID/jobs.json           the jobs since, one record per (announcement, channel), rewritten
 *                                      whole; absent until the first change
 *   STATE/queue/ID/original-NAME       the file or folder as staff dropped it
 *   STATE/done/ID/...                  the same, moved here in one rename when every job has ended
 *   STATE/tmp/                         intake staging; emptied at start
 *
 * Entries written before layout 2 (an upgrade finds them in queue/ and done/) have their jobs only in
 * jobs.json and the original in original/NAME; they are read as they are.  Layout 2 saves a folder
 * and a file per announcement: each costs more kernel time than anything else prakat does for it.
 *
 * Every file is written whole (temporary, fsync, rename, fsync of the directory), and the jobs of
 * one loop iteration are written together by queue_flush().
 */
#pragma once

#include <jansson.h>

#define QUEUE_LAYOUT 2 /* what queue_stage_intake() writes */

#include "announcement.h"
#include "util.h"

typedef enum JobState {
        JOB_SCHEDULED,   /* waiting for its time, or for the website job */
        JOB_SENDING,     /* handed to the plugin; a crash here means "interrupted" */
        JOB_DEFERRED,    /* failed transiently; next try at next_try */
        JOB_DONE,
        JOB_FAILED,      /* permanently, or gave up */
        JOB_UNCONFIRMED, /* may have gone out; a person must check */
        JOB_SKIPPED,     /* the channel is disabled in the config */
        JOB_CANCELLED,   /* withdrawn before it went out */
        _JOB_STATE_MAX,
} JobState;

typedef enum JobKind {
        JOB_PUBLISH,
        JOB_RETRACT, /* for a Cancel: announcement: withdraw `target` from this channel */
} JobKind;

typedef struct Entry Entry;

/* The approval gate (require_approval = yes): nothing of a waiting entry leaves. */
typedef enum Approval {
        APPROVAL_NONE,     /* not needed */
        APPROVAL_WAITING,  /* a preview is in SPOOL/pending/ID.txt */
        APPROVAL_APPROVED,
        APPROVAL_REJECTED,
} Approval;

typedef struct Job {
        Entry *entry;
        char *channel;
        JobKind kind;
        JobState state;
        unsigned attempts;
        usec_t first_try, last_try, next_try, finished;
        char *message, *message_th; /* last outcome or error, for people */
        char *link, *remote_id;
        char **attachment_urls;
        size_t n_attachment_urls;
        bool interrupted; /* loaded in state sending: the attempt was cut off */
        bool resume_free; /* deferred by PRAKAT_OUTCOME_WAIT: its next start is not another attempt */
        /* runtime only */
        void *timer;       /* sd_event_source* */
        void *instance;    /* ChannelInstance* while sending */
        bool start_pending;
        bool begun_at_intake; /* saved as "sending" with the new entry: start without another write */
} Job;

struct Entry {
        Announcement *announcement;
        Job *jobs;
        size_t n_jobs;
        bool held;
        Approval approval;
        char *approval_by, *approval_reason; /* the Unix user who decided, and why (reject) */
        usec_t approval_at;
        char *target; /* for Cancel: the id withdrawn */
        uint64_t source_ino, source_mtime; /* of the dropped file, to recognise it after a crash */
        bool dirty;
        bool finishing;
        bool interim_due; /* an interim receipt should be (re)written: a channel waits long (delivery.c) */
        char *dir; /* STATE/queue/ID */
        unsigned layout; /* of dir: 1 (original/NAME, jobs.json from intake on) or 2 (see above) */
        bool jobs_saved; /* dir has a jobs.json (layout 2: its first one is written in place) */
};

const char *approval_to_string(Approval a);
const char *job_state_to_string(JobState s);
const char *job_state_to_thai(JobState s);
int job_state_from_string(const char *s);
bool job_state_is_final(JobState s);
bool entry_is_finished(const Entry *e);

typedef struct Queue Queue;

int queue_open(const char *state_dir, Queue **ret);
void queue_free(Queue *q);
const char *queue_state_dir(const Queue *q);

/* Entries in the order they were loaded or added. */
size_t queue_size(const Queue *q);
Entry *queue_entry(const Queue *q, size_t i);
Entry *queue_find(const Queue *q, const char *id);

/* True when an announcement with this id is queued or done. */
bool queue_id_exists(const Queue *q, const char *id);
/* Loads a done entry (for Cancel/Replaces targets and the CLI); caller frees with entry_free(). */
int queue_load_done(const Queue *q, const char *id, Entry **ret);
/* Moves a finished entry, loaded by queue_load_done(), back into the queue (to retry a channel).  Takes
 * the entry: it is in the queue afterwards, or freed when the move failed (r < 0 and not queued). */
int queue_reopen(Queue *q, Entry *e);

/*
 * Intake: makes `entry` durable with a copy of the dropped file or folder at `source`.
 * The entry is staged in STATE/tmp; queue_commit_intake() makes all staged entries durable at once
 * (one filesystem sync, renames, directory syncs) and adds them to the queue.  Only after that
 * may the caller remove the originals from incoming/.
 */
int queue_stage_intake(Queue *q, Entry *entry, const char *source);
int queue_commit_intake(Queue *q);
void queue_abort_intake(Queue *q);

/* Marks an entry for the next queue_flush(). */
void queue_mark_dirty(Queue *q, Entry *e);
bool queue_has_dirty(const Queue *q);
/* Writes every dirty entry's jobs.json in one batch. */
int queue_flush(Queue *q);

/* Moves n finished entries to STATE/done, syncing each directory once, and drops each one that moved
 * from memory (it is freed).  results[i] is 0 or a negative errno; returns how many moved durably. */
size_t queue_retire(Queue *q, Entry *const *entries, size_t n, int *results);

/* Loading and saving, also for the CLI. */
Entry *entry_new(Announcement *a);
void entry_free(Entry *e);
json_t *entry_jobs_to_json(const Entry *e);
int entry_load_dir(const char *dir, Entry **ret);
/* Every entry in STATE/queue (and STATE/done when `done`), sorted by id; for the CLI. */
int queue_list_dir(const char *state_dir, bool done, Entry ***ret, size_t *ret_n);
/* Path of the original file or folder: DIR/original-NAME (layout 1: DIR/original/NAME). */
char *entry_original_path(const Entry *e);
