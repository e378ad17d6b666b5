"""spark-submit entry file: spark-submit --py-files lakejobs-<version>.zip entry.py --job JOB [--env ENV] [--conf k=v]"""
import sys

from jobs.runners.cli import submit_main

sys.exit(submit_main(sys.argv[1:]))
