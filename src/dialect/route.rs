//! The region routing table: a caller's region, city or telephone number → adapter id.
//!
//! Built from the profiles' own `[regions]` and then the deployment's `[dialects.routes]`,
//! which wins where both name the same key (a deployment knows its callers better than a
//! profile shipped for everyone).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    /// Lower-cased region and city names and codes.
    names: BTreeMap<String, String>,
    /// Area codes in the domestic form (`020`, `+852`): longest prefix wins.
    prefixes: BTreeMap<String, String>,
}

/// What a region string matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub adapter: String,
    /// The key that matched (`020`, `guangdong`), for the selection report.
    pub key: String,
}

impl Routes {
    pub fn insert(&mut self, key: &str, adapter: &str) {
        let key = key.trim();
        if let Some(number) = phone_form(key) {
            self.prefixes.insert(number, adapter.to_owned());
        } else {
            self.names.insert(key.to_lowercase(), adapter.to_owned());
        }
    }

    /// The adapter for a region name/code or a telephone number, if any route matches.
    pub fn lookup(&self, region: &str) -> Option<Route> {
        let region = region.trim();
        if region.is_empty() {
            return None;
        }
        if let Some(number) = phone_form(region) {
            return self
                .prefixes
                .iter()
                .filter(|(p, _)| number.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|(p, a)| Route {
                    adapter: a.clone(),
                    key: p.clone(),
                });
        }
        let key = region.to_lowercase();
        self.names.get(&key).map(|a| Route {
            adapter: a.clone(),
            key,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len() + self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (key, adapter) pair, for listing.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.prefixes
            .iter()
            .chain(self.names.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A telephone number or area code in one comparable form: digits only, China's country
/// code folded to the domestic trunk prefix (`+86 20 …`, `0086 20 …` → `020…`), other
/// countries kept international (`+852…`). `None` for anything that is not a number.
fn phone_form(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest.to_owned()),
        None => match compact.strip_prefix("00") {
            Some(rest) if rest.len() > 4 => (true, rest.to_owned()),
            _ => (false, compact.clone()),
        },
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(match (plus, digits.strip_prefix("86")) {
        (true, Some(national)) => format!("0{national}"),
        (true, None) => format!("+{digits}"),
        (false, _) => digits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let mut r = Routes::default();
        r.insert("020", "cantonese");
        r.insert("0755", "cantonese");
        r.insert("028", "southwest");
        r.insert("+852", "cantonese");
        r.insert("02", "putonghua");
        r.insert("Guangdong", "cantonese");
        r.insert("CN-SC", "southwest");
        r
    }

    #[test]
    fn numbers_match_the_longest_area_code() {
        let r = routes();
        assert_eq!(r.lookup("020 8888 1234").unwrap().adapter, "cantonese");
        assert_eq!(r.lookup("020 8888 1234").unwrap().key, "020");
        assert_eq!(r.lookup("+86 28 8765 4321").unwrap().adapter, "southwest");
        assert_eq!(r.lookup("0086-755-1234567").unwrap().adapter, "cantonese");
        assert_eq!(r.lookup("+852 2345 6789").unwrap().adapter, "cantonese");
        assert_eq!(r.lookup("0215550000").unwrap().adapter, "putonghua");
        assert_eq!(r.lookup("+1 415 555 0100"), None);
    }

    #[test]
    fn names_match_case_insensitively() {
        let r = routes();
        assert_eq!(r.lookup("guangdong").unwrap().adapter, "cantonese");
        assert_eq!(r.lookup("cn-sc").unwrap().adapter, "southwest");
        assert_eq!(r.lookup("Atlantis"), None);
        assert_eq!(r.lookup(""), None);
    }

    #[test]
    fn later_inserts_override() {
        let mut r = routes();
        r.insert("020", "putonghua");
        assert_eq!(r.lookup("02088881234").unwrap().adapter, "putonghua");
    }
}
