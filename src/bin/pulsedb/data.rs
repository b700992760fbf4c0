//! `pulsedb import`, `export` and `search`: JSON lines in and out, and a
//! text query from the shell.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pulsedb::server::wire::{ExperienceJson, NewExperienceJson};
use pulsedb::{CollectiveId, Error, NewExperience, PulseHandle};

use crate::EmbedderChoice;

/// Experiences per `record_experiences` call on import, and per page on export.
const BATCH: usize = 1000;

/// A progress bar on stderr; drawn only when stderr is a terminal.
fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

/// The id of the collective called `name`, created when `create` and missing.
async fn collective(db: &PulseHandle, name: &str, create: bool) -> pulsedb::Result<CollectiveId> {
    let all = db.list_collectives().await?;
    if let Some(c) = all.into_iter().find(|c| c.name == name) {
        return Ok(c.id);
    }
    if create {
        return db.create_collective(name).await;
    }
    Err(Error::Io(std::io::Error::other(format!(
        "no collective named {name:?}"
    ))))
}

/// Records `batch` in one call; when that is refused, one by one, so that
/// each bad line is reported and the rest kept. Returns how many were kept.
async fn record(
    db: &PulseHandle,
    batch: &mut Vec<(usize, NewExperience)>,
) -> pulsedb::Result<usize> {
    let items: Vec<NewExperience> = batch.iter().map(|(_, x)| x.clone()).collect();
    let n = items.len();
    match db.record_experiences(items).await {
        Ok(_) => {
            batch.clear();
            return Ok(n);
        }
        Err(Error::Validation(_)) => {}
        Err(e) => return Err(e),
    }
    let mut kept = 0;
    for (line, x) in batch.drain(..) {
        match db.record_experience(x).await {
            Ok(_) => kept += 1,
            Err(Error::Validation(v)) => eprintln!("line {line}: {v}"),
            Err(e) => return Err(e),
        }
    }
    Ok(kept)
}

pub(crate) async fn import(
    db: &Path,
    name: &str,
    file: &Path,
    embedder: EmbedderChoice,
) -> pulsedb::Result<()> {
    let (handle, _) = crate::open(db, embedder, false).await?;
    let result = import_into(&handle, name, file).await;
    handle.close().await?;
    let (imported, rejected) = result?;
    println!("imported {imported}, rejected {rejected}");
    Ok(())
}

async fn import_into(db: &PulseHandle, name: &str, file: &Path) -> pulsedb::Result<(usize, usize)> {
    let c = collective(db, name, true).await?;
    let size = std::fs::metadata(file)?.len();
    let reader = BufReader::new(std::fs::File::open(file)?);
    let progress = bar(size, "importing");
    let (mut imported, mut lines) = (0, 0);
    let mut batch = Vec::with_capacity(BATCH);
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        match serde_json::from_str::<NewExperienceJson>(&line) {
            Ok(x) => batch.push((i + 1, x.into_new(c))),
            Err(e) => eprintln!("line {}: {e}", i + 1),
        }
        if batch.len() == BATCH {
            imported += record(db, &mut batch).await?;
        }
    }
    if !batch.is_empty() {
        imported += record(db, &mut batch).await?;
    }
    progress.finish_and_clear();
    // Rejected: lines that did not parse and items the engine refused.
    Ok((imported, lines - imported))
}

pub(crate) async fn export(
    db: &Path,
    name: Option<&str>,
    out: Option<&PathBuf>,
) -> pulsedb::Result<()> {
    let (handle, _) = crate::open(db, EmbedderChoice::None, true).await?;
    let result = export_from(&handle, name, out).await;
    handle.close().await?;
    let n = result?;
    eprintln!("exported {n}");
    Ok(())
}

async fn export_from(
    db: &PulseHandle,
    name: Option<&str>,
    out: Option<&PathBuf>,
) -> pulsedb::Result<u64> {
    let collectives = match name {
        Some(n) => vec![collective(db, n, false).await?],
        None => db
            .list_collectives()
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect(),
    };
    let mut total = 0;
    for c in &collectives {
        total += db.get_collective_stats(*c).await?.experience_count;
    }
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let progress = bar(total, "exporting");
    let mut written = 0;
    for c in collectives {
        let mut offset = 0;
        loop {
            let page = db.list_experiences(c, BATCH, offset).await?;
            if page.is_empty() {
                break;
            }
            offset += page.len();
            for x in page {
                let line = serde_json::to_string(&ExperienceJson::new(x, true))
                    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
                writeln!(sink, "{line}")?;
                written += 1;
                progress.inc(1);
            }
        }
    }
    sink.flush()?;
    progress.finish_and_clear();
    Ok(written)
}

pub(crate) async fn search(db: &Path, name: &str, k: usize, text: &str) -> pulsedb::Result<()> {
    let (handle, _) = crate::open(db, EmbedderChoice::Builtin, true).await?;
    let result = async {
        let c = collective(&handle, name, false).await?;
        let options = pulsedb::SearchOptions {
            k,
            ..pulsedb::SearchOptions::default()
        };
        handle.search_text(c, text, options).await
    }
    .await;
    handle.close().await?;
    println!("{:>10}  content", "similarity");
    for hit in result? {
        let content: String = hit.experience.content.chars().take(100).collect();
        println!("{:>10.3}  {}", hit.similarity, content.replace('\n', " "));
    }
    Ok(())
}
