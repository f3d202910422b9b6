//! GPU 0 for the tests that need one. Where there is none, a test returns early with a note on
//! stderr; tests/gpu/run.sh sets LRE_REQUIRE_GPU=1, and then a missing GPU is a failure.
//! Included with `#[path = "common/gpu.rs"] mod gpu;`.

use lre::backend::cuda::{self, Device};
use std::sync::Arc;

pub fn device() -> Option<Arc<Device>> {
    match cuda::open(0) {
        Ok((device, info)) => {
            eprintln!("on {info}");
            Some(device)
        }
        Err(e) if std::env::var_os("LRE_REQUIRE_GPU").is_some() => {
            panic!("LRE_REQUIRE_GPU is set, but {}", e.message)
        }
        Err(e) => {
            eprintln!("not run here (no GPU): {}", e.message);
            None
        }
    }
}
