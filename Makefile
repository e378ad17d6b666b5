# lakejobs — `make help` lists the targets. Everything runs from the project's own .venv and .jars.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
LAKEJOBS := $(VENV)/bin/lakejobs
VERSION  := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' common/__init__.py)
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

# The real MovieLens small dataset, when ../shared holds it; else the built-in generator.
SHARED_DATA := ../shared/data/movielens/ml-latest-small
DATA_DIR    ?= $(if $(wildcard $(SHARED_DATA)/ratings.csv),$(SHARED_DATA),)
SOURCE_CONF  = $(if $(DATA_DIR),--conf source.kind=folder --conf source.folder=$(abspath $(DATA_DIR)),)
ENV    ?= local
JOB    ?= full_load
MASTER ?= local[*]
CONF   ?=
DIST   ?= dist
RATE   ?= 200
EVENTS ?= 1000
KAFKA_DIR  ?= lake/state/kafka
KAFKA_PORT ?= 9092
MLFLOW_DIR  ?= lake/state/mlflow-server
MLFLOW_PORT ?= 5000
S3_DIR  ?= lake/state/s3
S3_PORT ?= 9000
S3_CONF  = --conf s3.endpoint=http://127.0.0.1:$(S3_PORT) --conf s3.path_style_access=true
CLUSTER_DIR  ?= lake/state/cluster
CLUSTER_PORT ?= 7077
AIRFLOW_VENV := .airflow/venv
AIRFLOW_DIR  ?= .airflow/home
# Airflow's web UI and API; the Spark cluster's web UI takes 8080 too (beside make cluster-up: AIRFLOW_PORT=8090).
AIRFLOW_PORT ?= 8080
# A driver for a master on this machine binds to 127.0.0.1 too (not the host's outside address).
SUBMIT_ENV = $(if $(findstring 127.0.0.1,$(MASTER)),SPARK_LOCAL_IP=127.0.0.1,)

.PHONY: help setup run pipeline test bench package submit bundle cluster-up cluster-down stream stream-live kafka-up kafka-down mlflow-up mlflow-down s3-up s3-down run-s3 airflow-env airflow-dag airflow-up airflow-down airflow clean distclean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed .jars/.resolved .kafka/.resolved ## install the Python virtualenv and the JVM jars (once)

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.jars/.resolved: jvm/pom.xml
	rm -rf .jars
	mvn -q -B -f jvm/pom.xml dependency:copy-dependencies
	touch $@

.kafka/.resolved: jvm/kafka/pom.xml
	rm -rf .kafka/libs
	mvn -q -B -f jvm/kafka/pom.xml dependency:copy-dependencies
	touch $@

run: pipeline ## run the pipeline on the embedded default and show what it produced

pipeline: setup ## run conf/pipeline.yaml's tasks in order in one local Spark session (PLAN=1: only print the order)
	$(LAKEJOBS) pipeline --env $(ENV) $(SOURCE_CONF) $(CONF) $(if $(PLAN),--plan)

test: setup ## run the test suite
	$(PY) -m pytest tests -n 2

bench: setup ## run the benchmarks (BENCH_ARGS="--only batch --sizes 1000000"); writes bench/results.json and bench/RESULTS.md
	$(PY) -m bench.run $(BENCH_ARGS)

package: $(VENV)/.installed ## build the wheel, the --py-files zip and the spark-submit entry file into dist/, stamped with the commit
	rm -rf $(DIST)
	$(PY) -m common.local.package --dist $(DIST)

submit: setup package ## run JOB=... through spark-submit (MASTER=local[*] by default, or spark://127.0.0.1:7077 after cluster-up)
	set -e; args=$$($(LAKEJOBS) submit-args --env $(ENV) --master '$(MASTER)' --properties-file $(DIST)/spark-submit.properties $(CONF)); \
	$(SUBMIT_ENV) $(VENV)/bin/spark-submit --master '$(MASTER)' --name lakejobs-$(JOB) $$args \
	  --py-files $(DIST)/lakejobs-$(VERSION).zip $(DIST)/lakejobs_entry.py --job $(JOB) --env $(ENV) $(SOURCE_CONF) $(CONF)

bundle: $(VENV)/.installed ## regenerate the Databricks job (resources/) from conf/pipeline.yaml
	$(PY) -m jobs.runners.bundle

cluster-up: setup ## start a Spark standalone master on spark://127.0.0.1:$(CLUSTER_PORT) and two workers (1 core, 2g each)
	$(PY) -m common.local.spark_cluster up --dir $(CLUSTER_DIR) --port $(CLUSTER_PORT)

cluster-down: ## stop the standalone cluster's workers and master
	$(PY) -m common.local.spark_cluster down --dir $(CLUSTER_DIR)

stream: setup ## speed layer once: the next EVENTS held-back events as a burst, merged (availableNow), then the serving view
	$(LAKEJOBS) run simulate --env $(ENV) --conf simulator.max_events=$(EVENTS) $(CONF)
	$(LAKEJOBS) run speed --env $(ENV) $(CONF)
	$(LAKEJOBS) query --env $(ENV) $(CONF) "SELECT movieId, title, rating_count, round(bayes_avg, 3) AS bayes_avg \
	  FROM gold.movie_stats ORDER BY bayes_avg DESC LIMIT 10"

stream-live: setup ## simulator at RATE events/s and the merge every second, until Ctrl-C
	$(LAKEJOBS) run simulate --env $(ENV) --conf simulator.rate=$(RATE) $(CONF) & sim=$$!; \
	  trap 'kill $$sim 2>/dev/null' EXIT; \
	  $(LAKEJOBS) run speed --env $(ENV) --conf stream.trigger=processing_time $(CONF)

kafka-up: setup ## start a Kafka broker (KRaft) on 127.0.0.1:$(KAFKA_PORT); use with CONF="--conf stream.source=kafka"
	$(PY) -m common.local.kafka_broker up --dir $(KAFKA_DIR) --port $(KAFKA_PORT)

kafka-down: ## stop the Kafka broker
	$(PY) -m common.local.kafka_broker down --dir $(KAFKA_DIR)

mlflow-up: setup ## start an MLflow server on 127.0.0.1:$(MLFLOW_PORT); use with CONF="--conf ml.tracking_uri=http://127.0.0.1:5000"
	$(PY) -m common.local.mlflow_server up --dir $(MLFLOW_DIR) --port $(MLFLOW_PORT)

mlflow-down: ## stop the MLflow server
	$(PY) -m common.local.mlflow_server down --dir $(MLFLOW_DIR)

# The local S3 server takes any key; the AWS chain must still find one, so these stand in unless you set yours.
s3-up run-s3: export AWS_ACCESS_KEY_ID ?= local-only
s3-up run-s3: export AWS_SECRET_ACCESS_KEY ?= local-only

s3-up: setup ## start an S3 API server (moto) on 127.0.0.1:$(S3_PORT) with the bucket lakejobs; objects live in its memory
	$(PY) -m common.local.s3_server up --dir $(S3_DIR) --port $(S3_PORT)

s3-down: ## stop the S3 server (the lake on it goes too)
	$(PY) -m common.local.s3_server down --dir $(S3_DIR)

run-s3: setup ## the pipeline with the lake on the local S3 server (s3a://lakejobs/lake), started when not running
	@$(PY) -c "from common.local.servers import listening; exit(0 if listening($(S3_PORT)) else 1)" || $(MAKE) --no-print-directory s3-up
	$(LAKEJOBS) pipeline --env s3 $(S3_CONF) --conf stream.holdback_fraction=0.05 $(SOURCE_CONF) $(CONF)

airflow-env: $(AIRFLOW_VENV)/.installed ## install Apache Airflow (requirements-airflow.txt) into its own virtualenv, .airflow/venv, once

$(AIRFLOW_VENV)/.installed: requirements-airflow.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q uv  # uv installs the ~120 pinned packages in seconds, pip in minutes
	$(AIRFLOW_VENV)/bin/python -m uv pip install -q --python $(AIRFLOW_VENV)/bin/python -r requirements-airflow.txt
	touch $@

airflow-dag: $(VENV)/.installed ## regenerate the Airflow DAG (dags/lakejobs_pipeline.py) from conf/pipeline.yaml
	$(PY) -m jobs.runners.airflow_dag

airflow-up: setup airflow-env ## start Airflow (standalone, sqlite in .airflow/home) with its web UI and REST API on 127.0.0.1:$(AIRFLOW_PORT)
	$(PY) -m common.local.airflow_server up --dir $(AIRFLOW_DIR) --port $(AIRFLOW_PORT)

airflow-down: ## stop Airflow
	$(PY) -m common.local.airflow_server down --dir $(AIRFLOW_DIR)

airflow: $(VENV)/.installed airflow-env ## the airflow command line for that Airflow: make airflow ARGS="dags trigger lakejobs_pipeline"
	$(PY) -m common.local.airflow_server cli --dir $(AIRFLOW_DIR) --port $(AIRFLOW_PORT) -- $(ARGS)

clean: ## remove the local lake and build outputs (keeps .venv and .jars)
	rm -rf lake lake-s3 dist build *.egg-info spark-warehouse metastore_db derby.log .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and the jars
	rm -rf $(VENV) .jars .kafka .airflow
