/* SPDX-License-Identifier: MIT */
/* The announcement parser: every form, encoding, date style and header alias; bad input named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "announcement.h"
#include "thaidate.h"

static Config *config;
static char tmpdir[] = "/tmp/prakat-test-announcement-XXXXXX";

static const char *CONF =
        "[prakat]\n"
        "max_file_size = 4K\n"
        "max_attachments = 3\n"
        "[villages]\n"
        "1 = บ้านบ่อแก้ว\n2 = บ้านโนนสวรรค์\n3 = บ้านหนองบัว\n4 = บ้านโคก\n5 = บ้านดอน\n"
        "[channel website]\nplugin = website\noutput = /tmp/x\nbase_url = https://example.go.th\n"
        "[channel facebook]\nplugin = facebook\nenabled = no\n"
        "[channel line]\nplugin = line\n";

static void write_file(const char *name, const void *data, size_t size) {
        char *p = path_join(tmpdir, name);
        assert_int_equal(write_file_atomic(p, data, size, 0644), 0);
        free(p);
}

static int setup(void **state) {
        char *error = NULL, *p;

        assert_non_null(mkdtemp(tmpdir));
        p = path_join(tmpdir, "prakat.conf");
        assert_int_equal(write_file_atomic(p, CONF, strlen(CONF), 0644), 0);
        assert_int_equal(config_load(p, &config, &error), 0);
        free(p);
        return 0;
}

static int teardown(void **state) {
        config_free(config);
        remove_tree(tmpdir);
        return 0;
}

static usec_t now_20261125(void) {
        usec_t t;
        assert_int_equal(thaidate_parse_utc("2026-11-25T03:00:00Z", &t), 0);
        return t;
}

static Announcement *parse_text(const char *text) {
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;
        int r = announcement_parse_text(&ctx, "x.txt", text, strlen(text), NULL, &a, &e);
        if (r < 0)
                fail_msg("unexpected error: line %u: %s", e.line, e.en);
        return a;
}

/* Parses text expected to be refused; checks the line and a piece of the English message. */
static void expect_error_n(const char *text, size_t size, unsigned line, const char *needle) {
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;

        assert_int_equal(announcement_parse_text(&ctx, "x.txt", text, size, NULL, &a, &e), -EINVAL);
        assert_null(a);
        assert_non_null(e.th);
        assert_non_null(e.en);
        if (!strstr(e.en, needle))
                fail_msg("message '%s' lacks '%s'", e.en, needle);
        assert_int_equal(e.line, line);
        parse_error_done(&e);
}

static void expect_error(const char *text, unsigned line, const char *needle) {
        expect_error_n(text, strlen(text), line, needle);
}

static void test_no_header(void **state) {
        Announcement *a = parse_text("\n\nงดจ่ายน้ำประปา หมู่ 3\nเนื่องจากซ่อมท่อ\n\nขออภัยในความไม่สะดวก\n\n");
        assert_string_equal(a->title, "งดจ่ายน้ำประปา หมู่ 3");
        assert_string_equal(a->body, "เนื่องจากซ่อมท่อ\n\nขออภัยในความไม่สะดวก");
        assert_true(a->all_villages);
        /* Default channels: every enabled one, disabled ones recorded as skipped. */
        assert_int_equal(a->n_channels, 2);
        assert_string_equal(a->channels[0], "website");
        assert_string_equal(a->channels[1], "line");
        assert_int_equal(a->n_skipped_channels, 1);
        assert_string_equal(a->category, "ข่าวประชาสัมพันธ์");
        assert_int_equal(strncmp(a->id, "20261125-", 9), 0);
        announcement_free(a);
}

static void test_thai_aliases(void **state) {
        Announcement *a = parse_text("หัวข้อ: ประชุมประชาคม\nหมู่บ้าน: หมู่ 1, ๓-๔\nเผยแพร่: 26 พ.ย. 2569 07.00 น.\n"
                                     "หมดอายุ: ๓๐/๑๑/๒๕๖๙\nความสำคัญ: ด่วน\nหมวด: กิจกรรม\nผู้ประกาศ: งานประชาสัมพันธ์\n"
                                     "ซ้ำ: ๒\nออกอากาศ: เช้า, 27/11/2569 17:00\nช่องทาง: Website\n\nเนื้อหา\n");
        usec_t t;
        char buf[64];

        assert_string_equal(a->title, "ประชุมประชาคม");
        assert_false(a->all_villages);
        assert_int_equal(a->n_villages, 3);
        assert_int_equal(a->villages[0], 1);
        assert_int_equal(a->villages[1], 3);
        assert_int_equal(a->villages[2], 4);
        assert_int_equal(thaidate_parse_utc("2026-11-26T00:00:00Z", &t), 0);
        assert_true(a->publish_at == t);
        thaidate_format_utc(a->expires, buf, sizeof buf);
        assert_string_equal(buf, "2026-11-29T17:00:00Z");
        assert_int_equal(a->priority, PRAKAT_PRIORITY_URGENT);
        assert_string_equal(a->category, "กิจกรรม");
        assert_string_equal(a->author, "งานประชาสัมพันธ์");
        assert_int_equal(a->repeat, 2);
        assert_int_equal(a->n_broadcast_at, 2);
        assert_string_equal(a->broadcast_at[0], "morning");
        assert_string_equal(a->broadcast_at[1], "2026-11-27T10:00:00Z");
        assert_int_equal(a->n_channels, 1);
        assert_string_equal(a->body, "เนื้อหา");
        announcement_free(a);
}

static void test_english_headers_case(void **state) {
        Announcement *a = parse_text("TITLE: Road repair\npublish_at: 2026-11-26 07:00\nvillages: ALL\n"
                                     "Priority: Emergency\nID: road-2569-01\n\nBody text\n");
        assert_string_equal(a->title, "Road repair");
        assert_true(a->all_villages);
        assert_int_equal(a->priority, PRAKAT_PRIORITY_EMERGENCY);
        assert_string_equal(a->id, "road-2569-01");
        assert_true(a->id_given);
        announcement_free(a);
}

static void test_publish_in_past_is_now(void **state) {
        Announcement *a = parse_text("Title: x\nPublish-At: 1/1/2560\n\ny\n");
        assert_true(a->publish_at == now_20261125());
        announcement_free(a);
}

static void test_encodings(void **state) {
        /* "ข่าว" in Windows-874, UTF-16LE with BOM, UTF-8 with BOM; CRLF everywhere. */
        const unsigned char cp874[] = { 0xa2, 0xe8, 0xd2, 0xc7, '\r', '\n', 'b', '\r', '\n' };
        const unsigned char utf16le[] = { 0xff, 0xfe, 0x02, 0x0e, 0x48, 0x0e, 0x32, 0x0e, 0x27, 0x0e,
                                          '\r', 0, '\n', 0, 'b', 0 };
        const unsigned char utf16be[] = { 0xfe, 0xff, 0x0e, 0x02, 0x0e, 0x48, 0x0e, 0x32, 0x0e, 0x27,
                                          0, '\r', 0, '\n', 0, 'b' };
        const char utf8bom[] = "\xef\xbb\xbf" "ข่าว\r\nb";
        struct {
                const void *data;
                size_t size;
                const char *encoding;
        } cases[] = {
                { cp874, sizeof cp874, "Windows-874" },
                { utf16le, sizeof utf16le, "UTF-16LE" },
                { utf16be, sizeof utf16be, "UTF-16BE" },
                { utf8bom, strlen(utf8bom), "UTF-8 (BOM)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ParseContext ctx = { .config = config, .now = now_20261125() };
                ParseError e = {};
                Announcement *a = NULL;

                assert_int_equal(announcement_parse_text(&ctx, "x.txt", cases[i].data, cases[i].size, NULL, &a, &e), 0);
                assert_string_equal(a->title, "ข่าว");
                assert_string_equal(a->body, "b");
                assert_string_equal(a->encoding, cases[i].encoding);
                announcement_free(a);
        }
}

static void test_json_form(void **state) {
        const char *json = "{\"title\":\"ประกาศ\",\"body\":\"ข้อความ\",\"channels\":[\"website\"],"
                           "\"villages\":[1,\"3-5\"],\"publish_at\":\"26/11/2569 07:00\",\"repeat\":3,"
                           "\"broadcast_at\":[\"evening\"],\"priority\":\"urgent\",\"author\":null}";
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;

        assert_int_equal(announcement_parse_json(&ctx, "x.json", json, strlen(json), NULL, &a, &e), 0);
        assert_string_equal(a->title, "ประกาศ");
        assert_int_equal(a->n_villages, 4);
        assert_int_equal(a->repeat, 3);
        assert_int_equal(a->n_channels, 1);
        assert_null(a->author);
        announcement_free(a);
}

static void expect_json_error(const char *json, const char *needle) {
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;

        assert_int_equal(announcement_parse_json(&ctx, "x.json", json, strlen(json), NULL, &a, &e), -EINVAL);
        if (!strstr(e.en, needle))
                fail_msg("message '%s' lacks '%s'", e.en, needle);
        parse_error_done(&e);
}

static void test_json_errors(void **state) {
        expect_json_error("{\"title\": 5}", "wrong type");
        expect_json_error("{\"title\": \"x\", \"colour\": \"red\"}", "Unknown key \"colour\"");
        expect_json_error("[1,2]", "one object");
        expect_json_error("{\"title\": \"x\",}", "malformed");
        expect_json_error("{\"title\": \"x\", \"title\": \"y\"}", "malformed");
        expect_json_error("{\"title\":\"x\",\"villages\":[[[[[[[[[[1]]]]]]]]]]}", "nested too deeply");
        expect_json_error("{\"title\":\"x\",\"villages\":[true]}", "item 1");
}

static void test_bad_headers(void **state) {
        expect_error("Title: x\nChanels: facebook\n\nbody", 2, "Unknown header \"Chanels\"");
        expect_error("Chanels: website\nหัวข้อ: x\nหมู่บ้าน: 3\n\nbody", 1, "Unknown header \"Chanels\"");
        expect_error("Title: x\nChannels: facebok\n\nbody", 2, "no channel named \"facebok\"");
        expect_error("Title: x\nChannels: facebook\n\nbody", 2, "disabled");
        expect_error("Title: x\nVillages: 1, 9\n\nbody", 2, "village 9 is not in");
        expect_error("Title: x\nVillages: 1, x\n\nbody", 2, "cannot read \"x\"");
        expect_error("Title: x\nVillages: 4-2\n\nbody", 2, "cannot read");
        expect_error("Title: x\nPublish-At: 31/02/2569\n\nbody", 2, "not a real date");
        expect_error("Title: x\nPublish-At: tomorrow-ish\n\nbody", 2, "cannot read the date");
        expect_error("Title: x\nPublish-At: 26/11/2569\nExpires: 25/11/2569\n\nb", 3, "must come after");
        expect_error("Title: x\nRepeat: 50\n\nb", 2, "from 1 to 10");
        expect_error("Title: x\nPriority: high\n\nb", 2, "unknown");
        expect_error("Title: x\nTitle: y\n\nb", 2, "given twice");
        expect_error("Title: x\nID: ../etc\n\nb", 2, "not a valid announcement id");
        expect_error("Title: x\nCancel: a\nReplaces: b\n\nb", 2, "cannot both");
        expect_error("Title: x\nAttachments: a.jpg\n\nb", 2, "works only in a folder");
}

static void test_bad_bytes(void **state) {
        expect_error_n("", 0, 0, "empty");
        expect_error_n("ab\ncd\0ef", 8, 2, "cannot be read");
        expect_error("\n\n\n", 0, "empty");
        /* Notepad's empty UTF-8 and UTF-16 files: only a BOM. */
        expect_error("\xEF\xBB\xBF", 0, "empty");
        expect_error_n("\xFF\xFE\r\0\n\0", 6, 0, "empty");
        /* UTF-16 without a BOM is named as such, not as a bad UTF-8 byte. */
        expect_error_n("T\0i\0t\0l\0e\0:\0 \0+\x0E\n\0", 18, 0, "UTF-16LE");
        expect_error_n("\0T\0i\0t\0l\0e\0:\0 \x0E+\0\n", 18, 0, "UTF-16BE");
        /* A Thai UTF-8 file with one character cut in half: the UTF-8 fault and its line, not the
         * first Thai letter read as Windows-874. */
        expect_error("หัวข้อ: ประชุม\n\nบรรทัดสาม\nบรรทัด\xE0\xB8สี่\n", 4, "read as UTF-8");
        /* UTF-16 lines are counted in code units: U+0E0A (ช) holds a 0x0A byte. */
        expect_error_n("\xFF\xFE" "\x0A\x0E\n\0\x0A\x0E\n\0x", 11, 3, "UTF-16LE");
}

/* A key written with nothing after it crashed the parser (Publish-At:, Expires:, Cancel:, ID:) or
 * widened the announcement (Villages: to every village); each is refused on its line. */
static void test_empty_values(void **state) {
        static const char *const keys[] = { "Publish-At", "Expires", "Replaces", "ID", "Channels", "Repeat",
                                            "Priority" };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *text = xasprintf("Title: x\n%s:  \n\nb\n", keys[i]);
                _cleanup_free_ char *needle = xasprintf("%s: no value", keys[i]);
                expect_error(text, 2, needle);
        }
        expect_error("Cancel:\n\nb\n", 1, "Cancel: no value");
        expect_error("Title: x\nVillages: , ;\n\nb\n", 2, "Villages: no value");
        expect_json_error("{\"title\": \"x\", \"villages\": []}", "villages: no value");
        expect_json_error("{\"title\": \"x\", \"channels\": []}", "channels: no value");
        expect_json_error("{\"title\": \"x\", \"publish_at\": \"\"}", "publish_at: no value");
        /* Free-form keys may stay empty: the default applies. */
        Announcement *a = parse_text("Title: x\nCategory:\nAuthor:\nAttachments:\nBroadcast-At:\n\nb\n");
        assert_string_equal(a->category, "ข่าวประชาสัมพันธ์");
        assert_null(a->author);
        assert_int_equal(a->n_attachments, 0);
        announcement_free(a);
}

static void test_bundle(void **state) {
        char *dir = path_join(tmpdir, "bundle"), *sub = path_join(dir, "pics"), *p;
        const char *text = "หัวข้อ: ประชุม\nไฟล์แนบ: รูป 1.jpg, pics/b.png\nเสียง: a.mp3\n\nเนื้อหา\n";
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;

        assert_int_equal(mkdir_p(sub, 0755), 0);
        write_file("bundle/announcement.txt", text, strlen(text));
        write_file("bundle/รูป 1.jpg", "JPEG", 4);
        write_file("bundle/pics/b.png", "PNG", 3);
        write_file("bundle/a.mp3", "ID3", 3);
        assert_int_equal(announcement_load(&ctx, dir, "bundle", &a, &e), 0);
        /* The audio goes out with the attachments (the website publishes it, the towers fetch it). */
        assert_int_equal(a->n_attachments, 3);
        assert_string_equal(a->attachments[0], "รูป 1.jpg");
        assert_string_equal(a->attachments[2], "a.mp3");
        assert_string_equal(a->audio, "a.mp3");
        assert_string_equal(a->source_name, "bundle");
        announcement_free(a);
        /* Listed under both, it is one attachment. */
        const char *both = "หัวข้อ: ประชุม\nไฟล์แนบ: a.mp3, รูป 1.jpg\nเสียง: a.mp3\n\nเนื้อหา\n";
        write_file("bundle/announcement.txt", both, strlen(both));
        assert_int_equal(announcement_load(&ctx, dir, "bundle", &a, &e), 0);
        assert_int_equal(a->n_attachments, 2);
        assert_string_equal(a->attachments[0], "a.mp3");
        announcement_free(a);

        /* Escaping paths, missing files and symlinks are refused. */
        const char *bad[] = {
                "Title: x\nAttachments: ../prakat.conf\n\nb\n",
                "Title: x\nAttachments: /etc/passwd\n\nb\n",
                "Title: x\nAttachments: missing.jpg\n\nb\n",
                "Title: x\nAudio: รูป 1.jpg\n\nb\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                write_file("bundle/announcement.txt", bad[i], strlen(bad[i]));
                assert_int_equal(announcement_load(&ctx, dir, "bundle", &a, &e), -EINVAL);
                assert_int_equal(e.line, 2);
                parse_error_done(&e);
        }
        p = path_join(dir, "link.jpg");
        assert_int_equal(symlink("/etc/passwd", p), 0);
        write_file("bundle/announcement.txt", text, strlen(text));
        assert_int_equal(announcement_load(&ctx, dir, "bundle", &a, &e), -EINVAL);
        assert_non_null(strstr(e.en, "not a plain file"));
        parse_error_done(&e);
        unlink(p);
        free(p);

        /* A folder with no announcement file. */
        p = path_join(dir, "announcement.txt");
        unlink(p);
        assert_int_equal(announcement_load(&ctx, dir, "bundle", &a, &e), -EINVAL);
        assert_non_null(strstr(e.en, "has no announcement.txt"));
        parse_error_done(&e);
        free(p);
        free(sub);
        free(dir);
}

static void test_load_limits(void **state) {
        ParseContext ctx = { .config = config, .now = now_20261125() };
        ParseError e = {};
        Announcement *a = NULL;
        char big[5000], *p;

        memset(big, 'a', sizeof big);
        write_file("big.txt", big, sizeof big);
        p = path_join(tmpdir, "big.txt");
        assert_int_equal(announcement_load(&ctx, p, "big.txt", &a, &e), -EINVAL);
        assert_non_null(strstr(e.en, "larger than the limit"));
        parse_error_done(&e);
        free(p);

        write_file("photo.jpg", "x", 1);
        p = path_join(tmpdir, "photo.jpg");
        assert_int_equal(announcement_load(&ctx, p, "photo.jpg", &a, &e), -EINVAL);
        assert_non_null(strstr(e.en, "not an announcement"));
        parse_error_done(&e);
        free(p);

        p = path_join(tmpdir, "fifo.txt");
        assert_int_equal(mkfifo(p, 0644), 0);
        assert_int_equal(announcement_load(&ctx, p, "fifo.txt", &a, &e), -EINVAL);
        assert_non_null(strstr(e.en, "neither a plain file nor a folder"));
        parse_error_done(&e);
        free(p);
}

static void test_json_roundtrip(void **state) {
        Announcement *a = parse_text("หัวข้อ: ก\nหมู่บ้าน: 2, 5\nหมดอายุ: 1/12/2569\n\nข\n"), *b = NULL;
        json_t *j = announcement_to_json(a);

        assert_int_equal(announcement_from_json(j, &b), 0);
        assert_string_equal(a->id, b->id);
        assert_string_equal(a->title, b->title);
        assert_true(a->expires == b->expires);
        assert_int_equal(b->n_villages, 2);
        assert_int_equal(b->villages[1], 5);
        assert_true(a->source_hash == b->source_hash);
        json_decref(j);
        announcement_free(a);
        announcement_free(b);
}

static void test_error_file_text(void **state) {
        ParseError e = { .line = 3, .th = xstrdup("ผิด"), .en = xstrdup("wrong") };
        char *text = parse_error_format(&e, "ข่าว.txt", now_20261125());

        assert_non_null(strstr(text, "ไฟล์: ข่าว.txt"));
        assert_non_null(strstr(text, "บรรทัดที่ 3"));
        assert_non_null(strstr(text, "Line: 3"));
        assert_non_null(strstr(text, "Problem: wrong"));
        /* Thai first, English after. */
        assert_true(strstr(text, "ผิด") < strstr(text, "wrong"));
        free(text);
        parse_error_done(&e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_header),          cmocka_unit_test(test_thai_aliases),
                cmocka_unit_test(test_english_headers_case), cmocka_unit_test(test_publish_in_past_is_now),
                cmocka_unit_test(test_encodings),          cmocka_unit_test(test_json_form),
                cmocka_unit_test(test_json_errors),        cmocka_unit_test(test_bad_headers),
                cmocka_unit_test(test_bad_bytes),          cmocka_unit_test(test_empty_values),
                cmocka_unit_test(test_bundle),
                cmocka_unit_test(test_load_limits),        cmocka_unit_test(test_json_roundtrip),
                cmocka_unit_test(test_error_file_text),
        };
        thaidate_set_timezone("Asia/Bangkok");
        return cmocka_run_group_tests(tests, setup, teardown);
}
