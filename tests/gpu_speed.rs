//! The speed line of the GPU check (tests/gpu/run.sh): ms per step of the default optimizer at
//! n = 1e7 (its GGT window holds history_size = 100 columns), f32, against two cuBLAS SGEMVs over
//! an n×100 matrix measured in the same run: the two passes over the window a step cannot
//! avoid. Target: ratio ≤ 1.5. Prints the line; it asserts only that the steps succeed (speed is
//! read, not tested). Where there is no GPU it returns at once, saying so.
#![cfg(feature = "cuda")]

#[path = "common/gpu.rs"]
mod gpu;

use lre::CudaOptimizer;
use lre::backend::Backend;
use std::time::Instant;

const N: usize = 10_000_000;
const WINDOW: usize = 100;
const GRADIENTS: usize = 4;

#[test]
fn default_step_against_two_sgemvs() {
    if gpu::device().is_none() {
        return;
    }
    let mut opt =
        CudaOptimizer::<f32>::from_spec("dtype=f32; device=cuda:0", N).expect("optimizer");
    let be = opt.backend().clone();
    let mut noise = be.matrix(GRADIENTS).expect("noise");
    be.gaussian_columns(&mut noise, &(0..GRADIENTS).collect::<Vec<_>>(), 11);
    let grads: Vec<_> = (0..GRADIENTS)
        .map(|j| {
            let mut g = be.vector().expect("gradient");
            be.add_columns(&noise, &[j], &[1e-3], be.as_inout(&mut g));
            g
        })
        .collect();
    let mut params = be.vector().expect("params");
    let mut step = |k: usize| {
        opt.step(be.as_inout(&mut params), be.as_input(&grads[k % GRADIENTS]))
            .expect("step");
    };
    // Fill the window, then time.
    for k in 0..WINDOW + 10 {
        step(k);
    }
    be.device().synchronize();
    let reps = 30;
    let start = Instant::now();
    for k in 0..reps {
        step(k);
    }
    be.device().synchronize();
    let step_ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;

    let mut window = be.matrix(WINDOW).expect("matrix");
    be.gaussian_columns(&mut window, &(0..WINDOW).collect::<Vec<_>>(), 12);
    let mut x = be.vector().expect("x");
    be.add_columns(&noise, &[0], &[1.0], be.as_inout(&mut x));
    be.two_gemvs(&window, &mut x);
    let start = Instant::now();
    for _ in 0..reps {
        be.two_gemvs(&window, &mut x);
    }
    let floor_ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "speed: default f32 step at n = 1e7, m = {WINDOW}: {step_ms:.3} ms; two cuBLAS SGEMVs over \
         n×{WINDOW}: {floor_ms:.3} ms; ratio {:.2} (target <= 1.5)",
        step_ms / floor_ms
    );
}
