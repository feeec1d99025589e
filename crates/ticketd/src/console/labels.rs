//! The vocabulary's words in Hungarian and English, keyed by the API's names.

use ticket_domain::vocabulary::{Language, Role};

use crate::pages::tr;

pub type Words = &'static [(&'static str, &'static str, &'static str)];

pub const CHANNELS: Words = &[
    ("phone", "Telefon", "Phone"),
    ("other", "Egyéb (levél, közösségi média)", "Other (letter, social media)"),
    ("email", "E-mail", "E-mail"),
    ("web_form", "Webes űrlap", "Web form"),
];
pub const CATEGORIES: Words = &[
    ("bug_report", "Hibabejelentés", "Bug report"),
    ("user_support", "Felhasználótámogatás", "User support"),
    ("complaint", "Panasz", "Complaint"),
    ("information_request", "Információkérés", "Information request"),
    ("data_change", "Adatváltozás-bejelentés", "Data-change notification"),
];
pub const SERVICE_AREAS: Words = &[
    ("data_protection_consulting", "Adatvédelmi tanácsadás", "Data-protection consulting"),
    ("norma", "Norma", "Norma"),
    ("process_improvement_consulting", "Folyamatfejlesztési tanácsadás", "Process-improvement consulting"),
    ("other", "Egyéb", "Other"),
];
pub const PRIORITIES: Words = &[
    ("low", "Alacsony", "Low"),
    ("normal", "Normál", "Normal"),
    ("high", "Magas", "High"),
    ("urgent", "Sürgős", "Urgent"),
];
pub const CONTACT_METHODS: Words = &[
    ("phone", "Telefon", "Phone"),
    ("email", "E-mail", "E-mail"),
    ("in_person", "Személyesen", "In person"),
    ("letter", "Levél", "Letter"),
];
pub const OUTCOMES: Words = &[
    ("upheld", "Elfogadva", "Upheld"),
    ("partly_upheld", "Részben elfogadva", "Partly upheld"),
    ("rejected", "Elutasítva", "Rejected"),
];
pub const STATUSES: Words = &[
    ("received", "Beérkezett", "Received"),
    ("acknowledged", "Visszaigazolva", "Acknowledged"),
    ("investigating", "Vizsgálat alatt", "Investigating"),
    ("escalated", "Továbbítva", "Escalated"),
    ("resolved", "Megoldva", "Resolved"),
    ("closed", "Lezárva", "Closed"),
];
pub const QUEUES: Words = &[
    ("new", "Új", "New"),
    ("awaiting-contact", "Kapcsolatfelvételre vár", "Awaiting contact"),
    ("investigating", "Vizsgálat alatt", "Investigating"),
    ("escalated", "Továbbítva", "Escalated"),
    ("resolved", "Megoldva", "Resolved"),
    ("mine", "Nálam", "Mine"),
    ("all-open", "Minden nyitott", "All open"),
    ("all", "Minden jegy", "All tickets"),
];

/// The word for an API name in a list (the name itself when unknown).
pub fn word<'a>(words: Words, name: &'a str, language: Language) -> &'a str {
    words.iter().find(|(n, _, _)| *n == name).map(|(_, hu, en)| tr(language, hu, en)).unwrap_or(name)
}

pub fn queue(name: &str, language: Language) -> &str {
    word(QUEUES, name, language)
}

pub fn role(role: Role, language: Language) -> &'static str {
    match role {
        Role::Agent => tr(language, "ügyintéző", "agent"),
        Role::QualityManager => tr(language, "minőségügyi vezető", "quality manager"),
        Role::Auditor => tr(language, "auditor", "auditor"),
        Role::Admin => tr(language, "adminisztrátor", "admin"),
        Role::Intake => "intake",
    }
}

/// The API's name of a value (its serde name).
pub fn api_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// An event type in words.
pub fn event_type(event_type: &str, language: Language) -> &str {
    let words: Words = &[
        ("Received", "Beérkezett", "Received"),
        ("Acknowledged", "Visszaigazolva", "Acknowledged"),
        ("Investigated", "Vizsgálat megkezdve", "Investigation started"),
        ("Escalated", "Továbbítva", "Escalated"),
        ("EscalationAnswered", "A szakterület válaszolt", "Division answered"),
        ("Resolved", "Megoldva", "Resolved"),
        ("Closed", "Lezárva", "Closed"),
        ("SurveySent", "Elégedettségi kérdőív elküldve", "Survey sent"),
        ("SurveyAnswered", "Kérdőív megválaszolva", "Survey answered"),
        ("Reopened", "Újranyitva", "Reopened"),
        ("Reclassified", "Átminősítve", "Reclassified"),
        ("Assigned", "Kiosztva", "Assigned"),
        ("Prioritised", "Prioritás módosítva", "Priority changed"),
        ("CustomerReplied", "Az ügyfél írt", "Customer wrote"),
        ("AgentReplied", "Válasz az ügyfélnek", "Reply to the customer"),
        ("NoteAdded", "Belső jegyzet", "Internal note"),
        ("MarkedOutOfScope", "Hatókörön kívül", "Out of scope"),
        ("ContractLinked", "Szerződés kapcsolva", "Contract linked"),
        ("SlaWarned", "SLA figyelmeztetés", "SLA warning"),
        ("SlaBreached", "SLA túllépés", "SLA breached"),
        ("ProcessingRestricted", "Adatkezelés korlátozva", "Processing restricted"),
        ("PersonalDataErased", "Személyes adatok törölve", "Personal data erased"),
        ("PersonalDataSealed", "Személyes adatok titkosítva", "Personal data sealed"),
    ];
    word(words, event_type, language)
}

/// A workflow action (the API's action names) in words.
pub fn action(name: &str, language: Language) -> &str {
    let words: Words = &[
        ("acknowledge", "Visszaigazolás rögzítése", "Record the acknowledgement"),
        ("investigate", "Azonosítás és kapcsolatfelvétel", "Identify and contact"),
        ("escalate", "Továbbítás szakterülethez", "Escalate to a division"),
        ("escalation-answer", "A szakterület válasza", "The division's answer"),
        ("resolve", "Megoldás", "Resolve"),
        ("close", "Lezárás", "Close"),
        ("reopen", "Újranyitás", "Reopen"),
        ("reclassify", "Átminősítés", "Reclassify"),
        ("assign", "Kiosztás", "Assign"),
        ("priority", "Prioritás", "Priority"),
        ("replies", "Válasz az ügyfélnek", "Reply to the customer"),
        ("notes", "Belső jegyzet", "Internal note"),
        ("out-of-scope", "Hatókörön kívül", "Out of scope"),
        ("contract", "Szerződés kapcsolása", "Link a contract"),
        ("survey-sent", "Kérdőív elküldve", "Survey sent"),
        ("survey-answer", "Kérdőív válasza", "Survey answer"),
    ];
    word(words, name, language)
}

/// A field's problem as the parsers word it (English), in the user's language.
pub fn problem(text: &str, language: Language) -> String {
    if language == Language::En {
        return text.to_owned();
    }
    let fixed: &[(&str, &str)] = &[
        ("must not be empty", "Kötelező kitölteni."),
        ("contains control characters", "Vezérlőkaraktert tartalmaz."),
        (
            "a rejection, whole or in part, gives its reasons",
            "Teljes vagy részleges elutasításnál meg kell adni az indokot.",
        ),
        ("rejection reasons belong to a rejection", "Indokot csak elutasításhoz lehet megadni."),
        (
            "give an e-mail address, a phone number, or both",
            "Adjon meg e-mail címet vagy telefonszámot (vagy mindkettőt).",
        ),
        (
            "give a category, a service area, or both",
            "Adjon meg kategóriát vagy szolgáltatási területet (vagy mindkettőt).",
        ),
    ];
    if let Some((_, hu)) = fixed.iter().find(|(en, _)| *en == text) {
        return (*hu).to_owned();
    }
    if let Some(rest) = text.strip_prefix("is ")
        && let Some((chars, max)) = rest.split_once(" characters long; at most ")
    {
        return format!("{chars} karakter hosszú; legfeljebb {} lehet.", max.trim_end_matches(" are allowed"));
    }
    if let Some(value) = text.strip_suffix(" is not an e-mail address") {
        return format!("{value} nem e-mail cím.");
    }
    text.to_owned()
}
