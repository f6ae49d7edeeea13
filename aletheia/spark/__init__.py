"""aletheia on Apache Spark (``pip install 'aletheia[spark]'``): profiles and datasets at scale.

:func:`profile` computes a DataFrame's profile in the storage function's
format, one profile per partition merged on the driver;
:func:`add_dataset` stores a DataFrame as a dataset version;
:mod:`aletheia.spark.versionjob` profiles a version's files too big for the
function (``aletheia datasets stats NAME --engine spark``; the same module is
the Dataproc Serverless job). A Spark driver logs runs with the normal API
(:class:`aletheia.Metastore`). Nothing outside this package and the CLI
imports it: the core never needs pyspark.
"""

from __future__ import annotations

from aletheia.spark.datasets import add_dataset
from aletheia.spark.profiler import SparkProfile, profile

__all__ = ["SparkProfile", "add_dataset", "profile"]
