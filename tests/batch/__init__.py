"""Tests of jobs/batch/."""
