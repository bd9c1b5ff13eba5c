//! The pages' HTML: one layout, the landing and sign-in pages, the dashboard. Every value is
//! escaped by `maud`; there is no inline script or style (the Content-Security-Policy forbids
//! both), so the only script is the embedded `/assets/kho.js`.

use kho_catalog::Principal;
use maud::{DOCTYPE, Markup, html};

use super::charts;
use super::data::{Dashboard, Fresh, Period, Tile};
use super::format;
use super::i18n::Lang;
use super::names::Names;

/// The path of the stylesheet and the script, with their content hash (cached for a year).
pub(crate) struct Assets {
    pub(crate) css: String,
    pub(crate) js: String,
    pub(crate) icon: String,
}

/// The frame of every page.
pub(crate) fn layout(
    lang: Lang,
    title: &str,
    assets: &Assets,
    who: Option<(&Principal, &str)>,
    here: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kho" }
                link rel="icon" type="image/svg+xml" href=(assets.icon);
                link rel="stylesheet" href=(assets.css);
                script src=(assets.js) defer {}
            }
            body {
                a.skip href="#main" { (lang.pick("Bỏ qua, đến nội dung chính", "Skip to the main content")) }
                header.top {
                    a.brand href=(with_lang("/", lang)) {
                        span.mark aria-hidden="true" { "kho" }
                        span { (lang.pick("Kho dữ liệu dùng chung tỉnh Tây Ninh", "Tây Ninh shared data platform")) }
                    }
                    nav aria-label=(lang.pick("Chuyển trang", "Pages")) {
                        @if who.is_some() {
                            a href=(with_lang("/dashboard", lang)) { (lang.pick("Bảng điều hành", "Dashboard")) }
                        }
                        a href=(with_lang(here, lang.other())) lang=(lang.other().code()) hreflang=(lang.other().code()) {
                            (lang.other().name())
                        }
                        @if let Some((p, csrf)) = who {
                            span.who { (p.name) }
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { (lang.pick("Đăng xuất", "Sign out")) }
                            }
                        } @else {
                            a href=(with_lang("/signin", lang)) { (lang.pick("Đăng nhập", "Sign in")) }
                        }
                    }
                }
                main #main { (body) }
                footer {
                    p { (lang.pick("Giờ Việt Nam (UTC+07:00). Dữ liệu từ các hệ thống của sở, ngành; số liệu tự cập nhật khi có sự kiện mới.",
                                   "Times in Vietnam (UTC+07:00). Data from the departments' systems; figures update as new events arrive.")) }
                }
            }
        }
    }
}

/// A code's name with the code beneath it, or the code alone while it has no name.
fn named(names: &Names, list: &str, code: &str, lang: Lang) -> Markup {
    html! {
        @match names.get(list, code, lang) {
            Some(n) => { (n) br; small.code { (code) } }
            None => { (code) }
        }
    }
}

/// A value for a URL's path or query.
pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `path` with `lang=en` added when the page is in English.
pub(crate) fn with_lang(path: &str, lang: Lang) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("lang="))
        .collect();
    if lang == Lang::En {
        pairs.push("lang=en");
    }
    if pairs.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", pairs.join("&"))
    }
}

/// `/`: what kho is, and the way in.
pub(crate) fn landing(lang: Lang) -> Markup {
    html! {
        section.hero {
            h1 { (lang.pick("Kho dữ liệu dùng chung của tỉnh", "The province's shared data")) }
            p { (lang.pick(
                "Các sở, ngành gửi dữ liệu về một nơi; Trung tâm điều hành theo dõi thu chi ngân sách, giải ngân đầu tư công và dịch vụ công theo thời gian thực; dữ liệu mở được công bố cho người dân và doanh nghiệp.",
                "Departments send their data to one place; the operations center follows budget execution, public-investment disbursement and public services as they happen; open data is published for citizens and businesses.")) }
            p.actions {
                a.button href=(with_lang("/signin", lang)) { (lang.pick("Đăng nhập", "Sign in")) }
                a href="/catalog.jsonld" { (lang.pick("Danh mục dữ liệu mở (DCAT)", "Open-data catalog (DCAT)")) }
                a href="/api/3/action/package_list" { (lang.pick("API CKAN", "CKAN API")) }
            }
        }
    }
}

/// `/signin`: a token in, a session cookie out. The token goes in a password field of a POST
/// form, never in a URL.
pub(crate) fn signin(lang: Lang, csrf: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        section.signin {
            h1 { (lang.pick("Đăng nhập", "Sign in")) }
            p { (lang.pick("Dán mã truy cập (token) do quản trị viên cấp cho đơn vị của bạn.",
                           "Paste the access token the administrator issued to your unit.")) }
            @if let Some(e) = error {
                p.error role="alert" id="signin-error" { (e) }
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                input type="hidden" name="lang" value=(lang.code());
                label for="token" { (lang.pick("Mã truy cập", "Access token")) }
                input #token type="password" name="token" required autocomplete="off"
                    spellcheck="false" aria-describedby=[error.map(|_| "signin-error")];
                button type="submit" { (lang.pick("Đăng nhập", "Sign in")) }
            }
        }
    }
}

/// A page that says why it cannot show more (403, 503).
pub(crate) fn notice(title: &str, text: &str) -> Markup {
    html! {
        section.notice {
            h1 { (title) }
            p { (text) }
        }
    }
}

pub(crate) fn period_name(p: Period, lang: Lang) -> String {
    match p {
        Period::Year => lang.pick("Cả năm", "Whole year").to_owned(),
        Period::Quarter(q) => format!("{} {q}", lang.pick("Quý", "Quarter")),
        Period::Month(m) => format!("{} {m}", lang.pick("Tháng", "Month")),
    }
}

fn tile_label(id: &str, lang: Lang) -> (&'static str, &'static str) {
    match id {
        "online_rate" => (
            lang.pick("Hồ sơ nộp trực tuyến", "Dossiers filed online"),
            lang.pick("trên tổng hồ sơ tiếp nhận", "of all dossiers received"),
        ),
        "on_time_rate" => (
            lang.pick("Hồ sơ giải quyết đúng hạn", "Dossiers resolved on time"),
            lang.pick("trên hồ sơ đã giải quyết", "of dossiers resolved"),
        ),
        "feedback_on_time" => (
            lang.pick("Phản ánh trả lời đúng hạn", "Feedback answered on time"),
            lang.pick("trên phản ánh đã trả lời", "of feedback answered"),
        ),
        "budget_revenue" => (
            lang.pick("Thu ngân sách", "Budget revenue"),
            lang.pick(
                "đã thu so với dự toán năm",
                "collected against the annual estimate",
            ),
        ),
        "budget_expenditure" => (
            lang.pick("Chi ngân sách", "Budget expenditure"),
            lang.pick(
                "đã chi so với dự toán năm",
                "paid against the annual estimate",
            ),
        ),
        "disbursement" => (
            lang.pick("Giải ngân vốn đầu tư công", "Public investment disbursed"),
            lang.pick("so với kế hoạch vốn giao", "against the capital allocated"),
        ),
        _ => ("", ""),
    }
}

fn fresh_line(f: Option<&Fresh>, lang: Lang) -> Markup {
    html! {
        @if let Some(f) = f {
            p.fresh {
                @match f.refreshed_at {
                    Some(at) => {
                        (lang.pick("Dữ liệu đến ", "Data as of "))
                        time datetime=(at.with_timezone(&format::local()).to_rfc3339()) { (format::time(at)) }
                    }
                    None => { (lang.pick("Chưa có dữ liệu", "No data yet")) }
                }
                @if f.lag_commits > 0 {
                    " · " (lang.pick("còn ", "")) (f.lag_commits) (lang.pick(" lần ghi chưa tổng hợp", " commits not yet counted"))
                } @else {
                    " · " (lang.pick("đã cập nhật", "up to date"))
                }
            }
        }
    }
}

fn tile(t: &Tile, d: &Dashboard, lang: Lang, query: &str) -> Markup {
    let (name, of) = tile_label(t.id, lang);
    let rate = t.value.rate();
    let fresh = d.fresh.iter().find(|f| f.view == t.view);
    let trend_label = match t.id {
        "disbursement" => lang.pick("Tỷ lệ giải ngân theo năm", "Disbursement rate by year"),
        _ if t.money => lang.pick("Lũy kế theo tháng", "Cumulative by month"),
        _ => lang.pick("Theo tháng", "By month"),
    };
    html! {
        article.tile id=(format!("tile-{}", t.id)) data-rate=[rate.map(|r| format!("{r:.6}"))] {
            h2 { (name) }
            p.value {
                @match rate {
                    Some(r) => { (format::percent(r, lang)) }
                    None => { "–" }
                }
            }
            p.of {
                (of)
                @if t.money {
                    ": " (format::money(t.value.num, lang)) " / " (format::money(t.value.den, lang))
                } @else {
                    ": " (format::count(t.value.num, lang)) " / " (format::count(t.value.den, lang))
                }
            }
            @if let Some(target) = t.target {
                @let met = rate.is_some_and(|r| r >= target);
                p.target.met[met] {
                    (lang.pick("Chỉ tiêu ", "Target ")) (format::percent(target, lang))
                    " · "
                    @if met { (lang.pick("đạt", "met")) } @else { (lang.pick("chưa đạt", "not met")) }
                }
            }
            @if let (Some(prev), Some(r)) = (t.previous.and_then(|p| p.rate()), rate) {
                p.previous {
                    (lang.pick("Cùng kỳ năm trước ", "Same period last year ")) (format::percent(prev, lang))
                    " (" @if r >= prev { "+" } (format::number((r - prev) * 100.0, 2, lang)) (lang.pick(" điểm %", " pts")) ")"
                }
            }
            (charts::trend(&format!("{name}: {trend_label}"), &t.trend, t.target))
            (fresh_line(fresh, lang))
            p.export {
                a href=(with_lang(&format!("/dashboard/export/{}.csv?{query}", t.id), lang)) download {
                    (lang.pick("Tải CSV", "Download CSV"))
                }
            }
        }
    }
}

/// The selection form: year and period, sent as a GET so the page can be bookmarked.
fn selection(d: &Dashboard, lang: Lang, rank: Rank) -> Markup {
    let periods: Vec<Period> = std::iter::once(Period::Year)
        .chain((1..=4).map(Period::Quarter))
        .chain((1..=12).map(Period::Month))
        .collect();
    html! {
        form.selection method="get" action="/dashboard" {
            @if lang == Lang::En { input type="hidden" name="lang" value="en"; }
            @if rank == Rank::Overdue { input type="hidden" name="sort" value="overdue"; }
            label for="year" { (lang.pick("Năm", "Year")) }
            select #year name="year" {
                @for y in &d.years {
                    option value=(y) selected[*y == d.year] { (y) }
                }
                @if !d.years.contains(&d.year) {
                    option value=(d.year) selected { (d.year) }
                }
            }
            label for="period" { (lang.pick("Kỳ", "Period")) }
            select #period name="period" {
                @for p in &periods {
                    option value=(p.param()) selected[*p == d.period] { (period_name(*p, lang)) }
                }
            }
            button type="submit" { (lang.pick("Xem", "Show")) }
        }
    }
}

/// The panels: tiles, league tables, projects. What the live update replaces.
/// How the agencies' league table is ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Rank {
    /// By online rate, highest first.
    #[default]
    Online,
    /// By overdue dossiers still pending, most first.
    Overdue,
}

impl Rank {
    pub(crate) fn from_param(p: Option<&str>) -> Self {
        match p {
            Some("overdue") => Rank::Overdue,
            _ => Rank::Online,
        }
    }

    /// The query parameter that selects it (`&sort=overdue`), empty for the default.
    pub(crate) fn param(self) -> &'static str {
        match self {
            Rank::Online => "",
            Rank::Overdue => "&sort=overdue",
        }
    }
}

/// A column header that ranks the table by it: a link, and `aria-sort` on the one in use.
fn rank_header(label: &str, rank: Rank, current: Rank, base: &str, lang: Lang) -> Markup {
    html! {
        th.num scope="col" aria-sort=[(rank == current).then_some("descending")] {
            a href=(with_lang(&format!("/dashboard?{base}{}#agencies", rank.param()), lang)) { (label) }
        }
    }
}

/// The panels. `query` reproduces the selection, `base` the same without the ranking.
pub(crate) fn panels(d: &Dashboard, lang: Lang, query: &str, base: &str, rank: Rank) -> Markup {
    let mut agencies = d.agencies.clone();
    agencies.sort_by(|a, b| {
        let r = |x: &super::data::AgencyRow| match rank {
            Rank::Online if x.received > 0 => x.online as f64 / x.received as f64,
            Rank::Online => -1.0,
            Rank::Overdue => x.pending_overdue as f64,
        };
        r(b).total_cmp(&r(a)).then_with(|| a.code.cmp(&b.code))
    });
    let mut districts = d.districts.clone();
    districts.sort_by(|a, b| {
        let r = |x: &super::data::DistrictRow| {
            if x.allocated > 0 {
                x.disbursed as f64 / x.allocated as f64
            } else {
                -1.0
            }
        };
        r(b).total_cmp(&r(a)).then_with(|| a.code.cmp(&b.code))
    });
    // Lagging projects first: the lowest disbursement rate at the top.
    let mut projects = d.projects.clone();
    projects.sort_by(|a, b| {
        let r = |p: &super::data::ProjectRow| {
            if p.allocated > 0 {
                p.disbursed as f64 / p.allocated as f64
            } else {
                f64::INFINITY
            }
        };
        r(a).total_cmp(&r(b)).then_with(|| a.code.cmp(&b.code))
    });
    let disbursement_target = d
        .tiles
        .iter()
        .find(|t| t.id == "disbursement")
        .and_then(|t| t.target);
    let services = d.fresh.iter().find(|f| f.view == "service_dossiers");
    let investment = d.fresh.iter().find(|f| f.view == "investment_disbursement");
    html! {
        div.tiles {
            @for t in &d.tiles { (tile(t, d, lang, query)) }
        }
        @if !agencies.is_empty() {
            section.panel #agencies aria-labelledby="agencies-h" {
                h2 #agencies-h {
                    @match rank {
                        Rank::Online => { (lang.pick("Cơ quan theo tỷ lệ hồ sơ trực tuyến", "Agencies by online rate")) }
                        Rank::Overdue => { (lang.pick("Cơ quan theo số hồ sơ quá hạn", "Agencies by overdue dossiers")) }
                    }
                    " · " (period_name(d.period, lang)) " " (d.year)
                }
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (lang.pick("Cơ quan", "Agency")) }
                        th.num scope="col" { (lang.pick("Tiếp nhận", "Received")) }
                        th.num scope="col" { (lang.pick("Trực tuyến", "Online")) }
                        (rank_header(lang.pick("Tỷ lệ trực tuyến", "Online rate"), Rank::Online, rank, base, lang))
                        th.num scope="col" { (lang.pick("Đúng hạn", "On time")) }
                        (rank_header(lang.pick("Quá hạn đang xử lý", "Overdue, pending"), Rank::Overdue, rank, base, lang))
                    } }
                    tbody {
                        @for (i, a) in agencies.iter().enumerate() {
                            tr data-agency=(a.code) {
                                td { (i + 1) }
                                th scope="row" {
                                    a href=(with_lang(&format!("/dashboard/agency/{}?{query}", enc(&a.code)), lang)) {
                                        (named(&d.names, "organisation", &a.code, lang))
                                    }
                                }
                                td.num { (format::count(a.received, lang)) }
                                td.num { (format::count(a.online, lang)) }
                                td.num { @if a.received > 0 { (format::percent(a.online as f64 / a.received as f64, lang)) } @else { "–" } }
                                td.num { @if a.resolved > 0 { (format::percent(a.on_time as f64 / a.resolved as f64, lang)) } @else { "–" } }
                                td.num { (format::count(a.pending_overdue, lang)) }
                            }
                        }
                    }
                }
                (fresh_line(services, lang))
                p.export { a href=(with_lang(&format!("/dashboard/export/agencies.csv?{query}"), lang)) download { (lang.pick("Tải CSV", "Download CSV")) } }
            }
        }
        @if !districts.is_empty() {
            section.panel #districts aria-labelledby="districts-h" {
                h2 #districts-h { (lang.pick("Giải ngân đầu tư công theo địa bàn", "Public-investment disbursement by district")) " · " (d.year) }
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (lang.pick("Địa bàn", "District")) }
                        th.num scope="col" { (lang.pick("Dự án", "Projects")) }
                        th.num scope="col" { (lang.pick("Vốn giao", "Allocated")) }
                        th.num scope="col" { (lang.pick("Đã giải ngân", "Disbursed")) }
                        th scope="col" { (lang.pick("Tỷ lệ", "Rate")) }
                    } }
                    tbody {
                        @for (i, x) in districts.iter().enumerate() {
                            @let rate = (x.allocated > 0).then(|| x.disbursed as f64 / x.allocated as f64);
                            tr {
                                td { (i + 1) }
                                th scope="row" {
                                    a href=(with_lang(&format!("/dashboard?{query}&district={}#projects", enc(&x.code)), lang)) {
                                        (named(&d.names, "district", &x.code, lang))
                                    }
                                }
                                td.num { (x.projects) }
                                td.num { (format::money(x.allocated, lang)) }
                                td.num { (format::money(x.disbursed, lang)) }
                                td.rate {
                                    (charts::progress(&format!("{}: {}", x.code, rate.map_or("–".into(), |r| format::percent(r, lang))), rate, disbursement_target))
                                    " " @if let Some(r) = rate { (format::percent(r, lang)) } @else { "–" }
                                }
                            }
                        }
                    }
                }
                (fresh_line(investment, lang))
                p.export { a href=(with_lang(&format!("/dashboard/export/districts.csv?{query}"), lang)) download { (lang.pick("Tải CSV", "Download CSV")) } }
            }
        }
        @if !projects.is_empty() {
            section.panel #projects aria-labelledby="projects-h" {
                h2 #projects-h { (lang.pick("Dự án đầu tư công, chậm giải ngân trước", "Public-investment projects, lagging first")) " · " (d.year) }
                table {
                    thead { tr {
                        th scope="col" { (lang.pick("Dự án", "Project")) }
                        th scope="col" { (lang.pick("Địa bàn", "District")) }
                        th scope="col" { (lang.pick("Tình trạng", "Status")) }
                        th.num scope="col" { (lang.pick("Vốn giao", "Allocated")) }
                        th scope="col" { (lang.pick("Giải ngân", "Disbursed")) }
                    } }
                    tbody {
                        @for p in projects.iter().take(200) {
                            @let rate = (p.allocated > 0).then(|| p.disbursed as f64 / p.allocated as f64);
                            tr {
                                th scope="row" { (p.name.as_deref().unwrap_or(&p.code)) br; small { (p.code) } }
                                td { @match &p.district { Some(c) => { (named(&d.names, "district", c, lang)) } None => { "–" } } }
                                td { (p.status.as_deref().unwrap_or("–")) }
                                td.num { (format::money(p.allocated, lang)) }
                                td.rate {
                                    (charts::progress(&format!("{}: {}", p.code, rate.map_or("–".into(), |r| format::percent(r, lang))), rate, disbursement_target))
                                    " " @if let Some(r) = rate { (format::percent(r, lang)) } @else { "–" }
                                }
                            }
                        }
                    }
                }
                p.export { a href=(with_lang(&format!("/dashboard/export/projects.csv?{query}"), lang)) download { (lang.pick("Tải CSV", "Download CSV")) } }
            }
        }
    }
}

/// `/dashboard`.
pub(crate) fn dashboard(
    d: &Dashboard,
    lang: Lang,
    (query, base, rank): (&str, &str, Rank),
    live: &str,
    etag: &str,
) -> Markup {
    html! {
        h1 { (lang.pick("Bảng điều hành", "Operations dashboard")) " · " (period_name(d.period, lang)) " " (d.year) }
        (selection(d, lang, rank))
        p.print-hide {
            button #print type="button" { (lang.pick("In bản tin tuần", "Print the weekly briefing")) }
        }
        section #panels data-live=(live) data-etag=(etag) aria-live="polite" {
            (panels(d, lang, query, base, rank))
        }
    }
}

/// `/dashboard/agency/{code}`: one agency month by month, and the dossiers behind its
/// overdue count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn agency(
    (code, name): (&str, Option<&str>),
    year: i32,
    period: Period,
    months: &[(u32, super::data::AgencyRow)],
    overdue: &[kho_query::OverdueDossier],
    shown: usize,
    lang: Lang,
    query: &str,
) -> Markup {
    let in_period: Vec<&(u32, super::data::AgencyRow)> =
        months.iter().filter(|(m, _)| period.holds(*m)).collect();
    let total = |f: &dyn Fn(&super::data::AgencyRow) -> i64| -> i64 {
        in_period.iter().map(|(_, a)| f(a)).sum()
    };
    let year_query = format!("year={year}");
    html! {
        nav.crumbs aria-label=(lang.pick("Vị trí", "Breadcrumb")) {
            a href=(with_lang(&format!("/dashboard?{query}"), lang)) { (lang.pick("Bảng điều hành", "Dashboard")) }
            " › " span aria-current="page" { (name.unwrap_or(code)) }
        }
        h1 { (name.unwrap_or(code)) " · " (period_name(period, lang)) " " (year) }
        @if name.is_some() { p.code { (lang.pick("Mã cơ quan ", "Agency code ")) (code) } }
        section.panel #months aria-labelledby="months-h" {
            h2 #months-h { (lang.pick("Theo tháng", "By month")) }
            table {
                thead { tr {
                    th scope="col" { (lang.pick("Tháng", "Month")) }
                    th.num scope="col" { (lang.pick("Tiếp nhận", "Received")) }
                    th.num scope="col" { (lang.pick("Trực tuyến", "Online")) }
                    th.num scope="col" { (lang.pick("Tỷ lệ trực tuyến", "Online rate")) }
                    th.num scope="col" { (lang.pick("Đã giải quyết", "Resolved")) }
                    th.num scope="col" { (lang.pick("Đúng hạn", "On time")) }
                    th.num scope="col" { (lang.pick("Quá hạn đang xử lý", "Overdue, pending")) }
                } }
                tbody {
                    @for (m, a) in &in_period {
                        tr {
                            th scope="row" {
                                a href=(with_lang(&format!("/dashboard/agency/{}?{year_query}&period=m{m}", enc(code)), lang)) { (format!("{m:02}/{year}")) }
                            }
                            td.num { (format::count(a.received, lang)) }
                            td.num { (format::count(a.online, lang)) }
                            td.num { @if a.received > 0 { (format::percent(a.online as f64 / a.received as f64, lang)) } @else { "–" } }
                            td.num { (format::count(a.resolved, lang)) }
                            td.num { @if a.resolved > 0 { (format::percent(a.on_time as f64 / a.resolved as f64, lang)) } @else { "–" } }
                            td.num { (format::count(a.pending_overdue, lang)) }
                        }
                    }
                }
                tfoot { tr {
                    th scope="row" { (lang.pick("Cộng", "Total")) }
                    td.num { (format::count(total(&|a| a.received), lang)) }
                    td.num { (format::count(total(&|a| a.online), lang)) }
                    td.num { @if total(&|a| a.received) > 0 { (format::percent(total(&|a| a.online) as f64 / total(&|a| a.received) as f64, lang)) } @else { "–" } }
                    td.num { (format::count(total(&|a| a.resolved), lang)) }
                    td.num { @if total(&|a| a.resolved) > 0 { (format::percent(total(&|a| a.on_time) as f64 / total(&|a| a.resolved) as f64, lang)) } @else { "–" } }
                    td.num #overdue-total { (format::count(total(&|a| a.pending_overdue), lang)) }
                } }
            }
        }
        section.panel #overdue aria-labelledby="overdue-h" {
            h2 #overdue-h {
                span #overdue-count data-count=(overdue.len()) { (format::count(overdue.len() as i64, lang)) }
                " " (lang.pick("hồ sơ quá hạn đang xử lý", "overdue dossiers still pending"))
            }
            @if overdue.len() > shown {
                p { (lang.pick("Hiển thị ", "Showing ")) (format::count(shown as i64, lang)) (lang.pick(" hồ sơ quá hạn lâu nhất; tải CSV để xem đủ.", " most overdue; download the CSV for all.")) }
            }
            @if !overdue.is_empty() {
                table {
                    thead { tr {
                        th scope="col" { (lang.pick("Mã hồ sơ", "Dossier")) }
                        th scope="col" { (lang.pick("Thủ tục", "Procedure")) }
                        th scope="col" { (lang.pick("Ngày nhận", "Received")) }
                        th scope="col" { (lang.pick("Hạn giải quyết", "Due")) }
                    } }
                    tbody {
                        @for o in overdue.iter().take(shown) {
                            tr {
                                th scope="row" { (o.entity_id) }
                                td { (o.procedure_code.as_deref().unwrap_or("–")) }
                                td { (format::time(o.received_at)) }
                                td { (format::time(o.due_at)) }
                            }
                        }
                    }
                }
            }
            p.export { a href=(with_lang(&format!("/dashboard/export/overdue.csv?{query}&agency={}", enc(code)), lang)) download { (lang.pick("Tải CSV", "Download CSV")) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_switch_keeps_the_query() {
        assert_eq!(
            with_lang("/dashboard?year=2021", Lang::En),
            "/dashboard?year=2021&lang=en"
        );
        assert_eq!(
            with_lang("/dashboard?year=2021&lang=en", Lang::Vi),
            "/dashboard?year=2021"
        );
        assert_eq!(with_lang("/", Lang::Vi), "/");
    }
}
