/*
 * The all-reduce of sharded optimizers over MPI (lre_allreduce_fn; `user` points at the
 * communicator): a reduce to rank 0 followed by a broadcast, so every rank receives the same
 * bits (MPI_Allreduce may round differently on different ranks). Used by tests/c/mpi_shard_test.c
 * and benches/mpi_cost.c.
 */
#ifndef LRE_MPI_SUM_H
#define LRE_MPI_SUM_H

#include <mpi.h>
#include <stddef.h>

static int sum_then_broadcast(double *buf, size_t len, void *user)
{
    MPI_Comm comm = *(MPI_Comm *)user;
    int rank;
    MPI_Comm_rank(comm, &rank);
    int ok = rank == 0
        ? MPI_Reduce(MPI_IN_PLACE, buf, (int)len, MPI_DOUBLE, MPI_SUM, 0, comm)
        : MPI_Reduce(buf, NULL, (int)len, MPI_DOUBLE, MPI_SUM, 0, comm);
    if (ok != MPI_SUCCESS)
        return 1;
    return MPI_Bcast(buf, (int)len, MPI_DOUBLE, 0, comm) != MPI_SUCCESS;
}

#endif
