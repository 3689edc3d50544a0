//! `multiproc::pickle` against a real CPython: values built in Rust as `PyValue`s reach
//! Python with their exact types (a tuple as a tuple, mixed-type dicts), and values Python
//! pickles come back with theirs. Skipped (with a message) when python3 is absent.

mod common;

use std::collections::BTreeSet;

use multiproc::pickle::{self, PyKey, PyValue};

/// Run `python3 -c script` with `input` on its standard input; its output, or `None`
/// without python3.
fn python(script: &str, input: &[u8]) -> Option<Vec<u8>> {
    common::python::run(script, &[], input)
}

/// The value both sides build: `{"name": "tea", 3: (1.5, None, b"x"), ("k", 2): [True, (1, "a")],
/// None: {"nested": (2**63,)}}`.
const PYTHON_VALUE: &str = r#"{"name": "tea", 3: (1.5, None, b"x"), ("k", 2): [True, (1, "a")], None: {"nested": (2**63,)}}"#;

fn rust_value() -> PyValue {
    PyValue::dict([
        (PyKey::from("name"), PyValue::from("tea")),
        (
            PyKey::from(3),
            PyValue::Tuple(vec![
                PyValue::from(1.5),
                PyValue::None,
                PyValue::Bytes(b"x".to_vec()),
            ]),
        ),
        (
            PyKey::Tuple(vec![PyKey::from("k"), PyKey::from(2)]),
            PyValue::List(vec![
                PyValue::from(true),
                PyValue::Tuple(vec![PyValue::from(1), PyValue::from("a")]),
            ]),
        ),
        (
            PyKey::None,
            PyValue::dict([(
                PyKey::from("nested"),
                PyValue::Tuple(vec![PyValue::BigInt(pickle::BigInt::from(1u64 << 63))]),
            )]),
        ),
    ])
}

#[test]
fn a_mixed_dict_with_tuples_sent_from_rust_arrives_in_python_with_its_exact_types() {
    let _g = common::guard();
    let bytes = pickle::to_vec(&rust_value()).unwrap();
    // Python's `==` tells a tuple from a list, at every depth.
    let script = format!(
        "import pickle, sys\nv = pickle.load(sys.stdin.buffer)\nprint(v == {PYTHON_VALUE})"
    );
    let Some(out) = python(&script, &bytes) else {
        eprintln!("skipped: python3 is not available");
        return;
    };
    assert_eq!(String::from_utf8_lossy(&out).trim(), "True");
}

#[test]
fn a_mixed_dict_with_tuples_pickled_by_python_decodes_to_the_same_pyvalue() {
    let _g = common::guard();
    // Protocol 2 writes bytes as a call of `_codecs.encode`, which the plain-data check refuses.
    for protocol in [3, 4, 5] {
        let script = format!(
            "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps({PYTHON_VALUE}, protocol={protocol}))"
        );
        let Some(bytes) = python(&script, b"") else {
            eprintln!("skipped: python3 is not available");
            return;
        };
        assert_eq!(
            pickle::from_slice::<PyValue>(&bytes).unwrap(),
            rust_value(),
            "protocol {protocol}"
        );
        assert_eq!(pickle::value_from_slice(&bytes).unwrap(), rust_value());
    }
}

#[test]
fn a_value_from_python_sent_back_unchanged_is_equal_in_python() {
    let _g = common::guard();
    let script =
        format!("import pickle, sys\nsys.stdout.buffer.write(pickle.dumps({PYTHON_VALUE}))");
    let Some(from_python) = python(&script, b"") else {
        eprintln!("skipped: python3 is not available");
        return;
    };
    // Through a connection, as a peer would: received, then sent back.
    let (mut a, mut b) = multiproc::pipe().unwrap();
    a.send_bytes(&from_python).unwrap();
    let value: PyValue = b.recv_pickle().unwrap();
    b.send_pickle(&value).unwrap();
    let echoed = a.recv_bytes().unwrap();
    let check =
        format!("import pickle, sys\nprint(pickle.load(sys.stdin.buffer) == {PYTHON_VALUE})");
    let out = python(&check, &echoed).expect("python3 ran before");
    assert_eq!(String::from_utf8_lossy(&out).trim(), "True");
}

#[test]
fn a_pyvalue_nested_in_a_typed_value_keeps_python_tuples() {
    let _g = common::guard();
    let script =
        "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps([(1, 'a'), ('b', [2])]))";
    let Some(bytes) = python(script, b"") else {
        eprintln!("skipped: python3 is not available");
        return;
    };
    let items: Vec<PyValue> = pickle::from_slice(&bytes).unwrap();
    assert_eq!(
        items,
        vec![
            PyValue::Tuple(vec![1.into(), "a".into()]),
            PyValue::Tuple(vec!["b".into(), PyValue::List(vec![2.into()])]),
        ]
    );
}

#[test]
fn sets_round_trip_with_python_through_value_to_vec() {
    let _g = common::guard();
    let set = PyValue::Set(BTreeSet::from([PyKey::from(1), PyKey::from("a")]));
    let frozen = PyValue::FrozenSet(BTreeSet::from([PyKey::from(2.5)]));
    let bytes = pickle::value_to_vec(&PyValue::Tuple(vec![set.clone(), frozen.clone()])).unwrap();
    let script = "import pickle, sys\nv = pickle.load(sys.stdin.buffer)\nassert v == ({1, 'a'}, frozenset({2.5})) and type(v[1]) is frozenset, v\nsys.stdout.buffer.write(pickle.dumps(v))";
    let Some(back) = python(script, &bytes) else {
        eprintln!("skipped: python3 is not available");
        return;
    };
    assert_eq!(
        pickle::from_slice::<PyValue>(&back).unwrap(),
        PyValue::Tuple(vec![set, frozen])
    );
}

#[test]
fn typed_values_and_enums_still_decode_as_before() {
    let _g = common::guard();
    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
    }
    let shapes = vec![Shape::Dot, Shape::Circle(1.5), Shape::Rect { w: 2, h: 3 }];
    let bytes = pickle::to_vec(&shapes).unwrap();
    assert_eq!(pickle::from_slice::<Vec<Shape>>(&bytes).unwrap(), shapes);
    let bytes = pickle::to_vec(&(u64::MAX, Some(-3i8), "x")).unwrap();
    assert_eq!(
        pickle::from_slice::<(u64, Option<i8>, String)>(&bytes).unwrap(),
        (u64::MAX, Some(-3), "x".to_string())
    );
}
