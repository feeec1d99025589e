//! `/survey/{token}`: the satisfaction survey (policy §7.5). No login: the link's secret
//! (sent only in the survey mail, stored only as a hash) is the key, and it works once: the
//! workflow refuses a second answer.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use ticket_app::{AppError, CommandContext};
use ticket_domain::vocabulary::{Actor, Channel, Language, MessageBody, SurveyScore, TicketId};
use ticket_domain::{DomainError, SurveyStatus, TicketCommand};

use super::{message_page, page, respond, tr};
use crate::http::AppState;

/// What the customer filled in, kept to show again with the errors.
#[derive(Debug, Default)]
struct Filled {
    score: Option<u8>,
    comment: String,
}

async fn ticket_of(state: &AppState, token: &str) -> Result<Option<(TicketId, Language, u64, SurveyStatus)>, Response> {
    let unavailable = |error: String| {
        tracing::error!(%error, "the survey page cannot read its ticket");
        message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Language::Hu,
            "Hiba / Error",
            "Próbálja újra később. / Please try again later.",
        )
    };
    let Some(ticket_id) =
        ticket_mail::outbox::survey_ticket(&state.database, token).await.map_err(|e| unavailable(e.to_string()))?
    else {
        return Ok(None);
    };
    match state.service.load(ticket_id).await {
        Ok(ticket) => Ok(ticket.state().map(|s| (ticket_id, s.language, s.number.get(), s.survey))),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(error) => Err(unavailable(error.to_string())),
    }
}

fn not_found() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        Language::Hu,
        "Ismeretlen hivatkozás / Unknown link",
        "Ez a kérdőív-hivatkozás nem érvényes. / This survey link is not valid.",
    )
}

fn already_answered(language: Language) -> Response {
    let title = tr(language, "Köszönjük, már válaszolt", "Thank you, you have already answered");
    let text = tr(
        language,
        "Erre a kérdőívre már megérkezett a válasza.",
        "We have already received your answer to this survey.",
    );
    message_page(StatusCode::CONFLICT, language, title, text)
}

fn form(language: Language, number: u64, filled: &Filled, errors: &HashMap<&'static str, String>) -> maud::Markup {
    let title = tr(language, "Elégedettségi kérdőív", "Satisfaction survey");
    page(
        language,
        title,
        html! {
            h1 { (title) }
            p { (tr(language, "Bejelentés száma: ", "Report number: ")) strong { (number) } }
            @if !errors.is_empty() {
                div.summary role="alert" { (tr(language, "Kérjük, javítsa a jelölt mezőket.", "Please correct the marked fields.")) }
            }
            form method="post" {
                fieldset aria-describedby=[errors.get("score").map(|_| "score-error")] {
                    legend { (tr(language, "Mennyire elégedett ügyintézésünkkel? (1 = egyáltalán nem, 5 = nagyon)", "How satisfied are you with how we handled it? (1 = not at all, 5 = very)")) }
                    @if let Some(error) = errors.get("score") { p.error id="score-error" { (error) } }
                    @for score in SurveyScore::MIN..=SurveyScore::MAX {
                        label style="display:inline-block;margin-right:1rem;font-weight:normal" {
                            input type="radio" name="score" value=(score) checked[filled.score == Some(score)] required;
                            " " (score)
                        }
                    }
                }
                label for="comment" { (tr(language, "Megjegyzés (nem kötelező)", "Comment (optional)")) }
                @if let Some(error) = errors.get("comment") { p.error id="comment-error" { (error) } }
                textarea id="comment" name="comment" aria-invalid=[errors.get("comment").map(|_| "true")]
                    aria-describedby=[errors.get("comment").map(|_| "comment-error")] { (filled.comment) }
                button type="submit" { (tr(language, "Küldés", "Send")) }
            }
        },
    )
}

/// The survey form.
pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match ticket_of(&state, &token).await {
        Err(response) => response,
        Ok(None) => not_found(),
        Ok(Some((_, language, _, SurveyStatus::Answered))) => already_answered(language),
        Ok(Some((_, language, number, _))) => {
            respond(StatusCode::OK, form(language, number, &Filled::default(), &HashMap::new()))
        }
    }
}

/// Records the answer (`SurveyAnswered`), or shows the form again with what to fix.
pub async fn answer(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let (ticket_id, language, number) = match ticket_of(&state, &token).await {
        Err(response) => return response,
        Ok(None) => return not_found(),
        Ok(Some((_, language, _, SurveyStatus::Answered))) => return already_answered(language),
        Ok(Some((id, language, number, _))) => (id, language, number),
    };
    let mut errors = HashMap::new();
    let score = fields.get("score").and_then(|s| s.trim().parse::<u8>().ok()).and_then(|s| SurveyScore::new(s).ok());
    if score.is_none() {
        errors.insert(
            "score",
            tr(language, "Válasszon egy értéket 1 és 5 között.", "Choose a value from 1 to 5.").to_owned(),
        );
    }
    let comment_text = fields.get("comment").map(|c| c.trim().to_owned()).unwrap_or_default();
    let comment = if comment_text.is_empty() {
        None
    } else {
        match MessageBody::parse(&comment_text) {
            Ok(comment) => Some(comment),
            Err(_) => {
                errors.insert(
                    "comment",
                    format!(
                        "{} {}",
                        tr(
                            language,
                            "A megjegyzés legfeljebb ennyi karakter lehet:",
                            "The comment may be at most this many characters:"
                        ),
                        MessageBody::CHARS_MAX
                    ),
                );
                None
            }
        }
    };
    let filled = Filled { score: score.map(|s| s.get()), comment: comment_text };
    let Some(score) = score.filter(|_| errors.is_empty()) else {
        return respond(StatusCode::UNPROCESSABLE_ENTITY, form(language, number, &filled, &errors));
    };
    let context = CommandContext::new(Actor::Customer { channel: Channel::WebForm });
    match state.service.execute(ticket_id, None, TicketCommand::AnswerSurvey { score, comment }, &context).await {
        Ok(_) => message_page(
            StatusCode::OK,
            language,
            tr(language, "Köszönjük a válaszát!", "Thank you for your answer!"),
            tr(language, "Értékelését rögzítettük.", "Your rating has been recorded."),
        ),
        Err(AppError::Refused(DomainError::SurveyAlreadyAnswered)) => already_answered(language),
        Err(error) => {
            tracing::error!(%error, "a survey answer could not be recorded");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                language,
                tr(language, "Hiba", "Error"),
                tr(
                    language,
                    "A választ most nem tudtuk rögzíteni; kérjük, próbálja újra később.",
                    "We could not record your answer just now; please try again later.",
                ),
            )
        }
    }
}
