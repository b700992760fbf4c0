//! `pulsedb import`, `export` and `search`: JSON lines in and out, and a
//! text query from the shell.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pulsedb::wire::{ExperienceJson, ExportedExperienceJson, NewExperienceJson};
use pulsedb::{CollectiveId, Error, Experience, ExperienceId, NewExperience, PulseHandle};
use tokio::sync::mpsc;

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
    if let Some(id) = db.resolve_collective(name).await? {
        return Ok(id);
    }
    if create {
        return db.create_collective(name).await;
    }
    Err(Error::Io(std::io::Error::other(format!(
        "no collective named {name:?}"
    ))))
}

/// Lines read, or chunks written, queued between the file and the engine.
const QUEUED_CHUNKS: usize = 4;

/// Numbered lines read from a file, a chunk at a time.
type LineChunks = mpsc::Receiver<std::io::Result<Vec<(usize, String)>>>;
/// The task writing an export, and the queue that feeds it.
type LineWriter = (
    mpsc::Sender<Vec<String>>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// A line of an import file: a new experience, or an exported one (it has
/// an `id`) restored as it was.
enum Line {
    New(NewExperience),
    Whole(Experience),
}

fn parse(line: &str, c: CollectiveId) -> Result<Line, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(line)?;
    if value.get("id").is_some() {
        let x: ExportedExperienceJson = serde_json::from_value(value)?;
        Ok(Line::Whole(x.into_experience(c)))
    } else {
        let x: NewExperienceJson = serde_json::from_value(value)?;
        Ok(Line::New(x.into_new(c)))
    }
}

/// Writes `batch` in one call; when that is refused, one by one, so that
/// each bad line is reported and the rest kept. Returns how many were kept.
async fn flush<T: Clone>(
    db: &PulseHandle,
    batch: &mut Vec<(usize, T)>,
    write: impl AsyncFn(&PulseHandle, Vec<T>) -> pulsedb::Result<Vec<ExperienceId>>,
) -> pulsedb::Result<usize> {
    let items: Vec<T> = batch.iter().map(|(_, x)| x.clone()).collect();
    let n = items.len();
    match write(db, items).await {
        Ok(_) => {
            batch.clear();
            return Ok(n);
        }
        Err(Error::Validation(_)) => {}
        Err(e) => return Err(e),
    }
    let mut kept = 0;
    for (line, x) in batch.drain(..) {
        match write(db, vec![x]).await {
            Ok(_) => kept += 1,
            Err(Error::Validation(v)) => eprintln!("line {line}: {v}"),
            Err(e) => return Err(e),
        }
    }
    Ok(kept)
}

async fn record_new(
    db: &PulseHandle,
    xs: Vec<NewExperience>,
) -> pulsedb::Result<Vec<ExperienceId>> {
    db.record_experiences(xs).await
}

async fn restore(db: &PulseHandle, xs: Vec<Experience>) -> pulsedb::Result<Vec<ExperienceId>> {
    db.import_experiences(xs).await
}

pub(crate) async fn import(
    db: &Path,
    name: &str,
    file: &Path,
    embedder: EmbedderChoice,
) -> pulsedb::Result<()> {
    let size = std::fs::metadata(file)?.len();
    let (handle, _) = crate::open(db, embedder, false).await?;
    let result = import_into(&handle, name, file, size).await;
    handle.close().await?;
    let (imported, rejected) = result?;
    println!("imported {imported}, rejected {rejected}");
    Ok(())
}

/// Numbered lines of a file, read on the blocking pool in chunks of
/// [`BATCH`] through a bounded queue.
fn read_lines(file: &Path) -> (LineChunks, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let file = file.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let lines = match std::fs::File::open(&file) {
            Ok(f) => BufReader::new(f).lines(),
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut chunk = Vec::with_capacity(BATCH);
        for (i, line) in lines.enumerate() {
            match line {
                Ok(l) => chunk.push((i + 1, l)),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if chunk.len() == BATCH && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    (rx, reader)
}

async fn import_into(
    db: &PulseHandle,
    name: &str,
    file: &Path,
    size: u64,
) -> pulsedb::Result<(usize, usize)> {
    let c = collective(db, name, true).await?;
    let progress = bar(size, "importing");
    let (mut chunks, reader) = read_lines(file);
    let (mut imported, mut lines) = (0, 0);
    let (mut fresh, mut whole) = (Vec::new(), Vec::new());
    while let Some(chunk) = chunks.recv().await {
        for (number, line) in chunk? {
            progress.inc(line.len() as u64 + 1);
            if line.trim().is_empty() {
                continue;
            }
            lines += 1;
            match parse(&line, c) {
                Ok(Line::New(x)) => fresh.push((number, x)),
                Ok(Line::Whole(x)) => whole.push((number, x)),
                Err(e) => eprintln!("line {number}: {e}"),
            }
            if fresh.len() == BATCH {
                imported += flush(db, &mut fresh, record_new).await?;
            }
            if whole.len() == BATCH {
                imported += flush(db, &mut whole, restore).await?;
            }
        }
    }
    reader
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    if !fresh.is_empty() {
        imported += flush(db, &mut fresh, record_new).await?;
    }
    if !whole.is_empty() {
        imported += flush(db, &mut whole, restore).await?;
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

/// A writer on the blocking pool: chunks of lines through a bounded queue
/// into `out` (standard output when `None`).
fn write_lines(out: Option<&PathBuf>) -> std::io::Result<LineWriter> {
    let mut sink: Box<dyn Write + Send> = match out {
        Some(path) => Box::new(BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let (tx, mut rx) = mpsc::channel::<Vec<String>>(QUEUED_CHUNKS);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            for line in chunk {
                sink.write_all(line.as_bytes())?;
                sink.write_all(b"\n")?;
            }
        }
        sink.flush()
    });
    Ok((tx, writer))
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
    let (lines, writer) = write_lines(out)?;
    let progress = bar(total, "exporting");
    let mut written = 0;
    'collectives: for c in collectives {
        let mut offset = 0;
        loop {
            let page = db.list_experiences(c, BATCH, offset).await?;
            if page.is_empty() {
                break;
            }
            offset += page.len();
            let mut chunk = Vec::with_capacity(page.len());
            for x in page {
                let line = serde_json::to_string(&ExperienceJson::new(x, true))
                    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
                chunk.push(line);
            }
            let n = chunk.len() as u64;
            if lines.send(chunk).await.is_err() {
                // The writer stopped: its error is reported below.
                break 'collectives;
            }
            written += n;
            progress.inc(n);
        }
    }
    drop(lines);
    writer
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
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
