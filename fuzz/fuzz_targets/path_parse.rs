//! PATCH paths and attribute paths: parsing never panics, and what parses prints
//! as text that parses to the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimkit::filter::FilterOptions;
use scimkit::path::{AttrPath, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = FilterOptions::default()
        .max_len(usize::MAX)
        .max_depth(usize::MAX);
    if let Ok(path) = Path::parse_with(text, &options) {
        let printed = path.to_string();
        let again = Path::parse_with(&printed, &options).expect("a printed path parses");
        assert_eq!(again, path, "{text:?} printed as {printed:?}");
    }
    if let Ok(attr) = AttrPath::parse(text) {
        let printed = attr.to_string();
        assert_eq!(AttrPath::parse(&printed).ok(), Some(attr), "{text:?}");
    }
});
