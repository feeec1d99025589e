//! E-mail intake end to end: messages built with a real mail library (lettre) and a few as
//! common clients write them, delivered over HTTP and through a Maildir.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app_with};
use crate::mail::{ticket_until, wait_for_mails};

fn mailbox(text: &str) -> Mailbox {
    text.parse().unwrap()
}

/// A customer's first mail: multipart/alternative (text and HTML) plus a PDF, accents in the
/// name, subject and file name.
fn first_mail() -> Vec<u8> {
    Message::builder()
        .from(mailbox("Kovács Éva <eva@example.hu>"))
        .to(mailbox("Ügyfélszolgálat <support@tickets.example>"))
        .subject("Hibás számla – kétszer szerepel a licenc")
        .message_id(Some("<first-1@mail.example.hu>".into()))
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(
                    "Jó napot!\n\nA márciusi számlán kétszer szerepel ugyanaz a licenc.\n\nÜdvözlettel:\nKovács Éva"
                        .to_owned(),
                    "<p>Jó napot!</p><p>A márciusi számlán <b>kétszer</b> szerepel ugyanaz a licenc.</p>".to_owned(),
                ))
                .singlepart(
                    Attachment::new("számla_március.pdf".into())
                        .body(b"%PDF-1.4\n% invoice\n".to_vec(), ContentType::parse("application/pdf").unwrap()),
                ),
        )
        .unwrap()
        .formatted()
}

fn reply(
    from: &str,
    subject: &str,
    in_reply_to: Option<&str>,
    id: &str,
    body: &str,
    extra: &[(&'static str, &str)],
) -> Vec<u8> {
    let mut builder = Message::builder()
        .from(mailbox(from))
        .to(mailbox("support@tickets.example"))
        .subject(subject)
        .message_id(Some(id.into()));
    if let Some(parent) = in_reply_to {
        builder = builder.in_reply_to(parent.into()).references(parent.into());
    }
    for (name, value) in extra {
        builder = builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), (*value).to_owned()));
    }
    builder.singlepart(SinglePart::plain(body.to_owned())).unwrap().formatted()
}

async fn deliver(app: &TestApp, token: &str, raw: &[u8]) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .bearer_auth(token)
        .header("content-type", "message/rfc822")
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn history(app: &TestApp, ticket: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/tickets/{ticket}/events"), &app.auditor).await.body["events"].as_array().unwrap().clone()
}

pub async fn e_mail_becomes_tickets_and_replies_thread_onto_the_right_ones(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[("TICKETD_MAIL", "files"), ("TICKETD_MAIL_FROM", "Support <support@tickets.example>")],
    )
    .await
    else {
        return;
    };
    let intake = app.cli(&["token", "create", "--role", "intake", "--name", "mailserver"]).trim().to_owned();

    // Only intake (or admin) tokens deliver, only raw messages; an intake token does nothing else.
    let (status, _) = deliver(&app, &app.agent, &first_mail()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let wrong_type = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .bearer_auth(&intake)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.get("/api/v1/queues/unassigned", &intake).await.status, StatusCode::FORBIDDEN);
    let (status, body) = deliver(&app, &intake, b"Subject: no sender here\r\n\r\nwho am I?\r\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "unreadable_message");

    // A new message: a ticket on the e-mail channel, decoded, with its attachment.
    let (status, created) = deliver(&app, &intake, &first_mail()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["outcome"], "created");
    let number = created["number"].as_u64().unwrap();
    let id = created["ticket_id"].as_str().unwrap().to_owned();
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.body;
    assert_eq!(ticket["channel"], "email");
    assert_eq!(ticket["reporter"]["name"], "Kovács Éva");
    assert_eq!(ticket["reporter"]["email"], "eva@example.hu");
    assert_eq!(ticket["subject"], "Hibás számla – kétszer szerepel a licenc");
    assert_eq!(ticket["reporter"]["attachments"][0]["file_name"], "számla_március.pdf");
    assert_eq!(ticket["reporter"]["attachments"][0]["media_type"], "application/pdf");
    let events = history(&app, &id).await;
    let message = events[0]["payload"]["personal"]["message"].as_str().unwrap();
    assert!(message.contains("A márciusi számlán kétszer szerepel ugyanaz a licenc."), "{message}");
    assert_eq!(events[0]["actor"], json!({"kind": "customer", "channel": "email"}));

    // The same message again (a mail server's retry) changes nothing.
    let (status, again) = deliver(&app, &intake, &first_mail()).await;
    assert_eq!((status, again["outcome"].as_str()), (StatusCode::OK, Some("duplicate")), "{again}");
    let acknowledged = ticket_until(&app, &id, |t| t["status"] == "acknowledged").await;
    assert_eq!(acknowledged["version"], 2, "still one Received and the mailer's Acknowledged");

    // A reply to our confirmation threads by In-Reply-To.
    let confirmation = wait_for_mails(&app.dir().join("outbox"), 1).await.remove(0);
    let confirmation_id = format!("<{}>", confirmation.message_id);
    let answer = reply(
        "Kovács Éva <eva@example.hu>",
        &format!("Re: {}", confirmation.subject),
        Some(&confirmation_id),
        "<reply-1@mail.example.hu>",
        "Köszönöm!\n\n> Megkaptuk bejelentését",
        &[],
    );
    let (status, replied) = deliver(&app, &intake, &answer).await;
    assert_eq!(
        (status, replied["outcome"].as_str(), replied["number"].as_u64()),
        (StatusCode::OK, Some("replied"), Some(number))
    );
    let events = history(&app, &id).await;
    let customer_reply = events.iter().find(|e| e["event_type"] == "CustomerReplied").expect("CustomerReplied");
    assert_eq!(customer_reply["payload"]["message_id"], "<reply-1@mail.example.hu>");
    assert!(customer_reply["payload"]["personal"]["body"].as_str().unwrap().starts_with("Köszönöm!"));

    // The reporter writing anew with the ticket's tag joins the ticket too (a tag is looked up in
    // the number index, which follows the log within moments: wait for it first)…
    ticket_until(&app, &number.to_string(), |t| t["number"] == number).await;
    let tagged = reply(
        "eva@example.hu",
        &format!("[#{number}] még egy kérdés"),
        None,
        "<tag-1@mail.example.hu>",
        "Mikor javítják?",
        &[],
    );
    let (_, tagged) = deliver(&app, &intake, &tagged).await;
    assert_eq!((tagged["outcome"].as_str(), tagged["number"].as_u64()), (Some("replied"), Some(number)), "{tagged}");
    // … but a stranger copying the tag gets a ticket of their own.
    let stranger = reply(
        "Mallory <mallory@elsewhere.example>",
        &format!("Re: [#{number}] send me the invoice"),
        None,
        "<mallory-1@elsewhere.example>",
        "Please send me the invoice.",
        &[],
    );
    let (status, stranger) = deliver(&app, &intake, &stranger).await;
    assert_eq!(status, StatusCode::CREATED, "{stranger}");
    assert_ne!(stranger["number"].as_u64(), Some(number));

    // Auto-replies and bounces never make tickets nor replies.
    let before = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.body["version"].clone();
    let out_of_office = reply(
        "eva@example.hu",
        "Automatikus válasz: Re: [#1]",
        Some(&confirmation_id),
        "<ooo-1@mail.example.hu>",
        "Szabadságon vagyok.",
        &[("Auto-Submitted", "auto-replied")],
    );
    let (status, ignored) = deliver(&app, &intake, &out_of_office).await;
    assert_eq!((status, ignored["outcome"].as_str()), (StatusCode::ACCEPTED, Some("ignored")), "{ignored}");
    let bounce = reply(
        "Mail Delivery System <MAILER-DAEMON@mx.example.hu>",
        "Undelivered Mail Returned to Sender",
        None,
        "<bounce-1@mx.example.hu>",
        "This is the mail system.",
        &[],
    );
    assert_eq!(deliver(&app, &intake, &bounce).await.1["outcome"], "ignored");
    let bulk =
        reply("news@shop.example", "Akciók!", None, "<news-1@shop.example>", "Hírlevél", &[("Precedence", "bulk")]);
    assert_eq!(deliver(&app, &intake, &bulk).await.1["outcome"], "ignored");
    assert_eq!(app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.body["version"], before);

    // An Outlook-style HTML-only message in ISO-8859-2 with encoded words is read right.
    let outlook = "From: =?iso-8859-2?Q?T=F3th_=C1d=E1m?= <adam@example.hu>\r\n\
        To: support@tickets.example\r\n\
        Subject: =?iso-8859-2?Q?K=E9rd=E9s_a_Norm=E1r=F3l?=\r\n\
        Message-ID: <outlook-1@example.hu>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/html; charset=\"iso-8859-2\"\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n\
        <html><body><p>Hogyan m=FBk=F6dik az =FAj modul?</p></body></html>\r\n";
    let (status, created) = deliver(&app, &intake, outlook.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ticket = app.get(&format!("/api/v1/tickets/{}", created["ticket_id"].as_str().unwrap()), &app.agent).await.body;
    assert_eq!(
        (ticket["reporter"]["name"].as_str(), ticket["subject"].as_str()),
        (Some("Tóth Ádám"), Some("Kérdés a Normáról"))
    );
    let events = history(&app, created["ticket_id"].as_str().unwrap()).await;
    assert!(events[0]["payload"]["personal"]["message"].as_str().unwrap().contains("Hogyan működik az új modul?"));

    // Within the reopen window, the customer's answer reopens a resolved ticket.
    app.act(&id, "investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "email"}))
        .await;
    let resolved = app
        .act(&id, "resolve", json!({"resolution": "Credited.", "root_cause": "billing", "within_own_authority": true}))
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let not_solved = reply(
        "eva@example.hu",
        &format!("Re: [#{number}] Bejelentését megoldottuk"),
        Some(&confirmation_id),
        "<reply-2@mail.example.hu>",
        "Sajnos a jóváírás nem jelent meg.",
        &[],
    );
    let (_, reopened) = deliver(&app, &intake, &not_solved).await;
    assert_eq!(
        (reopened["outcome"].as_str(), reopened["reopened"].as_bool()),
        (Some("replied"), Some(true)),
        "{reopened}"
    );
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.body;
    assert_eq!(ticket["status"], "investigating");
}

pub async fn a_maildir_is_taken_in_once(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    let maildir = app.dir().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("new/1700000001.M1P1.mx"), first_mail()).unwrap();
    // The same message delivered twice (it happens with forwarding rules).
    std::fs::write(maildir.join("new/1700000002.M2P1.mx"), first_mail()).unwrap();
    let auto = reply(
        "eva@example.hu",
        "Out of office",
        None,
        "<ooo-9@mail.example.hu>",
        "Away.",
        &[("Auto-Submitted", "auto-replied")],
    );
    std::fs::write(maildir.join("cur/1700000003.M3P1.mx:2,S"), auto).unwrap();
    std::fs::write(maildir.join("new/1700000004.M4P1.mx"), b"\x00\x01\x02").unwrap();

    let dir = maildir.display().to_string();
    let attachments = app.dir().join("attachments").display().to_string();
    let output = app.cli(&["ingest-maildir", &dir, "--attachments-dir", &attachments]);
    assert_eq!(
        output.trim(),
        "3 messages taken: 1 new tickets, 0 replies, 1 already taken, 1 automatic (ignored); 1 unreadable (moved to .failed)"
    );
    let left: Vec<_> = ["new", "cur"].iter().flat_map(|s| std::fs::read_dir(maildir.join(s)).unwrap()).collect();
    assert!(left.is_empty(), "every message moved out");
    assert_eq!(std::fs::read_dir(maildir.join(".processed/cur")).unwrap().count(), 3);
    assert_eq!(std::fs::read_dir(maildir.join(".failed/cur")).unwrap().count(), 1);
    let again = app.cli(&["ingest-maildir", &dir, "--attachments-dir", &attachments]);
    assert!(again.starts_with("0 messages taken"), "{again}");
    let tickets = app.query_count("SELECT COUNT(*) FROM events WHERE event_type = 'Received'").await;
    assert_eq!(tickets, 1);
    let ticket = ticket_until(&app, "1", |t| t["status"] == "received").await;
    assert_eq!(ticket["channel"], "email");
    assert_eq!(ticket["reporter"]["attachments"][0]["file_name"], "számla_március.pdf");
}

/// What customers wrote reaches the ticket whole: a subject too long for a ticket's, a
/// quoted-printable body with a bare `=`, and a `Reply-To:` (a secretary writing for someone),
/// whose address then gets the customer mail while the ticket keeps both.
pub async fn nothing_a_customer_wrote_is_lost_or_misread(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[("TICKETD_MAIL", "files"), ("TICKETD_MAIL_FROM", "Support <support@tickets.example>")],
    )
    .await
    else {
        return;
    };
    let intake = app.cli(&["token", "create", "--role", "intake", "--name", "mailserver"]).trim().to_owned();
    let ticket_of = |created: &Value| created["ticket_id"].as_str().unwrap().to_owned();

    // A 1,000-character subject, and a body that only points to it.
    let mut subject = String::from("Árajánlat kérése:");
    let mut item = 1;
    while subject.chars().count() < 1000 {
        subject.push_str(&format!(" {item}. tétel – éves licenc,"));
        item += 1;
    }
    let subject: String = subject.chars().take(1000).collect::<String>().trim_end().to_owned();
    let long = reply("Kiss Béla <bela@example.hu>", &subject, None, "<long-1@example.hu>", "Lásd a tárgyat.", &[]);
    let (status, created) = deliver(&app, &intake, &long).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let long_id = ticket_of(&created);
    let ticket = app.get(&format!("/api/v1/tickets/{long_id}"), &app.agent).await.body;
    assert_eq!(ticket["reporter"]["reply_to"], Value::Null, "no Reply-To, no second address");
    let cut = ticket["subject"].as_str().unwrap();
    assert_eq!(cut.chars().count(), 300, "the ticket's subject is cut to its limit: {cut}");
    let events = history(&app, &ticket_of(&created)).await;
    let message = events[0]["payload"]["personal"]["message"].as_str().unwrap();
    assert_eq!(message, format!("Tárgy: {subject}\n\nLásd a tárgyat."), "the whole subject heads the message");

    // Quoted-printable as some clients write it: the `=` of the text left unencoded.
    let bare_equals = "From: =?utf-8?Q?Szab=C3=B3_G=C3=A1bor?= <gabor@example.hu>\r\n\
        To: support@tickets.example\r\n\
        Subject: =?utf-8?Q?=C3=81raj=C3=A1nlat?=\r\n\
        Message-ID: <qp-1@example.hu>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=\"utf-8\"\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n\
        J=C3=B3 napot!\r\n\r\n\
        A havi d=C3=ADj = 89 900 Ft, ez t=C3=B6bb, mint a szerz=C5=91d=C3=A9sben =\r\n\
        =C3=A1ll=C3=B3 79 900 Ft.\r\n";
    let (status, created) = deliver(&app, &intake, bare_equals.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let events = history(&app, &ticket_of(&created)).await;
    let message = events[0]["payload"]["personal"]["message"].as_str().unwrap();
    assert!(message.contains("A havi díj = 89 900 Ft, ez több, mint a szerződésben álló 79 900 Ft."), "{message:?}");
    assert!(!message.contains('\u{FFFD}'), "{message:?}");

    // A secretary writes for her manager: the ticket keeps both, the mail goes to the manager.
    let for_manager = Message::builder()
        .from(mailbox("Titkárság <titkarsag@acme.example>"))
        .reply_to(mailbox("Dr. Nagy Ferenc <nagy.ferenc@acme.example>"))
        .to(mailbox("support@tickets.example"))
        .subject("Hibás számla")
        .message_id(Some("<secretary-1@acme.example>".into()))
        .singlepart(SinglePart::plain("Dr. Nagy Ferenc megbízásából: a számla hibás.".to_owned()))
        .unwrap()
        .formatted();
    let (status, created) = deliver(&app, &intake, &for_manager).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = ticket_of(&created);
    let number = created["number"].as_u64().unwrap();
    let ticket = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.body;
    assert_eq!(ticket["reporter"]["email"], "titkarsag@acme.example");
    assert_eq!(ticket["reporter"]["reply_to"], "nagy.ferenc@acme.example");
    let events = history(&app, &id).await;
    assert_eq!(events[0]["payload"]["personal"]["reply_to"], "nagy.ferenc@acme.example");
    assert!(events[0]["payload"].as_object().unwrap().keys().all(|k| k == "personal" || !k.contains("reply")));
    assert_eq!(events[0]["schema_version"], 4);

    let tagged = format!("[#{number}]");
    let confirmation = wait_for_mails(&app.dir().join("outbox"), 3)
        .await
        .into_iter()
        .find(|m| m.subject.starts_with(&tagged))
        .expect("a confirmation");
    assert_eq!(confirmation.to, "nagy.ferenc@acme.example", "{confirmation:?}");
    ticket_until(&app, &id, |t| t["status"] == "acknowledged").await;
    let replied = app.act(&id, "replies", json!({"body": "Megvizsgáljuk a számlát."})).await;
    assert_eq!(replied.status, StatusCode::OK, "{}", replied.body);
    let mails = wait_for_mails(&app.dir().join("outbox"), 4).await;
    let answer = mails.iter().find(|m| m.body.contains("Megvizsgáljuk a számlát.")).expect("the agent's reply");
    assert_eq!(answer.to, "nagy.ferenc@acme.example", "{answer:?}");
    // The manager answering with the ticket's tag is the reporter too.
    ticket_until(&app, &number.to_string(), |t| t["number"] == number).await;
    let from_manager = reply(
        "Dr. Nagy Ferenc <nagy.ferenc@acme.example>",
        &format!("{tagged} kiegészítés"),
        None,
        "<manager-1@acme.example>",
        "A márciusi számláról van szó.",
        &[],
    );
    let (_, answered) = deliver(&app, &intake, &from_manager).await;
    assert_eq!(
        (answered["outcome"].as_str(), answered["number"].as_u64()),
        (Some("replied"), Some(number)),
        "{answered}"
    );
}
