/* SPDX-License-Identifier: MIT */
/*
 * The tower agent's parsers (src/tower/tower-item.c, tower-schedule.c) on what anybody who can publish
 * to the broker sends: a JSON object is an announce message, an array a schedule message, and either
 * is also tried as the agent's own state file.  What is accepted goes through the schedule as the
 * agent would use it (sweep, pick, finish a play, save and load again).
 */
#include "fuzz.h"
#include "log.h"
#include "tower/tower-schedule.h"

#define NOW (UINT64_C(1764039600) * USEC_PER_SEC) /* 2026-11-25 03:00 UTC */

static void on_ack(void *userdata, const char *id, const char *state, const TowerSlot *slot, const char *detail) {
        FUZZ_CHECK(id && state);
        (*(unsigned *) userdata)++;
}

static void exercise(TowerSchedule *s) {
        TowerItem *item;
        TowerSlot *slot;

        for (usec_t now = NOW; now < NOW + 2 * USEC_PER_DAY; now += 6 * USEC_PER_HOUR) {
                tower_schedule_sweep(s, now);
                if (tower_schedule_pick(s, now, &item, &slot)) {
                        tower_schedule_set_current(s, item, slot);
                        (void) tower_schedule_emergency_due(s, now);
                        tower_schedule_finish_play(s, item->id, slot->at, slot->on_arrival, true);
                }
                (void) tower_schedule_next_wake(s, now);
        }
        json_t *saved = tower_schedule_to_json(s);
        TowerSchedule *again = tower_schedule_new(5 * USEC_PER_MINUTE, NULL, NULL);
        FUZZ_CHECK(tower_schedule_load_json(again, saved) == 0);
        FUZZ_CHECK(tower_schedule_size(again) == tower_schedule_size(s));
        tower_schedule_free(again);
        json_decref(saved);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned acks = 0;
        json_error_t error;
        json_t *o, *e;
        size_t i;

        log_set_max_level(LOG_CRIT);
        if (size > TOWER_ANNOUNCE_MAX_BYTES)
                return 0;
        o = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &error);
        if (!o)
                return 0;
        TowerSchedule *s = tower_schedule_new(5 * USEC_PER_MINUTE, on_ack, &acks);
        if (json_is_object(o)) {
                char *id = NULL, *message = NULL;
                TowerItem *item = NULL;
                TowerAction action;
                if (tower_item_from_json(o, true, &action, &item, &id, &message) == 0) {
                        FUZZ_CHECK(id && tower_id_valid(id) && (item || action == TOWER_ACTION_CANCEL));
                        if (item) {
                                json_t *wire = tower_item_to_json(item);
                                char *id2 = NULL, *message2 = NULL;
                                TowerItem *copy = NULL;
                                FUZZ_CHECK(tower_item_from_json(wire, false, NULL, &copy, &id2, &message2) == 0);
                                FUZZ_CHECK(tower_item_same_content(item, copy));
                                free(tower_item_speech(copy));
                                tower_item_free(copy);
                                free(id2);
                                json_decref(wire);
                        }
                        tower_schedule_announce(s, action, id, item, NOW);
                } else
                        FUZZ_CHECK(message && !item);
                free(id);
                free(message);
                (void) tower_schedule_load_json(s, o);
        } else if (json_is_array(o) && json_array_size(o) <= TOWER_SCHEDULE_MAX_ITEMS) {
                TowerItem **items = calloc(json_array_size(o) + 1, sizeof(TowerItem *));
                size_t n = 0;
                FUZZ_CHECK(items);
                json_array_foreach(o, i, e) {
                        char *id = NULL, *message = NULL;
                        if (tower_item_from_json(e, false, NULL, &items[n], &id, &message) == 0)
                                n++;
                        free(id);
                        free(message);
                }
                tower_schedule_replace(s, items, n, NOW);
        }
        exercise(s);
        tower_schedule_free(s);
        json_decref(o);
        return 0;
}
