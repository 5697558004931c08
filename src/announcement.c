/* SPDX-License-Identifier: MIT */
#include "announcement.h"

#include <ctype.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "textenc.h"
#include "thaidate.h"

/* ---- fields: the common shape of the three forms ---- */

typedef enum FieldKey {
        FIELD_TITLE,
        FIELD_BODY,
        FIELD_CHANNELS,
        FIELD_VILLAGES,
        FIELD_PUBLISH_AT,
        FIELD_BROADCAST_AT,
        FIELD_REPEAT,
        FIELD_EXPIRES,
        FIELD_PRIORITY,
        FIELD_CATEGORY,
        FIELD_ATTACHMENTS,
        FIELD_AUDIO,
        FIELD_AUTHOR,
        FIELD_REPLACES,
        FIELD_CANCEL,
        FIELD_ID,
        _FIELD_MAX,
} FieldKey;

typedef struct FieldInfo {
        const char *header; /* as written in a .txt header */
        const char *json;   /* as written in .json */
        const char *aliases[3];
        bool list;
} FieldInfo;

static const FieldInfo field_info[_FIELD_MAX] = {
        [FIELD_TITLE] = { "Title", "title", { "หัวข้อ", "เรื่อง" } },
        [FIELD_BODY] = { "Body", "body", { "เนื้อหา" } },
        [FIELD_CHANNELS] = { "Channels", "channels", { "ช่องทาง" }, true },
        [FIELD_VILLAGES] = { "Villages", "villages", { "หมู่บ้าน", "หมู่" }, true },
        [FIELD_PUBLISH_AT] = { "Publish-At", "publish_at", { "เผยแพร่" } },
        [FIELD_BROADCAST_AT] = { "Broadcast-At", "broadcast_at", { "ออกอากาศ" }, true },
        [FIELD_REPEAT] = { "Repeat", "repeat", { "ซ้ำ" } },
        [FIELD_EXPIRES] = { "Expires", "expires", { "หมดอายุ" } },
        [FIELD_PRIORITY] = { "Priority", "priority", { "ความสำคัญ" } },
        [FIELD_CATEGORY] = { "Category", "category", { "หมวด", "หมวดหมู่" } },
        [FIELD_ATTACHMENTS] = { "Attachments", "attachments", { "ไฟล์แนบ" }, true },
        [FIELD_AUDIO] = { "Audio", "audio", { "เสียง" } },
        [FIELD_AUTHOR] = { "Author", "author", { "ผู้ประกาศ" } },
        [FIELD_REPLACES] = { "Replaces", "replaces", { "แทนที่" } },
        [FIELD_CANCEL] = { "Cancel", "cancel", { "ยกเลิก" } },
        [FIELD_ID] = { "ID", "id", { "รหัส" } },
};

typedef struct Field {
        bool set;
        unsigned line;
        char **values; /* one, or several for list fields */
        size_t n_values;
} Field;

typedef struct Fields {
        Field f[_FIELD_MAX];
        const char *bundle_dir;
        const char *encoding;
        bool json; /* messages name the JSON keys */
} Fields;

static void fields_done(Fields *fs) {
        for (size_t k = 0; k < _FIELD_MAX; k++) {
                for (size_t i = 0; i < fs->f[k].n_values; i++)
                        free(fs->f[k].values[i]);
                free(fs->f[k].values);
        }
}

static void field_add_value(Field *f, const char *value) {
        f->values = xrealloc(f->values, (f->n_values + 1) * sizeof(char *));
        f->values[f->n_values++] = xstrdup(value);
}

static const char *field_value(const Fields *fs, FieldKey k) {
        return fs->f[k].set && fs->f[k].n_values > 0 ? fs->f[k].values[0] : NULL;
}

/* Lower-case ASCII, drop '-', '_' and blanks: "Publish-At", "publish_at", "PUBLISH AT" are one key. */
static void key_normalize(const char *in, char *out, size_t size) {
        size_t n = 0;

        for (; *in && n + 1 < size; in++) {
                if (*in == '-' || *in == '_' || *in == ' ' || *in == '\t')
                        continue;
                out[n++] = (char) tolower((unsigned char) *in);
        }
        out[n] = 0;
}

static int field_lookup(const char *key) {
        char norm[128], cand[128];

        key_normalize(key, norm, sizeof norm);
        for (int k = 0; k < _FIELD_MAX; k++) {
                key_normalize(field_info[k].header, cand, sizeof cand);
                if (streq(norm, cand))
                        return k;
                for (size_t a = 0; a < ELEMENTSOF(field_info[k].aliases) && field_info[k].aliases[a]; a++) {
                        key_normalize(field_info[k].aliases[a], cand, sizeof cand);
                        if (streq(norm, cand))
                                return k;
                }
        }
        return -1;
}

/* ---- errors ---- */

static int fail(ParseError *e, unsigned line, const char *th, const char *en, ...) _printf_(4, 5);

/* Both messages take the same arguments in the same order, so each rule is written once. */
static int fail(ParseError *e, unsigned line, const char *th, const char *en, ...) {
        va_list ap;

        parse_error_done(e);
        e->line = line;
        va_start(ap, en);
        if (vasprintf(&e->en, en, ap) < 0)
                abort();
        va_end(ap);
        va_start(ap, en);
        /* The Thai format has the same conversions; GCC cannot check a non-literal, so we say so. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        if (vasprintf(&e->th, th, ap) < 0)
                abort();
#pragma GCC diagnostic pop
        va_end(ap);
        return -EINVAL;
}

void announcement_target_missing(const Announcement *a, ParseError *e) {
        const char *target = a->cancel ? a->cancel : a->replaces;

        parse_error_done(e);
        e->th = xasprintf("ไม่พบประกาศรหัส %s ที่จะ%s ตรวจรหัสจากใบรับรองการเผยแพร่ (receipt.txt ในโฟลเดอร์ published)",
                          target, a->cancel ? "ยกเลิก" : "แทนที่");
        e->en = xasprintf("There is no announcement %s to %s. Check the id on its receipt (receipt.txt in the "
                          "published folder).", target, a->cancel ? "withdraw" : "replace");
}

void parse_error_done(ParseError *e) {
        free(e->th);
        free(e->en);
        e->th = e->en = NULL;
        e->line = 0;
}

char *parse_error_format(const ParseError *e, const char *name, usec_t now) {
        char when[128] = "", when_utc[64] = "";
        StrBuf b = {};

        thaidate_format(now, THAIDATE_LONG, when, sizeof when);
        thaidate_format_iso(now, when_utc, sizeof when_utc);
        strbuf_printf(&b, "ประกาศนี้ยังไม่ได้เผยแพร่ (prakat ตรวจพบปัญหา)\n\nไฟล์: %s\n", name);
        if (e->line)
                strbuf_printf(&b, "บรรทัดที่ %u\n", e->line);
        strbuf_printf(&b, "ปัญหา: %s\n\nแก้ไขไฟล์แล้ววางลงในโฟลเดอร์ incoming อีกครั้ง "
                      "(ไฟล์เดิมเก็บไว้ในโฟลเดอร์ rejected นี้)\nตรวจเมื่อ %s\n\n", e->th ? e->th : "", when);
        strbuf_printf(&b, "----------------------------------------\n\n"
                      "This announcement was NOT published (prakat found a problem).\n\nFile: %s\n", name);
        if (e->line)
                strbuf_printf(&b, "Line: %u\n", e->line);
        strbuf_printf(&b, "Problem: %s\n\nFix the file and drop it into the incoming folder again "
                      "(the original is kept here in rejected).\nChecked at %s\n", e->en ? e->en : "", when_utc);
        return strbuf_steal(&b);
}

/* ---- small checks ---- */

bool announcement_id_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > ANNOUNCEMENT_ID_MAX || id[0] == '.' || id[0] == '-')
                return false;
        for (const char *s = id; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '-' && *s != '_' && *s != '.')
                        return false;
        return true;
}

const char *priority_to_string(prakat_priority p) {
        static const char *const names[] = { "normal", "urgent", "emergency" };
        return (unsigned) p < ELEMENTSOF(names) ? names[p] : "normal";
}

static int priority_from_string(const char *s) {
        static const struct {
                const char *name;
                prakat_priority p;
        } table[] = {
                { "normal", PRAKAT_PRIORITY_NORMAL },       { "ปกติ", PRAKAT_PRIORITY_NORMAL },
                { "urgent", PRAKAT_PRIORITY_URGENT },       { "ด่วน", PRAKAT_PRIORITY_URGENT },
                { "emergency", PRAKAT_PRIORITY_EMERGENCY }, { "ฉุกเฉิน", PRAKAT_PRIORITY_EMERGENCY },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcasecmp(s, table[i].name) == 0)
                        return (int) table[i].p;
        return -EINVAL;
}

/* A file inside the bundle: no absolute path, no "..", no symlink on the way, a regular file. */
static int bundle_check_file(const Fields *fs, const Field *f, const char *rel, FieldKey key, ParseError *e) {
        const char *hdr = field_info[key].header;
        struct stat st;

        if (!fs->bundle_dir)
                return fail(e, f->line,
                            "%s: \"%s\" ใช้ได้เฉพาะเมื่อส่งเป็นโฟลเดอร์ ให้สร้างโฟลเดอร์หนึ่งโฟลเดอร์ "
                            "ใส่ไฟล์ announcement.txt และไฟล์ที่แนบไว้ด้วยกัน แล้ววางโฟลเดอร์นั้นลงใน incoming",
                            "%s: \"%s\" works only in a folder. Make one folder holding announcement.txt and "
                            "the attached files, and drop that folder into incoming.", hdr, rel);
        if (rel[0] == '/' || strstr(rel, "..") || strchr(rel, '\\'))
                return fail(e, f->line,
                            "%s: \"%s\" ชี้ออกไปนอกโฟลเดอร์ของประกาศ ให้เขียนเฉพาะชื่อไฟล์ที่อยู่ในโฟลเดอร์เดียวกัน",
                            "%s: \"%s\" points outside the announcement's folder. Write only the name of a "
                            "file inside the same folder.", hdr, rel);
        _cleanup_free_ char *p = path_join(fs->bundle_dir, rel);
        if (lstat(p, &st) < 0)
                return fail(e, f->line, "%s: ไม่พบไฟล์ \"%s\" ในโฟลเดอร์ ตรวจชื่อไฟล์ (รวมนามสกุล เช่น .jpg) ให้ตรงกัน",
                            "%s: there is no file \"%s\" in the folder. Check that the name, including its "
                            "extension such as .jpg, matches.", hdr, rel);
        if (!S_ISREG(st.st_mode))
                return fail(e, f->line, "%s: \"%s\" ไม่ใช่ไฟล์ธรรมดา (อาจเป็นทางลัดหรือโฟลเดอร์) ให้คัดลอกไฟล์จริงมาใส่แทน",
                            "%s: \"%s\" is not a plain file (a shortcut/symlink or a folder). Copy the real "
                            "file in instead.", hdr, rel);
        return 0;
}

static int parse_date_field(const Field *f, FieldKey key, usec_t *ret, ParseError *e) {
        _cleanup_free_ char *v = xstrdup(f->values[0]);
        int r;

        thai_digits_to_ascii(v);
        r = thaidate_parse(v, ret, NULL);
        if (r == -ERANGE)
                return fail(e, f->line, "%s: วันที่หรือเวลา \"%s\" ไม่มีอยู่จริง (เช่น 31 ก.พ. หรือ 25:00) "
                            "ตรวจวัน เดือน ปี และเวลาอีกครั้ง",
                            "%s: \"%s\" is not a real date or time (like 31 February or 25:00). Check the day, "
                            "month, year and time.", field_info[key].header, f->values[0]);
        if (r < 0)
                return fail(e, f->line, "%s: อ่านวันที่ \"%s\" ไม่ได้ ให้เขียนแบบ 26/11/2569 07:00 หรือ "
                            "26 พ.ย. 2569 07.00 น. หรือ 2026-11-26 07:00",
                            "%s: cannot read the date \"%s\". Write it like 26/11/2569 07:00, "
                            "26 พ.ย. 2569 07.00 น. or 2026-11-26 07:00.", field_info[key].header, f->values[0]);
        return 0;
}

static int parse_villages(const Config *c, const Field *f, Announcement *a, ParseError *e) {
        bool seen[VILLAGE_MAX + 1] = {};

        for (size_t i = 0; i < f->n_values; i++) {
                _cleanup_free_ char *v = xstrdup(f->values[i]);
                char *s = strstrip(v), *end;
                unsigned long lo, hi;

                thai_digits_to_ascii(s);
                if (strcasecmp(s, "all") == 0 || streq(s, "ทั้งหมด") || streq(s, "ทุกหมู่")) {
                        a->all_villages = true;
                        continue;
                }
                if (strncmp(s, "หมู่", strlen("หมู่")) == 0) /* "หมู่ 3" */
                        s = strstrip(s + strlen("หมู่"));
                if (strncmp(s, "ที่", strlen("ที่")) == 0)
                        s = strstrip(s + strlen("ที่"));
                errno = 0;
                lo = strtoul(s, &end, 10);
                hi = lo;
                while (*end == ' ')
                        end++;
                if (end != s && *end == '-') {
                        char *s2 = end + 1;
                        while (*s2 == ' ')
                                s2++;
                        hi = strtoul(s2, &end, 10);
                        if (end == s2)
                                end = s2 - 1; /* force the error below */
                }
                if (end == s || *end != 0 || errno != 0 || lo > hi || lo < 1 || hi > VILLAGE_MAX)
                        return fail(e, f->line, "หมู่บ้าน: อ่าน \"%s\" ไม่ได้ ให้เขียนเลขหมู่คั่นด้วยจุลภาค เช่น "
                                    "1, 3, 5 หรือเป็นช่วง เช่น 1-4 หรือเขียนว่า ทั้งหมด",
                                    "Villages: cannot read \"%s\". Write village numbers separated by commas, "
                                    "like 1, 3, 5, or a range like 1-4, or all.", f->values[i]);
                for (unsigned long n = lo; n <= hi; n++) {
                        if (!c->village_names[n])
                                return fail(e, f->line, "หมู่บ้าน: ไม่มีหมู่ที่ %lu ในการตั้งค่าของสำนักงาน "
                                            "(มี %u หมู่) ตรวจเลขหมู่อีกครั้ง หรือให้ผู้ดูแลระบบเพิ่มใน [villages]",
                                            "Villages: village %lu is not in the office's config (%u villages "
                                            "are). Check the number, or ask the administrator to add it under "
                                            "[villages].", n, c->n_villages);
                        seen[n] = true;
                }
        }
        if (a->all_villages)
                return 0;
        for (unsigned n = 1; n <= VILLAGE_MAX; n++)
                if (seen[n]) {
                        a->villages = xrealloc(a->villages, (a->n_villages + 1) * sizeof(unsigned));
                        a->villages[a->n_villages++] = n;
                }
        return 0;
}

static int parse_broadcast_at(const Field *f, Announcement *a, ParseError *e) {
        static const struct {
                const char *name, *slot;
        } slots[] = {
                { "morning", "morning" }, { "เช้า", "morning" }, { "evening", "evening" }, { "เย็น", "evening" },
        };

        for (size_t i = 0; i < f->n_values; i++) {
                _cleanup_free_ char *v = xstrdup(f->values[i]);
                const char *s = strstrip(v), *slot = NULL;
                char iso[64];
                usec_t t;

                for (size_t k = 0; k < ELEMENTSOF(slots) && !slot; k++)
                        if (strcasecmp(s, slots[k].name) == 0)
                                slot = slots[k].slot;
                if (!slot) {
                        Field one = { .set = true, .line = f->line, .values = (char *[]) { (char *) s },
                                      .n_values = 1 };
                        int r = parse_date_field(&one, FIELD_BROADCAST_AT, &t, e);
                        if (r < 0)
                                return r;
                        thaidate_format_utc(t, iso, sizeof iso);
                        slot = iso;
                }
                a->broadcast_at = xrealloc(a->broadcast_at, (a->n_broadcast_at + 1) * sizeof(char *));
                a->broadcast_at[a->n_broadcast_at++] = xstrdup(slot);
        }
        return 0;
}

static void strv_push(char ***v, size_t *n, const char *s) {
        *v = xrealloc(*v, (*n + 1) * sizeof(char *));
        (*v)[(*n)++] = xstrdup(s);
}

static int parse_channels(const Config *c, const Field *f, Announcement *a, ParseError *e) {
        if (!f->set) {
                for (size_t i = 0; i < c->n_channels; i++)
                        if (c->channels[i].enabled)
                                strv_push(&a->channels, &a->n_channels, c->channels[i].name);
                        else
                                strv_push(&a->skipped_channels, &a->n_skipped_channels, c->channels[i].name);
                if (a->n_channels == 0)
                        return fail(e, 0, "ยังไม่มีช่องทางเผยแพร่ใดเปิดใช้ในการตั้งค่า ให้ผู้ดูแลระบบเปิดอย่างน้อยหนึ่งช่องทาง",
                                    "No channel is enabled in the config. Ask the administrator to enable at "
                                    "least one.");
                return 0;
        }
        /* Keep config order, so delivery order does not depend on how staff listed them. */
        bool chosen[c->n_channels + 1];
        memset(chosen, 0, sizeof chosen);
        for (size_t i = 0; i < f->n_values; i++) {
                _cleanup_free_ char *v = xstrdup(f->values[i]), *list = NULL;
                char *s = strstrip(v);
                bool found = false;

                for (char *p = s; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
                for (size_t k = 0; k < c->n_channels; k++)
                        if (streq(c->channels[k].name, s)) {
                                chosen[k] = found = true;
                                break;
                        }
                if (!found) {
                        list = config_channel_list(c);
                        return fail(e, f->line, "ช่องทาง: ไม่มีช่องทางชื่อ \"%s\" ช่องทางที่มีคือ %s "
                                    "ตรวจการสะกดอีกครั้ง",
                                    "Channels: there is no channel named \"%s\". The channels are: %s. Check "
                                    "the spelling.", f->values[i], list);
                }
        }
        for (size_t k = 0; k < c->n_channels; k++) {
                if (!chosen[k])
                        continue;
                if (c->channels[k].enabled)
                        strv_push(&a->channels, &a->n_channels, c->channels[k].name);
                else
                        strv_push(&a->skipped_channels, &a->n_skipped_channels, c->channels[k].name);
        }
        if (a->n_channels == 0)
                return fail(e, f->line, "ช่องทาง: ทุกช่องทางที่ระบุถูกปิดใช้อยู่ในการตั้งค่า จึงไม่มีที่ให้เผยแพร่ "
                            "เลือกช่องทางอื่นหรือให้ผู้ดูแลระบบเปิดช่องทางนั้น",
                            "Channels: every channel named is disabled in the config, so nothing would be "
                            "published. Choose other channels or ask the administrator to enable them.");
        return 0;
}

static int parse_id_field(const Field *f, FieldKey key, char **ret, ParseError *e) {
        const char *v = f->values[0];

        if (!announcement_id_valid(v))
                return fail(e, f->line, "%s: \"%s\" ไม่ใช่รหัสประกาศที่ถูกต้อง รหัสใช้ได้เฉพาะตัวอักษรอังกฤษ ตัวเลข "
                            "- _ . ไม่เกิน %d ตัว เช่น 20261126-a1b2c3d4 (ดูได้จากใบรับรองการเผยแพร่)",
                            "%s: \"%s\" is not a valid announcement id. Ids use only English letters, digits, "
                            "'-', '_' and '.', at most %d, like 20261126-a1b2c3d4 (see the receipt).",
                            field_info[key].header, v, ANNOUNCEMENT_ID_MAX);
        *ret = xstrdup(v);
        return 0;
}

/*
 * A key written with nothing after it.  Where leaving it out would do something else than the writer
 * meant (an empty Villages: publishing to every village, Publish-At: at once, Cancel: not cancelling),
 * it is refused; the free-form ones (and Title, which has its own message) may stay empty.
 */
static int check_empty_fields(const Fields *fs, ParseError *e) {
        for (FieldKey k = 0; k < _FIELD_MAX; k++) {
                const Field *f = &fs->f[k];
                bool empty = true;

                if (!f->set || k == FIELD_TITLE || k == FIELD_BODY || k == FIELD_CATEGORY || k == FIELD_AUTHOR ||
                    k == FIELD_ATTACHMENTS || k == FIELD_BROADCAST_AT)
                        continue;
                for (size_t i = 0; i < f->n_values && empty; i++)
                        empty = f->values[i][strspn(f->values[i], " \t")] == 0;
                if (empty)
                        return fail(e, f->line, "%s: ไม่ได้ใส่ค่า ให้เขียนค่าต่อท้าย หรือลบออกทั้งบรรทัด",
                                    "%s: no value is given. Write one, or remove it.",
                                    fs->json ? field_info[k].json : field_info[k].header);
        }
        return 0;
}

/* Fills in an Announcement from the fields; every rule of DESIGN §3 lives here. */
static int announcement_build(const ParseContext *ctx, Fields *fs, Announcement *a, ParseError *e) {
        const Config *c = ctx->config;
        const char *v;
        int r;

        if ((r = check_empty_fields(fs, e)) < 0)
                return r;
        if (fs->f[FIELD_CANCEL].set && fs->f[FIELD_REPLACES].set)
                return fail(e, fs->f[FIELD_CANCEL].line, "ใส่ได้อย่างใดอย่างหนึ่งระหว่าง ยกเลิก (Cancel) กับ แทนที่ "
                            "(Replaces) ให้ลบบรรทัดหนึ่งออก",
                            "Cancel and Replaces cannot both be given. Remove one of the two lines.");
        if (fs->f[FIELD_CANCEL].set && (r = parse_id_field(&fs->f[FIELD_CANCEL], FIELD_CANCEL, &a->cancel, e)) < 0)
                return r;
        if (fs->f[FIELD_REPLACES].set &&
            (r = parse_id_field(&fs->f[FIELD_REPLACES], FIELD_REPLACES, &a->replaces, e)) < 0)
                return r;
        if (fs->f[FIELD_ID].set) {
                if ((r = parse_id_field(&fs->f[FIELD_ID], FIELD_ID, &a->id, e)) < 0)
                        return r;
                a->id_given = true;
        }

        v = field_value(fs, FIELD_TITLE);
        if (isempty(v) && a->cancel)
                a->title = xasprintf("ยกเลิกประกาศ %s", a->cancel);
        else if (isempty(v))
                return fail(e, 0, "ไม่พบหัวข้อประกาศ ให้เขียนหัวข้อในบรรทัดแรก หรือเพิ่มบรรทัด หัวข้อ: ...",
                            "The announcement has no title. Write the title on the first line, or add a line "
                            "Title: ...");
        else if (utf8_length(v) > ANNOUNCEMENT_TITLE_MAX)
                return fail(e, fs->f[FIELD_TITLE].line, "หัวข้อยาวเกิน %d ตัวอักษร ให้ย่อหัวข้อ แล้วใส่รายละเอียดในเนื้อหา",
                            "The title is longer than %d characters. Shorten it and put the details in the "
                            "text.", ANNOUNCEMENT_TITLE_MAX);
        else
                a->title = xstrdup(v);
        a->body = xstrdup(field_value(fs, FIELD_BODY) ? field_value(fs, FIELD_BODY) : "");
        if (strlen(a->body) > ANNOUNCEMENT_TEXT_MAX)
                return fail(e, fs->f[FIELD_BODY].line, "เนื้อหายาวเกิน 1 MB ให้แบ่งเป็นหลายประกาศ หรือแนบเป็นไฟล์ PDF",
                            "The text is longer than 1 MB. Split it, or attach it as a PDF.");

        if ((r = parse_channels(c, &fs->f[FIELD_CHANNELS], a, e)) < 0)
                return r;
        a->all_villages = true;
        if (fs->f[FIELD_VILLAGES].set) {
                a->all_villages = false;
                if ((r = parse_villages(c, &fs->f[FIELD_VILLAGES], a, e)) < 0)
                        return r;
        }

        a->received = ctx->now;
        a->publish_at = ctx->now;
        if (fs->f[FIELD_PUBLISH_AT].set) {
                if ((r = parse_date_field(&fs->f[FIELD_PUBLISH_AT], FIELD_PUBLISH_AT, &a->publish_at, e)) < 0)
                        return r;
                if (a->publish_at < ctx->now)
                        a->publish_at = ctx->now; /* a time already past means "now" */
        }
        if (fs->f[FIELD_EXPIRES].set) {
                if ((r = parse_date_field(&fs->f[FIELD_EXPIRES], FIELD_EXPIRES, &a->expires, e)) < 0)
                        return r;
                if (a->expires <= a->publish_at)
                        return fail(e, fs->f[FIELD_EXPIRES].line, "หมดอายุ: วันหมดอายุต้องอยู่หลังวันเผยแพร่ "
                                    "ตรวจวันที่อีกครั้ง (ปี พ.ศ. ต้องเป็น 4 หลัก เช่น 2569)",
                                    "Expires: the expiry must come after the publication time. Check the date "
                                    "(a Buddhist Era year has 4 digits, like 2569).");
        }
        if (fs->f[FIELD_BROADCAST_AT].set && (r = parse_broadcast_at(&fs->f[FIELD_BROADCAST_AT], a, e)) < 0)
                return r;

        a->repeat = 1;
        if ((v = field_value(fs, FIELD_REPEAT))) {
                _cleanup_free_ char *n = xstrdup(v);
                thai_digits_to_ascii(n);
                if (parse_unsigned(strstrip(n), 1, 10, &a->repeat) < 0)
                        return fail(e, fs->f[FIELD_REPEAT].line, "ซ้ำ: \"%s\" ต้องเป็นตัวเลข 1 ถึง 10 (จำนวนครั้งที่เปิดต่อรอบ)",
                                    "Repeat: \"%s\" must be a number from 1 to 10 (plays per slot).", v);
        }
        if ((v = field_value(fs, FIELD_PRIORITY))) {
                int p = priority_from_string(v);
                if (p < 0)
                        return fail(e, fs->f[FIELD_PRIORITY].line, "ความสำคัญ: \"%s\" ไม่รู้จัก ให้เขียน ปกติ ด่วน "
                                    "หรือ ฉุกเฉิน", "Priority: \"%s\" is unknown. Write normal, urgent or "
                                    "emergency.", v);
                a->priority = (prakat_priority) p;
        }
        v = field_value(fs, FIELD_CATEGORY);
        if (v && utf8_length(v) > 100)
                return fail(e, fs->f[FIELD_CATEGORY].line, "หมวด: ชื่อหมวดยาวเกิน 100 ตัวอักษร ให้ใช้ชื่อที่สั้นลง",
                            "Category: the name is longer than 100 characters. Use a shorter one.");
        a->category = xstrdup(!isempty(v) ? v : c->default_category);
        v = field_value(fs, FIELD_AUTHOR);
        if (v && utf8_length(v) > 200)
                return fail(e, fs->f[FIELD_AUTHOR].line, "ผู้ประกาศ: ยาวเกิน 200 ตัวอักษร",
                            "Author: longer than 200 characters.");
        a->author = isempty(v) ? NULL : xstrdup(v);

        const Field *att = &fs->f[FIELD_ATTACHMENTS];
        if (att->n_values > c->max_attachments)
                return fail(e, att->line, "ไฟล์แนบ: แนบได้ไม่เกิน %u ไฟล์ (มี %zu ไฟล์) ให้ลดจำนวนลง หรือรวมเป็น PDF",
                            "Attachments: at most %u files can be attached (there are %zu). Attach fewer, or "
                            "combine them into a PDF.", c->max_attachments, att->n_values);
        for (size_t i = 0; i < att->n_values; i++) {
                _cleanup_free_ char *name = xstrdup(att->values[i]);
                char *s = strstrip(name);
                if (isempty(s))
                        continue;
                if ((r = bundle_check_file(fs, att, s, FIELD_ATTACHMENTS, e)) < 0)
                        return r;
                strv_push(&a->attachments, &a->n_attachments, s);
        }
        if ((v = field_value(fs, FIELD_AUDIO))) {
                if ((r = bundle_check_file(fs, &fs->f[FIELD_AUDIO], v, FIELD_AUDIO, e)) < 0)
                        return r;
                if (!endswith_nocase(v, ".mp3") && !endswith_nocase(v, ".ogg") && !endswith_nocase(v, ".wav"))
                        return fail(e, fs->f[FIELD_AUDIO].line, "เสียง: \"%s\" ต้องเป็นไฟล์ .mp3 .ogg หรือ .wav",
                                    "Audio: \"%s\" must be an .mp3, .ogg or .wav file.", v);
                a->audio = xstrdup(v);
                /* The website publishes it like an attachment, so that the towers can fetch the recording
                 * (and the article offers it) even when staff did not list it under Attachments too. */
                bool listed = false;
                for (size_t i = 0; i < a->n_attachments; i++)
                        listed = listed || streq(a->attachments[i], v);
                if (!listed)
                        strv_push(&a->attachments, &a->n_attachments, v);
        }
        a->encoding = xstrdup(fs->encoding ? fs->encoding : "UTF-8");
        return 0;
}

/* The id staff do not choose: the local day, then a fingerprint of the content. */
static void announcement_derive_id(Announcement *a) {
        char day[16];

        if (a->id)
                return;
        thaidate_format_day(a->received, true, day, sizeof day);
        a->id = xasprintf("%s-%08x", day, (unsigned) (a->source_hash ^ (a->source_hash >> 32)));
}

static int announcement_finish(const ParseContext *ctx, Fields *fs, const char *name, uint64_t hash,
                               Announcement **ret, ParseError *e) {
        Announcement *a = xcalloc(1, sizeof(Announcement));
        int r;

        r = announcement_build(ctx, fs, a, e);
        if (r < 0) {
                announcement_free(a);
                return r;
        }
        a->source_name = xstrdup(name);
        a->source_hash = hash;
        announcement_derive_id(a);
        *ret = a;
        return 0;
}

/* ---- the .txt form ---- */

/* The line of byte `offset`: LF, CRLF and a lone CR each end one, read in the file's own code units. */
static unsigned line_of_offset(const void *data, size_t size, size_t offset, TextEncoding enc) {
        const uint8_t *p = data;
        size_t unit = enc == TEXT_ENCODING_UTF16LE || enc == TEXT_ENCODING_UTF16BE ? 2 : 1;
        unsigned line = 1;
        uint32_t previous = 0;

        for (size_t i = 0; i + unit <= offset && i + unit <= size; i += unit) {
                uint32_t c = unit == 1 ? p[i] : enc == TEXT_ENCODING_UTF16LE ? (uint32_t) (p[i] | p[i + 1] << 8)
                                                                              : (uint32_t) (p[i] << 8 | p[i + 1]);
                line += c == '\r' || (c == '\n' && previous != '\r');
                previous = c;
        }
        return line;
}

static int decode_text(const void *data, size_t size, char **ret_text, const char **ret_encoding, ParseError *e) {
        TextEncoding enc = TEXT_ENCODING_UTF8;
        size_t bad = 0, n;
        bool big_endian = false;
        int r;

        if (size == 0)
                return fail(e, 0, "ไฟล์ว่างเปล่า ให้เขียนหัวข้อและเนื้อหาประกาศแล้วบันทึกอีกครั้ง",
                            "The file is empty. Write the title and text, then save it again.");
        r = text_to_utf8(data, size, ret_text, &n, &enc, &bad);
        if (r == -EILSEQ && enc != TEXT_ENCODING_UTF16LE && enc != TEXT_ENCODING_UTF16BE &&
            text_looks_like_utf16(data, size, &big_endian))
                return fail(e, 0, "ไฟล์นี้ดูเหมือนบันทึกเป็น Unicode (UTF-16%s) แบบไม่มี BOM ซึ่งอ่านได้ไม่แน่นอน "
                            "ให้เปิดใน Notepad แล้วบันทึกแบบ UTF-8",
                            "The file looks like UTF-16%s (Unicode) saved without a byte-order mark, which "
                            "cannot be read reliably. Open it in Notepad and save it as UTF-8.",
                            big_endian ? "BE" : "LE");
        if (r == -EILSEQ)
                return fail(e, line_of_offset(data, size, bad, enc),
                            "อ่านตัวอักษรในไฟล์ไม่ได้ (ลองอ่านแบบ %s แล้วพบไบต์ที่ใช้ไม่ได้ที่ตำแหน่ง %zu) "
                            "ไฟล์อาจไม่ใช่ไฟล์ข้อความ ให้เปิดใน Notepad แล้วบันทึกแบบ UTF-8",
                            "The characters in the file cannot be read (read as %s, a bad byte at offset %zu). "
                            "It may not be a text file. Open it in Notepad and save it as UTF-8.",
                            text_encoding_name(enc), bad);
        if (r < 0)
                return r;
        /* Notepad saves an empty file as a bare BOM; blank lines are no announcement either. */
        if ((*ret_text)[strspn(*ret_text, " \t\n")] == 0) {
                free(*ret_text);
                *ret_text = NULL;
                return fail(e, 0, "ไฟล์ว่างเปล่า (มีแต่บรรทัดว่าง) ให้เขียนหัวข้อและเนื้อหาประกาศแล้วบันทึกอีกครั้ง",
                            "The file is empty (only blank lines). Write the title and text, then save it again.");
        }
        *ret_encoding = text_encoding_name(enc);
        return 0;
}

/* Splits "a, b, c" (also the Thai-keyboard comma) into trimmed values. */
static void field_add_list(Field *f, const char *value) {
        _cleanup_free_ char *copy = xstrdup(value);
        char *save = NULL;

        for (char *p = copy; *p; p++)
                if (*p == ';')
                        *p = ',';
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *t = strstrip(tok);
                if (*t)
                        field_add_value(f, t);
        }
}

static int text_header_line(Fields *fs, char *line, unsigned lineno, bool *ret_is_header, ParseError *e) {
        char *colon = strchr(line, ':');
        int k;

        *ret_is_header = false;
        if (!colon)
                return 0;
        *colon = 0;
        k = field_lookup(strstrip(line));
        if (k < 0)
                return -ENOENT; /* the caller decides whether this is a typo or just text */
        *ret_is_header = true;
        const char *value = strstrip(colon + 1);
        Field *f = &fs->f[k];
        if (f->set)
                return fail(e, lineno, "\"%s\" เขียนซ้ำสองครั้ง (ครั้งแรกบรรทัดที่ %u) ให้เหลือบรรทัดเดียว",
                            "\"%s\" is given twice (first on line %u). Keep one line.", field_info[k].header,
                            f->line);
        f->set = true;
        f->line = lineno;
        if (field_info[k].list)
                field_add_list(f, value);
        else if (*value)
                field_add_value(f, value);
        return 0;
}

static const char *known_headers_text(void) {
        return "Title/หัวข้อ, Channels/ช่องทาง, Villages/หมู่บ้าน, Publish-At/เผยแพร่, Broadcast-At/ออกอากาศ, "
               "Repeat/ซ้ำ, Expires/หมดอายุ, Priority/ความสำคัญ, Category/หมวด, Attachments/ไฟล์แนบ, "
               "Audio/เสียง, Author/ผู้ประกาศ, Replaces/แทนที่, Cancel/ยกเลิก, ID/รหัส";
}

/* True when the first non-blank line at or after `s` is "Key: value" with a known key. */
static bool next_line_is_header(const char *s) {
        while (*s == '\n' || *s == ' ' || *s == '\t')
                s++;
        size_t len = strcspn(s, "\n"), key = strcspn(s, ":");
        if (key >= len || key > 64)
                return false;
        _cleanup_free_ char *k = xstrndup(s, key);
        return field_lookup(strstrip(k)) >= 0;
}

int announcement_parse_text(const ParseContext *ctx, const char *name, const void *data, size_t size,
                            const char *bundle_dir, Announcement **ret, ParseError *e) {
        _cleanup_free_ char *text = NULL, *b = NULL;
        Fields fs = { .bundle_dir = bundle_dir };
        char *p, *body_start, *body;
        unsigned lineno = 0, body_line = 1;
        bool in_header = true, any_header = false;
        int r;

        r = decode_text(data, size, &text, &fs.encoding, e);
        if (r < 0)
                return r;

        /* Header lines run until the first blank line; a first line that is not a known key means no header. */
        p = text;
        body_start = text;
        while (in_header && *p) {
                char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                char *next = nl ? nl + 1 : p + len;
                _cleanup_free_ char *line = xstrndup(p, len);
                bool is_header;

                lineno++;
                if (len > ANNOUNCEMENT_HEADER_LINE_MAX && !any_header)
                        break;
                if (*strstrip(line) == 0) {
                        if (any_header) {
                                body_start = next;
                                body_line = lineno + 1;
                                break;
                        }
                        p = next;
                        body_start = p;
                        body_line = lineno + 1;
                        continue;
                }
                if (len > ANNOUNCEMENT_HEADER_LINE_MAX) {
                        r = fail(e, lineno, "บรรทัดหัวยาวเกิน %d ไบต์ ให้ย่อให้สั้นลง",
                                 "The header line is longer than %d bytes. Shorten it.", ANNOUNCEMENT_HEADER_LINE_MAX);
                        goto finish;
                }
                r = text_header_line(&fs, line, lineno, &is_header, e);
                /* A misspelt key on the first line must not turn the whole header into text
                 * (and so publish to every channel and village): a known header below gives it away. */
                if (r == -ENOENT && (any_header || next_line_is_header(next))) {
                        _cleanup_free_ char *key = xstrndup(p, strcspn(p, ":"));
                        r = fail(e, lineno, "ไม่รู้จักหัวข้อ \"%s\" ตรวจการสะกด หัวที่ใช้ได้คือ %s "
                                 "ถ้าบรรทัดนี้เป็นเนื้อหา ให้เว้นบรรทัดว่างหนึ่งบรรทัดก่อนเนื้อหา",
                                 "Unknown header \"%s\". Check the spelling; the headers are: %s. If this line "
                                 "is part of the text, leave one blank line before the text.", strstrip(key),
                                 known_headers_text());
                        goto finish;
                }
                if (r < 0 && r != -ENOENT)
                        goto finish;
                if (!is_header) {
                        body_start = p;
                        body_line = lineno;
                        break;
                }
                any_header = true;
                p = next;
                body_start = p;
                body_line = lineno + 1;
        }

        /* The body; without a Title header its first non-empty line is the title. */
        body = body_start;
        while (*body == '\n') {
                body++;
                body_line++;
        }
        if (!fs.f[FIELD_TITLE].set && !fs.f[FIELD_CANCEL].set) {
                char *nl = strchr(body, '\n');
                _cleanup_free_ char *title = xstrndup(body, nl ? (size_t) (nl - body) : strlen(body));
                if (*strstrip(title)) {
                        fs.f[FIELD_TITLE].set = true;
                        fs.f[FIELD_TITLE].line = body_line;
                        field_add_value(&fs.f[FIELD_TITLE], strstrip(title));
                }
                body = nl ? nl + 1 : body + strlen(body);
                while (*body == '\n')
                        body++;
        }
        b = xstrdup(body);
        /* Trailing blank lines and spaces are noise from editors. */
        size_t n = strlen(b);
        while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' ' || b[n - 1] == '\t'))
                b[--n] = 0;
        fs.f[FIELD_BODY].set = true;
        fs.f[FIELD_BODY].line = body_line;
        field_add_value(&fs.f[FIELD_BODY], b);

        r = announcement_finish(ctx, &fs, name, hash_fnv1a(data, size, HASH_FNV1A_SEED), ret, e);
finish:
        fields_done(&fs);
        return r;
}

/* ---- the .json form ---- */

/* jansson allows 2048 levels; an announcement needs 2. Refuse deep nesting before parsing it. */
static bool json_depth_ok(const char *s, size_t size, unsigned max) {
        unsigned depth = 0;
        bool in_string = false;

        for (size_t i = 0; i < size; i++) {
                char ch = s[i];
                if (in_string) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_string = false;
                } else if (ch == '"')
                        in_string = true;
                else if (ch == '[' || ch == '{') {
                        if (++depth > max)
                                return false;
                } else if ((ch == ']' || ch == '}') && depth > 0)
                        depth--;
        }
        return true;
}

static int json_field(Fields *fs, FieldKey k, json_t *value, ParseError *e) {
        Field *f = &fs->f[k];
        const char *key = field_info[k].json;

        f->set = true;
        if (json_is_string(value)) {
                if (field_info[k].list)
                        field_add_list(f, json_string_value(value));
                else
                        field_add_value(f, json_string_value(value));
                return 0;
        }
        if (json_is_integer(value) && (k == FIELD_REPEAT || k == FIELD_VILLAGES)) {
                char buf[32];
                snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
                field_add_value(f, buf);
                return 0;
        }
        if (json_is_array(value) && field_info[k].list) {
                size_t i;
                json_t *item;
                json_array_foreach(value, i, item) {
                        char buf[32];
                        if (json_is_string(item))
                                field_add_value(f, json_string_value(item));
                        else if (json_is_integer(item) && k == FIELD_VILLAGES) {
                                snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(item));
                                field_add_value(f, buf);
                        } else
                                return fail(e, 0, "\"%s\": สมาชิกลำดับที่ %zu ต้องเป็น%s",
                                            "\"%s\": item %zu must be %s.", key, i + 1,
                                            k == FIELD_VILLAGES ? "a number or a string" : "a string");
                }
                return 0;
        }
        return fail(e, 0, "\"%s\" มีชนิดข้อมูลไม่ถูกต้อง ต้องเป็น%s",
                    "\"%s\" has the wrong type; it must be %s.", key,
                    field_info[k].list ? "an array (or a comma-separated string)" :
                    k == FIELD_REPEAT ? "a number" : "a string");
}

int announcement_parse_json(const ParseContext *ctx, const char *name, const void *data, size_t size,
                            const char *bundle_dir, Announcement **ret, ParseError *e) {
        _cleanup_free_ char *text = NULL;
        Fields fs = { .bundle_dir = bundle_dir, .json = true };
        json_error_t jerr;
        json_t *root, *value;
        const char *key;
        int r;

        r = decode_text(data, size, &text, &fs.encoding, e);
        if (r < 0)
                return r;
        if (!json_depth_ok(text, strlen(text), 8))
                return fail(e, 0, "JSON ซ้อนกันลึกเกินไป ประกาศต้องเป็นออบเจกต์ชั้นเดียว",
                            "The JSON is nested too deeply; an announcement is one flat object.");
        root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(e, (unsigned) (jerr.line > 0 ? jerr.line : 0),
                            "JSON ผิดรูปแบบ: %s (ตำแหน่งที่ %d) ตรวจเครื่องหมายจุลภาค วงเล็บ และอัญประกาศ",
                            "The JSON is malformed: %s (column %d). Check commas, brackets and quotes.",
                            jerr.text, jerr.column);
        if (!json_is_object(root)) {
                json_decref(root);
                return fail(e, 0, "ไฟล์ JSON ต้องเป็นออบเจกต์ { ... } ที่มี title และ body",
                            "The JSON file must be one object { ... } with title and body.");
        }
        r = 0;
        json_object_foreach(root, key, value) {
                int k = -1;
                for (int i = 0; i < _FIELD_MAX; i++)
                        if (streq(field_info[i].json, key))
                                k = i;
                if (k < 0) {
                        r = fail(e, 0, "ไม่รู้จักคีย์ \"%s\" ในไฟล์ JSON คีย์ที่ใช้ได้คือ title, body, channels, "
                                 "villages, publish_at, broadcast_at, repeat, expires, priority, category, "
                                 "attachments, audio, author, replaces, cancel, id",
                                 "Unknown key \"%s\" in the JSON. The keys are title, body, channels, villages, "
                                 "publish_at, broadcast_at, repeat, expires, priority, category, attachments, "
                                 "audio, author, replaces, cancel, id.", key);
                        break;
                }
                if (json_is_null(value))
                        continue;
                r = json_field(&fs, (FieldKey) k, value, e);
                if (r < 0)
                        break;
        }
        json_decref(root);
        if (r >= 0)
                r = announcement_finish(ctx, &fs, name, hash_fnv1a(data, size, HASH_FNV1A_SEED), ret, e);
        fields_done(&fs);
        return r;
}

/* ---- files and folders ---- */

static int load_file(const ParseContext *ctx, const char *path, const char *name, const char *bundle_dir,
                     Announcement **ret, ParseError *e) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_file(path, ctx->config->max_file_size, &data, &size);
        if (r == -EFBIG)
                return fail(e, 0, "ไฟล์ใหญ่เกินกำหนด (%" PRIu64 " ไบต์) ให้ลดขนาดไฟล์ เช่น ย่อรูปภาพ",
                            "The file is larger than the limit (%" PRIu64 " bytes). Make it smaller, for "
                            "example by resizing pictures.", ctx->config->max_file_size);
        if (r == -EBADFD || r == -ELOOP)
                return fail(e, 0, "\"%s\" ไม่ใช่ไฟล์ธรรมดา (อาจเป็นทางลัด ลิงก์ หรืออุปกรณ์) ให้คัดลอกไฟล์จริงมาวาง",
                            "\"%s\" is not a plain file (a shortcut, link or device). Copy the real file in.", name);
        if (r < 0)
                return fail(e, 0, "อ่านไฟล์ไม่ได้: %s", "The file cannot be read: %s.", strerror(-r));
        if (endswith_nocase(path, ".json"))
                r = announcement_parse_json(ctx, name, data, size, bundle_dir, ret, e);
        else
                r = announcement_parse_text(ctx, name, data, size, bundle_dir, ret, e);
        if (r >= 0 && !bundle_dir) {
                (*ret)->source_bytes = TAKE_PTR(data); /* the queue keeps these very bytes as the original */
                (*ret)->source_size = size;
        }
        return r;
}

static bool name_is_announcement_file(const char *n) {
        return strcasecmp(n, "announcement.txt") == 0 || strcasecmp(n, "announcement.json") == 0 ||
               strcasecmp(n, "announcement.md") == 0;
}

/* Walks a bundle: only regular files and folders, within the size limits, and one announcement file. */
static int bundle_scan(const ParseContext *ctx, const char *dir, const char *rel, unsigned depth,
                       char **found, uint64_t *total, uint64_t *hash, ParseError *e) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int r;

        if (!d)
                return fail(e, 0, "เปิดโฟลเดอร์ไม่ได้: %s", "The folder cannot be opened: %s.", strerror(errno));
        if (depth > 4)
                return fail(e, 0, "โฟลเดอร์ซ้อนกันลึกเกินไป ให้ใส่ไฟล์ทั้งหมดไว้ในโฟลเดอร์เดียว",
                            "Folders are nested too deeply. Put all files into the one folder.");
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL, *r2 = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                p = path_join(dir, de->d_name);
                r2 = *rel ? path_join(rel, de->d_name) : xstrdup(de->d_name);
                if (lstat(p, &st) < 0)
                        return fail(e, 0, "อ่าน \"%s\" ไม่ได้: %s", "\"%s\" cannot be read: %s.", r2, strerror(errno));
                if (S_ISDIR(st.st_mode)) {
                        r = bundle_scan(ctx, p, r2, depth + 1, found, total, hash, e);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        return fail(e, 0, "\"%s\" ในโฟลเดอร์ไม่ใช่ไฟล์ธรรมดา (อาจเป็นทางลัดหรือลิงก์) ให้แทนที่ด้วยไฟล์จริง",
                                    "\"%s\" in the folder is not a plain file (a shortcut or link). Replace it "
                                    "with the real file.", r2);
                if ((uint64_t) st.st_size > ctx->config->max_file_size)
                        return fail(e, 0, "\"%s\" ใหญ่เกินกำหนด (%" PRIu64 " ไบต์) ให้ลดขนาดไฟล์",
                                    "\"%s\" is larger than the limit (%" PRIu64 " bytes). Make it smaller.", r2,
                                    ctx->config->max_file_size);
                *total += (uint64_t) st.st_size;
                /* Name, size and time stand in for content: reading every picture just to hash it is waste. */
                *hash = hash_fnv1a(r2, strlen(r2), *hash);
                *hash = hash_fnv1a(&st.st_size, sizeof st.st_size, *hash);
                *hash = hash_fnv1a(&st.st_mtim, sizeof st.st_mtim, *hash);
                if (depth == 0 && name_is_announcement_file(de->d_name)) {
                        if (*found)
                                return fail(e, 0, "โฟลเดอร์มีไฟล์ประกาศมากกว่าหนึ่งไฟล์ (%s และ %s) ให้เหลือไฟล์เดียว",
                                            "The folder holds more than one announcement file (%s and %s). Keep "
                                            "one.", *found, de->d_name);
                        *found = xstrdup(de->d_name);
                }
        }
        return 0;
}

int announcement_load(const ParseContext *ctx, const char *path, const char *name, Announcement **ret,
                      ParseError *e) {
        _cleanup_free_ char *found = NULL, *file = NULL;
        uint64_t total = 0, hash = HASH_FNV1A_SEED;
        struct stat st;
        int r;

        if (lstat(path, &st) < 0)
                return fail(e, 0, "อ่าน \"%s\" ไม่ได้: %s", "\"%s\" cannot be read: %s.", name, strerror(errno));
        if (S_ISLNK(st.st_mode))
                return fail(e, 0, "\"%s\" เป็นทางลัด (symlink) ไม่ใช่ไฟล์จริง ให้คัดลอกไฟล์จริงมาวางใน incoming",
                            "\"%s\" is a shortcut (symlink), not a real file. Copy the real file into incoming.",
                            name);
        if (S_ISREG(st.st_mode)) {
                if (!endswith_nocase(name, ".txt") && !endswith_nocase(name, ".md") &&
                    !endswith_nocase(name, ".json"))
                        return fail(e, 0, "ไฟล์ \"%s\" ไม่ใช่ประกาศ ประกาศต้องเป็นไฟล์ .txt หรือ .json "
                                    "ถ้ามีรูปหรือไฟล์แนบ ให้ใส่ไว้ในโฟลเดอร์เดียวกับ announcement.txt",
                                    "\"%s\" is not an announcement: announcements are .txt or .json files. Put "
                                    "pictures and attachments in a folder together with announcement.txt.", name);
                return load_file(ctx, path, name, NULL, ret, e);
        }
        if (!S_ISDIR(st.st_mode))
                return fail(e, 0, "\"%s\" ไม่ใช่ไฟล์หรือโฟลเดอร์ธรรมดา จึงรับไม่ได้",
                            "\"%s\" is neither a plain file nor a folder, so it cannot be taken.", name);
        r = bundle_scan(ctx, path, "", 0, &found, &total, &hash, e);
        if (r < 0)
                return r;
        if (!found)
                return fail(e, 0, "ในโฟลเดอร์ \"%s\" ไม่มีไฟล์ announcement.txt (หรือ announcement.json) "
                            "ให้เพิ่มไฟล์นี้ที่มีหัวข้อและเนื้อหาประกาศ",
                            "The folder \"%s\" has no announcement.txt (or announcement.json). Add one with the "
                            "title and text.", name);
        if (total > 5 * ctx->config->max_file_size)
                return fail(e, 0, "ไฟล์ในโฟลเดอร์รวมกันใหญ่เกินกำหนด (%" PRIu64 " ไบต์) ให้ลดขนาดหรือจำนวนไฟล์",
                            "The files in the folder are larger than the limit together (%" PRIu64 " bytes). "
                            "Make them smaller or fewer.", 5 * ctx->config->max_file_size);
        file = path_join(path, found);
        r = load_file(ctx, file, name, path, ret, e);
        if (r >= 0) {
                /* The fingerprint of a bundle covers every file, not only the text. */
                (*ret)->source_hash ^= hash;
                if (!(*ret)->id_given) {
                        free((*ret)->id);
                        (*ret)->id = NULL;
                        announcement_derive_id(*ret);
                }
        }
        return r;
}

/* ---- lifetime and the durable form ---- */

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void announcement_free(Announcement *a) {
        if (!a)
                return;
        free(a->id);
        free(a->title);
        free(a->body);
        free(a->category);
        free(a->author);
        free(a->villages);
        strv_free(a->broadcast_at, a->n_broadcast_at);
        strv_free(a->channels, a->n_channels);
        strv_free(a->skipped_channels, a->n_skipped_channels);
        strv_free(a->attachments, a->n_attachments);
        free(a->audio);
        free(a->replaces);
        free(a->cancel);
        free(a->source_name);
        free(a->source_bytes);
        free(a->encoding);
        free(a);
}

static json_t *json_strv(char *const *v, size_t n) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_string(v[i]));
        return arr;
}

static json_t *json_time(usec_t t) {
        char buf[64];
        if (t == 0)
                return json_null();
        thaidate_format_utc(t, buf, sizeof buf);
        return json_string(buf);
}

static void json_set_string(json_t *o, const char *key, const char *v) {
        json_object_set_new(o, key, v ? json_string(v) : json_null());
}

json_t *announcement_to_json(const Announcement *a) {
        json_t *o = json_object(), *villages;
        char hash[24];

        json_set_string(o, "id", a->id);
        json_object_set_new(o, "id_given", json_boolean(a->id_given));
        json_set_string(o, "title", a->title);
        json_set_string(o, "body", a->body);
        json_set_string(o, "category", a->category);
        json_set_string(o, "author", a->author);
        json_set_string(o, "priority", priority_to_string(a->priority));
        json_object_set_new(o, "received", json_time(a->received));
        json_object_set_new(o, "publish_at", json_time(a->publish_at));
        json_object_set_new(o, "expires", json_time(a->expires));
        if (a->all_villages)
                villages = json_string("all");
        else {
                villages = json_array();
                for (size_t i = 0; i < a->n_villages; i++)
                        json_array_append_new(villages, json_integer(a->villages[i]));
        }
        json_object_set_new(o, "villages", villages);
        json_object_set_new(o, "broadcast_at", json_strv(a->broadcast_at, a->n_broadcast_at));
        json_object_set_new(o, "repeat", json_integer(a->repeat));
        json_object_set_new(o, "channels", json_strv(a->channels, a->n_channels));
        json_object_set_new(o, "skipped_channels", json_strv(a->skipped_channels, a->n_skipped_channels));
        json_object_set_new(o, "attachments", json_strv(a->attachments, a->n_attachments));
        json_set_string(o, "audio", a->audio);
        json_set_string(o, "replaces", a->replaces);
        json_set_string(o, "cancel", a->cancel);
        json_set_string(o, "source_name", a->source_name);
        json_set_string(o, "encoding", a->encoding);
        snprintf(hash, sizeof hash, "%016" PRIx64, a->source_hash);
        json_set_string(o, "source_hash", hash);
        return o;
}

static char *json_get_string(const json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? xstrdup(s) : NULL;
}

static usec_t json_get_time(const json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        usec_t t = 0;
        if (s)
                thaidate_parse_utc(s, &t);
        return t;
}

static void json_get_strv(const json_t *o, const char *key, char ***ret, size_t *ret_n) {
        json_t *arr = json_object_get(o, key), *item;
        size_t i;

        json_array_foreach(arr, i, item)
                if (json_is_string(item))
                        strv_push(ret, ret_n, json_string_value(item));
}

int announcement_from_json(const json_t *o, Announcement **ret) {
        Announcement *a;
        const char *s;
        json_t *villages, *item;
        size_t i;

        if (!json_is_object(o))
                return -EINVAL;
        a = xcalloc(1, sizeof(Announcement));
        a->id = json_get_string(o, "id");
        a->title = json_get_string(o, "title");
        a->body = json_get_string(o, "body");
        a->category = json_get_string(o, "category");
        if (!a->id || !announcement_id_valid(a->id) || !a->title || !a->body || !a->category) {
                announcement_free(a);
                return -EINVAL;
        }
        a->id_given = json_is_true(json_object_get(o, "id_given"));
        a->author = json_get_string(o, "author");
        s = json_string_value(json_object_get(o, "priority"));
        a->priority = s && priority_from_string(s) >= 0 ? (prakat_priority) priority_from_string(s)
                                                         : PRAKAT_PRIORITY_NORMAL;
        a->received = json_get_time(o, "received");
        a->publish_at = json_get_time(o, "publish_at");
        a->expires = json_get_time(o, "expires");
        villages = json_object_get(o, "villages");
        a->all_villages = json_is_string(villages);
        json_array_foreach(villages, i, item)
                if (json_is_integer(item)) {
                        a->villages = xrealloc(a->villages, (a->n_villages + 1) * sizeof(unsigned));
                        a->villages[a->n_villages++] = (unsigned) json_integer_value(item);
                }
        json_get_strv(o, "broadcast_at", &a->broadcast_at, &a->n_broadcast_at);
        a->repeat = (unsigned) json_integer_value(json_object_get(o, "repeat"));
        json_get_strv(o, "channels", &a->channels, &a->n_channels);
        json_get_strv(o, "skipped_channels", &a->skipped_channels, &a->n_skipped_channels);
        json_get_strv(o, "attachments", &a->attachments, &a->n_attachments);
        a->audio = json_get_string(o, "audio");
        a->replaces = json_get_string(o, "replaces");
        a->cancel = json_get_string(o, "cancel");
        a->source_name = json_get_string(o, "source_name");
        a->encoding = json_get_string(o, "encoding");
        s = json_string_value(json_object_get(o, "source_hash"));
        a->source_hash = s ? strtoull(s, NULL, 16) : 0;
        *ret = a;
        return 0;
}
