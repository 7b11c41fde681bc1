//! The write side: one entry through read -> hash -> codec -> sink.

use super::*;

pub(super) struct EntryJob {
    pub(super) backup_id: String,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) transforms: Arc<Vec<Arc<dyn Transform>>>,
    pub(super) checksum_key: Option<[u8; 32]>,
    pub(super) emitter: Emitter,
}

pub(super) async fn backup_entry(
    job: &EntryJob,
    snapshot: &dyn Snapshot,
    index: usize,
    spec: &EntrySpec,
) -> Result<EntryRecord> {
    let t0 = Instant::now();
    let object = entry_key(&job.backup_id, index);
    let ctx = |e: Error| e.with_entry(spec.name.clone());
    job.emitter.emit(Event::EntryStarted {
        operation: Operation::Backup,
        backup_id: job.backup_id.clone(),
        entry: spec.name.clone(),
    });
    let span = tracing::debug_span!("entry", entry = %spec.name);
    async {
        let data = snapshot.read(spec).await.map_err(ctx)?;
        let rows = data.rows.clone();
        let mut writer = job
            .sink
            .put(&object, PutMode::Create)
            .await
            .map_err(|e| ctx(e).with_object(object.clone()))?;
        let stats = match pump_backup(job, spec, data, writer.as_mut()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(ctx(e).with_object(object.clone()));
            }
        };
        let meta = writer
            .complete()
            .await
            .map_err(|e| ctx(e).with_object(object.clone()))?;
        if meta.size != stats.stored_size {
            return Err(ctx(Error::new(
                ErrorKind::Sink,
                format!(
                    "the sink stored {} bytes, {} were written",
                    meta.size, stats.stored_size
                ),
            ))
            .with_object(object.clone()));
        }
        let rows = rows.map(|r| r.get());
        job.emitter.emit(Event::EntryFinished {
            operation: Operation::Backup,
            backup_id: job.backup_id.clone(),
            entry: spec.name.clone(),
            raw_bytes: stats.raw_size,
            stored_bytes: stats.stored_size,
            rows,
            elapsed: t0.elapsed(),
        });
        Ok(EntryRecord {
            name: spec.name.clone(),
            kind: spec.kind,
            phase: spec.phase,
            object: object.clone(),
            raw_size: stats.raw_size,
            stored_size: stats.stored_size,
            rows,
            checksum: stats.checksum,
            stored_checksum: stats.stored_checksum,
            meta: spec.meta.clone(),
        })
    }
    .instrument(span)
    .await
}

struct PumpStats {
    raw_size: u64,
    stored_size: u64,
    checksum: String,
    stored_checksum: String,
}

// Long on purpose: the four write stages (read, hash, codecs, sink) and their bounded channels are built together so their shutdown and error order is visible in one place.
async fn pump_backup(
    job: &EntryJob,
    spec: &EntrySpec,
    data: EntryData,
    writer: &mut dyn ObjectWriter,
) -> Result<PumpStats> {
    let (tx1, mut rx1) = mpsc::channel::<Msg>(DEPTH);
    let (tx2, mut rx2) = mpsc::channel::<Msg>(DEPTH);
    let (tx3, mut rx3) = mpsc::channel::<Bytes>(DEPTH * 4);
    let raw_progress = Arc::new(AtomicU64::new(0));

    let mut stream = data.stream;
    let mut reader = AbortOnDrop(tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(item) = stream.next().await {
            let chunk = item?;
            if buf.is_empty() && chunk.len() >= BLOCK {
                tx1.send(Msg::Data(chunk))
                    .await
                    .map_err(|_| Error::cancelled())?;
                continue;
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= BLOCK {
                tx1.send(Msg::Data(buf.split().freeze()))
                    .await
                    .map_err(|_| Error::cancelled())?;
            }
        }
        if !buf.is_empty() {
            tx1.send(Msg::Data(buf.freeze()))
                .await
                .map_err(|_| Error::cancelled())?;
        }
        tx1.send(Msg::End).await.map_err(|_| Error::cancelled())?;
        Ok(())
    }));

    let checksum_key = job.checksum_key;
    let progress = raw_progress.clone();
    let mut hash_thread = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
        let mut h = hasher(checksum_key.as_ref());
        let mut n = 0u64;
        loop {
            match rx1.blocking_recv() {
                Some(Msg::Data(b)) => {
                    h.update(&b);
                    n += b.len() as u64;
                    progress.store(n, Ordering::Relaxed);
                    tx2.blocking_send(Msg::Data(b))
                        .map_err(|_| Error::cancelled())?;
                }
                Some(Msg::End) => {
                    tx2.blocking_send(Msg::End)
                        .map_err(|_| Error::cancelled())?;
                    return Ok((h.finalize().to_hex().to_string(), n));
                }
                None => return Err(Error::cancelled()),
            }
        }
    });

    let transforms = job.transforms.clone();
    let (backup_id, entry) = (job.backup_id.clone(), spec.name.clone());
    let mut codec_thread = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
        let ctx = CodecContext {
            backup_id: &backup_id,
            entry: &entry,
        };
        let mut chain = CodecChain::encoders(&transforms, &ctx)?;
        let mut sh = blake3::Hasher::new();
        let mut stored = 0u64;
        {
            let mut emit = |v: Vec<u8>| -> Result<()> {
                sh.update(&v);
                stored += v.len() as u64;
                tx3.blocking_send(Bytes::from(v))
                    .map_err(|_| Error::cancelled())
            };
            loop {
                match rx2.blocking_recv() {
                    Some(Msg::Data(b)) => chain.update(&b, &mut emit)?,
                    Some(Msg::End) => {
                        chain.finish(&mut emit)?;
                        break;
                    }
                    None => return Err(Error::cancelled()),
                }
            }
        }
        Ok((sh.finalize().to_hex().to_string(), stored))
    });

    let mut written = 0u64;
    let mut last_report = 0u64;
    let mut write_err = None;
    while let Some(b) = rx3.recv().await {
        written += b.len() as u64;
        if let Err(e) = writer.write(b).await {
            write_err = Some(e);
            break;
        }
        let raw = raw_progress.load(Ordering::Relaxed);
        if raw >= last_report + BLOCK as u64 {
            last_report = raw;
            job.emitter.emit(Event::EntryProgress {
                operation: Operation::Backup,
                backup_id: job.backup_id.clone(),
                entry: spec.name.clone(),
                raw_bytes: raw,
                stored_bytes: written,
                rows: None,
            });
        }
    }
    drop(rx3);
    if write_err.is_some() {
        reader.0.abort();
    }
    let r_reader = join(&mut reader.0).await;
    let r_hash = join(&mut hash_thread).await;
    let r_codec = join(&mut codec_thread).await;
    let ((checksum, raw_size), (stored_checksum, stored_size)) =
        match (r_reader, r_hash, r_codec, write_err) {
            (Ok(()), Ok(h), Ok(c), None) => (h, c),
            (r, h, c, w) => {
                let errors = [r.err(), h.err(), c.err(), w]
                    .into_iter()
                    .flatten()
                    .collect();
                return Err(first_real_error(errors).expect("at least one stage failed"));
            }
        };
    if stored_size != written {
        return Err(Error::internal(
            "stored byte count disagrees with bytes written",
        ));
    }
    Ok(PumpStats {
        raw_size,
        stored_size,
        checksum,
        stored_checksum,
    })
}
