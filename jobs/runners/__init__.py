"""How jobs are run: the command line, one job in its own process, the pipeline, and the Databricks and Airflow definitions generated from it."""
