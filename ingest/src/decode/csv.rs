//! CSV bodies with a header row naming the columns. Cells are typed by their column; an
//! empty cell is an absent field. Row 0 in errors is the header.

use super::row::{BatchBuilder, Slot};
use super::value::Raw;

pub(crate) fn decode_csv(builder: &mut BatchBuilder<'_>, body: &[u8]) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            builder.error(0, None, format!("unreadable CSV header: {e}"));
            return;
        }
    };
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        builder.error(
            0,
            None,
            "the CSV body needs a header row naming the columns",
        );
        return;
    }
    // Header position -> where its cells go.
    let mut targets: Vec<Option<Slot>> = Vec::with_capacity(headers.len());
    let mut seen = std::collections::HashSet::new();
    for name in &headers {
        let name = name.trim();
        if !seen.insert(name.to_owned()) {
            builder.error(0, Some(name), "column named twice in the header");
        }
        match builder.lookup(name) {
            Some(Slot::ServerSet) => {
                builder.error(0, Some(name), "set by the server; leave it out");
                targets.push(None);
            }
            Some(slot) => targets.push(Some(slot)),
            None => {
                builder.error(0, Some(name), "unknown column in the CSV header".to_owned());
                targets.push(None);
            }
        }
    }
    let mut record = csv::StringRecord::new();
    loop {
        if !builder.has_room() {
            return;
        }
        match reader.read_record(&mut record) {
            Ok(false) => return,
            Ok(true) => {
                let mut row = builder.new_row();
                for (cell, target) in record.iter().zip(&targets) {
                    if let (Some(Slot::Column(i)), false) = (target, cell.is_empty()) {
                        row.set(*i, Raw::Text(cell));
                    }
                }
                builder.push(&mut row);
            }
            Err(e) => {
                let msg = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("has {len} fields but the header has {expected_len}"),
                    csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_owned(),
                    _ => format!("unreadable CSV: {e}"),
                };
                builder.skip_row(format!("row {msg}"));
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    return;
                }
            }
        }
    }
}
