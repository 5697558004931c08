/* SPDX-License-Identifier: MIT */
/*
 * http: libcurl's multi interface driven by sd-event (the pattern of systemd's curl-util.c).
 * Transfers never block the loop; connections are kept alive and reused per host.
 */
#pragma once

#include <systemd/sd-event.h>

#include "prakat-channel.h"

typedef struct HttpClient HttpClient;

int http_client_new(sd_event *event, HttpClient **ret);
void http_client_free(HttpClient *c);

/* See prakat_host.http_request in channels/prakat-channel.h; `done` runs from the event loop. */
int http_client_request(HttpClient *c, const prakat_http_request *request, prakat_http_done_fn done, void *userdata,
                        prakat_http_call **ret_call);
void http_call_cancel(prakat_http_call *call);

/*
 * See prakat_host.transfer_upload in channels/prakat-channel.h: an SFTP or explicit-FTPS upload on
 * the same multi handle, cancelled with http_call_cancel().  Returns -EINVAL for a malformed URL or
 * rename target, -EPROTONOSUPPORT for another scheme, -EPERM for SFTP without known_hosts or FTP
 * without TLS, or the errno of opening the local file.
 */
int http_client_upload(HttpClient *c, const prakat_transfer *transfer, prakat_http_done_fn done, void *userdata,
                       prakat_http_call **ret_call);

/* Transfers in flight, and connections opened so far (for status and benchmarks). */
unsigned http_client_active(const HttpClient *c);
unsigned long http_client_connections_opened(const HttpClient *c);
