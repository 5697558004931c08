/* SPDX-License-Identifier: MIT */
#include "tower-child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct TowerChild {
        sd_event *event;
        sd_event_source *child_source, *timeout_source, *kill_source;
        pid_t pid;
        bool timed_out, stopped;
        usec_t max_time;
        tower_child_done_fn done;
        void *userdata;
};

void tower_strv_free(char **v) {
        if (!v)
                return;
        for (char **s = v; *s; s++)
                free(*s);
        free(v);
}

static char *text_make_safe(const char *text) {
        StrBuf b = {};

        if (text[0] == '-')
                strbuf_append(&b, " ");
        for (const char *s = text; *s; s++) {
                unsigned char c = (unsigned char) *s;
                char ch = (c < ' ' && c != '\n') || c == 0x7f ? ' ' : (char) c;
                strbuf_appendn(&b, &ch, 1);
        }
        return strbuf_steal(&b);
}

/* Replaces every {file} and {text} in one word. */
static char *word_expand(const char *word, const char *file, const char *text) {
        StrBuf b = {};

        while (*word) {
                if (strncmp(word, "{file}", 6) == 0) {
                        strbuf_append(&b, file ? file : "");
                        word += 6;
                } else if (strncmp(word, "{text}", 6) == 0) {
                        strbuf_append(&b, text ? text : "");
                        word += 6;
                } else
                        strbuf_appendn(&b, word++, 1);
        }
        return strbuf_steal(&b);
}

int tower_command_build(const char *template, const char *file, const char *text, char ***ret_argv) {
        _cleanup_free_ char *safe_text = text ? text_make_safe(text) : NULL;
        char **argv = NULL;
        size_t n = 0;
        const char *s = template;

        for (;;) {
                size_t len;

                s += strspn(s, " \t");
                if (!*s)
                        break;
                len = strcspn(s, " \t");
                _cleanup_free_ char *word = xstrndup(s, len);
                argv = xrealloc(argv, (n + 2) * sizeof(char *));
                argv[n++] = word_expand(word, file, safe_text);
                argv[n] = NULL;
                s += len;
        }
        if (n == 0) {
                free(argv);
                return -EINVAL;
        }
        *ret_argv = argv;
        return 0;
}

char *tower_command_describe(char *const *argv) {
        StrBuf b = {};

        for (size_t i = 0; argv[i]; i++) {
                size_t len = strlen(argv[i]), cut = len > 80 ? 80 : len;

                /* Never cut a UTF-8 sequence (Thai letters are three bytes). */
                while (cut < len && cut > 0 && ((unsigned char) argv[i][cut] & 0xC0) == 0x80)
                        cut--;
                if (i)
                        strbuf_append(&b, " ");
                for (size_t k = 0; k < cut; k++) {
                        char ch = (unsigned char) argv[i][k] < ' ' ? ' ' : argv[i][k];
                        strbuf_appendn(&b, &ch, 1);
                }
                if (len > 80)
                        strbuf_append(&b, "…");
        }
        return strbuf_steal(&b);
}

/* The program's path as execv() wants it, searched in PATH like a shell would. */
static int find_program(const char *name, char **ret) {
        const char *path = getenv("PATH");

        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret = xstrdup(name);
                return 0;
        }
        if (isempty(path))
                path = "/usr/local/bin:/usr/bin:/bin";
        while (*path) {
                size_t len = strcspn(path, ":");
                _cleanup_free_ char *dir = xstrndup(path, len);
                _cleanup_free_ char *candidate = path_join(isempty(dir) ? "." : dir, name);
                struct stat st;

                if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
                path += len + (path[len] == ':');
        }
        return -ENOENT;
}

static void child_finish(TowerChild *c, int result, const char *description) {
        tower_child_done_fn done = c->done;

        c->done = NULL;
        c->child_source = sd_event_source_disable_unref(c->child_source);
        c->timeout_source = sd_event_source_disable_unref(c->timeout_source);
        c->kill_source = sd_event_source_disable_unref(c->kill_source);
        c->pid = 0;
        if (done)
                done(c->userdata, result, description);
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        TowerChild *c = userdata;
        char description[160];
        int result;

        if (c->timed_out) {
                snprintf(description, sizeof description, "still playing after max_play_time (%llus), killed",
                         (unsigned long long) (c->max_time / USEC_PER_SEC));
                result = -ETIME;
        } else if (c->stopped) {
                snprintf(description, sizeof description, "stopped");
                result = -ECANCELED;
        } else if (si->si_code == CLD_EXITED) {
                snprintf(description, sizeof description, "exited with status %d", si->si_status);
                result = si->si_status == 0 ? 0 : -EIO;
        } else {
                snprintf(description, sizeof description, "killed by signal %s",
                         sigabbrev_np(si->si_status) ? sigabbrev_np(si->si_status) : "?");
                result = -EIO;
        }
        child_finish(c, result, description);
        return 0;
}

static int on_kill(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerChild *c = userdata;

        if (c->pid > 0)
                (void) kill(-c->pid, SIGKILL);
        return 0;
}

static void child_terminate(TowerChild *c) {
        if (c->pid <= 0 || c->kill_source)
                return;
        (void) kill(-c->pid, SIGTERM);
        (void) kill(-c->pid, SIGCONT);
        (void) sd_event_add_time_relative(c->event, &c->kill_source, CLOCK_MONOTONIC, TOWER_CHILD_KILL_GRACE, 0,
                                          on_kill, c);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        TowerChild *c = userdata;

        c->timed_out = true;
        child_terminate(c);
        return 0;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
_Noreturn static void child_exec(const char *program, char *const *argv) {
        sigset_t none;
        int null;

        (void) setpgid(0, 0);
        for (int sig = 1; sig < _NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
                (void) dup2(null, STDIN_FILENO);
        (void) dup2(STDERR_FILENO, STDOUT_FILENO);
        (void) close_range(3, ~0U, 0);
        execv(program, argv);
        _exit(127);
}

int tower_child_spawn(sd_event *event, char *const *argv, usec_t max_time, tower_child_done_fn done, void *userdata,
                      TowerChild **ret) {
        _cleanup_free_ char *program = NULL;
        TowerChild *c;
        pid_t pid;
        int r;

        r = find_program(argv[0], &program);
        if (r < 0)
                return -ENOENT;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(program, argv);
        (void) setpgid(pid, pid); /* also here, so that a kill right away reaches the group */
        c = xcalloc(1, sizeof(TowerChild));
        c->event = sd_event_ref(event);
        c->pid = pid;
        c->max_time = max_time;
        c->done = done;
        c->userdata = userdata;
        r = sd_event_add_child(event, &c->child_source, pid, WEXITED, on_child_exit, c);
        if (r >= 0 && max_time > 0)
                r = sd_event_add_time_relative(event, &c->timeout_source, CLOCK_MONOTONIC, max_time, 0, on_timeout,
                                               c);
        if (r < 0) {
                c->done = NULL;
                tower_child_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void tower_child_stop(TowerChild *c) {
        if (!c || c->pid <= 0)
                return;
        c->stopped = true;
        child_terminate(c);
}

TowerChild *tower_child_free(TowerChild *c) {
        if (!c)
                return NULL;
        if (c->pid > 0) {
                (void) kill(-c->pid, SIGKILL);
                /* Reap it here: the event loop will not see it any more. */
                c->child_source = sd_event_source_disable_unref(c->child_source);
                (void) waitpid(c->pid, NULL, 0);
        }
        c->done = NULL;
        child_finish(c, 0, NULL);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

pid_t tower_child_pid(const TowerChild *c) {
        return c ? c->pid : 0;
}
