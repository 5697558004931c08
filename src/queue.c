/* SPDX-License-Identifier: MIT */
#include "queue.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "id-filter.h"
#include "json-text.h"
#include "log.h"
#include "thaidate.h"

static const char *const job_state_names[_JOB_STATE_MAX] = {
        [JOB_SCHEDULED] = "scheduled", [JOB_SENDING] = "sending",         [JOB_DEFERRED] = "deferred",
        [JOB_DONE] = "done",           [JOB_FAILED] = "failed",           [JOB_UNCONFIRMED] = "unconfirmed",
        [JOB_SKIPPED] = "skipped",     [JOB_CANCELLED] = "cancelled",
};

static const char *const job_state_thai[_JOB_STATE_MAX] = {
        [JOB_SCHEDULED] = "รอเวลาเผยแพร่", [JOB_SENDING] = "กำลังส่ง",       [JOB_DEFERRED] = "รอส่งใหม่",
        [JOB_DONE] = "เผยแพร่แล้ว",        [JOB_FAILED] = "ไม่สำเร็จ",        [JOB_UNCONFIRMED] = "ยังยืนยันไม่ได้",
        [JOB_SKIPPED] = "ข้าม (ช่องทางปิดอยู่)", [JOB_CANCELLED] = "ยกเลิกแล้ว",
};

static const char *const approval_names[] = { "none", "waiting", "approved", "rejected" };

const char *approval_to_string(Approval a) {
        return a < ELEMENTSOF(approval_names) ? approval_names[a] : "none";
}

static Approval approval_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(approval_names); i++)
                if (streq(s, approval_names[i]))
                        return (Approval) i;
        return APPROVAL_NONE;
}

const char *job_state_to_string(JobState s) {
        return (unsigned) s < _JOB_STATE_MAX ? job_state_names[s] : "unknown";
}

const char *job_state_to_thai(JobState s) {
        return (unsigned) s < _JOB_STATE_MAX ? job_state_thai[s] : "?";
}

int job_state_from_string(const char *s) {
        for (int i = 0; i < _JOB_STATE_MAX; i++)
                if (streq_ptr(s, job_state_names[i]))
                        return i;
        return -EINVAL;
}

bool job_state_is_final(JobState s) {
        return s == JOB_DONE || s == JOB_FAILED || s == JOB_UNCONFIRMED || s == JOB_SKIPPED || s == JOB_CANCELLED;
}

bool entry_is_finished(const Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++)
                if (!job_state_is_final(e->jobs[i].state))
                        return false;
        return true;
}

/* Entries by id: open addressing with linear probing, at most half full.  A burst of a thousand files
 * looks each new id up in the queue and in the batch being taken; a scan each time was quadratic. */
typedef struct IdIndex {
        Entry **slots;
        size_t cap, n; /* cap: 0 or a power of two */
} IdIndex;

static size_t id_hash(const char *id) {
        return (size_t) hash_fnv1a(id, strlen(id), HASH_FNV1A_SEED);
}

static size_t id_index_slot(const IdIndex *x, const char *id) {
        size_t i = id_hash(id) & (x->cap - 1);
        while (x->slots[i] && !streq(x->slots[i]->announcement->id, id))
                i = (i + 1) & (x->cap - 1);
        return i;
}

static Entry *id_index_get(const IdIndex *x, const char *id) {
        return x->cap ? x->slots[id_index_slot(x, id)] : NULL;
}

static void id_index_put(IdIndex *x, Entry *e) {
        if (2 * (x->n + 1) > x->cap) {
                IdIndex bigger = { .cap = x->cap ? 2 * x->cap : 64 };
                bigger.slots = xcalloc(bigger.cap, sizeof(Entry *));
                for (size_t i = 0; i < x->cap; i++)
                        if (x->slots[i])
                                bigger.slots[id_index_slot(&bigger, x->slots[i]->announcement->id)] = x->slots[i];
                bigger.n = x->n;
                free(x->slots);
                *x = bigger;
        }
        size_t i = id_index_slot(x, e->announcement->id);
        x->n += !x->slots[i];
        x->slots[i] = e;
}

/* Removes e (if it is there) and moves later entries of its run back, so that no probe stops early. */
static void id_index_del(IdIndex *x, const Entry *e) {
        size_t i, j;

        if (!x->cap || x->slots[i = id_index_slot(x, e->announcement->id)] != e)
                return;
        x->slots[i] = NULL;
        x->n--;
        for (j = (i + 1) & (x->cap - 1); x->slots[j]; j = (j + 1) & (x->cap - 1)) {
                size_t home = id_hash(x->slots[j]->announcement->id) & (x->cap - 1);
                /* Stays when its home lies cyclically in (i, j]. */
                if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                        continue;
                x->slots[i] = x->slots[j];
                x->slots[j] = NULL;
                i = j;
        }
}

static void id_index_clear(IdIndex *x) {
        free(x->slots);
        *x = (IdIndex) { 0 };
}

struct Queue {
        char *state_dir, *queue_dir, *done_dir, *tmp_dir, *journal_dir, *originals_dir;
        Entry **entries;
        size_t n_entries, cap;
        IdIndex by_id;
        Entry **staged; /* intake, not yet durable */
        size_t n_staged;
        IdIndex staged_by_id;
        IdFilter known; /* every id queued or done: most new ids need no lookup */
        size_t n_dirty;
        uint64_t next_segment; /* number of the next journal segment */
        size_t n_segments;     /* segments in journal_dir */
};

const char *queue_state_dir(const Queue *q) {
        return q->state_dir;
}

size_t queue_size(const Queue *q) {
        return q ? q->n_entries : 0; /* no queue: prakatd --check */
}

Entry *queue_entry(const Queue *q, size_t i) {
        return i < q->n_entries ? q->entries[i] : NULL;
}

Entry *queue_find(const Queue *q, const char *id) {
        return id_index_get(&q->by_id, id);
}

static void queue_push(Queue *q, Entry *e) {
        if (q->n_entries == q->cap) {
                q->cap = q->cap ? q->cap * 2 : 64;
                q->entries = xrealloc(q->entries, q->cap * sizeof(Entry *));
        }
        q->entries[q->n_entries++] = e;
        id_index_put(&q->by_id, e);
}

/* ---- entries ---- */

Entry *entry_new(Announcement *a) {
        Entry *e = xcalloc(1, sizeof(Entry));
        e->announcement = a;
        e->layout = QUEUE_LAYOUT;
        return e;
}

static void job_done(Job *j) {
        free(j->channel);
        free(j->message);
        free(j->message_th);
        free(j->link);
        free(j->remote_id);
        for (size_t i = 0; i < j->n_attachment_urls; i++)
                free(j->attachment_urls[i]);
        free(j->attachment_urls);
}

void entry_free(Entry *e) {
        if (!e)
                return;
        for (size_t i = 0; i < e->n_jobs; i++)
                job_done(&e->jobs[i]);
        free(e->jobs);
        announcement_free(e->announcement);
        free(e->target);
        free(e->approval_by);
        free(e->approval_reason);
        free(e->dir);
        free(e);
}

static char *original_path(const char *dir, unsigned layout, const char *id, const char *name) {
        if (layout >= 3)
                return xasprintf("%s/%s+%s", dir, id, name);
        return xasprintf(layout >= 2 ? "%s/original-%s" : "%s/original/%s", dir, name);
}

char *entry_original_path(const Entry *e) {
        return original_path(e->dir, e->layout, e->announcement->id, e->announcement->source_name);
}

static json_t *json_time_or_null(usec_t t) {
        char buf[64];
        if (!t)
                return json_null();
        thaidate_format_utc(t, buf, sizeof buf);
        return json_string(buf);
}

static usec_t json_time_value(const json_t *j) {
        usec_t t = 0;
        if (json_is_string(j))
                thaidate_parse_utc(json_string_value(j), &t);
        return t;
}

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *entry_jobs_to_json(const Entry *e) {
        json_t *o = json_object(), *jobs = json_array();

        for (size_t i = 0; i < e->n_jobs; i++) {
                const Job *j = &e->jobs[i];
                json_t *jo = json_object(), *urls = json_array();

                json_object_set_new(jo, "channel", json_string(j->channel));
                json_object_set_new(jo, "kind", json_string(j->kind == JOB_RETRACT ? "retract" : "publish"));
                json_object_set_new(jo, "state", json_string(job_state_to_string(j->state)));
                json_object_set_new(jo, "attempts", json_integer(j->attempts));
                if (j->resume_free)
                        json_object_set_new(jo, "resume_free", json_true());
                json_object_set_new(jo, "first_try", json_time_or_null(j->first_try));
                json_object_set_new(jo, "last_try", json_time_or_null(j->last_try));
                json_object_set_new(jo, "next_try", json_time_or_null(j->next_try));
                json_object_set_new(jo, "finished", json_time_or_null(j->finished));
                json_object_set_new(jo, "message", json_string_or_null(j->message));
                json_object_set_new(jo, "message_th", json_string_or_null(j->message_th));
                json_object_set_new(jo, "link", json_string_or_null(j->link));
                json_object_set_new(jo, "remote_id", json_string_or_null(j->remote_id));
                for (size_t k = 0; k < j->n_attachment_urls; k++)
                        json_array_append_new(urls, json_string(j->attachment_urls[k]));
                json_object_set_new(jo, "attachment_urls", urls);
                json_array_append_new(jobs, jo);
        }
        json_object_set_new(o, "version", json_integer(1));
        json_object_set_new(o, "held", json_boolean(e->held));
        if (e->approval != APPROVAL_NONE)
                json_object_set_new(o, "approval",
                                    json_pack("{s:s, s:o, s:o, s:o}", "state", approval_to_string(e->approval), "by",
                                              json_string_or_null(e->approval_by), "at",
                                              json_time_or_null(e->approval_at), "reason",
                                              json_string_or_null(e->approval_reason)));
        json_object_set_new(o, "target", json_string_or_null(e->target));
        json_object_set_new(o, "source_ino", json_integer((json_int_t) e->source_ino));
        json_object_set_new(o, "source_mtime", json_integer((json_int_t) e->source_mtime));
        json_object_set_new(o, "jobs", jobs);
        return o;
}

static char *json_dup(const json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? xstrdup(s) : NULL;
}

static int entry_jobs_from_json(Entry *e, const json_t *o) {
        json_t *jobs = json_object_get(o, "jobs"), *jo;
        size_t i;

        if (!json_is_array(jobs))
                return -EINVAL;
        e->held = json_is_true(json_object_get(o, "held"));
        json_t *ap = json_object_get(o, "approval");
        if (json_is_object(ap)) {
                e->approval = approval_from_string(json_string_value(json_object_get(ap, "state")));
                e->approval_by = json_dup(ap, "by");
                e->approval_at = json_time_value(json_object_get(ap, "at"));
                e->approval_reason = json_dup(ap, "reason");
        }
        e->target = json_dup(o, "target");
        e->source_ino = (uint64_t) json_integer_value(json_object_get(o, "source_ino"));
        e->source_mtime = (uint64_t) json_integer_value(json_object_get(o, "source_mtime"));
        e->jobs = xcalloc(json_array_size(jobs), sizeof(Job));
        json_array_foreach(jobs, i, jo) {
                Job *j = &e->jobs[e->n_jobs];
                int s = job_state_from_string(json_string_value(json_object_get(jo, "state")));
                json_t *urls = json_object_get(jo, "attachment_urls"), *u;
                size_t k;

                if (s < 0 || !json_is_string(json_object_get(jo, "channel")))
                        return -EINVAL;
                j->entry = e;
                j->channel = json_dup(jo, "channel");
                j->kind = streq_ptr(json_string_value(json_object_get(jo, "kind")), "retract") ? JOB_RETRACT
                                                                                                : JOB_PUBLISH;
                j->state = (JobState) s;
                j->attempts = (unsigned) json_integer_value(json_object_get(jo, "attempts"));
                j->resume_free = json_is_true(json_object_get(jo, "resume_free"));
                j->first_try = json_time_value(json_object_get(jo, "first_try"));
                j->last_try = json_time_value(json_object_get(jo, "last_try"));
                j->next_try = json_time_value(json_object_get(jo, "next_try"));
                j->finished = json_time_value(json_object_get(jo, "finished"));
                j->message = json_dup(jo, "message");
                j->message_th = json_dup(jo, "message_th");
                j->link = json_dup(jo, "link");
                j->remote_id = json_dup(jo, "remote_id");
                j->attachment_urls = xcalloc(json_array_size(urls) + 1, sizeof(char *));
                json_array_foreach(urls, k, u)
                        if (json_is_string(u))
                                j->attachment_urls[j->n_attachment_urls++] = xstrdup(json_string_value(u));
                e->n_jobs++;
        }
        return 0;
}

static int load_json_file(const char *path, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        json_error_t err;
        size_t size;
        int r;

        r = read_file(path, 16 * 1024 * 1024, &data, &size);
        if (r < 0)
                return r;
        *ret = json_loadb(data, size, 0, &err);
        return *ret ? 0 : -EBADMSG;
}

/* The whole entry as one object: the announcement, "layout", "generation" and the jobs ("jobs"). */
static json_t *entry_record(const Entry *e) {
        json_t *o = announcement_to_json(e->announcement);

        json_object_set_new(o, "layout", json_integer(e->layout));
        if (e->generation > 0)
                json_object_set_new(o, "generation", json_integer(e->generation));
        json_object_set_new(o, "jobs", entry_jobs_to_json(e));
        return o;
}

/* An entry from a record (entry_record()'s object, or a layout 1/2 announcement.json); takes aj.
 * jj: the jobs of a layout 1/2 jobs.json when there is one, else NULL. */
static int entry_from_record(json_t *aj, json_t *jj, const char *dir, Entry **ret) {
        Announcement *a = NULL;
        json_int_t layout;
        Entry *e;
        int r;

        r = announcement_from_json(aj, &a);
        if (r < 0) {
                json_decref(aj);
                json_decref(jj);
                return r;
        }
        e = entry_new(a);
        e->dir = xstrdup(dir);
        layout = json_integer_value(json_object_get(aj, "layout"));
        e->layout = layout >= 3 ? 3 : layout == 2 ? 2 : 1;
        e->generation = (unsigned) json_integer_value(json_object_get(aj, "generation"));
        e->jobs_saved = jj != NULL;
        if (jj)
                r = entry_jobs_from_json(e, jj);
        else if (e->layout >= 2 && json_is_object(json_object_get(aj, "jobs")))
                r = entry_jobs_from_json(e, json_object_get(aj, "jobs"));
        else
                r = -EBADMSG;
        json_decref(aj);
        json_decref(jj);
        if (r < 0) {
                entry_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

int entry_load_dir(const char *dir, Entry **ret) {
        _cleanup_free_ char *ap = path_join(dir, "announcement.json"), *jp = path_join(dir, "jobs.json");
        json_t *aj = NULL, *jj = NULL;
        int r;

        r = load_json_file(ap, &aj);
        if (r < 0)
                return r;
        /*
         * The jobs: jobs.json once they changed; until then (layout 2), as intake wrote them.  The first
         * jobs.json of layout 2 is written in place (queue_flush()): one that does not parse was cut off
         * by a crash before it was synced, so nothing was done on the strength of it.
         */
        r = load_json_file(jp, &jj);
        if (r == -EBADMSG && json_integer_value(json_object_get(aj, "layout")) >= 2)
                log_warning("%s: jobs.json is incomplete (cut off by a crash before it was saved); "
                            "using the job states from before it.", dir);
        else if (r < 0 && r != -ENOENT) {
                json_decref(aj);
                return r;
        }
        bool jobs_file = r != -ENOENT; /* a broken one too: the next save replaces it whole */
        r = entry_from_record(aj, r >= 0 ? jj : NULL, dir, ret);
        if (r >= 0)
                (*ret)->jobs_saved = jobs_file;
        return r;
}

/* Loads STATE/done/ID.json (layout 3); its original is in originals_dir. */
static int entry_load_done_file(const char *path, const char *originals_dir, Entry **ret) {
        json_t *aj = NULL;
        int r = load_json_file(path, &aj);

        return r < 0 ? r : entry_from_record(aj, NULL, originals_dir, ret);
}

/* The text of a state file (indent 1) or of a journal line (indent 0); takes the reference to o. */
static char *json_text(json_t *o, unsigned indent) {
        char *s = json_text_format(o, indent);
        json_decref(o);
        return s;
}

/* Writes o (whose reference it takes) as a state file, whole and synced. */
static int write_json_atomic(const char *path, json_t *o) {
        _cleanup_free_ char *s = json_text(o, 1);
        return write_file_atomic(path, s, strlen(s), 0640);
}

/* ---- the journal (layout 3) ---- */

#define SEGMENT_SUFFIX ".jsonl"
#define JOURNAL_MAX_SEGMENTS 64

/* The number of a segment's file name ("%016llx.jsonl"), or false for anything else. */
static bool segment_number(const char *name, uint64_t *ret) {
        char *end;

        if (strlen(name) != 16 + strlen(SEGMENT_SUFFIX) || !streq(name + 16, SEGMENT_SUFFIX))
                return false;
        errno = 0;
        *ret = strtoull(name, &end, 16);
        return errno == 0 && end == name + 16;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* The segments' numbers, ascending. */
static int journal_segments(const char *journal_dir, uint64_t **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir(journal_dir);
        uint64_t *list = NULL, k;
        size_t n = 0;
        struct dirent *de;

        if (!d) {
                *ret = NULL;
                *ret_n = 0;
                return errno == ENOENT ? 0 : -errno;
        }
        while ((de = readdir(d)))
                if (segment_number(de->d_name, &k)) {
                        list = xrealloc(list, (n + 1) * sizeof(uint64_t));
                        list[n++] = k;
                }
        if (n > 1)
                qsort(list, n, sizeof(uint64_t), compare_u64);
        *ret = list;
        *ret_n = n;
        return 0;
}

static char *segment_path(const char *journal_dir, uint64_t k) {
        return xasprintf("%s/%016llx" SEGMENT_SUFFIX, journal_dir, (unsigned long long) k);
}

/* One line into `latest`: a whole entry replaces what was there; a line of "jobs_only" replaces the jobs
 * (and generation) of the whole entry an earlier line gave.  Takes o. */
static void journal_take_line(json_t *latest, json_t *o) {
        const char *id = json_string_value(json_object_get(o, "id"));
        json_t *whole;

        if (!json_is_true(json_object_get(o, "jobs_only"))) {
                json_object_set_new(latest, id, o);
                return;
        }
        whole = json_object_get(latest, id);
        if (whole) { /* always, but for a journal edited by hand: an update of nothing is dropped */
                json_object_set(whole, "jobs", json_object_get(o, "jobs"));
                if (json_object_get(o, "generation"))
                        json_object_set(whole, "generation", json_object_get(o, "generation"));
        }
        json_decref(o);
}

/*
 * Reads every segment, oldest first, into `latest` (id → the last record of it).  A segment is
 * written in place and synced before anything is done on the strength of it, so a line that does not
 * parse was cut off by a crash: it and the rest of its segment are ignored.  A segment removed
 * meanwhile (prakatd compacting while the CLI reads) makes the whole read start again.
 */
static int journal_read(const char *journal_dir, json_t **ret_latest, uint64_t *ret_next, size_t *ret_n) {
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_free_ uint64_t *list = NULL;
                json_t *latest = json_object();
                size_t n;
                bool vanished = false;
                int r;

                r = journal_segments(journal_dir, &list, &n);
                if (r < 0) {
                        json_decref(latest);
                        return r;
                }
                for (size_t i = 0; i < n && !vanished; i++) {
                        _cleanup_free_ char *p = segment_path(journal_dir, list[i]), *data = NULL;
                        size_t size;

                        r = read_file(p, 256 * 1024 * 1024, &data, &size);
                        if (r == -ENOENT) {
                                vanished = true;
                                break;
                        }
                        if (r < 0) {
                                json_decref(latest);
                                return r;
                        }
                        for (size_t at = 0; at < size;) {
                                const char *nl = memchr(data + at, '\n', size - at);
                                json_error_t err;
                                json_t *o;

                                if (!nl) /* the last line ends with a newline once it is whole */
                                        break;
                                o = json_loadb(data + at, (size_t) (nl - data) - at, 0, &err);
                                if (!json_is_string(json_object_get(o, "id"))) {
                                        json_decref(o);
                                        break;
                                }
                                journal_take_line(latest, o);
                                at = (size_t) (nl - data) + 1;
                        }
                }
                if (vanished && attempt < 10) {
                        json_decref(latest);
                        continue;
                }
                *ret_latest = latest;
                *ret_next = n > 0 ? list[n - 1] + 1 : 1;
                *ret_n = n;
                return 0;
        }
}

static void list_add(Entry ***list, size_t *n, Entry *e) {
        *list = xrealloc(*list, (*n + 1) * sizeof(Entry *));
        (*list)[(*n)++] = e;
}

/* A layout-3 entry's record in done/: "ID.json". */
static char *done_file_path(const char *done_dir, const char *id) {
        return xasprintf("%s/%s.json", done_dir, id);
}

/*
 * The entries the journal holds that are not finished: a record whose done/ID.json is there with the
 * same or a later generation was retired (its done file is the newer word on it).
 */
static int journal_entries(const char *state_dir, Entry ***list, size_t *n, uint64_t *ret_next, size_t *ret_segments) {
        _cleanup_free_ char *journal_dir = path_join(state_dir, "journal"), *done_dir = path_join(state_dir, "done"),
                            *originals_dir = path_join(state_dir, "originals");
        json_t *latest = NULL, *o;
        const char *id;
        uint64_t next;
        size_t n_segments;
        int r;

        r = journal_read(journal_dir, &latest, &next, &n_segments);
        if (r < 0)
                return r;
        json_object_foreach(latest, id, o) {
                _cleanup_free_ char *dp = done_file_path(done_dir, id);
                Entry *e = NULL, *done = NULL;

                if (entry_load_done_file(dp, originals_dir, &done) >= 0) {
                        bool retired = done->generation >= (unsigned) json_integer_value(json_object_get(o, "generation"));
                        entry_free(done);
                        if (retired)
                                continue;
                }
                if (entry_from_record(json_incref(o), NULL, originals_dir, &e) < 0) {
                        log_warning("%s: the journal's record of %s cannot be read, skipping it.", journal_dir, id);
                        continue;
                }
                e->journaled = true;
                list_add(list, n, e);
        }
        json_decref(latest);
        if (ret_next)
                *ret_next = next;
        if (ret_segments)
                *ret_segments = n_segments;
        return 0;
}

/* Writes the records of n entries as the next segment, in place and not synced: the caller syncs the
 * filesystem before anything is done on the strength of them.  A segment that failed is removed.
 * An entry the journal holds whole already gets a line of its jobs only, unless `whole` (a compaction:
 * the older lines are about to go).  Written out every 64 KiB: a compaction of a thousand entries needs
 * no buffer of their size. */
static int journal_write(Queue *q, Entry *const *entries, size_t n, bool whole) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -1;
        StrBuf b = {};
        int r = 0;

        if (n == 0)
                return 0;
        p = segment_path(q->journal_dir, q->next_segment++);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const Entry *e = entries[i];
                json_t *o;

                if (whole || !e->journaled)
                        o = entry_record(e);
                else {
                        o = json_pack("{s:s, s:b}", "id", e->announcement->id, "jobs_only", 1);
                        if (e->generation > 0)
                                json_object_set_new(o, "generation", json_integer(e->generation));
                        json_object_set_new(o, "jobs", entry_jobs_to_json(e));
                }
                _cleanup_free_ char *line = json_text(o, 0);
                strbuf_append(&b, line);
                strbuf_appendn(&b, "\n", 1);
                if (b.len >= 64 * 1024 || i + 1 == n) {
                        r = write_full(fd, b.data, b.len);
                        b.len = 0;
                }
        }
        strbuf_free(&b);
        if (r < 0) {
                (void) unlink(p);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                entries[i]->journaled = true;
        q->n_segments++;
        return 0;
}

/* ---- the queue ---- */

static int compare_entry_ids(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;
        int c = strcmp(x->announcement->id, y->announcement->id);
        /* the same id twice: a done record and the journal's after a retry; the later generation last */
        return c ? c : x->generation < y->generation ? -1 : x->generation > y->generation;
}

static int compare_entry_received(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;
        if (x->announcement->received != y->announcement->received)
                return x->announcement->received < y->announcement->received ? -1 : 1;
        return strcmp(x->announcement->id, y->announcement->id);
}

/* The entries of one folder: layout 1/2 entry folders, and (in done/) layout 3's ID.json files. */
static int list_folder(const char *dir, const char *originals_dir, Entry ***list, size_t *n) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                Entry *e;
                int r;

                if (de->d_name[0] == '.')
                        continue;
                p = path_join(dir, de->d_name);
                if (endswith_nocase(de->d_name, ".json"))
                        r = entry_load_done_file(p, originals_dir, &e);
                else
                        r = entry_load_dir(p, &e);
                if (r < 0) {
                        log_warning("Cannot read %s, skipping it; its files are kept as they are.", p);
                        continue;
                }
                list_add(list, n, e);
        }
        return 0;
}

/* Sorts by id and keeps, of an id listed twice, the later generation. */
static void list_sort_unique(Entry **list, size_t *n) {
        size_t k = 0;

        if (*n > 1)
                qsort(list, *n, sizeof(Entry *), compare_entry_ids);
        for (size_t i = 0; i < *n; i++) {
                if (i + 1 < *n && streq(list[i]->announcement->id, list[i + 1]->announcement->id)) {
                        entry_free(list[i]);
                        continue;
                }
                list[k++] = list[i];
        }
        *n = k;
}

int queue_list_dir(const char *state_dir, bool done, Entry ***ret, size_t *ret_n) {
        _cleanup_free_ char *queue_dir = path_join(state_dir, "queue"), *done_dir = path_join(state_dir, "done"),
                            *originals_dir = path_join(state_dir, "originals");
        Entry **list = NULL;
        size_t n = 0;
        int r;

        r = list_folder(queue_dir, originals_dir, &list, &n);
        if (r >= 0)
                r = journal_entries(state_dir, &list, &n, NULL, NULL);
        if (r >= 0 && done)
                r = list_folder(done_dir, originals_dir, &list, &n);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        entry_free(list[i]);
                free(list);
                return r;
        }
        list_sort_unique(list, &n);
        *ret = list;
        *ret_n = n;
        return 0;
}

/* Whether a load succeeded; a failure other than "not there" is kept in *error (the first one). */
static bool found_or_note(int r, int *error) {
        if (r < 0 && r != -ENOENT && *error == -ENOENT)
                *error = r;
        return r >= 0;
}

int queue_load_any(const char *state_dir, const char *id, Entry **ret) {
        _cleanup_free_ char *done_dir = path_join(state_dir, "done"), *originals_dir = path_join(state_dir, "originals"),
                            *done_file = done_file_path(done_dir, id), *done_folder = path_join(done_dir, id),
                            *queue_folder = xasprintf("%s/queue/%s", state_dir, id);
        Entry **list = NULL;
        size_t n = 0;
        int r, error = -ENOENT;

        /* Unfinished: in the journal (which holds only those, and says which ones a retry took back). */
        r = journal_entries(state_dir, &list, &n, NULL, NULL);
        *ret = NULL;
        for (size_t i = 0; i < n; i++)
                if (!*ret && streq(list[i]->announcement->id, id))
                        *ret = list[i];
                else
                        entry_free(list[i]);
        free(list);
        if (*ret)
                return 0;
        if (r < 0)
                error = r;
        /* Else an older version's folder in queue/, the done file, or an older version's folder in done/. */
        if (found_or_note(entry_load_dir(queue_folder, ret), &error) ||
            found_or_note(entry_load_done_file(done_file, originals_dir, ret), &error) ||
            found_or_note(entry_load_dir(done_folder, ret), &error))
                return 0;
        return error; /* -ENOENT only if nothing was there that could not be read */
}

/* Adds the name of everything in dir to q->known (done/ID.json as ID). */
static int queue_know_names(Queue *q, const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (de->d_name[0] == '.')
                        continue;
                if (len > 5 && streq(de->d_name + len - 5, ".json"))
                        de->d_name[len - 5] = 0;
                id_filter_add(&q->known, de->d_name);
        }
        return 0;
}

/* Removes originals no entry owns: an intake cut off by a crash wrote them, and its file is still in
 * incoming/ (it is removed only once the entry is synced). */
static void queue_remove_orphans(Queue *q) {
        _cleanup_(closedirp) DIR *d = opendir(q->originals_dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *id = NULL, *dp = NULL, *p = NULL;
                const char *plus = strchr(de->d_name, '+');

                if (de->d_name[0] == '.' || !plus)
                        continue;
                id = xstrndup(de->d_name, (size_t) (plus - de->d_name));
                if (queue_find(q, id))
                        continue;
                dp = done_file_path(q->done_dir, id);
                if (access(dp, F_OK) == 0 || errno != ENOENT)
                        continue;
                p = path_join(q->originals_dir, de->d_name);
                log_info("Removing %s: left by an intake cut off by a crash (its file is still in incoming/).", p);
                (void) remove_tree(p);
        }
}

/* Layout-3 entries of the queue (not those being taken in). */
static size_t queue_journal_entries(const Queue *q, Entry ***ret) {
        Entry **list = xcalloc(q->n_entries ? q->n_entries : 1, sizeof(Entry *));
        size_t n = 0;

        for (size_t i = 0; i < q->n_entries; i++)
                if (q->entries[i]->layout >= 3)
                        list[n++] = q->entries[i];
        *ret = list;
        return n;
}

/*
 * Keeps the journal short: with no layout-3 entry left every segment goes; past JOURNAL_MAX_SEGMENTS
 * (or when `force`) one new segment holds every entry as it is now, and the older ones go.  Called
 * only when nothing is dirty, so the new segment says nothing the old ones did not.
 */
static int queue_compact(Queue *q, bool force) {
        _cleanup_free_ uint64_t *segments = NULL;
        _cleanup_free_ Entry **live = NULL;
        size_t n_live, n_segments;
        uint64_t first_kept;
        int r;

        n_live = queue_journal_entries(q, &live);
        if (q->n_segments == 0 || (n_live > 0 && q->n_segments < JOURNAL_MAX_SEGMENTS && !force))
                return 0;
        first_kept = q->next_segment;
        if (n_live > 0) {
                r = journal_write(q, live, n_live, true);
                if (r >= 0)
                        r = sync_filesystem(q->journal_dir);
                if (r < 0)
                        return log_error_errno(r, "Failed to compact the journal (will try again): %m");
        }
        r = journal_segments(q->journal_dir, &segments, &n_segments);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_segments && segments[i] < first_kept; i++) {
                _cleanup_free_ char *p = segment_path(q->journal_dir, segments[i]);
                if (unlink(p) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove %s: %m", p);
        }
        q->n_segments = n_live > 0 ? 1 : 0;
        return 0;
}

int queue_open(const char *state_dir, Queue **ret) {
        Queue *q = xcalloc(1, sizeof(Queue));
        Entry **list = NULL;
        size_t n = 0;
        int r;

        q->state_dir = xstrdup(state_dir);
        q->queue_dir = path_join(state_dir, "queue");
        q->done_dir = path_join(state_dir, "done");
        q->tmp_dir = path_join(state_dir, "tmp");
        q->journal_dir = path_join(state_dir, "journal");
        q->originals_dir = path_join(state_dir, "originals");
        id_filter_reset(&q->known);
        /* Leftovers of an intake of layout 2 cut off by a crash: their originals are still in incoming/. */
        r = remove_tree(q->tmp_dir);
        if (r >= 0)
                r = mkdir_p(q->queue_dir, 0750);
        if (r >= 0)
                r = mkdir_p(q->done_dir, 0750);
        if (r >= 0)
                r = mkdir_p(q->journal_dir, 0750);
        if (r >= 0)
                r = mkdir_p(q->originals_dir, 0750);
        if (r >= 0)
                r = queue_know_names(q, q->queue_dir);
        if (r >= 0)
                r = queue_know_names(q, q->done_dir);
        if (r >= 0)
                r = list_folder(q->queue_dir, q->originals_dir, &list, &n);
        if (r >= 0)
                r = journal_entries(state_dir, &list, &n, &q->next_segment, &q->n_segments);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        entry_free(list[i]);
                free(list);
                queue_free(q);
                return log_error_errno(r, "Failed to open the queue in %s: %m", state_dir);
        }
        /* Received order is the order of work, not the id order the CLI lists in. */
        if (n > 1)
                qsort(list, n, sizeof(Entry *), compare_entry_received);
        for (size_t i = 0; i < n; i++) {
                id_filter_add(&q->known, list[i]->announcement->id);
                queue_push(q, list[i]);
        }
        free(list);
        queue_remove_orphans(q);
        (void) queue_compact(q, true); /* one segment of what is left, or none */
        *ret = q;
        return 0;
}

void queue_free(Queue *q) {
        if (!q)
                return;
        queue_abort_intake(q);
        for (size_t i = 0; i < q->n_entries; i++)
                entry_free(q->entries[i]);
        free(q->entries);
        id_index_clear(&q->by_id);
        id_index_clear(&q->staged_by_id);
        id_filter_free(&q->known);
        free(q->staged);
        free(q->state_dir);
        free(q->queue_dir);
        free(q->done_dir);
        free(q->tmp_dir);
        free(q->journal_dir);
        free(q->originals_dir);
        free(q);
}

bool queue_id_exists(const Queue *q, const char *id) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        if (queue_find(q, id))
                return true;
        if (id_index_get(&q->staged_by_id, id))
                return true;
        if (!id_filter_may_have(&q->known, id))
                return false;
        a = path_join(q->queue_dir, id);
        b = path_join(q->done_dir, id);
        c = done_file_path(q->done_dir, id);
        return access(c, F_OK) == 0 || access(b, F_OK) == 0 || access(a, F_OK) == 0;
}

int queue_reopen(Queue *q, Entry *e) {
        _cleanup_free_ char *to = NULL;
        int r;

        if (e->layout >= 3) {
                /* The journal takes it again with the next generation, which outranks done/ID.json. */
                e->generation++;
                queue_push(q, e);
                queue_mark_dirty(q, e);
                return 0;
        }
        to = path_join(q->queue_dir, e->announcement->id);
        if (rename(e->dir, to) < 0) {
                r = -errno;
                entry_free(e);
                return r;
        }
        r = fsync_path(q->queue_dir);
        if (r >= 0)
                r = fsync_path(q->done_dir);
        free(e->dir);
        e->dir = TAKE_PTR(to);
        queue_push(q, e); /* in the queue now, whatever the syncs said: that is where it is */
        return r;
}

int queue_load_done(const Queue *q, const char *id, Entry **ret) {
        _cleanup_free_ char *f = done_file_path(q->done_dir, id), *p = NULL;
        int r = entry_load_done_file(f, q->originals_dir, ret);

        if (r != -ENOENT)
                return r;
        p = path_join(q->done_dir, id);
        return entry_load_dir(p, ret);
}

/*
 * Writes the copy of a dropped file or folder at `copy`, not synced.  0644: the state folder keeps
 * others out; the receipt links this file instead of copying it.  A single file is written from the
 * bytes the parser read: the original is what was parsed.  Anything already at `copy` (left by an
 * intake cut off by a crash) is written over.
 */
static int write_original(const char *copy, const char *source, const Announcement *a, struct stat *ret_st) {
        int r;

        if (lstat(source, ret_st) < 0)
                return -errno;
        if (S_ISDIR(ret_st->st_mode)) {
                (void) remove_tree(copy);
                r = copy_tree(source, copy);
        } else if (a->source_bytes) {
                r = write_new_file(copy, a->source_bytes, a->source_size, 0644);
                if (r == -EISDIR) {
                        (void) remove_tree(copy);
                        r = write_new_file(copy, a->source_bytes, a->source_size, 0644);
                }
        } else {
                (void) remove_tree(copy);
                r = copy_file(source, copy, 0644);
        }
        if (r < 0)
                (void) remove_tree(copy);
        return r;
}

int queue_stage_intake(Queue *q, Entry *e, const char *source) {
        _cleanup_free_ char *copy = NULL;
        struct stat st;
        int r;

        e->layout = QUEUE_LAYOUT;
        free(e->dir);
        e->dir = xstrdup(q->originals_dir);
        copy = entry_original_path(e);
        r = write_original(copy, source, e->announcement, &st);
        if (r < 0)
                return r;
        free(e->announcement->source_bytes);
        e->announcement->source_bytes = NULL;
        e->source_ino = (uint64_t) st.st_ino;
        e->source_mtime = (uint64_t) st.st_mtim.tv_sec * 1000000000ULL + (uint64_t) st.st_mtim.tv_nsec;
        q->staged = xrealloc(q->staged, (q->n_staged + 1) * sizeof(Entry *));
        q->staged[q->n_staged++] = e;
        id_index_put(&q->staged_by_id, e);
        return 0;
}

int queue_restore_original(Queue *q, const Announcement *a, const char *source) {
        Entry *e = queue_find(q, a->id);
        _cleanup_free_ char *copy = NULL;
        struct stat st;
        int r;

        if (!e || e->layout < 3)
                return 0; /* a finished entry's original was synced when it finished */
        copy = entry_original_path(e);
        r = write_original(copy, source, a, &st);
        return r < 0 ? r : sync_tree(copy);
}

int queue_commit_intake(Queue *q) {
        int r;

        if (q->n_staged == 0)
                return 0;
        /* One segment for the batch, one syncfs() for it and every original: N fsync()s would each wait
         * for the disk. */
        r = journal_write(q, q->staged, q->n_staged, true);
        if (r >= 0)
                r = sync_filesystem(q->journal_dir);
        if (r < 0) {
                queue_abort_intake(q);
                return r;
        }
        id_index_clear(&q->staged_by_id);
        for (size_t i = 0; i < q->n_staged; i++) {
                id_filter_add(&q->known, q->staged[i]->announcement->id);
                queue_push(q, q->staged[i]);
        }
        q->n_staged = 0;
        return 0;
}

void queue_abort_intake(Queue *q) {
        id_index_clear(&q->staged_by_id);
        for (size_t i = 0; i < q->n_staged; i++) {
                _cleanup_free_ char *copy = entry_original_path(q->staged[i]);
                (void) remove_tree(copy);
                entry_free(q->staged[i]);
        }
        q->n_staged = 0;
}

void queue_mark_dirty(Queue *q, Entry *e) {
        if (e->dirty)
                return;
        e->dirty = true;
        q->n_dirty++;
}

bool queue_has_dirty(const Queue *q) {
        return q->n_dirty > 0;
}

int queue_flush(Queue *q) {
        _cleanup_free_ Entry **journal = NULL;
        WriteBatch *b;
        size_t n_journal = 0;
        int r = 0;

        if (q->n_dirty == 0)
                return 0;
        journal = xcalloc(q->n_dirty, sizeof(Entry *));
        b = write_batch_new();
        for (size_t i = 0; i < q->n_entries && r >= 0; i++) {
                Entry *e = q->entries[i];
                _cleanup_free_ char *p = NULL, *s = NULL;

                if (!e->dirty)
                        continue;
                if (e->layout >= 3) {
                        journal[n_journal++] = e;
                        continue;
                }
                s = json_text(entry_jobs_to_json(e), 1);
                p = path_join(e->dir, "jobs.json");
                /* Layout 2's first jobs.json: in place, a rename saved (see entry_load_dir()). */
                r = e->layout >= 2 && !e->jobs_saved ? write_batch_add_new(b, p, s, strlen(s))
                                                     : write_batch_add(b, p, s, strlen(s));
        }
        if (r >= 0)
                r = journal_write(q, journal, n_journal, false);
        if (r >= 0 && n_journal > 0)
                r = sync_filesystem(q->journal_dir);
        if (r >= 0)
                r = write_batch_commit(b);
        write_batch_free(b);
        if (r < 0)
                return log_error_errno(r, "Failed to save the job states (will try again): %m");
        for (size_t i = 0; i < q->n_entries; i++) {
                q->entries[i]->jobs_saved |= q->entries[i]->dirty;
                q->entries[i]->dirty = false;
        }
        q->n_dirty = 0;
        (void) queue_compact(q, false);
        return 0;
}

static void queue_drop(Queue *q, Entry *e) {
        for (size_t i = 0; i < q->n_entries; i++)
                if (q->entries[i] == e) {
                        memmove(q->entries + i, q->entries + i + 1, (q->n_entries - i - 1) * sizeof(Entry *));
                        q->n_entries--;
                        break;
                }
        if (e->dirty)
                q->n_dirty--;
        id_index_del(&q->by_id, e);
        entry_free(e);
}

/* Retires one layout 1/2 entry: its folder moves to done/. */
static int retire_folder(Queue *q, Entry *e) {
        _cleanup_free_ char *final = path_join(q->done_dir, e->announcement->id);
        int r = 0;

        if (e->dirty) { /* the caller retires only saved entries; save this one first anyway */
                _cleanup_free_ char *jp = path_join(e->dir, "jobs.json");
                r = write_json_atomic(jp, entry_jobs_to_json(e));
                e->jobs_saved |= r >= 0;
        }
        if (r >= 0 && rename(e->dir, final) < 0) {
                r = -errno;
                if (errno == ENOTEMPTY || errno == EEXIST) {
                        /* a leftover of a crash between publishing and this rename */
                        (void) remove_tree(final);
                        r = rename(e->dir, final) < 0 ? -errno : 0;
                }
        }
        return r;
}

size_t queue_retire(Queue *q, Entry *const *entries, size_t n, int *results) {
        size_t moved = 0;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                Entry *e = entries[i];

                if (e->layout >= 3) {
                        /* In place: until it is synced, the journal still holds the entry (and a copy cut
                         * off by a crash does not parse, so the journal's is used and this is written again). */
                        _cleanup_free_ char *p = done_file_path(q->done_dir, e->announcement->id),
                                            *s = json_text(entry_record(e), 1);
                        results[i] = write_new_file(p, s, strlen(s), 0640);
                } else
                        results[i] = retire_folder(q, e);
                moved += results[i] >= 0;
        }
        if (moved > 0)
                r = sync_filesystem(q->done_dir); /* the done files, and the renames of any folders */
        for (size_t i = 0; i < n; i++)
                if (results[i] >= 0) {
                        /* Written or moved: even if the sync failed, done/ is where it lives now. */
                        results[i] = r;
                        queue_drop(q, entries[i]);
                }
        if (r >= 0 && q->n_dirty == 0)
                (void) queue_compact(q, false);
        return r < 0 ? 0 : moved;
}
