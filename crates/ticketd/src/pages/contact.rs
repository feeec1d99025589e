//! `/contact`: the public contact form (policy §5.1): Name*, E-mail*, Subject*, Message*, an
//! optional attachment. A plain HTML form (`multipart/form-data`), no JavaScript needed; on
//! an error the form comes back with the typed text kept and each problem beside its field.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};
use ticket_app::attachments::ALLOWED_TYPES_DEFAULT;
use ticket_domain::vocabulary::{Language, MessageBody, PersonName, Subject};

use super::{lang_code, language, page, respond, tr};
use crate::http::AppState;
use crate::intake::{Problem, Refusal, Submission, submit};

#[derive(Debug, serde::Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

type Errors = Vec<(&'static str, String)>;

fn error_for<'a>(errors: &'a Errors, field: &str) -> Option<&'a str> {
    errors.iter().find(|(f, _)| *f == field).map(|(_, e)| e.as_str())
}

fn form(
    privacy: Option<&str>,
    language: Language,
    filled: &Submission,
    errors: &Errors,
    general: Option<&str>,
) -> Markup {
    let title = tr(language, "Kapcsolatfelvétel", "Contact us");
    let other = match language {
        Language::Hu => ("en", "English"),
        Language::En => ("hu", "Magyar"),
    };
    let field = |name: &'static str, label: &str, input: Markup| {
        let error = error_for(errors, name);
        html! {
            label for=(name) { (label) @if name != "attachment" { " " abbr title=(tr(language, "kötelező", "required")) { "*" } } }
            @if let Some(error) = error { p.error id={(name) "-error"} { (error) } }
            (input)
        }
    };
    let invalid = |name: &str| error_for(errors, name).map(|_| "true");
    let described = |name: &str| error_for(errors, name).map(|_| format!("{name}-error"));
    page(
        language,
        title,
        html! {
            p { a href={"/contact?lang=" (other.0)} lang=(other.0) { (other.1) } }
            h1 { (title) }
            p.hint { (tr(language, "A *-gal jelölt mezők kitöltése kötelező.", "Fields marked * are required.")) }
            @if let Some(general) = general {
                div.summary role="alert" id="form-error" { (general) }
            } @else if !errors.is_empty() {
                div.summary role="alert" id="form-error" {
                    (tr(language, "Kérjük, javítsa a jelölt mezőket:", "Please correct the marked fields:"))
                    ul { @for (name, _) in errors { li { a href={"#" (name)} { (field_label(language, name)) } } } }
                }
            }
            form method="post" action={"/contact?lang=" (lang_code(language))} enctype="multipart/form-data" novalidate {
                input type="hidden" name="lang" value=(lang_code(language));
                (field("name", field_label(language, "name"), html! {
                    input type="text" id="name" name="name" autocomplete="name" required aria-required="true"
                        maxlength=(PersonName::CHARS_MAX) value=(filled.name)
                        aria-invalid=[invalid("name")] aria-describedby=[described("name")];
                }))
                (field("email", field_label(language, "email"), html! {
                    input type="email" id="email" name="email" autocomplete="email" required aria-required="true"
                        value=(filled.email) aria-invalid=[invalid("email")] aria-describedby=[described("email")];
                }))
                (field("subject", field_label(language, "subject"), html! {
                    input type="text" id="subject" name="subject" required aria-required="true"
                        maxlength=(Subject::CHARS_MAX) value=(filled.subject)
                        aria-invalid=[invalid("subject")] aria-describedby=[described("subject")];
                }))
                (field("message", field_label(language, "message"), html! {
                    textarea id="message" name="message" required aria-required="true" maxlength=(MessageBody::CHARS_MAX)
                        aria-invalid=[invalid("message")] aria-describedby=[described("message")] { (filled.message) }
                }))
                (field("attachment", field_label(language, "attachment"), html! {
                    input type="file" id="attachment" name="attachment" accept=(ALLOWED_TYPES_DEFAULT.join(","))
                        aria-invalid=[invalid("attachment")] aria-describedby={"attachment-hint" @if invalid("attachment").is_some() { " attachment-error" }};
                    p.hint id="attachment-hint" { (tr(language,
                        "Nem kötelező. PDF, kép, szöveg vagy Word/Excel-fájl. Ha hibát jelzünk, a fájlt újra ki kell választani.",
                        "Optional. A PDF, an image, text or a Word/Excel file. If the form shows an error, choose the file again.")) }
                }))
                @if let Some(url) = privacy {
                    p.hint id="privacy" {
                        (tr(language, "Személyes adatait az ", "We handle your personal data as our "))
                        a href=(url) { (tr(language, "adatkezelési tájékoztató", "privacy notice")) }
                        (tr(language, " szerint kezeljük.", " says."))
                    }
                }
                button type="submit" { (tr(language, "Küldés", "Send")) }
            }
        },
    )
}

fn field_label(language: Language, field: &str) -> &'static str {
    match field {
        "name" => tr(language, "Név", "Name"),
        "email" => tr(language, "E-mail-cím", "E-mail address"),
        "subject" => tr(language, "Tárgy", "Subject"),
        "message" => tr(language, "Üzenet", "Message"),
        _ => tr(language, "Csatolmány", "Attachment"),
    }
}

/// The empty form.
pub async fn show(State(state): State<AppState>, Query(query): Query<LangQuery>) -> Response {
    let language = language(query.lang.as_deref());
    respond(
        StatusCode::OK,
        form(
            state.intake.privacy_notice_url.as_deref(),
            language,
            &Submission { language, ..Submission::default() },
            &Vec::new(),
            None,
        ),
    )
}

/// A submission: the ticket's number, or the form again with what to fix.
pub async fn submit_form(State(state): State<AppState>, Query(query): Query<LangQuery>, request: Request) -> Response {
    let mut language = language(query.lang.as_deref());
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let mut filled = Submission { language, ..Submission::default() };
    let mut errors: Errors = Vec::new();
    let mut multipart = match Multipart::from_request(request, &state).await {
        Ok(multipart) => multipart,
        Err(_) => {
            let general = tr(
                language,
                "Az űrlapot nem sikerült beolvasni; kérjük, küldje el újra.",
                "The form could not be read; please send it again.",
            );
            return respond(
                StatusCode::BAD_REQUEST,
                form(state.intake.privacy_notice_url.as_deref(), language, &filled, &errors, Some(general)),
            );
        }
    };
    // The body broke off or passed the size limit: keep what was typed, say why.
    let unreadable = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::Attachment(ticket_app::attachments::AttachmentError::TooLarge {
                size: state.intake.body_max + 1,
                max: state.intake.attachments.max_bytes,
            })
        } else {
            Problem::Invalid(error.body_text())
        }
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                errors.push(("attachment", unreadable(error).text(language)));
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "attachment" {
            let file_name = field.file_name().unwrap_or("attachment").to_owned();
            match field.bytes().await {
                // No file chosen: an empty part.
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => filled.attachment = Some((file_name, bytes.to_vec())),
                Err(error) => {
                    errors.push(("attachment", unreadable(error).text(language)));
                    break;
                }
            }
            continue;
        }
        let Ok(text) = field.text().await else {
            errors.push(("message", Problem::Invalid("unreadable text".into()).text(language)));
            break;
        };
        match name.as_str() {
            "name" => filled.name = text,
            "email" => filled.email = text,
            "subject" => filled.subject = text,
            "message" => filled.message = text,
            "lang" if text == "en" => language = Language::En,
            "lang" if text == "hu" => language = Language::Hu,
            _ => {}
        }
    }
    filled.language = language;
    if !errors.is_empty() {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form(state.intake.privacy_notice_url.as_deref(), language, &filled, &errors, None),
        );
    }
    match submit(&state, client, filled.clone()).await {
        Ok((_, number)) => {
            let title = tr(language, "Köszönjük, megkaptuk bejelentését", "Thank you, we have received your report");
            respond(
                StatusCode::OK,
                page(
                    language,
                    title,
                    html! {
                        h1 { (title) }
                        div.notice role="status" {
                            p { (tr(language, "Bejelentésének száma: ", "Your report number is ")) strong id="ticket-number" { (number) } }
                            p { (tr(language,
                                "Visszaigazolást küldtünk e-mailben. Kérjük, erre a számra hivatkozzon, ha ír nekünk.",
                                "We have sent you a confirmation by e-mail. Please quote this number when you write to us.")) }
                        }
                        p { a href={"/contact?lang=" (lang_code(language))} { (tr(language, "Új bejelentés", "Another report")) } }
                    },
                ),
            )
        }
        Err(Refusal::Fields(problems)) => {
            let errors = problems.into_iter().map(|(field, problem)| (field, problem.text(language))).collect();
            respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form(state.intake.privacy_notice_url.as_deref(), language, &filled, &errors, None),
            )
        }
        Err(Refusal::RateLimited { retry_after_s }) => {
            let minutes = retry_after_s.div_ceil(60);
            let general = match language {
                Language::Hu => format!(
                    "Túl sok bejelentés érkezett innen rövid idő alatt; kérjük, próbálja újra {minutes} perc múlva."
                ),
                Language::En => format!(
                    "Too many reports have come from here in a short time; please try again in {minutes} minutes."
                ),
            };
            let mut response = respond(
                StatusCode::TOO_MANY_REQUESTS,
                form(state.intake.privacy_notice_url.as_deref(), language, &filled, &Vec::new(), Some(&general)),
            );
            if let Ok(value) = retry_after_s.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(Refusal::Unavailable(reason)) => {
            tracing::error!(%reason, "a contact form submission could not be recorded");
            let general = tr(
                language,
                "A bejelentést most nem tudtuk rögzíteni; kérjük, próbálja újra később.",
                "We could not record your report just now; please try again later.",
            );
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                form(state.intake.privacy_notice_url.as_deref(), language, &filled, &Vec::new(), Some(general)),
            )
        }
    }
}
