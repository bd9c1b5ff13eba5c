//! `service.feedback`: citizens' and businesses' feedback, received, answered and closed.

use chrono::{Datelike, Duration, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;

use super::super::data::{self, AGENCIES, Agency, Level, article};
use super::*;

pub(super) fn feedback(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
    let scale = |n: u64| {
        if year == FIRST_YEAR {
            n
        } else {
            (n as f64 * growth).round() as u64
        }
    };
    let total = scale(article::FEEDBACK_RECEIVED);
    let answered = scale(article::FEEDBACK_ANSWERED);
    let on_time = scale(article::FEEDBACK_ON_TIME);
    // Feedback through the Tây Ninh Smart app grew through the year.
    let month_w: Vec<f64> = (0..12).map(|m| 0.6 + 0.08 * f64::from(m)).collect();
    let per_month = apportion(total, &month_w, None);
    let owners: Vec<&Agency> = AGENCIES
        .iter()
        .filter(|a| a.level != Level::Commune)
        .collect();
    let owner_w: Vec<f64> = owners
        .iter()
        .map(|a| {
            if a.level == Level::District {
                3.0
            } else {
                0.5 + a.dossier_weight / 2.0
            }
        })
        .collect();
    let mut items: Vec<(NaiveDateTime, &'static str, String)> = Vec::new();
    for (m, &n) in per_month.iter().enumerate() {
        for (i, c) in apportion(n, &owner_w, None).into_iter().enumerate() {
            for _ in 0..c {
                let ident = id(rng);
                items.push((
                    moment_in(rng, year, m as u32 + 1),
                    owners[i].code,
                    format!("PA-{year}-{}", &ident.simple().to_string()[..8]),
                ));
            }
        }
    }
    // Answered: those received before December, earlier ones more likely.
    let mut order: Vec<(f64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let w = if it.0.month() >= 12 {
                0.0
            } else {
                13.0 - f64::from(it.0.month())
            };
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (if w > 0.0 { u.powf(1.0 / w) } else { -1.0 }, i)
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut fate = vec![0u8; items.len()]; // 0 open, 1 on time, 2 late
    for (rank, &(_, i)) in order.iter().take(answered as usize).enumerate() {
        fate[i] = if (rank as u64) < on_time { 1 } else { 2 };
    }
    let mut lines: Vec<(NaiveDateTime, String)> = Vec::new();
    for (i, (at, agency, entity)) in items.iter().enumerate() {
        let due = *at + Duration::days(14);
        let channel =
            ["app", "app", "app", "zalo", "zalo", "web", "hotline"][rng.random_range(0..7)];
        let topic = data::TOPICS[rng.random_range(0..data::TOPICS.len())];
        lines.push((*at, format!(
            r#"{{"event_id":"{}","event_type":"feedback_received","entity_id":"{entity}","occurred_at":"{}","channel":"{channel}","topic":"{topic}","agency_code":"{agency}","due_at":"{}"}}"#,
            id(rng), local(*at), local(due)
        )));
        let answer = match fate[i] {
            1 => Some(*at + Duration::hours(rng.random_range(4..14 * 24))),
            2 => Some(due + Duration::hours(rng.random_range(2..18 * 24))),
            _ => None,
        };
        if let Some(t) = answer {
            lines.push((t, format!(r#"{{"event_id":"{}","event_type":"feedback_answered","entity_id":"{entity}","occurred_at":"{}"}}"#, id(rng), local(t))));
        }
    }
    lines.sort_by_key(|a| a.0);
    lines.into_iter().map(|(_, l)| l).collect()
}
