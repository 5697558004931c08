/* SPDX-License-Identifier: MIT */
#include "inifile.h"

#include <stdarg.h>

#include "textenc.h"

bool ini_fail(IniFile *f, unsigned line, const char *format, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;

        if (f->error)
                return false;
        va_start(ap, format);
        if (vasprintf(&message, format, ap) < 0)
                abort();
        va_end(ap);
        f->error = line ? xasprintf("%s:%u: %s", f->path, line, message) : xasprintf("%s: %s", f->path, message);
        return false;
}

static char *ini_file_reader(char *buffer, int size, void *userdata) {
        IniFile *f = userdata;
        size_t start = f->pos, n;
        const char *nl;

        if (f->pos >= f->size)
                return NULL;
        nl = memchr(f->text + start, '\n', f->size - start);
        n = nl ? (size_t) (nl - (f->text + start)) : f->size - start;
        f->pos = start + n + (nl ? 1 : 0);
        f->line++;
        if (n > INI_FILE_MAX_LINE || n + 2 > (size_t) size) {
                ini_fail(f, f->line, "line is longer than %u bytes (Thai letters take 3 bytes each). "
                         "Shorten it, for example a long name.", INI_FILE_MAX_LINE);
                n = 0;
        }
        memcpy(buffer, f->text + start, n);
        buffer[n] = '\n';
        buffer[n + 1] = 0;
        if (f->on_line)
                f->on_line(f, buffer);
        return buffer;
}

int ini_file_parse(IniFile *f, const char *path, size_t max_size, const char *section_hint, ini_handler handler,
                   void *userdata) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        f->path = path;
        r = read_file(path, max_size, &text, &size);
        if (r < 0) {
                f->error = xasprintf("%s: cannot read the config: %s. Check the path given with --config.", path,
                                     strerror(-r));
                return r;
        }
        if (!utf8_is_valid(text, size) || memchr(text, 0, size)) {
                f->error = xasprintf("%s: the file is not UTF-8 text. Save it as UTF-8 (in Notepad: Save as, "
                                     "Encoding UTF-8).", path);
                return -EINVAL;
        }
        f->text = text;
        f->size = size;
        f->pos = 0;
        f->line = 0;
        r = ini_parse_stream(ini_file_reader, f, handler, userdata);
        if (r != 0)
                ini_fail(f, r > 0 ? (unsigned) r : 0, "this line is not 'key = value' nor %s. Fix or remove it "
                         "(comments start with ; or #).", section_hint);
        f->text = NULL;
        return f->error ? -EINVAL : 0;
}

char *ini_resolve_path(const char *config_path, const char *value) {
        _cleanup_free_ char *dir = NULL;
        char *slash;

        if (value[0] == '/')
                return xstrdup(value);
        dir = xstrdup(config_path);
        slash = strrchr(dir, '/');
        if (!slash)
                return xstrdup(value);
        *slash = 0;
        return path_join(*dir ? dir : "/", value);
}
