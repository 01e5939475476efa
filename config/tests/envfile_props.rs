//! Property tests of the environment-file reader.
//!
//! - Arbitrary bytes and arbitrary token soups never make it panic.
//! - Whatever it accepts round-trips: quoting the pairs (single quotes where possible) and
//!   parsing again gives the same pairs.
//! - Whatever it accepts, a model of systemd's own reader (the state machine of
//!   `parse_env_file_internal`, systemd v254+) reads as exactly the same assignments, in order.

use proptest::prelude::*;
use vmsrs_config::envfile;

#[path = "support/systemd_model.rs"]
mod model;
use model::systemd_model;

const TOKENS: &[&str] = &[
    "A", "B_1", "VMSRS_X", "_", "9", "=", "=", " ", " ", "\t", "'", "\"", "\\", "#", ";", "$", "`", "x",
    "y z", "é", "\u{a0}", "export ", "\r", "\u{feff}", "\u{1b}", "\0", "\n",
];

fn token_line() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..14).prop_map(|t| t.concat())
}

fn key() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,8}"
}

fn blanks() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

/// Lines close to the accepted syntax, so that many files are accepted.
fn structured_line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        3 => "[a-z0-9 $#;=`é\t]{0,8}",
        1 => "[a-z \t#'\"\\\\]{0,6}",
        2 => "[a-z $#\"\\\\]{0,6}".prop_map(|v| format!("'{v}'")),
        2 => r#"([a-z '#]|\\["\\`$n])*"#.prop_map(|v| format!("\"{v}\"")),
        1 => "[a-z ]{0,3}['\"][a-z ]{0,3}['\"]?[a-z \t]{0,3}",
    ];
    (blanks(), key(), value, blanks()).prop_map(|(lead, k, v, tail)| format!("{lead}{k}={v}{tail}"))
}

fn comment_line() -> impl Strategy<Value = String> {
    (blanks(), prop::sample::select(&["#", ";"][..]), "[a-z \\\\]{0,6}")
        .prop_map(|(b, m, t)| format!("{b}{m}{t}"))
}

fn file() -> impl Strategy<Value = String> {
    let line = prop_oneof![3 => structured_line(), 1 => comment_line(), 2 => token_line(), 1 => blanks()];
    prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = envfile::parse_bytes(&bytes);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,80}") {
        let _ = envfile::parse(&text);
    }

    #[test]
    fn accepted_file_round_trips_through_quoting(text in file()) {
        if let Ok(pairs) = envfile::parse(&text) {
            let quoted = envfile::serialize(&pairs).expect("accepted pairs can be quoted");
            prop_assert_eq!(envfile::parse(&quoted).expect("quoted file is accepted"), pairs);
        }
    }

    #[test]
    fn accepted_file_is_read_identically_by_the_systemd_model(text in file()) {
        if let Ok(pairs) = envfile::parse(&text) {
            prop_assert_eq!(systemd_model(&text), pairs);
        }
    }

    #[test]
    fn quoted_values_are_read_identically_by_the_systemd_model(
        pairs in prop::collection::vec((key(), "[^\\p{Cc}]{0,12}"), 0..6)
    ) {
        let text = envfile::serialize(&pairs).expect("values without control characters quote");
        prop_assert_eq!(systemd_model(&text), pairs.clone());
        prop_assert_eq!(envfile::parse(&text).expect("serialized file is accepted"), pairs);
    }
}

#[test]
fn structured_generator_yields_accepted_files() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let accepted = (0..500)
        .filter(|_| {
            let text = structured_line().new_tree(&mut runner).unwrap().current();
            envfile::parse(&text).is_ok()
        })
        .count();
    assert!(accepted > 200, "only {accepted} of 500 structured lines were accepted");
}

#[test]
fn systemd_model_matches_known_readings() {
    let read = |t: &str| systemd_model(t);
    assert_eq!(read("A = 1 \n"), [("A".into(), "1".into())]);
    assert_eq!(read("A='x'y"), [("A".into(), "xy".into())]);
    assert_eq!(read("A=a\\\nb"), [("A".into(), "ab".into())]);
    assert_eq!(read("# c \\\nA=1"), [("A".into(), "1".into())]);
    assert_eq!(read("A=\"\\n\""), [("A".into(), "\\n".into())]);
    assert_eq!(read("NOEQUALS\nB=2"), [("B".into(), "2".into())]);
}
