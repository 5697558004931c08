/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>

/*
 * The text of a JSON value, laid out as jansson's json_dumps(o, JSON_INDENT(indent) |
 * JSON_PRESERVE_ORDER) lays it out (indent 0: compact), byte for byte, at a fraction of the
 * cost: the state files are written several times per announcement, and jansson's dumper
 * checks every character of every string again through a callback, which was the largest
 * single cost in the daemon's own code.  Strings in a json_t are valid UTF-8 already
 * (json_string() checks), so runs that need no escape are copied whole.
 *
 * Returns a NUL-terminated string to free(); never NULL (allocation failure aborts, as xmalloc()).
 */
char *json_text_format(const json_t *o, unsigned indent);
