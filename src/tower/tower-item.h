/* SPDX-License-Identifier: MIT */
/*
 * tower-item: one announcement as a tower sees it, and the checks on what the daemon (or anybody who
 * can publish to the broker) sends.  Everything a producer controls has a limit; an item that breaks
 * one is refused whole with a message saying which field and why.
 *
 * Wire form (an element of PREFIX/village/N/schedule, or the body of .../announce with "action"):
 *   {"v":1,"id":"20261125-ab12cd","action":"add","title":"…","text":"…","audio_url":"https://…"|null,
 *    "play_at":["2026-11-26T00:00:00Z",…],"repeat":1,"gap":5,"priority":"normal","expires":null}
 */
#pragma once

#include <jansson.h>

#include "util.h"

#define TOWER_ID_MAX 64
#define TOWER_TITLE_MAX 1024
#define TOWER_TEXT_MAX (64 * 1024)
#define TOWER_URL_MAX 2048
#define TOWER_PLAY_AT_MAX 100
#define TOWER_REPEAT_MAX 10
#define TOWER_GAP_MAX 3600
/* Largest payload read from the broker, per topic; bigger ones are dropped unparsed. */
#define TOWER_ANNOUNCE_MAX_BYTES (256 * 1024)
#define TOWER_SCHEDULE_MAX_BYTES (4 * 1024 * 1024)

typedef enum TowerPriority {
        TOWER_PRIORITY_NORMAL,
        TOWER_PRIORITY_URGENT,
        TOWER_PRIORITY_EMERGENCY,
        _TOWER_PRIORITY_MAX,
} TowerPriority;

typedef enum TowerAction {
        TOWER_ACTION_ADD,
        TOWER_ACTION_UPDATE,
        TOWER_ACTION_CANCEL,
        _TOWER_ACTION_MAX,
} TowerAction;

typedef enum TowerSlotState {
        TOWER_SLOT_PENDING,
        TOWER_SLOT_PLAYED,  /* at least one of its repetitions played */
        TOWER_SLOT_FAILED,  /* every repetition failed */
        TOWER_SLOT_SKIPPED, /* late, or superseded */
        _TOWER_SLOT_STATE_MAX,
} TowerSlotState;

/*
 * One play instant of an item: `repeat` plays, back to back, `gap` seconds apart.  `due` is when it
 * may start: `at` for a normal slot; the arrival for an emergency's at-once play.  An emergency that
 * came with no play_at instant at or before its arrival gets a slot of its own, `on_arrival`, whose
 * acks carry "slot": null.
 */
typedef struct TowerSlot {
        usec_t at;
        usec_t due;
        bool on_arrival;
        TowerSlotState state;
        unsigned plays_done; /* repetitions finished, played or failed */
        unsigned plays_ok;
} TowerSlot;

typedef struct TowerItem {
        char *id;
        char *title;     /* may be empty */
        char *text;      /* may be empty */
        char *audio_url; /* NULL when the text is to be spoken */
        usec_t *play_at; /* as received: sorted, no duplicates */
        size_t n_play_at;
        unsigned repeat; /* 1..TOWER_REPEAT_MAX */
        unsigned gap;    /* seconds between repetitions */
        TowerPriority priority;
        usec_t expires; /* 0: never */

        /* Kept by the schedule, not part of the wire form: */
        uint64_t seq;   /* arrival order */
        usec_t received;
        TowerSlot *slots;
        size_t n_slots;
} TowerItem;

const char *tower_priority_to_string(TowerPriority p);
const char *tower_action_to_string(TowerAction a);
const char *tower_slot_state_to_string(TowerSlotState s);
int tower_slot_state_from_string(const char *s); /* -EINVAL when unknown */

/* An id is 1..64 of [A-Za-z0-9._-], not starting with '.', never containing "..". */
bool tower_id_valid(const char *id);

/*
 * Parses one item.  `with_action` is true for an announce message (then "action" is required and
 * *ret_action set; a cancel needs nothing but the id) and false for a schedule element (an "action" is
 * ignored).  Returns 0 and *ret_item (NULL for a cancel); or -EINVAL with *ret_error (malloc'd) and,
 * when the payload had a valid id, *ret_id (malloc'd, else NULL) so that the refusal can be acked.
 */
int tower_item_from_json(const json_t *o, bool with_action, TowerAction *ret_action, TowerItem **ret_item,
                         char **ret_id, char **ret_error);

/* The wire form (without action); the caller owns the reference. */
json_t *tower_item_to_json(const TowerItem *item);

/* True when both carry the same announcement (wire fields), whatever their slots' states. */
bool tower_item_same_content(const TowerItem *a, const TowerItem *b);

/* The text to speak: the title, then the text, on separate lines. */
char *tower_item_speech(const TowerItem *item);

TowerItem *tower_item_free(TowerItem *item);
static inline void tower_item_freep(TowerItem **p) {
        tower_item_free(*p);
}

/* Formats an instant as "2026-11-26T00:00:00Z" into a buffer of at least 21 bytes. */
const char *tower_format_utc(usec_t usec, char buffer[static 21]);
