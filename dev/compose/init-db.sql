-- Runs once when the PostgreSQL container is created: a database for Airflow's metadata and one
-- for the model registry, each with its own user.
CREATE USER airflow WITH PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;
CREATE USER registry_writer WITH PASSWORD 'registry';
CREATE DATABASE model_registry OWNER registry_writer;
