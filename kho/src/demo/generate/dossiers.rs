//! `service.dossiers`: the year's dossiers, apportioned exactly over months and agencies,
//! each with its receipt, resolution, return or withdrawal.

use std::fmt::Write as _;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;

use super::super::data::{self, AGENCIES, Level, article};
use super::procedures::procedure_code;
use super::*;

/// What to emit for one dossier.
struct Dossier {
    received: NaiveDateTime,
    agency: usize,
    channel: &'static str,
    level: u32,
    return_postal: bool,
}

pub(super) fn dossiers(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
    let scale = |n: u64| {
        if year == FIRST_YEAR {
            n
        } else {
            (n as f64 * growth).round() as u64
        }
    };
    let per_month = apportion(
        scale(article::DOSSIERS_RECEIVED),
        &data::MONTH_WEIGHTS,
        None,
    );
    // Cells: month x agency.
    let mut cells: Vec<(u32, usize, u64)> = Vec::new();
    let agency_weights: Vec<f64> = AGENCIES.iter().map(|a| a.dossier_weight).collect();
    for (m, &n) in per_month.iter().enumerate() {
        for (i, c) in apportion(n, &agency_weights, None).into_iter().enumerate() {
            cells.push((m as u32 + 1, i, c));
        }
    }
    let counts: Vec<u64> = cells.iter().map(|c| c.2).collect();
    // Online use grows through the year.
    let online_w: Vec<f64> = cells
        .iter()
        .map(|&(m, a, n)| n as f64 * AGENCIES[a].online * (0.75 + 0.5 * f64::from(m - 1) / 11.0))
        .collect();
    let online = apportion(scale(article::DOSSIERS_ONLINE), &online_w, Some(&counts));
    let postal_w: Vec<f64> = cells
        .iter()
        .map(|&(_, a, n)| {
            n as f64
                * if AGENCIES[a].level == Level::Province {
                    3.0
                } else {
                    1.0
                }
        })
        .collect();
    let room: Vec<u64> = counts.iter().zip(&online).map(|(n, o)| n - o).collect();
    let postal = apportion(scale(article::DOSSIERS_POSTAL), &postal_w, Some(&room));

    let mut lines: Vec<(NaiveDateTime, String)> =
        Vec::with_capacity(counts.iter().sum::<u64>() as usize * 2);
    let late_agency = AGENCIES
        .iter()
        .position(|a| a.code == "UBND-TC")
        .expect("known");
    for (((month, agency, n), online), postal) in cells.into_iter().zip(online).zip(postal) {
        // Half the postal dossiers come in by post; the others go back by post.
        let by_post = postal.div_ceil(2);
        let returns = postal - by_post;
        for k in 0..n {
            let (channel, level) = if k < online {
                ("online", if rng.random_bool(0.7) { 4 } else { 3 })
            } else if k < online + by_post {
                ("postal", rng.random_range(2..=3))
            } else {
                ("counter", [2, 2, 2, 3, 3, 4][rng.random_range(0..6)])
            };
            let d = Dossier {
                received: moment_in(rng, year, month),
                agency,
                channel,
                level,
                return_postal: k >= online + by_post && k < online + by_post + returns,
            };
            emit_dossier(rng, year, &d, &mut lines, late_agency);
        }
    }
    lines.sort_by_key(|a| a.0);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// Emits one dossier's events with their push times.
fn emit_dossier(
    rng: &mut StdRng,
    year: i32,
    d: &Dossier,
    out: &mut Vec<(NaiveDateTime, String)>,
    late_agency: usize,
) {
    let agency = &AGENCIES[d.agency];
    let days = rng.random_range(3..=20);
    let due = (d.received + Duration::days(days))
        .date()
        .and_hms_opt(17, 0, 0)
        .expect("valid");
    // A late-reporting district pushes its July and August events in October.
    let push_time = |t: NaiveDateTime| {
        if d.agency == late_agency && matches!(t.month(), 7 | 8) && t.year() == year {
            NaiveDate::from_ymd_opt(year, 10, 2)
                .expect("valid")
                .and_hms_opt(6, 0, 0)
                .expect("valid")
                + Duration::seconds(t.and_utc().timestamp() % 86_400)
        } else {
            t
        }
    };
    let code = procedure_code(d.agency, rng.random_range(0..40));
    let ident = id(rng);
    let entity = format!("HS-{year}-{}", &ident.simple().to_string()[..12]);
    let mut line = String::with_capacity(300);
    let _ = write!(
        line,
        r#"{{"event_id":"{ident}","event_type":"dossier_received","entity_id":"{entity}","occurred_at":"{}","procedure_code":"{code}","agency_code":"{}","level":{},"channel":"{}","due_at":"{}"}}"#,
        local(d.received),
        agency.code,
        d.level,
        d.channel,
        local(due)
    );
    out.push((push_time(d.received), line));
    let end = year_end(year);
    // A dossier whose result goes back by post is resolved (within the year) and returned.
    if !d.return_postal && rng.random_bool(0.008) {
        let at = d.received + Duration::hours(rng.random_range(20..120));
        if at <= end {
            out.push((push_time(at), format!(r#"{{"event_id":"{}","event_type":"dossier_withdrawn","entity_id":"{entity}","occurred_at":"{}"}}"#, id(rng), local(at))));
            return;
        }
    }
    let on_time = rng.random_bool(agency.on_time);
    let mut at = if on_time {
        let span = (due - d.received).num_minutes().max(60);
        d.received + Duration::minutes(rng.random_range(span / 4..span))
    } else {
        due + Duration::hours(rng.random_range(20..240))
    };
    if at > end {
        if !d.return_postal {
            return; // still being processed at the end of the year
        }
        at = end - Duration::hours(4);
    }
    let outcome = if rng.random_bool(0.96) {
        "approved"
    } else {
        "rejected"
    };
    out.push((push_time(at), format!(r#"{{"event_id":"{}","event_type":"dossier_resolved","entity_id":"{entity}","occurred_at":"{}","outcome":"{outcome}"}}"#, id(rng), local(at))));
    if d.return_postal {
        let back = (at + Duration::hours(rng.random_range(2..48))).min(end);
        out.push((push_time(back), format!(r#"{{"event_id":"{}","event_type":"dossier_returned","entity_id":"{entity}","occurred_at":"{}","return_channel":"postal"}}"#, id(rng), local(back))));
    }
}
