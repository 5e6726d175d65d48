"""LeRobot datasets (v2.0, v2.1, v3.0), read without lerobot. Importing this package registers `lerobot`."""

from connectors.lerobot.connector import LeRobotConnector, camera_name
from connectors.lerobot.layout import DatasetMeta, Feature, LeRobotFormatError, feature_names, load_meta

__all__ = ["DatasetMeta", "Feature", "LeRobotConnector", "LeRobotFormatError", "camera_name", "feature_names",
           "load_meta"]
