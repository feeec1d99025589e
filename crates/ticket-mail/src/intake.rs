//! E-mail intake: a raw RFC 5322 / MIME message becomes a new ticket on the `email` channel,
//! or a `CustomerReplied` on the ticket it answers.
//!
//! **Threading.** A message belongs to a ticket when its `In-Reply-To` or `References` names a
//! Message-ID of that ticket (one we sent, or one we took in); failing that, when its subject
//! carries the ticket's tag (`[#123]`) *and* it comes from the ticket's reporter: a stranger
//! who copies a ticket number gets a new ticket, never a way into someone else's.
//!
//! **Never twice.** Each message is keyed by its Message-ID (or, without one, by the SHA-256 of
//! its bytes) in `mail_threads`, reserved with the ticket it goes to *before* anything is
//! written, and the events it causes carry a correlation id derived from that key: a message
//! delivered again (a retry, a re-run of the Maildir) is recognised and changes nothing, also
//! after a crash half-way.
//!
//! **No loops.** Auto-replies and bounces (`Auto-Submitted`, `Precedence: bulk|junk|list`,
//! mailer-daemon/postmaster senders, delivery reports, an empty return path) and our own mails
//! coming back are taken in as "ignored": no ticket, no reply.

use std::sync::Arc;

use chrono::Duration;
use event_store::{Database, StoreError};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};
use ticket_app::attachments::AttachmentStore;
use ticket_app::{AppError, CommandContext, TicketService};
use ticket_domain::vocabulary::{
    Actor, AttachmentRef, Channel, EmailAddress, Language, MessageBody, MessageId, PersonName, Priority, Subject,
    TicketId, TicketNumber,
};
use ticket_domain::{ReceiveTicket, TicketCommand, TicketEvent};

use crate::outbox::{now_us, on_database};

/// A message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMail {
    /// `<…>` as the message gives it; `None` when it has none.
    pub message_id: Option<String>,
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    /// The `Reply-To:` address, when it names another address than `From:`.
    pub reply_to: Option<EmailAddress>,
    pub subject: String,
    /// The text body (an HTML-only message's text, converted).
    pub body: String,
    /// Message-IDs this one answers (`In-Reply-To` then `References`), each as `<…>`.
    pub answers: Vec<String>,
    pub language: Language,
    /// Why this is an automatic message (auto-reply, bounce), if it is one.
    pub automatic: Option<String>,
    /// File name, declared type, bytes.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// SHA-256 of the raw bytes: the key of a message without a Message-ID.
    pub digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The bytes are not a message we can take (no sender, not MIME); retrying will not help.
    #[error("{0}")]
    Unreadable(String),
    /// The store failed; the message can be delivered again later.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for IntakeError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    Created {
        ticket_id: TicketId,
        number: TicketNumber,
    },
    Replied {
        ticket_id: TicketId,
        number: TicketNumber,
        reopened: bool,
    },
    /// Taken in before: nothing changed.
    Duplicate {
        ticket_id: TicketId,
    },
    /// An auto-reply, a bounce, or our own mail: no ticket.
    Ignored {
        reason: String,
    },
}

fn angle(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

fn texts(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(text) => text.split_whitespace().map(angle).collect(),
        HeaderValue::TextList(list) => list.iter().flat_map(|t| t.split_whitespace().map(angle)).collect(),
        _ => Vec::new(),
    }
}

/// Reads a raw message.
pub fn parse(raw: &[u8]) -> Result<IncomingMail, IntakeError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| IntakeError::Unreadable("the body is not an RFC 5322 message".into()))?;
    let from = message.from().and_then(|a| a.first());
    let from_address = from.and_then(|a| a.address()).map(str::to_owned);
    let from_name = from.and_then(|a| a.name()).map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if from_address.is_none() && message.subject().is_none() && message.body_text(0).is_none() {
        return Err(IntakeError::Unreadable("the message has no sender, no subject and no body".into()));
    }
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let local_part = from_address.as_deref().and_then(|a| a.split('@').next()).unwrap_or_default().to_ascii_lowercase();
    let is_report = message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    let automatic = if let Some(value) = header("Auto-Submitted").filter(|v| !v.starts_with("no")) {
        Some(format!("Auto-Submitted: {value}"))
    } else if let Some(value) =
        header("Precedence").filter(|v| ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str()))
    {
        Some(format!("Precedence: {value}"))
    } else if ["mailer-daemon", "postmaster"].contains(&local_part.as_str()) {
        Some(format!("sent by {local_part}"))
    } else if is_report {
        Some("a delivery or read report".into())
    } else if header("Return-Path").is_some_and(|v| v == "<>") {
        Some("an empty return path (a bounce)".into())
    } else if header("X-Autoreply").is_some() || header("X-Autorespond").is_some() {
        Some("an auto-responder".into())
    } else {
        None
    };
    let from_email = from_address.as_deref().and_then(|a| EmailAddress::parse(a).ok());
    let reply_to = message
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|a| EmailAddress::parse(a).ok())
        .filter(|r| from_email.as_ref().is_none_or(|f| !f.as_str().eq_ignore_ascii_case(r.as_str())));
    let mut answers = texts(message.in_reply_to());
    answers.extend(texts(message.references()));
    let language = match header("Content-Language") {
        Some(value) if value.starts_with("en") => Language::En,
        _ => Language::Hu,
    };
    let attachments = message
        .attachments()
        .filter(|part| !part.is_message() && !part.contents().is_empty())
        .map(|part| {
            let declared = part
                .content_type()
                .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into());
            (part.attachment_name().unwrap_or("attachment").to_owned(), declared, part.contents().to_vec())
        })
        .collect();
    Ok(IncomingMail {
        message_id: message.message_id().map(angle),
        from: from_email,
        from_name,
        reply_to,
        subject: message.subject().unwrap_or_default().trim().to_owned(),
        body: body_text(&message).map(|b| b.trim().to_owned()).unwrap_or_default(),
        answers,
        language,
        automatic,
        attachments,
        digest: Sha256::digest(raw).iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// The first text body. A quoted-printable one is decoded again from its raw bytes with
/// [`quoted_printable_tolerant`]: mail-parser reads a bare `=` (`díj = 89 900 Ft`, as people
/// type it and some clients send it unencoded) as an escape and yields U+FFFD or gives up.
fn body_text<'x>(message: &'x Message<'x>) -> Option<std::borrow::Cow<'x, str>> {
    let redecoded = message.text_part(0).and_then(|part| {
        let encoding = part.content_transfer_encoding()?;
        if !encoding.trim().eq_ignore_ascii_case("quoted-printable") {
            return None;
        }
        let raw = message.raw_message.get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
        let bytes = quoted_printable_tolerant(raw);
        let charset =
            part.content_type().and_then(|ct| ct.attribute("charset")).and_then(|c| charset_decoder(c.as_bytes()));
        let text = match charset {
            Some(decode) => decode(&bytes),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        };
        match &part.body {
            PartType::Html(_) => Some(html_to_text(&text)),
            PartType::Text(_) => Some(text),
            _ => None,
        }
    });
    redecoded.map(Into::into).or_else(|| message.body_text(0))
}

/// Decodes quoted-printable (RFC 2045 §6.7) leniently, as §6.7's note on robust decoders
/// advises: an `=` not followed by two hex digits stays an `=` with what follows it; `=`
/// at the end of a line is a soft line break; trailing blanks on a line are transport padding
/// and go; any other byte (also an unencoded 8-bit one) is kept as it is. Line ends come out
/// as the input has them (CRLF if it has any CR, else LF), like mail-parser's own decoder.
pub fn quoted_printable_tolerant(raw: &[u8]) -> Vec<u8> {
    let newline: &[u8] = if raw.contains(&b'\r') { b"\r\n" } else { b"\n" };
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut lines = raw.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = line.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |at| at + 1);
        let line = &line[..end];
        let (line, soft_break) = match line.strip_suffix(b"=") {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let mut at = 0;
        while at < line.len() {
            match (line[at], line.get(at + 1).copied().and_then(hex), line.get(at + 2).copied().and_then(hex)) {
                (b'=', Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    at += 3;
                }
                (byte, _, _) => {
                    out.push(byte);
                    at += 1;
                }
            }
        }
        if !soft_break && !last {
            out.extend_from_slice(newline);
        }
    }
    out
}

/// The ticket number a subject carries as `[#123]`, if any.
pub fn subject_tag(subject: &str) -> Option<TicketNumber> {
    subject.match_indices("[#").find_map(|(at, _)| {
        let rest = &subject[at + 2..];
        let end = rest.find(']')?;
        rest[..end].trim().parse::<u64>().ok().and_then(|n| TicketNumber::new(n).ok())
    })
}

/// A subject longer than a ticket's subject may be, as a line to put at the top of the
/// message, so that nothing the customer wrote is lost when the subject is cut.
fn whole_subject(subject: &str, language: Language) -> Option<String> {
    (subject.chars().count() > Subject::CHARS_MAX).then(|| match language {
        Language::Hu => format!("Tárgy: {subject}"),
        Language::En => format!("Subject: {subject}"),
    })
}

/// Cuts text to at most `max` characters.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max.saturating_sub(2)).collect::<String>() + " …"
    }
}

/// Takes messages in.
pub struct MailIntake {
    pub service: Arc<TicketService>,
    pub database: Database,
    pub attachments: AttachmentStore,
    /// A reply within this long of the resolution reopens the ticket.
    pub reopen_window: Duration,
    /// Links new tickets to their contract by the sender's address.
    pub registry: Arc<ticket_app::registry::RegistryService>,
}

impl MailIntake {
    pub async fn take(&self, raw: &[u8]) -> Result<IntakeOutcome, IntakeError> {
        let mail = parse(raw)?;
        if let Some(reason) = &mail.automatic {
            return Ok(IntakeOutcome::Ignored { reason: format!("an automatic message ({reason})") });
        }
        let Some(from) = mail.from.clone() else {
            return Err(IntakeError::Unreadable("the message has no usable From address".into()));
        };
        let key = mail.message_id.clone().unwrap_or_else(|| format!("<sha256.{}@intake.invalid>", mail.digest));
        let correlation_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes());
        let target = match self.lookup(&key).await? {
            Some((_, direction)) if direction == "out" => {
                return Ok(IntakeOutcome::Ignored { reason: "a mail we sent ourselves".into() });
            }
            Some((ticket_id, _)) => {
                // Taken before, or reserved and then interrupted: the history says which.
                match self.service.history(ticket_id).await {
                    Ok(history) if history.iter().any(|r| r.correlation_id == correlation_id) => {
                        return Ok(IntakeOutcome::Duplicate { ticket_id });
                    }
                    Ok(_) | Err(AppError::NotFound(_)) => ticket_id,
                    Err(error) => return Err(IntakeError::Unavailable(error.to_string())),
                }
            }
            None => {
                let thread = match self.thread_of(&mail, &from).await? {
                    // A reply to a ticket whose personal data was erased starts a new ticket:
                    // nothing personal joins an erased one.
                    Some(ticket_id) => match self.service.load(ticket_id).await {
                        Ok(ticket) if ticket.state().is_some_and(|s| s.personal_erased) => None,
                        _ => Some(ticket_id),
                    },
                    None => None,
                };
                let ticket_id = thread.unwrap_or_else(TicketId::new);
                if !self.reserve(&key, ticket_id).await? {
                    // Another delivery of the same message got there first.
                    let (ticket_id, _) = self.lookup(&key).await?.unwrap_or((ticket_id, String::new()));
                    return Ok(IntakeOutcome::Duplicate { ticket_id });
                }
                ticket_id
            }
        };
        let mut body = mail.body.clone();
        let attachments = self.store_attachments(&mail, &mut body).await;
        let context =
            CommandContext { actor: Actor::Customer { channel: Channel::Email }, correlation_id, causation_id: None };
        let message_id = MessageId::parse(&key).ok().filter(|_| mail.message_id.is_some());
        let exists = match self.service.load(target).await {
            Ok(_) => true,
            Err(AppError::NotFound(_)) => false,
            Err(error) => return Err(IntakeError::Unavailable(error.to_string())),
        };
        let empty = |language: Language| match language {
            Language::Hu => "(üres üzenet)",
            Language::En => "(empty message)",
        };
        let mut text = if body.trim().is_empty() { empty(mail.language).to_owned() } else { body.trim().to_owned() };
        if !exists {
            if let Some(whole) = whole_subject(&mail.subject, mail.language) {
                text = format!("{whole}\n\n{text}");
            }
        }
        let text = cut(&text, MessageBody::CHARS_MAX);
        let body = MessageBody::parse(&text).map_err(|e| IntakeError::Unreadable(e.to_string()))?;
        let result = if exists {
            let command = TicketCommand::RecordCustomerReply {
                channel: Channel::Email,
                message_id,
                from: Some(from),
                body,
                attachments,
                reopen_window: self.reopen_window,
            };
            self.service.execute(target, None, command, &context).await.map(|outcome| {
                let reopened = outcome.records.iter().any(|r| matches!(r.event, TicketEvent::Reopened(_)));
                let number = outcome.ticket.state().map(|s| s.number);
                (outcome, reopened, number)
            })
        } else {
            let name =
                mail.from_name.clone().unwrap_or_else(|| from.as_str().split('@').next().unwrap_or("?").to_owned());
            let name = PersonName::parse(&cut(&name, PersonName::CHARS_MAX))
                .or_else(|_| PersonName::parse(from.as_str()))
                .map_err(|e| IntakeError::Unreadable(e.to_string()))?;
            let no_subject = match mail.language {
                Language::Hu => "(nincs tárgy)",
                Language::En => "(no subject)",
            };
            let subject =
                if mail.subject.is_empty() { no_subject.to_owned() } else { cut(&mail.subject, Subject::CHARS_MAX) };
            let subject = Subject::parse(&subject).map_err(|e| IntakeError::Unreadable(e.to_string()))?;
            let language = mail.language;
            let registry = self.registry.current().await.map_err(|e| IntakeError::Unavailable(e.to_string()))?;
            let contract_id = registry.contract_for(Some(&from)).cloned();
            self.service
                .open_ticket_as(target, &context, |number| ReceiveTicket {
                    number,
                    channel: Channel::Email,
                    category: None,
                    service_area: None,
                    contract_id,
                    // Senders' own "high importance" flags are not trusted: agents triage.
                    priority: Priority::Normal,
                    language,
                    reporter_name: name,
                    reporter_email: Some(from),
                    reporter_reply_to: mail.reply_to.clone(),
                    reporter_phone: None,
                    subject,
                    message: body,
                    attachments,
                })
                .await
                .map(|outcome| {
                    let number = outcome.ticket.state().map(|s| s.number);
                    (outcome, false, number)
                })
        };
        match result {
            Ok((_, reopened, Some(number))) if exists => {
                Ok(IntakeOutcome::Replied { ticket_id: target, number, reopened })
            }
            Ok((_, _, Some(number))) => Ok(IntakeOutcome::Created { ticket_id: target, number }),
            Ok((_, _, None)) => {
                Err(IntakeError::Unavailable(format!("ticket {target} has no state after the command")))
            }
            // The key stays reserved for this ticket: a later delivery of the message resumes
            // with the same ticket id, so an append that happened although its answer was lost
            // is found (by its correlation id) rather than repeated under a new id.
            Err(error) => Err(IntakeError::Unavailable(error.to_string())),
        }
    }

    /// The ticket this message answers, by its references, else by its subject tag from the
    /// ticket's own reporter.
    async fn thread_of(&self, mail: &IncomingMail, from: &EmailAddress) -> Result<Option<TicketId>, IntakeError> {
        for id in &mail.answers {
            if let Some((ticket_id, _)) = self.lookup(id).await? {
                return Ok(Some(ticket_id));
            }
        }
        let Some(number) = subject_tag(&mail.subject) else { return Ok(None) };
        let Some(ticket_id) = ticket_projections::ticket_by_number(&self.database, number).await? else {
            return Ok(None);
        };
        let ticket = match self.service.load(ticket_id).await {
            Ok(ticket) => ticket,
            Err(AppError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(IntakeError::Unavailable(error.to_string())),
        };
        // The reporter is the ticket's sender, or the address they asked answers to go to.
        let reporter = ticket.state().map(|s| [s.reporter.email.as_ref(), s.reporter.reply_to.as_ref()]);
        let is_reporter = reporter
            .into_iter()
            .flatten()
            .flatten()
            .any(|address| address.as_str().eq_ignore_ascii_case(from.as_str()));
        Ok(is_reporter.then_some(ticket_id))
    }

    /// Stores what may be stored; what may not is named in the body instead.
    async fn store_attachments(&self, mail: &IncomingMail, body: &mut String) -> Vec<AttachmentRef> {
        let mut stored = Vec::new();
        for (name, _declared, bytes) in &mail.attachments {
            match self.attachments.put(name, bytes).await {
                Ok(attachment) => stored.push(attachment),
                Err(error) => {
                    // The file name is the customer's (personal): the log says only that one was refused.
                    tracing::info!(bytes = bytes.len(), "an e-mail attachment was not kept (see the message body)");
                    body.push_str(&format!("\n\n[{name}: {error}]"));
                }
            }
        }
        stored
    }

    async fn lookup(&self, message_id: &str) -> Result<Option<(TicketId, String)>, StoreError> {
        let sql = "SELECT ticket_id, direction FROM mail_threads WHERE message_id = $1";
        let row = on_database!(&self.database, |pool| sqlx::query_as::<_, (String, String)>(sql)
            .bind(message_id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(row
            .and_then(|(id, direction)| uuid::Uuid::parse_str(&id).ok().map(|id| (TicketId::from_uuid(id), direction))))
    }

    async fn reserve(&self, message_id: &str, ticket_id: TicketId) -> Result<bool, StoreError> {
        let sql = "INSERT INTO mail_threads (message_id, ticket_id, direction, created_us) VALUES ($1, $2, 'in', $3) \
                   ON CONFLICT (message_id) DO NOTHING";
        let inserted = on_database!(&self.database, |pool| sqlx::query(sql)
            .bind(message_id)
            .bind(ticket_id.as_uuid().to_string())
            .bind(now_us())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tags_are_found_anywhere_in_the_subject() {
        assert_eq!(subject_tag("Re: [#42] Megkaptuk bejelentését").map(|n| n.get()), Some(42));
        assert_eq!(subject_tag("AW: Re: [# 7 ] x").map(|n| n.get()), Some(7));
        assert_eq!(subject_tag("[#abc] [#9]").map(|n| n.get()), Some(9));
        assert_eq!(subject_tag("no tag [#0]"), None);
        assert_eq!(subject_tag("Invoice #42"), None);
    }

    fn qp(text: &str) -> String {
        String::from_utf8(quoted_printable_tolerant(text.as_bytes())).unwrap()
    }

    #[test]
    fn a_bare_equals_sign_in_quoted_printable_is_kept() {
        assert_eq!(qp("d=C3=ADj =3D 89 900 Ft"), "díj = 89 900 Ft");
        assert_eq!(qp("d=C3=ADj = 89 900 Ft"), "díj = 89 900 Ft", "'= 8' is not an escape");
        assert_eq!(qp("a=b, x==3D y, 100%=\r\n"), "a=b, x== y, 100%");
        assert_eq!(qp("ends with ="), "ends with ");
        assert_eq!(quoted_printable_tolerant(b"=e1=E9 =zz =4"), b"\xe1\xe9 =zz =4", "lowercase hex is hex");
        assert_eq!(quoted_printable_tolerant("8-bit: díj".as_bytes()), "8-bit: díj".as_bytes(), "raw bytes stay");
    }

    #[test]
    fn valid_quoted_printable_decodes_as_mail_parser_decodes_it() {
        for text in [
            "Hello=20world\r\nsecond line   \r\nsoft=\r\nbreak\r\n",
            "K=C3=B6sz=C3=B6n=C3=B6m!\n\n> id=C3=A9zet\n",
            "trailing padding =  \r\njoined\r\n\r\n",
            "=3D=3d\tend",
        ] {
            let ours = quoted_printable_tolerant(text.as_bytes());
            let theirs = mail_parser::decoders::quoted_printable::quoted_printable_decode(text.as_bytes()).unwrap();
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs), "{text:?}");
        }
    }

    fn message(headers: &str, body: &str) -> Vec<u8> {
        format!("From: Titkárság <titkarsag@example.hu>\r\nTo: support@tickets.example\r\n{headers}\r\n{body}")
            .into_bytes()
    }

    #[test]
    fn a_quoted_printable_body_with_a_bare_equals_sign_reads_as_written() {
        let single = message(
            "Subject: Ajanlat\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n",
            "A d=C3=ADj = 89 900 Ft, a kedvezm=C3=A9ny = 10%.\r\n",
        );
        assert_eq!(parse(&single).unwrap().body, "A díj = 89 900 Ft, a kedvezmény = 10%.");
        let latin2 = message(
            "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-2\r\nContent-Transfer-Encoding: Quoted-Printable\r\n",
            "d=EDj = 89 900 Ft, a=b\r\n",
        );
        assert_eq!(parse(&latin2).unwrap().body, "díj = 89 900 Ft, a=b");
        let alternative = message(
            "Subject: x\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n",
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             d=C3=ADj = 89 900 Ft\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>d=C3=ADj = 89 900 Ft</p>\r\n--b1--\r\n",
        );
        assert_eq!(parse(&alternative).unwrap().body, "díj = 89 900 Ft");
        let html_only = message(
            "Subject: x\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            "<p>d=C3=ADj = 89 900 Ft</p>\r\n",
        );
        assert_eq!(parse(&html_only).unwrap().body, "díj = 89 900 Ft");
        let plain = message("Subject: x\r\n", "d\u{ed}j = 89 900 Ft\r\n");
        assert_eq!(parse(&plain).unwrap().body, "díj = 89 900 Ft", "no transfer encoding: as it is");
    }

    #[test]
    fn reply_to_is_read_when_it_names_another_address() {
        let mail =
            parse(&message("Reply-To: Dr. Nagy Ferenc <Nagy.Ferenc@example.hu>\r\nSubject: x\r\n", "y")).unwrap();
        assert_eq!(mail.from.as_ref().map(EmailAddress::as_str), Some("titkarsag@example.hu"));
        assert_eq!(mail.reply_to.as_ref().map(EmailAddress::as_str), Some("Nagy.Ferenc@example.hu"));
        let same = parse(&message("Reply-To: TITKARSAG@example.hu\r\nSubject: x\r\n", "y")).unwrap();
        assert_eq!(same.reply_to, None, "the sender's own address is no second address");
        assert_eq!(parse(&message("Reply-To: not an address\r\nSubject: x\r\n", "y")).unwrap().reply_to, None);
    }

    #[test]
    fn a_subject_too_long_for_a_ticket_is_kept_whole_for_the_message() {
        assert_eq!(whole_subject(&"a".repeat(Subject::CHARS_MAX), Language::Hu), None);
        let long = "é".repeat(Subject::CHARS_MAX + 1);
        assert_eq!(whole_subject(&long, Language::En), Some(format!("Subject: {long}")));
        assert_eq!(whole_subject(&long, Language::Hu), Some(format!("Tárgy: {long}")));
    }

    #[test]
    fn long_text_is_cut_not_refused() {
        assert_eq!(cut("abcdef", 10), "abcdef");
        let cut_text = cut(&"é".repeat(20), 10);
        assert_eq!(cut_text.chars().count(), 10);
        assert!(cut_text.ends_with(" …"));
    }
}
