/* SPDX-License-Identifier: MIT */
#include "receipt.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "thaidate.h"

static void villages_text(const Config *c, const Announcement *a, StrBuf *b, bool thai) {
        if (a->all_villages) {
                strbuf_append(b, thai ? "ทุกหมู่บ้าน" : "all villages");
                return;
        }
        for (size_t i = 0; i < a->n_villages; i++) {
                const char *name = a->villages[i] <= VILLAGE_MAX ? c->village_names[a->villages[i]] : NULL;
                strbuf_printf(b, "%s%s %u%s%s%s", i ? ", " : "", thai ? "หมู่" : "village", a->villages[i],
                              name ? " (" : "", name ? name : "", name ? ")" : "");
        }
}

static void approval_line(const Entry *e, StrBuf *b, bool thai) {
        char when[128] = "";

        if (e->approval != APPROVAL_APPROVED && e->approval != APPROVAL_REJECTED)
                return;
        if (thai)
                thaidate_format(e->approval_at, THAIDATE_LONG, when, sizeof when);
        else
                thaidate_format_iso(e->approval_at, when, sizeof when);
        if (e->approval == APPROVAL_APPROVED)
                strbuf_printf(b, thai ? "อนุมัติโดย: %s เมื่อ %s\n" : "Approved by: %s at %s\n", e->approval_by, when);
        else
                strbuf_printf(b, thai ? "ไม่อนุมัติโดย: %s เมื่อ %s เหตุผล: %s\n" : "Rejected by: %s at %s, because: %s\n",
                              e->approval_by, when, e->approval_reason ? e->approval_reason : "-");
}

static void job_lines(const Job *j, StrBuf *b, bool thai) {
        char when[128] = "";

        if (thai) {
                strbuf_printf(b, "- %s: %s", j->channel, job_state_to_thai(j->state));
                if (j->finished && thaidate_format(j->finished, THAIDATE_LONG, when, sizeof when) > 0)
                        strbuf_printf(b, " เมื่อ %s", when);
        } else {
                strbuf_printf(b, "- %s: %s", j->channel, job_state_to_string(j->state));
                if (j->finished && thaidate_format_iso(j->finished, when, sizeof when) > 0)
                        strbuf_printf(b, " at %s", when);
        }
        if (j->attempts > 1)
                strbuf_printf(b, thai ? " (ส่ง %u ครั้ง)" : " (%u attempts)", j->attempts);
        strbuf_append(b, "\n");
        if (!job_state_is_final(j->state) && j->next_try) {
                if (thai)
                        thaidate_format(j->next_try, THAIDATE_LONG, when, sizeof when);
                else
                        thaidate_format_iso(j->next_try, when, sizeof when);
                strbuf_printf(b, thai ? "  ดำเนินการต่อเมื่อ: %s\n" : "  next: %s\n", when);
        }
        if (j->link)
                strbuf_printf(b, thai ? "  ลิงก์: %s\n" : "  link: %s\n", j->link);
        if (j->remote_id)
                strbuf_printf(b, thai ? "  รหัสโพสต์: %s\n" : "  post id: %s\n", j->remote_id);
        const char *msg = thai && j->message_th ? j->message_th : j->message;
        if (msg) /* for a done job too: e.g. which towers confirmed */
                strbuf_printf(b, thai ? "  หมายเหตุ: %s\n" : "  note: %s\n", msg);
}

char *receipt_format(const Config *c, const Entry *e, usec_t now) {
        const Announcement *a = e->announcement;
        char received[128] = "", published[128] = "", made[128] = "", iso_r[64] = "", iso_p[64] = "",
             iso_m[64] = "", expires[128] = "";
        StrBuf b = {};

        thaidate_format(a->received, THAIDATE_LONG, received, sizeof received);
        thaidate_format(a->publish_at, THAIDATE_LONG, published, sizeof published);
        thaidate_format(now, THAIDATE_LONG, made, sizeof made);
        thaidate_format_iso(a->received, iso_r, sizeof iso_r);
        thaidate_format_iso(a->publish_at, iso_p, sizeof iso_p);
        thaidate_format_iso(now, iso_m, sizeof iso_m);
        if (a->expires)
                thaidate_format(a->expires, THAIDATE_LONG, expires, sizeof expires);

        if (!entry_is_finished(e))
                strbuf_append(&b, "ใบรับรองชั่วคราว: บางช่องทางยังรอคิว ใบรับรองฉบับสมบูรณ์จะมาแทนที่เมื่อครบทุกช่องทาง\n"
                                  "(Interim receipt: some channels are still waiting; the final one replaces it.)\n\n");
        strbuf_printf(&b, "ใบรับรองการเผยแพร่ประกาศ\n========================\n"
                      "รหัสประกาศ: %s\nหัวข้อ: %s\nหมวด: %s\nไฟล์ต้นฉบับ: %s\nรับไฟล์เมื่อ: %s\nกำหนดเผยแพร่: %s\n",
                      a->id, a->title, a->category, a->source_name ? a->source_name : "-", received, published);
        if (a->expires)
                strbuf_printf(&b, "หมดอายุ: %s\n", expires);
        if (a->cancel)
                strbuf_printf(&b, "ยกเลิกประกาศ: %s\n", a->cancel);
        if (a->replaces)
                strbuf_printf(&b, "แทนที่ประกาศ: %s\n", a->replaces);
        strbuf_append(&b, "หมู่บ้าน: ");
        villages_text(c, a, &b, true);
        strbuf_append(&b, "\n");
        approval_line(e, &b, true);
        strbuf_append(&b, "\nผลการเผยแพร่แต่ละช่องทาง:\n");
        for (size_t i = 0; i < e->n_jobs; i++)
                job_lines(&e->jobs[i], &b, true);
        strbuf_printf(&b, "\nออกใบรับรองเมื่อ %s\n\n----------------------------------------\n\n", made);

        if (!entry_is_finished(e))
                strbuf_append(&b, "INTERIM receipt: some channels are still waiting (see \"next\" below); the final "
                                  "receipt replaces this one when every channel has finished.\n\n");
        strbuf_printf(&b, "Publication receipt\n===================\n"
                      "Announcement id: %s\nTitle: %s\nCategory: %s\nOriginal file: %s\nReceived: %s\n"
                      "Publish at: %s\n",
                      a->id, a->title, a->category, a->source_name ? a->source_name : "-", iso_r, iso_p);
        if (a->expires) {
                thaidate_format_iso(a->expires, expires, sizeof expires);
                strbuf_printf(&b, "Expires: %s\n", expires);
        }
        if (a->cancel)
                strbuf_printf(&b, "Withdraws: %s\n", a->cancel);
        if (a->replaces)
                strbuf_printf(&b, "Replaces: %s\n", a->replaces);
        strbuf_append(&b, "Villages: ");
        villages_text(c, a, &b, false);
        strbuf_append(&b, "\n");
        approval_line(e, &b, false);
        strbuf_append(&b, "\nOutcome per channel:\n");
        for (size_t i = 0; i < e->n_jobs; i++)
                job_lines(&e->jobs[i], &b, false);
        strbuf_printf(&b, "\nReceipt made at %s by prakat.\n", iso_m);
        return strbuf_steal(&b);
}

/* Builds one receipt folder under a hidden temporary name; nothing is synced yet. */
static int receipt_stage(const Config *c, const Entry *e, usec_t now, const char *published, char **ret_temp,
                         char **ret_final) {
        const Announcement *a = e->announcement;
        char day[16];
        _cleanup_free_ char *name = NULL, *final = NULL, *temp = NULL, *orig_from = NULL, *orig_to = NULL,
                            *receipt = NULL, *rp = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r = 0;

        thaidate_format_day(a->publish_at ? a->publish_at : now, false, day, sizeof day);
        name = xasprintf("%s-%s", day, a->id);
        final = path_join(published, name);
        temp = xasprintf("%s/.tmp-%s", published, name);
        r = mkdir_empty(temp, 0755); /* one there was left by a crash */
        if (r < 0)
                return r;
        orig_from = entry_original_path(e);
        orig_to = path_join(temp, a->source_name);
        /* A single file is linked, not copied, when the queue's copy is as a receipt's must be (0644):
         * both are never written again, and a link costs no new file.  Across filesystems, a copy. */
        if (lstat(orig_from, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        r = copy_tree(orig_from, orig_to);
                else if ((st.st_mode & 07777) != 0644 || link(orig_from, orig_to) < 0)
                        r = copy_file(orig_from, orig_to, 0644);
        }
        if (r >= 0) {
                receipt = receipt_format(c, e, now);
                rp = path_join(temp, "receipt.txt");
                fd = open(rp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                r = fd < 0 ? -errno : write_full(fd, receipt, strlen(receipt));
        }
        if (r < 0) {
                (void) remove_tree(temp);
                return r;
        }
        *ret_temp = TAKE_PTR(temp);
        *ret_final = TAKE_PTR(final);
        return 0;
}

/*
 * Puts a staged folder in place.  One that is there already (an interim receipt, or one left by a crash
 * between this rename and the move to done/) is swapped out in one step, so staff never find the
 * folder missing, then removed.
 */
static int receipt_install(const char *temp, const char *final) {
        if (renameat2(AT_FDCWD, temp, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno == EEXIST && renameat2(AT_FDCWD, temp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
                (void) remove_tree(temp); /* the old folder, now under the temporary name */
                return 0;
        }
        if (errno != EINVAL && errno != ENOSYS && errno != EEXIST)
                return -errno;
        /* A filesystem without renameat2 flags: remove, then rename. */
        (void) remove_tree(final);
        return rename(temp, final) < 0 ? -errno : 0;
}

size_t receipt_publish(const Config *c, Entry *const *entries, size_t n, usec_t now, int *results) {
        _cleanup_free_ char *published = path_join(c->spool, "published");
        char **temps = xcalloc(n ? n : 1, sizeof(char *)), **finals = xcalloc(n ? n : 1, sizeof(char *));
        size_t staged = 0, done = 0;
        int r;

        for (size_t i = 0; i < n; i++) {
                results[i] = receipt_stage(c, entries[i], now, published, &temps[i], &finals[i]);
                staged += results[i] >= 0;
        }
        /* One sync for a batch (a few folders are synced file by file), then the renames, then their sync. */
        r = 0;
        if (staged >= WRITE_BATCH_SYNCFS)
                r = sync_filesystem(published);
        else
                for (size_t i = 0; i < n && r >= 0; i++)
                        if (results[i] >= 0)
                                r = sync_tree(temps[i]);
        for (size_t i = 0; i < n; i++) {
                if (results[i] < 0)
                        continue;
                if (r < 0)
                        results[i] = r;
                else
                        results[i] = receipt_install(temps[i], finals[i]);
                if (results[i] < 0)
                        (void) remove_tree(temps[i]);
                else
                        done++;
        }
        if (done > 0) {
                r = fsync_path(published);
                for (size_t i = 0; r < 0 && i < n; i++)
                        if (results[i] >= 0)
                                results[i] = r;
                if (r < 0)
                        done = 0;
        }
        for (size_t i = 0; i < n; i++) {
                free(temps[i]);
                free(finals[i]);
        }
        free(temps);
        free(finals);
        return done;
}
