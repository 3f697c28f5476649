//! The native helpers: scorecard lookups and the `in` fast path behave as the
//! script code they replace.

use rhai::packages::{BasicArrayPackage, BasicMapPackage, LogicPackage, Package};
use rhai::{Dynamic, Engine};

use super::super::engine::{Limits, build};
use super::super::{Factor, Outcome, StageErrorKind};
use super::{client_json, failure, request, run, run_with};

/// The `points` the default scoring tables give, as `set_score` records them.
fn factors_of(script: &str) -> Vec<Factor> {
    let r = run(&request("1.00"), &[script]);
    assert!(r.failed_stage().is_none(), "{script}: {r:#?}");
    r.factors
}

#[test]
fn points_from_and_points_under_read_a_table_top_down() {
    let tables = r#"
        const FROM = [#{ from: 91, points: 40 }, #{ from: 31, points: 20 }, #{ from: 1, points: 5 }];
        const UNDER = [#{ under: 20, points: 25 }, #{ under: 60, points: 5 }];
        let f = [];
    "#;
    let cases = [
        ("points_from(0, FROM)", 0),
        ("points_from(1, FROM)", 5),
        ("points_from(30.99, FROM)", 5),
        ("points_from(31, FROM)", 20),
        ("points_from(31.0, FROM)", 20),
        ("points_from(500, FROM)", 40),
        ("points_from(-3, FROM)", 0),
        ("points_from(5, [])", 0),
        ("points_under(19.9, UNDER)", 25),
        ("points_under(20, UNDER)", 5),
        ("points_under(60, UNDER)", 0),
    ];
    for (call, points) in cases {
        let script = format!("{tables} f.add_factor(\"X\", {call}); set_score(0, \"A\", f);");
        let expected: Vec<Factor> = (points != 0)
            .then(|| Factor {
                code: "X".into(),
                points,
            })
            .into_iter()
            .collect();
        assert_eq!(factors_of(&script), expected, "{call}");
    }
}

#[test]
fn the_native_helpers_match_the_script_functions_they_replace() {
    // The script versions the default scoring policy used to carry.
    let script_fns = r#"
        fn points_from(value, table) { for line in table { if value >= line.from { return line.points; } } 0 }
        fn points_under(value, table) { for line in table { if value < line.under { return line.points; } } 0 }
        fn count(code, points) { if points != 0 { this.push(#{ code: code, points: points }); } }
    "#;
    let body = |add: &str| {
        format!(
            r#"
            const T = [#{{ from: 50, points: 20 }}, #{{ from: 25.5, points: 10 }}, #{{ from: 10, points: 5 }}];
            const U = [#{{ under: 20, points: 25 }}, #{{ under: 40, points: 15 }}];
            let f = [];
            for v in [-1, 0, 9, 10, 25, 25.5, 26, 49.99, 50, 1000] {{
                f.{add}("F", points_from(v, T));
                f.{add}("U", points_under(v, U));
                f.{add}("Z", 0);
            }}
            set_score(0, "A", f);
            "#
        )
    };
    let native = factors_of(&body("add_factor"));
    let scripted = factors_of(&format!("{script_fns}{}", body("count")));
    assert_eq!(native, scripted);
    assert_eq!(native.len(), 14);
}

#[test]
fn a_policy_may_define_its_own_helper_of_the_same_name() {
    let r = run(
        &request("1.00"),
        &[
            "fn points_from(value, table) { 7 }\nlet f = []; f.add_factor(\"X\", points_from(1, [])); set_score(7, \"A\", f);",
        ],
    );
    assert_eq!(r.factors[0].points, 7, "{r:#?}");
}

#[test]
fn bad_tables_and_values_are_policy_errors() {
    for (script, expected) in [
        (
            "points_from(1, [#{ points: 5 }])",
            "line 1 of the table has no number `from`",
        ),
        (
            "points_from(1, [5])",
            "line 1 of the table has no number `from`",
        ),
        (
            "points_from(1, [#{ from: \"1\", points: 5 }])",
            "no number `from`",
        ),
        (
            "points_from(1, [#{ from: 0 }])",
            "line 1 of the table has no `points`",
        ),
        (
            "points_under(1, [#{ from: 0, points: 1 }])",
            "no number `under`",
        ),
        (
            "points_from((), [#{ from: 0, points: 1 }])",
            "the value must be a number, got ()",
        ),
        (
            "points_from(\"1\", [#{ from: 0, points: 1 }])",
            "must be a number",
        ),
    ] {
        let r = run(&request("1.00"), &[script]);
        let err = failure(&r);
        assert_eq!(err.kind, StageErrorKind::Runtime, "{script}");
        assert!(err.message.contains(expected), "{script}: {err:?}");
    }
}

#[test]
fn add_factor_cannot_change_an_input_and_respects_the_array_limit() {
    let r = run(
        &request("1.00"),
        &[
            "client.risk.factors.add_factor(\"X\", 1);",
            "if client.risk.factors.len() != 0 { decline(\"LEAK\", \"m\"); }",
        ],
    );
    assert_eq!(failure(&r).kind, StageErrorKind::Runtime);
    assert_eq!(r.trace.len(), 1);
    let small = Limits {
        max_array_size: 10,
        ..Limits::default()
    };
    let r = run_with(
        small,
        &request("1.00"),
        &["let f = []; for i in 0..20 { f.add_factor(\"X\", 1); }"],
    );
    assert_eq!(failure(&r).kind, StageErrorKind::DataTooLarge, "{r:#?}");
}

/// rhai's own engine with the packages `in` needs, without the fast path.
fn plain_engine() -> Engine {
    let mut engine = Engine::new_raw();
    for module in [
        LogicPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(module);
    }
    engine
}

#[test]
fn in_a_list_of_strings_matches_rhai() {
    let sandbox = build(&Limits::default());
    let plain = plain_engine();
    let lists = [
        "[]",
        r#"["receivership", "liquidation"]"#,
        r#"["a", (), 1, 2.5, true, 'a', #{a: 1}, [1], "b"]"#,
        r#"[(), "a"]"#,
        r#"["ab", 'a']"#,
    ];
    for list in lists {
        for value in [r#""a""#, r#""b""#, r#""liquidation""#, r#""""#, r#""ab""#] {
            for form in [
                format!("{value} in {list}"),
                format!("{list}.contains({value})"),
                format!("let l = {list}; let f = || l; {value} in l"),
                format!("let v = {value}; let f = || v; v in {list}"),
            ] {
                let fast = sandbox.eval::<Dynamic>(&form).map(|v| v.as_bool());
                let generic = plain.eval::<Dynamic>(&form).map(|v| v.as_bool());
                match (&fast, &generic) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{form}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{form}: {fast:?} vs {generic:?}"),
                }
            }
        }
    }
}

#[test]
fn in_an_input_list_is_allowed_on_constants() {
    let r = run(
        &request("1.00"),
        &[
            r#"if "X" in client.risk.factors || client.name in ["Dupont SA"] { note("SEEN", "m"); }"#,
        ],
    );
    assert_eq!(r.outcome, Outcome::Approved);
    assert_eq!(r.reasons[0].code, "SEEN", "{r:#?}");
    assert_eq!(client_json()["name"], "Dupont SA");
}
