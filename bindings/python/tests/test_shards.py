"""Checkpoints across rank counts (lre.core.gather_state / split_state, `python -m lre.shards`).

The ranks are in-process shards: one thread per rank, each an optimizer on its rows, joined by
an all-reduce that sums the ranks' partial sums in rank order (every rank gets the same bits),
as real MPI ranks with a reduce-then-broadcast callback would (tests/sharded.rs checks those).
"""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import lre
from lre import LREError, Optimizer, Status
from lre.core import gather_state, split_state

N = 37
A = 1.0 + 0.25 * np.arange(N)  # f(x) = ½ Σ aᵢxᵢ², distinct curvatures
X0 = np.sin(np.arange(1, N + 1.0))
K = 15  # steps per stage
CASES = [
    ("dtype=f64", 1e-10),
    ("basis=eigen; chain=[adam]; dtype=f64", 1e-10),
    ("basis=randomized_eigen(eig_tol=1e-4, update_damping=1e-4); chain=[adam]; dtype=f64", 1e-10),
    # omega is kept within q's columns (kind "within"): split by rows like q.
    ("basis=nystrom(eig_tol=1e-4, update_damping=1e-4); chain=[adam]; dtype=f64", 1e-10),
    ("curvature=full_hutchinson_hessian(z=gaussian); basis=eigen; chain=[adam]; dtype=f64", 1e-10),
    ("", 1e-5),
]


def cuts(rows):
    """Row ranges of shards with `rows` rows each."""
    starts = np.concatenate([[0], np.cumsum(rows)])
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def all_reduces(ranks):
    slots = [None] * ranks
    barrier = threading.Barrier(ranks, timeout=60)  # a rank that died fails the others' steps

    def sum_for(rank):
        def allreduce(buf):
            slots[rank] = buf.copy()
            barrier.wait()
            total = np.zeros_like(buf)
            for part in slots:  # rank order: the same bits on every rank
                total += part
            barrier.wait()
            buf[:] = total
        return allreduce

    return [sum_for(r) for r in range(ranks)]


def steps(opt, x, rows, count):
    a = A[rows]
    for _ in range(count):
        opt.step(x, (a * x).astype(x.dtype), lambda v: (a * v).astype(v.dtype))


def run_shards(optimizers, rows, x):
    """Steps every shard K times on its rows of x (in place); returns the shards' states."""
    parts = cuts(rows)
    sums = all_reduces(len(parts))

    def rank(r):
        optimizers[r].set_allreduce(sums[r])
        mine = x[parts[r]].copy()
        steps(optimizers[r], mine, parts[r], K)
        x[parts[r]] = mine
        return optimizers[r].state()

    with ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(rank, range(len(parts))))


def assert_close(x, reference, tolerance, what):
    error = np.max(np.abs(x.astype(np.float64) - reference)) / np.max(np.abs(reference))
    assert error <= tolerance, f"{what}: relative error {error:e}"


@pytest.mark.parametrize("spec,tolerance", CASES)
def test_checkpoint_at_4_ranks_resumes_at_2_then_1_like_the_uninterrupted_run(spec, tolerance):
    reference = Optimizer(spec, N)
    dtype = reference.dtype
    x_ref = X0.astype(dtype)
    stages = []
    for _ in range(3):
        steps(reference, x_ref, slice(0, N), K)
        stages.append(x_ref.astype(np.float64))

    four = [5, 12, 20, 0]  # uneven, the last rank without rows
    x = X0.astype(dtype)
    optimizers = [Optimizer(f"{spec}; global_ndim={N}; shard_offset={s.start}", s.stop - s.start)
                  for s in cuts(four)]
    blobs = run_shards(optimizers, four, x)
    assert_close(x, stages[0], tolerance, f"{spec!r}, P = 4")
    whole = gather_state(blobs[::-1])  # any order
    assert Optimizer.from_state(whole).spec == reference.spec

    two = [30, 7]
    halves = split_state(whole, two)
    optimizers = [Optimizer.from_state(b) for b in halves]
    assert [(o.n, o.get_param("global_ndim"), o.get_param("shard_offset")) for o in optimizers] \
        == [(30, N, 0), (7, N, 30)]
    blobs = run_shards(optimizers, two, x)
    assert_close(x, stages[1], tolerance, f"{spec!r}, resumed at Q = 2")

    single = Optimizer.from_state(gather_state(blobs))
    assert single.spec == reference.spec
    steps(single, x, slice(0, N), K)
    assert_close(x, stages[2], tolerance, f"{spec!r}, resumed at 1")


def stepped_shards(rows):
    """States of the shards of a fresh f64 default run after K steps."""
    optimizers = [Optimizer(f"dtype=f64; global_ndim={N}; shard_offset={s.start}",
                            s.stop - s.start) for s in cuts(rows)]
    return run_shards(optimizers, rows, X0.copy())


def test_split_then_gather_gives_back_the_same_bytes():
    opt = Optimizer("dtype=f64", N)
    x = X0.copy()
    steps(opt, x, slice(0, N), K)
    blob = opt.state()
    for rows in ([N], [5, 0, 32], [1] * N, 4):
        shards = split_state(blob, rows)
        assert len(shards) == (rows if isinstance(rows, int) else len(rows))
        assert gather_state(shards) == blob, rows


def test_shards_that_do_not_fit_together_are_refused():
    rows = [10, 27]
    shards = stepped_shards(rows)
    with pytest.raises(LREError, match="a shard is missing") as e:
        gather_state(shards[:1])
    assert e.value.status == Status.LRE_ERR_STATE
    with pytest.raises(LREError, match="missing or two overlap"):
        gather_state([shards[0], shards[0], shards[1]])
    # Rank 1 a step further than rank 0: their k-sized state differs.
    later = [Optimizer.from_state(b) for b in shards]
    run_shards(later, rows, X0.copy())
    with pytest.raises(LREError, match=r"buffer \S+ \(k-sized state\) differs") as e:
        gather_state([shards[0], later[1].state()])
    assert e.value.status == Status.LRE_ERR_STATE
    other = Optimizer(f"dtype=f64; lr=0.5; global_ndim={N}; shard_offset=10", 27).state()
    with pytest.raises(LREError, match="not shards of one optimizer"):
        gather_state([shards[0], other])
    corrupt = bytearray(shards[1])
    corrupt[40] ^= 1
    with pytest.raises(LREError, match="checksum"):
        gather_state([shards[0], bytes(corrupt)])
    with pytest.raises(LREError, match="not an LRE state blob"):
        gather_state([b"not a state"])


def test_split_refuses_a_shard_and_bad_row_counts():
    shards = stepped_shards([10, 27])
    with pytest.raises(LREError, match="gather the shards"):
        split_state(shards[0], 2)
    blob = gather_state(shards)
    for rows in ([10, 10], [40, -3], 0, []):
        with pytest.raises(LREError) as e:
            split_state(blob, rows)
        assert e.value.status == Status.LRE_ERR_INVALID_ARGUMENT, rows


def test_states_as_large_as_the_batch_are_refused():
    blob = Optimizer("curvature=gauss_newton; chain=[natural_gradient]", N).state()
    with pytest.raises(LREError, match="as large as the batch") as e:
        split_state(blob, 2)
    assert e.value.status == Status.LRE_ERR_UNSUPPORTED


def test_the_command_line_splits_and_gathers_files(tmp_path):
    opt = Optimizer("dtype=f64", N)
    x = X0.copy()
    steps(opt, x, slice(0, N), K)
    whole = tmp_path / "run.lre"
    opt.save_file(whole)
    outputs = [str(tmp_path / f"run-{q}.lre") for q in range(3)]

    # The lre this test imported (source tree or installed), and the library it uses.
    env = dict(os.environ, PYTHONPATH=str(Path(lre.__file__).parents[1]))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lre.shards", *args],
                              capture_output=True, text=True, env=env)

    done = cli("split", str(whole), *outputs, "--rows", "20,0,17")
    assert done.returncode == 0, done.stderr
    assert [Optimizer.from_state(open(p, "rb").read()).n for p in outputs] == [20, 0, 17]
    done = cli("gather", str(tmp_path / "back.lre"), *outputs[::-1])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back.lre").read_bytes() == whole.read_bytes()
    refused = cli("gather", str(tmp_path / "none.lre"), outputs[0])
    assert refused.returncode == 1 and "a shard is missing" in refused.stderr
    assert not (tmp_path / "none.lre").exists()
