/* SPDX-License-Identifier: MIT */
#include "manager.h"

#include "control.h"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include "delivery.h"
#include "event-util.h"
#include "log.h"
#include "spool.h"
#include "thaidate.h"

/* How long a stop waits for jobs a plugin is working on; what is left is resumed after restart. */
#define MANAGER_STOP_GRACE (10 * USEC_PER_SEC)
#define MANAGER_FLUSH_RETRY_MAX (30 * USEC_PER_SEC)

sd_event *manager_event(Manager *m) {
        return m->event;
}

/* Made on first use: a website-only setup never initializes libcurl and OpenSSL (about 3 MB of RSS). */
HttpClient *manager_http(Manager *m) {
        if (!m->http) {
                int r = http_client_new(m->event, &m->http);
                if (r < 0)
                        log_error_errno(r, "Failed to set up the HTTP client: %m");
        }
        return m->http;
}

ChannelInstance *manager_channel(Manager *m, const char *name) {
        for (size_t i = 0; i < m->n_channels; i++)
                if (streq(m->channels[i]->name, name))
                        return m->channels[i];
        return NULL;
}

void manager_update_status(Manager *m) {
        char status[256];
        const char *paused = m->spool ? spool_paused_reason(m->spool) : NULL;

        snprintf(status, sizeof status, "%s%zu announcements queued, %zu jobs pending, %u sending, %zu waiting in incoming%s%s%s%s",
                 m->stopping ? "Stopping: " : "", queue_size(m->queue), delivery_pending_jobs(m), m->in_flight,
                 m->spool ? spool_waiting(m->spool) : 0, paused ? "; intake paused: " : "", paused ? paused : "",
                 m->flush_error ? "; " : "", m->flush_error ? m->flush_error : "");
        if (streq(status, m->last_status))
                return;
        snprintf(m->last_status, sizeof m->last_status, "%s", status);
        (void) sd_notifyf(false, "STATUS=%s", status);
}

static int on_flush_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        manager_request_flush(userdata);
        return 0;
}

/* A full or failing state disk: keep everything in memory as it is and try again, 1 s, 2 s, ... 30 s apart. */
static void manager_flush_failed(Manager *m, int error) {
        _cleanup_free_ char *why = xasprintf("cannot save the job states in %s: %s", m->config->state,
                                             strerror(-error));
        usec_t now = 0;

        m->flush_backoff = m->flush_backoff == 0 ? USEC_PER_SEC : m->flush_backoff * 2;
        if (m->flush_backoff > MANAGER_FLUSH_RETRY_MAX)
                m->flush_backoff = MANAGER_FLUSH_RETRY_MAX;
        if (!streq_ptr(m->flush_error, why)) {
                free(m->flush_error);
                m->flush_error = TAKE_PTR(why);
                manager_update_status(m);
        }
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        (void) event_timer_arm(m->event, &m->flush_retry, now + m->flush_backoff, USEC_PER_SEC / 10, on_flush_retry, m,
                               "flush-retry");
}

/* The once-per-iteration work: all state changes of this iteration go to disk together. */
static int on_flush(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        int r;

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &m->last_flush);
        r = queue_flush(m->queue);
        if (r < 0) {
                /* Nothing is handed to a plugin before its "sending" state is on disk: try again later. */
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                manager_flush_failed(m, r);
                return 0;
        }
        if (m->flush_error) {
                log_notice("The job states are saved again.");
                free(m->flush_error);
                m->flush_error = NULL;
                m->flush_backoff = 0;
                manager_update_status(m);
        }
        delivery_after_flush(m);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (queue_has_dirty(m->queue) || m->n_start > 0)
                manager_request_flush(m);
        if (m->stopping && m->in_flight == 0)
                sd_event_exit(m->event, 0);
        return 0;
}

static int on_flush_pace(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->flush_source)
                sd_event_source_set_enabled(m->flush_source, SD_EVENT_ON);
        return 0;
}

/*
 * At the end of this loop iteration, or, when the last flush was less than MANAGER_FLUSH_INTERVAL ago,
 * that long after it: under a stream of small changes (answers arriving one by one) the changes of
 * several iterations then share one write and one sync.  A lone change is flushed at once.
 */
void manager_request_flush(Manager *m) {
        usec_t now = 0;

        if (!m->flush_source || sd_event_source_get_enabled(m->flush_source, NULL) > 0)
                return;
        if (m->flush_pace && sd_event_source_get_enabled(m->flush_pace, NULL) > 0)
                return; /* already planned */
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (m->stopping || m->last_flush == 0 || now >= m->last_flush + MANAGER_FLUSH_INTERVAL) {
                sd_event_source_set_enabled(m->flush_source, SD_EVENT_ON);
                return;
        }
        if (event_timer_arm(m->event, &m->flush_pace, m->last_flush + MANAGER_FLUSH_INTERVAL, 0, on_flush_pace, m,
                            "flush-pace") < 0)
                sd_event_source_set_enabled(m->flush_source, SD_EVENT_ON); /* correct, only not paced */
}

static void manager_free_channels(Manager *m) {
        for (size_t i = 0; i < m->n_channels; i++)
                channel_instance_unref(m->channels[i]);
        free(m->channels);
        m->channels = NULL;
        m->n_channels = 0;
}

/* Loads the enabled channels of `config`, reusing the instances in `old` whose section is unchanged. */
static int manager_load_channels(Manager *m, const Config *config, ChannelInstance **old, size_t n_old,
                                 ChannelInstance ***ret, size_t *ret_n, char **ret_error) {
        ChannelInstance **list = xcalloc(config->n_channels + 1, sizeof(ChannelInstance *));
        size_t n = 0;
        int r;

        for (size_t i = 0; i < config->n_channels; i++) {
                const ChannelConfig *cc = &config->channels[i];
                ChannelInstance *c = NULL;

                if (!cc->enabled)
                        continue;
                for (size_t k = 0; k < n_old && !c; k++)
                        if (channel_config_equal(old[k]->config, cc))
                                c = channel_instance_ref(old[k]);
                if (!c) {
                        r = channel_instance_load(m, config, cc, &c, ret_error);
                        if (r < 0) {
                                for (size_t k = 0; k < n; k++)
                                        channel_instance_unref(list[k]);
                                free(list);
                                return r;
                        }
                }
                list[n++] = c;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

static void manager_log_channels(Manager *m) {
        for (size_t i = 0; i < m->n_channels; i++) {
                ChannelInstance *c = m->channels[i];
                log_full(c->healthy ? LOG_INFO : LOG_WARNING, 0, NULL, c->name, "Channel %s (plugin %s %s): %s",
                         c->name, c->plugin->name, c->plugin->version ? c->plugin->version : "", c->health);
        }
}

/* SIGHUP: validate the new config completely, and only then swap it in. */
static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *error = NULL;
        ChannelInstance **channels = NULL;
        size_t n = 0;
        Config *config = NULL;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading the configuration",
                          (unsigned long long) clock_monotonic());
        r = config_load(m->config_path, &config, &error);
        if (r >= 0) {
                if (!streq(config->spool, m->config->spool) || !streq(config->state, m->config->state)) {
                        error = xasprintf("%s: spool and state cannot change on reload; restart prakatd for that",
                                          m->config_path);
                        r = -EINVAL;
                }
        }
        if (r >= 0)
                r = manager_load_channels(m, config, m->channels, m->n_channels, &channels, &n, &error);
        if (r < 0) {
                log_error("Reload refused, keeping the running configuration: %s", error);
                config_free(config);
                (void) thaidate_set_timezone(m->config->timezone);
                (void) sd_notify(false, "READY=1");
                m->last_status[0] = 0;
                manager_update_status(m);
                return 0;
        }
        manager_free_channels(m);
        m->channels = channels;
        m->n_channels = n;
        config_free(m->config);
        m->config = config;
        log_notice("Configuration reloaded from %s.", m->config_path);
        manager_log_channels(m);
        (void) sd_notify(false, "READY=1");
        m->last_status[0] = 0;
        manager_update_status(m);
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_warning("%u job(s) still sending after %llus; leaving them to be resumed at the next start.", m->in_flight,
                    (unsigned long long) (MANAGER_STOP_GRACE / USEC_PER_SEC));
        sd_event_exit(m->event, 0);
        return 0;
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->stopping)
                return 0;
        m->stopping = true;
        log_notice("Stopping (signal %u): no new files are taken; finishing what is being sent.", si->ssi_signo);
        (void) sd_notify(false, "STOPPING=1");
        delivery_stop(m);
        manager_update_status(m);
        if (m->in_flight == 0 && !queue_has_dirty(m->queue)) {
                sd_event_exit(m->event, 0);
                return 0;
        }
        manager_request_flush(m);
        (void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC, MANAGER_STOP_GRACE, 0,
                                          on_stop_timeout, m);
        return 0;
}

int manager_new(const char *config_path, bool check_only, Manager **ret) {
        _cleanup_free_ char *error = NULL;
        Manager *m = xcalloc(1, sizeof(Manager));
        sigset_t mask;
        int r;

        m->config_path = xstrdup(config_path);
        m->check_only = check_only;
        r = config_load(config_path, &m->config, &error);
        if (r < 0) {
                log_error("%s", error);
                goto fail;
        }
        r = sd_event_default(&m->event);
        if (r < 0)
                goto fail_log;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, on_stop, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, on_stop, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGHUP, on_reload, m)) < 0)
                goto fail_log;
        /* Pings WATCHDOG=1 at half the WatchdogSec= interval; nothing else wakes an idle daemon. */
        (void) sd_event_set_watchdog(m->event, true);
        r = sd_event_add_defer(m->event, &m->flush_source, on_flush, m);
        if (r < 0)
                goto fail_log;
        /* Lowest priority: it runs once everything else pending in this iteration was handled. */
        sd_event_source_set_priority(m->flush_source, SD_EVENT_PRIORITY_IDLE);
        sd_event_source_set_enabled(m->flush_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->flush_source, "flush");

        /* Opening the queue clears STATE/tmp, which a running daemon may be using: not for a check. */
        r = check_only ? 0 : queue_open(m->config->state, &m->queue);
        if (r < 0)
                goto fail;
        r = manager_load_channels(m, m->config, NULL, 0, &m->channels, &m->n_channels, &error);
        if (r < 0) {
                log_error("%s", error);
                goto fail;
        }
        *ret = m;
        return 0;
fail_log:
        log_error_errno(r, "Failed to set up the event loop: %m");
fail:
        manager_free(m);
        return r;
}

void manager_free(Manager *m) {
        if (!m)
                return;
        control_free(m->control);
        spool_free(m->spool);
        if (m->queue) {
                delivery_stop(m);
                delivery_abandon_in_flight(m);
        }
        /* Plugins first: they may still hold HTTP calls and timers. */
        manager_free_channels(m);
        queue_free(m->queue);
        http_client_free(m->http);
        sd_event_source_disable_unref(m->flush_source);
        sd_event_source_disable_unref(m->flush_retry);
        sd_event_source_disable_unref(m->flush_pace);
        free(m->flush_error);
        sd_event_source_disable_unref(m->stop_timer);
        sd_event_unref(m->event);
        config_free(m->config);
        free(m->start_list);
        free(m->config_path);
        free(m);
}

int manager_run(Manager *m) {
        int r;

        if (clock_is_shifted())
                log_warning("PRAKAT_NOW is set: the clock is shifted for testing.");
        manager_log_channels(m);
        for (size_t i = 0; i < queue_size(m->queue); i++)
                delivery_schedule_entry(m, queue_entry(m->queue, i));
        r = spool_new(m, &m->spool);
        if (r < 0)
                return r;
        (void) control_new(m, &m->control);
        _cleanup_free_ char *spool = realpath(m->config->spool, NULL); /* "run/spool", not "conf/../run/spool" */
        log_notice("prakatd ready: drop announcements into %s/incoming (%zu waiting in the queue).",
                   spool ? spool : m->config->spool, queue_size(m->queue));
        manager_update_status(m);
        (void) sd_notify(false, "READY=1");
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* Whatever changed last must be on disk before we go. */
        (void) queue_flush(m->queue);
        log_notice("Stopped.");
        return 0;
}
