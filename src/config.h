/* SPDX-License-Identifier: MIT */
/* config: /etc/prakat/prakat.conf (DESIGN §6), every error with file, line and how to fix it. */
#pragma once

#include "prakat-channel.h"
#include "util.h"

typedef struct ChannelConfig {
        char *name;   /* from "[channel NAME]" */
        char *plugin; /* plugin = ... */
        bool enabled;
        unsigned line; /* of the section header */
        prakat_config_entry *entries; /* every other key, for the plugin's configure() */
        size_t n_entries;
} ChannelConfig;

#define VILLAGE_MAX 999u

typedef struct Config {
        char *path;
        char *spool, *state, *timezone, *plugin_dir, *default_category, *runtime_dir;
        usec_t settle, retry_min, retry_max, give_up_after;
        uint64_t max_file_size;
        unsigned max_attachments;
        bool require_approval;
        char *control_group;  /* who may use the control socket; NULL: the daemon's own group */
        gid_t control_gid;
        char *village_names[VILLAGE_MAX + 1]; /* index = village number; NULL when not configured */
        unsigned n_villages;
        ChannelConfig *channels;
        size_t n_channels;
} Config;

/*
 * Loads and checks a config file.  Relative paths in it are taken relative to the file's
 * directory.  On failure returns a negative errno and sets *ret_error to a message of the form
 * "FILE:LINE: what is wrong. How to fix it." (malloc'd).
 */
int config_load(const char *path, Config **ret_config, char **ret_error);
void config_free(Config *config);

const ChannelConfig *config_find_channel(const Config *config, const char *name);
/* "website, facebook (disabled), line" — for messages that list what exists. */
char *config_channel_list(const Config *config);
/* True when both define the same channel with the same plugin and keys (line numbers aside). */
bool channel_config_equal(const ChannelConfig *a, const ChannelConfig *b);
