/* SPDX-License-Identifier: MIT */
/*
 * line-plugin-util.h: channels/plugin-util.h for the LINE plugin's files.
 *
 * GCC 12 at -O2 warns that plugin_read_secret()'s `struct stat st` may be used uninitialized (it
 * cannot see that plugin_read_small_file() fills it whenever it returns 0).  The shared header is
 * not this plugin's to change, so the warning is silenced for that header alone; every file of
 * the plugin includes it through here, so whichever comes first gets the same treatment.
 */
#ifndef PRAKAT_LINE_PLUGIN_UTIL_H
#define PRAKAT_LINE_PLUGIN_UTIL_H

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "plugin-util.h"
#pragma GCC diagnostic pop

#endif
