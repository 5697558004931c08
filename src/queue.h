/* SPDX-License-Identifier: MIT */
/*
 * queue: the durable state of every announcement (DESIGN §4).  Layout 3, what prakatd writes:
 *
 *   STATE/journal/NNNNNNNNNNNNNNNN.jsonl   segments of the journal: one line per entry saved, as
 *                                          compact JSON: the whole entry (announcement, jobs, approval)
 *                                          the first time, then its jobs only ("jobs_only": true; the
 *                                          announcement never changes after intake).  Each flush of the
 *                                          job states, and each intake batch, writes one new segment and
 *                                          syncs it before anything is done on its strength; the last
 *                                          line of an id is its state.  A line cut off by a crash does
 *                                          not parse and ends its segment.
 *   STATE/originals/ID+NAME                the file or folder as staff dropped it (kept for good: the
 *                                          receipt links it, the digest reads its pictures)
 *   STATE/done/ID.json                     a finished entry, the same object indented, written when
 *                                          every job has ended; until it is synced the journal still
 *                                          holds the entry
 *
 * The journal is compacted when it grows past JOURNAL_MAX_SEGMENTS segments (one new segment with
 * every unfinished entry, then the old ones go) and emptied when nothing is left unfinished.  An
 * entry taken back from done/ for a retry gets the next "generation", which outranks its done file.
 *
 * Layouts 1 and 2 (an upgrade finds them: STATE/queue/ID/ and STATE/done/ID/ folders with
 * announcement.json, jobs.json and the original) are read and finished as they are.  Each layout
 * saved files per announcement: a folder, a file and a rename cost more kernel time than anything
 * else prakat does for it, and the journal writes one file per batch instead of three per entry.
 */
#pragma once

#include <jansson.h>

#define QUEUE_LAYOUT 3 /* what queue_stage_intake() writes */

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
        char *dir; /* layouts 1 and 2: STATE/queue/ID (or done/ID); layout 3: STATE/originals */
        unsigned layout; /* 1 (original/NAME, jobs.json from intake on), 2 (original-NAME), 3 (see above) */
        unsigned generation; /* layout 3: how often a retry took it back from done/ */
        bool journaled;      /* layout 3: the journal holds it whole; a change needs a line of its jobs only */
        bool jobs_saved; /* layouts 1 and 2: dir has a jobs.json (layout 2: its first one is written in place) */
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
 * queue_stage_intake() writes the copy into STATE/originals; queue_commit_intake() writes every
 * staged entry into one journal segment, syncs the filesystem once and adds them to the queue.  Only
 * after that may the caller remove the originals from incoming/.
 */
int queue_stage_intake(Queue *q, Entry *entry, const char *source);
int queue_commit_intake(Queue *q);
void queue_abort_intake(Queue *q);
/*
 * A dropped file found again after a crash, already in the queue (the same inode, time and content):
 * the crash came between the journal and the removal of the file, and a power cut may have kept the
 * journal's line but not the copy of the original.  Writes the copy again from `source` (a, parsed
 * from it, holds its bytes) and syncs it; only then may the caller remove the file.
 */
int queue_restore_original(Queue *q, const Announcement *a, const char *source);

/* Marks an entry for the next queue_flush(). */
void queue_mark_dirty(Queue *q, Entry *e);
bool queue_has_dirty(const Queue *q);
/* Saves every dirty entry: one journal segment (layouts 1 and 2: jobs.json files) and one sync. */
int queue_flush(Queue *q);

/* Writes n finished entries to STATE/done (layouts 1 and 2: moves their folders), syncing once, and
 * drops each one from memory (it is freed).  results[i] is 0 or a negative errno; returns how many
 * are in done/ durably. */
size_t queue_retire(Queue *q, Entry *const *entries, size_t n, int *results);

/* Loading and saving, also for the CLI. */
Entry *entry_new(Announcement *a);
void entry_free(Entry *e);
json_t *entry_jobs_to_json(const Entry *e);
int entry_load_dir(const char *dir, Entry **ret);
/* Every unfinished entry (and the finished ones when `done`), sorted by id; for the CLI. */
int queue_list_dir(const char *state_dir, bool done, Entry ***ret, size_t *ret_n);
/* One entry by id, unfinished or finished; -ENOENT when the state has none.  For the CLI. */
int queue_load_any(const char *state_dir, const char *id, Entry **ret);
/* Path of the original file or folder: STATE/originals/ID+NAME (layout 2: DIR/original-NAME,
 * layout 1: DIR/original/NAME). */
char *entry_original_path(const Entry *e);
