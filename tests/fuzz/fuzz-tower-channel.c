/* SPDX-License-Identifier: MIT */
/*
 * The tower channel's parsers (channels/tower/plan.c and store.c, included whole as the unit tests
 * do): an ack as a tower sends it (checked the way tower.c's handle_ack() checks it, then applied to a
 * record), a line of acks.log, an item file, and the config values.  The input is split at its
 * first NUL: what comes before is the text for the value parsers, the whole of it is the JSON.
 */
#include "fuzz.h"
#include "tower/plan.c"
#include "tower/store.c"

static void ack_message(const char *payload, size_t size, TowerRecord *r) {
        json_t *o = json_loadb(payload, size, JSON_REJECT_DUPLICATES, NULL);
        prakat_usec_t slot = 0;
        const json_t *jslot, *jdetail;
        int state;

        if (!json_is_object(o)) {
                json_decref(o);
                return;
        }
        jslot = json_object_get(o, "slot");
        jdetail = json_object_get(o, "detail");
        state = tower_slot_state_from_name(json_string_value(json_object_get(o, "state")));
        if (tower_id_valid(json_string_value(json_object_get(o, "id"))) && state >= 0 &&
            (!jslot || json_is_null(jslot) || tower_parse_utc(json_string_value(jslot), &slot) == 0) &&
            (!jdetail || json_is_null(jdetail) || json_is_string(jdetail)))
                (void) tower_record_apply_ack(r, (TowerSlotState) state, slot, json_string_value(jdetail));
        json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = fuzz_string(data, size), *host = NULL, *id = NULL, *detail = NULL;
        bool seen[TOWER_VILLAGE_MAX + 1] = { false }, tls;
        TowerSlot slots[2] = { { .at = 1764115200ULL * TOWER_SEC }, { .at = 1764151200ULL * TOWER_SEC } };
        TowerRecord record = { .village = 3, .slots = slots, .n_slots = 2 };
        TowerPlanConfig plan;
        TowerQuiet quiet;
        TowerSlotState state;
        TowerItem *item = NULL;
        prakat_usec_t t, out[TOWER_PLAY_AT_MAX];
        unsigned value, port, village, flags = 0;

        (void) tower_parse_time_of_day(text, &value);
        if (tower_parse_slots(text, &plan) == 0 && tower_parse_quiet("21:00-06:00", &quiet) == 0) {
                const char *at[] = { "morning", "evening", "2026-11-26T00:00:00Z" };
                size_t n = tower_plan_instants(&plan, &quiet, PRAKAT_PRIORITY_NORMAL, at, 3, 1764039600ULL * TOWER_SEC,
                                               0, out, &flags);
                FUZZ_CHECK(n <= TOWER_PLAY_AT_MAX);
        }
        (void) tower_parse_quiet(text, &quiet);
        (void) tower_parse_villages(text, seen);
        if (tower_parse_broker(text, &host, &port, &tls) == 0)
                FUZZ_CHECK(host && port > 0 && port < 65536);
        free(host);
        (void) tower_topic_prefix_valid(text);
        if (tower_parse_utc(text, &t) == 0) {
                char buffer[21];
                FUZZ_CHECK(strlen(tower_format_utc(t, buffer)) == 20);
        }

        ack_message((const char *) data, size, &record);
        for (size_t i = 0; i < record.n_slots; i++)
                free(record.slots[i].detail);
        if (tower_ack_line_parse((const char *) data, size, &id, &village, &t, &state, &detail) == 0) {
                FUZZ_CHECK(id && state < _TOWER_SLOT_STATE_MAX);
                char *line = tower_ack_line(id, village, t, state, detail);
                FUZZ_CHECK(line);
                free(line);
        }
        free(id);
        free(detail);
        if (tower_item_from_json((const char *) data, size, &item) == 0) {
                char *again = tower_item_to_json(item);
                TowerItem *copy = NULL;
                FUZZ_CHECK(again && tower_item_from_json(again, strlen(again), &copy) == 0);
                tower_item_free(copy);
                free(again);
                tower_item_free(item);
        }
        free(text);
        return 0;
}
