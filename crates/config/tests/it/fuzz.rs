//! The config parser against mutated configs (berth-mutate), seeded with every example
//! of the docs and each example's `berth.toml`: it never panics, and it either takes
//! the config or reports each problem at a line and column inside the text, with a
//! message that says what was wrong.

use std::path::Path;
use std::sync::OnceLock;

use berth_config::ConfigError;
use proptest::prelude::*;

fn seeds() -> Vec<String> {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(crate::docs::example_texts).clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_mutated_config_is_taken_or_refused_at_a_place_in_it(text in berth_mutate::mutated_text(seeds(), 6)) {
        match berth_config::parse(&text, Path::new("/srv/app/berth.toml")) {
            Ok(_) => {}
            Err(ConfigError::Invalid { diagnostics }) => {
                prop_assert!(!diagnostics.is_empty());
                let lines = text.lines().count() + 1;
                for d in &diagnostics {
                    prop_assert!(d.line >= 1 && d.line <= lines, "{d} (of {lines} lines)");
                    prop_assert!(d.column >= 1, "{d}");
                    prop_assert!(d.message.len() > 10, "{d}");
                }
            }
            Err(other) => prop_assert!(false, "parse gave {other}"),
        }
    }
}
