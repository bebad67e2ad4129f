//! Properties: parsers never panic; canonical forms are fixed points; the CIDR index answers
//! what a scan of every network would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use garrison_intel::*;
use ipnet::IpNet;
use proptest::prelude::*;

fn opts() -> ImportOptions {
    ImportOptions::new("prop", jiff::Timestamp::UNIX_EPOCH)
}

fn kinds() -> impl Strategy<Value = IndicatorKind> {
    proptest::sample::select(IndicatorKind::ALL.to_vec())
}

/// Text that looks like indicators often enough to reach deep into the canonicalisers.
fn indicatorish() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[a-zA-Z0-9.:/@%\\[\\]_-]{0,40}",
        "(hxxps?|https?|ftp|HTTP)://[a-zA-Z0-9.\\[\\]@:-]{1,20}(/[a-zA-Z0-9.%?=&#/\\\\-]{0,20})?",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?",
        "[0-9a-fA-F:]{2,39}(/[0-9]{1,3})?",
        "[a-zA-Z0-9._%+-]{1,10}@[a-zA-Z0-9.-]{1,20}",
        "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}",
        "(\\*\\.)?[a-zA-Z0-9ü-]{1,10}(\\.[a-zA-Z0-9ü-]{1,10}){0,3}\\.?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn csv_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let out = parse_csv(&bytes, &opts());
        prop_assert!(out.indicators.len() + out.errors.len() <= bytes.len() + 1);
    }

    #[test]
    fn csv_of_indicatorish_rows_never_panics(rows in proptest::collection::vec((indicatorish(), "[a-z0-9 ]{0,8}", "\\PC{0,12}"), 0..20)) {
        let mut text = String::from("type,value,confidence,expires\n");
        for (value, kind, other) in rows {
            text.push_str(&format!("{kind},\"{}\",{other},{other}\n", value.replace('"', "\"\"")));
        }
        let _ = parse_csv(text.as_bytes(), &opts());
    }

    #[test]
    fn stix_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_stix(&bytes, &opts());
    }

    #[test]
    fn stix_never_panics_on_patterns(pattern in "[\\[\\]()'a-z0-9:.= ,_\\\\-]{0,80}|\\PC{0,60}", value in indicatorish()) {
        for p in [pattern.clone(), format!("[ipv4-addr:value = '{value}'] OR [{pattern}]"), format!("[file:hashes.'SHA-256' = '{value}' AND {pattern}")] {
            let doc = serde_json::json!({"type": "indicator", "id": "indicator--p", "pattern_type": "stix", "pattern": p});
            let out = parse_stix(doc.to_string().as_bytes(), &opts());
            prop_assert!(out.indicators.len() + out.errors.len() + out.skipped.len() >= 1);
        }
    }

    #[test]
    fn misp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), value in indicatorish(), kind in "[a-z0-9|-]{0,16}") {
        let _ = parse_misp(&bytes, &opts());
        let doc = serde_json::json!({"Event": {"Attribute": [{"type": kind, "value": value, "to_ids": true, "timestamp": value}], "Object": [{"Attribute": [{"type": "ip-src", "value": value}]}]}});
        let _ = parse_misp(doc.to_string().as_bytes(), &opts());
    }

    #[test]
    fn canonical_values_are_fixed_points(kind in kinds(), text in indicatorish()) {
        if let Ok(v) = IndicatorValue::parse(kind, &text) {
            let again = IndicatorValue::parse(kind, &v.text());
            prop_assert_eq!(again.as_ref(), Ok(&v), "{:?} -> {:?}", text, v.text());
        }
        if let Ok(v) = IndicatorValue::infer(&text) {
            let again = IndicatorValue::parse(v.kind(), &v.text());
            prop_assert_eq!(again.as_ref(), Ok(&v), "{:?} -> {:?}", text, v.text());
        }
    }

    #[test]
    fn an_indicator_matches_its_own_text(kind in kinds(), text in indicatorish()) {
        let Ok(value) = IndicatorValue::parse(kind, &text) else { return Ok(()) };
        let ty = match kind {
            IndicatorKind::Ip => FieldType::Ip,
            IndicatorKind::Cidr => return Ok(()),
            IndicatorKind::Domain => FieldType::Domain,
            IndicatorKind::Url => FieldType::Url,
            IndicatorKind::Hash(_) => FieldType::Hash,
            IndicatorKind::Email => FieldType::Email,
        };
        let text = value.text().into_owned();
        let set = IndicatorSet::build(vec![Indicator::new(value, "p")]);
        let mut hit = false;
        set.lookup(ty, &text, |_| hit = true);
        prop_assert!(hit, "{:?} as {:?}", text, ty);
    }

    #[test]
    fn cidr_lookup_equals_a_naive_scan(
        nets in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..60),
        probes in proptest::collection::vec(any::<u32>(), 0..60),
    ) {
        let networks: Vec<IpNet> = nets
            .iter()
            .map(|(a, len)| IpNet::from(ipnet::Ipv4Net::new(Ipv4Addr::from(*a), *len).expect("len").trunc()))
            .collect();
        let set = IndicatorSet::build(networks.iter().map(|n| Indicator::new(IndicatorValue::Cidr(*n), "p")).collect());
        // Probe random addresses and each network's edges.
        let mut addresses: Vec<u32> = probes;
        for (a, _) in &nets { addresses.push(*a); }
        for n in &networks {
            if let IpNet::V4(n) = n {
                let lo = u32::from(n.network());
                let hi = u32::from(n.broadcast());
                addresses.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
            }
        }
        for a in addresses {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            let mut got = Vec::new();
            set.lookup(FieldType::Ip, &ip.to_string(), |i| got.push(i));
            got.sort();
            let expected: Vec<usize> = networks.iter().enumerate().filter(|(_, n)| n.contains(&ip)).map(|(i, _)| i).collect();
            prop_assert_eq!(got, expected, "{}", ip);
        }
    }

    #[test]
    fn cidr_v6_lookup_equals_a_naive_scan(
        nets in proptest::collection::vec((0u128..16, any::<u64>(), 0u8..=128), 0..40),
        probes in proptest::collection::vec((0u128..16, any::<u64>()), 0..40),
    ) {
        // Few distinct high bits, so networks nest and addresses fall inside them.
        let addr = |hi: u128, lo: u64| Ipv6Addr::from((hi << 124) | u128::from(lo));
        let networks: Vec<IpNet> = nets
            .iter()
            .map(|(hi, lo, len)| IpNet::from(ipnet::Ipv6Net::new(addr(*hi, *lo), *len).expect("len").trunc()))
            .collect();
        let set = IndicatorSet::build(networks.iter().map(|n| Indicator::new(IndicatorValue::Cidr(*n), "p")).collect());
        let mut addresses: Vec<Ipv6Addr> = probes.iter().map(|(h, l)| addr(*h, *l)).collect();
        for n in &networks {
            if let IpNet::V6(n) = n {
                addresses.extend([n.network(), n.broadcast()]);
            }
        }
        for a in addresses {
            // IPv4-mapped addresses are read as IPv4 (as events carry them); skip those.
            if a.to_ipv4_mapped().is_some() { continue; }
            let ip = IpAddr::V6(a);
            let mut got = Vec::new();
            set.lookup(FieldType::Ip, &ip.to_string(), |i| got.push(i));
            got.sort();
            let expected: Vec<usize> = networks.iter().enumerate().filter(|(_, n)| n.contains(&ip)).map(|(i, _)| i).collect();
            prop_assert_eq!(got, expected, "{}", ip);
        }
    }
}
