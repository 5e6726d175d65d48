"""HDF5 demonstration files: ALOHA/ACT (`aloha`) and robomimic/LIBERO/robosuite (`robomimic`).

Importing this package registers both connectors.
"""

from connectors.hdf5.aloha import AlohaConnector
from connectors.hdf5.common import HDF5FormatError
from connectors.hdf5.robomimic import RobomimicConnector

__all__ = ["AlohaConnector", "HDF5FormatError", "RobomimicConnector"]
