use crate::support::test_store;
use chute_store::conformance::{body, check_listing, key};
use chute_store::{ListOptions, ObjectKey, Store};
use proptest::prelude::*;

fn key_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("/"),
            Just("-"),
            Just("é"),
            Just("%"),
            Just("~"),
            Just("."),
            Just(" "),
            Just("\u{A0}"),
            Just("日"),
            Just("😀"),
            Just("\u{FFFD}"),
        ],
        1..7,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("valid key", |k| ObjectKey::parse(k).is_ok())
}

fn piece() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("/"),
            Just("-"),
            Just("é"),
            Just("日"),
            Just("~")
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn listings_equal_the_model(
        keys in proptest::collection::btree_set(key_strategy(), 0..25),
        prefix in piece(),
        delimiter in proptest::option::of(prop_oneof![Just("/".to_owned()), Just("-".to_owned()), Just("a/".to_owned()), Just("b".to_owned())]),
        start_after in proptest::option::of(piece()),
        max_keys in 0usize..5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = test_store().await;
            let keys: Vec<String> = keys.into_iter().collect();
            for k in &keys {
                t.bucket.put(&key(k), body(b"x"), Default::default()).await.unwrap();
            }
            // Paging from the start, and from an arbitrary start_after without a delimiter.
            let opts = ListOptions { prefix: prefix.clone(), delimiter: delimiter.clone(), start_after: None, max_keys };
            check_listing(&t.bucket, &keys, &opts).await;
            let opts = ListOptions { prefix, delimiter: None, start_after, max_keys };
            check_listing(&t.bucket, &keys, &opts).await;
        });
    }
}
