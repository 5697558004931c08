/* SPDX-License-Identifier: MIT */
#include "control.h"

#include <errno.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "delivery.h"
#include "log.h"
#include "manager.h"
#include "spool.h"

#define CONTROL_CLIENT_TIMEOUT (5 * USEC_PER_SEC)
#define CONTROL_MAX_CLIENTS 16

typedef struct Client Client;

struct Control {
        Manager *m;
        int fd;
        char *path;
        sd_event_source *listen;
        Client *clients;
        unsigned n_clients;
};

struct Client {
        Control *control;
        int fd;
        uid_t uid; /* of the peer: who approves or rejects */
        bool denied; /* not in control_group: every request gets "not allowed" */
        sd_event_source *io, *timeout;
        StrBuf in;
        char *out;
        size_t out_len, out_done;
        Client *next, *prev;
};

static void client_free(Client *k) {
        Control *c = k->control;

        if (k->prev)
                k->prev->next = k->next;
        else
                c->clients = k->next;
        if (k->next)
                k->next->prev = k->prev;
        c->n_clients--;
        sd_event_source_disable_unref(k->io);
        sd_event_source_disable_unref(k->timeout);
        if (k->fd >= 0)
                close(k->fd);
        strbuf_free(&k->in);
        free(k->out);
        free(k);
}

static json_t *reply_error(const char *en, const char *th) {
        return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", en, "error_th", th);
}

/* ---- commands ---- */

static json_t *command_status(Manager *m) {
        json_t *channels = json_array();
        const char *paused = m->spool ? spool_paused_reason(m->spool) : NULL;

        for (size_t i = 0; i < m->config->n_channels; i++) {
                const ChannelConfig *cc = &m->config->channels[i];
                ChannelInstance *ci = manager_channel(m, cc->name);

                if (ci)
                        channel_instance_check_health(ci);
                json_array_append_new(channels,
                                      json_pack("{s:s, s:s?, s:b, s:b, s:s}", "name", cc->name, "plugin", cc->plugin,
                                                "enabled", cc->enabled, "healthy", ci && ci->healthy, "health",
                                                !cc->enabled ? "disabled" : !ci ? "not loaded" : ci->health));
        }
        return json_pack("{s:b, s:s, s:i, s:s, s:I, s:I, s:I, s:s?, s:s?, s:o}", "ok", 1, "daemon", "running", "pid",
                         (int) getpid(), "version", PRAKAT_VERSION, "queue", (json_int_t) queue_size(m->queue),
                         "pending_jobs", (json_int_t) delivery_pending_jobs(m), "in_flight", (json_int_t) m->in_flight,
                         "intake_paused", paused, "state_error", m->flush_error, "channels", channels);
}

/* retry / hold / release: {"command", "id", "channel"?} */
static json_t *command_job(Manager *m, const char *command, json_t *request) {
        const char *id = json_string_value(json_object_get(request, "id"));
        const char *channel = json_string_value(json_object_get(request, "channel"));
        int r;

        if (!id)
                return reply_error("no announcement id given", "ไม่ได้ระบุรหัสประกาศ");
        if (channel && !config_find_channel(m->config, channel)) {
                _cleanup_free_ char *en = xasprintf("there is no channel \"%s\" in the config", channel);
                _cleanup_free_ char *th = xasprintf("ไม่มีช่องทาง \"%s\" ในการตั้งค่า", channel);
                return reply_error(en, th);
        }
        if (streq(command, "retry"))
                r = delivery_retry(m, id, channel);
        else
                r = delivery_hold(m, id, streq(command, "hold"));
        if (r == -ENOENT) {
                _cleanup_free_ char *en = xasprintf("no announcement %s %s", id,
                                                    streq(command, "retry") ? "in the queue or done" :
                                                                              "waiting in the queue");
                _cleanup_free_ char *th = xasprintf("ไม่พบประกาศ %s", id);
                return reply_error(en, th);
        }
        if (r == -EBUSY)
                return reply_error("the announcement is held; release it first", "ประกาศนี้ถูกระงับไว้ ต้องปล่อยก่อน");
        if (r < 0)
                return reply_error(strerror(-r), strerror(-r));
        return json_pack("{s:b, s:s, s:i}", "ok", 1, "id", id, "jobs", r);
}

/* The Unix user name of a uid ("uid 1234" when it has none). */
static char *user_name(uid_t uid) {
        struct passwd pw, *result = NULL;
        char buf[4096];

        if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result)
                return xstrdup(result->pw_name);
        return xasprintf("uid %u", (unsigned) uid);
}

/* approve / reject: {"command", "id", "reason"} (a reason is required to reject) */
static json_t *command_decide(Manager *m, Client *k, bool approve, json_t *request) {
        const char *id = json_string_value(json_object_get(request, "id"));
        const char *reason = json_string_value(json_object_get(request, "reason"));
        _cleanup_free_ char *user = user_name(k->uid);
        int r;

        if (!id)
                return reply_error("no announcement id given", "ไม่ได้ระบุรหัสประกาศ");
        if (!approve && isempty(reason))
                return reply_error("say why with --reason: the writer reads it in the receipt",
                                   "ระบุเหตุผลด้วย --reason ผู้เขียนจะเห็นในใบรับรอง");
        r = delivery_decide(m, id, approve, user, reason);
        if (r == -ENOENT) {
                _cleanup_free_ char *en = xasprintf("no announcement %s waiting in the queue", id);
                _cleanup_free_ char *th = xasprintf("ไม่พบประกาศ %s ในคิว", id);
                return reply_error(en, th);
        }
        if (r == -EALREADY)
                return reply_error("this announcement is not waiting for approval",
                                   "ประกาศนี้ไม่ได้รอการอนุมัติ");
        if (r < 0)
                return reply_error(strerror(-r), strerror(-r));
        return json_pack("{s:b, s:s, s:i, s:s}", "ok", 1, "id", id, "jobs", r, "by", user);
}

/*
 * channel-command: {"command", "action", "channel"?}, e.g. action "site-sync" from `prakat site
 * sync`.  Goes to the named channel, or to every loaded channel that takes the action.
 */
static json_t *command_channel(Manager *m, json_t *request) {
        const char *action = json_string_value(json_object_get(request, "action"));
        const char *channel = json_string_value(json_object_get(request, "channel"));
        json_t *answers = json_array();
        char reply[512];
        bool any = false;

        if (!action)
                return json_decref(answers), reply_error("no action given", "ไม่ได้ระบุคำสั่ง");
        for (size_t i = 0; i < m->n_channels; i++) {
                ChannelInstance *ci = m->channels[i];
                if (channel && !streq(ci->name, channel))
                        continue;
                reply[0] = 0;
                int r = channel_instance_command(ci, action, reply, sizeof reply);
                if (r == -EOPNOTSUPP && !channel)
                        continue;
                any = any || r >= 0;
                json_array_append_new(answers, json_pack("{s:s, s:b, s:s}", "name", ci->name, "ok", r >= 0, "reply",
                                                         reply[0] ? reply : r < 0 ? strerror(-r) : "ok"));
        }
        if (json_array_size(answers) == 0) {
                json_decref(answers);
                _cleanup_free_ char *en = channel ? xasprintf("there is no loaded channel \"%s\"", channel) :
                                                    xasprintf("no channel takes \"%s\"", action);
                _cleanup_free_ char *th = channel ? xasprintf("ไม่มีช่องทาง \"%s\" ที่ทำงานอยู่", channel) :
                                                    xasprintf("ไม่มีช่องทางใดรับคำสั่ง \"%s\"", action);
                return reply_error(en, th);
        }
        return json_pack("{s:b, s:o}", "ok", any, "channels", answers);
}

static json_t *control_dispatch(Control *c, Client *k, const char *line) {
        json_error_t error;
        json_t *request = json_loads(line, 0, &error), *reply;
        const char *command = request ? json_string_value(json_object_get(request, "command")) : NULL;

        if (k->denied) {
                _cleanup_free_ char *user = user_name(k->uid);
                _cleanup_free_ char *en = xasprintf("not allowed: %s is not in the group %s (control_group)", user,
                                                    c->m->config->control_group);
                _cleanup_free_ char *th = xasprintf("ไม่มีสิทธิ์: ผู้ใช้ %s ไม่ได้อยู่ในกลุ่ม %s (control_group)", user,
                                                    c->m->config->control_group);
                reply = reply_error(en, th);
                json_object_set_new(reply, "not_allowed", json_true());
        } else if (!command)
                reply = reply_error("the request is not a JSON object with a \"command\"",
                                    "คำขอไม่ใช่ JSON ที่มี \"command\"");
        else if (streq(command, "status"))
                reply = command_status(c->m);
        else if (streq(command, "retry") || streq(command, "hold") || streq(command, "release"))
                reply = command_job(c->m, command, request);
        else if (streq(command, "approve") || streq(command, "reject"))
                reply = command_decide(c->m, k, streq(command, "approve"), request);
        else if (streq(command, "channel-command"))
                reply = command_channel(c->m, request);
        else {
                _cleanup_free_ char *en = xasprintf("unknown command \"%s\"", command);
                _cleanup_free_ char *th = xasprintf("ไม่รู้จักคำสั่ง \"%s\"", command);
                reply = reply_error(en, th);
        }
        json_decref(request);
        return reply;
}

/* ---- connections ---- */

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void client_reply(Client *k, json_t *reply) {
        char *text = json_dumps(reply, JSON_COMPACT);

        json_decref(reply);
        k->out = xasprintf("%s\n", text ? text : "{\"ok\":false}");
        free(text);
        k->out_len = strlen(k->out);
        k->out_done = 0;
        (void) sd_event_source_set_io_events(k->io, EPOLLOUT);
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *k = userdata;
        char buf[4096];

        if (k->out) {
                while (k->out_done < k->out_len) {
                        ssize_t n = write(fd, k->out + k->out_done, k->out_len - k->out_done);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                return 0;
                        if (n <= 0)
                                break;
                        k->out_done += (size_t) n;
                }
                client_free(k);
                return 0;
        }
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0) {
                        client_free(k);
                        return 0;
                }
                if (n > 0)
                        strbuf_appendn(&k->in, buf, (size_t) n);
                char *nl = k->in.data ? memchr(k->in.data, '\n', k->in.len) : NULL;
                if (k->in.len > CONTROL_MAX_REQUEST) {
                        client_reply(k, reply_error("the request is too long", "คำขอยาวเกินไป"));
                        return 0;
                }
                if (nl || n == 0) {
                        if (nl)
                                *nl = 0;
                        if (k->in.len == 0) { /* closed without asking anything */
                                client_free(k);
                                return 0;
                        }
                        client_reply(k, control_dispatch(k->control, k, k->in.data));
                        return 0;
                }
        }
}

static int on_client_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        client_free(userdata);
        return 0;
}

/*
 * With control_group set, the socket belongs to that group (mode 0660), and the daemon checks again
 * itself: root, prakatd's own user, and members of the group (primary or supplementary) may ask.
 */
static bool peer_allowed(const Config *config, int fd, const struct ucred *cred) {
        gid_t groups[256];
        socklen_t len = sizeof groups;

        if (!config->control_group || cred->uid == 0 || cred->uid == geteuid())
                return true;
        if (cred->gid == config->control_gid)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false;
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == config->control_gid)
                        return true;
        return false;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;

        for (;;) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(-errno, "Control socket: accept failed: %m");
                        return 0;
                }
                if (c->n_clients >= CONTROL_MAX_CLIENTS) {
                        close(cfd);
                        continue;
                }
                Client *k = xcalloc(1, sizeof(Client));
                struct ucred cred = {};
                socklen_t len = sizeof cred;
                k->control = c;
                k->fd = cfd;
                if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                        cred = (struct ucred) { .uid = (uid_t) -1, .gid = (gid_t) -1 };
                k->uid = cred.uid;
                k->denied = !peer_allowed(c->m->config, cfd, &cred);
                k->next = c->clients;
                if (c->clients)
                        c->clients->prev = k;
                c->clients = k;
                c->n_clients++;
                if (sd_event_add_io(manager_event(c->m), &k->io, cfd, EPOLLIN, on_client_io, k) < 0 ||
                    sd_event_add_time_relative(manager_event(c->m), &k->timeout, CLOCK_MONOTONIC,
                                               CONTROL_CLIENT_TIMEOUT, 0, on_client_timeout, k) < 0) {
                        client_free(k);
                        continue;
                }
                (void) sd_event_source_set_description(k->io, "control-client");
        }
}

static int socket_address(const char *runtime_dir, struct sockaddr_un *sa, char **ret_path) {
        _cleanup_free_ char *path = path_join(runtime_dir, CONTROL_SOCKET_NAME);

        if (strlen(path) >= sizeof sa->sun_path)
                return -ENAMETOOLONG;
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, strlen(path) + 1);
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

/* Hands the socket (and the runtime folder, when it is ours) to control_group. */
static void control_set_group(const Config *config, const char *path) {
        if (chown(path, (uid_t) -1, config->control_gid) < 0) {
                log_warning_errno(-errno, "Cannot give the control socket %s to the group %s (control_group); only "
                                  "root and prakatd's own group can use it. prakatd must be a member of %s "
                                  "(SupplementaryGroups= in its unit): %m", path, config->control_group,
                                  config->control_group);
                return;
        }
        /* The folder must let the group in; systemd's RuntimeDirectory= makes it prakatd's, 0750. */
        struct stat st;
        if (stat(config->runtime_dir, &st) == 0 && st.st_uid == geteuid() && st.st_gid != config->control_gid &&
            chown(config->runtime_dir, (uid_t) -1, config->control_gid) < 0)
                log_warning_errno(-errno, "Cannot give %s to the group %s: %m", config->runtime_dir,
                                  config->control_group);
}

int control_new(Manager *m, Control **ret) {
        Control *c = xcalloc(1, sizeof(Control));
        struct sockaddr_un sa;
        int r;

        c->m = m;
        c->fd = -1;
        r = mkdir_p(m->config->runtime_dir, 0750);
        if (r >= 0)
                r = socket_address(m->config->runtime_dir, &sa, &c->path);
        if (r >= 0) {
                c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                r = c->fd < 0 ? -errno : 0;
        }
        if (r >= 0) {
                /* A socket left by a daemon that died; prakatd's single instance is systemd's business. */
                (void) unlink(c->path);
                if (bind(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod(c->path, 0660) < 0 ||
                    listen(c->fd, 16) < 0)
                        r = -errno;
        }
        if (r >= 0 && m->config->control_group)
                control_set_group(m->config, c->path);
        if (r >= 0)
                r = sd_event_add_io(manager_event(m), &c->listen, c->fd, EPOLLIN, on_accept, c);
        if (r < 0) {
                log_warning_errno(r, "No control socket in %s (prakat status and the other commands that ask the "
                                  "daemon will say it is not running): %m", m->config->runtime_dir);
                control_free(c);
                *ret = NULL;
                return 0;
        }
        (void) sd_event_source_set_description(c->listen, "control");
        *ret = c;
        return 0;
}

void control_free(Control *c) {
        if (!c)
                return;
        while (c->clients)
                client_free(c->clients);
        sd_event_source_disable_unref(c->listen);
        if (c->fd >= 0) {
                close(c->fd);
                if (c->path)
                        (void) unlink(c->path);
        }
        free(c->path);
        free(c);
}

/* ---- client side ---- */

int control_call(const char *runtime_dir, json_t *request, unsigned timeout_ms, json_t **ret_reply) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = json_dumps(request, JSON_COMPACT), *line = NULL;
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        struct sockaddr_un sa;
        StrBuf in = {};
        json_error_t error;
        char buf[4096];
        int r;

        json_decref(request);
        r = socket_address(runtime_dir, &sa, NULL);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        line = xasprintf("%s\n", text ? text : "{}");
        r = write_full(fd, line, strlen(line));
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = errno == EAGAIN ? -ETIMEDOUT : -errno;
                        strbuf_free(&in);
                        return r;
                }
                if (n == 0)
                        break;
                strbuf_appendn(&in, buf, (size_t) n);
                if (in.len > 16 * CONTROL_MAX_REQUEST)
                        break;
        }
        *ret_reply = in.data ? json_loads(in.data, 0, &error) : NULL;
        strbuf_free(&in);
        return *ret_reply ? 0 : -EBADMSG;
}
