//! What agents, customers and the system ask of a ticket. Every field is already parsed:
//! a command that exists is well-formed; whether it is *allowed* is for [`crate::Ticket::decide`].

use chrono::Duration;

use crate::vocabulary::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveTicket {
    pub number: TicketNumber,
    pub channel: Channel,
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub contract_id: Option<ContractId>,
    pub priority: Priority,
    pub language: Language,
    pub reporter_name: PersonName,
    pub reporter_email: Option<EmailAddress>,
    /// Where customer mail goes instead of `reporter_email` (an e-mail's `Reply-To:`).
    pub reporter_reply_to: Option<EmailAddress>,
    pub reporter_phone: Option<PhoneNumber>,
    pub subject: Subject,
    pub message: MessageBody,
    pub attachments: Vec<AttachmentRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketCommand {
    Receive(ReceiveTicket),
    /// The confirmation went out (the mailer's Message-ID), or was given in person.
    Acknowledge {
        message_id: Option<MessageId>,
    },
    /// Identify the report and record the first contact.
    Investigate {
        category: Category,
        service_area: ServiceArea,
        contact_method: ContactMethod,
    },
    Escalate {
        division: DivisionId,
        reason: Reason,
    },
    AnswerEscalation {
        outcome: Reason,
    },
    Resolve {
        resolution: MessageBody,
        root_cause: RootCause,
        within_own_authority: bool,
        /// For a complaint: upheld (the default), partly upheld or rejected — the last two with
        /// their reasons.
        complaint_outcome: ComplaintOutcome,
        rejection_reasons: Option<MessageBody>,
    },
    Close,
    RecordSurveySent {
        message_id: Option<MessageId>,
    },
    AnswerSurvey {
        score: SurveyScore,
        comment: Option<MessageBody>,
    },
    Reopen {
        reason: Reason,
    },
    Reclassify {
        category: Option<Category>,
        service_area: Option<ServiceArea>,
        reason: Reason,
    },
    Assign {
        assignee: StaffName,
    },
    /// Change how urgent the ticket is (its SLA targets may follow).
    Prioritise {
        priority: Priority,
        reason: Reason,
    },
    /// A customer's message on this ticket. Within `reopen_window` of the resolution it
    /// reopens a resolved or closed ticket.
    RecordCustomerReply {
        channel: Channel,
        message_id: Option<MessageId>,
        from: Option<EmailAddress>,
        body: MessageBody,
        attachments: Vec<AttachmentRef>,
        reopen_window: Duration,
    },
    ReplyToCustomer {
        body: MessageBody,
    },
    AddNote {
        body: MessageBody,
    },
    MarkOutOfScope {
        reason: Reason,
    },
    /// Link the ticket to a service contract (one the registry holds: checked by the caller).
    LinkContract {
        contract_id: ContractId,
    },
    /// The SLA scheduler: a clock reached its warning share. Once per clock.
    RecordSlaWarning {
        target: crate::sla::SlaTarget,
        due_at: chrono::DateTime<chrono::Utc>,
    },
    /// The SLA scheduler: a clock passed its due time unmet. Once per clock.
    RecordSlaBreach {
        target: crate::sla::SlaTarget,
        due_at: chrono::DateTime<chrono::Utc>,
    },
    /// An erasure request meets a legal hold: restrict processing until the hold ends.
    RestrictProcessing {
        reason: Reason,
        request_reference: Reason,
        hold_until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Record that the ticket's personal data is erased (its data key is destroyed with it).
    ErasePersonalData {
        reason: Reason,
        request_reference: Reason,
    },
    /// `ticketd migrate`: record the events whose clear personal parts it sealed in place.
    RecordSealing {
        events: Vec<crate::event::SealedEvent>,
    },
}

/// The name of a command, as the API's action names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Receive,
    Acknowledge,
    Investigate,
    Escalate,
    AnswerEscalation,
    Resolve,
    Close,
    RecordSurveySent,
    AnswerSurvey,
    Reopen,
    Reclassify,
    Assign,
    Prioritise,
    RecordCustomerReply,
    ReplyToCustomer,
    AddNote,
    MarkOutOfScope,
    LinkContract,
    RecordSlaWarning,
    RecordSlaBreach,
    RestrictProcessing,
    ErasePersonalData,
    RecordSealing,
}

impl CommandKind {
    pub const ALL: [CommandKind; 23] = [
        Self::Receive,
        Self::Acknowledge,
        Self::Investigate,
        Self::Escalate,
        Self::AnswerEscalation,
        Self::Resolve,
        Self::Close,
        Self::RecordSurveySent,
        Self::AnswerSurvey,
        Self::Reopen,
        Self::Reclassify,
        Self::Assign,
        Self::Prioritise,
        Self::RecordCustomerReply,
        Self::ReplyToCustomer,
        Self::AddNote,
        Self::MarkOutOfScope,
        Self::LinkContract,
        Self::RecordSlaWarning,
        Self::RecordSlaBreach,
        Self::RestrictProcessing,
        Self::ErasePersonalData,
        Self::RecordSealing,
    ];

    /// Whether agents run it through the API (`POST /tickets/{id}/{name}`); the others are
    /// recorded by intake and the scheduler.
    pub fn is_api_action(self) -> bool {
        !matches!(
            self,
            Self::Receive
                | Self::RecordCustomerReply
                | Self::RecordSlaWarning
                | Self::RecordSlaBreach
                | Self::RestrictProcessing
                | Self::ErasePersonalData
                | Self::RecordSealing
        )
    }

    /// The action's name in the API (`POST /tickets/{id}/{name}`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Receive => "receive",
            Self::Acknowledge => "acknowledge",
            Self::Investigate => "investigate",
            Self::Escalate => "escalate",
            Self::AnswerEscalation => "escalation-answer",
            Self::Resolve => "resolve",
            Self::Close => "close",
            Self::RecordSurveySent => "survey-sent",
            Self::AnswerSurvey => "survey-answer",
            Self::Reopen => "reopen",
            Self::Reclassify => "reclassify",
            Self::Assign => "assign",
            Self::Prioritise => "priority",
            Self::RecordCustomerReply => "customer-reply",
            Self::ReplyToCustomer => "replies",
            Self::AddNote => "notes",
            Self::MarkOutOfScope => "out-of-scope",
            Self::LinkContract => "contract",
            Self::RecordSlaWarning => "sla-warning",
            Self::RecordSlaBreach => "sla-breach",
            Self::RestrictProcessing => "restrict-processing",
            Self::ErasePersonalData => "erase-personal-data",
            Self::RecordSealing => "record-sealing",
        }
    }
}

impl TicketCommand {
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::Receive(_) => CommandKind::Receive,
            Self::Acknowledge { .. } => CommandKind::Acknowledge,
            Self::Investigate { .. } => CommandKind::Investigate,
            Self::Escalate { .. } => CommandKind::Escalate,
            Self::AnswerEscalation { .. } => CommandKind::AnswerEscalation,
            Self::Resolve { .. } => CommandKind::Resolve,
            Self::Close => CommandKind::Close,
            Self::RecordSurveySent { .. } => CommandKind::RecordSurveySent,
            Self::AnswerSurvey { .. } => CommandKind::AnswerSurvey,
            Self::Reopen { .. } => CommandKind::Reopen,
            Self::Reclassify { .. } => CommandKind::Reclassify,
            Self::Assign { .. } => CommandKind::Assign,
            Self::Prioritise { .. } => CommandKind::Prioritise,
            Self::RecordCustomerReply { .. } => CommandKind::RecordCustomerReply,
            Self::ReplyToCustomer { .. } => CommandKind::ReplyToCustomer,
            Self::AddNote { .. } => CommandKind::AddNote,
            Self::MarkOutOfScope { .. } => CommandKind::MarkOutOfScope,
            Self::LinkContract { .. } => CommandKind::LinkContract,
            Self::RecordSlaWarning { .. } => CommandKind::RecordSlaWarning,
            Self::RecordSlaBreach { .. } => CommandKind::RecordSlaBreach,
            Self::RestrictProcessing { .. } => CommandKind::RestrictProcessing,
            Self::ErasePersonalData { .. } => CommandKind::ErasePersonalData,
            Self::RecordSealing { .. } => CommandKind::RecordSealing,
        }
    }
}
