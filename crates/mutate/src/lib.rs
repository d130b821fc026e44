//! Inputs for berth's fuzz tests, on stable Rust: [`mutated`] takes seeds (captured real
//! traffic, files berth wrote, documented examples) and yields them changed the way
//! coverage-guided fuzzers change inputs: bits flipped, bytes set to edge values,
//! inserted, deleted or duplicated, runs cut out or repeated, the input cut short. With
//! proptest, a failing input is shrunk to a small one and kept (`proptest-regressions`),
//! so a found bug stays a test.
//!
//! Each parser's test states its invariants (no panic, an error that says what was
//! wrong, nothing stored changed) and runs a bounded number of cases.

use proptest::prelude::*;

/// One change to an input, at a position taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    /// Flip one bit.
    Flip(usize, u8),
    /// Set a byte to an edge value (0, 0x7f, 0x80, 0xff, a digit, a delimiter).
    Set(usize, u8),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Delete a run.
    Delete(usize, usize),
    /// Repeat a run in place.
    Repeat(usize, usize, usize),
    /// Keep only the first part.
    Truncate(usize),
}

const EDGES: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, b'0', b'9', b'\n', b'\r', b' ', b'"', b'[', b']', b'{', b'}',
    b'=', b':', b',', b'/', b'*', b'\\', b'%', b'#',
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        (any::<usize>(), prop::sample::select(EDGES)).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..32, 1usize..64)
            .prop_map(|(at, n, times)| Edit::Repeat(at, n, times)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut input: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = input.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match e {
            Edit::Flip(i, bit) if len > 0 => input[at(*i)] ^= 1 << bit,
            Edit::Set(i, b) if len > 0 => input[at(*i)] = *b,
            Edit::Insert(i, bytes) => {
                let i = if len == 0 { 0 } else { i % (len + 1) };
                input.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let start = at(*i);
                input.drain(start..(start + n).min(len));
            }
            Edit::Repeat(i, n, times) if len > 0 => {
                let start = at(*i);
                let run: Vec<u8> = input[start..(start + n).min(len)].to_vec();
                let copies: Vec<u8> = run
                    .iter()
                    .copied()
                    .cycle()
                    .take(run.len() * times)
                    .collect();
                input.splice(start..start, copies);
            }
            Edit::Truncate(i) if len > 0 => input.truncate(at(*i)),
            _ => {}
        }
    }
    input
}

/// A seed from `seeds` with up to `max_edits` changes (none at times: the seed itself).
pub fn mutated(seeds: Vec<Vec<u8>>, max_edits: usize) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "mutated needs at least one seed");
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 0..=max_edits),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits))
}

/// As [`mutated`], read as text (invalid UTF-8 replaced): for parsers that take `&str`.
pub fn mutated_text(seeds: Vec<String>, max_edits: usize) -> impl Strategy<Value = String> {
    mutated(
        seeds.into_iter().map(String::into_bytes).collect(),
        max_edits,
    )
    .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// The seeds, two inputs glued, and random bytes: [`mutated`] with crossover and noise.
pub fn mixed(seeds: Vec<Vec<u8>>, max_edits: usize) -> impl Strategy<Value = Vec<u8>> {
    let glued = (
        prop::sample::select(seeds.clone()),
        prop::sample::select(seeds.clone()),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(a, b, cut)| {
            let mut out = a[..cut.index(a.len() + 1)].to_vec();
            out.extend_from_slice(&b);
            out
        });
    prop_oneof![
        6 => mutated(seeds, max_edits),
        2 => glued,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_stay_inside_the_input() {
        let seed = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let edits = [
            Edit::Delete(usize::MAX, 1000),
            Edit::Repeat(3, 5, 3),
            Edit::Flip(7, 7),
            Edit::Insert(usize::MAX, vec![1, 2]),
            Edit::Truncate(10),
        ];
        let out = apply(seed.clone(), &edits);
        assert!(out.len() <= 10, "{out:?}");
        // On an empty input only an insertion does anything (the cut then takes it).
        assert_eq!(apply(Vec::new(), &edits), Vec::<u8>::new());
        assert_eq!(
            apply(Vec::new(), &[Edit::Insert(usize::MAX, vec![1, 2])]),
            [1, 2]
        );
        assert_eq!(apply(seed.clone(), &[]), seed);
    }
}
