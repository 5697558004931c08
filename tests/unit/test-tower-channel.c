/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the tower channel's pure parts: the config values, the play instants of an
 * announcement (slots, quiet hours, emergencies, midnight and year ends) and the item state with
 * its acks; and the plugin's preview against tests/unit/fake-host.h (it never connects).  The
 * channel's sources are included whole.
 * Local time is Asia/Bangkok, set with TZ as prakatd sets it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "tower/plan.c"
#include "tower/store.c"
#include "tower/link.c"
#include "tower/tower.c"
#include "plugin-util.h"
#include "fake-host.h"

#define SEC TOWER_SEC

static prakat_usec_t utc(const char *s) {
        prakat_usec_t t = 0;
        assert_int_equal(tower_parse_utc(s, &t), 0);
        return t;
}

static const char *fmt(prakat_usec_t t) {
        static char buffers[8][21];
        static unsigned next;
        return tower_format_utc(t, buffers[next++ % 8]);
}

static TowerPlanConfig default_slots(void) {
        TowerPlanConfig c;
        assert_int_equal(tower_parse_slots("07:00, 17:00", &c), 0);
        return c;
}

static TowerQuiet default_quiet(void) {
        TowerQuiet q;
        assert_int_equal(tower_parse_quiet("21:00-06:00", &q), 0);
        return q;
}

static size_t plan(const TowerPlanConfig *c, const TowerQuiet *q, prakat_priority p, const char *const *at, size_t n,
                   const char *now, prakat_usec_t expires, prakat_usec_t out[TOWER_PLAY_AT_MAX], unsigned *flags) {
        *flags = 0;
        return tower_plan_instants(c, q, p, at, n, utc(now), expires, out, flags);
}

/* ---- config values ---- */

static void test_parse_values(void **state) {
        unsigned s;
        TowerPlanConfig c;
        TowerQuiet q;
        bool seen[TOWER_VILLAGE_MAX + 1] = { false };
        uint64_t d;
        char *host = NULL;
        unsigned port;
        bool tls;

        assert_int_equal(tower_parse_time_of_day("07:00", &s), 0);
        assert_int_equal(s, 7 * 3600);
        /* Dates that do not exist are refused, not rolled over into the next month. */
        prakat_usec_t at;
        assert_int_equal(tower_parse_utc("2026-02-28T23:59:59Z", &at), 0);
        assert_int_equal(tower_parse_utc("2028-02-29T00:00:00Z", &at), 0);
        assert_int_equal(tower_parse_utc("2026-02-31T00:00:00Z", &at), -EINVAL);
        assert_int_equal(tower_parse_utc("2026-02-29T00:00:00Z", &at), -EINVAL);
        assert_int_equal(tower_parse_utc("2026-04-31T07:00:00Z", &at), -EINVAL);
        assert_int_equal(tower_parse_time_of_day(" 7.30 ", &s), 0);
        assert_int_equal(s, 7 * 3600 + 30 * 60);
        assert_int_equal(tower_parse_time_of_day("17:30:15", &s), 0);
        assert_int_equal(s, 17 * 3600 + 30 * 60 + 15);
        assert_int_equal(tower_parse_time_of_day("24:00", &s), -EINVAL);
        assert_int_equal(tower_parse_time_of_day("7", &s), -EINVAL);
        assert_int_equal(tower_parse_time_of_day("07:0", &s), -EINVAL);

        assert_int_equal(tower_parse_slots("17:00, 07:00,07:00 12:00", &c), 0);
        assert_int_equal(c.n_slots, 3);
        assert_int_equal(c.slots[0], 7 * 3600);
        assert_int_equal(c.slots[2], 17 * 3600);
        assert_int_equal(tower_parse_slots("", &c), -EINVAL);
        assert_int_equal(tower_parse_slots("morning", &c), -EINVAL);

        assert_int_equal(tower_parse_quiet("21:00-06:00", &q), 0);
        assert_false(q.none);
        assert_true(tower_quiet_contains(&q, 22 * 3600));
        assert_true(tower_quiet_contains(&q, 3 * 3600));
        assert_false(tower_quiet_contains(&q, 6 * 3600));
        assert_false(tower_quiet_contains(&q, 12 * 3600));
        assert_true(tower_quiet_contains(&q, 21 * 3600));
        assert_int_equal(tower_parse_quiet("12:00 - 13:00", &q), 0);
        assert_true(tower_quiet_contains(&q, 12 * 3600 + 1));
        assert_false(tower_quiet_contains(&q, 13 * 3600));
        assert_int_equal(tower_parse_quiet("none", &q), 0);
        assert_true(q.none);
        assert_false(tower_quiet_contains(&q, 22 * 3600));
        assert_int_equal(tower_parse_quiet("21:00", &q), -EINVAL);
        assert_int_equal(tower_parse_quiet("21:00-21:00", &q), -EINVAL);

        assert_int_equal(tower_parse_villages("1-3, 7, 9-10", seen), 6);
        assert_true(seen[1] && seen[3] && seen[7] && seen[10]);
        assert_false(seen[4] || seen[8] || seen[11]);
        memset(seen, 0, sizeof seen);
        assert_int_equal(tower_parse_villages("0", seen), -EINVAL);
        assert_int_equal(tower_parse_villages("5-3", seen), -EINVAL);
        assert_int_equal(tower_parse_villages("1000", seen), -EINVAL);
        assert_int_equal(tower_parse_villages("1, x", seen), -EINVAL);
        assert_int_equal(tower_parse_villages("", seen), -EINVAL);

        assert_int_equal(plugin_parse_duration("5s", &d), 0);
        assert_int_equal(d, 5 * SEC);
        assert_int_equal(plugin_parse_duration("2h", &d), 0);
        assert_int_equal(d, 7200 * SEC);
        assert_int_equal(plugin_parse_duration("90", &d), 0);
        assert_int_equal(d, 90 * SEC);
        assert_int_equal(plugin_parse_duration("500ms", &d), 0);
        assert_int_equal(d, 500000);
        assert_int_equal(plugin_parse_duration("soon", &d), -EINVAL);
        assert_int_equal(plugin_parse_duration("5 weeks", &d), -EINVAL);

        assert_int_equal(tower_parse_broker("mqtt://127.0.0.1:1884", &host, &port, &tls), 0);
        assert_string_equal(host, "127.0.0.1");
        assert_int_equal(port, 1884);
        assert_false(tls);
        free(host);
        assert_int_equal(tower_parse_broker("mqtts://broker.bokaeo.go.th", &host, &port, &tls), 0);
        assert_int_equal(port, 8883);
        assert_true(tls);
        free(host);
        assert_int_equal(tower_parse_broker("mqtt://[::1]:1883", &host, &port, &tls), 0);
        assert_string_equal(host, "::1");
        free(host);
        assert_int_equal(tower_parse_broker("http://x", &host, &port, &tls), -EPROTO);
        assert_int_equal(tower_parse_broker("mqtt://", &host, &port, &tls), -EINVAL);
        assert_int_equal(tower_parse_broker("mqtt://h:99999", &host, &port, &tls), -EINVAL);
        assert_int_equal(tower_parse_broker("mqtt://us er@h", &host, &port, &tls), -EINVAL);

        assert_true(tower_topic_prefix_valid("bokaeo/tower"));
        assert_false(tower_topic_prefix_valid("bokaeo/#"));
        assert_false(tower_topic_prefix_valid("/bokaeo"));
        assert_false(tower_topic_prefix_valid("a//b"));
        assert_true(tower_id_valid("20261125-ab12cd"));
        assert_false(tower_id_valid("a..b"));
        assert_false(tower_id_valid(".hidden"));
        assert_false(tower_id_valid("ไทย"));
}

/* ---- play instants ---- */

static void test_next_slot(void **state) {
        TowerPlanConfig c = default_slots();
        TowerQuiet q = default_quiet();
        prakat_usec_t out[TOWER_PLAY_AT_MAX];
        unsigned flags;
        size_t n;

        /* 05:00 in Bangkok (22:00Z the day before): the 07:00 slot of the same local day. */
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2026-11-25T22:00:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-26T00:00:00Z");
        /* Exactly at 07:00: the next one, 17:00. */
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2026-11-26T00:00:00Z", 0, out, &flags);
        assert_string_equal(fmt(out[0]), "2026-11-26T10:00:00Z");
        /* 22:30: quiet hours; tomorrow 07:00.  Urgent the same (the tower puts it first). */
        n = plan(&c, &q, PRAKAT_PRIORITY_URGENT, NULL, 0, "2026-11-26T15:30:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-27T00:00:00Z");
        assert_int_equal(flags, 0);
        /* New year's eve, 23:59:50 local: 1 January 07:00. */
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2026-12-31T16:59:50Z", 0, out, &flags);
        assert_string_equal(fmt(out[0]), "2027-01-01T00:00:00Z");
}

static void test_midnight_slot(void **state) {
        TowerPlanConfig c;
        TowerQuiet none = { .none = true };
        prakat_usec_t out[TOWER_PLAY_AT_MAX];
        unsigned flags;

        assert_int_equal(tower_parse_slots("00:00, 12:00", &c), 0);
        /* 23:59:40 on 26 Nov in Bangkok: midnight is the 27th, 00:00 local = 17:00Z on the 26th. */
        assert_int_equal(plan(&c, &none, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2026-11-26T16:59:40Z", 0, out, &flags), 1);
        assert_string_equal(fmt(out[0]), "2026-11-26T17:00:00Z");
        /* The end of February in a common year. */
        assert_int_equal(plan(&c, &none, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2027-02-28T16:00:00Z", 0, out, &flags), 1);
        assert_string_equal(fmt(out[0]), "2027-02-28T17:00:00Z"); /* 1 March 00:00 local */
}

static void test_emergency(void **state) {
        TowerPlanConfig c = default_slots();
        TowerQuiet q = default_quiet();
        prakat_usec_t out[TOWER_PLAY_AT_MAX];
        const char *at[] = { "evening" };
        unsigned flags;
        size_t n;

        /* 22:30: at once, quiet hours or not, to the whole second. */
        n = tower_plan_instants(&c, &q, PRAKAT_PRIORITY_EMERGENCY, NULL, 0, utc("2026-11-26T15:30:00Z") + 123456, 0,
                                out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-26T15:30:00Z");
        /* Plus what it asked for. */
        n = plan(&c, &q, PRAKAT_PRIORITY_EMERGENCY, at, 1, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 2);
        assert_string_equal(fmt(out[0]), "2026-11-26T02:00:00Z");
        assert_string_equal(fmt(out[1]), "2026-11-26T10:00:00Z");
}

static void test_broadcast_at(void **state) {
        TowerPlanConfig c = default_slots();
        TowerQuiet q = default_quiet(), village2;
        prakat_usec_t out[TOWER_PLAY_AT_MAX];
        unsigned flags;
        size_t n;

        /* Slot names: morning is the first slot, evening the last; the next of each after now (09:00). */
        const char *names[] = { "evening", "morning" };
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, names, 2, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 2);
        assert_string_equal(fmt(out[0]), "2026-11-26T10:00:00Z");
        assert_string_equal(fmt(out[1]), "2026-11-27T00:00:00Z");

        /* A time inside quiet hours (22:35) moves to the next allowed slot; with quiet hours that
         * end earlier for this village, it stays. */
        const char *late[] = { "2026-11-26T15:35:00Z" };
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, late, 1, "2026-11-26T15:30:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-27T00:00:00Z");
        assert_true(flags & TOWER_PLAN_MOVED_QUIET);
        assert_int_equal(tower_parse_quiet("23:00-05:00", &village2), 0);
        n = plan(&c, &village2, PRAKAT_PRIORITY_NORMAL, late, 1, "2026-11-26T15:30:00Z", 0, out, &flags);
        assert_string_equal(fmt(out[0]), "2026-11-26T15:35:00Z");
        assert_int_equal(flags, 0);

        /* Times that passed are dropped (a minute of grace); nothing left: the next slot. */
        const char *past[] = { "2026-11-26T01:00:00Z", "2026-11-26T01:59:30Z" };
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, past, 2, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-26T01:59:30Z");
        assert_true(flags & TOWER_PLAN_DROPPED_PAST);
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, past, 1, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_string_equal(fmt(out[0]), "2026-11-26T10:00:00Z");

        /* Duplicates go, the result is sorted. */
        const char *dups[] = { "2026-11-27T10:00:00Z", "evening", "2026-11-26T10:00:00Z" };
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, dups, 3, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 2);
        assert_string_equal(fmt(out[0]), "2026-11-26T10:00:00Z");
        assert_string_equal(fmt(out[1]), "2026-11-27T10:00:00Z");

        /* Expires drops what comes at or after it; nothing may be left. */
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, dups, 3, "2026-11-26T02:00:00Z", utc("2026-11-27T00:00:00Z"), out,
                 &flags);
        assert_int_equal(n, 1);
        assert_true(flags & TOWER_PLAN_DROPPED_EXPIRY);
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, NULL, 0, "2026-11-26T02:00:00Z", utc("2026-11-26T05:00:00Z"), out,
                 &flags);
        assert_int_equal(n, 0);

        /* Never more than the tower takes. */
        const char *many[150];
        char buffers[150][21];
        for (int i = 0; i < 150; i++) {
                tower_format_utc(utc("2026-11-27T00:00:00Z") + (prakat_usec_t) i * 3600 * SEC, buffers[i]);
                many[i] = buffers[i];
        }
        TowerQuiet none = { .none = true };
        n = plan(&c, &none, PRAKAT_PRIORITY_NORMAL, many, 150, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, TOWER_PLAY_AT_MAX);
        assert_true(flags & TOWER_PLAN_TOO_MANY);

        const char *junk[] = { "tomorrowish" };
        n = plan(&c, &q, PRAKAT_PRIORITY_NORMAL, junk, 1, "2026-11-26T02:00:00Z", 0, out, &flags);
        assert_int_equal(n, 1);
        assert_true(flags & TOWER_PLAN_BAD_SLOT);
}

/* ---- the item state ---- */

static TowerItem *sample_item(void) {
        TowerItem *item = calloc(1, sizeof(TowerItem));
        item->id = strdup("20261125-ab12cd");
        item->title = strdup("ประกาศงดจ่ายน้ำประปา");
        item->text = strdup("วันพรุ่งนี้\nตั้งแต่ 9 โมง");
        item->priority = PRAKAT_PRIORITY_URGENT;
        item->repeat = 2;
        item->gap = 5;
        item->planned = utc("2026-11-25T03:00:00Z");
        item->deadline = utc("2026-11-26T02:00:00Z");
        item->records = calloc(3, sizeof(TowerRecord));
        for (unsigned v = 1; v <= 3; v += 2) {
                TowerRecord *r = &item->records[item->n_records++];
                r->village = v;
                r->slots = calloc(2, sizeof(TowerSlot));
                r->slots[r->n_slots++] = (TowerSlot) { .at = utc("2026-11-26T00:00:00Z") };
                r->slots[r->n_slots++] = (TowerSlot) { .at = utc("2026-11-26T10:00:00Z") };
        }
        return item;
}

static void test_item_json(void **state) {
        TowerItem *item = sample_item(), *back = NULL;
        char *json, *again;

        item->records[1].announce_acked = true;
        item->records[1].slots[0].state = TOWER_SLOT_PLAYED;
        item->records[1].slots[0].detail = strdup("played 2 of 2 times (recorded audio)");
        item->withdrawn_by = strdup("20261125-other");
        json = tower_item_to_json(item);
        assert_int_equal(tower_item_from_json(json, strlen(json), &back), 0);
        again = tower_item_to_json(back);
        assert_string_equal(json, again);
        assert_non_null(tower_item_record(back, 3));
        assert_null(tower_item_record(back, 2));
        assert_int_equal(tower_item_record(back, 3)->slots[0].state, TOWER_SLOT_PLAYED);
        assert_true(tower_item_record(back, 3)->announce_acked);
        free(json);
        free(again);
        tower_item_free(back);
        tower_item_free(item);

        assert_int_equal(tower_item_from_json("{}", 2, &back), -EINVAL);
        assert_int_equal(tower_item_from_json("not json", 8, &back), -EINVAL);
        const char *unsorted = "{\"v\":1,\"id\":\"x\",\"villages\":[{\"n\":3,\"slots\":[]},{\"n\":1,\"slots\":[]}]}";
        assert_int_equal(tower_item_from_json(unsorted, strlen(unsorted), &back), -EINVAL);
}

static void test_acks(void **state) {
        TowerItem *item = sample_item();
        TowerRecord *r = tower_item_record(item, 1);
        prakat_usec_t s1 = utc("2026-11-26T00:00:00Z"), s2 = utc("2026-11-26T10:00:00Z");

        assert_true(tower_record_apply_ack(r, TOWER_SLOT_SCHEDULED, s1, "scheduled"));
        assert_false(tower_record_apply_ack(r, TOWER_SLOT_SCHEDULED, s1, "scheduled")); /* twice */
        assert_false(tower_record_apply_ack(r, TOWER_SLOT_PLAYED, utc("2026-11-26T05:00:00Z"), NULL)); /* not ours */
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_PLAYING, s1, "play 1 of 2"));
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_PLAYED, s1, "played 2 of 2 times"));
        assert_false(tower_record_apply_ack(r, TOWER_SLOT_SCHEDULED, s1, "already scheduled")); /* final sticks */
        assert_false(tower_record_final(r));
        /* slot null: scheduled for what was only sent; a final state for every open slot. */
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_SKIPPED, 0, "cancelled"));
        assert_true(tower_record_final(r));
        assert_int_equal(r->slots[0].state, TOWER_SLOT_PLAYED);
        assert_int_equal(r->slots[1].state, TOWER_SLOT_SKIPPED);
        assert_string_equal(r->slots[1].detail, "cancelled");
        /* A real play outranks a skip. */
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_PLAYED, s2, "played 1 of 2 times"));
        assert_int_equal(r->slots[1].state, TOWER_SLOT_PLAYED);

        /* An emergency's at-once play comes with slot null: the earliest open slot. */
        r = tower_item_record(item, 3);
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_PLAYED, 0, "played"));
        assert_int_equal(r->slots[0].state, TOWER_SLOT_PLAYED);
        assert_int_equal(r->slots[1].state, TOWER_SLOT_SENT);
        /* A hostile detail is cut and cleaned. */
        char big[1000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        big[3] = '\n';
        assert_true(tower_record_apply_ack(r, TOWER_SLOT_FAILED, s2, big));
        assert_int_equal(strlen(r->slots[1].detail), TOWER_DETAIL_MAX);
        assert_null(strchr(r->slots[1].detail, '\n'));
        tower_item_free(item);
}

static void test_ack_line(void **state) {
        char *line = tower_ack_line("20261125-ab12cd", 7, 1795651200ULL * SEC, TOWER_SLOT_PLAYED, "played ๑ ครั้ง");
        char *id = NULL, *detail = NULL;
        unsigned v;
        prakat_usec_t slot;
        TowerSlotState st;

        assert_non_null(line);
        assert_int_equal(tower_ack_line_parse(line, strlen(line), &id, &v, &slot, &st, &detail), 0);
        assert_string_equal(id, "20261125-ab12cd");
        assert_int_equal(v, 7);
        assert_int_equal(slot, 1795651200ULL * SEC);
        assert_int_equal(st, TOWER_SLOT_PLAYED);
        assert_string_equal(detail, "played ๑ ครั้ง");
        free(id);
        free(detail);
        free(line);
        assert_int_equal(tower_ack_line_parse("{\"i\":\"x\"", 8, &id, &v, &slot, &st, &detail), -EINVAL);
        assert_int_equal(tower_ack_line_parse("{\"i\":\"a..b\",\"v\":1,\"s\":0,\"st\":\"played\"}", 40, &id, &v, &slot,
                                              &st, &detail), -EINVAL);
}

/* ---- the plugin's preview ---- */

static int stub_io_watch(const prakat_host *host, int fd, uint32_t events, prakat_io_fn fn, void *userdata,
                         prakat_io **ret_io) {
        return -EOPNOTSUPP;
}

static int stub_io_set_events(prakat_io *io, uint32_t events) {
        return -EOPNOTSUPP;
}

static void stub_io_cancel(prakat_io *io) {
}

static void stub_job_note(const prakat_host *host, prakat_job *job, const char *message, const char *message_th) {
}

/*
 * The preview is the plan publish() makes, in words: per village its times, then repeat, priority
 * and the spoken text; nothing is planned, stored or sent.
 */
static void test_preview(void **state) {
        char dir[] = "/tmp/prakat-test-tower-preview-XXXXXX";
        FakeHost fake;
        void *instance = NULL;
        char error[256] = "", *text = NULL;
        unsigned line = 0;
        static const unsigned villages[] = { 1, 3, 7 };

        assert_non_null(mkdtemp(dir));
        fake_host_init(&fake, dir);
        fake.host.channel = "tower";
        fake.host.io_watch = stub_io_watch;
        fake.host.io_set_events = stub_io_set_events;
        fake.host.io_cancel = stub_io_cancel;
        fake.host.job_note = stub_job_note;
        fake.quiet = true;
        fake.now = utc("2026-11-25T02:00:00Z"); /* 09:00 in Bangkok: the next slot is 17:00 */
        prakat_config_entry entries[] = {
                { "broker", "mqtt://127.0.0.1:9", 2 },
                { "topic_prefix", "bokaeo/test", 3 },
                { "villages", "1-3", 4 },
                { "gap", "2s", 5 },
        };
        assert_int_equal(tower_plugin.configure(&fake.host, entries, 4, &instance, error, sizeof error, &line), 0);
        prakat_announcement a = {
                .id = "pv1", .title = "ประชุมประชาคม", .body = "เชิญทุกบ้าน", .category = "ข่าว",
                .publish_at = fake.now, .villages = villages, .n_villages = 3, .repeat = 2,
                .priority = PRAKAT_PRIORITY_URGENT,
        };
        assert_true(PRAKAT_PLUGIN_HAS(&tower_plugin, preview));
        assert_int_equal(tower_plugin.preview(instance, &a, NULL, &text), 0);
        assert_non_null(strstr(text, "priority: urgent; เล่นซ้ำ / repeat: 2 (gap 2 s)\n"));
        assert_non_null(strstr(text, "หมู่ 1 / village 1: 25 พฤศจิกายน 2569 เวลา 17:00 น. (2026-11-25T10:00:00Z)\n"
                                     "หมู่ 3 / village 3: 25 พฤศจิกายน 2569 เวลา 17:00 น. (2026-11-25T10:00:00Z)\n"));
        assert_null(strstr(text, "village 2:"));
        assert_non_null(strstr(text, "no tower in village(s) 7\n"));
        assert_non_null(strstr(text, "-----\nประชุมประชาคม\n\nเชิญทุกบ้าน\n-----\n"));
        assert_null(tower_lookup(instance, "pv1")); /* nothing planned */
        free(text);
        a.id = "a..b";
        assert_int_equal(tower_plugin.preview(instance, &a, NULL, &text), -EINVAL);
        tower_plugin.destroy(instance);
        assert_int_equal(fake_host_done(&fake), 0);
        char *rm = NULL;
        assert_true(asprintf(&rm, "rm -rf %s", dir) > 0);
        assert_int_equal(system(rm), 0);
        free(rm);
}

int main(void) {
        setenv("TZ", "Asia/Bangkok", 1);
        tzset();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_values), cmocka_unit_test(test_next_slot),
                cmocka_unit_test(test_midnight_slot), cmocka_unit_test(test_emergency),
                cmocka_unit_test(test_broadcast_at), cmocka_unit_test(test_item_json),
                cmocka_unit_test(test_acks), cmocka_unit_test(test_ack_line),
                cmocka_unit_test(test_preview),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
