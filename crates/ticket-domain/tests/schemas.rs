//! The JSON Schemas in `schemas/events/` and the code cannot drift apart, and events written
//! today load in every later version of the code.
//!
//! After changing an event type on purpose: bump its schema version, add an upcaster, and run
//! `BLESS_SCHEMAS=1 cargo test -p ticket-domain --test schemas` to write the new schema file.
//! Fixture files are never rewritten: they are the record of what was once stored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use ticket_domain::sla::SlaTarget;
use ticket_domain::vocabulary::{Category, Priority, Reason};
use ticket_domain::{Ticket, TicketCommand, TicketEvent, codec, sample};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn schema_path(event_type: &str, version: u32) -> PathBuf {
    repo_root().join(format!("schemas/events/{event_type}.v{version}.json"))
}

fn blessing() -> bool {
    std::env::var_os("BLESS_SCHEMAS").is_some()
}

fn validator(event_type: &str, version: u32) -> jsonschema::Validator {
    let path = schema_path(event_type, version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Every event type at least once, as a real history makes them.
fn sample_events() -> Vec<TicketEvent> {
    let at = |minutes: i64| Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + Duration::minutes(minutes);
    let mut events = Vec::new();
    let histories = [
        vec![
            TicketCommand::Receive(sample::receive(1)),
            sample::acknowledge(),
            sample::assign("kata"),
            sample::prioritise(Priority::High),
            sample::investigate(Category::UserSupport),
            sample::reclassify(Category::Complaint),
            sample::escalate("legal"),
            sample::answer_escalation(),
            sample::agent_reply(),
            sample::note(),
            sample::resolve(),
            sample::customer_reply(Duration::days(14)),
            sample::resolve(),
            TicketCommand::Close,
            sample::survey_sent(),
            sample::answer_survey(5),
        ],
        vec![
            TicketCommand::Receive(sample::receive(2)),
            sample::link_contract("acme"),
            sample::sla_warning(SlaTarget::FirstContact, Utc.with_ymd_and_hms(2026, 1, 5, 17, 0, 0).unwrap()),
            sample::sla_breach(SlaTarget::FirstContact, Utc.with_ymd_and_hms(2026, 1, 5, 17, 0, 0).unwrap()),
            sample::out_of_scope(),
            TicketCommand::RestrictProcessing {
                reason: Reason::parse("erasure requested; a complaint's record is kept").unwrap(),
                request_reference: Reason::parse("DPO-2026-17").unwrap(),
                hold_until: None,
            },
            TicketCommand::ErasePersonalData {
                reason: Reason::parse("erasure requested (GDPR Art. 17)").unwrap(),
                request_reference: Reason::parse("DPO-2026-17").unwrap(),
            },
            TicketCommand::RecordSealing {
                events: vec![ticket_domain::event::SealedEvent {
                    position: 17,
                    event_id: uuid::Uuid::nil(),
                    leaf_before: "00".repeat(32),
                    leaf_after: "11".repeat(32),
                }],
            },
        ],
    ];
    for history in histories {
        let mut ticket = Ticket::default();
        for (minute, command) in history.into_iter().enumerate() {
            for event in ticket.decide(command, at(minute as i64)).unwrap() {
                ticket = ticket.evolve(&event, at(minute as i64));
                events.push(event);
            }
        }
    }
    events
}

#[test]
fn the_checked_in_schemas_are_the_ones_the_code_generates() {
    for (event_type, version, schema) in TicketEvent::json_schemas() {
        let path = schema_path(event_type, version);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if blessing() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let checked_in = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: run with BLESS_SCHEMAS=1", path.display()));
        assert_eq!(
            checked_in, generated,
            "{event_type} changed shape but schemas/ did not: bump its schema version, add an upcaster, bless"
        );
    }
}

#[test]
fn every_serialised_event_validates_against_its_schema() {
    let events = sample_events();
    let covered: BTreeSet<&str> = events.iter().map(|e| e.event_type()).collect();
    let all: BTreeSet<&str> = TicketEvent::TYPES.iter().map(|(name, _)| *name).collect();
    assert_eq!(covered, all, "the sample history must cover every event type");
    for event in events {
        let stored = codec::encode(&event);
        let validator = validator(stored.event_type, stored.schema_version);
        let errors: Vec<String> = validator.iter_errors(&stored.payload).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}\n{}", stored.event_type, stored.payload);
        // The schema is strict: it would notice a field the code no longer writes.
        let mut broken = stored.payload.clone();
        broken.as_object_mut().unwrap().insert("unexpected".into(), json!(1));
        assert!(!validator.is_valid(&broken), "{} schema accepts unknown fields", stored.event_type);
    }
}

#[test]
fn personal_data_sits_only_under_personal() {
    // The reporter's name, address, phone and words must not appear outside `personal`.
    let personal_strings =
        ["Kovács Anna", "kovacs.anna@example.hu", "+36 30 123 4567", "Tegnap óta", "Sajnos", "próbálja", "Called back"];
    for event in sample_events() {
        let mut payload = codec::encode(&event).payload;
        payload.as_object_mut().unwrap().remove("personal");
        let rest = payload.to_string();
        for needle in personal_strings {
            assert!(!rest.contains(needle), "{} carries '{needle}' outside personal: {rest}", event.event_type());
        }
    }
}

const FIXTURE: &str = "schemas/fixtures/ticket-events.v1.jsonl";
/// Events of the types and versions added since: v2 of Received and CustomerReplied, …; v3 of
/// Received (with its priority) and Prioritised; v4 of Received (with a reply-to address).
const LATER_FIXTURES: &[&str] = &[
    "schemas/fixtures/ticket-events.v2.jsonl",
    "schemas/fixtures/ticket-events.v3.jsonl",
    "schemas/fixtures/ticket-events.v4.jsonl",
    "schemas/fixtures/ticket-events.v5.jsonl",
];

/// Reads a fixture: every line validates against its version's schema and decodes.
fn read_fixture(relative: &str) -> Vec<(String, TicketEvent)> {
    let text = std::fs::read_to_string(repo_root().join(relative)).unwrap();
    text.lines()
        .enumerate()
        .map(|(line_number, line)| {
            let record: Value = serde_json::from_str(line).unwrap();
            let event_type = record["event_type"].as_str().unwrap();
            let version = record["schema_version"].as_u64().unwrap() as u32;
            assert!(validator(event_type, version).is_valid(&record["payload"]), "{relative} line {}", line_number + 1);
            let event = codec::decode(event_type, version, record["payload"].clone())
                .unwrap_or_else(|e| panic!("{relative} line {}: {e}", line_number + 1));
            (event_type.to_owned(), event)
        })
        .collect()
}

#[test]
fn every_event_type_is_in_a_fixture_and_later_versions_load() {
    let mut types: BTreeSet<String> = read_fixture(FIXTURE).into_iter().map(|(t, _)| t).collect();
    for fixture in LATER_FIXTURES {
        for (event_type, event) in read_fixture(fixture) {
            if let TicketEvent::Received(received) = &event {
                assert_eq!(received.personal.attachments.len(), 1, "v2 keeps attachments");
                let expected = if fixture.ends_with("v2.jsonl") { Priority::Normal } else { Priority::Urgent };
                assert_eq!(received.priority, expected, "{fixture}: a report older than v3 reads as normal");
                let reply_to = received.personal.reply_to.as_ref().map(|r| r.as_str());
                let expected = fixture.ends_with("v4.jsonl").then_some("nagy.ferenc@acme.hu");
                assert_eq!(reply_to, expected, "{fixture}: a report older than v4 has no reply-to address");
            }
            types.insert(event_type);
        }
    }
    let all: BTreeSet<String> = TicketEvent::TYPES.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(types, all, "every event type has a stored example");
}

#[test]
fn events_written_by_earlier_versions_still_load() {
    let path = repo_root().join(FIXTURE);
    if blessing() && !path.exists() {
        let lines: Vec<String> = sample_events()
            .iter()
            .map(|event| {
                let stored = codec::encode(event);
                json!({"event_type": stored.event_type, "schema_version": stored.schema_version, "payload": stored.payload})
                    .to_string()
            })
            .collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut types = BTreeSet::new();
    let mut decoded = Vec::new();
    for (line_number, line) in text.lines().enumerate() {
        let record: Value = serde_json::from_str(line).unwrap();
        let event_type = record["event_type"].as_str().unwrap();
        let version = record["schema_version"].as_u64().unwrap() as u32;
        assert!(validator(event_type, version).is_valid(&record["payload"]), "line {}", line_number + 1);
        let event = codec::decode(event_type, version, record["payload"].clone())
            .unwrap_or_else(|e| panic!("{FIXTURE} line {}: {e}", line_number + 1));
        types.insert(event_type.to_owned());
        decoded.push(event);
    }
    assert_eq!(types.len(), 16, "the fixture covers every event type of v1");
    // The fixture's first ticket replays to the state it was in when it was written.
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let first_ticket: Vec<&TicketEvent> =
        decoded.iter().take_while(|e| !matches!(e, TicketEvent::Received(r) if r.number.get() == 2)).collect();
    let ticket = Ticket::replay(first_ticket.into_iter().map(|e| (e, at)));
    let state = ticket.state().unwrap();
    assert_eq!(ticket.version(), 16);
    assert_eq!(
        (state.status, state.survey, state.category),
        (ticket_domain::Status::Closed, ticket_domain::SurveyStatus::Answered, Some(Category::Complaint))
    );
}

/// Once its data key is destroyed an event's personal part reads as the erased placeholder:
/// that placeholder is valid under the type's schema and decodes, for every type with one.
#[test]
fn every_erased_personal_part_validates_and_decodes() {
    let mut seen = BTreeSet::new();
    for event in sample_events() {
        let stored = codec::encode(&event);
        let Some(personal) = stored.payload.get("personal") else {
            assert!(ticket_domain::event::erased_personal(stored.event_type).is_none(), "{}", stored.event_type);
            continue;
        };
        assert!(personal.is_object());
        let mut payload = stored.payload.clone();
        payload["personal"] = ticket_domain::event::erased_personal(stored.event_type)
            .unwrap_or_else(|| panic!("{} has personal data but no erased form", stored.event_type));
        assert!(validator(stored.event_type, stored.schema_version).is_valid(&payload), "{}", stored.event_type);
        let decoded = codec::decode(stored.event_type, stored.schema_version, payload).unwrap();
        assert!(!format!("{decoded:?}").contains("Kovács"), "{decoded:?}");
        seen.insert(stored.event_type);
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
}
