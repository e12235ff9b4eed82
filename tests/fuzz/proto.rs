//! proto <-> JSON: a strategy for arbitrary `google.protobuf.Value`s and
//! what one should look like after a round trip through JSON.

use crate::canonical::{key, number};
use proptest::prelude::*;
use prost_types::value::Kind;

pub(crate) fn proto_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        Just(prost_types::Value { kind: None }),
        Just(prost_types::Value {
            kind: Some(Kind::NullValue(0))
        }),
        any::<bool>().prop_map(|b| prost_types::Value {
            kind: Some(Kind::BoolValue(b))
        }),
        prop_oneof![any::<f64>(), number()].prop_map(|n| prost_types::Value {
            kind: Some(Kind::NumberValue(n))
        }),
        "\\PC{0,6}".prop_map(|s| prost_types::Value {
            kind: Some(Kind::StringValue(s))
        }),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values }))
            }),
            prop::collection::btree_map(key(), inner, 0..5).prop_map(|fields| prost_types::Value {
                kind: Some(Kind::StructValue(prost_types::Struct { fields }))
            }),
        ]
    })
}

/// A proto value as it comes back from JSON: unset is null, -0 is 0.
pub(crate) fn normalised(p: prost_types::Value) -> prost_types::Value {
    let kind = match p.kind {
        None => Kind::NullValue(0),
        Some(Kind::NumberValue(n)) => Kind::NumberValue(if n == 0.0 { 0.0 } else { n }),
        Some(Kind::ListValue(l)) => Kind::ListValue(prost_types::ListValue {
            values: l.values.into_iter().map(normalised).collect(),
        }),
        Some(Kind::StructValue(s)) => Kind::StructValue(prost_types::Struct {
            fields: s
                .fields
                .into_iter()
                .map(|(k, v)| (k, normalised(v)))
                .collect(),
        }),
        Some(k) => k,
    };
    prost_types::Value { kind: Some(kind) }
}

pub(crate) fn has_non_finite(p: &prost_types::Value) -> bool {
    match &p.kind {
        Some(Kind::NumberValue(n)) => !n.is_finite(),
        Some(Kind::ListValue(l)) => l.values.iter().any(has_non_finite),
        Some(Kind::StructValue(s)) => s.fields.values().any(has_non_finite),
        _ => false,
    }
}
