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
        uint64_t h = 1469598103934665603ULL;
        for (; *id; id++)
                h = (h ^ (unsigned char) *id) * 1099511628211ULL;
        return (size_t) h;
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
        char *state_dir, *queue_dir, *done_dir, *tmp_dir;
        Entry **entries;
        size_t n_entries, cap;
        IdIndex by_id;
        Entry **staged; /* intake, not yet durable */
        char **staged_dirs;
        size_t n_staged;
        IdIndex staged_by_id;
        IdFilter known; /* every id with a folder in queue/ or done/: most new ids need no lookup */
        size_t n_dirty;
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

static char *original_path(const char *dir, unsigned layout, const char *name) {
        return xasprintf(layout >= 2 ? "%s/original-%s" : "%s/original/%s", dir, name);
}

char *entry_original_path(const Entry *e) {
        return original_path(e->dir, e->layout, e->announcement->source_name);
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

int entry_load_dir(const char *dir, Entry **ret) {
        _cleanup_free_ char *ap = path_join(dir, "announcement.json"), *jp = path_join(dir, "jobs.json");
        json_t *aj = NULL, *jj = NULL;
        Announcement *a = NULL;
        json_int_t layout;
        Entry *e;
        int r;

        r = load_json_file(ap, &aj);
        if (r < 0)
                return r;
        r = announcement_from_json(aj, &a);
        if (r < 0) {
                json_decref(aj);
                return r;
        }
        e = entry_new(a);
        e->dir = xstrdup(dir);
        layout = json_integer_value(json_object_get(aj, "layout"));
        e->layout = layout >= 2 ? 2 : 1;
        /*
         * The jobs: jobs.json once they changed; until then (layout 2), as intake wrote them.  The first
         * jobs.json of layout 2 is written in place (queue_flush()): one that does not parse was cut off
         * by a crash before it was synced, so nothing was done on the strength of it.
         */
        r = load_json_file(jp, &jj);
        e->jobs_saved = r != -ENOENT;
        if (r == -EBADMSG && e->layout >= 2)
                log_warning("%s: jobs.json is incomplete (cut off by a crash before it was saved); "
                            "using the job states from before it.", dir);
        if ((r == -ENOENT || r == -EBADMSG) && e->layout >= 2 && json_is_object(json_object_get(aj, "jobs")))
                r = entry_jobs_from_json(e, json_object_get(aj, "jobs"));
        else if (r >= 0) {
                r = entry_jobs_from_json(e, jj);
                json_decref(jj);
        }
        json_decref(aj);
        if (r < 0) {
                entry_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

/* The text of a state file; takes the reference to o. */
static char *json_text(json_t *o) {
        char *s = json_text_format(o, 1);
        json_decref(o);
        return s;
}

/* Writes o (whose reference it takes) as a state file, whole and synced. */
static int write_json_atomic(const char *path, json_t *o) {
        _cleanup_free_ char *s = json_text(o);
        return write_file_atomic(path, s, strlen(s), 0640);
}

/* ---- the queue ---- */

static int compare_entry_ids(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;
        return strcmp(x->announcement->id, y->announcement->id);
}

static int compare_entry_received(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;
        if (x->announcement->received != y->announcement->received)
                return x->announcement->received < y->announcement->received ? -1 : 1;
        return strcmp(x->announcement->id, y->announcement->id);
}

int queue_list_dir(const char *state_dir, bool done, Entry ***ret, size_t *ret_n) {
        const char *subdirs[] = { "queue", "done" };
        Entry **list = NULL;
        size_t n = 0;

        for (size_t s = 0; s < (done ? 2u : 1u); s++) {
                _cleanup_free_ char *dir = path_join(state_dir, subdirs[s]);
                _cleanup_(closedirp) DIR *d = opendir(dir);
                struct dirent *de;

                if (!d) {
                        if (errno == ENOENT)
                                continue;
                        for (size_t i = 0; i < n; i++)
                                entry_free(list[i]);
                        free(list);
                        return -errno;
                }
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = NULL;
                        Entry *e;

                        if (de->d_name[0] == '.')
                                continue;
                        p = path_join(dir, de->d_name);
                        if (entry_load_dir(p, &e) < 0) {
                                log_warning("Cannot read %s, skipping it; its files are kept as they are.", p);
                                continue;
                        }
                        list = xrealloc(list, (n + 1) * sizeof(Entry *));
                        list[n++] = e;
                }
        }
        if (n > 1)
                qsort(list, n, sizeof(Entry *), compare_entry_ids);
        *ret = list;
        *ret_n = n;
        return 0;
}

/* Adds the name of everything in dir to q->known. */
static int queue_know_names(Queue *q, const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        id_filter_add(&q->known, de->d_name);
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
        id_filter_reset(&q->known);
        /* Leftovers of an intake cut off by a crash: their originals are still in incoming/. */
        r = remove_tree(q->tmp_dir);
        if (r >= 0)
                r = mkdir_p(q->queue_dir, 0750);
        if (r >= 0)
                r = mkdir_p(q->done_dir, 0750);
        if (r >= 0)
                r = mkdir_p(q->tmp_dir, 0750);
        if (r >= 0)
                r = queue_know_names(q, q->queue_dir);
        if (r >= 0)
                r = queue_know_names(q, q->done_dir);
        if (r >= 0)
                r = queue_list_dir(state_dir, false, &list, &n);
        if (r < 0) {
                queue_free(q);
                return log_error_errno(r, "Failed to open the queue in %s: %m", state_dir);
        }
        /* Received order is the order of work, not the id order the CLI lists in. */
        if (n > 1)
                qsort(list, n, sizeof(Entry *), compare_entry_received);
        for (size_t i = 0; i < n; i++)
                queue_push(q, list[i]);
        free(list);
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
        free(q->staged_dirs);
        free(q->state_dir);
        free(q->queue_dir);
        free(q->done_dir);
        free(q->tmp_dir);
        free(q);
}

bool queue_id_exists(const Queue *q, const char *id) {
        _cleanup_free_ char *a = path_join(q->queue_dir, id), *b = path_join(q->done_dir, id);

        if (queue_find(q, id))
                return true;
        if (id_index_get(&q->staged_by_id, id))
                return true;
        if (!id_filter_may_have(&q->known, id))
                return false;
        return access(a, F_OK) == 0 || access(b, F_OK) == 0;
}

int queue_reopen(Queue *q, Entry *e) {
        _cleanup_free_ char *to = path_join(q->queue_dir, e->announcement->id);
        int r;

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
        _cleanup_free_ char *p = path_join(q->done_dir, id);
        return entry_load_dir(p, ret);
}

/* Writes a staged entry's files without syncing; queue_commit_intake() syncs the whole filesystem once. */
static int stage_write_json(const char *path, json_t *o) {
        _cleanup_free_ char *s = json_text(o);

        return write_new_file(path, s, strlen(s), 0640);
}

int queue_stage_intake(Queue *q, Entry *e, const char *source) {
        _cleanup_free_ char *dir = path_join(q->tmp_dir, e->announcement->id), *copy = NULL, *ap = NULL;
        json_t *o;
        struct stat st;
        int r;

        r = mkdir_empty(dir, 0750); /* one there was left by an intake cut off */
        if (r < 0)
                return r;
        e->layout = QUEUE_LAYOUT;
        copy = original_path(dir, e->layout, e->announcement->source_name);
        if (lstat(source, &st) < 0) {
                r = -errno;
                goto fail;
        }
        /* 0644: the state folder keeps others out; the receipt links this file instead of copying it.
         * A single file is written from the bytes the parser read: the original is what was parsed. */
        if (S_ISDIR(st.st_mode))
                r = copy_tree(source, copy);
        else if (e->announcement->source_bytes)
                r = write_new_file(copy, e->announcement->source_bytes, e->announcement->source_size, 0644);
        else
                r = copy_file(source, copy, 0644);
        if (r < 0)
                goto fail;
        free(e->announcement->source_bytes);
        e->announcement->source_bytes = NULL;
        e->source_ino = (uint64_t) st.st_ino;
        e->source_mtime = (uint64_t) st.st_mtim.tv_sec * 1000000000ULL + (uint64_t) st.st_mtim.tv_nsec;
        ap = path_join(dir, "announcement.json");
        o = announcement_to_json(e->announcement);
        json_object_set_new(o, "layout", json_integer(QUEUE_LAYOUT));
        json_object_set_new(o, "jobs", entry_jobs_to_json(e));
        r = stage_write_json(ap, o);
        if (r < 0)
                goto fail;
        q->staged = xrealloc(q->staged, (q->n_staged + 1) * sizeof(Entry *));
        q->staged_dirs = xrealloc(q->staged_dirs, (q->n_staged + 1) * sizeof(char *));
        q->staged[q->n_staged] = e;
        q->staged_dirs[q->n_staged++] = TAKE_PTR(dir);
        id_index_put(&q->staged_by_id, e);
        return 0;
fail:
        (void) remove_tree(dir);
        return r;
}

int queue_commit_intake(Queue *q) {
        _cleanup_close_ int fd = -1;
        size_t done = 0;
        int r = 0;

        if (q->n_staged == 0)
                return 0;
        /* One syncfs() makes every staged byte durable; N fsync()s would each wait for the disk. */
        fd = open(q->tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0) {
                r = -errno;
                queue_abort_intake(q);
                return r;
        }
        id_index_clear(&q->staged_by_id);
        for (size_t i = 0; i < q->n_staged; i++) {
                Entry *e = q->staged[i];
                _cleanup_free_ char *final = path_join(q->queue_dir, e->announcement->id);

                if (rename(q->staged_dirs[i], final) < 0) {
                        r = -errno;
                        log_error_errno(r, "Failed to move %s into the queue: %m", e->announcement->id);
                        (void) remove_tree(q->staged_dirs[i]);
                        entry_free(e);
                } else {
                        e->dir = TAKE_PTR(final);
                        id_filter_add(&q->known, e->announcement->id);
                        queue_push(q, e);
                        done++;
                }
                free(q->staged_dirs[i]);
        }
        q->n_staged = 0;
        if (done > 0) {
                int k = fsync_path(q->queue_dir);
                if (k < 0 && r >= 0)
                        r = k;
        }
        return r;
}

void queue_abort_intake(Queue *q) {
        id_index_clear(&q->staged_by_id);
        for (size_t i = 0; i < q->n_staged; i++) {
                (void) remove_tree(q->staged_dirs[i]);
                free(q->staged_dirs[i]);
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
        WriteBatch *b;
        int r = 0;

        if (q->n_dirty == 0)
                return 0;
        b = write_batch_new();
        for (size_t i = 0; i < q->n_entries && r >= 0; i++) {
                Entry *e = q->entries[i];
                _cleanup_free_ char *p = NULL, *s = NULL;

                if (!e->dirty)
                        continue;
                s = json_text(entry_jobs_to_json(e));
                p = path_join(e->dir, "jobs.json");
                /* Layout 2's first jobs.json: in place, a rename saved (see entry_load_dir()). */
                r = e->layout >= 2 && !e->jobs_saved ? write_batch_add_new(b, p, s, strlen(s))
                                                     : write_batch_add(b, p, s, strlen(s));
        }
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

size_t queue_retire(Queue *q, Entry *const *entries, size_t n, int *results) {
        size_t moved = 0;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                Entry *e = entries[i];
                _cleanup_free_ char *final = path_join(q->done_dir, e->announcement->id);

                results[i] = 0;
                if (e->dirty) { /* the caller retires only saved entries; save this one first anyway */
                        _cleanup_free_ char *jp = path_join(e->dir, "jobs.json");
                        results[i] = write_json_atomic(jp, entry_jobs_to_json(e));
                        e->jobs_saved |= results[i] >= 0;
                }
                if (results[i] >= 0 && rename(e->dir, final) < 0) {
                        results[i] = -errno;
                        if (errno == ENOTEMPTY || errno == EEXIST) {
                                /* a leftover of a crash between publishing and this rename */
                                (void) remove_tree(final);
                                results[i] = rename(e->dir, final) < 0 ? -errno : 0;
                        }
                }
                moved += results[i] >= 0;
        }
        if (moved > 0) {
                r = fsync_path(q->done_dir);
                if (r >= 0)
                        r = fsync_path(q->queue_dir);
        }
        for (size_t i = 0; i < n; i++)
                if (results[i] >= 0) {
                        /* Moved: even if the sync failed, the entry lives in done/ now. */
                        results[i] = r;
                        queue_drop(q, entries[i]);
                }
        return r < 0 ? 0 : moved;
}
