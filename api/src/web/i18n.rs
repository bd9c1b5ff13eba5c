//! The pages' two languages: Vietnamese first, English on request (`?lang=en`). Every
//! label is written once with both texts beside it ([`Lang::pick`]), so a label cannot exist
//! in one language only.

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    /// `?lang=en` picks English; anything else, Vietnamese.
    pub(crate) fn from_param(p: Option<&str>) -> Self {
        match p {
            Some("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    /// The text in this language.
    pub(crate) fn pick(self, vi: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The `lang` attribute of the page.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language, for the switch.
    pub(crate) fn other(self) -> Self {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    /// The switch's label, in the language it switches to.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::Vi => "Tiếng Việt",
            Lang::En => "English",
        }
    }
}
