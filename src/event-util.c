/* SPDX-License-Identifier: MIT */
#include "event-util.h"

int event_timer_arm(sd_event *e, sd_event_source **s, usec_t when, usec_t accuracy,
                    sd_event_time_handler_t handler, void *userdata, const char *description) {
        int r;

        if (*s) {
                r = sd_event_source_set_time(*s, when);
                return r < 0 ? r : sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
        }
        r = sd_event_add_time(e, s, CLOCK_MONOTONIC, when, accuracy, handler, userdata);
        if (r < 0) {
                *s = NULL;
                return r;
        }
        (void) sd_event_source_set_description(*s, description);
        return 0;
}
