/* dlclose after use must not unmap libmailsrv: its runtime threads keep running library code
 * (docs/threads.md). The library is linked with -z nodelete, so dlclose leaves it loaded and a
 * later dlopen gets the same, working copy. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>

#include "mailsrv.h"
#include "harness.h"

typedef mailsrv_status (*config_new_fn)(mailsrv_config **);
typedef mailsrv_status (*config_set_ns_fn)(mailsrv_config *, const char *);
typedef mailsrv_status (*ctx_new_fn)(const mailsrv_config *, mailsrv_ctx **, char *, size_t);
typedef void (*ctx_free_fn)(mailsrv_ctx *);
typedef void (*config_free_fn)(mailsrv_config *);
typedef const char *(*version_fn)(void);

static void *open_lib(void) {
    const char *path = getenv("MAILSRV_LIBRARY");
    return dlopen(path ? path : "libmailsrv.so.0.1", RTLD_NOW | RTLD_LOCAL);
}

static void test_dlclose_keeps_the_library_loaded(void) {
    void *h = open_lib();
    CHECK(h != NULL);
    if (!h) {
        fprintf(stderr, "  dlopen: %s\n", dlerror());
        return;
    }
    /* POSIX's way to turn dlsym's object pointer into a function pointer (ISO C has none). */
#define LOAD(var, type, name) \
    type var;                 \
    *(void **)(&var) = dlsym(h, name)
    LOAD(config_new, config_new_fn, "mailsrv_config_new");
    LOAD(set_ns, config_set_ns_fn, "mailsrv_config_set_nameserver");
    LOAD(config_free, config_free_fn, "mailsrv_config_free");
    LOAD(ctx_new, ctx_new_fn, "mailsrv_ctx_new");
    LOAD(ctx_free, ctx_free_fn, "mailsrv_ctx_free");
    LOAD(version, version_fn, "mailsrv_version");
    CHECK(config_new && set_ns && config_free && ctx_new && ctx_free && version);
    if (!(config_new && set_ns && config_free && ctx_new && ctx_free && version)) return;
    /* First use starts the runtime and its threads. */
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    config_new(&cfg);
    set_ns(cfg, testbed_env("MAILSRV_TEST_NS"));
    CHECK_EQ_INT(ctx_new(cfg, &ctx, NULL, 0), MAILSRV_STATUS_OK);
    config_free(cfg);
    ctx_free(ctx);
    CHECK_EQ_INT(dlclose(h), 0);
    /* Still mapped: RTLD_NOLOAD finds it, and its functions still work. */
    void *again = dlopen(getenv("MAILSRV_LIBRARY") ? getenv("MAILSRV_LIBRARY") : "libmailsrv.so.0.1",
                         RTLD_NOW | RTLD_NOLOAD);
    CHECK(again != NULL);
    CHECK(strncmp(version(), "mailsrv ", 8) == 0);
    if (again) dlclose(again);
}

int main(void) {
    TEST(test_dlclose_keeps_the_library_loaded);
    HARNESS_END();
}
