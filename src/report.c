/* SPDX-License-Identifier: MIT */
#include "report.h"

#include <time.h>

#include "textenc.h"
#include "thaidate.h"

#define BUDDHIST_ERA_OFFSET 543

/* ---- periods ---- */

/* Local midnight of a calendar day; mktime() folds month 13 into January of the next year. */
static usec_t local_midnight(int year, int month, int day) {
        struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day, .tm_isdst = -1 };
        time_t t = mktime(&tm);

        return t < 0 ? 0 : (usec_t) t * USEC_PER_SEC;
}

static void local_tm(usec_t usec, struct tm *ret) {
        time_t t = (time_t) (usec / USEC_PER_SEC);

        localtime_r(&t, ret);
}

static void fiscal_year_period(unsigned year_be, ReportPeriod *ret) {
        int end = (int) year_be - BUDDHIST_ERA_OFFSET;

        *ret = (ReportPeriod) {
                .from = local_midnight(end - 1, 10, 1),
                .to = local_midnight(end, 10, 1),
                .fiscal_year = year_be,
        };
}

int report_period_fiscal_year(const char *text, ReportPeriod *ret) {
        _cleanup_free_ char *s = xstrdup(text);
        unsigned year;

        thai_digits_to_ascii(s);
        strstrip(s);
        if (parse_unsigned(s, 1971, 9999, &year) < 0)
                return -EINVAL;
        /* 2400 and above is Buddhist Era, as in dates (DESIGN §3); below, the Common Era year it ends in. */
        if (year < 2400)
                year += BUDDHIST_ERA_OFFSET;
        fiscal_year_period(year, ret);
        return 0;
}

void report_period_current_fiscal_year(usec_t now, ReportPeriod *ret) {
        struct tm tm;

        local_tm(now, &tm);
        fiscal_year_period((unsigned) (tm.tm_year + 1900 + (tm.tm_mon >= 9) + BUDDHIST_ERA_OFFSET), ret);
}

int report_period_range(const char *from, const char *to, ReportPeriod *ret, const char **ret_bad) {
        usec_t a, b;
        bool to_has_time;

        if (thaidate_parse(from, &a, NULL) < 0) {
                *ret_bad = from;
                return -EINVAL;
        }
        if (thaidate_parse(to, &b, &to_has_time) < 0) {
                *ret_bad = to;
                return -EINVAL;
        }
        if (to_has_time)
                b += 1; /* the instant written is inside */
        else {
                struct tm tm;
                local_tm(b, &tm);
                b = local_midnight(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1);
        }
        if (a >= b)
                return -ERANGE;
        *ret = (ReportPeriod) { .from = a, .to = b };
        return 0;
}

int report_period_month(const char *text, ReportPeriod *ret) {
        /* A month is a date without its day: add day 1 the way each form writes it, and let thaidate read it. */
        static const char *const forms[] = { "%s-01", "1/%s", "1 %s" };
        _cleanup_free_ char *s = xstrdup(text);

        strstrip(s);
        if (isempty(s) || strlen(s) > 100)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                _cleanup_free_ char *date = xasprintf(forms[i], s);
                bool has_time;
                struct tm tm;
                usec_t t;

                if (thaidate_parse(date, &t, &has_time) < 0 || has_time)
                        continue;
                local_tm(t, &tm);
                if (tm.tm_mday != 1)
                        continue;
                *ret = (ReportPeriod) {
                        .from = local_midnight(tm.tm_year + 1900, tm.tm_mon + 1, 1),
                        .to = local_midnight(tm.tm_year + 1900, tm.tm_mon + 2, 1),
                };
                return 0;
        }
        return -EINVAL;
}

char *report_period_text(const ReportPeriod *p) {
        char first[96], last[96];

        thaidate_format(p->from, THAIDATE_LONG_DATE, first, sizeof first);
        thaidate_format(p->to - 1, THAIDATE_LONG_DATE, last, sizeof last);
        if (p->fiscal_year)
                return xasprintf("ปีงบประมาณ พ.ศ. %u (%s – %s)", p->fiscal_year, first, last);
        return xasprintf("%s – %s", first, last);
}

/* ---- tower notes ---- */

/*
 * The tower plugin keeps no per-village record in the core's state; its job note says, per result, which
 * villages ("played: villages 1-3, 5; failed: village 4 (exited with status 1); not confirmed: ...").
 * Reads the villages of one result into `set`.  Returns how many.
 */
static size_t tower_note_villages(const char *note, TowerResult result, bool set[VILLAGE_MAX + 1]) {
        static const char *const prefixes[] = {
                [TOWER_RESULT_PLAYED] = "played: village",
                [TOWER_RESULT_FAILED] = "failed: village",
                [TOWER_RESULT_UNCONFIRMED] = "not confirmed: village",
        };
        size_t n = 0;

        memset(set, 0, (VILLAGE_MAX + 1) * sizeof(bool));
        if (!note || result >= ELEMENTSOF(prefixes))
                return 0;
        for (const char *p = note; p && *p; p = strstr(p, "; "), p = p ? p + 2 : NULL) {
                size_t k = strlen(prefixes[result]);
                if (strncmp(p, prefixes[result], k) != 0)
                        continue;
                p += k;
                if (*p == 's')
                        p++;
                while (*p == ' ' || *p == ',') {
                        char *end;
                        unsigned long a, b;

                        while (*p == ' ' || *p == ',')
                                p++;
                        if (*p < '0' || *p > '9')
                                break;
                        a = b = strtoul(p, &end, 10);
                        if (*end == '-' && end[1] >= '0' && end[1] <= '9')
                                b = strtoul(end + 1, &end, 10);
                        p = end;
                        for (unsigned long v = a; v <= b && v <= VILLAGE_MAX; v++)
                                if (!set[v]) {
                                        set[v] = true;
                                        n++;
                                }
                }
        }
        return n;
}

char *report_tower_villages(const Job *j, TowerResult result) {
        bool set[VILLAGE_MAX + 1];
        StrBuf b = {};

        tower_note_villages(j->message, result, set);
        for (unsigned v = 1; v <= VILLAGE_MAX; v++)
                if (set[v])
                        strbuf_printf(&b, "%s%u", b.len ? ", " : "", v);
        return strbuf_steal(&b);
}

/* ---- loading ---- */

static const char *channel_kind(const Config *config, const char *name) {
        const ChannelConfig *c = config_find_channel(config, name);
        return c ? c->plugin : "";
}

const char *report_channel_kind_thai(const char *kind) {
        if (streq(kind, "website"))
                return "เว็บไซต์ของหน่วยงาน";
        if (streq(kind, "facebook"))
                return "Facebook ของหน่วยงาน";
        if (streq(kind, "line"))
                return "LINE Official Account ของหน่วยงาน";
        if (streq(kind, "tower"))
                return "หอกระจายข่าวประจำหมู่บ้าน";
        return "ช่องทางอื่น";
}

/* A job that tried to send, or ended after trying: the announcement went (or should have gone) out. */
static bool job_went_out(const Job *j) {
        return j->kind == JOB_PUBLISH &&
               (j->attempts > 0 || j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_UNCONFIRMED);
}

static usec_t entry_published(const Entry *e) {
        usec_t first = 0;

        for (size_t i = 0; i < e->n_jobs; i++) {
                const Job *j = &e->jobs[i];
                if (j->kind == JOB_PUBLISH && j->state == JOB_DONE && j->finished && (!first || j->finished < first))
                        first = j->finished;
        }
        return first ?: e->announcement->publish_at ?: e->announcement->received;
}

static bool entry_selected(const Entry *e, const ReportPeriod *p, usec_t published) {
        bool went_out = false;

        if (e->announcement->cancel || e->approval == APPROVAL_WAITING || e->approval == APPROVAL_REJECTED)
                return false;
        for (size_t i = 0; i < e->n_jobs; i++)
                went_out |= job_went_out(&e->jobs[i]);
        return went_out && published >= p->from && published < p->to;
}

static int compare_items(const void *a, const void *b) {
        const ReportItem *x = a, *y = b;

        if (x->published != y->published)
                return x->published < y->published ? -1 : 1;
        return strcmp(x->entry->announcement->id, y->entry->announcement->id);
}

static ReportItem *report_find_item(Report *r, const char *id) {
        for (size_t i = 0; id && i < r->n_items; i++)
                if (streq(r->items[i].entry->announcement->id, id))
                        return &r->items[i];
        return NULL;
}

static ReportChannel *report_channel(Report *r, const char *name) {
        for (size_t i = 0; i < r->n_channels; i++)
                if (streq(r->channels[i].name, name))
                        return &r->channels[i];
        r->channels = xrealloc(r->channels, (r->n_channels + 1) * sizeof(ReportChannel));
        r->channels[r->n_channels] = (ReportChannel) { .name = xstrdup(name), .kind = channel_kind(r->config, name) };
        return &r->channels[r->n_channels++];
}

static void report_count_job(Report *r, const Job *j) {
        ReportChannel *c = report_channel(r, j->channel);
        bool set[VILLAGE_MAX + 1];

        c->counts[j->state]++;
        if (!streq(c->kind, "tower"))
                return;
        r->has_towers = true;
        for (TowerResult t = 0; t < TOWER_RESULT_OTHER; t++) {
                size_t n = tower_note_villages(j->message, t, set);
                if (t == TOWER_RESULT_PLAYED)
                        c->village_plays += n;
                for (unsigned v = 1; n && v <= VILLAGE_MAX; v++)
                        r->village_counts[v][t] += set[v];
        }
}

/* While prakatd runs, an entry can be read twice (in queue/, then in done/ after its move): keep one. */
static void report_drop_duplicates(Report *r) {
        size_t k = 0;

        for (size_t i = 0; i < r->n_entries; i++) {
                if (k > 0 && streq(r->entries[k - 1]->announcement->id, r->entries[i]->announcement->id)) {
                        bool newer = entry_is_finished(r->entries[i]);
                        entry_free(newer ? r->entries[k - 1] : r->entries[i]);
                        if (newer)
                                r->entries[k - 1] = r->entries[i];
                        continue;
                }
                r->entries[k++] = r->entries[i];
        }
        r->n_entries = k;
}

static const char *website_key(const Config *config, const char *key) {
        for (size_t i = 0; i < config->n_channels; i++) {
                const ChannelConfig *c = &config->channels[i];
                if (!streq(c->plugin, "website"))
                        continue;
                for (size_t k = 0; k < c->n_entries; k++)
                        if (streq(c->entries[k].key, key) && !isempty(c->entries[k].value))
                                return c->entries[k].value;
        }
        return NULL;
}

int report_load(const Config *config, const ReportPeriod *period, Report **ret) {
        Report *r = xcalloc(1, sizeof(Report));
        int rc;

        r->config = config;
        r->period = *period;
        r->office = website_key(config, "office_name") ?: website_key(config, "site_title") ?: "";
        r->site_url = website_key(config, "base_url");
        rc = queue_list_dir(config->state, true, &r->entries, &r->n_entries);
        if (rc < 0) {
                free(r);
                return rc;
        }
        report_drop_duplicates(r);

        r->items = xcalloc(r->n_entries + 1, sizeof(ReportItem));
        for (size_t i = 0; i < r->n_entries; i++) {
                usec_t published = entry_published(r->entries[i]);
                if (entry_selected(r->entries[i], period, published))
                        r->items[r->n_items++] = (ReportItem) { .entry = r->entries[i], .published = published };
        }
        if (r->n_items > 1)
                qsort(r->items, r->n_items, sizeof(ReportItem), compare_items);

        /* Withdrawals and replacements are announcements of their own, possibly after the period. */
        for (size_t i = 0; i < r->n_entries; i++) {
                const Announcement *a = r->entries[i]->announcement;
                ReportItem *target = report_find_item(r, a->cancel ?: a->replaces);
                if (target && !target->withdrawn_by) {
                        target->withdrawn_by = r->entries[i];
                        target->replaced = !a->cancel;
                }
        }

        for (size_t i = 0; i < config->n_channels; i++)
                (void) report_channel(r, config->channels[i].name);
        for (size_t i = 0; i < r->n_items; i++) {
                const Entry *e = r->items[i].entry;
                for (size_t k = 0; k < e->n_jobs; k++)
                        if (e->jobs[k].kind == JOB_PUBLISH)
                                report_count_job(r, &e->jobs[k]);
        }
        *ret = r;
        return 0;
}

void report_free(Report *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_entries; i++)
                entry_free(r->entries[i]);
        free(r->entries);
        free(r->items);
        for (size_t i = 0; i < r->n_channels; i++)
                free(r->channels[i].name);
        free(r->channels);
        free(r);
}

/* ---- HTML ---- */

void html_put_text(FILE *f, const char *s) {
        static const char specials[] = "&<>\"'";
        static const char *const entities[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&#39;" };

        while (s && *s) {
                size_t n = strcspn(s, specials);
                fwrite(s, 1, n, f);
                s += n;
                if (!*s)
                        break;
                fputs(entities[strchr(specials, *s) - specials], f);
                s++;
        }
}

void html_put_head(FILE *f, const char *title, const char *css) {
        fputs("<!DOCTYPE html>\n<html lang=\"th\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
        html_put_text(f, title);
        fputs("</title>\n<style>\n"
              "@page { size: A4; margin: 14mm 12mm 16mm; }\n"
              "html { font-family: \"Sarabun\", \"TH Sarabun New\", \"Noto Sans Thai\", \"Noto Serif Thai\", \"Loma\","
              " \"Garuda\", sans-serif; font-size: 11pt; line-height: 1.45; color: #000; background: #fff;"
              " -webkit-print-color-adjust: exact; print-color-adjust: exact; }\n"
              "body { margin: 0 auto; max-width: 186mm; padding: 4mm; }\n"
              "a { color: #000; overflow-wrap: anywhere; }\n"
              ".muted { color: #444; font-size: 9pt; }\n"
              "@media print { body { padding: 0; } a { text-decoration: none; } }\n",
              f);
        fputs(css, f);
        fputs("</style>\n</head>\n<body>\n", f);
}

/* A link only when it is one (http or https), else plain text: a link comes from a plugin's answer. */
static void html_put_link(FILE *f, const char *url) {
        if (startswith_nocase(url, "https://") || startswith_nocase(url, "http://")) {
                fputs("<a href=\"", f);
                html_put_text(f, url);
                fputs("\">", f);
                html_put_text(f, url);
                fputs("</a>", f);
        } else
                html_put_text(f, url);
}

static void html_put_date(FILE *f, usec_t t, ThaiDateStyle style) {
        char b[128];

        if (t && thaidate_format(t, style, b, sizeof b) >= 0)
                html_put_text(f, b);
        else
                fputs("–", f);
}

static const char report_css[] =
        "h1 { font-size: 16pt; text-align: center; margin: 0; }\n"
        "header p { text-align: center; margin: 1mm 0; }\n"
        "header .office { font-size: 14pt; font-weight: bold; }\n"
        "h2 { font-size: 13pt; margin: 6mm 0 2mm; break-after: avoid; }\n"
        "table { border-collapse: collapse; width: 100%; }\n"
        "th, td { border: 0.6pt solid #555; padding: 1.2mm 1.6mm; vertical-align: top; text-align: left; }\n"
        "th { background: #e8e8e8; }\n"
        "thead { display: table-header-group; }\n"
        "tr { break-inside: avoid; page-break-inside: avoid; }\n"
        ".num { text-align: right; white-space: nowrap; }\n"
        ".date { white-space: nowrap; }\n"
        "table.items td { overflow-wrap: anywhere; }\n"
        "table.items td:nth-child(3) { width: 36%; }\n"
        "ul.jobs { margin: 0; padding-left: 4mm; }\n"
        "ul.jobs li { margin: 0 0 1mm; }\n"
        ".failed, .unconfirmed { font-weight: bold; }\n"
        ".withdrawn { font-style: italic; }\n"
        ".signature { margin-top: 14mm; margin-left: 55%; text-align: center; line-height: 2.2; }\n"
        "footer { margin-top: 8mm; }\n";

static void html_put_channel_name(FILE *f, const char *name, const char *kind) {
        html_put_text(f, report_channel_kind_thai(kind));
        fputs(" <span class=\"muted\">(", f);
        html_put_text(f, name);
        fputs(")</span>", f);
}

static void report_html_totals(const Report *r, FILE *f) {
        fputs("<h2>สรุปการเผยแพร่ตามช่องทาง</h2>\n<table class=\"totals\">\n<thead><tr><th>ช่องทาง</th>"
              "<th class=\"num\">เผยแพร่สำเร็จ (เรื่อง)</th><th class=\"num\">ไม่สำเร็จ</th>"
              "<th class=\"num\">ยังยืนยันไม่ได้</th><th class=\"num\">อื่น ๆ</th></tr></thead>\n<tbody>\n", f);
        for (size_t i = 0; i < r->n_channels; i++) {
                const ReportChannel *c = &r->channels[i];
                size_t other = 0;
                for (int s = 0; s < _JOB_STATE_MAX; s++)
                        if (s != JOB_DONE && s != JOB_FAILED && s != JOB_UNCONFIRMED)
                                other += c->counts[s];
                fprintf(f, "<tr class=\"channel\" data-channel=\"");
                html_put_text(f, c->name);
                fputs("\"><td>", f);
                html_put_channel_name(f, c->name, c->kind);
                if (streq(c->kind, "tower"))
                        fprintf(f, "<br><span class=\"muted\">ออกอากาศรวม %zu หมู่บ้าน-เรื่อง</span>", c->village_plays);
                fprintf(f, "</td><td class=\"num done\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td>"
                           "<td class=\"num\">%zu</td></tr>\n",
                        c->counts[JOB_DONE], c->counts[JOB_FAILED], c->counts[JOB_UNCONFIRMED], other);
        }
        fprintf(f, "</tbody>\n</table>\n<p>รวมประกาศที่เผยแพร่ในช่วงเวลานี้ <strong class=\"total\">%zu</strong> เรื่อง"
                   " (หนึ่งเรื่องอาจเผยแพร่หลายช่องทาง)</p>\n",
                r->n_items);
}

static void report_html_villages(const Report *r, FILE *f) {
        if (!r->has_towers)
                return;
        fputs("<h2>การออกอากาศทางหอกระจายข่าว รายหมู่บ้าน</h2>\n<table class=\"villages\">\n<thead><tr>"
              "<th class=\"num\">หมู่ที่</th><th>หมู่บ้าน</th><th class=\"num\">ออกอากาศแล้ว (เรื่อง)</th>"
              "<th class=\"num\">ออกอากาศไม่สำเร็จ</th><th class=\"num\">หอไม่ยืนยัน</th></tr></thead>\n<tbody>\n", f);
        for (unsigned v = 1; v <= VILLAGE_MAX; v++) {
                const size_t *c = r->village_counts[v];
                if (!r->config->village_names[v] && !c[TOWER_RESULT_PLAYED] && !c[TOWER_RESULT_FAILED] &&
                    !c[TOWER_RESULT_UNCONFIRMED])
                        continue;
                fprintf(f, "<tr class=\"village\" data-village=\"%u\"><td class=\"num\">%u</td><td>", v, v);
                html_put_text(f, r->config->village_names[v] ?: "");
                fprintf(f, "</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td></tr>\n",
                        c[TOWER_RESULT_PLAYED], c[TOWER_RESULT_FAILED], c[TOWER_RESULT_UNCONFIRMED]);
        }
        fputs("</tbody>\n</table>\n", f);
}

static void report_html_tower_villages(FILE *f, const Job *j) {
        static const char *const labels[] = {
                [TOWER_RESULT_PLAYED] = "ออกอากาศแล้ว",
                [TOWER_RESULT_FAILED] = "ไม่สำเร็จ",
                [TOWER_RESULT_UNCONFIRMED] = "หอไม่ยืนยัน",
        };

        for (TowerResult t = 0; t < TOWER_RESULT_OTHER; t++) {
                _cleanup_free_ char *list = report_tower_villages(j, t);
                if (isempty(list))
                        continue;
                fprintf(f, "<br>%s: หมู่ ", labels[t]);
                html_put_text(f, list);
        }
}

static void report_html_job(const Report *r, FILE *f, const Job *j) {
        const char *kind = channel_kind(r->config, j->channel);

        fprintf(f, "<li class=\"job %s\" data-channel=\"", job_state_to_string(j->state));
        html_put_text(f, j->channel);
        fputs("\"><strong>", f);
        html_put_text(f, report_channel_kind_thai(kind));
        fputs("</strong> <span class=\"muted\">(", f);
        html_put_text(f, j->channel);
        fprintf(f, ")</span>: %s", job_state_to_thai(j->state));
        if (j->finished) {
                fputs(" ", f);
                html_put_date(f, j->finished, THAIDATE_SHORT);
        }
        if (j->link) {
                fputs("<br>", f);
                html_put_link(f, j->link);
        }
        if (j->remote_id && !streq(kind, "website")) { /* the website's is the announcement id */
                fputs("<br>รหัสโพสต์/ข้อความ: ", f);
                html_put_text(f, j->remote_id);
        }
        if (streq(kind, "tower"))
                report_html_tower_villages(f, j);
        if ((j->state == JOB_FAILED || j->state == JOB_UNCONFIRMED) && (j->message_th || j->message)) {
                fputs("<br><span class=\"muted\">", f);
                html_put_text(f, j->message_th ?: j->message);
                fputs("</span>", f);
        }
        fputs("</li>\n", f);
}

static void report_html_items(const Report *r, FILE *f) {
        fputs("<h2>รายการประกาศที่เผยแพร่</h2>\n<table class=\"items\">\n<thead><tr><th class=\"num\">ลำดับ</th>"
              "<th>วันที่เผยแพร่</th><th>เรื่อง</th><th>ช่องทางและผลการเผยแพร่</th></tr></thead>\n<tbody>\n", f);
        if (r->n_items == 0)
                fputs("<tr><td colspan=\"4\">ไม่มีประกาศที่เผยแพร่ในช่วงเวลานี้</td></tr>\n", f);
        for (size_t i = 0; i < r->n_items; i++) {
                const ReportItem *it = &r->items[i];
                const Announcement *a = it->entry->announcement;

                fputs("<tr class=\"item\" data-id=\"", f);
                html_put_text(f, a->id);
                fprintf(f, "\"><td class=\"num\">%zu</td><td class=\"date\">", i + 1);
                html_put_date(f, it->published, THAIDATE_SHORT);
                fputs("</td><td><span class=\"title\">", f);
                html_put_text(f, a->title);
                fputs("</span><br><span class=\"muted\">รหัส ", f);
                html_put_text(f, a->id);
                fputs(" · ", f);
                html_put_text(f, a->category);
                fputs("</span>", f);
                if (it->withdrawn_by) {
                        fprintf(f, "<br><span class=\"withdrawn\">%s ", it->replaced ? "ถูกแทนที่ด้วย" : "ถอนแล้วโดย");
                        html_put_text(f, it->withdrawn_by->announcement->id);
                        fputs(" (", f);
                        html_put_date(f, entry_published(it->withdrawn_by), THAIDATE_SHORT);
                        fputs(")</span>", f);
                }
                fputs("</td><td><ul class=\"jobs\">\n", f);
                for (size_t k = 0; k < it->entry->n_jobs; k++)
                        if (it->entry->jobs[k].kind == JOB_PUBLISH)
                                report_html_job(r, f, &it->entry->jobs[k]);
                fputs("</ul></td></tr>\n", f);
        }
        fputs("</tbody>\n</table>\n", f);
}

int report_write_html(const Report *r, FILE *f) {
        _cleanup_free_ char *period = report_period_text(&r->period), *title = NULL;
        char now[128];

        title = xasprintf("รายงานการเผยแพร่ข้อมูลข่าวสาร %s%s%s", period, isempty(r->office) ? "" : " ", r->office);
        html_put_head(f, title, report_css);
        fputs("<header>\n<h1>รายงานผลการเผยแพร่ข้อมูลข่าวสารของหน่วยงานผ่านช่องทางต่าง ๆ</h1>\n", f);
        if (!isempty(r->office)) {
                fputs("<p class=\"office\">", f);
                html_put_text(f, r->office);
                fputs("</p>\n", f);
        }
        fputs("<p class=\"period\">", f);
        html_put_text(f, period);
        fputs("</p>\n<p class=\"muted\">หลักฐานการเผยแพร่ข้อมูลข่าวสารให้ประชาชนทราบอย่างหลากหลายช่องทาง: "
              "เว็บไซต์ของหน่วยงาน, Facebook, LINE Official Account และหอกระจายข่าวประจำหมู่บ้าน "
              "(การประเมินคุณธรรมและความโปร่งใส ITA)</p>\n</header>\n",
              f);
        report_html_totals(r, f);
        report_html_villages(r, f);
        report_html_items(r, f);
        fputs("<div class=\"signature\">ลงชื่อ ..................................................<br>"
              "(..................................................)<br>ตำแหน่ง ..................................................<br>"
              "ผู้รายงาน</div>\n", f);
        thaidate_format(clock_now(), THAIDATE_LONG, now, sizeof now);
        fprintf(f, "<footer class=\"muted\">จัดทำโดยโปรแกรม prakat %s เมื่อ %s จากบันทึกการเผยแพร่ของระบบ"
                   " / generated by prakat from its delivery records</footer>\n</body>\n</html>\n",
                PRAKAT_VERSION, now);
        return ferror(f) ? -EIO : 0;
}

/* ---- CSV ---- */

/*
 * RFC 4180 with every field quoted, CRLF line ends, and a UTF-8 BOM so that Excel on Thai Windows reads
 * UTF-8.  A field that a spreadsheet would take for a formula (=, +, -, @ first) gets a leading
 * apostrophe: a title comes from staff, and a CSV must never run anything when it is opened.
 */
static void csv_put(FILE *f, const char *s, bool last) {
        fputc('"', f);
        if (s && *s && strchr("=+-@\t\r", *s))
                fputc('\'', f);
        for (; s && *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputs(last ? "\"\r\n" : "\",", f);
}

static void csv_put_date(FILE *f, usec_t t, bool iso) {
        char b[128] = "";

        if (t) {
                if (iso)
                        thaidate_format_iso(t, b, sizeof b);
                else
                        thaidate_format(t, THAIDATE_SHORT, b, sizeof b);
        }
        csv_put(f, b, false);
}

static const char *const csv_columns[] = {
        "ลำดับ / No",
        "รหัสประกาศ / ID",
        "หัวข้อ / Title",
        "หมวด / Category",
        "ความสำคัญ / Priority",
        "หมู่บ้าน / Villages",
        "วันที่เผยแพร่ (พ.ศ.) / Published",
        "Published (ISO 8601)",
        "ช่องทาง / Channel",
        "ประเภทช่องทาง / Channel type",
        "ผล / Outcome",
        "Outcome",
        "เสร็จเมื่อ (พ.ศ.) / Finished",
        "Finished (ISO 8601)",
        "จำนวนครั้งที่ส่ง / Attempts",
        "ลิงก์ / Link",
        "รหัสโพสต์ / Post id",
        "หอกระจายข่าว ออกอากาศแล้ว (หมู่) / Towers played",
        "หอกระจายข่าว ไม่สำเร็จ (หมู่) / Towers failed",
        "หอกระจายข่าว ไม่ยืนยัน (หมู่) / Towers not confirmed",
        "ถอน/แทนที่โดย / Withdrawn by",
        "หมายเหตุ / Note",
};

static char *villages_text(const Announcement *a) {
        StrBuf b = {};

        if (a->all_villages)
                return xstrdup("ทั้งหมด / all");
        for (size_t i = 0; i < a->n_villages; i++)
                strbuf_printf(&b, "%s%u", i ? ", " : "", a->villages[i]);
        return strbuf_steal(&b);
}

static void report_csv_row(const Report *r, FILE *f, size_t no, const ReportItem *it, const Job *j) {
        const Announcement *a = it->entry->announcement;
        const char *kind = channel_kind(r->config, j->channel);
        bool tower = streq(kind, "tower");
        _cleanup_free_ char *number = xasprintf("%zu", no), *villages = villages_text(a),
                            *attempts = xasprintf("%u", j->attempts);

        csv_put(f, number, false);
        csv_put(f, a->id, false);
        csv_put(f, a->title, false);
        csv_put(f, a->category, false);
        csv_put(f, priority_to_string(a->priority), false);
        csv_put(f, villages, false);
        csv_put_date(f, it->published, false);
        csv_put_date(f, it->published, true);
        csv_put(f, j->channel, false);
        csv_put(f, kind, false);
        csv_put(f, job_state_to_thai(j->state), false);
        csv_put(f, job_state_to_string(j->state), false);
        csv_put_date(f, j->finished, false);
        csv_put_date(f, j->finished, true);
        csv_put(f, attempts, false);
        csv_put(f, j->link, false);
        csv_put(f, j->remote_id, false);
        for (TowerResult t = 0; t < TOWER_RESULT_OTHER; t++) {
                _cleanup_free_ char *list = tower ? report_tower_villages(j, t) : NULL;
                csv_put(f, list, false);
        }
        csv_put(f, it->withdrawn_by ? it->withdrawn_by->announcement->id : NULL, false);
        csv_put(f, j->message_th ?: j->message, true);
}

int report_write_csv(const Report *r, FILE *f) {
        fputs("\xEF\xBB\xBF", f);
        for (size_t i = 0; i < ELEMENTSOF(csv_columns); i++)
                csv_put(f, csv_columns[i], i + 1 == ELEMENTSOF(csv_columns));
        for (size_t i = 0; i < r->n_items; i++) {
                const Entry *e = r->items[i].entry;
                for (size_t k = 0; k < e->n_jobs; k++)
                        if (e->jobs[k].kind == JOB_PUBLISH)
                                report_csv_row(r, f, i + 1, &r->items[i], &e->jobs[k]);
        }
        return ferror(f) ? -EIO : 0;
}
