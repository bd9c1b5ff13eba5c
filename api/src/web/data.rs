//! What the dashboard shows, computed from the views: headline figures against their
//! targets, monthly trends, league tables and projects, for a year and a period of it.
//!
//! The views are read whole (they are aggregates: months × agencies, years × projects) at
//! their latest version, and summed here; a rate is always a ratio of sums (Σ online /
//! Σ received), never a mean of rates, so the province's figure equals the view's rows added
//! up, as the report adds them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use chrono::{DateTime, Datelike, Utc};
use futures::TryStreamExt;
use kho_catalog::{Principal, Role};
use kho_query::{Freshness, ViewEngine, ViewQuery};

use crate::error::ApiResult;

/// The part of a year the dashboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Year,
    Quarter(u32),
    Month(u32),
}

impl Period {
    /// `q1`…`q4`, `m1`…`m12`, anything else the whole year.
    pub(crate) fn from_param(p: Option<&str>) -> Self {
        let p = p.unwrap_or("");
        let num = |s: &str| s.parse::<u32>().ok();
        if let Some(q) = p
            .strip_prefix('q')
            .and_then(num)
            .filter(|q| (1..=4).contains(q))
        {
            return Period::Quarter(q);
        }
        if let Some(m) = p
            .strip_prefix('m')
            .and_then(num)
            .filter(|m| (1..=12).contains(m))
        {
            return Period::Month(m);
        }
        Period::Year
    }

    pub(crate) fn param(self) -> String {
        match self {
            Period::Year => String::new(),
            Period::Quarter(q) => format!("q{q}"),
            Period::Month(m) => format!("m{m}"),
        }
    }

    /// Does month `m` (1–12) fall in the period?
    pub(crate) fn holds(self, m: u32) -> bool {
        match self {
            Period::Year => true,
            Period::Quarter(q) => (m - 1) / 3 + 1 == q,
            Period::Month(x) => m == x,
        }
    }
}

/// Which panels a principal sees: the center all, a sector those built from its own streams.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sees {
    pub(crate) budget: bool,
    pub(crate) investment: bool,
    pub(crate) services: bool,
}

impl Sees {
    pub(crate) fn of(p: &Principal) -> Option<Self> {
        let sector = p.sector.as_deref();
        match p.role {
            Role::Center => Some(Sees {
                budget: true,
                investment: true,
                services: true,
            }),
            Role::Sector => Some(Sees {
                budget: sector == Some("finance"),
                investment: sector == Some("planning"),
                services: sector == Some("services"),
            }),
            _ => None,
        }
    }
}

/// A ratio of two sums, with the target the view carries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ratio {
    pub(crate) num: i64,
    pub(crate) den: i64,
}

impl Ratio {
    pub(crate) fn rate(self) -> Option<f64> {
        (self.den > 0).then(|| self.num as f64 / self.den as f64)
    }

    fn add(&mut self, num: i64, den: i64) {
        self.num = self.num.saturating_add(num);
        self.den = self.den.saturating_add(den);
    }
}

/// One headline figure.
#[derive(Debug, Clone)]
pub(crate) struct Tile {
    /// A stable id: the page's element, the CSV export's name, the tests' handle.
    pub(crate) id: &'static str,
    pub(crate) view: &'static str,
    pub(crate) value: Ratio,
    pub(crate) target: Option<f64>,
    /// The same period a year before, when there is data for it.
    pub(crate) previous: Option<Ratio>,
    /// The rate month by month over the year (`03/2021`; cumulative for money), or year by
    /// year for what is counted yearly.
    pub(crate) trend: Vec<(String, Option<f64>)>,
    /// Money tiles show the sums too.
    pub(crate) money: bool,
}

/// One agency's public-service figures in the period.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgencyRow {
    pub(crate) code: String,
    pub(crate) received: i64,
    pub(crate) online: i64,
    pub(crate) resolved: i64,
    pub(crate) on_time: i64,
    pub(crate) pending_overdue: i64,
}

/// One district's public investment in the year.
#[derive(Debug, Clone, Default)]
pub(crate) struct DistrictRow {
    pub(crate) code: String,
    pub(crate) allocated: i64,
    pub(crate) disbursed: i64,
    pub(crate) projects: usize,
}

/// One project in the year.
#[derive(Debug, Clone)]
pub(crate) struct ProjectRow {
    pub(crate) code: String,
    pub(crate) name: Option<String>,
    pub(crate) district: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) allocated: i64,
    pub(crate) disbursed: i64,
}

/// How fresh a panel's view is.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub(crate) view: &'static str,
    pub(crate) version: Option<u64>,
    pub(crate) refreshed_at: Option<DateTime<Utc>>,
    pub(crate) lag_commits: u64,
}

/// Everything the dashboard shows for one selection.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    /// The names of the codes (agencies, districts), from `reference.codes`.
    pub(crate) names: super::names::Names,
    pub(crate) year: i32,
    pub(crate) years: Vec<i32>,
    pub(crate) period: Period,
    pub(crate) tiles: Vec<Tile>,
    pub(crate) agencies: Vec<AgencyRow>,
    pub(crate) districts: Vec<DistrictRow>,
    pub(crate) projects: Vec<ProjectRow>,
    pub(crate) fresh: Vec<Fresh>,
}

impl Dashboard {
    /// The versions of the views behind it: what its entity tag is made of.
    pub(crate) fn versions(&self) -> String {
        let views: Vec<String> = self
            .fresh
            .iter()
            .map(|f| format!("{}={}", f.view, f.version.unwrap_or(0)))
            .collect();
        format!("{},names={}", views.join(","), self.names.version())
    }
}

/// The columns of a view's rows, by name.
struct Rows(Vec<RecordBatch>);

impl Rows {
    /// The view's rows matching `q`, at its latest version.
    async fn of(views: &ViewEngine, name: &str, q: &ViewQuery) -> ApiResult<Self> {
        let batches: Vec<RecordBatch> = views
            .read(name, q)
            .await?
            .batches
            .try_collect()
            .await
            .map_err(kho_query::QueryError::from)?;
        Ok(Rows(batches))
    }

    /// Calls `f` with an accessor for every row.
    fn each(&self, mut f: impl FnMut(&Row<'_>)) {
        for b in &self.0 {
            for i in 0..b.num_rows() {
                f(&Row { batch: b, i });
            }
        }
    }
}

struct Row<'a> {
    batch: &'a RecordBatch,
    i: usize,
}

impl Row<'_> {
    fn col(&self, name: &str) -> Option<&dyn Array> {
        self.batch.column_by_name(name).map(|c| c.as_ref())
    }

    fn str(&self, name: &str) -> Option<&str> {
        let c = self.col(name)?;
        if c.is_null(self.i) {
            return None;
        }
        match c.data_type() {
            DataType::Utf8 => Some(c.as_string::<i32>().value(self.i)),
            DataType::Utf8View => Some(c.as_string_view().value(self.i)),
            _ => None,
        }
    }

    fn i64(&self, name: &str) -> i64 {
        self.col(name)
            .filter(|c| !c.is_null(self.i))
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .map_or(0, |c| c.value(self.i))
    }

    fn i32(&self, name: &str) -> Option<i32> {
        self.col(name)
            .filter(|c| !c.is_null(self.i))
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .map(|c| c.value(self.i))
    }

    fn f64(&self, name: &str) -> Option<f64> {
        self.col(name)
            .filter(|c| !c.is_null(self.i))
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .map(|c| c.value(self.i))
    }

    /// `month` (`yyyy-mm`) as (year, month).
    fn month(&self) -> Option<(i32, u32)> {
        let (y, m) = self.str("month")?.split_once('-')?;
        Some((y.parse().ok()?, m.parse().ok()?))
    }
}

/// Sums of one rate measure over months: the period, the same period a year before, and each
/// month of the year.
struct Monthly {
    /// The year and part of it shown.
    year: i32,
    shown: Period,
    period: Ratio,
    previous: Ratio,
    by_month: BTreeMap<u32, Ratio>,
    target: Option<f64>,
}

impl Monthly {
    fn new(year: i32, shown: Period) -> Self {
        Monthly {
            year,
            shown,
            period: Ratio::default(),
            previous: Ratio::default(),
            by_month: BTreeMap::new(),
            target: None,
        }
    }

    fn add(&mut self, (y, m): (i32, u32), num: i64, den: i64) {
        let (year, period) = (self.year, self.shown);
        if y == year {
            self.by_month.entry(m).or_default().add(num, den);
            if period.holds(m) {
                self.period.add(num, den);
            }
        } else if y == year - 1 && period.holds(m) {
            self.previous.add(num, den);
        }
    }

    fn tile(self, id: &'static str, view: &'static str, cumulative: bool) -> Tile {
        let mut running = Ratio::default();
        let trend = (1..=12)
            .map(|m| {
                let r = self.by_month.get(&m).copied().unwrap_or_default();
                let label = format!("{m:02}/{}", self.year);
                if cumulative {
                    running.num = running.num.saturating_add(r.num);
                    running.den = r.den;
                    (
                        label,
                        self.by_month
                            .contains_key(&m)
                            .then(|| running.rate())
                            .flatten(),
                    )
                } else {
                    (label, r.rate())
                }
            })
            .collect();
        Tile {
            id,
            view,
            value: self.period,
            target: self.target,
            previous: (self.previous.den > 0).then_some(self.previous),
            trend,
            money: cumulative,
        }
    }
}

fn fresh(f: &Freshness) -> Fresh {
    Fresh {
        view: f.view,
        version: f.version,
        refreshed_at: f.refreshed_at,
        lag_commits: f.sources.iter().map(|s| s.lag_commits).sum(),
    }
}

/// Reads the views a principal may see and sums them for `year` (the latest year with data
/// when `None`) and `period`; `district` narrows the project list.
pub(crate) async fn load(
    views: &ViewEngine,
    names: super::names::Names,
    sees: Sees,
    year: Option<i32>,
    period: Period,
    district: Option<&str>,
) -> ApiResult<Dashboard> {
    let mut years = std::collections::BTreeSet::new();
    let mut fresh_list = Vec::new();
    let dossiers = if sees.services {
        let rows = Rows::of(views, "service_dossiers", &ViewQuery::default()).await?;
        fresh_list.push(fresh(&views.freshness("service_dossiers").await?));
        rows.each(|r| {
            if let Some((y, _)) = r.month() {
                years.insert(y);
            }
        });
        Some(rows)
    } else {
        None
    };
    let feedback = if sees.services {
        let rows = Rows::of(views, "service_feedback", &ViewQuery::default()).await?;
        fresh_list.push(fresh(&views.freshness("service_feedback").await?));
        Some(rows)
    } else {
        None
    };
    let budget = if sees.budget {
        let rows = Rows::of(views, "budget_execution", &ViewQuery::default()).await?;
        fresh_list.push(fresh(&views.freshness("budget_execution").await?));
        rows.each(|r| {
            if let Some(y) = r.i32("fiscal_year") {
                years.insert(y);
            }
        });
        Some(rows)
    } else {
        None
    };
    let investment = if sees.investment {
        let rows = Rows::of(views, "investment_disbursement", &ViewQuery::default()).await?;
        fresh_list.push(fresh(&views.freshness("investment_disbursement").await?));
        rows.each(|r| {
            if let Some(y) = r.i32("year") {
                years.insert(y);
            }
        });
        Some(rows)
    } else {
        None
    };
    let years: Vec<i32> = years.into_iter().collect();
    let year = year
        .or_else(|| years.last().copied())
        .unwrap_or_else(|| Utc::now().with_timezone(&super::format::local()).year());

    let mut tiles = Vec::new();
    let mut agencies: BTreeMap<String, AgencyRow> = BTreeMap::new();
    if let Some(rows) = &dossiers {
        let (mut online, mut on_time) = (Monthly::new(year, period), Monthly::new(year, period));
        rows.each(|r| {
            let Some(ym) = r.month() else { return };
            let (received, rec_online) = (r.i64("received"), r.i64("received_online"));
            let (resolved, resolved_on_time) = (r.i64("resolved"), r.i64("resolved_on_time"));
            online.add(ym, rec_online, received);
            on_time.add(ym, resolved_on_time, resolved);
            if ym.0 == year {
                online.target = online.target.or(r.f64("online_rate_target"));
                on_time.target = on_time.target.or(r.f64("on_time_rate_target"));
            }
            if ym.0 == year && period.holds(ym.1) {
                let code = r.str("agency_code").unwrap_or("").to_owned();
                let a = agencies.entry(code.clone()).or_insert_with(|| AgencyRow {
                    code,
                    ..AgencyRow::default()
                });
                a.received += received;
                a.online += rec_online;
                a.resolved += resolved;
                a.on_time += resolved_on_time;
                a.pending_overdue += r.i64("pending_overdue");
            }
        });
        tiles.push(online.tile("online_rate", "service_dossiers", false));
        tiles.push(on_time.tile("on_time_rate", "service_dossiers", false));
    }
    if let Some(rows) = &feedback {
        let mut answered = Monthly::new(year, period);
        rows.each(|r| {
            let Some(ym) = r.month() else { return };
            answered.add(ym, r.i64("answered_on_time"), r.i64("answered"));
            if ym.0 == year {
                answered.target = answered.target.or(r.f64("answered_on_time_rate_target"));
            }
        });
        tiles.push(answered.tile("feedback_on_time", "service_feedback", false));
    }
    if let Some(rows) = &budget {
        // The estimate is annual: every monthly row of a budget line repeats it, so it is
        // counted once per line. Actuals accrue by month.
        let (mut revenue, mut spending) = (Monthly::new(year, period), Monthly::new(year, period));
        let mut lines: BTreeMap<(i32, &'static str, String, String), i64> = BTreeMap::new();
        rows.each(|r| {
            let (Some(fy), Some(flow)) = (r.i32("fiscal_year"), r.str("flow")) else {
                return;
            };
            let flow: &'static str = match flow {
                "revenue" => "revenue",
                "expenditure" => "expenditure",
                _ => return,
            };
            let line = (
                fy,
                flow,
                r.str("agency_code").unwrap_or("").to_owned(),
                r.str("category_code").unwrap_or("").to_owned(),
            );
            lines.insert(line, r.i64("estimate_vnd"));
            let Some((_, m)) = r.month() else { return };
            let target = r.f64("execution_rate_target");
            let monthly = if flow == "revenue" {
                &mut revenue
            } else {
                &mut spending
            };
            monthly.add((fy, m), r.i64("actual_vnd"), 0);
            if fy == year {
                monthly.target = monthly.target.or(target);
            }
        });
        for (flow, mut monthly, id) in [
            ("revenue", revenue, "budget_revenue"),
            ("expenditure", spending, "budget_expenditure"),
        ] {
            let est = |y: i32| -> i64 {
                lines
                    .iter()
                    .filter(|((fy, f, _, _), _)| *fy == y && *f == flow)
                    .map(|(_, e)| *e)
                    .sum()
            };
            monthly.period.den = est(year);
            monthly.previous.den = if monthly.previous.num > 0 {
                est(year - 1)
            } else {
                0
            };
            for r in monthly.by_month.values_mut() {
                r.den = est(year);
            }
            tiles.push(monthly.tile(id, "budget_execution", true));
        }
    }
    let mut districts: BTreeMap<String, DistrictRow> = BTreeMap::new();
    let mut projects = Vec::new();
    if let Some(rows) = &investment {
        let (mut now, mut before) = (Ratio::default(), Ratio::default());
        let mut target = None;
        let mut by_year: BTreeMap<i32, Ratio> = BTreeMap::new();
        rows.each(|r| {
            let Some(y) = r.i32("year") else { return };
            let (alloc, disb) = (r.i64("allocated_vnd"), r.i64("disbursed_vnd"));
            by_year.entry(y).or_default().add(disb, alloc);
            if y == year - 1 {
                before.add(disb, alloc);
            }
            if y != year {
                return;
            }
            now.add(disb, alloc);
            target = target.or(r.f64("disbursement_rate_target"));
            let dcode = r.str("district_code").map(str::to_owned);
            let code = dcode.clone().unwrap_or_default();
            let d = districts
                .entry(code.clone())
                .or_insert_with(|| DistrictRow {
                    code,
                    ..DistrictRow::default()
                });
            d.allocated += alloc;
            d.disbursed += disb;
            d.projects += 1;
            if district.is_none_or(|want| dcode.as_deref() == Some(want)) {
                projects.push(ProjectRow {
                    code: r.str("project_code").unwrap_or("").to_owned(),
                    name: r.str("project_name").map(str::to_owned),
                    district: dcode,
                    status: r.str("status").map(str::to_owned),
                    allocated: alloc,
                    disbursed: disb,
                });
            }
        });
        tiles.push(Tile {
            id: "disbursement",
            view: "investment_disbursement",
            value: now,
            target,
            previous: (before.den > 0).then_some(before),
            trend: by_year
                .into_iter()
                .map(|(y, r)| (y.to_string(), r.rate()))
                .collect(),
            money: true,
        });
    }
    Ok(Dashboard {
        names,
        year,
        years,
        period,
        tiles,
        agencies: agencies.into_values().collect(),
        districts: districts.into_values().collect(),
        projects,
        fresh: fresh_list,
    })
}

/// One agency's public-service figures month by month, every year, from the dossiers view.
pub(crate) async fn agency_months(
    views: &ViewEngine,
    agency: &str,
) -> ApiResult<BTreeMap<(i32, u32), AgencyRow>> {
    let q = ViewQuery {
        filters: vec![("agency_code".into(), agency.to_owned())],
        ..ViewQuery::default()
    };
    let mut out: BTreeMap<(i32, u32), AgencyRow> = BTreeMap::new();
    Rows::of(views, "service_dossiers", &q).await?.each(|r| {
        let Some(ym) = r.month() else { return };
        let a = out.entry(ym).or_insert_with(|| AgencyRow {
            code: agency.to_owned(),
            ..AgencyRow::default()
        });
        a.received += r.i64("received");
        a.online += r.i64("received_online");
        a.resolved += r.i64("resolved");
        a.on_time += r.i64("resolved_on_time");
        a.pending_overdue += r.i64("pending_overdue");
    });
    Ok(out)
}
