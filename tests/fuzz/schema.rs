//! The schema check: schema-like objects (often wrong, sometimes
//! recursive) and simple schemas with an independent reference reading.

use crate::canonical::{js_eq, json_value};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Objects made of JSON Schema keywords with arbitrary (often wrong) values,
/// recursive `$ref`s included.
pub(crate) fn schema_like() -> impl Strategy<Value = Value> {
    let keyword = prop_oneof![
        Just("type"),
        Just("enum"),
        Just("const"),
        Just("minimum"),
        Just("maximum"),
        Just("exclusiveMinimum"),
        Just("multipleOf"),
        Just("pattern"),
        Just("minLength"),
        Just("maxLength"),
        Just("items"),
        Just("properties"),
        Just("required"),
        Just("additionalProperties"),
        Just("allOf"),
        Just("anyOf"),
        Just("oneOf"),
        Just("not"),
        Just("$ref"),
        Just("format"),
        Just("$schema"),
        Just("definitions"),
        Just("uniqueItems"),
        Just("if"),
        Just("then"),
        Just("dependentRequired"),
        Just("contains"),
    ];
    let val = prop_oneof![
        json_value(),
        prop_oneof![
            Just("string"),
            Just("integer"),
            Just("object"),
            Just("array"),
            Just("null")
        ]
        .prop_map(|t| json!(t)),
        prop_oneof![
            Just("#"),
            Just("#/definitions/a"),
            Just("#/properties/x"),
            Just("http://x/y")
        ]
        .prop_map(|r| json!(r)),
        prop_oneof![
            Just("(a"),
            Just("^[a-z]+$"),
            Just("\\p{L}"),
            Just("a{99999}")
        ]
        .prop_map(|p| json!(p)),
        Just(json!(0)),
        Just(json!(1e-300)),
    ];
    let flat = prop::collection::btree_map(keyword.prop_map(String::from), val, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    flat.prop_recursive(3, 24, 4, |inner| {
        (
            inner.clone(),
            prop::collection::btree_map("[a-z]", inner, 0..3),
        )
            .prop_map(|(mut s, props)| {
                if let Value::Object(m) = &mut s {
                    m.insert(
                        "properties".into(),
                        Value::Object(props.clone().into_iter().collect()),
                    );
                    m.insert(
                        "definitions".into(),
                        json!({"a": props.values().next().cloned().unwrap_or(json!({}))}),
                    );
                }
                s
            })
    })
}

/// The subset of JSON Schema read independently below.
#[derive(Debug, Clone)]
pub(crate) enum Reference {
    Type(&'static str),
    Object {
        required: Vec<String>,
        props: Vec<(String, &'static str)>,
    },
    Enum(Vec<Value>),
    Range(f64, f64),
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        // JSON Schema: any number with a zero fractional part.
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

impl Reference {
    pub(crate) fn accepts(&self, v: &Value) -> bool {
        match self {
            Reference::Type(t) => type_matches(t, v),
            Reference::Object { required, props } => v.as_object().is_some_and(|o| {
                required.iter().all(|k| o.contains_key(k))
                    && props
                        .iter()
                        .all(|(k, t)| o.get(k).is_none_or(|x| type_matches(t, x)))
            }),
            Reference::Enum(items) => items.iter().any(|i| json_schema_eq(i, v)),
            Reference::Range(lo, hi) => v.as_f64().is_none_or(|f| *lo <= f && f <= *hi),
        }
    }
}

/// JSON Schema equality: numbers by value (1 == 1.0).
fn json_schema_eq(a: &Value, b: &Value) -> bool {
    js_eq(a, b)
}

pub(crate) fn simple_schema() -> impl Strategy<Value = (Value, Reference)> {
    let ty = prop_oneof![
        Just("null"),
        Just("boolean"),
        Just("string"),
        Just("number"),
        Just("integer"),
        Just("array"),
        Just("object"),
    ];
    prop_oneof![
        ty.clone().prop_map(|t| (json!({"type": t}), Reference::Type(t))),
        (
            prop::collection::btree_set("[a-c]", 0..3),
            prop::collection::btree_map("[a-d]", ty, 0..3),
        )
            .prop_map(|(req, props): (BTreeSet<String>, _)| {
                let props: Vec<(String, &'static str)> = props.into_iter().collect();
                let schema = json!({
                    "type": "object",
                    "required": req,
                    "properties": props.iter().map(|(k, t)| (k.clone(), json!({"type": t}))).collect::<serde_json::Map<_, _>>(),
                });
                (schema, Reference::Object { required: req.into_iter().collect(), props })
            }),
        prop::collection::vec(json_value(), 1..4)
            .prop_map(|items| (json!({"enum": items}), Reference::Enum(items))),
        (-1e6f64..1e6, 0f64..1e6).prop_map(|(lo, w)| {
            (json!({"minimum": lo, "maximum": lo + w}), Reference::Range(lo, lo + w))
        }),
    ]
}
