/**
 * @file fuzz.h
 * @brief What the libFuzzer harnesses of src/ share: APR set up once, a
 *        pool cleared after every input, and a check that turns a broken
 *        property into a crash libFuzzer keeps.
 *
 * A harness defines fuzz_one(); this header defines the two entry points
 * libFuzzer calls. Build: fuzz/run.sh (clang -fsanitize=fuzzer,address,
 * undefined).
 */
#ifndef SSE_FUZZ_H
#define SSE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_pools.h>

/** Check one property of one input; report and abort when it fails, so
 *  that libFuzzer saves the input as a crash file. */
#define FUZZ_CHECK(cond, ...)                                               \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__,      \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            abort();                                                        \
        }                                                                   \
    } while (0)

/** Run the properties of one input, with @a p cleared afterwards. */
static void fuzz_one(apr_pool_t *p, const uint8_t *data, size_t size);

/** Set up anything the harness keeps across inputs (may do nothing). */
static void fuzz_init(apr_pool_t *global);

static apr_pool_t *fuzz_pool;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_pool_t *global;

    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS
        || apr_pool_create(&global, NULL) != APR_SUCCESS
        || apr_pool_create(&fuzz_pool, global) != APR_SUCCESS) {
        fprintf(stderr, "fuzz: cannot set up APR\n");
        exit(2);
    }
    fuzz_init(global);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one(fuzz_pool, data, size);
    apr_pool_clear(fuzz_pool);
    return 0;
}

#endif /* SSE_FUZZ_H */
