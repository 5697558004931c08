/* SPDX-License-Identifier: MIT */
#include "tower-schedule.h"

#include "log.h"

struct TowerSchedule {
        TowerItem **items; /* in arrival order */
        size_t n_items, cap;
        uint64_t next_seq;
        usec_t late_limit;
        bool dirty;
        tower_schedule_ack_fn ack;
        void *userdata;

        /* The unit being played; kept by value since its item may be dropped while it plays. */
        char *current_id;
        usec_t current_at;
        bool current_on_arrival;
};

TowerSchedule *tower_schedule_new(usec_t late_limit, tower_schedule_ack_fn ack, void *userdata) {
        TowerSchedule *s = xcalloc(1, sizeof(TowerSchedule));

        s->late_limit = late_limit;
        s->ack = ack;
        s->userdata = userdata;
        s->next_seq = 1;
        return s;
}

static void schedule_clear_items(TowerSchedule *s) {
        for (size_t i = 0; i < s->n_items; i++)
                tower_item_free(s->items[i]);
        s->n_items = 0;
}

TowerSchedule *tower_schedule_free(TowerSchedule *s) {
        if (!s)
                return NULL;
        schedule_clear_items(s);
        free(s->items);
        free(s->current_id);
        free(s);
        return NULL;
}

size_t tower_schedule_size(const TowerSchedule *s) {
        return s->n_items;
}

TowerItem *tower_schedule_item(const TowerSchedule *s, size_t i) {
        return i < s->n_items ? s->items[i] : NULL;
}

static ssize_t schedule_index(const TowerSchedule *s, const char *id) {
        for (size_t i = 0; i < s->n_items; i++)
                if (streq(s->items[i]->id, id))
                        return (ssize_t) i;
        return -1;
}

TowerItem *tower_schedule_find(const TowerSchedule *s, const char *id) {
        ssize_t i = schedule_index(s, id);
        return i < 0 ? NULL : s->items[i];
}

TowerSlot *tower_item_find_slot(const TowerItem *item, usec_t at, bool on_arrival) {
        for (size_t i = 0; i < item->n_slots; i++)
                if (item->slots[i].at == at && item->slots[i].on_arrival == on_arrival)
                        return &item->slots[i];
        return NULL;
}

bool tower_schedule_dirty(const TowerSchedule *s) {
        return s->dirty;
}

void tower_schedule_clear_dirty(TowerSchedule *s) {
        s->dirty = false;
}

static void schedule_ack(TowerSchedule *s, const TowerItem *item, const char *state, const TowerSlot *slot,
                         const char *detail) {
        if (s->ack)
                s->ack(s->userdata, item->id, state, slot && !slot->on_arrival ? slot : NULL, detail);
}

static bool slot_is_current(const TowerSchedule *s, const TowerItem *item, const TowerSlot *slot) {
        return s->current_id && streq(s->current_id, item->id) && slot->at == s->current_at &&
               slot->on_arrival == s->current_on_arrival;
}

static bool item_has_pending(const TowerItem *item) {
        for (size_t i = 0; i < item->n_slots; i++)
                if (item->slots[i].state == TOWER_SLOT_PENDING)
                        return true;
        return false;
}

/* Removes items[i] (and frees it). */
static void schedule_remove(TowerSchedule *s, size_t i) {
        tower_item_free(s->items[i]);
        memmove(s->items + i, s->items + i + 1, (s->n_items - i - 1) * sizeof(TowerItem *));
        s->n_items--;
        s->dirty = true;
}

static void schedule_append(TowerSchedule *s, TowerItem *item) {
        if (s->n_items == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 16;
                s->items = xrealloc(s->items, s->cap * sizeof(TowerItem *));
        }
        s->items[s->n_items++] = item;
        s->dirty = true;
}

/* A slot that is pending but cannot start any more. */
static bool slot_is_late(const TowerSchedule *s, const TowerItem *item, const TowerSlot *slot, usec_t now) {
        return slot->state == TOWER_SLOT_PENDING && item->priority != TOWER_PRIORITY_EMERGENCY &&
               now > slot->due && now - slot->due > s->late_limit && !slot_is_current(s, item, slot);
}

static void slot_skip_late(TowerSchedule *s, TowerItem *item, TowerSlot *slot) {
        slot->state = TOWER_SLOT_SKIPPED;
        s->dirty = true;
        schedule_ack(s, item, "skipped", slot, "late");
}

/* Copies what `old` knew about the slot at the same instant, so an update never replays a played slot. */
static void slot_merge(TowerSlot *slot, const TowerItem *old, unsigned repeat) {
        const TowerSlot *o = old ? tower_item_find_slot(old, slot->at, slot->on_arrival) : NULL;

        if (!o)
                return;
        slot->state = o->state;
        slot->plays_done = o->plays_done;
        slot->plays_ok = o->plays_ok;
        if (slot->state == TOWER_SLOT_PENDING && slot->plays_done >= repeat)
                slot->state = slot->plays_ok > 0 ? TOWER_SLOT_PLAYED : TOWER_SLOT_FAILED;
}

/*
 * Makes the slots of a newly arrived (or updated) item, keeping the states `old` has for the same
 * instants, and acks each new pending slot as scheduled, or skipped when it is already late.
 */
static void schedule_build_slots(TowerSchedule *s, TowerItem *item, const TowerItem *old, usec_t now,
                                 const char *detail) {
        bool emergency = item->priority == TOWER_PRIORITY_EMERGENCY;
        size_t n_now = 0; /* emergency: play_at instants up to the skew ahead play at once */

        item->slots = xcalloc(item->n_play_at + 1, sizeof(TowerSlot));
        item->n_slots = 0;
        if (emergency)
                while (n_now < item->n_play_at && item->play_at[n_now] <= now + TOWER_EMERGENCY_SKEW)
                        n_now++;
        for (size_t i = 0; i < item->n_play_at; i++) {
                TowerSlot *slot = &item->slots[item->n_slots++];

                *slot = (TowerSlot) { .at = item->play_at[i], .due = item->play_at[i] };
                if (emergency && i + 1 == n_now) {
                        /* An emergency's at-once play is new with every arrival, even at a known instant. */
                        slot->due = now;
                        continue;
                }
                slot_merge(slot, old, item->repeat);
                if (emergency && i < n_now && slot->state == TOWER_SLOT_PENDING) {
                        slot->state = TOWER_SLOT_SKIPPED;
                        schedule_ack(s, item, "skipped", slot, "late");
                }
        }
        if (emergency && n_now == 0)
                item->slots[item->n_slots++] = (TowerSlot) { .at = now, .due = now, .on_arrival = true };
        for (size_t i = 0; i < item->n_slots; i++) {
                TowerSlot *slot = &item->slots[i];

                if (slot->state != TOWER_SLOT_PENDING || (emergency && i + 1 < n_now))
                        continue;
                if (slot_is_late(s, item, slot, now))
                        slot_skip_late(s, item, slot);
                else
                        schedule_ack(s, item, "scheduled", slot,
                                     emergency && slot->due == now ? "emergency: plays at once" : detail);
        }
}

static void schedule_drop(TowerSchedule *s, size_t i, const char *detail) {
        if (item_has_pending(s->items[i]))
                schedule_ack(s, s->items[i], "skipped", NULL, detail);
        schedule_remove(s, i);
}

/* Adds a new item or replaces the one with its id; `item` is taken. */
static void schedule_put(TowerSchedule *s, TowerItem *item, usec_t now) {
        ssize_t i = schedule_index(s, item->id);
        TowerItem *old = i >= 0 ? s->items[i] : NULL;

        if (item->expires && item->expires <= now) {
                log_info("%s: expired at arrival, not scheduled.", item->id);
                schedule_ack(s, item, "skipped", NULL, "expired");
                if (old)
                        schedule_remove(s, (size_t) i);
                tower_item_free(item);
                return;
        }
        if (!old && s->n_items >= TOWER_SCHEDULE_MAX_ITEMS) {
                log_warning("%s: the schedule already holds %d items, refusing another.", item->id,
                            TOWER_SCHEDULE_MAX_ITEMS);
                schedule_ack(s, item, "failed", NULL, "refused: this tower's schedule is full");
                tower_item_free(item);
                return;
        }
        item->seq = old ? old->seq : s->next_seq++;
        item->received = now;
        schedule_build_slots(s, item, old, now, old ? "updated" : "scheduled");
        if (old) {
                tower_item_free(old);
                s->items[i] = item;
                s->dirty = true;
        } else
                schedule_append(s, item);
}

void tower_schedule_announce(TowerSchedule *s, TowerAction action, const char *id, TowerItem *item, usec_t now) {
        ssize_t i = schedule_index(s, id);

        switch (action) {
        case TOWER_ACTION_ADD:
        case TOWER_ACTION_UPDATE:
                /* An add of a known id, or an update that changes nothing (QoS 1 may deliver a message
                 * twice), is only acked again: an emergency must not play twice for it. */
                if (i >= 0 && (action == TOWER_ACTION_ADD || tower_item_same_content(s->items[i], item))) {
                        TowerItem *known = s->items[i];
                        bool any = false;

                        log_info("%s: %s of an id this tower already has, ignored.", id,
                                 tower_action_to_string(action));
                        for (size_t k = 0; k < known->n_slots; k++)
                                if (known->slots[k].state == TOWER_SLOT_PENDING) {
                                        schedule_ack(s, known, "scheduled", &known->slots[k], "already scheduled");
                                        any = true;
                                }
                        if (!any)
                                schedule_ack(s, known, "scheduled", NULL, "already known; nothing left to play");
                        tower_item_free(item);
                        return;
                }
                schedule_put(s, item, now);
                return;
        case TOWER_ACTION_CANCEL:
                tower_item_free(item);
                if (i < 0) {
                        log_info("%s: cancel of an id this tower does not have.", id);
                        if (s->ack)
                                s->ack(s->userdata, id, "skipped", NULL, "cancelled");
                        return;
                }
                log_info("%s: cancelled.", id);
                schedule_ack(s, s->items[i], "skipped", NULL, "cancelled");
                schedule_remove(s, (size_t) i);
                return;
        case _TOWER_ACTION_MAX:
                break;
        }
        abort();
}

static bool id_listed(char *const *ids, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (streq(ids[i], id))
                        return true;
        return false;
}

void tower_schedule_replace(TowerSchedule *s, TowerItem **items, size_t n_items, usec_t now) {
        char **listed = xcalloc(n_items + 1, sizeof(char *));
        size_t n_listed = 0;

        for (size_t k = 0; k < n_items; k++) {
                TowerItem *item = items[k];
                ssize_t i;

                if (id_listed(listed, n_listed, item->id)) {
                        log_warning("%s: listed twice in the schedule, using the first.", item->id);
                        tower_item_free(item);
                        continue;
                }
                listed[n_listed++] = xstrdup(item->id);
                i = schedule_index(s, item->id);
                if (i >= 0 && tower_item_same_content(s->items[i], item)) {
                        tower_item_free(item);
                        continue;
                }
                if (i < 0 && item->expires && item->expires <= now) {
                        /* The schedule is state, not an event: no ack for what this tower never had. */
                        log_info("%s: in the schedule but already expired, ignored.", item->id);
                        tower_item_free(item);
                        continue;
                }
                schedule_put(s, item, now);
        }
        free(items);
        /* Whatever the new schedule does not list is withdrawn; a play in progress still finishes. */
        for (size_t i = s->n_items; i-- > 0;) {
                if (id_listed(listed, n_listed, s->items[i]->id))
                        continue;
                log_info("%s: no longer in the schedule, dropped.", s->items[i]->id);
                schedule_drop(s, i, "removed from the schedule");
        }
        for (size_t i = 0; i < n_listed; i++)
                free(listed[i]);
        free(listed);
}

void tower_schedule_sweep(TowerSchedule *s, usec_t now) {
        for (size_t i = s->n_items; i-- > 0;) {
                TowerItem *item = s->items[i];
                usec_t last = 0;

                if (item->expires && item->expires <= now) {
                        log_info("%s: expired.", item->id);
                        schedule_drop(s, i, "expired");
                        continue;
                }
                for (size_t k = 0; k < item->n_slots; k++) {
                        TowerSlot *slot = &item->slots[k];
                        if (slot_is_late(s, item, slot, now))
                                slot_skip_late(s, item, slot);
                        if (slot->due > last)
                                last = slot->due;
                }
                if (!item_has_pending(item) && now > last + s->late_limit + TOWER_FORGET_AFTER) {
                        log_debug("%s: every slot is done, forgotten.", item->id);
                        schedule_remove(s, i);
                }
        }
}

/* Play order: priority (highest first), then due time, then arrival, then instant. */
static int compare_units(const TowerItem *a, const TowerSlot *sa, const TowerItem *b, const TowerSlot *sb) {
        if (a->priority != b->priority)
                return a->priority > b->priority ? -1 : 1;
        if (sa->due != sb->due)
                return sa->due < sb->due ? -1 : 1;
        if (a->seq != b->seq)
                return a->seq < b->seq ? -1 : 1;
        if (sa->at != sb->at)
                return sa->at < sb->at ? -1 : 1;
        return 0;
}

bool tower_schedule_pick(const TowerSchedule *s, usec_t now, TowerItem **ret_item, TowerSlot **ret_slot) {
        TowerItem *best = NULL, *current_item = NULL;
        TowerSlot *best_slot = NULL, *current_slot = NULL;

        for (size_t i = 0; i < s->n_items; i++) {
                TowerItem *item = s->items[i];
                for (size_t k = 0; k < item->n_slots; k++) {
                        TowerSlot *slot = &item->slots[k];
                        if (slot->state != TOWER_SLOT_PENDING)
                                continue;
                        if (slot_is_current(s, item, slot)) {
                                current_item = item;
                                current_slot = slot;
                                continue;
                        }
                        if (slot->due > now)
                                continue;
                        if (!best || compare_units(item, slot, best, best_slot) < 0) {
                                best = item;
                                best_slot = slot;
                        }
                }
        }
        /* The unit in progress keeps the speaker, unless an emergency comes for a non-emergency. */
        if (current_item && !(best && best->priority == TOWER_PRIORITY_EMERGENCY &&
                              current_item->priority != TOWER_PRIORITY_EMERGENCY)) {
                best = current_item;
                best_slot = current_slot;
        }
        if (!best)
                return false;
        *ret_item = best;
        *ret_slot = best_slot;
        return true;
}

bool tower_schedule_emergency_due(const TowerSchedule *s, usec_t now) {
        for (size_t i = 0; i < s->n_items; i++) {
                const TowerItem *item = s->items[i];
                if (item->priority != TOWER_PRIORITY_EMERGENCY)
                        continue;
                for (size_t k = 0; k < item->n_slots; k++)
                        if (item->slots[k].state == TOWER_SLOT_PENDING && item->slots[k].due <= now &&
                            !slot_is_current(s, item, &item->slots[k]))
                                return true;
        }
        return false;
}

usec_t tower_schedule_next_wake(const TowerSchedule *s, usec_t now) {
        usec_t next = TOWER_USEC_INFINITY;

        for (size_t i = 0; i < s->n_items; i++) {
                const TowerItem *item = s->items[i];
                if (item->expires > now && item->expires < next)
                        next = item->expires;
                for (size_t k = 0; k < item->n_slots; k++) {
                        const TowerSlot *slot = &item->slots[k];
                        if (slot->state == TOWER_SLOT_PENDING && slot->due > now && slot->due < next)
                                next = slot->due;
                }
        }
        return next;
}

void tower_schedule_set_current(TowerSchedule *s, const TowerItem *item, const TowerSlot *slot) {
        free(s->current_id);
        s->current_id = xstrdup(item->id);
        s->current_at = slot->at;
        s->current_on_arrival = slot->on_arrival;
}

void tower_schedule_clear_current(TowerSchedule *s) {
        free(s->current_id);
        s->current_id = NULL;
}

bool tower_schedule_has_current(const TowerSchedule *s) {
        return s->current_id != NULL;
}

TowerSlot *tower_schedule_finish_play(TowerSchedule *s, const char *id, usec_t at, bool on_arrival, bool ok) {
        TowerItem *item = tower_schedule_find(s, id);
        TowerSlot *slot = item ? tower_item_find_slot(item, at, on_arrival) : NULL;

        if (!slot || slot->state != TOWER_SLOT_PENDING) {
                tower_schedule_clear_current(s);
                return slot;
        }
        slot->plays_done++;
        if (ok)
                slot->plays_ok++;
        if (slot->plays_done >= item->repeat) {
                slot->state = slot->plays_ok > 0 ? TOWER_SLOT_PLAYED : TOWER_SLOT_FAILED;
                tower_schedule_clear_current(s);
        }
        s->dirty = true;
        return slot;
}

/* ---- persistence ---- */

json_t *tower_schedule_to_json(const TowerSchedule *s) {
        json_t *o = json_object(), *items = json_array();

        for (size_t i = 0; i < s->n_items; i++) {
                const TowerItem *item = s->items[i];
                json_t *j = tower_item_to_json(item), *slots = json_array();

                for (size_t k = 0; k < item->n_slots; k++) {
                        const TowerSlot *slot = &item->slots[k];
                        json_array_append_new(slots, json_pack("{sI sI sb ss sI sI}", "at", (json_int_t) slot->at,
                                                               "due", (json_int_t) slot->due, "on_arrival",
                                                               slot->on_arrival, "state",
                                                               tower_slot_state_to_string(slot->state), "done",
                                                               (json_int_t) slot->plays_done, "ok",
                                                               (json_int_t) slot->plays_ok));
                }
                json_object_set_new(j, "seq", json_integer((json_int_t) item->seq));
                json_object_set_new(j, "received", json_integer((json_int_t) item->received));
                json_object_set_new(j, "slots", slots);
                json_array_append_new(items, j);
        }
        json_object_set_new(o, "next_seq", json_integer((json_int_t) s->next_seq));
        json_object_set_new(o, "items", items);
        return o;
}

static usec_t json_usec(const json_t *v) {
        json_int_t n = json_integer_value(v);
        return n > 0 ? (usec_t) n : 0;
}

static int slots_from_json(TowerItem *item, const json_t *slots) {
        const json_t *j;
        size_t k;

        if (!json_is_array(slots) || json_array_size(slots) > TOWER_PLAY_AT_MAX + 1)
                return -EINVAL;
        item->slots = xcalloc(json_array_size(slots) + 1, sizeof(TowerSlot));
        json_array_foreach(slots, k, j) {
                int state = tower_slot_state_from_string(json_string_value(json_object_get(j, "state")));
                if (state < 0)
                        return -EINVAL;
                item->slots[item->n_slots++] = (TowerSlot) {
                        .at = json_usec(json_object_get(j, "at")),
                        .due = json_usec(json_object_get(j, "due")),
                        .on_arrival = json_is_true(json_object_get(j, "on_arrival")),
                        .state = (TowerSlotState) state,
                        .plays_done = (unsigned) json_usec(json_object_get(j, "done")),
                        .plays_ok = (unsigned) json_usec(json_object_get(j, "ok")),
                };
        }
        return 0;
}

int tower_schedule_load_json(TowerSchedule *s, const json_t *o) {
        const json_t *items = json_object_get(o, "items"), *j;
        size_t i;

        if (!json_is_object(o) || !json_is_array(items))
                return -EINVAL;
        schedule_clear_items(s);
        tower_schedule_clear_current(s);
        s->next_seq = json_usec(json_object_get(o, "next_seq"));
        if (s->next_seq == 0)
                s->next_seq = 1;
        json_array_foreach(items, i, j) {
                _cleanup_free_ char *id = NULL, *error = NULL;
                TowerItem *item = NULL;

                if (tower_item_from_json(j, false, NULL, &item, &id, &error) < 0 ||
                    slots_from_json(item, json_object_get(j, "slots")) < 0 || tower_schedule_find(s, item->id) ||
                    s->n_items >= TOWER_SCHEDULE_MAX_ITEMS) {
                        log_warning("State: item %zu (%s) does not load (%s), dropping it.", i, id ? id : "no id",
                                    error ? error : "bad slots or a duplicate");
                        tower_item_free(item);
                        continue;
                }
                item->seq = json_usec(json_object_get(j, "seq"));
                item->received = json_usec(json_object_get(j, "received"));
                if (item->seq >= s->next_seq)
                        s->next_seq = item->seq + 1;
                schedule_append(s, item);
        }
        s->dirty = false;
        return 0;
}
