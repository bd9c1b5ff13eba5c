//! `finance.budget`: estimates, revenue collected and expenditure paid as the treasury posts
//! them, with late entries and reversals.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;

use super::super::data::{self, AGENCIES, Level};
use super::*;

/// Monthly shares of a year's amount: salaries flat, revenue with a year-end surge,
/// investment spending late in the year.
pub(super) fn monthly_shares(kind: &str) -> [f64; 12] {
    match kind {
        "flat" => [1.0; 12],
        "revenue" => [
            0.9, 0.7, 1.0, 1.0, 0.95, 1.0, 0.85, 0.8, 0.9, 1.05, 1.2, 1.65,
        ],
        _ => [0.3, 0.4, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8, 1.1, 1.4, 1.6, 2.1],
    }
}

pub(super) fn budget(rng: &mut StdRng, year: i32, growth: f64) -> Vec<String> {
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
