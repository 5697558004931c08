/* SPDX-License-Identifier: MIT */
/*
 * log: one place that decides where messages go.  Under systemd (stderr connected to the journal)
 * messages go to journald with structured fields PRAKAT_ID= and PRAKAT_CHANNEL=; otherwise to stderr
 * as "prakatd[ID/channel]: message".  Log once, at the boundary that decides what happens next.
 */
#pragma once

#include <syslog.h>

#include "util.h"

void log_open(const char *identifier);
void log_set_max_level(int level);
int log_get_max_level(void);

/* Returns -abs(error) so that callers can write `return log_error_errno(r, "...: %m");`.
 * "%m" prints strerror(error), not of errno. */
int log_full(int level, int error, const char *id, const char *channel, const char *format, ...) _printf_(5, 6);
int log_fullv(int level, int error, const char *id, const char *channel, const char *format, va_list ap);

#define log_debug(...) log_full(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_ERR, (e), NULL, NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_WARNING, (e), NULL, NULL, __VA_ARGS__)
