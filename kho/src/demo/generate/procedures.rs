//! `service.procedures`: the catalogue of administrative procedures, published and
//! withdrawn, and the procedure codes the dossiers use.

use chrono::{NaiveDate, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::super::data::{self, AGENCIES, Agency, Level, article};
use super::*;

/// The agency codes owning procedures.
fn procedure_agency(a: &Agency) -> &'static str {
    match a.level {
        Level::Province => a.code,
        Level::District => "CAP-HUYEN",
        Level::Commune => "CAP-XA",
    }
}

/// The procedure codes an agency's dossiers use (national format, H57 = Tây Ninh).
pub(super) fn procedure_code(agency_index: usize, n: u64) -> String {
    format!("1.{:06}.000.00.00.H57", agency_index as u64 * 1000 + n)
}

pub(super) fn procedures(rng: &mut StdRng, year: i32) -> Vec<String> {
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
