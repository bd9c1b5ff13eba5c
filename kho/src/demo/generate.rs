//! The deterministic generator of the province's event feeds: same seed, same events
//! (ids included). Year 2021 reproduces the report's figures exactly; with a scale of N the
//! following years repeat the pattern with growth, so the volume is N times larger.
//!
//! Counts that the report fixes are apportioned exactly (largest remainder) over months and
//! agencies by weights; everything else is drawn from a seeded generator.

use std::fmt::Write as _;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::data::{self, AGENCIES, Agency, Level, article};

/// The first year of the demo data.
pub(crate) const FIRST_YEAR: i32 = 2021;

/// One stream's events of one year, in the order a sector system would push them.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) stream: &'static str,
    pub(crate) sector: &'static str,
    /// NDJSON lines.
    pub(crate) lines: Vec<String>,
}

/// Every feed of one year.
pub(crate) fn year(seed: u64, year: i32) -> Vec<Feed> {
    let growth = 1.0 + 0.08 * f64::from(year - FIRST_YEAR);
    vec![
        Feed {
            stream: "reference.targets",
            sector: "planning",
            lines: targets(year),
        },
        Feed {
            stream: "service.procedures",
            sector: "services",
            lines: procedures(&mut rng(seed, year, 1), year),
        },
        Feed {
            stream: "service.dossiers",
            sector: "services",
            lines: double_entries(
                &mut rng(seed, year, 6),
                dossiers(&mut rng(seed, year, 2), year, growth),
                "\"dossier_received\"",
                DOUBLE_ENTRIES,
                year,
            ),
        },
        Feed {
            stream: "service.feedback",
            sector: "services",
            lines: feedback(&mut rng(seed, year, 3), year, growth),
        },
        Feed {
            stream: "finance.budget",
            sector: "finance",
            lines: double_entries(
                &mut rng(seed, year, 7),
                budget(&mut rng(seed, year, 4), year, growth),
                "\"expenditure_paid\"",
                DOUBLE_ENTRIES,
                year,
            ),
        },
        Feed {
            stream: "investment.projects",
            sector: "planning",
            lines: projects(&mut rng(seed, year, 5), year),
        },
    ]
}

/// Events per feed that a sector system sends twice by mistake and then retracts.
pub(crate) const DOUBLE_ENTRIES: usize = 12;

/// Mistakes and their corrections: `n` lines of `kind` are sent a second time under a new
/// event id and entity (a double entry, as a clerk re-typing a form makes), and each is
/// retracted a little later in the feed with its reason. The views count none of them; the
/// log keeps them. A generator of its own, so the other events stay as they were.
fn double_entries(
    rng: &mut StdRng,
    mut lines: Vec<String>,
    kind: &str,
    n: usize,
    year: i32,
) -> Vec<String> {
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(kind))
        .collect();
    if candidates.is_empty() {
        return lines;
    }
    let mut picks: Vec<usize> = (0..n)
        .map(|_| candidates[rng.random_range(0..candidates.len())])
        .collect();
    picks.sort_unstable();
    picks.dedup();
    // From the back, so that inserting keeps the earlier positions.
    for &i in picks.iter().rev() {
        let mut wrong: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&lines[i]).expect("the generator writes JSON objects");
        let wrong_id = id(rng);
        let entity = format!("{}-NHAP-LAI", wrong["entity_id"].as_str().unwrap_or("x"));
        wrong.insert("event_id".into(), wrong_id.to_string().into());
        wrong.insert("entity_id".into(), entity.clone().into());
        let at = NaiveDateTime::parse_from_str(occurred(&lines[i]), "%Y-%m-%dT%H:%M:%S+07:00")
            .expect("the generator writes local times");
        let fixed_at = (at + Duration::days(rng.random_range(1..=5))).min(year_end(year));
        let retraction = format!(
            r#"{{"event_id":"{}","event_type":"event_retracted","entity_id":"{entity}","occurred_at":"{}","retracts_event_id":"{wrong_id}","retraction_reason":"Nhập trùng (double entry)"}}"#,
            id(rng),
            local(fixed_at)
        );
        let later = (i + 1 + rng.random_range(50..500)).min(lines.len());
        lines.insert(later, retraction);
        lines.insert(i + 1, serde_json::Value::Object(wrong).to_string());
    }
    lines
}

/// An independent generator per (seed, year, feed): feeds do not disturb each other.
fn rng(seed: u64, year: i32, feed: u64) -> StdRng {
    let mixed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(
            u64::try_from(year)
                .unwrap_or(0)
                .wrapping_mul(0xBF58_476D_1CE4_E5B9),
        )
        .wrapping_add(feed.wrapping_mul(0x94D0_49BB_1331_11EB));
    StdRng::seed_from_u64(mixed)
}

/// A deterministic event id (UUID layout v4, bits from the generator).
fn id(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Local time in Tây Ninh (UTC+7), RFC 3339.
fn local(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+07:00").to_string()
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.expect("valid").pred_opt().expect("valid").day()
}

/// A working-hours moment in the month, weekdays far more likely than weekends.
fn moment_in(rng: &mut StdRng, year: i32, month: u32) -> NaiveDateTime {
    let days = days_in_month(year, month);
    loop {
        let day = rng.random_range(1..=days);
        let date = NaiveDate::from_ymd_opt(year, month, day).expect("valid");
        let weekend = date.weekday().number_from_monday() >= 6;
        if weekend && rng.random_range(0..10) > 1 {
            continue;
        }
        let secs = rng.random_range(7 * 3600 + 1800..17 * 3600);
        return date.and_hms_opt(0, 0, 0).expect("valid") + Duration::seconds(secs);
    }
}

fn year_end(year: i32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(year, 12, 31)
        .expect("valid")
        .and_hms_opt(23, 0, 0)
        .expect("valid")
}

/// Splits `total` over `weights` in whole numbers that sum to `total` exactly, never above
/// `caps` (largest remainder).
pub(crate) fn apportion(total: u64, weights: &[f64], caps: Option<&[u64]>) -> Vec<u64> {
    let mut out = vec![0u64; weights.len()];
    let mut left = total;
    // A few rounds: caps may push shares elsewhere.
    for _ in 0..8 {
        if left == 0 {
            break;
        }
        let room = |i: usize, out: &[u64]| caps.map_or(u64::MAX, |c| c[i].saturating_sub(out[i]));
        let sum: f64 = (0..weights.len())
            .filter(|&i| room(i, &out) > 0)
            .map(|i| weights[i])
            .sum();
        if sum <= 0.0 {
            break;
        }
        let mut rema: Vec<(f64, usize)> = Vec::new();
        let mut given = 0;
        for i in 0..weights.len() {
            if room(i, &out) == 0 {
                continue;
            }
            let ideal = left as f64 * weights[i] / sum;
            let whole = (ideal.floor() as u64).min(room(i, &out));
            out[i] += whole;
            given += whole;
            rema.push((ideal - ideal.floor(), i));
        }
        left -= given;
        rema.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in rema {
            if left == 0 {
                break;
            }
            if room(i, &out) > 0 {
                out[i] += 1;
                left -= 1;
            }
        }
    }
    assert_eq!(left, 0, "the caps leave no room for {total}");
    out
}

fn targets(year: i32) -> Vec<String> {
    // online_rate is the province's 2021 target (over 30%); the other two are the demo's
    // assumptions: budget estimates met, 95% of public-investment capital disbursed.
    [("online_rate", 0.30), ("execution_rate", 1.0), ("disbursement_rate", 0.95)]
        .iter()
        .enumerate()
        .map(|(i, (kpi, value))| {
            format!(
                r#"{{"event_id":"{}","event_type":"target_set","entity_id":"{kpi}-{year}","occurred_at":"{year}-01-0{}T08:00:00+07:00","kpi":"{kpi}","year":{year},"target_value":{value}}}"#,
                uuid::Uuid::from_u64_pair(0x0179_0000_0000_4000 | u64::try_from(year).unwrap_or(0) << 16, 0x8000_0000_0000_0000 | i as u64),
                i + 2
            )
        })
        .collect()
}

/// The agency codes owning procedures.
fn procedure_agency(a: &Agency) -> &'static str {
    match a.level {
        Level::Province => a.code,
        Level::District => "CAP-HUYEN",
        Level::Commune => "CAP-XA",
    }
}

/// The procedure codes an agency's dossiers use (national format, H57 = Tây Ninh).
fn procedure_code(agency_index: usize, n: u64) -> String {
    format!("1.{:06}.000.00.00.H57", agency_index as u64 * 1000 + n)
}

fn procedures(rng: &mut StdRng, year: i32) -> Vec<String> {
    if year != FIRST_YEAR {
        return Vec::new(); // the catalogue is published once; later years add volume elsewhere
    }
    let withdrawn = 37;
    let total = article::PROCEDURES_PUBLISHED + withdrawn;
    // Departments own most procedures; district and commune procedures are shared codes.
    let owners: Vec<(usize, &Agency)> = AGENCIES
        .iter()
        .enumerate()
        .filter(|(_, a)| a.level != Level::Commune || a.code == "XA-TPTN")
        .collect();
    let owner_weights: Vec<f64> = owners
        .iter()
        .map(|(_, a)| {
            if a.level == Level::Province {
                1.0 + a.dossier_weight
            } else {
                3.0
            }
        })
        .collect();
    let per_owner = apportion(total, &owner_weights, None);
    let mut all: Vec<(String, &'static str, String)> = Vec::new();
    for ((index, agency), n) in owners.iter().zip(per_owner) {
        for k in 0..n {
            let subject =
                data::PROCEDURE_SUBJECTS[rng.random_range(0..data::PROCEDURE_SUBJECTS.len())];
            all.push((
                procedure_code(*index, k),
                procedure_agency(agency),
                format!("{subject} ({})", agency.name),
            ));
        }
    }
    all.shuffle(rng);
    let (gone, kept) = all.split_at(withdrawn as usize);
    // 1,000 of the procedures kept reach the national portal: 600 from the start, 400
    // integrated during the year (published again with the flag set).
    let mut out = Vec::new();
    let mut later = Vec::new();
    for (i, (code, agency, name)) in kept.iter().chain(gone.iter()).enumerate() {
        let on_portal = (i as u64) < article::PROCEDURES_ON_PORTAL;
        let from_start = on_portal && i < 600;
        let at = NaiveDate::from_ymd_opt(year, 1, rng.random_range(4..=8))
            .expect("valid")
            .and_hms_opt(8, 0, 0)
            .expect("valid");
        out.push(publish(rng, code, agency, name, from_start, at));
        if on_portal && !from_start {
            let m = rng.random_range(3..=11);
            let at = moment_in(rng, year, m);
            later.push(publish(rng, code, agency, name, true, at));
        }
    }
    for (code, _, _) in gone {
        let at = {
            let m = rng.random_range(4..=10);
            moment_in(rng, year, m)
        };
        later.push(format!(
            r#"{{"event_id":"{}","event_type":"procedure_withdrawn","entity_id":"{code}","occurred_at":"{}","procedure_code":"{code}"}}"#,
            id(rng),
            local(at)
        ));
    }
    later.sort_by(|a, b| occurred(a).cmp(occurred(b)));
    out.extend(later);
    out
}

fn publish(
    rng: &mut StdRng,
    code: &str,
    agency: &str,
    name: &str,
    portal: bool,
    at: NaiveDateTime,
) -> String {
    format!(
        r#"{{"event_id":"{}","event_type":"procedure_published","entity_id":"{code}","occurred_at":"{}","procedure_code":"{code}","procedure_name":"{name}","agency_code":"{agency}","level":4,"on_national_portal":{portal}}}"#,
        id(rng),
        local(at)
    )
}

/// The `occurred_at` text of a generated line (for ordering lines by time).
fn occurred(line: &str) -> &str {
    let start = line.find("\"occurred_at\":\"").map_or(0, |i| i + 15);
    &line[start..start + 25]
}

/// What to emit for one dossier.
struct Dossier {
    received: NaiveDateTime,
    agency: usize,
    channel: &'static str,
    level: u32,
    return_postal: bool,
}

fn dossiers(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
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

fn feedback(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
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

/// Monthly shares of a year's amount: salaries flat, revenue with a year-end surge,
/// investment spending late in the year.
fn monthly_shares(kind: &str) -> [f64; 12] {
    match kind {
        "flat" => [1.0; 12],
        "revenue" => [
            0.9, 0.7, 1.0, 1.0, 0.95, 1.0, 0.85, 0.8, 0.9, 1.05, 1.2, 1.65,
        ],
        _ => [0.3, 0.4, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8, 1.1, 1.4, 1.6, 2.1],
    }
}

fn budget(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
    let bn = 1_000_000_000_i64; // VND per billion
    let mut ledger = Ledger {
        year,
        voucher: 0,
        lines: Vec::new(),
    };
    // Revenue: collected by the Department of Finance (province level) and each district.
    let mut book: Vec<(
        &'static str,
        &'static str,
        &'static str,
        i64,
        f64,
        &'static str,
    )> = Vec::new();
    let revenue_total = 9_300.0 * growth;
    for a in AGENCIES
        .iter()
        .filter(|a| a.code == "STC" || a.level == Level::District)
    {
        let share = if a.code == "STC" {
            0.55
        } else {
            0.45 * a.dossier_weight / 27.0
        };
        for (code, _, cat_share) in data::REVENUE {
            let estimate =
                (revenue_total * share * cat_share * rng.random_range(0.9..1.1) * bn as f64) as i64;
            let execution = rng.random_range(0.82..1.18);
            book.push((a.code, "revenue", code, estimate, execution, "revenue"));
        }
    }
    // Expenditure: every department and district.
    let spend_total = 11_200.0 * growth;
    let weight_sum: f64 = AGENCIES
        .iter()
        .filter(|a| a.level != Level::Commune)
        .map(|a| 1.0 + a.dossier_weight)
        .sum();
    for a in AGENCIES.iter().filter(|a| a.level != Level::Commune) {
        let share = (1.0 + a.dossier_weight) / weight_sum;
        for (code, _, cat_share) in data::EXPENDITURE {
            let estimate =
                (spend_total * share * cat_share * rng.random_range(0.85..1.15) * bn as f64) as i64;
            // Some agencies spend slowly; investment spending lags most.
            let execution = if code == "9301" {
                rng.random_range(0.55..0.98)
            } else {
                rng.random_range(0.78..1.02)
            };
            let pattern = match code {
                "6001" | "6101" | "6301" => "flat",
                "9301" | "7001" => "capex",
                _ => "flat",
            };
            book.push((a.code, "expenditure", code, estimate, execution, pattern));
        }
    }
    for &(agency, flow, category, estimate, execution, pattern) in &book {
        let at = NaiveDate::from_ymd_opt(year, 1, rng.random_range(4..=12))
            .expect("valid")
            .and_hms_opt(9, 0, 0)
            .expect("valid");
        ledger.entry(
            rng,
            "estimate_assigned",
            at,
            agency,
            flow,
            category,
            estimate.max(1),
            at,
        );
        // A supplementary estimate for some lines in July.
        if rng.random_bool(0.15) {
            let at = moment_in(rng, year, 7);
            let extra = (estimate as f64 * rng.random_range(0.05..0.2)) as i64;
            ledger.entry(
                rng,
                "estimate_assigned",
                at,
                agency,
                flow,
                category,
                extra.max(1),
                at,
            );
        }
        let shares = monthly_shares(pattern);
        let share_sum: f64 = shares.iter().sum();
        let actual_total = estimate as f64 * execution;
        let kind = if flow == "revenue" {
            "revenue_collected"
        } else {
            "expenditure_paid"
        };
        for (m, s) in shares.iter().enumerate() {
            let month_amount = actual_total * s / share_sum;
            let pieces = rng.random_range(2..=6);
            for _ in 0..pieces {
                let amount = (month_amount / f64::from(pieces) * rng.random_range(0.7..1.3)) as i64;
                if amount <= 0 {
                    continue;
                }
                let at = moment_in(rng, year, m as u32 + 1);
                // 2% come in two months late (a district treasury catching up).
                let push_at = if m < 10 && rng.random_bool(0.02) {
                    at + Duration::days(62)
                } else {
                    at
                };
                let first = ledger.entry(rng, kind, at, agency, flow, category, amount, push_at);
                // 1.5% are wrong and corrected: reversed, then posted again.
                if rng.random_bool(0.015) {
                    let fix_at = push_at + Duration::days(rng.random_range(3..20));
                    ledger.reverse(rng, fix_at, first);
                    let corrected = (amount as f64 * rng.random_range(0.8..1.2)) as i64;
                    ledger.entry(
                        rng,
                        kind,
                        at,
                        agency,
                        flow,
                        category,
                        corrected.max(1),
                        fix_at + Duration::minutes(5),
                    );
                }
            }
        }
    }
    ledger.lines.sort_by_key(|a| a.0);
    ledger.lines.into_iter().map(|(_, l)| l).collect()
}

/// Budget entries as the treasury posts them: numbered vouchers.
struct Ledger {
    year: i32,
    voucher: u64,
    /// (push time, line)
    lines: Vec<(NaiveDateTime, String)>,
}

impl Ledger {
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        rng: &mut StdRng,
        ty: &str,
        at: NaiveDateTime,
        agency: &str,
        flow: &str,
        category: &str,
        amount: i64,
        push_at: NaiveDateTime,
    ) -> uuid::Uuid {
        self.voucher += 1;
        let ident = id(rng);
        let (year, voucher) = (self.year, self.voucher);
        self.lines.push((push_at, format!(
            r#"{{"event_id":"{ident}","event_type":"{ty}","entity_id":"KB-{year}-{voucher:07}","occurred_at":"{}","fiscal_year":{year},"agency_code":"{agency}","flow":"{flow}","category_code":"{category}","amount_vnd":{amount}}}"#,
            local(at)
        )));
        ident
    }

    fn reverse(&mut self, rng: &mut StdRng, at: NaiveDateTime, target: uuid::Uuid) {
        self.voucher += 1;
        let ident = id(rng);
        let (year, voucher) = (self.year, self.voucher);
        self.lines.push((at, format!(
            r#"{{"event_id":"{ident}","event_type":"entry_reversed","entity_id":"KB-{year}-{voucher:07}","occurred_at":"{}","reverses_event_id":"{target}"}}"#,
            local(at)
        )));
    }
}

/// A project group: name, projects a year, total investment range (bn VND), share of the
/// total allocated in the year.
type Cohort = (&'static str, usize, (i64, i64), (f64, f64));

fn projects(rng: &mut StdRng, year: i32) -> Vec<String> {
    let bn = 1_000_000_000_i64;
    let mut lines: Vec<(NaiveDateTime, String)> = Vec::new();
    let ev = |rng: &mut StdRng,
              at: NaiveDateTime,
              body: String,
              lines: &mut Vec<(NaiveDateTime, String)>| {
        let ident = id(rng);
        lines.push((
            at,
            format!(
                r#"{{"event_id":"{ident}","occurred_at":"{}",{body}}}"#,
                local(at)
            ),
        ));
    };
    let status_changed = |rng: &mut StdRng,
                          at: NaiveDateTime,
                          code: &str,
                          status: &str,
                          lines: &mut Vec<(NaiveDateTime, String)>| {
        ev(
            rng,
            at,
            format!(r#""event_type":"status_changed","entity_id":"{code}","status":"{status}""#),
            lines,
        );
    };
    let groups: [Cohort; 3] = [
        ("A", 4, (2_400, 5_800), (0.06, 0.14)),
        ("B", 40, (130, 2_200), (0.15, 0.40)),
        ("C", 120, (4, 115), (0.45, 1.0)),
    ];
    let mut n = 0;
    for (group, count, (lo, hi), (alloc_lo, alloc_hi)) in groups {
        for k in 0..count {
            n += 1;
            let code = format!("DA-{year}-{n:03}");
            let (district, district_name) =
                data::DISTRICTS[rng.random_range(0..data::DISTRICTS.len())];
            let name = match group {
                "A" => data::PROJECTS_A[k % data::PROJECTS_A.len()].to_owned(),
                "B" => format!(
                    "{} {district_name}",
                    data::PROJECTS_B[rng.random_range(0..data::PROJECTS_B.len())]
                ),
                _ => format!(
                    "{} {district_name}",
                    data::PROJECTS_C[rng.random_range(0..data::PROJECTS_C.len())]
                ),
            };
            let investor = match group {
                "A" | "B" => {
                    ["BQLDA-DTXD", "BQLDA-GT", "BQLDA-NN"][rng.random_range(0..3)].to_owned()
                }
                _ => format!("UBND-{district}"),
            };
            let total = rng.random_range(lo..=hi) * bn;
            let carried = group != "C" && rng.random_bool(0.5);
            let status = if carried { "implementing" } else { "preparing" };
            let reg_at = moment_in(rng, year, 1);
            ev(
                rng,
                reg_at,
                format!(
                    r#""event_type":"project_registered","entity_id":"{code}","project_name":"{name}","investor_code":"{investor}","district_code":"{district}","group":"{group}","total_investment_vnd":{total},"status":"{status}""#
                ),
                &mut lines,
            );
            let allocated = (total as f64 * rng.random_range(alloc_lo..alloc_hi)) as i64;
            let central = if group == "C" {
                0
            } else {
                (allocated as f64 * rng.random_range(0.2..0.6)) as i64
            };
            for (source, amount) in [("central", central), ("local", allocated - central)] {
                if amount > 0 {
                    let at = {
                        let m = rng.random_range(1..=2);
                        moment_in(rng, year, m)
                    };
                    ev(
                        rng,
                        at,
                        format!(
                            r#""event_type":"capital_allocated","entity_id":"{code}","year":{year},"amount_vnd":{amount},"capital_source":"{source}""#
                        ),
                        &mut lines,
                    );
                }
            }
            if !carried {
                let at = {
                    let m = rng.random_range(2..=5);
                    moment_in(rng, year, m)
                };
                status_changed(rng, at, &code, "implementing", &mut lines);
            }
            // Disbursement slow in the first half, heavy at year end.
            let rate = if rng.random_bool(0.15) {
                rng.random_range(0.3..0.6)
            } else {
                rng.random_range(0.7..1.0)
            };
            let shares = monthly_shares("capex");
            // Some months see no payment; the others carry the year's plan.
            let months: Vec<usize> = (0..12).filter(|_| !rng.random_bool(0.25)).collect();
            let sum: f64 = months
                .iter()
                .map(|&m| shares[m])
                .sum::<f64>()
                .max(f64::MIN_POSITIVE);
            for m in months {
                let s = shares[m];
                let amount = (allocated as f64 * rate * s / sum) as i64;
                if amount > 0 {
                    let at = moment_in(rng, year, m as u32 + 1);
                    let source = if central > 0 && rng.random_bool(0.4) {
                        "central"
                    } else {
                        "local"
                    };
                    ev(
                        rng,
                        at,
                        format!(
                            r#""event_type":"disbursement_made","entity_id":"{code}","year":{year},"amount_vnd":{amount},"capital_source":"{source}""#
                        ),
                        &mut lines,
                    );
                }
            }
            // A few stop in the COVID-19 wave and restart in the autumn; many small ones finish.
            if rng.random_bool(0.04) {
                let at = moment_in(rng, year, 7);
                status_changed(rng, at, &code, "suspended", &mut lines);
                let at = moment_in(rng, year, 10);
                status_changed(rng, at, &code, "implementing", &mut lines);
            }
            if group == "C" && rng.random_bool(0.35) {
                let at = {
                    let m = rng.random_range(10..=12);
                    moment_in(rng, year, m)
                };
                status_changed(rng, at, &code, "completed", &mut lines);
            }
        }
    }
    lines.sort_by_key(|a| a.0);
    lines.into_iter().map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_capped() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0], None), vec![4, 3, 3]);
        assert_eq!(apportion(7, &[1.0, 0.0, 3.0], None).iter().sum::<u64>(), 7);
        assert_eq!(apportion(10, &[5.0, 1.0], Some(&[3, 100])), vec![3, 7]);
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let digest = |seed: u64| {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for f in year(seed, FIRST_YEAR) {
                h.update(f.stream.as_bytes());
                for l in &f.lines {
                    h.update(l.as_bytes());
                    h.update(b"\n");
                }
            }
            h.finalize()
        };
        assert_eq!(digest(7), digest(7));
        assert_ne!(digest(7), digest(8));
    }

    #[test]
    fn year_2021_has_the_report_counts() {
        let feeds = year(2021, FIRST_YEAR);
        // The lines as the views count them: without the double entries and their retractions.
        let lines = |s: &str| {
            let all = &feeds.iter().find(|f| f.stream == s).unwrap().lines;
            let retracted: Vec<String> = all
                .iter()
                .filter(|l| l.contains("\"event_retracted\""))
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["retracts_event_id"].as_str().unwrap().to_owned()
                })
                .collect();
            if s == "service.dossiers" || s == "finance.budget" {
                assert_eq!(retracted.len(), DOUBLE_ENTRIES, "{s}");
            }
            all.iter()
                .filter(|l| {
                    !l.contains("\"event_retracted\"")
                        && !retracted.iter().any(|r| l.contains(r.as_str()))
                })
                .cloned()
                .collect::<Vec<String>>()
        };
        let count =
            |ls: &[String], needle: &str| ls.iter().filter(|l| l.contains(needle)).count() as u64;
        let d = lines("service.dossiers");
        assert_eq!(
            count(&d, "\"dossier_received\""),
            article::DOSSIERS_RECEIVED
        );
        assert_eq!(
            count(&d, "\"channel\":\"online\""),
            article::DOSSIERS_ONLINE
        );
        assert_eq!(
            count(&d, "\"channel\":\"postal\"") + count(&d, "\"return_channel\":\"postal\""),
            article::DOSSIERS_POSTAL
        );
        let f = lines("service.feedback");
        assert_eq!(
            count(&f, "\"feedback_received\""),
            article::FEEDBACK_RECEIVED
        );
        assert_eq!(
            count(&f, "\"feedback_answered\""),
            article::FEEDBACK_ANSWERED
        );
        // Every line is valid JSON with an occurred_at the push order respects for the
        // time-sorted feeds.
        for l in d.iter().take(1000) {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
}
