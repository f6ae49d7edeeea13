"""MLflow: the tracking-store and artifact-repository plugins, and the file-store exporter."""
