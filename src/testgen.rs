//! Test-only generators shared by the property tests.

#![forbid(unsafe_code)]

use serde_json::{Value, json};

/// Arbitrary JSON, biased towards the keys `.claude.json` seeding cares about.
pub(crate) fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z/ \"\\\\\u{1}\u{e9}\u{1F600}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    "[a-z/\"]{0,6}",
                    Just("projects".to_owned()),
                    Just("hasCompletedOnboarding".to_owned()),
                    Just("fullscreenUpsellSeenCount".to_owned()),
                    Just("hasSeenAutoDefaultNudge".to_owned()),
                    Just("hasTrustDialogAccepted".to_owned()),
                    Just("/w".to_owned())
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
