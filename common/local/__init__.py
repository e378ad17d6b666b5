"""For a developer's machine, never imported by a job: local servers (Spark cluster, Kafka, MLflow, S3, Airflow) and the packager."""
