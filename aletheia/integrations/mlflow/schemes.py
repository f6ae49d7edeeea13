"""URI schemes of the MLflow plugins (the entry point names in pyproject.toml).

A leaf module on purpose: MLflow imports the plugins from its registries
while they may still be importing each other, so the names they share must
not pull either plugin in.
"""

#: ``mlflow.set_tracking_uri("aletheia://PROJECT")``: the tracking store.
TRACKING_SCHEME = "aletheia"
#: ``aletheia-art://PROJECT/EXPERIMENT/RUN``: the artifact repository.
ARTIFACT_SCHEME = "aletheia-art"
#: ``aletheia-model://PROJECT/EXPERIMENT/MODEL_ID``: the files of an MLflow logged model.
MODEL_ARTIFACT_SCHEME = "aletheia-model"
