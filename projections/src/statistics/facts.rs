//! The statistics read model's facts: what each event adds to the figures of its day.
//!
//! The read model keeps, per calendar day (in the reporting time zone), the day's counts by
//! kind and dimensions, and every duration measured that day (exact, to the second: medians
//! and percentiles need the values, not averages of averages). One row per day holds them,
//! encoded with `postcard`, so that a two-year report reads ~730 rows, not a million.
//!
//! The encoding uses the positions of the vocabulary's variants below; a change to them needs
//! `ticketd rebuild statistics` (the read model is rebuilt from the log, nothing is lost).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use ticket_domain::vocabulary::{Category, Channel, ServiceArea};

/// The time zone whose calendar days the statistics count in.
pub const REPORTING_TIME_ZONE: chrono_tz::Tz = chrono_tz::Europe::Budapest;

/// A day as stored: days since 0001-01-01 (chrono's `num_days_from_ce`).
pub type Day = i32;

pub fn day_of(at: DateTime<Utc>) -> Day {
    at.with_timezone(&REPORTING_TIME_ZONE).date_naive().num_days_from_ce()
}

pub const CATEGORIES: [Category; 5] = [
    Category::BugReport,
    Category::UserSupport,
    Category::Complaint,
    Category::InformationRequest,
    Category::DataChange,
];
pub const SERVICE_AREAS: [ServiceArea; 4] = [
    ServiceArea::DataProtectionConsulting,
    ServiceArea::Norma,
    ServiceArea::ProcessImprovementConsulting,
    ServiceArea::Other,
];
pub const CHANNELS: [Channel; 4] = [Channel::WebForm, Channel::Email, Channel::Phone, Channel::Other];

/// 0 = not yet classified; otherwise 1 + the position in [`CATEGORIES`].
pub fn category_code(category: Option<Category>) -> u8 {
    match category {
        None => 0,
        Some(Category::BugReport) => 1,
        Some(Category::UserSupport) => 2,
        Some(Category::Complaint) => 3,
        Some(Category::InformationRequest) => 4,
        Some(Category::DataChange) => 5,
    }
}

pub const COMPLAINT: u8 = 3;

/// 0 = not yet known; otherwise 1 + the position in [`SERVICE_AREAS`].
pub fn service_area_code(area: Option<ServiceArea>) -> u8 {
    match area {
        None => 0,
        Some(ServiceArea::DataProtectionConsulting) => 1,
        Some(ServiceArea::Norma) => 2,
        Some(ServiceArea::ProcessImprovementConsulting) => 3,
        Some(ServiceArea::Other) => 4,
    }
}

/// The position in [`CHANNELS`].
pub fn channel_code(channel: Channel) -> u8 {
    match channel {
        Channel::WebForm => 0,
        Channel::Email => 1,
        Channel::Phone => 2,
        Channel::Other => 3,
    }
}

/// What a ticket was at the moment of a fact: the statistics' grouping dimensions.
/// `division` is an index into the day's strings, +1 (0 = no division holds the ticket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dims {
    pub category: u8,
    pub service_area: u8,
    pub channel: u8,
    pub division: u16,
}

/// What a count counts (see `STATISTICS.md` for each figure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Count {
    Received,
    Resolved,
    Closed,
    Escalated,
    EscalationAnswered,
    Reopened,
    OutOfScope,
    /// Received as a complaint, or identified or reclassified as one.
    BecameComplaint,
    /// A complaint reclassified to another category.
    CeasedComplaint,
    /// +1 when a ticket opens or enters these dimensions, -1 when it closes or leaves them.
    Open,
    /// A resolution after the ticket had been with this (the fact's) division.
    ResolvedAfterEscalation,
    /// A resolution's root cause (an index into the day's strings).
    RootCause(u16),
    SurveySent,
    /// An answer, with the day its survey was sent (for the response rate).
    SurveyAnswered {
        score: u8,
        sent_day: Day,
    },
}

/// What a duration measures; the value is in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Measure {
    /// From receipt to the acknowledgement.
    ToAcknowledge,
    /// From receipt to the first contact (identification).
    ToFirstContact,
    /// From receipt to a resolution.
    ToResolution,
    /// From an escalation to the division's answer.
    EscalationAnswer,
}

/// One day's facts, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFacts {
    /// Division names and root causes, referred to by index.
    pub strings: Vec<String>,
    /// Sorted by key; no key twice.
    pub counts: Vec<(Count, Dims, i64)>,
    /// Sorted by key; values in the order they were measured.
    pub durations: Vec<(Measure, Dims, Vec<u32>)>,
}

/// A fact of the batch being applied, with its strings not yet interned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFact {
    pub day: Day,
    pub dims: Dims,
    pub division: Option<String>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Count(Count, i64),
    RootCause(String),
    Duration(Measure, u32),
}

impl DayFacts {
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("day facts always encode")
    }

    pub fn string(&self, index: u16) -> &str {
        self.strings.get(index as usize).map_or("", String::as_str)
    }

    /// Adds a batch's facts of this day.
    pub fn merge(&mut self, facts: impl IntoIterator<Item = NewFact>) {
        let mut counts: BTreeMap<(Count, Dims), i64> = self.counts.drain(..).map(|(c, d, n)| ((c, d), n)).collect();
        let mut durations: BTreeMap<(Measure, Dims), Vec<u32>> =
            self.durations.drain(..).map(|(m, d, v)| ((m, d), v)).collect();
        for fact in facts {
            let mut dims = fact.dims;
            dims.division = fact.division.as_deref().map_or(0, |d| self.intern(d) + 1);
            match fact.what {
                What::Count(count, n) => *counts.entry((count, dims)).or_default() += n,
                What::RootCause(cause) => {
                    let index = self.intern(&cause);
                    *counts.entry((Count::RootCause(index), dims)).or_default() += 1;
                }
                What::Duration(measure, seconds) => durations.entry((measure, dims)).or_default().push(seconds),
            }
        }
        // A +1 and a -1 on the same key within a day cancel out: nothing to keep.
        self.counts = counts.into_iter().filter(|(_, n)| *n != 0).map(|((c, d), n)| (c, d, n)).collect();
        self.durations = durations.into_iter().map(|((m, d), v)| (m, d, v)).collect();
    }

    fn intern(&mut self, value: &str) -> u16 {
        if let Some(index) = self.strings.iter().position(|s| s == value) {
            return index as u16;
        }
        self.strings.push(value.to_owned());
        (self.strings.len() - 1) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_interns_strings_and_cancels_opposite_counts() {
        let dims = Dims { category: COMPLAINT, service_area: 2, channel: 1, division: 0 };
        let mut day = DayFacts::default();
        day.merge([
            NewFact { day: 1, dims, division: None, what: What::Count(Count::Open, 1) },
            NewFact { day: 1, dims, division: Some("legal".into()), what: What::Count(Count::Escalated, 1) },
            NewFact { day: 1, dims, division: None, what: What::RootCause("typo".into()) },
            NewFact { day: 1, dims, division: None, what: What::Duration(Measure::ToResolution, 3600) },
        ]);
        day.merge([
            NewFact { day: 1, dims, division: None, what: What::Count(Count::Open, -1) },
            NewFact { day: 1, dims, division: Some("legal".into()), what: What::Count(Count::Escalated, 1) },
            NewFact { day: 1, dims, division: None, what: What::Duration(Measure::ToResolution, 60) },
        ]);
        assert_eq!(day.strings, vec!["legal".to_owned(), "typo".to_owned()]);
        let legal = Dims { division: 1, ..dims };
        assert_eq!(day.counts, vec![(Count::Escalated, legal, 2), (Count::RootCause(1), dims, 1)]);
        assert_eq!(day.durations, vec![(Measure::ToResolution, dims, vec![3600, 60])]);
        assert_eq!(DayFacts::decode(&day.encode()).unwrap(), day);
    }
}
