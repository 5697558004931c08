/* SPDX-License-Identifier: MIT */
/*
 * wordpress.h: the website channel's second mode.  With `mode = wordpress` in the channel's
 * section, website.c hands the whole instance to wordpress.c, which publishes through the
 * WordPress REST API instead of writing static pages.  Nothing else of website.c runs then.
 */
#ifndef PRAKAT_WEBSITE_WORDPRESS_H
#define PRAKAT_WEBSITE_WORDPRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "prakat-channel.h"
#include "plugin-util.h"

typedef struct WordPress WordPress;

/*
 * Which mode the section asks for: 1 for `mode = wordpress`, 0 for `mode = static` or no mode
 * key, -EINVAL (with the reason and line in `err`) for anything else.
 */
int wordpress_mode_requested(const prakat_config_entry *entries, size_t n_entries, PluginConfigError *err);

/* Reads the whole section (mode = wordpress); reads the password; starts the health check. */
int wordpress_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                        WordPress **ret, PluginConfigError *err);
int wordpress_publish(WordPress *wp, prakat_job *job, const prakat_announcement *announcement);
/* What publish() would send (prakat-channel.h, preview); writes a page of the post to page_path when set. */
int wordpress_preview(WordPress *wp, const prakat_announcement *announcement, const char *page_path, char **ret_text);
int wordpress_retract(WordPress *wp, prakat_job *job, const prakat_announcement *target, const char *reason);
int wordpress_health(WordPress *wp, char *buffer, size_t buffer_size);
/* Cancels every call and timer; jobs still in its hands are resumed by the core after a restart. */
void wordpress_free(WordPress *wp);

#endif
