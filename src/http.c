/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include "event-util.h"
#include "log.h"
#include "util.h"

/*
 * libcurl is loaded with dlopen() when the first HTTP client is made, not linked: a setup that
 * never talks HTTP (the website alone) then never maps libcurl, OpenSSL, GnuTLS and the rest of
 * their dependencies, which is most of an idle daemon's memory.
 */
#define LIBCURL_SONAME "libcurl.so.4"

static struct {
        CURLcode (*global_init)(long flags);
        CURLM *(*multi_init)(void);
        CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
        CURLMcode (*multi_cleanup)(CURLM *multi);
        CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
        CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
        CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t fd, int mask, int *running);
        CURLMcode (*multi_assign)(CURLM *multi, curl_socket_t fd, void *p);
        CURLMcode (*multi_socket_all)(CURLM *multi, int *running);
        CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
        CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
        void (*easy_cleanup)(CURL *easy);
        const char *(*easy_strerror)(CURLcode code);
        struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
        void (*slist_free_all)(struct curl_slist *list);
} curl;

/* Loads libcurl and initializes it once per process. */
static int curl_load(void) {
        static void *library;
        static const struct {
                const char *name;
                size_t offset;
        } symbols[] = {
#define SYM(f) { "curl_" #f, offsetof(__typeof__(curl), f) }
                SYM(global_init),    SYM(multi_init),          SYM(multi_setopt),        SYM(multi_cleanup),
                SYM(multi_add_handle), SYM(multi_remove_handle), SYM(multi_socket_action), SYM(multi_assign),
                SYM(multi_info_read), SYM(easy_init),           SYM(easy_setopt),         SYM(easy_getinfo),
                SYM(easy_cleanup),   SYM(easy_strerror),       SYM(slist_append),        SYM(slist_free_all),
#undef SYM
        };

        if (library)
                return 0;
        void *l = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!l) {
                log_error("Cannot load %s (%s): install Debian's libcurl4 package.", LIBCURL_SONAME, dlerror());
                return -ENOENT;
        }
        for (size_t i = 0; i < ELEMENTSOF(symbols); i++) {
                void *f = dlsym(l, symbols[i].name);
                if (!f) {
                        log_error("%s has no %s: a libcurl of 7.62 or newer is needed.", LIBCURL_SONAME,
                                  symbols[i].name);
                        dlclose(l);
                        return -ENOENT;
                }
                memcpy((char *) &curl + symbols[i].offset, &f, sizeof f);
        }
        /* Deprecated, so perhaps gone from a later libcurl: then FTP falls back to timeouts (http_ftp_kick()). */
        *(void **) &curl.multi_socket_all = dlsym(l, "curl_multi_socket_all");
        if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                dlclose(l);
                return -EIO;
        }
        library = l;
        return 0;
}

typedef struct TransferState TransferState;
static void transfer_state_free(TransferState *t);
static int transfer_finish_response(prakat_http_call *call, CURLcode code, prakat_http_response *response);

/* A bounded number of parallel transfers per host: the platforms throttle bursts anyway. */
#define HTTP_MAX_HOST_CONNECTIONS 4
#define HTTP_MAX_HEADERS 64

struct prakat_http_call {
        HttpClient *client;
        CURL *easy;
        struct curl_slist *request_headers;
        void *body;
        size_t body_size;
        StrBuf response;
        size_t max_response;
        char *header_names[HTTP_MAX_HEADERS], *header_values[HTTP_MAX_HEADERS];
        size_t n_headers;
        bool too_big;
        prakat_http_done_fn done;
        void *userdata;
        prakat_http_call *next, *prev;
        size_t body_read;        /* a send-once body: bytes libcurl has taken (see on_once_read()) */
        TransferState *transfer; /* only for an upload: see "uploads" below */
        bool ftp;                /* an FTP(S) upload: see http_ftp_kick() */
};

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        prakat_http_call *calls;
        unsigned active;
        unsigned long connections_opened;
        unsigned ftp_calls;         /* FTP(S) uploads under way */
        sd_event_source *ftp_kick;  /* while there are any: see http_ftp_kick() */
};

static void http_check_done(HttpClient *c);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpClient *c = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        curl.multi_socket_action(c->multi, fd, action, &running);
        http_check_done(c);
        return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        HttpClient *c = userdata;
        sd_event_source *io = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        sd_event_source_disable_unref(io);
                        curl.multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (io) {
                if (sd_event_source_set_io_events(io, events) < 0 ||
                    sd_event_source_set_enabled(io, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(c->event, &io, fd, events, on_io, c) < 0)
                return -1;
        (void) sd_event_source_set_description(io, "curl-io");
        curl.multi_assign(c->multi, fd, io);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        curl.multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_check_done(c);
        return 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userdata) {
        HttpClient *c = userdata;
        usec_t when;

        if (timeout_ms < 0)
                return c->timer ? sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0 : 0;
        sd_event_now(c->event, CLOCK_MONOTONIC, &when);
        when += (usec_t) timeout_ms * USEC_PER_MSEC;
        return event_timer_arm(c->event, &c->timer, when, 0, on_timer, c, "curl-timer") < 0 ? -1 : 0;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        HttpClient *c;

        int r = curl_load();
        if (r < 0)
                return r;
        c = xcalloc(1, sizeof(HttpClient));
        c->event = sd_event_ref(event);
        c->multi = curl.multi_init();
        if (!c->multi) {
                http_client_free(c);
                return -ENOMEM;
        }
        curl.multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl.multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
        curl.multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
        curl.multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
        curl.multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) HTTP_MAX_HOST_CONNECTIONS);
        curl.multi_setopt(c->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
        *ret = c;
        return 0;
}

static void call_free(prakat_http_call *call) {
        HttpClient *c = call->client;

        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        curl.multi_remove_handle(c->multi, call->easy);
        curl.easy_cleanup(call->easy);
        curl.slist_free_all(call->request_headers);
        free(call->body);
        strbuf_free(&call->response);
        for (size_t i = 0; i < call->n_headers; i++) {
                free(call->header_names[i]);
                free(call->header_values[i]);
        }
        transfer_state_free(call->transfer);
        c->active--;
        c->ftp_calls -= call->ftp;
        free(call);
}

void http_client_free(HttpClient *c) {
        if (!c)
                return;
        while (c->calls)
                call_free(c->calls);
        if (c->multi)
                curl.multi_cleanup(c->multi);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->ftp_kick);
        sd_event_unref(c->event);
        free(c);
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        prakat_http_call *call = userdata;

        if (call->response.len + size * n > call->max_response) {
                call->too_big = true;
                return 0; /* makes curl stop with CURLE_WRITE_ERROR */
        }
        strbuf_appendn(&call->response, data, size * n);
        return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        prakat_http_call *call = userdata;
        size_t len = size * n;
        const char *colon = memchr(data, ':', len);

        /* A new status line (after a redirect or 100 Continue) starts a new header set. */
        if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
                for (size_t i = 0; i < call->n_headers; i++) {
                        free(call->header_names[i]);
                        free(call->header_values[i]);
                }
                call->n_headers = 0;
                return len;
        }
        if (!colon || call->n_headers >= HTTP_MAX_HEADERS)
                return len;
        _cleanup_free_ char *value = xstrndup(colon + 1, len - (size_t) (colon + 1 - data));
        call->header_names[call->n_headers] = xstrndup(data, (size_t) (colon - data));
        call->header_values[call->n_headers++] = xstrdup(strstrip(value));
        return len;
}

static const char *response_header(const prakat_http_response *response, const char *name) {
        const prakat_http_call *call = response->core;

        for (size_t i = 0; i < call->n_headers; i++)
                if (strcasecmp(call->header_names[i], name) == 0)
                        return call->header_values[i];
        return NULL;
}

static int curl_code_to_errno(CURLcode code, bool too_big) {
        if (too_big)
                return -EFBIG;
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SEND_FAIL_REWIND: /* a send-once request that libcurl wanted to send again */
                return -ECONNRESET;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        default:
                return -EIO;
        }
}

static void http_check_done(HttpClient *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl.multi_info_read(c->multi, &left))) {
                prakat_http_call *call = NULL;
                prakat_http_response response = {};
                long connects = 0;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call);
                curl.easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &response.status);
                curl.easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &connects);
                c->connections_opened += (unsigned long) connects;
                response.error = curl_code_to_errno(msg->data.result, call->too_big);
                response.error_text = response.error ? curl.easy_strerror(msg->data.result) : NULL;
                response.body = call->response.data ? call->response.data : "";
                response.body_size = call->response.len;
                response.header = response_header;
                response.core = call;
                if (call->transfer)
                        response.error = transfer_finish_response(call, msg->data.result, &response);
                call->done(call->userdata, &response);
                call_free(call);
        }
}

/*
 * libcurl 7.88's FTP, driven through curl_multi_socket_action(), does not always ask for the control
 * connection to be watched while it waits there for an answer (after EPSV, after a transfer): nothing
 * then wakes it until its own 10 s timeout, and an upload that takes a few milliseconds takes 10 s or
 * fails (seen under load with vsftpd).  So while an FTP(S) upload is under way, libcurl is also woken
 * every FTP_KICK_USEC to run every transfer and look at all its sockets itself (curl_multi_socket_all(),
 * which also tells the socket callback what to watch).  SFTP and HTTP do not need it.
 */
#define FTP_KICK_USEC (100 * USEC_PER_MSEC)

static int on_ftp_kick(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        if (c->ftp_calls == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (curl.multi_socket_all)
                curl.multi_socket_all(c->multi, &running);
        else
                curl.multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_check_done(c);
        if (c->ftp_calls > 0) {
                (void) sd_event_source_set_time(s, usec + FTP_KICK_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void http_ftp_kick(HttpClient *c) {
        usec_t now;

        if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        if (c->ftp_kick && sd_event_source_get_enabled(c->ftp_kick, NULL) > 0)
                return;
        (void) event_timer_arm(c->event, &c->ftp_kick, now + FTP_KICK_USEC, 0, on_ftp_kick, c, "curl-ftp-kick");
}

/* A call with its easy handle, not yet started; NULL when libcurl cannot make a handle. */
static prakat_http_call *http_call_new(HttpClient *c, prakat_http_done_fn done, void *userdata, size_t max_response) {
        CURL *easy = curl.easy_init();
        prakat_http_call *call;

        if (!easy)
                return NULL;
        call = xcalloc(1, sizeof(prakat_http_call));
        call->client = c;
        call->easy = easy;
        call->done = done;
        call->userdata = userdata;
        call->max_response = max_response;
        return call;
}

/* Links a prepared call into the client and hands it to libcurl; frees it on failure. */
static int http_call_start(HttpClient *c, prakat_http_call *call, prakat_http_call **ret_call) {
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->active++;
        if (curl.multi_add_handle(c->multi, call->easy) != CURLM_OK) {
                call_free(call);
                return -EIO;
        }
        if (ret_call)
                *ret_call = call;
        return 0;
}

/*
 * A send-once body is handed to libcurl piece by piece instead of as POSTFIELDS.  libcurl sends a
 * request again by itself when a reused keep-alive connection died before any byte of an answer; to
 * do that after body bytes went out it must rewind the body, and on_once_seek() refuses: the call
 * then ends with CURLE_SEND_FAIL_REWIND (-ECONNRESET, "may have arrived") and the plugin decides, as
 * for any dropped connection.  A connection that died before the body left is retried as before:
 * nothing of that request was complete on the server.
 */
static size_t on_once_read(char *buffer, size_t size, size_t n, void *userdata) {
        prakat_http_call *call = userdata;
        size_t left = call->body_size - call->body_read, take = size * n < left ? size * n : left;

        memcpy(buffer, (const char *) call->body + call->body_read, take);
        call->body_read += take;
        return take;
}

static int on_once_seek(void *userdata, curl_off_t offset, int origin) {
        prakat_http_call *call = userdata;

        /* Only the no-op of a body not yet started. */
        return origin == SEEK_SET && offset == 0 && call->body_read == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

int http_client_request(HttpClient *c, const prakat_http_request *req, prakat_http_done_fn done, void *userdata,
                        prakat_http_call **ret_call) {
        prakat_http_call *call;
        CURL *easy;

        if (!req->url || !req->method || !done)
                return -EINVAL;
        call = http_call_new(c, done, userdata, req->max_response ? req->max_response : 1024 * 1024);
        if (!call)
                return -ENOMEM;
        easy = call->easy;
        bool own_connection = false, once = false;
        for (size_t i = 0; i < req->n_headers; i++) {
                _cleanup_free_ char *h = NULL;
                if (strcasecmp(req->headers[i].name, PRAKAT_HTTP_SEND_ONCE) == 0) {
                        once = true; /* for the core only: not sent */
                        continue;
                }
                h = xasprintf("%s: %s", req->headers[i].name, req->headers[i].value);
                call->request_headers = curl.slist_append(call->request_headers, h);
                own_connection = own_connection || (strcasecmp(req->headers[i].name, "Connection") == 0 &&
                                                    strcasecmp(req->headers[i].value, "close") == 0);
        }
        /* No "Expect: 100-continue" round trip for small bodies. */
        call->request_headers = curl.slist_append(call->request_headers, "Expect:");
        curl.easy_setopt(easy, CURLOPT_URL, req->url);
        curl.easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl.easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl.easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) (req->timeout_ms ? req->timeout_ms : 30000));
        curl.easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl.easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl.easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
        curl.easy_setopt(easy, CURLOPT_USERAGENT, "prakat/0.1");
        curl.easy_setopt(easy, CURLOPT_HTTPHEADER, call->request_headers);
        curl.easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl.easy_setopt(easy, CURLOPT_WRITEDATA, call);
        curl.easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
        curl.easy_setopt(easy, CURLOPT_HEADERDATA, call);
        curl.easy_setopt(easy, CURLOPT_PRIVATE, call);
        curl.easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
        if (own_connection) {
                /*
                 * libcurl re-sends a request by itself when a reused connection dies before any answer;
                 * for a call that is not idempotent that is a duplicate.  A fresh HTTP/1.1 connection of
                 * its own, closed afterwards, leaves nothing to retry on (HTTP/2 would multiplex it).
                 */
                curl.easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
                curl.easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
                curl.easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        }
        if (streq(req->method, "HEAD"))
                curl.easy_setopt(easy, CURLOPT_NOBODY, 1L);
        if (req->body) {
                call->body = xmalloc(req->body_size);
                call->body_size = req->body_size;
                memcpy(call->body, req->body, req->body_size);
                if (once) {
                        curl.easy_setopt(easy, CURLOPT_POST, 1L);
                        curl.easy_setopt(easy, CURLOPT_READFUNCTION, on_once_read);
                        curl.easy_setopt(easy, CURLOPT_READDATA, call);
                        curl.easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_once_seek);
                        curl.easy_setopt(easy, CURLOPT_SEEKDATA, call);
                } else
                        curl.easy_setopt(easy, CURLOPT_POSTFIELDS, call->body);
                curl.easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_size);
        }
        return http_call_start(c, call, ret_call);
}

void http_call_cancel(prakat_http_call *call) {
        if (call)
                call_free(call);
}

unsigned http_client_active(const HttpClient *c) {
        return c->active;
}

unsigned long http_client_connections_opened(const HttpClient *c) {
        return c->connections_opened;
}

/* ---- uploads: SFTP and explicit FTPS on the same multi handle ---- */

/* What an upload needs beyond an HTTP call. */
struct TransferState {
        FILE *file;
        struct curl_slist *post_quote;
        char *password;
        char *host;        /* "host[:port]" as in the URL, for messages */
        char *known_hosts; /* for messages */
        bool sftp;
        bool key_checked;
        enum curl_khmatch key_match;
        char error_buffer[CURL_ERROR_SIZE];
        char *message;
};

static void transfer_state_free(TransferState *t) {
        if (!t)
                return;
        if (t->file)
                fclose(t->file);
        curl.slist_free_all(t->post_quote);
        if (t->password) {
                explicit_bzero(t->password, strlen(t->password));
                free(t->password);
        }
        free(t->host);
        free(t->known_hosts);
        free(t->message);
        free(t);
}

/* The parts of an upload URL the core needs: quote commands take decoded paths, not URLs. */
typedef struct RemoteUrl {
        bool sftp;
        char *host;    /* "host[:port]", without the user */
        char *dir_url; /* the URL up to and including the last '/' */
        char *dir;     /* decoded folder path, with its trailing '/' */
        char *name;    /* decoded file name */
} RemoteUrl;

static void remote_url_done(RemoteUrl *u) {
        free(u->host);
        free(u->dir_url);
        free(u->dir);
        free(u->name);
}

/* Decodes %XX; refuses what cannot stand in a quote command (NUL, control characters, quotes, backslashes). */
static char *percent_decode(const char *s, size_t n) {
        StrBuf b = {};

        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '%' && i + 2 < n && isxdigit((unsigned char) s[i + 1]) &&
                    isxdigit((unsigned char) s[i + 2])) {
                        char hex[3] = { s[i + 1], s[i + 2], 0 };
                        c = (char) strtol(hex, NULL, 16);
                        i += 2;
                }
                if ((unsigned char) c < ' ' || c == 0x7f || c == '"' || c == '\\') {
                        strbuf_free(&b);
                        return NULL;
                }
                strbuf_appendn(&b, &c, 1);
        }
        return strbuf_steal(&b);
}

static int remote_url_parse(const char *url, RemoteUrl *ret) {
        RemoteUrl u = {};
        const char *rest;

        if (strncmp(url, "sftp://", 7) == 0)
                u.sftp = true, rest = url + 7;
        else if (strncmp(url, "ftp://", 6) == 0)
                rest = url + 6;
        else
                return -EPROTONOSUPPORT;
        const char *path = strchr(rest, '/');
        const char *last = path ? strrchr(path, '/') : NULL;
        if (!path || path == rest || !last[1])
                return -EINVAL;
        const char *at = memrchr(rest, '@', (size_t) (path - rest));
        const char *host = at ? at + 1 : rest;
        u.host = xstrndup(host, (size_t) (path - host));
        u.dir_url = xstrndup(url, (size_t) (last + 1 - url));
        u.dir = percent_decode(path, (size_t) (last + 1 - path));
        u.name = percent_decode(last + 1, strlen(last + 1));
        if (!u.dir || !u.name || strchr(u.name, '/')) {
                remote_url_done(&u);
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

static size_t on_upload_read(char *buffer, size_t size, size_t n, void *userdata) {
        FILE *f = userdata;
        size_t got = fread(buffer, 1, size * n, f);
        return ferror(f) ? CURL_READFUNC_ABORT : got;
}

/* Accepts only a host key listed in known_hosts; remembers why another was refused, for the message. */
static int on_host_key(CURL *easy, const struct curl_khkey *known, const struct curl_khkey *found,
                       enum curl_khmatch match, void *userdata) {
        TransferState *t = userdata;

        t->key_checked = true;
        t->key_match = match;
        return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
}

/*
 * The commands run after the transfer.  SFTP: OpenSSH's server refuses to rename onto an existing
 * file, so the old one is removed first ('*': it may not exist); a reader may miss the file for
 * that instant, but never sees half of one.  FTP renames over the old file (RNFR/RNTO, relative
 * to the folder libcurl changed into).
 */
static struct curl_slist *transfer_post_quote(const prakat_transfer *t, const RemoteUrl *u) {
        struct curl_slist *q = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;

        if (!t->local_path) {
                a = u->sftp ? xasprintf("*rm \"%s%s\"", u->dir, u->name) : xasprintf("*DELE %s", u->name);
                return curl.slist_append(NULL, a);
        }
        if (!t->rename_to)
                return NULL;
        if (u->sftp) {
                a = xasprintf("*rm \"%s%s\"", u->dir, t->rename_to);
                b = xasprintf("rename \"%s%s\" \"%s%s\"", u->dir, u->name, u->dir, t->rename_to);
        } else {
                a = xasprintf("RNFR %s", u->name);
                b = xasprintf("RNTO %s", t->rename_to);
        }
        q = curl.slist_append(q, a);
        return curl.slist_append(q, b);
}

static bool rename_target_is_valid(const char *name) {
        return !name || (*name && !strpbrk(name, "/\"\\\r\n") && !streq(name, ".") && !streq(name, ".."));
}

int http_client_upload(HttpClient *c, const prakat_transfer *t, prakat_http_done_fn done, void *userdata,
                       prakat_http_call **ret_call) {
        _cleanup_(remote_url_done) RemoteUrl u = {};
        struct stat st = {};
        prakat_http_call *call;
        CURL *easy;

        if (!t->url || !done || !rename_target_is_valid(t->rename_to))
                return -EINVAL;
        int r = remote_url_parse(t->url, &u);
        if (r < 0)
                return r;
        if (u.sftp ? !t->known_hosts_file : !t->require_tls)
                return -EPERM; /* never an unchecked host key, never a password in clear */
        call = http_call_new(c, done, userdata, 64 * 1024);
        if (!call)
                return -ENOMEM;
        easy = call->easy;
        call->transfer = xcalloc(1, sizeof(TransferState));
        TransferState *ts = call->transfer;
        ts->sftp = u.sftp;
        ts->host = xstrdup(u.host);
        ts->known_hosts = t->known_hosts_file ? xstrdup(t->known_hosts_file) : NULL;
        if (t->local_path) {
                ts->file = fopen(t->local_path, "rec");
                if (!ts->file || fstat(fileno(ts->file), &st) < 0) {
                        r = -errno;
                        curl.easy_cleanup(easy);
                        transfer_state_free(call->transfer);
                        free(call);
                        return r;
                }
        }
        unsigned timeout_ms = t->timeout_ms ? t->timeout_ms : 5 * 60 * 1000;
        curl.easy_setopt(easy, CURLOPT_URL, t->local_path ? t->url : u.dir_url);
        curl.easy_setopt(easy, CURLOPT_PROTOCOLS_STR, u.sftp ? "sftp" : "ftp");
        curl.easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl.easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
        curl.easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        /* A host that stops answering mid-file is given up after 30 s, not after the whole timeout. */
        curl.easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl.easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long) (timeout_ms >= 30000 ? 30 : timeout_ms / 1000 + 1));
        curl.easy_setopt(easy, CURLOPT_ERRORBUFFER, ts->error_buffer);
        curl.easy_setopt(easy, CURLOPT_PRIVATE, call);
        curl.easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl.easy_setopt(easy, CURLOPT_WRITEDATA, call);
        if (t->local_path) {
                curl.easy_setopt(easy, CURLOPT_UPLOAD, 1L);
                curl.easy_setopt(easy, CURLOPT_READFUNCTION, on_upload_read);
                curl.easy_setopt(easy, CURLOPT_READDATA, ts->file);
                curl.easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t) st.st_size);
        } else
                curl.easy_setopt(easy, CURLOPT_NOBODY, 1L);
        ts->post_quote = transfer_post_quote(t, &u);
        if (ts->post_quote)
                curl.easy_setopt(easy, CURLOPT_POSTQUOTE, ts->post_quote);
        if (t->create_dirs)
                curl.easy_setopt(easy, CURLOPT_FTP_CREATE_MISSING_DIRS, (long) CURLFTP_CREATE_DIR_RETRY);
        if (t->password) {
                ts->password = xstrdup(t->password);
                curl.easy_setopt(easy, CURLOPT_PASSWORD, ts->password);
        }
        if (u.sftp) {
                curl.easy_setopt(easy, CURLOPT_SSH_AUTH_TYPES,
                                 t->private_key_file ? (long) CURLSSH_AUTH_PUBLICKEY : (long) CURLSSH_AUTH_PASSWORD);
                if (t->private_key_file) {
                        curl.easy_setopt(easy, CURLOPT_SSH_PRIVATE_KEYFILE, t->private_key_file);
                        /* Empty: libssh2 derives the public key from the private one. */
                        curl.easy_setopt(easy, CURLOPT_SSH_PUBLIC_KEYFILE, "");
                }
                curl.easy_setopt(easy, CURLOPT_SSH_KNOWNHOSTS, t->known_hosts_file);
                curl.easy_setopt(easy, CURLOPT_SSH_KEYFUNCTION, on_host_key);
                curl.easy_setopt(easy, CURLOPT_SSH_KEYDATA, ts);
        } else {
                curl.easy_setopt(easy, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
                curl.easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
                curl.easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
                if (t->ca_file)
                        curl.easy_setopt(easy, CURLOPT_CAINFO, t->ca_file);
        }
        r = http_call_start(c, call, ret_call);
        if (r >= 0 && !u.sftp) {
                call->ftp = true;
                c->ftp_calls++;
                http_ftp_kick(c);
        }
        return r;
}

/*
 * What an operator reads when an upload fails: each text takes the host, then libcurl's detail.
 * libssh2 reports a connection cut mid-file and OpenSSH's plain failure status (its answer to a
 * full disk) alike, so CURLE_SSH names both.
 */
static const struct {
        CURLcode code;
        int error;
        const char *text;
} transfer_failures[] = {
        { CURLE_LOGIN_DENIED, -EACCES,
          "%s refused the login (%s): check the user in upload = and the key or password" },
        { CURLE_REMOTE_ACCESS_DENIED, -EACCES,
          "%s refused access (%s): check the folder in upload = and its permissions" },
        { CURLE_REMOTE_DISK_FULL, -ENOSPC, "the disk of %s is full (%s)" },
        { CURLE_READ_ERROR, -ENOENT, "cannot read the local file to upload to %s (%s)" },
        { CURLE_FILE_COULDNT_READ_FILE, -ENOENT, "cannot read the local file to upload to %s (%s)" },
        { CURLE_USE_SSL_FAILED, -EPROTO, "%s does not offer TLS (%s): refused to log in without it" },
        { CURLE_PEER_FAILED_VERIFICATION, -EPROTO,
          "the TLS certificate of %s was refused (%s): check upload_ca_file and the host name in upload =" },
        { CURLE_SSL_CONNECT_ERROR, -EPROTO,
          "the TLS certificate of %s was refused (%s): check upload_ca_file and the host name in upload =" },
        { CURLE_SSL_CACERT_BADFILE, -EPROTO,
          "the TLS certificate of %s was refused (%s): check upload_ca_file and the host name in upload =" },
        { CURLE_UPLOAD_FAILED, -EIO, "%s did not store the file (%s): is its disk full, or the folder not writable?" },
        { CURLE_QUOTE_ERROR, -EIO, "%s did not store the file (%s): is its disk full, or the folder not writable?" },
        { CURLE_SSH, -EIO,
          "the upload to %s broke off (%s): the connection dropped, or the host could not store the file (is its "
          "disk full, or the folder not writable?)" },
};

/* The errno and the operator's message for a finished upload. */
static int transfer_finish_response(prakat_http_call *call, CURLcode code, prakat_http_response *response) {
        TransferState *t = call->transfer;
        const char *detail = t->error_buffer[0] ? t->error_buffer : curl.easy_strerror(code);
        int error;

        response->body = "";
        response->body_size = 0;
        if (code == CURLE_OK)
                return 0;
        if (t->sftp && t->key_checked && t->key_match != CURLKHMATCH_OK) {
                error = -EKEYREJECTED;
                if (t->key_match == CURLKHMATCH_MISMATCH)
                        t->message = xasprintf(
                                "the SSH host key of %s is not the one recorded in %s: refused (the key CHANGED; "
                                "if the hosting company confirms a new key, remove the old one with "
                                "'ssh-keygen -R HOST -f %s' and add the new one, checking its fingerprint)",
                                t->host, t->known_hosts, t->known_hosts);
                else
                        t->message = xasprintf("the SSH host %s is not listed in %s: refused (add its key, after "
                                               "checking its fingerprint with the hosting company: "
                                               "ssh-keyscan [-p PORT] HOST >> %s)",
                                               t->host, t->known_hosts, t->known_hosts);
        } else {
                size_t i = 0, n = ELEMENTSOF(transfer_failures);
                while (i < n && transfer_failures[i].code != code)
                        i++;
                error = i < n ? transfer_failures[i].error : curl_code_to_errno(code, false);
                t->message = xasprintf(i < n ? transfer_failures[i].text : "uploading to %s failed: %s", t->host,
                                       detail);
        }
        response->error_text = t->message;
        return error;
}
