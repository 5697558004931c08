/* SPDX-License-Identifier: MIT */
/*
 * tower-child: the player and the text-to-speech commands, run as child processes watched by the
 * event loop (never waited for).  A command line is a template from the config split on blanks;
 * {file} and {text} are replaced inside a word, which stays one argv element whatever it holds, and no
 * shell ever sees it.  Each child gets its own process group, so a player that forks (a wrapper
 * script) is stopped whole.
 */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

/* How long a child has between SIGTERM and SIGKILL. */
#define TOWER_CHILD_KILL_GRACE (2 * USEC_PER_SEC)

typedef struct TowerChild TowerChild;

/*
 * Called once, from the event loop, when the child has exited: result 0 on exit status 0; -ETIME when
 * it ran past its time limit and was killed; -ECANCELED when tower_child_stop() ended it; -EIO for any
 * other failure.  `description` says what happened ("exited with status 1", ...).
 */
typedef void (*tower_child_done_fn)(void *userdata, int result, const char *description);

/*
 * Builds an argv from a template.  `file`/`text` may be NULL when the template does not use them.  The
 * text is made safe to pass as one argument: control characters become spaces and a leading '-' gets
 * a space before it, so that it can never be taken for an option.  Returns -EINVAL for an empty template.
 */
int tower_command_build(const char *template, const char *file, const char *text, char ***ret_argv);

/* "mpg123 -q /var/lib/…/a.mp3" for logs: the words joined, each cut at 80 bytes. */
char *tower_command_describe(char *const *argv);

void tower_strv_free(char **v);
static inline void tower_strv_freep(char ***p) {
        tower_strv_free(*p);
}

/*
 * Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout to our stderr.  Returns -ENOENT
 * when the program cannot be found or run (nothing is started), another negative errno on failure.
 */
int tower_child_spawn(sd_event *event, char *const *argv, usec_t max_time, tower_child_done_fn done, void *userdata,
                      TowerChild **ret);

/* Asks the child to stop (SIGTERM to its group, SIGKILL after the grace); done() follows with -ECANCELED. */
void tower_child_stop(TowerChild *c);

/* Frees the watcher.  A child still running is killed (SIGKILL to its group) and done() is not called. */
TowerChild *tower_child_free(TowerChild *c);

pid_t tower_child_pid(const TowerChild *c);
