//! [`Negotiation`]: what one namespace's responses were seen to vary on, learned from their
//! `Vary` and folded into the keys of its requests from then on, and the bound on how many
//! variants one key may have.

use super::variants::VariantBound;
use http::HeaderName;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, PoisonError, RwLock,
};

/// The most request headers one namespace's keys learn from `Vary`; a response naming more is
/// not stored.
pub(crate) const MAX_LEARNED: usize = 8;

/// A namespace's content negotiation, shared by its routes in one layer.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    /// Set once anything is learned: until then a request reads no lock.
    any: AtomicBool,
    /// The learned header names, sorted.
    learned: RwLock<Arc<[HeaderName]>>,
    /// The variants stored per key.
    pub(crate) variants: VariantBound,
}

impl Negotiation {
    /// The header names learned so far, `None` while there are none.
    pub(crate) fn learned(&self) -> Option<Arc<[HeaderName]>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let learned = self.learned.read().unwrap_or_else(PoisonError::into_inner);
        Some(learned.clone())
    }

    /// Adds `names` to what is learned and gives the whole set; `None` (and nothing learned)
    /// if that would be more than [`MAX_LEARNED`].
    pub(crate) fn learn(&self, names: &[HeaderName]) -> Option<Arc<[HeaderName]>> {
        let mut learned = self.learned.write().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<HeaderName> = learned.iter().cloned().collect();
        for name in names {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
        if all.len() > MAX_LEARNED {
            return None;
        }
        if all.len() > learned.len() {
            all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            *learned = all.into();
            self.any.store(true, Ordering::Release);
        }
        Some(learned.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn learns_sorted_once_each_and_bounded() {
        let negotiation = Negotiation::default();
        assert!(negotiation.learned().is_none());
        let set = negotiation
            .learn(&[header::ORIGIN, header::ACCEPT_ENCODING, header::ORIGIN])
            .unwrap();
        assert_eq!(&set[..], &[header::ACCEPT_ENCODING, header::ORIGIN]);
        assert_eq!(negotiation.learned().as_deref(), Some(&set[..]));
        let many: Vec<HeaderName> = (0..MAX_LEARNED)
            .map(|i| HeaderName::try_from(format!("x-{i}")).unwrap())
            .collect();
        assert!(negotiation.learn(&many).is_none(), "past the bound");
        assert_eq!(
            negotiation.learned().unwrap().len(),
            2,
            "and nothing learned"
        );
    }
}
