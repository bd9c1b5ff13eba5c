//! `GET /catalog.jsonld`: the catalog as DCAT-AP 3 JSON-LD, for harvesters. Only the
//! datasets the caller may pull appear.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use kho_catalog::Dataset;
use kho_catalog::dataset::{LICENSES, THEMES};
use serde_json::{Value, json};

use crate::auth::MaybeCaller;
use crate::routes::catalog::base_url;
use crate::state::AppState;

fn lang(vi: &str, en: &str) -> Value {
    json!([{"@value": vi, "@language": "vi"}, {"@value": en, "@language": "en"}])
}

fn license_url(id: &str) -> &'static str {
    LICENSES
        .iter()
        .find(|l| l.0 == id)
        .map_or("https://opendefinition.org/", |l| l.2)
}

/// The distributions of a dataset: one per download format.
const FORMATS: [(&str, &str, &str); 3] = [
    ("csv", "CSV", "text/csv"),
    ("json", "JSON", "application/json"),
    ("parquet", "PARQUET", "application/vnd.apache.parquet"),
];

fn dataset(d: &Dataset, base: &str) -> Value {
    let m = &d.spec.metadata;
    let url = format!("{base}/v1/catalog/datasets/{}", d.spec.id);
    let (org_slug, org_name) = d.publisher();
    let license = json!({"@id": license_url(&m.license)});
    let issued = d.releases.first().map(|r| r.created_at.to_rfc3339());
    let modified = d.releases.last().map(|r| r.created_at.to_rfc3339());
    let mut v = json!({
        "@id": url,
        "@type": "dcat:Dataset",
        "dct:identifier": d.spec.id,
        "dct:title": lang(&m.title.vi, &m.title.en),
        "dct:description": lang(&m.description.vi, &m.description.en),
        "dct:publisher": {"@id": format!("{base}/organizations/{org_slug}"), "@type": "foaf:Agent", "foaf:name": org_name},
        "dcat:theme": {"@id": format!("http://publications.europa.eu/resource/authority/data-theme/{}", m.theme)},
        "dcat:keyword": m.keywords.iter().map(|k| json!({"@value": k, "@language": "vi"})).collect::<Vec<_>>(),
        "dct:license": license,
        "dct:accessRights": {"@id": "http://publications.europa.eu/resource/authority/access-right/PUBLIC"},
        "dct:accrualPeriodicity": {"@id": format!("http://publications.europa.eu/resource/authority/frequency/{}", m.accrual_periodicity.eu_frequency())},
        "dct:spatial": {"@type": "dct:Location", "skos:prefLabel": m.spatial},
        "dcat:contactPoint": {"@type": "vcard:Kind", "vcard:fn": m.contact_point.name, "vcard:hasEmail": {"@id": format!("mailto:{}", m.contact_point.email)}},
        "dcat:landingPage": {"@id": url},
        "dcat:version": d.releases.last().map(|r| r.version.to_string()),
        "dcat:distribution": FORMATS.iter().map(|(f, label, media)| json!({
            "@id": format!("{url}/data?format={f}"),
            "@type": "dcat:Distribution",
            "dct:title": label,
            "dcat:accessURL": {"@id": url},
            "dcat:downloadURL": {"@id": format!("{url}/data?format={f}")},
            "dcat:mediaType": {"@id": format!("https://www.iana.org/assignments/media-types/{media}")},
            "dct:format": {"@id": format!("http://publications.europa.eu/resource/authority/file-type/{label}")},
            "dct:license": license,
        })).collect::<Vec<_>>(),
    });
    if d.spec.sharing != kho_catalog::Sharing::Open {
        v["dct:accessRights"] = json!({"@id": "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"});
    }
    if let Some(t) = &m.temporal {
        v["dct:temporal"] = json!({"@type": "dct:PeriodOfTime", "dcat:startDate": {"@value": t.start, "@type": "xsd:date"}, "dcat:endDate": {"@value": t.end, "@type": "xsd:date"}});
    }
    if let Some(i) = issued {
        v["dct:issued"] = json!({"@value": i, "@type": "xsd:dateTime"});
    }
    if let Some(m) = modified {
        v["dct:modified"] = json!({"@value": m, "@type": "xsd:dateTime"});
    }
    v
}

/// `GET /catalog.jsonld`.
pub async fn catalog(
    State(state): State<AppState>,
    caller: MaybeCaller,
    headers: HeaderMap,
) -> impl IntoResponse {
    let base = base_url(&state, &headers);
    let viewer = caller.viewer();
    let datasets: Vec<Value> = state
        .governance
        .datasets_for(viewer)
        .iter()
        .filter(|d| d.readable_by(viewer))
        .map(|d| dataset(d, &base))
        .collect();
    let themes: Vec<Value> = THEMES
        .iter()
        .map(|(code, label)| json!({"@id": format!("http://publications.europa.eu/resource/authority/data-theme/{code}"), "skos:prefLabel": {"@value": label, "@language": "en"}}))
        .collect();
    let body = json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "vcard": "http://www.w3.org/2006/vcard/ns#",
            "skos": "http://www.w3.org/2004/02/skos/core#",
            "xsd": "http://www.w3.org/2001/XMLSchema#"
        },
        "@id": format!("{base}/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": lang("Danh mục dữ liệu dùng chung tỉnh Tây Ninh", "Tây Ninh province shared data catalogue"),
        "dct:description": lang(
            "Dữ liệu mở và dữ liệu chia sẻ của các sở, ngành tỉnh Tây Ninh, do kho công bố.",
            "Open and shared data of Tây Ninh province's departments, published by kho."
        ),
        "dct:publisher": {"@id": format!("{base}/organizations/trung-tam-ioc"), "@type": "foaf:Agent", "foaf:name": "Trung tâm Giám sát, điều hành tập trung tỉnh Tây Ninh"},
        "dct:language": {"@id": "http://publications.europa.eu/resource/authority/language/VIE"},
        "foaf:homepage": {"@id": base},
        "dcat:themeTaxonomy": {"@id": "http://publications.europa.eu/resource/authority/data-theme", "skos:hasTopConcept": themes},
        "dcat:dataset": datasets,
    });
    ([(header::CONTENT_TYPE, "application/ld+json")], Json(body))
}
