//! `reference.codes`: the names of the codes the other feeds use (agencies, project boards,
//! districts, budget categories), in Vietnamese and English, registered once, before anything
//! else of the first year (once a list has entries, kho refuses events naming other codes).

use super::super::data::{AGENCIES, DISTRICTS, EXPENDITURE, Level, REVENUE};

/// English names of the provincial departments.
const DEPARTMENTS_EN: [(&str, &str); 15] = [
    ("STP", "Department of Justice"),
    ("SXD", "Department of Construction"),
    ("STNMT", "Department of Natural Resources and Environment"),
    ("SKHDT", "Department of Planning and Investment"),
    ("STC", "Department of Finance"),
    ("SYT", "Department of Health"),
    ("SGDDT", "Department of Education and Training"),
    (
        "SLDTBXH",
        "Department of Labour, Invalids and Social Affairs",
    ),
    ("SGTVT", "Department of Transport"),
    ("SNNPTNT", "Department of Agriculture and Rural Development"),
    ("SCT", "Department of Industry and Trade"),
    ("STTTT", "Department of Information and Communications"),
    ("SVHTTDL", "Department of Culture, Sports and Tourism"),
    ("SNV", "Department of Home Affairs"),
    ("SKHCN", "Department of Science and Technology"),
];

/// English names of the budget categories.
const CATEGORIES_EN: [(&str, &str); 14] = [
    ("1001", "Personal income tax"),
    ("1052", "Corporate income tax"),
    ("1701", "Value-added tax"),
    ("2601", "Land use fees"),
    ("2001", "Fees and charges"),
    ("4901", "Other budget revenue"),
    ("6001", "Salaries"),
    ("6101", "Salary allowances"),
    ("6301", "Social contributions"),
    ("6501", "Public utility services"),
    ("6551", "Office supplies"),
    ("7001", "Professional operations"),
    ("7751", "Other expenditure"),
    ("9301", "Capital construction"),
];

/// `thành phố Tây Ninh` → `Tây Ninh city`, `thị xã Hòa Thành` → `Hòa Thành town`,
/// `huyện Tân Biên` → `Tân Biên district`.
fn place_en(vi: &str) -> String {
    for (prefix, kind) in [
        ("thành phố ", "city"),
        ("thị xã ", "town"),
        ("huyện ", "district"),
    ] {
        if let Some(name) = vi.strip_prefix(prefix) {
            return format!("{name} {kind}");
        }
    }
    vi.to_owned()
}

fn agency_en(code: &str, vi: &str) -> String {
    if let Some((_, en)) = DEPARTMENTS_EN.iter().find(|(c, _)| *c == code) {
        return (*en).to_owned();
    }
    if let Some(place) = vi.strip_prefix("UBND các phường, xã ") {
        return format!("Ward and commune committees of {}", place_en(place));
    }
    if let Some(place) = vi.strip_prefix("UBND các xã, thị trấn ") {
        return format!("Commune and township committees of {}", place_en(place));
    }
    if let Some(place) = vi.strip_prefix("UBND ") {
        return format!("People's Committee of {}", place_en(place));
    }
    vi.to_owned()
}

fn line(i: usize, code: &str, fields: &serde_json::Value) -> String {
    let mut event = serde_json::json!({
        "event_id": uuid::Uuid::from_u64_pair(0x0179_0000_0000_4000 | (0xC0DE << 16), 0x8000_0000_0000_0000 | i as u64).to_string(),
        "event_type": "code_registered",
        "entity_id": code,
        "occurred_at": "2021-01-01T07:00:00+07:00",
    });
    let o = event.as_object_mut().expect("an object");
    for (k, v) in fields.as_object().expect("an object") {
        o.insert(k.clone(), v.clone());
    }
    event.to_string()
}

/// The code registrations, once (the first year); nothing in the years after.
pub(super) fn codes(year: i32) -> Vec<String> {
    if year != super::FIRST_YEAR {
        return Vec::new();
    }
    let mut out = Vec::new();
    for a in AGENCIES {
        let (kind, parent) = match a.level {
            Level::Province => ("department", None),
            Level::District => ("district", None),
            Level::Commune => (
                "commune",
                a.code.strip_prefix("XA-").map(|d| format!("UBND-{d}")),
            ),
        };
        let mut f = serde_json::json!({"list": "organisation", "name_vi": a.name,
            "name_en": agency_en(a.code, a.name), "kind": kind});
        if let Some(p) = parent {
            f["parent_code"] = serde_json::Value::String(p);
        }
        out.push(line(out.len(), a.code, &f));
    }
    // The project management boards that invest for the province, and the two levels whose
    // procedures are shared by every district or commune.
    for (code, vi, en) in [
        (
            "CAP-HUYEN",
            "Cấp huyện (thủ tục dùng chung)",
            "District level (shared procedures)",
        ),
        (
            "CAP-XA",
            "Cấp xã (thủ tục dùng chung)",
            "Commune level (shared procedures)",
        ),
        (
            "BQLDA-DTXD",
            "Ban Quản lý dự án đầu tư xây dựng tỉnh",
            "Provincial construction investment project board",
        ),
        (
            "BQLDA-GT",
            "Ban Quản lý dự án giao thông",
            "Transport project board",
        ),
        (
            "BQLDA-NN",
            "Ban Quản lý dự án nông nghiệp và phát triển nông thôn",
            "Agriculture and rural development project board",
        ),
    ] {
        let kind = if code.starts_with("CAP-") {
            "level"
        } else {
            "project_board"
        };
        let f =
            serde_json::json!({"list": "organisation", "name_vi": vi, "name_en": en, "kind": kind});
        out.push(line(out.len(), code, &f));
    }
    for (code, vi) in DISTRICTS {
        let name_vi = format!("{}{}", vi[..1].to_uppercase(), &vi[1..]);
        let f =
            serde_json::json!({"list": "district", "name_vi": name_vi, "name_en": place_en(vi)});
        out.push(line(out.len(), code, &f));
    }
    for (code, vi, _) in REVENUE.iter().chain(EXPENDITURE.iter()) {
        let en = CATEGORIES_EN
            .iter()
            .find(|(c, _)| c == code)
            .map_or(*vi, |(_, e)| *e);
        let f = serde_json::json!({"list": "budget_category", "name_vi": vi, "name_en": en});
        out.push(line(out.len(), code, &f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_the_feeds_use_has_both_names() {
        let lines = codes(super::super::FIRST_YEAR);
        assert_eq!(
            lines.len(),
            // The agencies, 3 project boards and 2 procedure levels; districts; categories.
            AGENCIES.len() + 5 + DISTRICTS.len() + REVENUE.len() + EXPENDITURE.len()
        );
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(!v["name_vi"].as_str().unwrap().is_empty(), "{l}");
            assert!(
                v["name_en"].as_str().unwrap().is_ascii() || v["list"] != "budget_category",
                "{l}"
            );
        }
        assert!(codes(2022).is_empty());
        assert_eq!(
            agency_en("UBND-TC", "UBND huyện Tân Châu"),
            "People's Committee of Tân Châu district"
        );
        assert_eq!(
            agency_en("XA-TPTN", "UBND các phường, xã thành phố Tây Ninh"),
            "Ward and commune committees of Tây Ninh city"
        );
        assert_eq!(place_en("thị xã Hòa Thành"), "Hòa Thành town");
    }
}
