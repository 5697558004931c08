/* SPDX-License-Identifier: MIT */
/*
 * event-util: small helpers for the sd-event loop shared by the daemon's parts.
 */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

/*
 * Arms the one-shot CLOCK_MONOTONIC timer *s to fire at `when`, making it on first use (with
 * `accuracy` and `description`).  Returns 0 or a negative errno; *s stays NULL when making it failed.
 */
int event_timer_arm(sd_event *e, sd_event_source **s, usec_t when, usec_t accuracy,
                    sd_event_time_handler_t handler, void *userdata, const char *description);
