/* SPDX-License-Identifier: MIT */
#include "tower-mqtt.h"

#include <arpa/inet.h>
#include <assert.h>
#include <mosquitto.h>
#include <netdb.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/wait.h>

#include "log.h"

/* How often mosquitto_loop_misc() runs: keepalive pings and the check that the broker answers them. */
#define TOWER_MQTT_MISC_INTERVAL (5 * USEC_PER_SEC)
/* A name lookup that takes longer than this counts as failed. */
#define TOWER_MQTT_RESOLVE_TIMEOUT (30 * USEC_PER_SEC)

struct TowerMqtt {
        sd_event *event;
        TowerMqttCallbacks callbacks;
        void *userdata;

        /* Copies of the options. */
        char *host, *ca_file, *cert_file, *key_file, *username, *password, *client_id, *will_topic, *will_payload;
        char **subscriptions;
        size_t n_subscriptions;
        unsigned port, keepalive;
        bool tls;

        struct mosquitto *mosq; /* one per connection attempt */
        sd_event_source *io, *misc_timer, *reconnect_timer;
        sd_event_source *resolve_child, *resolve_timer;
        pid_t resolve_pid;
        bool resolve_timed_out;
        bool connected;
        bool lost;     /* set inside libmosquitto's callbacks; acted on once it has returned */
        bool refused;  /* the broker said no (bad credentials, ...): wait the longest before trying again */
        bool stopping; /* no more reconnects */
        unsigned in_callback; /* > 0 while libmosquitto runs one of our callbacks: never destroy it then */
        unsigned failures; /* consecutive failed attempts, for the back-off */
        char *lib_error;   /* libmosquitto's last error message in this attempt (the TLS reason, ...) */
};

static int mqtt_lib_initialized;

static void mqtt_schedule_reconnect(TowerMqtt *m);

static void on_mosq_connect(struct mosquitto *mosq, void *userdata, int rc) {
        TowerMqtt *m = userdata;

        if (rc != 0) {
                log_error("The broker %s:%u refused the connection: %s. Check username, password_file and the "
                          "broker's ACL for client id %s.", m->host, m->port, mosquitto_connack_string(rc),
                          m->client_id);
                m->refused = true;
                m->lost = true;
                return;
        }
        m->connected = true;
        m->failures = 0;
        m->refused = false;
        log_notice("Connected to the broker %s:%u as %s.", m->host, m->port, m->client_id);
        /* clean_session is off, so the broker remembers these; subscribing again also resends the
         * retained schedule, which is how a reconnecting tower catches up. */
        for (size_t i = 0; i < m->n_subscriptions; i++) {
                int r = mosquitto_subscribe(mosq, NULL, m->subscriptions[i], 1);
                if (r != MOSQ_ERR_SUCCESS)
                        log_warning("Failed to subscribe to %s: %s", m->subscriptions[i], mosquitto_strerror(r));
        }
        if (m->callbacks.connected) {
                m->in_callback++;
                m->callbacks.connected(m->userdata);
                m->in_callback--;
        }
}

static void on_mosq_disconnect(struct mosquitto *mosq, void *userdata, int rc) {
        TowerMqtt *m = userdata;

        m->lost = true;
}

static void on_mosq_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *message) {
        TowerMqtt *m = userdata;

        if (!m->callbacks.message || !message->topic)
                return;
        m->in_callback++;
        m->callbacks.message(m->userdata, message->topic, message->payload ? message->payload : "",
                             message->payloadlen > 0 ? (size_t) message->payloadlen : 0, message->retain);
        m->in_callback--;
}

static void on_mosq_publish(struct mosquitto *mosq, void *userdata, int mid) {
        TowerMqtt *m = userdata;

        if (!m->callbacks.published)
                return;
        m->in_callback++;
        m->callbacks.published(m->userdata, mid);
        m->in_callback--;
}

static void on_mosq_log(struct mosquitto *mosq, void *userdata, int level, const char *text) {
        TowerMqtt *m = userdata;

        if (!(level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)))
                return;
        log_debug("libmosquitto: %s", text);
        if (level & MOSQ_LOG_ERR) {
                free(m->lib_error);
                m->lib_error = xstrdup(text);
        }
}

/* Ends the connection attempt or connection; reconnects later unless stopping. */
static void mqtt_drop(TowerMqtt *m, const char *why) {
        bool was_connected = m->connected;

        if (!m->mosq)
                return;
        m->io = sd_event_source_disable_unref(m->io);
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
        m->connected = false;
        m->lost = false;
        /* libmosquitto's messages end with a period, errno's do not; its log says what TLS disliked. */
        const char *stop = endswith_nocase(why, ".") ? "" : ".";
        if (was_connected)
                log_warning("Lost the connection to the broker %s:%u: %s%s%s%s", m->host, m->port, why, stop,
                            m->lib_error ? " " : "", m->lib_error ? m->lib_error : "");
        else if (!m->refused)
                log_warning("Cannot connect to the broker %s:%u: %s%s%s%s", m->host, m->port, why, stop,
                            m->lib_error ? " " : "", m->lib_error ? m->lib_error : "");
        free(m->lib_error);
        m->lib_error = NULL;
        m->failures++;
        if (was_connected && m->callbacks.disconnected)
                m->callbacks.disconnected(m->userdata);
        if (!m->stopping)
                mqtt_schedule_reconnect(m);
}

static void mqtt_update_events(TowerMqtt *m) {
        if (!m->io || !m->mosq)
                return;
        (void) sd_event_source_set_io_events(m->io, EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0));
}

/* After every call into libmosquitto: act on what its callbacks noted, then fix the write interest. */
static void mqtt_after(TowerMqtt *m, int rc) {
        if (m->lost || (rc != MOSQ_ERR_SUCCESS && m->mosq)) {
                const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
                mqtt_drop(m, m->refused ? "refused" : rc == MOSQ_ERR_SUCCESS ? "disconnected" : why);
                return;
        }
        mqtt_update_events(m);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        TowerMqtt *m = userdata;
        int rc = MOSQ_ERR_SUCCESS;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                rc = mosquitto_loop_read(m->mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && !m->lost && m->mosq && (revents & EPOLLOUT))
                rc = mosquitto_loop_write(m->mosq, 1);
        mqtt_after(m, rc);
        return 0;
}

static int on_misc(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerMqtt *m = userdata;

        (void) sd_event_source_set_time_relative(s, TOWER_MQTT_MISC_INTERVAL);
        if (m->mosq)
                mqtt_after(m, mosquitto_loop_misc(m->mosq));
        return 0;
}

static int mqtt_configure(TowerMqtt *m, struct mosquitto *mosq) {
        int r;

        (void) mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_connect_callback_set(mosq, on_mosq_connect);
        mosquitto_disconnect_callback_set(mosq, on_mosq_disconnect);
        mosquitto_message_callback_set(mosq, on_mosq_message);
        mosquitto_publish_callback_set(mosq, on_mosq_publish);
        mosquitto_log_callback_set(mosq, on_mosq_log);
        if (m->username) {
                r = mosquitto_username_pw_set(mosq, m->username, m->password);
                if (r != MOSQ_ERR_SUCCESS)
                        return log_error_errno(EINVAL, "Failed to set the broker user name: %s", mosquitto_strerror(r));
        }
        if (m->will_topic) {
                r = mosquitto_will_set(mosq, m->will_topic, (int) strlen(m->will_payload), m->will_payload, 1, true);
                if (r != MOSQ_ERR_SUCCESS)
                        return log_error_errno(EINVAL, "Failed to set the will: %s", mosquitto_strerror(r));
        }
        if (m->tls) {
                if (!m->ca_file)
                        (void) mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
                r = mosquitto_tls_set(mosq, m->ca_file, m->ca_file ? NULL : "/etc/ssl/certs", m->cert_file,
                                      m->key_file, NULL);
                if (r != MOSQ_ERR_SUCCESS)
                        return log_error_errno(EINVAL, "Failed to set up TLS (ca_file %s, cert_file %s, key_file %s): "
                                               "%s. Check that the files exist and the agent may read them.",
                                               m->ca_file ? m->ca_file : "(system)", m->cert_file ? m->cert_file : "-",
                                               m->key_file ? m->key_file : "-", mosquitto_strerror(r));
                /* Verify the broker's certificate and name; never switched off. */
                (void) mosquitto_tls_opts_set(mosq, 1, NULL, NULL);
                (void) mosquitto_tls_insecure_set(mosq, false);
        }
        return 0;
}

static void mqtt_connect_now(TowerMqtt *m) {
        struct mosquitto *mosq;
        int r, fd;

        assert(!m->mosq);
        mosq = mosquitto_new(m->client_id, false, m);
        if (!mosq) {
                log_error("Failed to create the MQTT client: %m");
                m->failures++;
                mqtt_schedule_reconnect(m);
                return;
        }
        m->mosq = mosq;
        m->lost = false;
        m->refused = false;
        if (mqtt_configure(m, mosq) < 0) {
                m->refused = true; /* a local problem: retry slowly */
                mqtt_drop(m, "bad TLS or login settings");
                return;
        }
        r = mosquitto_connect_async(mosq, m->host, (int) m->port, (int) m->keepalive);
        if (r != MOSQ_ERR_SUCCESS) {
                mqtt_drop(m, r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
                return;
        }
        fd = mosquitto_socket(mosq);
        if (fd < 0) {
                mqtt_drop(m, "no socket");
                return;
        }
        r = sd_event_add_io(m->event, &m->io, fd, EPOLLIN | EPOLLOUT, on_io, m);
        if (r < 0) {
                log_error_errno(r, "Failed to watch the MQTT socket: %m");
                mqtt_drop(m, "no event source");
                return;
        }
        (void) sd_event_source_set_description(m->io, "mqtt-io");
        mqtt_update_events(m);
}

static void mqtt_resolve_cleanup(TowerMqtt *m) {
        m->resolve_child = sd_event_source_disable_unref(m->resolve_child);
        m->resolve_timer = sd_event_source_disable_unref(m->resolve_timer);
        if (m->resolve_pid > 0) {
                (void) kill(m->resolve_pid, SIGKILL);
                (void) waitpid(m->resolve_pid, NULL, 0);
        }
        m->resolve_pid = 0;
}

static int on_resolved(sd_event_source *s, const siginfo_t *si, void *userdata) {
        TowerMqtt *m = userdata;
        bool ok = si->si_code == CLD_EXITED && si->si_status == 0;
        const char *why = m->resolve_timed_out ? "no answer in time" :
                          si->si_code == CLD_EXITED ? gai_strerror(-si->si_status) : "the lookup crashed";

        m->resolve_pid = 0; /* sd-event reaps it */
        mqtt_resolve_cleanup(m);
        if (m->stopping)
                return 0;
        if (ok) {
                mqtt_connect_now(m);
                return 0;
        }
        log_warning("Cannot look up the broker's name %s: %s.", m->host, why);
        m->failures++;
        mqtt_schedule_reconnect(m);
        return 0;
}

static int on_resolve_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerMqtt *m = userdata;

        m->resolve_timed_out = true;
        if (m->resolve_pid > 0)
                (void) kill(m->resolve_pid, SIGKILL);
        return 0;
}

static bool host_is_address(const char *host) {
        unsigned char buffer[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buffer) == 1 || inet_pton(AF_INET6, host, buffer) == 1;
}

/*
 * libmosquitto resolves the broker's name inside mosquitto_connect_async(), blocking the loop for as
 * long as DNS takes, which on a tower whose mobile link is down can be many seconds at every attempt.
 * So a child process looks the name up first, and libmosquitto is only called once the name is known
 * to resolve (then from the resolver's cache, or at once from /etc/hosts).  An address needs no lookup.
 */
static void mqtt_connect(TowerMqtt *m) {
        pid_t pid;
        int r;

        if (host_is_address(m->host)) {
                mqtt_connect_now(m);
                return;
        }
        pid = fork();
        if (pid < 0) {
                log_warning("Failed to start the name lookup for %s: %m; trying directly.", m->host);
                mqtt_connect_now(m);
                return;
        }
        if (pid == 0) {
                struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *result = NULL;
                r = getaddrinfo(m->host, NULL, &hints, &result);
                _exit(r == 0 ? 0 : (r < 0 ? -r : r) & 0x7f);
        }
        m->resolve_pid = pid;
        m->resolve_timed_out = false;
        r = sd_event_add_child(m->event, &m->resolve_child, pid, WEXITED, on_resolved, m);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &m->resolve_timer, CLOCK_MONOTONIC,
                                               TOWER_MQTT_RESOLVE_TIMEOUT, USEC_PER_SEC, on_resolve_timeout, m);
        if (r < 0) {
                mqtt_resolve_cleanup(m);
                log_warning_errno(r, "Failed to watch the name lookup: %m; trying directly.");
                mqtt_connect_now(m);
        }
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerMqtt *m = userdata;

        m->reconnect_timer = sd_event_source_disable_unref(m->reconnect_timer);
        if (!m->mosq && !m->resolve_pid && !m->stopping)
                mqtt_connect(m);
        return 0;
}

static void mqtt_schedule_reconnect(TowerMqtt *m) {
        usec_t delay = TOWER_MQTT_RECONNECT_MIN;
        uint32_t noise = 0;

        if (m->reconnect_timer)
                return;
        for (unsigned i = 1; i < m->failures && delay < TOWER_MQTT_RECONNECT_MAX; i++)
                delay *= 2;
        if (m->refused || delay > TOWER_MQTT_RECONNECT_MAX)
                delay = TOWER_MQTT_RECONNECT_MAX;
        /* ±25 % so that a thousand towers coming back after a broker restart do not all knock at once. */
        (void) getrandom(&noise, sizeof noise, GRND_NONBLOCK);
        delay = delay * 3 / 4 + (usec_t) ((double) delay / 2 * ((double) noise / UINT32_MAX));
        log_info("Connecting to the broker again in %.1fs.", (double) delay / USEC_PER_SEC);
        if (sd_event_add_time_relative(m->event, &m->reconnect_timer, CLOCK_MONOTONIC, delay, 0, on_reconnect, m) < 0)
                log_error("Failed to arm the reconnect timer; staying offline.");
}

static char *strdup_or_null(const char *s) {
        return s ? xstrdup(s) : NULL;
}

int tower_mqtt_new(sd_event *event, const TowerMqttOptions *o, const TowerMqttCallbacks *callbacks, void *userdata,
                   TowerMqtt **ret) {
        TowerMqtt *m;
        int r;

        if (!mqtt_lib_initialized) {
                if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
                        return -EIO;
                mqtt_lib_initialized = 1;
        }
        m = xcalloc(1, sizeof(TowerMqtt));
        m->event = sd_event_ref(event);
        m->callbacks = *callbacks;
        m->userdata = userdata;
        m->host = xstrdup(o->host);
        m->port = o->port;
        m->tls = o->tls;
        m->ca_file = strdup_or_null(o->ca_file);
        m->cert_file = strdup_or_null(o->cert_file);
        m->key_file = strdup_or_null(o->key_file);
        m->username = strdup_or_null(o->username);
        m->password = strdup_or_null(o->password);
        m->client_id = xstrdup(o->client_id);
        m->will_topic = strdup_or_null(o->will_topic);
        m->will_payload = strdup_or_null(o->will_payload ? o->will_payload : "");
        m->keepalive = o->keepalive >= 5 ? o->keepalive : 60;
        m->subscriptions = xcalloc(o->n_subscriptions + 1, sizeof(char *));
        for (size_t i = 0; i < o->n_subscriptions; i++)
                m->subscriptions[m->n_subscriptions++] = xstrdup(o->subscriptions[i]);
        r = sd_event_add_time_relative(event, &m->misc_timer, CLOCK_MONOTONIC, TOWER_MQTT_MISC_INTERVAL,
                                       USEC_PER_SEC, on_misc, m);
        if (r < 0) {
                tower_mqtt_free(m);
                return r;
        }
        (void) sd_event_source_set_enabled(m->misc_timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(m->misc_timer, "mqtt-misc");
        *ret = m;
        return 0;
}

TowerMqtt *tower_mqtt_free(TowerMqtt *m) {
        if (!m)
                return NULL;
        m->stopping = true;
        m->io = sd_event_source_disable_unref(m->io);
        m->misc_timer = sd_event_source_disable_unref(m->misc_timer);
        m->reconnect_timer = sd_event_source_disable_unref(m->reconnect_timer);
        mqtt_resolve_cleanup(m);
        if (m->mosq)
                mosquitto_destroy(m->mosq);
        for (size_t i = 0; i < m->n_subscriptions; i++)
                free(m->subscriptions[i]);
        free(m->subscriptions);
        free(m->host);
        free(m->ca_file);
        free(m->cert_file);
        free(m->key_file);
        if (m->password)
                explicit_bzero(m->password, strlen(m->password));
        free(m->username);
        free(m->password);
        free(m->client_id);
        free(m->will_topic);
        free(m->will_payload);
        free(m->lib_error);
        sd_event_unref(m->event);
        free(m);
        if (mqtt_lib_initialized) {
                mosquitto_lib_cleanup();
                mqtt_lib_initialized = 0;
        }
        return NULL;
}

void tower_mqtt_start(TowerMqtt *m) {
        if (!m->mosq && !m->reconnect_timer && !m->resolve_pid && !m->stopping)
                mqtt_connect(m);
}

bool tower_mqtt_is_connected(const TowerMqtt *m) {
        return m->connected;
}

bool tower_mqtt_want_write(const TowerMqtt *m) {
        return m->mosq && mosquitto_want_write(m->mosq);
}

int tower_mqtt_publish(TowerMqtt *m, const char *topic, const char *payload, bool retain, int *ret_mid) {
        int rc;

        if (!m->connected || !m->mosq)
                return -ENOTCONN;
        rc = mosquitto_publish(m->mosq, ret_mid, topic, (int) strlen(payload), payload, 1, retain);
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
                /* Inside one of libmosquitto's callbacks the object must live on: note it, drop it after. */
                if (m->in_callback)
                        m->lost = true;
                else
                        mqtt_after(m, rc);
                return -ENOTCONN;
        }
        if (rc != MOSQ_ERR_SUCCESS)
                return rc == MOSQ_ERR_ERRNO ? -errno : -EIO;
        mqtt_update_events(m);
        return 0;
}

void tower_mqtt_disconnect(TowerMqtt *m) {
        m->stopping = true;
        m->reconnect_timer = sd_event_source_disable_unref(m->reconnect_timer);
        mqtt_resolve_cleanup(m);
        if (!m->mosq)
                return;
        if (m->connected && mosquitto_disconnect(m->mosq) == MOSQ_ERR_SUCCESS)
                /* DISCONNECT is two bytes; the socket takes them at once. */
                for (int i = 0; i < 10 && mosquitto_want_write(m->mosq); i++)
                        if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
                                break;
        m->io = sd_event_source_disable_unref(m->io);
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
        m->connected = false;
}
