//! Reference data of the demo province (Tây Ninh): agencies, districts, budget categories,
//! and the figures of the province's 2021 report that the demo reproduces.
//!
//! Agency and district codes are the demo's own short codes; names are the real bodies.

/// The figures of the report (Báo Tây Ninh, 19/04/2022) for 2021.
pub(crate) mod article {
    pub(crate) const DOSSIERS_RECEIVED: u64 = 264_883;
    pub(crate) const DOSSIERS_ONLINE: u64 = 53_607;
    /// "gần 5.000": the demo's exact number of dossiers received or returned by post.
    pub(crate) const DOSSIERS_POSTAL: u64 = 4_962;
    pub(crate) const PROCEDURES_PUBLISHED: u64 = 1_818;
    pub(crate) const PROCEDURES_ON_PORTAL: u64 = 1_000;
    pub(crate) const FEEDBACK_RECEIVED: u64 = 1_501;
    pub(crate) const FEEDBACK_ANSWERED: u64 = 1_097;
    pub(crate) const FEEDBACK_IN_PROGRESS: u64 = 404;
    /// "Trên 84%": the demo answers 931 of 1,097 on time (84.87%).
    pub(crate) const FEEDBACK_ON_TIME: u64 = 931;
    pub(crate) const ONLINE_RATE_TARGET: f64 = 0.30;
}

/// A body that receives dossiers, owns budget lines or procedures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Agency {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) level: Level,
    /// Relative number of dossiers received.
    pub(crate) dossier_weight: f64,
    /// Share of its dossiers filed online at level 3/4 (relative).
    pub(crate) online: f64,
    /// Share of its dossiers resolved on time.
    pub(crate) on_time: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Province,
    District,
    Commune,
}

const fn a(
    code: &'static str,
    name: &'static str,
    level: Level,
    dossier_weight: f64,
    online: f64,
    on_time: f64,
) -> Agency {
    Agency {
        code,
        name,
        level,
        dossier_weight,
        online,
        on_time,
    }
}

use Level::{Commune, District, Province};

/// Provincial departments, district people's committees, and each district's communes
/// (the communes of a district report as one agency).
pub(crate) const AGENCIES: [Agency; 33] = [
    a("STP", "Sở Tư pháp", Province, 2.2, 0.55, 0.98),
    a("SXD", "Sở Xây dựng", Province, 0.9, 0.45, 0.93),
    a(
        "STNMT",
        "Sở Tài nguyên và Môi trường",
        Province,
        2.6,
        0.30,
        0.82,
    ),
    a("SKHDT", "Sở Kế hoạch và Đầu tư", Province, 1.6, 0.70, 0.97),
    a("STC", "Sở Tài chính", Province, 0.3, 0.40, 0.99),
    a("SYT", "Sở Y tế", Province, 0.8, 0.35, 0.95),
    a("SGDDT", "Sở Giáo dục và Đào tạo", Province, 0.7, 0.50, 0.98),
    a(
        "SLDTBXH",
        "Sở Lao động - Thương binh và Xã hội",
        Province,
        1.1,
        0.30,
        0.96,
    ),
    a("SGTVT", "Sở Giao thông vận tải", Province, 1.9, 0.60, 0.97),
    a(
        "SNNPTNT",
        "Sở Nông nghiệp và Phát triển nông thôn",
        Province,
        0.6,
        0.25,
        0.94,
    ),
    a("SCT", "Sở Công Thương", Province, 0.7, 0.65, 0.98),
    a(
        "STTTT",
        "Sở Thông tin và Truyền thông",
        Province,
        0.2,
        0.80,
        0.99,
    ),
    a(
        "SVHTTDL",
        "Sở Văn hóa, Thể thao và Du lịch",
        Province,
        0.3,
        0.45,
        0.97,
    ),
    a("SNV", "Sở Nội vụ", Province, 0.3, 0.40, 0.98),
    a(
        "SKHCN",
        "Sở Khoa học và Công nghệ",
        Province,
        0.1,
        0.60,
        0.99,
    ),
    a(
        "UBND-TPTN",
        "UBND thành phố Tây Ninh",
        District,
        4.2,
        0.24,
        0.95,
    ),
    a(
        "UBND-HT",
        "UBND thị xã Hòa Thành",
        District,
        3.4,
        0.22,
        0.96,
    ),
    a(
        "UBND-TBA",
        "UBND thị xã Trảng Bàng",
        District,
        3.6,
        0.20,
        0.94,
    ),
    a("UBND-TBI", "UBND huyện Tân Biên", District, 2.4, 0.12, 0.93),
    a("UBND-TC", "UBND huyện Tân Châu", District, 2.7, 0.10, 0.84),
    a(
        "UBND-DMC",
        "UBND huyện Dương Minh Châu",
        District,
        2.8,
        0.14,
        0.95,
    ),
    a(
        "UBND-CTH",
        "UBND huyện Châu Thành",
        District,
        3.0,
        0.11,
        0.92,
    ),
    a("UBND-GD", "UBND huyện Gò Dầu", District, 3.1, 0.16, 0.95),
    a("UBND-BC", "UBND huyện Bến Cầu", District, 1.8, 0.09, 0.91),
    a(
        "XA-TPTN",
        "UBND các phường, xã thành phố Tây Ninh",
        Commune,
        6.5,
        0.18,
        0.97,
    ),
    a(
        "XA-HT",
        "UBND các phường, xã thị xã Hòa Thành",
        Commune,
        5.6,
        0.16,
        0.97,
    ),
    a(
        "XA-TBA",
        "UBND các phường, xã thị xã Trảng Bàng",
        Commune,
        5.9,
        0.14,
        0.96,
    ),
    a(
        "XA-TBI",
        "UBND các xã, thị trấn huyện Tân Biên",
        Commune,
        4.4,
        0.08,
        0.95,
    ),
    a(
        "XA-TC",
        "UBND các xã, thị trấn huyện Tân Châu",
        Commune,
        4.8,
        0.07,
        0.90,
    ),
    a(
        "XA-DMC",
        "UBND các xã, thị trấn huyện Dương Minh Châu",
        Commune,
        4.9,
        0.09,
        0.96,
    ),
    a(
        "XA-CTH",
        "UBND các xã, thị trấn huyện Châu Thành",
        Commune,
        5.3,
        0.08,
        0.95,
    ),
    a(
        "XA-GD",
        "UBND các xã, thị trấn huyện Gò Dầu",
        Commune,
        5.4,
        0.11,
        0.96,
    ),
    a(
        "XA-BC",
        "UBND các xã, thị trấn huyện Bến Cầu",
        Commune,
        3.3,
        0.06,
        0.94,
    ),
];

/// Districts (for projects): code, name.
pub(crate) const DISTRICTS: [(&str, &str); 9] = [
    ("TPTN", "thành phố Tây Ninh"),
    ("HT", "thị xã Hòa Thành"),
    ("TBA", "thị xã Trảng Bàng"),
    ("TBI", "huyện Tân Biên"),
    ("TC", "huyện Tân Châu"),
    ("DMC", "huyện Dương Minh Châu"),
    ("CTH", "huyện Châu Thành"),
    ("GD", "huyện Gò Dầu"),
    ("BC", "huyện Bến Cầu"),
];

/// Dossiers received per month, relative: Tết in February, the 2021 COVID-19 wave from
/// July to September, the year-end rush.
pub(crate) const MONTH_WEIGHTS: [f64; 12] = [
    0.95, 0.62, 1.05, 1.02, 1.06, 0.98, 0.74, 0.52, 0.61, 0.98, 1.12, 1.25,
];

/// Revenue categories (budget revenue items): code, name, share of provincial revenue.
pub(crate) const REVENUE: [(&str, &str, f64); 6] = [
    ("1001", "Thuế thu nhập cá nhân", 0.09),
    ("1052", "Thuế thu nhập doanh nghiệp", 0.16),
    ("1701", "Thuế giá trị gia tăng", 0.31),
    ("2601", "Tiền sử dụng đất", 0.24),
    ("2001", "Phí, lệ phí", 0.08),
    ("4901", "Thu khác ngân sách", 0.12),
];

/// Expenditure categories: code, name, share of an agency's spending.
pub(crate) const EXPENDITURE: [(&str, &str, f64); 8] = [
    ("6001", "Tiền lương", 0.31),
    ("6101", "Phụ cấp lương", 0.12),
    ("6301", "Các khoản đóng góp", 0.06),
    ("6501", "Thanh toán dịch vụ công cộng", 0.04),
    ("6551", "Vật tư văn phòng", 0.03),
    ("7001", "Chi nghiệp vụ chuyên môn", 0.22),
    ("7751", "Chi khác", 0.05),
    ("9301", "Chi đầu tư xây dựng cơ bản", 0.17),
];

/// Project name stems, by group.
pub(crate) const PROJECTS_A: [&str; 4] = [
    "Đường cao tốc Gò Dầu - Xa Mát (đoạn qua tỉnh)",
    "Đường ĐT.794 kết nối cửa khẩu Kà Tum",
    "Bệnh viện Đa khoa tỉnh Tây Ninh (cơ sở 2)",
    "Hệ thống thủy lợi phía Tây sông Vàm Cỏ Đông",
];

pub(crate) const PROJECTS_B: [&str; 8] = [
    "Nâng cấp, mở rộng đường ĐT.781",
    "Đường ĐT.782 - ĐT.784",
    "Kè chống sạt lở bờ sông Vàm Cỏ Đông",
    "Trung tâm y tế",
    "Trường Trung học phổ thông",
    "Nâng cấp hồ chứa nước",
    "Khu tái định cư",
    "Trung tâm giám sát, điều hành thông minh (IOC)",
];

pub(crate) const PROJECTS_C: [&str; 10] = [
    "Trường Tiểu học",
    "Trường Mầm non",
    "Trạm y tế xã",
    "Đường giao thông nông thôn",
    "Cầu bê tông",
    "Nhà văn hóa ấp",
    "Kênh tiêu thoát nước",
    "Chợ",
    "Trụ sở UBND xã",
    "Hệ thống chiếu sáng công cộng",
];

/// Procedure fields, for procedure names.
pub(crate) const PROCEDURE_SUBJECTS: [&str; 12] = [
    "Cấp giấy phép xây dựng",
    "Đăng ký kinh doanh hộ cá thể",
    "Cấp phiếu lý lịch tư pháp",
    "Chứng thực bản sao từ bản chính",
    "Đăng ký khai sinh",
    "Cấp giấy chứng nhận quyền sử dụng đất",
    "Cấp giấy phép lái xe",
    "Đăng ký thành lập doanh nghiệp",
    "Cấp chứng chỉ hành nghề",
    "Thẩm định dự án đầu tư",
    "Cấp giấy phép hoạt động",
    "Đăng ký biến động đất đai",
];

/// Feedback topics.
pub(crate) const TOPICS: [&str; 8] = [
    "Đất đai",
    "Giao thông",
    "Môi trường",
    "Trật tự đô thị",
    "Y tế",
    "Giáo dục",
    "An ninh trật tự",
    "Dịch vụ công",
];
