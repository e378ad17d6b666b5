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
KAFKA_DIR  ?= lake/state/kafka
KAFKA_PORT ?= 9092
MLFLOW_DIR  ?= lake/state/mlflow-server
MLFLOW_PORT ?= 5000
S3_DIR  ?= lake/state/s3
S3_PORT ?= 9000
S3_CONF  = --conf s3.endpoint=http://127.0.0.1:$(S3_PORT) --conf s3.path_style_access=true

.PHONY: help setup run test bench package submit stream stream-live kafka-up kafka-down mlflow-up mlflow-down s3-up s3-down run-s3 clean distclean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

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

run: setup ## run the pipeline on the embedded default and show what it produced
	$(LAKEJOBS) pipeline --env $(ENV) $(SOURCE_CONF) $(CONF)

test: setup ## run the test suite
	$(PY) -m pytest tests

bench: setup ## run the benchmarks (BENCH_ARGS="--only batch --sizes 1000000"); writes bench/results.json and bench/RESULTS.md
	$(PY) -m bench.run $(BENCH_ARGS)

package: setup ## build the wheel, the --py-files zip and the spark-submit entry file into dist/
	rm -rf $(DIST) build
	$(PY) -m pip wheel -q --no-deps -w $(DIST) .
	$(PY) -c "import pathlib, zipfile; z = zipfile.ZipFile('$(DIST)/lakejobs-$(VERSION).zip', 'w'); \
	  [z.write(p) for d in ('jobs', 'common', 'conf') for p in sorted(pathlib.Path(d).rglob('*')) if p.suffix in ('.py', '.yaml')]"
	cp jobs/entry.py $(DIST)/lakejobs_entry.py
	@ls -1 $(DIST)

submit: package ## run JOB=... through spark-submit (MASTER=local[*] by default) with the packaged code
	$(VENV)/bin/spark-submit --master '$(MASTER)' $$($(LAKEJOBS) submit-args --env $(ENV) $(CONF)) \
	  --py-files $(DIST)/lakejobs-$(VERSION).zip $(DIST)/lakejobs_entry.py --job $(JOB) --env $(ENV) $(SOURCE_CONF) $(CONF)

stream: setup ## speed layer once: simulate a burst of events, merge it (availableNow), show the serving view
	$(LAKEJOBS) run simulate --env $(ENV) $(CONF)
	$(LAKEJOBS) run speed --env $(ENV) $(CONF)
	$(LAKEJOBS) query --env $(ENV) $(CONF) "SELECT movieId, title, rating_count, round(bayes_avg, 3) AS bayes_avg \
	  FROM gold.movie_stats ORDER BY bayes_avg DESC LIMIT 10"

stream-live: setup ## simulator at RATE events/s and the merge every second, until Ctrl-C
	$(LAKEJOBS) run simulate --env $(ENV) --conf simulator.rate=$(RATE) $(CONF) & sim=$$!; \
	  trap 'kill $$sim 2>/dev/null' EXIT; \
	  $(LAKEJOBS) run speed --env $(ENV) --conf stream.trigger=processing_time $(CONF)

kafka-up: setup ## start a Kafka broker (KRaft) on 127.0.0.1:$(KAFKA_PORT); use with CONF="--conf stream.source=kafka"
	$(PY) -m common.local_kafka up --dir $(KAFKA_DIR) --port $(KAFKA_PORT)

kafka-down: ## stop the Kafka broker
	$(PY) -m common.local_kafka down --dir $(KAFKA_DIR)

mlflow-up: setup ## start an MLflow server on 127.0.0.1:$(MLFLOW_PORT); use with CONF="--conf ml.tracking_uri=http://127.0.0.1:5000"
	$(PY) -m common.local_mlflow up --dir $(MLFLOW_DIR) --port $(MLFLOW_PORT)

mlflow-down: ## stop the MLflow server
	$(PY) -m common.local_mlflow down --dir $(MLFLOW_DIR)

# The local S3 server takes any key; the AWS chain must still find one, so these stand in unless you set yours.
s3-up run-s3: export AWS_ACCESS_KEY_ID ?= local-only
s3-up run-s3: export AWS_SECRET_ACCESS_KEY ?= local-only

s3-up: setup ## start an S3 API server (moto) on 127.0.0.1:$(S3_PORT) with the bucket lakejobs; objects live in its memory
	$(PY) -m common.local_s3 up --dir $(S3_DIR) --port $(S3_PORT)

s3-down: ## stop the S3 server (the lake on it goes too)
	$(PY) -m common.local_s3 down --dir $(S3_DIR)

run-s3: setup ## the pipeline with the lake on the local S3 server (s3a://lakejobs/lake), started when not running
	@$(PY) -c "from common.local_server import listening; exit(0 if listening($(S3_PORT)) else 1)" || $(MAKE) --no-print-directory s3-up
	$(LAKEJOBS) pipeline --env s3 $(S3_CONF) --conf stream.holdback_fraction=0.05 $(SOURCE_CONF) $(CONF)

clean: ## remove the local lake and build outputs (keeps .venv and .jars)
	rm -rf lake lake-s3 dist build *.egg-info spark-warehouse metastore_db derby.log .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and the jars
	rm -rf $(VENV) .jars .kafka
