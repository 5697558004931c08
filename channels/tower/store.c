/* SPDX-License-Identifier: MIT */
/*
 * store.c: the plugin's memory of each announcement, and its form on disk.
 *
 * One item per announcement id, in host->state_dir/items/ID.json, written whole (temporary file,
 * fsync, rename, fsync of the folder) by tower.c whenever it changed.  An item holds its wire
 * fields as first planned, and one record per village: the play instants chosen for that village,
 * whether the broker took its announce and schedule, and what the tower acked for each instant.
 *
 * Acks arrive by the thousand, so they are not rewritten into the item files one by one: each is
 * appended to acks.log as it arrives (a write(), which survives a crash of prakatd; fdatasync'd
 * with the next flush), replayed over the items at start, and folded into the item files when
 * the log grows or the plugin stops.
 */
#include "tower-channel.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOWER_DETAIL_MAX 300

static const char *const slot_state_names[_TOWER_SLOT_STATE_MAX] = {
        [TOWER_SLOT_SENT] = "sent",
        [TOWER_SLOT_SCHEDULED] = "scheduled",
        [TOWER_SLOT_PLAYING] = "playing",
        [TOWER_SLOT_PLAYED] = "played",
        [TOWER_SLOT_FAILED] = "failed",
        [TOWER_SLOT_SKIPPED] = "skipped",
};

const char *tower_slot_state_name(TowerSlotState s) {
        return (unsigned) s < _TOWER_SLOT_STATE_MAX ? slot_state_names[s] : "?";
}

int tower_slot_state_from_name(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = TOWER_SLOT_SCHEDULED; i < _TOWER_SLOT_STATE_MAX; i++)
                if (!strcmp(slot_state_names[i], s))
                        return i;
        return -EINVAL;
}

static void record_clear(TowerRecord *r) {
        for (size_t k = 0; k < r->n_slots; k++)
                free(r->slots[k].detail);
        free(r->slots);
        r->slots = NULL;
        r->n_slots = 0;
}

TowerItem *tower_item_free(TowerItem *item) {
        if (!item)
                return NULL;
        for (size_t i = 0; i < item->n_records; i++)
                record_clear(&item->records[i]);
        free(item->records);
        free(item->id);
        free(item->title);
        free(item->text);
        free(item->audio_url);
        free(item->plan_note);
        free(item->withdrawn_by);
        free(item->withdraw_reason);
        free(item->message);
        free(item->message_th);
        free(item->note_sent);
        free(item);
        return NULL;
}

TowerRecord *tower_item_record(const TowerItem *item, unsigned village) {
        size_t lo = 0, hi = item->n_records;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (item->records[mid].village == village)
                        return &item->records[mid];
                if (item->records[mid].village < village)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

bool tower_record_final(const TowerRecord *r) {
        for (size_t k = 0; k < r->n_slots; k++)
                if (!tower_slot_state_final(r->slots[k].state))
                        return false;
        return true;
}

/* A copy of what a tower wrote, cut to a sensible length, control characters made blanks. */
static char *detail_copy(const char *s) {
        size_t n;
        char *d;

        if (!s || !*s)
                return NULL;
        n = strlen(s);
        if (n > TOWER_DETAIL_MAX) {
                n = TOWER_DETAIL_MAX;
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) /* not inside a UTF-8 sequence */
                        n--;
        }
        d = strndup(s, n);
        if (!d)
                return NULL;
        for (char *c = d; *c; c++)
                if ((unsigned char) *c < ' ' || *c == 0x7f)
                        *c = ' ';
        return d;
}

static bool slot_set(TowerSlot *slot, TowerSlotState state, const char *detail) {
        if (tower_slot_state_final(slot->state)) {
                /* Final sticks; only a real play outranks a skip or failure (acks may come out of order). */
                if (state != TOWER_SLOT_PLAYED || slot->state == TOWER_SLOT_PLAYED)
                        return false;
        } else if (slot->state == state && (!detail || (slot->detail && !strncmp(slot->detail, detail, TOWER_DETAIL_MAX))))
                return false; /* an ack delivered twice */
        slot->state = state;
        if (detail || tower_slot_state_final(state)) {
                free(slot->detail);
                slot->detail = detail_copy(detail);
        }
        return true;
}

bool tower_record_apply_ack(TowerRecord *r, TowerSlotState state, prakat_usec_t slot, const char *detail) {
        bool changed = false;

        if (slot) {
                for (size_t k = 0; k < r->n_slots; k++)
                        if (r->slots[k].at == slot)
                                return slot_set(&r->slots[k], state, detail);
                return false;
        }
        /* "slot": null.  A final state is about the whole item (cancelled, expired, removed,
         * refused); a play is an emergency's at-once play, which is our earliest open instant. */
        if (state == TOWER_SLOT_SCHEDULED) {
                for (size_t k = 0; k < r->n_slots; k++)
                        if (r->slots[k].state == TOWER_SLOT_SENT)
                                changed |= slot_set(&r->slots[k], state, detail);
                return changed;
        }
        if (state == TOWER_SLOT_PLAYING || state == TOWER_SLOT_PLAYED) {
                for (size_t k = 0; k < r->n_slots; k++)
                        if (!tower_slot_state_final(r->slots[k].state))
                                return slot_set(&r->slots[k], state, detail);
                return false;
        }
        for (size_t k = 0; k < r->n_slots; k++)
                if (!tower_slot_state_final(r->slots[k].state))
                        changed |= slot_set(&r->slots[k], state, detail);
        if (state == TOWER_SLOT_SKIPPED && detail && strstr(detail, "removed"))
                r->removed_note = true;
        return changed;
}

/* ---- JSON ---- */

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *json_usec(prakat_usec_t t) {
        return json_integer((json_int_t) t);
}

static json_t *record_to_json(const TowerRecord *r) {
        json_t *o = json_object(), *slots = json_array();

        for (size_t k = 0; k < r->n_slots; k++) {
                const TowerSlot *s = &r->slots[k];
                json_t *a = json_pack("[I s]", (json_int_t) s->at, tower_slot_state_name(s->state));
                if (s->detail)
                        json_array_append_new(a, json_string(s->detail));
                json_array_append_new(slots, a);
        }
        json_object_set_new(o, "n", json_integer(r->village));
        json_object_set_new(o, "slots", slots);
        /* Flags only when set: a thousand villages make a thousand of these. */
        if (r->cancelled)
                json_object_set_new(o, "cancelled", json_true());
        if (r->update)
                json_object_set_new(o, "update", json_true());
        if (r->announce_acked)
                json_object_set_new(o, "acked", json_true());
        if (r->delivered)
                json_object_set_new(o, "delivered", json_true());
        if (r->unconfirmed)
                json_object_set_new(o, "unconfirmed", json_true());
        if (r->removed_note)
                json_object_set_new(o, "removed", json_true());
        return o;
}

char *tower_item_to_json(const TowerItem *item) {
        json_t *o = json_object(), *records = json_array();
        char *text;

        json_object_set_new(o, "v", json_integer(1));
        json_object_set_new(o, "id", json_string(item->id));
        json_object_set_new(o, "title", json_string_or_null(item->title));
        json_object_set_new(o, "text", json_string_or_null(item->text));
        json_object_set_new(o, "audio_url", json_string_or_null(item->audio_url));
        json_object_set_new(o, "priority", json_integer(item->priority));
        json_object_set_new(o, "repeat", json_integer(item->repeat));
        json_object_set_new(o, "gap", json_integer(item->gap));
        json_object_set_new(o, "expires", json_usec(item->expires));
        json_object_set_new(o, "planned", json_usec(item->planned));
        json_object_set_new(o, "deadline", json_usec(item->deadline));
        json_object_set_new(o, "plan_flags", json_integer(item->plan_flags));
        json_object_set_new(o, "plan_note", json_string_or_null(item->plan_note));
        json_object_set_new(o, "withdrawn_by", json_string_or_null(item->withdrawn_by));
        json_object_set_new(o, "replaced", json_boolean(item->replaced));
        json_object_set_new(o, "withdraw_reason", json_string_or_null(item->withdraw_reason));
        json_object_set_new(o, "tombstone", json_boolean(item->tombstone));
        json_object_set_new(o, "finished", json_boolean(item->finished));
        json_object_set_new(o, "outcome", json_integer(item->outcome));
        json_object_set_new(o, "message", json_string_or_null(item->message));
        json_object_set_new(o, "message_th", json_string_or_null(item->message_th));
        json_object_set_new(o, "retracted", json_boolean(item->retracted));
        json_object_set_new(o, "released", json_boolean(item->released));
        json_object_set_new(o, "finished_at", json_usec(item->finished_at));
        for (size_t i = 0; i < item->n_records; i++)
                json_array_append_new(records, record_to_json(&item->records[i]));
        json_object_set_new(o, "villages", records);
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return text;
}

static char *get_string(const json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

static prakat_usec_t get_usec(const json_t *o, const char *key) {
        json_int_t v = json_integer_value(json_object_get(o, key));
        return v > 0 ? (prakat_usec_t) v : 0;
}

static int record_from_json(const json_t *o, TowerRecord *r) {
        const json_t *slots = json_object_get(o, "slots"), *a;
        json_int_t village = json_integer_value(json_object_get(o, "n"));
        size_t k;

        if (village < 1 || village > TOWER_VILLAGE_MAX || !json_is_array(slots) ||
            json_array_size(slots) > TOWER_PLAY_AT_MAX)
                return -EINVAL;
        *r = (TowerRecord) {
                .village = (unsigned) village,
                .cancelled = json_is_true(json_object_get(o, "cancelled")),
                .update = json_is_true(json_object_get(o, "update")),
                .announce_acked = json_is_true(json_object_get(o, "acked")),
                .delivered = json_is_true(json_object_get(o, "delivered")),
                .unconfirmed = json_is_true(json_object_get(o, "unconfirmed")),
                .removed_note = json_is_true(json_object_get(o, "removed")),
        };
        r->slots = calloc(json_array_size(slots) + 1, sizeof(TowerSlot));
        if (!r->slots)
                return -ENOMEM;
        json_array_foreach(slots, k, a) {
                json_int_t at = json_integer_value(json_array_get(a, 0));
                const char *state = json_string_value(json_array_get(a, 1));
                int s = -1;

                for (int i = 0; state && i < _TOWER_SLOT_STATE_MAX; i++)
                        if (!strcmp(state, slot_state_names[i]))
                                s = i;
                if (at <= 0 || s < 0)
                        return -EINVAL;
                r->slots[r->n_slots++] = (TowerSlot) {
                        .at = (prakat_usec_t) at,
                        .state = (TowerSlotState) s,
                        .detail = detail_copy(json_string_value(json_array_get(a, 2))),
                };
        }
        return 0;
}

int tower_item_from_json(const char *text, size_t size, TowerItem **ret) {
        json_error_t error;
        json_t *o = json_loadb(text, size, 0, &error), *records, *e;
        TowerItem *item;
        size_t i;
        int r = 0;

        if (!json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1 ||
            !tower_id_valid(json_string_value(json_object_get(o, "id")))) {
                json_decref(o);
                return -EINVAL;
        }
        item = calloc(1, sizeof(TowerItem));
        if (!item) {
                json_decref(o);
                return -ENOMEM;
        }
        item->id = get_string(o, "id");
        item->title = get_string(o, "title");
        item->text = get_string(o, "text");
        item->audio_url = get_string(o, "audio_url");
        item->priority = (prakat_priority) json_integer_value(json_object_get(o, "priority"));
        if (item->priority > PRAKAT_PRIORITY_EMERGENCY)
                item->priority = PRAKAT_PRIORITY_NORMAL;
        item->repeat = (unsigned) json_integer_value(json_object_get(o, "repeat"));
        if (item->repeat < 1 || item->repeat > TOWER_REPEAT_MAX)
                item->repeat = 1;
        item->gap = (unsigned) json_integer_value(json_object_get(o, "gap"));
        if (item->gap > TOWER_GAP_MAX)
                item->gap = TOWER_GAP_MAX;
        item->expires = get_usec(o, "expires");
        item->planned = get_usec(o, "planned");
        item->deadline = get_usec(o, "deadline");
        item->plan_flags = (unsigned) json_integer_value(json_object_get(o, "plan_flags"));
        item->plan_note = get_string(o, "plan_note");
        item->withdrawn_by = get_string(o, "withdrawn_by");
        item->replaced = json_is_true(json_object_get(o, "replaced"));
        item->withdraw_reason = get_string(o, "withdraw_reason");
        item->tombstone = json_is_true(json_object_get(o, "tombstone"));
        item->finished = json_is_true(json_object_get(o, "finished"));
        item->outcome = (prakat_outcome) json_integer_value(json_object_get(o, "outcome"));
        item->message = get_string(o, "message");
        item->message_th = get_string(o, "message_th");
        item->retracted = json_is_true(json_object_get(o, "retracted"));
        item->released = json_is_true(json_object_get(o, "released"));
        item->finished_at = get_usec(o, "finished_at");
        records = json_object_get(o, "villages");
        if (!json_is_array(records) || json_array_size(records) > TOWER_VILLAGE_MAX) {
                r = -EINVAL;
                goto done;
        }
        item->records = calloc(json_array_size(records) + 1, sizeof(TowerRecord));
        if (!item->records) {
                r = -ENOMEM;
                goto done;
        }
        json_array_foreach(records, i, e) {
                TowerRecord *rec = &item->records[item->n_records];
                r = record_from_json(e, rec);
                if (r < 0) {
                        record_clear(rec);
                        goto done;
                }
                /* Sorted and unique, as the lookups need. */
                if (item->n_records > 0 && item->records[item->n_records - 1].village >= rec->village) {
                        record_clear(rec);
                        r = -EINVAL;
                        goto done;
                }
                item->n_records++;
        }
done:
        json_decref(o);
        if (r < 0) {
                tower_item_free(item);
                return r;
        }
        *ret = item;
        return 0;
}

char *tower_ack_line(const char *id, unsigned village, prakat_usec_t slot, TowerSlotState state, const char *detail) {
        json_t *o = json_pack("{s:s s:I s:I s:s}", "i", id, "v", (json_int_t) village, "s", (json_int_t) slot, "st",
                              tower_slot_state_name(state));
        char *line;

        if (!o)
                return NULL;
        if (detail)
                json_object_set_new(o, "d", json_string(detail));
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return line;
}

int tower_ack_line_parse(const char *line, size_t size, char **ret_id, unsigned *ret_village, prakat_usec_t *ret_slot,
                         TowerSlotState *ret_state, char **ret_detail) {
        json_error_t error;
        json_t *o = json_loadb(line, size, 0, &error);
        const char *id = json_string_value(json_object_get(o, "i"));
        json_int_t village = json_integer_value(json_object_get(o, "v")), slot = json_integer_value(json_object_get(o, "s"));
        int state = tower_slot_state_from_name(json_string_value(json_object_get(o, "st")));

        if (!tower_id_valid(id) || village < 1 || village > TOWER_VILLAGE_MAX || slot < 0 || state < 0) {
                json_decref(o);
                return -EINVAL;
        }
        *ret_id = strdup(id);
        *ret_village = (unsigned) village;
        *ret_slot = (prakat_usec_t) slot;
        *ret_state = (TowerSlotState) state;
        *ret_detail = get_string(o, "d");
        json_decref(o);
        return *ret_id ? 0 : -ENOMEM;
}
