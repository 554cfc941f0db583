-- One database per service (the services' migrations create the tables, never this file).
-- Runs once, when the Postgres volume is first initialised (docker-entrypoint-initdb.d).
CREATE DATABASE taskflow_tasks;
CREATE DATABASE taskflow_notify;
CREATE DATABASE taskflow_audit;
CREATE DATABASE taskflow_reminders;
