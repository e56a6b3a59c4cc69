/* fork() after first use (docs/threads.md): the runtime's threads do not exist in the child,
 * so the child must only exec (or _exit); the parent keeps working as before. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mailsrv.h"
#include "harness.h"

static mailsrv_ctx *make_ctx(void) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    CHECK_EQ_INT(mailsrv_config_new(&cfg), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_nameserver(cfg, testbed_env("MAILSRV_TEST_NS")), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_trust_anchor_file(cfg, testbed_env("MAILSRV_TEST_ANCHOR")), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_timeout_ms(cfg, 10000), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_ctx_new(cfg, &ctx, NULL, 0), MAILSRV_STATUS_OK);
    mailsrv_config_free(cfg);
    return ctx;
}

static int imaps_found(mailsrv_ctx *ctx) {
    mailsrv_discovery *d = NULL;
    if (mailsrv_srv_discover(ctx, "example.com", MAILSRV_SERVICE_IMAPS, 0, &d, NULL, 0) != MAILSRV_STATUS_OK)
        return 0;
    int ok = mailsrv_srv_set_state(mailsrv_discovery_find(d, MAILSRV_SERVICE_IMAPS)) == MAILSRV_SRV_STATE_FOUND;
    mailsrv_discovery_free(d);
    return ok;
}

/* Forks, and in the child execs `sh -c 'exit 7'`; returns the child's exit status. */
static int fork_and_exec(void) {
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls here: no mailsrv call, no malloc. */
        execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_child_can_exec_after_first_use(void) {
    mailsrv_ctx *ctx = make_ctx();
    CHECK(imaps_found(ctx)); /* the runtime and its worker threads exist now */
    CHECK_EQ_INT(fork_and_exec(), 7);
    CHECK(imaps_found(ctx)); /* the parent is unaffected */
    mailsrv_ctx_free(ctx);
}

struct once {
    pthread_mutex_t mu;
    int n;
    mailsrv_status status;
};

static void on_done(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_discovery *result,
                    const char *detail) {
    struct once *o = ud;
    (void)id;
    (void)detail;
    pthread_mutex_lock(&o->mu);
    o->n++;
    o->status = status;
    pthread_mutex_unlock(&o->mu);
    mailsrv_discovery_free(result);
}

static void test_fork_with_a_request_in_flight(void) {
    mailsrv_ctx *ctx = make_ctx();
    struct once o = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_PANIC};
    mailsrv_request_id id = 0;
    CHECK_EQ_INT(mailsrv_srv_discover_async(ctx, "example.com", 0, 0, on_done, &o, &id), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(fork_and_exec(), 7); /* forked while the runtime works on the request */
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&o.mu);
        int n = o.n;
        pthread_mutex_unlock(&o.mu);
        if (n) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    mailsrv_ctx_free(ctx);
    CHECK_EQ_INT(o.n, 1); /* exactly once, in the parent */
    CHECK_EQ_INT(o.status, MAILSRV_STATUS_OK);
}

static void test_child_that_only_exits(void) {
    mailsrv_ctx *ctx = make_ctx();
    CHECK(imaps_found(ctx));
    pid_t pid = fork();
    if (pid == 0) _exit(0); /* no atexit handlers, no library teardown in the child */
    int status = -1;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    /* It terminated normally (no crash, no hang). Not its exit code: under valgrind the child's
     * leak check sees the runtime's state as lost (its threads do not exist there) and exits 1. */
    CHECK(WIFEXITED(status));
    CHECK(imaps_found(ctx));
    mailsrv_ctx_free(ctx);
}

int main(void) {
    TEST(test_child_can_exec_after_first_use);
    TEST(test_fork_with_a_request_in_flight);
    TEST(test_child_that_only_exits);
    HARNESS_END();
}
