//! `reference.targets`: the province's KPI targets for a year.

pub(super) fn targets(year: i32) -> Vec<String> {
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
