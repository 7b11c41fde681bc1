//! Benchmarks live in `benches/` and measurement programs in `examples/`.
