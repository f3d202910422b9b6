/*
 * What sharding costs (run by benches/sharded.rs under mpirun -np P):
 *
 *     mpi_cost single  N WARMUP TIMED SPEC   # -np 1: the unsharded optimizer on all N rows
 *     mpi_cost sharded N WARMUP TIMED SPEC   # -np P: rank r on its (even) share of the rows
 *
 * The objective is the quadratic ½·Σ aᵢxᵢ² in f32. After WARMUP steps (the window fills), TIMED
 * steps are timed one by one; a sharded step's time is the slowest rank's. Rank 0 prints one
 * line: "<mode> <P> <all-reduce calls per step> <doubles per step> <median seconds per step>".
 */
#include "lre.h"
#include "mpi_sum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double curvature_at(size_t i) { return 1.0 + (double)(i % 1000) / 100.0; }

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what, lre_status s)
{
    fprintf(stderr, "mpi_cost: %s: %s\n", what, lre_last_error_message());
    MPI_Abort(MPI_COMM_WORLD, (int)s);
    return 1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (argc != 6) {
        fprintf(stderr, "usage: mpi_cost single|sharded N WARMUP TIMED SPEC\n");
        MPI_Abort(comm, 2);
    }
    int sharded = strcmp(argv[1], "sharded") == 0;
    size_t global = strtoull(argv[2], NULL, 10);
    int warmup = atoi(argv[3]), timed = atoi(argv[4]);
    size_t offset = sharded ? global * (size_t)rank / (size_t)size : 0;
    size_t n = sharded ? global * (size_t)(rank + 1) / (size_t)size - offset : global;

    char spec[1024];
    if (sharded)
        snprintf(spec, sizeof spec, "%s; global_ndim=%zu; shard_offset=%zu", argv[5], global,
                 offset);
    else
        snprintf(spec, sizeof spec, "%s", argv[5]);
    lre_optimizer_t *opt = NULL;
    lre_status s = lre_optimizer_new(spec, n, &opt);
    if (s != LRE_OK)
        return fail("lre_optimizer_new", s);
    if (sharded && (s = lre_optimizer_set_allreduce(opt, sum_then_broadcast, &comm)) != LRE_OK)
        return fail("lre_optimizer_set_allreduce", s);

    float *x = malloc((n + 1) * sizeof *x), *g = malloc((n + 1) * sizeof *g);
    double *seconds = malloc((size_t)timed * sizeof *seconds);
    double *slowest = malloc((size_t)timed * sizeof *slowest);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((offset + i) % 7) / 7.0f - 0.4f;
    double traffic[2][2] = {{0, 0}, {0, 0}};
    for (int t = 0; t < warmup + timed; t++) {
        if (t == warmup) {
            lre_optimizer_get_param(opt, "allreduce_calls", &traffic[0][0]);
            lre_optimizer_get_param(opt, "allreduce_values", &traffic[0][1]);
        }
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(curvature_at(offset + i) * (double)x[i]);
        double start = MPI_Wtime();
        if ((s = lre_optimizer_step_f32(opt, x, g, NULL, NULL)) != LRE_OK)
            return fail("lre_optimizer_step_f32", s);
        if (t >= warmup)
            seconds[t - warmup] = MPI_Wtime() - start;
    }
    lre_optimizer_get_param(opt, "allreduce_calls", &traffic[1][0]);
    lre_optimizer_get_param(opt, "allreduce_values", &traffic[1][1]);
    MPI_Reduce(seconds, slowest, timed, MPI_DOUBLE, MPI_MAX, 0, comm);
    if (rank == 0) {
        qsort(slowest, (size_t)timed, sizeof *slowest, compare);
        printf("%s %d %g %g %g\n", argv[1], size, (traffic[1][0] - traffic[0][0]) / timed,
               (traffic[1][1] - traffic[0][1]) / timed, slowest[timed / 2]);
    }
    lre_optimizer_free(opt);
    free(x);
    free(g);
    free(seconds);
    free(slowest);
    MPI_Finalize();
    return 0;
}
