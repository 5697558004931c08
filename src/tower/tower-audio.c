/* SPDX-License-Identifier: MIT */
#include "tower-audio.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "http.h"
#include "log.h"

#define TOWER_AUDIO_TIMEOUT_MS (10 * 60 * 1000)
#define TOWER_AUDIO_FILE_MAX (100ULL * 1024 * 1024)
#define TOWER_AUDIO_RETRY_MIN (30 * USEC_PER_SEC)
#define TOWER_AUDIO_RETRY_MAX (10 * USEC_PER_MINUTE)

typedef struct Download {
        TowerAudio *cache;
        char *url;
        TowerAudioState state;
        char *error;
        bool final; /* no more retries */
        unsigned attempts;
        prakat_http_call *call;
        sd_event_source *retry;
        struct Download *next;
} Download;

struct TowerAudio {
        sd_event *event;
        HttpClient *http;
        char *dir;
        uint64_t max_size;
        Download *downloads;
        tower_audio_done_fn done;
        void *userdata;
};

char *tower_audio_file_name(const char *url) {
        static const char *const known[] = { "mp3", "ogg", "oga", "opus", "wav", "flac", "m4a", "aac" };
        size_t end = strcspn(url, "?#");
        _cleanup_free_ char *path = xstrndup(url, end);
        const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
        const char *ext = "audio";

        if (dot && (!slash || dot > slash))
                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        if (strcasecmp(dot + 1, known[i]) == 0)
                                ext = known[i];
        return xasprintf("%016llx.%s", (unsigned long long) hash_fnv1a(url, strlen(url), HASH_FNV1A_SEED), ext);
}

static char *cache_path(const TowerAudio *a, const char *url) {
        _cleanup_free_ char *name = tower_audio_file_name(url);
        return path_join(a->dir, name);
}

/* Removes temporaries a crash left behind. */
static void cache_purge_temporaries(const TowerAudio *a) {
        _cleanup_(closedirp) DIR *d = opendir(a->dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (strstr(de->d_name, ".tmp-"))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
}

int tower_audio_new(sd_event *event, const char *dir, uint64_t max_size, tower_audio_done_fn done, void *userdata,
                    TowerAudio **ret) {
        TowerAudio *a;
        int r;

        r = mkdir_p(dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Failed to create the audio cache %s: %m", dir);
        a = xcalloc(1, sizeof(TowerAudio));
        a->event = sd_event_ref(event);
        a->dir = xstrdup(dir);
        a->max_size = max_size;
        a->done = done;
        a->userdata = userdata;
        r = http_client_new(event, &a->http);
        if (r < 0) {
                tower_audio_free(a);
                return log_error_errno(r, "Failed to set up the HTTP client: %m");
        }
        cache_purge_temporaries(a);
        *ret = a;
        return 0;
}

static Download *download_free(Download *d) {
        Download *next = d->next;

        http_call_cancel(d->call);
        sd_event_source_disable_unref(d->retry);
        free(d->url);
        free(d->error);
        free(d);
        return next;
}

TowerAudio *tower_audio_free(TowerAudio *a) {
        if (!a)
                return NULL;
        for (Download *d = a->downloads; d;)
                d = download_free(d);
        http_client_free(a->http);
        sd_event_unref(a->event);
        free(a->dir);
        free(a);
        return NULL;
}

static Download *download_find(const TowerAudio *a, const char *url) {
        for (Download *d = a->downloads; d; d = d->next)
                if (streq(d->url, url))
                        return d;
        return NULL;
}

static void download_start(Download *d);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Download *d = userdata;

        d->retry = sd_event_source_disable_unref(d->retry);
        download_start(d);
        return 0;
}

static void download_failed(Download *d, bool final, const char *format, ...) _printf_(3, 4);
static void download_failed(Download *d, bool final, const char *format, ...) {
        va_list ap;
        usec_t delay = TOWER_AUDIO_RETRY_MIN;

        free(d->error);
        va_start(ap, format);
        if (vasprintf(&d->error, format, ap) < 0)
                abort();
        va_end(ap);
        d->state = TOWER_AUDIO_FAILED;
        d->final = final;
        for (unsigned i = 1; i < d->attempts && delay < TOWER_AUDIO_RETRY_MAX; i++)
                delay *= 2;
        if (delay > TOWER_AUDIO_RETRY_MAX)
                delay = TOWER_AUDIO_RETRY_MAX;
        log_warning("Audio %s: %s%s", d->url, d->error, final ? "; not retrying" : ", retrying later");
        if (!final)
                (void) sd_event_add_time_relative(d->cache->event, &d->retry, CLOCK_MONOTONIC, delay, USEC_PER_SEC,
                                                  on_retry, d);
}

static void on_download_done(void *userdata, const prakat_http_response *response) {
        Download *d = userdata;
        TowerAudio *a = d->cache;
        _cleanup_free_ char *path = cache_path(a, d->url);
        _cleanup_free_ char *url = xstrdup(d->url);
        int r;

        d->call = NULL;
        if (response->error == -EFBIG)
                download_failed(d, true, "the file is larger than the audio cache allows");
        else if (response->error < 0)
                download_failed(d, false, "download failed: %s", response->error_text ? response->error_text : "error");
        else if (response->status >= 400 && response->status < 500)
                download_failed(d, true, "HTTP %ld", response->status);
        else if (response->status != 200)
                download_failed(d, false, "HTTP %ld", response->status);
        else if (response->body_size == 0)
                download_failed(d, true, "the server sent an empty file");
        else {
                r = write_file_atomic(path, response->body, response->body_size, 0640);
                if (r < 0)
                        download_failed(d, false, "cannot write %s: %s", path, strerror(-r));
                else {
                        log_info("Audio %s: cached as %s (%zu bytes).", d->url, path, response->body_size);
                        d->state = TOWER_AUDIO_READY;
                }
        }
        if (a->done)
                a->done(a->userdata, url);
}

static void download_start(Download *d) {
        TowerAudio *a = d->cache;
        prakat_http_request request = {
                .method = "GET",
                .url = d->url,
                .timeout_ms = TOWER_AUDIO_TIMEOUT_MS,
                .max_response = (size_t) (a->max_size < TOWER_AUDIO_FILE_MAX ? a->max_size : TOWER_AUDIO_FILE_MAX),
        };
        int r;

        d->attempts++;
        if (d->state != TOWER_AUDIO_FAILED)
                d->state = TOWER_AUDIO_LOADING;
        r = http_client_request(a->http, &request, on_download_done, d, &d->call);
        if (r < 0) {
                d->call = NULL;
                download_failed(d, false, "cannot start the download: %s", strerror(-r));
        }
}

void tower_audio_want(TowerAudio *a, const char *url) {
        _cleanup_free_ char *path = cache_path(a, url);
        Download *d;

        if (download_find(a, url) || access(path, F_OK) == 0)
                return;
        d = xcalloc(1, sizeof(Download));
        d->cache = a;
        d->url = xstrdup(url);
        d->state = TOWER_AUDIO_LOADING;
        d->next = a->downloads;
        a->downloads = d;
        log_info("Audio %s: downloading.", url);
        download_start(d);
}

TowerAudioState tower_audio_lookup(TowerAudio *a, const char *url, char **ret_path, const char **ret_error) {
        _cleanup_free_ char *path = cache_path(a, url);
        Download *d;

        if (access(path, R_OK) == 0) {
                (void) utimensat(AT_FDCWD, path, NULL, 0); /* used now: the last to be evicted */
                *ret_path = TAKE_PTR(path);
                return TOWER_AUDIO_READY;
        }
        d = download_find(a, url);
        if (d && d->state == TOWER_AUDIO_READY) {
                /* It was evicted or removed by hand since: fetch it again. */
                d->state = TOWER_AUDIO_LOADING;
                download_start(d);
        }
        if (!d) {
                tower_audio_want(a, url);
                d = download_find(a, url);
        }
        if (d && d->state == TOWER_AUDIO_FAILED) {
                *ret_error = d->error;
                return TOWER_AUDIO_FAILED;
        }
        return TOWER_AUDIO_LOADING;
}

typedef struct CacheFile {
        char *name;
        uint64_t size;
        struct timespec mtime;
} CacheFile;

static int compare_oldest_first(const void *a, const void *b) {
        const CacheFile *x = a, *y = b;

        if (x->mtime.tv_sec != y->mtime.tv_sec)
                return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : x->mtime.tv_nsec > y->mtime.tv_nsec;
}

static bool name_kept(const char *name, char *const *keep_names, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(keep_names[i], name))
                        return true;
        return false;
}

void tower_audio_trim(TowerAudio *a, char *const *keep_urls, size_t n_keep) {
        _cleanup_(closedirp) DIR *dir = NULL;
        _cleanup_free_ CacheFile *files = NULL;
        char **keep_names = xcalloc(n_keep + 1, sizeof(char *));
        size_t n = 0, cap = 0;
        uint64_t total = 0;
        struct dirent *de;

        /* Downloads nobody wants any more stop here. */
        for (Download **p = &a->downloads; *p;) {
                bool wanted = false;
                for (size_t i = 0; i < n_keep && !wanted; i++)
                        wanted = streq(keep_urls[i], (*p)->url);
                if (wanted)
                        p = &(*p)->next;
                else
                        *p = download_free(*p);
        }
        for (size_t i = 0; i < n_keep; i++)
                keep_names[i] = tower_audio_file_name(keep_urls[i]);
        dir = opendir(a->dir);
        while (dir && (de = readdir(dir))) {
                struct stat st;

                if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp-"))
                        continue;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                total += (uint64_t) st.st_size;
                if (name_kept(de->d_name, keep_names, n_keep))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 32;
                        files = xrealloc(files, cap * sizeof(CacheFile));
                }
                files[n++] = (CacheFile) { xstrdup(de->d_name), (uint64_t) st.st_size, st.st_mtim };
        }
        if (files)
                qsort(files, n, sizeof(CacheFile), compare_oldest_first);
        for (size_t i = 0; i < n; i++) {
                if (total > a->max_size && dir && unlinkat(dirfd(dir), files[i].name, 0) == 0) {
                        log_info("Audio cache: removed %s (%llu bytes) to stay within audio_cache_size.",
                                 files[i].name, (unsigned long long) files[i].size);
                        total -= files[i].size;
                }
                free(files[i].name);
        }
        for (size_t i = 0; i < n_keep; i++)
                free(keep_names[i]);
        free(keep_names);
}
