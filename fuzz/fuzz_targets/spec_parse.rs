//! Any text: parsing never panics, and whatever parses prints to a canonical spec that parses
//! back to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = lre::Config::parse(text) {
        let printed = config.to_string();
        let again = lre::Config::parse(&printed).expect("a canonical spec parses");
        assert_eq!(again, config, "canonical round trip of {printed:?}");
    }
});
