/* SPDX-License-Identifier: MIT */
/*
 * tower-audio: recorded announcements, downloaded from their audio_url ahead of their slot into a cache
 * in the state directory.  A cached file is named after a hash of its URL (never after anything the
 * URL says), so no URL can make the agent write outside the cache.  The cache is bounded: after each
 * download the least recently used files that no scheduled item needs are removed until it fits.
 * Downloads go through the core's asynchronous HTTP client; a transient failure is retried with
 * back-off, an HTTP 4xx or a file larger than the cache is final.
 */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

typedef struct TowerAudio TowerAudio;

typedef enum TowerAudioState {
        TOWER_AUDIO_READY,   /* in the cache */
        TOWER_AUDIO_LOADING, /* first download still running */
        TOWER_AUDIO_FAILED,  /* the last attempt failed; it may still be retried */
} TowerAudioState;

/* Called from the event loop whenever a download ends, well or not. */
typedef void (*tower_audio_done_fn)(void *userdata, const char *url);

int tower_audio_new(sd_event *event, const char *dir, uint64_t max_size, tower_audio_done_fn done, void *userdata,
                    TowerAudio **ret);
TowerAudio *tower_audio_free(TowerAudio *a);

/* Makes sure `url` is cached or on its way. */
void tower_audio_want(TowerAudio *a, const char *url);

/*
 * Where `url` stands.  READY sets *ret_path (malloc'd) and marks the file as just used; FAILED sets
 * *ret_error to why (owned by the cache, valid until the next call into it).  Starts a download if
 * there is none.
 */
TowerAudioState tower_audio_lookup(TowerAudio *a, const char *url, char **ret_path, const char **ret_error);

/* Forgets downloads of URLs no longer wanted (the keep list), and trims the cache to its size. */
void tower_audio_trim(TowerAudio *a, char *const *keep_urls, size_t n_keep);

/* The cache file name for a URL: 16 hex digits and a known audio extension, or ".audio". */
char *tower_audio_file_name(const char *url);
