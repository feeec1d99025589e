//! The public web pages: plain HTML forms that work without JavaScript, in Hungarian (the
//! default) and English, with every field labelled and each error shown next to its field.
//!
//! - [`contact`]: the public contact form (`/contact`).
//! - [`survey`]: the satisfaction survey a closed ticket's mail links to (`/survey/{token}`).

pub mod contact;
pub mod survey;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use ticket_domain::vocabulary::Language;

/// The page's language: `?lang=en` for English; Hungarian otherwise (the customer's default,
/// whatever the browser says: the page links to the other language).
pub fn language(query: Option<&str>) -> Language {
    match query {
        Some("en") => Language::En,
        _ => Language::Hu,
    }
}

pub fn lang_code(language: Language) -> &'static str {
    match language {
        Language::Hu => "hu",
        Language::En => "en",
    }
}

/// Picks the Hungarian or the English text.
pub fn tr(language: Language, hu: &'static str, en: &'static str) -> &'static str {
    match language {
        Language::Hu => hu,
        Language::En => en,
    }
}

/// A whole page.
pub fn page(language: Language, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang_code(language)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(crate::console::assets::url("public.css"));
            }
            body { main { (body) } }
        }
    }
}

/// An HTML answer with a status; never cached (it may show what the customer typed).
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page with one message (not found, thank you, …).
pub fn message_page(status: StatusCode, language: Language, title: &str, text: &str) -> Response {
    respond(status, page(language, title, html! { h1 { (title) } p { (text) } }))
}
