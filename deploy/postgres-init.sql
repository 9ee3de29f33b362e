-- Run once by the postgres image when its data volume is new: MLflow's tracking and registry
-- tables live in a database of their own beside the feedback one (POSTGRES_DB).
CREATE DATABASE mlflow OWNER doodle;
