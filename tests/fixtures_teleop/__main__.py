"""Write every teleop fixture under a directory: `python -m tests.fixtures_teleop /tmp/teleop`."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures_teleop import aloha, lerobot_v3, lerobot_v21, robomimic_file, robosuite_raw, rosbags

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "teleop_fixtures")
    for path in (lerobot_v3(out), lerobot_v21(out), aloha(out), robomimic_file(out / "hdf5" / "low_dim.hdf5"),
                 robomimic_file(out / "hdf5" / "libero.hdf5", libero=True), robosuite_raw(out / "hdf5" / "raw.hdf5"),
                 rosbags(out), rosbags(out, storage="sqlite3")):
        print(path)
