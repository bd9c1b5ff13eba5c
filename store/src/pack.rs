//! The province stream pack: the streams every kho store has, registered on first start.
//!
//! Owner sectors: `finance` (Department of Finance / State Treasury), `planning`
//! (Planning & Investment), `services` (the one-stop-shop, public-service portal and
//! citizen-feedback system).

use crate::schema::{
    ColumnDef, ColumnType as T, ConditionalRule, EventTypeDef as E, Literal, RETRACTION,
    RETRACTION_REASON, RETRACTS, ReferenceRule, StreamDef,
};

/// The stream of the code lists (`reference.codes`).
pub const CODES_STREAM: &str = "reference.codes";

/// The code list a stream's column names a code of, if any: once the list has entries in
/// [`CODES_STREAM`], an event naming a code it does not have is refused.
pub fn code_list(stream: &str, column: &str) -> Option<&'static str> {
    match (stream, column) {
        ("finance.budget", "agency_code") => Some("organisation"),
        ("finance.budget", "category_code") => Some("budget_category"),
        ("investment.projects", "investor_code") => Some("organisation"),
        ("investment.projects", "district_code") => Some("district"),
        ("service.dossiers" | "service.feedback" | "service.procedures", "agency_code") => {
            Some("organisation")
        }
        _ => None,
    }
}

/// The sectors that own streams; a sector token names one of them.
pub const SECTORS: [&str; 3] = ["finance", "planning", "services"];

/// All streams of the pack, in registration order.
pub fn province_pack() -> Vec<StreamDef> {
    [
        finance_budget(),
        investment_projects(),
        service_dossiers(),
        service_feedback(),
        service_procedures(),
        reference_targets(),
        reference_codes(),
    ]
    .into_iter()
    .map(retractable)
    .collect()
}

/// The schema version that gave every stream its retraction event type.
const RETRACTION_SINCE: u32 = 2;

/// Gives a stream the way to take out a wrong event: `event_retracted`, naming the event in
/// `retracts_event_id` and saying why in `retraction_reason` (schema version 2).
fn retractable(mut def: StreamDef) -> StreamDef {
    def.columns.extend([
        ColumnDef::new(RETRACTS, T::String).since(RETRACTION_SINCE),
        ColumnDef::new(RETRACTION_REASON, T::String).since(RETRACTION_SINCE),
    ]);
    def.event_types
        .push(E::new(RETRACTION, &[RETRACTS, RETRACTION_REASON], &[]));
    def.references.push(ReferenceRule {
        event_type: RETRACTION.into(),
        column: RETRACTS.into(),
        verb: "retracted".into(),
    });
    def.schema_version = def.schema_version.max(RETRACTION_SINCE);
    def
}

fn finance_budget() -> StreamDef {
    let amount_fields = [
        "fiscal_year",
        "agency_code",
        "flow",
        "category_code",
        "amount_vnd",
    ];
    StreamDef {
        name: "finance.budget".into(),
        owner: "finance".into(),
        description: "Budget estimates, revenue collected and expenditure paid, by agency and category; a wrong entry is reversed (or, if it should never have been sent, retracted).".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("fiscal_year", T::Integer),
            ColumnDef::new("agency_code", T::String),
            ColumnDef::new("flow", T::String).one_of_str(&["revenue", "expenditure"]),
            ColumnDef::new("category_code", T::String),
            ColumnDef::new("amount_vnd", T::Long).money(),
            ColumnDef::new("reverses_event_id", T::String),
        ],
        event_types: vec![
            E::new("estimate_assigned", &amount_fields, &[]),
            E::new("revenue_collected", &amount_fields, &[]).fixing("flow", "revenue"),
            E::new("expenditure_paid", &amount_fields, &[]).fixing("flow", "expenditure"),
            E::new("entry_reversed", &["reverses_event_id"], &[]),
        ],
        rules: vec![],
        references: vec![ReferenceRule {
            event_type: "entry_reversed".into(),
            column: "reverses_event_id".into(),
            verb: "reversed".into(),
        }],
    }
}

fn investment_projects() -> StreamDef {
    let money = ["year", "amount_vnd", "capital_source"];
    StreamDef {
        name: "investment.projects".into(),
        owner: "planning".into(),
        description: "Public-investment projects: registration, capital allocated, disbursements and status; entity_id is the project code.".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("project_name", T::String),
            ColumnDef::new("investor_code", T::String),
            ColumnDef::new("district_code", T::String),
            ColumnDef::new("group", T::String).one_of_str(&["A", "B", "C"]),
            ColumnDef::new("total_investment_vnd", T::Long).money(),
            ColumnDef::new("year", T::Integer),
            ColumnDef::new("amount_vnd", T::Long).money(),
            ColumnDef::new("capital_source", T::String).one_of_str(&["central", "local"]),
            ColumnDef::new("status", T::String).one_of_str(&[
                "preparing",
                "implementing",
                "completed",
                "suspended",
            ]),
        ],
        event_types: vec![
            E::new(
                "project_registered",
                &[
                    "project_name",
                    "investor_code",
                    "district_code",
                    "group",
                    "total_investment_vnd",
                ],
                &["status"],
            ),
            E::new("capital_allocated", &money, &[]),
            E::new("disbursement_made", &money, &[]),
            E::new("status_changed", &["status"], &[]),
        ],
        rules: vec![],
        references: vec![],
    }
}

fn service_dossiers() -> StreamDef {
    StreamDef {
        name: "service.dossiers".into(),
        owner: "services".into(),
        description: "Administrative-procedure dossiers through the one-stop shop: received, resolved, returned, withdrawn; entity_id is the dossier id.".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("procedure_code", T::String),
            ColumnDef::new("agency_code", T::String),
            ColumnDef::new("level", T::Integer).one_of_int(&[2, 3, 4]),
            ColumnDef::new("channel", T::String).one_of_str(&["counter", "online", "postal"]),
            ColumnDef::new("due_at", T::Timestamp),
            ColumnDef::new("outcome", T::String).one_of_str(&["approved", "rejected"]),
            ColumnDef::new("return_channel", T::String).one_of_str(&["counter", "postal"]),
        ],
        event_types: vec![
            E::new(
                "dossier_received",
                &["procedure_code", "agency_code", "level", "channel", "due_at"],
                &[],
            ),
            E::new("dossier_resolved", &["outcome"], &[]),
            E::new("dossier_returned", &["return_channel"], &[]),
            E::new("dossier_withdrawn", &[], &[]),
        ],
        rules: vec![ConditionalRule {
            if_column: "channel".into(),
            if_value: Literal::Str("online".into()),
            then_column: "level".into(),
            then_allowed: vec![Literal::Int(3), Literal::Int(4)],
            message: "an online dossier must have level 3 or 4".into(),
        }],
        references: vec![],
    }
}

fn service_feedback() -> StreamDef {
    StreamDef {
        name: "service.feedback".into(),
        owner: "services".into(),
        description: "Citizen and business feedback (phản ánh, kiến nghị): received, answered, closed; entity_id is the feedback id.".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("channel", T::String).one_of_str(&["app", "zalo", "web", "hotline"]),
            ColumnDef::new("topic", T::String),
            ColumnDef::new("agency_code", T::String),
            ColumnDef::new("due_at", T::Timestamp),
        ],
        event_types: vec![
            E::new(
                "feedback_received",
                &["channel", "topic", "agency_code", "due_at"],
                &[],
            ),
            E::new("feedback_answered", &[], &[]),
            E::new("feedback_closed", &[], &[]),
        ],
        rules: vec![],
        references: vec![],
    }
}

fn service_procedures() -> StreamDef {
    StreamDef {
        name: "service.procedures".into(),
        owner: "services".into(),
        description: "The catalogue of administrative procedures: published and withdrawn; entity_id is the procedure code.".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("procedure_code", T::String),
            ColumnDef::new("procedure_name", T::String),
            ColumnDef::new("agency_code", T::String),
            ColumnDef::new("level", T::Integer).one_of_int(&[1, 2, 3, 4]),
            ColumnDef::new("on_national_portal", T::Boolean),
        ],
        event_types: vec![
            E::new(
                "procedure_published",
                &[
                    "procedure_name",
                    "agency_code",
                    "level",
                    "on_national_portal",
                ],
                &["procedure_code"],
            ),
            E::new("procedure_withdrawn", &[], &["procedure_code"]),
        ],
        rules: vec![],
        references: vec![],
    }
}

fn reference_targets() -> StreamDef {
    StreamDef {
        name: "reference.targets".into(),
        owner: "planning".into(),
        description: "KPI targets set by the province (online_rate 30% for 2021, ...).".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("kpi", T::String),
            ColumnDef::new("year", T::Integer),
            ColumnDef::new("target_value", T::Double),
        ],
        event_types: vec![E::new("target_set", &["kpi", "year", "target_value"], &[])],
        rules: vec![],
        references: vec![],
    }
}

/// The code lists events name (organisations, districts, budget categories), with the names
/// people read. What the pages show beside a code.
fn reference_codes() -> StreamDef {
    StreamDef {
        name: "reference.codes".into(),
        owner: "planning".into(),
        description: "The province's code lists with the names people read: organisations (departments, district and commune people's committees), districts, budget categories. entity_id is the code; code_registered gives a code its names (a later one replaces them), code_renamed corrects them.".into(),
        schema_version: 1,
        columns: vec![
            ColumnDef::new("list", T::String).one_of_str(&[
                "organisation",
                "district",
                "budget_category",
            ]),
            ColumnDef::new("name_vi", T::String),
            ColumnDef::new("name_en", T::String),
            ColumnDef::new("kind", T::String),
            ColumnDef::new("parent_code", T::String),
        ],
        event_types: vec![
            E::new(
                "code_registered",
                &["list", "name_vi"],
                &["name_en", "kind", "parent_code"],
            ),
            E::new("code_renamed", &["list", "name_vi"], &["name_en"]),
        ],
        rules: vec![],
        references: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pack_definition_is_consistent() {
        for def in province_pack() {
            def.check().unwrap_or_else(|e| panic!("{}: {e}", def.name));
            assert!(SECTORS.contains(&def.owner.as_str()), "{}", def.name);
        }
    }
}
