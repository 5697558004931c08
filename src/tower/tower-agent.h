/* SPDX-License-Identifier: MIT */
/*
 * tower-agent: the loop owner of prakat-tower.  One thread, one sd-event loop holding the MQTT
 * connection (tower-mqtt), the schedule (tower-schedule) and its file, the audio cache (tower-audio),
 * the player and TTS children (tower-child), signals and sd_notify.
 *
 * Data flow: broker message → checked item (tower-item) → schedule → state.json written (before the
 * PUBACK leaves) → a play when a slot is due → acks into the outbox (also in state.json) → broker.
 */
#pragma once

#include "tower-config.h"

#define TOWER_VERSION "0.1"

typedef struct TowerAgent TowerAgent;

/* Takes `config`.  Loads the state (a broken state file is set aside, never fatal). */
int tower_agent_new(TowerConfig *config, bool dry_run, TowerAgent **ret);
/* Runs until SIGTERM/SIGINT; returns 0 after a clean stop. */
int tower_agent_run(TowerAgent *a);
TowerAgent *tower_agent_free(TowerAgent *a);
