/* SPDX-License-Identifier: MIT */
/*
 * tower-channel.h: the pieces of the tower channel plugin and what they share.  Internal to
 * channels/tower/; the plugin's one public face is the struct exported by tower.c.
 *
 *   plan.c   config values (times of day, quiet hours, village lists, durations, the broker URL)
 *            and the play instants of an announcement in one village: pure, no I/O, unit-tested;
 *   store.c  what the plugin remembers: one item per announcement with one record per village
 *            (its instants, what the broker took, the towers' acks), on disk in host->state_dir;
 *   link.c   libmosquitto inside the daemon's event loop (no thread of its own);
 *   tower.c  the plugin: configure/publish/retract/health/destroy, the messages the towers get,
 *            the acks they send back, and the jobs' progress notes.
 *
 * Every time here is microseconds since the epoch, UTC, on the host's (possibly shifted) clock.
 */
#ifndef PRAKAT_TOWER_CHANNEL_H
#define PRAKAT_TOWER_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prakat-channel.h"

#define TOWER_SEC 1000000ULL
#define TOWER_VILLAGE_MAX 999u
#define TOWER_SLOTS_MAX 24
/* The agent's limits (man/prakat-tower.8): what it would refuse is never sent. */
#define TOWER_PLAY_AT_MAX 100
#define TOWER_ID_MAX 64
#define TOWER_TITLE_MAX 1024
#define TOWER_TEXT_MAX (64 * 1024)
#define TOWER_URL_MAX 2048
#define TOWER_GAP_MAX 3600
#define TOWER_REPEAT_MAX 10
#define TOWER_SCHEDULE_ITEMS_MAX 1000
#define TOWER_SCHEDULE_BYTES_MAX (4 * 1024 * 1024)
#define TOWER_TOPIC_PREFIX_MAX 128

/* A copy of `s`, or NULL for NULL (and when out of memory). */
static inline char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

/* ---- plan.c ---------------------------------------------------------------------------------- */

/* Quiet hours as seconds of the local day, [start, end); start > end wraps past midnight. */
typedef struct TowerQuiet {
        bool none; /* no quiet hours */
        unsigned start, end;
} TowerQuiet;

typedef struct TowerPlanConfig {
        unsigned slots[TOWER_SLOTS_MAX]; /* seconds of the local day, sorted, unique */
        size_t n_slots;
} TowerPlanConfig;

/* What the plan had to change about what the writer asked for (bits, for the job note). */
enum {
        TOWER_PLAN_MOVED_QUIET = 1 << 0,   /* an instant in quiet hours went to the next allowed slot */
        TOWER_PLAN_DROPPED_PAST = 1 << 1,  /* a Broadcast-At instant had already passed */
        TOWER_PLAN_DROPPED_EXPIRY = 1 << 2, /* an instant at or after Expires */
        TOWER_PLAN_TOO_MANY = 1 << 3,      /* more than TOWER_PLAY_AT_MAX instants */
        TOWER_PLAN_BAD_SLOT = 1 << 4,      /* a Broadcast-At value that is neither a slot name nor a time */
};

/* "07:00", "7:00", "07.00", "17:30:15" -> seconds of the day.  -EINVAL when it is not a time. */
int tower_parse_time_of_day(const char *s, unsigned *ret);
/* "07:00, 17:00" (commas or blanks) -> sorted unique slots. */
int tower_parse_slots(const char *s, TowerPlanConfig *ret);
/* "21:00-06:00", or "none"/"off"/"no". */
int tower_parse_quiet(const char *s, TowerQuiet *ret);
/* "1-12", "1, 3, 5-9" -> marks in seen[1..TOWER_VILLAGE_MAX]; returns how many, or -EINVAL. */
int tower_parse_villages(const char *s, bool seen[TOWER_VILLAGE_MAX + 1]);

/* "mqtt://host[:port]" or "mqtts://host[:port]"; an IPv6 address in brackets. */
int tower_parse_broker(const char *url, char **ret_host, unsigned *ret_port, bool *ret_tls);
/* No wildcards, no empty levels, no leading or trailing '/'. */
bool tower_topic_prefix_valid(const char *s);
/* The agent's id rule: 1..64 of [A-Za-z0-9._-], not starting with '.', never "..". */
bool tower_id_valid(const char *id);

bool tower_quiet_contains(const TowerQuiet *q, unsigned second_of_day);
/* Seconds since local midnight of `t`, in the process's time zone (TZ). */
unsigned tower_local_second_of_day(prakat_usec_t t);

/*
 * The play instants of one announcement in one village (whole seconds, sorted, unique, at most
 * TOWER_PLAY_AT_MAX), into out[TOWER_PLAY_AT_MAX].  Returns how many (0: nothing to play, e.g. it
 * expires first) and ORs TOWER_PLAN_* into *flags.  The rules:
 *   - emergency: `now` (plays at once, in quiet hours too), plus any Broadcast-At, unmoved;
 *   - otherwise each Broadcast-At: a slot name ("morning" = the first slot, "evening" = the last)
 *     is its next occurrence after `now`; a time is kept unless it passed more than a minute ago
 *     (dropped); one inside the village's quiet hours moves to the next configured slot outside
 *     them; with no Broadcast-At (or none left), the next configured slot outside quiet hours;
 *   - instants at or after `expires` are dropped.
 * Slot arithmetic is in local time (localtime_r/mktime under TZ), so it crosses midnight, month
 * and year ends, and would follow daylight saving where a zone has it.
 */
size_t tower_plan_instants(const TowerPlanConfig *config, const TowerQuiet *quiet, prakat_priority priority,
                           const char *const *broadcast_at, size_t n_broadcast_at, prakat_usec_t now,
                           prakat_usec_t expires, prakat_usec_t out[TOWER_PLAY_AT_MAX], unsigned *flags);

/* The next configured slot strictly after `after` (or at it, when `inclusive`) outside `quiet`; 0 when none. */
prakat_usec_t tower_next_slot(const TowerPlanConfig *config, const TowerQuiet *quiet, prakat_usec_t after,
                              bool inclusive);

/* "2026-11-26T00:00:00Z" <-> usec.  format: buffer of at least 21 bytes. */
const char *tower_format_utc(prakat_usec_t t, char buffer[static 21]);
int tower_parse_utc(const char *s, prakat_usec_t *ret);

/* ---- store.c --------------------------------------------------------------------------------- */

typedef enum TowerSlotState {
        TOWER_SLOT_SENT,      /* nothing heard from the tower yet */
        TOWER_SLOT_SCHEDULED, /* the tower has it */
        TOWER_SLOT_PLAYING,
        TOWER_SLOT_PLAYED, /* final from here on */
        TOWER_SLOT_FAILED,
        TOWER_SLOT_SKIPPED,
        _TOWER_SLOT_STATE_MAX,
} TowerSlotState;

static inline bool tower_slot_state_final(TowerSlotState s) {
        return s >= TOWER_SLOT_PLAYED;
}

const char *tower_slot_state_name(TowerSlotState s);
int tower_slot_state_from_name(const char *s); /* the ack states; -EINVAL otherwise */

typedef struct TowerSlot {
        prakat_usec_t at;
        TowerSlotState state;
        char *detail; /* the tower's words for the last change, or NULL */
} TowerSlot;

/* One village of one item. */
typedef struct TowerRecord {
        unsigned village;
        TowerSlot *slots;
        size_t n_slots;
        bool cancelled;      /* withdrawn: what this village must get is a cancel */
        bool update;         /* planned again (a retry): the announce is an update, not an add */
        bool announce_acked; /* the broker took this record's current announce (persisted) */
        bool delivered;      /* ... and a schedule that reflects it (persisted before it counts) */
        bool unconfirmed;    /* its time to confirm ran out without a final ack */
        bool removed_note;   /* the tower said the item left its schedule */
        /* In memory only: */
        bool queued, in_flight;
        uint32_t need_seq;          /* the village's schedule version that must be acked */
        prakat_usec_t delivered_at; /* when delivered became true here; 0 when loaded so */
} TowerRecord;

typedef struct TowerItem {
        char *id;
        /* The wire form, fixed when the item is first planned, so that whatever is sent again is
         * byte for byte what the towers already have (an emergency changed is an emergency replayed). */
        char *title, *text, *audio_url;
        prakat_priority priority;
        unsigned repeat, gap;
        prakat_usec_t expires;

        prakat_usec_t planned;  /* when the instants were chosen */
        prakat_usec_t deadline; /* the last instant plus confirm_within */
        unsigned plan_flags;
        char *plan_note; /* what the plan had to change, for people, or NULL */
        TowerRecord *records; /* sorted by village */
        size_t n_records;

        char *withdrawn_by; /* id of the Cancel or the replacing announcement */
        bool replaced;
        char *withdraw_reason;
        bool tombstone; /* known only as withdrawn: never planned here */

        bool finished; /* the publish job has its outcome, kept to give it again after a crash */
        prakat_outcome outcome;
        char *message, *message_th;
        bool retracted; /* the retract job is done */
        bool released;  /* the publish job was handed back to the core to wait for its next slot */
        prakat_usec_t finished_at;

        /* In memory only: */
        bool on_disk;   /* written at least once: only then may it go out */
        bool ack_dirty; /* acks.log holds acks that its file does not */
        prakat_job *job, *retract_job;
        prakat_usec_t retract_started;
        bool dirty;
        char *note_sent; /* the last note given to the job, to give only changes */
        prakat_usec_t note_at;
} TowerItem;

TowerItem *tower_item_free(TowerItem *item);
TowerRecord *tower_item_record(const TowerItem *item, unsigned village);
/* True when every slot has a final state. */
bool tower_record_final(const TowerRecord *r);

/* The item file, items/ID.json.  Returns the JSON text (malloc'd). */
char *tower_item_to_json(const TowerItem *item);
/* Parses an item file; -EINVAL for one that is not ours. */
int tower_item_from_json(const char *text, size_t size, TowerItem **ret);

/*
 * Applies one ack to the item: `slot` 0 means "slot": null (the whole item, or an emergency's
 * at-once play).  Returns true when something changed.  Final states stick, except that a
 * "played" outranks a "skipped" or "failed" for the same slot.
 */
bool tower_record_apply_ack(TowerRecord *r, TowerSlotState state, prakat_usec_t slot, const char *detail);

/* One line of acks.log: {"i":ID,"v":N,"s":SLOT,"st":STATE,"d":DETAIL}. */
char *tower_ack_line(const char *id, unsigned village, prakat_usec_t slot, TowerSlotState state, const char *detail);
int tower_ack_line_parse(const char *line, size_t size, char **ret_id, unsigned *ret_village, prakat_usec_t *ret_slot,
                         TowerSlotState *ret_state, char **ret_detail);

/* ---- link.c ---------------------------------------------------------------------------------- */

typedef struct TowerLink TowerLink;

typedef struct TowerLinkOptions {
        const char *host;
        unsigned port;
        bool tls;
        const char *ca_file; /* NULL: the system's CAs */
        const char *cert_file, *key_file;
        const char *username, *password;
        const char *client_id;
        const char *will_topic, *will_payload; /* retained, QoS 1 */
        const char *const *subscriptions;      /* QoS 1, renewed on every connection */
        size_t n_subscriptions;
        unsigned keepalive;    /* seconds */
        unsigned max_inflight; /* QoS 1 messages on their way at once */
} TowerLinkOptions;

typedef struct TowerLinkCallbacks {
        /* The broker accepted us; session_present: it still had our session (subscriptions, queue). */
        void (*connected)(void *userdata, bool session_present);
        /* The connection is gone; what was in flight is lost (the caller sends it again). */
        void (*disconnected)(void *userdata);
        /* A message on a subscribed topic; the PUBACK goes out when this returns. */
        void (*message)(void *userdata, const char *topic, const void *payload, size_t size);
        /* The broker acknowledged our QoS 1 publish `mid`. */
        void (*published)(void *userdata, int mid);
} TowerLinkCallbacks;

int tower_link_new(const prakat_host *host, const TowerLinkOptions *options, const TowerLinkCallbacks *callbacks,
                   void *userdata, TowerLink **ret);
/* Connects (later, from a timer) and keeps connecting with back-off until freed. */
void tower_link_start(TowerLink *link);
/* Publishes `goodbye` (retained, on `topic`) as best it can without waiting, says DISCONNECT, frees. */
void tower_link_free(TowerLink *link, const char *topic, const char *goodbye);
bool tower_link_connected(const TowerLink *link);
/* Why it is not connected, for health(); never NULL. */
const char *tower_link_status(const TowerLink *link);
/* QoS 1.  -ENOTCONN when not connected (nothing queued). */
int tower_link_publish(TowerLink *link, const char *topic, const void *payload, size_t size, bool retain, int *ret_mid);

#endif
