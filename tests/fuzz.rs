//! Fuzzing on stable Rust (issue 19): proptest at high case counts over the
//! proto <-> JSON conversion, canonical JSON, the schema check and the state
//! machine. `make test` runs a few hundred cases each; `make fuzz` (and so
//! `make chaos`) runs them with `PROPTEST_CASES=100000`. A failing case is
//! saved by proptest under `tests/fuzz.proptest-regressions` (commit it) or
//! pinned as a unit test at the end of this file.
//!
//! This file holds the properties; the strategies and oracles live in
//! `tests/fuzz/`: `canonical` (JSON values, JavaScript's rules), `proto`
//! (protobuf values), `schema` (schemas and a reference reading) and
//! `machine` (the state machine run). The properties stay here so their
//! names and the regression file (found by this file's path) do not change.

#[path = "fuzz/canonical.rs"]
mod canonical;
#[path = "fuzz/machine.rs"]
mod machine;
#[path = "fuzz/proto.rs"]
mod proto;
#[path = "fuzz/schema.rs"]
mod schema;

use canonical::{js_eq, js_number_ok, js_sorted, json_value, key, key_order, number};
use machine::{run_machine, step};
use proptest::prelude::*;
use proto::{has_non_finite, normalised, proto_value};
use schema::{schema_like, simple_schema};
use serde_json::{json, Value};
use witness::api::convert::{self, json_from_proto, json_to_proto};
use witness::core::canonical::canonical_json;
use witness::core::schema::{check_schema, validate_answer};
use witness::core::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn canonical_json_is_idempotent_and_parses_back(v in json_value()) {
        let once = canonical_json(&v);
        let parsed: Value = serde_json::from_str(&once).unwrap();
        prop_assert!(js_eq(&parsed, &v), "{} vs {}", parsed, v);
        prop_assert_eq!(canonical_json(&parsed), once.clone());
        prop_assert!(!once.contains(['\n', ' ']) || once.contains('"'), "no whitespace outside strings");
    }

    #[test]
    fn canonical_json_orders_keys_as_javascript_does(
        m in prop::collection::btree_map(key(), any::<u8>(), 0..12),
    ) {
        let v = Value::Object(m.iter().map(|(k, n)| (k.clone(), json!(n))).collect());
        let text = canonical_json(&v);
        let keys = key_order(&text);
        prop_assert_eq!(keys, js_sorted(m.keys().cloned().collect()));
    }

    #[test]
    fn canonical_numbers_are_javascripts(f in number()) {
        let text = canonical_json(&json!(f));
        prop_assert!(js_number_ok(&text, f), "{} printed as {}", f, text);
        let back: f64 = text.parse().unwrap();
        prop_assert_eq!(back, if f == 0.0 { 0.0 } else { f });
    }

    #[test]
    fn json_survives_proto_and_back(v in json_value()) {
        let there = json_from_proto("input", Some(json_to_proto(&v))).unwrap();
        prop_assert!(js_eq(&there, &v), "{} vs {}", there, v);
        // What is stored is already canonical: converting again changes nothing.
        let again = json_from_proto("input", Some(json_to_proto(&there))).unwrap();
        prop_assert_eq!(&again, &there);
        prop_assert_eq!(canonical_json(&there), canonical_json(&v));
    }

    #[test]
    fn proto_values_survive_json_and_back(p in proto_value()) {
        match json_from_proto("input", Some(p.clone())) {
            Ok(j) => prop_assert_eq!(json_to_proto(&j), normalised(p)),
            Err(e) => prop_assert!(has_non_finite(&p), "refused {:?}: {}", p, e.message),
        }
    }

    #[test]
    fn times_and_enums_survive_proto_and_back(
        us in -62_135_596_800_000_000i64..253_402_300_799_999_999,
        dur in 1i64..i64::MAX,
        raw in any::<i32>(),
    ) {
        prop_assert_eq!(convert::micros_from_timestamp(&convert::timestamp(us)), us);
        prop_assert_eq!(convert::micros_from_duration("t", &convert::duration(dur)).unwrap(), dur);
        for s in Status::ALL {
            prop_assert_eq!(convert::status_from_proto("s", convert::status(s) as i32).unwrap(), s);
        }
        for v in [Verdict::Approve, Verdict::Reject] {
            prop_assert_eq!(convert::verdict_from_proto(convert::verdict(v) as i32), Some(v));
        }
        let _ = convert::status_from_proto("s", raw);
        let _ = convert::verdict_from_proto(raw);
    }

    #[test]
    fn schema_checks_never_panic(schema in schema_like(), answer in json_value()) {
        let _ = check_schema(&schema);
        let _ = validate_answer(&schema, &answer);
    }

    #[test]
    fn simple_schemas_agree_with_a_reference_reading(
        (schema, reference) in simple_schema(),
        answer in json_value(),
    ) {
        prop_assert!(check_schema(&schema).is_ok(), "{}", schema);
        let ok = validate_answer(&schema, &answer).is_ok();
        prop_assert_eq!(ok, reference.accepts(&answer), "{} on {}", schema, answer);
    }

    #[test]
    fn the_state_machine_keeps_its_invariants(
        shape in (1u32..4, any::<bool>(), any::<bool>(), 0u8..3),
        steps in prop::collection::vec(step(), 0..50),
    ) {
        run_machine(shape, &steps)?;
    }
}

/// A recursive schema must be refused or validated, never overflow the stack.
#[test]
fn a_self_referencing_schema_does_not_overflow() {
    for schema in [
        json!({"$ref": "#"}),
        json!({"allOf": [{"$ref": "#"}]}),
        json!({"properties": {"a": {"$ref": "#"}}}),
    ] {
        let _ = check_schema(&schema);
        let _ = validate_answer(&schema, &json!({"a": {"a": 1}}));
    }
}

/// Found by `canonical_numbers_are_javascripts` at 4,000 cases (the test's
/// own reading of JavaScript was wrong: exponents start below 1e-6, not
/// 1e-7); pinned with values JavaScript prints.
#[test]
fn numbers_print_as_javascript_prints_them() {
    for (f, js) in [
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (2.788202839497533e-7, "2.788202839497533e-7"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-0.0, "0"),
    ] {
        assert_eq!(canonical_json(&json!(f)), js);
    }
}
