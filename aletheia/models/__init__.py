"""The model registry: named models, their immutable numbered versions, and moving aliases.

``Projects/{p}/Models/{name}`` holds a model's aliases, tags and description;
``Models/{name}/Versions/{n}`` one registration: the run that trained it, the
artifact version holding its files, the dataset versions that run used, the
git commit, params and metrics as they were, and who registered it
(:mod:`aletheia.models.registry`). Runs register models through
``run.log_model`` and ``ms.register_model`` (:mod:`aletheia.tracking.modelreg`).
"""

from aletheia.models.entities import Model, ModelInfo, ModelVersion, RunFacts
from aletheia.models.registry import ModelRegistry

__all__ = ["Model", "ModelInfo", "ModelRegistry", "ModelVersion", "RunFacts"]
