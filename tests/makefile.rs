//! The Makefile's verbs: `make help` must list every one a user types.
//!
//! `make help` prints the rules whose line carries a `## what it does`
//! comment; this test finds every phony rule without one, other than the few
//! that only serve other rules.

/// Phony rules that are steps of other rules, not verbs.
const INTERNAL: &[&str] = &["FORCE", "chromium", "rust-target"];

#[test]
fn make_help_lists_every_phony_verb_of_the_makefile() {
    let makefile = include_str!("../Makefile");
    let phony: Vec<&str> = makefile
        .lines()
        .filter_map(|line| line.strip_prefix(".PHONY:"))
        .flat_map(str::split_whitespace)
        .filter(|target| !INTERNAL.contains(target))
        .collect();
    assert!(
        phony.contains(&"dev") && phony.contains(&"test"),
        "{phony:?}"
    );
    let undocumented: Vec<&&str> = phony
        .iter()
        .filter(|target| {
            !makefile.lines().any(|line| {
                line.strip_prefix(**target)
                    .is_some_and(|rest| rest.starts_with(':') && rest.contains(" ## "))
            })
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "verbs missing from `make help` (add ` ## what it does` to their rule line): {undocumented:?}"
    );
}
