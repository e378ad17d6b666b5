"""Tests of jobs/ops/."""
