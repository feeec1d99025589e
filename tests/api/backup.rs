//! The restore drill: a backup taken while commands keep coming restores into a fresh store
//! with every command acknowledged before it began, read models that equal a rebuild, and a
//! ledger that verifies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, spawn_app_with};

pub async fn a_backup_taken_under_load_restores_every_acknowledged_command(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (client, base, token) = (app.client.clone(), app.base.clone(), app.agent.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({
                    "channel": "phone",
                    "reporter": {"name": "Mentés Teszt", "email": format!("backup{w}-{i}@example.hu")},
                    "subject": format!("Mentés {w}-{i}"),
                    "message": "Megmarad a mentésben?",
                });
                let answer =
                    client.post(format!("{base}/api/v1/tickets")).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(answer.status(), StatusCode::CREATED);
                let created: serde_json::Value = answer.json().await.unwrap();
                let id = created["id"].as_str().unwrap().to_owned();
                let note = json!({"body": format!("note {w}-{i}")});
                let noted = client
                    .post(format!("{base}/api/v1/tickets/{id}/notes"))
                    .bearer_auth(&token)
                    .json(&note)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(noted.status(), StatusCode::OK);
                acknowledged.lock().unwrap().push(id);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Everything acknowledged before the backup begins must be in it.
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let backups = app.dir().join("backups");
    let output = app.cli(&["backup", backups.to_str().unwrap()]);
    let when_done = acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let file = output
        .lines()
        .find_map(|l| l.strip_prefix("backup written: "))
        .unwrap_or_else(|| panic!("no backup written: {output}"))
        .split(" (schema ")
        .next()
        .unwrap()
        .to_owned();
    assert!(before.len() > 10, "the load was running: {} commands before the backup", before.len());
    assert!(when_done > before.len(), "commands kept coming while the backup was taken");

    // Restore into a fresh store.
    let (url, database) = match backend {
        Backend::Sqlite => (format!("sqlite:{file}"), None),
        Backend::Postgres => {
            let server = std::env::var("TICKETD_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let database = format!("restore_{}", uuid::Uuid::new_v4().simple());
            {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {database}")).execute(&mut connection).await.unwrap();
            }
            let (base, _) = server.split_once('?').unwrap_or((&server, ""));
            let (host, _) = base.rsplit_once('/').unwrap();
            let target = format!("{host}/{database}");
            let restored = std::process::Command::new("pg_restore")
                .args(["--no-owner", "--clean", "--if-exists", "--exit-on-error", "--dbname"])
                .arg(&target)
                .arg(&file)
                .output()
                .expect("pg_restore runs");
            assert!(restored.status.success(), "pg_restore: {}", String::from_utf8_lossy(&restored.stderr));
            let schema = output.split("(schema ").nth(1).unwrap().split(')').next().unwrap().to_owned();
            (format!("{target}?options=-c%20search_path%3D{schema}"), Some(database))
        }
    };
    let mut restored = app.on_restored(url, database);
    for id in &before {
        let answer = restored.get(&format!("/api/v1/tickets/{id}"), &restored.agent).await;
        assert_eq!(answer.status, StatusCode::OK, "ticket {id}, acknowledged before the backup, is restored");
        assert_eq!(answer.body["version"], 2, "its note too");
    }
    // Its read models catch up and equal a rebuild from its log; its ledger verifies.
    let head = restored.query_count("SELECT COALESCE(MAX(position), 0) FROM events").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let behind = restored
            .query_count(&format!(
                "SELECT count(*) FROM projection_checkpoints WHERE name IN ('ticket_index', 'ticket_view', 'statistics', \
                 'stats_marks', 'sla_clocks', 'ledger') AND position < {head}"
            ))
            .await;
        if behind == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the restored read models did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = crate::consistency::dumps(&restored).await;
    restored.stop();
    let rebuilt_output = restored.cli(&["rebuild"]);
    assert!(rebuilt_output.contains("ticket_view: rebuilt from"), "{rebuilt_output}");
    let rebuilt = crate::consistency::dumps(&restored).await;
    for ((table, live), rebuilt) in crate::consistency::READ_MODEL_TABLES.iter().zip(&live).zip(&rebuilt) {
        assert_eq!(live, rebuilt, "{table}: the restored read model is not what a rebuild gives");
    }
    let verified = restored.cli(&["verify"]);
    assert!(verified.contains("OK: every event is the one recorded"), "{verified}");
}
