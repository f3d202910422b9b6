/*
 * Fault injection, driven by tests/faults.rs. Each mode runs in a process of its own because it
 * changes process-wide limits or the process's user:
 *
 *   save-loop PATH REF_A REF_B  writes two states, A to REF_A and PATH and B to REF_B, prints
 *                               "ready", then saves B and A to PATH in turn until it is killed.
 *   file-size DIR               a save under RLIMIT_FSIZE fails with LRE_ERR_IO, leaves the old
 *                               file intact and no temporary file; without the limit it works.
 *   address-space               a step whose GGT window must grow under RLIMIT_AS fails with
 *                               LRE_ERR_OUT_OF_MEMORY and changes nothing; with the limit raised
 *                               again (in the same process) the next steps work.
 *   read-only DIR               a save into a directory this process cannot write fails with
 *                               LRE_ERR_IO and leaves the old file; loading it still works.
 *                               Root ignores directory permissions, so as root the program
 *                               first becomes the user "nobody" (65534).
 */

#define _XOPEN_SOURCE 700

#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static lre_optimizer_t *create(const char *spec, size_t n)
{
    lre_optimizer_t *opt = NULL;
    if (lre_optimizer_new(spec, n, &opt) != LRE_OK) {
        fprintf(stderr, "cannot create \"%s\": %s\n", spec, lre_last_error_message());
        exit(2);
    }
    return opt;
}

/* `steps` steps on a separable quadratic; exits on failure (the setup must work). */
static void train(lre_optimizer_t *opt, double *x, size_t n, int steps)
{
    double *g = malloc(n * sizeof *g);
    size_t i;
    int t;
    for (t = 0; t < steps; t++) {
        for (i = 0; i < n; i++) {
            g[i] = (double)(i % 7 + 1) * (x[i] - 1.0) + 0.01 * (double)t;
        }
        if (lre_optimizer_step_f64(opt, x, g, NULL, NULL) != LRE_OK) {
            fprintf(stderr, "training step %d failed: %s\n", t, lre_last_error_message());
            exit(2);
        }
    }
    free(g);
}

/* A file's whole content (malloc'ed), or NULL. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long size;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size + 1);
        *len = data != NULL ? fread(data, 1, (size_t)size, f) : 0;
    }
    fclose(f);
    return data;
}

/* Whether `path` holds exactly `len` bytes equal to `blob`. */
static int file_equals(const char *path, const uint8_t *blob, size_t len)
{
    size_t got = 0;
    uint8_t *data = read_file(path, &got);
    int same = data != NULL && got == len && memcmp(data, blob, len) == 0;
    free(data);
    return same;
}

/* How many temporary files of a save (".NAME.tmp-PID-N") are in `dir`. */
static int temporaries_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        count += strstr(e->d_name, ".tmp-") != NULL;
    }
    closedir(d);
    return count;
}

static int save_loop(const char *path, const char *ref_a, const char *ref_b)
{
    const size_t n = 200000;
    const char *spec = "basis=ggt(history_size=8); dtype=f64";
    lre_optimizer_t *a = create(spec, n), *b = create(spec, n);
    double *x = calloc(n, sizeof *x);
    train(a, x, n, 3);
    train(b, x, n, 5);
    if (lre_optimizer_save_file(a, ref_a) != LRE_OK || lre_optimizer_save_file(b, ref_b) != LRE_OK ||
        lre_optimizer_save_file(a, path) != LRE_OK) {
        fprintf(stderr, "saving the references failed: %s\n", lre_last_error_message());
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        if (lre_optimizer_save_file(b, path) != LRE_OK || lre_optimizer_save_file(a, path) != LRE_OK) {
            fprintf(stderr, "a save failed: %s\n", lre_last_error_message());
            return 1;
        }
    }
}

static void file_size(const char *dir)
{
    const size_t n = 20000;
    lre_optimizer_t *opt = create("basis=ggt(history_size=8); dtype=f64", n);
    double *x = calloc(n, sizeof *x);
    char path[4096];
    uint8_t *old, *next;
    size_t old_len = 0, next_len = 0;
    struct rlimit limit, saved;
    snprintf(path, sizeof path, "%s/run.lre", dir);
    train(opt, x, n, 2);
    CHECK_STATUS(lre_optimizer_save_file(opt, path), LRE_OK, "first save");
    old = read_file(path, &old_len);
    train(opt, x, n, 6);
    next = snapshot(opt, &next_len);
    CHECK(old != NULL && next != NULL, "reading the states");

    /* Writes past the limit fail with EFBIG instead of killing the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0, "getrlimit");
    limit = saved;
    limit.rlim_cur = (rlim_t)(next_len / 2);
    CHECK(setrlimit(RLIMIT_FSIZE, &limit) == 0, "setrlimit(RLIMIT_FSIZE, %zu)", next_len / 2);
    CHECK_STATUS(lre_optimizer_save_file(opt, path), LRE_ERR_IO, "save over the file-size limit");
    CHECK_MESSAGE("run.lre", "the message names the file");
    CHECK(file_equals(path, old, old_len), "the failed save changed the old file");
    CHECK(temporaries_in(dir) == 0, "the failed save left %d temporary file(s)", temporaries_in(dir));

    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0, "restoring RLIMIT_FSIZE");
    CHECK_STATUS(lre_optimizer_save_file(opt, path), LRE_OK, "save without the limit");
    CHECK(file_equals(path, next, next_len), "the save did not write the new state");
    CHECK(temporaries_in(dir) == 0, "a save left %d temporary file(s)", temporaries_in(dir));
    free(old);
    free(next);
    free(x);
    lre_optimizer_free(opt);
}

/* Bytes of address space this process uses now (the first field of /proc/self/statm). */
static size_t address_space_in_use(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == NULL || fscanf(f, "%lu", &pages) != 1) {
        fprintf(stderr, "cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void address_space(void)
{
    /* The window doubles 4 -> 8 -> 16 columns; step 9 needs 8 more columns of 8 * n bytes. */
    const size_t n = 500000;
    const size_t column = n * sizeof(double), slack = 2 * column;
    lre_optimizer_t *opt = create("basis=ggt(history_size=16); dtype=f64; threads=1", n);
    double *x = calloc(n, sizeof *x), *x_before = malloc(n * sizeof *x), *g = malloc(n * sizeof *g);
    uint8_t *before, *after;
    size_t before_len = 0, after_len = 0, i;
    double steps = 0.0;
    struct rlimit limit, saved;
    train(opt, x, n, 8);
    before = snapshot(opt, &before_len);
    memcpy(x_before, x, n * sizeof *x);
    for (i = 0; i < n; i++) {
        g[i] = (double)(i % 7 + 1) * (x[i] - 1.0);
    }

    CHECK(getrlimit(RLIMIT_AS, &saved) == 0, "getrlimit");
    limit = saved;
    limit.rlim_cur = (rlim_t)(address_space_in_use() + slack);
    CHECK(setrlimit(RLIMIT_AS, &limit) == 0, "setrlimit(RLIMIT_AS)");
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_OUT_OF_MEMORY,
                 "the step that grows the window, under RLIMIT_AS");
    CHECK_MESSAGE("allocate", "the message says what could not be allocated");
    /* Raising the soft limit back up to the hard one is allowed to any process. */
    CHECK(setrlimit(RLIMIT_AS, &saved) == 0, "restoring RLIMIT_AS");

    after = snapshot(opt, &after_len);
    CHECK(memcmp(x, x_before, n * sizeof *x) == 0, "the failed step moved the parameters");
    CHECK(before != NULL && after != NULL && before_len == after_len && memcmp(before, after, before_len) == 0,
          "the failed step changed the state");
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_OK, "the same step with the memory back");
    train(opt, x, n, 2);
    CHECK_STATUS(lre_optimizer_get_param(opt, "step", &steps), LRE_OK, "step count");
    CHECK(steps == 11.0, "step count %g after 8 + 1 refused + 3 steps", steps);
    free(before);
    free(after);
    free(x);
    free(x_before);
    free(g);
    lre_optimizer_free(opt);
}

static void read_only(const char *dir)
{
    const size_t n = 1000;
    lre_optimizer_t *opt = create("basis=ggt(history_size=4); dtype=f64", n);
    double *x = calloc(n, sizeof *x);
    char path[4096], probe[4096];
    uint8_t *old, *loaded;
    size_t old_len = 0, loaded_len = 0;
    int fd;
    snprintf(path, sizeof path, "%s/run.lre", dir);
    snprintf(probe, sizeof probe, "%s/probe", dir);
    train(opt, x, n, 2);
    CHECK_STATUS(lre_optimizer_save_file(opt, path), LRE_OK, "first save");
    old = read_file(path, &old_len);
    train(opt, x, n, 2);

    CHECK(chmod(dir, 0555) == 0, "chmod %s: %s", dir, strerror(errno));
    if (geteuid() == 0) {
        CHECK(setgid(65534) == 0 && setuid(65534) == 0, "becoming nobody (root ignores permissions): %s",
              strerror(errno));
    }
    fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    CHECK(fd < 0, "%s is still writable for this process: the test cannot run here", dir);
    if (fd >= 0) {
        close(fd);
    }
    CHECK_STATUS(lre_optimizer_save_file(opt, path), LRE_ERR_IO, "save into a read-only directory");
    CHECK_MESSAGE(dir, "the message names the directory");
    CHECK(file_equals(path, old, old_len), "the failed save changed the old file");
    CHECK(temporaries_in(dir) == 0, "the failed save left %d temporary file(s)", temporaries_in(dir));
    CHECK_STATUS(lre_optimizer_load_file(opt, path), LRE_OK, "loading from the read-only directory");
    loaded = snapshot(opt, &loaded_len);
    CHECK(loaded != NULL && loaded_len == old_len && memcmp(loaded, old, old_len) == 0,
          "the load did not restore the saved state");
    free(old);
    free(loaded);
    free(x);
    lre_optimizer_free(opt);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    check_file = "fault_test.c";
    if (strcmp(mode, "save-loop") == 0 && argc == 5) {
        return save_loop(argv[2], argv[3], argv[4]);
    } else if (strcmp(mode, "file-size") == 0 && argc == 3) {
        file_size(argv[2]);
    } else if (strcmp(mode, "address-space") == 0 && argc == 2) {
        address_space();
    } else if (strcmp(mode, "read-only") == 0 && argc == 3) {
        read_only(argv[2]);
    } else {
        fprintf(stderr, "usage: fault_test save-loop PATH REF_A REF_B | file-size DIR | address-space | read-only DIR\n");
        return 2;
    }
    printf("C faults (%s): %d passed, %d failed\n", mode, passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
