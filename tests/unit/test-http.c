/* SPDX-License-Identifier: MIT */
/* The curl ↔ sd-event glue against a small HTTP/1.1 server on 127.0.0.1, with the real event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "http.h"
#include "util.h"

static pid_t server_pid;
static int server_port;

/* Serves requests on one connection until the peer closes it; keep-alive like a real API. */
static void serve_connection(int fd) {
        char buf[65536];
        size_t len = 0;

        for (;;) {
                char *end;
                ssize_t n = read(fd, buf + len, sizeof buf - len - 1);
                if (n <= 0)
                        return;
                len += (size_t) n;
                buf[len] = 0;
                while ((end = strstr(buf, "\r\n\r\n"))) {
                        size_t header_len = (size_t) (end + 4 - buf), body_len = 0;
                        char *cl = strcasestr(buf, "Content-Length:");
                        if (cl && cl < end)
                                body_len = strtoul(cl + 15, NULL, 10);
                        if (len < header_len + body_len)
                                break;
                        char method[16] = "", path[256] = "";
                        sscanf(buf, "%15s %255s", method, path);
                        if (streq(path, "/slow"))
                                sleep(3);
                        if (streq(path, "/big")) {
                                size_t big = 2 * 1024 * 1024;
                                char *body = calloc(1, big);
                                memset(body, 'x', big);
                                dprintf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big);
                                if (write(fd, body, big) < 0) {
                                }
                                free(body);
                        } else if (streq(path, "/error")) {
                                const char *b = "{\"error\":{\"code\":2}}";
                                dprintf(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                        "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
                        } else {
                                dprintf(fd, "HTTP/1.1 200 OK\r\nX-Test: yes\r\nX-Method: %s\r\nContent-Length: %zu\r\n\r\n",
                                        method, body_len);
                                if (body_len && write(fd, buf + header_len, body_len) < 0) {
                                }
                        }
                        memmove(buf, buf + header_len + body_len, len - header_len - body_len);
                        len -= header_len + body_len;
                        buf[len] = 0;
                }
        }
}

static int setup(void **state) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 16), 0);
        getsockname(fd, (struct sockaddr *) &sa, &sl);
        server_port = ntohs(sa.sin_port);
        server_pid = fork();
        if (server_pid == 0) {
                signal(SIGCHLD, SIG_IGN);
                for (;;) {
                        int c = accept(fd, NULL, NULL);
                        if (c < 0)
                                continue;
                        if (fork() == 0) {
                                serve_connection(c);
                                _exit(0);
                        }
                        close(c);
                }
        }
        close(fd);
        return 0;
}

static int teardown(void **state) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        return 0;
}

typedef struct Result {
        bool done;
        int error;
        long status;
        char *body;
        char *x_test, *x_method;
        unsigned *pending;
        sd_event *event;
} Result;

static void on_done(void *userdata, const prakat_http_response *r) {
        Result *res = userdata;
        const char *h;

        res->done = true;
        res->error = r->error;
        res->status = r->status;
        res->body = xstrdup(r->body);
        h = r->header(r, "x-test");
        res->x_test = h ? xstrdup(h) : NULL;
        h = r->header(r, "X-Method");
        res->x_method = h ? xstrdup(h) : NULL;
        --*res->pending;
}

static void result_done(Result *r) {
        free(r->body);
        free(r->x_test);
        free(r->x_method);
}

/* Runs `n` requests concurrently in one loop and waits for all. */
static void run(HttpClient *c, sd_event *e, const prakat_http_request *reqs, Result *res, unsigned n) {
        unsigned pending = n;

        for (unsigned i = 0; i < n; i++) {
                res[i] = (Result) { .pending = &pending, .event = e };
                assert_int_equal(http_client_request(c, &reqs[i], on_done, &res[i], NULL), 0);
                assert_false(res[i].done); /* never called from inside http_request() */
        }
        while (pending > 0)
                assert_true(sd_event_run(e, UINT64_MAX) >= 0);
}

static char *url(const char *path) {
        return xasprintf("http://127.0.0.1:%d%s", server_port, path);
}

static void test_keepalive_and_post(void **state) {
        sd_event *e = NULL;
        HttpClient *c = NULL;
        char *u = url("/echo");
        prakat_http_header h[] = { { "Content-Type", "application/json" } };
        prakat_http_request req = { .method = "POST", .url = u, .headers = h, .n_headers = 1,
                                    .body = "{\"a\":\"ข่าว\"}", .body_size = strlen("{\"a\":\"ข่าว\"}") };
        Result r[1];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, &c), 0);
        for (int i = 0; i < 3; i++) {
                run(c, e, &req, r, 1);
                assert_int_equal(r[0].error, 0);
                assert_int_equal(r[0].status, 200);
                assert_string_equal(r[0].body, "{\"a\":\"ข่าว\"}");
                assert_string_equal(r[0].x_test, "yes");
                assert_string_equal(r[0].x_method, "POST");
                result_done(&r[0]);
        }
        /* Three requests, one after another: one connection, kept alive. */
        assert_int_equal(http_client_connections_opened(c), 1);
        http_client_free(c);
        sd_event_unref(e);
        free(u);
}

static void test_concurrent_and_errors(void **state) {
        sd_event *e = NULL;
        HttpClient *c = NULL;
        char *echo = url("/echo"), *big = url("/big"), *slow = url("/slow"), *err = url("/error");
        prakat_http_request reqs[] = {
                { .method = "GET", .url = echo },
                { .method = "DELETE", .url = echo },
                { .method = "GET", .url = big, .max_response = 1024 },
                { .method = "GET", .url = slow, .timeout_ms = 500 },
                { .method = "GET", .url = err },
                { .method = "GET", .url = "http://127.0.0.1:1/refused" },
        };
        Result r[ELEMENTSOF(reqs)];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, &c), 0);
        run(c, e, reqs, r, ELEMENTSOF(reqs));
        assert_int_equal(r[0].status, 200);
        assert_string_equal(r[1].x_method, "DELETE");
        assert_int_equal(r[2].error, -EFBIG);
        assert_int_equal(r[3].error, -ETIMEDOUT);
        assert_int_equal(r[4].error, 0);
        assert_int_equal(r[4].status, 500);
        assert_string_equal(r[4].body, "{\"error\":{\"code\":2}}");
        assert_int_equal(r[5].error, -ECONNREFUSED);
        assert_int_equal(r[5].status, 0);
        for (size_t i = 0; i < ELEMENTSOF(reqs); i++)
                result_done(&r[i]);
        assert_int_equal(http_client_active(c), 0);
        http_client_free(c);
        sd_event_unref(e);
        free(echo);
        free(big);
        free(slow);
        free(err);
}

static void test_cancel(void **state) {
        sd_event *e = NULL;
        HttpClient *c = NULL;
        char *slow = url("/slow");
        prakat_http_request req = { .method = "GET", .url = slow };
        prakat_http_call *call = NULL;
        Result r = {};

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, &c), 0);
        assert_int_equal(http_client_request(c, &req, on_done, &r, &call), 0);
        assert_int_equal(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0, 1);
        http_call_cancel(call);
        assert_int_equal(http_client_active(c), 0);
        assert_int_equal(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0, 1);
        assert_false(r.done);
        http_client_free(c);
        sd_event_unref(e);
        free(slow);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keepalive_and_post),
                cmocka_unit_test(test_concurrent_and_errors),
                cmocka_unit_test(test_cancel),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, setup, teardown);
}
