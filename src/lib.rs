//! LRE — low-rank eigenbasis optimizers.
//!
//! A curvature matrix of the loss (gradient covariance, Hessian estimates, …) is kept as a
//! truncated eigendecomposition Q·diag(L)·Qᵀ (Q is n×k, k ≪ n), updated with low-rank
//! corrections; an inner optimizer (Adam, …) runs in the k-dimensional basis.
//!
//! ```
//! use lre::CpuOptimizer;
//! let n = 4;
//! let mut opt = CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=10); lr=0.1", n).unwrap();
//! let mut x = vec![1.0f32; n];
//! for _ in 0..50 {
//!     let g: Vec<f32> = x.iter().map(|v| 2.0 * v).collect(); // ∇‖x‖²
//!     opt.step(&mut x, &g).unwrap();
//! }
//! assert!(x.iter().all(|v| v.abs() < 1.0));
//! ```
//!
//! Data flows one way: `ffi` → [`optimizer`] → [`curvature`] / [`basis`] / [`inner`] →
//! [`backend`] / [`linalg`]. See README.md (Architecture).

// `unsafe` lives only in the C boundary (`ffi`) and the CUDA backend (`backend::cuda`), which
// allow it explicitly; anywhere else it does not compile.
#![deny(unsafe_code)]

pub mod backend;
pub mod basis;
pub mod component;
pub mod correction;
pub mod curvature;
pub mod elem;
pub mod error;
pub mod family;
#[allow(unsafe_code)]
pub mod ffi;
pub mod half;
pub mod inner;
pub mod linalg;
pub mod optimizer;
pub mod rng;
pub mod spec;
pub mod state;

pub use elem::Dtype;
pub use error::{Error, Result, Status};
#[cfg(feature = "cuda")]
pub use optimizer::CudaOptimizer;
pub use optimizer::{CpuOptimizer, Optimizer};
pub use spec::{Config, DEFAULT_SPEC, REFERENCE_SPEC};

/// Library version (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
