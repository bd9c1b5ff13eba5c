//! Numbers, money, rates and times as the province writes them: Vietnamese first
//! (`1.234,5`, `tỷ đồng`, `dd/mm/yyyy`, +07:00), English on request (`1,234.5`, `VND bn`).

use chrono::{DateTime, FixedOffset, Utc};

use super::i18n::Lang;

/// Asia/Ho_Chi_Minh: +07:00, no daylight saving.
pub(crate) fn local() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("valid offset")
}

/// `n` with `decimals` digits after the separator, thousands grouped.
pub(crate) fn number(n: f64, decimals: usize, lang: Lang) -> String {
    let (group, point) = match lang {
        Lang::Vi => ('.', ','),
        Lang::En => (',', '.'),
    };
    if !n.is_finite() {
        return "–".into();
    }
    let text = format!("{:.*}", decimals, n.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    if n < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(group);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(point);
        out.push_str(frac);
    }
    out
}

/// A count: `264.883`.
pub(crate) fn count(n: i64, lang: Lang) -> String {
    number(n as f64, 0, lang)
}

/// A rate in [0, 1] as a percentage with two decimals, cut, not rounded, as the province's
/// report writes it (53.607 of 264.883 is 20,2379… %: `20,23 %`), so that a rate below its
/// target never reads as meeting it (29,996 % is `29,99 %`, not `30,00 %`).
pub(crate) fn percent(rate: f64, lang: Lang) -> String {
    // The small epsilon keeps 0.2 * 100 (19.999…) from reading 19,99.
    let cut = ((rate * 10_000.0) + 1e-7).trunc() / 100.0;
    match lang {
        Lang::Vi => format!("{} %", number(cut, 2, lang)),
        Lang::En => format!("{}%", number(cut, 2, lang)),
    }
}

/// An amount of đồng in the unit a reader expects: tỷ đồng (10⁹) from one billion,
/// triệu đồng (10⁶) below.
pub(crate) fn money(vnd: i64, lang: Lang) -> String {
    let v = vnd as f64;
    if v.abs() >= 1e9 {
        match lang {
            Lang::Vi => format!("{} tỷ đồng", number(v / 1e9, 1, lang)),
            Lang::En => format!("VND {} bn", number(v / 1e9, 1, lang)),
        }
    } else {
        match lang {
            Lang::Vi => format!("{} triệu đồng", number(v / 1e6, 1, lang)),
            Lang::En => format!("VND {} m", number(v / 1e6, 1, lang)),
        }
    }
}

/// `dd/mm/yyyy hh:mm` in +07:00.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.with_timezone(&local())
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_and_english_numbers() {
        assert_eq!(number(1234.5, 1, Lang::Vi), "1.234,5");
        assert_eq!(number(1234.5, 1, Lang::En), "1,234.5");
        assert_eq!(number(-1234567.0, 0, Lang::Vi), "-1.234.567");
        assert_eq!(number(-0.001, 1, Lang::Vi), "0,0");
        assert_eq!(number(999.0, 0, Lang::Vi), "999");
        assert_eq!(count(264_883, Lang::Vi), "264.883");
        assert_eq!(percent(0.202_3, Lang::Vi), "20,23 %");
        assert_eq!(percent(53_607.0 / 264_883.0, Lang::Vi), "20,23 %");
        assert_eq!(percent(0.299_96, Lang::Vi), "29,99 %");
        assert_eq!(percent(0.2, Lang::Vi), "20,00 %");
        assert_eq!(percent(0.3, Lang::En), "30.00%");
        assert_eq!(percent(0.202_3, Lang::En), "20.23%");
        assert_eq!(number(f64::NAN, 1, Lang::Vi), "–");
    }

    #[test]
    fn money_in_the_unit_a_reader_expects() {
        assert_eq!(money(12_345_600_000_000, Lang::Vi), "12.345,6 tỷ đồng");
        assert_eq!(money(12_345_600_000_000, Lang::En), "VND 12,345.6 bn");
        assert_eq!(money(250_000_000, Lang::Vi), "250,0 triệu đồng");
    }

    #[test]
    fn times_in_hanoi() {
        let at = DateTime::parse_from_rfc3339("2021-12-31T18:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(time(at), "01/01/2022 01:30");
    }
}
