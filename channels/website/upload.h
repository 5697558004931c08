/* SPDX-License-Identifier: MIT */
/*
 * upload.h: mirroring the website channel's output folder to the office's web host over SFTP or
 * explicit FTPS (`upload = sftp://user@host/path`).  website.c tells upload.c which files it wrote
 * or removed; upload.c keeps a manifest of what the host has (state_dir/upload-manifest), uploads
 * what differs through host->transfer_upload(), each file to a temporary name renamed into place,
 * and tells website.c when a round is over so that the batch's jobs can end.
 */
#ifndef PRAKAT_WEBSITE_UPLOAD_H
#define PRAKAT_WEBSITE_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "prakat-channel.h"
#include "plugin-util.h"

#define UPLOAD_KEYS                                                                                         \
        "upload, upload_key_file, upload_password_file, upload_password_credential, upload_known_hosts, " \
        "upload_ca_file, upload_timeout"

typedef struct Upload Upload;

/* Called once per round: error 0, or a negative errno with the operator's message. */
typedef void (*upload_done_fn)(void *userdata, int error, const char *message);

/* True for the keys upload.c reads: upload and upload_*. */
bool upload_key_is_known(const char *key);

/* Stores one of them (creating *upload on the first); -EINVAL with the reason in `err`. */
int upload_apply_entry(Upload **upload, const prakat_host *host, const prakat_config_entry *entry,
                       PluginConfigError *err);

/*
 * Once the section is read and `output` exists: checks the settings, reads the password, loads
 * the manifest and lists every file of `output` that differs from it (size or mtime first, then
 * content).  -EINVAL with the reason in `err`.
 */
int upload_prepare(Upload *u, const char *output, PluginConfigError *err);
/* Only what upload_prepare() checks of the settings (the secret files read): for `prakatd --check`. */
int upload_check(Upload *u, PluginConfigError *err);

/* `path` (under output) was written or removed.  NULL `u` is fine. */
void upload_note_path(Upload *u, const char *path);

/* Files are waiting to go up. */
bool upload_has_work(const Upload *u);
/* A round is running. */
bool upload_is_busy(const Upload *u);

/*
 * Starts a round over every file waiting.  Returns 1 when it started (`done` follows, never from
 * inside this call), 0 when nothing differed from the manifest (no `done`), -EBUSY during a round,
 * or another negative errno (no `done`; upload_last_error() says why).
 */
int upload_run(Upload *u, upload_done_fn done, void *userdata);

/* The message of the last failure, or NULL when the last round went well. */
const char *upload_last_error(const Upload *u);

/* `prakat site sync`: forgets the manifest, so that the next round sends every file again. */
int upload_forget_all(Upload *u, char *reply, size_t reply_size);

/* "uploads to HOST up to date" (0), or what is failing (-EIO). */
int upload_health(const Upload *u, char *buffer, size_t buffer_size);

/* Cancels the round in flight; its `done` is not called. */
void upload_free(Upload *u);

#endif
