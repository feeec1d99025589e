//! Reports over the `statistics` read model: a period of days, cut into day, week, month or
//! quarter buckets, optionally grouped by one dimension. Pure over the loaded days; every
//! figure is defined in `projections/STATISTICS.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use event_store::{Database, StoreError};
use serde::{Deserialize, Serialize};

use super::facts::{CATEGORIES, CHANNELS, COMPLAINT, Count, Day, DayFacts, Dims, Measure, SERVICE_AREAS};

/// The bucket size of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
    Month,
    Quarter,
}

/// What the rows of a report are grouped by, besides the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Category,
    ServiceArea,
    Channel,
    Division,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// The first day of the report.
    pub from: NaiveDate,
    /// The last day of the report (inclusive).
    pub to: NaiveDate,
    pub period: Period,
    pub by: Option<Dimension>,
}

/// Only the facts of tickets that were, at the moment of each fact, in these dimensions (each
/// `None` lets everything through). The same "at that moment" rule as `by`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A [`super::facts::category_code`] (0: not yet classified).
    pub category: Option<u8>,
    /// A [`super::facts::service_area_code`] (0: not yet known).
    pub service_area: Option<u8>,
    /// A [`super::facts::channel_code`].
    pub channel: Option<u8>,
    /// The division holding the ticket (`""`: none).
    pub division: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn admits(&self, dims: &Dims, facts: &DayFacts) -> bool {
        let division = match dims.division {
            0 => None,
            index => Some(facts.string(index - 1)),
        };
        self.admits_named(dims, division)
    }

    /// Whether a fact of these dimensions, held by `division` then, passes (`dims.division`
    /// is not read: the name is given).
    pub fn admits_named(&self, dims: &Dims, division: Option<&str>) -> bool {
        self.category.is_none_or(|c| c == dims.category)
            && self.service_area.is_none_or(|a| a == dims.service_area)
            && self.channel.is_none_or(|c| c == dims.channel)
            && self.division.as_deref().is_none_or(|wanted| division.unwrap_or("") == wanted)
    }
}

/// The longest report, in days (ten years): bounds the work one request can ask for.
pub const REPORT_DAYS_MAX: i64 = 3_700;

/// Median, 90th percentile and mean of durations, in hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: u64,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub mean: Option<f64>,
}

/// One row of the summary: a bucket of the period and, when grouped, one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SummaryRow {
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// The group's value when the report is grouped (`unclassified` / `none` when not set).
    pub group: Option<String>,
    pub received: i64,
    pub resolved: i64,
    pub closed: i64,
    pub escalated: i64,
    pub reopened: i64,
    pub out_of_scope: i64,
    pub open_at_end: i64,
    pub acknowledge_count: u64,
    pub acknowledge_hours_median: Option<f64>,
    pub acknowledge_hours_p90: Option<f64>,
    pub acknowledge_hours_mean: Option<f64>,
    pub first_contact_count: u64,
    pub first_contact_hours_median: Option<f64>,
    pub first_contact_hours_p90: Option<f64>,
    pub first_contact_hours_mean: Option<f64>,
    pub resolution_count: u64,
    pub resolution_hours_median: Option<f64>,
    pub resolution_hours_p90: Option<f64>,
    pub resolution_hours_mean: Option<f64>,
    pub surveys_sent: i64,
    pub surveys_answered: i64,
    pub survey_response_rate: Option<f64>,
    pub survey_mean_score: Option<f64>,
    pub score_1: i64,
    pub score_2: i64,
    pub score_3: i64,
    pub score_4: i64,
    pub score_5: i64,
    pub complaints_registered: i64,
    pub complaints_reclassified_away: i64,
    pub complaints_resolved: i64,
    pub complaints_closed: i64,
    pub complaints_escalated: i64,
    pub complaints_reopened: i64,
    pub complaints_out_of_scope: i64,
    pub complaints_open_at_end: i64,
    pub complaint_resolution_hours_median: Option<f64>,
    pub complaint_resolution_hours_p90: Option<f64>,
    pub complaint_resolution_hours_mean: Option<f64>,
}

/// Escalations to one division in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DivisionRow {
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub division: String,
    pub escalations: i64,
    pub answers: i64,
    pub answer_hours_median: Option<f64>,
    pub answer_hours_p90: Option<f64>,
    pub answer_hours_mean: Option<f64>,
    pub resolved_after_escalation: i64,
    /// All resolutions in the bucket, of every ticket.
    pub resolutions: i64,
    pub escalation_rate: Option<f64>,
}

/// The root cause of resolved complaints in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootCauseRow {
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub root_cause: String,
    pub complaints_resolved: i64,
    /// Of all complaint resolutions in the bucket.
    pub share: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub summary: Vec<SummaryRow>,
    pub divisions: Vec<DivisionRow>,
    pub root_causes: Vec<RootCauseRow>,
}

/// Every stored day, in order.
pub async fn load(database: &Database) -> Result<Vec<(Day, Arc<DayFacts>)>, StoreError> {
    let rows: Vec<(i32, Vec<u8>)> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as("SELECT day, facts FROM stats_days ORDER BY day").fetch_all(read).await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT day, facts FROM stats_days ORDER BY day").fetch_all(pool).await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    rows.into_iter().map(|(day, bytes)| Ok((day, Arc::new(decode(day, &bytes)?)))).collect()
}

fn decode(day: Day, bytes: &[u8]) -> Result<DayFacts, StoreError> {
    DayFacts::decode(bytes)
        .map_err(|e| StoreError::Database(format!("the statistics of day {day} are unreadable: {e}")))
}

/// The stored days, decoded, kept between reports: each report reads only the days' revisions
/// and fetches again just the days that changed (usually today).
#[derive(Debug, Default)]
pub struct DayCache {
    days: tokio::sync::Mutex<BTreeMap<Day, (i64, Arc<DayFacts>)>>,
}

/// More changed days than this are fetched with one query for all days.
const FETCH_ONE_BY_ONE_MAX: usize = 16;

impl DayCache {
    /// Every stored day, in order, as of now.
    pub async fn days(&self, database: &Database) -> Result<Vec<(Day, Arc<DayFacts>)>, StoreError> {
        let mut cache = self.days.lock().await;
        let sql = "SELECT day, revision FROM stats_days";
        let revisions: Vec<(i32, i64)> = match database {
            Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await,
            Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .map_err(StoreError::from_sqlx)?;
        let stored: HashMap<Day, i64> = revisions.iter().copied().collect();
        cache.retain(|day, _| stored.contains_key(day));
        let stale: Vec<Day> = revisions
            .iter()
            .filter(|(day, revision)| cache.get(day).map(|c| c.0) != Some(*revision))
            .map(|r| r.0)
            .collect();
        let fetched: Vec<(i32, i64, Vec<u8>)> = if stale.len() > FETCH_ONE_BY_ONE_MAX {
            let sql = "SELECT day, revision, facts FROM stats_days";
            match database {
                Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await,
                Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            }
            .map_err(StoreError::from_sqlx)?
        } else {
            let mut rows = Vec::new();
            for day in &stale {
                let row: Option<(i32, i64, Vec<u8>)> = match database {
                    Database::Sqlite { read, .. } => {
                        sqlx::query_as("SELECT day, revision, facts FROM stats_days WHERE day = ?1")
                            .bind(day)
                            .fetch_optional(read)
                            .await
                    }
                    Database::Postgres(pool) => {
                        sqlx::query_as("SELECT day, revision, facts FROM stats_days WHERE day = $1")
                            .bind(day)
                            .fetch_optional(pool)
                            .await
                    }
                }
                .map_err(StoreError::from_sqlx)?;
                rows.extend(row);
            }
            rows
        };
        for (day, revision, bytes) in fetched {
            if cache.get(&day).map(|c| c.0) != Some(revision) {
                cache.insert(day, (revision, Arc::new(decode(day, &bytes)?)));
            }
        }
        Ok(cache.iter().map(|(day, (_, facts))| (*day, facts.clone())).collect())
    }
}

/// Loads the read model and computes the report.
pub async fn run(database: &Database, query: &StatsQuery) -> Result<Report, StoreError> {
    Ok(report(&load(database).await?, query))
}

/// The first day of the bucket `date` falls in.
pub fn bucket_start(date: NaiveDate, period: Period) -> NaiveDate {
    match period {
        Period::Day => date,
        Period::Week => date - Days::new(date.weekday().num_days_from_monday() as u64),
        Period::Month => date.with_day(1).expect("the first of a month"),
        Period::Quarter => {
            NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1).expect("the first of a quarter")
        }
    }
}

/// The buckets of a report, as (first day, last day), clipped to the report's days.
fn buckets(query: &StatsQuery) -> Vec<(NaiveDate, NaiveDate)> {
    let mut buckets: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut day = query.from;
    while day <= query.to {
        let start = bucket_start(day, query.period);
        match buckets.last_mut() {
            Some(last) if bucket_start(last.0, query.period) == start => last.1 = day,
            _ => buckets.push((day, day)),
        }
        day = day + Days::new(1);
    }
    buckets
}

/// The API names of a vocabulary's values, in code order.
fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
        .collect()
}

struct Names {
    categories: Vec<String>,
    service_areas: Vec<String>,
    channels: Vec<String>,
}

impl Names {
    fn new() -> Self {
        Self { categories: names(&CATEGORIES), service_areas: names(&SERVICE_AREAS), channels: names(&CHANNELS) }
    }
}

fn code_name(names: &[String], code: u8, unset: &str) -> String {
    code.checked_sub(1).and_then(|i| names.get(i as usize)).map_or_else(|| unset.to_owned(), Clone::clone)
}

fn group_name(names: &Names, by: Option<Dimension>, dims: Dims, facts: &DayFacts) -> String {
    match by {
        None => String::new(),
        Some(Dimension::Category) => code_name(&names.categories, dims.category, "unclassified"),
        Some(Dimension::ServiceArea) => code_name(&names.service_areas, dims.service_area, "unclassified"),
        Some(Dimension::Channel) => code_name(&names.channels, dims.channel + 1, "unknown"),
        Some(Dimension::Division) => match dims.division {
            0 => "none".to_owned(),
            index => facts.string(index - 1).to_owned(),
        },
    }
}

/// Accumulators by bucket and group number: plain indexing, no hashing per fact.
struct Table<T> {
    rows: Vec<Vec<Option<T>>>,
}

impl<T: Default> Table<T> {
    fn new(buckets: usize) -> Self {
        Self { rows: (0..buckets).map(|_| Vec::new()).collect() }
    }

    fn at(&mut self, bucket: usize, group: usize) -> &mut T {
        let row = &mut self.rows[bucket];
        if row.len() <= group {
            row.resize_with(group + 1, || None);
        }
        row[group].get_or_insert_with(T::default)
    }

    fn take(&mut self, bucket: usize, group: usize) -> Option<T> {
        self.rows[bucket].get_mut(group).and_then(Option::take)
    }

    /// Every (bucket, group) that holds something.
    fn keys(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.rows
            .iter()
            .enumerate()
            .flat_map(|(b, row)| row.iter().enumerate().filter(|(_, cell)| cell.is_some()).map(move |(g, _)| (b, g)))
    }

    fn into_cells(self) -> impl Iterator<Item = (usize, usize, T)> {
        self.rows
            .into_iter()
            .enumerate()
            .flat_map(|(b, row)| row.into_iter().enumerate().filter_map(move |(g, cell)| cell.map(|cell| (b, g, cell))))
    }
}

/// Numbers the groups of a report as they are met; remembers each day's dimensions' group.
struct Groups<'n> {
    names: &'n Names,
    by: Option<Dimension>,
    list: Vec<String>,
    index: HashMap<String, usize>,
    today: rustc_hash::FxHashMap<Dims, usize>,
}

impl<'n> Groups<'n> {
    fn new(names: &'n Names, by: Option<Dimension>) -> Self {
        Self { names, by, list: Vec::new(), index: HashMap::new(), today: rustc_hash::FxHashMap::default() }
    }

    /// A new day: its division numbers mean other strings (only grouping by division cares).
    fn new_day(&mut self) {
        if self.by == Some(Dimension::Division) {
            self.today.clear();
        }
    }

    fn of(&mut self, dims: Dims, facts: &DayFacts) -> usize {
        // Only the grouped-by dimension matters: one cache entry for everything else.
        let dims = match self.by {
            None => Dims::default(),
            Some(Dimension::Category) => Dims { category: dims.category, ..Dims::default() },
            Some(Dimension::ServiceArea) => Dims { service_area: dims.service_area, ..Dims::default() },
            Some(Dimension::Channel) => Dims { channel: dims.channel, ..Dims::default() },
            Some(Dimension::Division) => Dims { division: dims.division, ..Dims::default() },
        };
        if let Some(index) = self.today.get(&dims) {
            return *index;
        }
        let name = group_name(self.names, self.by, dims, facts);
        let next = self.list.len();
        let index = *self.index.entry(name.clone()).or_insert(next);
        if index == next {
            self.list.push(name);
        }
        self.today.insert(dims, index);
        index
    }

    fn name(&self, index: usize) -> &str {
        &self.list[index]
    }
}

#[derive(Debug, Default)]
struct Acc {
    received: i64,
    resolved: i64,
    closed: i64,
    escalated: i64,
    reopened: i64,
    out_of_scope: i64,
    open_delta: i64,
    acknowledge: Vec<u32>,
    first_contact: Vec<u32>,
    resolution: Vec<u32>,
    surveys_sent: i64,
    surveys_answered: i64,
    /// Answers (given any time) to the surveys sent in this bucket.
    answers_to_sent: i64,
    scores: [i64; 5],
    complaints_registered: i64,
    complaints_reclassified_away: i64,
    complaints_resolved: i64,
    complaints_closed: i64,
    complaints_escalated: i64,
    complaints_reopened: i64,
    complaints_out_of_scope: i64,
    complaints_open_delta: i64,
    complaint_resolution: Vec<u32>,
}

#[derive(Debug, Default)]
struct DivisionAcc {
    escalations: i64,
    answers: i64,
    answer: Vec<u32>,
    resolved_after_escalation: i64,
}

/// Median (the mean of the two middle values of an even count), 90th percentile (nearest
/// rank: the smallest value at least 90% of the values do not exceed) and mean, in hours.
pub fn durations(values: &mut [u32]) -> Durations {
    if values.is_empty() {
        return Durations::default();
    }
    values.sort_unstable();
    let n = values.len();
    let median =
        if n % 2 == 1 { values[n / 2] as f64 } else { (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0 };
    let rank = (n * 9).div_ceil(10).max(1);
    let p90 = values[rank - 1] as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    Durations { count: n as u64, median: Some(hours(median)), p90: Some(hours(p90)), mean: Some(hours(mean)) }
}

fn hours(seconds: f64) -> f64 {
    (seconds / 3600.0 * 1000.0).round() / 1000.0
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// Computes a report from the stored days (all of them: the backlog at a period's end counts
/// tickets opened before it, and a period's survey response rate counts answers given after).
pub fn report(days: &[(Day, Arc<DayFacts>)], query: &StatsQuery) -> Report {
    report_filtered(days, query, &Filter::default())
}

/// [`report`] over the facts `filter` admits only.
pub fn report_filtered(days: &[(Day, Arc<DayFacts>)], query: &StatsQuery, filter: &Filter) -> Report {
    let all = filter.is_empty();
    let others = Filter { division: None, ..filter.clone() };
    let buckets = buckets(query);
    let from: Day = query.from.num_days_from_ce();
    let to: Day = query.to.num_days_from_ce();
    let mut bucket_of_day: Vec<usize> = Vec::with_capacity((to - from + 1).max(0) as usize);
    for (index, (start, end)) in buckets.iter().enumerate() {
        for _ in start.num_days_from_ce()..=end.num_days_from_ce() {
            bucket_of_day.push(index);
        }
    }
    let bucket = |day: Day| (from..=to).contains(&day).then(|| bucket_of_day[(day - from) as usize]);

    let names = Names::new();
    let mut groups = Groups::new(&names, query.by);
    let mut division_groups = Groups::new(&names, Some(Dimension::Division));
    let mut baseline: HashMap<usize, (i64, i64)> = HashMap::new();
    let mut accs: Table<Acc> = Table::new(buckets.len());
    let mut divisions: Table<DivisionAcc> = Table::new(buckets.len());
    let mut root_causes: BTreeMap<(usize, String), i64> = BTreeMap::new();
    let mut resolutions = vec![0i64; buckets.len()];
    let mut complaint_resolutions = vec![0i64; buckets.len()];

    for (day, facts) in days {
        groups.new_day();
        division_groups.new_day();
        let in_range = bucket(*day);
        if *day < from {
            for (count, dims, n) in &facts.counts {
                if *count == Count::Open && (all || filter.admits(dims, facts)) {
                    let entry = baseline.entry(groups.of(*dims, facts)).or_default();
                    entry.0 += n;
                    if dims.category == COMPLAINT {
                        entry.1 += n;
                    }
                }
            }
            continue;
        }
        for (count, dims, n) in &facts.counts {
            if !all && !filter.admits(dims, facts) {
                // The escalation rate's denominator is every resolution (within the filter's
                // other dimensions): no division holds a ticket when it is resolved.
                if *count == Count::Resolved
                    && filter.division.is_some()
                    && others.admits(dims, facts)
                    && let Some(b) = in_range
                {
                    resolutions[b] += *n;
                }
                continue;
            }
            let n = *n;
            let complaint = dims.category == COMPLAINT;
            // Answers count towards the response rate of the bucket their survey was sent in.
            if let Count::SurveyAnswered { sent_day, .. } = count
                && let Some(sent_bucket) = bucket(*sent_day)
            {
                accs.at(sent_bucket, groups.of(*dims, facts)).answers_to_sent += n;
            }
            let Some(b) = in_range else { continue };
            if let Count::RootCause(cause) = count {
                if complaint {
                    *root_causes.entry((b, facts.string(*cause).to_owned())).or_default() += n;
                }
                continue;
            }
            match count {
                Count::Escalated => divisions.at(b, division_groups.of(*dims, facts)).escalations += n,
                Count::EscalationAnswered => {
                    divisions.at(b, division_groups.of(*dims, facts)).answers += n;
                    continue;
                }
                Count::ResolvedAfterEscalation => {
                    divisions.at(b, division_groups.of(*dims, facts)).resolved_after_escalation += n;
                    continue;
                }
                Count::Resolved => {
                    resolutions[b] += n;
                    if complaint {
                        complaint_resolutions[b] += n;
                    }
                }
                _ => {}
            }
            let acc = accs.at(b, groups.of(*dims, facts));
            match count {
                Count::Received => acc.received += n,
                Count::Resolved => {
                    acc.resolved += n;
                    if complaint {
                        acc.complaints_resolved += n;
                    }
                }
                Count::Closed => {
                    acc.closed += n;
                    if complaint {
                        acc.complaints_closed += n;
                    }
                }
                Count::Escalated => {
                    acc.escalated += n;
                    if complaint {
                        acc.complaints_escalated += n;
                    }
                }
                Count::Reopened => {
                    acc.reopened += n;
                    if complaint {
                        acc.complaints_reopened += n;
                    }
                }
                Count::OutOfScope => {
                    acc.out_of_scope += n;
                    if complaint {
                        acc.complaints_out_of_scope += n;
                    }
                }
                Count::BecameComplaint => acc.complaints_registered += n,
                Count::CeasedComplaint => acc.complaints_reclassified_away += n,
                Count::Open => {
                    acc.open_delta += n;
                    if complaint {
                        acc.complaints_open_delta += n;
                    }
                }
                Count::SurveySent => acc.surveys_sent += n,
                Count::SurveyAnswered { score, .. } => {
                    acc.surveys_answered += n;
                    if let Some(slot) = (*score as usize).checked_sub(1).and_then(|i| acc.scores.get_mut(i)) {
                        *slot += n;
                    }
                }
                Count::EscalationAnswered | Count::ResolvedAfterEscalation | Count::RootCause(_) => {}
            }
        }
        let Some(b) = in_range else { continue };
        for (measure, dims, values) in &facts.durations {
            if !all && !filter.admits(dims, facts) {
                continue;
            }
            if *measure == Measure::EscalationAnswer {
                let division = division_groups.of(*dims, facts);
                divisions.at(b, division).answer.extend_from_slice(values);
                continue;
            }
            let acc = accs.at(b, groups.of(*dims, facts));
            match measure {
                Measure::ToAcknowledge => acc.acknowledge.extend_from_slice(values),
                Measure::ToFirstContact => acc.first_contact.extend_from_slice(values),
                Measure::ToResolution => {
                    acc.resolution.extend_from_slice(values);
                    if dims.category == COMPLAINT {
                        acc.complaint_resolution.extend_from_slice(values);
                    }
                }
                Measure::EscalationAnswer => {}
            }
        }
    }

    // The groups of the rows: every group seen in the period or open before it.
    let mut row_groups: BTreeSet<(String, usize)> = match query.by {
        None => BTreeSet::new(),
        Some(_) => baseline
            .keys()
            .copied()
            .chain(accs.keys().map(|(_, g)| g))
            .map(|g| (groups.name(g).to_owned(), g))
            .collect(),
    };
    if query.by.is_none() {
        // One group, whatever the index it got (none when nothing happened at all).
        let index = groups.list.iter().position(String::is_empty).unwrap_or(usize::MAX);
        row_groups.insert((String::new(), index));
    }
    let mut summary = Vec::new();
    for (group, index) in &row_groups {
        let (mut open, mut complaints_open) = baseline.get(index).copied().unwrap_or_default();
        for (b, (start, end)) in buckets.iter().enumerate() {
            let mut acc = if *index == usize::MAX { None } else { accs.take(b, *index) };
            if let Some(acc) = &acc {
                open += acc.open_delta;
                complaints_open += acc.complaints_open_delta;
            }
            if acc.is_none() && open == 0 && complaints_open == 0 && query.by.is_some() {
                continue;
            }
            let acc = acc.get_or_insert_with(Acc::default);
            let acknowledge = durations(&mut acc.acknowledge);
            let first_contact = durations(&mut acc.first_contact);
            let resolution = durations(&mut acc.resolution);
            let complaint_resolution = durations(&mut acc.complaint_resolution);
            let answered: i64 = acc.scores.iter().sum();
            let score_total: i64 = acc.scores.iter().enumerate().map(|(i, n)| (i as i64 + 1) * n).sum();
            summary.push(SummaryRow {
                period_start: *start,
                period_end: *end,
                group: query.by.map(|_| group.clone()),
                received: acc.received,
                resolved: acc.resolved,
                closed: acc.closed,
                escalated: acc.escalated,
                reopened: acc.reopened,
                out_of_scope: acc.out_of_scope,
                open_at_end: open,
                acknowledge_count: acknowledge.count,
                acknowledge_hours_median: acknowledge.median,
                acknowledge_hours_p90: acknowledge.p90,
                acknowledge_hours_mean: acknowledge.mean,
                first_contact_count: first_contact.count,
                first_contact_hours_median: first_contact.median,
                first_contact_hours_p90: first_contact.p90,
                first_contact_hours_mean: first_contact.mean,
                resolution_count: resolution.count,
                resolution_hours_median: resolution.median,
                resolution_hours_p90: resolution.p90,
                resolution_hours_mean: resolution.mean,
                surveys_sent: acc.surveys_sent,
                surveys_answered: acc.surveys_answered,
                survey_response_rate: ratio(acc.answers_to_sent, acc.surveys_sent),
                survey_mean_score: (answered > 0)
                    .then(|| (score_total as f64 / answered as f64 * 100.0).round() / 100.0),
                score_1: acc.scores[0],
                score_2: acc.scores[1],
                score_3: acc.scores[2],
                score_4: acc.scores[3],
                score_5: acc.scores[4],
                complaints_registered: acc.complaints_registered,
                complaints_reclassified_away: acc.complaints_reclassified_away,
                complaints_resolved: acc.complaints_resolved,
                complaints_closed: acc.complaints_closed,
                complaints_escalated: acc.complaints_escalated,
                complaints_reopened: acc.complaints_reopened,
                complaints_out_of_scope: acc.complaints_out_of_scope,
                complaints_open_at_end: complaints_open,
                complaint_resolution_hours_median: complaint_resolution.median,
                complaint_resolution_hours_p90: complaint_resolution.p90,
                complaint_resolution_hours_mean: complaint_resolution.mean,
            });
        }
    }
    summary.sort_by(|a, b| (a.period_start, &a.group).cmp(&(b.period_start, &b.group)));

    let mut divisions: Vec<((usize, String), DivisionAcc)> =
        divisions.into_cells().map(|(b, g, acc)| ((b, division_groups.name(g).to_owned()), acc)).collect();
    divisions.sort_by(|a, b| a.0.cmp(&b.0));
    let divisions = divisions
        .into_iter()
        .filter(|((_, division), _)| division != "none")
        .map(|((b, division), mut acc)| {
            let answer = durations(&mut acc.answer);
            DivisionRow {
                period_start: buckets[b].0,
                period_end: buckets[b].1,
                division,
                escalations: acc.escalations,
                answers: acc.answers,
                answer_hours_median: answer.median,
                answer_hours_p90: answer.p90,
                answer_hours_mean: answer.mean,
                resolved_after_escalation: acc.resolved_after_escalation,
                resolutions: resolutions[b],
                escalation_rate: ratio(acc.resolved_after_escalation, resolutions[b]),
            }
        })
        .collect();
    let root_causes = root_causes
        .into_iter()
        .map(|((b, root_cause), n)| RootCauseRow {
            period_start: buckets[b].0,
            period_end: buckets[b].1,
            root_cause,
            complaints_resolved: n,
            share: ratio(n, complaint_resolutions[b]),
        })
        .collect();
    Report { summary, divisions, root_causes }
}
