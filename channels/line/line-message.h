/* SPDX-License-Identifier: MIT */
/*
 * line-message.h: the message objects a LINE send carries (at most LINE_MAX_MESSAGES).
 *
 *  - style flex (default): one Flex bubble (the first JPEG/PNG picture as hero, the title, the
 *    first lines of the text, a button "อ่านต่อ / Read more" that opens the article page) with
 *    an altText of the title and the start of the text; then the other pictures as image messages;
 *  - style text: the title and the text within LINE_TEXT_MAX UTF-16 units (a longer text is cut at
 *    a sentence boundary) ending with the article link; then the pictures as image messages;
 *  - a correction for a withdrawn announcement: one short text message, Thai then English.
 *
 * Pictures are the announcement's JPEG and PNG attachments at the website's https URLs; one
 * without such a URL, too big, or over the message limit is skipped and said so in the notes.
 */
#ifndef PRAKAT_LINE_MESSAGE_H
#define PRAKAT_LINE_MESSAGE_H

#include <jansson.h>
#include <stdbool.h>

#include "prakat-channel.h"

#define LINE_MAX_MESSAGES 5
#define LINE_TEXT_MAX 5000         /* UTF-16 units of a text message */
#define LINE_ALT_TEXT_MAX 1500     /* UTF-16 units of a Flex altText */
#define LINE_ALT_TEXT_WANTED 400   /* what a notification shows usefully */
#define LINE_IMAGE_MAX (10ULL * 1024 * 1024)
#define LINE_PREVIEW_MAX (1024ULL * 1024)
#define LINE_URL_MAX 2000

typedef enum LineStyle {
        LINE_STYLE_FLEX,
        LINE_STYLE_TEXT,
} LineStyle;

/* Remarks for the log and the job's note: pictures skipped and why. */
typedef struct LineNotes {
        char text[768];
} LineNotes;

/*
 * The "messages" array for announcement `a`.  `date` is the publication date as the office writes
 * it (may be NULL).  Returns a new reference, or NULL when out of memory.
 */
json_t *line_messages_announcement(const prakat_announcement *a, LineStyle style, const char *date,
                                   LineNotes *notes);

/* The "messages" array of the correction for `target` (reason may be NULL). */
json_t *line_messages_correction(const prakat_announcement *target, const char *reason);

/* The text of a text-style message (exposed for tests); NULL when out of memory. */
char *line_message_text(const prakat_announcement *a, size_t max_units);

#endif
