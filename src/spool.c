/* SPDX-License-Identifier: MIT */
#include "spool.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "delivery.h"
#include "log.h"

#define SPOOL_RETRY_PAUSED (30 * USEC_PER_SEC)
#define SPOOL_MAX_BATCH 2000 /* names taken in one go; the rest follow in the next iteration */

typedef struct Candidate {
        char *name;
        usec_t changed;   /* monotonic time of the last change seen */
        uint64_t signature; /* size and times of the file, or of everything in a folder */
        bool moved_in;
} Candidate;

struct Spool {
        Manager *m;
        char *incoming, *rejected, *published, *pending;
        sd_event_source *inotify;
        sd_event_source *timer;
        Candidate *candidates;
        size_t n, cap;
        char *paused; /* reason intake is paused, e.g. the disk is full */
};

bool spool_name_ignored(const char *name) {
        static const char *const suffixes[] = { ".tmp", ".part", ".crdownload", ".error.txt", ".swp", "~" };

        if (name[0] == '.' || strncmp(name, "~$", 2) == 0)
                return true;
        if (strcasecmp(name, "Thumbs.db") == 0 || strcasecmp(name, "desktop.ini") == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                if (endswith_nocase(name, suffixes[i]))
                        return true;
        return false;
}

size_t spool_waiting(const Spool *s) {
        return s->n;
}

const char *spool_paused_reason(const Spool *s) {
        return s->paused;
}

static uint64_t signature_add(uint64_t h, const struct stat *st) {
        h = hash_fnv1a(&st->st_size, sizeof st->st_size, h);
        h = hash_fnv1a(&st->st_mtim, sizeof st->st_mtim, h);
        return hash_fnv1a(&st->st_ctim, sizeof st->st_ctim, h);
}

/* Changes inside a bundle folder are not reported by inotify on incoming/, so folders are compared whole. */
static uint64_t signature_of(const char *path, unsigned depth) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        struct stat st;
        uint64_t h = HASH_FNV1A_SEED;

        if (lstat(path, &st) < 0)
                return 0;
        h = signature_add(h, &st);
        if (!S_ISDIR(st.st_mode) || depth > 4)
                return h;
        d = opendir(path);
        if (!d)
                return h;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                _cleanup_free_ char *p = path_join(path, de->d_name);
                uint64_t sub = signature_of(p, depth + 1);
                h ^= hash_fnv1a(de->d_name, strlen(de->d_name), sub); /* order-independent */
        }
        return h;
}

static Candidate *candidate_find(Spool *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->candidates[i].name, name))
                        return &s->candidates[i];
        return NULL;
}

static void candidate_remove(Spool *s, size_t i) {
        free(s->candidates[i].name);
        s->candidates[i] = s->candidates[--s->n];
}

static void spool_arm(Spool *s);

static void spool_note(Spool *s, const char *name, bool moved_in) {
        Candidate *c;

        if (spool_name_ignored(name))
                return;
        c = candidate_find(s, name);
        if (!c) {
                if (s->n == s->cap) {
                        s->cap = s->cap ? s->cap * 2 : 64;
                        s->candidates = xrealloc(s->candidates, s->cap * sizeof(Candidate));
                }
                c = &s->candidates[s->n++];
                *c = (Candidate) { .name = xstrdup(name) };
        }
        c->changed = clock_monotonic();
        c->moved_in = c->moved_in || moved_in;
        c->signature = 0;
}

/* A unique name in rejected/: NAME, then NAME-2, NAME-3 ... before the extension. */
static char *rejected_name(Spool *s, const char *name) {
        const char *dot = strrchr(name, '.');
        size_t stem = dot && dot != name ? (size_t) (dot - name) : strlen(name);

        for (unsigned i = 1; i < 10000; i++) {
                _cleanup_free_ char *candidate = i == 1 ? xstrdup(name)
                                                         : xasprintf("%.*s-%u%s", (int) stem, name, i, name + stem);
                _cleanup_free_ char *p = path_join(s->rejected, candidate);
                _cleanup_free_ char *ep = xasprintf("%s.error.txt", p);
                if (access(p, F_OK) < 0 && access(ep, F_OK) < 0)
                        return TAKE_PTR(candidate);
        }
        return xasprintf("%s-%llu", name, (unsigned long long) clock_now());
}

static void spool_reject(Spool *s, const char *name, const ParseError *e) {
        _cleanup_free_ char *target = rejected_name(s, name), *from = path_join(s->incoming, name),
                            *to = path_join(s->rejected, target), *error_path = xasprintf("%s.error.txt", to),
                            *text = parse_error_format(e, name, clock_now());
        int r;

        /* The explanation first: a crash after it leaves the file in incoming/, to be judged again. */
        r = write_file_atomic(error_path, text, strlen(text), 0644);
        if (r < 0) {
                log_error_errno(r, "Failed to write %s, leaving %s in incoming: %m", error_path, name);
                return;
        }
        if (rename(from, to) < 0) {
                log_error_errno(errno, "Failed to move %s to rejected/: %m", name);
                return;
        }
        (void) fsync_path(s->rejected);
        (void) fsync_path(s->incoming);
        if (e->line)
                log_full(LOG_WARNING, 0, NULL, NULL, "Rejected %s, line %u: %s", name, e->line, e->en ? e->en : "");
        else
                log_full(LOG_WARNING, 0, NULL, NULL, "Rejected %s: %s", name, e->en ? e->en : "");
}

static void parse_error_set(ParseError *e, const char *th, const char *en) {
        parse_error_done(e);
        e->th = xstrdup(th);
        e->en = xstrdup(en);
}

/*
 * An id that exists already: the same dropped file seen again after a crash (its inode and
 * time match what was recorded: remove it quietly), the same content dropped twice (refuse: it
 * would be published twice), or a different text whose derived id collided (pick another id).
 */
typedef enum Known {
        KNOWN_NEW,
        KNOWN_LEFTOVER,
        KNOWN_REJECT,
} Known;

static Known spool_check_known(Spool *s, const char *path, Announcement *a, ParseError *e) {
        Entry *existing, *loaded = NULL;
        struct stat st;
        Known k = KNOWN_NEW;

        while (queue_id_exists(s->m->queue, a->id)) {
                existing = queue_find(s->m->queue, a->id);
                if (!existing && queue_load_done(s->m->queue, a->id, &loaded) >= 0)
                        existing = loaded;
                if (existing && lstat(path, &st) == 0 && existing->source_ino == (uint64_t) st.st_ino &&
                    existing->source_mtime ==
                            (uint64_t) st.st_mtim.tv_sec * 1000000000ULL + (uint64_t) st.st_mtim.tv_nsec &&
                    existing->announcement->source_hash == a->source_hash) {
                        k = KNOWN_LEFTOVER;
                        break;
                }
                if (a->id_given) {
                        _cleanup_free_ char *th = xasprintf("รหัส %s ถูกใช้ไปแล้วกับประกาศอื่น ให้เปลี่ยนรหัส หรือลบบรรทัด "
                                                            "รหัส: ออกเพื่อให้ระบบตั้งให้ ถ้าต้องการแก้ไขประกาศเดิม "
                                                            "ให้ใช้ แทนที่: %s", a->id, a->id);
                        _cleanup_free_ char *en = xasprintf("The id %s is already used by another announcement. Choose "
                                                            "another id, or remove the ID: line to get one. To change "
                                                            "the earlier announcement, write Replaces: %s instead.",
                                                            a->id, a->id);
                        parse_error_set(e, th, en);
                        k = KNOWN_REJECT;
                        break;
                }
                if (existing && existing->announcement->source_hash == a->source_hash) {
                        _cleanup_free_ char *th = xasprintf("ประกาศนี้ได้รับไปแล้วในชื่อรหัส %s (เนื้อหาเหมือนกันทุกตัวอักษร) "
                                                            "จึงไม่เผยแพร่ซ้ำ ถ้าต้องการแก้ไข ให้เพิ่มบรรทัด แทนที่: %s",
                                                            a->id, a->id);
                        _cleanup_free_ char *en = xasprintf("This announcement was already received as %s (the very "
                                                            "same content), so it is not published twice. To change "
                                                            "it, add the line Replaces: %s.", a->id, a->id);
                        parse_error_set(e, th, en);
                        k = KNOWN_REJECT;
                        break;
                }
                /* Same day, different content, same short hash: very rare; make the id unique. */
                char *id = xasprintf("%s-%llx", a->id, (unsigned long long) (clock_monotonic() & 0xfff));
                free(a->id);
                a->id = id;
                entry_free(loaded);
                loaded = NULL;
        }
        entry_free(loaded);
        return k;
}

static bool spool_check_target(Spool *s, const Announcement *a, ParseError *e) {
        const char *target = a->cancel ? a->cancel : a->replaces;

        if (!target || queue_id_exists(s->m->queue, target))
                return true;
        announcement_target_missing(a, e);
        return false;
}

typedef struct Taken {
        char *name, *id;
} Taken;

/* Returns -ENOSPC/-EDQUOT/-EIO when the state disk cannot take it: the file stays in incoming/. */
static int spool_take(Spool *s, const char *name, Taken *taken) {
        Manager *m = s->m;
        _cleanup_free_ char *path = path_join(s->incoming, name);
        ParseContext ctx = { .config = m->config, .now = clock_now() };
        ParseError e = {};
        Announcement *a = NULL;
        Entry *entry;
        int r;

        r = announcement_load(&ctx, path, name, &a, &e);
        if (r >= 0) {
                Known k = spool_check_known(s, path, a, &e);
                if (k == KNOWN_LEFTOVER) {
                        r = queue_restore_original(m->queue, a, path);
                        if (r < 0) { /* kept in incoming/: the caller says so and looks again */
                                announcement_free(a);
                                return r;
                        }
                        log_full(LOG_INFO, 0, a->id, NULL, "%s was taken before a restart; removing the leftover",
                                 name);
                        (void) remove_tree(path);
                        announcement_free(a);
                        return 0;
                }
                if (k == KNOWN_REJECT || !spool_check_target(s, a, &e))
                        r = -EINVAL;
        }
        if (r < 0) {
                announcement_free(a);
                spool_reject(s, name, &e);
                parse_error_done(&e);
                return 0;
        }
        entry = entry_new(a);
        delivery_create_jobs(m, entry);
        r = queue_stage_intake(m->queue, entry, path);
        if (r < 0) {
                entry_free(entry);
                return r;
        }
        taken->name = xstrdup(name);
        taken->id = xstrdup(a->id);
        log_full(LOG_INFO, 0, a->id, NULL, "Took %s (%s): %s", name, a->encoding, a->title);
        return 1;
}

static void spool_set_paused(Spool *s, const char *reason) {
        if (streq_ptr(s->paused, reason))
                return;
        free(s->paused);
        s->paused = reason ? xstrdup(reason) : NULL;
        if (reason)
                log_error("Intake paused: %s. Files stay in incoming/ and are taken when this is fixed.", reason);
        else
                log_notice("Intake resumed.");
        manager_update_status(s->m);
}

/* Takes every ready candidate in one batch: one sync of the state disk for all of them. */
static void spool_take_ready(Spool *s) {
        Manager *m = s->m;
        usec_t now = clock_monotonic();
        Taken *taken = xcalloc(s->n + 1, sizeof(Taken));
        size_t n_taken = 0, n_seen = 0;
        int r = 0;

        for (size_t i = 0; i < s->n && n_seen < SPOOL_MAX_BATCH;) {
                Candidate *c = &s->candidates[i];
                _cleanup_free_ char *p = path_join(s->incoming, c->name);
                uint64_t sig;

                /* A dangling symlink is still there to reject: do not follow it. */
                if (faccessat(AT_FDCWD, p, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
                        candidate_remove(s, i);
                        continue;
                }
                if (!c->moved_in) {
                        /* Still being written (a copy over Samba can pause): wait until nothing changes. */
                        sig = signature_of(p, 0);
                        if (sig != c->signature) {
                                /* The first look only records; inotify already dated the last change. */
                                if (c->signature != 0)
                                        c->changed = now;
                                c->signature = sig;
                        }
                        if (now - c->changed < m->config->settle) {
                                i++;
                                continue;
                        }
                }
                n_seen++;
                r = spool_take(s, c->name, &taken[n_taken]);
                if (r == -ENOSPC || r == -EDQUOT || r == -EROFS || r == -EIO) {
                        _cleanup_free_ char *why = xasprintf("cannot write to the state folder %s: %s",
                                                             m->config->state, strerror(-r));
                        spool_set_paused(s, why);
                        break;
                }
                if (r < 0)
                        log_error_errno(r, "Failed to take %s, will look again: %m", c->name);
                else {
                        n_taken += r > 0;
                        candidate_remove(s, i);
                        continue;
                }
                i++;
        }
        if (n_taken > 0) {
                int k = queue_commit_intake(m->queue);
                if (k < 0) {
                        log_error_errno(k, "Failed to make the new announcements durable; they stay in incoming: %m");
                        if (k == -ENOSPC || k == -EDQUOT || k == -EIO) {
                                _cleanup_free_ char *why = xasprintf("cannot write to the state folder %s: %s",
                                                                     m->config->state, strerror(-k));
                                spool_set_paused(s, why);
                        }
                }
                for (size_t i = 0; i < n_taken; i++) {
                        Entry *e = queue_find(m->queue, taken[i].id);
                        if (e) {
                                _cleanup_free_ char *p = path_join(s->incoming, taken[i].name);
                                (void) remove_tree(p);
                                delivery_schedule_entry(m, e);
                        } else
                                spool_note(s, taken[i].name, false); /* look again later */
                        free(taken[i].name);
                        free(taken[i].id);
                }
                (void) fsync_path(s->incoming);
                if (k >= 0 && r >= 0)
                        spool_set_paused(s, NULL);
        } else if (r >= 0 && s->paused && n_seen > 0)
                spool_set_paused(s, NULL);
        free(taken);
        manager_update_status(m);
}

static int on_settle(sd_event_source *src, uint64_t usec, void *userdata) {
        Spool *s = userdata;

        if (!s->m->stopping)
                spool_take_ready(s);
        spool_arm(s);
        return 0;
}

/* One timer for all candidates: the earliest moment one of them may be ready. */
static void spool_arm(Spool *s) {
        usec_t now = clock_monotonic(), next = UINT64_MAX;

        if (s->m->stopping)
                return;
        for (size_t i = 0; i < s->n; i++) {
                usec_t due = s->candidates[i].moved_in ? now : s->candidates[i].changed + s->m->config->settle;
                if (due < next)
                        next = due;
        }
        if (s->paused && s->n > 0)
                next = now + SPOOL_RETRY_PAUSED;
        if (next == UINT64_MAX) {
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(s->timer, next > now ? next : now);
        sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

void spool_rescan(Spool *s) {
        _cleanup_(closedirp) DIR *d = opendir(s->incoming);
        struct dirent *de;

        if (!d) {
                log_error_errno(errno, "Failed to read %s: %m", s->incoming);
                return;
        }
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        spool_note(s, de->d_name, false);
        spool_arm(s);
}

static int on_inotify(sd_event_source *src, const struct inotify_event *ev, void *userdata) {
        Spool *s = userdata;

        if (ev->mask & IN_Q_OVERFLOW) {
                log_warning("Too many changes at once in incoming/ (inotify overflow); looking at everything again.");
                spool_rescan(s);
                return 0;
        }
        if (ev->len == 0 || (ev->mask & (IN_DELETE | IN_MOVED_FROM)))
                return 0;
        spool_note(s, ev->name, (ev->mask & IN_MOVED_TO) != 0);
        spool_arm(s);
        return 0;
}

int spool_new(Manager *m, Spool **ret) {
        const char *sub[] = { "incoming", "published", "rejected", "pending" };
        Spool *s = xcalloc(1, sizeof(Spool));
        int r;

        s->m = m;
        s->incoming = path_join(m->config->spool, "incoming");
        s->published = path_join(m->config->spool, "published");
        s->rejected = path_join(m->config->spool, "rejected");
        s->pending = path_join(m->config->spool, "pending");
        for (size_t i = 0; i < ELEMENTSOF(sub); i++) {
                _cleanup_free_ char *p = path_join(m->config->spool, sub[i]);
                r = mkdir_p(p, 0775);
                if (r < 0) {
                        log_error_errno(r, "Failed to create %s: %m", p);
                        spool_free(s);
                        return r;
                }
        }
        r = sd_event_add_inotify(m->event, &s->inotify, s->incoming,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_DELETE |
                                         IN_MOVED_FROM | IN_ONLYDIR,
                                 on_inotify, s);
        if (r >= 0)
                r = sd_event_add_time(m->event, &s->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC * 50, on_settle, s);
        if (r < 0) {
                log_error_errno(r, "Failed to watch %s: %m", s->incoming);
                spool_free(s);
                return r;
        }
        sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->inotify, "incoming");
        (void) sd_event_source_set_description(s->timer, "settle");
        spool_rescan(s);
        *ret = s;
        return 0;
}

void spool_free(Spool *s) {
        if (!s)
                return;
        sd_event_source_disable_unref(s->inotify);
        sd_event_source_disable_unref(s->timer);
        for (size_t i = 0; i < s->n; i++)
                free(s->candidates[i].name);
        free(s->candidates);
        free(s->incoming);
        free(s->rejected);
        free(s->published);
        free(s->pending);
        free(s->paused);
        free(s);
}
