/* SPDX-License-Identifier: MIT */
/*
 * inifile: reading an INI file with libinih so that every error names FILE:LINE — shared by the
 * daemon's config (config.c) and the tower agent's (tower/tower-config.c).
 *
 * inih is handed the file one line at a time by our own reader, so `line` is always the line of the
 * key being handled; lines longer than Debian's inih can take (INI_MAX_LINE 200) are refused rather
 * than cut silently.
 */
#pragma once

#include <ini.h>

#include "util.h"

#define INI_FILE_MAX_LINE 196

typedef struct IniFile {
        const char *path;
        unsigned line; /* the line inih is handling */
        char *error;   /* the first error, "FILE:LINE: ..." */
        /* Called with each line before inih sees it (e.g. to remember where sections start). */
        void (*on_line)(struct IniFile *f, const char *line);
        /* private */
        const char *text;
        size_t pos, size;
} IniFile;

/* Records the first error ("FILE:LINE: message", or "FILE: message" for line 0); returns false. */
bool ini_fail(IniFile *f, unsigned line, const char *format, ...) _printf_(3, 4);

/*
 * Reads `path` (UTF-8 text, at most max_size bytes) and runs inih over it with `handler`.  A line
 * that is neither "key = value" nor a section is an error saying it is not "key = value" nor
 * `section_hint`.  Returns 0, or a negative errno with f->error set (the caller frees it).
 */
int ini_file_parse(IniFile *f, const char *path, size_t max_size, const char *section_hint, ini_handler handler,
                   void *userdata);

/* A path from the file: absolute as it is, relative to the folder of the file otherwise. */
char *ini_resolve_path(const char *config_path, const char *value);
