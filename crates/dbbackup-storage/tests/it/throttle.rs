use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dbbackup_core::testing::conformance;
use dbbackup_core::{PutMode, Sink, SinkExt};
use dbbackup_storage::{MemorySink, Throttled};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_sink_keeps_the_contract_and_paces_writes() {
    let inner: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let fast = Throttled::new(inner.clone(), 512 << 20).unwrap();
    conformance::sink_suite(Arc::new(fast)).await;

    // 3 MiB at 2 MiB/s from an empty bucket cannot finish in under a second.
    let slow = Throttled::new(inner, 2 << 20).unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        slow.put_bytes(
            &format!("t/{i}"),
            Bytes::from(vec![0u8; 1 << 20]),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    }
    assert!(
        t0.elapsed().as_secs_f64() >= 0.9,
        "the limit was not applied: {:?}",
        t0.elapsed()
    );
    assert!(Throttled::new(Arc::new(MemorySink::new()), 10).is_err());
}
