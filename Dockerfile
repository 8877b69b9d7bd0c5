# Three images from one file, all pinned by dev/constraints.txt:
#
#   docker build --target runtime -t airflow-bridge-runtime:0.1.0 .   # training pods of the Kubernetes compute tiers
#   docker build --target kserve -t airflow-bridge-kserve:0.1.0 .     # the KServe sklearn predictor of serving tiers
#   docker build --target airflow -t airflow-bridge:dev .             # every Airflow service in docker-compose.yml
#
# `runtime` and `airflow` carry the `search` extra (Optuna) so model.search runs in a pod or a worker.
# `runtime` and `kserve` are what the tiers of dag_specs/_policy.yaml reference (push them to your registry
# and put those names in the policy). `runtime`: airflow-bridge with scikit-learn, skrub and S3 support, run
# as a non-root user; its entrypoint is the airflow-bridge CLI (`airflow-bridge pod train`, `airflow-bridge
# serve`). `kserve`: KServe's own sklearn server (runtime `kserve-sklearnserver`) with what unpickling a
# registry Pipeline needs (dev/kserve-requirements.txt: the pinned scikit-learn, skrub and lightgbm, and
# airflow-bridge without its dependencies, for its column-role step); no Airflow (docs/kserve.md).
# None of these is built in CI (no Docker engine there): see docs/deployment.md#images.

FROM python:3.11-slim AS runtime
# libgomp1: LightGBM's OpenMP runtime (the slim image lacks it; scikit-learn's wheels bundle their own)
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 bridge
COPY pyproject.toml README.md /opt/airflow-bridge/
COPY airflow_bridge /opt/airflow-bridge/airflow_bridge
COPY dev/constraints.txt /opt/airflow-bridge/dev/constraints.txt
RUN pip install --no-cache-dir -c /opt/airflow-bridge/dev/constraints.txt "/opt/airflow-bridge[serve,s3,lightgbm,search]"
USER 1000
WORKDIR /home/bridge
ENTRYPOINT ["airflow-bridge"]

FROM kserve/sklearnserver:v0.20.0 AS kserve
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /opt/airflow-bridge/
COPY airflow_bridge /opt/airflow-bridge/airflow_bridge
COPY dev/kserve-requirements.txt dev/kserve-constraints.txt /opt/airflow-bridge/dev/
RUN pip install --no-cache-dir -c /opt/airflow-bridge/dev/kserve-constraints.txt \
        -r /opt/airflow-bridge/dev/kserve-requirements.txt \
    && pip install --no-cache-dir --no-deps /opt/airflow-bridge
USER 1000

# Airflow 3.3 with airflow-bridge installed: used by docker-compose.yml for every Airflow service.
FROM apache/airflow:3.3.2-python3.11 AS airflow
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-bridge/
COPY --chown=airflow:root airflow_bridge /opt/airflow-bridge/airflow_bridge
COPY --chown=airflow:root dev/constraints.txt /opt/airflow-bridge/dev/constraints.txt
RUN mkdir -p /opt/airflow/passwords \
    && pip install --no-cache-dir -c /opt/airflow-bridge/dev/constraints.txt "/opt/airflow-bridge[postgres,serve,s3,lightgbm,search]"
