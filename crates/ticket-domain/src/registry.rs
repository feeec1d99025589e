//! Contracts and divisions as managed data: the customers' service contracts (who their
//! reporters are, their SLA targets, their business calendar) and the divisions tickets are
//! escalated to. Every change is an event on one stream, `registry`, so changes are audited
//! like tickets (who, when, what) and the registry as it stood at any moment can be replayed.
//!
//! A ticket is linked to a contract from its reporter's address (an exact address first, then
//! the address's domain), else to the default contract an admin sets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::calendar::{BusinessCalendar, Hours};
use crate::vocabulary::{Category, ContractId, DivisionId, EmailAddress, Priority, StaffName};

/// The registry's stream.
pub const REGISTRY_STREAM: &str = "registry";

/// SLA targets in business minutes of the contract's calendar; `None`: no target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlaTargets {
    /// From receipt to the first contact with the reporter (policy §7.3).
    pub first_contact_minutes: Option<u32>,
    /// From receipt to the resolution (policy §7.4).
    pub resolution_minutes: Option<u32>,
}

impl<'de> Deserialize<'de> for SlaTargets {
    /// From an object only: a derived `Deserialize` also reads a struct from an array
    /// (`[60, null]`), which the documented schema does not allow.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default, deserialize_with = "crate::vocabulary::whole::option")]
            first_contact_minutes: Option<u32>,
            #[serde(default, deserialize_with = "crate::vocabulary::whole::option")]
            resolution_minutes: Option<u32>,
        }
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let fields: Fields =
            serde_json::from_value(serde_json::Value::Object(object)).map_err(serde::de::Error::custom)?;
        Ok(Self { first_contact_minutes: fields.first_contact_minutes, resolution_minutes: fields.resolution_minutes })
    }
}

/// A customer's service contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContractTerms {
    /// The customer organisation.
    pub customer: String,
    /// Reporters whose address is in one of these domains belong to this contract.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Reporters with exactly these addresses belong to this contract (before any domain).
    #[serde(default)]
    pub email_addresses: Vec<String>,
    /// The targets for every ticket of the contract…
    #[serde(default)]
    pub sla: SlaTargets,
    /// … where its category's targets override them, target by target …
    #[serde(default)]
    pub sla_by_category: BTreeMap<Category, SlaTargets>,
    /// … and its priority's override both, target by target.
    #[serde(default)]
    pub sla_by_priority: BTreeMap<Priority, SlaTargets>,
    /// The business calendar its clocks run in (`hu`: Hungary's holidays and transferred days,
    /// Monday-Friday 08:00-16:00 unless `working_hours` says otherwise).
    #[serde(default = "default_calendar")]
    pub calendar: String,
    /// The contract's own working hours per weekday, replacing the calendar's (a weekday left
    /// out is closed); holidays and transferred days still follow the calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<WorkingHours>,
    /// The IANA time zone its hours are in (default: the calendar's, Europe/Budapest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Whether the resolution clock stops while the ticket waits for the customer's answer.
    #[serde(default)]
    pub pause_while_waiting_for_customer: bool,
    /// The share of a target (1-99%) at which its clock warns; default: the service's
    /// `--sla-warn-percent` (80).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::vocabulary::whole::option")]
    pub warn_percent: Option<u8>,
}

/// Working hours per weekday, each `"HH:MM-HH:MM"` local time; a day left out is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    pub mon: Option<String>,
    pub tue: Option<String>,
    pub wed: Option<String>,
    pub thu: Option<String>,
    pub fri: Option<String>,
    pub sat: Option<String>,
    pub sun: Option<String>,
}

impl WorkingHours {
    /// The hours, Monday first, or what is wrong with them.
    pub fn weekly(&self) -> Result<[Option<Hours>; 7], String> {
        let days = [&self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun];
        let mut weekly = [None; 7];
        for (slot, (day, name)) in weekly.iter_mut().zip(days.into_iter().zip(WEEKDAYS)) {
            if let Some(text) = day {
                *slot = Some(parse_hours(text).map_err(|e| format!("working_hours.{name}: {e}"))?);
            }
        }
        if weekly.iter().all(Option::is_none) {
            return Err("working_hours must open on at least one weekday".into());
        }
        Ok(weekly)
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub fn parse_hours(text: &str) -> Result<Hours, String> {
    let wrong = || format!("'{text}' is not like 08:00-16:00");
    let (open, close) = text.split_once('-').ok_or_else(wrong)?;
    // Exactly two digits each: what the OpenAPI document's pattern for a day says.
    let time = |t: &str| {
        let digits =
            t.len() == 5 && t.bytes().enumerate().all(|(i, b)| if i == 2 { b == b':' } else { b.is_ascii_digit() });
        if !digits {
            return Err(wrong());
        }
        chrono::NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| wrong())
    };
    Hours::new(time(open)?, time(close)?).map_err(|_| format!("'{text}' must open before it closes"))
}

fn default_calendar() -> String {
    "hu".into()
}

/// The calendars a contract may name.
pub const CALENDARS: &[&str] = &["hu"];

/// A division tickets are escalated to (policy §7.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DivisionTerms {
    pub name: String,
    /// Where escalations are announced.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "email"))]
    pub notification_email: EmailAddress,
    /// Business minutes within which the division should answer an escalation.
    #[serde(default, deserialize_with = "crate::vocabulary::whole::option")]
    pub answer_minutes: Option<u32>,
}

/// A member of staff: whom tickets are assigned to (by name, the name their events record),
/// whom the service mails (an assignee told of a breach on their ticket), and — with a role —
/// who may sign in to the staff console. One list of people: the console's accounts are these
/// entries (their passwords are kept apart, never in an event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StaffTerms {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "email"))]
    pub email: EmailAddress,
    /// The name the console shows; the staff name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What they may do in the console; without one they cannot sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::vocabulary::Role>,
    /// The console's language for them (Hungarian by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::vocabulary::Language>,
    /// A disabled member keeps their history and tickets but cannot sign in or be assigned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl StaffTerms {
    /// An entry with an address only (no console account).
    pub fn with_email(email: EmailAddress) -> Self {
        Self { email, display_name: None, role: None, language: None, disabled: false }
    }

    /// The name to show for `name`.
    pub fn shown_name<'a>(&'a self, name: &'a StaffName) -> &'a str {
        self.display_name.as_deref().unwrap_or(name.as_str())
    }
}

/// A change to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload", deny_unknown_fields)]
pub enum RegistryEvent {
    ContractSaved { contract_id: ContractId, terms: ContractTerms },
    ContractRetired { contract_id: ContractId },
    DefaultContractSet { contract_id: ContractId },
    DivisionSaved { division_id: DivisionId, terms: DivisionTerms },
    StaffSaved { name: StaffName, terms: StaffTerms },
}

impl RegistryEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ContractSaved { .. } => "ContractSaved",
            Self::ContractRetired { .. } => "ContractRetired",
            Self::DefaultContractSet { .. } => "DefaultContractSet",
            Self::DivisionSaved { .. } => "DivisionSaved",
            Self::StaffSaved { .. } => "StaffSaved",
        }
    }

    /// The stored payload (without the type, which is stored beside it).
    pub fn to_payload(&self) -> serde_json::Value {
        let tagged = serde_json::to_value(self).unwrap_or_default();
        tagged.get("payload").cloned().unwrap_or_default()
    }

    /// Reads a stored event back.
    pub fn from_stored(event_type: &str, payload: serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(serde_json::json!({ "event_type": event_type, "payload": payload }))
            .map_err(|e| format!("registry event '{event_type}' cannot be read: {e}"))
    }
}

/// What an admin asks of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCommand {
    SaveContract { contract_id: ContractId, terms: ContractTerms },
    RetireContract { contract_id: ContractId },
    SetDefaultContract { contract_id: ContractId },
    SaveDivision { division_id: DivisionId, terms: DivisionTerms },
    SaveStaff { name: StaffName, terms: StaffTerms },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("no contract is named '{0}'")]
    NoSuchContract(String),
    #[error("contract '{0}' is retired")]
    Retired(String),
    #[error("contract '{0}' is the default contract: set another default first")]
    IsDefault(String),
    #[error("{what} already belongs to contract '{owner}'")]
    Claimed { what: String, owner: String },
    #[error("{0}")]
    Invalid(String),
    #[error("nothing would change")]
    NothingToChange,
}

/// A contract as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub terms: ContractTerms,
    pub retired: bool,
}

/// The registry folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    pub version: u64,
    pub contracts: BTreeMap<ContractId, Contract>,
    pub divisions: BTreeMap<DivisionId, DivisionTerms>,
    pub staff: BTreeMap<StaffName, StaffTerms>,
    pub default_contract: Option<ContractId>,
}

/// Lower-case, sorted, without duplicates.
fn normalise<'a>(list: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut list: Vec<String> = list.into_iter().map(str::to_ascii_lowercase).collect();
    list.sort();
    list.dedup();
    list
}

/// A mail domain as a contract names it: labels of letters, digits and inner hyphens (at most
/// 63 each), at least two, at most 253 characters in all; an IDN is given in its `xn--` form.
pub fn is_mail_domain(domain: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    domain.len() <= MAIL_DOMAIN_BYTES_MAX && domain.contains('.') && domain.split('.').all(label)
}

/// [`is_mail_domain`] as a regex for the OpenAPI document, with the leading `@` and the white
/// space around that a contract's list may have.
pub fn mail_domain_pattern() -> String {
    let space = crate::vocabulary::SPACE;
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!("^[{space}]*@?{label}(?:\\.{label})+[{space}]*$")
}

/// A weekday's working hours as `parse_hours` reads them (opening before closing is checked
/// on top).
pub const HOURS_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$";

/// The longest mail domain (RFC 1035).
pub const MAIL_DOMAIN_BYTES_MAX: usize = 253;
/// The longest SLA target or answer time: a year of minutes.
pub const MINUTES_MAX: u32 = 60 * 24 * 366;
/// The range of `warn_percent`.
pub const WARN_PERCENT_MIN: u8 = 1;
pub const WARN_PERCENT_MAX: u8 = 99;
/// The longest customer (contract) or division name.
pub const NAME_CHARS_MAX: usize = 200;

/// Every IANA time zone name a contract may give (`time_zone`).
pub fn time_zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name())
}

fn check_minutes(what: &str, minutes: Option<u32>) -> Result<(), RegistryError> {
    match minutes {
        Some(0) => Err(RegistryError::Invalid(format!("{what} must be at least one minute"))),
        Some(m) if m > MINUTES_MAX => Err(RegistryError::Invalid(format!("{what} must be at most a year of minutes"))),
        _ => Ok(()),
    }
}

impl ContractTerms {
    /// The terms as stored: addresses and domains lower-case, sorted, without duplicates.
    fn checked(mut self) -> Result<Self, RegistryError> {
        self.customer = crate::vocabulary::bounded_text("customer", &self.customer, NAME_CHARS_MAX)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?
            .to_owned();
        // A domain may be written with a leading '@' ("@example.hu").
        self.email_domains = normalise(self.email_domains.iter().map(|d| {
            let d = d.trim();
            d.strip_prefix('@').unwrap_or(d)
        }));
        self.email_addresses = normalise(self.email_addresses.iter().map(|a| a.trim()));
        if let Some(domain) = self.email_domains.iter().find(|d| !is_mail_domain(d)) {
            return Err(RegistryError::Invalid(format!("'{domain}' is not a mail domain (like example.hu)")));
        }
        if let Some(address) = self.email_addresses.iter().find(|a| EmailAddress::parse(a).is_err()) {
            return Err(RegistryError::Invalid(format!("'{address}' is not an e-mail address")));
        }
        if !CALENDARS.contains(&self.calendar.as_str()) {
            return Err(RegistryError::Invalid(format!("calendar must be one of: {}", CALENDARS.join(", "))));
        }
        let all_targets =
            std::iter::once(&self.sla).chain(self.sla_by_category.values()).chain(self.sla_by_priority.values());
        for targets in all_targets {
            check_minutes("first_contact_minutes", targets.first_contact_minutes)?;
            check_minutes("resolution_minutes", targets.resolution_minutes)?;
        }
        if let Some(hours) = &self.working_hours {
            hours.weekly().map_err(RegistryError::Invalid)?;
        }
        if self.warn_percent.is_some_and(|p| !(WARN_PERCENT_MIN..=WARN_PERCENT_MAX).contains(&p)) {
            return Err(RegistryError::Invalid("warn_percent must be 1 to 99".into()));
        }
        if let Some(zone) = &self.time_zone {
            zone.parse::<chrono_tz::Tz>().map_err(|_| {
                RegistryError::Invalid(format!("'{zone}' is not an IANA time zone (like Europe/Budapest)"))
            })?;
        }
        Ok(self)
    }

    /// The targets for a ticket of `category` and `priority`: the contract's, overridden target by
    /// target by the category's, then by the priority's.
    pub fn targets_for(&self, category: Option<Category>, priority: Priority) -> SlaTargets {
        let overrides =
            category.and_then(|c| self.sla_by_category.get(&c)).into_iter().chain(self.sla_by_priority.get(&priority));
        overrides.fold(self.sla.clone(), |targets, over| SlaTargets {
            first_contact_minutes: over.first_contact_minutes.or(targets.first_contact_minutes),
            resolution_minutes: over.resolution_minutes.or(targets.resolution_minutes),
        })
    }

    /// The calendar the contract's clocks run in: `base` (its holidays and transferred days)
    /// with the contract's own working hours and time zone, when it has them.
    pub fn calendar_from<'a>(&self, base: &'a BusinessCalendar) -> std::borrow::Cow<'a, BusinessCalendar> {
        let weekly = self.working_hours.as_ref().and_then(|hours| hours.weekly().ok());
        let zone = self.time_zone.as_ref().and_then(|zone| zone.parse::<chrono_tz::Tz>().ok());
        if weekly.is_none() && zone.is_none() {
            return std::borrow::Cow::Borrowed(base);
        }
        let mut calendar = base.clone();
        if let Some(weekly) = weekly {
            calendar.weekly = weekly;
        }
        if let Some(zone) = zone {
            calendar.time_zone = zone;
        }
        std::borrow::Cow::Owned(calendar)
    }
}

/// A command names managed data the registry does not hold (or no longer offers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownReference {
    #[error("no division has the id '{given}'")]
    Division { given: String, known: Vec<String> },
    #[error("no live contract has the id '{given}'")]
    Contract { given: String, known: Vec<String> },
    #[error("the staff directory has nobody called '{given}'")]
    Staff { given: String, known: Vec<String> },
}

impl UnknownReference {
    /// The request field that carries the reference.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Division { .. } => "division",
            Self::Contract { .. } => "contract_id",
            Self::Staff { .. } => "assignee",
        }
    }

    /// What the registry does hold, to choose from.
    pub fn known(&self) -> &[String] {
        match self {
            Self::Division { known, .. } | Self::Contract { known, .. } | Self::Staff { known, .. } => known,
        }
    }
}

impl Registry {
    /// Checks every reference to managed data a command carries: an escalation's division, a
    /// contract named at intake or linked later (live, not retired), and an assignee — once the
    /// staff directory has anyone in it (without a directory, names are free text).
    pub fn check_references(&self, command: &crate::TicketCommand) -> Result<(), UnknownReference> {
        use crate::TicketCommand;
        let live_contracts =
            || self.contracts.iter().filter(|(_, c)| !c.retired).map(|(id, _)| id.to_string()).collect();
        match command {
            TicketCommand::Escalate { division, .. } if !self.divisions.contains_key(division) => {
                Err(UnknownReference::Division {
                    given: division.to_string(),
                    known: self.divisions.keys().map(|d| d.to_string()).collect(),
                })
            }
            TicketCommand::Receive(receive)
                if receive.contract_id.as_ref().is_some_and(|id| self.live(id).is_err()) =>
            {
                Err(UnknownReference::Contract {
                    given: receive.contract_id.as_ref().map(|id| id.to_string()).unwrap_or_default(),
                    known: live_contracts(),
                })
            }
            TicketCommand::LinkContract { contract_id } if self.live(contract_id).is_err() => {
                Err(UnknownReference::Contract { given: contract_id.to_string(), known: live_contracts() })
            }
            // A disabled member keeps the tickets they hold but gets no new ones.
            TicketCommand::Assign { assignee }
                if !self.staff.is_empty() && !self.staff.get(assignee).is_some_and(|terms| !terms.disabled) =>
            {
                Err(UnknownReference::Staff {
                    given: assignee.to_string(),
                    known: self.staff.iter().filter(|(_, t)| !t.disabled).map(|(s, _)| s.to_string()).collect(),
                })
            }
            _ => Ok(()),
        }
    }

    pub fn replay<'a>(events: impl IntoIterator<Item = &'a RegistryEvent>) -> Self {
        events.into_iter().fold(Self::default(), |registry, event| registry.evolve(event))
    }

    pub fn evolve(mut self, event: &RegistryEvent) -> Self {
        self.version += 1;
        match event {
            RegistryEvent::ContractSaved { contract_id, terms } => {
                self.contracts.insert(contract_id.clone(), Contract { terms: terms.clone(), retired: false });
            }
            RegistryEvent::ContractRetired { contract_id } => {
                if let Some(contract) = self.contracts.get_mut(contract_id) {
                    contract.retired = true;
                }
            }
            RegistryEvent::DefaultContractSet { contract_id } => self.default_contract = Some(contract_id.clone()),
            RegistryEvent::DivisionSaved { division_id, terms } => {
                self.divisions.insert(division_id.clone(), terms.clone());
            }
            RegistryEvent::StaffSaved { name, terms } => {
                self.staff.insert(name.clone(), terms.clone());
            }
        }
        self
    }

    fn live(&self, contract_id: &ContractId) -> Result<&Contract, RegistryError> {
        let contract =
            self.contracts.get(contract_id).ok_or_else(|| RegistryError::NoSuchContract(contract_id.to_string()))?;
        if contract.retired {
            return Err(RegistryError::Retired(contract_id.to_string()));
        }
        Ok(contract)
    }

    pub fn decide(&self, command: RegistryCommand) -> Result<Vec<RegistryEvent>, RegistryError> {
        let event = match command {
            RegistryCommand::SaveContract { contract_id, terms } => {
                let terms = terms.checked()?;
                for (other_id, other) in self.contracts.iter().filter(|(id, c)| **id != contract_id && !c.retired) {
                    let claimed = terms
                        .email_domains
                        .iter()
                        .find(|d| other.terms.email_domains.contains(d))
                        .map(|d| format!("the domain {d}"))
                        .or_else(|| {
                            terms
                                .email_addresses
                                .iter()
                                .find(|a| other.terms.email_addresses.contains(a))
                                .map(|a| format!("the address {a}"))
                        });
                    if let Some(what) = claimed {
                        return Err(RegistryError::Claimed { what, owner: other_id.to_string() });
                    }
                }
                if self.contracts.get(&contract_id).is_some_and(|c| !c.retired && c.terms == terms) {
                    return Err(RegistryError::NothingToChange);
                }
                RegistryEvent::ContractSaved { contract_id, terms }
            }
            RegistryCommand::RetireContract { contract_id } => {
                self.live(&contract_id)?;
                if self.default_contract.as_ref() == Some(&contract_id) {
                    return Err(RegistryError::IsDefault(contract_id.to_string()));
                }
                RegistryEvent::ContractRetired { contract_id }
            }
            RegistryCommand::SetDefaultContract { contract_id } => {
                self.live(&contract_id)?;
                if self.default_contract.as_ref() == Some(&contract_id) {
                    return Err(RegistryError::NothingToChange);
                }
                RegistryEvent::DefaultContractSet { contract_id }
            }
            RegistryCommand::SaveDivision { division_id, mut terms } => {
                terms.name = crate::vocabulary::bounded_text("name", &terms.name, NAME_CHARS_MAX)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?
                    .to_owned();
                check_minutes("answer_minutes", terms.answer_minutes)?;
                // Deserialisation does not check addresses (old events must stay readable): here it is.
                terms.notification_email = EmailAddress::parse(terms.notification_email.as_str())
                    .map_err(|e| RegistryError::Invalid(format!("notification_email: {}", e.problem)))?;
                if self.divisions.get(&division_id) == Some(&terms) {
                    return Err(RegistryError::NothingToChange);
                }
                RegistryEvent::DivisionSaved { division_id, terms }
            }
            RegistryCommand::SaveStaff { name, terms } => {
                let display_name = match terms.display_name.as_deref() {
                    None => None,
                    Some(shown) => Some(
                        crate::vocabulary::bounded_text("display_name", shown, NAME_CHARS_MAX)
                            .map_err(|e| RegistryError::Invalid(e.to_string()))?
                            .to_owned(),
                    ),
                };
                let terms = StaffTerms {
                    email: EmailAddress::parse(terms.email.as_str())
                        .map_err(|e| RegistryError::Invalid(format!("email: {}", e.problem)))?,
                    display_name,
                    ..terms
                };
                if self.staff.get(&name) == Some(&terms) {
                    return Err(RegistryError::NothingToChange);
                }
                RegistryEvent::StaffSaved { name, terms }
            }
        };
        Ok(vec![event])
    }

    /// The calendar a ticket of `contract` runs in: `base` with the contract's own hours and zone.
    pub fn calendar_for<'a>(
        &self,
        contract: Option<&ContractId>,
        base: &'a BusinessCalendar,
    ) -> std::borrow::Cow<'a, BusinessCalendar> {
        match contract.and_then(|id| self.contracts.get(id)) {
            Some(contract) => contract.terms.calendar_from(base),
            None => std::borrow::Cow::Borrowed(base),
        }
    }

    /// The contract a reporter belongs to: by exact address, then by domain, else the default.
    pub fn contract_for(&self, email: Option<&EmailAddress>) -> Option<&ContractId> {
        let live = || self.contracts.iter().filter(|(_, c)| !c.retired);
        if let Some(email) = email {
            let address = email.as_str().to_ascii_lowercase();
            if let Some((id, _)) = live().find(|(_, c)| c.terms.email_addresses.contains(&address)) {
                return Some(id);
            }
            let domain = address.rsplit('@').next().unwrap_or_default();
            if let Some((id, _)) = live().find(|(_, c)| c.terms.email_domains.iter().any(|d| d == domain)) {
                return Some(id);
            }
        }
        self.default_contract.as_ref().filter(|id| self.contracts.get(*id).is_some_and(|c| !c.retired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ContractId {
        ContractId::parse(text).unwrap()
    }

    fn terms(customer: &str, domains: &[&str], addresses: &[&str]) -> ContractTerms {
        ContractTerms {
            customer: customer.into(),
            email_domains: domains.iter().map(|s| s.to_string()).collect(),
            email_addresses: addresses.iter().map(|s| s.to_string()).collect(),
            sla: SlaTargets { first_contact_minutes: Some(480), resolution_minutes: Some(2400) },
            sla_by_category: BTreeMap::from([(
                Category::Complaint,
                SlaTargets { first_contact_minutes: Some(120), resolution_minutes: Some(960) },
            )]),
            sla_by_priority: BTreeMap::from([(
                Priority::Urgent,
                SlaTargets { first_contact_minutes: Some(30), resolution_minutes: None },
            )]),
            calendar: "hu".into(),
            working_hours: None,
            time_zone: None,
            pause_while_waiting_for_customer: false,
            warn_percent: None,
        }
    }

    fn apply(registry: Registry, command: RegistryCommand) -> Registry {
        let events = registry.decide(command).unwrap();
        events.iter().fold(registry, |r, e| r.evolve(e))
    }

    fn email(text: &str) -> EmailAddress {
        EmailAddress::parse(text).unwrap()
    }

    #[test]
    fn reporters_find_their_contract_by_address_then_domain_then_the_default() {
        let mut registry = Registry::default();
        registry = apply(
            registry,
            RegistryCommand::SaveContract { contract_id: id("acme"), terms: terms("ACME Kft.", &["@Acme.HU "], &[]) },
        );
        registry = apply(
            registry,
            RegistryCommand::SaveContract {
                contract_id: id("acme-ceo"),
                terms: terms("ACME CEO office", &[], &["Ceo@acme.hu"]),
            },
        );
        registry = apply(
            registry,
            RegistryCommand::SaveContract { contract_id: id("general"), terms: terms("Everyone else", &[], &[]) },
        );
        assert_eq!(registry.contract_for(Some(&email("anna@acme.hu"))), Some(&id("acme")));
        assert_eq!(
            registry.contract_for(Some(&email("CEO@ACME.hu"))),
            Some(&id("acme-ceo")),
            "an address beats its domain"
        );
        assert_eq!(registry.contract_for(Some(&email("x@other.hu"))), None, "no default yet");
        registry = apply(registry, RegistryCommand::SetDefaultContract { contract_id: id("general") });
        assert_eq!(registry.contract_for(Some(&email("x@other.hu"))), Some(&id("general")));
        assert_eq!(registry.contract_for(None), Some(&id("general")));
        registry = apply(registry, RegistryCommand::RetireContract { contract_id: id("acme") });
        assert_eq!(
            registry.contract_for(Some(&email("anna@acme.hu"))),
            Some(&id("general")),
            "a retired contract matches nobody"
        );
        assert_eq!(registry.version, 5);
        let general = &registry.contracts[&id("general")].terms;
        let targets = general.targets_for(Some(Category::Complaint), Priority::Normal);
        assert_eq!((targets.first_contact_minutes, targets.resolution_minutes), (Some(120), Some(960)));
        assert_eq!(general.targets_for(None, Priority::Low).first_contact_minutes, Some(480));
        // The priority's target wins over the category's; what it leaves out is inherited.
        let urgent = general.targets_for(Some(Category::Complaint), Priority::Urgent);
        assert_eq!((urgent.first_contact_minutes, urgent.resolution_minutes), (Some(30), Some(960)));
        let urgent = general.targets_for(None, Priority::Urgent);
        assert_eq!((urgent.first_contact_minutes, urgent.resolution_minutes), (Some(30), Some(2400)));
    }

    #[test]
    fn a_domain_belongs_to_one_live_contract_and_bad_terms_are_refused() {
        let registry = apply(
            Registry::default(),
            RegistryCommand::SaveContract { contract_id: id("acme"), terms: terms("ACME", &["acme.hu"], &[]) },
        );
        let clash = registry.decide(RegistryCommand::SaveContract {
            contract_id: id("other"),
            terms: terms("Other", &["ACME.hu"], &[]),
        });
        assert!(matches!(clash, Err(RegistryError::Claimed { .. })), "{clash:?}");
        let same = registry
            .decide(RegistryCommand::SaveContract { contract_id: id("acme"), terms: terms("ACME", &["acme.hu"], &[]) });
        assert_eq!(same, Err(RegistryError::NothingToChange));
        let mut bad = terms("ACME", &["acme"], &[]);
        assert!(matches!(
            registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() }),
            Err(RegistryError::Invalid(_))
        ));
        bad = terms("ACME", &[], &[]);
        bad.sla.resolution_minutes = Some(0);
        assert!(matches!(
            registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() }),
            Err(RegistryError::Invalid(_))
        ));
        bad.sla.resolution_minutes = None;
        for hours in ["8-16", "16:00-08:00", "08:00-25:00"] {
            bad.working_hours = Some(WorkingHours { sat: Some(hours.into()), ..Default::default() });
            let refused = registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() });
            assert!(
                matches!(&refused, Err(RegistryError::Invalid(why)) if why.contains("sat")),
                "{hours}: {refused:?}"
            );
        }
        bad.working_hours = Some(WorkingHours::default());
        assert!(registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() }).is_err());
        bad.working_hours = None;
        bad.time_zone = Some("Europe/Atlantis".into());
        assert!(registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() }).is_err());
        bad.time_zone = None;
        bad.warn_percent = Some(100);
        assert!(registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad.clone() }).is_err());
        bad.warn_percent = None;
        bad.calendar = "mars".into();
        assert!(matches!(
            registry.decide(RegistryCommand::SaveContract { contract_id: id("x"), terms: bad }),
            Err(RegistryError::Invalid(_))
        ));
        assert!(matches!(
            registry.decide(RegistryCommand::SetDefaultContract { contract_id: id("nope") }),
            Err(RegistryError::NoSuchContract(_))
        ));
        let registry = apply(registry, RegistryCommand::SetDefaultContract { contract_id: id("acme") });
        assert!(matches!(
            registry.decide(RegistryCommand::RetireContract { contract_id: id("acme") }),
            Err(RegistryError::IsDefault(_))
        ));
    }

    #[test]
    fn a_contracts_own_hours_and_zone_replace_the_calendars_but_its_holidays_stay() {
        use chrono::TimeZone;
        use chrono_tz::Europe::London;
        let base = BusinessCalendar::hungary_default().unwrap();
        let mut shop = terms("Shop", &[], &[]);
        assert!(matches!(shop.calendar_from(&base), std::borrow::Cow::Borrowed(_)));
        shop.working_hours = Some(WorkingHours { sat: Some("09:00-13:00".into()), ..Default::default() });
        shop.time_zone = Some("Europe/London".into());
        let calendar = shop.calendar_from(&base);
        let london = |m, d, h| London.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap().with_timezone(&chrono::Utc);
        // Open on Saturday mornings, London time.
        assert_eq!(calendar.add(london(4, 11, 9), chrono::Duration::hours(2)), Some(london(4, 11, 11)));
        // Friday is closed for this contract: an hour asked on Friday is next Saturday's first.
        assert_eq!(calendar.add(london(4, 10, 10), chrono::Duration::hours(1)), Some(london(4, 11, 10)));
        // 26 December 2026 is a Saturday and a Hungarian holiday: the calendar's holidays stay.
        let after = calendar.add(london(12, 19, 12), chrono::Duration::hours(2)).unwrap();
        assert_eq!(after, London.with_ymd_and_hms(2027, 1, 2, 10, 0, 0).unwrap().with_timezone(&chrono::Utc));
        assert_eq!(calendar.elapsed(london(12, 19, 9), london(12, 27, 9)), chrono::Duration::hours(4));
    }

    #[test]
    fn the_staff_directory_keeps_one_checked_address_per_name() {
        let kata = StaffName::parse("kata").unwrap();
        let save = |email: &str| RegistryCommand::SaveStaff {
            name: kata.clone(),
            terms: StaffTerms::with_email(serde_json::from_value(serde_json::json!(email)).unwrap()),
        };
        let registry = apply(Registry::default(), save(" kata@tickets.example"));
        assert_eq!(registry.staff[&kata].email.as_str(), "kata@tickets.example");
        assert_eq!(registry.decide(save("kata@tickets.example")), Err(RegistryError::NothingToChange));
        assert!(matches!(registry.decide(save("not an address")), Err(RegistryError::Invalid(_))));
        let moved = apply(registry, save("kata@elsewhere.example"));
        assert_eq!((moved.staff[&kata].email.as_str(), moved.version), ("kata@elsewhere.example", 2));
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = RegistryEvent::ContractSaved { contract_id: id("acme"), terms: terms("ACME", &["acme.hu"], &[]) };
        let payload = event.to_payload();
        assert!(payload.get("event_type").is_none() && payload["terms"]["customer"] == "ACME");
        assert_eq!(RegistryEvent::from_stored(event.event_type(), payload).unwrap(), event);
        assert!(RegistryEvent::from_stored("Teleported", serde_json::json!({})).is_err());
    }

    /// The patterns the OpenAPI document states accept exactly what the checks here accept.
    mod document_patterns {
        use proptest::prelude::*;

        use super::super::*;

        fn matches(pattern: &str, value: &str) -> bool {
            let schema = serde_json::json!({"type": "string", "pattern": pattern});
            jsonschema::validator_for(&schema).expect("a valid pattern").is_valid(&serde_json::json!(value))
        }

        fn domain_accepted(domain: &str) -> bool {
            let terms = ContractTerms {
                customer: "Acme".into(),
                email_domains: vec![domain.to_owned()],
                email_addresses: vec![],
                sla: SlaTargets::default(),
                sla_by_category: BTreeMap::new(),
                sla_by_priority: BTreeMap::new(),
                calendar: "hu".into(),
                working_hours: None,
                time_zone: None,
                pause_while_waiting_for_customer: false,
                warn_percent: None,
            };
            terms.checked().is_ok()
        }

        fn hours_readable(text: &str) -> bool {
            match parse_hours(text) {
                Ok(_) => true,
                Err(why) => why.contains("must open before it closes"),
            }
        }

        #[test]
        fn examples() {
            for (domain, ok) in [
                ("example.hu", true),
                (" @Acme.HU ", true),
                ("xn--pda-bma.hu", true),
                ("a-b.c", true),
                ("acme", false),
                ("-a.hu", false),
                ("a-.hu", false),
                ("a..hu", false),
                ("@ a.hu", false),
                ("", false),
                ("a b.hu", false),
                ("példa.hu", false),
            ] {
                assert_eq!(domain_accepted(domain), ok, "{domain:?}");
                assert_eq!(matches(&mail_domain_pattern(), domain), ok, "{domain:?}");
            }
            let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
            assert_eq!(long.len(), MAIL_DOMAIN_BYTES_MAX);
            assert!(domain_accepted(&long) && matches(&mail_domain_pattern(), &long));
            for (hours, ok) in [
                ("08:00-16:00", true),
                ("23:59-00:00", true),
                ("8:00-16:00", false),
                ("24:00-25:00", false),
                (" 08:00-16:00", false),
                ("08:00 - 16:00", false),
            ] {
                assert_eq!(hours_readable(hours), ok, "{hours:?}");
                assert_eq!(matches(HOURS_PATTERN, hours), ok, "{hours:?}");
            }
        }

        proptest! {
            #[test]
            fn the_mail_domain_pattern_is_the_check(
                chars in prop::collection::vec(prop::sample::select(vec!['a', 'Z', '0', '-', '.', '@', ' ', '\t', '\u{a0}', 'é', '\u{0}']), 0..12)
            ) {
                let domain: String = chars.into_iter().collect();
                prop_assert_eq!(matches(&mail_domain_pattern(), &domain), domain_accepted(&domain), "{:?}", domain);
            }

            #[test]
            fn the_hours_pattern_is_the_parser(
                chars in prop::collection::vec(prop::sample::select(vec!['0', '1', '2', '3', '5', '9', ':', '-', ' ']), 0..13)
            ) {
                let text: String = chars.into_iter().collect();
                prop_assert_eq!(matches(HOURS_PATTERN, &text), hours_readable(&text), "{:?}", text);
            }
        }
    }
}
