//! Country codes: the ISO 3166-1 alpha-2 codes a DataProcessor's `country` may take, and the
//! countries of the EU/EEA, within which personal data moves freely (GDPR Chapter V applies to
//! transfers outside them).

/// Every officially assigned ISO 3166-1 alpha-2 code (249), in alphabetical order.
///
/// Source: ISO 3166-1 alpha-2, officially assigned codes, as published by ISO's Online Browsing
/// Platform (OBP) for ISO 3166 Maintenance Agency decisions up to 2024. Exceptionally,
/// transitionally or indeterminately reserved codes (such as `UK`, `EL`, `EU` or `XK`) are not
/// assigned and are refused: Greece is `GR` and the United Kingdom `GB`.
pub const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The countries of the European Economic Area (30), in alphabetical order: the 27 member
/// states of the European Union and Iceland, Liechtenstein and Norway.
///
/// Source: the Treaty on European Union, Art. 52 (the member states, as of the United
/// Kingdom's withdrawal on 1 February 2020), and the Agreement on the European Economic Area,
/// whose EFTA parties are Iceland, Liechtenstein and Norway (Switzerland is not one). Within
/// these, personal data moves as freely as within Sweden; beyond them GDPR Chapter V applies.
/// Parts of member states with codes of their own (such as `AX`, `GF` or `RE`) are not listed:
/// a processor established there is recorded under its member state's code (`FI`, `FR`).
pub const EEA: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// Whether `code` is an officially assigned ISO 3166-1 alpha-2 code.
pub fn is_country(code: &str) -> bool {
    ISO_3166_ALPHA2.binary_search(&code).is_ok()
}

/// Whether `code` is a country of the EU/EEA.
pub fn is_eea(code: &str) -> bool {
    EEA.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_unique_codes(codes: &[&str]) {
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase())),
            "two upper-case letters"
        );
    }

    #[test]
    fn the_code_lists_are_sorted_unique_and_complete() {
        sorted_unique_codes(ISO_3166_ALPHA2);
        sorted_unique_codes(EEA);
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
        assert_eq!(EEA.len(), 30);
        assert!(EEA.iter().all(|c| is_country(c)), "every EEA code assigned");
        let eu = EEA
            .iter()
            .filter(|c| !["IS", "LI", "NO"].contains(c))
            .count();
        assert_eq!(eu, 27);
    }

    #[test]
    fn reserved_codes_and_names_are_no_countries() {
        for code in ["SE", "US", "GB", "CH", "JP", "AX", "SS", "BQ"] {
            assert!(is_country(code), "{code}");
        }
        for code in ["UK", "EL", "EU", "XK", "XX", "se", "Sweden", ""] {
            assert!(!is_country(code), "{code}");
        }
    }

    #[test]
    fn the_eea_is_the_eu_and_iceland_liechtenstein_and_norway() {
        for code in ["SE", "FI", "DE", "GR", "IS", "LI", "NO"] {
            assert!(is_eea(code), "{code}");
        }
        for code in ["GB", "CH", "US", "JP", "EL", "UK"] {
            assert!(!is_eea(code), "{code}");
        }
    }
}
