//! `investment.projects`: public-investment projects, their allocations, disbursements and
//! status changes.

use chrono::NaiveDateTime;
use rand::Rng;
use rand::rngs::StdRng;

use super::super::data;
use super::budget::monthly_shares;
use super::*;

/// A project group: name, projects a year, total investment range (bn VND), share of the
/// total allocated in the year.
type Cohort = (&'static str, usize, (i64, i64), (f64, f64));

pub(super) fn projects(rng: &mut StdRng, year: i32) -> Vec<String> {
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
