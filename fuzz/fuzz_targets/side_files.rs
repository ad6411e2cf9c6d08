//! The side-file reader (seller maps, crowd overrides, incomes, budget overrides) on
//! arbitrary bytes: no panic, and every row it keeps has the expected field count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrpipe::read::side::parse_side;

fuzz_target!(|data: &[u8]| {
    for (header, fields) in [("seller", 2), ("user_id", 3), ("user_id", 2)] {
        let mut warnings = Vec::new();
        let rows = parse_side(data, "side.tsv", header, fields, &mut warnings);
        for row in rows {
            assert_eq!(row.fields.len(), fields);
        }
    }
});
