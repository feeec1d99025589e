//! The words of the product brief (`shared/PRODUCT.md`), as types.
//!
//! Values that have an invariant are newtypes with a private field and one fallible
//! constructor (`parse`). Deserialisation is deliberately *not* checked: events are read
//! back from the store years later, and a rule tightened today must never make an old,
//! once-valid event unreadable. Parsing happens at the edge, when a command is built.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value given to a constructor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidValue {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }
}

/// How a report reached us (policy §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    WebForm,
    Email,
    Phone,
    /// Post, social media: not supported channels, but recorded by hand (policy §5.4).
    Other,
}

/// What kind of report a ticket is (policy §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    BugReport,
    UserSupport,
    /// A complaint in the strict legal sense of policy §6, not any dissatisfaction.
    Complaint,
    InformationRequest,
    DataChange,
}

/// How urgent a ticket is: contracts may set SLA targets per priority. `normal` unless an agent
/// (or the integration that reports it) says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Normal, Self::High, Self::Urgent];

    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

/// Which service a ticket is about (policy §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceArea {
    DataProtectionConsulting,
    Norma,
    ProcessImprovementConsulting,
    Other,
}

/// The customer's language: customer mails and pages use it. Hungarian is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Hu,
    En,
}

/// What a resolution says to a complaint (Act CLV of 1997 §17/A): a rejection, whole or in
/// part, gives its reasons and the customer's redress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComplaintOutcome {
    #[default]
    Upheld,
    PartlyUpheld,
    Rejected,
}

/// How the agent made first contact with the reporter (policy §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContactMethod {
    Email,
    Phone,
    InPerson,
    Letter,
}

/// The staff roles of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    QualityManager,
    Auditor,
    Admin,
    /// A mail server or mail fetcher: may only deliver customer e-mail (`POST /intake/email`).
    Intake,
}

/// Who caused an event. Recorded in every event's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A member of staff, identified by the name of the API token they used.
    Staff { name: String, role: Role },
    /// The reporter, writing through a form or an e-mail.
    Customer { channel: Channel },
    /// The service itself: a timer, the mailer, an importer.
    System { component: String },
}

/// The identity of a ticket; its event stream is `ticket-<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TicketId(Uuid);

impl TicketId {
    /// A new, time-ordered id (UUIDv7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    /// The name of this ticket's event stream.
    pub fn stream_name(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0)
    }
    pub const STREAM_PREFIX: &'static str = "ticket-";
}

impl Default for TicketId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The short, human ticket number customers quote (unique, increasing; allocated by the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TicketNumber(u64);

impl TicketNumber {
    pub fn new(number: u64) -> Result<Self, InvalidValue> {
        if number == 0 {
            return Err(InvalidValue::new("number", "ticket numbers start at 1"));
        }
        Ok(Self(number))
    }
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A customer e-mail address (an RFC 5322 addr-spec).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const BYTES_MAX: usize = 254;

    /// At most `BYTES_MAX` bytes as given, white space around included (then trimmed).
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let too_long = value.len() > Self::BYTES_MAX;
        let value = value.trim();
        if too_long {
            return Err(InvalidValue::new("email", format!("longer than {} bytes", Self::BYTES_MAX)));
        }
        // The crate accepts display-name forms ("Name <a@b>"); we want the bare address.
        if value.contains('<') || !email_address::EmailAddress::is_valid(value) {
            return Err(InvalidValue::new("email", format!("'{value}' is not an e-mail address")));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rule of every free-text value: at most `chars_max` characters as given (white space
/// around included, as JSON Schema's `maxLength` counts), and trimmed (Unicode white space) it
/// is not empty and has no control characters but line breaks and tabs. The OpenAPI document
/// states it as [`text_pattern`] and `maxLength` (a test holds the pattern to this function).
pub fn bounded_text<'a>(field: &'static str, value: &'a str, chars_max: usize) -> Result<&'a str, InvalidValue> {
    let chars = value.chars().count();
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    if chars > chars_max {
        return Err(InvalidValue::new(field, format!("is {chars} characters long; at most {chars_max} are allowed")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(InvalidValue::new(field, "contains control characters"));
    }
    Ok(value)
}

/// White space as `str::trim` removes it (Unicode `White_Space`), as the body of a regex class.
pub const SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// [`bounded_text`] as a regex (ECMA-262 and Python alike: explicit classes, no `\s` or `.`),
/// for the OpenAPI document: white space around, then a character that is neither white space
/// nor a control character, and inside anything but control characters other than line breaks
/// and tabs. The length is `maxLength` beside it.
pub fn text_pattern() -> String {
    let visible = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    let inner = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]";
    format!("^[{SPACE}]*{visible}(?:{inner}*{visible})?[{SPACE}]*$")
}

/// Declares a text newtype that is trimmed, non-empty and at most `$max` characters.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const CHARS_MAX: usize = $max;

            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                bounded_text($field, value, Self::CHARS_MAX).map(|value| Self(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A person's name as they gave it.
    PersonName, "name", 200
);
bounded_text!(
    /// A phone number as given; not normalised, people write them in many ways.
    PhoneNumber, "phone", 50
);
bounded_text!(
    /// The subject line of a report.
    Subject, "subject", 300
);
bounded_text!(
    /// A message body: the report, a reply, a note.
    MessageBody, "message", 50_000
);
bounded_text!(
    /// A short reason or outcome written by staff.
    Reason, "reason", 5_000
);
bounded_text!(
    /// A short root-cause label for statistics ("billing-error", "ui-confusing").
    RootCause, "root_cause", 200
);
bounded_text!(
    /// The name of a staff member (an API token's name).
    StaffName, "assignee", 200
);
bounded_text!(
    /// The slug of a division tickets are escalated to; the list is data an admin keeps.
    DivisionId, "division", 100
);
bounded_text!(
    /// A customer's contract, which names its SLA targets.
    ContractId, "contract_id", 100
);
bounded_text!(
    /// An RFC 5322 Message-ID of a mail we sent or received.
    MessageId, "message_id", 998
);

/// A file the customer sent with a report or a reply. The bytes live outside the event store,
/// content-addressed by their SHA-256; the event keeps this reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    /// The SHA-256 of the content, 64 lowercase hex digits: the file's address in the store.
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    /// The name the customer gave it (no folders).
    pub file_name: String,
}

impl AttachmentRef {
    pub const FILE_NAME_CHARS_MAX: usize = 255;

    pub fn new(sha256: &str, size: u64, media_type: &str, file_name: &str) -> Result<Self, InvalidValue> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidValue::new("attachment", "the hash must be 64 lowercase hex digits"));
        }
        let media_type = media_type.trim().to_ascii_lowercase();
        let valid_type = media_type.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && media_type.len() <= 100
                && media_type.bytes().all(|c| c.is_ascii_graphic())
        });
        if !valid_type {
            return Err(InvalidValue::new("attachment", format!("'{media_type}' is not a media type")));
        }
        // Only the last path component, without control characters: a name, never a path.
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
        let name: String = base.chars().filter(|c| !c.is_control()).take(Self::FILE_NAME_CHARS_MAX).collect();
        let name = name.trim();
        let name = if name.is_empty() || name == "." || name == ".." { "attachment" } else { name };
        Ok(Self { sha256: sha256.to_owned(), size, media_type, file_name: name.to_owned() })
    }
}

/// Whole numbers as JSON Schema counts them: `2.0` is the integer 2 (a client's JSON library
/// may write it so), `2.5` is not. For `#[serde(deserialize_with = ...)]` on unsigned fields.
pub mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    fn from_number<T: TryFrom<u64>, E: Error>(number: serde_json::Number) -> Result<T, E> {
        let whole = number.as_u64().or_else(|| {
            // Below 2^53 every float is exact; larger ones are refused rather than guessed.
            number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(f)).map(|f| f as u64)
        });
        whole
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| E::custom(format!("invalid value: {number}, expected a whole number in range")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
        from_number(serde_json::Number::deserialize(deserializer)?)
    }

    pub fn option<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<Option<T>, D::Error> {
        Option::<serde_json::Number>::deserialize(deserializer)?.map(from_number).transpose()
    }
}

/// A satisfaction score, 1 (worst) to 5 (best).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SurveyScore(u8);

impl SurveyScore {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;

    pub fn new(score: u8) -> Result<Self, InvalidValue> {
        if !(Self::MIN..=Self::MAX).contains(&score) {
            return Err(InvalidValue::new("score", format!("must be {} to {}", Self::MIN, Self::MAX)));
        }
        Ok(Self(score))
    }
    pub fn get(&self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_parsed_not_trusted() {
        assert!(EmailAddress::parse("kovacs.anna@example.hu").is_ok());
        assert_eq!(EmailAddress::parse("  a@b.hu ").unwrap().as_str(), "a@b.hu");
        for bad in ["", "anna", "anna@", "@example.hu", "Anna <anna@example.hu>", "a b@c.hu"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn bounded_text_trims_and_limits() {
        assert_eq!(Subject::parse("  Hiba a számlán ").unwrap().as_str(), "Hiba a számlán");
        assert!(Subject::parse("   ").is_err());
        let long = "é".repeat(Subject::CHARS_MAX + 1);
        let error = Subject::parse(&long).unwrap_err();
        assert_eq!(error.field, "subject");
        assert!(Subject::parse(&"é".repeat(Subject::CHARS_MAX)).is_ok(), "the limit counts characters, not bytes");
        assert!(Subject::parse("a\u{0}b").is_err());
        assert!(MessageBody::parse("line one\nline two").is_ok());
    }

    #[test]
    fn scores_and_numbers_have_ranges() {
        assert!(SurveyScore::new(0).is_err());
        assert!(SurveyScore::new(6).is_err());
        assert_eq!(SurveyScore::new(5).unwrap().get(), 5);
        assert!(TicketNumber::new(0).is_err());
    }

    #[test]
    fn vocabulary_serialises_with_the_product_names() {
        let names = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        assert_eq!(names(serde_json::to_value(Channel::WebForm).unwrap()), "web_form");
        assert_eq!(names(serde_json::to_value(Category::DataChange).unwrap()), "data_change");
        assert_eq!(
            names(serde_json::to_value(ServiceArea::ProcessImprovementConsulting).unwrap()),
            "process_improvement_consulting"
        );
        assert_eq!(names(serde_json::to_value(Role::QualityManager).unwrap()), "quality_manager");
    }

    /// The pattern the OpenAPI document states is exactly `bounded_text` (but for the length,
    /// `maxLength` beside it).
    mod document_pattern {
        use proptest::prelude::*;

        use super::super::*;

        fn matches(value: &str) -> bool {
            let schema = serde_json::json!({"type": "string", "pattern": text_pattern()});
            jsonschema::validator_for(&schema).expect("a valid pattern").is_valid(&serde_json::json!(value))
        }

        const CHARS: &[char] = &[
            'a', 'é', '😀', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{0}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}',
            '\u{a0}', '\u{1680}', '\u{2000}', '\u{200b}', '\u{2028}', '\u{3000}', '\u{feff}', '\u{1c}',
        ];

        #[test]
        fn examples() {
            for (text, ok) in [
                ("Hiba", true),
                ("  Hiba a számlán \n", true),
                ("sor\nsor\tvége", true),
                ("\u{feff}", true),
                ("", false),
                ("   ", false),
                ("\u{3000}\u{a0}", false),
                ("a\u{0}b", false),
                ("a\u{85}b", false),
                ("\u{b}a\u{c}", true),
                ("\u{1c}", false),
            ] {
                assert_eq!(bounded_text("t", text, usize::MAX).is_ok(), ok, "{text:?}");
                assert_eq!(matches(text), ok, "{text:?}");
            }
        }

        proptest! {
            #[test]
            fn the_text_pattern_is_bounded_text(chars in prop::collection::vec(prop::sample::select(CHARS), 0..6)) {
                let text: String = chars.into_iter().collect();
                prop_assert_eq!(matches(&text), bounded_text("t", &text, usize::MAX).is_ok(), "{:?}", text);
            }
        }
    }
}
