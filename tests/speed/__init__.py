"""Tests of jobs/speed/."""
