//! Properties of business time on the shipped Hungarian calendar (2025-2027): whatever the
//! start and the amount, `add` and `elapsed` agree, grow with their inputs, add up over
//! splits, and never count an hour the desk is closed.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use ticket_domain::calendar::BusinessCalendar;

fn calendar() -> BusinessCalendar {
    BusinessCalendar::hungary_default().expect("the shipped calendar loads")
}

/// Instants from 2025-01-01 to 2027-12-01, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap().timestamp();
    let end = Utc.with_ymd_and_hms(2027, 12, 1, 0, 0, 0).unwrap().timestamp();
    (start..end).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// Up to 300 business hours, to the minute.
fn business() -> impl Strategy<Value = Duration> {
    (0i64..300 * 60).prop_map(Duration::minutes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn elapsed_undoes_add(start in instant(), amount in business()) {
        let calendar = calendar();
        let due = calendar.add(start, amount).expect("the calendar has open hours");
        prop_assert!(due >= start);
        prop_assert_eq!(calendar.elapsed(start, due), amount);
    }

    #[test]
    fn more_business_time_is_never_due_earlier(start in instant(), a in business(), b in business()) {
        let calendar = calendar();
        let (small, large) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(calendar.add(start, small).unwrap() <= calendar.add(start, large).unwrap());
    }

    #[test]
    fn elapsed_adds_up_over_any_split_and_never_exceeds_the_clock(a in instant(), b in instant(), c in instant()) {
        let calendar = calendar();
        let mut points = [a, b, c];
        points.sort();
        let [a, b, c] = points;
        let whole = calendar.elapsed(a, c);
        prop_assert_eq!(whole, calendar.elapsed(a, b) + calendar.elapsed(b, c));
        prop_assert!(whole <= c - a);
        prop_assert!(calendar.elapsed(a, b) <= whole, "monotonic in its end");
    }

    #[test]
    fn a_closed_minute_never_counts(start in instant()) {
        let calendar = calendar();
        let local = start.with_timezone(&calendar.time_zone);
        let counted = calendar.elapsed(start, start + Duration::minutes(1));
        let open = calendar.hours_on(local.date_naive()).is_some_and(|hours| {
            let time = local.time();
            // (No `time + 1 min`: NaiveTime wraps at midnight.)
            time >= hours.open && hours.close.signed_duration_since(time) >= Duration::minutes(1)
        });
        if open {
            prop_assert_eq!(counted, Duration::minutes(1));
        } else {
            // Closed at its start: at most the part after an opening within the minute counts.
            prop_assert!(counted < Duration::minutes(1));
        }
    }
}
