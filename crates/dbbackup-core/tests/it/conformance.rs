use std::sync::Arc;

use dbbackup_core::testing::{conformance, MemoryTarget, ScriptedSource};
use dbbackup_core::{MemorySink, RestoreTarget, Sink, Source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sink_passes_the_sink_suite_through_arc_dyn() {
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    conformance::sink_suite(sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_source_and_memory_target_pass_the_source_suite() {
    let source: Arc<dyn Source> = Arc::new(crate::sample_source());
    let target = MemoryTarget::new();
    let bad = MemoryTarget::new();
    let (report, restored, _) = conformance::source_roundtrip(
        source,
        Arc::new(target.clone()) as Arc<dyn RestoreTarget>,
        Some(Arc::new(bad.clone())),
    )
    .await;
    assert_eq!(restored.entries, report.manifest.entries.len());
    assert!(target.finished());
    assert!(bad.aborted(), "the damaged restore must abort the session");
    assert!(
        bad.names().is_empty(),
        "the aborted session left entries behind"
    );
    let _ = ScriptedSource::new("x");
}
