/* SPDX-License-Identifier: MIT */
/*
 * plugin: loads channel plugins with dlopen and gives each instance its prakat_host (the services
 * of channels/prakat-channel.h).  A plugin built for another ABI version is refused with a message
 * that says which version it has and which one this prakatd needs.
 */
#pragma once

#include "config.h"
#include "prakat-channel.h"

typedef struct Manager Manager;

typedef struct ChannelInstance {
        prakat_host host; /* first: the plugin's host pointer leads back here */
        Manager *manager;
        char *name;
        ChannelConfig *config; /* a copy, to see on reload whether it changed */
        void *dl;
        const prakat_channel_plugin *plugin;
        void *instance;
        unsigned refs; /* the manager's, plus one per job in flight */
        bool healthy;
        char health[256];
        prakat_command_fn command; /* set by the plugin through host->command_handler_set, or NULL */
        void *command_userdata;
} ChannelInstance;

/* Where plugins are looked for: the config's plugin_dir; else channels/ beside the executable; else the built-in one. */
char *plugin_search_dir(const Config *config);

/*
 * Loads and configures the channel `cc`.  On failure returns a negative errno and a message naming
 * the config file and line in *ret_error.
 */
int channel_instance_load(Manager *m, const Config *config, const ChannelConfig *cc, ChannelInstance **ret,
                          char **ret_error);
ChannelInstance *channel_instance_ref(ChannelInstance *c);
void channel_instance_unref(ChannelInstance *c);
/* Re-reads the instance's health (the plugin's health()). */
void channel_instance_check_health(ChannelInstance *c);

/*
 * Passes an operator's command (e.g. "site-sync") to the instance's handler.  Returns -EOPNOTSUPP
 * when the instance has none, else what the handler returns; `reply` holds its answer.
 */
int channel_instance_command(ChannelInstance *c, const char *command, char *reply, size_t reply_size);

/*
 * What the instance would send for `a` (the plugin's preview()), into *ret_text (free()).  Returns
 * -EOPNOTSUPP when the plugin has no preview (built before it was added), else what preview() returns.
 */
int channel_instance_preview(ChannelInstance *c, const prakat_announcement *a, const char *page_path,
                             char **ret_text);

/* Opens a plugin and checks its ABI, for `prakatd --check-plugin` and tests. */
int plugin_open(const char *path, void **ret_dl, const prakat_channel_plugin **ret_plugin, char **ret_error);
