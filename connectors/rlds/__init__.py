"""RLDS / Open X-Embodiment: TFDS dataset directories read without TensorFlow, and a TFDS-compatible writer."""

from connectors.rlds.connector import RLDSConnector, dataset_dirs
from connectors.rlds.oxe import REGISTRY, DatasetSpec, lookup

__all__ = ["REGISTRY", "DatasetSpec", "RLDSConnector", "dataset_dirs", "lookup"]
