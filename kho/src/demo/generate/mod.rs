//! The deterministic generator of the province's event feeds: same seed, same events
//! (ids included). Year 2021 reproduces the report's figures exactly; with a scale of N the
//! following years repeat the pattern with growth, so the volume is N times larger.
//!
//! Counts that the report fixes are apportioned exactly (largest remainder) over months and
//! agencies by weights; everything else is drawn from a seeded generator.

mod budget;
mod codes;
mod dossiers;
mod feedback;
mod procedures;
mod projects;
mod targets;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
            stream: "reference.codes",
            sector: "planning",
            lines: codes::codes(year),
        },
        Feed {
            stream: "reference.targets",
            sector: "planning",
            lines: targets::targets(year),
        },
        Feed {
            stream: "service.procedures",
            sector: "services",
            lines: procedures::procedures(&mut rng(seed, year, 1), year),
        },
        Feed {
            stream: "service.dossiers",
            sector: "services",
            lines: double_entries(
                &mut rng(seed, year, 6),
                dossiers::dossiers(&mut rng(seed, year, 2), year, growth),
                "\"dossier_received\"",
                DOUBLE_ENTRIES,
                year,
            ),
        },
        Feed {
            stream: "service.feedback",
            sector: "services",
            lines: feedback::feedback(&mut rng(seed, year, 3), year, growth),
        },
        Feed {
            stream: "finance.budget",
            sector: "finance",
            lines: double_entries(
                &mut rng(seed, year, 7),
                budget::budget(&mut rng(seed, year, 4), year, growth),
                "\"expenditure_paid\"",
                DOUBLE_ENTRIES,
                year,
            ),
        },
        Feed {
            stream: "investment.projects",
            sector: "planning",
            lines: projects::projects(&mut rng(seed, year, 5), year),
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

/// The `occurred_at` text of a generated line (for ordering lines by time).
fn occurred(line: &str) -> &str {
    let start = line.find("\"occurred_at\":\"").map_or(0, |i| i + 15);
    &line[start..start + 25]
}

#[cfg(test)]
mod tests {
    use super::super::data::article;
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
