/* SPDX-License-Identifier: MIT */
#include "json-text.h"

#include "util.h"

/* One byte per escape class: 0 copied as it is, else the letter after the backslash ('u': \u00XX). */
static const char escape_of[256] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['"'] = '"', ['\\'] = '\\',
        [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u', [0x06] = 'u',
        [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u',
        [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u', [0x19] = 'u',
        [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

static void put_string(StrBuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        size_t from = 0;

        strbuf_appendn(b, "\"", 1);
        for (size_t i = 0; i < n; i++) {
                char e = escape_of[(unsigned char) s[i]];
                if (!e)
                        continue;
                strbuf_appendn(b, s + from, i - from);
                if (e == 'u') {
                        char u[6] = { '\\', 'u', '0', '0', hex[(unsigned char) s[i] >> 4], hex[s[i] & 0xf] };
                        strbuf_appendn(b, u, sizeof u);
                } else {
                        char two[2] = { '\\', e };
                        strbuf_appendn(b, two, sizeof two);
                }
                from = i + 1;
        }
        strbuf_appendn(b, s + from, n - from);
        strbuf_appendn(b, "\"", 1);
}

/* A newline and the indent of `depth` (jansson's dump_indent()); compact: nothing, or one blank. */
static void put_indent(StrBuf *b, unsigned indent, unsigned depth) {
        static const char blanks[] = "                                ";
        size_t n = (size_t) indent * depth;

        if (indent == 0)
                return;
        strbuf_appendn(b, "\n", 1);
        for (; n > 0; n -= n < sizeof blanks - 1 ? n : sizeof blanks - 1)
                strbuf_appendn(b, blanks, n < sizeof blanks - 1 ? n : sizeof blanks - 1);
}

/* As jansson writes a real: %.17g, a ".0" when it would read back as an integer, no '+' or leading
 * zeros in the exponent. */
static void put_real(StrBuf *b, double v) {
        char s[64], *e;
        int n = snprintf(s, sizeof s, "%.17g", v);

        if (n < 0 || (size_t) n >= sizeof s - 3)
                abort();
        if (!strpbrk(s, ".eE")) {
                memcpy(s + n, ".0", 3);
                n += 2;
        }
        e = strchr(s, 'e');
        if (e) {
                char *d = e + 1, *from = e + 1;
                if (*from == '+')
                        from++;
                else if (*from == '-')
                        d = ++from;
                while (*from == '0' && from[1])
                        from++;
                memmove(d, from, strlen(from) + 1);
                n = (int) strlen(s);
        }
        strbuf_appendn(b, s, (size_t) n);
}

/* After a member of an object or array at `depth`: a comma and the next member's indent, or the indent
 * of the closing bracket after the last one. */
static void put_after_member(StrBuf *b, unsigned indent, unsigned depth, bool more) {
        if (more)
                strbuf_appendn(b, ",", 1);
        put_indent(b, indent, more ? depth + 1 : depth);
}

static void put_value(StrBuf *b, const json_t *o, unsigned indent, unsigned depth) {
        char s[32];

        switch (json_typeof(o)) {
        case JSON_OBJECT: {
                const char *key;
                void *iter = json_object_iter((json_t *) o);

                if (!iter) {
                        strbuf_appendn(b, "{}", 2);
                        return;
                }
                strbuf_appendn(b, "{", 1);
                put_indent(b, indent, depth + 1);
                while (iter) {
                        key = json_object_iter_key(iter);
                        put_string(b, key, strlen(key));
                        strbuf_appendn(b, indent ? ": " : ":", indent ? 2 : 1);
                        put_value(b, json_object_iter_value(iter), indent, depth + 1);
                        iter = json_object_iter_next((json_t *) o, iter);
                        put_after_member(b, indent, depth, iter != NULL);
                }
                strbuf_appendn(b, "}", 1);
                return;
        }
        case JSON_ARRAY: {
                size_t n = json_array_size(o);

                if (n == 0) {
                        strbuf_appendn(b, "[]", 2);
                        return;
                }
                strbuf_appendn(b, "[", 1);
                put_indent(b, indent, depth + 1);
                for (size_t i = 0; i < n; i++) {
                        put_value(b, json_array_get(o, i), indent, depth + 1);
                        put_after_member(b, indent, depth, i + 1 < n);
                }
                strbuf_appendn(b, "]", 1);
                return;
        }
        case JSON_STRING:
                put_string(b, json_string_value(o), json_string_length(o));
                return;
        case JSON_INTEGER:
                strbuf_appendn(b, s, (size_t) snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, json_integer_value(o)));
                return;
        case JSON_REAL:
                put_real(b, json_real_value(o));
                return;
        case JSON_TRUE:
                strbuf_appendn(b, "true", 4);
                return;
        case JSON_FALSE:
                strbuf_appendn(b, "false", 5);
                return;
        case JSON_NULL:
                strbuf_appendn(b, "null", 4);
                return;
        }
}

char *json_text_format(const json_t *o, unsigned indent) {
        StrBuf b = {};

        put_value(&b, o, indent > 31 ? 31 : indent, 0);
        return strbuf_steal(&b);
}
