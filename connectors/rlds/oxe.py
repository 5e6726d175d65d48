"""The Open X-Embodiment registry: per RLDS dataset, the robot, control rate, camera roles, instruction source
and the state/action encodings mapped to named dimensions.

Sources: openvla `prismatic/vla/datasets/rlds/oxe/{configs,transforms,mixtures}.py` (image keys, encodings,
instruction source) and the OXE spreadsheet (robot, Hz), as summarised in formats.md section 1.6. Covers every
dataset of `oxe_magic_soup` (+ `_plus`), droid, language_table and the three bridge variants. A dataset not listed
here still ingests with `generic_spec` (every image a camera, the text field as instruction) and a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StateEncoding = Literal["POS_EULER", "POS_QUAT", "JOINT", "NONE"]
ActionEncoding = Literal["EEF_POS", "JOINT_POS"]
InstructionKind = Literal["text", "codepoints"]

# name | robot | Hz | primary / secondary / wrist image keys (under observation/) | instruction source | state | action
# "default" instruction = steps/language_instruction; "?" = unknown; obs/ = steps/observation/.
_TABLE = """
fractal20220817_data|Google Robot|3|image/-/-|obs/natural_language_instruction|POS_QUAT|EEF_POS
kuka|Kuka iiwa|10|image/-/-|obs/natural_language_instruction|POS_QUAT|EEF_POS
bridge_oxe|WidowX|5|image/image_1/-|obs/natural_language_instruction|POS_EULER|EEF_POS
bridge_orig|WidowX|5|image_0/image_1/-|default|POS_EULER|EEF_POS
bridge_dataset|WidowX|5|image_0/image_1/-|default|POS_EULER|EEF_POS
taco_play|Franka|15|rgb_static/-/rgb_gripper|obs/natural_language_instruction|POS_EULER|EEF_POS
jaco_play|Jaco 2|10|image/-/image_wrist|obs/natural_language_instruction|POS_EULER|EEF_POS
berkeley_cable_routing|Franka|10|image/top_image/wrist45_image|obs/natural_language_instruction|JOINT|EEF_POS
roboturk|Sawyer|10|front_rgb/-/-|obs/natural_language_instruction|NONE|EEF_POS
nyu_door_opening_surprising_effectiveness|Hello Stretch|3|-/-/image|obs/natural_language_instruction|NONE|EEF_POS
viola|Franka|20|agentview_rgb/-/eye_in_hand_rgb|obs/natural_language_instruction|JOINT|EEF_POS
berkeley_autolab_ur5|UR5|5|image/-/hand_image|obs/natural_language_instruction|POS_QUAT|EEF_POS
toto|Franka|30|image/-/-|obs/natural_language_instruction|JOINT|EEF_POS
language_table|xArm|10|rgb/-/-|obs/instruction (int32[512] code points)|POS_EULER|EEF_POS
columbia_cairlab_pusht_real|UR5|10|image/-/wrist_image|obs/natural_language_instruction|POS_EULER|EEF_POS
stanford_kuka_multimodal_dataset_converted_externally_to_rlds|Kuka iiwa|20|image/-/-|default|POS_QUAT|EEF_POS
nyu_rot_dataset_converted_externally_to_rlds|xArm|3|image/-/-|default|POS_EULER|EEF_POS
stanford_hydra_dataset_converted_externally_to_rlds|Franka|10|image/-/wrist_image|default|POS_EULER|EEF_POS
austin_buds_dataset_converted_externally_to_rlds|Franka|20|image/-/wrist_image|default|JOINT|EEF_POS
nyu_franka_play_dataset_converted_externally_to_rlds|Franka|3|image/image_additional_view/-|default|POS_EULER|EEF_POS
maniskill_dataset_converted_externally_to_rlds|Franka|20|image/-/wrist_image|default|POS_QUAT|EEF_POS
furniture_bench_dataset_converted_externally_to_rlds|Franka|10|image/-/wrist_image|default|POS_QUAT|EEF_POS
cmu_franka_exploration_dataset_converted_externally_to_rlds|Franka|10|highres_image/-/-|default|NONE|EEF_POS
ucsd_kitchen_dataset_converted_externally_to_rlds|xArm|2|image/-/-|default|JOINT|EEF_POS
ucsd_pick_and_place_dataset_converted_externally_to_rlds|xArm|3|image/-/-|default|POS_EULER|EEF_POS
austin_sailor_dataset_converted_externally_to_rlds|Franka|20|image/-/wrist_image|default|POS_QUAT|EEF_POS
austin_sirius_dataset_converted_externally_to_rlds|Franka|20|image/-/wrist_image|default|POS_QUAT|EEF_POS
bc_z|Google Robot|10|image/-/-|obs/natural_language_instruction|POS_EULER|EEF_POS
utokyo_pr2_opening_fridge_converted_externally_to_rlds|PR2|10|image/-/-|default|POS_EULER|EEF_POS
utokyo_pr2_tabletop_manipulation_converted_externally_to_rlds|PR2|10|image/-/-|default|POS_EULER|EEF_POS
utokyo_xarm_pick_and_place_converted_externally_to_rlds|xArm|10|image/image2/hand_image|default|POS_EULER|EEF_POS
utokyo_xarm_bimanual_converted_externally_to_rlds|xArm Bimanual|10|image/-/-|default|POS_EULER|EEF_POS
robo_net|Multi-Robot|1|image/image1/-|default|POS_EULER|EEF_POS
berkeley_mvp_converted_externally_to_rlds|xArm|5|-/-/hand_image|default|POS_QUAT|JOINT_POS
berkeley_rpt_converted_externally_to_rlds|Franka|30|-/-/hand_image|default|JOINT|JOINT_POS
kaist_nonprehensile_converted_externally_to_rlds|Franka|10|image/-/-|default|POS_QUAT|EEF_POS
stanford_mask_vit_converted_externally_to_rlds|Sawyer|?|image/-/-|default|POS_EULER|EEF_POS
tokyo_u_lsmo_converted_externally_to_rlds|Cobotta|10|image/-/-|default|POS_EULER|EEF_POS
dlr_sara_pour_converted_externally_to_rlds|DLR SARA|10|image/-/-|default|POS_EULER|EEF_POS
dlr_sara_grid_clamp_converted_externally_to_rlds|DLR SARA|10|image/-/-|default|POS_EULER|EEF_POS
dlr_edan_shared_control_converted_externally_to_rlds|DLR EDAN|5|image/-/-|default|POS_EULER|EEF_POS
asu_table_top_converted_externally_to_rlds|UR5|12.5|image/-/-|default|POS_EULER|EEF_POS
stanford_robocook_converted_externally_to_rlds|Franka|5|image_1/image_2/-|default|POS_EULER|EEF_POS
imperialcollege_sawyer_wrist_cam|Sawyer|10|image/-/wrist_image|default|NONE|EEF_POS
iamlab_cmu_pickup_insert_converted_externally_to_rlds|Franka|20|image/-/wrist_image|default|JOINT|EEF_POS
uiuc_d3field|Kinova Gen3|1|image_1/image_2/-|default|NONE|EEF_POS
utaustin_mutex|Franka|20|image/-/wrist_image|default|JOINT|EEF_POS
berkeley_fanuc_manipulation|Fanuc Mate|10|image/-/wrist_image|default|JOINT|EEF_POS
cmu_playing_with_food|Franka|10|image/-/finger_vision_1|default|POS_EULER|EEF_POS
cmu_play_fusion|Franka|5|image/-/-|default|JOINT|EEF_POS
cmu_stretch|Hello Stretch|10|image/-/-|default|POS_EULER|EEF_POS
berkeley_gnm_recon|Jackal|3|-/-/image|default|POS_EULER|EEF_POS
berkeley_gnm_cory_hall|RC Car|5|-/-/image|default|POS_EULER|EEF_POS
berkeley_gnm_sac_son|TurtleBot 2|10|-/-/image|default|POS_EULER|EEF_POS
droid|Franka|15|exterior_image_1_left/exterior_image_2_left/wrist_image_left|?|POS_QUAT|EEF_POS
fmb_dataset|Franka|10|image_side_1/image_side_2/image_wrist_1|default|POS_EULER|EEF_POS
dobbe|Hello Stretch|3.75|wrist_image/-/-|default|POS_EULER|EEF_POS
roboset|Franka|5|image_left/image_right/image_wrist|default|JOINT|JOINT_POS
rh20t|Flexiv|10|image_front/image_side_right/image_wrist|default|POS_EULER|EEF_POS
tdroid_carrot_in_bowl|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
tdroid_pour_corn_in_pot|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
tdroid_flip_pot_upright|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
tdroid_move_object_onto_plate|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
tdroid_knock_object_over|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
tdroid_cover_object_with_towel|Franka|5|static_image/-/-|default|POS_EULER|EEF_POS
droid_wipe|Franka|15|exterior_image_2_left/-/wrist_image_left|?|POS_EULER|EEF_POS
libero_spatial_no_noops|Franka|20|image/-/wrist_image|default|POS_EULER|EEF_POS
libero_object_no_noops|Franka|20|image/-/wrist_image|default|POS_EULER|EEF_POS
libero_goal_no_noops|Franka|20|image/-/wrist_image|default|POS_EULER|EEF_POS
libero_10_no_noops|Franka|20|image/-/wrist_image|default|POS_EULER|EEF_POS
"""

_KIND_BY_ROBOT = {
    "Google Robot": "mobile_manipulator", "Hello Stretch": "mobile_manipulator", "PR2": "mobile_manipulator",
    "Jackal": "mobile", "RC Car": "mobile", "TurtleBot 2": "mobile", "xArm Bimanual": "bimanual",
    "Multi-Robot": "other",
}
_ALIASES = {"bridge": "bridge_oxe"}
_STATE_KEYS: dict[str, tuple[str, ...]] = {
    "fractal20220817_data": ("observation/base_pose_tool_reached", "observation/gripper_closed"),
    "kuka": ("observation/clip_function_input/base_pose_tool_reached", "observation/gripper_closed"),
    "taco_play": ("observation/robot_obs",),
    "jaco_play": ("observation/end_effector_cartesian_pos",),
    "berkeley_cable_routing": ("observation/robot_state",),
    "viola": ("observation/joint_states", "observation/gripper_states"),
    "berkeley_autolab_ur5": ("observation/robot_state",),
    "language_table": ("observation/effector_translation",),
    "droid": ("observation/cartesian_position", "observation/gripper_position"),
}
_DROID_INSTRUCTIONS = ("language_instruction", "language_instruction_2", "language_instruction_3")

STATE_NAMES: dict[str, dict[int, tuple[str, ...]]] = {
    "POS_EULER": {6: ("x", "y", "z", "roll", "pitch", "yaw"), 7: ("x", "y", "z", "roll", "pitch", "yaw", "gripper"),
                  8: ("x", "y", "z", "roll", "pitch", "yaw", "pad", "gripper"), 2: ("x", "y")},
    "POS_QUAT": {7: ("x", "y", "z", "qx", "qy", "qz", "qw"), 8: ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")},
    "JOINT": {8: (*(f"joint_{i}" for i in range(7)), "gripper"), 7: tuple(f"joint_{i}" for i in range(7))},
}
ACTION_NAMES: dict[str, dict[int, tuple[str, ...]]] = {
    "EEF_POS": {7: ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"), 2: ("dx", "dy"),
                6: ("dx", "dy", "dz", "droll", "dpitch", "dyaw")},
    "JOINT_POS": {8: (*(f"joint_{i}" for i in range(7)), "gripper")},
}
ACTION_DICT_ORDER = ("world_vector", "rotation_delta", "gripper_closedness_action", "open_gripper",
                     "base_displacement_vector", "base_displacement_vertical_rotation", "terminate_episode")
"""Google-format action dicts are flattened in this order (unknown keys follow, sorted)."""
ACTION_DICT_NAMES = {"world_vector": ("dx", "dy", "dz"), "rotation_delta": ("droll", "dpitch", "dyaw"),
                     "gripper_closedness_action": ("gripper",), "open_gripper": ("gripper",),
                     "base_displacement_vector": ("base_dx", "base_dy"),
                     "base_displacement_vertical_rotation": ("base_dyaw",)}


@dataclass(frozen=True)
class DatasetSpec:
    """How one RLDS dataset maps onto the schema."""

    name: str
    robot: str
    control_hz: float | None
    primary: str | None = None
    secondary: str | None = None
    wrist: str | None = None
    instruction_key: str | None = "language_instruction"
    instruction_kind: InstructionKind = "text"
    extra_instruction_keys: tuple[str, ...] = ()
    state_encoding: StateEncoding = "NONE"
    action_encoding: ActionEncoding = "EEF_POS"
    state_keys: tuple[str, ...] = ("observation/state",)
    kind: str = "arm"
    is_sim: bool = False
    generic: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def camera_roles(self) -> dict[str, str]:
        """Image feature key (under observation/) -> role (primary, secondary, wrist)."""
        roles = {"primary": self.primary, "secondary": self.secondary, "wrist": self.wrist}
        return {key: role for role, key in roles.items() if key}


def _parse() -> dict[str, DatasetSpec]:
    specs: dict[str, DatasetSpec] = {}
    for line in _TABLE.strip().splitlines():
        name, robot, hz, images, instr, state, action = (c.strip() for c in line.split("|"))
        p, s, w = (None if k.strip() == "-" else k.strip() for k in images.split("/"))
        kind: InstructionKind = "text"
        extra: tuple[str, ...] = ()
        if instr in ("default", "?"):
            key = "language_instruction"
        elif "code points" in instr:
            key, kind = instr.split(" ")[0].replace("obs/", "observation/", 1), "codepoints"
        else:
            key = instr.replace("obs/", "observation/", 1)
        if name == "droid" or name == "droid_wipe":
            key, extra = _DROID_INSTRUCTIONS[0], _DROID_INSTRUCTIONS[1:]
        is_sim = name.startswith(("libero", "maniskill"))
        specs[name] = DatasetSpec(
            name=name, robot=robot, control_hz=None if hz == "?" else float(hz), primary=p, secondary=s, wrist=w,
            instruction_key=key, instruction_kind=kind, extra_instruction_keys=extra,
            state_encoding=state, action_encoding=action,  # type: ignore[arg-type]
            state_keys=_STATE_KEYS.get(name, ("observation/state",)),
            kind=_KIND_BY_ROBOT.get(robot, "arm"), is_sim=is_sim,
        )
    return specs


REGISTRY: dict[str, DatasetSpec] = _parse()
OXE_MAGIC_SOUP: tuple[str, ...] = (
    "fractal20220817_data", "kuka", "bridge_orig", "taco_play", "jaco_play", "berkeley_cable_routing", "roboturk",
    "viola", "berkeley_autolab_ur5", "toto", "language_table",
    "stanford_hydra_dataset_converted_externally_to_rlds", "austin_buds_dataset_converted_externally_to_rlds",
    "nyu_franka_play_dataset_converted_externally_to_rlds", "furniture_bench_dataset_converted_externally_to_rlds",
    "ucsd_kitchen_dataset_converted_externally_to_rlds", "austin_sailor_dataset_converted_externally_to_rlds",
    "austin_sirius_dataset_converted_externally_to_rlds", "dlr_edan_shared_control_converted_externally_to_rlds",
    "iamlab_cmu_pickup_insert_converted_externally_to_rlds", "utaustin_mutex", "berkeley_fanuc_manipulation",
    "cmu_stretch",
)
"""The Octo/OpenVLA `oxe_magic_soup` mixture (dataset names as in OXE_NAMED_MIXTURES)."""
OXE_MAGIC_SOUP_PLUS: tuple[str, ...] = (*OXE_MAGIC_SOUP, "bc_z", "fmb_dataset", "dobbe", "droid")


def lookup(name: str) -> DatasetSpec | None:
    """The registry entry for a TFDS dataset name (aliases such as `bridge` resolve), or None."""
    return REGISTRY.get(_ALIASES.get(name, name))


def generic_spec(name: str) -> DatasetSpec:
    """The fallback mapping for an RLDS dataset not in the registry."""
    return DatasetSpec(name=name, robot="unknown", control_hz=None, instruction_key=None, generic=True)


def names_for(encoding: str, dim: int, table: dict[str, dict[int, tuple[str, ...]]], prefix: str) -> list[str]:
    """Dimension names for an encoding of this size, or generic `prefix_i` names when the size does not match."""
    names = table.get(encoding, {}).get(dim)
    return list(names) if names else [f"{prefix}_{i}" for i in range(dim)]
