//! Every shipped decoder loads, and each of its sample lines is read by it and gives what the
//! file says (`DECODER=<name>` runs one decoder's samples).

use garrison_decoders::{record_of_line, DecoderSet};

#[test]
fn every_shipped_decoder_loads() {
    let (set, errors) = DecoderSet::load(&[]);
    assert!(
        errors.is_empty(),
        "decoders that do not load:\n{}",
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!set.is_empty(), "no decoder is shipped");
    for d in set.decoders() {
        assert!(
            d.sample_count() >= 3,
            "{}: ships {} sample tests; every decoder needs at least 3",
            d.name,
            d.sample_count()
        );
    }
}

#[test]
fn every_sample_decodes_as_its_file_says() {
    let (set, _) = DecoderSet::load(&[]);
    let only = std::env::var("DECODER").ok();
    let (ran, failures) = set.run_samples(only.as_deref());
    assert!(ran > 0, "no sample ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} samples failed:\n{}",
        failures.len(),
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_line_no_decoder_knows_is_left_alone() {
    let set = DecoderSet::builtin().expect("shipped decoders load");
    let record = record_of_line("<13>Jan 12 10:00:00 host1 myapp[1]: hello there");
    let (normalized, applied) = garrison_decoders::decode_record(&set, &record);
    assert!(applied.is_none(), "{applied:?}");
    assert!(!normalized.contains_key(garrison_decoders::DECODER_FIELD));
}

mod properties {
    use garrison_decoders::{decode_record, record_of_line, DecoderSet};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn set() -> &'static DecoderSet {
        static SET: OnceLock<DecoderSet> = OnceLock::new();
        SET.get_or_init(|| DecoderSet::builtin().expect("shipped decoders load"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any line, with any program, decodes or is left alone; never a panic.
        #[test]
        fn any_line_is_safe(
            program in prop::sample::select(vec!["sshd", "sudo", "filterlog", "nginx", "audit", "CRON", "x"]),
            body in ".{0,300}",
        ) {
            let line = format!("<38>Jan 12 10:01:02 h1 {program}[1]: {body}");
            let _ = decode_record(set(), &record_of_line(&line));
        }

        /// Mangled copies of real samples never panic either.
        #[test]
        fn mangled_samples_are_safe(seed in any::<u64>(), cut in 0usize..400, junk in ".{0,20}") {
            let samples: Vec<String> = set()
                .decoders()
                .iter()
                .flat_map(|d| d.spec().tests.iter().filter_map(|t| t.line.clone()))
                .collect();
            if samples.is_empty() { return Ok(()); }
            let line = &samples[(seed as usize) % samples.len()];
            let cut = line.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(line.len());
            let mangled = format!("{}{junk}{}", &line[..cut], &line[cut..].chars().rev().collect::<String>());
            let _ = decode_record(set(), &record_of_line(&mangled));
        }
    }
}

#[test]
fn the_coverage_table_is_current() {
    let set = DecoderSet::builtin().expect("shipped decoders load");
    let want = set.coverage_markdown();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/decoder-coverage.md");
    if std::env::var_os("GARRISON_WRITE_DOCS").is_some() {
        std::fs::write(&path, &want).expect("docs/ is writable");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/decoder-coverage.md is stale: run GARRISON_WRITE_DOCS=1 cargo test -p garrison-decoders --test samples"
    );
}
