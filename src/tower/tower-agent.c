/* SPDX-License-Identifier: MIT */
#include "tower-agent.h"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "log.h"
#include "tower-audio.h"
#include "tower-child.h"
#include "tower-mqtt.h"
#include "tower-schedule.h"

#define TOWER_STATE_MAX_BYTES (64 * 1024 * 1024)
/* Acks kept while the broker is away; beyond this the oldest go (with a warning). */
#define TOWER_OUTBOX_MAX 10000
/* A slot with recorded audio still downloading waits this long for it before speaking the text. */
#define TOWER_AUDIO_WAIT (30 * USEC_PER_SEC)
/* Timers never sleep longer than this, so a wall-clock step (NTP after a power cut) is noticed. */
#define TOWER_WAKE_MAX (5 * USEC_PER_MINUTE)
/* A stop waits this long for the last status to reach the broker and a stopped player to exit. */
#define TOWER_STOP_GRACE (3 * USEC_PER_SEC)
#define TOWER_KEEPALIVE 30

typedef enum PlayStage {
        PLAY_STAGE_PLAY,   /* the player on an audio file, or the TTS speaking directly */
        PLAY_STAGE_RENDER, /* the TTS writing the speech into a file the player then plays */
} PlayStage;

/* One repetition being played. */
typedef struct Play {
        char *id;
        usec_t at;
        bool on_arrival;
        TowerPriority priority;
        unsigned number, repeat;
        char *source;     /* for the acks: "recorded audio", "text-to-speech, because ..." */
        char *audio_path; /* NULL: speak */
        char *speech;
        PlayStage stage;
        TowerChild *child;
        sd_event_source *dry_run_source;
        bool preempted; /* an emergency stopped it: not counted, played again after */
} Play;

typedef struct OutboxEntry {
        char *payload;
        int mid;
        bool in_flight;
} OutboxEntry;

struct TowerAgent {
        TowerConfig *config;
        bool dry_run;
        sd_event *event;
        TowerSchedule *schedule;
        TowerMqtt *mqtt;
        TowerAudio *audio;
        char *state_path, *speech_path;
        char *topic_schedule, *topic_announce, *topic_ack, *topic_status, *topic_daemon_status;

        OutboxEntry *outbox;
        size_t n_outbox, cap_outbox;
        bool hold_sends; /* acks wait in the outbox until the state that caused them is on disk */
        bool dirty;      /* outbox or last play changed */
        bool dirty_lazy; /* only acks the broker took left the outbox: written with the next change */

        Play *play;
        sd_event_source *gap_timer, *wake_timer, *work_source, *stop_timer;
        TowerPriority gap_priority;
        usec_t audio_wait_until; /* while a due slot waits for its audio */
        char *unit_error;        /* why a repetition of the current unit failed */

        char *last_play_id;
        usec_t last_play_at;
        char *status_published; /* the last status payload the broker has, to publish changes only */
        int stop_status_mid;
        bool stop_status_acked;
        bool stopping;
        char *daemon_state;
};

static void agent_poke(TowerAgent *a);

static char *utc(usec_t t) {
        char buf[21];
        return xstrdup(tower_format_utc(t, buf));
}

/* ---- acks and status ---- */

static void agent_outbox_send(TowerAgent *a) {
        if (a->hold_sends)
                return;
        for (size_t i = 0; i < a->n_outbox; i++) {
                OutboxEntry *e = &a->outbox[i];
                if (e->in_flight)
                        continue;
                if (tower_mqtt_publish(a->mqtt, a->topic_ack, e->payload, false, &e->mid) < 0)
                        return;
                e->in_flight = true;
        }
}

static void agent_outbox_push(TowerAgent *a, char *payload) {
        if (a->n_outbox >= TOWER_OUTBOX_MAX) {
                log_warning("More than %d acks wait for the broker; dropping the oldest.", TOWER_OUTBOX_MAX);
                free(a->outbox[0].payload);
                memmove(a->outbox, a->outbox + 1, (a->n_outbox - 1) * sizeof(OutboxEntry));
                a->n_outbox--;
        }
        if (a->n_outbox == a->cap_outbox) {
                a->cap_outbox = a->cap_outbox ? a->cap_outbox * 2 : 32;
                a->outbox = xrealloc(a->outbox, a->cap_outbox * sizeof(OutboxEntry));
        }
        a->outbox[a->n_outbox++] = (OutboxEntry) { .payload = payload };
        a->dirty = true;
}

/* One ack: {"id","state","at","detail","slot","village"}; slot_at 0 means "slot": null. */
static void agent_ack(TowerAgent *a, const char *id, const char *state, usec_t slot_at, const char *detail) {
        _cleanup_free_ char *now = utc(clock_now()), *slot = slot_at ? utc(slot_at) : NULL;
        json_t *o = json_pack("{ss ss ss ss so sI}", "id", id, "state", state, "at", now, "detail",
                              detail ? detail : "", "slot", slot ? json_string(slot) : json_null(), "village",
                              (json_int_t) a->config->village);

        if (!o) {
                log_error("Failed to build an ack for %s (%s); dropped.", id, state);
                return;
        }
        log_full(LOG_INFO, 0, id, NULL, "ack %s%s%s%s%s", state, slot ? " slot " : "", slot ? slot : "",
                 isempty(detail) ? "" : ": ", detail ? detail : "");
        agent_outbox_push(a, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
        json_decref(o);
        agent_outbox_send(a);
}

static void on_schedule_ack(void *userdata, const char *id, const char *state, const TowerSlot *slot,
                            const char *detail) {
        agent_ack(userdata, id, state, slot ? slot->at : 0, detail);
}

static char *agent_status_payload(TowerAgent *a, const char *state, const char *reason) {
        _cleanup_free_ char *at = a->last_play_id ? utc(a->last_play_at) : NULL;
        json_t *o = json_pack("{ss ss sI so sI}", "state", state, "version", TOWER_VERSION, "village",
                              (json_int_t) a->config->village, "last_play",
                              at ? json_pack("{ss ss}", "id", a->last_play_id, "at", at) : json_null(), "items",
                              (json_int_t) tower_schedule_size(a->schedule));
        char *s;

        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

/* The retained status, when it changed since the broker last got it. */
static void agent_publish_status(TowerAgent *a) {
        _cleanup_free_ char *payload = NULL;

        if (!tower_mqtt_is_connected(a->mqtt) || a->stopping)
                return;
        payload = agent_status_payload(a, "online", NULL);
        if (streq_ptr(payload, a->status_published))
                return;
        if (tower_mqtt_publish(a->mqtt, a->topic_status, payload, true, NULL) < 0)
                return;
        free(a->status_published);
        a->status_published = TAKE_PTR(payload);
}

static void agent_notify_status(TowerAgent *a) {
        usec_t next = tower_schedule_next_wake(a->schedule, clock_now());
        _cleanup_free_ char *when = next != TOWER_USEC_INFINITY ? utc(next) : NULL;

        (void) sd_notifyf(false, "STATUS=%s; %zu items; %s%s%s", tower_mqtt_is_connected(a->mqtt) ? "connected" :
                          "broker not connected", tower_schedule_size(a->schedule), a->play ? "playing " : "",
                          a->play ? a->play->id : (when ? "next " : "nothing due"), a->play ? "" : (when ? when : ""));
}

/* ---- the state file ---- */

static int agent_flush(TowerAgent *a, bool lazy_too) {
        json_t *o, *outbox;
        char *data;
        int r;

        if (!tower_schedule_dirty(a->schedule) && !a->dirty && !(lazy_too && a->dirty_lazy))
                return 0;
        outbox = json_array();
        for (size_t i = 0; i < a->n_outbox; i++)
                json_array_append_new(outbox, json_string(a->outbox[i].payload));
        o = json_pack("{sI so so so}", "v", (json_int_t) 1, "schedule", tower_schedule_to_json(a->schedule), "outbox",
                      outbox, "last_play",
                      a->last_play_id ? json_pack("{ss sI}", "id", a->last_play_id, "at", (json_int_t) a->last_play_at)
                                      : json_null());
        data = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        r = write_file_atomic(a->state_path, data, strlen(data), 0640);
        free(data);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m. Plays go on; the state is retried.", a->state_path);
        tower_schedule_clear_dirty(a->schedule);
        a->dirty = a->dirty_lazy = false;
        return 0;
}

static void agent_set_aside_state(TowerAgent *a, const char *why) {
        _cleanup_free_ char *aside = xasprintf("%s.broken-%lld", a->state_path, (long long) time(NULL));

        log_error("%s: %s. Set it aside as %s and starting with an empty schedule; the retained schedule on "
                  "the broker fills it again.", a->state_path, why, aside);
        (void) rename(a->state_path, aside);
}

static int agent_load_state(TowerAgent *a) {
        _cleanup_free_ char *data = NULL;
        json_t *o, *outbox, *e, *last;
        json_error_t error;
        size_t size, i;
        int r;

        r = read_file(a->state_path, TOWER_STATE_MAX_BYTES, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                agent_set_aside_state(a, strerror(-r));
                return 0;
        }
        o = json_loadb(data, size, 0, &error);
        if (!o || tower_schedule_load_json(a->schedule, json_object_get(o, "schedule")) < 0) {
                json_decref(o);
                agent_set_aside_state(a, "not a state file of this agent");
                return 0;
        }
        outbox = json_object_get(o, "outbox");
        json_array_foreach(outbox, i, e)
                if (json_is_string(e))
                        agent_outbox_push(a, xstrdup(json_string_value(e)));
        last = json_object_get(o, "last_play");
        if (json_is_string(json_object_get(last, "id"))) {
                a->last_play_id = xstrdup(json_string_value(json_object_get(last, "id")));
                a->last_play_at = (usec_t) json_integer_value(json_object_get(last, "at"));
        }
        json_decref(o);
        a->dirty = false;
        log_info("Loaded %s: %zu items, %zu acks to send.", a->state_path, tower_schedule_size(a->schedule),
                 a->n_outbox);
        return 0;
}

/* ---- audio ---- */

static void agent_trim_audio(TowerAgent *a) {
        size_t n = tower_schedule_size(a->schedule), k = 0;
        _cleanup_free_ char **urls = xcalloc(n + 1, sizeof(char *));

        for (size_t i = 0; i < n; i++) {
                TowerItem *item = tower_schedule_item(a->schedule, i);
                if (item->audio_url)
                        urls[k++] = item->audio_url;
        }
        tower_audio_trim(a->audio, urls, k);
        for (size_t i = 0; i < k; i++)
                tower_audio_want(a->audio, urls[i]);
}

static void on_audio_done(void *userdata, const char *url) {
        agent_poke(userdata);
}

/* ---- playing ---- */

static Play *play_free(Play *p) {
        if (!p)
                return NULL;
        tower_child_free(p->child);
        sd_event_source_disable_unref(p->dry_run_source);
        free(p->id);
        free(p->source);
        free(p->audio_path);
        free(p->speech);
        free(p);
        return NULL;
}

static void agent_play_end(TowerAgent *a, int result, const char *description);
static void agent_check_stopped(TowerAgent *a);

static void on_child_done(void *userdata, int result, const char *description);

static int on_dry_run_done(sd_event_source *s, void *userdata) {
        TowerAgent *a = userdata;

        a->play->dry_run_source = sd_event_source_disable_unref(a->play->dry_run_source);
        on_child_done(a, 0, "dry run");
        return 0;
}

/* Starts the play's current stage: a child, or in a dry run a log line and an immediate end. */
static void agent_play_stage(TowerAgent *a) {
        Play *p = a->play;
        _cleanup_(tower_strv_freep) char **argv = NULL;
        _cleanup_free_ char *description = NULL, *failure = NULL;
        int r;

        if (p->audio_path)
                r = tower_command_build(a->config->player, p->audio_path, p->speech, &argv);
        else if (p->stage == PLAY_STAGE_RENDER)
                r = tower_command_build(a->config->tts, a->speech_path, p->speech, &argv);
        else if (strstr(a->config->tts, "{file}"))
                r = tower_command_build(a->config->player, a->speech_path, p->speech, &argv);
        else
                r = tower_command_build(a->config->tts, NULL, p->speech, &argv);
        if (r < 0) {
                agent_play_end(a, r, "empty command");
                return;
        }
        description = tower_command_describe(argv);
        if (a->dry_run) {
                log_full(LOG_NOTICE, 0, p->id, NULL, "Dry run: would play (%s): %s", p->source, description);
                r = sd_event_add_defer(a->event, &p->dry_run_source, on_dry_run_done, a);
                if (r < 0)
                        agent_play_end(a, r, "no event source");
                return;
        }
        log_full(LOG_INFO, 0, p->id, NULL, "Running %s", description);
        r = tower_child_spawn(a->event, argv, a->config->max_play_time, on_child_done, a, &p->child);
        if (r < 0) {
                failure = r == -ENOENT ? xasprintf("cannot run '%s': not found in PATH or not executable", argv[0])
                                       : xasprintf("cannot start '%s': %s", argv[0], strerror(-r));
                agent_play_end(a, r, failure);
        }
}

static void on_child_done(void *userdata, int result, const char *description) {
        TowerAgent *a = userdata;
        Play *p = a->play;

        p->child = tower_child_free(p->child);
        if (result == 0 && p->stage == PLAY_STAGE_RENDER && !p->preempted && !a->stopping) {
                p->stage = PLAY_STAGE_PLAY;
                agent_play_stage(a);
                return;
        }
        agent_play_end(a, result, description);
}

static void agent_play_start(TowerAgent *a, TowerItem *item, TowerSlot *slot) {
        _cleanup_free_ char *detail = NULL;
        const char *audio_error = NULL;
        Play *p = xcalloc(1, sizeof(Play));

        p->id = xstrdup(item->id);
        p->at = slot->at;
        p->on_arrival = slot->on_arrival;
        p->priority = item->priority;
        p->number = slot->plays_done + 1;
        p->repeat = item->repeat;
        a->play = p;
        a->audio_wait_until = 0;
        tower_schedule_set_current(a->schedule, item, slot);
        if (item->audio_url && tower_audio_lookup(a->audio, item->audio_url, &p->audio_path, &audio_error) ==
                                       TOWER_AUDIO_READY)
                p->source = xstrdup("recorded audio");
        else if (item->audio_url)
                p->source = xasprintf("text-to-speech, because the recorded audio could not be fetched (%s)",
                                      audio_error ? audio_error : "the download did not finish in time");
        else
                p->source = xstrdup("text-to-speech");
        p->speech = tower_item_speech(item);
        p->stage = !p->audio_path && strstr(a->config->tts, "{file}") ? PLAY_STAGE_RENDER : PLAY_STAGE_PLAY;
        detail = xasprintf("play %u of %u: %s", p->number, p->repeat, p->source);
        agent_ack(a, p->id, "playing", p->on_arrival ? 0 : p->at, detail);
        if (!p->audio_path && isempty(p->speech)) {
                agent_play_end(a, -ENODATA, "nothing to play: the audio is missing and there is no text to speak");
                return;
        }
        agent_play_stage(a);
}

static int on_gap_done(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerAgent *a = userdata;

        a->gap_timer = sd_event_source_disable_unref(a->gap_timer);
        agent_poke(a);
        return 0;
}

/* The end of one repetition: count it, ack the slot when it is complete, or wait for the next. */
static void agent_play_end(TowerAgent *a, int result, const char *description) {
        Play *p = TAKE_PTR(a->play);
        TowerSlot *slot;
        TowerItem *item;
        usec_t slot_at = p->on_arrival ? 0 : p->at;
        _cleanup_free_ char *detail = NULL;
        bool ok = result == 0;

        if (p->preempted || a->stopping) {
                if (p->preempted && !a->stopping)
                        agent_ack(a, p->id, "scheduled", slot_at, "pre-empted by an emergency; plays again after it");
                play_free(p);
                agent_poke(a);
                agent_check_stopped(a);
                return;
        }
        if (!ok) {
                log_full(LOG_WARNING, 0, p->id, NULL, "Play %u of %u failed: %s", p->number, p->repeat, description);
                free(a->unit_error);
                a->unit_error = xstrdup(description);
        }
        /* What was played reaches the disk before the ack saying so leaves: a restart never replays it. */
        a->hold_sends = true;
        slot = tower_schedule_finish_play(a->schedule, p->id, p->at, p->on_arrival, ok);
        if (ok) {
                free(a->last_play_id);
                a->last_play_id = xstrdup(p->id);
                a->last_play_at = clock_now();
                a->dirty = true;
        }
        if (!slot || slot->state != TOWER_SLOT_PENDING) {
                if (!slot)
                        detail = xasprintf("%s (%s); the item changed or was withdrawn meanwhile",
                                           ok ? "played" : description,
                                           p->source);
                else if (slot->state == TOWER_SLOT_PLAYED && slot->plays_ok == slot->plays_done)
                        detail = xasprintf("played %u of %u times (%s)", slot->plays_ok, p->repeat, p->source);
                else if (slot->state == TOWER_SLOT_PLAYED)
                        detail = xasprintf("played %u of %u times (%s); %u failed: %s", slot->plays_ok, p->repeat,
                                           p->source, slot->plays_done - slot->plays_ok,
                                           a->unit_error ? a->unit_error : "?");
                else
                        detail = xasprintf("%s (%s)", a->unit_error ? a->unit_error : description, p->source);
                agent_ack(a, p->id, (slot ? slot->state == TOWER_SLOT_PLAYED : ok) ? "played" : "failed", slot_at,
                          detail);
                free(a->unit_error);
                a->unit_error = NULL;
        } else {
                /* More repetitions of this slot follow, `gap` seconds apart. */
                item = tower_schedule_find(a->schedule, p->id);
                a->gap_priority = item->priority;
                if (sd_event_add_time_relative(a->event, &a->gap_timer, CLOCK_MONOTONIC,
                                               (usec_t) item->gap * USEC_PER_SEC, USEC_PER_MSEC, on_gap_done, a) < 0)
                        log_error("Failed to arm the gap timer; playing the next repetition at once.");
        }
        (void) agent_flush(a, false);
        a->hold_sends = false;
        agent_outbox_send(a);
        play_free(p);
        agent_publish_status(a);
        agent_poke(a);
}

/* An emergency is due: stop the non-emergency play; it is played again after the emergency. */
static void agent_preempt(TowerAgent *a) {
        Play *p = a->play;

        log_full(LOG_NOTICE, 0, p->id, NULL, "An emergency is due: stopping this play; it plays again after it.");
        p->preempted = true;
        if (p->child)
                tower_child_stop(p->child);
}

/* True while a due slot should wait for its recorded audio to arrive. */
static bool agent_wait_for_audio(TowerAgent *a, TowerItem *item, TowerSlot *slot, usec_t now) {
        _cleanup_free_ char *path = NULL;
        const char *error = NULL;

        if (!item->audio_url || slot->plays_done > 0 ||
            tower_audio_lookup(a->audio, item->audio_url, &path, &error) != TOWER_AUDIO_LOADING)
                return false;
        if (now >= slot->due + TOWER_AUDIO_WAIT)
                return false;
        if (!a->audio_wait_until)
                log_full(LOG_INFO, 0, item->id, NULL, "Waiting up to %llus for its audio to download.",
                         (unsigned long long) (TOWER_AUDIO_WAIT / USEC_PER_SEC));
        a->audio_wait_until = slot->due + TOWER_AUDIO_WAIT;
        return true;
}

static int on_wake(sd_event_source *s, uint64_t usec, void *userdata) {
        agent_poke(userdata);
        return 0;
}

static void agent_arm_wake(TowerAgent *a, usec_t now) {
        usec_t next = tower_schedule_next_wake(a->schedule, now), delay;

        if (a->audio_wait_until && a->audio_wait_until < next)
                next = a->audio_wait_until;
        delay = next > now ? next - now : 0;
        if (delay > TOWER_WAKE_MAX)
                delay = TOWER_WAKE_MAX;
        if (!a->wake_timer) {
                if (sd_event_add_time_relative(a->event, &a->wake_timer, CLOCK_MONOTONIC, delay, USEC_PER_MSEC, on_wake,
                                               a) < 0)
                        log_error("Failed to arm the wake-up timer.");
                else
                        (void) sd_event_source_set_description(a->wake_timer, "wake");
                return;
        }
        (void) sd_event_source_set_time_relative(a->wake_timer, delay);
        (void) sd_event_source_set_enabled(a->wake_timer, SD_EVENT_ONESHOT);
}

/* Decides what plays now.  Runs once per loop iteration that changed anything (agent_poke). */
static void agent_reschedule(TowerAgent *a) {
        usec_t now = clock_now();
        TowerItem *item;
        TowerSlot *slot;

        tower_schedule_sweep(a->schedule, now);
        if (a->stopping)
                return;
        if (a->play) {
                if (a->play->priority != TOWER_PRIORITY_EMERGENCY && !a->play->preempted &&
                    tower_schedule_emergency_due(a->schedule, now))
                        agent_preempt(a);
        } else if (a->gap_timer && !(a->gap_priority != TOWER_PRIORITY_EMERGENCY &&
                                     tower_schedule_emergency_due(a->schedule, now))) {
                /* Between two repetitions of one slot; only an emergency comes in between. */
        } else {
                a->gap_timer = sd_event_source_disable_unref(a->gap_timer);
                if (tower_schedule_pick(a->schedule, now, &item, &slot) && !agent_wait_for_audio(a, item, slot, now))
                        agent_play_start(a, item, slot);
        }
        agent_arm_wake(a, now);
        agent_publish_status(a);
        agent_notify_status(a);
}

static int on_work(sd_event_source *s, void *userdata) {
        TowerAgent *a = userdata;

        agent_reschedule(a);
        (void) agent_flush(a, false);
        return 0;
}

/* Asks for agent_reschedule() and a state flush at the end of this loop iteration. */
static void agent_poke(TowerAgent *a) {
        (void) sd_event_source_set_enabled(a->work_source, SD_EVENT_ONESHOT);
}

/* ---- messages from the broker ---- */

static json_t *agent_parse_payload(const char *what, const void *payload, size_t size, size_t max) {
        json_error_t error;
        json_t *o;

        if (size > max) {
                log_warning("%s: %zu bytes, more than the %zu this agent reads; ignored.", what, size, max);
                return NULL;
        }
        o = json_loadb(payload, size, JSON_REJECT_DUPLICATES, &error);
        if (!o)
                log_warning("%s: not JSON (line %d: %s); ignored.", what, error.line, error.text);
        return o;
}

static void agent_handle_announce(TowerAgent *a, const void *payload, size_t size) {
        _cleanup_free_ char *id = NULL, *error = NULL, *detail = NULL;
        TowerItem *item = NULL;
        TowerAction action;
        json_t *o;

        o = agent_parse_payload("Announce message", payload, size, TOWER_ANNOUNCE_MAX_BYTES);
        if (!o)
                return;
        if (tower_item_from_json(o, true, &action, &item, &id, &error) < 0) {
                log_warning("Announce message%s%s: %s; ignored.", id ? " for " : "", id ? id : "", error);
                if (id) {
                        detail = xasprintf("refused: %s", error);
                        agent_ack(a, id, "failed", 0, detail);
                }
                json_decref(o);
                return;
        }
        json_decref(o);
        log_full(LOG_INFO, 0, id, NULL, "Announce: %s.", tower_action_to_string(action));
        tower_schedule_announce(a->schedule, action, id, item, clock_now());
        agent_trim_audio(a);
}

static void agent_handle_schedule(TowerAgent *a, const void *payload, size_t size) {
        TowerItem **items;
        size_t n = 0, i;
        json_t *o, *e;

        if (size == 0) {
                log_warning("Empty schedule message (a cleared retained message); ignored. The daemon clears a "
                            "schedule by publishing [].");
                return;
        }
        o = agent_parse_payload("Schedule message", payload, size, TOWER_SCHEDULE_MAX_BYTES);
        if (!o)
                return;
        if (!json_is_array(o) || json_array_size(o) > TOWER_SCHEDULE_MAX_ITEMS) {
                log_warning("Schedule message: not an array of at most %d items; ignored.", TOWER_SCHEDULE_MAX_ITEMS);
                json_decref(o);
                return;
        }
        items = xcalloc(json_array_size(o) + 1, sizeof(TowerItem *));
        json_array_foreach(o, i, e) {
                _cleanup_free_ char *id = NULL, *error = NULL;
                TowerItem *known;

                if (tower_item_from_json(e, false, NULL, &items[n], &id, &error) >= 0) {
                        n++;
                        continue;
                }
                log_warning("Schedule message, item %zu%s%s: %s; ignored.", i, id ? " " : "", id ? id : "", error);
                /* A known item stays as it is rather than being dropped for a bad new version of it. */
                known = id ? tower_schedule_find(a->schedule, id) : NULL;
                if (known) {
                        json_t *copy = tower_item_to_json(known);
                        _cleanup_free_ char *copy_id = NULL, *copy_error = NULL;
                        if (tower_item_from_json(copy, false, NULL, &items[n], &copy_id, &copy_error) >= 0)
                                n++;
                        json_decref(copy);
                }
        }
        json_decref(o);
        log_info("Schedule: %zu items.", n);
        tower_schedule_replace(a->schedule, items, n, clock_now());
        agent_trim_audio(a);
}

static void on_mqtt_message(void *userdata, const char *topic, const void *payload, size_t size, bool retained) {
        TowerAgent *a = userdata;

        if (streq(topic, a->topic_announce))
                agent_handle_announce(a, payload, size);
        else if (streq(topic, a->topic_schedule))
                agent_handle_schedule(a, payload, size);
        else if (streq(topic, a->topic_daemon_status)) {
                _cleanup_free_ char *state = NULL;
                json_t *o = agent_parse_payload("Daemon status", payload, size, 4096);
                const char *s = json_string_value(json_object_get(o, "state"));

                state = xstrdup(s ? s : "unknown");
                json_decref(o);
                if (!streq_ptr(state, a->daemon_state))
                        log_info("The daemon is %s.", state);
                free(a->daemon_state);
                a->daemon_state = TAKE_PTR(state);
        } else
                log_debug("Message on %s ignored.", topic);
        /* On disk before libmosquitto sends the PUBACK: a crash now loses nothing the broker forgets. */
        (void) agent_flush(a, false);
        agent_poke(a);
}

static void on_mqtt_connected(void *userdata) {
        TowerAgent *a = userdata;

        free(a->status_published);
        a->status_published = NULL;
        agent_publish_status(a);
        agent_outbox_send(a);
        agent_notify_status(a);
}

static void on_mqtt_disconnected(void *userdata) {
        TowerAgent *a = userdata;

        /* Whatever was in flight died with the connection: it goes again on the next one. */
        for (size_t i = 0; i < a->n_outbox; i++)
                a->outbox[i].in_flight = false;
        agent_notify_status(a);
        if (a->stopping)
                sd_event_exit(a->event, 0);
}

static void agent_check_stopped(TowerAgent *a) {
        if (a->stopping && !a->play && (a->stop_status_acked || !tower_mqtt_is_connected(a->mqtt)))
                sd_event_exit(a->event, 0);
}

static void on_mqtt_published(void *userdata, int mid) {
        TowerAgent *a = userdata;

        if (a->stopping && mid == a->stop_status_mid) {
                a->stop_status_acked = true;
                agent_check_stopped(a);
        }
        for (size_t i = 0; i < a->n_outbox; i++)
                if (a->outbox[i].in_flight && a->outbox[i].mid == mid) {
                        free(a->outbox[i].payload);
                        memmove(a->outbox + i, a->outbox + i + 1, (a->n_outbox - i - 1) * sizeof(OutboxEntry));
                        a->n_outbox--;
                        /* Not urgent on disk: an ack sent twice after a crash is harmless. */
                        a->dirty_lazy = true;
                        return;
                }
}

/* ---- signals and life cycle ---- */

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerAgent *a = userdata;

        sd_event_exit(a->event, 0);
        return 0;
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        TowerAgent *a = userdata;
        _cleanup_free_ char *payload = NULL;

        if (a->stopping)
                return 0;
        log_notice("Stopping (signal %u).", si->ssi_signo);
        (void) sd_notify(false, "STOPPING=1");
        a->stopping = true;
        if (a->play && a->play->child)
                tower_child_stop(a->play->child);
        else if (a->play) {
                play_free(a->play);
                a->play = NULL;
        }
        /* Say goodbye (retained) so the daemon knows this was a stop, not a lost tower. */
        payload = agent_status_payload(a, "offline", "stopped");
        if (tower_mqtt_is_connected(a->mqtt) &&
            tower_mqtt_publish(a->mqtt, a->topic_status, payload, true, &a->stop_status_mid) < 0)
                a->stop_status_acked = true;
        (void) sd_event_add_time_relative(a->event, &a->stop_timer, CLOCK_MONOTONIC, TOWER_STOP_GRACE, 0,
                                          on_stop_timeout, a);
        agent_check_stopped(a);
        return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_notice("SIGHUP: prakat-tower does not reload its configuration; restart it to apply changes.");
        return 0;
}

static char *agent_topic(const TowerAgent *a, const char *leaf) {
        return xasprintf("%s/village/%u/%s", a->config->topic_prefix, a->config->village, leaf);
}

static int agent_setup_mqtt(TowerAgent *a) {
        _cleanup_free_ char *password = NULL, *error = NULL, *client_id = NULL, *will = NULL;
        char *subscriptions[] = { a->topic_schedule, a->topic_announce, a->topic_daemon_status };
        TowerConfig *c = a->config;
        TowerMqttCallbacks callbacks = {
                .connected = on_mqtt_connected,
                .disconnected = on_mqtt_disconnected,
                .message = on_mqtt_message,
                .published = on_mqtt_published,
        };
        int r;

        r = tower_config_read_password(c, &password, &error);
        if (r < 0) {
                log_error("%s", error);
                return r;
        }
        client_id = xasprintf("prakat-tower-%u", c->village);
        /* The will is fixed at connect time, so it carries nothing that changes (no last play). */
        will = xasprintf("{\"state\":\"offline\",\"version\":\"%s\",\"village\":%u}", TOWER_VERSION, c->village);
        TowerMqttOptions options = {
                .host = c->host,
                .port = c->port,
                .tls = c->tls,
                .ca_file = c->ca_file,
                .cert_file = c->cert_file,
                .key_file = c->key_file,
                .username = c->username,
                .password = password,
                .client_id = client_id,
                .will_topic = a->topic_status,
                .will_payload = will,
                .subscriptions = subscriptions,
                .n_subscriptions = ELEMENTSOF(subscriptions),
                .keepalive = TOWER_KEEPALIVE,
        };
        r = tower_mqtt_new(a->event, &options, &callbacks, a, &a->mqtt);
        if (password)
                explicit_bzero(password, strlen(password));
        if (r < 0)
                return log_error_errno(r, "Failed to set up MQTT: %m");
        return 0;
}

static int agent_setup_loop(TowerAgent *a) {
        sigset_t mask;
        int r;

        r = sd_event_default(&a->event);
        if (r < 0)
                return r;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD); /* sd_event_add_child() needs it blocked */
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        if ((r = sd_event_add_signal(a->event, NULL, SIGTERM, on_stop, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGINT, on_stop, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGHUP, on_hup, a)) < 0)
                return r;
        /* WATCHDOG=1 at half of WatchdogSec=: a blocked loop is restarted by systemd. */
        (void) sd_event_set_watchdog(a->event, true);
        r = sd_event_add_defer(a->event, &a->work_source, on_work, a);
        if (r < 0)
                return r;
        /* Last in its iteration: everything the iteration changed is decided and written once. */
        (void) sd_event_source_set_priority(a->work_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(a->work_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(a->work_source, "work");
        return 0;
}

int tower_agent_new(TowerConfig *config, bool dry_run, TowerAgent **ret) {
        TowerAgent *a = xcalloc(1, sizeof(TowerAgent));
        _cleanup_free_ char *audio_dir = NULL;
        int r;

        a->config = config;
        a->dry_run = dry_run;
        a->topic_schedule = agent_topic(a, "schedule");
        a->topic_announce = agent_topic(a, "announce");
        a->topic_ack = agent_topic(a, "ack");
        a->topic_status = agent_topic(a, "status");
        a->topic_daemon_status = xasprintf("%s/daemon/status", config->topic_prefix);
        a->state_path = path_join(config->state_dir, "state.json");
        a->speech_path = path_join(config->state_dir, "speech.wav");
        audio_dir = path_join(config->state_dir, "audio");
        r = mkdir_p(config->state_dir, 0750);
        if (r < 0) {
                log_error_errno(r, "Failed to create state_dir %s: %m. Create it, writable by the agent.",
                                config->state_dir);
                goto fail;
        }
        r = agent_setup_loop(a);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the event loop: %m");
                goto fail;
        }
        a->schedule = tower_schedule_new(config->late_limit, on_schedule_ack, a);
        r = agent_load_state(a);
        if (r < 0)
                goto fail;
        r = tower_audio_new(a->event, audio_dir, config->audio_cache_size, on_audio_done, a, &a->audio);
        if (r < 0)
                goto fail;
        r = agent_setup_mqtt(a);
        if (r < 0)
                goto fail;
        *ret = a;
        return 0;
fail:
        tower_agent_free(a);
        return r;
}

int tower_agent_run(TowerAgent *a) {
        int r;

        if (clock_is_shifted())
                log_warning("PRAKAT_NOW is set: the clock is shifted for testing.");
        if (a->dry_run)
                log_warning("Dry run: nothing is played; plays are logged and acked as if they happened.");
        agent_trim_audio(a);
        tower_mqtt_start(a->mqtt);
        log_notice("prakat-tower ready: village %u, broker %s, topics %s/village/%u/#, %zu items in the schedule.",
                   a->config->village, a->config->broker, a->config->topic_prefix, a->config->village,
                   tower_schedule_size(a->schedule));
        (void) sd_notify(false, "READY=1");
        agent_poke(a);
        r = sd_event_loop(a->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        (void) agent_flush(a, true);
        tower_mqtt_disconnect(a->mqtt);
        log_notice("Stopped.");
        return 0;
}

TowerAgent *tower_agent_free(TowerAgent *a) {
        if (!a)
                return NULL;
        play_free(a->play);
        tower_mqtt_free(a->mqtt);
        tower_audio_free(a->audio);
        tower_schedule_free(a->schedule);
        sd_event_source_disable_unref(a->gap_timer);
        sd_event_source_disable_unref(a->wake_timer);
        sd_event_source_disable_unref(a->work_source);
        sd_event_source_disable_unref(a->stop_timer);
        sd_event_unref(a->event);
        for (size_t i = 0; i < a->n_outbox; i++)
                free(a->outbox[i].payload);
        free(a->outbox);
        free(a->state_path);
        free(a->speech_path);
        free(a->topic_schedule);
        free(a->topic_announce);
        free(a->topic_ack);
        free(a->topic_status);
        free(a->topic_daemon_status);
        free(a->unit_error);
        free(a->last_play_id);
        free(a->status_published);
        free(a->daemon_state);
        tower_config_free(a->config);
        free(a);
        return NULL;
}
