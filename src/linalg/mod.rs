//! Small dense linear algebra (k×k and smaller) in f64 on faer, always sequential (`Par::Seq`)
//! so results are deterministic and never fight the n-sized loops for cores.

pub mod cholesky;
pub mod eigen;
pub mod inverse;
pub mod matrix_function;
pub mod products;
pub mod regularize;

pub use cholesky::{DroppingCholesky, cholesky_dropping, upper_inverse};
pub use eigen::{EigenError, symmetric_eigen};
pub use inverse::inverse;
pub use matrix_function::matrix_function;
pub use products::{mat_t_vec, mat_vec, mul, mul_tn};
pub use regularize::{Regularization, regularize_eigen};
