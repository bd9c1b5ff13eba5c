//! Bounds on what a caller may ask kho to parse and plan: the SQL of `/v1/sql` and the row
//! filter of a dataset. Every check here runs before any planning. The text check
//! ([`check_text`]) is iterative (a tokenizer and a counter), safe on any thread; the tree
//! check ([`check_tree`]) walks the parsed statement and runs on a query thread
//! ([`crate::compute`]), whose stack holds the deepest tree it lets through.
//!
//! A flat `1+1+…+1` parses into a tree as deep as it is long, which is why depth is bounded
//! on the tree and not only by the parser's own nesting limit (50 brackets).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, Select, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, Result};

/// The bounds of one kind of caller-supplied text.
#[derive(Debug, Clone, Copy)]
pub struct ExprLimits {
    /// What the text is, for the error ("the SQL", "the row filter").
    pub what: &'static str,
    pub max_bytes: usize,
    /// Tokens: keywords, names, literals, operators.
    pub max_tokens: usize,
    /// Expression nesting in the parsed tree (operands of operators, arguments of functions).
    pub max_depth: usize,
    /// `SELECT`s (subqueries and `UNION` members included); 0 refuses subqueries.
    pub max_queries: usize,
    /// `||` operators. Each makes, for every row, a string as long as its operands together,
    /// outside the guarded functions' accounting ([`crate::guard`]): a chain of ten thousand
    /// over a 4 KiB column would make 40 MB a row.
    pub max_concats: usize,
}

/// `/v1/sql`.
pub const SQL: ExprLimits = ExprLimits {
    what: "the SQL",
    max_bytes: 64 * 1024,
    max_tokens: 20_000,
    max_depth: 256,
    max_queries: 256,
    max_concats: 32,
};

/// A dataset's row filter: one predicate over the source's columns.
pub const ROW_FILTER: ExprLimits = ExprLimits {
    what: "the row filter",
    max_bytes: 4 * 1024,
    max_tokens: 256,
    max_depth: 64,
    max_queries: 0,
    max_concats: 8,
};

fn refuse(limits: &ExprLimits, message: String) -> QueryError {
    QueryError::BadRequest(format!("{} {message}", limits.what))
}

/// A count with its thousands grouped for messages: 264883 -> "264,883".
pub fn group(n: impl ToString) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Size and token count, before anything is parsed. Iterative: safe on any thread.
pub fn check_text(text: &str, limits: &ExprLimits) -> Result<()> {
    if text.len() > limits.max_bytes {
        return Err(refuse(
            limits,
            format!(
                "is {} bytes; the limit is {} bytes",
                group(text.len()),
                group(limits.max_bytes)
            ),
        ));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize()
        .map_err(|e| refuse(limits, format!("cannot be read: {e}")))?;
    let n = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .count();
    if n > limits.max_tokens {
        return Err(refuse(
            limits,
            format!(
                "has {} tokens; the limit is {}",
                group(n),
                group(limits.max_tokens)
            ),
        ));
    }
    let concats = tokens
        .iter()
        .filter(|t| matches!(t, Token::StringConcat))
        .count();
    if concats > limits.max_concats {
        return Err(refuse(
            limits,
            format!(
                "has {} `||` operators; the limit is {} (concat(…) takes many arguments at once)",
                group(concats),
                limits.max_concats
            ),
        ));
    }
    if limits.max_queries == 0
        && tokens
            .iter()
            .any(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("select")))
    {
        return Err(refuse(limits, "may not hold a subquery".into()));
    }
    Ok(())
}

/// Depth and query count of a parsed statement. Recursive: call it on a query thread.
pub fn check_tree(statement: &Statement, limits: &ExprLimits) -> Result<()> {
    let mut m = Measure::default();
    let _ = statement.visit(&mut m);
    m.verdict(limits)
}

/// Depth of a parsed expression (a row filter). Recursive: call it on a query thread.
pub fn check_expr_tree(expr: &Expr, limits: &ExprLimits) -> Result<()> {
    let mut m = Measure::default();
    let _ = expr.visit(&mut m);
    m.verdict(limits)
}

#[derive(Default)]
struct Measure {
    depth: usize,
    max_depth: usize,
    queries: usize,
}

impl Measure {
    fn verdict(&self, limits: &ExprLimits) -> Result<()> {
        if self.max_depth > limits.max_depth {
            return Err(refuse(
                limits,
                format!(
                    "nests expressions {} levels deep; the limit is {}: split long chains of operators (use IN (…) for many alternatives)",
                    group(self.max_depth),
                    limits.max_depth
                ),
            ));
        }
        if self.queries > limits.max_queries {
            return Err(refuse(
                limits,
                format!(
                    "has {} queries and subqueries; the limit is {}",
                    group(self.queries),
                    limits.max_queries
                ),
            ));
        }
        Ok(())
    }
}

impl Visitor for Measure {
    type Break = ();

    fn pre_visit_select(&mut self, _select: &Select) -> ControlFlow<()> {
        self.queries += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(term: &str, op: &str, n: usize) -> String {
        vec![term; n].join(op)
    }

    #[test]
    fn text_bounds() {
        assert!(check_text("select 1", &SQL).is_ok());
        let long = format!("select {}", "1".repeat(70 * 1024));
        let e = check_text(&long, &SQL).unwrap_err().to_string();
        assert!(e.contains("the limit is 65,536 bytes"), "{e}");
        let many = format!("select {}", chain("1", ",", 12_000));
        let e = check_text(&many, &SQL).unwrap_err().to_string();
        assert!(e.contains("tokens; the limit is 20,000"), "{e}");
        let e = check_text("received > (select 1)", &ROW_FILTER)
            .unwrap_err()
            .to_string();
        assert!(e.contains("subquery"), "{e}");
        let concats = |n: usize| format!("select {} from t", chain("topic", " || ", n + 1));
        assert!(check_text(&concats(32), &SQL).is_ok());
        let e = check_text(&concats(33), &SQL).unwrap_err().to_string();
        assert!(e.contains("has 33 `||` operators; the limit is 32"), "{e}");
    }

    #[test]
    fn tree_bounds() {
        let parse = |sql: &str| {
            datafusion::sql::sqlparser::parser::Parser::parse_sql(&GenericDialect {}, sql)
                .unwrap()
                .remove(0)
        };
        // Run where the deep trees can be walked and dropped: a thread with a big stack.
        std::thread::Builder::new()
            .stack_size(64 * 1024 * 1024)
            .spawn(move || {
                assert!(
                    check_tree(&parse(&format!("select {}", chain("1", "+", 200))), &SQL).is_ok()
                );
                for sql in [
                    format!("select {}", chain("1", "+", 2_000)),
                    format!("select 1 where {}", chain("a > 0", " and ", 3_000)),
                    format!("select {}", chain("1", " * ", 300)),
                ] {
                    let e = check_tree(&parse(&sql), &SQL).unwrap_err().to_string();
                    assert!(e.contains("levels deep; the limit is 256"), "{e}");
                }
                let unions = chain("select 1", " union all ", 300);
                let e = check_tree(&parse(&unions), &SQL).unwrap_err().to_string();
                assert!(
                    e.contains("300 queries and subqueries; the limit is 256"),
                    "{e}"
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
