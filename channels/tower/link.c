/* SPDX-License-Identifier: MIT */
/*
 * link.c: libmosquitto inside prakatd's event loop, with no thread of its own.
 *
 * The connection's socket is watched through host->io_watch(), with write interest only while
 * mosquitto_want_write(); a host timer runs mosquitto_loop_misc() for the keepalive pings; a lost
 * connection is tried again after a capped exponential back-off with jitter.  The pattern is the
 * tower agent's (src/tower/tower-mqtt.c), moved onto the plugin ABI's services.
 *
 * Every connection attempt gets a fresh mosquitto object with the same client id and
 * clean_session off: the broker keeps our subscription and the acks that arrive while prakatd is
 * away, while our own messages that the broker had not acknowledged when the connection broke are
 * the caller's to send again (its state on disk is the one source of truth), never resent by
 * libmosquitto behind its back.
 *
 * libmosquitto resolves a host name inside mosquitto_connect_async(), blocking for as long as DNS
 * takes.  A name is therefore looked up first in a child process (fork, getaddrinfo, one byte back
 * through a pipe), and libmosquitto is called only once the name is known to resolve; an IP
 * address needs no lookup.  Use an address in `broker` where DNS may be slow.
 */
#include "tower-channel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINK_MISC_INTERVAL (5 * TOWER_SEC)
#define LINK_RECONNECT_MIN (1 * TOWER_SEC)
#define LINK_RECONNECT_MAX (60 * TOWER_SEC)
#define LINK_CONNECT_TIMEOUT (30 * TOWER_SEC)
#define LINK_RESOLVE_TIMEOUT (30 * TOWER_SEC)
#define LINK_REAP_INTERVAL (50 * 1000ULL)

struct TowerLink {
        const prakat_host *host;
        TowerLinkCallbacks callbacks;
        void *userdata;

        char *host_name, *ca_file, *cert_file, *key_file, *username, *password, *client_id;
        char *will_topic, *will_payload;
        char **subscriptions;
        size_t n_subscriptions;
        unsigned port, keepalive, max_inflight;
        bool tls;

        struct mosquitto *mosq; /* one per connection attempt */
        prakat_io *io;
        prakat_timer *misc_timer, *reconnect_timer, *connect_timer;

        pid_t resolve_pid;
        int resolve_fd;
        prakat_io *resolve_io;
        prakat_timer *resolve_timer, *reap_timer;
        unsigned reap_tries;

        bool started;
        bool connected;
        bool lost;     /* noted inside libmosquitto's callbacks; acted on once it has returned */
        bool refused;  /* the broker said no: wait the longest before trying again */
        bool stopping;
        unsigned in_callback;
        unsigned failures;
        char *lib_error; /* libmosquitto's last error message in this attempt (the TLS reason, ...) */
        char status[512];
};

static unsigned lib_users;

static void link_schedule_reconnect(TowerLink *l);
static void link_connect(TowerLink *l);

static void link_log(TowerLink *l, prakat_log_level level, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void link_log(TowerLink *l, prakat_log_level level, const char *format, ...) {
        char buffer[1024];
        va_list ap;

        va_start(ap, format);
        vsnprintf(buffer, sizeof buffer, format, ap);
        va_end(ap);
        l->host->log(l->host, level, NULL, "%s", buffer);
}

static void on_mosq_connect(struct mosquitto *mosq, void *userdata, int rc, int flags) {
        TowerLink *l = userdata;

        if (rc != 0) {
                snprintf(l->status, sizeof l->status, "the broker refused the connection: %s",
                         mosquitto_connack_string(rc));
                link_log(l, PRAKAT_LOG_ERR,
                         "The broker %s:%u refused the connection: %s. Check username, password_file and the "
                         "broker's ACL for client id %s.", l->host_name, l->port, mosquitto_connack_string(rc),
                         l->client_id);
                l->refused = true;
                l->lost = true;
                return;
        }
        l->connected = true;
        l->failures = 0;
        l->refused = false;
        snprintf(l->status, sizeof l->status, "connected to %s://%s:%u as %s", l->tls ? "mqtts" : "mqtt",
                 l->host_name, l->port, l->client_id);
        link_log(l, PRAKAT_LOG_NOTICE, "Connected to the broker %s:%u as %s%s.", l->host_name, l->port, l->client_id,
                 flags & 1 ? "" : " (a new session)");
        /* clean_session is off, so the broker remembers these; subscribing again does no harm and
         * repairs a broker that lost its persistence. */
        for (size_t i = 0; i < l->n_subscriptions; i++) {
                int r = mosquitto_subscribe(mosq, NULL, l->subscriptions[i], 1);
                if (r != MOSQ_ERR_SUCCESS)
                        link_log(l, PRAKAT_LOG_WARNING, "Failed to subscribe to %s: %s", l->subscriptions[i],
                                 mosquitto_strerror(r));
        }
        if (l->callbacks.connected) {
                l->in_callback++;
                l->callbacks.connected(l->userdata, flags & 1);
                l->in_callback--;
        }
}

static void on_mosq_disconnect(struct mosquitto *mosq, void *userdata, int rc) {
        TowerLink *l = userdata;

        l->lost = true;
}

static void on_mosq_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *message) {
        TowerLink *l = userdata;

        if (!l->callbacks.message || !message->topic)
                return;
        l->in_callback++;
        l->callbacks.message(l->userdata, message->topic, message->payload ? message->payload : "",
                             message->payloadlen > 0 ? (size_t) message->payloadlen : 0);
        l->in_callback--;
}

static void on_mosq_publish(struct mosquitto *mosq, void *userdata, int mid) {
        TowerLink *l = userdata;

        if (!l->callbacks.published)
                return;
        l->in_callback++;
        l->callbacks.published(l->userdata, mid);
        l->in_callback--;
}

static void on_mosq_log(struct mosquitto *mosq, void *userdata, int level, const char *text) {
        TowerLink *l = userdata;

        if (!(level & MOSQ_LOG_ERR))
                return;
        free(l->lib_error);
        l->lib_error = strdup(text);
}

/* Ends the connection (attempt); connects again later unless stopping. */
static void link_drop(TowerLink *l, const char *why) {
        bool was_connected = l->connected;
        const char *stop = why[0] && why[strlen(why) - 1] == '.' ? "" : ".";

        if (!l->mosq)
                return;
        l->host->io_cancel(l->io);
        l->io = NULL;
        l->host->timer_cancel(l->connect_timer);
        l->connect_timer = NULL;
        mosquitto_destroy(l->mosq);
        l->mosq = NULL;
        l->connected = false;
        l->lost = false;
        if (!l->refused)
                snprintf(l->status, sizeof l->status, "not connected to %s:%u: %s%s%s", l->host_name, l->port, why,
                         l->lib_error ? " " : "", l->lib_error ? l->lib_error : "");
        if (was_connected)
                link_log(l, PRAKAT_LOG_WARNING, "Lost the connection to the broker %s:%u: %s%s%s%s", l->host_name,
                         l->port, why, stop, l->lib_error ? " " : "", l->lib_error ? l->lib_error : "");
        else if (!l->refused)
                link_log(l, PRAKAT_LOG_WARNING, "Cannot connect to the broker %s:%u: %s%s%s%s", l->host_name, l->port,
                         why, stop, l->lib_error ? " " : "", l->lib_error ? l->lib_error : "");
        free(l->lib_error);
        l->lib_error = NULL;
        l->failures++;
        if (was_connected && l->callbacks.disconnected)
                l->callbacks.disconnected(l->userdata);
        if (!l->stopping)
                link_schedule_reconnect(l);
}

static void link_update_events(TowerLink *l) {
        if (l->io && l->mosq)
                (void) l->host->io_set_events(l->io, EPOLLIN | (mosquitto_want_write(l->mosq) ? EPOLLOUT : 0));
}

/* After every call into libmosquitto: act on what its callbacks noted, then fix the write interest. */
static void link_after(TowerLink *l, int rc) {
        if (l->mosq && (l->lost || rc != MOSQ_ERR_SUCCESS)) {
                const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
                link_drop(l, l->refused ? "refused" : rc == MOSQ_ERR_SUCCESS ? "disconnected" : why);
                return;
        }
        link_update_events(l);
}

static void on_io(void *userdata, int fd, uint32_t revents) {
        TowerLink *l = userdata;
        int rc = MOSQ_ERR_SUCCESS;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                /* Several rounds: TLS may hold decrypted bytes that epoll cannot see. */
                for (int i = 0; i < 16 && rc == MOSQ_ERR_SUCCESS && l->mosq && !l->lost; i++) {
                        errno = 0;
                        rc = mosquitto_loop_read(l->mosq, 1);
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                }
        }
        if (rc == MOSQ_ERR_SUCCESS && l->mosq && !l->lost && (revents & EPOLLOUT))
                rc = mosquitto_loop_write(l->mosq, 1);
        link_after(l, rc);
}

static void on_misc(void *userdata) {
        TowerLink *l = userdata;

        l->misc_timer = NULL;
        (void) l->host->timer_start(l->host, LINK_MISC_INTERVAL, on_misc, l, &l->misc_timer);
        if (l->mosq)
                link_after(l, mosquitto_loop_misc(l->mosq));
}

static void on_connect_timeout(void *userdata) {
        TowerLink *l = userdata;

        l->connect_timer = NULL;
        if (l->mosq && !l->connected)
                link_drop(l, "no answer from the broker in time");
}

static int link_configure(TowerLink *l, struct mosquitto *mosq) {
        int r;

        (void) mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        if (l->max_inflight)
                (void) mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, (int) l->max_inflight);
        mosquitto_connect_with_flags_callback_set(mosq, on_mosq_connect);
        mosquitto_disconnect_callback_set(mosq, on_mosq_disconnect);
        mosquitto_message_callback_set(mosq, on_mosq_message);
        mosquitto_publish_callback_set(mosq, on_mosq_publish);
        mosquitto_log_callback_set(mosq, on_mosq_log);
        if (l->username) {
                r = mosquitto_username_pw_set(mosq, l->username, l->password);
                if (r != MOSQ_ERR_SUCCESS) {
                        snprintf(l->status, sizeof l->status, "cannot set the broker login: %s", mosquitto_strerror(r));
                        return -EINVAL;
                }
        }
        if (l->will_topic) {
                r = mosquitto_will_set(mosq, l->will_topic, (int) strlen(l->will_payload), l->will_payload, 1, true);
                if (r != MOSQ_ERR_SUCCESS) {
                        snprintf(l->status, sizeof l->status, "cannot set the will: %s", mosquitto_strerror(r));
                        return -EINVAL;
                }
        }
        if (l->tls) {
                if (!l->ca_file)
                        (void) mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
                r = mosquitto_tls_set(mosq, l->ca_file, l->ca_file ? NULL : "/etc/ssl/certs", l->cert_file, l->key_file,
                                      NULL);
                if (r != MOSQ_ERR_SUCCESS) {
                        snprintf(l->status, sizeof l->status,
                                 "cannot set up TLS (ca_file %s, cert_file %s, key_file %s): %s; check that the files "
                                 "exist and prakatd may read them",
                                 l->ca_file ? l->ca_file : "(system)", l->cert_file ? l->cert_file : "-",
                                 l->key_file ? l->key_file : "-", mosquitto_strerror(r));
                        return -EINVAL;
                }
                /* The broker's certificate and name are always verified. */
                (void) mosquitto_tls_opts_set(mosq, 1, NULL, NULL);
                (void) mosquitto_tls_insecure_set(mosq, false);
        }
        return 0;
}

static void link_connect_now(TowerLink *l) {
        struct mosquitto *mosq;
        int r, fd;

        mosq = mosquitto_new(l->client_id, false, l);
        if (!mosq) {
                snprintf(l->status, sizeof l->status, "cannot create the MQTT client: %s", strerror(errno));
                l->failures++;
                link_schedule_reconnect(l);
                return;
        }
        l->mosq = mosq;
        l->lost = false;
        l->refused = false;
        if (link_configure(l, mosq) < 0) {
                link_log(l, PRAKAT_LOG_ERR, "%s.", l->status);
                l->refused = true; /* a local problem: try again slowly */
                link_drop(l, "bad TLS or login settings");
                return;
        }
        r = mosquitto_connect_async(mosq, l->host_name, (int) l->port, (int) l->keepalive);
        if (r != MOSQ_ERR_SUCCESS) {
                link_drop(l, r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
                return;
        }
        fd = mosquitto_socket(mosq);
        if (fd < 0) {
                link_drop(l, "no socket");
                return;
        }
        r = l->host->io_watch(l->host, fd, EPOLLIN | EPOLLOUT, on_io, l, &l->io);
        if (r < 0) {
                link_drop(l, "cannot watch the socket");
                return;
        }
        (void) l->host->timer_start(l->host, LINK_CONNECT_TIMEOUT, on_connect_timeout, l, &l->connect_timer);
        link_update_events(l);
}

static void link_resolve_cleanup(TowerLink *l) {
        l->host->io_cancel(l->resolve_io);
        l->resolve_io = NULL;
        l->host->timer_cancel(l->resolve_timer);
        l->resolve_timer = NULL;
        l->host->timer_cancel(l->reap_timer);
        l->reap_timer = NULL;
        if (l->resolve_fd >= 0)
                close(l->resolve_fd);
        l->resolve_fd = -1;
        if (l->resolve_pid > 0) {
                /* Only in a stop or a timeout: the lookup is killed, so this wait is short. */
                (void) kill(l->resolve_pid, SIGKILL);
                (void) waitpid(l->resolve_pid, NULL, 0);
        }
        l->resolve_pid = 0;
}

/* The child wrote its answer and is exiting: reap it without waiting in the loop. */
static void on_reap(void *userdata) {
        TowerLink *l = userdata;
        pid_t r;

        l->reap_timer = NULL;
        r = waitpid(l->resolve_pid, NULL, WNOHANG);
        if (r == 0 && ++l->reap_tries < 100) {
                (void) l->host->timer_start(l->host, LINK_REAP_INTERVAL, on_reap, l, &l->reap_timer);
                return;
        }
        if (r == 0)
                link_resolve_cleanup(l); /* kills and reaps */
        l->resolve_pid = 0;
}

static void on_resolved(void *userdata, int fd, uint32_t revents) {
        TowerLink *l = userdata;
        unsigned char answer = 0xff;
        ssize_t n = read(fd, &answer, 1);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        l->host->io_cancel(l->resolve_io);
        l->resolve_io = NULL;
        l->host->timer_cancel(l->resolve_timer);
        l->resolve_timer = NULL;
        close(l->resolve_fd);
        l->resolve_fd = -1;
        l->reap_tries = 0;
        on_reap(l);
        if (l->stopping)
                return;
        if (n == 1 && answer == 0) {
                link_connect_now(l);
                return;
        }
        snprintf(l->status, sizeof l->status, "cannot look up the broker's name %s: %s", l->host_name,
                 n == 1 ? gai_strerror(-(int) answer) : "the lookup failed");
        link_log(l, PRAKAT_LOG_WARNING, "Cannot look up the broker's name %s: %s.", l->host_name,
                 n == 1 ? gai_strerror(-(int) answer) : "the lookup failed");
        l->failures++;
        link_schedule_reconnect(l);
}

static void on_resolve_timeout(void *userdata) {
        TowerLink *l = userdata;

        l->resolve_timer = NULL;
        link_resolve_cleanup(l);
        snprintf(l->status, sizeof l->status, "cannot look up the broker's name %s: no answer in time", l->host_name);
        link_log(l, PRAKAT_LOG_WARNING, "Cannot look up the broker's name %s: no answer in time.", l->host_name);
        l->failures++;
        if (!l->stopping)
                link_schedule_reconnect(l);
}

static bool host_is_address(const char *host) {
        unsigned char buffer[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buffer) == 1 || inet_pton(AF_INET6, host, buffer) == 1;
}

static void link_connect(TowerLink *l) {
        int p[2];
        pid_t pid;

        if (host_is_address(l->host_name)) {
                link_connect_now(l);
                return;
        }
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
                link_log(l, PRAKAT_LOG_WARNING, "Cannot start the name lookup for %s: %s; trying directly.",
                         l->host_name, strerror(errno));
                link_connect_now(l);
                return;
        }
        pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                link_log(l, PRAKAT_LOG_WARNING, "Cannot start the name lookup for %s: %s; trying directly.",
                         l->host_name, strerror(errno));
                link_connect_now(l);
                return;
        }
        if (pid == 0) {
                struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *result = NULL;
                int r = getaddrinfo(l->host_name, NULL, &hints, &result);
                unsigned char answer = r == 0 ? 0 : (unsigned char) ((r < 0 ? -r : r) & 0x7f);
                ssize_t ignored = write(p[1], &answer, 1);
                (void) ignored;
                _exit(0);
        }
        close(p[1]);
        l->resolve_pid = pid;
        l->resolve_fd = p[0];
        if (l->host->io_watch(l->host, p[0], EPOLLIN, on_resolved, l, &l->resolve_io) < 0 ||
            l->host->timer_start(l->host, LINK_RESOLVE_TIMEOUT, on_resolve_timeout, l, &l->resolve_timer) < 0) {
                link_resolve_cleanup(l);
                link_connect_now(l);
        }
}

static void on_reconnect(void *userdata) {
        TowerLink *l = userdata;

        l->reconnect_timer = NULL;
        if (!l->mosq && !l->resolve_pid && !l->stopping)
                link_connect(l);
}

static void link_schedule_reconnect(TowerLink *l) {
        uint64_t delay = LINK_RECONNECT_MIN;
        uint32_t noise = 0;

        if (l->reconnect_timer || l->stopping)
                return;
        for (unsigned i = 1; i < l->failures && delay < LINK_RECONNECT_MAX; i++)
                delay *= 2;
        if (l->refused || delay > LINK_RECONNECT_MAX)
                delay = LINK_RECONNECT_MAX;
        /* ±25 %: towers and daemon coming back after a broker restart do not all knock at once. */
        (void) getrandom(&noise, sizeof noise, GRND_NONBLOCK);
        delay = delay * 3 / 4 + (uint64_t) ((double) delay / 2 * ((double) noise / UINT32_MAX));
        snprintf(l->status + strlen(l->status), sizeof l->status - strlen(l->status), "; next try in %.1fs",
                 (double) delay / TOWER_SEC);
        if (l->host->timer_start(l->host, delay, on_reconnect, l, &l->reconnect_timer) < 0)
                link_log(l, PRAKAT_LOG_ERR, "Cannot arm the reconnect timer; staying offline.");
}

int tower_link_new(const prakat_host *host, const TowerLinkOptions *o, const TowerLinkCallbacks *callbacks,
                   void *userdata, TowerLink **ret) {
        TowerLink *l;

        if (lib_users == 0 && mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
                return -EIO;
        lib_users++;
        l = calloc(1, sizeof(TowerLink));
        if (!l) {
                tower_link_free(NULL, NULL, NULL);
                return -ENOMEM;
        }
        l->host = host;
        l->callbacks = *callbacks;
        l->userdata = userdata;
        l->host_name = strdup(o->host);
        l->port = o->port;
        l->tls = o->tls;
        l->ca_file = strdup_or_null(o->ca_file);
        l->cert_file = strdup_or_null(o->cert_file);
        l->key_file = strdup_or_null(o->key_file);
        l->username = strdup_or_null(o->username);
        l->password = strdup_or_null(o->password);
        l->client_id = strdup(o->client_id);
        l->will_topic = strdup_or_null(o->will_topic);
        l->will_payload = strdup(o->will_payload ? o->will_payload : "");
        l->keepalive = o->keepalive >= 5 ? o->keepalive : 30;
        l->max_inflight = o->max_inflight;
        l->resolve_fd = -1;
        l->subscriptions = calloc(o->n_subscriptions + 1, sizeof(char *));
        for (size_t i = 0; l->subscriptions && i < o->n_subscriptions; i++)
                l->subscriptions[l->n_subscriptions++] = strdup(o->subscriptions[i]);
        snprintf(l->status, sizeof l->status, "not connected yet");
        if (!l->host_name || !l->client_id || !l->will_payload || !l->subscriptions) {
                tower_link_free(l, NULL, NULL);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

void tower_link_start(TowerLink *l) {
        if (l->started)
                return;
        l->started = true;
        (void) l->host->timer_start(l->host, LINK_MISC_INTERVAL, on_misc, l, &l->misc_timer);
        link_connect(l);
}

/* Says goodbye and DISCONNECT without waiting: both are a few bytes the socket takes at once. */
static void link_goodbye(TowerLink *l, const char *topic, const char *payload) {
        if (!l->mosq || !l->connected)
                return;
        if (topic && payload)
                (void) mosquitto_publish(l->mosq, NULL, topic, (int) strlen(payload), payload, 1, true);
        if (mosquitto_disconnect(l->mosq) != MOSQ_ERR_SUCCESS)
                return;
        for (int i = 0; i < 20 && mosquitto_want_write(l->mosq); i++)
                if (mosquitto_loop_write(l->mosq, 1) != MOSQ_ERR_SUCCESS)
                        break;
}

void tower_link_free(TowerLink *l, const char *topic, const char *goodbye) {
        if (l) {
                l->stopping = true;
                link_goodbye(l, topic, goodbye);
                l->host->io_cancel(l->io);
                l->host->timer_cancel(l->misc_timer);
                l->host->timer_cancel(l->reconnect_timer);
                l->host->timer_cancel(l->connect_timer);
                link_resolve_cleanup(l);
                if (l->mosq)
                        mosquitto_destroy(l->mosq);
                for (size_t i = 0; i < l->n_subscriptions; i++)
                        free(l->subscriptions[i]);
                free(l->subscriptions);
                free(l->host_name);
                free(l->ca_file);
                free(l->cert_file);
                free(l->key_file);
                if (l->password)
                        explicit_bzero(l->password, strlen(l->password));
                free(l->password);
                free(l->username);
                free(l->client_id);
                free(l->will_topic);
                free(l->will_payload);
                free(l->lib_error);
                free(l);
        }
        if (lib_users > 0 && --lib_users == 0)
                mosquitto_lib_cleanup();
}

bool tower_link_connected(const TowerLink *l) {
        return l && l->connected;
}

const char *tower_link_status(const TowerLink *l) {
        return l ? l->status : "not configured";
}

int tower_link_publish(TowerLink *l, const char *topic, const void *payload, size_t size, bool retain, int *ret_mid) {
        int rc;

        if (!l->connected || !l->mosq)
                return -ENOTCONN;
        if (size > 256 * 1024 * 1024)
                return -EFBIG;
        rc = mosquitto_publish(l->mosq, ret_mid, topic, (int) size, payload, 1, retain);
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
                /* Inside one of libmosquitto's callbacks the object must live on: note it, drop it after. */
                if (l->in_callback)
                        l->lost = true;
                else
                        link_after(l, rc);
                return -ENOTCONN;
        }
        if (rc != MOSQ_ERR_SUCCESS)
                return rc == MOSQ_ERR_ERRNO ? -errno : -EIO;
        link_update_events(l);
        return 0;
}
