//! Mail templates: one file per mail kind and language, `Subject: …`, a blank line, the body,
//! rendered with minijinja. The defaults are compiled in; a folder given at start-up
//! (`TICKETD_TEMPLATES_DIR`, laid out like `crates/ticket-mail/templates/`) overrides any of
//! them without recompiling. Every template is checked when the service starts.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;
use ticket_domain::vocabulary::Language;

/// The mails the workflow sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// To the customer when a ticket is received (policy §7.2).
    Confirmation,
    /// To the agents' address when a ticket is received.
    AgentNotification,
    /// An agent's message to the customer.
    Reply,
    /// The resolution, told to the customer (policy §7.4).
    Resolution,
    /// The satisfaction survey when the ticket closes (policy §7.5).
    Survey,
    /// To the agents' address when an SLA clock of a ticket is breached.
    SlaBreach,
    /// To a division's address when a ticket is escalated to it (policy §7.4.2).
    Escalation,
    /// The resolution of a complaint rejected, whole or in part: with the reasons and the
    /// customer's redress (Act CLV of 1997 §17/A). Sent in place of [`MailKind::Resolution`].
    ComplaintRejected,
}

impl MailKind {
    pub const ALL: [MailKind; 8] = [
        Self::Confirmation,
        Self::AgentNotification,
        Self::Reply,
        Self::Resolution,
        Self::Survey,
        Self::SlaBreach,
        Self::Escalation,
        Self::ComplaintRejected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::AgentNotification => "agent_notification",
            Self::Reply => "reply",
            Self::Resolution => "resolution",
            Self::Survey => "survey",
            Self::SlaBreach => "sla_breach",
            Self::Escalation => "escalation",
            Self::ComplaintRejected => "complaint_rejected",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Written by the system, not by a person: marked `Auto-Submitted` (RFC 3834) so that
    /// the customer's auto-responders do not answer it.
    pub fn is_automatic(self) -> bool {
        !matches!(self, Self::Reply)
    }
}

pub fn language_code(language: Language) -> &'static str {
    match language {
        Language::Hu => "hu",
        Language::En => "en",
    }
}

const LANGUAGES: [Language; 2] = [Language::Hu, Language::En];

fn default_source(language: Language, kind: MailKind) -> &'static str {
    macro_rules! pick {
        ($($lang:ident / $kind:ident => $file:literal),+ $(,)?) => {
            match (language, kind) {
                $((Language::$lang, MailKind::$kind) => include_str!(concat!("../templates/", $file)),)+
            }
        };
    }
    pick! {
        Hu / Confirmation => "hu/confirmation.txt",
        Hu / AgentNotification => "hu/agent_notification.txt",
        Hu / Reply => "hu/reply.txt",
        Hu / Resolution => "hu/resolution.txt",
        Hu / Survey => "hu/survey.txt",
        Hu / SlaBreach => "hu/sla_breach.txt",
        Hu / Escalation => "hu/escalation.txt",
        Hu / ComplaintRejected => "hu/complaint_rejected.txt",
        En / Confirmation => "en/confirmation.txt",
        En / AgentNotification => "en/agent_notification.txt",
        En / Reply => "en/reply.txt",
        En / Resolution => "en/resolution.txt",
        En / Survey => "en/survey.txt",
        En / SlaBreach => "en/sla_breach.txt",
        En / Escalation => "en/escalation.txt",
        En / ComplaintRejected => "en/complaint_rejected.txt",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the template {name} must start with a 'Subject: …' line followed by an empty line")]
    Shape { name: String },
    #[error("the template {name} does not render: {source}")]
    Render { name: String, source: minijinja::Error },
}

/// A rendered mail: its subject line (without the ticket tag) and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// All templates, checked and ready.
pub struct Templates {
    environment: Environment<'static>,
}

fn template_name(language: Language, kind: MailKind, part: &str) -> String {
    format!("{}/{}.{part}", language_code(language), kind.name())
}

fn split(name: &str, source: &str) -> Result<(String, String), TemplateError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source).replace("\r\n", "\n");
    let (first, rest) = source.split_once('\n').ok_or_else(|| TemplateError::Shape { name: name.to_owned() })?;
    let subject = first
        .strip_prefix("Subject:")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TemplateError::Shape { name: name.to_owned() })?;
    let body = rest.strip_prefix('\n').ok_or_else(|| TemplateError::Shape { name: name.to_owned() })?;
    Ok((subject.to_owned(), body.to_owned()))
}

impl Templates {
    /// The compiled-in templates, each overridden by `dir/<language>/<kind>.txt` when present.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut environment = Environment::new();
        // Plain text mail: nothing is HTML-escaped; a customer's text is shown as written.
        environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        environment.set_keep_trailing_newline(true);
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for language in LANGUAGES {
            for kind in MailKind::ALL {
                let file = format!("{}/{}.txt", language_code(language), kind.name());
                let source = match dir.map(|dir| dir.join(&file)).filter(|path| path.exists()) {
                    Some(path) => std::fs::read_to_string(&path)
                        .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?,
                    None => default_source(language, kind).to_owned(),
                };
                let (subject, body) = split(&file, &source)?;
                for (part, text) in [("subject", subject), ("body", body)] {
                    let name = template_name(language, kind, part);
                    environment
                        .add_template_owned(name.clone(), text)
                        .map_err(|source| TemplateError::Render { name, source })?;
                }
            }
        }
        let templates = Self { environment };
        // A template that names a variable we do not pass fails now, not at the first mail.
        for language in LANGUAGES {
            for kind in MailKind::ALL {
                templates.render(language, kind, &MailValues::example())?;
            }
        }
        Ok(templates)
    }

    pub fn render(&self, language: Language, kind: MailKind, values: &MailValues) -> Result<Rendered, TemplateError> {
        let render = |part: &str| {
            let name = template_name(language, kind, part);
            self.environment
                .get_template(&name)
                .and_then(|template| template.render(values))
                .map_err(|source| TemplateError::Render { name, source })
        };
        let subject = render("subject")?.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        Ok(Rendered { subject, body: render("body")? })
    }
}

/// What a template can use. Every field is always present (empty when it does not apply).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailValues {
    pub number: u64,
    pub name: String,
    pub email: String,
    pub subject: String,
    pub message: String,
    pub channel: String,
    /// An agent's reply.
    pub body: String,
    pub resolution: String,
    pub survey_url: String,
    /// An SLA breach: the clock, its due time (local), the ticket's assignee.
    pub target: String,
    pub due: String,
    pub assignee: String,
    /// An escalation: the division's name.
    pub division: String,
    /// A rejected complaint: how it was decided ("rejected", "partly upheld") and why.
    pub outcome: String,
    pub reasons: String,
}

impl MailValues {
    fn example() -> Self {
        Self {
            number: 1,
            name: "Példa Péter".into(),
            email: "peter@example.com".into(),
            subject: "Példa".into(),
            message: "Üzenet".into(),
            channel: "web_form".into(),
            body: "Válasz".into(),
            resolution: "Megoldás".into(),
            survey_url: "http://localhost/survey/x".into(),
            target: "first_contact".into(),
            due: "2026-04-07 15:00".into(),
            assignee: "kata".into(),
            division: "Jogi osztály".into(),
            outcome: "elutasítottuk".into(),
            reasons: "Indok".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_renders_in_both_languages() {
        let templates = Templates::load(None).unwrap();
        let values = MailValues { number: 42, name: "Kovács Éva".into(), ..MailValues::example() };
        let hu = templates.render(Language::Hu, MailKind::Confirmation, &values).unwrap();
        assert!(hu.subject.starts_with("Megkaptuk"), "{}", hu.subject);
        assert!(hu.body.contains("Tisztelt Kovács Éva!") && hu.body.contains("42"), "{}", hu.body);
        let en = templates.render(Language::En, MailKind::Survey, &values).unwrap();
        assert!(en.body.contains("http://localhost/survey/x"), "{}", en.body);
        assert!(en.body.contains("Dear Kovács Éva,"), "no HTML escaping in plain text: {}", en.body);
    }

    #[test]
    fn a_folder_overrides_one_template_and_a_broken_one_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(dir.path().join("en/reply.txt"), "Subject: Answer {{ number }}\n\nHi {{ name }}: {{ body }}\n")
            .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let values = MailValues { number: 7, name: "Ann".into(), body: "done".into(), ..MailValues::default() };
        let reply = templates.render(Language::En, MailKind::Reply, &values).unwrap();
        assert_eq!(reply, Rendered { subject: "Answer 7".into(), body: "Hi Ann: done\n".into() });
        // The Hungarian one is still the default.
        assert!(templates.render(Language::Hu, MailKind::Reply, &values).unwrap().body.contains("Tisztelt Ann!"));

        std::fs::write(dir.path().join("en/reply.txt"), "no subject line\n").unwrap();
        assert!(matches!(Templates::load(Some(dir.path())), Err(TemplateError::Shape { .. })));
        std::fs::write(dir.path().join("en/reply.txt"), "Subject: x\n\n{{ no_such_value }}\n").unwrap();
        assert!(matches!(Templates::load(Some(dir.path())), Err(TemplateError::Render { .. })));
    }
}
