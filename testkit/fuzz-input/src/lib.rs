//! Inputs for the fuzz harnesses (`proxy/tests/fuzz.rs`, `loadtest/tests/fuzz.rs`): a
//! valid document with random edits, so the parsers are driven past their first error
//! into the checks behind it. Edits insert, delete or replace text, favouring what breaks
//! parsers and arithmetic: extreme numbers, YAML punctuation, tags, anchors, non-ASCII.
//!
//! The number of cases is proptest's: `PROPTEST_CASES` (CI runs the default; `ci/fuzz.sh`
//! runs many more and reports the time spent).

use proptest::prelude::*;

/// Pieces an edit inserts or replaces with.
const PIECES: &[&str] = &[
    "0",
    "-1",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "1e309",
    "-1e309",
    ".nan",
    ".inf",
    "NaN",
    "0.0000001",
    "999999999999999999999999",
    "1ns",
    "18446744073709551615s",
    "584942417355y",
    "0s",
    "-5s",
    ":",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "\n  ",
    "#",
    "&a ",
    "*a",
    "!tag ",
    "!!binary ",
    "'",
    "\"",
    "~",
    "null",
    "true",
    "é",
    "\u{0}",
    "\u{202e}",
    "<<: *a",
    "p99",
    "<",
    ">=",
    "ms",
    "%",
];

/// One edit: at a position (a fraction of the length), delete up to `n` bytes, then insert
/// a piece or a random string.
#[derive(Debug, Clone)]
struct Edit {
    at: f64,
    delete: usize,
    insert: String,
}

fn edit() -> impl Strategy<Value = Edit> {
    let insert = prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ];
    (0.0..1.0f64, 0usize..6, insert).prop_map(|(at, delete, insert)| Edit { at, delete, insert })
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut text = seed.to_string();
    for e in edits {
        let mut at = (e.at * text.len() as f64) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + e.delete).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        text.replace_range(at..end, &e.insert);
    }
    text
}

/// `seed` with 1 to 8 random edits.
pub fn mutated(seed: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(edit(), 1..8).prop_map(move |edits| apply(seed, &edits))
}

/// Any text: random Unicode, and runs of the pieces parsers trip on.
pub fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,200}",
        proptest::collection::vec(proptest::sample::select(PIECES), 0..40).prop_map(|p| p.concat()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_stay_on_char_boundaries() {
        let edits = [Edit {
            at: 0.5,
            delete: 1,
            insert: "x".into(),
        }];
        assert_eq!(apply("aéb", &edits), "axb");
    }
}
