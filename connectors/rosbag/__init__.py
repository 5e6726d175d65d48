"""ROS 2 bags and MCAP, read without a ROS install. Importing this package registers `rosbag`."""

from connectors.rosbag.bag import BagError
from connectors.rosbag.connector import RosbagConnector
from connectors.rosbag.mapping import Mapping, MappingError, default_mapping, load_mapping, parse_mapping

__all__ = ["BagError", "Mapping", "MappingError", "RosbagConnector", "default_mapping", "load_mapping",
           "parse_mapping"]
