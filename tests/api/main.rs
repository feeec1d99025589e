//! End-to-end tests of the HTTP API: the real `ticketd` binary on a free port, on SQLite and on
//! PostgreSQL (every scenario runs on both).

mod backup;
mod browser;
mod consistency;
mod console;
mod console_browser;
mod fleet;
mod harness;
mod idempotency;
mod insights;
mod intake;
mod ledger;
mod limits;
mod mail;
mod privacy;
mod record;
mod registry;
mod sla;
mod spreadsheets;

use harness::{Backend, TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Runs each scenario on both backends.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let app = super::spawn_app(super::Backend::Sqlite).await.expect("SQLite always runs");
                    super::$scenario(app).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(app) = super::spawn_app(super::Backend::Postgres).await else { return };
                    super::$scenario(app).await;
                }
            )+
        }
    };
}

on_both_backends!(
    a_ticket_goes_through_its_whole_life,
    every_refused_transition_is_a_409_that_changes_nothing,
    a_stale_if_match_is_a_412_that_changes_nothing,
    an_idempotency_key_returns_the_first_answer_also_after_a_restart,
    twenty_racing_commands_with_one_if_match_let_exactly_one_through,
    racing_commands_without_if_match_never_corrupt_the_ticket,
    each_role_can_do_what_it_may_and_nothing_else,
    bad_input_gets_a_clear_error_and_writes_nothing,
    the_ticket_as_it_stood_at_any_past_instant,
    queues_follow_the_workflow_and_survive_a_restart,
    a_request_that_died_after_appending_is_answered_from_its_events,
    auditors_export_every_complaint_of_a_period_with_its_history,
    statistics_count_what_happened_also_across_a_crash,
    contracts_decide_a_tickets_contract_and_every_change_is_audited,
    a_number_handed_out_resolves_at_once_on_every_instance,
    rebuilds_beside_a_working_service_never_show_a_partial_read_model,
    a_projection_stopped_on_an_event_leaves_the_instance_ready,
    a_transaction_open_elsewhere_on_the_server_does_not_stall_the_service,
    references_to_managed_data_must_be_in_the_registry,
    every_csv_neutralises_formulas_in_text_cells_and_keeps_numbers,
    the_front_page_sends_a_browser_to_the_contact_form,
);

use consistency::{
    a_number_handed_out_resolves_at_once_on_every_instance, a_projection_stopped_on_an_event_leaves_the_instance_ready,
    a_transaction_open_elsewhere_on_the_server_does_not_stall_the_service,
    rebuilds_beside_a_working_service_never_show_a_partial_read_model,
    references_to_managed_data_must_be_in_the_registry,
};
use registry::contracts_decide_a_tickets_contract_and_every_change_is_audited;
use spreadsheets::every_csv_neutralises_formulas_in_text_cells_and_keeps_numbers;

/// `GET /` is where a customer's browser lands: it is sent on to the contact form.
async fn the_front_page_sends_a_browser_to_the_contact_form(app: TestApp) {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, location) in [("/", "/contact"), ("/?lang=en", "/contact?lang=en")] {
        let answer = browser
            .get(format!("{}{path}", app.base))
            .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.headers()["location"], location, "{path}");
    }
    // Followed, as a browser follows it: the form, in the language asked for.
    let page = app.client.get(format!("{}/?lang=en", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/contact");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<form") && html.contains("lang=\"en\""), "{html}");
    // Only GET (and HEAD) is a page; anything else is still a clear error.
    let post = app.request(Method::POST, "/", None, &[], Some(json!({}))).await;
    assert_eq!((post.status, post.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}

/// Scenarios that start their server with their own settings: run on each backend.
macro_rules! on_both_backends_with_settings {
    ($($scenario:path => $name:ident),+ $(,)?) => {
        mod sqlite_configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $scenario(super::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres_configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $scenario(super::Backend::Postgres).await;
                }
            )+
        }
    };
}

on_both_backends_with_settings!(
    crate::backup::a_backup_taken_under_load_restores_every_acknowledged_command => a_backup_taken_under_load_restores_every_acknowledged_command,
    crate::mail::mail_confirms_replies_and_surveys_a_ticket_to_its_answer => mail_confirms_replies_and_surveys_a_ticket_to_its_answer,
    crate::mail::mail_through_a_real_smtp_server_is_neither_lost_nor_doubled_while_it_is_away => mail_through_a_real_smtp_server_is_neither_lost_nor_doubled_while_it_is_away,
    crate::browser::a_customer_reports_through_the_contact_form_in_a_browser => a_customer_reports_through_the_contact_form_in_a_browser,
    crate::console::console_posts_need_the_csrf_token_and_our_origin => console_posts_need_the_csrf_token_and_our_origin,
    crate::console::console_sessions_expire_and_end => console_sessions_expire_and_end,
    crate::console::behind_https_the_session_cookie_is_secure => behind_https_the_session_cookie_is_secure,
    crate::console::readers_get_no_command_forms_and_a_403_if_they_post => readers_get_no_command_forms_and_a_403_if_they_post,
    crate::console::sign_in_is_rate_limited_and_says_nothing_about_which_part_was_wrong => sign_in_is_rate_limited_and_says_nothing_about_which_part_was_wrong,
    crate::console::every_page_sends_the_security_headers => every_page_sends_the_security_headers,
    crate::console::queues_filter_sort_save_views_and_act_in_bulk => queues_filter_sort_save_views_and_act_in_bulk,
    crate::console::an_idle_service_does_not_busy_wait => an_idle_service_does_not_busy_wait,
    crate::console_browser::an_agent_works_a_phone_report_to_closed_in_the_browser => an_agent_works_a_phone_report_to_closed_in_the_browser,
    crate::console_browser::the_console_works_without_javascript => the_console_works_without_javascript,
    crate::console_browser::two_agents_live_queues_and_shortcuts => two_agents_live_queues_and_shortcuts,
    crate::intake::e_mail_becomes_tickets_and_replies_thread_onto_the_right_ones => e_mail_becomes_tickets_and_replies_thread_onto_the_right_ones,
    crate::intake::a_maildir_is_taken_in_once => a_maildir_is_taken_in_once,
    crate::intake::nothing_a_customer_wrote_is_lost_or_misread => nothing_a_customer_wrote_is_lost_or_misread,
    crate::sla::sla_clocks_warn_breach_notify_and_count_across_easter => sla_clocks_warn_breach_notify_and_count_across_easter,
    crate::consistency::one_clock_for_every_time_the_service_shows => one_clock_for_every_time_the_service_shows,
    crate::idempotency::a_slow_append_is_applied_once_while_the_client_repeats => a_slow_append_is_applied_once_while_the_client_repeats,
    crate::limits::the_document_states_every_limit_the_server_checks => the_document_states_every_limit_the_server_checks,
    crate::ledger::verify_names_the_first_event_altered_removed_reordered_or_inserted => verify_names_the_first_event_altered_removed_reordered_or_inserted,
    crate::ledger::proofs_check_offline_and_a_rewritten_ledger_fails_its_old_checkpoint => proofs_check_offline_and_a_rewritten_ledger_fails_its_old_checkpoint,
    crate::record::a_complaint_has_a_record_with_every_field_the_law_lists => a_complaint_has_a_record_with_every_field_the_law_lists,
    crate::ledger::a_signed_checkpoint_is_mailed_to_the_auditors => a_signed_checkpoint_is_mailed_to_the_auditors,
    crate::record::the_contact_form_links_the_privacy_notice => the_contact_form_links_the_privacy_notice,
    crate::record::an_access_export_holds_one_persons_data_and_nobody_elses => an_access_export_holds_one_persons_data_and_nobody_elses,
    crate::privacy::erasure_shreds_a_persons_data_and_keeps_the_figures_and_the_proof => erasure_shreds_a_persons_data_and_keeps_the_figures_and_the_proof,
    crate::privacy::retention_erases_each_ticket_when_its_period_ends => retention_erases_each_ticket_when_its_period_ends,
    crate::privacy::migrate_seals_events_stored_in_the_clear_and_the_ledger_accepts_exactly_that => migrate_seals_events_stored_in_the_clear_and_the_ledger_accepts_exactly_that,
    crate::insights::a_quality_manager_reads_the_dashboard_and_drills_into_a_bar => a_quality_manager_reads_the_dashboard_and_drills_into_a_bar,
    crate::insights::an_auditor_replays_a_ticket_and_sees_what_each_event_changed => an_auditor_replays_a_ticket_and_sees_what_each_event_changed,
);

/// Polls the daily summary until `done` holds for today's row.
async fn summary_until(app: &TestApp, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Budapest).date_naive();
    let path = format!("/api/v1/stats/summary?period=day&from={today}&to={today}");
    let mut row = serde_json::Value::Null;
    for _ in 0..500 {
        let answer = app.get(&path, &app.quality_manager).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        row = answer.body["rows"][0].clone();
        if done(&row) {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the statistics never got there: {row}");
}

async fn statistics_count_what_happened_also_across_a_crash(mut app: TestApp) {
    app.register_divisions(&["legal", "it-operations"]).await;
    let id = |answer: &harness::Answer| answer.body["id"].as_str().unwrap().to_owned();
    let (t1, t2, t3) = (id(&app.create_ticket().await), id(&app.create_ticket().await), id(&app.create_ticket().await));
    let investigate =
        |category: &str| json!({"category": category, "service_area": "norma", "contact_method": "phone"});
    for (ticket, action, body) in [
        (&t1, "acknowledge", json!({})),
        (&t1, "investigate", investigate("bug_report")),
        (
            &t1,
            "resolve",
            json!({"resolution": "Javítottuk.", "root_cause": "session-expiry-bug", "within_own_authority": true}),
        ),
        (&t1, "close", json!({})),
        (&t1, "survey-sent", json!({})),
        (&t1, "survey-answer", json!({"score": 4})),
        (&t2, "acknowledge", json!({})),
        (&t2, "investigate", investigate("complaint")),
        (&t2, "escalate", json!({"division": "legal", "reason": "contract question"})),
        (&t3, "out-of-scope", json!({"reason": "general operation"})),
    ] {
        let answer = app.act(ticket, action, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.body);
    }
    let row = summary_until(&app, |row| row["escalated"] == 1 && row["out_of_scope"] == 1).await;
    let figures = |row: &serde_json::Value, names: &[&str]| -> Vec<i64> {
        names.iter().map(|n| row[*n].as_i64().unwrap_or_else(|| panic!("{n} in {row}"))).collect()
    };
    let names = [
        "received",
        "resolved",
        "closed",
        "escalated",
        "out_of_scope",
        "open_at_end",
        "surveys_sent",
        "surveys_answered",
        "score_4",
        "complaints_registered",
        "complaints_escalated",
        "complaints_open_at_end",
        "acknowledge_count",
        "first_contact_count",
        "resolution_count",
    ];
    assert_eq!(figures(&row, &names), vec![3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1], "{row}");
    assert_eq!(row["survey_mean_score"], 4.0);
    assert_eq!(row["survey_response_rate"], 1.0);

    let divisions = app.get("/api/v1/stats/divisions?period=day", &app.auditor).await;
    assert_eq!(divisions.status, StatusCode::OK);
    let legal = divisions.body["rows"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((legal["division"].as_str(), legal["escalations"].as_i64()), (Some("legal"), Some(1)));
    let causes = app.get("/api/v1/stats/root-causes", &app.admin).await;
    assert_eq!(causes.status, StatusCode::OK);
    assert_eq!(causes.body["rows"], json!([]), "t1 was no complaint: {}", causes.body);
    assert_eq!(causes.body["time_zone"], "Europe/Budapest");

    let csv = app
        .request(
            Method::GET,
            "/api/v1/stats/summary?period=quarter&by=category",
            Some(&app.quality_manager),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.body.as_str().unwrap().to_owned();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("period_start,period_end,group,received,resolved,"), "{text}");
    let groups: Vec<&str> = lines.map(|l| l.split(',').nth(2).unwrap()).collect();
    assert!(groups.contains(&"complaint") && groups.contains(&"unclassified"), "{text}");

    assert_eq!(app.get("/api/v1/stats/summary", &app.agent).await.code(), "forbidden");
    for bad in [
        "/api/v1/stats/summary?period=fortnight",
        "/api/v1/stats/summary?from=2026-05-01&to=2026-04-01",
        "/api/v1/stats/summary?from=2000-01-01&to=2026-01-01",
        "/api/v1/stats/summary?from=yesterday",
        "/api/v1/stats/summary?from=%2B262000-12-30&to=%2B262000-12-31",
        "/api/v1/stats/divisions?by=category",
    ] {
        let answer = app.get(bad, &app.quality_manager).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::BAD_REQUEST, "invalid_query"), "{bad}");
    }

    // Intake keeps coming while the server is killed: after a restart, the statistics count
    // every ticket the store holds, once.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, base, agent) = (app.client.clone(), app.base.clone(), app.agent.clone());
        requests.spawn(async move {
            let body = json!({"channel": "phone", "reporter": {"name": "Kiss Béla", "email": "kiss.bela@example.hu"},
                              "subject": "Hívás", "message": "Visszahívást kér.", "service_area": "norma"});
            let mut created = 0;
            // Until the server is gone.
            while let Ok(response) =
                client.post(format!("{base}/api/v1/tickets")).bearer_auth(&agent).json(&body).send().await
            {
                let status = response.status();
                assert_eq!(status, StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
                created += 1;
            }
            created
        });
    }
    for _ in 0..2_000 {
        if app.query_count("SELECT COUNT(*) FROM events WHERE event_type = 'Received'").await >= 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.crash();
    let mut created = 0;
    while let Some(outcome) = requests.join_next().await {
        created += outcome.unwrap();
    }
    app.start();
    let stored = app.query_count("SELECT COUNT(*) FROM events WHERE event_type = 'Received'").await;
    assert!(stored >= 3 + created, "every answered intake is stored: {stored} < 3 + {created}");
    eprintln!("crash: {created} intakes answered, {stored} tickets stored");
    let row = summary_until(&app, |row| row["received"].as_i64() == Some(stored)).await;
    assert_eq!(row["open_at_end"].as_i64(), Some(stored - 2), "{row}");
}

async fn auditors_export_every_complaint_of_a_period_with_its_history(app: TestApp) {
    let start = chrono::Utc::now() - chrono::Duration::seconds(5);
    let intake = |category: &str| {
        json!({"channel": "email", "reporter": {"name": "Szabó Péter", "email": "szabo@example.hu"},
               "subject": "Számla", "message": "Hibás a számla.", "category": category})
    };
    let mut ids = Vec::new();
    for category in ["complaint", "user_support", "information_request"] {
        let created = app.request(Method::POST, "/api/v1/tickets", Some(&app.agent), &[], Some(intake(category))).await;
        assert_eq!(created.status, StatusCode::CREATED);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    // The second becomes a complaint and then stops being one: it stays in the record.
    for (category, reason) in
        [("complaint", "objects to the contract's performance"), ("user_support", "only a question after all")]
    {
        let answer = app.act(&ids[1], "reclassify", json!({"category": category, "reason": reason})).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    queue_until(&app, "/api/v1/queues/new", |items| items.len() == 3).await;
    let period = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "/api/v1/audit/export?from={}&to={}",
            from.to_rfc3339().replace('+', "%2B"),
            to.to_rfc3339().replace('+', "%2B")
        )
    };
    let now = chrono::Utc::now() + chrono::Duration::seconds(5);
    let response =
        app.client.get(format!("{}{}", app.base, period(start, now))).bearer_auth(&app.auditor).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let exported: Vec<&str> = lines.iter().map(|l| l["ticket_id"].as_str().unwrap()).collect();
    assert_eq!(
        exported,
        vec![ids[0].as_str(), ids[1].as_str()],
        "complaints only, once a complaint always in the record"
    );
    let types: Vec<&str> =
        lines[1]["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["Received", "Reclassified", "Reclassified"]);
    assert_eq!(lines[1]["events"][1]["actor"]["name"], "kata");

    let yesterday =
        app.get(&period(start - chrono::Duration::days(2), start - chrono::Duration::days(1)), &app.auditor).await;
    assert_eq!((yesterday.status, yesterday.body.clone()), (StatusCode::OK, json!("")));
    let by_agent = app.get(&period(start, now), &app.agent).await;
    assert_eq!((by_agent.status, by_agent.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let backwards = app.get(&period(now, start), &app.auditor).await;
    assert_eq!((backwards.status, backwards.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let missing = app.get("/api/v1/audit/export", &app.auditor).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
}

async fn a_request_that_died_after_appending_is_answered_from_its_events(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let key = [("Idempotency-Key", "note-crash")];
    let path = format!("/api/v1/tickets/{id}/notes");
    let first = app.request(Method::POST, &path, Some(&app.agent), &key, Some(json!({"body": "once"}))).await;
    assert_eq!(first.status, StatusCode::OK);
    // What a crash between the append and storing the answer leaves: a claim with no answer,
    // older than the time a live request may take.
    app.execute_sql(
        "UPDATE idempotency_keys SET status = NULL, body = NULL, created_at = 0 WHERE key = 'note-crash'",
        "UPDATE idempotency_keys SET status = NULL, body = NULL, created_at = now() - interval '1 hour' WHERE key = 'note-crash'",
    )
    .await;
    let retry = app.request(Method::POST, &path, Some(&app.agent), &key, Some(json!({"body": "once"}))).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.version(), 2, "answered from the stored events, not run again");
    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.agent).await;
    assert_eq!(history.body["events"].as_array().unwrap().len(), 2);
    // And the answer is stored again: a third try is a plain replay.
    let third = app.request(Method::POST, &path, Some(&app.agent), &key, Some(json!({"body": "once"}))).await;
    assert_eq!((third.status, third.version()), (StatusCode::OK, 2));
}

/// Polls a queue until `done` holds for its items (read models follow the log within moments).
pub(crate) async fn queue_until(
    app: &TestApp,
    path: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    for _ in 0..300 {
        let page = app.get(path, &app.agent).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        items = page.body["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{path} never got there: {items:?}");
}

fn numbers(items: &[serde_json::Value]) -> Vec<u64> {
    items.iter().map(|i| i["number"].as_u64().unwrap()).collect()
}

async fn queues_follow_the_workflow_and_survive_a_restart(mut app: TestApp) {
    app.register_divisions(&["legal", "it-operations"]).await;
    let mut tickets = Vec::new();
    for _ in 0..5 {
        let created = app.create_ticket().await;
        tickets.push((created.body["id"].as_str().unwrap().to_owned(), created.body["number"].as_u64().unwrap()));
    }
    let investigate =
        |category: &str| json!({"category": category, "service_area": "norma", "contact_method": "phone"});
    let (t2, t3, t4, t5) = (&tickets[1].0, &tickets[2].0, &tickets[3].0, &tickets[4].0);
    for id in [t2, t3, t4] {
        assert_eq!(app.act(id, "acknowledge", json!({})).await.status, StatusCode::OK);
    }
    assert_eq!(app.act(t3, "assign", json!({"assignee": "kata"})).await.status, StatusCode::OK);
    assert_eq!(app.act(t3, "investigate", investigate("complaint")).await.status, StatusCode::OK);
    assert_eq!(app.act(t4, "investigate", investigate("bug_report")).await.status, StatusCode::OK);
    assert_eq!(
        app.act(t4, "escalate", json!({"division": "legal", "reason": "contract question"})).await.status,
        StatusCode::OK
    );
    assert_eq!(app.act(t5, "out-of-scope", json!({"reason": "general operation"})).await.status, StatusCode::OK);
    let n = |i: usize| tickets[i].1;

    let all_open = queue_until(&app, "/api/v1/queues/all-open", |items| {
        items.len() == 4 && items.iter().any(|i| i["status"] == "escalated")
    })
    .await;
    assert_eq!(numbers(&all_open), vec![n(0), n(1), n(2), n(3)], "oldest first, the closed one left out");
    assert!(all_open.iter().all(|i| i["age_seconds"].as_i64().unwrap() >= 0 && i["subject"].is_string()));
    assert_eq!(numbers(&queue_until(&app, "/api/v1/queues/new", |i| i.len() == 1).await), vec![n(0)]);
    assert_eq!(numbers(&queue_until(&app, "/api/v1/queues/awaiting-contact", |i| i.len() == 1).await), vec![n(1)]);
    assert_eq!(numbers(&queue_until(&app, "/api/v1/queues/investigating", |i| i.len() == 1).await), vec![n(2)]);
    assert_eq!(numbers(&queue_until(&app, "/api/v1/queues/mine", |i| i.len() == 1).await), vec![n(2)]);
    assert_eq!(
        numbers(&queue_until(&app, "/api/v1/queues/escalated?division=legal", |i| i.len() == 1).await),
        vec![n(3)]
    );
    let filtered = app.get("/api/v1/queues/escalated?division=it-operations", &app.agent).await;
    assert_eq!(filtered.body["items"], json!([]));
    let complaints = app.get("/api/v1/queues/all-open?category=complaint", &app.agent).await;
    assert_eq!(numbers(complaints.body["items"].as_array().unwrap()), vec![n(2)]);
    let page = app.get("/api/v1/queues/all-open?limit=2", &app.agent).await;
    assert_eq!(
        (numbers(page.body["items"].as_array().unwrap()), page.body["next_offset"].as_u64()),
        (vec![n(0), n(1)], Some(2))
    );
    let next = app.get("/api/v1/queues/all-open?limit=2&offset=2", &app.agent).await;
    assert_eq!(numbers(next.body["items"].as_array().unwrap()), vec![n(2), n(3)]);
    // Every role that reads may see the queues.
    assert_eq!(app.get("/api/v1/queues/all-open", &app.quality_manager).await.status, StatusCode::OK);
    for bad in [
        "/api/v1/queues/all-open?limit=0",
        "/api/v1/queues/all-open?category=moaning",
        "/api/v1/queues/all-open?colour=red",
    ] {
        let answer = app.get(bad, &app.agent).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::BAD_REQUEST, "invalid_query"), "{bad}");
    }
    assert_eq!(app.get("/api/v1/queues/someday", &app.agent).await.status, StatusCode::NOT_FOUND);

    // After a restart the projections go on from their checkpoints: nothing applied twice
    // (the number index would refuse a duplicate and report it), nothing skipped.
    app.stop();
    app.start();
    let created = app.create_ticket().await;
    let newest = created.body["number"].as_u64().unwrap();
    assert_eq!(app.act(t2, "investigate", investigate("user_support")).await.status, StatusCode::OK);
    let all_open = queue_until(&app, "/api/v1/queues/all-open", |items| items.len() == 5).await;
    assert_eq!(numbers(&all_open), vec![n(0), n(1), n(2), n(3), newest]);
    queue_until(&app, "/api/v1/queues/investigating", |items| items.len() == 2).await;
    let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    for projection in ready.body["projections"].as_array().unwrap() {
        assert_eq!(projection["failed"], serde_json::Value::Null, "{projection}");
    }

    // A rebuild from the whole log, while the service runs, ends where the live one was.
    let before = app.get("/api/v1/queues/all-open", &app.agent).await.body["items"].clone();
    let output = app.cli(&["rebuild"]);
    assert!(output.contains("ticket_view: rebuilt from") && output.contains("ticket_index: rebuilt from"), "{output}");
    let after = queue_until(&app, "/api/v1/queues/all-open", |items| items.len() == 5).await;
    let strip = |items: &serde_json::Value| -> Vec<serde_json::Value> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut i = i.clone();
                // What moves with the clock, not with the read model.
                i.as_object_mut().unwrap().remove("age_seconds");
                i.as_object_mut().unwrap().remove("business_seconds_left");
                i
            })
            .collect()
    };
    assert_eq!(strip(&serde_json::Value::Array(after)), strip(&before));
    let another = app.create_ticket().await;
    let number = another.body["number"].as_u64().unwrap();
    queue_until(&app, "/api/v1/queues/new", |items| numbers(items).contains(&number)).await;
    let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status, StatusCode::OK, "the live runners followed the rebuild: {}", ready.body);
    assert_eq!(wait_for_number(&app, number, &app.agent).await.body["number"], number);
}

async fn the_ticket_as_it_stood_at_any_past_instant(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.act(&id, "acknowledge", json!({})).await.status, StatusCode::OK);
    let investigate = json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"});
    assert_eq!(app.act(&id, "investigate", investigate).await.status, StatusCode::OK);
    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await;
    let recorded: Vec<String> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recorded_at"].as_str().unwrap().to_owned())
        .collect();
    let at = |instant: &str| {
        let path = format!("/api/v1/tickets/{id}?as_of={}", instant.replace('+', "%2B"));
        let app = &app;
        async move { app.get(&path, &app.auditor).await }
    };
    let then = at(&recorded[1]).await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.body);
    assert_eq!((then.version(), then.body["status"].as_str()), (2, Some("acknowledged")));
    assert_eq!(then.body["category"], serde_json::Value::Null);
    let now = at(&recorded[2]).await;
    assert_eq!((now.version(), now.body["status"].as_str()), (3, Some("investigating")));
    let before = at("2000-01-01T00:00:00Z").await;
    assert_eq!((before.status, before.code()), (StatusCode::NOT_FOUND, "not_found"));
    let bad = at("yesterday").await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
}

async fn a_ticket_goes_through_its_whole_life(app: TestApp) {
    app.register_divisions(&["legal", "it-operations"]).await;
    let created = app.create_ticket().await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let number = created.body["number"].as_u64().unwrap();
    assert_eq!(created.headers["location"], format!("/api/v1/tickets/{id}").as_str());
    assert_eq!(created.etag(), Some("\"1\""));
    assert_eq!(created.body["status"], "received");

    let steps = [
        ("acknowledge", json!({"message_id": "<ack-1@tickets.example.hu>"}), "acknowledged"),
        ("assign", json!({"assignee": "kata"}), "acknowledged"),
        (
            "investigate",
            json!({"category": "user_support", "service_area": "norma", "contact_method": "phone"}),
            "investigating",
        ),
        (
            "reclassify",
            json!({"category": "complaint", "reason": "objects to how the contract was performed"}),
            "investigating",
        ),
        ("notes", json!({"body": "Called back, explained the next steps."}), "investigating"),
        ("escalate", json!({"division": "it-operations", "reason": "needs a database fix"}), "escalated"),
        ("escalation-answer", json!({"outcome": "fixed in release 4.2"}), "investigating"),
        ("replies", json!({"body": "A hibát javítottuk."}), "investigating"),
        (
            "resolve",
            json!({"resolution": "Fixed in 4.2.", "root_cause": "session-expiry-bug", "within_own_authority": false}),
            "resolved",
        ),
        ("reopen", json!({"reason": "the customer says it still fails"}), "investigating"),
        (
            "resolve",
            json!({"resolution": "Fixed for good.", "root_cause": "session-expiry-bug", "within_own_authority": true}),
            "resolved",
        ),
        ("close", json!({}), "closed"),
        ("survey-sent", json!({"message_id": "<survey-1@tickets.example.hu>"}), "closed"),
        ("survey-answer", json!({"score": 4, "comment": "Gyors volt."}), "closed"),
    ];
    let mut version = 1;
    for (action, body, status) in steps {
        // Every step pins the version it was decided on, as a careful client does.
        let answer = app
            .request(
                Method::POST,
                &format!("/api/v1/tickets/{id}/{action}"),
                Some(&app.agent),
                &[("If-Match", &format!("\"{version}\""))],
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.body);
        assert_eq!(answer.body["status"], status, "{action}");
        assert_eq!(answer.version(), version + 1, "{action} appends one event");
        assert_eq!(answer.etag(), Some(format!("\"{}\"", version + 1).as_str()));
        version += 1;
    }

    // By number as well as by id, for every role that reads.
    for token in [&app.agent, &app.auditor, &app.quality_manager, &app.admin] {
        let by_number = wait_for_number(&app, number, token).await;
        assert_eq!(by_number.body["id"], id.as_str());
        assert_eq!(by_number.body["survey"], "answered");
        assert_eq!(by_number.body["category"], "complaint");
        assert_eq!(by_number.version(), version);
    }

    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await;
    assert_eq!(history.status, StatusCode::OK);
    let events = history.body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "Received",
            "Acknowledged",
            "Assigned",
            "Investigated",
            "Reclassified",
            "NoteAdded",
            "Escalated",
            "EscalationAnswered",
            "AgentReplied",
            "Resolved",
            "Reopened",
            "Resolved",
            "Closed",
            "SurveySent",
            "SurveyAnswered"
        ]
    );
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["version"], index as u64 + 1);
        assert_eq!(event["actor"], json!({"kind": "staff", "name": "kata", "role": "agent"}));
        assert!(event["position"].as_i64().unwrap() > 0);
        assert!(event["event_id"].is_string() && event["correlation_id"].is_string());
    }
    assert_eq!(events[0]["payload"]["personal"]["name"], "Kovács Anna");
    assert!(events.windows(2).all(|w| w[0]["position"].as_i64() < w[1]["position"].as_i64()));
}

async fn wait_for_number(app: &TestApp, number: u64, token: &str) -> harness::Answer {
    // The number index is a projection: it follows the commit within moments.
    for _ in 0..200 {
        let answer = app.get(&format!("/api/v1/tickets/{number}"), token).await;
        if answer.status == StatusCode::OK {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("ticket number {number} never became readable");
}

async fn every_refused_transition_is_a_409_that_changes_nothing(app: TestApp) {
    app.register_divisions(&["legal", "it-operations"]).await;
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let refused_when_received = [
        ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
        ("escalate", json!({"division": "legal", "reason": "x"})),
        ("escalation-answer", json!({"outcome": "x"})),
        ("resolve", json!({"resolution": "x", "root_cause": "y", "within_own_authority": true})),
        ("close", json!({})),
        ("reopen", json!({"reason": "x"})),
        ("survey-sent", json!({})),
        ("survey-answer", json!({"score": 5})),
    ];
    for (action, body) in refused_when_received {
        let answer = app.act(&id, action, body).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{action}: {}", answer.body);
        assert_eq!(answer.code(), "invalid_transition", "{action}");
        assert_eq!(answer.body["current_status"], "received");
        let allowed: Vec<&str> =
            answer.body["allowed_actions"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert!(allowed.contains(&"acknowledge") && !allowed.contains(&action), "{action}: {allowed:?}");
    }
    // Closed as out of scope: no survey, no reopen, no replies.
    assert_eq!(app.act(&id, "out-of-scope", json!({"reason": "general operation"})).await.status, StatusCode::OK);
    for (action, body) in
        [("survey-sent", json!({})), ("reopen", json!({"reason": "x"})), ("replies", json!({"body": "x"}))]
    {
        let answer = app.act(&id, action, body).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{action}: {}", answer.body);
    }
    // A no-op is refused too.
    let other = app.create_ticket().await;
    let other_id = other.body["id"].as_str().unwrap();
    assert_eq!(app.act(other_id, "assign", json!({"assignee": "kata"})).await.status, StatusCode::OK);
    let again = app.act(other_id, "assign", json!({"assignee": "kata"})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "nothing_to_change"));

    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await;
    assert_eq!(ticket.version(), 2, "only Received and MarkedOutOfScope were appended");
    assert_eq!(ticket.body["status"], "closed");
    assert_eq!(ticket.body["out_of_scope"], true);
}

async fn a_stale_if_match_is_a_412_that_changes_nothing(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.act(&id, "acknowledge", json!({})).await.status, StatusCode::OK);
    let stale = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &[("If-Match", "\"1\"")],
            Some(json!({"body": "late"})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{}", stale.body);
    assert_eq!(stale.code(), "version_conflict");
    assert_eq!(stale.body["current_version"], 2);
    let weak = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &[("If-Match", "W/\"2\"")],
            Some(json!({"body": "on time"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::OK, "{}", weak.body);
    let bad = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &[("If-Match", "yesterday")],
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_header"));
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await;
    assert_eq!(ticket.version(), 3);
}

async fn an_idempotency_key_returns_the_first_answer_also_after_a_restart(mut app: TestApp) {
    let body = json!({
        "channel": "other",
        "reporter": {"name": "Szabó Péter", "email": "szabo.peter@example.hu"},
        "subject": "Levélben érkezett panasz",
        "message": "A számlám hibás.",
        "category": "complaint"
    });
    let key = [("Idempotency-Key", "create-7f3a")];
    let first = app.request(Method::POST, "/api/v1/tickets", Some(&app.agent), &key, Some(body.clone())).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = app.request(Method::POST, "/api/v1/tickets", Some(&app.agent), &key, Some(body.clone())).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the first answer, not a second ticket");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let id = first.body["id"].as_str().unwrap().to_owned();

    let note_key = [("Idempotency-Key", "note-1")];
    let note = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &note_key,
            Some(json!({"body": "once"})),
        )
        .await;
    assert_eq!(note.status, StatusCode::OK);
    let refused_key = [("Idempotency-Key", "close-1")];
    let refused = app
        .request(Method::POST, &format!("/api/v1/tickets/{id}/close"), Some(&app.agent), &refused_key, Some(json!({})))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);

    app.stop();
    app.start();
    let after_restart = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &note_key,
            Some(json!({"body": "once"})),
        )
        .await;
    assert_eq!(after_restart.status, StatusCode::OK);
    assert_eq!(after_restart.body, note.body);
    let refused_again = app
        .request(Method::POST, &format!("/api/v1/tickets/{id}/close"), Some(&app.agent), &refused_key, Some(json!({})))
        .await;
    assert_eq!((refused_again.status, refused_again.body.clone()), (StatusCode::CONFLICT, refused.body.clone()));
    // The same key for a different request is refused, not silently replayed.
    let reused = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.agent),
            &note_key,
            Some(json!({"body": "twice"})),
        )
        .await;
    assert_eq!((reused.status, reused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    // Keys are per caller: another caller's same key is another request.
    let admin_note = app
        .request(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&app.admin),
            &note_key,
            Some(json!({"body": "once"})),
        )
        .await;
    assert_eq!(admin_note.status, StatusCode::OK);

    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await;
    let types: Vec<&str> =
        history.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["Received", "NoteAdded", "NoteAdded"], "one note per request, not per retry");
}

async fn twenty_racing_commands_with_one_if_match_let_exactly_one_through(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tickets/{id}/notes");
    let requests = (0..20).map(|_| {
        app.request(
            Method::POST,
            &path,
            Some(&app.agent),
            &[("If-Match", "\"1\"")],
            Some(json!({"body": "the same note"})),
        )
    });
    let answers = futures::future::join_all(requests).await;
    let succeeded = answers.iter().filter(|a| a.status == StatusCode::OK).count();
    let precondition_failed = answers.iter().filter(|a| a.status == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!(succeeded, 1, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert_eq!(precondition_failed, 19);
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await;
    assert_eq!(ticket.version(), 2);
}

async fn racing_commands_without_if_match_never_corrupt_the_ticket(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.act(&id, "acknowledge", json!({})).await.status, StatusCode::OK);
    // Ten agents investigate at once: the first wins; the others are decided again on the
    // new state and refused. Ten notes at once: all go in, one after another.
    let investigations = (0..10).map(|_| {
        app.act(
            &id,
            "investigate",
            json!({"category": "bug_report", "service_area": "norma", "contact_method": "email"}),
        )
    });
    let notes = (0..10).map(|i| app.act(&id, "notes", json!({"body": format!("note {i}")})));
    let (investigations, notes) =
        tokio::join!(futures::future::join_all(investigations), futures::future::join_all(notes));
    assert_eq!(investigations.iter().filter(|a| a.status == StatusCode::OK).count(), 1);
    assert!(investigations.iter().all(|a| a.status == StatusCode::OK || a.code() == "invalid_transition"));
    assert!(
        notes.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        notes.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.agent).await;
    let events = history.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2 + 1 + 10);
    assert_eq!(events.iter().filter(|e| e["event_type"] == "Investigated").count(), 1);
}

async fn each_role_can_do_what_it_may_and_nothing_else(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tickets/{id}");
    let none = app.request(Method::GET, &path, None, &[], None).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let wrong = app.request(Method::GET, &path, Some("tkd_not-a-real-token"), &[], None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    for reader in [&app.auditor, &app.quality_manager] {
        assert_eq!(app.get(&path, reader).await.status, StatusCode::OK);
        assert_eq!(app.get(&format!("{path}/events"), reader).await.status, StatusCode::OK);
        let command =
            app.request(Method::POST, &format!("{path}/notes"), Some(reader), &[], Some(json!({"body": "x"}))).await;
        assert_eq!((command.status, command.code()), (StatusCode::FORBIDDEN, "forbidden"));
        let intake = app.request(Method::POST, "/api/v1/tickets", Some(reader), &[], Some(json!({}))).await;
        assert_eq!(intake.status, StatusCode::FORBIDDEN);
    }
    let by_admin = app
        .request(Method::POST, &format!("{path}/notes"), Some(&app.admin), &[], Some(json!({"body": "admin note"})))
        .await;
    assert_eq!(by_admin.status, StatusCode::OK);
    let history = app.get(&format!("{path}/events"), &app.auditor).await;
    let last = history.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], json!({"kind": "staff", "name": "root-admin", "role": "admin"}));
    let ticket = app.get(&path, &app.agent).await;
    assert_eq!(ticket.version(), 2, "the refused commands wrote nothing");
    // Health needs no token.
    assert_eq!(app.request(Method::GET, "/healthz", None, &[], None).await.status, StatusCode::OK);
    assert_eq!(app.request(Method::GET, "/readyz", None, &[], None).await.status, StatusCode::OK);
}

async fn bad_input_gets_a_clear_error_and_writes_nothing(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let url = format!("{}/api/v1/tickets/{id}/notes", app.base);
    let send = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&app.agent).header("content-type", content_type).body(body).send()
    };
    let cases: [(&str, &str, StatusCode, &str); 6] = [
        ("{\"body\": ", "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
        ("{\"body\": \"x\", \"extra\": 1}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("{\"body\": 42}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("{\"body\": \"   \"}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("body=x", "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    ];
    for (body, content_type, status, code) in cases {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{body}: {problem}");
    }
    let huge = "x".repeat(300 * 1024);
    let response = app
        .client
        .post(&url)
        .bearer_auth(&app.agent)
        .header("content-type", "application/json")
        .body(format!("{{\"body\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let wrong_enum = app.act(&id, "acknowledge", json!({})).await;
    assert_eq!(wrong_enum.status, StatusCode::OK);
    let wrong_enum = app
        .act(&id, "investigate", json!({"category": "moaning", "service_area": "norma", "contact_method": "phone"}))
        .await;
    assert_eq!((wrong_enum.status, wrong_enum.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let bad_email = app
        .request(
            Method::POST,
            "/api/v1/tickets",
            Some(&app.agent),
            &[],
            Some(json!({"channel": "phone", "reporter": {"name": "", "email": "not-an-address"}, "subject": "s", "message": "m"})),
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        bad_email.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["reporter.name", "reporter.email"], "every bad field at once");
    let unknown = app.get("/api/v1/tickets/01a20000-0000-7000-8000-000000000000", &app.agent).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "not_found"));
    let unknown = app.act("01a20000-0000-7000-8000-000000000000", "close", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let no_route = app.get("/api/v1/nothing-here", &app.agent).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await;
    assert_eq!(ticket.version(), 2, "only the acknowledgement was written");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let served =
        app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap().text().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.json");
    if std::env::var_os("BLESS_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == checked_in,
        "schemas/openapi.json differs from the served document: review the API change and run \
         `BLESS_OPENAPI=1 cargo test -p ticketd --test api the_served_openapi` to update it"
    );
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for action in [
        "acknowledge",
        "investigate",
        "escalate",
        "escalation-answer",
        "resolve",
        "close",
        "reopen",
        "assign",
        "reclassify",
        "out-of-scope",
        "notes",
        "replies",
        "survey-answer",
    ] {
        let operation = &document["paths"][format!("/api/v1/tickets/{{id}}/{action}")]["post"];
        for status in ["200", "400", "401", "403", "404", "409", "412", "413", "415", "422"] {
            assert!(operation["responses"][status].is_object(), "{action} does not document {status}");
        }
    }
}

/// Several instances share a store on PostgreSQL only (SQLite's refusal of a second instance is
/// checked in `a_number_handed_out_resolves_at_once_on_every_instance`).
mod postgres_fleet {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_instances_lead_each_job_once_and_take_over_from_a_killed_one() {
        crate::fleet::three_instances_lead_each_job_once_and_take_over_from_a_killed_one(crate::Backend::Postgres)
            .await;
    }
}
