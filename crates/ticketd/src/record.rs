//! The complaint record of Act CLV of 1997 §17/A (5): for every ticket that is or was a
//! complaint, a printable HTML record — `GET /api/v1/tickets/{id}/complaint-record`, and the
//! console's link on the ticket page. Built from the ticket's history and the mail outbox.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use ticket_app::TicketRecord;
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::{Actor, Category, Channel, ComplaintOutcome, Language};
use ticket_mail::outbox::OutboxRow;

use crate::console::labels::{self, CATEGORIES, CHANNELS, OUTCOMES, SERVICE_AREAS};
use crate::pages::tr;

/// Whether a ticket was a complaint at any moment of its history (a reclassification away
/// from complaint does not remove it from the record).
pub fn ever_a_complaint(events: &[TicketRecord]) -> bool {
    events.iter().any(|record| match &record.event {
        TicketEvent::Received(received) => received.category == Some(Category::Complaint),
        TicketEvent::Investigated(investigated) => investigated.category == Category::Complaint,
        TicketEvent::Reclassified(reclassified) => reclassified.category == Some(Category::Complaint),
        _ => false,
    })
}

/// What the record needs besides the history.
pub struct RecordContext<'a> {
    /// The resolution mails and other outbox rows of the ticket.
    pub outbox: &'a [OutboxRow],
    /// Calendar days the law gives to answer (`None`: not tracked; the record says 30).
    pub answer_days: Option<u32>,
    /// When the record is printed (the service's clock).
    pub now: DateTime<Utc>,
    /// The company, as its mail is signed (`--mail-from`'s name).
    pub company: &'a str,
    pub language: Language,
}

fn at(instant: DateTime<Utc>) -> String {
    instant.with_timezone(&chrono_tz::Europe::Budapest).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn staff(actor: &Actor) -> Option<String> {
    match actor {
        Actor::Staff { name, .. } => Some(name.clone()),
        _ => None,
    }
}

/// The record, or `None` when the ticket never was a complaint.
pub fn render(history: &[TicketRecord], context: &RecordContext<'_>) -> Option<Markup> {
    if !ever_a_complaint(history) {
        return None;
    }
    let language = context.language;
    let t = |hu: &'static str, en: &'static str| tr(language, hu, en);
    let received_record = history.iter().find(|r| matches!(r.event, TicketEvent::Received(_)))?;
    let TicketEvent::Received(received) = &received_record.event else { return None };
    let reporter = &received.personal;
    let resolved = history.iter().rev().find_map(|record| match &record.event {
        TicketEvent::Resolved(resolved) => Some((record, resolved)),
        _ => None,
    });
    let resolution_mail = resolved.and_then(|(record, _)| {
        let id = record.event_id.to_string();
        context.outbox.iter().find(|row| row.event_id == id && row.kind == "resolution")
    });
    let sent_at = resolution_mail.and_then(|row| row.sent_us).and_then(DateTime::from_timestamp_micros);
    // Who took the complaint down: the member of staff who entered it, or else the first who
    // worked on it.
    let recorder = staff(&received_record.actor).or_else(|| history.iter().find_map(|r| staff(&r.actor)));
    let days = context.answer_days.unwrap_or(30);
    let deadline = received_record.occurred_at + chrono::Duration::days(i64::from(days));
    // Answered when the resolution was decided (the service's clock; the statutory SLA clock
    // stops there too); the mail's sending is shown beside it.
    let answered_at = resolved.map(|(record, _)| record.occurred_at);
    let late = match answered_at {
        Some(answered) => answered > deadline,
        None => context.now > deadline,
    };
    let channel = labels::api_name(&received.channel);
    let manner = match received.channel {
        Channel::Phone => t("szóban, telefonon", "orally, by phone"),
        Channel::WebForm => t("írásban, a honlap űrlapján", "in writing, through the website's form"),
        Channel::Email => t("írásban, e-mailben", "in writing, by e-mail"),
        Channel::Other => t("egyéb módon (levél, közösségi média)", "otherwise (post, social media)"),
    };
    let number = received.number.get();
    let category_now = history.iter().rev().find_map(|r| match &r.event {
        TicketEvent::Investigated(i) => Some(Some(i.category)),
        TicketEvent::Reclassified(r) => r.category.map(Some),
        TicketEvent::Received(r) => Some(r.category),
        _ => None,
    });
    let markup = html! {
        (DOCTYPE)
        html lang=(labels::api_name(&language)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t("Jegyzőkönyv panaszról", "Complaint record")) " #" (number) }
                link rel="stylesheet" href=(crate::console::assets::url("record.css"));
            }
            body class="record" {
                header {
                    h1 { (t("Jegyzőkönyv a fogyasztói panaszról", "Record of a consumer complaint")) }
                    p class="law" { (t("A fogyasztóvédelemről szóló 1997. évi CLV. törvény 17/A. § (5) bekezdése szerint",
                                       "Under section 17/A (5) of Act CLV of 1997 on consumer protection")) }
                    @if late {
                        p class="late" id="late" role="alert" {
                            (t("A panaszra adott válasz a törvényes határidőn túl készült", "The complaint was answered after the statutory deadline"))
                            " (" (days) " " (t("nap", "days")) "; " (t("határidő", "deadline")) ": " (at(deadline)) ")"
                        }
                    }
                }
                dl {
                    dt { (t("A jegyzőkönyv egyedi azonosítója", "Unique identifier of the record")) }
                    dd id="identifier" { "#" (number) " (" (received_record.position.0) ")" }
                    dt { (t("A panaszos neve", "The complainant's name")) }
                    dd id="name" { (reporter.name.to_string()) }
                    dt { (t("A panaszos elérhetősége", "The complainant's address")) }
                    dd id="address" {
                        @if let Some(email) = &reporter.email { (t("e-mail", "e-mail")) ": " (email.to_string()) br; }
                        @if let Some(reply_to) = &reporter.reply_to { (t("válaszcím", "reply to")) ": " (reply_to.to_string()) br; }
                        @if let Some(phone) = &reporter.phone { (t("telefon", "phone")) ": " (phone.to_string()) }
                    }
                    dt { (t("A panasz előterjesztésének helye", "Where the complaint was made")) }
                    dd id="place" { (context.company) " — " (t("ügyfélszolgálat", "customer service")) " (" (labels::word(CHANNELS, &channel, language)) ")" }
                    dt { (t("A panasz előterjesztésének ideje", "When the complaint was made")) }
                    dd id="time" { (at(received_record.occurred_at)) }
                    dt { (t("A panasz előterjesztésének módja", "How the complaint was made")) }
                    dd id="manner" { (manner) }
                    dt { (t("Besorolás", "Category")) }
                    dd id="category" {
                        @match category_now.flatten() {
                            Some(category) => (labels::word(CATEGORIES, &labels::api_name(&category), language)),
                            None => (t("nincs besorolva", "not categorised")),
                        }
                        @if let Some(area) = received.service_area { " · " (labels::word(SERVICE_AREAS, &labels::api_name(&area), language)) }
                    }
                    dt { (t("A panasz leírása", "Description of the complaint")) }
                    dd id="description" {
                        strong { (reporter.subject.to_string()) }
                        p class="text" { (reporter.message.to_string()) }
                    }
                    dt { (t("A panaszos által bemutatott iratok, dokumentumok és egyéb bizonyítékok", "Documents and other evidence presented")) }
                    dd id="evidence" {
                        @if reporter.attachments.is_empty() { (t("nincs", "none")) }
                        @else {
                            ul {
                                @for file in &reporter.attachments {
                                    li { (file.file_name.to_string()) " — " (file.media_type) ", " (file.size) " bytes, SHA-256 " code { (file.sha256) } }
                                }
                            }
                        }
                    }
                    dt { (t("A vállalkozás nyilatkozata a panaszról", "The company's position on the complaint")) }
                    dd id="position" {
                        @match resolved {
                            Some((record, resolution)) => {
                                p { strong { (labels::word(OUTCOMES, &labels::api_name(&resolution.complaint_outcome), language)) } " — " (at(record.occurred_at)) }
                                p class="text" { (resolution.personal.resolution.to_string()) }
                                @if !matches!(resolution.complaint_outcome, ComplaintOutcome::Upheld) {
                                    @if let Some(reasons) = &resolution.personal.rejection_reasons {
                                        p { strong { (t("Az elutasítás indoka", "Reasons for the rejection")) ": " } }
                                        p class="text" id="reasons" { (reasons.to_string()) }
                                    }
                                }
                            }
                            None => (t("A panaszt még nem válaszolták meg.", "The complaint has not been answered yet.")),
                        }
                    }
                    dt { (t("A jegyzőkönyvet felvevő személy", "Recorded by")) }
                    dd id="recorder" { (recorder.unwrap_or_else(|| t("a rendszer (webes űrlap vagy e-mail)", "the service (web form or e-mail)").to_owned())) }
                    dt { (t("A jegyzőkönyv felvételének helye és ideje", "Where and when the record was made")) }
                    dd id="made" {
                        (context.company) ", " (t("elektronikus nyilvántartás", "electronic record")) "; "
                        (t("rögzítve", "recorded")) ": " (at(received_record.recorded_at)) "; "
                        (t("nyomtatva", "printed")) ": " (at(context.now))
                    }
                }
                section id="answer" {
                    h2 { (t("A panaszra adott írásbeli válasz másolata", "Copy of the written answer")) }
                    @match (resolved, resolution_mail) {
                        (Some((_, resolution)), Some(mail)) => {
                            p {
                                (t("Elküldve", "Sent")) ": "
                                @match sent_at { Some(sent) => (at(sent)), None => (t("még nem küldték el", "not sent yet")) }
                                @if let Some(to) = &mail.recipient { " · " (t("címzett", "to")) ": " (to) }
                                " · Message-ID: " code { (mail.message_id) }
                            }
                            @if let Some(subject) = &mail.subject { p { strong { (subject) } } }
                            pre class="mail" { (resolution.personal.resolution.to_string())
                                @if let Some(reasons) = &resolution.personal.rejection_reasons { "\n\n" (reasons.to_string()) } }
                        }
                        (Some(_), None) => p { (t("A válasz levelét nem a szolgáltatás küldte (nincs a kimenő levelek között).", "The answer was not mailed by the service (it is not in the outbox).")) },
                        (None, _) => p { (t("Még nincs válasz.", "No answer yet.")) },
                    }
                }
            }
        }
    };
    Some(markup)
}
