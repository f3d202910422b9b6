//! Sharded mode in one process: P threads, each an optimizer on its rows of the parameters,
//! joined by an all-reduce that sums the ranks' partial sums in rank order and hands every rank
//! the same bits. Trajectories equal the unsharded optimizer's, the k-sized state is identical
//! on every rank, and the spec keys, the missing or failing all-reduce are handled as documented.
//! `mpi_ranks_equal_the_single_process_run` does the same through real MPI ranks from C
//! (tests/c/mpi_shard_test.c; OpenMPI is installed by the test setup).

#[path = "common/c_program.rs"]
mod c_program;
mod common;
#[path = "common/mpi.rs"]
mod mpi;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use lre::backend::Scalar;
use lre::state::Decoder;
use lre::state::layout::Extent;
use lre::{CpuOptimizer, Status};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};

/// The configurations the sharded runs are checked on: the default, GGT and eigen bases with
/// Adam, the random and the two sketch bases, and an HVP curvature. The sketch bases keep only
/// eigenvalues above 1e-4 of the largest (eigen's default): with their own default 1e-12 the
/// unsharded run itself moves by 1e-2 when its start moves by one ulp (README, "Sharded
/// training"), so no other summation order can follow it.
const SPECS: &[&str] = &[
    "",
    "basis=ggt; chain=[adam]",
    "basis=eigen; chain=[adam]",
    "basis=random; chain=[adam]",
    "basis=randomized_eigen(eig_tol=1e-4, update_damping=1e-4); chain=[adam]",
    "basis=nystrom(eig_tol=1e-4, update_damping=1e-4); chain=[adam]",
    "curvature=full_hutchinson_hessian(z=gaussian); basis=eigen; chain=[adam]",
];
const N: usize = 37;
const STEPS: usize = 200;

/// Curvature of the quadratic ½·Σ aᵢxᵢ² at global row i, and the starting point.
fn a(i: usize) -> f64 {
    // Distinct: a repeated eigenvalue would leave the basis within its eigenspace to rounding.
    1.0 + 0.25 * i as f64
}
fn x0(i: usize) -> f64 {
    ((i + 1) as f64).sin()
}

/// Runs `spec` for STEPS steps on rows `rows` (None: unsharded) and returns every step's
/// parameters and the final state.
fn run<T: Scalar>(
    spec: &str,
    rows: Option<(std::ops::Range<usize>, lre::backend::AllReduce)>,
) -> (Vec<Vec<T>>, Vec<u8>) {
    let dtype = if T::DTYPE == lre::Dtype::F64 {
        "f64"
    } else {
        "f32"
    };
    let (range, spec) = match &rows {
        Some((r, _)) => (
            r.clone(),
            format!(
                "{spec}; dtype={dtype}; global_ndim={N}; shard_offset={}",
                r.start
            ),
        ),
        None => (0..N, format!("{spec}; dtype={dtype}")),
    };
    let mut opt = CpuOptimizer::<T>::from_spec(&spec, range.len()).unwrap();
    if let Some((_, sum)) = rows {
        opt.set_allreduce(sum).unwrap();
    }
    let mut x: Vec<T> = range.clone().map(|i| T::from_f64(x0(i))).collect();
    let mut trajectory = Vec::new();
    for _ in 0..STEPS {
        let g: Vec<T> = range
            .clone()
            .zip(&x)
            .map(|(i, v)| T::from_f64(a(i) * v.to_f64()))
            .collect();
        let start = range.start;
        opt.step_with_hvp(&mut x, &g, |v, hv| {
            for (j, (h, vj)) in hv.iter_mut().zip(v).enumerate() {
                *h = T::from_f64(a(start + j) * vj.to_f64());
            }
            true
        })
        .unwrap();
        trajectory.push(x.clone());
    }
    (trajectory, opt.state())
}

/// An in-process all-reduce for `ranks` threads: every rank deposits its buffer, then every
/// rank sums the deposits in rank order (so all receive the same bits).
fn all_reduce(ranks: usize) -> Vec<lre::backend::AllReduce> {
    let slots = Arc::new(Mutex::new(vec![Vec::<f64>::new(); ranks]));
    let barrier = Arc::new(Barrier::new(ranks));
    (0..ranks)
        .map(|rank| {
            let (slots, barrier) = (slots.clone(), barrier.clone());
            Box::new(move |buf: &mut [f64]| {
                slots.lock().unwrap()[rank] = buf.to_vec();
                barrier.wait();
                {
                    let all = slots.lock().unwrap();
                    buf.fill(0.0);
                    for part in all.iter() {
                        assert_eq!(part.len(), buf.len(), "ranks disagree on a length");
                        for (b, p) in buf.iter_mut().zip(part) {
                            *b += p;
                        }
                    }
                }
                barrier.wait();
                true
            }) as lre::backend::AllReduce
        })
        .collect()
}

/// Runs one rank's work; a rank that panics aborts the test process, since the other ranks
/// would wait for it in their all-reduce forever.
fn rank_or_abort<R>(work: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("a rank panicked (message above); aborting instead of hanging");
            std::process::abort()
        }
    }
}

/// The host buffers (k-sized state) of a blob, by name.
fn small_buffers(blob: &[u8]) -> Vec<(String, Vec<f64>)> {
    let opt = CpuOptimizer::<f64>::from_state(blob)
        .map(|o| o.state_layout().clone())
        .or_else(|_| CpuOptimizer::<f32>::from_state(blob).map(|o| o.state_layout().clone()))
        .unwrap();
    let mut dec = Decoder::new(blob).unwrap();
    let names: Vec<(String, lre::elem::ElemType)> = dec
        .buffers()
        .map(|(name, elem, _)| (name.to_string(), elem))
        .collect();
    names
        .into_iter()
        .filter(|(name, _)| {
            matches!(
                opt.find(name).map(|d| &d.extent),
                Some(Extent::Host(..)) | None
            )
        })
        .map(|(name, elem)| {
            let data = match elem {
                lre::elem::ElemType::U64 => dec
                    .get::<u64>(&name)
                    .unwrap()
                    .0
                    .iter()
                    .map(|&v| f64::from_bits(v))
                    .collect(),
                _ => dec.get::<f64>(&name).unwrap().0,
            };
            (name, data)
        })
        .collect()
}

/// The ranks' k-sized state (every host buffer of their blobs) is bit-identical.
fn assert_same_small_state(blobs: &[Vec<u8>], what: &str) {
    let first = small_buffers(&blobs[0]);
    assert!(!first.is_empty());
    for (rank, blob) in blobs.iter().enumerate().skip(1) {
        let mine = small_buffers(blob);
        let names = |b: &[(String, Vec<f64>)]| b.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&first), names(&mine), "{what}, rank {rank}");
        for ((name, a), (_, b)) in first.iter().zip(&mine) {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(a),
                bits(b),
                "{what}: buffer {name} differs on rank {rank}"
            );
        }
    }
}

/// Shards of N rows for P ranks: uneven, and with P ≥ 2 the last rank holds no rows.
fn shards(ranks: usize) -> Vec<std::ops::Range<usize>> {
    let holders = if ranks == 1 { 1 } else { ranks - 1 };
    let mut cuts: Vec<usize> = (0..=holders)
        .map(|r| r * r * N / (holders * holders))
        .collect();
    cuts.resize(ranks + 1, N);
    (0..ranks).map(|r| cuts[r]..cuts[r + 1]).collect()
}

fn check<T: Scalar>(tolerance: f64) {
    for spec in SPECS {
        let (reference, _) = run::<T>(spec, None);
        for ranks in 1..=4 {
            let parts = shards(ranks);
            let runs: Vec<(Vec<Vec<T>>, Vec<u8>)> = std::thread::scope(|s| {
                let handles: Vec<_> = parts
                    .iter()
                    .cloned()
                    .zip(all_reduce(ranks))
                    .map(|(rows, sum)| {
                        s.spawn(move || rank_or_abort(|| run::<T>(spec, Some((rows, sum)))))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (step, whole) in reference.iter().enumerate() {
                let scale = whole.iter().map(|v| v.to_f64().abs()).fold(1e-30, f64::max);
                for ((trajectory, _), rows) in runs.iter().zip(&parts) {
                    for (i, v) in rows.clone().zip(&trajectory[step]) {
                        let error = (v.to_f64() - whole[i].to_f64()).abs() / scale;
                        assert!(
                            error <= tolerance,
                            "{spec:?}, P = {ranks}, step {step}, row {i}: relative error {error:e}"
                        );
                    }
                }
            }
            let blobs: Vec<Vec<u8>> = runs.into_iter().map(|(_, blob)| blob).collect();
            assert_same_small_state(&blobs, &format!("{spec:?}, P = {ranks}"));
        }
    }
}

#[test]
fn sharded_runs_equal_the_unsharded_run_in_f64() {
    check::<f64>(1e-10);
}

#[test]
fn sharded_runs_equal_the_unsharded_run_in_f32() {
    check::<f32>(1e-5);
}

#[test]
fn the_spec_keys_are_validated_and_printed_only_when_sharded() {
    let plain = CpuOptimizer::<f32>::from_spec("", 5).unwrap();
    assert!(!plain.config().to_string().contains("global_ndim"));
    let sharded = CpuOptimizer::<f32>::from_spec("global_ndim=9; shard_offset=4", 5).unwrap();
    let spec = sharded.config().to_string();
    assert!(spec.ends_with("; global_ndim=9; shard_offset=4"), "{spec}");
    let zero_rows = CpuOptimizer::<f32>::from_spec("global_ndim=9; shard_offset=9", 0).unwrap();
    assert_eq!((zero_rows.ndim(), zero_rows.global_ndim()), (0, 9));
    for (spec, n) in [("global_ndim=9; shard_offset=5", 5), ("shard_offset=1", 5)] {
        let e = CpuOptimizer::<f32>::from_spec(spec, n).err().unwrap();
        assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT, "{spec}");
        assert!(e.message.contains("exceeds global_ndim"), "{}", e.message);
    }
    let e = CpuOptimizer::<f32>::from_spec("basis=full_matrix; global_ndim=9", 5)
        .err()
        .unwrap();
    assert_eq!(e.status, Status::LRE_ERR_UNSUPPORTED);
    let mut plain = plain;
    assert!(plain.set_allreduce(Box::new(|_| true)).is_err());
}

#[test]
fn a_sharded_step_without_an_all_reduce_is_refused() {
    let mut opt = CpuOptimizer::<f64>::from_spec("dtype=f64; global_ndim=8", 4).unwrap();
    let before = opt.state();
    let mut x = vec![1.0; 4];
    let e = opt.step(&mut x, &[1.0; 4]).unwrap_err();
    assert_eq!(e.status, Status::LRE_ERR_CALL_ORDER);
    assert!(
        e.message.contains("lre_optimizer_set_allreduce"),
        "{}",
        e.message
    );
    assert_eq!((x, opt.state()), (vec![1.0; 4], before));
}

/// A callback that fails at its k-th call, for every k a step makes: the step returns
/// LRE_ERR_CALLBACK with the parameters and the state byte-identical, and the next step (with a
/// working callback) is the step that would have been taken.
#[test]
fn a_failing_all_reduce_leaves_params_and_state_unchanged() {
    for spec in SPECS {
        let spec = format!("{spec}; dtype=f64; global_ndim={N}");
        let g = |x: &[f64]| -> Vec<f64> { x.iter().enumerate().map(|(i, v)| a(i) * v).collect() };
        let hvp = |v: &[f64], hv: &mut [f64]| {
            for (i, (h, vi)) in hv.iter_mut().zip(v).enumerate() {
                *h = a(i) * vi;
            }
            true
        };
        let mut opt = CpuOptimizer::<f64>::from_spec(&spec, N).unwrap();
        opt.set_allreduce(Box::new(|_| true)).unwrap();
        let mut x: Vec<f64> = (0..N).map(x0).collect();
        for _ in 0..5 {
            let grad = g(&x);
            opt.step_with_hvp(&mut x, &grad, hvp).unwrap();
        }
        let calls_per_step = {
            let mut probe = CpuOptimizer::<f64>::from_state(&opt.state()).unwrap();
            probe.set_allreduce(Box::new(|_| true)).unwrap();
            probe.step_with_hvp(&mut x.clone(), &g(&x), hvp).unwrap();
            probe.allreduce_traffic().0
        };
        assert!(calls_per_step >= 2, "{spec}: {calls_per_step} calls");
        for fail_at in 1..=calls_per_step {
            let (state, params) = (opt.state(), x.clone());
            let count = Arc::new(Mutex::new(0u64));
            let counter = count.clone();
            opt.set_allreduce(Box::new(move |_| {
                let mut c = counter.lock().unwrap();
                *c += 1;
                *c != fail_at
            }))
            .unwrap();
            let e = opt.step_with_hvp(&mut x, &g(&params), hvp).unwrap_err();
            assert_eq!(e.status, Status::LRE_ERR_CALLBACK, "{spec}, call {fail_at}");
            assert_eq!(
                *count.lock().unwrap(),
                fail_at,
                "no call after the failing one"
            );
            assert_eq!(x, params, "{spec}, call {fail_at}: params changed");
            assert_eq!(opt.state(), state, "{spec}, call {fail_at}: state changed");
        }
    }
}

/// P = 1..4 real MPI ranks (uneven shards, the last rank without rows) run every configuration
/// of SPECS in f64 and f32; the C program checks the trajectories against the unsharded
/// optimizer, this test the ranks' saved k-sized state.
#[test]
fn mpi_ranks_equal_the_single_process_run() {
    mpi::install();
    let exe = c_program::compile_with("mpicc", "mpi_shard_test.c", &[], "mpi");
    let dir = process::scratch_dir("mpi-shards");
    for ranks in 1..=4 {
        mpirun(ranks, &exe, &[dir.to_str().unwrap()]);
        for (config, spec) in SPECS.iter().enumerate() {
            for dtype in ["f32", "f64"] {
                let blobs: Vec<Vec<u8>> = (0..ranks)
                    .map(|r| {
                        std::fs::read(dir.join(format!("{config}-{dtype}-P{ranks}-r{r}.lre")))
                            .unwrap()
                    })
                    .collect();
                assert_same_small_state(&blobs, &format!("MPI, {spec:?} {dtype}, P = {ranks}"));
            }
        }
    }
}

/// Runs `exe` on `ranks` MPI ranks (as root too, more ranks than cores allowed) and checks that
/// it succeeded.
fn mpirun(ranks: usize, exe: &std::path::Path, args: &[&str]) {
    let mut mpirun = mpi::mpirun(ranks, exe);
    mpirun.args(args);
    let ran = process::run(&mut mpirun);
    assert!(
        ran.status.success(),
        "{mpirun:?} failed\n{}",
        process::report(&ran)
    );
}

/// examples/mpi/sharded.cpp (the C++ wrapper's set_allreduce with a lambda) builds and
/// converges on 3 ranks.
#[test]
fn the_cpp_mpi_example_runs() {
    mpi::install();
    let root = process::crate_root();
    let lib = common::linkable_library_dir();
    let exe = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mpi-sharded-example");
    let mut mpicxx = Command::new("mpicxx");
    mpicxx
        .args(["-std=c++17", "-Wall", "-Werror"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("bindings/cpp").display()))
        .arg(root.join("examples/mpi/sharded.cpp"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-llre")
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    let built = process::run(&mut mpicxx);
    assert!(
        built.status.success(),
        "{mpicxx:?}\n{}",
        process::report(&built)
    );
    mpirun(3, &exe, &[]);
}
