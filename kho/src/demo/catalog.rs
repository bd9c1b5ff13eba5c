//! The demo's catalog: datasets of all three classes, each drafted by its owner, proposed,
//! approved by the steward and published — through the API, as the people would.

use serde_json::{Value, json};

/// A dataset to publish, who drafts it, and who gets a grant.
struct Plan {
    spec: Value,
    owner_token: String,
}

fn meta(
    title_vi: &str,
    title_en: &str,
    desc_vi: &str,
    desc_en: &str,
    theme: &str,
    keywords: &[&str],
    last_year: i32,
) -> Value {
    json!({
        "title": {"vi": title_vi, "en": title_en},
        "description": {"vi": desc_vi, "en": desc_en},
        "theme": theme,
        "keywords": keywords,
        "license": "cc-by-4.0",
        "accrual_periodicity": "monthly",
        "temporal": {"start": "2021-01-01", "end": format!("{last_year}-12-31")},
        "spatial": "Tỉnh Tây Ninh, Việt Nam",
        "contact_point": {"name": "Trung tâm Giám sát, điều hành tập trung tỉnh Tây Ninh", "email": "ioc@tayninh.gov.vn"},
    })
}

fn all_columns(view: &str) -> Vec<Value> {
    kho_query::spec(view)
        .expect("a demo view")
        .schema()
        .fields()
        .iter()
        .map(|f| json!({"name": f.name()}))
        .collect()
}

/// Publishes the demo datasets; returns (id, sharing) of each.
pub(crate) async fn publish(
    http: &reqwest::Client,
    base: &str,
    tokens: &super::Tokens,
    last_year: i32,
) -> anyhow::Result<Vec<(String, String)>> {
    let services = tokens.sector("services").to_owned();
    let finance = tokens.sector("finance").to_owned();
    let planning = tokens.sector("planning").to_owned();
    let measures = [
        "received_online",
        "online_rate",
        "resolved",
        "resolved_on_time",
        "on_time_rate",
        "pending",
        "pending_overdue",
        "postal",
    ];
    let plans = vec![
        Plan {
            owner_token: services.clone(),
            spec: json!({
                "id": "dich-vu-cong-theo-thang",
                "source": {"kind": "view", "name": "service_dossiers"},
                "columns": all_columns("service_dossiers"),
                "suppression": {"count_column": "received", "k": 10, "group_by": ["month", "agency_code"], "also": measures},
                "sharing": "open", "importance": "other",
                "metadata": meta("Hồ sơ thủ tục hành chính theo tháng và cơ quan", "Administrative-procedure dossiers by month and agency",
                    "Số hồ sơ tiếp nhận, trực tuyến mức độ 3, 4, giải quyết đúng hạn, tồn đọng và qua bưu chính công ích, theo tháng và cơ quan tiếp nhận.",
                    "Dossiers received, online at level 3/4, resolved on time, pending and handled by post, by month and receiving agency.",
                    "GOVE", &["dịch vụ công", "thủ tục hành chính", "một cửa"], last_year),
            }),
        },
        Plan {
            owner_token: finance,
            spec: json!({
                "id": "thuc-hien-du-toan-ngan-sach",
                "source": {"kind": "view", "name": "budget_execution"},
                "columns": all_columns("budget_execution"),
                "sharing": "open", "importance": "other",
                "metadata": meta("Thực hiện dự toán thu, chi ngân sách theo cơ quan", "Budget execution by agency",
                    "Dự toán, thực hiện theo tháng và lũy kế năm của thu, chi ngân sách, theo cơ quan và mục.",
                    "Budget estimates, monthly and year-to-date revenue and expenditure, by agency and budget item.",
                    "ECON", &["ngân sách", "thu chi", "dự toán"], last_year),
            }),
        },
        Plan {
            owner_token: planning,
            spec: json!({
                "id": "giai-ngan-von-dau-tu-cong",
                "source": {"kind": "view", "name": "investment_disbursement"},
                "columns": all_columns("investment_disbursement"),
                "sharing": "open", "importance": "other",
                "metadata": meta("Giải ngân vốn đầu tư công theo dự án", "Public-investment disbursement by project",
                    "Vốn được giao và đã giải ngân, tỷ lệ giải ngân, nhóm dự án và tình trạng, theo dự án và năm.",
                    "Capital allocated and disbursed, disbursement rate, project group and status, by project and year.",
                    "ECON", &["đầu tư công", "giải ngân", "dự án"], last_year),
            }),
        },
        Plan {
            owner_token: services.clone(),
            spec: json!({
                "id": "danh-muc-thu-tuc-hanh-chinh",
                "source": {"kind": "stream", "name": "service.procedures"},
                "columns": [{"name": "procedure_code"}, {"name": "procedure_name"}, {"name": "agency_code"}, {"name": "level"}, {"name": "on_national_portal"}, {"name": "occurred_at"}],
                "row_filter": "event_type = 'procedure_published'",
                "sharing": "open", "importance": "other",
                "metadata": meta("Danh mục thủ tục hành chính được công bố", "Published administrative procedures",
                    "Các lần công bố thủ tục hành chính: mã, tên, cơ quan, mức độ dịch vụ công trực tuyến, tích hợp lên Cổng Dịch vụ công quốc gia.",
                    "Publications of administrative procedures: code, name, agency, online-service level, integration with the national public-service portal.",
                    "GOVE", &["thủ tục hành chính", "dịch vụ công trực tuyến"], last_year),
            }),
        },
        Plan {
            owner_token: services.clone(),
            spec: json!({
                "id": "phan-anh-kien-nghi-theo-thang",
                "source": {"kind": "view", "name": "service_feedback"},
                "columns": all_columns("service_feedback"),
                "sharing": "shared", "importance": "important",
                "metadata": meta("Phản ánh, kiến nghị theo tháng và cơ quan", "Citizen feedback by month and agency",
                    "Số phản ánh, kiến nghị tiếp nhận, đã xử lý, đang xử lý và xử lý đúng hạn.",
                    "Feedback received, answered, in progress and answered on time.",
                    "GOVE", &["phản ánh", "kiến nghị", "Tây Ninh Smart"], last_year),
            }),
        },
        Plan {
            owner_token: services,
            spec: json!({
                "id": "ho-so-tthc-chi-tiet",
                "source": {"kind": "stream", "name": "service.dossiers"},
                "columns": [{"name": "entity_id", "tag": "basic"}, {"name": "event_type"}, {"name": "occurred_at"}, {"name": "agency_code"},
                            {"name": "procedure_code"}, {"name": "channel"}, {"name": "level"}, {"name": "due_at"}, {"name": "outcome"}],
                "sharing": "private", "importance": "core",
                "metadata": meta("Sự kiện hồ sơ thủ tục hành chính (chi tiết)", "Dossier events (detail)",
                    "Từng sự kiện của từng hồ sơ: tiếp nhận, giải quyết, trả kết quả, rút hồ sơ. Dữ liệu riêng của ngành và Trung tâm IOC.",
                    "Every event of every dossier: received, resolved, returned, withdrawn. Private to the sector and the operations center.",
                    "GOVE", &["hồ sơ", "một cửa"], last_year),
            }),
        },
    ];
    let mut out = Vec::new();
    for p in plans {
        let id = p.spec["id"].as_str().expect("an id").to_owned();
        let sharing = p.spec["sharing"].as_str().expect("a class").to_owned();
        call(
            http,
            &format!("{base}/v1/catalog/datasets"),
            &p.owner_token,
            Some(&p.spec),
        )
        .await?;
        let why = json!({"why": "demo: dữ liệu phục vụ chỉ đạo, điều hành và công khai"});
        call(
            http,
            &format!("{base}/v1/catalog/datasets/{id}/propose"),
            &p.owner_token,
            Some(&why),
        )
        .await?;
        call(
            http,
            &format!("{base}/v1/catalog/datasets/{id}/approve"),
            &tokens.steward,
            Some(&why),
        )
        .await?;
        call(
            http,
            &format!("{base}/v1/catalog/datasets/{id}/publish"),
            &tokens.steward,
            None,
        )
        .await?;
        if sharing == "shared" {
            let grant = json!({
                "principal": tokens.consumer.split('_').nth(1).unwrap_or_default(),
                "purpose": "Nghiên cứu chất lượng phục vụ người dân",
                "legal_basis": "Nghị định 47/2020/NĐ-CP về quản lý, kết nối và chia sẻ dữ liệu số",
            });
            call(
                http,
                &format!("{base}/v1/catalog/datasets/{id}/grants"),
                &tokens.steward,
                Some(&grant),
            )
            .await?;
        }
        out.push((id, sharing));
    }
    Ok(out)
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut req = http.post(url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}
