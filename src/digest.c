/* SPDX-License-Identifier: MIT */
#include "digest.h"

#include <qrencode.h>
#include <sys/stat.h>

#include "thaidate.h"

#define DIGEST_SUMMARY_CHARS 320 /* characters of an announcement's text in the newsletter */

static const char digest_css[] =
        ".masthead { border-bottom: 2pt solid #000; text-align: center; padding-bottom: 2mm; margin-bottom: 4mm; }\n"
        ".masthead .name { font-size: 20pt; font-weight: bold; margin: 0; }\n"
        ".masthead .issue { font-size: 12pt; margin: 1mm 0 0; }\n"
        ".intro { margin: 0 0 4mm; }\n"
        ".articles { columns: 2; column-gap: 8mm; }\n"
        "article { break-inside: avoid; page-break-inside: avoid; margin: 0 0 5mm; padding-bottom: 3mm;"
        " border-bottom: 0.6pt solid #999; }\n"
        "article h2 { font-size: 13pt; line-height: 1.3; margin: 0 0 1mm; overflow-wrap: anywhere; }\n"
        "article .date { margin: 0 0 1.5mm; }\n"
        "article img { display: block; width: 100%; height: auto; max-height: 60mm; margin: 0 auto 2mm;"
        " object-fit: contain; }\n"
        "article .summary { margin: 0 0 1.5mm; overflow-wrap: anywhere; }\n"
        "article .link { font-size: 9pt; margin: 0; display: flex; align-items: center; gap: 2mm;"
        " overflow-wrap: anywhere; }\n"
        "article .qr { width: 20mm; height: 20mm; flex: none; }\n"
        "footer { margin-top: 6mm; border-top: 1pt solid #000; padding-top: 2mm; }\n";

/* The first lines of the text, at most DIGEST_SUMMARY_CHARS characters, cut between characters. */
static char *digest_summary(const Announcement *a) {
        _cleanup_free_ char *body = xstrdup(a->body ?: "");
        StrBuf b = {};
        size_t chars = 0;
        bool cut = false;
        char *save = NULL;

        for (char *line = strtok_r(body, "\n", &save); line && !cut; line = strtok_r(NULL, "\n", &save)) {
                strstrip(line);
                if (!*line || (b.len == 0 && streq(line, a->title)))
                        continue;
                if (b.len)
                        strbuf_append(&b, " ");
                for (const char *p = line; *p; p++) {
                        /* A UTF-8 lead byte (not 10xxxxxx) starts a character. */
                        if (((unsigned char) *p & 0xC0) != 0x80 && chars++ == DIGEST_SUMMARY_CHARS) {
                                cut = true;
                                break;
                        }
                        strbuf_appendn(&b, p, 1);
                }
        }
        if (cut)
                strbuf_append(&b, "…");
        return strbuf_steal(&b);
}

static bool is_picture(const char *name) {
        static const char *const exts[] = { ".png", ".jpg", ".jpeg", ".gif", ".webp" };

        for (size_t i = 0; i < ELEMENTSOF(exts); i++)
                if (endswith_nocase(name, exts[i]))
                        return true;
        return false;
}

static const Job *website_job(const Report *r, const Entry *e) {
        for (size_t i = 0; i < e->n_jobs; i++) {
                const ChannelConfig *c = config_find_channel(r->config, e->jobs[i].channel);
                if (e->jobs[i].kind == JOB_PUBLISH && c && streq(c->plugin, "website") && e->jobs[i].state == JOB_DONE)
                        return &e->jobs[i];
        }
        return NULL;
}

/* The article's public page: the website's link, else the first other link that went out. */
static const char *digest_link(const Report *r, const Entry *e) {
        const Job *w = website_job(r, e);

        if (w && w->link)
                return w->link;
        for (size_t i = 0; i < e->n_jobs; i++)
                if (e->jobs[i].kind == JOB_PUBLISH && e->jobs[i].state == JOB_DONE && e->jobs[i].link)
                        return e->jobs[i].link;
        return NULL;
}

/* Percent-encodes what is not safe in a relative URL path (Thai folder names included). */
static void url_put_path(FILE *f, const char *s) {
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~/", c))
                        fputc(c, f);
                else
                        fprintf(f, "%%%02X", c);
        }
}

/* Copies attachment `i` of e into files_dir; returns the new file's name, or NULL (said on stderr). */
static char *digest_copy_picture(const Entry *e, size_t i, const char *files_dir) {
        const Announcement *a = e->announcement;
        _cleanup_free_ char *original = entry_original_path(e), *from = path_join(original, a->attachments[i]),
                            *name = NULL, *to = NULL;
        const char *dot = strrchr(a->attachments[i], '.');
        int r;

        name = xasprintf("%s-%zu%s", a->id, i + 1, dot);
        to = path_join(files_dir, name);
        r = mkdir_p(files_dir, 0755);
        if (r >= 0)
                r = copy_file(from, to, 0644);
        if (r < 0) {
                fprintf(stderr, "prakat: cannot copy the picture %s of %s to %s: %s, leaving it out.\n",
                        a->attachments[i], a->id, files_dir, strerror(-r));
                return NULL;
        }
        return TAKE_PTR(name);
}

static void digest_put_picture(const Report *r, FILE *f, const Entry *e, const char *files_dir,
                               const char *files_href) {
        const Announcement *a = e->announcement;
        const Job *w = website_job(r, e);

        for (size_t i = 0; i < a->n_attachments; i++) {
                if (!is_picture(a->attachments[i]))
                        continue;
                if (files_dir) {
                        _cleanup_free_ char *name = digest_copy_picture(e, i, files_dir);
                        if (!name)
                                return;
                        fputs("<img src=\"", f);
                        url_put_path(f, files_href);
                        fputc('/', f);
                        url_put_path(f, name);
                } else if (w && w->n_attachment_urls == a->n_attachments &&
                           startswith_nocase(w->attachment_urls[i], "https://")) {
                        fputs("<img src=\"", f);
                        html_put_text(f, w->attachment_urls[i]);
                } else
                        return;
                fputs("\" alt=\"", f);
                html_put_text(f, a->title);
                fputs("\">\n", f);
                return;
        }
}

/*
 * The page's address as a QR code (inline SVG, error correction M, a quiet zone of 4 modules), for the
 * villagers who read the printed newsletter with a phone in hand.  Nothing when it cannot be made: the
 * address is printed beside it anyway.
 */
static void digest_put_qr(FILE *f, const char *link) {
        QRcode *qr = QRcode_encodeString8bit(link, 0, QR_ECLEVEL_M);
        int size;

        if (!qr)
                return;
        size = qr->width + 8;
        fprintf(f, "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                   "shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR: ", size, size);
        html_put_text(f, link);
        fprintf(f, "\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"", size, size);
        /* One rectangle per run of dark modules in a row. */
        for (int y = 0; y < qr->width; y++)
                for (int x = 0; x < qr->width;) {
                        int run = 0;
                        while (x + run < qr->width && (qr->data[y * qr->width + x + run] & 1))
                                run++;
                        if (run)
                                fprintf(f, "M%d %dh%dv1h-%dz", x + 4, y + 4, run, run);
                        x += run ? run : 1;
                }
        fputs("\"/></svg>", f);
        QRcode_free(qr);
}

static void digest_put_article(const Report *r, FILE *f, const ReportItem *it, const char *files_dir,
                               const char *files_href) {
        const Announcement *a = it->entry->announcement;
        _cleanup_free_ char *summary = digest_summary(a);
        const char *link = digest_link(r, it->entry);
        char date[96];

        thaidate_format(it->published, THAIDATE_LONG_DATE, date, sizeof date);
        fputs("<article class=\"news\" data-id=\"", f);
        html_put_text(f, a->id);
        fputs("\">\n<h2>", f);
        html_put_text(f, a->title);
        fputs("</h2>\n<p class=\"date muted\">", f);
        html_put_text(f, date);
        fputs(" · ", f);
        html_put_text(f, a->category);
        fputs("</p>\n", f);
        digest_put_picture(r, f, it->entry, files_dir, files_href);
        fputs("<p class=\"summary\">", f);
        html_put_text(f, summary);
        fputs("</p>\n", f);
        if (link && (startswith_nocase(link, "https://") || startswith_nocase(link, "http://"))) {
                fputs("<p class=\"link\">", f);
                digest_put_qr(f, link);
                fputs("<span>อ่านต่อ: <a href=\"", f);
                html_put_text(f, link);
                fputs("\">", f);
                html_put_text(f, link);
                fputs("</a></span></p>\n", f);
        }
        fputs("</article>\n", f);
}

/* An announcement withdrawn or replaced since is not news to print; nor one that reached no channel. */
static bool digest_wants(const ReportItem *it) {
        const Entry *e = it->entry;

        if (it->withdrawn_by)
                return false;
        for (size_t i = 0; i < e->n_jobs; i++)
                if (e->jobs[i].kind == JOB_PUBLISH && e->jobs[i].state == JOB_DONE)
                        return true;
        return false;
}

static void digest_put_footer(const Report *r, FILE *f) {
        bool kinds[4] = {};
        static const char *const names[] = { "website", "facebook", "line", "tower" };

        for (size_t i = 0; i < r->config->n_channels; i++)
                for (size_t k = 0; k < ELEMENTSOF(names); k++)
                        kinds[k] |= r->config->channels[i].enabled && streq(r->config->channels[i].plugin, names[k]);
        fputs("<footer>\n<p>ติดตามข่าวสารของ", f);
        html_put_text(f, isempty(r->office) ? "หน่วยงาน" : r->office);
        fputs(" ได้ทาง", f);
        for (size_t k = 0, n = 0; k < ELEMENTSOF(names); k++) {
                if (!kinds[k])
                        continue;
                fputs(n++ ? ", " : " ", f);
                html_put_text(f, report_channel_kind_thai(names[k]));
                if (k == 0 && r->site_url) {
                        fputs(" ", f);
                        html_put_text(f, r->site_url);
                }
        }
        fputs("</p>\n</footer>\n", f);
}

int digest_write_html(const Report *r, FILE *f, const char *files_dir, const char *files_href, size_t *ret_articles) {
        _cleanup_free_ char *title = NULL, *issue = NULL;
        char date[96];
        const char *month_name, *year;
        size_t n = 0;

        /* "1 พฤศจิกายน 2569" without its day, and with its era, is the issue: "พฤศจิกายน พ.ศ. 2569". */
        thaidate_format(r->period.from, THAIDATE_LONG_DATE, date, sizeof date);
        month_name = strchr(date, ' ') ? strchr(date, ' ') + 1 : date;
        year = strrchr(month_name, ' ');
        issue = year ? xasprintf("%.*s พ.ศ.%s", (int) (year - month_name), month_name, year) : xstrdup(month_name);
        title = xasprintf("วารสาร%s ฉบับประจำเดือน%s", r->office, issue);
        html_put_head(f, title, digest_css);
        fputs("<header class=\"masthead\">\n<p class=\"name\">วารสาร", f);
        html_put_text(f, isempty(r->office) ? "ประชาสัมพันธ์" : r->office);
        fputs("</p>\n<p class=\"issue\">ฉบับประจำเดือน", f);
        html_put_text(f, issue);
        fputs("</p>\n</header>\n", f);
        for (size_t i = 0; i < r->n_items; i++)
                n += digest_wants(&r->items[i]);
        if (n == 0)
                fputs("<p class=\"intro\">เดือนนี้ไม่มีประกาศที่เผยแพร่</p>\n", f);
        else
                fprintf(f, "<p class=\"intro\">ข่าวประชาสัมพันธ์ที่เผยแพร่ในเดือนนี้ %zu เรื่อง</p>\n", n);
        fputs("<main class=\"articles\">\n", f);
        for (size_t i = 0; i < r->n_items; i++)
                if (digest_wants(&r->items[i]))
                        digest_put_article(r, f, &r->items[i], files_dir, files_href);
        fputs("</main>\n", f);
        digest_put_footer(r, f);
        fputs("</body>\n</html>\n", f);
        *ret_articles = n;
        return ferror(f) ? -EIO : 0;
}
