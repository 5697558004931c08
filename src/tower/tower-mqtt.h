/* SPDX-License-Identifier: MIT */
/*
 * tower-mqtt: libmosquitto driven by sd-event, without libmosquitto's thread.  The connection's socket
 * is an io source (write interest only while mosquitto_want_write()), a timer runs mosquitto_loop_misc()
 * for keepalive pings, and a lost connection is retried with capped exponential back-off and jitter.
 *
 * Every connection attempt uses a fresh mosquitto object with the same client id and clean_session
 * off: the broker keeps the session (subscriptions and QoS 1 messages queued while the tower was away),
 * while messages this side had not seen acknowledged are the caller's to publish again (its outbox is
 * the one source of truth, also across restarts), never resent behind its back.
 */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

#define TOWER_MQTT_RECONNECT_MIN (1 * USEC_PER_SEC)
#define TOWER_MQTT_RECONNECT_MAX (60 * USEC_PER_SEC)

typedef struct TowerMqtt TowerMqtt;

typedef struct TowerMqttOptions {
        const char *host;
        unsigned port;
        bool tls;
        const char *ca_file;   /* NULL: the system's CAs */
        const char *cert_file; /* client certificate and key, both or neither */
        const char *key_file;
        const char *username;
        const char *password;
        const char *client_id;
        const char *will_topic; /* retained, QoS 1 */
        const char *will_payload;
        char *const *subscriptions; /* QoS 1, renewed on every connection */
        size_t n_subscriptions;
        unsigned keepalive; /* seconds */
} TowerMqttOptions;

typedef struct TowerMqttCallbacks {
        void (*connected)(void *userdata);
        void (*disconnected)(void *userdata);
        /* A message on a subscribed topic.  PUBACK goes out after this returns. */
        void (*message)(void *userdata, const char *topic, const void *payload, size_t size, bool retained);
        /* The broker acknowledged our QoS 1 publish `mid`. */
        void (*published)(void *userdata, int mid);
} TowerMqttCallbacks;

/* Copies the options.  Connecting starts with tower_mqtt_start(). */
int tower_mqtt_new(sd_event *event, const TowerMqttOptions *options, const TowerMqttCallbacks *callbacks,
                   void *userdata, TowerMqtt **ret);
TowerMqtt *tower_mqtt_free(TowerMqtt *m);

void tower_mqtt_start(TowerMqtt *m);
bool tower_mqtt_is_connected(const TowerMqtt *m);

/* QoS 1.  Returns -ENOTCONN when not connected (nothing is queued), or a negative errno. */
int tower_mqtt_publish(TowerMqtt *m, const char *topic, const char *payload, bool retain, int *ret_mid);

/* Sends DISCONNECT (so the broker does not publish the will) and stops reconnecting. */
void tower_mqtt_disconnect(TowerMqtt *m);

/* Outgoing bytes still waiting for the socket. */
bool tower_mqtt_want_write(const TowerMqtt *m);
