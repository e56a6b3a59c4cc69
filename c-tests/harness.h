/* A tiny test harness: CHECK counts, TEST runs, the summary line is the one CI reads. */
#ifndef MAILSRV_HARNESS_H
#define MAILSRV_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_passed, harness_failed, harness_current_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            harness_current_failed = 1;                                              \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                           \
    do {                                                                             \
        long long va_ = (long long)(a), vb_ = (long long)(b);                        \
        if (va_ != vb_) {                                                            \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,    \
                    __LINE__, #a, #b, va_, vb_);                                     \
            harness_current_failed = 1;                                              \
        }                                                                            \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                           \
    do {                                                                             \
        const char *sa_ = (a), *sb_ = (b);                                           \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                 \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
                    __LINE__, #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");   \
            harness_current_failed = 1;                                              \
        }                                                                            \
    } while (0)

#define TEST(fn)                                                                     \
    do {                                                                             \
        harness_current_failed = 0;                                                  \
        fn();                                                                        \
        if (harness_current_failed) {                                                \
            harness_failed++;                                                        \
            printf("FAIL %s\n", #fn);                                                \
        } else {                                                                     \
            harness_passed++;                                                        \
            printf("ok   %s\n", #fn);                                                \
        }                                                                            \
        fflush(stdout);                                                              \
    } while (0)

#define HARNESS_END()                                                                \
    do {                                                                             \
        printf("%d passed, %d failed\n", harness_passed, harness_failed);            \
        return harness_failed ? 1 : 0;                                               \
    } while (0)

/* A testbed variable; the tests run under testbed/run.sh and fail without it. */
static const char *testbed_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set: run through `make c-tests` (it starts the testbed)\n", name);
        exit(2);
    }
    return v;
}

#endif
