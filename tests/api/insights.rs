//! The quality dashboard and the replay view in headless Chromium.
//!
//! The dashboard over a seeded history (the benchmark's generator, `ticket_bench::history`):
//! every chart's table equals the API's figures for the same query, every bar carries its
//! table's value, a drill-down lists exactly the tickets counted, each CSV equals its table,
//! the page works with JavaScript off, and axe-core finds no serious or critical violation.
//! The replay view over a scripted history: the time control shows what `?as_of=` gives, each
//! event's changes are exactly the differences of the ticket before and after it, causation
//! links lead to the causing event. Screenshots go to `target/console-screenshots/`.

use std::collections::HashMap;
use std::time::Duration;

use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{PASSWORD, put_staff};
use crate::console_browser::{axe, click_and_wait, screenshot, sign_in, with_browser};
use crate::harness::{Backend, TestApp, spawn_app_with};

const TICKETS: usize = 1_500;
const DAYS: i64 = 120;
const FROM: &str = "2024-01-01";
const TO: &str = "2024-04-29";

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Appends the generated history with the server stopped, then waits for every read model.
async fn seed(app: &mut TestApp) {
    // A default contract with targets: every ticket runs SLA clocks.
    // The contracts the generated tickets are received under, each with its targets.
    for (contract, first_contact, resolution) in [("general", 480, 2400), ("premium", 120, 960)] {
        let terms = json!({"customer": contract, "sla": {"first_contact_minutes": first_contact, "resolution_minutes": resolution}});
        let path = format!("/api/v1/contracts/{contract}");
        let saved = app.request(reqwest::Method::PUT, &path, Some(&app.admin), &[], Some(terms)).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    }
    let default = json!({"contract_id": "general"});
    let set = app.request(reqwest::Method::PUT, "/api/v1/default-contract", Some(&app.admin), &[], Some(default)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    app.stop();
    let opened = event_store::open(app.database_url()).await.expect("the store opens");
    let history = ticket_bench::history::generate(TICKETS, DAYS);
    ticket_bench::history::load(&opened.store, TICKETS, &history).await.expect("the history loads");
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    let head: i64 = match &opened.database {
        event_store::Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await.unwrap(),
        event_store::Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    };
    let events = history.len();
    drop(opened);
    app.start();
    // Every read model at the log's end: the summary counts every ticket received.
    let path = format!("/api/v1/stats/summary?from={FROM}&to=2024-12-31&period=quarter");
    for _ in 0..600 {
        let ready = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
        let ready: Value = ready.json().await.unwrap_or_default();
        let behind = ready["projections"]
            .as_array()
            .is_none_or(|list| list.is_empty() || list.iter().any(|p| p["position"].as_i64().unwrap_or(0) < head));
        let summary = app.get(&path, &app.quality_manager).await;
        let received: i64 = summary.body["rows"]
            .as_array()
            .map_or(0, |rows| rows.iter().map(|r| r["received"].as_i64().unwrap_or(0)).sum());
        if received == TICKETS as i64 && !behind {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the read models did not catch up with {events} seeded events (head {head})");
}

/// A figure's table as the page shows it: (row label, cells).
async fn table(client: &Client, chart: &str) -> Vec<(String, Vec<String>)> {
    let found = client
        .execute(
            "return Array.from(document.querySelectorAll('table.figures[data-chart=\"' + arguments[0] + '\"] tbody tr'))\
               .map(tr => [tr.querySelector('th').textContent.trim(), Array.from(tr.querySelectorAll('td')).map(td => td.dataset.value)]);",
            vec![json!(chart)],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// The chart's marks: (row, column, value).
async fn marks(client: &Client, chart: &str) -> Vec<(String, String, String)> {
    let found = client
        .execute(
            "return Array.from(document.querySelectorAll('svg[data-chart=\"' + arguments[0] + '\"] [data-value]'))\
               .map(m => [m.dataset.row, m.dataset.column, m.dataset.value]);",
            vec![json!(chart)],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// A JSON number as the page writes it ("" for null).
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 { format!("{}", f as i64) } else { format!("{f}") }
        }
        other => panic!("not a number: {other}"),
    }
}

fn rows(answer: &crate::harness::Answer) -> Vec<Value> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["rows"].as_array().cloned().unwrap()
}

/// The ticket numbers a drill-down list holds, over all its pages.
async fn drill_numbers(console: &crate::console::Session, href: &str) -> Vec<i64> {
    let mut numbers = Vec::new();
    let mut next = Some(href.to_owned());
    while let Some(path) = next.take() {
        let page = console.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let body = page.html.split("<tbody>").nth(1).unwrap_or("").split("</tbody>").next().unwrap_or("");
        numbers.extend(
            body.split("href=\"/console/tickets/")
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap().parse::<i64>().unwrap()),
        );
        // The "next" link's tag, wherever its attributes stand.
        next = page
            .html
            .split("<a ")
            .find(|tag| tag.split('>').next().unwrap_or("").contains("id=\"drill-next\""))
            .map(|tag| tag.split("href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&"));
    }
    numbers
}

/// An attribute of the drill page's count paragraph.
fn count_attr(html: &str, name: &str) -> Option<i64> {
    let paragraph = html.split("id=\"drill-count\"").nth(1)?.split('>').next()?;
    paragraph.split(&format!("{name}=\"")).nth(1)?.split('"').next()?.parse().ok()
}

/// The API's answers a dashboard was checked against.
struct Expected<'a> {
    summary: &'a [Value],
    sla: &'a [Value],
    divisions: &'a [Value],
}

/// Follows every link of every figure's table on the open dashboard: each list counts exactly
/// what its value counts (and every non-empty value of a drillable column is a link).
async fn check_every_drill(client: &Client, console: &crate::console::Session, api: &Expected<'_>) {
    let found = client
        .execute(
            "return Array.from(document.querySelectorAll('table.figures')).flatMap(t => {\
               const columns = Array.from(t.querySelectorAll('thead th')).map(th => th.textContent.trim());\
               return Array.from(t.querySelectorAll('tbody tr')).flatMap(tr => {\
                 const row = tr.querySelector('th').textContent.trim();\
                 return Array.from(tr.querySelectorAll('td')).map((td, i) => {\
                   const a = td.querySelector('a.drill');\
                   return [t.dataset.chart, row, columns[i + 1], td.dataset.value, a ? a.getAttribute('href') : ''];\
                 });\
               });\
             });",
            vec![],
        )
        .await
        .unwrap();
    let cells: Vec<(String, String, String, String, String)> = serde_json::from_value(found).unwrap();
    let value_of = |chart: &str, row: &str, column: &str| -> f64 {
        cells.iter().find(|c| c.0 == chart && c.1 == row && c.2 == column).and_then(|c| c.3.parse().ok()).unwrap_or(0.0)
    };
    let monday = |day: &str| -> String {
        // The SLA rows name a month by its first day: the test's buckets are months.
        format!("{}-01", &day[..7])
    };
    let mut followed = 0;
    for (chart, row, column, value, href) in &cells {
        let drillable = !matches!(
            (chart.as_str(), column.as_str()),
            ("volume", "open_at_end") | ("complaints", "complaint_share") | ("root_causes", "share")
        );
        let v: f64 = value.parse().unwrap_or(0.0);
        assert_eq!(
            !href.is_empty(),
            drillable && v != 0.0,
            "{chart} {row} {column} = {value:?}: a link exactly where a non-empty value has a list"
        );
        if href.is_empty() {
            continue;
        }
        let page = console.get(href).await;
        assert_eq!(page.status, StatusCode::OK, "{href}");
        let count = count_attr(&page.html, "data-count").unwrap_or_else(|| panic!("{href}: no count"));
        let what = format!("{chart} {row} {column} = {value} → {count} listed");
        match (chart.as_str(), column.as_str()) {
            ("sla", _) => {
                let in_time = count_attr(&page.html, "data-in-time").unwrap();
                let target = column.trim_end_matches("_compliance");
                let met = api
                    .sla
                    .iter()
                    .find(|r| r["target"] == target && r["period_start"] == monday(row).as_str())
                    .map(|r| (r["met"].as_i64().unwrap(), r["met_in_time"].as_i64().unwrap()));
                assert_eq!(Some((count, in_time)), met, "{what}");
                assert!(((in_time as f64 / count as f64) - v).abs() < 0.0006, "{what}");
            }
            ("durations", _) => {
                let target = if column.starts_with("first_contact") { "first_contact" } else { "resolution" };
                let met = api
                    .sla
                    .iter()
                    .find(|r| r["target"] == target && r["period_start"] == monday(row).as_str())
                    .and_then(|r| r["met"].as_i64());
                assert_eq!(Some(count), met, "{what}");
            }
            ("answers", division) => {
                let answers = api
                    .divisions
                    .iter()
                    .find(|r| r["period_start"] == row.as_str() && r["division"] == division)
                    .and_then(|r| r["answers"].as_i64());
                assert_eq!(Some(count), answers, "{what}");
            }
            ("satisfaction", "survey_response_rate") => {
                let sent = value_of("satisfaction", row, "surveys_sent");
                assert!(((count as f64 / sent) - v).abs() < 0.0006, "{what} of {sent} sent");
            }
            ("satisfaction", "survey_mean_score") => {
                let answered =
                    api.summary.iter().find(|r| r["period_start"] == row.as_str()).unwrap()["surveys_answered"]
                        .as_i64();
                assert_eq!(Some(count), answered, "{what}");
            }
            _ => assert_eq!(count as f64, v, "{what}"),
        }
        followed += 1;
    }
    assert!(followed > 30, "the dashboard's values were followed: {followed}");
}

pub async fn a_quality_manager_reads_the_dashboard_and_drills_into_a_bar(backend: Backend) {
    let Some(mut app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    seed(&mut app).await;
    put_staff(&app, "quinn", "quality_manager", PASSWORD);
    let shots = backend_name(backend);
    let query = format!("from={FROM}&to={TO}&bucket=month");
    let app = &app;
    with_browser(true, |client| async move {
        sign_in(&client, app, "quinn").await;
        client.goto(&format!("{}/console/insights?{query}", app.base)).await.unwrap();
        client.wait().for_element(Locator::Css("svg[data-chart=volume]")).await.unwrap();
        axe(&client, "the quality dashboard").await;
        screenshot(&client, &format!("{shots}-insights")).await;

        // The API's figures for the same query.
        let summary = rows(&app.get(&format!("/api/v1/stats/summary?from={FROM}&to={TO}&period=month"), &app.quality_manager).await);
        let divisions = rows(&app.get(&format!("/api/v1/stats/divisions?from={FROM}&to={TO}&period=month"), &app.quality_manager).await);
        let causes = rows(&app.get(&format!("/api/v1/stats/root-causes?from={FROM}&to={TO}&period=month"), &app.quality_manager).await);
        let sla = rows(&app.get(&format!("/api/v1/stats/sla?from={FROM}&to={TO}&period=month"), &app.quality_manager).await);
        assert_eq!(summary.len(), 4, "four months");
        for target in ["first_contact", "resolution", "statutory_answer"] {
            assert!(sla.iter().any(|r| r["target"] == target && r["met"].as_i64() > Some(0)), "{target} clocks count");
        }
        let received: i64 = summary.iter().map(|r| r["received"].as_i64().unwrap()).sum();
        assert!(received > 1_000, "the seeded tickets are counted: {received}");

        let by_bucket = |fields: &[&str]| -> Vec<(String, Vec<String>)> {
            summary
                .iter()
                .map(|r| (r["period_start"].as_str().unwrap().to_owned(), fields.iter().map(|f| cell(&r[*f])).collect()))
                .collect()
        };
        assert_eq!(table(&client, "volume").await, by_bucket(&["received", "resolved", "open_at_end"]));
        let complaints: Vec<(String, Vec<String>)> = summary
            .iter()
            .map(|r| {
                let (c, n) = (r["complaints_registered"].as_i64().unwrap(), r["received"].as_i64().unwrap());
                let share = if n > 0 { json!((c as f64 / n as f64 * 10_000.0).round() / 10_000.0) } else { Value::Null };
                (r["period_start"].as_str().unwrap().to_owned(), vec![cell(&json!(c)), cell(&share)])
            })
            .collect();
        assert_eq!(table(&client, "complaints").await, complaints);
        assert_eq!(table(&client, "satisfaction").await, by_bucket(&["surveys_sent", "survey_response_rate", "survey_mean_score"]));
        let scores: Vec<(String, Vec<String>)> = (1..=5)
            .map(|s| (s.to_string(), vec![summary.iter().map(|r| r[format!("score_{s}")].as_i64().unwrap()).sum::<i64>().to_string()]))
            .collect();
        assert_eq!(table(&client, "scores").await, scores);

        let of_target = |target: &str, fields: &[&str]| -> Vec<(String, Vec<String>)> {
            summary
                .iter()
                .map(|bucket| {
                    let start = bucket["period_start"].as_str().unwrap();
                    let row = sla.iter().find(|r| r["target"] == target && r["period_start"] == start);
                    (start.to_owned(), fields.iter().map(|f| row.map_or(String::new(), |r| cell(&r[*f]))).collect())
                })
                .collect()
        };
        let compliance: Vec<(String, Vec<String>)> = of_target("first_contact", &["compliance"])
            .into_iter()
            .zip(of_target("resolution", &["compliance"]))
            .zip(of_target("statutory_answer", &["compliance"]))
            .map(|(((b, mut a), (_, r)), (_, s))| {
                a.extend(r);
                a.extend(s);
                (b, a)
            })
            .collect();
        assert_eq!(table(&client, "sla").await, compliance);
        let durations: Vec<(String, Vec<String>)> = of_target("first_contact", &["business_hours_median", "business_hours_p90"])
            .into_iter()
            .zip(of_target("resolution", &["business_hours_median", "business_hours_p90"]))
            .map(|((b, mut a), (_, r))| {
                a.extend(r);
                (b, a)
            })
            .collect();
        assert_eq!(table(&client, "durations").await, durations);
        let bands = ["business_under_1h", "business_1h_to_4h", "business_4h_to_8h", "business_1d_to_2d", "business_2d_to_5d", "business_over_5d"];
        let band_sums: Vec<Vec<String>> = bands
            .iter()
            .map(|band| {
                ["first_contact", "resolution"]
                    .iter()
                    .map(|t| sla.iter().filter(|r| r["target"] == *t).map(|r| r[*band].as_i64().unwrap()).sum::<i64>().to_string())
                    .collect()
            })
            .collect();
        assert_eq!(table(&client, "bands").await.into_iter().map(|(_, cells)| cells).collect::<Vec<_>>(), band_sums);
        let mut per_division: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        for row in &divisions {
            let entry = per_division.entry(row["division"].as_str().unwrap().to_owned()).or_default();
            entry.0 += row["escalations"].as_i64().unwrap();
            entry.1 += row["answers"].as_i64().unwrap();
        }
        assert!(!per_division.is_empty(), "the history escalates");
        let expected: Vec<(String, Vec<String>)> =
            per_division.iter().map(|(d, (e, a))| (d.clone(), vec![e.to_string(), a.to_string()])).collect();
        assert_eq!(table(&client, "divisions").await, expected);
        let mut cause_sums: HashMap<String, i64> = HashMap::new();
        for row in &causes {
            *cause_sums.entry(row["root_cause"].as_str().unwrap().to_owned()).or_default() +=
                row["complaints_resolved"].as_i64().unwrap();
        }
        let shown = table(&client, "root_causes").await;
        assert!(!shown.is_empty());
        for (cause, cells) in &shown {
            assert_eq!(cells[0], cause_sums[cause].to_string(), "{cause}");
        }

        // Every bar carries its table's value.
        for chart in ["volume", "complaints", "sla", "durations", "bands", "divisions", "root_causes", "satisfaction", "scores"] {
            let figures = table(&client, chart).await;
            let columns: Vec<String> = serde_json::from_value(
                client
                    .execute(
                        "return Array.from(document.querySelectorAll('table.figures[data-chart=\"' + arguments[0] + '\"] thead th')).map(th => th.textContent.trim());",
                        vec![json!(chart)],
                    )
                    .await
                    .unwrap(),
            )
            .unwrap();
            let drawn = marks(&client, chart).await;
            assert!(!drawn.is_empty(), "{chart} draws marks");
            for (row, column, value) in drawn {
                let at = columns.iter().position(|c| *c == column).unwrap_or_else(|| panic!("{chart}: column {column}"));
                let (_, cells) = figures.iter().find(|(label, _)| *label == row).unwrap_or_else(|| panic!("{chart}: row {row}"));
                assert_eq!(cells[at - 1], value, "{chart} {row} {column}");
            }
        }

        // Each CSV is its table.
        let session = crate::console::sign_in(app, "quinn").await;
        for chart in ["volume", "complaints", "sla", "durations", "bands", "divisions", "answers", "root_causes", "satisfaction", "scores"] {
            let csv = session.get(&format!("/console/insights/{chart}.csv?{query}")).await;
            assert_eq!(csv.status, StatusCode::OK, "{chart}.csv");
            let mut reader = csv::Reader::from_reader(csv.html.as_bytes());
            let lines: Vec<(String, Vec<String>)> = reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[0].to_owned(), r.iter().skip(1).map(str::to_owned).collect())
                })
                .collect();
            assert_eq!(lines, table(&client, chart).await, "{chart}.csv");
        }

        // A drill-down lists exactly the tickets counted: March's received bar (its last day,
        // 31 March 2024, is 23 hours long), page by page, and the same tickets as the API's
        // list of tickets received in March (another read model).
        let march = summary[2]["received"].as_i64().unwrap();
        let bar = client
            .find(Locator::Css("svg[data-chart=volume] a.drill rect[data-row='2024-03-01'][data-column=received]"))
            .await
            .unwrap();
        let link = client
            .execute("return arguments[0].parentNode.getAttribute('href');", vec![serde_json::to_value(&bar).unwrap()])
            .await
            .unwrap();
        let href = link.as_str().unwrap().to_owned();
        client.goto(&format!("{}{href}", app.base)).await.unwrap();
        client.wait().for_element(Locator::Id("drill-list")).await.unwrap();
        let url = client.current_url().await.unwrap();
        assert_eq!(url.path(), "/console/insights/volume/tickets");
        axe(&client, "a drill-down list").await;
        screenshot(&client, &format!("{shots}-insights-drill-down")).await;
        let console = crate::console::sign_in(app, "quinn").await;
        let listed = drill_numbers(&console, &href).await;
        assert_eq!(listed.len() as i64, march, "the list behind March's bar holds exactly its tickets");
        let mut received_in_march = std::collections::BTreeSet::new();
        let mut offset = 0;
        loop {
            let page = app
                .get(
                    &format!("/api/v1/queues/all?received_from=2024-03-01&received_to=2024-03-31&limit=200&offset={offset}"),
                    &app.quality_manager,
                )
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            for item in page.body["items"].as_array().unwrap() {
                received_in_march.insert(item["number"].as_i64().unwrap());
            }
            match page.body["next_offset"].as_u64() {
                Some(next) => offset = next,
                None => break,
            }
        }
        assert_eq!(listed.into_iter().collect::<std::collections::BTreeSet<_>>(), received_in_march);

        // Every value with a list behind it links to a list of exactly what it counts.
        client.goto(&format!("{}/console/insights?{query}", app.base)).await.unwrap();
        client.wait().for_element(Locator::Css("svg[data-chart=volume]")).await.unwrap();
        let api = Expected { summary: &summary, sla: &sla, divisions: &divisions };
        check_every_drill(&client, &console, &api).await;
        // And under an "at that moment" filter: complaints received by phone.
        let filtered = format!("{query}&category=complaint&channel=phone");
        client.goto(&format!("{}/console/insights?{filtered}", app.base)).await.unwrap();
        client.wait().for_element(Locator::Css("svg[data-chart=volume]")).await.unwrap();
        let summary_f = rows(
            &app.get(
                &format!("/api/v1/stats/summary?from={FROM}&to={TO}&period=month&category=complaint&channel=phone"),
                &app.quality_manager,
            )
            .await,
        );
        let sla_f = rows(
            &app.get(&format!("/api/v1/stats/sla?from={FROM}&to={TO}&period=month&category=complaint"), &app.quality_manager)
                .await,
        );
        let divisions_f = rows(
            &app.get(
                &format!("/api/v1/stats/divisions?from={FROM}&to={TO}&period=month&category=complaint&channel=phone"),
                &app.quality_manager,
            )
            .await,
        );
        let api = Expected { summary: &summary_f, sla: &sla_f, divisions: &divisions_f };
        check_every_drill(&client, &console, &api).await;
        let january = summary[0]["received"].as_i64().unwrap();
        let mut numbers = std::collections::HashSet::new();
        let mut offset = 0;
        loop {
            let page = app
                .get(
                    &format!("/api/v1/queues/all?received_from=2024-01-01&received_to=2024-01-31&limit=200&offset={offset}"),
                    &app.quality_manager,
                )
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            for item in page.body["items"].as_array().unwrap() {
                numbers.insert(item["number"].as_i64().unwrap());
            }
            match page.body["next_offset"].as_u64() {
                Some(next) => offset = next,
                None => break,
            }
        }
        assert_eq!(numbers.len() as i64, january, "the list behind January's bar holds exactly its tickets");
        // The API's list by last resolution: in a history without reopenings (the generator's),
        // the tickets last resolved in February are February's resolutions.
        let resolved_feb = summary[1]["resolved"].as_i64().unwrap();
        let mut count = 0;
        let mut offset = 0;
        loop {
            let page = app
                .get(
                    &format!("/api/v1/queues/all?resolved_from=2024-02-01&resolved_to=2024-02-29&limit=200&offset={offset}"),
                    &app.quality_manager,
                )
                .await;
            count += page.body["items"].as_array().unwrap().len() as i64;
            match page.body["next_offset"].as_u64() {
                Some(next) => offset = next,
                None => break,
            }
        }
        assert_eq!(count, resolved_feb, "the tickets last resolved in February");

        // Weekly buckets from a Wednesday, and an SLA filter: the first (clipped) week too.
        let weekly = "from=2024-01-03&to=2024-02-20";
        client
            .goto(&format!("{}/console/insights?{weekly}&bucket=week&contract=premium", app.base))
            .await
            .unwrap();
        client.wait().for_element(Locator::Css("svg[data-chart=sla]")).await.unwrap();
        let summary = rows(&app.get(&format!("/api/v1/stats/summary?{weekly}&period=week"), &app.quality_manager).await);
        let sla = rows(
            &app.get(&format!("/api/v1/stats/sla?{weekly}&period=week&contract=premium"), &app.quality_manager).await,
        );
        let all_sla = rows(&app.get(&format!("/api/v1/stats/sla?{weekly}&period=week"), &app.quality_manager).await);
        assert_eq!(summary[0]["period_start"], "2024-01-03", "the first week is clipped to from");
        let met = |rows: &[Value]| rows.iter().map(|r| r["met"].as_i64().unwrap()).sum::<i64>();
        assert!(met(&sla) > 0 && met(&sla) < met(&all_sla), "the contract filter keeps some clocks");
        let monday = |day: &str| {
            let day: chrono::NaiveDate = day.parse().unwrap();
            use chrono::Datelike;
            (day - chrono::Days::new(day.weekday().num_days_from_monday() as u64)).to_string()
        };
        let expected: Vec<(String, Vec<String>)> = summary
            .iter()
            .map(|bucket| {
                let start = bucket["period_start"].as_str().unwrap();
                let cells = ["first_contact", "resolution", "statutory_answer"]
                    .iter()
                    .map(|target| {
                        sla.iter()
                            .find(|r| r["target"] == *target && r["period_start"] == monday(start).as_str())
                            .map_or(String::new(), |r| cell(&r["compliance"]))
                    })
                    .collect();
                (start.to_owned(), cells)
            })
            .collect();
        assert!(!expected[0].1[0].is_empty(), "the clipped first week has its figures: {expected:?}");
        assert_eq!(table(&client, "sla").await, expected, "weekly, filtered by contract");
    })
    .await;

    // Without JavaScript: the charts and tables are there; the form reloads with its choice.
    with_browser(false, |client| async move {
        sign_in(&client, app, "quinn").await;
        client.goto(&format!("{}/console/insights?from={FROM}&to={TO}", app.base)).await.unwrap();
        let figures = client.find_all(Locator::Css("section.figure svg.chart")).await.unwrap().len();
        assert_eq!(figures, 10);
        client.find(Locator::Id("bucket")).await.unwrap().select_by_value("month").await.unwrap();
        client.find(Locator::Id("f-channel")).await.unwrap().select_by_value("phone").await.unwrap();
        click_and_wait(&client, "#insights-apply").await;
        let url = client.current_url().await.unwrap();
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!((pairs["bucket"].as_str(), pairs["channel"].as_str()), ("month", "phone"));
        let filtered = rows(
            &app.get(
                &format!("/api/v1/stats/summary?from={FROM}&to={TO}&period=month&channel=phone"),
                &app.quality_manager,
            )
            .await,
        );
        let shown = table(&client, "volume").await;
        let expected: Vec<(String, Vec<String>)> = filtered
            .iter()
            .map(|r| {
                (
                    r["period_start"].as_str().unwrap().to_owned(),
                    ["received", "resolved", "open_at_end"].iter().map(|f| cell(&r[*f])).collect(),
                )
            })
            .collect();
        assert_eq!(shown, expected, "a filter applies to the figures as the API's does");
        // The presets: last quarter is the previous full quarter.
        client.find(Locator::Css("a.preset[href*='last-quarter']")).await.unwrap().click().await.unwrap();
        client.wait().for_element(Locator::Id("insights-period")).await.unwrap();
        let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Budapest).date_naive();
        use chrono::Datelike;
        let this_quarter = chrono::NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1).unwrap();
        let last_quarter = this_quarter.checked_sub_months(chrono::Months::new(3)).unwrap();
        let period = client.find(Locator::Id("insights-period")).await.unwrap().text().await.unwrap();
        assert!(period.starts_with(&format!("{last_quarter} – {}", this_quarter.pred_opt().unwrap())), "{period}");
        let url = client.current_url().await.unwrap();
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs.get("channel").map(String::as_str), Some("phone"), "a preset keeps the filters");
    })
    .await;
}

/// The ticket's fields as the API gives them, flattened as the page names them.
fn flat(value: &Value) -> std::collections::BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut std::collections::BTreeMap<String, String>) {
        match value {
            Value::Object(members) => {
                for (name, member) in members {
                    let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    walk(&key, member, out);
                }
            }
            Value::Null => {
                out.insert(prefix.to_owned(), "—".into());
            }
            Value::String(text) => {
                out.insert(prefix.to_owned(), text.clone());
            }
            Value::Array(items) => {
                let texts: Vec<String> =
                    items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect();
                out.insert(prefix.to_owned(), if texts.is_empty() { "—".into() } else { texts.join(", ") });
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    let mut value = value.clone();
    value.as_object_mut().unwrap().remove("version");
    walk("", &value, &mut out);
    out
}

async fn state_shown(client: &Client) -> std::collections::BTreeMap<String, String> {
    let found = client
        .execute(
            "return Array.from(document.querySelectorAll('#state td[data-field]')).map(td => [td.dataset.field, td.textContent]);",
            vec![],
        )
        .await
        .unwrap();
    let pairs: Vec<(String, String)> = serde_json::from_value(found).unwrap();
    pairs.into_iter().collect()
}

pub async fn an_auditor_replays_a_ticket_and_sees_what_each_event_changed(backend: Backend) {
    // Mail on (to the outbox folder): the mailer's acknowledgement and survey are caused by
    // the events that asked for them.
    let Some(mut app) = spawn_app_with(backend, &[]).await else { return };
    // A ledger key: the page shows the ticket's proof against the latest signed checkpoint.
    app.stop();
    let key = app.dir().join("ledger.key");
    app.cli(&["ledger", "init-key", "--out", key.to_str().unwrap(), "--name", "test.example/ledger"]);
    app.env.push(("TICKETD_LEDGER_KEY".into(), key.display().to_string()));
    app.start();
    put_staff(&app, "aude", "auditor", PASSWORD);
    app.register_divisions(&["legal"]).await;
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let number = created.body["number"].as_i64().unwrap();
    // Wait for the mailer's acknowledgement, then script the rest.
    for _ in 0..200 {
        if app.get(&format!("/api/v1/tickets/{id}"), &app.auditor).await.body["status"] == "acknowledged" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (action, body) in [
        ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
        ("escalate", json!({"division": "legal", "reason": "contract question"})),
        ("escalation-answer", json!({"outcome": "The contract covers it."})),
        ("replies", json!({"body": "The division confirmed it: we refund the second charge."})),
        ("resolve", json!({"resolution": "Refunded.", "root_cause": "billing-error", "within_own_authority": true})),
        ("close", json!({})),
    ] {
        let answer = app.act(&id, action, body).await;
        assert!(answer.status.is_success(), "{action}: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut events = Vec::new();
    for _ in 0..200 {
        events = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await.body["events"]
            .as_array()
            .cloned()
            .unwrap();
        if events.iter().any(|e| e["event_type"] == "SurveySent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    let version = |kind: &str| -> u64 {
        events.iter().find(|e| e["event_type"] == kind).unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))["version"]
            .as_u64()
            .unwrap()
    };
    let (acknowledged, investigated, escalated, resolved, closed, survey) = (
        version("Acknowledged"),
        version("Investigated"),
        version("Escalated"),
        version("Resolved"),
        version("Closed"),
        version("SurveySent"),
    );
    assert_eq!((acknowledged, investigated, escalated), (2, 3, 4), "{kinds:?}");
    // The page proves against the latest signed checkpoint, read-only: an auditor signs one.
    let signed = app.request(reqwest::Method::POST, "/api/v1/audit/checkpoint", Some(&app.auditor), &[], None).await;
    assert!(signed.status.is_success(), "{}", signed.body);
    let shots = backend_name(backend);
    let app = &app;
    let events = &events;
    with_browser(true, |client| async move {
        sign_in(&client, app, "aude").await;
        client.goto(&format!("{}/console/tickets/{number}/history", app.base)).await.unwrap();
        client.wait().for_element(Locator::Id("events")).await.unwrap();
        axe(&client, "the replay view").await;
        screenshot(&client, &format!("{shots}-history")).await;
        // The ticket was a complaint: its §17/A record, printable, is accessible too.
        client.goto(&format!("{}/console/tickets/{number}/complaint-record", app.base)).await.unwrap();
        client.wait().for_element(Locator::Css("h1")).await.unwrap();
        axe(&client, "the complaint record").await;
        screenshot(&client, &format!("{shots}-complaint-record")).await;
        client.goto(&format!("{}/console/tickets/{number}/history", app.base)).await.unwrap();
        client.wait().for_element(Locator::Id("events")).await.unwrap();
        let proof = client.find(Locator::Id("proof-status")).await.unwrap();
        assert_eq!(proof.attr("data-proven").await.unwrap().as_deref(), Some("true"), "{}", proof.text().await.unwrap());

        // Each event's changes: exactly the differences of the ticket before and after it.
        let mut before = std::collections::BTreeMap::new();
        for event in events.iter() {
            let version = event["version"].as_u64().unwrap();
            let at = event["occurred_at"].as_str().unwrap();
            let after = flat(&app.get(&format!("/api/v1/tickets/{id}?as_of={}", urlencode(at)), &app.auditor).await.body);
            let mut expected: Vec<(String, String, String)> = Vec::new();
            for (name, new) in &after {
                let old = before.get(name).cloned().unwrap_or_else(|| "—".to_owned());
                if &old != new {
                    expected.push((name.clone(), old, new.clone()));
                }
            }
            let found = client
                .execute(
                    "return Array.from(document.querySelectorAll('#event-' + arguments[0] + ' li[data-change]'))\
                       .map(li => [li.dataset.change, li.querySelector('del').textContent, li.querySelector('ins').textContent]);",
                    vec![json!(version)],
                )
                .await
                .unwrap();
            let shown: Vec<(String, String, String)> = serde_json::from_value(found).unwrap();
            assert_eq!(shown, expected, "the changes of event {version} ({})", event["event_type"]);
            before = after;
        }
        // By hand, the steps that matter.
        let change = |version: u64, field: &'static str| {
            let client = client.clone();
            async move {
                client
                    .find(Locator::Css(&format!("#event-{version} li[data-change='{field}']")))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(change(acknowledged, "status").await, "status: received → acknowledged");
        assert_eq!(change(investigated, "category").await, "category: — → complaint");
        assert_eq!(change(escalated, "escalated_to").await, "escalated_to: — → legal");
        assert_eq!(change(closed, "status").await, "status: resolved → closed");

        // Causation: the mailer's acknowledgement was caused by the receipt, the survey by the
        // closing; each link leads there and the cause lists its effect.
        let cause = client.find(Locator::Css("#event-2 a.cause")).await.unwrap();
        assert_eq!(cause.attr("href").await.unwrap().as_deref(), Some("#event-1"));
        let survey_cause = client.find(Locator::Css(&format!("#event-{survey} a.cause"))).await.unwrap();
        assert_eq!(survey_cause.attr("href").await.unwrap(), Some(format!("#event-{closed}")));
        survey_cause.click().await.unwrap();
        assert!(client.current_url().await.unwrap().as_str().ends_with(&format!("#event-{closed}")));
        let effect = client.find(Locator::Css(&format!("#event-{closed} a.effect"))).await.unwrap();
        assert_eq!(effect.attr("data-effect").await.unwrap(), Some(survey.to_string()));
        assert_eq!(
            client.find(Locator::Css("#event-1 a.effect")).await.unwrap().attr("href").await.unwrap().as_deref(),
            Some("#event-2")
        );

        // The time control: the slider to event 4 shows what `?as_of=` gives at its instant.
        client.execute("document.getElementById('at').value = 4;", vec![]).await.unwrap();
        click_and_wait(&client, "#at-go").await;
        assert!(client.current_url().await.unwrap().query().is_some_and(|q| q.contains("at=4")));
        client.wait().for_element(Locator::Id("state")).await.unwrap();
        let instant = client.find(Locator::Id("state-instant")).await.unwrap().attr("datetime").await.unwrap().unwrap();
        let parsed = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
        assert_eq!(parsed(&instant), parsed(events[3]["occurred_at"].as_str().unwrap()));
        let api = flat(&app.get(&format!("/api/v1/tickets/{id}?as_of={}", urlencode(&instant)), &app.auditor).await.body);
        let shown = state_shown(&client).await;
        assert_eq!(shown, api, "the ticket at event 4 is what ?as_of= gives");
        assert_eq!(shown["status"], "escalated");
        assert_eq!(
            client.find_all(Locator::Css("#events tr.later")).await.unwrap().len(),
            events.len() - escalated as usize,
            "the later events are marked"
        );
        screenshot(&client, &format!("{shots}-history-event-4")).await;

        // The instant field: a moment before the ticket existed, then one between two events.
        client
            .goto(&format!("{}/console/tickets/{number}/history?as_of=2020-01-01T00:00:00Z", app.base))
            .await
            .unwrap();
        client.wait().for_element(Locator::Id("state-none")).await.unwrap();
        let between = events[resolved as usize - 1]["occurred_at"].as_str().unwrap();
        client
            .goto(&format!("{}/console/tickets/{number}/history?as_of={}", app.base, urlencode(between)))
            .await
            .unwrap();
        client.wait().for_element(Locator::Id("state")).await.unwrap();
        let api = flat(&app.get(&format!("/api/v1/tickets/{id}?as_of={}", urlencode(between)), &app.auditor).await.body);
        assert_eq!(state_shown(&client).await, api);
        assert_eq!(state_shown(&client).await["status"], "resolved");

        // The filters and the downloads.
        client
            .goto(&format!("{}/console/tickets/{number}/history?type=Escalated", app.base))
            .await
            .unwrap();
        assert_eq!(client.find_all(Locator::Css("#events tbody tr")).await.unwrap().len(), 1);
        let session = crate::console::sign_in(app, "aude").await;
        let lines = session.get(&format!("/console/tickets/{number}/history/events.jsonl")).await;
        assert_eq!(lines.status, StatusCode::OK);
        let downloaded: Vec<Value> = lines.html.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(&downloaded, events, "the history download is the API's history");
        let bundle = session.get(&format!("/console/tickets/{number}/history/proof.json")).await;
        assert_eq!(bundle.status, StatusCode::OK);
        assert!(bundle.html.contains("\"events\""), "{}", bundle.html);
        let one = session.get(&format!("/console/tickets/{number}/history/events/3")).await;
        assert_eq!(serde_json::from_str::<Value>(&one.html).unwrap(), events[2]);
        let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Budapest).date_naive();
        let export = session
            .get(&format!("/console/audit/export?from={}&to={}", today - chrono::Days::new(1), today + chrono::Days::new(1)))
            .await;
        assert_eq!(export.status, StatusCode::OK, "{}", export.html);
        assert!(export.html.contains(&id), "the period's complaints hold this one");
    })
    .await;
    // An agent is refused the view.
    put_staff(app, "kata2", "agent", PASSWORD);
    let agent = crate::console::sign_in(app, "kata2").await;
    assert_eq!(agent.get(&format!("/console/tickets/{number}/history")).await.status, StatusCode::FORBIDDEN);
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
