"""Tests of jobs/runners/."""
