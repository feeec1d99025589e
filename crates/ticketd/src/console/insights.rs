//! The quality dashboard (`/console/insights`; quality managers, auditors, admins): the
//! complaint statistics as charts, each with a caption in words, the same figures as a table
//! beneath it, a CSV of exactly that table, and drill-down from a bar to the tickets behind it.
//!
//! Every figure is the API's (`/api/v1/stats/summary`, `/divisions`, `/root-causes`, `/sla`):
//! the same report functions over the same read models, for the same query. The charts are SVG
//! written here (see ARCHITECTURE.md, "Charts"): a bar is a `<rect>` whose `<title>` and
//! `aria-label` carry its value, so the page works without JavaScript, prints, and reads aloud.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate, TimeZone, Utc};
use maud::{Markup, html};
use ticket_domain::sla::SlaTarget;
use ticket_domain::vocabulary::{Category, Channel, ContractId, DivisionId, Language, Priority, Role, ServiceArea};
use ticket_projections::sla_clocks::{ComplianceFilter, ComplianceRow};
use ticket_projections::statistics::marks::Mark;
use ticket_projections::statistics::query::{self, Period, REPORT_DAYS_MAX, StatsQuery};

use super::labels::{self, CATEGORIES, CHANNELS, PRIORITIES, SERVICE_AREAS};
use super::{PageData, Section, StaffUser, layout, nav_counts, respond};
use crate::http::AppState;
use crate::pages::tr;

/// Who reads the dashboard.
pub(super) fn allowed(user: &StaffUser) -> bool {
    matches!(user.caller.role, Role::QualityManager | Role::Auditor | Role::Admin)
}

/// The SLA goal line's default, in percent.
pub const DEFAULT_GOAL: f64 = 95.0;

/// What the page was asked: the period, the bucket and the filters, checked.
#[derive(Debug, Clone)]
pub struct Asked {
    pub preset: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: Period,
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub channel: Option<Channel>,
    pub division: Option<DivisionId>,
    pub contract: Option<ContractId>,
    pub priority: Option<Priority>,
    pub goal: f64,
    /// The parameters as given (for links and forms).
    pub pairs: Vec<(String, String)>,
    pub errors: Vec<String>,
}

fn enum_of<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

impl Asked {
    pub fn parse(params: &HashMap<String, String>, today: NaiveDate) -> Self {
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut errors = Vec::new();
        let preset = get("preset").unwrap_or("last-12-months").to_owned();
        let (mut from, mut to) = match preset.as_str() {
            "last-30-days" => (today - chrono::Days::new(29), today),
            "this-quarter" => (query::bucket_start(today, Period::Quarter), today),
            "last-quarter" => {
                let this = query::bucket_start(today, Period::Quarter);
                let start = this.checked_sub_months(Months::new(3)).unwrap_or(this);
                (start, this.pred_opt().unwrap_or(this))
            }
            _ => (today.with_day(1).and_then(|d| d.checked_sub_months(Months::new(11))).unwrap_or(today), today),
        };
        let day = |key: &str, errors: &mut Vec<String>| {
            let text = get(key)?;
            let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|d| (1900..=9999).contains(&d.year()));
            if parsed.is_none() {
                errors.push(format!("{key}: {text:?} is not a day like 2026-03-02"));
            }
            parsed
        };
        if let Some(day) = day("from", &mut errors) {
            from = day;
        }
        if let Some(day) = day("to", &mut errors) {
            to = day;
        }
        if to < from {
            errors.push(format!("to ({to}) is before from ({from}): the last 12 months are shown"));
            (from, to) =
                (today.with_day(1).and_then(|d| d.checked_sub_months(Months::new(11))).unwrap_or(today), today);
        }
        if (to - from).num_days() >= REPORT_DAYS_MAX {
            errors.push(format!("a report covers at most {REPORT_DAYS_MAX} days"));
            from = to - chrono::Days::new(REPORT_DAYS_MAX as u64 - 1);
        }
        let period = match get("bucket") {
            None => {
                if (to - from).num_days() <= 92 {
                    Period::Week
                } else {
                    Period::Month
                }
            }
            Some(text) => match enum_of::<Period>(text).filter(|p| *p != Period::Day) {
                Some(p) => p,
                None => {
                    errors.push(format!("bucket: {text:?} is not week, month or quarter"));
                    Period::Month
                }
            },
        };
        fn choice<T: serde::de::DeserializeOwned>(
            key: &str,
            text: Option<&str>,
            errors: &mut Vec<String>,
        ) -> Option<T> {
            let text = text?;
            let value = enum_of(text);
            if value.is_none() {
                errors.push(format!("{key}: {text:?} is not one of its values"));
            }
            value
        }
        let category = choice("category", get("category"), &mut errors);
        let service_area = choice("service_area", get("service_area"), &mut errors);
        let channel = choice("channel", get("channel"), &mut errors);
        let priority = choice("priority", get("priority"), &mut errors);
        let division = get("division").and_then(|d| {
            let parsed = DivisionId::parse(d).ok();
            if parsed.is_none() {
                errors.push("division: at most 100 characters".into());
            }
            parsed
        });
        let contract = get("contract").and_then(|c| {
            let parsed = ContractId::parse(c).ok();
            if parsed.is_none() {
                errors.push("contract: at most 100 characters".into());
            }
            parsed
        });
        let goal = match get("goal") {
            None => DEFAULT_GOAL,
            Some(text) => match text.parse::<f64>().ok().filter(|g| (0.0..=100.0).contains(g)) {
                Some(goal) => goal,
                None => {
                    errors.push(format!("goal: {text:?} is not a percentage from 0 to 100"));
                    DEFAULT_GOAL
                }
            },
        };
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| {
                [
                    "preset",
                    "from",
                    "to",
                    "bucket",
                    "category",
                    "service_area",
                    "channel",
                    "division",
                    "contract",
                    "priority",
                    "goal",
                ]
                .contains(&k.as_str())
                    && !v.trim().is_empty()
            })
            .map(|(k, v)| (k.clone(), v.trim().to_owned()))
            .collect();
        pairs.sort();
        Self {
            preset,
            from,
            to,
            period,
            category,
            service_area,
            channel,
            division,
            contract,
            priority,
            goal,
            pairs,
            errors,
        }
    }

    /// The period as instants: from the first day's midnight to the midnight after the last
    /// (Europe/Budapest).
    pub fn bounds(&self) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), String> {
        let midnight = |day: NaiveDate| {
            day.and_hms_opt(0, 0, 0)
                .and_then(|d| chrono_tz::Europe::Budapest.from_local_datetime(&d).earliest())
                .map(|d| d.with_timezone(&Utc))
        };
        match (midnight(self.from), self.to.succ_opt().and_then(midnight)) {
            (Some(start), Some(end)) => Ok((start, end)),
            _ => Err("the period has no midnight in Europe/Budapest".into()),
        }
    }

    /// The SLA figures' filter: the ticket as it is now.
    pub fn sla_filter(&self) -> ComplianceFilter {
        ComplianceFilter {
            contract: self.contract.as_ref().map(ToString::to_string),
            category: self.category.map(|c| labels::api_name(&c)),
            service_area: self.service_area.map(|a| labels::api_name(&a)),
            priority: self.priority.map(|p| labels::api_name(&p)),
        }
    }

    /// The day statistics' filter: the ticket as it was at each fact.
    pub fn stats_filter(&self) -> query::Filter {
        crate::http::stats::filter_of(
            self.category,
            self.service_area,
            self.channel,
            self.division.as_ref().map(|d| d.as_str()),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The page's query string, as given.
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(&self.pairs).unwrap_or_default()
    }

    /// The query string without these parameters.
    pub fn query_without(&self, keys: &[&str]) -> String {
        let pairs: Vec<&(String, String)> = self.pairs.iter().filter(|(k, _)| !keys.contains(&k.as_str())).collect();
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// The query `/api/v1/stats/summary` (and `/divisions`, `/root-causes`) answers the same
    /// figures for.
    pub fn stats_query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("from", self.from.to_string()),
            ("to", self.to.to_string()),
            ("period", labels::api_name(&self.period)),
        ];
        for (key, value) in [
            ("category", self.category.map(|c| labels::api_name(&c))),
            ("service_area", self.service_area.map(|a| labels::api_name(&a))),
            ("channel", self.channel.map(|c| labels::api_name(&c))),
            ("division", self.division.as_ref().map(ToString::to_string)),
        ] {
            if let Some(value) = value {
                q.push((key, value));
            }
        }
        q
    }

    /// The query `/api/v1/stats/sla` answers the same figures for.
    pub fn sla_query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("from", self.from.to_string()),
            ("to", self.to.to_string()),
            ("period", labels::api_name(&self.period)),
        ];
        for (key, value) in [
            ("contract", self.contract.as_ref().map(ToString::to_string)),
            ("category", self.category.map(|c| labels::api_name(&c))),
            ("service_area", self.service_area.map(|a| labels::api_name(&a))),
            ("priority", self.priority.map(|p| labels::api_name(&p))),
        ] {
            if let Some(value) = value {
                q.push((key, value));
            }
        }
        q
    }
}

/// One figure: a table (the chart draws it; the CSV is it).
#[derive(Debug, Clone)]
pub struct Figure {
    pub id: &'static str,
    pub title: String,
    pub caption: String,
    /// The first column names the row (a bucket's first day, a division, a band).
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    pub chart: Chart,
    /// What lies behind a value: (row, value column) → the facts it counts.
    pub drills: BTreeMap<(usize, usize), Source>,
}

impl Figure {
    /// Where a value leads: the list of what it counts (none for an empty value).
    pub fn link(&self, row: usize, column: usize, asked: &Asked) -> Option<String> {
        self.drills.get(&(row, column))?;
        let value = self.rows.get(row)?.1.get(column).copied().flatten()?;
        (value != 0.0).then(|| {
            let mut pairs = asked.pairs.clone();
            pairs.retain(|(k, _)| !["row", "i", "column", "offset"].contains(&k.as_str()));
            pairs.push(("row".into(), self.rows[row].0.clone()));
            // The row's place too: a label alone could be taken twice (a root cause "other").
            pairs.push(("i".into(), row.to_string()));
            pairs.push(("column".into(), self.columns.get(column + 1).cloned().unwrap_or_default()));
            format!("/console/insights/{}/tickets?{}", self.id, serde_urlencoded::to_string(&pairs).unwrap_or_default())
        })
    }
}

/// The facts behind one value of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Facts of the day statistics (see `statistics::marks`), with the page's filter.
    Marks {
        kind: Mark,
        /// The days the facts happened on (inclusive).
        from: NaiveDate,
        to: NaiveDate,
        /// Only facts with this division (the figure's row or column).
        division: Option<String>,
        detail: Detail,
        /// Only answers to surveys sent on these days (inclusive).
        sent: Option<(NaiveDate, NaiveDate)>,
        /// Only facts about a complaint (at that moment).
        complaints: bool,
    },
    /// SLA clocks as the SLA report counts them (met in the period).
    Clocks { target: SlaTarget, bucket: Option<NaiveDate>, band: Option<usize> },
}

/// Which facts' detail (a root cause, a score) a list keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Any,
    Is(String),
    NoneOf(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// The value columns drawn as bars (indexes into a row's values).
    pub bars: Vec<usize>,
    /// The value column drawn as a line over the bars.
    pub line: Option<usize>,
    /// A goal line at this value.
    pub goal: Option<f64>,
    /// Values are shares (0–1), shown as percentages.
    pub percent: bool,
}

/// A number as the API writes it (JSON's shortest form).
pub fn number(value: Option<f64>) -> String {
    match value {
        None => String::new(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Some(v) => format!("{v}"),
    }
}

/// All the dashboard's figures for a query.
pub async fn figures(state: &AppState, asked: &Asked, language: Language) -> Result<Vec<Figure>, String> {
    let l = language;
    let stats_query = StatsQuery { from: asked.from, to: asked.to, period: asked.period, by: None };
    let filter = asked.stats_filter();
    let days = state.stats_days.days(&state.database).await.map_err(|e| e.to_string())?;
    let report = query::report_filtered(&days, &stats_query, &filter);
    let (start, end) = asked.bounds()?;
    let registry = state.registry.current().await.map_err(|e| e.to_string())?;
    let sla_filter = asked.sla_filter();
    let sla =
        crate::http::stats::compliance_report(state, &registry, start, end, None, Some(asked.period), &sla_filter)
            .await
            .map_err(|e| e.to_string())?;

    let bucket_label = |row: &query::SummaryRow| row.period_start.to_string();
    let buckets: Vec<(NaiveDate, NaiveDate)> = report.summary.iter().map(|r| (r.period_start, r.period_end)).collect();
    // The facts behind a bucket's value of the day statistics.
    let marks = |kind: Mark, (from, to): (NaiveDate, NaiveDate)| Source::Marks {
        kind,
        from,
        to,
        division: None,
        detail: Detail::Any,
        sent: None,
        complaints: false,
    };
    let whole = (asked.from, asked.to);
    let not_applied_stats = match (asked.contract.is_some(), asked.priority.is_some()) {
        (false, false) => String::new(),
        _ => tr(
            l,
            " A szerződés és a prioritás szűrő erre nem vonatkozik (a napi statisztika nem tartja nyilván).",
            " The contract and priority filters do not apply here (the day statistics do not keep them).",
        )
        .to_owned(),
    };
    let not_applied_sla = match (asked.channel.is_some(), asked.division.is_some()) {
        (false, false) => String::new(),
        _ => tr(
            l,
            " A csatorna és a szakterület szűrő erre nem vonatkozik; a többi szűrő a jegy mostani adatára szűr.",
            " The channel and division filters do not apply here; the others filter on the ticket as it is now.",
        )
        .to_owned(),
    };
    let mut figures = Vec::new();

    // 1. Received and resolved, with the open backlog.
    let total_received: i64 = report.summary.iter().map(|r| r.received).sum();
    let total_resolved: i64 = report.summary.iter().map(|r| r.resolved).sum();
    let backlog_end = report.summary.last().map_or(0, |r| r.open_at_end);
    let mut drills = BTreeMap::new();
    for (i, bucket) in buckets.iter().enumerate() {
        drills.insert((i, 0), marks(Mark::Received, *bucket));
        drills.insert((i, 1), marks(Mark::Resolved, *bucket));
    }
    let lists = tr(
        l,
        " Minden oszlop (és a táblázat minden száma) a mögötte álló jegyek listáját nyitja meg: egy újranyitott jegy minden megoldása külön számít.",
        " Every bar (and every number in the table) opens the list of what it counts: a reopened ticket counts each resolution.",
    );
    figures.push(Figure {
        id: "volume",
        title: tr(
            l,
            "Beérkezett és megoldott jegyek, nyitott állomány",
            "Received and resolved, with the open backlog",
        )
        .into(),
        caption: format!(
            "{} {total_received} {} {total_resolved} {} {backlog_end}.{lists}{not_applied_stats}",
            tr(l, "Az időszakban", "In the period"),
            tr(l, "jegy érkezett és", "tickets were received and"),
            tr(l, "megoldás született; az időszak végén nyitott:", "resolutions recorded; open at its end:"),
        ),
        columns: vec![
            tr(l, "Időszak kezdete", "Bucket starts").into(),
            "received".into(),
            "resolved".into(),
            "open_at_end".into(),
        ],
        rows: report
            .summary
            .iter()
            .map(|r| {
                (bucket_label(r), vec![Some(r.received as f64), Some(r.resolved as f64), Some(r.open_at_end as f64)])
            })
            .collect(),
        chart: Chart { bars: vec![0, 1], line: Some(2), ..Chart::default() },
        drills,
    });

    // 2. Complaints in the legal sense, and their share of all tickets received.
    let complaints: i64 = report.summary.iter().map(|r| r.complaints_registered).sum();
    figures.push(Figure {
        id: "complaints",
        title: tr(l, "Panaszok (a szabályzat 6. pontja szerint)", "Complaints in the legal sense").into(),
        caption: format!(
            "{} {complaints} {} {}.{not_applied_stats}",
            tr(l, "Az időszakban", "In the period"),
            tr(
                l,
                "bejelentés lett panasz; aránya a beérkezettekhez:",
                "reports became complaints; their share of tickets received:"
            ),
            share_text(complaints, total_received),
        ),
        columns: vec![
            tr(l, "Időszak kezdete", "Bucket starts").into(),
            "complaints_registered".into(),
            "complaint_share".into(),
        ],
        rows: report
            .summary
            .iter()
            .map(|r| {
                (
                    bucket_label(r),
                    vec![Some(r.complaints_registered as f64), ratio(r.complaints_registered, r.received)],
                )
            })
            .collect(),
        chart: Chart { bars: vec![0], ..Chart::default() },
        drills: buckets.iter().enumerate().map(|(i, b)| ((i, 0), marks(Mark::BecameComplaint, *b))).collect(),
    });

    // 3. Time to first contact and to resolution (business hours), median and p90.
    let of_target = |target: &str| -> BTreeMap<String, &ComplianceRow> {
        sla.iter()
            .filter(|r| labels::api_name(&r.target) == target)
            .filter_map(|r| r.period_start.map(|p| (p.to_string(), r)))
            .collect()
    };
    let first_contact = of_target("first_contact");
    let resolution = of_target("resolution");
    let statutory = of_target("statutory_answer");
    // The SLA rows name a bucket by its first day (a Monday, the 1st); the summary's first
    // bucket starts at `from`, clipped. Both are looked up by the bucket's own first day.
    let sla_key = |start: NaiveDate| query::bucket_start(start, asked.period).to_string();
    let sla_buckets: Vec<(String, String)> =
        buckets.iter().map(|(start, _)| (start.to_string(), sla_key(*start))).collect();
    let clocks = |target: SlaTarget, i: usize| Source::Clocks {
        target,
        bucket: buckets.get(i).map(|(start, _)| query::bucket_start(*start, asked.period)),
        band: None,
    };
    let per_bucket = |targets: &[SlaTarget]| -> BTreeMap<(usize, usize), Source> {
        (0..buckets.len()).flat_map(|i| targets.iter().enumerate().map(move |(c, t)| ((i, c), clocks(*t, i)))).collect()
    };
    figures.push(Figure {
        id: "durations",
        title: tr(l, "Idő az első kapcsolatfelvételig és a megoldásig (munkaórában)", "Time to first contact and to resolution (business hours)").into(),
        caption: format!(
            "{}{not_applied_sla}",
            tr(l, "Medián és 90. percentilis időszakonként, a szerződés munkaidejében számolva, a vállalás teljesülésének napja szerint.", "Median and 90th percentile per bucket, in the contract's business hours, by the day the step was done."),
        ),
        columns: vec![
            tr(l, "Időszak kezdete", "Bucket starts").into(),
            "first_contact_median".into(),
            "first_contact_p90".into(),
            "resolution_median".into(),
            "resolution_p90".into(),
        ],
        rows: sla_buckets
            .iter()
            .map(|(label, b)| {
                let fc = first_contact.get(b);
                let re = resolution.get(b);
                (
                    label.clone(),
                    vec![
                        fc.and_then(|r| r.business_hours_median),
                        fc.and_then(|r| r.business_hours_p90),
                        re.and_then(|r| r.business_hours_median),
                        re.and_then(|r| r.business_hours_p90),
                    ],
                )
            })
            .collect(),
        chart: Chart { bars: vec![0, 1, 2, 3], ..Chart::default() },
        drills: per_bucket(&[SlaTarget::FirstContact, SlaTarget::FirstContact, SlaTarget::Resolution, SlaTarget::Resolution]),
    });
    let band = |rows: &BTreeMap<String, &ComplianceRow>, i: usize| -> f64 {
        rows.values()
            .map(|r| {
                [
                    r.business_under_1h,
                    r.business_1h_to_4h,
                    r.business_4h_to_8h,
                    r.business_1d_to_2d,
                    r.business_2d_to_5d,
                    r.business_over_5d,
                ][i]
            })
            .sum::<i64>() as f64
    };
    let band_names = ["under 1 h", "1–4 h", "4–8 h", "1–2 d", "2–5 d", "over 5 d"];
    figures.push(Figure {
        id: "bands",
        title: tr(l, "Megoszlás munkaidő-sávok szerint", "Distribution in business-time bands").into(),
        caption: format!(
            "{}{not_applied_sla}",
            tr(l, "Hány jegynél telt el ennyi munkaidő a beérkezéstől a lépésig (1 munkanap = 8 munkaóra).", "How many tickets took this much business time from receipt to the step (a business day is 8 business hours)."),
        ),
        columns: vec![tr(l, "Sáv", "Band").into(), "first_contact".into(), "resolution".into()],
        rows: band_names
            .iter()
            .enumerate()
            .map(|(i, name)| ((*name).to_owned(), vec![Some(band(&first_contact, i)), Some(band(&resolution, i))]))
            .collect(),
        chart: Chart { bars: vec![0, 1], ..Chart::default() },
        drills: (0..band_names.len())
            .flat_map(|i| {
                [SlaTarget::FirstContact, SlaTarget::Resolution]
                    .into_iter()
                    .enumerate()
                    .map(move |(c, target)| ((i, c), Source::Clocks { target, bucket: None, band: Some(i) }))
            })
            .collect(),
    });

    // 4. SLA compliance per bucket, with the goal line.
    let goal = asked.goal / 100.0;
    let below: usize = sla_buckets
        .iter()
        .filter(|(_, b)| {
            [&first_contact, &resolution, &statutory]
                .iter()
                .any(|t| t.get(b).and_then(|r| r.compliance).is_some_and(|c| c < goal))
        })
        .count();
    figures.push(Figure {
        id: "sla",
        title: tr(l, "SLA-teljesítés", "SLA compliance").into(),
        caption: format!(
            "{} {}%. {} {below}.{not_applied_sla}",
            tr(l, "Az időben teljesült vállalások aránya (első kapcsolat, megoldás, a panasz 30 napos törvényi határideje); a cél:", "The share of clocks met in time (first contact, resolution, a complaint's 30-day statutory answer); the goal:"),
            number(Some(asked.goal)),
            tr(l, "A cél alatti időszakok száma:", "Buckets below the goal:"),
        ),
        columns: vec![
            tr(l, "Időszak kezdete", "Bucket starts").into(),
            "first_contact_compliance".into(),
            "resolution_compliance".into(),
            "statutory_answer_compliance".into(),
        ],
        rows: sla_buckets
            .iter()
            .map(|(label, b)| {
                (
                    label.clone(),
                    vec![
                        first_contact.get(b).and_then(|r| r.compliance),
                        resolution.get(b).and_then(|r| r.compliance),
                        statutory.get(b).and_then(|r| r.compliance),
                    ],
                )
            })
            .collect(),
        chart: Chart { bars: vec![0, 1, 2], goal: Some(goal), percent: true, ..Chart::default() },
        drills: per_bucket(&[SlaTarget::FirstContact, SlaTarget::Resolution, SlaTarget::StatutoryAnswer]),
    });

    // 5. Escalations per division, and the divisions' answer times.
    let mut per_division: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in &report.divisions {
        let entry = per_division.entry(row.division.clone()).or_default();
        entry.0 += row.escalations;
        entry.1 += row.answers;
    }
    figures.push(Figure {
        id: "divisions",
        title: tr(l, "Eszkalációk szakterületenként", "Escalations per division").into(),
        caption: format!(
            "{} {} {}.{not_applied_stats}",
            per_division.values().map(|v| v.0).sum::<i64>(),
            tr(l, "eszkaláció", "escalations to"),
            format!("{} {}", per_division.len(), tr(l, "szakterülethez", "divisions")),
        ),
        columns: vec![tr(l, "Szakterület", "Division").into(), "escalations".into(), "answers".into()],
        rows: per_division.iter().map(|(d, (e, a))| (d.clone(), vec![Some(*e as f64), Some(*a as f64)])).collect(),
        chart: Chart { bars: vec![0, 1], ..Chart::default() },
        drills: per_division
            .keys()
            .enumerate()
            .flat_map(|(i, division)| {
                [Mark::Escalated, Mark::EscalationAnswered].into_iter().enumerate().map(move |(c, kind)| {
                    let mut source = marks(kind, whole);
                    if let Source::Marks { division: wanted, .. } = &mut source {
                        *wanted = Some(division.clone());
                    }
                    ((i, c), source)
                })
            })
            .collect(),
    });
    let division_names: Vec<String> = per_division.keys().cloned().collect();
    let answer_of: HashMap<(String, String), Option<f64>> = report
        .divisions
        .iter()
        .map(|r| ((r.period_start.to_string(), r.division.clone()), r.answer_hours_median))
        .collect();
    let mut columns = vec![tr(l, "Időszak kezdete", "Bucket starts").to_owned()];
    columns.extend(division_names.iter().cloned());
    figures.push(Figure {
        id: "answers",
        title: tr(l, "A szakterületek válaszideje (medián, óra)", "The divisions' answer times (median, hours)").into(),
        caption: format!(
            "{}{not_applied_stats}",
            tr(
                l,
                "Az eszkalációtól a szakterület válaszáig, a válasz napja szerint.",
                "From an escalation to the division's answer, by the day of the answer."
            ),
        ),
        columns,
        rows: buckets
            .iter()
            .map(|(start, _)| {
                let b = start.to_string();
                let values =
                    division_names.iter().map(|d| answer_of.get(&(b.clone(), d.clone())).copied().flatten()).collect();
                (b, values)
            })
            .collect(),
        chart: Chart { bars: (0..division_names.len()).collect(), ..Chart::default() },
        drills: buckets
            .iter()
            .enumerate()
            .flat_map(|(i, bucket)| {
                division_names.iter().enumerate().map(move |(c, division)| {
                    let mut source = marks(Mark::EscalationAnswered, *bucket);
                    if let Source::Marks { division: wanted, .. } = &mut source {
                        *wanted = Some(division.clone());
                    }
                    ((i, c), source)
                })
            })
            .collect(),
    });

    // 6. Root causes of resolved complaints: the top ten and "other".
    let mut causes: BTreeMap<String, i64> = BTreeMap::new();
    for row in &report.root_causes {
        *causes.entry(row.root_cause.clone()).or_default() += row.complaints_resolved;
    }
    let mut ranked: Vec<(String, i64)> = causes.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other: i64 = ranked.iter().skip(10).map(|c| c.1).sum();
    let resolved_complaints: i64 = ranked.iter().map(|c| c.1).sum();
    let mut rows: Vec<(String, Vec<Option<f64>>)> = ranked
        .iter()
        .take(10)
        .map(|(c, n)| (c.clone(), vec![Some(*n as f64), ratio(*n, resolved_complaints)]))
        .collect();
    let cause = |detail: Detail| Source::Marks {
        kind: Mark::RootCause,
        from: asked.from,
        to: asked.to,
        division: None,
        detail,
        sent: None,
        complaints: true,
    };
    let mut cause_drills: BTreeMap<(usize, usize), Source> =
        ranked.iter().take(10).enumerate().map(|(i, (c, _))| ((i, 0), cause(Detail::Is(c.clone())))).collect();
    if ranked.len() > 10 {
        rows.push((tr(l, "egyéb", "other").into(), vec![Some(other as f64), ratio(other, resolved_complaints)]));
        let top: Vec<String> = ranked.iter().take(10).map(|(c, _)| c.clone()).collect();
        cause_drills.insert((10, 0), cause(Detail::NoneOf(top)));
    }
    figures.push(Figure {
        id: "root_causes",
        title: tr(l, "A megoldott panaszok kiváltó okai", "Root causes of resolved complaints").into(),
        caption: format!(
            "{} {resolved_complaints} {}{}.{not_applied_stats}",
            tr(l, "Az időszak", "The period's"),
            tr(l, "megoldott panaszának leggyakoribb okai", "resolved complaints, by their ten most frequent causes"),
            ranked.first().map(|(c, n)| format!("; {} {c} ({n})", tr(l, "az első:", "first:"))).unwrap_or_default(),
        ),
        columns: vec![tr(l, "Kiváltó ok", "Root cause").into(), "complaints_resolved".into(), "share".into()],
        rows,
        chart: Chart { bars: vec![0], ..Chart::default() },
        drills: cause_drills,
    });

    // 7. Satisfaction: response rate, mean score, and the 1–5 distribution.
    let sent: i64 = report.summary.iter().map(|r| r.surveys_sent).sum();
    let answered: i64 = report.summary.iter().map(|r| r.surveys_answered).sum();
    figures.push(Figure {
        id: "satisfaction",
        title: tr(l, "Elégedettség: válaszarány és átlagpontszám", "Satisfaction: response rate and mean score").into(),
        caption: format!(
            "{sent} {} {answered} {}.{not_applied_stats}",
            tr(l, "kérdőív ment ki és", "surveys were sent and"),
            tr(l, "válasz érkezett az időszakban", "answers came in during the period"),
        ),
        columns: vec![
            tr(l, "Időszak kezdete", "Bucket starts").into(),
            "surveys_sent".into(),
            "survey_response_rate".into(),
            "survey_mean_score".into(),
        ],
        rows: report
            .summary
            .iter()
            .map(|r| (bucket_label(r), vec![Some(r.surveys_sent as f64), r.survey_response_rate, r.survey_mean_score]))
            .collect(),
        chart: Chart { bars: vec![1], percent: true, ..Chart::default() },
        // The surveys sent; the answers to those surveys (the rate's numerator, answered any day
        // from the period's start); the answers given in the bucket (the mean's).
        drills: buckets
            .iter()
            .enumerate()
            .flat_map(|(i, bucket)| {
                let answers_to_sent = Source::Marks {
                    kind: Mark::SurveyAnswered,
                    from: asked.from,
                    to: NaiveDate::MAX,
                    division: None,
                    detail: Detail::Any,
                    sent: Some(*bucket),
                    complaints: false,
                };
                [
                    ((i, 0), marks(Mark::SurveySent, *bucket)),
                    ((i, 1), answers_to_sent),
                    ((i, 2), marks(Mark::SurveyAnswered, *bucket)),
                ]
            })
            .collect(),
    });
    let scores: Vec<i64> = (0..5)
        .map(|i| report.summary.iter().map(|r| [r.score_1, r.score_2, r.score_3, r.score_4, r.score_5][i]).sum::<i64>())
        .collect();
    figures.push(Figure {
        id: "scores",
        title: tr(l, "A pontszámok megoszlása (1–5)", "The scores' distribution (1–5)").into(),
        caption: format!(
            "{} {}.{not_applied_stats}",
            tr(
                l,
                "Az időszakban adott válaszok pontszám szerint; leggyakoribb:",
                "The answers given in the period by score; most frequent:"
            ),
            scores
                .iter()
                .enumerate()
                .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
                .map(|(i, _)| i + 1)
                .unwrap_or(0),
        ),
        columns: vec![tr(l, "Pontszám", "Score").into(), "answers".into()],
        rows: scores.iter().enumerate().map(|(i, n)| ((i + 1).to_string(), vec![Some(*n as f64)])).collect(),
        chart: Chart { bars: vec![0], ..Chart::default() },
        drills: (0..5)
            .map(|i| {
                let mut source = marks(Mark::SurveyAnswered, whole);
                if let Source::Marks { detail, .. } = &mut source {
                    *detail = Detail::Is((i + 1).to_string());
                }
                ((i, 0), source)
            })
            .collect(),
    });
    Ok(figures)
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

fn share_text(part: i64, whole: i64) -> String {
    ratio(part, whole).map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A value as the chart's marks say it.
fn shown(value: f64, percent: bool) -> String {
    if percent { format!("{:.1}%", value * 100.0) } else { number(Some(value)) }
}

/// A round upper bound for the axis.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The figure's chart: grouped bars (each a link where it drills down), an optional line and
/// goal, an axis with four ticks. Every mark carries its value in `<title>` and `aria-label`.
pub fn svg(figure: &Figure, asked: &Asked, language: Language) -> Markup {
    let open_words = tr(language, "a jegyek listája", "open the tickets");
    let (width, height, left, right, top, bottom) = (760.0, 280.0, 56.0, 12.0, 12.0, 56.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let chart = &figure.chart;
    let mut max: f64 = 0.0;
    for (_, values) in &figure.rows {
        for i in chart.bars.iter().chain(chart.line.iter()) {
            if let Some(Some(v)) = values.get(*i) {
                max = max.max(*v);
            }
        }
    }
    if let Some(goal) = chart.goal {
        max = max.max(goal);
    }
    let max = if chart.percent { 1.0f64.max(max) } else { nice_max(max) };
    let y = |v: f64| top + plot_h - (v / max) * plot_h;
    let n = figure.rows.len().max(1) as f64;
    let group = plot_w / n;
    let series = chart.bars.len().max(1) as f64;
    let bar = (group * 0.8 / series).max(1.0);
    let label_every = (figure.rows.len() / 12).max(1);
    let name = |i: usize| figure.columns.get(i + 1).cloned().unwrap_or_default();
    let title_id = format!("chart-{}-title", figure.id);
    html! {
        svg.chart viewBox={"0 0 " (width) " " (height)} width="100%" role="group" aria-labelledby=(title_id) data-chart=(figure.id) xmlns="http://www.w3.org/2000/svg" {
            title #(title_id) { (figure.title) }
            // The axis and its ticks.
            @for k in 0..=4 {
                @let v = max * k as f64 / 4.0;
                line.grid x1=(left) x2=(width - right) y1=(y(v)) y2=(y(v)) {}
                text.tick x=(left - 6.0) y=(y(v) + 4.0) text-anchor="end" aria-hidden="true" { (shown(v, chart.percent)) }
            }
            @for (r, (label, values)) in figure.rows.iter().enumerate() {
                @let x0 = left + group * r as f64 + group * 0.1;
                @for (s, column) in chart.bars.iter().enumerate() {
                    @if let Some(Some(value)) = values.get(*column) {
                        @let words = format!("{label} · {}: {}", name(*column), shown(*value, chart.percent));
                        @let rect = html! {
                            rect.{"s" (s)} x=(x0 + bar * s as f64) y=(y(*value)) width=(bar * 0.92) height=((plot_h - (y(*value) - top)).max(0.0)) data-row=(label) data-column=(name(*column)) data-value=(number(Some(*value))) {
                                title { (words) }
                            }
                        };
                        @match figure.link(r, *column, asked) {
                            Some(href) => a.drill href=(href) aria-label={(words) " — " (open_words)} { (rect) },
                            None => g role="img" aria-label=(words) { (rect) },
                        }
                    }
                }
                @if r % label_every == 0 {
                    text.label x=(x0 + group * 0.4) y=(height - bottom + 16.0) text-anchor="middle" aria-hidden="true" { (label) }
                }
            }
            @if let Some(column) = chart.line {
                @let points: Vec<(f64, f64, String, f64)> = figure.rows.iter().enumerate().filter_map(|(r, (label, values))| {
                    values.get(column).copied().flatten().map(|v| (left + group * r as f64 + group * 0.5, y(v), label.clone(), v))
                }).collect();
                polyline.line points=(points.iter().map(|(x, y, _, _)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                @for (x, yy, label, v) in &points {
                    g role="img" aria-label={(label) " · " (name(column)) ": " (shown(*v, chart.percent))} {
                        circle.point cx=(x) cy=(yy) r="3.5" data-row=(label) data-column=(name(column)) data-value=(number(Some(*v))) {
                            title { (label) " · " (name(column)) ": " (shown(*v, chart.percent)) }
                        }
                    }
                }
            }
            @if let Some(goal) = chart.goal {
                line.goal x1=(left) x2=(width - right) y1=(y(goal)) y2=(y(goal)) {}
                text.goal x=(width - right) y=(y(goal) - 4.0) text-anchor="end" { "goal " (shown(goal, true)) }
            }
            // The legend.
            @for (s, column) in chart.bars.iter().enumerate() {
                rect.{"s" (s)} x=(left + 150.0 * s as f64) y=(height - 18.0) width="10" height="10" {}
                text.legend x=(left + 150.0 * s as f64 + 14.0) y=(height - 9.0) { (name(*column)) }
            }
            @if let Some(column) = chart.line {
                line.line x1=(left + 150.0 * chart.bars.len() as f64) x2=(left + 150.0 * chart.bars.len() as f64 + 12.0) y1=(height - 13.0) y2=(height - 13.0) {}
                text.legend x=(left + 150.0 * chart.bars.len() as f64 + 16.0) y=(height - 9.0) { (name(column)) }
            }
        }
    }
}

/// The figure's table; a value with a list behind it links to the list.
fn table(figure: &Figure, asked: &Asked) -> Markup {
    html! {
        table.plain.figures data-chart=(figure.id) {
            caption.visually-hidden { (figure.title) }
            thead { tr { @for column in &figure.columns { th scope="col" { (column) } } } }
            tbody {
                @for (r, (label, values)) in figure.rows.iter().enumerate() {
                    tr {
                        th scope="row" { (label) }
                        @for (c, value) in values.iter().enumerate() {
                            td data-value=(number(*value)) {
                                @match figure.link(r, c, asked) {
                                    Some(href) => a.drill href=(href) { (number(*value)) },
                                    None => (number(*value)),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The CSV of a figure: exactly its table.
pub fn csv(figure: &Figure) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(figure.columns.iter().map(|c| crate::http::stats::neutralise(c).into_owned()));
    for (label, values) in &figure.rows {
        let mut record = vec![crate::http::stats::neutralise(label).into_owned()];
        record.extend(values.iter().map(|v| number(*v)));
        let _ = writer.write_record(&record);
    }
    writer.into_inner().unwrap_or_default()
}

fn today(state: &AppState) -> NaiveDate {
    state.service.clock().now().with_timezone(&chrono_tz::Europe::Budapest).date_naive()
}

pub(super) async fn forbidden(state: &AppState, user: &StaffUser) -> Response {
    let l = user.language;
    super::message(
        state,
        user,
        StatusCode::FORBIDDEN,
        tr(l, "Nincs jogosultság", "Not allowed"),
        tr(
            l,
            "A minőségügyi kimutatás minőségügyi vezetőknek, auditoroknak és adminisztrátoroknak szól.",
            "The quality dashboard is for quality managers, auditors and admins.",
        ),
    )
    .await
}

/// `GET /console/insights`.
pub async fn page(
    State(state): State<AppState>,
    user: StaffUser,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !allowed(&user) {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let asked = Asked::parse(&params, today(&state));
    let figures = match figures(&state, &asked, l).await {
        Ok(f) => f,
        Err(error) => {
            tracing::error!(%error, "the quality dashboard could not read its figures");
            return super::message(
                &state,
                &user,
                StatusCode::SERVICE_UNAVAILABLE,
                tr(l, "A kimutatás most nem érhető el", "The dashboard is unavailable"),
                tr(
                    l,
                    "Az adatbázis nem válaszolt; próbálja újra. A részletek a naplóban.",
                    "The database did not answer; try again. The details are in the log.",
                ),
            )
            .await;
        }
    };
    let counts = nav_counts(&state, &user).await;
    let query = asked.query();
    let option = |words: labels::Words, key: &str| {
        let current = asked.get(key);
        html! {
            option value="" { (tr(l, "mind", "all")) }
            @for (name, hu, en) in words { option value=(name) selected[current == Some(*name)] { (if l == Language::Hu { *hu } else { *en }) } }
        }
    };
    let title = tr(l, "Minőségügyi kimutatás", "Quality dashboard");
    // A preset keeps the bucket and the filters, and drops from–to.
    let preset_link = |preset: &str| {
        let mut pairs: Vec<(String, String)> =
            asked.pairs.iter().filter(|(k, _)| !["preset", "from", "to"].contains(&k.as_str())).cloned().collect();
        pairs.push(("preset".into(), preset.into()));
        format!("/console/insights?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    };
    let content = html! {
        h1 { (title) }
        @for error in &asked.errors { p.alert role="alert" { (error) } }
        form.insights #insights-form method="get" action="/console/insights" {
            fieldset {
                legend { (tr(l, "Időszak", "Period")) }
                @for (value, hu, en) in [("last-30-days", "Utolsó 30 nap", "Last 30 days"), ("this-quarter", "Ez a negyedév", "This quarter"), ("last-quarter", "Előző negyedév", "Last quarter"), ("last-12-months", "Utolsó 12 hónap", "Last 12 months")] {
                    a.preset href=(preset_link(value)) aria-current=[(asked.preset == value && asked.get("from").is_none()).then_some("true")] { (tr(l, hu, en)) }
                    " "
                }
                label for="from" { (tr(l, "ettől", "from")) } " " input #from type="date" name="from" value=(asked.from);
                " " label for="to" { (tr(l, "eddig", "to")) } " " input #to type="date" name="to" value=(asked.to);
                " " label for="bucket" { (tr(l, "bontás", "bucket")) } " "
                select #bucket name="bucket" {
                    @for (value, hu, en) in [("week", "hét", "week"), ("month", "hónap", "month"), ("quarter", "negyedév", "quarter")] {
                        option value=(value) selected[labels::api_name(&asked.period) == value] { (tr(l, hu, en)) }
                    }
                }
            }
            fieldset {
                legend { (tr(l, "Szűrők", "Filters")) }
                label for="f-category" { (tr(l, "Kategória", "Category")) } " " select #f-category name="category" { (option(CATEGORIES, "category")) }
                " " label for="f-area" { (tr(l, "Szolgáltatási terület", "Service area")) } " " select #f-area name="service_area" { (option(SERVICE_AREAS, "service_area")) }
                " " label for="f-channel" { (tr(l, "Csatorna", "Channel")) } " " select #f-channel name="channel" { (option(CHANNELS, "channel")) }
                " " label for="f-priority" { (tr(l, "Prioritás", "Priority")) } " " select #f-priority name="priority" { (option(PRIORITIES, "priority")) }
                br;
                label for="f-division" { (tr(l, "Szakterület", "Division")) } " " input #f-division name="division" size="14" value=(asked.get("division").unwrap_or(""));
                " " label for="f-contract" { (tr(l, "Szerződés", "Contract")) } " " input #f-contract name="contract" size="14" value=(asked.get("contract").unwrap_or(""));
                " " label for="f-goal" { (tr(l, "SLA-cél (%)", "SLA goal (%)")) } " " input #f-goal name="goal" size="4" inputmode="decimal" value=(number(Some(asked.goal)));
            }
            button type="submit" #insights-apply { (tr(l, "Mutasd", "Show")) }
        }
        p.hint #insights-period { (asked.from) " – " (asked.to) " · Europe/Budapest · " (tr(l, "ugyanezek a számok az API-ban: ", "the same figures in the API: ")) code { "/api/v1/stats/summary?" (serde_urlencoded::to_string(asked.stats_query()).unwrap_or_default()) } ", " code { "/api/v1/stats/sla?" (serde_urlencoded::to_string(asked.sla_query()).unwrap_or_default()) } }
        @for figure in &figures {
            section.figure #{"figure-" (figure.id)} aria-labelledby={"h-" (figure.id)} {
                h2 #{"h-" (figure.id)} { (figure.title) }
                p.caption #{"caption-" (figure.id)} { (figure.caption) }
                (svg(figure, &asked, l))
                details.figures open {
                    summary { (tr(l, "A számok táblázatban", "The figures as a table")) }
                    (table(figure, &asked))
                }
                p { a.csv href={"/console/insights/" (figure.id) ".csv?" (query)} download { (tr(l, "CSV letöltése", "Download CSV")) } }
            }
        }
    };
    respond(StatusCode::OK, layout(&user, title, &Section::Insights, &counts, PageData::default(), content))
}

/// `GET /console/insights/{figure}.csv`: the figure's table as CSV.
pub async fn csv_download(
    State(state): State<AppState>,
    user: StaffUser,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !allowed(&user) {
        return forbidden(&state, &user).await;
    }
    let Some(id) = file.strip_suffix(".csv") else { return StatusCode::NOT_FOUND.into_response() };
    let asked = Asked::parse(&params, today(&state));
    let figures = match figures(&state, &asked, user.language).await {
        Ok(f) => f,
        Err(error) => {
            tracing::error!(%error, "a dashboard CSV could not read its figures");
            return (StatusCode::SERVICE_UNAVAILABLE, "the figures are unavailable; try again").into_response();
        }
    };
    let Some(figure) = figures.iter().find(|f| f.id == id) else { return StatusCode::NOT_FOUND.into_response() };
    let mut response = csv(figure).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}-{}-{}.csv\"", figure.id, asked.from, asked.to))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
