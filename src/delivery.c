/* SPDX-License-Identifier: MIT */
#include "delivery.h"

#include <malloc.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/random.h>

#include "log.h"
#include "receipt.h"
#include "thaidate.h"

/* What a plugin holds while a job is in flight. */
struct JobRun {
        prakat_job abi; /* first: the plugin's job pointer leads back here */
        Job *job;
        ChannelInstance *instance;
};

static double random01(void) {
        uint32_t v = 0;
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
                v = (uint32_t) clock_monotonic();
        return (double) v / 4294967296.0;
}

usec_t delivery_backoff(const Config *c, unsigned attempts, double r) {
        double base = (double) c->retry_min * pow(2.0, attempts > 0 ? (double) (attempts - 1) : 0.0);
        double delay;

        if (base > (double) c->retry_max)
                base = (double) c->retry_max;
        /* "Equal jitter": half fixed, half random, so retries of many jobs spread out but never come too soon. */
        delay = base / 2.0 + base / 2.0 * r;
        if (delay < (double) c->retry_min)
                delay = (double) c->retry_min;
        return (usec_t) delay;
}

static bool channel_is_website(Manager *m, const char *name) {
        const ChannelConfig *cc = config_find_channel(m->config, name);
        return cc && streq_ptr(cc->plugin, "website");
}

/* Other channels link to the article page, so they wait until every website job has ended. */
static bool website_pending(Manager *m, const Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++)
                if (channel_is_website(m, e->jobs[i].channel) && !job_state_is_final(e->jobs[i].state))
                        return true;
        return false;
}

/* The entry gets its receipt after the next flush; only then is the queue scanned for such entries. */
static void entry_mark_finishing(Manager *m, Entry *e) {
        e->finishing = true;
        m->n_finishing++;
}

/*
 * An interim receipt: when some channels are done and every other one waits at least this long (a
 * tower slot this evening, a platform that asked for an hour), staff get a receipt now that says what
 * went out and what waits until when.  The final receipt replaces it.
 */
#define INTERIM_RECEIPT_WAIT (10 * USEC_PER_MINUTE)

static bool entry_waits_long(const Entry *e, usec_t now) {
        bool any_ended = false;

        if (entry_is_finished(e) || e->held || e->approval == APPROVAL_WAITING)
                return false;
        for (size_t i = 0; i < e->n_jobs; i++) {
                const Job *j = &e->jobs[i];
                if (job_state_is_final(j->state))
                        any_ended |= j->state != JOB_SKIPPED;
                else if ((j->state != JOB_DEFERRED && j->state != JOB_SCHEDULED) || j->next_try < now + INTERIM_RECEIPT_WAIT)
                        return false;
        }
        return any_ended;
}

static void entry_check_interim(Manager *m, Entry *e, usec_t now) {
        if (!e->interim_due && entry_waits_long(e, now)) {
                e->interim_due = true;
                m->n_interim++;
        }
}

void delivery_create_jobs(Manager *m, Entry *e) {
        const Announcement *a = e->announcement;
        size_t n = a->n_channels + a->n_skipped_channels;

        e->jobs = xcalloc(n ? n : 1, sizeof(Job));
        for (size_t i = 0; i < a->n_channels; i++)
                e->jobs[e->n_jobs++] = (Job) {
                        .entry = e,
                        .channel = xstrdup(a->channels[i]),
                        .kind = a->cancel ? JOB_RETRACT : JOB_PUBLISH,
                        .state = JOB_SCHEDULED,
                        .next_try = a->publish_at,
                };
        for (size_t i = 0; i < a->n_skipped_channels; i++)
                e->jobs[e->n_jobs++] = (Job) {
                        .entry = e,
                        .channel = xstrdup(a->skipped_channels[i]),
                        .state = JOB_SKIPPED,
                        .message = xstrdup("the channel is disabled in the config (enabled = no)"),
                        .message_th = xstrdup("ช่องทางนี้ถูกปิดใช้ในการตั้งค่า"),
                };
        /*
         * The jobs that would start at once are saved as "sending" with the entry itself, so that the
         * first attempt needs no state write of its own: a burst of new announcements reaches the
         * website one flush earlier and with one file replaced fewer each.
         */
        if (m->config->require_approval) {
                e->approval = APPROVAL_WAITING; /* nothing starts before `prakat approve` */
                return;
        }
        usec_t now = clock_now();
        for (size_t i = 0; i < e->n_jobs; i++) {
                Job *j = &e->jobs[i];
                if (j->state != JOB_SCHEDULED || a->publish_at > now)
                        continue;
                if (j->kind == JOB_PUBLISH && !channel_is_website(m, j->channel) && website_pending(m, e))
                        continue;
                j->state = JOB_SENDING;
                j->attempts = 1;
                j->first_try = j->last_try = now;
                j->next_try = 0;
                j->begun_at_intake = true;
        }
}

static void job_set_message(Job *j, const char *en, const char *th) {
        free(j->message);
        free(j->message_th);
        j->message = en ? xstrdup(en) : NULL;
        j->message_th = th ? xstrdup(th) : NULL;
}

static void job_cancel_timer(Job *j) {
        if (j->timer) {
                sd_event_source_disable_unref(j->timer);
                j->timer = NULL;
        }
}

static void job_begin(Manager *m, Job *j);
static void pending_preview_write(Manager *m, const Entry *e);
static void job_queue_start(Manager *m, Job *j);

/* A job's timer knows its manager and its job. */
typedef struct JobTimer {
        Manager *m;
        Job *job;
} JobTimer;

static int on_job_due(sd_event_source *s, uint64_t usec, void *userdata) {
        JobTimer *t = userdata;
        Manager *m = t->m;
        Job *j = t->job;

        job_cancel_timer(j); /* frees t through the destroy callback */
        if (!m->stopping)
                job_begin(m, j);
        return 0;
}

static void job_arm(Manager *m, Job *j, usec_t due) {
        usec_t now = clock_now();
        JobTimer *t;
        sd_event_source *s;

        job_cancel_timer(j);
        if (due <= now) {
                job_begin(m, j);
                return;
        }
        t = xcalloc(1, sizeof(JobTimer));
        *t = (JobTimer) { m, j };
        /* Relative, so a shifted test clock (PRAKAT_NOW) and wall-clock jumps do not matter. */
        if (sd_event_add_time_relative(m->event, &s, CLOCK_MONOTONIC, due - now, USEC_PER_MSEC * 10, on_job_due, t) < 0) {
                free(t);
                log_full(LOG_ERR, ENOMEM, j->entry->announcement->id, j->channel, "Cannot arm a timer, trying now");
                job_begin(m, j);
                return;
        }
        sd_event_source_set_destroy_callback(s, free);
        (void) sd_event_source_set_description(s, "job");
        j->timer = s;
}

static void job_schedule(Manager *m, Job *j) {
        Entry *e = j->entry;

        if (job_state_is_final(j->state) || e->held || e->approval == APPROVAL_WAITING || j->start_pending ||
            j->instance)
                return;
        if (j->kind == JOB_PUBLISH && !channel_is_website(m, j->channel) && website_pending(m, e))
                return; /* re-armed when the website job ends */
        switch (j->state) {
        case JOB_SENDING:
                if (j->begun_at_intake) { /* already "sending" on disk: hand it over after this flush */
                        j->begun_at_intake = false;
                        job_queue_start(m, j);
                        break;
                }
                /* cut off by a crash or stop: try again now, telling the plugin */
                j->interrupted = true;
                job_arm(m, j, 0);
                break;
        case JOB_DEFERRED:
                job_arm(m, j, j->next_try);
                break;
        default:
                job_arm(m, j, e->announcement->publish_at);
                break;
        }
}

void delivery_schedule_entry(Manager *m, Entry *e) {
        if (e->approval == APPROVAL_WAITING)
                pending_preview_write(m, e);
        for (size_t i = 0; i < e->n_jobs; i++)
                job_schedule(m, &e->jobs[i]);
        entry_check_interim(m, e, clock_now());
        if (entry_is_finished(e) && !e->finishing) {
                /* Nothing to do (everything skipped, or finished before a crash): finish after the flush. */
                entry_mark_finishing(m, e);
                queue_mark_dirty(m->queue, e);
                manager_request_flush(m);
        }
}

/* Marks the job sending; the plugin sees it only after the state is on disk (delivery_after_flush). */
static void job_begin(Manager *m, Job *j) {
        usec_t now = clock_now();

        if (j->start_pending)
                return;
        if (j->state != JOB_SENDING)
                j->interrupted = false;
        j->state = JOB_SENDING;
        if (j->resume_free) /* back from PRAKAT_OUTCOME_WAIT: the same attempt goes on */
                j->resume_free = false;
        else
                j->attempts++;
        if (!j->first_try)
                j->first_try = now;
        j->last_try = now;
        j->next_try = 0;
        queue_mark_dirty(m->queue, j->entry);
        job_queue_start(m, j);
}

/* The plugin gets the job after the next flush, when its "sending" state is on disk. */
static void job_queue_start(Manager *m, Job *j) {
        j->start_pending = true;
        if (m->n_start == m->cap_start) {
                m->cap_start = m->cap_start ? m->cap_start * 2 : 64;
                m->start_list = xrealloc(m->start_list, m->cap_start * sizeof(Job *));
        }
        m->start_list[m->n_start++] = j;
        manager_request_flush(m);
}

/* The read-only view a plugin gets; owns the arrays it points to. */
typedef struct View {
        prakat_announcement a;
        prakat_attachment *attachments;
        prakat_attachment audio;
        char **paths;
        const char **urls;
        char *preview_article_url; /* a preview's: the website's future URLs (view_take_website_urls) */
        char **preview_urls;
} View;

static const char *mime_from_name(const char *name) {
        static const struct {
                const char *ext, *mime;
        } table[] = {
                { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" }, { ".png", "image/png" },
                { ".gif", "image/gif" },  { ".webp", "image/webp" }, { ".pdf", "application/pdf" },
                { ".mp3", "audio/mpeg" }, { ".ogg", "audio/ogg" },   { ".wav", "audio/wav" },
                { ".doc", "application/msword" },
                { ".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
                { ".xls", "application/vnd.ms-excel" },
                { ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
                { ".txt", "text/plain" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (endswith_nocase(name, table[i].ext))
                        return table[i].mime;
        return "application/octet-stream";
}

static void view_attachment(const Entry *e, const char *rel, prakat_attachment *out, char **ret_path) {
        _cleanup_free_ char *orig = entry_original_path(e);
        const char *base = strrchr(rel, '/');
        struct stat st;

        *ret_path = path_join(orig, rel);
        *out = (prakat_attachment) {
                .name = base ? base + 1 : rel,
                .path = *ret_path,
                .mime = mime_from_name(rel),
                .size = stat(*ret_path, &st) == 0 ? (uint64_t) st.st_size : 0,
        };
}

static const Job *entry_website_job(Manager *m, const Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++)
                if (channel_is_website(m, e->jobs[i].channel) && e->jobs[i].state == JOB_DONE)
                        return &e->jobs[i];
        return NULL;
}

static void view_build(Manager *m, const Entry *e, View *v) {
        const Announcement *a = e->announcement;
        const Job *w = entry_website_job(m, e);

        *v = (View) {};
        v->attachments = xcalloc(a->n_attachments + 1, sizeof(prakat_attachment));
        v->paths = xcalloc(a->n_attachments + 2, sizeof(char *));
        for (size_t i = 0; i < a->n_attachments; i++)
                view_attachment(e, a->attachments[i], &v->attachments[i], &v->paths[i]);
        if (a->audio)
                view_attachment(e, a->audio, &v->audio, &v->paths[a->n_attachments]);
        if (w && w->n_attachment_urls == a->n_attachments && a->n_attachments > 0) {
                v->urls = xcalloc(a->n_attachments, sizeof(char *));
                for (size_t i = 0; i < a->n_attachments; i++)
                        v->urls[i] = w->attachment_urls[i];
        }
        v->a = (prakat_announcement) {
                .id = a->id,
                .title = a->title,
                .body = a->body,
                .category = a->category,
                .author = a->author,
                .priority = a->priority,
                .received = a->received,
                .publish_at = a->publish_at,
                .expires = a->expires,
                .all_villages = a->all_villages,
                .villages = a->villages,
                .n_villages = a->n_villages,
                .broadcast_at = (const char *const *) a->broadcast_at,
                .n_broadcast_at = a->n_broadcast_at,
                .repeat = a->repeat,
                .attachments = v->attachments,
                .n_attachments = a->n_attachments,
                .audio = a->audio ? &v->audio : NULL,
                .replaces = a->replaces,
                .cancel = a->cancel,
                .article_url = w ? w->link : NULL,
                .attachment_urls = v->urls,
        };
}

static void view_done(View *v) {
        for (size_t i = 0; v->paths && v->paths[i]; i++)
                free(v->paths[i]);
        free(v->paths);
        free(v->attachments);
        free(v->urls);
        free(v->preview_article_url);
        for (size_t i = 0; v->preview_urls && v->preview_urls[i]; i++)
                free(v->preview_urls[i]);
        free(v->preview_urls);
}

static void job_end(Manager *m, Job *j, JobState state, const char *en, const char *th);

/* ---- the approval gate ---- */

static char *pending_preview_path(Manager *m, const Entry *e, const char *suffix) {
        return xasprintf("%s/pending/%s.%s", m->config->spool, e->announcement->id, suffix);
}

/* The first enabled website channel of the entry renders the page; the others only say what they do. */
static ChannelInstance *entry_page_channel(Manager *m, const Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++)
                if (e->jobs[i].state != JOB_SKIPPED && channel_is_website(m, e->jobs[i].channel))
                        return manager_channel(m, e->jobs[i].channel);
        return NULL;
}

/*
 * The website's preview text names the article's future address and its files' (prakat-channel.h):
 * the other channels' previews get them, as their jobs will once the website job has ended.
 */
static void view_take_website_urls(View *v, const char *text) {
        size_t n = 0;

        for (const char *line = text ? text : "", *next; *line; line = next) {
                size_t len = strcspn(line, "\n");
                next = line + len + (line[len] == '\n');
                if (strncmp(line, "article_url: ", 13) == 0 && !v->a.article_url)
                        v->a.article_url = v->preview_article_url = xstrndup(line + 13, len - 13);
                else if (strncmp(line, "attachment_url: ", 16) == 0 && n < v->a.n_attachments) {
                        if (!v->preview_urls)
                                v->preview_urls = xcalloc(v->a.n_attachments + 1, sizeof(char *));
                        v->preview_urls[n++] = xstrndup(line + 16, len - 16);
                }
        }
        if (n > 0 && n == v->a.n_attachments)
                v->a.attachment_urls = (const char *const *) v->preview_urls;
}

static void preview_append_section(StrBuf *b, ChannelInstance *c, const char *name, const prakat_announcement *a,
                                   const char *page_path, const char *note, char **ret_text) {
        _cleanup_free_ char *text = NULL;
        int r;

        strbuf_printf(b, "\n== ช่องทาง %s / channel %s (%s) ==\n", name, name, c ? c->plugin->name : "?");
        if (note)
                strbuf_printf(b, "(%s)\n", note);
        r = c ? channel_instance_preview(c, a, page_path, &text) : -ENOENT;
        if (r == -EOPNOTSUPP)
                strbuf_append(b, "(ไม่มีตัวอย่าง: ปลั๊กอินนี้เก่ากว่าการแสดงตัวอย่าง / no preview: this plugin is "
                                 "older than previews)\n");
        else if (r < 0)
                strbuf_printf(b, "(ทำตัวอย่างไม่ได้ / cannot preview: %s)\n",
                              r == -ENOENT ? "the channel is not loaded" : strerror(-r));
        else {
                strbuf_append(b, text);
                if (!*text || text[strlen(text) - 1] != '\n')
                        strbuf_append(b, "\n");
        }
        if (ret_text)
                *ret_text = TAKE_PTR(text);
}

/* SPOOL/pending/ID.html: the website's page as it will be published, written whole, readable by staff. */
static bool pending_page_install(Manager *m, const Entry *e, const char *tmp) {
        _cleanup_free_ char *path = pending_preview_path(m, e, "html");

        if (access(tmp, F_OK) < 0) {
                if (unlink(path) < 0 && errno != ENOENT)
                        log_full(LOG_WARNING, -errno, e->announcement->id, NULL, "Cannot remove %s: %m", path);
                return false;
        }
        if (chmod(tmp, 0640) < 0 || rename(tmp, path) < 0) {
                log_full(LOG_ERR, -errno, e->announcement->id, NULL, "Cannot write the page preview %s: %m", path);
                (void) unlink(tmp);
                return false;
        }
        return true;
}

/* Each enabled channel's own preview: exactly what it would send, the website's first. */
static void pending_preview_channels(Manager *m, const Entry *e, StrBuf *b) {
        const Announcement *a = e->announcement;
        ChannelInstance *page = entry_page_channel(m, e);
        _cleanup_free_ char *tmp = xasprintf("%s/pending/.%s.html.tmp", m->config->spool, a->id);
        _cleanup_free_ char *website_text = NULL;
        View v;

        if (a->cancel) {
                strbuf_printf(b, "\nถอนประกาศ %s: แต่ละช่องทางถอนสิ่งที่เผยแพร่ไป (prakat show %s) / withdraws %s: "
                              "each channel withdraws what it published (prakat show %s)\n",
                              a->cancel, a->cancel, a->cancel, a->cancel);
                return;
        }
        view_build(m, e, &v);
        (void) unlink(tmp);
        if (page) {
                preview_append_section(b, page, page->name, &v.a, tmp, NULL, &website_text);
                view_take_website_urls(&v, website_text);
        }
        if (pending_page_install(m, e, tmp))
                strbuf_printf(b, "หน้าเว็บตัวอย่าง / page preview: pending/%s.html\n", a->id);
        for (size_t i = 0; i < e->n_jobs; i++) {
                const Job *j = &e->jobs[i];
                ChannelInstance *c = manager_channel(m, j->channel);
                if (j->state == JOB_SKIPPED || (c && c == page))
                        continue;
                bool unknown_link = page && !v.a.article_url && !channel_is_website(m, j->channel);
                preview_append_section(b, c, j->channel, &v.a, NULL,
                                       unknown_link ? "ลิงก์บทความจะใส่เมื่อเว็บไซต์เผยแพร่แล้ว / the article link "
                                                      "is filled in once the website has published it" : NULL,
                                       NULL);
        }
        view_done(&v);
}

/* SPOOL/pending/ID.txt (and ID.html): what is waiting, and exactly what would go out where, for the approver. */
static void pending_preview_write(Manager *m, const Entry *e) {
        const Announcement *a = e->announcement;
        _cleanup_free_ char *path = pending_preview_path(m, e, "txt"), *dir = xasprintf("%s/pending", m->config->spool);
        char when[128] = "", iso[64] = "";
        StrBuf b = {};
        int r;

        r = mkdir_p(dir, 0750);
        thaidate_format(a->publish_at, THAIDATE_LONG, when, sizeof when);
        thaidate_format_iso(a->publish_at, iso, sizeof iso);
        strbuf_printf(&b, "รอการอนุมัติ / Waiting for approval\n====================================\n"
                      "รหัส / id: %s\nหัวข้อ / title: %s\nหมวด / category: %s\nไฟล์ / file: %s\n"
                      "เผยแพร่ / publish: %s (%s)\nหมู่บ้าน / villages: ",
                      a->id, a->title, a->category, a->source_name ? a->source_name : "-", when, iso);
        if (a->all_villages)
                strbuf_append(&b, "ทั้งหมด / all");
        for (size_t i = 0; i < a->n_villages; i++)
                strbuf_printf(&b, "%s%u", i ? ", " : "", a->villages[i]);
        strbuf_append(&b, "\nช่องทาง / channels:");
        for (size_t i = 0; i < e->n_jobs; i++)
                strbuf_printf(&b, " %s%s", e->jobs[i].channel,
                              e->jobs[i].state == JOB_SKIPPED ? " (ปิดอยู่ / disabled)" : "");
        if (a->cancel)
                strbuf_printf(&b, "\nถอนประกาศ / withdraws: %s", a->cancel);
        if (a->replaces)
                strbuf_printf(&b, "\nแทนที่ / replaces: %s", a->replaces);
        strbuf_printf(&b, "\n\n----------------------------------------\n%s\n----------------------------------------\n",
                      a->body ? a->body : "");
        strbuf_append(&b, "\nสิ่งที่แต่ละช่องทางจะส่ง / What each channel will send\n"
                          "====================================================\n");
        if (r >= 0)
                pending_preview_channels(m, e, &b);
        strbuf_printf(&b, "\nอนุมัติ / approve:  prakat approve %s\n"
                      "ไม่อนุมัติ / reject: prakat reject %s --reason \"...\"\n", a->id, a->id);
        _cleanup_free_ char *text = strbuf_steal(&b);
        if (r >= 0)
                r = write_file_atomic(path, text, strlen(text), 0640);
        if (r < 0)
                log_full(LOG_ERR, r, a->id, NULL, "Cannot write the preview %s: %m", path);
        else
                log_full(LOG_NOTICE, 0, a->id, NULL, "Waiting for approval: prakat approve %s", a->id);
}

/* The preview files go once the item is decided (or withdrawn while it waited). */
static void pending_preview_remove(Manager *m, const Entry *e) {
        static const char *const suffixes[] = { "txt", "html" };

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *path = pending_preview_path(m, e, suffixes[i]);
                if (unlink(path) < 0 && errno != ENOENT)
                        log_full(LOG_WARNING, -errno, e->announcement->id, NULL, "Cannot remove %s: %m", path);
        }
}

/* A retract job needs the announcement it withdraws and that one's record for this channel. */
static int job_start_retract(Manager *m, Job *j, ChannelInstance *c, JobRun *run) {
        Entry *target = NULL, *loaded = NULL;
        Job *tj = NULL;
        View v;
        int r;

        target = queue_find(m->queue, j->entry->announcement->cancel);
        if (!target && queue_load_done(m->queue, j->entry->announcement->cancel, &loaded) >= 0)
                target = loaded;
        if (!target) {
                job_end(m, j, JOB_FAILED, "the announcement to withdraw is not in the state any more",
                        "ไม่พบประกาศที่ต้องการยกเลิกในระบบ");
                return -ENOENT;
        }
        for (size_t i = 0; i < target->n_jobs; i++)
                if (streq(target->jobs[i].channel, j->channel))
                        tj = &target->jobs[i];
        if (!loaded && tj && !job_state_is_final(tj->state)) {
                /* The announcement's own job on this channel has not ended: stop it first. */
                _cleanup_free_ char *en = xasprintf("withdrawn by %s", j->entry->announcement->id);
                _cleanup_free_ char *th = xasprintf("ถอนโดย %s", j->entry->announcement->id);
                bool never_tried = tj->state == JOB_SCHEDULED && tj->attempts == 0;
                if (tj->instance || tj->start_pending) {
                        prakat_result res = {
                                .outcome = PRAKAT_OUTCOME_RETRY,
                                .retry_after = 5 * USEC_PER_SEC,
                                .message = "the announcement is being sent on this channel right now; "
                                           "withdrawing it as soon as that ends",
                                .message_th = "กำลังส่งประกาศนี้ทางช่องทางนี้อยู่ จะถอนทันทีที่ส่งเสร็จ",
                        };
                        delivery_job_finished(m, &run->abi, &res);
                        return 0;
                }
                job_cancel_timer(tj);
                job_end(m, tj, JOB_CANCELLED, en, th);
                if (entry_is_finished(target) && !target->finishing)
                        entry_mark_finishing(m, target);
                if (never_tried) {
                        prakat_result res = {
                                .outcome = PRAKAT_OUTCOME_DONE,
                                .message = "it had not gone out on this channel; its pending send was stopped",
                                .message_th = "ยังไม่ได้ส่งออกทางช่องทางนี้ จึงหยุดการส่งที่รออยู่",
                        };
                        delivery_job_finished(m, &run->abi, &res);
                        return 0;
                }
                /* Tried before (it may have gone out): its retries stop, and the plugin withdraws what it can. */
        }
        run->abi.remote_id = tj ? tj->remote_id : NULL;
        view_build(m, target, &v);
        r = c->plugin->retract(c->instance, &run->abi, &v.a, j->entry->announcement->body);
        view_done(&v);
        entry_free(loaded);
        return r;
}

static void job_start(Manager *m, Job *j) {
        ChannelInstance *c = manager_channel(m, j->channel);
        JobRun *run;
        View v;
        int r;

        j->start_pending = false;
        if (!c) {
                const ChannelConfig *cc = config_find_channel(m->config, j->channel);
                if (cc && !cc->enabled)
                        job_end(m, j, JOB_SKIPPED, "the channel is disabled in the config (enabled = no)",
                                "ช่องทางนี้ถูกปิดใช้ในการตั้งค่า");
                else
                        job_end(m, j, JOB_FAILED, "the channel is no longer in the config",
                                "ช่องทางนี้ไม่มีในการตั้งค่าแล้ว");
                return;
        }
        if (j->kind == JOB_RETRACT && !c->plugin->retract) {
                job_end(m, j, JOB_FAILED, "this channel cannot withdraw what it published",
                        "ช่องทางนี้ถอนประกาศที่เผยแพร่แล้วไม่ได้");
                return;
        }
        run = xcalloc(1, sizeof(JobRun));
        run->job = j;
        run->instance = channel_instance_ref(c);
        run->abi = (prakat_job) {
                .channel = j->channel,
                .attempt = j->attempts,
                .interrupted = j->interrupted,
                .remote_id = j->remote_id,
                .core = run,
        };
        j->instance = run;
        m->in_flight++;
        log_full(LOG_INFO, 0, j->entry->announcement->id, j->channel, "%s, attempt %u%s",
                 j->kind == JOB_RETRACT ? "Withdrawing" : "Publishing", j->attempts,
                 j->interrupted ? " (the previous one was interrupted)" : "");
        if (j->kind == JOB_RETRACT)
                r = job_start_retract(m, j, c, run);
        else {
                view_build(m, j->entry, &v);
                r = c->plugin->publish(c->instance, &run->abi, &v.a);
                view_done(&v);
        }
        if (r < 0 && j->instance == run) {
                /* The plugin refused synchronously and will not call job_finish(). */
                char msg[256];
                prakat_result res = { .outcome = PRAKAT_OUTCOME_RETRY, .message = msg };
                snprintf(msg, sizeof msg, "the plugin could not start: %s", strerror(-r));
                delivery_job_finished(m, &run->abi, &res);
        }
}

static void job_end(Manager *m, Job *j, JobState state, const char *en, const char *th) {
        j->state = state;
        j->finished = clock_now();
        job_set_message(j, en, th);
        queue_mark_dirty(m->queue, j->entry);
        manager_request_flush(m);
}

static void entry_after_website(Manager *m, Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++)
                job_schedule(m, &e->jobs[i]);
}

void delivery_job_note(Manager *m, prakat_job *abi, const char *message, const char *message_th) {
        JobRun *run = abi->core;
        Job *j = run->job;

        if (streq_ptr(j->message, message) && streq_ptr(j->message_th, message_th))
                return;
        job_set_message(j, message, message_th);
        queue_mark_dirty(m->queue, j->entry);
        manager_request_flush(m);
}

/* The job waits, saved, until `next` (a RETRY's back-off or a WAIT), with the plugin's words as its note. */
static void job_defer(Manager *m, Job *j, usec_t next, const prakat_result *res) {
        j->state = JOB_DEFERRED;
        j->next_try = next;
        job_set_message(j, res->message, res->message_th);
        queue_mark_dirty(m->queue, j->entry);
        manager_request_flush(m);
        if (!m->stopping)
                job_arm(m, j, j->next_try);
}

void delivery_job_finished(Manager *m, prakat_job *abi, const prakat_result *res) {
        JobRun *run = abi->core;
        Job *j = run->job;
        Entry *e = j->entry;
        const char *id = e->announcement->id;
        bool was_website = channel_is_website(m, j->channel);
        usec_t now = clock_now();

        j->instance = NULL;
        m->in_flight--;
        channel_instance_unref(run->instance);
        free(run);

        if (res->remote_id) {
                free(j->remote_id);
                j->remote_id = xstrdup(res->remote_id);
        }
        if (res->link) {
                free(j->link);
                j->link = xstrdup(res->link);
        }
        if (res->n_attachment_urls > 0) {
                for (size_t i = 0; i < j->n_attachment_urls; i++)
                        free(j->attachment_urls[i]);
                free(j->attachment_urls);
                j->attachment_urls = xcalloc(res->n_attachment_urls, sizeof(char *));
                for (size_t i = 0; i < res->n_attachment_urls; i++)
                        j->attachment_urls[i] = xstrdup(res->attachment_urls[i]);
                j->n_attachment_urls = res->n_attachment_urls;
        }
        j->interrupted = false;
        switch (res->outcome) {
        case PRAKAT_OUTCOME_DONE:
                log_full(LOG_NOTICE, 0, id, j->channel, "Done%s%s", res->link ? ": " : "", res->link ? res->link : "");
                job_end(m, j, JOB_DONE, res->message, res->message_th);
                break;
        case PRAKAT_OUTCOME_FAILED:
                log_full(LOG_ERR, 0, id, j->channel, "Failed: %s", res->message ? res->message : "(no reason)");
                job_end(m, j, JOB_FAILED, res->message, res->message_th);
                break;
        case PRAKAT_OUTCOME_UNCONFIRMED:
                log_full(LOG_WARNING, 0, id, j->channel, "Unconfirmed: %s", res->message ? res->message : "");
                job_end(m, j, JOB_UNCONFIRMED, res->message, res->message_th);
                break;
        case PRAKAT_OUTCOME_WAIT: {
                char when[64] = "";
                usec_t next = now + (res->retry_after > USEC_PER_SEC ? res->retry_after : USEC_PER_SEC);
                thaidate_format_iso(next, when, sizeof when);
                log_full(LOG_INFO, 0, id, j->channel, "Waiting until %s: %s", when, res->message ? res->message : "");
                j->resume_free = true;
                job_defer(m, j, next, res);
                break;
        }
        case PRAKAT_OUTCOME_RETRY:
        default: {
                usec_t delay = delivery_backoff(m->config, j->attempts, random01());
                if (res->retry_after > delay)
                        delay = res->retry_after;
                /*
                 * Given up when the next try would come after give_up_after.  A plugin that names its own
                 * time (a throttled platform, the LINE quota of next month, a tower slot next week) may
                 * hold a job past that: then only the time already spent counts, so a long wait is not
                 * taken for a failure, while a token that is never replaced still ends the job.
                 */
                usec_t spent = res->retry_after > 0 ? now - j->first_try : now + delay - j->first_try;
                if (spent > m->config->give_up_after) {
                        _cleanup_free_ char *en = xasprintf("gave up after %u attempts: %s", j->attempts,
                                                            res->message ? res->message : "");
                        _cleanup_free_ char *th = xasprintf("เลิกพยายามหลังจากลอง %u ครั้ง: %s", j->attempts,
                                                            res->message_th ? res->message_th :
                                                            res->message ? res->message : "");
                        log_full(LOG_ERR, 0, id, j->channel, "%s", en);
                        job_end(m, j, JOB_FAILED, en, th);
                        break;
                }
                log_full(LOG_WARNING, 0, id, j->channel, "Will try again in %llus: %s",
                         (unsigned long long) (delay / USEC_PER_SEC), res->message ? res->message : "");
                job_defer(m, j, now + delay, res);
                break;
        }
        }
        if (was_website && job_state_is_final(j->state) && !m->stopping)
                entry_after_website(m, e);
        if (entry_is_finished(e))
                entry_mark_finishing(m, e);
        else
                entry_check_interim(m, e, now);
}

/* Interim receipts of the entries that wait long, once their state is saved; one batch, like the final ones. */
static size_t entries_interim(Manager *m) {
        size_t n = 0, n_left = 0, total = queue_size(m->queue);
        Entry **list = xcalloc(total ? total : 1, sizeof(Entry *));
        int *results = xcalloc(total ? total : 1, sizeof(int));
        usec_t now = clock_now();

        for (size_t i = 0; i < total; i++) {
                Entry *e = queue_entry(m->queue, i);
                if (!e->interim_due)
                        continue;
                if (e->dirty) {
                        n_left++;
                        continue;
                }
                e->interim_due = false;
                if (entry_waits_long(e, now)) /* still: nothing started or ended meanwhile */
                        list[n++] = e;
        }
        (void) receipt_publish(m->config, list, n, now, results);
        for (size_t i = 0; i < n; i++)
                if (results[i] < 0)
                        log_full(LOG_ERR, results[i], list[i]->announcement->id, NULL,
                                 "Failed to write the interim receipt into published/: %m");
                else
                        log_full(LOG_INFO, 0, list[i]->announcement->id, NULL,
                                 "Interim receipt written: some channels wait for later");
        free(results);
        free(list);
        return n_left;
}

/* Writes the receipts of every entry whose jobs have all ended and are saved, then retires them, in one
 * batch each: a thousand announcements finishing in one loop iteration cost a few syncs, not thousands. */
static size_t entries_finish(Manager *m) {
        size_t n = 0, n_ok = 0, n_left = 0, total = queue_size(m->queue);
        Entry **list = xcalloc(total ? total : 1, sizeof(Entry *));
        char **ids = xcalloc(total ? total : 1, sizeof(char *));
        int *results = xcalloc(total ? total : 1, sizeof(int));
        usec_t now = clock_now();

        for (size_t i = 0; i < total; i++) {
                Entry *e = queue_entry(m->queue, i);
                if (e->finishing && !e->dirty && entry_is_finished(e))
                        list[n++] = e;
                else
                        n_left += e->finishing;
        }
        (void) receipt_publish(m->config, list, n, now, results);
        for (size_t i = 0; i < n; i++) {
                if (results[i] < 0) {
                        log_full(LOG_ERR, results[i], list[i]->announcement->id, NULL,
                                 "Failed to write the receipt into published/, will try again: %m");
                        n_left++;
                        continue;
                }
                if (list[i]->approval == APPROVAL_WAITING) /* withdrawn while it waited */
                        pending_preview_remove(m, list[i]);
                /* Copies: queue_retire() frees the entries, and the messages name them. */
                ids[n_ok] = xstrdup(list[i]->announcement->id);
                list[n_ok++] = list[i];
        }
        (void) queue_retire(m->queue, list, n_ok, results);
        for (size_t i = 0; i < n_ok; i++) {
                if (results[i] < 0) /* moved (and freed) all the same: done/ is where a restart finds it */
                        log_full(LOG_ERR, results[i], ids[i], NULL, "Failed to sync done/: %m");
                else
                        log_full(LOG_NOTICE, 0, ids[i], NULL, "Finished; receipt written");
                free(ids[i]);
        }
        free(ids);
        free(results);
        free(list);
        return n_left;
}

void delivery_after_flush(Manager *m) {
        /* Copy: starting a job may finish it synchronously and queue more work. */
        size_t n = m->n_start;
        Job **list = xmalloc((n ? n : 1) * sizeof(Job *));

        if (n > 0) /* start_list is NULL until the first job started: memcpy(NULL, 0) is undefined */
                memcpy(list, m->start_list, n * sizeof(Job *));
        m->n_start = 0;
        for (size_t i = 0; i < n; i++)
                if (!m->stopping)
                        job_start(m, list[i]);
                else
                        list[i]->start_pending = false; /* stays "sending" on disk: resumed after restart */
        free(list);
        if (m->n_interim > 0)
                m->n_interim = entries_interim(m);
        /* Entries that could not finish are tried again after the next flush. */
        if (m->n_finishing > 0) {
                m->n_finishing = entries_finish(m);
                /* A burst is over: give the heap it grew back to the system, so idle stays small. */
                if (queue_size(m->queue) == 0)
                        malloc_trim(0);
        }
        manager_update_status(m);
}

void delivery_stop(Manager *m) {
        for (size_t i = 0; i < queue_size(m->queue); i++) {
                Entry *e = queue_entry(m->queue, i);
                for (size_t k = 0; k < e->n_jobs; k++)
                        job_cancel_timer(&e->jobs[k]);
        }
}

void delivery_abandon_in_flight(Manager *m) {
        for (size_t i = 0; i < queue_size(m->queue); i++) {
                Entry *e = queue_entry(m->queue, i);
                for (size_t k = 0; k < e->n_jobs; k++) {
                        JobRun *run = e->jobs[k].instance;
                        if (!run)
                                continue;
                        /* Stays "sending" on disk: the plugin is told it was interrupted after the restart. */
                        e->jobs[k].instance = NULL;
                        m->in_flight--;
                        channel_instance_unref(run->instance);
                        free(run);
                }
        }
}

size_t delivery_pending_jobs(Manager *m) {
        size_t n = 0;

        for (size_t i = 0; i < queue_size(m->queue); i++) {
                Entry *e = queue_entry(m->queue, i);
                for (size_t k = 0; k < e->n_jobs; k++)
                        n += !job_state_is_final(e->jobs[k].state);
        }
        return n;
}

/* ---- operator commands ---- */

static bool job_retryable(const Job *j) {
        return j->state == JOB_DEFERRED || j->state == JOB_FAILED || j->state == JOB_UNCONFIRMED;
}

int delivery_retry(Manager *m, const char *id, const char *channel) {
        Entry *e = queue_find(m->queue, id);
        int n = 0, r;

        if (!e) {
                /* Finished: take it back from done/ if it has something to retry. */
                Entry *loaded = NULL;
                bool any = false;
                if (queue_load_done(m->queue, id, &loaded) < 0)
                        return -ENOENT;
                for (size_t i = 0; i < loaded->n_jobs; i++)
                        any = any || (job_retryable(&loaded->jobs[i]) &&
                                      (!channel || streq(loaded->jobs[i].channel, channel)));
                if (!any) {
                        entry_free(loaded);
                        return 0;
                }
                r = queue_reopen(m->queue, loaded);
                e = queue_find(m->queue, id);
                if (!e)
                        return r;
        }
        if (e->held)
                return -EBUSY;
        for (size_t i = 0; i < e->n_jobs; i++) {
                Job *j = &e->jobs[i];
                if ((channel && !streq(j->channel, channel)) || !job_retryable(j) || j->instance || j->start_pending)
                        continue;
                job_cancel_timer(j);
                j->state = JOB_SCHEDULED;
                j->first_try = 0; /* a new give_up_after period starts now */
                j->next_try = 0;
                j->finished = 0;
                job_set_message(j, "retry asked for by an operator", "ผู้ดูแลระบบสั่งให้ส่งใหม่");
                n++;
        }
        if (n > 0) {
                e->finishing = false;
                queue_mark_dirty(m->queue, e);
                manager_request_flush(m);
                for (size_t i = 0; i < e->n_jobs; i++)
                        if (e->jobs[i].state == JOB_SCHEDULED)
                                job_schedule(m, &e->jobs[i]); /* the website first, as always */
        } else if (entry_is_finished(e) && !e->finishing) {
                entry_mark_finishing(m, e); /* reopened for nothing: put it back */
                manager_request_flush(m);
        }
        log_full(LOG_NOTICE, 0, id, channel, "Retry asked for: %d job(s) start again", n);
        return n;
}

int delivery_hold(Manager *m, const char *id, bool hold) {
        Entry *e = queue_find(m->queue, id);
        int n = 0;

        if (!e)
                return -ENOENT;
        if (e->held == hold)
                return 0;
        e->held = hold;
        queue_mark_dirty(m->queue, e);
        manager_request_flush(m);
        for (size_t i = 0; i < e->n_jobs; i++) {
                Job *j = &e->jobs[i];
                if (job_state_is_final(j->state))
                        continue;
                n++;
                if (hold)
                        job_cancel_timer(j); /* a job being sent right now finishes; nothing new starts */
        }
        if (!hold)
                delivery_schedule_entry(m, e);
        log_full(LOG_NOTICE, 0, id, NULL, "%s by an operator (%d pending job(s))", hold ? "Held" : "Released", n);
        return n;
}

int delivery_decide(Manager *m, const char *id, bool approve, const char *user, const char *reason) {
        Entry *e = queue_find(m->queue, id);
        int n = 0;

        if (!e)
                return -ENOENT;
        if (e->approval != APPROVAL_WAITING)
                return -EALREADY;
        e->approval = approve ? APPROVAL_APPROVED : APPROVAL_REJECTED;
        free(e->approval_by);
        free(e->approval_reason);
        e->approval_by = xstrdup(user);
        e->approval_reason = reason ? xstrdup(reason) : NULL;
        e->approval_at = clock_now();
        if (!approve)
                for (size_t i = 0; i < e->n_jobs; i++) {
                        Job *j = &e->jobs[i];
                        if (job_state_is_final(j->state))
                                continue;
                        _cleanup_free_ char *en = xasprintf("not approved by %s: %s", user, reason ? reason : "");
                        _cleanup_free_ char *th = xasprintf("ไม่อนุมัติโดย %s: %s", user, reason ? reason : "");
                        job_cancel_timer(j);
                        job_end(m, j, JOB_CANCELLED, en, th);
                        n++;
                }
        queue_mark_dirty(m->queue, e);
        manager_request_flush(m);
        pending_preview_remove(m, e);
        log_full(LOG_NOTICE, 0, id, NULL, "%s by %s%s%s", approve ? "Approved" : "Rejected", user,
                 reason ? ": " : "", reason ? reason : "");
        if (approve) {
                for (size_t i = 0; i < e->n_jobs; i++)
                        n += !job_state_is_final(e->jobs[i].state);
                delivery_schedule_entry(m, e);
        } else if (entry_is_finished(e) && !e->finishing)
                entry_mark_finishing(m, e);
        return n;
}
