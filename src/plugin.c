/* SPDX-License-Identifier: MIT */
#include "plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>

#include "delivery.h"
#include "http.h"
#include "log.h"
#include "manager.h"
#include "thaidate.h"

#ifndef PRAKAT_PLUGIN_DIR
#define PRAKAT_PLUGIN_DIR "/usr/lib/prakat/channels"
#endif

char *plugin_search_dir(const Config *config) {
        char exe[PATH_MAX];
        ssize_t n;

        if (config->plugin_dir)
                return xstrdup(config->plugin_dir);
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = 0;
                char *slash = strrchr(exe, '/');
                if (slash) {
                        *slash = 0;
                        _cleanup_free_ char *beside = path_join(exe, "channels");
                        struct stat st;
                        if (stat(beside, &st) == 0 && S_ISDIR(st.st_mode))
                                return TAKE_PTR(beside);
                }
        }
        return xstrdup(PRAKAT_PLUGIN_DIR);
}

int plugin_open(const char *path, void **ret_dl, const prakat_channel_plugin **ret_plugin, char **ret_error) {
        const prakat_channel_plugin *p;
        void *dl;

        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                *ret_error = xasprintf("cannot load the plugin %s: %s", path, dlerror());
                return -ENOENT;
        }
        p = dlsym(dl, PRAKAT_CHANNEL_SYMBOL);
        if (!p) {
                *ret_error = xasprintf("%s is not a prakat channel plugin (it has no symbol %s)", path,
                                       PRAKAT_CHANNEL_SYMBOL);
                dlclose(dl);
                return -EINVAL;
        }
        /* A plugin built before preview() was added is still taken; the core asks PRAKAT_PLUGIN_HAS first. */
        if (p->abi_version != PRAKAT_CHANNEL_ABI_VERSION || p->struct_size < PRAKAT_CHANNEL_PLUGIN_MIN_SIZE) {
                *ret_error = xasprintf("%s was built for plugin ABI version %u (struct size %u), but this prakatd "
                                       "needs version %u (size %zu at least). Rebuild the plugin against this "
                                       "prakat's channels/prakat-channel.h, or install the matching version",
                                       path, p->abi_version, p->struct_size, PRAKAT_CHANNEL_ABI_VERSION,
                                       (size_t) PRAKAT_CHANNEL_PLUGIN_MIN_SIZE);
                dlclose(dl);
                return -EPROTO;
        }
        if (!p->configure || !p->publish || !p->destroy || !p->name) {
                *ret_error = xasprintf("%s lacks configure(), publish(), destroy() or its name", path);
                dlclose(dl);
                return -EINVAL;
        }
        *ret_dl = dl;
        *ret_plugin = p;
        return 0;
}

/* ---- the services of prakat_host ---- */

static ChannelInstance *host_instance(const prakat_host *host) {
        return (ChannelInstance *) host; /* host is the first member */
}

static prakat_usec_t host_now(const prakat_host *host) {
        return clock_now();
}

static int host_format_date(const prakat_host *host, prakat_usec_t usec, prakat_date_style style, char *buffer,
                            size_t size) {
        switch (style) {
        case PRAKAT_DATE_THAI_LONG:
                return thaidate_format(usec, THAIDATE_LONG, buffer, size);
        case PRAKAT_DATE_THAI_LONG_DATE:
                return thaidate_format(usec, THAIDATE_LONG_DATE, buffer, size);
        case PRAKAT_DATE_THAI_SHORT:
                return thaidate_format(usec, THAIDATE_SHORT, buffer, size);
        case PRAKAT_DATE_ISO_LOCAL:
                return thaidate_format_iso(usec, buffer, size);
        case PRAKAT_DATE_ISO_UTC:
                return thaidate_format_utc(usec, buffer, size);
        case PRAKAT_DATE_DAY:
                return thaidate_format_day(usec, false, buffer, size);
        }
        return -EINVAL;
}

static void host_log(const prakat_host *host, prakat_log_level level, const char *id, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_fullv((int) level, 0, id, host->channel, format, ap);
        va_end(ap);
}

struct prakat_timer {
        sd_event_source *source;
        prakat_timer_fn fn;
        void *userdata;
};

static int on_plugin_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        prakat_timer *t = userdata;
        prakat_timer_fn fn = t->fn;
        void *data = t->userdata;

        /* Freed before the call, so the callback may start a new timer at once. */
        sd_event_source_disable_unref(t->source);
        free(t);
        fn(data);
        return 0;
}

static int host_timer_start(const prakat_host *host, prakat_usec_t delay, prakat_timer_fn fn, void *userdata,
                            prakat_timer **ret) {
        ChannelInstance *c = host_instance(host);
        prakat_timer *t = xcalloc(1, sizeof(prakat_timer));
        int r;

        t->fn = fn;
        t->userdata = userdata;
        /* Relative on CLOCK_MONOTONIC: follows a shifted PRAKAT_NOW clock and survives wall-clock jumps. */
        r = sd_event_add_time_relative(manager_event(c->manager), &t->source, CLOCK_MONOTONIC, delay, 0,
                                       on_plugin_timer, t);
        if (r < 0) {
                free(t);
                return r;
        }
        (void) sd_event_source_set_description(t->source, "plugin-timer");
        if (ret)
                *ret = t;
        return 0;
}

struct prakat_io {
        sd_event_source *source;
        prakat_io_fn fn;
        void *userdata;
};

static int on_plugin_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        prakat_io *io = userdata;
        io->fn(io->userdata, fd, revents);
        return 0;
}

static int host_io_watch(const prakat_host *host, int fd, uint32_t events, prakat_io_fn fn, void *userdata,
                         prakat_io **ret) {
        ChannelInstance *c = host_instance(host);
        prakat_io *io;
        int r;

        if (fd < 0 || !fn || !ret)
                return -EINVAL;
        io = xcalloc(1, sizeof(prakat_io));
        io->fn = fn;
        io->userdata = userdata;
        r = sd_event_add_io(manager_event(c->manager), &io->source, fd, events, on_plugin_io, io);
        if (r < 0) {
                free(io);
                return r;
        }
        if (events == 0)
                (void) sd_event_source_set_enabled(io->source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(io->source, "plugin-io");
        *ret = io;
        return 0;
}

static int host_io_set_events(prakat_io *io, uint32_t events) {
        int r;

        if (!io)
                return -EINVAL;
        if (events == 0)
                return sd_event_source_set_enabled(io->source, SD_EVENT_OFF);
        r = sd_event_source_set_io_events(io->source, events);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(io->source, SD_EVENT_ON);
}

static void host_io_cancel(prakat_io *io) {
        if (!io)
                return;
        sd_event_source_disable_unref(io->source);
        free(io);
}

static void host_timer_cancel(prakat_timer *t) {
        if (!t)
                return;
        sd_event_source_disable_unref(t->source);
        free(t);
}

static int host_http_request(const prakat_host *host, const prakat_http_request *request, prakat_http_done_fn done,
                             void *userdata, prakat_http_call **ret) {
        HttpClient *c = manager_http(host_instance(host)->manager);
        return c ? http_client_request(c, request, done, userdata, ret) : -EIO;
}

static void host_http_cancel(prakat_http_call *call) {
        http_call_cancel(call);
}

static int host_transfer_upload(const prakat_host *host, const prakat_transfer *transfer, prakat_http_done_fn done,
                                void *userdata, prakat_http_call **ret) {
        HttpClient *c = manager_http(host_instance(host)->manager);
        return c ? http_client_upload(c, transfer, done, userdata, ret) : -EIO;
}

static void host_command_handler_set(const prakat_host *host, prakat_command_fn fn, void *userdata) {
        ChannelInstance *c = host_instance(host);

        c->command = fn;
        c->command_userdata = userdata;
}

int channel_instance_command(ChannelInstance *c, const char *command, char *reply, size_t reply_size) {
        if (!c->command || !c->instance) {
                snprintf(reply, reply_size, "channel %s takes no commands", c->name);
                return -EOPNOTSUPP;
        }
        return c->command(c->command_userdata, command, reply, reply_size);
}

int channel_instance_preview(ChannelInstance *c, const prakat_announcement *a, const char *page_path,
                             char **ret_text) {
        if (!c->instance || !PRAKAT_PLUGIN_HAS(c->plugin, preview))
                return -EOPNOTSUPP;
        return c->plugin->preview(c->instance, a, page_path, ret_text);
}

static void host_job_finish(const prakat_host *host, prakat_job *job, const prakat_result *result) {
        delivery_job_finished(host_instance(host)->manager, job, result);
}

static void host_job_note(const prakat_host *host, prakat_job *job, const char *message, const char *message_th) {
        delivery_job_note(host_instance(host)->manager, job, message, message_th);
}

static ChannelConfig *channel_config_copy(const ChannelConfig *cc) {
        ChannelConfig *c = xcalloc(1, sizeof(ChannelConfig));

        c->name = xstrdup(cc->name);
        c->plugin = xstrdup(cc->plugin);
        c->enabled = cc->enabled;
        c->line = cc->line;
        c->entries = xcalloc(cc->n_entries + 1, sizeof(prakat_config_entry));
        for (size_t i = 0; i < cc->n_entries; i++)
                c->entries[i] = (prakat_config_entry) { xstrdup(cc->entries[i].key), xstrdup(cc->entries[i].value),
                                                        cc->entries[i].line };
        c->n_entries = cc->n_entries;
        return c;
}

static void channel_config_free(ChannelConfig *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_entries; i++) {
                free((char *) c->entries[i].key);
                free((char *) c->entries[i].value);
        }
        free(c->entries);
        free(c->name);
        free(c->plugin);
        free(c);
}

static void channel_instance_free(ChannelInstance *c) {
        if (c->instance)
                c->plugin->destroy(c->instance);
        if (c->dl)
                dlclose(c->dl);
        channel_config_free(c->config);
        free((char *) c->host.state_dir);
        free((char *) c->host.timezone);
        free((char *) c->host.config_dir);
        free(c->name);
        free(c);
}

static char *config_dirname(const char *path) {
        _cleanup_free_ char *abs = realpath(path, NULL);
        const char *p = abs ? abs : path;
        const char *slash = strrchr(p, '/');

        if (!slash)
                return xstrdup(".");
        return slash == p ? xstrdup("/") : xstrndup(p, (size_t) (slash - p));
}

int channel_instance_load(Manager *m, const Config *config, const ChannelConfig *cc, ChannelInstance **ret,
                          char **ret_error) {
        _cleanup_free_ char *dir = plugin_search_dir(config), *file = NULL, *error = NULL, *state = NULL;
        char reason[512] = "";
        unsigned line = 0;
        ChannelInstance *c;
        int r;

        file = xasprintf("%s/%s.so", dir, cc->plugin);
        c = xcalloc(1, sizeof(ChannelInstance));
        c->manager = m;
        c->name = xstrdup(cc->name);
        c->refs = 1;
        r = plugin_open(file, &c->dl, &c->plugin, &error);
        if (r < 0) {
                *ret_error = xasprintf("%s:%u: [channel %s]: %s. Check plugin = %s and plugin_dir.", config->path,
                                       cc->line, cc->name, error, cc->plugin);
                channel_instance_free(c);
                return r;
        }
        state = xasprintf("%s/channels/%s", config->state, cc->name);
        r = m->check_only ? 0 : mkdir_p(state, 0750); /* a check creates nothing */
        if (r < 0) {
                *ret_error = xasprintf("%s:%u: [channel %s]: cannot create %s: %s", config->path, cc->line, cc->name,
                                       state, strerror(-r));
                channel_instance_free(c);
                return r;
        }
        c->config = channel_config_copy(cc);
        c->host = (prakat_host) {
                .abi_version = PRAKAT_CHANNEL_ABI_VERSION,
                .struct_size = sizeof(prakat_host),
                .channel = c->name,
                .state_dir = TAKE_PTR(state),
                .timezone = xstrdup(config->timezone),
                .now = host_now,
                .format_date = host_format_date,
                .log = host_log,
                .timer_start = host_timer_start,
                .timer_cancel = host_timer_cancel,
                .http_request = host_http_request,
                .http_cancel = host_http_cancel,
                .job_finish = host_job_finish,
                .config_dir = config_dirname(config->path),
                .io_watch = host_io_watch,
                .io_set_events = host_io_set_events,
                .io_cancel = host_io_cancel,
                .job_note = host_job_note,
                .transfer_upload = host_transfer_upload,
                .command_handler_set = host_command_handler_set,
                .flags = m->check_only ? PRAKAT_HOST_CHECK_ONLY : 0,
        };
        r = c->plugin->configure(&c->host, cc->entries, cc->n_entries, &c->instance, reason, sizeof reason, &line);
        if (r < 0) {
                *ret_error = xasprintf("%s:%u: [channel %s]: %s", config->path, line ? line : cc->line, cc->name,
                                       reason[0] ? reason : strerror(-r));
                channel_instance_free(c);
                return r;
        }
        channel_instance_check_health(c);
        *ret = c;
        return 0;
}

ChannelInstance *channel_instance_ref(ChannelInstance *c) {
        c->refs++;
        return c;
}

void channel_instance_unref(ChannelInstance *c) {
        if (c && --c->refs == 0)
                channel_instance_free(c);
}

void channel_instance_check_health(ChannelInstance *c) {
        int r;

        if (!c->plugin->health) {
                c->healthy = true;
                snprintf(c->health, sizeof c->health, "ok");
                return;
        }
        c->health[0] = 0;
        r = c->plugin->health(c->instance, c->health, sizeof c->health);
        c->healthy = r >= 0;
        if (!c->health[0])
                snprintf(c->health, sizeof c->health, "%s", c->healthy ? "ok" : strerror(-r));
}
