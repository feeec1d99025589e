//! The drill-down of the quality dashboard (`/console/insights/{figure}/tickets`): the list of
//! what one value of a figure counts.
//!
//! A value is named by its figure, its row label and its column (as the table shows them), and
//! the dashboard's own query. The list is read from the same facts the value was counted from:
//! the day statistics' marks (`stats_marks`, the same fold as `stats_days`, with the same
//! "at that moment" filter) or the SLA clocks as the SLA report counts them
//! (`sla_clocks::counted_clocks`). So the list holds exactly what the value counts; tickets
//! under restricted processing are left out for everyone but auditors, and the page says how
//! many.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use maud::html;
use ticket_domain::vocabulary::{Language, Role};
use ticket_projections::sla_clocks::{CountedClock, counted_clocks};
use ticket_projections::statistics::facts::COMPLAINT;
use ticket_projections::statistics::marks::{self, Mark};

use super::insights::{Asked, Detail, Source, figures};
use super::labels;
use super::{PageData, Section, StaffUser, layout, local_time, nav_counts, respond};
use crate::http::AppState;
use crate::pages::tr;

/// Rows per page of a list.
pub const PAGE_ROWS: usize = 100;

/// One counted fact: the ticket it is about, when, and what the list says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub ticket_id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub note: String,
    /// A met SLA clock: whether in time.
    pub in_time: Option<bool>,
}

fn days(day: NaiveDate) -> i32 {
    day.num_days_from_ce()
}

/// Everything `source` counts for the dashboard's query `asked`, in the order it happened.
pub async fn items(state: &AppState, asked: &Asked, source: &Source, l: Language) -> Result<Vec<Item>, String> {
    match source {
        Source::Marks { kind, from, to, division, detail, sent, complaints } => {
            let filter = asked.stats_filter();
            let rows = marks::marks(&state.database, *kind, days(*from), days(*to)).await.map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .filter(|m| m.admitted_by(&filter))
                .filter(|m| division.as_ref().is_none_or(|d| m.division.as_deref() == Some(d.as_str())))
                .filter(|m| match detail {
                    Detail::Any => true,
                    Detail::Is(wanted) => m.detail.as_deref() == Some(wanted.as_str()),
                    Detail::NoneOf(top) => m.detail.as_ref().is_none_or(|d| !top.contains(d)),
                })
                .filter(|m| sent.is_none_or(|(a, b)| m.sent_day.is_some_and(|d| (days(a)..=days(b)).contains(&d))))
                .filter(|m| !complaints || m.dims.category == COMPLAINT)
                .map(|m| {
                    let note = match kind {
                        Mark::Escalated | Mark::EscalationAnswered => m.division.clone().unwrap_or_default(),
                        Mark::RootCause => m.detail.clone().unwrap_or_default(),
                        Mark::SurveyAnswered => format!("{} / 5", m.detail.as_deref().unwrap_or("?")),
                        _ => String::new(),
                    };
                    Item { ticket_id: m.ticket_id, at: m.at, note, in_time: None }
                })
                .collect())
        }
        Source::Clocks { target, bucket, band } => {
            let (start, end) = asked.bounds()?;
            let registry = state.registry.current().await.map_err(|e| e.to_string())?;
            let clocks =
                counted_clocks(&state.database, &registry, &state.calendar, start, end, None, &asked.sla_filter())
                    .await
                    .map_err(|e| e.to_string())?;
            let mut items: Vec<Item> = clocks
                .into_iter()
                .filter(|c| c.target == *target)
                .filter_map(|c| {
                    let met_at = c.met_at?;
                    if bucket.is_some_and(|b| CountedClock::bucket_of(met_at, asked.period) != b) {
                        return None;
                    }
                    if band.is_some_and(|b| c.band() != Some(b)) {
                        return None;
                    }
                    let hours = c.business_hours.map(|h| format!("{h:.2}")).unwrap_or_default();
                    let when = if c.in_time { tr(l, "időben", "in time") } else { tr(l, "késve", "late") };
                    Some(Item {
                        ticket_id: c.ticket_id,
                        at: met_at,
                        note: format!("{when} · {hours} {}", tr(l, "munkaóra", "business hours")),
                        in_time: Some(c.in_time),
                    })
                })
                .collect();
            items.sort_by_key(|i| (i.at, i.ticket_id));
            Ok(items)
        }
    }
}

async fn refuse(state: &AppState, user: &StaffUser, status: StatusCode, title: &str, text: &str) -> Response {
    super::message(state, user, status, title, text).await
}

/// The database did not answer: logged, and a 503 page.
async fn unavailable(state: &AppState, user: &StaffUser, error: String) -> Response {
    tracing::error!(%error, "a dashboard list could not read its facts");
    let l = user.language;
    refuse(
        state,
        user,
        StatusCode::SERVICE_UNAVAILABLE,
        tr(l, "A lista most nem érhető el", "The list is unavailable"),
        tr(l, "Az adatbázis nem válaszolt; próbálja újra.", "The database did not answer; try again."),
    )
    .await
}

/// `GET /console/insights/{figure}/tickets?…&row=…&column=…`.
pub async fn page(
    State(state): State<AppState>,
    user: StaffUser,
    Path(figure_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let l = user.language;
    if !super::insights::allowed(&user) {
        return super::insights::forbidden(&state, &user).await;
    }
    let today = state.service.clock().now().with_timezone(&chrono_tz::Europe::Budapest).date_naive();
    let asked = Asked::parse(&params, today);
    let figures = match figures(&state, &asked, l).await {
        Ok(f) => f,
        Err(error) => {
            return unavailable(&state, &user, error).await;
        }
    };
    let row_label = params.get("row").map(String::as_str).unwrap_or("");
    let column_name = params.get("column").map(String::as_str).unwrap_or("");
    let found = figures.iter().find(|f| f.id == figure_id).and_then(|figure| {
        let at = params.get("i").and_then(|i| i.parse::<usize>().ok());
        let row = at
            .filter(|i| figure.rows.get(*i).is_some_and(|(label, _)| label == row_label))
            .or_else(|| figure.rows.iter().position(|(label, _)| label == row_label))?;
        let column = figure.columns.iter().skip(1).position(|c| c == column_name)?;
        let source = figure.drills.get(&(row, column))?;
        Some((figure, row, column, source))
    });
    let Some((figure, row, column, source)) = found else {
        return refuse(
            &state,
            &user,
            StatusCode::NOT_FOUND,
            tr(l, "Nincs ilyen érték", "No such value"),
            tr(
                l,
                "A kimutatás ezen ábrájának nincs ilyen sora vagy oszlopa, vagy mögötte nincs lista.",
                "This figure of the dashboard has no such row or column, or no list lies behind it.",
            ),
        )
        .await;
    };
    let value = figure.rows[row].1.get(column).copied().flatten();
    let all = match items(&state, &asked, source, l).await {
        Ok(items) => items,
        Err(error) => {
            return unavailable(&state, &user, error).await;
        }
    };
    let counted = all.len();
    let in_time = all.iter().filter(|i| i.in_time == Some(true)).count();
    let clocks = matches!(source, Source::Clocks { .. });
    // Restricted processing hides a ticket from these lists, except for auditors.
    let restricted = if user.caller.role == Role::Auditor {
        Default::default()
    } else {
        match ticket_projections::queues::restricted(&state.database).await {
            Ok(set) => set,
            Err(error) => {
                return unavailable(&state, &user, error.to_string()).await;
            }
        }
    };
    let shown: Vec<&Item> = all.iter().filter(|i| !restricted.contains(&i.ticket_id)).collect();
    let hidden = counted - shown.len();
    let offset = params.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0).min(shown.len());
    let page: Vec<&Item> = shown.iter().skip(offset).take(PAGE_ROWS).copied().collect();
    let ids: Vec<uuid::Uuid> = page.iter().map(|i| i.ticket_id).collect();
    let briefs: HashMap<uuid::Uuid, ticket_projections::queues::TicketBrief> =
        match ticket_projections::queues::briefs(&state.database, &ids).await {
            Ok(found) => found.into_iter().map(|b| (b.ticket_id, b)).collect(),
            Err(error) => {
                tracing::error!(%error, "a dashboard list could not read its tickets' briefs");
                HashMap::new()
            }
        };
    let link = |offset: usize| {
        let mut pairs: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k.as_str() != "offset").map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.sort();
        pairs.push(("offset".into(), offset.to_string()));
        format!("/console/insights/{figure_id}/tickets?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    };
    let back =
        format!("/console/insights?{}#figure-{}", asked.query_without(&["row", "i", "column", "offset"]), figure.id);
    // The lists of the day statistics come from `stats_marks`, which a database made before it
    // fills from the log on its first start: until then a list may be short, and says so.
    let catching_up = matches!(source, Source::Marks { .. }) && {
        let marks = ticket_projections::checkpoint_of(&state.database, marks::StatsMarks::NAME).await;
        let stats = ticket_projections::checkpoint_of(&state.database, "statistics").await;
        matches!((marks, stats), (Ok(m), Ok(s)) if m < s)
    };
    let title = format!("{} — {row_label} · {column_name}", figure.title);
    let counts = nav_counts(&state, &user).await;
    let content = html! {
        h1 { (figure.title) }
        p #drill-what { (row_label) " · " code { (column_name) } " · " (asked.from) " – " (asked.to) }
        p #drill-count data-count=(counted) data-shown=(shown.len()) data-hidden=(hidden) data-in-time=[clocks.then_some(in_time)] data-value=(super::insights::number(value)) {
            @if clocks {
                (counted) " " (tr(l, "teljesült vállalás", "clocks met")) ", " (in_time) " " (tr(l, "időben", "in time")) ". "
            } @else {
                (counted) " " (tr(l, "számolt tény", "facts counted")) ". "
            }
            (tr(l, "Az ábra értéke:", "The figure's value:")) " " (super::insights::number(value)) "."
            @if hidden > 0 {
                " " (hidden) " " (tr(l, "korlátozott kezelésű jegy nem látszik a listában.", "tickets under restricted processing are not listed."))
            }
        }
        @if catching_up {
            p.alert #drill-catching-up role="status" { (tr(l, "A lista még épül (a jegyek tényeit most olvassa be a naplóból): lehet, hogy még nem teljes.", "The list is still being built (the tickets' facts are being read from the log): it may not be complete yet.")) }
        }
        p { a href=(back) { (tr(l, "Vissza a kimutatáshoz", "Back to the dashboard")) } }
        table.plain #drill-list {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (tr(l, "Tárgy", "Subject")) }
                th scope="col" { (tr(l, "Állapot most", "Status now")) }
                th scope="col" { (tr(l, "Kategória most", "Category now")) }
                th scope="col" { (tr(l, "Mikor", "When")) }
                th scope="col" { (tr(l, "Részlet", "Detail")) }
            } }
            tbody {
                @for item in &page {
                    @let brief = briefs.get(&item.ticket_id);
                    tr data-ticket=(item.ticket_id) data-in-time=[item.in_time] {
                        td { @match brief {
                            Some(b) => a href={"/console/tickets/" (b.number)} { (b.number) },
                            None => "—",
                        } }
                        td { (brief.map(|b| b.subject.as_str()).unwrap_or("")) }
                        td { (brief.map(|b| labels::word(labels::STATUSES, &b.status, l)).unwrap_or("")) }
                        td { (brief.and_then(|b| b.category.as_deref()).map(|c| labels::word(labels::CATEGORIES, c, l)).unwrap_or("—")) }
                        td { time datetime=(item.at.to_rfc3339()) { (local_time(item.at)) } }
                        td { (item.note) }
                    }
                }
            }
        }
        nav.pager aria-label=(tr(l, "Lapozás", "Pages")) {
            @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(PAGE_ROWS))) { (tr(l, "Előző", "Previous")) } " " }
            span { (offset + usize::from(!page.is_empty())) "–" (offset + page.len()) " / " (shown.len()) }
            @if offset + PAGE_ROWS < shown.len() { " " a rel="next" #drill-next href=(link(offset + PAGE_ROWS)) { (tr(l, "Következő", "Next")) } }
        }
    };
    respond(StatusCode::OK, layout(&user, &title, &Section::Insights, &counts, PageData::default(), content))
}
