//! The controlled vocabularies of the catalog: owners and publishing bodies, licences,
//! DCAT themes, and URL slugs of Vietnamese names.

/// The sector that owns a view, by its source stream.
pub fn view_owner(view: &str) -> Option<&'static str> {
    match view {
        "budget_execution" => Some("finance"),
        "investment_disbursement" => Some("planning"),
        "service_dossiers" | "service_feedback" | "service_procedures" => Some("services"),
        _ => None,
    }
}

/// The body publishing a dataset of an owner, when the spec names none: (slug, name).
pub fn organization(owner: &str) -> (&'static str, &'static str) {
    match owner {
        "finance" => ("so-tai-chinh", "Sở Tài chính tỉnh Tây Ninh"),
        "planning" => (
            "so-ke-hoach-va-dau-tu",
            "Sở Kế hoạch và Đầu tư tỉnh Tây Ninh",
        ),
        "services" => (
            "trung-tam-phuc-vu-hanh-chinh-cong",
            "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh",
        ),
        _ => (
            "trung-tam-ioc",
            "Trung tâm Giám sát, điều hành tập trung tỉnh Tây Ninh",
        ),
    }
}

/// The licences a dataset may carry: CKAN id, title, URL.
pub const LICENSES: [(&str, &str, &str); 6] = [
    (
        "cc-by-4.0",
        "Creative Commons Attribution 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    (
        "cc-by-sa-4.0",
        "Creative Commons Attribution Share-Alike 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    (
        "cc-zero",
        "Creative Commons CCZero",
        "https://creativecommons.org/publicdomain/zero/1.0/",
    ),
    (
        "odc-by",
        "Open Data Commons Attribution License",
        "https://opendatacommons.org/licenses/by/1-0/",
    ),
    (
        "odc-odbl",
        "Open Data Commons Open Database License (ODbL)",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
    (
        "other-closed",
        "Other (Not Open)",
        "https://opendefinition.org/",
    ),
];

/// The EU data themes (DCAT-AP `dcat:theme`): code, English label.
pub const THEMES: [(&str, &str); 13] = [
    ("AGRI", "Agriculture, fisheries, forestry and food"),
    ("ECON", "Economy and finance"),
    ("EDUC", "Education, culture and sport"),
    ("ENER", "Energy"),
    ("ENVI", "Environment"),
    ("GOVE", "Government and public sector"),
    ("HEAL", "Health"),
    ("INTR", "International issues"),
    ("JUST", "Justice, legal system and public safety"),
    ("REGI", "Regions and cities"),
    ("SOCI", "Population and society"),
    ("TECH", "Science and technology"),
    ("TRAN", "Transport"),
];

/// A URL-safe slug of a name (ASCII letters, digits, dashes; Vietnamese letters folded).
pub fn slug_of(name: &str) -> String {
    let folded: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'à' | 'á' | 'ả' | 'ã' | 'ạ' | 'ă' | 'ằ' | 'ắ' | 'ẳ' | 'ẵ' | 'ặ' | 'â' | 'ầ' | 'ấ'
            | 'ẩ' | 'ẫ' | 'ậ' => 'a',
            'è' | 'é' | 'ẻ' | 'ẽ' | 'ẹ' | 'ê' | 'ề' | 'ế' | 'ể' | 'ễ' | 'ệ' => {
                'e'
            }
            'ì' | 'í' | 'ỉ' | 'ĩ' | 'ị' => 'i',
            'ò' | 'ó' | 'ỏ' | 'õ' | 'ọ' | 'ô' | 'ồ' | 'ố' | 'ổ' | 'ỗ' | 'ộ' | 'ơ' | 'ờ' | 'ớ'
            | 'ở' | 'ỡ' | 'ợ' => 'o',
            'ù' | 'ú' | 'ủ' | 'ũ' | 'ụ' | 'ư' | 'ừ' | 'ứ' | 'ử' | 'ữ' | 'ự' => {
                'u'
            }
            'ỳ' | 'ý' | 'ỷ' | 'ỹ' | 'ỵ' => 'y',
            'đ' => 'd',
            c => c,
        })
        .collect::<String>();
    let mut out = String::new();
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_vietnamese() {
        assert_eq!(
            slug_of("Sở Tài chính tỉnh Tây Ninh"),
            "so-tai-chinh-tinh-tay-ninh"
        );
        assert_eq!(slug_of("Đường ĐT.781"), "duong-dt-781");
    }
}
