//! The names people read beside codes: the code lists of `reference.codes`, as the ingest
//! side folds them to check codes (`kho_ingest::CodeLists`), shown in the page's language.

use std::sync::Arc;

use kho_ingest::CodeLists;

use super::i18n::Lang;
use crate::error::ApiResult;
use crate::state::AppState;

/// The code lists, for a page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names(Arc<CodeLists>);

impl Names {
    /// The name of `code` in `list`, in the page's language (English falls back to
    /// Vietnamese), or `None` for a code with no name yet.
    pub(crate) fn get(&self, list: &str, code: &str, lang: Lang) -> Option<&str> {
        let n = self.0.name(list, code)?;
        Some(match lang {
            Lang::En => n.en.as_deref().unwrap_or(&n.vi),
            Lang::Vi => &n.vi,
        })
    }

    /// The stream version the names come from (part of the pages' entity tags: a rename
    /// changes them).
    pub(crate) fn version(&self) -> u64 {
        self.0.version
    }
}

/// The names as the ingest side last read them (at most a second old).
pub(crate) async fn load(state: &AppState) -> ApiResult<Names> {
    Ok(Names(state.ingest.code_lists().await?))
}
