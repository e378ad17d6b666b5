"""The jobs of lakejobs, by layer: batch/, speed/, serving/, ml/, ops/, and runners/ that run them.
A job is one module exposing run(spark, cfg) -> RunResult, listed in runners/registry.py."""
