"""The jobs of lakejobs: one module per job, each exposing run(spark, cfg) -> RunResult."""
