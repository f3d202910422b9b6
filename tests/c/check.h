/*
 * A minimal check harness shared by the C test programs under tests/c/ (each includes it once).
 * CHECK records a result and prints what failed; CHECK_STATUS and CHECK_MESSAGE compare an
 * lre_status and the last error message. Each program ends with
 * "<name>: N passed, M failed" and exits non-zero if anything failed.
 */
#ifndef LRE_TEST_CHECK_H
#define LRE_TEST_CHECK_H

#include "lre.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The program's name in failure messages; each test program defines it. */
static const char *check_file;

static int passed = 0;
static int failed = 0;

/* Records one check; prints the formatted message when it failed. Returns `ok`. */
static inline int check(int ok, int line, const char *fmt, ...)
{
    va_list args;
    if (ok) {
        passed++;
        return 1;
    }
    failed++;
    fprintf(stderr, "FAILED (%s:%d): ", check_file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    return 0;
}

/* CHECK(cond, "format", args...): the format is part of the variadic arguments, so C99 always
 * sees at least one. */
#define CHECK(cond, ...) check((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

static inline const char *status_name(lre_status s)
{
    switch (s) {
    case LRE_OK: return "LRE_OK";
    case LRE_ERR_NULL_POINTER: return "LRE_ERR_NULL_POINTER";
    case LRE_ERR_INVALID_ARGUMENT: return "LRE_ERR_INVALID_ARGUMENT";
    case LRE_ERR_SPEC: return "LRE_ERR_SPEC";
    case LRE_ERR_UNSUPPORTED: return "LRE_ERR_UNSUPPORTED";
    case LRE_ERR_CALLBACK: return "LRE_ERR_CALLBACK";
    case LRE_ERR_NUMERICAL: return "LRE_ERR_NUMERICAL";
    case LRE_ERR_STATE: return "LRE_ERR_STATE";
    case LRE_ERR_IO: return "LRE_ERR_IO";
    case LRE_ERR_DEVICE: return "LRE_ERR_DEVICE";
    case LRE_ERR_BUFFER_TOO_SMALL: return "LRE_ERR_BUFFER_TOO_SMALL";
    case LRE_ERR_CALL_ORDER: return "LRE_ERR_CALL_ORDER";
    case LRE_ERR_OUT_OF_MEMORY: return "LRE_ERR_OUT_OF_MEMORY";
    case LRE_ERR_PANIC: return "LRE_ERR_PANIC";
    case LRE_ERR_BUSY: return "LRE_ERR_BUSY";
    default: return "(not an lre_status)";
    }
}

/* Checks that `got` is `want`; on a mismatch prints both and the last error message. */
#define CHECK_STATUS(got, want, what) check_status((got), (want), (what), __LINE__)

static inline int check_status(lre_status got, lre_status want, const char *what, int line)
{
    return check(got == want, line, "%s: got %s (%d), expected %s (%d); last error: \"%s\"", what,
                 status_name(got), (int)got, status_name(want), (int)want, lre_last_error_message());
}

/* Checks that the last error message contains `needle`. */
#define CHECK_MESSAGE(needle, what) check_message((needle), (what), __LINE__)

static inline int check_message(const char *needle, const char *what, int line)
{
    const char *msg = lre_last_error_message();
    return check(msg != NULL && strstr(msg, needle) != NULL, line,
                 "%s: last error message \"%s\" does not mention \"%s\"", what, msg ? msg : "(NULL)",
                 needle);
}

/* The optimizer's state as a malloc'ed blob (size query first); NULL on failure. */
static inline uint8_t *snapshot(const lre_optimizer_t *opt, size_t *len)
{
    uint8_t *blob;
    if (lre_optimizer_state_save(opt, NULL, 0, len) != LRE_OK) {
        return NULL;
    }
    blob = malloc(*len);
    if (blob != NULL && lre_optimizer_state_save(opt, blob, *len, len) != LRE_OK) {
        free(blob);
        return NULL;
    }
    return blob;
}

#endif
