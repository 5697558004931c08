/* SPDX-License-Identifier: MIT */
/*
 * The tower agent's item checks and schedule rules, driven directly with a clock the test sets: what
 * is refused and why, play order at one instant, repeat counting, emergencies (at once, pre-empting,
 * collapsing past instants), late slots, expiry, cancel/update/replace and the acks each of them owes
 * the daemon, and the state file's round trip.  The sources are included whole (the Makefile's unit
 * rule links only libprakat.a).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tower/tower-item.c"
#include "tower/tower-schedule.c"

#define SEC USEC_PER_SEC
#define T0 (1795654800ULL * SEC) /* 2026-11-26T07:00:00Z */

/* ---- acks the schedule emits ---- */

typedef struct Ack {
        char id[80], state[16], detail[200];
        usec_t slot; /* 0: null */
} Ack;

static Ack acks[256];
static size_t n_acks;

static void record_ack(void *userdata, const char *id, const char *state, const TowerSlot *slot, const char *detail) {
        assert_true(n_acks < ELEMENTSOF(acks));
        Ack *a = &acks[n_acks++];
        snprintf(a->id, sizeof a->id, "%s", id);
        snprintf(a->state, sizeof a->state, "%s", state);
        snprintf(a->detail, sizeof a->detail, "%s", detail ? detail : "");
        a->slot = slot ? slot->at : 0;
}

static const Ack *find_ack(const char *id, const char *state) {
        for (size_t i = 0; i < n_acks; i++)
                if (streq(acks[i].id, id) && streq(acks[i].state, state))
                        return &acks[i];
        return NULL;
}

static size_t count_acks(const char *id, const char *state) {
        size_t n = 0;
        for (size_t i = 0; i < n_acks; i++)
                n += streq(acks[i].id, id) && streq(acks[i].state, state);
        return n;
}

static int setup(void **state) {
        n_acks = 0;
        return 0;
}

/* ---- helpers ---- */

static char *iso(usec_t t) {
        char buf[21];
        return xstrdup(tower_format_utc(t, buf));
}

/* Parses an announce (with_action) or schedule element; asserts success. */
static TowerItem *parse(const char *text, bool with_action, TowerAction *ret_action) {
        json_error_t error;
        json_t *o = json_loads(text, 0, &error);
        TowerItem *item = NULL;
        char *id = NULL, *err = NULL;

        if (!o)
                fail_msg("bad test JSON: %s: %s", error.text, text);
        if (tower_item_from_json(o, with_action, ret_action, &item, &id, &err) < 0)
                fail_msg("refused: %s: %s", err, text);
        json_decref(o);
        free(id);
        return item;
}

/* An item with up to two instants (0: none), built through the parser. */
static TowerItem *make(const char *id, const char *priority, usec_t at, usec_t at2, unsigned repeat) {
        _cleanup_free_ char *a = at ? iso(at) : NULL, *b = at2 ? iso(at2) : NULL, *play_at = NULL, *text = NULL;

        play_at = b ? xasprintf("\"%s\",\"%s\"", a, b) : a ? xasprintf("\"%s\"", a) : xstrdup("");
        text = xasprintf("{\"v\":1,\"id\":\"%s\",\"title\":\"%s\",\"text\":\"t\",\"play_at\":[%s],\"repeat\":%u,"
                         "\"gap\":1,\"priority\":\"%s\"}", id, id, play_at, repeat, priority);
        return parse(text, false, NULL);
}

static void expect_refused(const char *text, bool with_action, const char *needle, bool id_kept) {
        json_t *o = json_loads(text, 0, NULL);
        TowerItem *item = NULL;
        char *id = NULL, *err = NULL;

        assert_non_null(o);
        assert_int_equal(tower_item_from_json(o, with_action, NULL, &item, &id, &err), -EINVAL);
        assert_null(item);
        if (!strstr(err, needle))
                fail_msg("error '%s' lacks '%s' (payload %s)", err, needle, text);
        assert_true((id != NULL) == id_kept);
        free(id);
        free(err);
        json_decref(o);
}

/* Plays what is due now to the end (every repetition), as the agent would. */
static const char *play_next(TowerSchedule *s, usec_t now) {
        static char played[80];
        TowerItem *item;
        TowerSlot *slot;

        if (!tower_schedule_pick(s, now, &item, &slot))
                return NULL;
        snprintf(played, sizeof played, "%s", item->id);
        tower_schedule_set_current(s, item, slot);
        while (tower_schedule_finish_play(s, played, slot->at, slot->on_arrival, true)) {
                item = tower_schedule_find(s, played);
                slot = tower_item_find_slot(item, slot->at, slot->on_arrival);
                if (slot->state != TOWER_SLOT_PENDING)
                        break;
        }
        return played;
}

/* ---- item checks ---- */

static void test_item_valid(void **state) {
        TowerAction action;
        TowerItem *item = parse("{\"v\":1,\"id\":\"20261125-ab12cd\",\"action\":\"add\",\"title\":\"ประกาศ\","
                                "\"text\":\"งดจ่ายน้ำ\",\"audio_url\":null,\"play_at\":[\"2026-11-26T10:00:00Z\","
                                "\"2026-11-26T00:00:00Z\",\"2026-11-26T10:00:00Z\"],\"repeat\":2,\"gap\":7,"
                                "\"priority\":\"urgent\",\"expires\":\"2026-11-27T00:00:00Z\",\"extra\":true}",
                                true, &action);

        assert_int_equal(action, TOWER_ACTION_ADD);
        assert_string_equal(item->id, "20261125-ab12cd");
        assert_string_equal(item->title, "ประกาศ");
        assert_null(item->audio_url);
        assert_int_equal(item->n_play_at, 2); /* sorted, duplicates gone */
        assert_true(item->play_at[0] < item->play_at[1]);
        assert_int_equal(item->repeat, 2);
        assert_int_equal(item->gap, 7);
        assert_int_equal(item->priority, TOWER_PRIORITY_URGENT);
        assert_true(item->expires > item->play_at[1]);
        tower_item_free(item);

        /* Defaults: repeat 1, gap 5, normal; an emergency needs no play_at; an empty audio_url is none. */
        item = parse("{\"id\":\"e\",\"action\":\"add\",\"title\":\"x\",\"priority\":\"emergency\",\"audio_url\":\"\"}",
                     true, &action);
        assert_int_equal(item->repeat, 1);
        assert_int_equal(item->gap, 5);
        assert_int_equal(item->n_play_at, 0);
        assert_null(item->audio_url);
        tower_item_free(item);

        /* A cancel needs the id only. */
        json_t *o = json_loads("{\"v\":1,\"id\":\"c-1\",\"action\":\"cancel\"}", 0, NULL);
        char *id = NULL, *err = NULL;
        assert_int_equal(tower_item_from_json(o, true, &action, &item, &id, &err), 0);
        assert_int_equal(action, TOWER_ACTION_CANCEL);
        assert_null(item);
        assert_string_equal(id, "c-1");
        free(id);
        json_decref(o);
}

static void test_item_refused(void **state) {
        static const char *const bad_ids[] = { "\"../etc\"", "\"a/b\"", "\"\"", "\".hidden\"", "\"a..b\"", "\"ก\"",
                                               "\"a b\"", "5", "null",
                                               "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" };
        for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
                _cleanup_free_ char *t = xasprintf("{\"id\":%s,\"action\":\"add\",\"title\":\"x\","
                                                   "\"play_at\":[\"2026-11-26T00:00:00Z\"]}", bad_ids[i]);
                expect_refused(t, true, "\"id\"", false);
        }
        expect_refused("[1]", true, "not a JSON object", false);
        expect_refused("{\"id\":\"a\",\"title\":\"x\"}", true, "\"action\" is missing", true);
        expect_refused("{\"id\":\"a\",\"action\":\"explode\"}", true, "not add, update or cancel", true);
        expect_refused("{\"id\":\"a\",\"action\":7}", true, "\"action\" is not a string", true);
        expect_refused("{\"v\":2,\"id\":\"a\",\"action\":\"add\"}", true, "\"v\" is not 1", true);
        expect_refused("{\"id\":\"a\",\"title\":5,\"play_at\":[\"2026-11-26T00:00:00Z\"]}", false, "\"title\" is not a string", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":\"2026-11-26T00:00:00Z\"}", false, "not an array", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"tomorrow\"]}", false, "instant", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T07:00:00+07:00\"]}", false, "instant", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-02-30T00:00:00Z\"]}", false, "instant", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],\"repeat\":\"3\"}", false,
                       "whole number", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],\"repeat\":11}", false,
                       "outside 1..10", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],\"gap\":-1}", false,
                       "outside", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],\"priority\":\"high\"}",
                       false, "\"priority\"", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],"
                       "\"audio_url\":\"file:///etc/passwd\"}", false, "audio_url", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],"
                       "\"audio_url\":\"http://a b/\"}", false, "audio_url", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[]}", false, "only an emergency", true);
        expect_refused("{\"id\":\"a\",\"play_at\":[\"2026-11-26T00:00:00Z\"]}", false, "nothing to play", true);
        expect_refused("{\"id\":\"a\",\"title\":\"x\",\"play_at\":[\"2026-11-26T00:00:00Z\"],\"expires\":1}", false,
                       "\"expires\"", true);

        /* Limits on everything a producer controls. */
        _cleanup_free_ char *long_title = xcalloc(TOWER_TITLE_MAX + 2, 1);
        memset(long_title, 'x', TOWER_TITLE_MAX + 1);
        _cleanup_free_ char *t = xasprintf("{\"id\":\"a\",\"title\":\"%s\",\"play_at\":[\"2026-11-26T00:00:00Z\"]}",
                                           long_title);
        expect_refused(t, false, "longer than", true);
        StrBuf many = {};
        strbuf_append(&many, "{\"id\":\"a\",\"title\":\"x\",\"play_at\":[");
        for (int i = 0; i <= TOWER_PLAY_AT_MAX; i++)
                strbuf_printf(&many, "%s\"2026-11-26T00:%02d:%02dZ\"", i ? "," : "", i / 60, i % 60);
        strbuf_append(&many, "]}");
        expect_refused(many.data, false, "more than", true);
        strbuf_free(&many);
}

static void test_item_round_trip(void **state) {
        TowerItem *a = parse("{\"id\":\"r\",\"title\":\"ก\",\"text\":null,\"audio_url\":\"https://x.th/a.mp3\","
                             "\"play_at\":[\"2026-11-26T00:00:00Z\"],\"expires\":\"2026-11-27T00:00:00Z\"}", false, NULL);
        json_t *o = tower_item_to_json(a);
        char *s = json_dumps(o, 0);
        TowerItem *b = parse(s, false, NULL);

        assert_true(tower_item_same_content(a, b));
        b->repeat = 2;
        assert_false(tower_item_same_content(a, b));
        char *speech = tower_item_speech(a);
        assert_string_equal(speech, "ก");
        free(speech);
        free(s);
        json_decref(o);
        tower_item_free(a);
        tower_item_free(b);
}

/* ---- the schedule ---- */

static void test_order_at_one_instant(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);

        tower_schedule_announce(s, TOWER_ACTION_ADD, "n1", make("n1", "normal", T0, 0, 1), T0 - 60 * SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "u1", make("u1", "urgent", T0, 0, 1), T0 - 50 * SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "n2", make("n2", "normal", T0, 0, 1), T0 - 40 * SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "u2", make("u2", "urgent", T0, 0, 1), T0 - 30 * SEC);
        assert_int_equal(count_acks("n1", "scheduled"), 1);
        assert_int_equal(find_ack("n1", "scheduled")->slot, T0);

        assert_null(play_next(s, T0 - SEC)); /* nothing before its time */
        assert_true(tower_schedule_next_wake(s, T0 - SEC) == T0);
        assert_string_equal(play_next(s, T0), "u1");
        assert_string_equal(play_next(s, T0 + SEC), "u2");
        assert_string_equal(play_next(s, T0 + 2 * SEC), "n1");
        assert_string_equal(play_next(s, T0 + 3 * SEC), "n2");
        assert_null(play_next(s, T0 + 4 * SEC));
        assert_true(tower_schedule_next_wake(s, T0 + 4 * SEC) == TOWER_USEC_INFINITY);
        tower_schedule_free(s);
}

static void test_repeat_and_current(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);
        TowerItem *item;
        TowerSlot *slot;

        tower_schedule_announce(s, TOWER_ACTION_ADD, "r", make("r", "normal", T0, 0, 3), T0 - SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "u", make("u", "urgent", T0 + SEC, 0, 1), T0 - SEC);
        assert_true(tower_schedule_pick(s, T0, &item, &slot));
        assert_string_equal(item->id, "r");
        tower_schedule_set_current(s, item, slot);
        assert_non_null(tower_schedule_finish_play(s, "r", T0, false, true));
        /* Between repetitions the unit keeps the speaker, even when an urgent item becomes due. */
        assert_true(tower_schedule_pick(s, T0 + 2 * SEC, &item, &slot));
        assert_string_equal(item->id, "r");
        assert_int_equal(slot->plays_done, 1);
        assert_non_null(tower_schedule_finish_play(s, "r", T0, false, false)); /* the second one fails */
        slot = tower_schedule_finish_play(s, "r", T0, false, true);
        assert_int_equal(slot->state, TOWER_SLOT_PLAYED);
        assert_int_equal(slot->plays_ok, 2);
        assert_false(tower_schedule_has_current(s));
        assert_true(tower_schedule_pick(s, T0 + 5 * SEC, &item, &slot));
        assert_string_equal(item->id, "u");
        tower_schedule_free(s);
}

static void test_emergency(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);
        TowerItem *item;
        TowerSlot *slot;
        usec_t now = T0 + 10 * SEC;

        /* A normal unit is playing... */
        tower_schedule_announce(s, TOWER_ACTION_ADD, "n", make("n", "normal", T0, 0, 1), T0 - SEC);
        assert_true(tower_schedule_pick(s, T0, &item, &slot));
        tower_schedule_set_current(s, item, slot);
        assert_false(tower_schedule_emergency_due(s, now));
        /* ...when an emergency arrives with no play_at: it gets an on-arrival slot, due now, acked with slot null. */
        tower_schedule_announce(s, TOWER_ACTION_ADD, "e", make("e", "emergency", 0, 0, 1), now);
        assert_int_equal(find_ack("e", "scheduled")->slot, 0);
        assert_non_null(strstr(find_ack("e", "scheduled")->detail, "at once"));
        assert_true(tower_schedule_emergency_due(s, now));
        assert_true(tower_schedule_pick(s, now, &item, &slot));
        assert_string_equal(item->id, "e");
        assert_true(slot->on_arrival);
        /* The pre-empted unit is not counted; after the emergency it comes back. */
        tower_schedule_set_current(s, item, slot);
        slot = tower_schedule_finish_play(s, "e", slot->at, true, true);
        assert_int_equal(slot->state, TOWER_SLOT_PLAYED);
        assert_string_equal(play_next(s, now + SEC), "n");

        /* An emergency whose instants are in the past (hours late, never "late"): the latest plays at once,
         * the older ones are skipped; a future one stays for its time. */
        usec_t t1 = now - 3 * USEC_PER_HOUR, t2 = now - 2 * USEC_PER_HOUR;
        _cleanup_free_ char *a = iso(t1), *b = iso(t2), *c = iso(now + USEC_PER_HOUR);
        _cleanup_free_ char *text = xasprintf("{\"id\":\"e2\",\"title\":\"x\",\"priority\":\"emergency\","
                                              "\"play_at\":[\"%s\",\"%s\",\"%s\"]}", a, b, c);
        n_acks = 0;
        tower_schedule_announce(s, TOWER_ACTION_ADD, "e2", parse(text, false, NULL), now);
        assert_int_equal(count_acks("e2", "skipped"), 1);
        assert_true(find_ack("e2", "skipped")->slot == t1);
        assert_int_equal(count_acks("e2", "scheduled"), 2);
        assert_true(tower_schedule_pick(s, now, &item, &slot));
        assert_true(slot->at == t2 && slot->due == now);
        assert_string_equal(play_next(s, now), "e2");
        assert_null(play_next(s, now + SEC));
        assert_true(tower_schedule_next_wake(s, now + SEC) == now + USEC_PER_HOUR);

        /* The same update twice (QoS 1 redelivery) does not play it twice. */
        n_acks = 0;
        tower_schedule_announce(s, TOWER_ACTION_UPDATE, "e2", parse(text, false, NULL), now + 2 * SEC);
        assert_null(play_next(s, now + 3 * SEC));
        assert_int_equal(count_acks("e2", "scheduled"), 1); /* acked again, for its future slot */
        tower_schedule_free(s);
}

static void test_late_and_expiry(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);
        usec_t back = T0 + 40 * USEC_PER_MINUTE; /* the tower comes back after a power cut */
        _cleanup_free_ char *exp = iso(T0 + USEC_PER_HOUR), *slot = iso(T0 + 2 * USEC_PER_HOUR);
        _cleanup_free_ char *text = xasprintf("{\"id\":\"x\",\"title\":\"x\",\"play_at\":[\"%s\"],\"expires\":\"%s\"}",
                                              slot, exp);

        tower_schedule_announce(s, TOWER_ACTION_ADD, "late", make("late", "normal", T0, 0, 1), T0 - USEC_PER_HOUR);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "ok", make("ok", "normal", T0 + 20 * USEC_PER_MINUTE, 0, 1),
                                T0 - USEC_PER_HOUR);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "x", parse(text, false, NULL), T0 - USEC_PER_HOUR);
        tower_schedule_sweep(s, back);
        const Ack *a = find_ack("late", "skipped");
        assert_non_null(a);
        assert_string_equal(a->detail, "late");
        assert_true(a->slot == T0);
        assert_string_equal(play_next(s, back), "ok"); /* 20 minutes late, within late_limit */
        assert_true(tower_schedule_next_wake(s, back) == T0 + USEC_PER_HOUR);
        tower_schedule_sweep(s, T0 + USEC_PER_HOUR);
        assert_string_equal(find_ack("x", "skipped")->detail, "expired");
        assert_null(tower_schedule_find(s, "x"));

        /* Arriving already expired: acked, not kept. */
        n_acks = 0;
        tower_schedule_announce(s, TOWER_ACTION_ADD, "x", parse(text, false, NULL), T0 + 2 * USEC_PER_HOUR);
        assert_string_equal(find_ack("x", "skipped")->detail, "expired");
        assert_null(tower_schedule_find(s, "x"));

        /* Finished items are forgotten a day after their last slot. */
        assert_non_null(tower_schedule_find(s, "ok"));
        tower_schedule_sweep(s, T0 + 2 * USEC_PER_DAY);
        assert_null(tower_schedule_find(s, "ok"));
        tower_schedule_free(s);
}

static void test_cancel_update_replace(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);
        TowerItem **items;

        tower_schedule_announce(s, TOWER_ACTION_ADD, "a", make("a", "normal", T0, T0 + USEC_PER_HOUR, 1), T0 - SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "b", make("b", "normal", T0, 0, 1), T0 - SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "c", make("c", "normal", T0, 0, 1), T0 - SEC);
        assert_string_equal(play_next(s, T0), "a");

        /* An update keeps what was played at the same instant: it never replays a played slot. */
        n_acks = 0;
        tower_schedule_announce(s, TOWER_ACTION_UPDATE, "a", make("a", "urgent", T0, T0 + USEC_PER_HOUR, 1), T0 + SEC);
        assert_int_equal(count_acks("a", "scheduled"), 1);
        assert_true(find_ack("a", "scheduled")->slot == T0 + USEC_PER_HOUR);
        assert_string_equal(play_next(s, T0 + SEC), "b");

        /* An add of a known id is acked again and changes nothing. */
        n_acks = 0;
        tower_schedule_announce(s, TOWER_ACTION_ADD, "b", make("b", "urgent", T0 + 5 * SEC, 0, 1), T0 + 2 * SEC);
        assert_int_equal(count_acks("b", "scheduled"), 1);
        assert_int_equal(tower_schedule_find(s, "b")->priority, TOWER_PRIORITY_NORMAL);

        /* Cancel: known or not, acked "cancelled". */
        tower_schedule_announce(s, TOWER_ACTION_CANCEL, "c", NULL, T0 + 2 * SEC);
        assert_string_equal(find_ack("c", "skipped")->detail, "cancelled");
        assert_null(tower_schedule_find(s, "c"));
        tower_schedule_announce(s, TOWER_ACTION_CANCEL, "nobody", NULL, T0 + 2 * SEC);
        assert_string_equal(find_ack("nobody", "skipped")->detail, "cancelled");

        /* A schedule replaces everything: a (pending slot left) is withdrawn, b (all played) silently,
         * d is new, a bad duplicate of d is ignored. */
        n_acks = 0;
        items = xcalloc(3, sizeof(TowerItem *));
        items[0] = make("d", "normal", T0 + USEC_PER_HOUR, 0, 1);
        items[1] = make("d", "urgent", T0 + USEC_PER_HOUR, 0, 1);
        tower_schedule_replace(s, items, 2, T0 + 3 * SEC);
        assert_string_equal(find_ack("a", "skipped")->detail, "removed from the schedule");
        assert_null(find_ack("b", "skipped"));
        assert_int_equal(count_acks("d", "scheduled"), 1);
        assert_int_equal(tower_schedule_size(s), 1);
        assert_int_equal(tower_schedule_find(s, "d")->priority, TOWER_PRIORITY_NORMAL);

        /* The same schedule again (a reconnect) changes nothing and acks nothing. */
        n_acks = 0;
        items = xcalloc(2, sizeof(TowerItem *));
        items[0] = make("d", "normal", T0 + USEC_PER_HOUR, 0, 1);
        tower_schedule_replace(s, items, 1, T0 + 4 * SEC);
        assert_int_equal(n_acks, 0);
        tower_schedule_free(s);
}

static void test_state_round_trip(void **state) {
        TowerSchedule *s = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);
        TowerSchedule *t = tower_schedule_new(30 * USEC_PER_MINUTE, record_ack, NULL);

        tower_schedule_announce(s, TOWER_ACTION_ADD, "a", make("a", "normal", T0, T0 + USEC_PER_HOUR, 2), T0 - SEC);
        tower_schedule_announce(s, TOWER_ACTION_ADD, "e", make("e", "emergency", 0, 0, 1), T0 + 2 * SEC);
        assert_string_equal(play_next(s, T0 + 2 * SEC), "e");
        assert_string_equal(play_next(s, T0 + 3 * SEC), "a");
        assert_true(tower_schedule_dirty(s));

        json_t *o = tower_schedule_to_json(s);
        char *text = json_dumps(o, 0);
        json_t *back = json_loads(text, 0, NULL);
        assert_int_equal(tower_schedule_load_json(t, back), 0);
        assert_false(tower_schedule_dirty(t));
        assert_int_equal(tower_schedule_size(t), 2);
        TowerItem *a = tower_schedule_find(t, "a");
        assert_int_equal(a->slots[0].state, TOWER_SLOT_PLAYED);
        assert_int_equal(a->slots[0].plays_done, 2);
        assert_int_equal(a->slots[1].state, TOWER_SLOT_PENDING);
        assert_true(tower_schedule_find(t, "e")->slots[0].on_arrival);
        /* A restart replays nothing. */
        assert_null(play_next(t, T0 + 4 * SEC));
        /* A new arrival after a restart comes after the loaded ones. */
        tower_schedule_announce(t, TOWER_ACTION_ADD, "z", make("z", "normal", T0 + 10 * SEC, 0, 1), T0 + 5 * SEC);
        assert_true(tower_schedule_find(t, "z")->seq > tower_schedule_find(t, "e")->seq);

        /* A damaged item is dropped, the others load. */
        json_t *items = json_object_get(back, "items");
        json_object_set_new(json_array_get(items, 0), "id", json_string("../bad"));
        assert_int_equal(tower_schedule_load_json(t, back), 0);
        assert_int_equal(tower_schedule_size(t), 1);
        assert_int_equal(tower_schedule_load_json(t, json_array_get(items, 0)), -EINVAL);
        free(text);
        json_decref(o);
        json_decref(back);
        tower_schedule_free(s);
        tower_schedule_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_item_valid, setup),
                cmocka_unit_test_setup(test_item_refused, setup),
                cmocka_unit_test_setup(test_item_round_trip, setup),
                cmocka_unit_test_setup(test_order_at_one_instant, setup),
                cmocka_unit_test_setup(test_repeat_and_current, setup),
                cmocka_unit_test_setup(test_emergency, setup),
                cmocka_unit_test_setup(test_late_and_expiry, setup),
                cmocka_unit_test_setup(test_cancel_update_replace, setup),
                cmocka_unit_test_setup(test_state_round_trip, setup),
        };

        log_set_max_level(LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
