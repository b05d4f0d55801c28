//! A `Translator` answers exactly what `translate` answers: the same SQL, the same
//! parameters, the same residual, whether it writes a comparison for the first time
//! or replays it, for every dialect.

#[allow(dead_code)] // the user generators are for other properties
#[path = "../../../tests/common/arb.rs"]
mod arb;
mod shared;

use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit::schema::SharedResourceSchema;
use scimkit_sql::{Dialect, Translator, translate};

static USERS: LazyLock<SharedResourceSchema> =
    LazyLock::new(|| SharedResourceSchema::new(Arc::new(Registry::core()), "User").expect("User"));

/// One translator per dialect for the whole run, so that later cases replay what
/// earlier ones recorded, with other values.
static TRANSLATORS: LazyLock<[Translator; 2]> = LazyLock::new(|| {
    [Dialect::Sqlite, Dialect::Postgres].map(|d| Translator::new(USERS.clone(), "cmp", d))
});

/// The same, kept for the whole run as `TRANSLATORS` are.
static KEYED: LazyLock<[Translator; 2]> =
    LazyLock::new(|| [Dialect::Sqlite, Dialect::Postgres].map(shared::keyed));

fn same_as_translate(filter: &Filter) {
    for translator in TRANSLATORS.iter() {
        let expected = translate(filter, &USERS.get(), "cmp", translator.dialect());
        // The first time may record, the second replays.
        for _ in 0..2 {
            assert_eq!(translator.translate(filter), expected, "{filter}");
        }
    }
    // With key columns: what a new translator writes afresh.
    for translator in KEYED.iter() {
        let expected = shared::keyed(translator.dialect()).translate(filter);
        for _ in 0..2 {
            assert_eq!(translator.translate(filter), expected, "{filter}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    #[test]
    fn translator_answers_what_translate_answers(filter in arb::filter()) {
        same_as_translate(&filter);
    }
}

#[test]
fn shapes_that_change_the_text() {
    for text in [
        // A prefix with no text after it, an empty prefix, and one with a range.
        "userName sw \"\u{10FFFF}\"",
        "userName sw \"\"",
        "userName sw \"a\"",
        "userName sw \"\u{10FFFF}\"",
        "userName sw \"b\"",
        // A text equal to the last one bound shares its placeholder.
        r#"userName eq "a" and displayName eq "a" and title co "a""#,
        r#"active eq true and active eq false and active ne true"#,
        r#"meta.created gt "2011-05-13T04:42:34Z" and meta.created co "2011""#,
        r#"emails[type eq "work" and value co "@x"] and emails.value eq "a@x""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
        r#"userName eq null or userName ne null or not (name pr)"#,
        "userName eq \"a\u{0}b\" and title eq \"t\"",
    ] {
        let filter: Filter = text.parse().expect("parses");
        same_as_translate(&filter);
    }
}
