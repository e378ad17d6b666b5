"""Tests of jobs/serving/."""
