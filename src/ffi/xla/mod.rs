//! XLA FFI custom-call handlers for JAX (`bindings/python/src/lre/jax.py` registers them with
//! `jax.ffi.register_ffi_target`), written against XLA's pure C API so that no C++ or Python
//! extension is built. See `handlers` for the calls and the state buffer's layout, and `cuda` for
//! the same calls on XLA's CUDA platform (cargo feature "cuda").

pub mod c_api;
#[cfg(feature = "cuda")]
pub mod cuda;
mod frame;
pub mod handlers;
pub mod sharded;
