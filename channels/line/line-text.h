/* SPDX-License-Identifier: MIT */
/*
 * line-text.h: text as LINE counts it.
 *
 * LINE limits text in UTF-16 code units: a Thai letter or mark is one unit, an emoji outside
 * the Basic Multilingual Plane is two.  These helpers measure UTF-8 text in those units and cut
 * it where a reader would expect a cut: at a paragraph, a line, the end of a sentence or (Thai
 * separates sentences with a space) a space, and never between a Thai consonant and the vowel
 * or tone marks written above or below it.
 *
 * Every function takes text that line_text_clean() has made well-formed.
 */
#ifndef PRAKAT_LINE_TEXT_H
#define PRAKAT_LINE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A copy of `text` that is valid UTF-8 without control characters other than LF and TAB (CR
 * dropped; an invalid byte becomes U+FFFD), with trailing blanks removed.  NULL when out of
 * memory; NULL in gives "".
 */
char *line_text_clean(const char *text);

/* Length of `text` in UTF-16 code units. */
size_t line_text_units(const char *text);

/* Length in bytes of the longest prefix of `text` (on a character boundary) of at most `max_units`. */
size_t line_text_prefix_bytes(const char *text, size_t max_units);

/*
 * A copy of `text` cut to at most `max_units` at the best boundary (see above), trailing blanks
 * removed.  *ret_cut tells whether anything was dropped.  NULL when out of memory.
 */
char *line_text_cut(const char *text, size_t max_units, bool *ret_cut);

/* A copy of the first `max_lines` non-empty lines of `text`, joined with LF. NULL when out of memory. */
char *line_text_first_lines(const char *text, size_t max_lines);

#endif
