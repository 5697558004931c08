/* SPDX-License-Identifier: MIT */
/*
 * tower-schedule: what this tower is to play, and what it already played.  Pure logic: every function
 * takes the current time, nothing here touches the clock, the disk or the network, so the unit tests
 * drive it directly.  Every decision that the daemon must hear about is reported through the ack
 * callback, at the moment it is taken.
 *
 * The rules (DESIGN §5 and the message contract in man/prakat-tower.8):
 *  - a slot is `repeat` plays of one item, back to back; due slots play one after another, ordered by
 *    priority (emergency, urgent, normal), then due time, then arrival;
 *  - the unit being played ("current") finishes before anything else starts, except that an emergency
 *    pre-empts a non-emergency;
 *  - a slot not started within late_limit of its due time is skipped ("late"), except emergencies;
 *  - an emergency plays at once when it arrives: the latest of its play_at instants up to
 *    TOWER_EMERGENCY_SKEW ahead becomes due now (earlier ones are skipped as late), or, with no such
 *    instant, an on-arrival slot is made for it;
 *  - an item past `expires` is dropped; an item whose slots are all done is forgotten a day after
 *    its last slot.
 */
#pragma once

#include "tower-item.h"

#define TOWER_EMERGENCY_SKEW (5 * USEC_PER_MINUTE)
#define TOWER_SCHEDULE_MAX_ITEMS 1000
#define TOWER_FORGET_AFTER USEC_PER_DAY
#define TOWER_USEC_INFINITY UINT64_MAX

typedef struct TowerSchedule TowerSchedule;

/* `slot` NULL means the ack is about the item as a whole ("slot": null); so is an on-arrival slot. */
typedef void (*tower_schedule_ack_fn)(void *userdata, const char *id, const char *state, const TowerSlot *slot,
                                      const char *detail);

TowerSchedule *tower_schedule_new(usec_t late_limit, tower_schedule_ack_fn ack, void *userdata);
TowerSchedule *tower_schedule_free(TowerSchedule *s);

size_t tower_schedule_size(const TowerSchedule *s);
TowerItem *tower_schedule_item(const TowerSchedule *s, size_t i);
TowerItem *tower_schedule_find(const TowerSchedule *s, const char *id);
TowerSlot *tower_item_find_slot(const TowerItem *item, usec_t at, bool on_arrival);

/* True after any change that should be written to disk; tower_schedule_clear_dirty() after writing. */
bool tower_schedule_dirty(const TowerSchedule *s);
void tower_schedule_clear_dirty(TowerSchedule *s);

/* An announce message.  Takes `item` (NULL for a cancel). */
void tower_schedule_announce(TowerSchedule *s, TowerAction action, const char *id, TowerItem *item, usec_t now);

/* A schedule message: takes the array and the items in it. */
void tower_schedule_replace(TowerSchedule *s, TowerItem **items, size_t n_items, usec_t now);

/* Drops expired and long-finished items, skips late slots. */
void tower_schedule_sweep(TowerSchedule *s, usec_t now);

/* The unit to play now, if any: returns true with *ret_item and *ret_slot. */
bool tower_schedule_pick(const TowerSchedule *s, usec_t now, TowerItem **ret_item, TowerSlot **ret_slot);

/* True when an emergency other than the current unit is due: it pre-empts a non-emergency. */
bool tower_schedule_emergency_due(const TowerSchedule *s, usec_t now);

/* The next instant something changes by itself (a slot becomes due, an item expires), or TOWER_USEC_INFINITY. */
usec_t tower_schedule_next_wake(const TowerSchedule *s, usec_t now);

/* The unit that is playing or waiting between its repetitions; it is never skipped as late. */
void tower_schedule_set_current(TowerSchedule *s, const TowerItem *item, const TowerSlot *slot);
void tower_schedule_clear_current(TowerSchedule *s);
bool tower_schedule_has_current(const TowerSchedule *s);

/*
 * Records the end of one repetition of (id, at, on_arrival).  Returns the slot, or NULL when the item
 * was dropped meanwhile (cancelled, replaced, expired).  When the slot is complete (no longer pending)
 * the current unit is cleared.
 */
TowerSlot *tower_schedule_finish_play(TowerSchedule *s, const char *id, usec_t at, bool on_arrival, bool ok);

/* Persistence: the whole schedule with the state of every slot. */
json_t *tower_schedule_to_json(const TowerSchedule *s);
/* Replaces the contents; items that do not parse are dropped with a warning.  No acks. */
int tower_schedule_load_json(TowerSchedule *s, const json_t *o);
