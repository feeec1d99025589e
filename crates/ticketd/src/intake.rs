//! Public intake: the contact form and its JSON twin (`POST /api/v1/contact`) share one path
//! from the fields to a `Received` ticket on the `web_form` channel: the same checks, the same
//! attachment rules, the same abuse limits (per client address and per e-mail address).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ticket_app::attachments::{AttachmentError, AttachmentStore};
use ticket_app::{AppError, CommandContext};
use ticket_domain::ReceiveTicket;
use ticket_domain::vocabulary::{
    Actor, Channel, EmailAddress, InvalidValue, Language, MessageBody, PersonName, Priority, Subject, TicketId,
    TicketNumber,
};

use crate::http::AppState;

/// The public intake's settings and state.
pub struct PublicIntake {
    pub attachments: AttachmentStore,
    /// The largest contact-form request (fields and attachment together).
    pub body_max: usize,
    /// The privacy notice the form links to.
    pub privacy_notice_url: Option<String>,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl PublicIntake {
    /// `per_hour` submissions per client address and per e-mail address.
    pub fn new(attachments: AttachmentStore, body_max: usize, per_hour: u32) -> Self {
        let quota = Quota::per_hour(NonZeroU32::new(per_hour.max(1)).unwrap_or(NonZeroU32::MIN));
        Self { attachments, body_max, privacy_notice_url: None, limiter: RateLimiter::keyed(quota) }
    }

    pub fn with_privacy_notice(mut self, url: Option<String>) -> Self {
        self.privacy_notice_url = url;
        self
    }

    /// Takes one submission from `client` for `email`, or says how long to wait.
    fn admit(&self, client: Option<IpAddr>, email: &EmailAddress) -> Result<(), u64> {
        use governor::clock::Clock;
        let keys =
            client.map(|ip| format!("ip:{ip}")).into_iter().chain([format!("email:{}", email.as_str().to_lowercase())]);
        for key in keys {
            if let Err(not_until) = self.limiter.check_key(&key) {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                return Err(wait.as_secs().max(1));
            }
        }
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

/// What the customer sent.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub name: String,
    pub email: String,
    pub subject: String,
    pub message: String,
    pub language: Language,
    /// File name and bytes.
    pub attachment: Option<(String, Vec<u8>)>,
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    TooLong { max: usize },
    NotAnEmail,
    Invalid(String),
    Attachment(AttachmentError),
}

impl Problem {
    fn from_invalid(value: &str, error: InvalidValue, max: usize) -> Self {
        if value.trim().is_empty() {
            Self::Missing
        } else if error.problem.contains("characters long") {
            Self::TooLong { max }
        } else if error.field == "email" {
            Self::NotAnEmail
        } else {
            Self::Invalid(error.problem)
        }
    }

    /// The problem in the customer's language.
    pub fn text(&self, language: Language) -> String {
        let hu = language == Language::Hu;
        match self {
            Self::Missing if hu => "Kötelező mező.".into(),
            Self::Missing => "This field is required.".into(),
            Self::TooLong { max } if hu => format!("Legfeljebb {max} karakter lehet."),
            Self::TooLong { max } => format!("At most {max} characters are allowed."),
            Self::NotAnEmail if hu => "Adjon meg egy érvényes e-mail-címet, például nev@example.hu.".into(),
            Self::NotAnEmail => "Enter a valid e-mail address, such as name@example.com.".into(),
            Self::Invalid(problem) if hu => format!("Érvénytelen érték: {problem}."),
            Self::Invalid(problem) => format!("Not valid: {problem}."),
            Self::Attachment(AttachmentError::TooLarge { max, .. }) if hu => {
                format!("A csatolmány túl nagy; legfeljebb {} MB lehet.", max.div_ceil(1024 * 1024))
            }
            Self::Attachment(AttachmentError::TooLarge { max, .. }) => {
                format!("The attachment is too large; at most {} MB is allowed.", max.div_ceil(1024 * 1024))
            }
            Self::Attachment(AttachmentError::TypeNotAllowed { .. }) if hu => {
                "Ez a fájltípus nem csatolható; PDF, kép (PNG, JPEG, GIF), szöveg vagy Word/Excel-fájl küldhető.".into()
            }
            Self::Attachment(AttachmentError::TypeNotAllowed { .. }) => {
                "This type of file cannot be attached; send a PDF, an image (PNG, JPEG, GIF), text or a Word/Excel file."
                    .into()
            }
            Self::Attachment(AttachmentError::Empty) if hu => "A csatolt fájl üres.".into(),
            Self::Attachment(AttachmentError::Empty) => "The attached file is empty.".into(),
            Self::Attachment(AttachmentError::Io(_)) if hu => "A csatolmányt most nem tudtuk menteni; próbálja újra.".into(),
            Self::Attachment(AttachmentError::Io(_)) => "The attachment could not be saved just now; please try again.".into(),
        }
    }
}

/// Why a submission did not become a ticket.
#[derive(Debug)]
pub enum Refusal {
    /// Field name (`name`, `email`, `subject`, `message`, `attachment`) and its problem.
    Fields(Vec<(&'static str, Problem)>),
    /// Too many submissions: wait this many seconds.
    RateLimited {
        retry_after_s: u64,
    },
    Unavailable(String),
}

/// Checks a submission and, when it is sound, creates its ticket.
pub async fn submit(
    state: &AppState,
    client: Option<IpAddr>,
    submission: Submission,
) -> Result<(TicketId, TicketNumber), Refusal> {
    let mut problems = Vec::new();
    let mut check = |field: &'static str, value: &str, max: usize, parsed: Result<(), InvalidValue>| {
        if let Err(error) = parsed {
            problems.push((field, Problem::from_invalid(value, error, max)));
        }
    };
    let name = PersonName::parse(&submission.name);
    check("name", &submission.name, PersonName::CHARS_MAX, name.as_ref().map(drop).map_err(Clone::clone));
    let email = EmailAddress::parse(&submission.email);
    check("email", &submission.email, EmailAddress::BYTES_MAX, email.as_ref().map(drop).map_err(Clone::clone));
    let subject = Subject::parse(&submission.subject);
    check("subject", &submission.subject, Subject::CHARS_MAX, subject.as_ref().map(drop).map_err(Clone::clone));
    let message = MessageBody::parse(&submission.message);
    check("message", &submission.message, MessageBody::CHARS_MAX, message.as_ref().map(drop).map_err(Clone::clone));
    let (Ok(name), Ok(email), Ok(subject), Ok(message)) = (name, email, subject, message) else {
        return Err(Refusal::Fields(problems));
    };
    // Limits count sound submissions only: a typo fixed and sent again is not abuse.
    state.intake.admit(client, &email).map_err(|retry_after_s| Refusal::RateLimited { retry_after_s })?;
    let mut attachments = Vec::new();
    if let Some((file_name, bytes)) = &submission.attachment {
        match state.intake.attachments.put(file_name, bytes).await {
            Ok(attachment) => attachments.push(attachment),
            Err(error) => return Err(Refusal::Fields(vec![("attachment", Problem::Attachment(error))])),
        }
    }
    let registry = state.registry.current().await.map_err(|e| Refusal::Unavailable(e.to_string()))?;
    let contract_id = registry.contract_for(Some(&email)).cloned();
    let context = CommandContext::new(Actor::Customer { channel: Channel::WebForm });
    let outcome = state
        .service
        .open_ticket(&context, |number| ReceiveTicket {
            number,
            channel: Channel::WebForm,
            category: None,
            service_area: None,
            contract_id,
            priority: Priority::Normal,
            language: submission.language,
            reporter_name: name,
            reporter_email: Some(email),
            reporter_reply_to: None,
            reporter_phone: None,
            subject,
            message,
            attachments,
        })
        .await;
    match outcome {
        Ok(outcome) => {
            let number = outcome.ticket.state().map(|s| s.number);
            number
                .map(|n| (outcome.ticket_id, n))
                .ok_or_else(|| Refusal::Unavailable("the new ticket has no state".into()))
        }
        Err(AppError::Store(error)) => Err(Refusal::Unavailable(error.to_string())),
        Err(error) => Err(Refusal::Unavailable(error.to_string())),
    }
}
