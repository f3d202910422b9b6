//! Any bytes as a saved state: loading never panics or over-allocates, and a state that loads
//! re-saves to a blob that loads to the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lre::CpuOptimizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(opt) = CpuOptimizer::<f32>::from_state(data) {
        let saved = opt.state();
        let again = CpuOptimizer::<f32>::from_state(&saved).expect("a re-saved state loads");
        assert_eq!(again.state(), saved);
    }
    let _ = CpuOptimizer::<f64>::from_state(data);
});
