# Airflow 3.3 with airflow-bridge installed: used by docker-compose.yml for every Airflow service.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-bridge/
COPY --chown=airflow:root airflow_bridge /opt/airflow-bridge/airflow_bridge
COPY --chown=airflow:root dev/constraints.txt /opt/airflow-bridge/dev/constraints.txt
RUN mkdir -p /opt/airflow/artifacts /opt/airflow/passwords \
    && pip install --no-cache-dir -c /opt/airflow-bridge/dev/constraints.txt "/opt/airflow-bridge[postgres,serve]"
