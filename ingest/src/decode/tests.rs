use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use kho_store::{RowError, StreamDef, pack};
use proptest::prelude::*;

use super::{Format, Rejection, decode};

/// No plausibility window: what these tests check is the decoding.
const ANY_TIME: (i64, i64) = (i64::MIN, i64::MAX);

fn stream(name: &str) -> StreamDef {
    pack::province_pack()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap()
}

fn ok(name: &str, format: Format, body: &str) -> RecordBatch {
    decode(
        &stream(name),
        format,
        body.as_bytes(),
        "finance:test",
        1000,
        ANY_TIME,
    )
    .unwrap_or_else(|r| panic!("{r:?}"))
}

fn errors(name: &str, format: Format, body: &str) -> Vec<RowError> {
    match decode(&stream(name), format, body.as_bytes(), "t", 1000, ANY_TIME) {
        Err(Rejection::Invalid { errors, .. }) => errors,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn err(row: usize, field: Option<&str>, message: &str) -> RowError {
    RowError::new(row, field.map(str::to_owned), message)
}

const REV: &str = r#"{"event_type":"revenue_collected","entity_id":"B-1","occurred_at":"2021-03-01T08:00:00+07:00","fiscal_year":2021,"agency_code":"STC","flow":"revenue","category_code":"1001","amount_vnd":1500000}"#;

#[test]
fn ndjson_rows_become_typed_columns() {
    let body = format!(
        "{REV}\n\n{}\n",
        REV.replace(
            r#""event_type""#,
            r#""event_id":"0190F3A4-0000-7000-8000-00000000000A","event_type""#
        )
    );
    let b = ok("finance.budget", Format::Ndjson, &body);
    assert_eq!(b.num_rows(), 2);
    let ids = b.column(0).as_string::<i32>();
    let assigned = uuid::Uuid::parse_str(ids.value(0)).unwrap();
    assert_eq!(
        assigned.get_version_num(),
        7,
        "server-assigned ids are UUIDv7"
    );
    assert_eq!(
        ids.value(1),
        "0190f3a4-0000-7000-8000-00000000000a",
        "canonical form"
    );
    let occurred = b.column(3).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        occurred.value(0),
        1_614_560_400_000_000,
        "08:00+07:00 is 01:00Z"
    );
    assert_eq!(
        b.column_by_name("fiscal_year")
            .unwrap()
            .as_primitive::<Int32Type>()
            .value(0),
        2021
    );
    assert_eq!(
        b.column_by_name("amount_vnd")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(1),
        1_500_000
    );
    assert!(b.column_by_name("reverses_event_id").unwrap().is_null(0));
    assert_eq!(
        b.column_by_name("source")
            .unwrap()
            .as_string::<i32>()
            .value(1),
        "finance:test"
    );
    assert_eq!(
        b.column_by_name("recorded_at")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        0
    );
}

#[test]
fn json_array_and_csv_read_the_same_event() {
    let id = r#""event_id":"0190f3a4-0000-7000-8000-00000000000b","#;
    let json = format!("[{}]", REV.replacen('{', &format!("{{{id}"), 1));
    let csv = "event_id,event_type,entity_id,occurred_at,fiscal_year,agency_code,flow,category_code,amount_vnd,reverses_event_id\n\
               0190f3a4-0000-7000-8000-00000000000b,revenue_collected,B-1,2021-03-01T08:00:00+07:00,2021,STC,revenue,1001,1500000,\n";
    let a = ok("finance.budget", Format::JsonArray, &json);
    let c = ok("finance.budget", Format::Csv, csv);
    assert_eq!(a, c);
}

#[test]
fn each_bad_field_is_named() {
    let cases: Vec<(&str, &str, RowError)> = vec![
        (
            "\"amount_vnd\":1500000",
            "\"amount_vnd\":\"1500000\"",
            err(
                1,
                Some("amount_vnd"),
                "expected a 64-bit integer, found a string",
            ),
        ),
        (
            ",\"agency_code\":\"STC\"",
            "",
            err(
                1,
                Some("agency_code"),
                "required for event type revenue_collected",
            ),
        ),
        (
            "\"flow\":\"revenue\"",
            "\"flow\":\"income\"",
            err(
                1,
                Some("flow"),
                "must be one of revenue, expenditure; found \"income\"",
            ),
        ),
        (
            "\"flow\":\"revenue\"",
            "\"flow\":\"expenditure\"",
            err(
                1,
                Some("flow"),
                "must be revenue for event type revenue_collected; found \"expenditure\"",
            ),
        ),
        (
            "\"amount_vnd\":1500000",
            "\"amount_vnd\":0",
            err(1, Some("amount_vnd"), "must be greater than 0; found 0"),
        ),
        (
            "\"amount_vnd\":1500000",
            "\"amount_vnd\":-5",
            err(1, Some("amount_vnd"), "must be greater than 0; found -5"),
        ),
        (
            "\"fiscal_year\":2021",
            "\"fiscal_year\":2021,\"colour\":\"red\"",
            err(
                1,
                Some("colour"),
                "unknown field: finance.budget has no column colour",
            ),
        ),
        (
            "\"fiscal_year\":2021",
            "\"fiscal_year\":2021,\"reverses_event_id\":\"x\"",
            err(
                1,
                Some("reverses_event_id"),
                "not used by event type revenue_collected",
            ),
        ),
        (
            "\"fiscal_year\":2021",
            "\"fiscal_year\":2021,\"source\":\"me\"",
            err(1, Some("source"), "set by the server; leave it out"),
        ),
        (
            "+07:00",
            "",
            err(
                1,
                Some("occurred_at"),
                "\"2021-03-01T08:00:00\" is not an RFC 3339 timestamp with an offset, like 2021-03-01T08:00:00+07:00",
            ),
        ),
        (
            "revenue_collected",
            "revenue_raised",
            err(
                1,
                Some("event_type"),
                "unknown event type \"revenue_raised\": finance.budget takes estimate_assigned, revenue_collected, expenditure_paid, entry_reversed, event_retracted",
            ),
        ),
        (
            "\"entity_id\":\"B-1\"",
            "\"entity_id\":\" \"",
            err(1, Some("entity_id"), "must not be empty"),
        ),
        (
            "\"fiscal_year\":2021",
            "\"fiscal_year\":2021.5",
            err(1, Some("fiscal_year"), "expected an integer, found 2021.5"),
        ),
        (
            "\"fiscal_year\":2021",
            "\"fiscal_year\":{\"y\":1}",
            err(
                1,
                Some("fiscal_year"),
                "expected an integer, found an object",
            ),
        ),
    ];
    for (from, to, expected) in cases {
        let body = REV.replacen(from, to, 1);
        assert_ne!(body, REV, "case {from} -> {to} must change the body");
        assert_eq!(
            errors("finance.budget", Format::Ndjson, &body),
            vec![expected],
            "{body}"
        );
    }
}

#[test]
fn every_stream_takes_a_retraction_with_its_reason() {
    const TARGET: &str = "00000000-0000-7000-8000-000000000001";
    for def in kho_store::pack::province_pack() {
        let line = format!(
            r#"{{"event_type":"event_retracted","entity_id":"X-1","occurred_at":"2021-03-01T08:00:00+07:00","retracts_event_id":"{TARGET}","retraction_reason":"sent twice"}}"#
        );
        let b = ok(&def.name, Format::Ndjson, &line);
        assert_eq!(b.num_rows(), 1, "{}", def.name);
        let no_reason = line.replace(r#","retraction_reason":"sent twice""#, "");
        assert_eq!(
            errors(&def.name, Format::Ndjson, &no_reason),
            vec![err(
                1,
                Some("retraction_reason"),
                "required for event type event_retracted"
            )],
            "{}",
            def.name
        );
    }
    // A retraction carries nothing else: the payload of the event it takes out is refused.
    let with_amount = format!(
        r#"{{"event_type":"event_retracted","entity_id":"X-1","occurred_at":"2021-03-01T08:00:00+07:00","retracts_event_id":"{TARGET}","retraction_reason":"x","amount_vnd":5}}"#
    );
    assert_eq!(
        errors("finance.budget", Format::Ndjson, &with_amount),
        vec![err(
            1,
            Some("amount_vnd"),
            "not used by event type event_retracted"
        )]
    );
}

#[test]
fn malformed_rows_are_counted_and_the_rest_still_checked() {
    let body = format!(
        "{REV}\n{{\"event_type\": \n{}\n",
        REV.replace("\"amount_vnd\":1500000", "\"amount_vnd\":0")
    );
    let errs = errors("finance.budget", Format::Ndjson, &body);
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].row, 2);
    assert_eq!(errs[0].field, None);
    assert!(
        errs[0]
            .message
            .starts_with("malformed JSON at column 15: EOF while parsing"),
        "{}",
        errs[0].message
    );
    assert_eq!(
        errs[1],
        err(3, Some("amount_vnd"), "must be greater than 0; found 0")
    );

    let errs = errors("finance.budget", Format::JsonArray, &format!("[{REV}, 5]"));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].row, 2);
    assert!(
        errs[0].message.contains("expected an event object"),
        "{}",
        errs[0].message
    );
    let errs = errors("finance.budget", Format::JsonArray, REV);
    assert!(
        errs[0]
            .message
            .contains("expected a JSON array of event objects"),
        "{}",
        errs[0].message
    );
}

#[test]
fn dossier_rules() {
    let online = r#"{"event_type":"dossier_received","entity_id":"HS-1","occurred_at":"2021-03-01T08:00:00+07:00","procedure_code":"1.001","agency_code":"SO-TP","level":2,"channel":"online","due_at":"2021-03-10T17:00:00+07:00"}"#;
    assert_eq!(
        errors("service.dossiers", Format::Ndjson, online),
        vec![err(
            1,
            Some("level"),
            "an online dossier must have level 3 or 4; found 2"
        )]
    );
    ok(
        "service.dossiers",
        Format::Ndjson,
        &online.replace("\"level\":2", "\"level\":3"),
    );
    ok(
        "service.dossiers",
        Format::Ndjson,
        &online.replace("online", "counter"),
    );
    assert_eq!(
        errors(
            "service.dossiers",
            Format::Ndjson,
            &online.replace("\"level\":2", "\"level\":5")
        ),
        vec![err(1, Some("level"), "must be one of 2, 3, 4; found 5")]
    );
    let resolved = r#"{"event_type":"dossier_resolved","entity_id":"HS-1","occurred_at":"2021-03-02T08:00:00+07:00","outcome":"approved","channel":"online"}"#;
    assert_eq!(
        errors("service.dossiers", Format::Ndjson, resolved),
        vec![err(
            1,
            Some("channel"),
            "not used by event type dossier_resolved"
        )]
    );
}

#[test]
fn batch_level_limits() {
    assert_eq!(
        decode(
            &stream("finance.budget"),
            Format::Ndjson,
            b"\n\n",
            "t",
            10,
            ANY_TIME
        ),
        Err(Rejection::Empty)
    );
    let body = format!("{REV}\n{REV}\n{REV}\n");
    assert_eq!(
        decode(
            &stream("finance.budget"),
            Format::Ndjson,
            body.as_bytes(),
            "t",
            2,
            ANY_TIME
        ),
        Err(Rejection::TooManyEvents { max: 2 })
    );
    let dup = REV.replace(
        r#""event_type""#,
        r#""event_id":"0190f3a4-0000-7000-8000-00000000000c","event_type""#,
    );
    assert_eq!(
        errors("finance.budget", Format::Ndjson, &format!("{dup}\n{dup}")),
        vec![err(
            2,
            Some("event_id"),
            "event_id 0190f3a4-0000-7000-8000-00000000000c repeats row 1 of this batch"
        )]
    );
    // Past 100 problems, the list stops and the count goes on.
    let bad = REV.replace("\"amount_vnd\":1500000", "\"amount_vnd\":-1");
    let body = vec![bad.as_str(); 150].join("\n");
    match decode(
        &stream("finance.budget"),
        Format::Ndjson,
        body.as_bytes(),
        "t",
        1000,
        ANY_TIME,
    ) {
        Err(Rejection::Invalid { errors, total }) => {
            assert_eq!((errors.len(), total), (100, 150));
            assert_eq!(errors[99].row, 100);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_header_and_shape_problems() {
    let errs = errors(
        "finance.budget",
        Format::Csv,
        "event_type,entity_id,occurred_at,colour\nrevenue_collected,B,2021-03-01T08:00:00Z,red\n",
    );
    assert_eq!(
        errs[0],
        err(0, Some("colour"), "unknown column in the CSV header")
    );
    let errs = errors(
        "reference.targets",
        Format::Csv,
        "event_type,entity_id,occurred_at,kpi,year,target_value\ntarget_set,t1,2021-01-01T00:00:00+07:00,online_rate,2021\n",
    );
    assert_eq!(
        errs,
        vec![err(1, None, "row has 5 fields but the header has 6")]
    );
    let b = ok(
        "reference.targets",
        Format::Csv,
        "event_type,entity_id,occurred_at,kpi,year,target_value\ntarget_set,t1,2021-01-01T00:00:00+07:00,online_rate,2021,0.3\n",
    );
    assert_eq!(b.num_rows(), 1);
}

#[test]
fn content_types() {
    assert_eq!(
        Format::from_content_type(Some("application/x-ndjson")),
        Ok(Format::Ndjson)
    );
    assert_eq!(
        Format::from_content_type(Some("Application/JSON; charset=utf-8")),
        Ok(Format::JsonArray)
    );
    assert_eq!(Format::from_content_type(Some("text/csv")), Ok(Format::Csv));
    assert!(
        Format::from_content_type(Some("text/csv; charset=latin1"))
            .unwrap_err()
            .contains("charset latin1")
    );
    assert!(
        Format::from_content_type(Some("application/xml"))
            .unwrap_err()
            .contains("application/xml is not supported")
    );
    assert!(Format::from_content_type(None).is_err());
}

/// A valid budget event with arbitrary values.
#[derive(Debug, Clone)]
struct Ev {
    id: u128,
    year: i32,
    agency: String,
    category: String,
    amount: i64,
    micros: i64,
    revenue: bool,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        any::<u128>(),
        2000i32..2100,
        "[A-Z][A-Z0-9_-]{0,8}",
        // Vietnamese letters, spaces, quotes and commas: what CSV must quote.
        "[a-zA-Z0-9 ,\"ăâđêôơưạảấầẩẫậ]{1,12}",
        1i64..=kho_store::schema::MAX_VND,
        0i64..4_102_444_800_000_000,
        any::<bool>(),
    )
        .prop_map(|(id, year, agency, category, amount, micros, revenue)| Ev {
            id: (id & !(0xF << 76)) | (0x4 << 76), // a valid v4 layout
            year,
            agency,
            category,
            amount,
            micros,
            revenue,
        })
}

fn ts(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn as_json(e: &Ev) -> serde_json::Value {
    serde_json::json!({
        "event_id": uuid::Uuid::from_u128(e.id).to_string(),
        "event_type": if e.revenue { "revenue_collected" } else { "expenditure_paid" },
        "entity_id": format!("{}-{}", e.agency, e.year),
        "occurred_at": ts(e.micros),
        "fiscal_year": e.year,
        "agency_code": e.agency,
        "flow": if e.revenue { "revenue" } else { "expenditure" },
        "category_code": e.category,
        "amount_vnd": e.amount,
    })
}

fn as_csv(events: &[Ev]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "event_id",
        "event_type",
        "entity_id",
        "occurred_at",
        "fiscal_year",
        "agency_code",
        "flow",
        "category_code",
        "amount_vnd",
    ])
    .unwrap();
    for e in events {
        let j = as_json(e);
        let cell = |k: &str| match &j[k] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        w.write_record(
            [
                "event_id",
                "event_type",
                "entity_id",
                "occurred_at",
                "fiscal_year",
                "agency_code",
                "flow",
                "category_code",
                "amount_vnd",
            ]
            .map(cell),
        )
        .unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

proptest! {
    /// The three formats decode the same events to the same batch, with the values sent.
    #[test]
    fn formats_agree_and_keep_values(events in proptest::collection::vec(ev(), 1..40)) {
        let mut seen = std::collections::HashSet::new();
        let events: Vec<Ev> = events.into_iter().filter(|e| seen.insert(e.id)).collect();
        let json: Vec<serde_json::Value> = events.iter().map(as_json).collect();
        let nd = json.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        let a = ok("finance.budget", Format::Ndjson, &nd);
        let b = ok("finance.budget", Format::JsonArray, &serde_json::Value::Array(json).to_string());
        let c = ok("finance.budget", Format::Csv, &as_csv(&events));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        let amounts = a.column_by_name("amount_vnd").unwrap().as_primitive::<Int64Type>();
        let times = a.column(3).as_primitive::<TimestampMicrosecondType>();
        let cats = a.column_by_name("category_code").unwrap().as_string::<i32>();
        for (i, e) in events.iter().enumerate() {
            prop_assert_eq!(amounts.value(i), e.amount);
            prop_assert_eq!(times.value(i), e.micros);
            prop_assert_eq!(cats.value(i), e.category.as_str());
        }
    }
}

#[test]
fn implausible_times_and_amounts_are_field_errors() {
    let window = (
        chrono::DateTime::parse_from_rfc3339("1975-01-01T00:00:00Z")
            .unwrap()
            .timestamp_micros(),
        chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .timestamp_micros(),
    );
    let with = |from: &str, to: &str| REV.replace(from, to);
    let check = |body: &str| match decode(
        &stream("finance.budget"),
        Format::Ndjson,
        body.as_bytes(),
        "t",
        10,
        window,
    ) {
        Err(Rejection::Invalid { errors, .. }) => errors,
        other => panic!("{other:?}"),
    };
    for when in [
        "2201-01-01T00:00:00Z",
        "1900-06-01T00:00:00+07:00",
        "2030-01-01T00:00:00Z",
    ] {
        let e = check(&with("2021-03-01T08:00:00+07:00", when));
        assert_eq!(e[0].field.as_deref(), Some("occurred_at"), "{when}: {e:?}");
        assert!(e[0].message.contains("plausible window"), "{e:?}");
    }
    let e = check(&with(
        "2021-03-01T08:00:00+07:00",
        "9999-12-31T23:59:59-23:59",
    ));
    assert!(e[0].message.contains("year 10000"), "{e:?}");
    let e = check(&with("2021-03-01T08:00:00+07:00", "2021-06-30T23:59:60Z"));
    assert!(e[0].message.contains("leap second"), "{e:?}");
    let e = check(&with(
        "\"amount_vnd\":1500000",
        "\"amount_vnd\":9223372036854775807",
    ));
    assert_eq!(e[0].field.as_deref(), Some("amount_vnd"));
    assert!(e[0].message.contains("largest plausible"), "{e:?}");
    // The edge: exactly the largest amount is fine.
    let ok = with("\"amount_vnd\":1500000", "\"amount_vnd\":1000000000000000");
    assert!(
        decode(
            &stream("finance.budget"),
            Format::Ndjson,
            ok.as_bytes(),
            "t",
            10,
            window
        )
        .is_ok()
    );
}
