"""TGB: a GAN with a task-guided branch for brain-age estimation (ABIDE I+II, 3D MRI); notebook 01_tgb."""
from brainage_lib.registry import Paper

W = "brainage_lib.papers.tgb"
PAPER = Paper(
    name="tgb", short="TGB", title="GAN with a task-guided branch for brain-age estimation (ABIDE, 3D)",
    notebook="01_tgb",
    transforms={"tgb": f"{W}.transforms:TGBVolume"},
    recipe=f"{W}.recipe:RECIPE",
    architectures={"TGBRegressor": ("brainage_lib.papers.tgb.regressor:TGBRegressor",
                                    "brainage_lib.papers.tgb.regressor:RegressorConfig")},
    presets=f"{W}.presets:PRESETS",
    bench=f"{W}.bench:bench_tgb",
    gpu_stages=f"{W}.bench:gpu_stages",
    claims=f"{W}.claims:claims",
    deviations=f"{W}.deviations:DEVIATIONS",
    numbers=f"{W}.paper",
    device_check=f"{W}.precision:DEVICE_CHECK",
)
