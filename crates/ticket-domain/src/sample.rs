//! Well-formed sample commands, for tests, benchmarks and demos. Deterministic, no I/O.

use chrono::Duration;

use crate::command::{ReceiveTicket, TicketCommand};
use crate::vocabulary::*;

fn text<T>(parse: fn(&str) -> Result<T, InvalidValue>, value: &str) -> T {
    parse(value).expect("sample values are valid")
}

/// A phone report from Kovács Anna about Norma, the way an agent would enter it.
pub fn receive(number: u64) -> ReceiveTicket {
    ReceiveTicket {
        number: TicketNumber::new(number).expect("sample numbers start at 1"),
        channel: Channel::Phone,
        category: None,
        service_area: Some(ServiceArea::Norma),
        contract_id: None,
        priority: Priority::Normal,
        language: Language::Hu,
        reporter_name: text(PersonName::parse, "Kovács Anna"),
        reporter_email: Some(EmailAddress::parse("kovacs.anna@example.hu").expect("valid")),
        reporter_reply_to: None,
        reporter_phone: Some(text(PhoneNumber::parse, "+36 30 123 4567")),
        subject: text(Subject::parse, "Nem tudok belépni a Normába"),
        message: text(MessageBody::parse, "Tegnap óta hibát kapok belépéskor: „érvénytelen munkamenet”."),
        attachments: Vec::new(),
    }
}

pub fn acknowledge() -> TicketCommand {
    TicketCommand::Acknowledge { message_id: Some(text(MessageId::parse, "<ack-1@tickets.example.hu>")) }
}

pub fn investigate(category: Category) -> TicketCommand {
    TicketCommand::Investigate { category, service_area: ServiceArea::Norma, contact_method: ContactMethod::Phone }
}

pub fn escalate(division: &str) -> TicketCommand {
    TicketCommand::Escalate { division: text(DivisionId::parse, division), reason: text(Reason::parse, "needs a fix") }
}

pub fn answer_escalation() -> TicketCommand {
    TicketCommand::AnswerEscalation { outcome: text(Reason::parse, "fixed in release 4.2") }
}

pub fn resolve() -> TicketCommand {
    TicketCommand::Resolve {
        resolution: text(MessageBody::parse, "A munkamenet-kezelést javítottuk, a belépés újra működik."),
        root_cause: text(RootCause::parse, "session-expiry-bug"),
        within_own_authority: true,
        complaint_outcome: ComplaintOutcome::Upheld,
        rejection_reasons: None,
    }
}

pub fn survey_sent() -> TicketCommand {
    TicketCommand::RecordSurveySent { message_id: Some(text(MessageId::parse, "<survey-1@tickets.example.hu>")) }
}

pub fn answer_survey(score: u8) -> TicketCommand {
    TicketCommand::AnswerSurvey { score: SurveyScore::new(score).expect("1 to 5"), comment: None }
}

pub fn reopen() -> TicketCommand {
    TicketCommand::Reopen { reason: text(Reason::parse, "the fix did not help") }
}

pub fn reclassify(category: Category) -> TicketCommand {
    TicketCommand::Reclassify {
        category: Some(category),
        service_area: None,
        reason: text(Reason::parse, "objection to how the contract was performed"),
    }
}

pub fn assign(assignee: &str) -> TicketCommand {
    TicketCommand::Assign { assignee: text(StaffName::parse, assignee) }
}

pub fn prioritise(priority: Priority) -> TicketCommand {
    TicketCommand::Prioritise { priority, reason: text(Reason::parse, "the customer's production is stopped") }
}

pub fn customer_reply(reopen_window: Duration) -> TicketCommand {
    TicketCommand::RecordCustomerReply {
        channel: Channel::Email,
        message_id: Some(text(MessageId::parse, "<reply-1@mail.example.hu>")),
        from: Some(EmailAddress::parse("kovacs.anna@example.hu").expect("valid")),
        body: text(MessageBody::parse, "Sajnos még mindig nem működik."),
        attachments: Vec::new(),
        reopen_window,
    }
}

pub fn agent_reply() -> TicketCommand {
    TicketCommand::ReplyToCustomer { body: text(MessageBody::parse, "Kérem, próbálja újra most.") }
}

pub fn note() -> TicketCommand {
    TicketCommand::AddNote { body: text(MessageBody::parse, "Called back, no answer.") }
}

pub fn out_of_scope() -> TicketCommand {
    TicketCommand::MarkOutOfScope { reason: text(Reason::parse, "a question about the company's general operation") }
}

pub fn link_contract(contract_id: &str) -> TicketCommand {
    TicketCommand::LinkContract { contract_id: text(ContractId::parse, contract_id) }
}

pub fn sla_warning(target: crate::sla::SlaTarget, due_at: chrono::DateTime<chrono::Utc>) -> TicketCommand {
    TicketCommand::RecordSlaWarning { target, due_at }
}

pub fn sla_breach(target: crate::sla::SlaTarget, due_at: chrono::DateTime<chrono::Utc>) -> TicketCommand {
    TicketCommand::RecordSlaBreach { target, due_at }
}
