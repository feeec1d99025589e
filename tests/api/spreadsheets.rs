//! Every CSV the service writes is safe to open in a spreadsheet: a text cell that would start a
//! formula (`=`, `+`, `-`, `@`, tab, carriage return) comes out with a `'` before it, while
//! numbers, negative ones too, stay numbers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

const ROOT_CAUSE: &str = "=HYPERLINK(\"http://x\",\"y\")";
const ROOT_CAUSE_2: &str = "-2+3";
const DIVISION: &str = "+cmd|' /C calc'!A0";
const CONTRACT: &str = "@SUM(1+1)";

/// Polls a report (JSON) until `done` holds for its rows.
async fn report_until(app: &TestApp, path: &str, done: impl Fn(&[Value]) -> bool) {
    let mut rows = Vec::new();
    for _ in 0..500 {
        let answer = app.get(path, &app.quality_manager).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        rows = answer.body["rows"].as_array().unwrap().clone();
        if done(&rows) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{path} never got there: {rows:?}");
}

/// The report as CSV: its header and records.
async fn csv(app: &TestApp, path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let answer = app.request(Method::GET, path, Some(&app.quality_manager), &[("accept", "text/csv")], None).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}");
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("text/csv"), "{path}");
    let text = answer.body.as_str().unwrap_or_else(|| panic!("{path}: not text: {}", answer.body)).to_owned();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let records = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    (header, records)
}

/// The cells of one column.
fn column<'a>(header: &[String], records: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let at = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    records.iter().map(|r| r[at].as_str()).collect()
}

/// No cell starts a formula unless it is a number.
fn assert_no_live_formula(path: &str, records: &[Vec<String>]) {
    for cell in records.iter().flatten() {
        if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            assert!(cell.parse::<f64>().is_ok(), "{path}: a live formula {cell:?} in {records:?}");
        }
    }
}

pub async fn every_csv_neutralises_formulas_in_text_cells_and_keeps_numbers(app: TestApp) {
    // A contract whose id a spreadsheet would take for a formula, with SLA targets (for /stats/sla).
    let path = format!("/api/v1/contracts/{}", urlencoding(CONTRACT));
    let terms = json!({"customer": "Formula Kft.", "sla": {"first_contact_minutes": 480, "resolution_minutes": 2400}});
    let saved = app.request(Method::PUT, &path, Some(&app.admin), &[], Some(terms)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["id"], CONTRACT, "{}", saved.body);

    // A division with such an id (escalations name only registered divisions).
    let path = format!("/api/v1/divisions/{}", urlencoding(DIVISION));
    let division = json!({"name": "Formula division", "notification_email": "formula@divisions.example"});
    let saved = app.request(Method::PUT, &path, Some(&app.admin), &[], Some(division)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);

    // Two complaints through escalation to that division, resolved with such root causes.
    for root_cause in [ROOT_CAUSE, ROOT_CAUSE_2] {
        let created = app
            .create_ticket_with(json!({
                "channel": "phone",
                "reporter": {"name": "Kovács Anna", "email": "kovacs.anna@example.hu"},
                "subject": "Számlázási panasz",
                "message": "Kétszer számláztak.",
                "contract_id": CONTRACT,
            }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        for (action, body) in [
            ("acknowledge", json!({})),
            ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
            ("escalate", json!({"division": DIVISION, "reason": "billing"})),
            ("escalation-answer", json!({"outcome": "credited"})),
            ("replies", json!({"body": "A divízió jóváírta a különbözetet."})),
            ("resolve", json!({"resolution": "Jóváírtuk.", "root_cause": root_cause, "within_own_authority": false})),
        ] {
            let answer = app.act(&id, action, body).await;
            assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.body);
        }
    }
    report_until(&app, "/api/v1/stats/root-causes?period=day", |rows| rows.len() == 2).await;
    report_until(&app, "/api/v1/stats/sla?by=contract", |rows| rows.iter().any(|r| r["group"] == CONTRACT)).await;

    // Every CSV endpoint, with every text column a user can fill.
    let (header, records) = csv(&app, "/api/v1/stats/root-causes?period=day").await;
    let mut causes = column(&header, &records, "root_cause");
    causes.sort();
    assert_eq!(causes, [format!("'{ROOT_CAUSE_2}"), format!("'{ROOT_CAUSE}")], "{records:?}");
    assert_eq!(column(&header, &records, "complaints_resolved"), ["1", "1"], "numbers stay numbers");
    assert_no_live_formula("root-causes", &records);

    let (header, records) = csv(&app, "/api/v1/stats/divisions?period=day").await;
    assert_eq!(column(&header, &records, "division"), [format!("'{DIVISION}")], "{records:?}");
    assert_eq!(column(&header, &records, "escalations"), ["2"]);
    assert_no_live_formula("divisions", &records);

    let (header, records) = csv(&app, "/api/v1/stats/summary?period=day&by=division").await;
    assert!(column(&header, &records, "group").contains(&format!("'{DIVISION}").as_str()), "{records:?}");
    assert_no_live_formula("summary", &records);

    let (header, records) = csv(&app, "/api/v1/stats/sla?by=contract").await;
    let groups = column(&header, &records, "group");
    assert!(groups.contains(&format!("'{CONTRACT}").as_str()), "{records:?}");
    assert!(!groups.contains(&CONTRACT), "{records:?}");
    assert_no_live_formula("sla", &records);

    // The JSON is the data as it is: only the CSV is for spreadsheets.
    let json = app.get("/api/v1/stats/divisions?period=day", &app.quality_manager).await;
    assert_eq!(json.body["rows"][0]["division"], DIVISION);
}

/// Percent-encodes a path segment.
fn urlencoding(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
