/* SPDX-License-Identifier: MIT */
/*
 * control: the daemon's control socket, RUNTIME_DIR/control.sock (DESIGN §1, §7).
 *
 * Protocol: the client connects, writes one request line (a JSON object with "command" and its
 * arguments), and reads one JSON object back, after which the daemon closes the connection.  Every
 * reply has "ok" (true/false); a failed one has "error" (English) and "error_th" (Thai).
 * Commands: "status".
 */
#pragma once

#include <jansson.h>

#include "util.h"

typedef struct Manager Manager;
typedef struct Control Control;

#define CONTROL_SOCKET_NAME "control.sock"
#define CONTROL_MAX_REQUEST (64 * 1024)

/* Listens on the socket in m->config->runtime_dir; failing to is a warning, not an error. */
int control_new(Manager *m, Control **ret);
void control_free(Control *c);

/* Client side (the CLI): sends one request and waits up to timeout_ms for the reply.
 * Returns -ECONNREFUSED or -ENOENT when no daemon listens. Takes the reference to request. */
int control_call(const char *runtime_dir, json_t *request, unsigned timeout_ms, json_t **ret_reply);
