//! Business calendars: when the service desk works, so that SLA clocks count only those hours.
//!
//! A calendar is working hours per weekday in a time zone (Europe/Budapest by default, with its
//! daylight-saving changes), public holidays, and Hungary's transferred days (a weekday made a
//! rest day, a Saturday made a working day), read from one data file per year
//! (`deploy/calendars/hu/<year>.toml`). [`BusinessCalendar::add`] ("due = received + 8 business
//! hours") and [`BusinessCalendar::elapsed`] ("business time between two instants") are pure.
//!
//! A transferred working day (a worked Saturday) keeps the hours of the weekday it stands in
//! for; this calendar uses Monday's hours for it.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

/// One named day of a year file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDay {
    pub date: NaiveDate,
    pub name: String,
}

/// A year's data file: its public holidays and its transferred days.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearFile {
    pub year: i32,
    pub holidays: Vec<NamedDay>,
    /// Weekdays that are rest days (transferred).
    pub rest_days: Vec<NamedDay>,
    /// Weekend days that are working days (transferred).
    pub working_days: Vec<NamedDay>,
}

/// Hungary's year files, as shipped (`deploy/calendars/hu/`).
pub const HUNGARY_YEARS: &[(&str, &str)] = &[
    ("2025.toml", include_str!("../../../deploy/calendars/hu/2025.toml")),
    ("2026.toml", include_str!("../../../deploy/calendars/hu/2026.toml")),
    ("2027.toml", include_str!("../../../deploy/calendars/hu/2027.toml")),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error("working hours must start before they end ({0})")]
    Hours(String),
}

impl YearFile {
    pub fn parse(file: &str, text: &str) -> Result<Self, CalendarError> {
        let parsed: Self =
            toml::from_str(text).map_err(|e| CalendarError::File { file: file.to_owned(), reason: e.to_string() })?;
        let error = |reason: String| CalendarError::File { file: file.to_owned(), reason };
        for day in parsed.holidays.iter().chain(&parsed.rest_days).chain(&parsed.working_days) {
            if day.date.year() != parsed.year {
                return Err(error(format!("{} is not in {}", day.date, parsed.year)));
            }
        }
        if let Some(day) = parsed.working_days.iter().find(|d| !is_weekend(d.date)) {
            return Err(error(format!("{} is a weekday: only weekend days can be made working days", day.date)));
        }
        if let Some(day) = parsed.rest_days.iter().find(|d| is_weekend(d.date)) {
            return Err(error(format!("{} is a weekend day: only weekdays can be made rest days", day.date)));
        }
        Ok(parsed)
    }
}

/// Every `*.toml` year file in `dir`, checked; two files of one year are an error.
pub fn read_year_files(dir: &std::path::Path) -> Result<Vec<YearFile>, CalendarError> {
    let error = |reason: String| CalendarError::File { file: dir.display().to_string(), reason };
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut years: Vec<YearFile> = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CalendarError::File { file: name.clone(), reason: e.to_string() })?;
        let year = YearFile::parse(&name, &text)?;
        if years.iter().any(|y| y.year == year.year) {
            return Err(CalendarError::File { file: name, reason: format!("a second file for {}", year.year) });
        }
        years.push(year);
    }
    Ok(years)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Opening hours of one day, local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl Hours {
    pub fn new(open: NaiveTime, close: NaiveTime) -> Result<Self, CalendarError> {
        if open >= close {
            return Err(CalendarError::Hours(format!("{open}-{close}")));
        }
        Ok(Self { open, close })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    pub time_zone: Tz,
    /// Monday first; `None`: closed that weekday.
    pub weekly: [Option<Hours>; 7],
    /// Holidays and transferred rest days: closed.
    pub closed: BTreeSet<NaiveDate>,
    /// Transferred working days: open with Monday's hours.
    pub extra_working: BTreeSet<NaiveDate>,
    /// The years the data files cover (outside them only the weekly hours apply).
    pub years: BTreeSet<i32>,
}

/// How far `add` looks for open hours before it gives up (a calendar without any).
const SEARCH_DAYS_MAX: i64 = 366 * 20;

impl BusinessCalendar {
    /// The weekly hours in `time_zone` with these year files.
    pub fn new(time_zone: Tz, weekly: [Option<Hours>; 7], years: &[YearFile]) -> Self {
        let mut closed = BTreeSet::new();
        let mut extra_working = BTreeSet::new();
        for year in years {
            closed.extend(year.holidays.iter().chain(&year.rest_days).map(|d| d.date));
            extra_working.extend(year.working_days.iter().map(|d| d.date));
        }
        Self { time_zone, weekly, closed, extra_working, years: years.iter().map(|y| y.year).collect() }
    }

    /// Monday to Friday, 08:00 to 16:00, Europe/Budapest, Hungary's holidays and transfers.
    pub fn hungary_default() -> Result<Self, CalendarError> {
        Self::hungary_with(Vec::new())
    }

    /// The same, with year files read at start-up (a decree newer than this build): each
    /// replaces the shipped file of its year, or adds a year.
    pub fn hungary_with(overrides: Vec<YearFile>) -> Result<Self, CalendarError> {
        let day = Some(Hours::new(
            NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            NaiveTime::from_hms_opt(16, 0, 0).unwrap_or_default(),
        )?);
        let mut years =
            HUNGARY_YEARS.iter().map(|(file, text)| YearFile::parse(file, text)).collect::<Result<Vec<_>, _>>()?;
        years.retain(|shipped| overrides.iter().all(|o| o.year != shipped.year));
        years.extend(overrides);
        Ok(Self::new(chrono_tz::Europe::Budapest, [day, day, day, day, day, None, None], &years))
    }

    /// The hours `date` is open, local time.
    pub fn hours_on(&self, date: NaiveDate) -> Option<Hours> {
        if self.closed.contains(&date) {
            return None;
        }
        if self.extra_working.contains(&date) {
            return self.weekly[0].or_else(|| self.weekly.iter().flatten().next().copied());
        }
        self.weekly[date.weekday().num_days_from_monday() as usize]
    }

    /// A local wall-clock time as an instant; a time the clocks skip (spring forward) is taken
    /// as the first instant after the gap, an ambiguous one (fall back) as the earlier.
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        for _ in 0..4 {
            match self.time_zone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(30),
            }
        }
        Utc.from_utc_datetime(&local)
    }

    /// The open interval of `date`, as instants.
    fn open_interval(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let hours = self.hours_on(date)?;
        let open = self.instant(date.and_time(hours.open));
        let close = self.instant(date.and_time(hours.close));
        (open < close).then_some((open, close))
    }

    fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.time_zone).date_naive()
    }

    /// The instant `business` open time after `start` (`start` itself for zero); `None` when
    /// the calendar has no open hours within twenty years.
    pub fn add(&self, start: DateTime<Utc>, business: Duration) -> Option<DateTime<Utc>> {
        if business <= Duration::zero() {
            return Some(start);
        }
        let mut left = business;
        let mut date = self.local_date(start);
        for _ in 0..SEARCH_DAYS_MAX {
            if let Some((open, close)) = self.open_interval(date) {
                let from = open.max(start);
                if from < close {
                    let available = close - from;
                    if left <= available {
                        return Some(from + left);
                    }
                    left -= available;
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Open time from `now` until `due`; negative (the open time since) when `due` has passed.
    pub fn left_until(&self, now: DateTime<Utc>, due: DateTime<Utc>) -> Duration {
        if due >= now { self.elapsed(now, due) } else { -self.elapsed(due, now) }
    }

    /// Open time between two instants (zero when `to` is not after `from`).
    pub fn elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let mut total = Duration::zero();
        let mut date = self.local_date(from);
        let last = self.local_date(to);
        while date <= last {
            if let Some((open, close)) = self.open_interval(date) {
                let (start, end) = (open.max(from), close.min(to));
                if start < end {
                    total += end - start;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Budapest;

    fn budapest(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Budapest.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap().with_timezone(&Utc)
    }

    fn hungary() -> BusinessCalendar {
        BusinessCalendar::hungary_default().unwrap()
    }

    #[test]
    fn eight_business_hours_across_the_easter_weekend() {
        // Thursday 2 April 2026, 15:00: one hour that day; Good Friday, the weekend and Easter
        // Monday are closed; seven more hours on Tuesday 7 April: 15:00.
        let due = hungary().add(budapest(2026, 4, 2, 15, 0), Duration::hours(8)).unwrap();
        assert_eq!(due, budapest(2026, 4, 7, 15, 0));
        assert_eq!(hungary().elapsed(budapest(2026, 4, 2, 15, 0), due), Duration::hours(8));
    }

    #[test]
    fn across_the_spring_daylight_saving_change() {
        // Friday 27 March 2026 12:00 CET (UTC+1); clocks go forward on Sunday 29 March.
        let start = budapest(2026, 3, 27, 12, 0);
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 3, 27, 11, 0, 0).unwrap());
        let due = hungary().add(start, Duration::hours(8)).unwrap();
        // Four hours on Friday, four on Monday from 08:00 CEST (UTC+2): 12:00 CEST = 10:00 UTC.
        assert_eq!(due, Utc.with_ymd_and_hms(2026, 3, 30, 10, 0, 0).unwrap());
        // Wall-clock that is 71 hours (the night of the change lasts 23); business time is 8.
        assert_eq!(due - start, Duration::hours(71));
        assert_eq!(hungary().elapsed(start, due), Duration::hours(8));
    }

    #[test]
    fn across_the_autumn_change_and_the_october_23_holiday() {
        // Friday 23 October 2026 is a holiday; clocks go back on Sunday 25 October.
        let start = budapest(2026, 10, 22, 14, 0);
        let due = hungary().add(start, Duration::hours(4)).unwrap();
        assert_eq!(due, budapest(2026, 10, 26, 10, 0));
        assert_eq!(due, Utc.with_ymd_and_hms(2026, 10, 26, 9, 0, 0).unwrap(), "CET again: UTC+1");
    }

    #[test]
    fn transferred_days_move_work_to_a_saturday() {
        let hu = hungary();
        // Friday 2 January 2026 is a rest day; Saturday 10 January is worked.
        assert_eq!(hu.hours_on(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()), None);
        assert!(hu.hours_on(NaiveDate::from_ymd_opt(2026, 1, 10).unwrap()).is_some());
        assert_eq!(hu.hours_on(NaiveDate::from_ymd_opt(2026, 1, 17).unwrap()), None, "an ordinary Saturday");
        let due = hu.add(budapest(2026, 1, 9, 15, 0), Duration::hours(2)).unwrap();
        assert_eq!(due, budapest(2026, 1, 10, 9, 0));
        // Christmas 2026: Thursday 24 (rest day) to Sunday 27 are closed; Saturday 12 December is worked.
        let due = hu.add(budapest(2026, 12, 23, 15, 30), Duration::hours(1)).unwrap();
        assert_eq!(due, budapest(2026, 12, 28, 8, 30));
        assert!(hu.hours_on(NaiveDate::from_ymd_opt(2026, 12, 12).unwrap()).is_some());
    }

    #[test]
    fn a_start_outside_hours_waits_for_the_next_opening() {
        let hu = hungary();
        assert_eq!(hu.add(budapest(2026, 6, 5, 18, 0), Duration::minutes(30)), Some(budapest(2026, 6, 8, 8, 30)));
        assert_eq!(hu.add(budapest(2026, 6, 8, 6, 0), Duration::zero()), Some(budapest(2026, 6, 8, 6, 0)));
        assert_eq!(hu.elapsed(budapest(2026, 6, 6, 0, 0), budapest(2026, 6, 7, 23, 0)), Duration::zero(), "a weekend");
        let closed = BusinessCalendar::new(Budapest, [None; 7], &[]);
        assert_eq!(closed.add(budapest(2026, 6, 8, 9, 0), Duration::hours(1)), None);
    }

    #[test]
    fn year_files_are_checked() {
        for (file, text) in HUNGARY_YEARS {
            YearFile::parse(file, text).unwrap();
        }
        let wrong_year =
            "year = 2026\nholidays = [{ date = \"2025-01-01\", name = \"x\" }]\nrest_days = []\nworking_days = []";
        assert!(YearFile::parse("x.toml", wrong_year).is_err());
        let weekday_worked =
            "year = 2026\nholidays = []\nrest_days = []\nworking_days = [{ date = \"2026-01-09\", name = \"x\" }]";
        assert!(YearFile::parse("x.toml", weekday_worked).unwrap_err().to_string().contains("is a weekday"));
        assert!(YearFile::parse("x.toml", "year = 2026\nholidays = 3").is_err());
    }

    #[test]
    fn a_year_file_read_at_start_up_replaces_the_shipped_one() {
        let dir = std::env::temp_dir().join(format!("calendars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A pretend decree: 4 January 2027 (Monday) becomes a rest day, worked on 16 January.
        let decree = "year = 2027\nholidays = [{ date = \"2027-01-01\", name = \"Újév\" }]\n\
                      rest_days = [{ date = \"2027-01-04\", name = \"Pihenőnap\" }]\n\
                      working_days = [{ date = \"2027-01-16\", name = \"Munkanap\" }]\n";
        std::fs::write(dir.join("2027.toml"), decree).unwrap();
        std::fs::write(dir.join("README"), "not a year file").unwrap();
        let years = read_year_files(&dir).unwrap();
        let calendar = BusinessCalendar::hungary_with(years).unwrap();
        let monday = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
        assert!(hungary().hours_on(monday).is_some() && calendar.hours_on(monday).is_none());
        assert!(calendar.hours_on(NaiveDate::from_ymd_opt(2027, 1, 16).unwrap()).is_some());
        assert!(calendar.hours_on(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()).is_none(), "other years stay");
        std::fs::write(dir.join("2027-copy.toml"), decree).unwrap();
        assert!(read_year_files(&dir).unwrap_err().to_string().contains("a second file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
