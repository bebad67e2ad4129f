//! `garrison decoders`: list the decoders the service reads with, try a line on them, run a
//! decoder file's own samples, print the coverage table.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_decoders::{decode_record, record_of_line, Decoder, DecoderSet};
use serde_json::Value;

use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum DecodersCommand {
    /// Every decoder, one per line: name, logsource, what recognises it, samples, where from.
    ///
    /// Reads the shipped decoders, then DATA_DIR/decoders and the `decoders_dir` setting.
    /// Exit code 1 when a file does not load (each printed with its place).
    List {
        /// One JSON object per decoder.
        #[arg(long)]
        json: bool,
        /// More decoder folders to read (after the others).
        #[arg(long = "decoders", value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Show what lines become, or run a decoder file's own sample tests.
    ///
    /// `decoders test FILE --sample LINE` decodes LINE with every decoder plus FILE (FILE
    /// replaces a decoder of the same name) and prints the normalised view, the decoder,
    /// logsource and time. Without --sample or --record, runs FILE's `tests:` and exits 1
    /// when one fails. `decoders test --sample LINE` (no FILE) tries the loaded decoders.
    Test {
        /// A decoder file (YAML).
        file: Option<PathBuf>,
        /// A line as the device sends it (a syslog line or the message alone); repeatable.
        #[arg(long = "sample", value_name = "LINE")]
        samples: Vec<String>,
        /// A JSON record, for decoders of records; repeatable.
        #[arg(long = "record", value_name = "JSON")]
        records: Vec<String>,
        /// Print one JSON object per sample.
        #[arg(long)]
        json: bool,
    },
    /// The coverage table (decoder, logsource, fields, samples) as Markdown.
    Coverage,
}

/// The folders the service reads decoders from (the same rule: `ServerConfig::decoder_dirs`),
/// then `extra`.
fn folders(settings: &Settings, extra: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut dirs = settings.server_config()?.decoder_dirs();
    dirs.extend(extra.iter().cloned());
    Ok(dirs)
}

fn load(dirs: &[PathBuf]) -> (DecoderSet, Vec<garrison_decoders::LoadError>) {
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    DecoderSet::load(&refs)
}

fn logsource_text(d: &garrison_model::LogSource) -> String {
    let parts: Vec<String> = [
        ("product", &d.product),
        ("service", &d.service),
        ("category", &d.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn recognised_by(d: &Decoder) -> String {
    let m = &d.spec().recognise;
    let mut parts = Vec::new();
    let list =
        |name: &str, v: &[String]| (!v.is_empty()).then(|| format!("{name} {}", v.join("|")));
    parts.extend(list("program", &m.program));
    parts.extend(list("vendor", &m.vendor));
    parts.extend(list("product", &m.product));
    parts.extend(list("prefix", &m.prefix));
    parts.extend(list("contains", &m.contains));
    if let Some(p) = &m.pattern {
        parts.push(format!("pattern {p}"));
    }
    if !m.fields.is_empty() {
        parts.push(format!(
            "fields {}",
            m.fields.keys().cloned().collect::<Vec<_>>().join(",")
        ));
    }
    parts.join("; ")
}

pub fn run(command: DecodersCommand, settings: &Settings) -> Result<i32> {
    match command {
        DecodersCommand::List { json, dirs } => {
            let (set, errors) = load(&folders(settings, &dirs)?);
            let mut decoders: Vec<&Decoder> = set.decoders().iter().collect();
            decoders.sort_by(|a, b| a.name.cmp(&b.name));
            for d in decoders {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "name": d.name, "title": d.title, "logsource": d.logsource,
                            "reads": if d.reads_text() { "text" } else { "records" },
                            "match": recognised_by(d), "samples": d.sample_count(),
                            "fields": d.output_fields(), "origin": d.origin, "path": d.path,
                        })
                    );
                } else {
                    println!(
                        "{:<22} {:<44} {:<3} samples  {}  [{}]",
                        d.name,
                        logsource_text(&d.logsource),
                        d.sample_count(),
                        recognised_by(d),
                        d.path
                    );
                }
            }
            for e in &errors {
                eprintln!("error: {e}");
            }
            Ok(i32::from(!errors.is_empty()))
        }
        DecodersCommand::Test {
            file,
            samples,
            records,
            json,
        } => test(settings, file.as_deref(), &samples, &records, json),
        DecodersCommand::Coverage => {
            let set = DecoderSet::builtin().map_err(|errors| {
                anyhow::anyhow!(
                    "shipped decoders do not load: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            print!("{}", set.coverage_markdown());
            Ok(0)
        }
    }
}

fn test(
    settings: &Settings,
    file: Option<&Path>,
    samples: &[String],
    records: &[String],
    json: bool,
) -> Result<i32> {
    let (set, errors) = load(&folders(settings, &[])?);
    for e in &errors {
        eprintln!("warning: {e}");
    }
    let mut decoders: Vec<Decoder> = set.into_decoders();
    let mut name = None;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let decoder = Decoder::from_yaml(&text, &path.display().to_string())?;
        name = Some(decoder.name.clone());
        decoders.retain(|d| d.name != decoder.name);
        decoders.push(decoder);
    }
    let set = DecoderSet::from_decoders(decoders);
    if samples.is_empty() && records.is_empty() {
        let Some(name) = name else {
            bail!("give a decoder FILE to run its tests, or --sample LINE / --record JSON to try");
        };
        let (ran, failures) = set.run_samples(Some(&name));
        if ran == 0 {
            bail!("{name}: the file has no `tests:`; add sample lines with what they must give");
        }
        for f in &failures {
            println!("FAIL {f}");
        }
        println!(
            "{name}: {} of {ran} samples pass",
            ran.saturating_sub(failures.len())
        );
        return Ok(i32::from(!failures.is_empty() || ran == 0));
    }
    let mut inputs = Vec::new();
    for line in samples {
        inputs.push((line.clone(), record_of_line(line)));
    }
    for (i, text) in records.iter().enumerate() {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => {
                inputs.push((text.clone(), garrison_ingest::Record::from_fields(map)))
            }
            Ok(_) => bail!("--record {}: not a JSON object", i + 1),
            Err(e) => bail!("--record {}: {e}", i + 1),
        }
    }
    let mut missed = false;
    for (input, record) in inputs {
        let (normalized, applied) = decode_record(&set, &record);
        missed |= applied.as_ref().is_none_or(|a| a.failed);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "input": input,
                    "decoder": applied.as_ref().map(|a| &a.decoder),
                    "parsed": applied.as_ref().is_some_and(|a| !a.failed),
                    "logsource": applied.as_ref().map(|a| &a.logsource),
                    "time": applied.as_ref().and_then(|a| a.time).map(|t| t.to_string()),
                    "normalized": normalized,
                })
            );
            continue;
        }
        println!("input      {input}");
        match &applied {
            None => println!("decoder    none recognises it (kept with the built-in mapping only)"),
            Some(a) if a.failed => println!(
                "decoder    {} recognises it, but no parse alternative matched (stored flagged garrison.unparsed)",
                a.decoder
            ),
            Some(a) => {
                println!("decoder    {}", a.decoder);
                println!("logsource  {}", logsource_text(&a.logsource));
                if let Some(t) = a.time {
                    println!("time       {t}");
                }
            }
        }
        let mut keys: Vec<&String> = normalized.keys().collect();
        keys.sort();
        for k in keys {
            println!("  {k} = {}", normalized[k.as_str()]);
        }
        println!();
    }
    Ok(i32::from(missed))
}
