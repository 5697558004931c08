/* SPDX-License-Identifier: MIT */
/* line-message.c: building LINE message objects from an announcement (see line-message.h). */
#include "line-message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "line-text.h"

#define READ_MORE "อ่านต่อ / Read more"
#define UPDATED_TH "แก้ไขประกาศ"
#define UPDATED_EN "Updated"
#define FLEX_LINES 6         /* lines of the text shown on the card */
#define FLEX_EXCERPT_MAX 500 /* UTF-16 units of them */
#define ELLIPSIS "…"

__attribute__((format(printf, 2, 3))) static void notes_add(LineNotes *n, const char *format, ...) {
        size_t used = strlen(n->text);
        va_list ap;

        if (used + 3 >= sizeof n->text)
                return;
        if (used > 0) {
                memcpy(n->text + used, "; ", 3);
                used += 2;
        }
        va_start(ap, format);
        vsnprintf(n->text + used, sizeof n->text - used, format, ap);
        va_end(ap);
}

static const char *priority_label(prakat_priority p) {
        switch (p) {
        case PRAKAT_PRIORITY_EMERGENCY:
                return "ประกาศฉุกเฉิน / Emergency";
        case PRAKAT_PRIORITY_URGENT:
                return "ด่วน / Urgent";
        default:
                return NULL;
        }
}

/*
 * A URL as LINE wants it inside a body property: UTF-8 percent-encoded.  The website's URLs are
 * ASCII already; this only guards against a base_url written with Thai letters or spaces.
 */
static char *url_encode_loose(const char *url) {
        size_t n = strlen(url);
        char *out = malloc(n * 3 + 1), *o = out;

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) url; *p; p++) {
                if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '<' && *p != '>' && *p != '\\')
                        *o++ = (char) *p;
                else
                        o += sprintf(o, "%%%02X", *p);
        }
        *o = 0;
        return out;
}

static bool url_is_https(const char *url) {
        return url && strncasecmp(url, "https://", 8) == 0 && url[8] && strlen(url) <= LINE_URL_MAX;
}

/* The article page, when there is one LINE can open. */
static char *article_link(const prakat_announcement *a) {
        if (!a->article_url || !*a->article_url)
                return NULL;
        if (strncasecmp(a->article_url, "https://", 8) != 0 && strncasecmp(a->article_url, "http://", 7) != 0)
                return NULL;
        char *url = url_encode_loose(a->article_url);
        if (url && strlen(url) > 1000) { /* the limit of a URI action */
                free(url);
                return NULL;
        }
        return url;
}

/* True when the file starts like a JPEG or a PNG. */
static bool file_is_jpeg_or_png(const char *path) {
        unsigned char magic[8] = {};
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) : -1;

        if (fd < 0)
                return false;
        ssize_t n = read(fd, magic, sizeof magic);
        close(fd);
        return (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) ||
               (n == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
}

/* The public URL of picture `i`, or NULL (with a note) when LINE cannot show it. */
static const char *picture_url(const prakat_announcement *a, size_t i, LineNotes *notes) {
        const prakat_attachment *att = &a->attachments[i];
        const char *url = a->attachment_urls ? a->attachment_urls[i] : NULL;

        if (!att->mime || (strcmp(att->mime, "image/jpeg") != 0 && strcmp(att->mime, "image/png") != 0))
                return NULL; /* not a picture: the article page lists it */
        if (!url_is_https(url)) {
                notes_add(notes, "picture %s not sent: it has no https address on the website", att->name);
                return NULL;
        }
        if (att->size > LINE_IMAGE_MAX) {
                notes_add(notes, "picture %s not sent: LINE takes at most 10 MB", att->name);
                return NULL;
        }
        if (!file_is_jpeg_or_png(att->path)) {
                notes_add(notes, "picture %s not sent: it is not really a JPEG or PNG file", att->name);
                return NULL;
        }
        return url;
}

static json_t *image_message(const char *url) {
        return json_pack("{s:s, s:s, s:s}", "type", "image", "originalContentUrl", url, "previewImageUrl", url);
}

/* Title, with the update and priority marks, as one clean line. */
static char *heading(const prakat_announcement *a, bool update_mark) {
        char *title = line_text_clean(a->title), *out = NULL;

        if (!title)
                return NULL;
        for (char *p = title; *p; p++)
                if (*p == '\n' || *p == '\t')
                        *p = ' ';
        if (update_mark && a->replaces) {
                if (asprintf(&out, UPDATED_TH " / " UPDATED_EN ": %s", title) < 0)
                        out = NULL;
                free(title);
                return out;
        }
        return title;
}

/* `text` cut to `max` units, with an ellipsis when something was dropped (or `more` follows). */
static char *cut_with_ellipsis_more(const char *text, size_t max, bool more) {
        bool cut = false;
        char *s = line_text_cut(text, max > 1 ? max - 1 : 0, &cut), *out = NULL;

        if (!s || !(cut || more) || !*s)
                return s;
        if (asprintf(&out, "%s" ELLIPSIS, s) < 0)
                out = NULL;
        free(s);
        return out;
}

static char *cut_with_ellipsis(const char *text, size_t max) {
        return cut_with_ellipsis_more(text, max, false);
}

char *line_message_text(const prakat_announcement *a, size_t max_units) {
        char *head = heading(a, true), *body = line_text_clean(a->body), *link = article_link(a);
        char *top = NULL, *tail = NULL, *cut = NULL, *out = NULL;
        const char *label = priority_label(a->priority);

        if (!head || !body)
                goto done;
        if (asprintf(&top, "%s%s%s", label ? label : "", label ? "\n" : "", head) < 0) {
                top = NULL;
                goto done;
        }
        if (asprintf(&tail, "%s%s", link ? "\n\n" READ_MORE ": " : "", link ? link : "") < 0) {
                tail = NULL;
                goto done;
        }
        /* The title and the link always fit (titles are short); the text gets what is left. */
        size_t fixed = line_text_units(top) + line_text_units(tail) + 2;
        if (fixed >= max_units) {
                out = line_text_cut(top, max_units, NULL);
                goto done;
        }
        cut = *body ? cut_with_ellipsis(body, max_units - fixed) : strdup("");
        if (!cut)
                goto done;
        if (asprintf(&out, "%s%s%s%s", top, *cut ? "\n\n" : "", cut, tail) < 0)
                out = NULL;
done:
        free(head);
        free(body);
        free(link);
        free(top);
        free(tail);
        free(cut);
        return out;
}

/* The altText: the title and the start of the text, as a notification shows them. */
static char *alt_text(const char *head, const char *excerpt) {
        char *joined = NULL, *out;

        if (asprintf(&joined, "%s%s%s", head, excerpt && *excerpt ? "\n" : "", excerpt ? excerpt : "") < 0)
                return NULL;
        out = cut_with_ellipsis(joined, LINE_ALT_TEXT_WANTED);
        free(joined);
        return out;
}

static int array_add(json_t *array, json_t *item) {
        if (!item)
                return -ENOMEM;
        return json_array_append_new(array, item) < 0 ? -ENOMEM : 0;
}

static json_t *flex_bubble(const prakat_announcement *a, const char *head, const char *excerpt, const char *date,
                           const char *hero, const char *link) {
        json_t *bubble = json_pack("{s:s}", "type", "bubble");
        json_t *body = json_array(), *footer = NULL;
        const char *label = priority_label(a->priority);
        char *meta = NULL;
        int r = 0;

        if (!bubble || !body)
                goto fail;
        if (hero) {
                json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "image", "url", hero, "size", "full",
                                      "aspectRatio", "20:13", "aspectMode", "cover");
                if (h && link)
                        json_object_set_new(h, "action", json_pack("{s:s, s:s}", "type", "uri", "uri", link));
                if (!h || json_object_set_new(bubble, "hero", h) < 0)
                        goto fail;
        }
        if (label)
                r |= array_add(body, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "text", "text", label, "size",
                                               "sm", "weight", "bold", "color", "#C62828"));
        if (a->replaces)
                r |= array_add(body, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "text", "text",
                                               UPDATED_TH " / " UPDATED_EN, "size", "sm", "weight", "bold", "color",
                                               "#E65100"));
        r |= array_add(body, json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "text", "text", head, "weight", "bold",
                                       "size", "lg", "wrap", 1));
        char *category = line_text_clean(a->category);
        if (category && asprintf(&meta, "%s%s%s", date ? date : "", date && *category ? " · " : "", category) < 0)
                meta = NULL;
        free(category);
        if (meta && *meta)
                r |= array_add(body, json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "text", "text", meta, "size",
                                               "xs", "color", "#888888", "wrap", 1));
        free(meta);
        if (excerpt && *excerpt)
                r |= array_add(body, json_pack("{s:s, s:s, s:s, s:b, s:s}", "type", "text", "text", excerpt, "size",
                                               "sm", "wrap", 1, "margin", "md"));
        if (r < 0)
                goto fail;
        if (json_object_set_new(bubble, "body",
                                json_pack("{s:s, s:s, s:s, s:o}", "type", "box", "layout", "vertical", "spacing", "sm",
                                          "contents", body)) < 0) {
                body = NULL; /* stolen */
                goto fail;
        }
        body = NULL;
        if (link) {
                footer = json_pack("{s:s, s:s, s:[{s:s, s:s, s:s, s:{s:s, s:s, s:s}}]}", "type", "box", "layout",
                                   "vertical", "contents", "type", "button", "style", "primary", "height", "sm",
                                   "action", "type", "uri", "label", READ_MORE, "uri", link);
                if (!footer || json_object_set_new(bubble, "footer", footer) < 0)
                        goto fail;
        }
        return bubble;
fail:
        json_decref(body);
        json_decref(bubble);
        return NULL;
}

json_t *line_messages_announcement(const prakat_announcement *a, LineStyle style, const char *date,
                                   LineNotes *notes) {
        json_t *messages = json_array();
        char *head = heading(a, false), *body = line_text_clean(a->body), *link = article_link(a);
        char *lines = NULL, *excerpt = NULL, *alt = NULL, *alt_head = heading(a, true), *text = NULL;
        const char *hero = NULL;
        size_t first_image = 0, skipped = 0;

        if (!messages || !head || !body || !alt_head)
                goto fail;
        if (!link && a->article_url)
                notes_add(notes, "no button to the article: its address %s cannot be opened from LINE",
                          a->article_url);
        if (style == LINE_STYLE_FLEX) {
                for (; first_image < a->n_attachments && !hero; first_image++)
                        hero = picture_url(a, first_image, notes);
                /* One line more than shown tells whether the card must say that the text goes on. */
                lines = line_text_first_lines(body, FLEX_LINES + 1);
                if (!lines)
                        goto fail;
                char *last = NULL;
                size_t n_lines = 1;
                for (char *p = lines; *p; p++)
                        if (*p == '\n' && ++n_lines > FLEX_LINES)
                                last = p;
                if (last)
                        *last = 0;
                excerpt = cut_with_ellipsis_more(lines, FLEX_EXCERPT_MAX, last != NULL);
                alt = excerpt ? alt_text(alt_head, excerpt) : NULL;
                if (!excerpt || !alt)
                        goto fail;
                json_t *bubble = flex_bubble(a, head, excerpt, date, hero, link);
                if (!bubble || array_add(messages, json_pack("{s:s, s:s, s:o}", "type", "flex", "altText", alt,
                                                             "contents", bubble)) < 0)
                        goto fail;
        } else {
                text = line_message_text(a, LINE_TEXT_MAX);
                if (!text || array_add(messages, json_pack("{s:s, s:s}", "type", "text", "text", text)) < 0)
                        goto fail;
        }
        for (size_t i = first_image; i < a->n_attachments; i++) {
                const char *url = picture_url(a, i, notes);
                if (!url)
                        continue;
                if (json_array_size(messages) >= LINE_MAX_MESSAGES) {
                        skipped++;
                        continue;
                }
                if (array_add(messages, image_message(url)) < 0)
                        goto fail;
        }
        if (skipped > 0)
                notes_add(notes, "%zu more picture(s) not sent: LINE takes at most %d messages at once; they are "
                          "on the article page", skipped, LINE_MAX_MESSAGES);
        goto done;
fail:
        json_decref(messages);
        messages = NULL;
done:
        free(head);
        free(body);
        free(link);
        free(lines);
        free(excerpt);
        free(alt);
        free(alt_head);
        free(text);
        return messages;
}

json_t *line_messages_correction(const prakat_announcement *target, const char *reason) {
        char *title = heading(target, false), *why = line_text_clean(reason), *link = article_link(target);
        char *short_why = NULL, *short_title = NULL, *text = NULL;
        json_t *messages = NULL;

        if (!title || !why)
                goto done;
        short_title = cut_with_ellipsis(title, 600);
        short_why = *why ? cut_with_ellipsis(why, 1500) : strdup("");
        if (!short_title || !short_why)
                goto done;
        if (asprintf(&text,
                     "ยกเลิกประกาศ: %s%s%s%s%s\n\nWithdrawn: %s%s%s%s%s",
                     short_title, *short_why ? "\nเหตุผล: " : "", short_why, link ? "\nรายละเอียด: " : "",
                     link ? link : "",
                     short_title, *short_why ? "\nReason: " : "", short_why, link ? "\nDetails: " : "",
                     link ? link : "") < 0) {
                text = NULL;
                goto done;
        }
        messages = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
done:
        free(title);
        free(why);
        free(link);
        free(short_why);
        free(short_title);
        free(text);
        return messages;
}
