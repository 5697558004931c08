/* SPDX-License-Identifier: MIT */
/* The durable queue: what intake writes (layout 2), entries of layout 1 still read, the id index
 * through intake and retirement, and the receipt's original linked, not copied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "announcement.h"
#include "queue.h"
#include "receipt.h"
#include "thaidate.h"

static Config *config;
static char tmpdir[] = "/tmp/prakat-test-queue-XXXXXX";
static char *state, *incoming;

static const char *TEXT = "หัวข้อ: ประชุมประจำเดือน\nหมวด: ข่าวประชาสัมพันธ์\n\nขอเชิญประชุมวันที่ 1 ธันวาคม 2569\n";

static void put_file(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static int setup(void **unused) {
        char *error = NULL, *p, *conf;

        assert_non_null(mkdtemp(tmpdir));
        state = path_join(tmpdir, "state");
        incoming = path_join(tmpdir, "incoming");
        assert_int_equal(mkdir(incoming, 0755), 0);
        conf = xasprintf("[prakat]\nspool = %s/spool\nstate = %s\n[villages]\n1 = บ้านบ่อแก้ว\n"
                         "[channel website]\nplugin = website\noutput = %s/site\nbase_url = https://example.go.th\n"
                         "[channel line]\nplugin = line\n",
                         tmpdir, state, tmpdir);
        p = path_join(tmpdir, "prakat.conf");
        put_file(p, conf);
        assert_int_equal(config_load(p, &config, &error), 0);
        free(conf);
        free(p);
        return 0;
}

static int teardown(void **unused) {
        config_free(config);
        remove_tree(tmpdir);
        free(state);
        free(incoming);
        return 0;
}

/* A parsed announcement from incoming/NAME, with its two jobs, as prakatd makes one. */
static Entry *new_entry(const char *name, const char *text, char **ret_source) {
        ParseContext ctx = { .config = config };
        ParseError err = { 0 };
        Announcement *a = NULL;
        char *source = path_join(incoming, name);
        Entry *e;

        assert_int_equal(thaidate_parse_utc("2026-11-25T03:00:00Z", &ctx.now), 0);
        put_file(source, text);
        assert_int_equal(announcement_load(&ctx, source, name, &a, &err), 0);
        e = entry_new(a);
        e->jobs = xcalloc(2, sizeof(Job));
        e->jobs[e->n_jobs++] = (Job) { .entry = e, .channel = xstrdup("website"), .state = JOB_SCHEDULED };
        e->jobs[e->n_jobs++] = (Job) { .entry = e, .channel = xstrdup("line"), .state = JOB_SCHEDULED };
        *ret_source = source;
        return e;
}

/* A new entry from incoming/NAME, taken into q (staged and committed). */
static Entry *take_in(Queue *q, const char *name, const char *text, char **ret_source) {
        Entry *e = new_entry(name, text, ret_source);

        assert_int_equal(queue_stage_intake(q, e, *ret_source), 0);
        assert_int_equal(queue_commit_intake(q), 0);
        return e;
}

static bool exists(const char *dir, const char *name) {
        char *p = path_join(dir, name);
        bool r = access(p, F_OK) == 0;
        free(p);
        return r;
}

/* Segments in STATE/journal. */
static size_t count_segments(void) {
        char *dir = path_join(state, "journal");
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                n += strstr(de->d_name, ".jsonl") != NULL;
        closedir(d);
        free(dir);
        return n;
}

/* The newest segment's path. */
static char *last_segment(void) {
        char *dir = path_join(state, "journal"), *last = NULL;
        DIR *d = opendir(dir);
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, ".jsonl") && (!last || strcmp(de->d_name, last) > 0)) {
                        free(last);
                        last = xstrdup(de->d_name);
                }
        closedir(d);
        assert_non_null(last);
        char *p = path_join(dir, last);
        free(last);
        free(dir);
        return p;
}

static void intake_writes_layout_3(void **unused) {
        Queue *q;
        char *source, *id, *orig, *data = NULL, *originals;
        size_t size;
        struct stat st;
        Entry *e;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        e = new_entry("ประชุม.txt", TEXT, &source);
        id = xstrdup(e->announcement->id);
        assert_int_equal(queue_stage_intake(q, e, source), 0);
        assert_true(queue_id_exists(q, id));   /* staged: its id is taken ... */
        assert_null(queue_find(q, id));        /* ... but it is not in the queue yet */
        assert_int_equal(count_segments(), 0); /* ... nor in the journal */
        assert_int_equal(queue_commit_intake(q), 0);
        assert_ptr_equal(queue_find(q, id), e);
        assert_int_equal(e->layout, 3);

        /* No folder of its own: one journal segment, and the original in originals/ID+NAME. */
        assert_int_equal(count_segments(), 1);
        assert_false(exists(state, "queue/ประชุม.txt"));
        orig = entry_original_path(e);
        originals = path_join(state, "originals");
        assert_true(strncmp(orig, originals, strlen(originals)) == 0);
        assert_non_null(strstr(orig, "+ประชุม.txt"));
        assert_int_equal(read_file(orig, 1 << 20, &data, &size), 0);
        assert_int_equal(size, strlen(TEXT));
        assert_memory_equal(data, TEXT, size);
        assert_int_equal(stat(orig, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        free(data);
        free(orig);
        free(originals);
        queue_free(q);

        /* Read again: the jobs as intake wrote them. */
        assert_int_equal(queue_open(state, &q), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->n_jobs, 2);
        assert_string_equal(e->jobs[1].channel, "line");
        assert_int_equal(e->jobs[0].state, JOB_SCHEDULED);
        assert_int_equal(count_segments(), 1); /* compacted at open: one segment of what is left */

        /* A change is one more segment, whose line wins. */
        e->jobs[0].state = JOB_DONE;
        e->jobs[0].link = xstrdup("https://example.go.th/a/x.html");
        queue_mark_dirty(q, e);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(count_segments(), 2);
        {       /* the journal has the announcement already: the new line carries the jobs only */
                char *seg = last_segment(), *line = NULL;
                size_t n;
                assert_int_equal(read_file(seg, 1 << 20, &line, &n), 0);
                assert_non_null(strstr(line, "\"jobs_only\":true"));
                assert_null(strstr(line, "\"title\""));
                free(line);
                free(seg);
        }
        queue_free(q);
        assert_int_equal(queue_open(state, &q), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->jobs[0].state, JOB_DONE);
        assert_string_equal(e->jobs[0].link, "https://example.go.th/a/x.html");
        assert_int_equal(e->jobs[1].state, JOB_SCHEDULED);
        queue_free(q);
        free(source);
        free(id);
}

/* A segment is written in place: a line cut off by a crash reads as not written, and so does the rest of
 * its segment; the state before it holds. */
static void journal_line_cut_off(void **unused) {
        char *source, *id, *seg, *data = NULL;
        size_t size;
        Queue *q;
        Entry *e;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        e = take_in(q, "ตัด.txt", "หัวข้อ: ตัดกลางคัน\n\nไฟล์สถานะถูกตัด\n", &source);
        id = xstrdup(e->announcement->id);
        e->jobs[0].state = JOB_DONE;
        queue_mark_dirty(q, e);
        assert_int_equal(queue_flush(q), 0);
        seg = last_segment();
        assert_int_equal(read_file(seg, 1 << 20, &data, &size), 0);
        assert_true(size > 20);
        assert_int_equal(truncate(seg, (off_t) size / 2), 0);
        free(data);
        queue_free(q);

        assert_int_equal(queue_open(state, &q), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->jobs[0].state, JOB_SCHEDULED); /* as intake wrote it */
        e->jobs[1].state = JOB_FAILED;
        queue_mark_dirty(q, e);
        assert_int_equal(queue_flush(q), 0);
        queue_free(q);
        assert_int_equal(queue_open(state, &q), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->jobs[0].state, JOB_SCHEDULED);
        assert_int_equal(e->jobs[1].state, JOB_FAILED);
        queue_free(q);
        free(seg);
        free(id);
        free(source);
}

/* Finished: done/ID.json, and an empty journal.  A retry takes it back with the next generation, which
 * outranks the done file across a restart; finished again, the done file says so. */
static void retire_and_take_back(void **unused) {
        char *source, *id, *done_file, *data = NULL;
        size_t size;
        int result;
        Queue *q;
        Entry *e, *back = NULL, **list = NULL;
        size_t n = 0;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        e = take_in(q, "เสร็จ.txt", "หัวข้อ: เสร็จแล้ว\n\nส่งครบทุกช่องทาง\n", &source);
        id = xstrdup(e->announcement->id);
        done_file = xasprintf("%s/done/%s.json", state, id);
        e->jobs[0].state = JOB_DONE;
        e->jobs[1].state = JOB_FAILED;
        queue_mark_dirty(q, e);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_retire(q, &e, 1, &result), 1);
        assert_int_equal(result, 0);
        assert_null(queue_find(q, id));
        assert_true(queue_id_exists(q, id));
        assert_int_equal(read_file(done_file, 1 << 20, &data, &size), 0);
        assert_non_null(strstr(data, "\"state\": \"failed\""));
        free(data);
        assert_int_equal(count_segments(), 0); /* nothing unfinished: the journal is emptied */
        queue_free(q);

        /* Restart: not in the queue; listed among the finished; its original is still there. */
        assert_int_equal(queue_open(state, &q), 0);
        assert_int_equal(queue_size(q), 0);
        assert_int_equal(queue_list_dir(state, true, &list, &n), 0);
        assert_int_equal(n, 1);
        char *orig = entry_original_path(list[0]);
        assert_int_equal(access(orig, R_OK), 0);
        free(orig);
        entry_free(list[0]);
        free(list);

        /* A retry: back in the queue, generation 1, and so after a restart too. */
        assert_int_equal(queue_load_done(q, id, &back), 0);
        assert_int_equal(queue_reopen(q, back), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->generation, 1);
        e->jobs[1].state = JOB_SCHEDULED;
        assert_int_equal(queue_flush(q), 0);
        queue_free(q);
        assert_int_equal(queue_open(state, &q), 0);
        e = queue_find(q, id);
        assert_non_null(e);
        assert_int_equal(e->jobs[1].state, JOB_SCHEDULED);
        assert_int_equal(queue_list_dir(state, true, &list, &n), 0);
        assert_int_equal(n, 1); /* once, as the journal has it */
        assert_int_equal(list[0]->generation, 1);
        assert_int_equal(list[0]->jobs[1].state, JOB_SCHEDULED);
        entry_free(list[0]);
        free(list);

        /* Finished again. */
        e->jobs[1].state = JOB_DONE;
        queue_mark_dirty(q, e);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_retire(q, &e, 1, &result), 1);
        queue_free(q);
        assert_int_equal(queue_open(state, &q), 0);
        assert_int_equal(queue_size(q), 0);
        assert_int_equal(queue_load_any(state, id, &back), 0);
        assert_int_equal(back->generation, 1);
        assert_int_equal(back->jobs[1].state, JOB_DONE);
        entry_free(back);
        assert_int_equal(queue_load_any(state, "20261125-00000000", &back), -ENOENT);
        queue_free(q);
        free(done_file);
        free(id);
        free(source);
}

/* An intake cut off by a crash after it wrote the original: the original goes at the next start (the
 * dropped file is still in incoming/), and the same file is taken in again without trouble. */
static void orphan_original_removed(void **unused) {
        char *source, *id, *orig;
        Queue *q;
        Entry *e;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        e = new_entry("ค้าง.txt", "หัวข้อ: ค้างอยู่\n\nเครื่องดับระหว่างรับเข้า\n", &source);
        id = xstrdup(e->announcement->id);
        assert_int_equal(queue_stage_intake(q, e, source), 0);
        orig = entry_original_path(e);
        assert_int_equal(access(orig, F_OK), 0);
        queue_free(q); /* like a crash before the commit, except that queue_free() cleans up */
        put_file(orig, "ครึ่งไฟล์");
        assert_int_equal(queue_open(state, &q), 0);
        assert_int_equal(access(orig, F_OK), -1);
        assert_false(queue_id_exists(q, id));
        free(source);
        take_in(q, "ค้าง.txt", "หัวข้อ: ค้างอยู่\n\nเครื่องดับระหว่างรับเข้า\n", &source);
        assert_int_equal(access(orig, R_OK), 0);
        queue_free(q);
        free(orig);
        free(id);
        free(source);
}

/* A power cut between the journal and the removal of the dropped file can keep the journal's line and lose
 * the copy: the file found again in incoming/ writes it again. */
static void leftover_restores_the_original(void **unused) {
        static const char text[] = "หัวข้อ: ไฟดับ\n\nสำเนาหายไปตอนไฟดับ\n";
        char *source, *orig, *data = NULL;
        ParseContext ctx = { .config = config };
        ParseError err = { 0 };
        Announcement *a = NULL;
        size_t size;
        Queue *q;
        Entry *e;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        e = take_in(q, "ไฟดับ.txt", text, &source);
        orig = entry_original_path(e);
        assert_int_equal(truncate(orig, 0), 0);
        assert_int_equal(thaidate_parse_utc("2026-11-25T03:00:00Z", &ctx.now), 0);
        assert_int_equal(announcement_load(&ctx, source, "ไฟดับ.txt", &a, &err), 0);
        assert_string_equal(a->id, e->announcement->id);
        assert_int_equal(queue_restore_original(q, a, source), 0);
        assert_int_equal(read_file(orig, 1 << 20, &data, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_memory_equal(data, text, size);
        announcement_free(a);
        free(data);
        free(orig);
        free(source);
        queue_free(q);
}

/* A layout-2 folder (an upgrade finds it): read as it is, its jobs.json written on change, retired as a
 * folder into done/. */
static void layout_2_is_still_read(void **unused) {
        char *source, *dir, *p, *s, *orig;
        Entry *e = new_entry("สอง.txt", "หัวข้อ: รุ่นสอง\n\nแบบเดิม\n", &source), *loaded;
        json_t *o;
        int result;
        Queue *q;

        remove_tree(state);
        dir = xasprintf("%s/queue/%s", state, e->announcement->id);
        assert_int_equal(mkdir_p(dir, 0750), 0);
        p = xasprintf("%s/original-สอง.txt", dir);
        put_file(p, "หัวข้อ: รุ่นสอง\n\nแบบเดิม\n");
        free(p);
        o = announcement_to_json(e->announcement);
        json_object_set_new(o, "layout", json_integer(2));
        json_object_set_new(o, "jobs", entry_jobs_to_json(e));
        s = json_dumps(o, 0);
        json_decref(o);
        p = path_join(dir, "announcement.json");
        put_file(p, s);
        free(p);
        free(s);

        assert_int_equal(queue_open(state, &q), 0);
        loaded = queue_find(q, e->announcement->id);
        assert_non_null(loaded);
        assert_int_equal(loaded->layout, 2);
        orig = entry_original_path(loaded);
        assert_non_null(strstr(orig, "/original-สอง.txt"));
        assert_int_equal(access(orig, R_OK), 0);
        free(orig);
        loaded->jobs[0].state = loaded->jobs[1].state = JOB_DONE;
        queue_mark_dirty(q, loaded);
        assert_int_equal(queue_flush(q), 0);
        assert_true(exists(dir, "jobs.json"));
        assert_int_equal(count_segments(), 0);
        assert_int_equal(queue_retire(q, &loaded, 1, &result), 1);
        assert_int_equal(result, 0);
        p = xasprintf("%s/done/%s/jobs.json", state, e->announcement->id);
        assert_int_equal(access(p, R_OK), 0);
        free(p);
        assert_true(queue_id_exists(q, e->announcement->id));
        queue_free(q);
        entry_free(e);
        free(dir);
        free(source);
}

/* An entry written before layout 2 (an upgrade finds it): jobs.json and original/NAME. */
static void layout_1_is_still_read(void **unused) {
        char *source, *dir, *odir, *p, *orig, *s;
        Entry *e = new_entry("เก่า.txt", TEXT, &source), *loaded;
        json_t *o;
        Queue *q;

        remove_tree(state);
        dir = xasprintf("%s/queue/%s", state, e->announcement->id);
        odir = path_join(dir, "original");
        assert_int_equal(mkdir_p(odir, 0750), 0);
        p = path_join(odir, "เก่า.txt");
        put_file(p, TEXT);
        free(p);
        p = path_join(dir, "announcement.json");
        s = json_dumps(o = announcement_to_json(e->announcement), 0);
        put_file(p, s);
        free(s);
        json_decref(o);
        free(p);
        p = path_join(dir, "jobs.json");
        e->jobs[1].state = JOB_DEFERRED;
        s = json_dumps(o = entry_jobs_to_json(e), 0);
        put_file(p, s);
        free(s);
        json_decref(o);
        free(p);

        assert_int_equal(queue_open(state, &q), 0);
        loaded = queue_find(q, e->announcement->id);
        assert_non_null(loaded);
        assert_int_equal(loaded->layout, 1);
        assert_int_equal(loaded->jobs[1].state, JOB_DEFERRED);
        orig = entry_original_path(loaded);
        assert_non_null(strstr(orig, "/original/เก่า.txt"));
        assert_int_equal(access(orig, R_OK), 0);
        free(orig);

        /* Without its jobs.json a layout-1 entry is unreadable, not silently reset. */
        p = path_join(dir, "jobs.json");
        assert_int_equal(unlink(p), 0);
        free(p);
        queue_free(q);
        assert_int_equal(queue_open(state, &q), 0);
        assert_null(queue_find(q, e->announcement->id));
        queue_free(q);
        remove_tree(dir);
        entry_free(e);
        free(source);
        free(dir);
        free(odir);
}

/* Many entries in, every other one retired, in two rounds: the index agrees with the queue. */
static void index_follows_intake_and_retirement(void **unused) {
        enum { N = 300 };
        char *ids[N], *source;
        Entry *retire[N];
        int results[N];
        size_t n_retire = 0;
        Queue *q;

        remove_tree(state);
        assert_int_equal(queue_open(state, &q), 0);
        for (size_t i = 0; i < N; i++) {
                char name[32], *text = xasprintf("หัวข้อ: ประกาศฉบับที่ %zu\n\nเนื้อหา %zu\n", i, i);
                Entry *e;
                snprintf(name, sizeof name, "n%03zu.txt", i);
                e = new_entry(name, text, &source);
                ids[i] = xstrdup(e->announcement->id);
                assert_int_equal(queue_stage_intake(q, e, source), 0);
                free(text);
                free(source);
                if (i % 100 == 99) /* three batches */
                        assert_int_equal(queue_commit_intake(q), 0);
        }
        assert_int_equal(queue_size(q), N);
        for (size_t i = 0; i < N; i += 2)
                retire[n_retire++] = queue_find(q, ids[i]);
        assert_int_equal(queue_retire(q, retire, n_retire, results), n_retire);
        assert_int_equal(queue_size(q), N - n_retire);
        for (size_t i = 0; i < N; i++) {
                Entry *e = queue_find(q, ids[i]);
                if (i % 2 == 0)
                        assert_null(e);
                else {
                        assert_non_null(e);
                        assert_string_equal(e->announcement->id, ids[i]);
                }
                assert_true(queue_id_exists(q, ids[i])); /* retired ones are in done/ */
        }
        /* The rest, in reverse order: the deletions shift the index's runs. */
        n_retire = 0;
        for (size_t i = N; i-- > 0;)
                if (i % 2)
                        retire[n_retire++] = queue_find(q, ids[i]);
        assert_int_equal(queue_retire(q, retire, n_retire, results), n_retire);
        assert_int_equal(queue_size(q), 0);
        for (size_t i = 0; i < N; i++) {
                assert_null(queue_find(q, ids[i]));
                free(ids[i]);
        }
        queue_free(q);
}

/* The receipt's copy of a single file is a second name of the queue's copy; a folder is copied. */
static void receipt_links_the_original(void **unused) {
        char *source, *orig, *pub;
        struct stat a, b;
        int result;
        Queue *q;
        Entry *e;

        pub = xasprintf("%s/spool/published", tmpdir);
        assert_int_equal(mkdir_p(pub, 0755), 0);
        assert_int_equal(queue_open(state, &q), 0);
        e = take_in(q, "ลิงก์.txt", TEXT, &source);
        e->jobs[0].state = e->jobs[1].state = JOB_DONE;
        assert_int_equal(receipt_publish(config, &e, 1, e->announcement->received, &result), 1);
        assert_int_equal(result, 0);
        orig = entry_original_path(e);
        {
                char *dir = NULL, *p;
                DIR *d = opendir(pub);
                struct dirent *de;
                assert_non_null(d);
                while ((de = readdir(d)))
                        if (strstr(de->d_name, e->announcement->id))
                                dir = path_join(pub, de->d_name);
                closedir(d);
                assert_non_null(dir);
                p = path_join(dir, "ลิงก์.txt");
                assert_int_equal(stat(orig, &a), 0);
                assert_int_equal(stat(p, &b), 0);
                assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
                assert_int_equal(b.st_mode & 07777, 0644);
                assert_true(exists(dir, "receipt.txt"));
                free(p);
                free(dir);
        }
        free(orig);
        free(pub);
        free(source);
        queue_free(q);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(intake_writes_layout_3),
                cmocka_unit_test(journal_line_cut_off),
                cmocka_unit_test(retire_and_take_back),
                cmocka_unit_test(orphan_original_removed),
                cmocka_unit_test(leftover_restores_the_original),
                cmocka_unit_test(layout_2_is_still_read),
                cmocka_unit_test(layout_1_is_still_read),
                cmocka_unit_test(index_follows_intake_and_retirement),
                cmocka_unit_test(receipt_links_the_original),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
