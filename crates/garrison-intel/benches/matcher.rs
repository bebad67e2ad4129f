//! Matching speed against large indicator sets: `cargo bench -p garrison-intel`.
//!
//! One million indicators (400k IPs, 100k CIDRs of mixed lengths, 300k domains, 100k SHA-256,
//! 50k URLs, 50k emails), then single field lookups that hit and miss.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use garrison_intel::{
    FieldType, HashAlgorithm, Indicator, IndicatorKind, IndicatorSet, IndicatorValue,
};

fn rng(state: &mut u64) -> u64 {
    // xorshift64*: deterministic, no dependency.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn value(kind: IndicatorKind, text: &str) -> IndicatorValue {
    IndicatorValue::parse(kind, text).expect("valid bench indicator")
}

fn million() -> Vec<Indicator> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(1_000_000);
    let mut push = |v: IndicatorValue| out.push(Indicator::new(v, "bench"));
    for _ in 0..400_000 {
        let ip = Ipv4Addr::from((rng(&mut s) as u32) | 0x0100_0000);
        push(IndicatorValue::Ip(ip.into()));
    }
    for _ in 0..100_000 {
        let len = 8 + (rng(&mut s) % 25) as u8;
        let ip = Ipv4Addr::from(rng(&mut s) as u32);
        push(value(IndicatorKind::Cidr, &format!("{ip}/{len}")));
    }
    for i in 0..300_000 {
        push(value(
            IndicatorKind::Domain,
            &format!("host{i}-{:x}.example{}.com", rng(&mut s) % 4096, i % 97),
        ));
    }
    for _ in 0..100_000 {
        let hex = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            rng(&mut s),
            rng(&mut s),
            rng(&mut s),
            rng(&mut s)
        );
        push(value(IndicatorKind::Hash(HashAlgorithm::Sha256), &hex));
    }
    for i in 0..50_000 {
        push(value(
            IndicatorKind::Url,
            &format!("http://dl{i}.bad{}.net/payload/{i}.exe", i % 13),
        ));
    }
    for i in 0..50_000 {
        push(value(
            IndicatorKind::Email,
            &format!("phish{i}@mail{}.org", i % 31),
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let indicators = million();
    let start = std::time::Instant::now();
    let set = IndicatorSet::build(indicators);
    let built = start.elapsed();
    let hit_ip = match &set.indicators()[7].value {
        IndicatorValue::Ip(ip) => ip.to_string(),
        _ => unreachable!(),
    };
    let cases: [(&str, FieldType, String); 9] = [
        ("ip hit", FieldType::Ip, hit_ip),
        ("ip miss", FieldType::Ip, "203.0.113.77".into()),
        (
            "domain hit (sub of indicator)",
            FieldType::Domain,
            "a.b.host5-1.example5.com".into(),
        ),
        (
            "domain miss",
            FieldType::Domain,
            "www.some-benign-site.co.uk".into(),
        ),
        (
            "sha256 miss",
            FieldType::Hash,
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".into(),
        ),
        (
            "url miss (known host? no)",
            FieldType::Url,
            "https://www.google.com/search?q=garrison".into(),
        ),
        (
            "url hit",
            FieldType::Url,
            "HTTP://dl42.bad3.net/payload/42.exe".into(),
        ),
        ("email miss", FieldType::Email, "alice@corp.example".into()),
        ("email hit", FieldType::Email, "Phish7@mail7.org".into()),
    ];
    for (name, ty, v) in &cases {
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                set.lookup(*ty, black_box(v), |_| n += 1);
                n
            })
        });
    }
    let event = serde_json::json!({
        "source.ip": "10.1.2.3",
        "destination.ip": "198.51.100.20",
        "dns.question.name": "cdn.static.example.net",
        "url.original": "https://update.vendor.example/check?v=1",
        "process.hash.sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "user.name": "alice",
        "process.command_line": "C:\\Windows\\system32\\svchost.exe -k netsvcs",
        "host.name": "ws1",
    });
    let object = event.as_object().expect("object");
    c.bench_function("event of 8 fields (5 checked)", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            set.match_json(black_box(object), &mut out);
            out.len()
        })
    });
    // Report the build time beside criterion's figures.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("built a set of {} indicators in {built:?}\n", set.len()).as_bytes(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
