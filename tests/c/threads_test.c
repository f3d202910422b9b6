/*
 * Threads, built and run by tests/c_api.rs: 8 threads, each with its own handle, stepping at the
 * same time give results bit-identical to the same runs done one after another; and
 * lre_last_error_message() is per thread.
 */

#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define N 2000
#define STEPS 40

struct job {
    int id;
    float x[N];
    int status;             /* first failing status, or LRE_OK */
    int message_ok;         /* the thread saw its own error message */
};

static pthread_barrier_t errors_set;

/* Each job has its own spec (seed, window) and its own quadratic. */
static void train(struct job *job, int concurrent)
{
    lre_optimizer_t *opt = NULL;
    char spec[128], token[32];
    float g[N];
    int t, i;
    snprintf(spec, sizeof spec, "basis=ggt(history_size=%d); seed=%d; lr=0.05", 5 + job->id, job->id);
    job->status = lre_optimizer_new(spec, N, &opt);
    for (i = 0; i < N; i++) {
        job->x[i] = 1.0f;
    }
    for (t = 0; t < STEPS && job->status == LRE_OK; t++) {
        for (i = 0; i < N; i++) {
            g[i] = (float)((i % (job->id + 3)) + 1) * (job->x[i] - 0.25f * (float)job->id);
        }
        job->status = lre_optimizer_step_f32(opt, job->x, g, NULL, NULL);
    }
    lre_optimizer_free(opt);

    /* Every thread fails with its own token; after all have failed, each must still read its
     * own message. */
    snprintf(token, sizeof token, "bad_basis_%d", job->id);
    snprintf(spec, sizeof spec, "basis=%s", token);
    if (lre_optimizer_new(spec, N, &opt) != LRE_ERR_SPEC) {
        job->message_ok = 0;
        return;
    }
    if (concurrent) {
        pthread_barrier_wait(&errors_set);
    }
    job->message_ok = strstr(lre_last_error_message(), token) != NULL;
}

static void *run_concurrently(void *arg)
{
    train(arg, 1);
    return NULL;
}

int main(void)
{
    static struct job sequential[THREADS], concurrent[THREADS];
    pthread_t threads[THREADS];
    int i;
    check_file = "threads_test.c";
    for (i = 0; i < THREADS; i++) {
        sequential[i].id = concurrent[i].id = i;
        train(&sequential[i], 0);
    }
    pthread_barrier_init(&errors_set, NULL, THREADS);
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, run_concurrently, &concurrent[i]) == 0, "pthread_create %d", i);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&errors_set);
    for (i = 0; i < THREADS; i++) {
        CHECK(sequential[i].status == LRE_OK && concurrent[i].status == LRE_OK, "job %d: status %d / %d", i,
              sequential[i].status, concurrent[i].status);
        CHECK(memcmp(sequential[i].x, concurrent[i].x, sizeof sequential[i].x) == 0,
              "job %d: concurrent result differs from the sequential one", i);
        CHECK(i == 0 || memcmp(concurrent[i].x, concurrent[0].x, sizeof concurrent[0].x) != 0,
              "job %d: jobs should differ from each other", i);
        CHECK(concurrent[i].message_ok && sequential[i].message_ok, "job %d: last error message is not per thread", i);
    }
    printf("C threads: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
