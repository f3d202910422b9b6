//! Sharded mode: the host's all-reduce, registered as a C callback.

use super::guard::guard;
use super::handle::with_optimizer;
use super::pointers::optimizer;
use crate::error::{Error, Status};
use crate::ffi::handle::LreOptimizer;
use std::ffi::c_void;

/// All-reduce callback of a sharded optimizer: sums `buf` (`len` doubles of partial sums over
/// this rank's rows) in place across all ranks and returns 0, or non-zero if it failed.
///
/// Every rank must receive the same bits: the ranks then do the same small dense work on the
/// same numbers and their k-sized state stays bit-identical. `MPI_Allreduce` does not promise
/// that (its summation order may differ between ranks); `MPI_Reduce` to one rank followed by
/// `MPI_Bcast` does. Each step calls it the same number of times with the same lengths on every
/// rank, a rank with zero rows included. Called synchronously on the caller's thread during a
/// step; it must not use the optimizer (that call returns `LRE_ERR_BUSY`).
pub type AllreduceFn =
    Option<unsafe extern "C" fn(buf: *mut f64, len: usize, user: *mut c_void) -> i32>;

/// The caller's `user` pointer, carried into the optimizer's all-reduce closure.
struct UserPointer(*mut c_void);

// SAFETY: the closure holding it runs only inside calls on the optimizer that registered it,
// on the calling thread; the caller promises that `user` stays valid for those calls.
unsafe impl Send for UserPointer {}

/// Registers the all-reduce of a sharded optimizer (spec keys `global_ndim`, `shard_offset`;
/// it holds rows `[shard_offset, shard_offset + ndim)`). A sharded optimizer refuses to step
/// until one is registered (`LRE_ERR_CALL_ORDER`); an unsharded one refuses the registration
/// (`LRE_ERR_INVALID_ARGUMENT`). A later registration replaces the earlier one.
///
/// When `fn` returns non-zero the step returns `LRE_ERR_CALLBACK` and this rank's parameters and
/// state are as before the step. The other ranks are then inside the same collective: whether
/// it fails for them too (they roll back as well) or completes (they have taken the step) is
/// up to the communication library; ranks that disagree must be restored from a checkpoint.
///
/// # Safety
/// `opt` is a live optimizer; `fn` is NULL or a function that may be called with `user` for as
/// long as the optimizer steps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_set_allreduce(
    opt: *mut LreOptimizer,
    r#fn: AllreduceFn,
    user: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let callback =
            r#fn.ok_or_else(|| Error::new(Status::LRE_ERR_NULL_POINTER, "`fn` is NULL"))?;
        let user = UserPointer(user);
        let sum = move |buf: &mut [f64]| {
            let user = &user;
            // SAFETY: `buf` is a live, exclusive slice of `len` doubles; the callback's contract
            // is the caller's.
            unsafe { callback(buf.as_mut_ptr(), buf.len(), user.0) == 0 }
        };
        with_optimizer!(&mut *opt, o => o.set_allreduce(Box::new(sum)))
    })
}
