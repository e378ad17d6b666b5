"""Tests of jobs/ml/."""
