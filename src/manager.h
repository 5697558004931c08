/* SPDX-License-Identifier: MIT */
/*
 * manager: owns the event loop and everything on it — config, channels, queue, intake, HTTP,
 * signals, sd_notify and reload.  One process, one thread (DESIGN §2).
 */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "http.h"
#include "plugin.h"
#include "queue.h"

typedef struct Spool Spool;
typedef struct JobRun JobRun;
typedef struct Control Control;

struct Manager {
        sd_event *event;
        char *config_path;
        Config *config;
        Queue *queue;
        HttpClient *http;
        Spool *spool;
        Control *control; /* NULL when the socket could not be made */
        ChannelInstance **channels;
        size_t n_channels;
        sd_event_source *flush_source; /* idle-priority defer: the once-per-iteration disk work */
        sd_event_source *flush_retry;  /* after a failed flush (disk full): try again later */
        sd_event_source *flush_pace;   /* a flush asked for within MANAGER_FLUSH_INTERVAL of the last one */
        usec_t last_flush;             /* CLOCK_MONOTONIC */
        usec_t flush_backoff;          /* 0 while flushes succeed */
        char *flush_error;             /* why the job states cannot be saved, for STATUS= and prakat status */
        Job **start_list;              /* jobs made "sending" on disk, to hand to plugins after the flush */
        size_t n_start, cap_start;
        size_t n_finishing; /* entries waiting for their receipt */
        size_t n_interim;   /* entries waiting for an interim receipt */
        unsigned in_flight;
        bool stopping;
        bool check_only; /* prakatd --check: configure everything, change nothing (PRAKAT_HOST_CHECK_ONLY) */
        sd_event_source *stop_timer;
        char last_status[256];
};

/* With check_only (prakatd --check, maybe by root while the daemon runs): the config and every channel
 * are checked, but nothing is created or changed on disk and no queue is opened; not to be run. */
int manager_new(const char *config_path, bool check_only, Manager **ret);
void manager_free(Manager *m);
int manager_run(Manager *m);

sd_event *manager_event(Manager *m);
HttpClient *manager_http(Manager *m);
ChannelInstance *manager_channel(Manager *m, const char *name);
/* At most one flush this often: the changes of a busy stretch share their writes and syncs. */
#define MANAGER_FLUSH_INTERVAL (20 * USEC_PER_MSEC)
/* Asks for queue_flush() and the follow-up work at the end of this loop iteration, or, right after
 * another flush, MANAGER_FLUSH_INTERVAL after that one. */
void manager_request_flush(Manager *m);
/* Updates STATUS= for systemd. */
void manager_update_status(Manager *m);
